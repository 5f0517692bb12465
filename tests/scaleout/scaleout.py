#!/usr/bin/env python3
"""The scale-out run: the fleet as deployed, replicas added, rolled and killed mid-batch.

Starts a real Kafka broker (topics with --partitions partitions) and Redis
(scripts/services.sh), the AWS simulator (aws-typical latencies scaled by
--scale), and the four workers as separate processes, enqueues --accounts new
accounts with onboardctl, and while they onboard runs one scenario on the
replicas:

  baseline  one replica per stage, nothing happens
  scale     the iam stage scaled 1 -> 4 (a quarter into the batch), then 4 -> 2
            (graceful stops), then one of the two SIGKILLed
  roll      two replicas per stage, every stage rolled as a Deployment does it
            (maxSurge 1, maxUnavailable 0: a new pod, ready, then an old one
            stopped with SIGTERM, one at a time), all stages at once
  roll-static  two replicas per stage with stable instance ids (a StatefulSet:
            instance.id is the pod's name), every stage rolled as a StatefulSet
            does it (highest ordinal first: the pod stopped with SIGTERM, then
            started again under the same name), all stages at once
  kill-static  as kill, with stable instance ids: the SIGKILLed pod comes back
            under its own name (a StatefulSet's pod is recreated so)
  kill      two replicas per stage, one replica of every stage SIGKILLed and
            a new one started in its place
  autoscale every stage from one replica, scaled by KEDA's formula as the chart
            sets it up: desired = max(ceil(lag / lagThreshold),
            ceil(backlog / backlog threshold)) from the replicas' own metrics
            (onboard_partition_lag, onboard_backlog_messages), between
            1 and 4, up at once, down one replica at a time after a
            stabilization window (the chart's 30 s polling, 600 s window and
            120 s period, scaled down to 1 s, 4 s and 1 s); both thresholds
            are the stage's inflight.max (250, 100, 250, 30: every stage in
            turn gets more than one replica can start). Every stage must reach
            4 replicas and be back at 1 at the end
  redis     two replicas per stage on Redis as a managed service runs it (TLS,
            a primary, a replica and a Sentinel, the workers finding the
            primary through the Sentinel): the primary SIGKILLed mid-batch, the
            replica promoted, the old primary back as a replica
  broker    two replicas per stage on a cluster of three brokers (replication
            factor 3, min.insync.replicas 2): one broker SIGKILLed mid-batch
            and started again later (with --brokers 3; the other scenarios run
            on one broker, or on the cluster with --brokers 3)

It waits until every account is connected or dead-lettered and the lag of
every group is back to zero, stops the workers, and checks what an operator
and the Billing Engine would see:

  - every account connected exactly once on onboard.connected, read as a
    read_committed consumer, and not one raw duplicate on any hand-off topic
    (onboard.cur, onboard.iam, onboard.connect);
  - AWS requests per account (the simulator's count), to compare with the
    baseline of the same batch;
  - in-flight jobs the workers handed back (revoked partitions, shutdowns),
    from their logs;
  - the longest pause between two consecutive outputs of one partition of a
    hand-off topic: how long a stage left a partition idle mid-batch (a dead
    member waited out, a transaction left open).

A replica that exits with an error status (a transactional producer that
cannot go on) is replaced, as Kubernetes restarts a container, and listed;
one killed by a signal (a crash) fails the run.

Prints one table row per scenario, and JSON with --json. Exit 1 when a check
fails: a duplicate, an account missing, lag left over, a crash, or (with
--max-request-ratio) AWS requests per account above that multiple of the
baseline's.

  tests/scaleout/scaleout.py [--scenario baseline,scale,roll,kill,autoscale] [--accounts 2000]
                             [--partitions 12] [--scale 0.2] [--build build]
                             [--json out.json] [--summary FILE] [--max-request-ratio 1.05]
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from fleet_bench import (create_topics, end_offsets, fleet_env, http_json, org_size, sh,  # noqa: E402
                         write_requests)

STAGES = ["bucket", "cur", "iam", "connect"]
HANDOFF = {"cur": "bucket", "iam": "cur", "connect": "iam", "connected": "connect"}


def log(msg):
    print("scaleout: " + msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def topic_keys(brokers, topic):
    """Every message's key, as a read_committed consumer sees the topic."""
    out = subprocess.run(["kcat", "-C", "-b", brokers, "-t", topic, "-e", "-q", "-f", "%k\n",
                          "-X", "isolation.level=read_committed"],
                         capture_output=True, text=True, timeout=300)
    return [l for l in out.stdout.split("\n") if l]


