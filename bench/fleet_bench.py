#!/usr/bin/env python3
"""The fleet benchmark: N accounts through the four workers, end to end.

Starts a real Kafka broker and Redis (scripts/services.sh), the AWS simulator
with a latency profile, one replica of each worker (separate processes, as
deployed), enqueues N new accounts with onboardctl, waits until every one is
connected, and prints:

  - wall time, accounts per second, and the critical path of one account under
    the profile (its sequential AWS latencies plus the stack delay, from the
    simulator's own latency table and the calls one account really made) with
    the ratio of wall time to it;
  - p50/p90/p99/max end-to-end latency per account (request produced ->
    connected event produced, both Kafka timestamps);
  - CPU seconds and peak RSS per worker (from /proc, before they stop), its RSS
    at rest (before the first account) and what the difference comes to per
    account it had in flight at most (its onboard_inflight gauge, read from
    /metrics on a port of its own);
  - AWS requests, Redis commands and Kafka messages per account.

As a table, and as JSON (--json FILE) so two runs compare (--compare OLD.json).
With gnuplot installed, --plot FILE.png draws accounts connected over time.

  bench/fleet_bench.py [--accounts 10000] [--profile instant|aws-typical|aws-quotas]
                       [--quotas aws|none] [--cold-org] [--no-session-keys]
                       [--scale 1.0] [--build build] [--json out.json]
                       [--plot out.png] [--compare old.json] [--max-cpu-ms X]
                       [--min-rate X]

The batch is enqueued once the bucket worker's standing snapshot of the
organization is listed, as it finds a fleet that has been running;
--cold-org enqueues it at once (a fleet started with its batch).

--max-cpu-ms and --min-rate turn figures into a pass/fail (exit 1) for CI's
gross-regression check; without them nothing is asserted.
"""
import argparse
import base64
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ["bucket", "cur", "iam", "connect"]
# Commands the workers run only inside their Lua scripts (locks, fenced state,
# rate limits): Redis counts them besides the EVAL that ran them.
SCRIPT_INNER = {"set", "get", "del", "incr", "hget", "hmget", "hset", "hgetall", "pexpire",
                "pttl", "time", "exists", "expire", "hincrby", "hdel", "lpush", "ltrim", "hkeys"}
MGMT_KEY = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def kcat_lines(brokers, topic, fmt):
    """Every message of a topic, formatted by kcat (-f), as lines."""
    out = subprocess.run(["kcat", "-C", "-b", brokers, "-t", topic, "-e", "-q", "-f", fmt],
                         capture_output=True, text=True, timeout=300)
    return [l for l in out.stdout.split("\n") if l]


def end_offsets(brokers, topic):
    """Messages in a topic so far (the sum of its partitions' end offsets): a
    cheap progress count that does not make the broker read the topic."""
    meta = subprocess.run(["kcat", "-b", brokers, "-L", "-t", topic], capture_output=True,
                          text=True, timeout=60).stdout
    parts = [l.split()[1].rstrip(":") for l in meta.splitlines() if l.strip().startswith("partition ")]
    if not parts:
        return 0
    args = ["kcat", "-b", brokers, "-Q"]
    for p in parts:
        args += ["-t", "%s:%s:-1" % (topic, p)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60).stdout
    return sum(int(l.rsplit(" ", 1)[1]) for l in out.splitlines() if " offset " in l)


def fleet_env(sim_url, prefix, redis_port, brokers):
    """The workers' environment against the simulator, Redis and the broker."""
    env = dict(os.environ)
    env.update({
        "AWS_ENDPOINT_URL": sim_url, "AWS_ACCESS_KEY_ID": MGMT_KEY[0],
        "AWS_SECRET_ACCESS_KEY": MGMT_KEY[1], "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "OB_TOPIC_PREFIX": prefix, "OB_REDIS_PORT": str(redis_port),
        "OB_KAFKA_BOOTSTRAP_SERVERS": brokers,
        "OB_BILLING_PRINCIPAL": "arn:aws:iam::111111111111:root",
        # The simulator has no STS quota unless asked (--quotas): then the
        # fleet's own limits are set from them (quota_limits).
        "OB_AWS_RATE_LIMITS": "",
        # One AssumeRole serves an account's stages: the session is sealed
        # for the next stage under this run's key.
        "OB_SESSION_KEYS": "bench:" + base64.b64encode(os.urandom(32)).decode(),
    })
    return env


