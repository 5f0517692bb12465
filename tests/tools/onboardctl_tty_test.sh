#!/usr/bin/env bash
# onboardctl's progress line: on a terminal, long operations (enqueue of a
# big file, replay, verify) show one line on stderr, updated in place; in a
# pipe, nothing but their result. Each command runs inside tmux (a
# real terminal) against the real broker and Redis, and the screen is read
# back with tmux capture-pane; then the same command runs in the terminal
# with its output piped into a file.
#
#   onboardctl_tty_test.sh ONBOARDCTL
set -uo pipefail
CTL=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
if [ -z "${OB_TEST_KAFKA_BROKERS:-}" ] || [ -z "${OB_TEST_REDIS_PORT:-}" ]; then
  [ "${OB_TEST_REQUIRE_SERVICES:-}" = 1 ] && fail "Kafka and Redis are required"
  echo "SKIPPED: Kafka or Redis not available; run scripts/test.sh"; exit 77
fi
for tool in tmux kcat; do
  if ! command -v $tool >/dev/null; then
    [ "${OB_TEST_REQUIRE_SERVICES:-}" = 1 ] && fail "$tool is required (scripts/deps.sh installs it)"
    echo "SKIPPED: $tool is not installed (apt-get install $tool): onboardctl's progress line" \
         "on a terminal is NOT checked" >&2
    exit 77
  fi
done
T=$(mktemp -d)
SOCK="onboardctl-tty-$$"
cleanup() { tmux -L "$SOCK" kill-server 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
export OB_KAFKA_BOOTSTRAP_SERVERS=$OB_TEST_KAFKA_BROKERS OB_REDIS_PORT=$OB_TEST_REDIS_PORT
export OB_TOPIC_PREFIX="tty$$."
R="redis-cli -p $OB_TEST_REDIS_PORT"

# Run the shell line $2 in a terminal of its own (tmux, named $1, 200x50)
# and wait for it to end: its screen in $T/$1.screen, its exit status in
# the screen's last line (EXIT=N).
on_terminal() {
  local name=$1
  {
    echo "export OB_KAFKA_BOOTSTRAP_SERVERS='$OB_KAFKA_BOOTSTRAP_SERVERS' OB_REDIS_PORT='$OB_REDIS_PORT'"
    echo "export OB_TOPIC_PREFIX='$OB_TOPIC_PREFIX' TERM=xterm"
    echo "set -o pipefail"
    echo "$2"
    echo 'echo "EXIT=$?"'
  } >"$T/$name.sh"
  tmux -L "$SOCK" new-session -d -s "$name" -x 200 -y 50 "bash $T/$name.sh; sleep 600" ||
    fail "tmux cannot start"
  for _ in $(seq 1 1200); do
    tmux -L "$SOCK" capture-pane -p -t "$name" >"$T/$name.screen" 2>/dev/null
    grep -q '^EXIT=' "$T/$name.screen" && { tmux -L "$SOCK" kill-session -t "$name"; return 0; }
    sleep 0.1
  done
  fail "$name did not end in 120 s; its screen: $(cat "$T/$name.screen")"
}

# The screen $1 holds exactly one line matching $2 (the progress line, drawn
# over itself, not a line per update), and ended with exit status $3.
one_progress_line() {
  local n
  n=$(grep -cE "$2" "$T/$1.screen")
  [ "$n" = 1 ] || fail "$1: $n lines match '$2', want 1; the screen:
$(cat "$T/$1.screen")"
  grep -q "^EXIT=$3\$" "$T/$1.screen" || fail "$1: want exit $3; the screen: $(cat "$T/$1.screen")"
}

# The piped output $1 has no progress ($2) and no carriage return.
quiet_in_a_pipe() {
  grep -qE "$2" "$T/$1" && fail "$1: a progress line in a pipe: $(cat "$T/$1")"
  grep -q $'\r' "$T/$1" && fail "$1: a carriage return in a pipe"
  return 0
}

# 1. enqueue of a big file: "enqueued 20,000 of 20,000 (N/s)".
python3 -c '
for i in range(20000):
    a = "5%011d" % i
    print("{\"account_id\":\"%s\",\"mode\":\"new\",\"region\":\"us-east-1\",\"role_arn\":\"arn:aws:iam::%s:role/OrganizationAccountAccessRole\"}" % (a, a))' >"$T/big.jsonl"
on_terminal enqueue "'$CTL' enqueue '$T/big.jsonl'"
one_progress_line enqueue '^enqueued [0-9,]+ of 20,000( \([0-9,]+/s\))? *$' 0
grep -q '^enqueued 20,000 of 20,000' "$T/enqueue.screen" || fail "the last count: $(cat "$T/enqueue.screen")"
grep -q "^enqueued 20000 requests to ${OB_TOPIC_PREFIX}requests" "$T/enqueue.screen" ||
  fail "enqueue: no result line: $(cat "$T/enqueue.screen")"
grep -q 'lines read:' "$T/enqueue.screen" && fail "the reading progress was left on the screen"
on_terminal enqueue_piped "'$CTL' enqueue '$T/big.jsonl' 2>&1 | cat >'$T/enqueue.out'"
grep -q '^EXIT=0$' "$T/enqueue_piped.screen" || fail "piped enqueue: $(cat "$T/enqueue_piped.screen")"
[ "$(cat "$T/enqueue.out")" = "enqueued 20000 requests to ${OB_TOPIC_PREFIX}requests" ] ||
  fail "piped enqueue printed more than its result: $(cat -A "$T/enqueue.out" | head -5)"
quiet_in_a_pipe enqueue.out 'of 20,000|lines read'

# 2. replay (a dry run: nothing moves) of dead letters: "replay (dry run): 6 of 6".
EX=$(cd "$(dirname "$0")/../../proto/examples/onboard.dlq.v1/valid" && pwd)
for i in 1 2 3 4 5 6; do
  a=$(printf '6000000000%02d' "$i")
  $R HSET "ob:{$a}:state" stage bucket status failed request_id req-0001 >/dev/null
  python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), separators=(",",":")).replace("123456789012", sys.argv[2]))' \
    "$EX/bucket-already-exists.json" "$a"