def longest_pause(brokers, topic):
    """The longest time between two consecutive outputs in one partition of a
    topic (by their timestamps, the producing worker's clock): how long a stage
    left a partition idle mid-batch."""
    out = subprocess.run(["kcat", "-C", "-b", brokers, "-t", topic, "-e", "-q", "-f", "%p %T\n",
                          "-X", "isolation.level=read_committed"],
                         capture_output=True, text=True, timeout=300)
    times = {}
    for line in out.stdout.split("\n"):
        if line.strip():
            p, t = line.split()
            times.setdefault(p, []).append(int(t))
    worst = 0
    for ts in times.values():
        ts.sort()
        worst = max([worst] + [b - a for a, b in zip(ts, ts[1:])])
    return worst / 1000.0


class Fleet:
    """The worker replicas of one run: started, stopped and killed by name."""

    def __init__(self, bins, env, run):
        self.bins, self.env, self.run = bins, env, run
        self.procs = {s: [] for s in STAGES}  # stage -> [(name, Popen, metrics port)]
        self.serial = 0
        self.lock = threading.Lock()
        self.events = []
        self.stage_env = {}  # stage -> extra settings
        self.died = []  # replicas that crashed
        self.restarted = []  # replicas that exited with an error and were replaced

    def note(self, what):
        self.events.append((time.time(), what))
        log(what)

    def start(self, stage, wait_ready=False, instance=None):
        with self.lock:
            self.serial += 1
            name = "%s-%d" % (stage, self.serial)
        port = free_port()
        env = dict(self.env, OB_METRICS_PORT=str(port), **self.stage_env.get(stage, {}))
        if instance:
            env["OB_INSTANCE_ID"] = instance
        p = subprocess.Popen([self.bins[stage]], env=env, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(self.run, name + ".log"), "w"))
        with self.lock:
            self.procs[stage].append((name, p, port))
        self.note("started %s" % name)
        if wait_ready:
            self.wait_ready(name, p, port)
        return name

    def wait_ready(self, name, p, port, timeout=30.0):
        end = time.time() + timeout
        while time.time() < end and p.poll() is None:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=2) as r:
                    if r.status == 200:
                        self.note("%s ready" % name)
                        return True
            except Exception:
                pass
            time.sleep(0.1)
        self.note("%s not ready after %.0f s" % (name, timeout))
        return False

    def stop(self, stage, idx=0, sig=signal.SIGTERM, wait=True):
        with self.lock:
            name, p, _ = self.procs[stage].pop(idx)
        p.send_signal(sig)
        self.note("%s %s" % ("SIGKILLed" if sig == signal.SIGKILL else "stopping", name))
        if wait:
            p.wait(timeout=60)
            self.note("%s exited (%s)" % (name, p.returncode))

    def alive(self):
        return {s: len(v) for s, v in self.procs.items()}

    def reap(self):
        """Replicas that exited on their own, taken off the list. One that
        exited with an error (a transactional producer that cannot go on, as
        after a broker's death mid-commit) is replaced, as Kubernetes restarts
        a container; one killed by a signal (a crash) is a failure."""
        gone = []
        with self.lock:
            for s, v in self.procs.items():
                for entry in list(v):
                    name, p, _ = entry
                    if p.poll() is not None:
                        v.remove(entry)
                        gone.append((s, name, p.returncode))
        for s, name, rc in gone:
            log("%s exited on its own (%d); see %s/%s.log" % (name, rc, self.run, name))
            # The run's directory goes at the end: its last words now.
            try:
                with open(os.path.join(self.run, name + ".log"), errors="replace") as f:
                    for line in f.readlines()[-25:]:
                        log("  %s| %s" % (name, line.rstrip()[:400]))
            except OSError:
                pass
            if rc > 0:
                self.restarted.append(name)
                self.start(s)
            else:
                self.died.append("%s (signal %d)" % (name, -rc))

    def stop_all(self):
        for v in self.procs.values():
            for _, p, _ in v:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
        for v in self.procs.values():
            for _, p, _ in v:
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
        for s in STAGES:
            self.procs[s] = []

    def handed_back(self):
        """In-flight jobs the replicas gave up (revocations and shutdowns), from their logs."""
        total = 0
        for f in os.listdir(self.run):
            if not re.match(r"(bucket|cur|iam|connect)-\d+\.log$", f):
                continue
            for line in open(os.path.join(self.run, f), errors="replace"):
                m = re.search(r"revoked partitions: (\d+) messages handed back", line)
                if m:
                    total += int(m.group(1))
                m = re.search(r"stopped: \d+ done, \d+ dead letters, (\d+) handed back", line)
                if m:
                    total += int(m.group(1))
        return total


