#!/usr/bin/env python3
"""The Grafana dashboard against a real Prometheus scraping a real fleet.

  bench/dashboard_check.py [--build build] [--accounts 2000] [--profile instant]
                           [--png docs/dashboard.png] [--no-validate]

1. The chart's dashboard (helm/onboard/dashboards/onboard.json) and the compose
   stack's copy (deploy/grafana/onboard-dashboard.json) are the same bytes.
2. Unless --no-validate: the Go program in deploy/grafana/validate decodes it
   strictly into Grafana's published dashboard types (grafana-foundation-sdk).
3. Starts Prometheus (a temporary directory, a free port, every target scraped
   each second), runs the fleet benchmark (bench/fleet_bench.py), finds its
   four workers as they start (the benchmark's child processes: their metrics
   port, broker and topic prefix from their environment), adds them to
   Prometheus's targets, and starts onboard-lag-exporter against the same
   broker and prefix.
4. Once the benchmark is over, runs every panel's query over the run
   (/api/v1/query_range, the dashboard's variables substituted as Grafana
   would: every stage, $__rate_interval four scrapes) and fails if any
   returns no series.
5. Draws the main panels from Prometheus's answers to --png (matplotlib).

Exit status 0 when every query returned series.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART_JSON = os.path.join(ROOT, "helm", "onboard", "dashboards", "onboard.json")
COMPOSE_JSON = os.path.join(ROOT, "deploy", "grafana", "onboard-dashboard.json")
SCRAPE_S = 1
STAGES = ["bucket", "cur", "iam", "connect"]


def log(msg):
    print("dashboard: " + msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def panels(dash):
    """Every panel with queries, rows' panels included, in order."""
    out = []
    for p in dash["panels"]:
        if p.get("type") == "row":
            out += p.get("panels", [])
        else:
            out.append(p)
    return out


def substitute(expr, range_s):
    """The dashboard's variables as Grafana fills them in (all stages selected,
    a 1 s scrape interval)."""
    return (expr.replace("$stage", ".+")
            .replace("$__rate_interval", "%ds" % (4 * SCRAPE_S))
            .replace("$__range", "%ds" % max(1, int(range_s))))