done | kcat -P -b "$OB_TEST_KAFKA_BROKERS" -t "${OB_TOPIC_PREFIX}dlq" 2>/dev/null
on_terminal replay "'$CTL' replay --dry-run"
one_progress_line replay '^replay \(dry run\): [0-9,]+ of 6' 0
grep -q '^replay (dry run): 6 of 6' "$T/replay.screen" || fail "replay's last count: $(cat "$T/replay.screen")"
[ "$(grep -c '^would ' "$T/replay.screen")" = 6 ] || fail "replay's rows: $(cat "$T/replay.screen")"
on_terminal replay_piped "'$CTL' replay --dry-run >'$T/replay.out' 2>&1"
grep -q '^EXIT=0$' "$T/replay_piped.screen" || fail "piped replay: $(cat "$T/replay_piped.screen")"
quiet_in_a_pipe replay.out 'replay \(dry run\):|read .*dlq:'
[ "$(grep -c '^would ' "$T/replay.out")" = 6 ] || fail "piped replay's rows: $(cat "$T/replay.out")"

# 3. verify, with no verify worker to answer: "verified 0 of 3" until the
#    timeout (exit 1).
for i in 1 2 3; do
  a=$(printf '7000000000%02d' "$i")
  spec=$(printf '{"account_id":"%s","mode":"new","region":"us-east-1","role_arn":"arn:aws:iam::%s:role/OrganizationAccountAccessRole"}\n' \
    "$a" "$a" | "$CTL" enqueue - --dry-run 2>/dev/null)
  $R HSET "ob:{$a}:state" status connected idempotency_key "$(printf 'ab%.0s' $(seq 32))" \
    connected_spec "$spec" role_arn "arn:aws:iam::$a:role/billing-engine-access" \
    stack_id "arn:aws:cloudformation:us-east-1:$a:stack/billing-engine-access/0f1e2d3c-0000-4000-8000-123456789012" \
    >/dev/null
done
on_terminal verify "'$CTL' verify 700000000001 700000000002 700000000003 --timeout 2s"
one_progress_line verify '^verified [0-9,]+ of 3' 1
grep -q 'timed out waiting for the verifications' "$T/verify.screen" || fail "verify: $(cat "$T/verify.screen")"
on_terminal verify_piped "'$CTL' verify 700000000001 700000000002 700000000003 --timeout 2s 2>&1 | cat >'$T/verify.out'"
quiet_in_a_pipe verify.out 'verified [0-9,]+ of'
grep -q 'timed out waiting' "$T/verify.out" || fail "piped verify: $(cat "$T/verify.out")"

for i in 1 2 3 4 5 6; do $R DEL "ob:{$(printf '6000000000%02d' "$i")}:state" >/dev/null; done
for i in 1 2 3; do $R DEL "ob:{$(printf '7000000000%02d' "$i")}:state" >/dev/null; done
echo "onboardctl on a terminal: all checks passed"