# Each stage's in-flight window, and both thresholds equal to it (the chart's
# lagThreshold is inflight.max): smaller windows downstream, so that every stage
# in turn receives more than one replica can start, as happens when a stage's
# calls are slower than the one before it.
AUTOSCALE = {"window": {"bucket": 250, "cur": 100, "iam": 250, "connect": 30}, "min": 1, "max": 4,
             "poll_s": 1.0, "down_window_s": 4.0, "down_period_s": 1.0}


def stage_metrics(fleet, stage):
    """The stage's lag and backlog: the sums over its replicas' /metrics, as
    Prometheus would sum them."""
    lag = backlog = 0
    with fleet.lock:
        ports = [port for _, _, port in fleet.procs[stage]]
    for port in ports:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2) as r:
                text = r.read().decode()
        except Exception:
            continue
        for line in text.splitlines():
            if line.startswith("onboard_partition_lag{"):
                lag += float(line.rsplit(" ", 1)[1])
            elif line.startswith("onboard_backlog_messages{"):
                backlog += float(line.rsplit(" ", 1)[1])
    return lag, backlog


def autoscale(fleet, finished, timeline):
    """KEDA and the HPA, on the chart's settings (time scaled down): every
    poll, desired = max over the triggers of ceil(metric / threshold), within
    [min, max]; up at once, down by one replica per period once the highest
    recommendation of the stabilization window allows it."""
    a = AUTOSCALE
    recs = {s: [] for s in STAGES}  # (time, desired)
    last_down = {s: 0.0 for s in STAGES}
    while True:
        now = time.time()
        for s in STAGES:
            lag, backlog = stage_metrics(fleet, s)
            th = a["window"][s]
            want = max(-(-int(lag) // th), -(-int(backlog) // th))
            want = min(a["max"], max(a["min"], want))
            recs[s] = [(t, d) for t, d in recs[s] if t >= now - a["down_window_s"]] + [(now, want)]
            have = fleet.alive()[s]
            if want > have:
                for _ in range(want - have):
                    fleet.start(s)
                timeline[s].append(want)
            elif have > a["min"] and now - last_down[s] >= a["down_period_s"]:
                stable = max(d for _, d in recs[s])
                if stable < have:
                    last_down[s] = now
                    threading.Thread(target=fleet.stop, args=(s, -1)).start()
                    timeline[s].append(have - 1)
        if finished.is_set() and all(fleet.alive()[s] == a["min"] for s in STAGES):
            return
        time.sleep(a["poll_s"])


def every_stage(fn):
    """fn(stage) for the four stages at once, as a rollout of every Deployment does."""
    threads = [threading.Thread(target=fn, args=(s,)) for s in STAGES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def scenario_actions(name, fleet, batch_s, services=None, run=None, finished=None, timeline=None):
    """The scenario's timeline, run in a thread while the batch goes on."""
    q = batch_s / 4.0
    if name == "autoscale":
        autoscale(fleet, finished, timeline)
    elif name == "scale":
        time.sleep(q)
        threads = [threading.Thread(target=fleet.start, args=("iam",)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(q)
        fleet.stop("iam", 0)
        fleet.stop("iam", 0)
        time.sleep(q / 2)
        fleet.stop("iam", random.randrange(2), signal.SIGKILL, wait=False)
    elif name == "roll":
        time.sleep(q)

        def roll(stage):
            for _ in range(2):
                fleet.start(stage, wait_ready=True)
                fleet.stop(stage, 0)
        every_stage(roll)
    elif name == "roll-static":
        time.sleep(q)

        def roll_static(stage):
            for ordinal in (1, 0):
                fleet.stop(stage, ordinal)
                fleet.start(stage, wait_ready=True, instance="%s-%d" % (stage, ordinal))
                # The restarted pod goes back to its place in the list.
                with fleet.lock:
                    fleet.procs[stage].insert(ordinal, fleet.procs[stage].pop())
        every_stage(roll_static)
    elif name == "kill-static":
        time.sleep(q)
        for s in STAGES:
            ordinal = random.randrange(2)
            fleet.stop(s, ordinal, signal.SIGKILL, wait=False)
            fleet.start(s, instance="%s-%d" % (s, ordinal))
    elif name == "kill":
        time.sleep(q)
        for s in STAGES:
            fleet.stop(s, random.randrange(2), signal.SIGKILL, wait=False)
            fleet.start(s)
    elif name == "redis":
        time.sleep(q)
        fleet.note("SIGKILLing the Redis primary")
        sh([services, "failover-redis", run, "kill"])
        fleet.note("Redis failed over: the replica promoted, the old primary back as a replica")
    elif name == "broker":
        time.sleep(q)
        sh([services, "kill-broker", run, "2"])
        fleet.note("SIGKILLed broker 2")
        time.sleep(2 * q)
        sh([services, "start-broker", run, "2"])
        fleet.note("broker 2 back")


def run_scenario(name, args, bins, ctl, simbin, services):
    n = args.accounts
    run = tempfile.mkdtemp(prefix="onboard-scaleout.")
    sim = None
    fleet = None
    try:
        os.environ["OB_TEST_KAFKA_PARTITIONS"] = str(args.partitions)
        if name == "broker" and args.brokers != 3:
            sys.exit("scaleout: the broker scenario needs --brokers 3")
        sh([services, "start", run, "kafka_cluster" if args.brokers == 3 else "kafka",
            "redis_ha" if name == "redis" else "redis"])
        senv = dict(l.replace("export ", "", 1).split("=", 1)
                    for l in sh([services, "env", run]).splitlines() if l.startswith("export "))
        brokers = senv["OB_TEST_KAFKA_BROKERS"]
        rport = int(senv.get("OB_TEST_REDIS_PORT", "6379"))
        portfile = os.path.join(run, "sim.port")
        sim = subprocess.Popen([simbin, "--port-file", portfile, "--org-accounts", str(org_size(n)),
                                "--profile", "aws-typical", "--scale", str(args.scale)],
                               stdout=subprocess.DEVNULL, stderr=open(os.path.join(run, "sim.log"), "w"))
        for _ in range(200):
            if os.path.exists(portfile) and open(portfile).read().strip():
                break
            time.sleep(0.05)
        sim_url = "http://127.0.0.1:" + open(portfile).read().strip()
        prefix = "so%d%s." % (os.getpid(), name)
        env = fleet_env(sim_url, prefix, rport, brokers)
        env.update({"OB_LOG_LEVEL": "info", "OB_STACK_POLL": "1s"})
        if name == "redis":
            env.update({"OB_REDIS_SENTINELS": senv["OB_TEST_REDIS_HA_SENTINELS"],
                        "OB_REDIS_TLS": "true", "OB_REDIS_TLS_CA_FILE": senv["OB_TEST_REDIS_HA_CA"]})
        reqs = os.path.join(run, "requests.jsonl")
        write_requests(reqs, n, prefix)
        create_topics(brokers, prefix)
        fleet = Fleet(bins, env, run)
        if name == "autoscale":
            fleet.stage_env = {s: {"OB_INFLIGHT_MAX": str(w)} for s, w in AUTOSCALE["window"].items()}
        replicas = 1 if name in ("baseline", "scale", "autoscale") else 2
        for s in STAGES:
            for i in range(replicas):
                fleet.start(s, instance="%s-%d" % (s, i) if name.endswith("-static") else None)
        for s in STAGES:
            for nm, p, port in list(fleet.procs[s]):
                fleet.wait_ready(nm, p, port)
        t0 = time.time()
        subprocess.run([ctl, "enqueue", reqs, "--format", "jsonl"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finished = threading.Event()
        timeline = {s: [1] for s in STAGES}
        actions = threading.Thread(target=scenario_actions,
                                   args=(name, fleet, args.batch_s, services, run, finished, timeline))
        actions.start()
        while True:
            # End offsets count transaction markers too: only a hint, the
            # accounts themselves are counted once it may be enough.
            done = end_offsets(brokers, prefix + "connected") + end_offsets(brokers, prefix + "dlq")
            if done >= n:
                done = len(set(topic_keys(brokers, prefix + "connected")) |
                           set(topic_keys(brokers, prefix + "dlq")))
                if done >= n:
                    break
            if time.time() - t0 > args.timeout:
                break
            fleet.reap()
            time.sleep(0.5)
        wall = time.time() - t0
        # The autoscaler scales down on the lag, which reaches zero after the
        # last commit.
        finished.set()
        actions.join(timeout=args.timeout)
        replicas_end = fleet.alive()
        # Lag back to zero: every group committed up to the end of its topic.
        lag_ok = False
        lag_out = ""
        end = time.time() + 60
        while time.time() < end:
            r = subprocess.run([ctl, "lag", "--threshold", "0"], env=env, capture_output=True, text=True)
            lag_out = r.stdout
            if r.returncode == 0:
                lag_ok = True
                break
            time.sleep(0.5)
        fleet.stop_all()
        stats = http_json(sim_url + "/_sim/stats")
        keys = {t: topic_keys(brokers, prefix + t) for t in ("cur", "iam", "connect", "connected", "dlq")}
        connected = keys["connected"]
        dups = {t: len(v) - len(set(v)) for t, v in keys.items() if t != "dlq"}
        accounts = set(connected) | set(keys["dlq"])
        result = {
            "scenario": name, "accounts": n, "partitions": args.partitions, "scale": args.scale,
            "brokers": args.brokers,
            "wall_s": round(wall, 1),
            "aws_requests_per_account": round(stats.get("requests", 0) / n, 2),
            "aws_requests_per_account_by_api": {
                k: round(v / n, 2) for k, v in sorted((stats.get("counts") or {}).items())
                if isinstance(v, (int, float)) and v},
            "connected_raw": len(connected), "connected_accounts": len(set(connected)),
            "dead_letters": len(keys["dlq"]),
            "accounts_missing": n - len(accounts),
            "raw_duplicates": dups,
            "handed_back": fleet.handed_back(),
            "died": fleet.died,
            "restarted": fleet.restarted,
            # The stage that produces each topic, and its longest pause.
            "longest_pause_s": {stage: longest_pause(brokers, prefix + t) for t, stage in (
                ("cur", "bucket"), ("iam", "cur"), ("connect", "iam"), ("connected", "connect"))},
            "lag_zero": lag_ok,
            "events": [(round(t - t0, 1), w) for t, w in fleet.events if t >= t0],
        }
        if name == "autoscale":
            result["replicas"] = {s: " > ".join(str(x) for x in v) for s, v in timeline.items()}
            result["replicas_peak"] = {s: max(v) for s, v in timeline.items()}
            result["replicas_end"] = replicas_end
        if not lag_ok:
            result["lag_left"] = lag_out[-2000:]
        return result
    finally:
        if fleet:
            fleet.stop_all()
        if sim:
            sim.terminate()
        subprocess.run([services, "stop", run], capture_output=True)
        if os.environ.get("OB_SCALEOUT_KEEP"):
            log("kept %s" % run)
        else:
            shutil.rmtree(run, ignore_errors=True)


def table(results):
    lines = ["| scenario | wall | AWS requests per account | raw connected events / accounts "
             "| raw duplicates on hand-off topics | in-flight jobs handed back "
             "| longest partition pause | lag back to zero |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        hand = sum(v for t, v in r["raw_duplicates"].items() if t != "connected")
        stage, pause = max(r["longest_pause_s"].items(), key=lambda kv: kv[1])
        lines.append("| %s | %.1f s | %.2f | %d / %d | %d | %d | %.1f s (%s) | %s |" % (
            r["scenario"], r["wall_s"], r["aws_requests_per_account"], r["connected_raw"],
            r["accounts"], hand, r["handed_back"], pause, stage, "yes" if r["lag_zero"] else "NO"))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="baseline,scale,roll,kill")
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--brokers", type=int, default=1, choices=[1, 3])
    ap.add_argument("--batch-s", type=float, default=14.0,
                    help="how long the baseline batch takes: the scenarios act at fractions of it")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--json")
    ap.add_argument("--summary", help="append the table to this file")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--max-request-ratio", type=float,
                    help="fail when a scenario's AWS requests per account exceed this multiple of the baseline's")
    args = ap.parse_args()
    bins = {s: os.path.join(args.build, "workers", "onboard-" + s) for s in STAGES}
    ctl = os.path.join(args.build, "tools", "onboardctl")
    simbin = os.path.join(args.build, "sim", "awssim")
    for p in list(bins.values()) + [ctl, simbin]:
        if not os.access(p, os.X_OK):
            sys.exit("scaleout: %s is missing: build first" % p)
    for tool in ("kcat", "redis-cli", "java", "mvn"):
        if not shutil.which(tool):
            if os.environ.get("OB_TEST_REQUIRE_SERVICES") == "1":
                sys.exit("scaleout: %s is missing (scripts/deps.sh installs it)" % tool)
            print("scaleout: SKIPPED: %s is missing (scripts/deps.sh installs it)" % tool)
            return 77
    services = os.path.join(ROOT, "scripts", "services.sh")
    results = []
    for name in args.scenario.split(","):
        log("scenario %s: %d accounts, %d partitions, aws-typical x %g" %
            (name, args.accounts, args.partitions, args.scale))
        results.append(run_scenario(name, args, bins, ctl, simbin, services))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "events"}), flush=True)
    print(table(results), end="")
    if args.summary:
        with open(args.summary, "a") as f:
            f.write("scale-out run (%d accounts, %d partitions, aws-typical x %g):\n%s" % (
                args.accounts, args.partitions, args.scale, table(results)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    bad = []
    base = next((r for r in results if r["scenario"] == "baseline"), None)
    for r in results:
        if r["accounts_missing"]:
            bad.append("%s: %d accounts neither connected nor dead-lettered" % (r["scenario"], r["accounts_missing"]))
        for t, d in r["raw_duplicates"].items():
            if d:
                bad.append("%s: %d raw duplicates on %s" % (r["scenario"], d, t))
        if not r["lag_zero"]:
            bad.append("%s: lag not back to zero" % r["scenario"])
        if r["died"]:
            bad.append("%s: replicas exited on their own: %s" % (r["scenario"], ", ".join(r["died"])))
        for s, peak in r.get("replicas_peak", {}).items():
            if peak != AUTOSCALE["max"] or r["replicas_end"][s] != AUTOSCALE["min"]:
                bad.append("%s: %s went %s (want 1 up to %d and back to 1)" % (
                    r["scenario"], s, r["replicas"][s], AUTOSCALE["max"]))
        if base and args.max_request_ratio and r is not base and \
                r["aws_requests_per_account"] > base["aws_requests_per_account"] * args.max_request_ratio:
            bad.append("%s: %.2f AWS requests per account, over %.2f x the baseline's %.2f" % (
                r["scenario"], r["aws_requests_per_account"], args.max_request_ratio,
                base["aws_requests_per_account"]))
    for b in bad:
        print("scaleout: FAILED: " + b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