def quota_limits(quotas, fraction=0.95):
    """aws.rate.limits for the services the fleet calls as itself (STS,
    Organizations), at a fraction of the simulator's quotas: one service-wide
    rate each (SERVICE.*), as AWS's quota is, so the fleet-wide limiter keeps
    the fleet under the quota instead of finding it by being throttled."""
    out = []
    for rule in ("sts.*", "organizations.*"):
        q = quotas.get(rule)
        if q:
            out.append("%s=%g/%d" % (rule, q["rate"] * fraction, max(1, int(q["burst"] * fraction))))
    return ",".join(out)


def quota_ceiling(quotas, mgmt_counts, n):
    """Accounts a second the quotas allow: a rule whose bucket the fleet's own
    identity fills (STS per caller account and Region, Organizations per
    account) allows rate / (its calls per account); rules per target account
    do not bound a batch of distinct accounts. Returns (ceiling, binding
    rule, {rule: accounts/s})."""
    per_rule = {}
    for api, k in mgmt_counts.items():
        svc = api.split(".")[0]
        rule = api if api in quotas else (svc + ".*" if svc + ".*" in quotas else None)
        if rule:
            per_rule[rule] = per_rule.get(rule, 0) + k
    bounds = {r: quotas[r]["rate"] / (k / float(n)) for r, k in per_rule.items() if k}
    if not bounds:
        return None, None, {}
    r = min(bounds, key=bounds.get)
    return bounds[r], r, bounds


def minus(after, before):
    """Counts by name, after less before (those that grew)."""
    before = before or {}
    return {k: v - before.get(k, 0) for k, v in (after or {}).items() if v - before.get(k, 0) > 0}


def members(n):
    """The simulator's first n ACTIVE members (every 50th is SUSPENDED, and the
    intake refuses those)."""
    return [i for i in range(1, n + n // 49 + 2) if i % 50][:n]


def org_size(n):
    """--org-accounts for a run of n accounts."""
    return n + n // 49 + 10


def write_requests(path, n, prefix):
    """n new accounts as JSON lines for onboardctl enqueue."""
    with open(path, "w") as f:
        for i in members(n):
            a = "%012d" % (200000000000 + i)
            f.write(json.dumps({"account_id": a, "mode": "new", "region": "us-east-1",
                                "role_arn": "arn:aws:iam::%s:role/OrganizationAccountAccessRole" % a,
                                "request_id": "%sr%d" % (prefix, i)}) + "\n")


def create_topics(brokers, prefix):
    """The topics exist before the workers start, as in a deployment
    (deploy/create-topics.sh): a consumer subscribed to a topic that does not
    exist yet only finds it at its next metadata refresh, seconds later, which
    would be measured as the fleet's time. The test broker creates a topic
    when its metadata is asked for."""
    for t in ("requests", "cur", "iam", "connect", "connected", "dlq"):
        for _ in range(50):
            meta = subprocess.run(["kcat", "-b", brokers, "-L", "-t", prefix + t],
                                  capture_output=True, text=True, timeout=60).stdout
            if " partition 0," in meta:
                break
            time.sleep(0.2)
    # A fresh broker hands out its first idempotent producer id slowly (about
    # half a second, once): a deployment's broker has done so long before.
    # One idempotent message to a topic of its own, so that this is not
    # counted in the first request's latency.
    subprocess.run(["kcat", "-P", "-b", brokers, "-t", prefix + "warmup", "-X", "enable.idempotence=true"],
                   input="warm-up\n", capture_output=True, text=True, timeout=60)


def http_json(url, method="GET", body=None):
    import urllib.request
    req = urllib.request.Request(url, method=method, data=body.encode() if body else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read().decode())


def proc_figures(pid):
    """(cpu seconds, peak RSS MiB) of a live process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024.0
    return cpu, hwm


def worker_figures(cpu, peak, rest, most):
    """A worker's CPU, peak RSS, RSS at rest, and what the difference is per account it had
    in flight at most."""
    w = {"cpu_s": round(cpu, 2), "peak_rss_mib": round(peak, 1), "rest_rss_mib": round(rest, 1),
         "most_in_flight": most}
    if most > 0:
        w["bytes_per_account_in_flight"] = round((peak - rest) * 1048576.0 / most)
    return w


def rss_now(pid):
    """Resident memory of a live process now, MiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def free_port():
    import socket
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


class InflightWatch:
    """The most accounts each worker had in flight (its onboard_inflight gauge, read from
    /metrics four times a second on a thread of its own), and the transactions it
    committed (the last reading of onboard_transactions_total{outcome="committed"})."""

    def __init__(self, ports):
        import threading
        self.ports, self.most, self.stop = ports, {s: 0 for s in ports}, threading.Event()
        self.commits = {s: 0 for s in ports}
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        import urllib.request
        while not self.stop.wait(0.25):
            for s, port in self.ports.items():
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=1) as r:
                        for line in r.read().decode().splitlines():
                            if line.startswith("onboard_inflight"):
                                self.most[s] = max(self.most[s], int(float(line.split()[-1])))
                            elif line.startswith("onboard_transactions_total") and 'outcome="committed"' in line:
                                self.commits[s] = int(float(line.split()[-1]))
                except OSError:
                    pass

    def done(self):
        self.stop.set()
        self.thread.join()
        return self.most


def metric_value(port, name):
    """A worker's unlabelled sample of a metric (None: not served)."""
    import urllib.request
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=1) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
    except OSError:
        pass
    return None


