#!/usr/bin/env bash
# Throughput and latency of ob_httpd under wrk, on loopback.
#
# The server is the unit test binary in its benchmark mode
# (`test_httpd --serve PORT_FILE`: "hello" to every request, one loop thread).
# This script builds nothing: build first, preferably an optimised build
# (RelWithDebInfo, the default; not the sanitizer build).
#
#   bench/httpd_bench.sh [PATH_TO_test_httpd]    # default build/tests/test_httpd
#   OB_BENCH_DURATION=30s bench/httpd_bench.sh build-c/tests/test_httpd
#
# Two runs: wrk -t2 -c256 and wrk -t2 -c10000 (open-file limit raised to the
# hard limit first), each printing wrk's report with latency percentiles and
# a one-line summary. Exits non-zero only if the server died (or could not
# start); wrk's own complaints (socket errors, timeouts) are reported, not
# fatal.
set -uo pipefail

BIN=${1:-build/tests/test_httpd}
DURATION=${OB_BENCH_DURATION:-10s}

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: wrk is missing, installing the Debian package" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q wrk >/dev/null 2>&1 ||
    { $SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q wrk; } ||
    { echo "bench: cannot install wrk" >&2; exit 2; }
fi
if [ ! -x "$BIN" ]; then
  echo "bench: $BIN is not an executable; build first (cmake --build build)" >&2
  exit 2
fi

# Both the server and wrk need a descriptor per connection (plus spares).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/httpd-bench.XXXXXX")
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

"$BIN" --serve "$TMP/port" 2>"$TMP/server.log" &
PID=$!
for _ in $(seq 100); do
  [ -s "$TMP/port" ] && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$TMP/port" ]; then
  echo "bench: the server did not start" >&2
  cat "$TMP/server.log" >&2
  exit 1
fi
PORT=$(cat "$TMP/port")
URL="http://127.0.0.1:$PORT/"
echo "bench: server pid $PID on $URL, open-file limit $NOFILE, $(nproc) cores"

alive() {
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "bench: THE SERVER DIED" >&2
    cat "$TMP/server.log" >&2
    PID=""
    exit 1
  fi
}

SUMMARY=""
run() {
  local conns=$1
  echo
  echo "=== wrk -t2 -c$conns -d$DURATION --latency $URL"
  wrk -t2 -c"$conns" -d"$DURATION" --timeout 10s --latency "$URL" | tee "$TMP/wrk.out"
  alive
  local rps avg p50 p99 errs
  rps=$(awk '/^Requests\/sec/ {print $2}' "$TMP/wrk.out")
  avg=$(awk '$1 == "Latency" {print $2; exit}' "$TMP/wrk.out")
  p50=$(awk '$1 == "50%" {print $2}' "$TMP/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk.out")
  errs=$(grep -E "Socket errors|Non-2xx" "$TMP/wrk.out" | tr -s ' ' | paste -sd';' -)
  SUMMARY+=$(printf '%-8s %12s req/s   latency avg %-9s p50 %-9s p99 %-9s %s' \
    "c=$conns" "${rps:-?}" "${avg:-?}" "${p50:-?}" "${p99:-?}" "${errs}")$'\n'
}

run 256
BIG=10000
if [ "$NOFILE" -lt $((BIG + 100)) ]; then
  BIG=$((NOFILE - 100))
  echo "bench: open-file limit $NOFILE allows only $BIG connections for the big run" >&2
fi
run "$BIG"

# A clean stop: SIGTERM, and the server must exit 0.
kill -TERM "$PID"
wait "$PID"
rc=$?
PID=""
echo
cat "$TMP/server.log"
echo
echo "summary (loopback, $(nproc) cores, wrk and server on the same machine):"
printf '%s' "$SUMMARY"
if [ "$rc" -ne 0 ]; then
  echo "bench: the server exited with status $rc" >&2
  exit 1
fi
exit 0
