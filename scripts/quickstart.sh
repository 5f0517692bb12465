#!/usr/bin/env bash
# The quickstart: build everything, start the embedded default stack on this
# machine (librdkafka's mock Kafka cluster, a local redis-server, the AWS
# simulator with AWS-like latencies), start the four workers, enqueue a
# sample batch of accounts (new ones, existing ones and a few invalid
# requests), show progress, and end with a summary. Then the stack stays up
# and it prints what to run from another shell to look at it (an `export` line
# with the connection settings, then onboardctl status, lag, dlq list and
# replay --dry-run, kcat on the events, the simulator's state), until Ctrl-C
# stops everything it started.
#
#   scripts/quickstart.sh [--exit] [ACCOUNTS]     # default 300
#
# --exit (or OB_QUICKSTART_EXIT=1): stop everything right after the summary
# instead of waiting for Ctrl-C; for scripts and CI, which must not hang.
#
# Environment: OB_QUICKSTART_PROFILE (aws-typical), OB_QUICKSTART_SCALE (1.0:
# stacks take 25-40 s as on AWS; 0.1 makes them ten times faster),
# OB_QUICKSTART_DIR (build/quickstart: logs and state), OB_QUICKSTART_BUILD
# (build/release: the build directory).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
usage() { echo "usage: scripts/quickstart.sh [--exit] [ACCOUNTS]" >&2; exit 2; }
N=300
case ${OB_QUICKSTART_EXIT:-0} in 0 | "" | false | no) EXIT_AT_END=0 ;; *) EXIT_AT_END=1 ;; esac
for a in "$@"; do
  case $a in
    --exit) EXIT_AT_END=1 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    "" | *[!0-9]*) echo "quickstart: unknown argument '$a'" >&2; usage ;;
    *) N=$a ;;
  esac
done
PROFILE=${OB_QUICKSTART_PROFILE:-aws-typical}
SCALE=${OB_QUICKSTART_SCALE:-1.0}
RUN=${OB_QUICKSTART_DIR:-$ROOT/build/quickstart}
BUILD=${OB_QUICKSTART_BUILD:-build/release}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

say "installing what is missing (Debian packages)"
scripts/deps.sh >/dev/null
say "building"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
BIN=$BUILD

rm -rf "$RUN"
mkdir -p "$RUN/logs"
# The workers' session key ring (session.keys; README.md, "Sealed sessions between
# stages"), made once for this quickstart directory: one key of 32 random bytes,
# which every stage worker gets, so the cur and iam stages use the session the
# stage before sealed instead of assuming the account's role again. Never printed.
if command -v openssl >/dev/null 2>&1; then
  SESSION_KEY=$(openssl rand -base64 32)
else
  SESSION_KEY=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
fi
OB_SESSION_KEYS="quickstart:$SESSION_KEY"
unset SESSION_KEY
PIDS=()
WPIDS=()
SLEEPER=""
cleanup() {
  trap - EXIT INT TERM
  say "stopping"
  if [ -n "$SLEEPER" ]; then kill "$SLEEPER" 2>/dev/null || true; fi
  # Workers first (they commit and leave their groups while Kafka is still
  # up), then everything else.
  for w in "${WPIDS[@]}"; do kill "$w" 2>/dev/null || true; done
  for _ in $(seq 1 150); do
    alive=0
    for w in "${WPIDS[@]}"; do kill -0 "$w" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  scripts/services.sh stop "$RUN" >/dev/null 2>&1 || true
}
# Ctrl-C or a TERM stops everything, then the script, with the signal's status.
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