def redis_calls(port):
    """Calls per Redis command so far."""
    calls = {}
    for line in sh(["redis-cli", "-p", str(port), "INFO", "commandstats"]).splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            for kv in rest.split(","):
                k, v = kv.split("=")
                if k == "calls":
                    calls[name] = int(v)
    return calls


def range_ms(spec):
    """'40ms-90ms' -> (40.0, 90.0); '300ms' -> (300.0, 300.0)."""
    def one(x):
        x = x.strip()
        if x.endswith("ms"):
            return float(x[:-2])
        if x.endswith("s"):
            return float(x[:-1]) * 1000
        return float(x)
    parts = [one(p) for p in spec.split("-")]
    return parts[0], parts[-1]


def mean_ms(spec):
    """'40ms-90ms' / '25s-40s' / '300ms' -> mean milliseconds."""
    lo, hi = range_ms(spec)
    return (lo + hi) / 2.0


def latency_of(rules, api, scale):
    """The simulator's mean latency for an API: exact rule, then service.*, then *."""
    svc = api.split(".")[0]
    for key in (api, svc + ".*", "*"):
        if key in rules:
            return mean_ms(rules[key]) * scale
    return 0.0


def critical_path(rules, scale, counts):
    """The sequential latency of one account: every call it made (stack polls
    beyond the first and last excluded: they overlap the stack's own delay),
    plus the stack creation."""
    total = 0.0
    for api, n in counts.items():
        if api == "cloudformation.DescribeStacks":
            n = min(n, 2)
        total += n * latency_of(rules, api, scale)
    total += latency_of(rules, "cloudformation.stack_create", scale)
    return total / 1000.0


def rule_of(rules, api):
    svc = api.split(".")[0]
    for key in (api, svc + ".*", "*"):
        if key in rules:
            return rules[key]
    return None


def batch_critical_path(rules, scale, counts, n, extra_sts, trials=5, extra_org=1):
    """The slowest of n accounts if the fleet added nothing: each account
    draws its calls' latencies (uniform over the simulator's ranges, as the
    simulator does) and its stack delay; the batch cannot finish before the
    slowest one. The mean of a few trials, in seconds."""
    import random
    rnd = random.Random(7)
    calls = []
    for api, k in counts.items():
        if api == "cloudformation.DescribeStacks":
            k = min(k, 2)
        spec = rule_of(rules, api)
        if spec:
            calls += [range_ms(spec)] * k
    spec = rule_of(rules, "sts.AssumeRole")
    if spec:
        calls += [range_ms(spec)] * extra_sts
    # The intake's Organizations DescribeAccount, made as the fleet.
    spec = rule_of(rules, "organizations.DescribeAccount")
    if spec:
        calls += [range_ms(spec)] * extra_org
    stack = rules.get("cloudformation.stack_create")
    if stack:
        calls.append(range_ms(stack))
    if not calls:
        return 0.0
    worst = []
    for _ in range(trials):
        m = 0.0
        for _ in range(n):
            t = sum(lo + rnd.random() * (hi - lo) for lo, hi in calls)
            m = max(m, t)
        worst.append(m)
    return statistics.mean(worst) * scale / 1000.0