def children_env(pid):
    """{pid: environment} of the processes whose parent is pid."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            with open("/proc/%s/environ" % d, "rb") as f:
                env = dict(kv.split("=", 1) for kv in f.read().decode(errors="replace").split("\0") if "=" in kv)
            with open("/proc/%s/cmdline" % d, "rb") as f:
                env["__cmd"] = f.read().split(b"\0")[0].decode(errors="replace")
            out[int(d)] = env
        except (OSError, ValueError, IndexError):
            pass
    return out


def prom_get(base, path, params):
    url = base + path + "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.loads(r.read().decode())
    if body.get("status") != "success":
        raise RuntimeError("%s: %s" % (path, body))
    return body["data"]


def write_targets(path, targets):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump([{"targets": ["127.0.0.1:%d" % port], "labels": {"worker": name}}
                   for name, port in sorted(targets.items())], f)
    os.replace(tmp, path)


def draw(path, results, title):
    """The main panels, from query_range results ({panel title: [series]})."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    main = ["Accounts / s by stage and result", "Lag per group (messages)", "Lag age per group",
            "In flight", "Backlog", "AWS requests / s", "Stage duration p95", "Dead letters / s by class"]
    main = [m for m in main if m in results]
    cols = 2
    rows = (len(main) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(14, 3.2 * rows), squeeze=False)
    fig.patch.set_facecolor("#111217")
    t0 = min(float(v[0]) for series in results.values() for s in series for v in s["values"][:1])
    for ax, name in zip([a for r in axes for a in r], main):
        ax.set_facecolor("#181b1f")
        for sp in ax.spines.values():
            sp.set_color("#444")
        ax.tick_params(colors="#ccc", labelsize=7)
        ax.set_title(name, color="#ddd", fontsize=9, loc="left")
        ax.grid(color="#2a2d33", linewidth=0.5)
        series = results[name]
        # At most eight lines a panel: the largest, as a legend could show.
        series = sorted(series, key=lambda s: -max((float(v[1]) for v in s["values"]
                                                    if v[1] not in ("NaN", "+Inf", "-Inf")), default=0))[:8]
        for s in series:
            xs = [float(v[0]) - t0 for v in s["values"]]
            ys = [float(v[1]) if v[1] not in ("NaN", "+Inf", "-Inf") else float("nan") for v in s["values"]]
            ax.plot(xs, ys, linewidth=1.2, label=s["legend"])
        ax.set_ylim(bottom=0)
        if series:
            ax.legend(fontsize=6, loc="upper right", facecolor="#181b1f", edgecolor="#333", labelcolor="#ccc",
                      ncol=2)
    for ax in [a for r in axes for a in r][len(main):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("seconds", color="#aaa", fontsize=8)
    fig.suptitle(title, color="#eee", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90, facecolor=fig.get_facecolor())
    plt.close(fig)


def legend(fmt, metric):
    out = fmt
    for k, v in metric.items():
        out = out.replace("{{%s}}" % k, v)
    return out if fmt else json.dumps(metric)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--profile", default="instant", choices=["instant", "aws-typical"])
    ap.add_argument("--png", default=os.path.join(ROOT, "docs", "dashboard.png"))
    ap.add_argument("--no-validate", action="store_true", help="skip the Go validation against Grafana's types")
    ap.add_argument("--no-png", action="store_true")
    args = ap.parse_args()

    with open(CHART_JSON, "rb") as f:
        chart = f.read()
    with open(COMPOSE_JSON, "rb") as f:
        if f.read() != chart:
            sys.exit("dashboard: %s differs from %s (copy the chart's)" % (
                os.path.relpath(COMPOSE_JSON, ROOT), os.path.relpath(CHART_JSON, ROOT)))
    dash = json.loads(chart)
    if not args.no_validate:
        env = dict(os.environ, GOFLAGS=os.environ.get("GOFLAGS", "-mod=mod"))
        subprocess.run(["go", "run", ".", CHART_JSON], cwd=os.path.join(ROOT, "deploy", "grafana", "validate"),
                       env=env, check=True)
    lagx = os.path.join(args.build, "workers", "onboard-lag-exporter")
    for tool in ("prometheus", "kcat"):
        if not shutil.which(tool):
            sys.exit("dashboard: %s is missing" % tool)
    if not os.access(lagx, os.X_OK):
        sys.exit("dashboard: %s is missing: build first" % lagx)

    run = tempfile.mkdtemp(prefix="onboard-dash.")
    procs = []
    try:
        pport = free_port()
        sd = os.path.join(run, "targets.json")
        write_targets(sd, {})
        with open(os.path.join(run, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: %ds\n  scrape_timeout: %ds\n"
                    "scrape_configs:\n  - job_name: onboard\n    file_sd_configs:\n"
                    "      - files: [%s]\n        refresh_interval: 1s\n" % (SCRAPE_S, SCRAPE_S, json.dumps(sd)))
        prom = subprocess.Popen(["prometheus", "--config.file=" + os.path.join(run, "prometheus.yml"),
                                 "--storage.tsdb.path=" + os.path.join(run, "tsdb"),
                                 "--web.listen-address=127.0.0.1:%d" % pport],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(run, "prometheus.log"), "w"))
        procs.append(prom)
        base = "http://127.0.0.1:%d" % pport
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/-/ready", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("dashboard: Prometheus did not start; see %s" % run)
        log("Prometheus on %s" % base)

        bench = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "fleet_bench.py"),
                                  "--accounts", str(args.accounts), "--profile", args.profile,
                                  "--build", args.build, "--json", os.path.join(run, "bench.json")])
        procs.append(bench)
        targets, lag_started = {}, False
        while bench.poll() is None:
            for pid, env in children_env(bench.pid).items():
                stage = os.path.basename(env["__cmd"]).replace("onboard-", "")
                if stage in STAGES and stage not in targets and env.get("OB_METRICS_PORT"):
                    targets[stage] = int(env["OB_METRICS_PORT"])
                    if not lag_started:
                        lport = free_port()
                        lenv = dict(os.environ, OB_KAFKA_BOOTSTRAP_SERVERS=env["OB_KAFKA_BOOTSTRAP_SERVERS"],
                                    OB_TOPIC_PREFIX=env.get("OB_TOPIC_PREFIX", ""), OB_METRICS_PORT=str(lport),
                                    OB_METRICS_BIND="127.0.0.1", OB_LAG_INTERVAL="1s",
                                    OB_LAG_CLUSTER_NAME="bench", OB_LOG_LEVEL="warn")
                        procs.append(subprocess.Popen([lagx], env=lenv, stdout=subprocess.DEVNULL,
                                                      stderr=open(os.path.join(run, "lag-exporter.log"), "w")))
                        targets["lag-exporter"] = lport
                        lag_started = True
                    write_targets(sd, targets)
                    log("scraping %s" % ", ".join("%s :%d" % kv for kv in sorted(targets.items())))
            time.sleep(0.05)
        if bench.returncode != 0:
            sys.exit("dashboard: the benchmark failed (%d)" % bench.returncode)
        lagp = procs[2] if len(procs) > 2 else None
        if lagp is not None and lagp.poll() is not None:
            with open(os.path.join(run, "lag-exporter.log")) as f:
                tail = f.read().splitlines()[-3:]
            log("onboard-lag-exporter exited during the run (status %d): its panels will be empty; "
                "its log ends:\n  %s" % (lagp.returncode, "\n  ".join(tail)))
        if len(targets) < len(STAGES) + 1:
            sys.exit("dashboard: found only %s among the benchmark's processes" % sorted(targets))
        with open(os.path.join(run, "bench.json")) as f:
            bres = json.load(f)

        # The run, as Prometheus saw it.
        end = time.time()
        data = prom_get(base, "/api/v1/query_range", {"query": "up", "start": end - 600, "end": end, "step": "1"})
        start = min(float(s["values"][0][0]) for s in data["result"]) if data["result"] else end - 60
        log("querying %.0f s of data" % (end - start))
        failed, results = [], {}
        print("%-36s %-7s %s" % ("panel", "series", "query"))
        for p in panels(dash):
            for t in p["targets"]:
                expr = substitute(t["expr"], end - start)
                if t.get("instant"):
                    res = prom_get(base, "/api/v1/query", {"query": expr, "time": end})["result"]
                else:
                    res = prom_get(base, "/api/v1/query_range",
                                   {"query": expr, "start": start, "end": end, "step": "1"})["result"]
                    results.setdefault(p["title"], []).extend(
                        {"legend": legend(t.get("legendFormat", ""), s["metric"]), "values": s["values"]}
                        for s in res)
                print("%-36s %-7d %s" % (p["title"][:36], len(res), expr))
                if not res:
                    failed.append("%s: %s" % (p["title"], expr))
        if not args.no_png:
            os.makedirs(os.path.dirname(os.path.abspath(args.png)), exist_ok=True)
            draw(args.png, results, "%s: %d accounts, profile %s, %.1f s, %.0f accounts/s (Prometheus, 1 s scrapes)"
                 % (dash["title"], bres["accounts"], bres["profile"], bres["wall_s"], bres["accounts_per_s"] or 0))
            log("drew %s" % args.png)
        if failed:
            print("dashboard: %d queries returned no series:\n  %s" % (len(failed), "\n  ".join(failed)))
            return 1
        print("dashboard: every query of %d panels returned series" % len(panels(dash)))
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        if os.environ.get("OB_DASHBOARD_KEEP"):
            log("kept %s" % run)
        else:
            shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