say "starting the embedded stack"
"$BIN/tools/ob-mockkafka" --partitions 8 --bootstrap-file "$RUN/bootstrap" >"$RUN/logs/kafka.log" 2>&1 &
PIDS+=($!)
scripts/services.sh start "$RUN" redis >/dev/null
# The accounts enqueued as existing (1 in 5) already have a Cost and Usage Report.
{
  printf '{"reports": ['
  sep=
  for i in $(seq 5 5 "$N"); do
    acct=$(printf '%012d' $((200000000000 + i)))
    printf '%s{"Account": "%s", "ReportDefinition": {"ReportName": "finance-cur", "S3Bucket": "cur-of-%s", "S3Prefix": "cur", "S3Region": "us-east-1"}}' "$sep" "$acct" "$acct"
    sep=,
  done
  printf ']}\n'
} >"$RUN/awssim-seed.json"
"$BIN/sim/awssim" --port-file "$RUN/awssim.port" --org-accounts "$((N + 20))" \
  --seed "$RUN/awssim-seed.json" --profile "$PROFILE" --scale "$SCALE" >"$RUN/logs/awssim.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$RUN/bootstrap" ] && [ -s "$RUN/awssim.port" ] && break; sleep 0.1; done

export OB_KAFKA_BOOTSTRAP_SERVERS=$(cat "$RUN/bootstrap")
export OB_KAFKA_SESSION_TIMEOUT_MS=6000
export OB_REDIS_PORT=$(cat "$RUN/redis/port")
export OB_BILLING_PRINCIPAL=arn:aws:iam::111111111111:root
export OB_STACK_POLL=2s
export AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$RUN/awssim.port")
export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE
export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

say "starting the workers: bucket, cur, iam, connect"
declare -A WPID
for w in bucket cur iam connect; do
  OB_SESSION_KEYS=$OB_SESSION_KEYS "$BIN/workers/onboard-$w" >"$RUN/logs/$w.log" 2>&1 &
  PIDS+=($!)
  WPIDS+=($!)
  WPID[$w]=$!
done

say "enqueueing $N accounts (4 in 5 new, 1 in 5 existing) and 3 invalid requests"
{
  echo "account_id,mode,region,role_arn"
  for i in $(seq 1 "$N"); do
    acct=$(printf '%012d' $((200000000000 + i)))
    # every 50th member is suspended in the simulator's organization: skip those
    [ $((i % 50)) -eq 0 ] && continue
    mode=new; [ $((i % 5)) -eq 0 ] && mode=existing
    region=us-east-1; [ $((i % 2)) -eq 0 ] && region=eu-west-1
    echo "$acct,$mode,$region,arn:aws:iam::$acct:role/OrganizationAccountAccessRole"
  done
} >"$RUN/batch.csv"
"$BIN/tools/onboardctl" enqueue "$RUN/batch.csv"
# What an outside producer might also send: garbage, another cloud, a wrong role.
{
  echo 'bad-1|{"schema":"onboard.request/1","account_id":"12'
  echo 'bad-2|{"schema":"onboard.request/1","request_id":"az-1","account_id":"200000000999","cloud":"azure","mode":"new","region":"eu-west-1","role_arn":"arn:aws:iam::200000000999:role/x"}'
  echo "$(printf '%012d' $((200000000000 + N + 1)))|{\"schema\":\"onboard.request/1\",\"request_id\":\"wrong-role\",\"account_id\":\"$(printf '%012d' $((200000000000 + N + 1)))\",\"cloud\":\"aws\",\"mode\":\"new\",\"region\":\"us-east-1\",\"role_arn\":\"arn:aws:iam::$(printf '%012d' $((200000000000 + N + 1))):role/NoSuchRole\"}"
} | kcat -P -b "$OB_KAFKA_BOOTSTRAP_SERVERS" -t onboard.requests -K '|' 2>/dev/null
TOTAL=$(($(wc -l <"$RUN/batch.csv") - 1 + 3))

say "onboarding (progress every 3 s; the stacks take the longest)"
start=$SECONDS
while :; do
  connected=$(kcat -C -b "$OB_KAFKA_BOOTSTRAP_SERVERS" -t onboard.connected -e -q -f '%k\n' 2>/dev/null | sort -u | wc -l)
  dead=$(kcat -C -b "$OB_KAFKA_BOOTSTRAP_SERVERS" -t onboard.dlq -e -q -f '%k\n' 2>/dev/null | sort -u | wc -l)
  printf '\r  %4ds  connected %4d   dead letters %3d   of %d ' $((SECONDS - start)) "$connected" "$dead" "$TOTAL"
  [ $((connected + dead)) -ge "$TOTAL" ] && break
  [ $((SECONDS - start)) -gt 900 ] && { echo; echo "giving up after 15 minutes; see $RUN/logs"; break; }
  sleep 3