def pct(xs, p):
    if not xs:
        return 0.0
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=10000)
    ap.add_argument("--profile", default="instant", choices=["instant", "aws-typical", "aws-quotas"])
    ap.add_argument("--quotas", choices=["aws", "none"], help="AWS's request quotas in the simulator "
                    "(aws-quotas has them; with instant, the quotas are the only limit)")
    ap.add_argument("--no-session-keys", action="store_true",
                    help="every stage assumes the account's role itself (no session.keys)")
    ap.add_argument("--cold-org", action="store_true",
                    help="enqueue at once, while the bucket worker's standing snapshot of the "
                         "organization is still being listed (a fleet started with its batch); by "
                         "default the batch waits for it, as it finds a fleet that has been running")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--json")
    ap.add_argument("--plot")
    ap.add_argument("--compare")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--max-cpu-ms", type=float, help="fail above this CPU ms per account (all workers)")
    ap.add_argument("--min-rate", type=float, help="fail below this many accounts per second")
    ap.add_argument("--wrap", action="append", default=[], metavar="STAGE=COMMAND",
                    help="run a worker under a profiler, e.g. 'iam=heaptrack -o /tmp/iam' or "
                         "'bucket=valgrind --tool=callgrind' (its figures then include the tool's)")
    args = ap.parse_args()
    n = args.accounts
    bins = {s: os.path.join(args.build, "workers", "onboard-" + s) for s in STAGES}
    ctl = os.path.join(args.build, "tools", "onboardctl")
    simbin = os.path.join(args.build, "sim", "awssim")
    for p in list(bins.values()) + [ctl, simbin]:
        if not os.access(p, os.X_OK):
            sys.exit("bench: %s is missing: build first (cmake -S . -B build && cmake --build build -j)" % p)
    for tool in ("kcat", "redis-cli"):
        if not shutil.which(tool):
            sys.exit("bench: %s is missing (scripts/deps.sh installs it)" % tool)

    run = tempfile.mkdtemp(prefix="onboard-bench.")
    procs = {}
    sim = None
    services = os.path.join(ROOT, "scripts", "services.sh")
    try:
        log("starting Kafka and Redis in %s" % run)
        sh([services, "start", run, "kafka", "redis"])
        env_lines = sh([services, "env", run])
        senv = dict(l.replace("export ", "", 1).split("=", 1) for l in env_lines.splitlines() if l.startswith("export "))
        brokers = senv["OB_TEST_KAFKA_BROKERS"]
        rport = int(senv["OB_TEST_REDIS_PORT"])
        portfile = os.path.join(run, "sim.port")
        simcmd = [simbin, "--port-file", portfile, "--org-accounts", str(org_size(n)),
                  "--profile", args.profile, "--scale", str(args.scale)]
        if args.quotas:
            simcmd += ["--quotas", args.quotas]
        sim = subprocess.Popen(simcmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(run, "sim.log"), "w"))
        for _ in range(200):
            if os.path.exists(portfile) and open(portfile).read().strip():
                break
            time.sleep(0.05)
        sim_url = "http://127.0.0.1:" + open(portfile).read().strip()
        prefix = "bench%d." % os.getpid()
        env = fleet_env(sim_url, prefix, rport, brokers)
        env.update({
            "OB_LOG_LEVEL": os.environ.get("OB_BENCH_LOG_LEVEL", "warn"),
            # Every account in flight at once: the window is not what is measured.
            "OB_INFLIGHT_MAX": str(max(n, 100)),
            "OB_STACK_POLL": "200ms" if args.profile == "instant" else "1s",
        })
        if args.no_session_keys:
            env["OB_SESSION_KEYS"] = ""
        quotas = http_json(sim_url + "/_sim/config").get("quotas") or {}
        if quotas:
            env["OB_AWS_RATE_LIMITS"] = quota_limits(quotas)
        redis_before = redis_calls(rport)
        reqs = os.path.join(run, "requests.jsonl")
        write_requests(reqs, n, prefix)
        create_topics(brokers, prefix)
        wraps = dict(w.split("=", 1) for w in args.wrap)
        ports = {s: free_port() for s in STAGES}
        for s in STAGES:
            wenv = dict(env, OB_METRICS_PORT=str(ports[s]), OB_METRICS_BIND="127.0.0.1")
            procs[s] = subprocess.Popen(wraps.get(s, "").split() + [bins[s]], env=wenv, stdout=subprocess.DEVNULL,
                                        stderr=open(os.path.join(run, s + ".log"), "w"))
        time.sleep(1.0)
        org_listing_s = None
        if not args.cold_org:
            # A running fleet keeps the organization listed (intake.organization.standing):
            # the batch comes once the bucket worker's snapshot is complete.
            t_org = time.time()
            while time.time() - t_org < 600:
                if metric_value(ports["bucket"], "onboard_org_snapshot_ready") == 1:
                    org_listing_s = round(time.time() - t_org + 1.0, 2)
                    break
                time.sleep(0.2)
            else:
                sys.exit("bench: the bucket worker's organization snapshot was not ready in 600 s")
            log("organization listed in %.1f s (before the batch)" % org_listing_s)
        # What each worker holds before the first account: the rest is what accounts in flight cost.
        at_rest = {s: rss_now(p.pid) for s, p in procs.items()}
        watch = InflightWatch(ports)
        log("enqueueing %d accounts (profile %s, scale %g)" % (n, args.profile, args.scale))
        # The neighbours sharing the cores: their CPU during the run, for where the time goes.
        others = {"kafka broker": int(open(os.path.join(run, "kafka", "pid")).read()),
                  "redis-server": int(open(os.path.join(run, "redis", "redis.pid")).read()),
                  "awssim": sim.pid}
        others_before = {k: proc_figures(v)[0] for k, v in others.items()}
        # What the fleet called before the batch (the standing listing): not the batch's.
        before_state = http_json(sim_url + "/_sim/state")
        before_stats = http_json(sim_url + "/_sim/stats")
        t0 = time.time()
        subprocess.run([ctl, "enqueue", reqs, "--format", "jsonl"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        done = 0
        samples = []
        while True:
            # Count cheaply while waiting; read the events only once there
            # may be enough of them (a redelivered event counts once).
            done = end_offsets(brokers, prefix + "connected")
            if done >= n:
                done = len(set(kcat_lines(brokers, prefix + "connected", "%k\n")))
            samples.append((time.time() - t0, done))
            if done >= n:
                break
            for s, p in procs.items():
                if p.poll() is not None:
                    sys.exit("bench: the %s worker exited (%d); see %s" % (s, p.returncode, run))
            if time.time() - t0 > args.timeout:
                sys.exit("bench: only %d of %d connected after %.0f s" % (done, n, args.timeout))
            log("%6.1fs %d of %d connected" % (time.time() - t0, done, n))
            time.sleep(2.0 if n > 2000 else 1.0)
        wall_poll = time.time() - t0
        figures = {s: proc_figures(p.pid) for s, p in procs.items()}
        most_inflight = watch.done()
        others_cpu = {k: proc_figures(v)[0] - others_before[k] for k, v in others.items()}
        redis_after = redis_calls(rport)

        # End-to-end latency: the request's and the event's Kafka timestamps.
        sent = {}
        for l in kcat_lines(brokers, prefix + "requests", "%k %T\n"):
            k, t = l.split()
            sent.setdefault(k, int(t))
        got = {}
        for l in kcat_lines(brokers, prefix + "connected", "%k %T\n"):
            k, t = l.split()
            got.setdefault(k, int(t))
        lat = [(got[k] - sent[k]) / 1000.0 for k in got if k in sent]
        first = min(sent.values())
        last = max(got.values())
        wall = (last - first) / 1000.0
        curve = sorted((t - first) / 1000.0 for t in got.values())

        msgs = 0
        # When each stage had handed on half and all of the batch (its output
        # topic's timestamps, from the first request): where a run waits.
        # Per account, the hand-off times per topic give each hop: from the
        # previous stage's output (the request, for bucket) to this stage's,
        # i.e. the previous stage's commit, this stage's fetch, lock and
        # calls.
        stage_out = {"bucket": "cur", "cur": "iam", "iam": "connect", "connect": "connected"}
        handed = {}
        at = {}
        for t in ("requests", "cur", "iam", "connect", "connected", "dlq"):
            lines = kcat_lines(brokers, prefix + t, "%k %T\n")
            msgs += len(lines)
            per = at.setdefault(t, {})
            for l in lines:
                k, ts = l.rsplit(" ", 1)
                per.setdefault(k, int(ts))
            for st, out in stage_out.items():
                if out == t and lines:
                    ts = sorted((int(x.rsplit(" ", 1)[1]) - first) / 1000.0 for x in lines)
                    handed[st] = {"first": round(ts[0], 2), "half": round(ts[len(ts) // 2], 2),
                                  "all": round(ts[-1], 2)}
        hops = {}
        prev = "requests"
        for st in STAGES:
            out = stage_out[st]
            d = [at[out][k] - at[prev][k] for k in at[out] if k in at[prev]]
            if d:
                hops[st] = {"p50": pct(d, 50), "p90": pct(d, 90), "p99": pct(d, 99), "max": max(d)}
            prev = out
        stats = http_json(sim_url + "/_sim/stats")
        cfg = http_json(sim_url + "/_sim/config")
        rules = cfg.get("latency", {}) or {}
        scale = float(cfg.get("scale", 1.0) or 1.0)
        state = http_json(sim_url + "/_sim/state")
        middle = members(n)[max(0, n // 2 - 1)]
        per_acct = state.get("counts_by_account", {}).get("%012d" % (200000000000 + middle), {})
        # The fleet's own calls count under the management account: AssumeRole
        # (the stages' sessions and the connect stage's check), and the
        # intake's Organizations DescribeAccount.
        counts = minus(state.get("counts", {}), before_state.get("counts", {}))
        mgmt = minus(state.get("counts_by_account", {}).get("111111111111", {}),
                     before_state.get("counts_by_account", {}).get("111111111111", {}))
        before_calls = sum((before_state.get("counts", {}) or {}).values())
        assume = counts.get("sts.AssumeRole", 0) / float(n)
        crit = critical_path(rules, scale, per_acct) + (
            round(assume) * latency_of(rules, "sts.AssumeRole", scale) +
            latency_of(rules, "organizations.DescribeAccount", scale)) / 1000.0
        batch_crit = batch_critical_path(rules, scale, per_acct, n, int(round(assume)))
        quotas = cfg.get("quotas") or {}
        ceiling, binding, bounds = quota_ceiling(quotas, mgmt, n) if quotas else (None, None, {})
        throttled = stats.get("throttled", {}) or {}
        cpu_total = sum(c for c, _ in figures.values())
        result = {
            "accounts": n, "profile": args.profile, "scale": args.scale,
            "machine": {"cpus": os.cpu_count(), "uname": " ".join(os.uname()[2:4])},
            "wall_s": round(wall, 2), "wall_poll_s": round(wall_poll, 2),
            "critical_path_s": round(crit, 2),
            "wall_over_critical_path": round(wall / crit, 2) if crit > 0 else None,
            "batch_critical_path_s": round(batch_crit, 2),
            "wall_over_batch_critical_path": round(wall / batch_crit, 2) if batch_crit > 0 else None,
            "accounts_per_s": round(n / wall, 1) if wall > 0 else None,
            "latency_s": {"p50": round(pct(lat, 50), 2), "p90": round(pct(lat, 90), 2),
                          "p99": round(pct(lat, 99), 2), "max": round(max(lat), 2) if lat else 0},
            "workers": {s: worker_figures(c, r, at_rest[s], most_inflight[s]) for s, (c, r) in figures.items()},
            "cpu_ms_per_account": round(cpu_total * 1000.0 / n, 3),
            "others_cpu_s": {k: round(v, 2) for k, v in others_cpu.items()},
            "aws_requests_per_account": round((stats.get("requests", 0) - before_stats.get("requests", 0)) / n, 2),
            "aws_requests_before_batch": before_calls,
            "aws_requests_one_account": per_acct,
            "redis_commands_per_account": round((sum(redis_after.values()) - sum(redis_before.values())) / n, 2),
            # Scripts (EVAL/EVALSHA) are one round trip each; the commands they run
            # inside are counted by Redis too, under their own names.
            "redis_round_trips_per_account": round(sum(
                redis_after.get(k, 0) - redis_before.get(k, 0)
                for k in redis_after if k not in SCRIPT_INNER) / n, 2),
            "redis_commands_by_name_per_account": {
                k: round((v - redis_before.get(k, 0)) / n, 2) for k, v in sorted(redis_after.items())
                if v - redis_before.get(k, 0) > 0},
            "kafka_messages_per_account": round(msgs / n, 2),
            "stage_handed_on_s": handed,
            "hop_ms": hops,
            "transactions_committed": dict(watch.commits),
            "assume_role_per_account": round(assume, 3),
            "aws_requests_per_account_by_api": {k: round(v / float(n), 3) for k, v in sorted(counts.items())},
            "throttled_by_api": throttled,
            "throttled_fraction": round(stats.get("throttled_total", 0) / float(max(1, stats.get("requests", 0))), 5),
            "quota_ceiling_accounts_per_s": round(ceiling, 1) if ceiling else None,
            "quota_binding_rule": binding,
            "quota_bounds_accounts_per_s": {k: round(v, 1) for k, v in bounds.items()},
            "throughput_over_ceiling": round((n / wall) / ceiling, 3) if ceiling and wall > 0 else None,
            "dead_letters": len(at.get("dlq", {})),
            # Seconds the standing organization snapshot took before the batch (None: --cold-org).
            "org_listed_before_s": org_listing_s,
        }
        print_table(result)
        if args.compare:
            compare(result, json.load(open(args.compare)))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2, sort_keys=True)
        if args.plot:
            plot(curve, args.plot, result)
        bad = []
        if args.max_cpu_ms is not None and result["cpu_ms_per_account"] > args.max_cpu_ms:
            bad.append("CPU %.3f ms per account > %.3f" % (result["cpu_ms_per_account"], args.max_cpu_ms))
        if args.min_rate is not None and (result["accounts_per_s"] or 0) < args.min_rate:
            bad.append("%.1f accounts/s < %.1f" % (result["accounts_per_s"] or 0, args.min_rate))
        if bad:
            print("bench: GROSS REGRESSION: " + "; ".join(bad))
            return 1
        return 0
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if sim:
            sim.terminate()
        subprocess.run([services, "stop", run], capture_output=True)
        if os.environ.get("OB_BENCH_KEEP"):
            log("kept %s" % run)
        else:
            shutil.rmtree(run, ignore_errors=True)


def print_table(r):
    print("%-34s %s" % ("accounts", r["accounts"]))
    print("%-34s %s x%g" % ("profile", r["profile"], r["scale"]))
    print("%-34s %.2f s" % ("wall time (first request to last event)", r["wall_s"]))
    print("%-34s %.2f s (wall / critical path = %s)" % ("critical path of one account", r["critical_path_s"], r["wall_over_critical_path"]))
    if r.get("batch_critical_path_s"):
        print("%-34s %.2f s (wall / it = %s)" % ("slowest of N, fleet adding nothing",
                                                  r["batch_critical_path_s"], r["wall_over_batch_critical_path"]))
    print("%-34s %s" % ("accounts per second", r["accounts_per_s"]))
    l = r["latency_s"]
    print("%-34s p50 %.2f  p90 %.2f  p99 %.2f  max %.2f s" % ("end-to-end latency per account", l["p50"], l["p90"], l["p99"], l["max"]))
    for s, w in r["workers"].items():
        per = ""
        if w.get("bytes_per_account_in_flight") is not None:
            per = ", %.1f KiB per account in flight (%d at most; %.1f MiB at rest)" % (
                w["bytes_per_account_in_flight"] / 1024.0, w["most_in_flight"], w["rest_rss_mib"])
        print("%-34s %.2f s CPU, %.1f MiB peak RSS%s" % ("worker " + s, w["cpu_s"], w["peak_rss_mib"], per))
    print("%-34s %.3f ms" % ("CPU per account (four workers)", r["cpu_ms_per_account"]))
    for st in STAGES:
        h = r.get("stage_handed_on_s", {}).get(st)
        if h:
            print("%-34s first %.1f  half %.1f  all %.1f s" % ("stage " + st + " handed on", h["first"], h["half"], h["all"]))
    for st in STAGES:
        h = r.get("hop_ms", {}).get(st)
        if h:
            print("%-34s p50 %d  p90 %d  p99 %d  max %d ms" % ("hop to " + st + "'s hand-off", h["p50"], h["p90"], h["p99"], h["max"]))
    if r.get("transactions_committed"):
        print("%-34s %s" % ("transactions committed", ", ".join(
            "%s %d" % (st, r["transactions_committed"].get(st, 0)) for st in STAGES)))
    for k, v in sorted(r.get("others_cpu_s", {}).items()):
        print("%-34s %.2f s CPU during the run" % (k, v))
    print("%-34s %s" % ("AWS requests per account", r["aws_requests_per_account"]))
    if r.get("assume_role_per_account") is not None:
        print("%-34s %s" % ("AssumeRole calls per account", r["assume_role_per_account"]))
    if r.get("quota_ceiling_accounts_per_s"):
        print("%-34s %s accounts/s (%s binds; %s); throughput / ceiling = %s" % (
            "quota ceiling", r["quota_ceiling_accounts_per_s"], r["quota_binding_rule"],
            ", ".join("%s %s" % kv for kv in sorted(r["quota_bounds_accounts_per_s"].items())),
            r["throughput_over_ceiling"]))
    if r.get("throttled_by_api") or r.get("quota_ceiling_accounts_per_s"):
        print("%-34s %.3f %% of calls (%s)" % ("throttled", 100.0 * r.get("throttled_fraction", 0),
              ", ".join("%s %d" % kv for kv in sorted((r.get("throttled_by_api") or {}).items())) or "none"))
    if r.get("dead_letters"):
        print("%-34s %d" % ("dead letters", r["dead_letters"]))
    if r.get("org_listed_before_s") is not None:
        print("%-34s %.1f s before the batch, %s AWS calls (--cold-org: with it)" % (
            "organization listed", r["org_listed_before_s"], r.get("aws_requests_before_batch")))
    elif "org_listed_before_s" in r:
        print("%-34s with the batch (--cold-org)" % "organization listed")
    print("%-34s %s (%s commands run, counting those inside the scripts)" % (
        "Redis round trips per account", r["redis_round_trips_per_account"],
        r["redis_commands_per_account"]))
    print("%-34s %s" % ("Kafka messages per account", r["kafka_messages_per_account"]))


def compare(new, old):
    print("\n%-34s %12s %12s %8s" % ("compared with", "old", "new", "change"))
    def row(name, a, b):
        ch = "" if not a else "%+.0f%%" % ((b - a) * 100.0 / a)
        print("%-34s %12s %12s %8s" % (name, a, b, ch))
    row("wall_s", old.get("wall_s"), new["wall_s"])
    row("accounts_per_s", old.get("accounts_per_s"), new["accounts_per_s"])
    row("cpu_ms_per_account", old.get("cpu_ms_per_account"), new["cpu_ms_per_account"])
    row("latency p99", old.get("latency_s", {}).get("p99"), new["latency_s"]["p99"])
    for s in STAGES:
        row("hop p50 ms " + s, old.get("hop_ms", {}).get(s, {}).get("p50"), new.get("hop_ms", {}).get(s, {}).get("p50"))
    for s in STAGES:
        row("rss " + s, old.get("workers", {}).get(s, {}).get("peak_rss_mib"), new["workers"][s]["peak_rss_mib"])
    for s in STAGES:
        row("bytes/account in flight " + s,
            old.get("workers", {}).get(s, {}).get("bytes_per_account_in_flight"),
            new["workers"][s].get("bytes_per_account_in_flight"))


def plot(curve, path, r):
    if not shutil.which("gnuplot"):
        log("gnuplot is missing: no plot")
        return
    data = path + ".dat"
    with open(data, "w") as f:
        for i, t in enumerate(curve, 1):
            f.write("%.3f %d\n" % (t, i))
    script = ('set terminal png size 900,500\nset output "%s"\nset xlabel "seconds"\n'
              'set ylabel "accounts connected"\nset key left top\nset grid\n'
              'set title "%d accounts, %s x%g: %.1f s, %.0f accounts/s"\n'
              'plot "%s" using 1:2 with lines lw 2 title "connected"\n') % (
        path, r["accounts"], r["profile"], r["scale"], r["wall_s"], r["accounts_per_s"] or 0, data)
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.unlink(data)
    log("plot: %s" % path)


if __name__ == "__main__":
    sys.exit(main())
