#!/usr/bin/env bash
# Requests per second of awssim on loopback, with real signed AWS requests:
# STS GetCallerIdentity (Query, POST) and S3 HeadBucket (REST, HEAD), each
# signed once by botocore and replayed by wrk (a signature stays valid for 15
# minutes). Every request goes the whole way: SigV4 verification, dispatch,
# the operation, the reply.
#
#   bench/awssim_bench.sh [path/to/awssim] [seconds] [connections]
set -euo pipefail
SIM=${1:-build/sim/awssim}
DUR=${2:-10}
CONNS=${3:-256}
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 2; }
PY=/usr/bin/python3
$PY -c 'import botocore' 2>/dev/null || { echo "python3-botocore is missing" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$SIM" --port-file "$WORK/port" >"$WORK/sim.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
PORT=$(cat "$WORK/port")
URL=http://127.0.0.1:$PORT

# Sign the two requests and write a wrk script for each.
$PY - "$URL" "$WORK" <<'PYEOF'
import sys, json, urllib.request
from botocore.auth import SigV4Auth, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
url, work = sys.argv[1], sys.argv[2]
creds = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
def lua(name, req):
    hdrs = "".join('wrk.headers["%s"] = %s\n' % (k, json.dumps(v)) for k, v in req.headers.items())
    body = req.body.decode() if isinstance(req.body, bytes) else (req.body or "")
    with open("%s/%s.lua" % (work, name), "w") as f:
        f.write('wrk.method = "%s"\nwrk.path = %s\nwrk.body = %s\n%s' % (
            req.method, json.dumps(req.url[len(url):] or "/"), json.dumps(body), hdrs))
# A bucket to HEAD.
r = AWSRequest("PUT", url + "/bench-bucket", data=b"")
S3SigV4Auth(creds, "s3", "us-east-1").add_auth(r)
urllib.request.urlopen(urllib.request.Request(r.url, data=b"", method="PUT", headers=dict(r.headers)))
r = AWSRequest("POST", url + "/", data="Action=GetCallerIdentity&Version=2011-06-15",
               headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
SigV4Auth(creds, "sts", "us-east-1").add_auth(r)
lua("sts", r)
r = AWSRequest("HEAD", url + "/bench-bucket")
S3SigV4Auth(creds, "s3", "us-east-1").add_auth(r)
lua("s3", r)
PYEOF

printf 'awssim on %s, %ss per run, %s connections, 2 wrk threads\n' "$URL" "$DUR" "$CONNS"
for name in sts s3; do
  out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" --latency -s "$WORK/$name.lua" "$URL")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-28s %10s req/s   p50 %-8s p99 %-8s non-2xx %s\n' \
    "$([ $name = sts ] && echo 'sts GetCallerIdentity' || echo 's3 HeadBucket')" "$rps" "$p50" \
    "$p99" "${non2xx:-0}"
done
kill -0 "$PID" || { echo "awssim died" >&2; exit 1; }