done
echo
say "summary"
"$BIN/tools/onboardctl" summary
echo
echo "dead letters (reason per account):"
kcat -C -b "$OB_KAFKA_BOOTSTRAP_SERVERS" -t onboard.dlq -e -q -f '%s\n' 2>/dev/null |
  python3 -c 'import sys, json
for line in sys.stdin:
    d = json.loads(line); e = d["error"]
    print("  %-14s %-10s %-22s %s" % (d.get("account_id", "-"), d["stage"], e["code"], e["message"][:90]))'
printf '\npeak memory of the workers:'
for w in bucket cur iam connect; do
  printf '  %s %s' "$w" "$(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/${WPID[$w]}/status" 2>/dev/null)"
done
echo
if [ "$EXIT_AT_END" = 1 ]; then
  echo
  echo "(--exit: everything stops now; without it the stack stays up after the summary,"
  echo " with the commands to look at it, until Ctrl-C.)"
  exit 0
fi

# onboardctl reads the same settings as the workers: one line for another shell
# to source ($RUN/env), with onboardctl on the PATH, and the workers' session key
# ring (for another replica of a stage started from there).
CONNECT=(OB_KAFKA_BOOTSTRAP_SERVERS OB_REDIS_PORT AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID
  AWS_SECRET_ACCESS_KEY AWS_REGION AWS_EC2_METADATA_DISABLED AWS_CONFIG_FILE
  AWS_SHARED_CREDENTIALS_FILE OB_SESSION_KEYS)
EXPORT="export"
for v in "${CONNECT[@]}"; do EXPORT+=" $v=$(printf '%q' "${!v}")"; done
EXPORT+=" PATH=$(printf '%q' "$BIN/tools"):\"\$PATH\""
# The file holds the simulator's (fake) keys and the session key ring too: they stay
# off the screen.
(umask 077 && echo "$EXPORT" >"$RUN/env")
ACCT=$(printf '%012d' 200000000001)
cat <<TXT

Where to look next: the stack stays up until Ctrl-C. In another shell, first

  . $RUN/env

(the connection settings, the workers' session key ring, and onboardctl on the PATH), then:

  onboardctl status $ACCT           one account: stage, status, resources, history
  onboardctl summary                       all accounts by stage and status
  onboardctl lag                           each consumer group's committed offset, end and lag per partition
                                           (the embedded mock Kafka keeps no offsets committed in transactions:
                                           here the lag counts every message; on a real broker it is 0 when done)
  onboardctl dlq list                      the 3 dead letters made on purpose: not JSON, an Azure account,
                                           a role that does not exist
  onboardctl replay --dry-run              what a replay would do with them (the first two are refused,
                                           with the reason; the third would go back to the bucket stage)
  kcat -C -b $OB_KAFKA_BOOTSTRAP_SERVERS -t onboard.connected -e -q
                                           the connected events, one JSON line each
  curl -s $AWS_ENDPOINT_URL/_sim/state | python3 -m json.tool | less
                                           the simulator's AWS state: accounts, buckets, reports, stacks
  logs                                     $RUN/logs/{bucket,cur,iam,connect,awssim,kafka}.log
TXT
say "up; Ctrl-C stops it all"
declare -A GONE=()
while :; do
  sleep 5 &
  SLEEPER=$!
  wait "$SLEEPER" || true
  SLEEPER=""
  for w in "${!WPID[@]}"; do
    if [ -z "${GONE[$w]:-}" ] && ! kill -0 "${WPID[$w]}" 2>/dev/null; then
      GONE[$w]=1
      echo "quickstart: the $w worker has stopped; see $RUN/logs/$w.log" >&2
    fi
  done
done
