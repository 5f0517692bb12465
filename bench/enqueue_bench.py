#!/usr/bin/env python3
"""onboardctl enqueue's memory and time against the size of its input.

Writes a CSV of N accounts (mode new, one region), runs
`onboardctl enqueue --dry-run` on it (every row read, validated, normalized,
spooled and printed: all of enqueue but the broker), and prints the wall time
and peak RSS for each N, with the bytes of RSS per row. Memory that stays flat
while N grows by ten is what streaming means; a line per row in memory would
show as bytes per row that do not fall.

  bench/enqueue_bench.py [--build build] [--rows 1000,10000,100000] [--json out.json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_csv(path, n):
    with open(path, "w") as f:
        f.write("account_id,mode,region,role_arn,requester\n")
        for i in range(n):
            acct = "%012d" % (100000000000 + i)
            f.write("%s,new,eu-west-1,arn:aws:iam::%s:role/OrganizationAccountAccessRole,"
                    "bench\n" % (acct, acct))


def run(onboardctl, path):
    t0 = time.monotonic()
    with open(os.devnull, "w") as null:
        p = subprocess.Popen([onboardctl, "enqueue", "--dry-run", path], stdout=null,
                             stderr=subprocess.PIPE)
        _, ru = os.wait4(p.pid, 0)[1:]
        err = p.stderr.read().decode()
        p.stderr.close()
    wall = time.monotonic() - t0
    return wall, ru.ru_maxrss / 1024.0, ru.ru_utime + ru.ru_stime, err


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rows", default="1000,10000,100000")
    ap.add_argument("--json")
    a = ap.parse_args()
    onboardctl = os.path.join(a.build, "tools", "onboardctl")
    if not os.path.exists(onboardctl):
        sys.exit("no %s: build first" % onboardctl)
    out = []
    print("%10s %9s %9s %12s %14s" % ("rows", "wall s", "cpu s", "peak RSS MiB", "RSS B/row"))
    with tempfile.TemporaryDirectory() as d:
        for n in [int(x) for x in a.rows.split(",")]:
            path = os.path.join(d, "rows-%d.csv" % n)
            write_csv(path, n)
            wall, rss, cpu, err = run(onboardctl, path)
            if "%d requests would go" % n not in err:
                sys.exit("onboardctl did not take every row:\n" + err)
            print("%10d %9.2f %9.2f %12.1f %14.0f" % (n, wall, cpu, rss, rss * 1048576 / n))
            out.append({"rows": n, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                        "peak_rss_mib": round(rss, 1)})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
