#!/usr/bin/env bash
# onboardctl against a real Kafka broker and Redis: validation with line
# numbers and exit code 3 (nothing sent), dry runs, enqueue from CSV and JSON
# lines (the messages really land on the intake topic, keyed by account, and
# parse with the workers' codec), status and summary from Redis state, dead
# letters listed, replayed (once) and waiting retries started.
set -uo pipefail
CTL=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
if [ -z "${OB_TEST_KAFKA_BROKERS:-}" ] || [ -z "${OB_TEST_REDIS_PORT:-}" ]; then
  [ "${OB_TEST_REQUIRE_SERVICES:-}" = 1 ] && fail "Kafka and Redis are required"
  echo "SKIPPED: Kafka or Redis not available; run scripts/test.sh"; exit 77
fi
command -v kcat >/dev/null || { echo "SKIPPED: kcat missing"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export OB_KAFKA_BOOTSTRAP_SERVERS=$OB_TEST_KAFKA_BROKERS OB_REDIS_PORT=$OB_TEST_REDIS_PORT
export OB_TOPIC_PREFIX="ctl$$."
ROLE='arn:aws:iam::%s:role/OrganizationAccountAccessRole'

# 1. Bad rows: reported with line numbers, nothing sent, exit 3.
{
  echo "account_id,mode,region,role_arn"
  echo "111122223333,new,eu-west-1,$(printf "$ROLE" 111122223333)"
  echo "12345,new,eu-west-1,$(printf "$ROLE" 12345)"
  echo "111122223334,sideways,eu-west-1,$(printf "$ROLE" 111122223334)"
  echo "111122223335,new,eu-west-1,$(printf "$ROLE" 999999999999)"
} >"$T/bad.csv"
"$CTL" enqueue "$T/bad.csv" 2>"$T/err"; rc=$?
[ $rc = 3 ] || fail "bad rows: exit $rc, want 3"
grep -q '^line 3: /account_id' "$T/err" || fail "line 3 not reported: $(cat "$T/err")"
grep -q '^line 4: /mode' "$T/err" || fail "line 4 not reported"
grep -q '^line 5: ' "$T/err" || fail "line 5 (role in another account) not reported"
grep -q 'nothing was enqueued' "$T/err" || fail "no 'nothing was enqueued'"

# 2. Dry run: normalized requests on stdout, defaults filled, nothing sent.
{
  echo "account_id,mode,region,role_arn,bucket"
  for i in 1 2 3; do a=$(printf '1111222233%02d' "$i"); echo "$a,new,eu-west-1,$(printf "$ROLE" "$a"),"; done
} >"$T/good.csv"
"$CTL" enqueue "$T/good.csv" --dry-run >"$T/dry" 2>"$T/err" || fail "dry run failed: $(cat "$T/err")"
[ "$(wc -l <"$T/dry")" = 3 ] || fail "dry run printed $(wc -l <"$T/dry") lines"
grep -q '"time_unit":"HOURLY"' "$T/dry" || fail "defaults not filled in the dry run"
grep -q 'billing-cur-111122223301-eu-west-1' "$T/dry" || fail "default bucket name missing"

# 3. Enqueue CSV and JSON lines for real.
"$CTL" enqueue "$T/good.csv" 2>"$T/err" || fail "enqueue csv: $(cat "$T/err")"
printf '{"account_id":"444455556666","mode":"existing","region":"us-east-1","role_arn":"%s"}\n' \
  "$(printf "$ROLE" 444455556666)" | "$CTL" enqueue - --format jsonl 2>"$T/err" ||
  fail "enqueue jsonl: $(cat "$T/err")"
kcat -C -b "$OB_TEST_KAFKA_BROKERS" -t "${OB_TOPIC_PREFIX}requests" -e -q -f '%k %s\n' >"$T/got" 2>/dev/null
[ "$(wc -l <"$T/got")" = 4 ] || fail "$(wc -l <"$T/got") messages on the intake topic, want 4"
grep -q '^111122223302 {"schema":"onboard.request/1"' "$T/got" || fail "keyed request missing"
grep -q '^444455556666 .*"mode":"existing"' "$T/got" || fail "jsonl request missing"

# 4. status and summary read Redis.
redis-cli -p "$OB_TEST_REDIS_PORT" HSET 'ob:{777788889999}:state' stage iam status done fence 3 >/dev/null
redis-cli -p "$OB_TEST_REDIS_PORT" HSET 'ob:{777788889990}:state' stage bucket status failed error_code BucketAlreadyExists >/dev/null
"$CTL" status 777788889999 --json >"$T/st" || fail "status"
grep -q '"stage":"iam"' "$T/st" || fail "status json: $(cat "$T/st")"
grep -q fence "$T/st" && fail "status shows the fence"
"$CTL" status 000000000001 | grep -q 'no onboarding state' || fail "unknown account"
"$CTL" status 12 >/dev/null 2>&1; [ $? = 2 ] || fail "bad account id must exit 2"
"$CTL" summary --json >"$T/sum" || fail "summary"
grep -q '"iam/done":' "$T/sum" || fail "summary: $(cat "$T/sum")"
grep -q '"bucket/failed":' "$T/sum" || fail "summary lacks bucket/failed"
redis-cli -p "$OB_TEST_REDIS_PORT" DEL 'ob:{777788889999}:state' 'ob:{777788889990}:state' >/dev/null

# 5. From the organization (awssim's Organizations API): every ACTIVE account,
#    the suspended one skipped with a reason.
if [ -n "${2:-}" ]; then
  "$2" --port-file "$T/sim.port" --org-accounts 55 >"$T/sim.log" 2>&1 &
  SIM=$!
  for _ in $(seq 1 100); do [ -s "$T/sim.port" ] && break; sleep 0.05; done
  AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$T/sim.port") AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE \
  AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AWS_REGION=us-east-1 \
  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    "$CTL" enqueue --from-organization --region eu-west-1 --dry-run >"$T/org" 2>"$T/err"
  rc=$?
  kill $SIM
  [ $rc = 0 ] || fail "from-organization: $(cat "$T/err")"
  [ "$(wc -l <"$T/org")" = 55 ] || fail "from-organization: $(wc -l <"$T/org") requests, want 55"
  grep -q 'skipped 200000000050: the account is SUSPENDED' "$T/err" || fail "suspended not reported"
  grep -q '"role_arn":"arn:aws:iam::200000000007:role/OrganizationAccountAccessRole"' "$T/org" ||
    fail "role ARN not derived"
fi

# 6. Dead letters: read back with filters and counts (the records are the
#    proto examples, as a worker would have written them).
EX=$(cd "$(dirname "$0")/../../proto/examples/onboard.dlq.v1/valid" && pwd)
for f in bucket-already-exists iam-retries-exhausted; do
  python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), separators=(",",":")))' \
    "$EX/$f.json"
done | kcat -P -b "$OB_TEST_KAFKA_BROKERS" -t "${OB_TOPIC_PREFIX}dlq" 2>/dev/null
"$CTL" dlq list --json >"$T/dlq" || fail "dlq list"
tail -1 "$T/dlq" | grep -q '"records":2' || fail "dlq list: $(tail -1 "$T/dlq")"
[ "$(grep -c '"dlq_id"' "$T/dlq")" = 2 ] || fail "dlq list: want 2 records"
"$CTL" dlq list --stage iam --json | tail -1 | grep -q '"matching":1' || fail "dlq --stage"
"$CTL" dlq list --code BucketAlreadyExists | grep -q 'BucketAlreadyExists' || fail "dlq --code"
"$CTL" dlq list --since 2999-01-01T00:00:00Z --json | tail -1 | grep -q '"matching":0' ||
  fail "dlq --since"
grep -q payload "$T/dlq" && fail "dlq list printed an original payload"
"$CTL" dlq frob >/dev/null 2>&1; [ $? = 2 ] || fail "dlq with an unknown subcommand must exit 2"

# 7. Replay: the same dead letters as two accounts' failures, plus records
#    that cannot be replayed. Dry run first (nothing moves), then for real:
#    each original lands on the input topic of the stage that failed, with
#    ob-replay-of, and the account's attempts are reset; a second run replays
#    nothing; a connected account is skipped unless forced.
export OB_TOPIC_PREFIX="ctlr$$."
A1=111100000001 A2=111100000002 A3=111100000003
for pair in "bucket-already-exists $A1" "iam-retries-exhausted $A2" "intake-invalid-bucket $A3" \
            "intake-binary -" "iam-retries-exhausted $A3"; do
  set -- $pair
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1]));
t=json.dumps(d, separators=(",",":"))
print(t.replace("123456789012", sys.argv[2]) if sys.argv[2] != "-" else t)' "$EX/$1.json" "$2"
done | kcat -P -b "$OB_TEST_KAFKA_BROKERS" -t "${OB_TOPIC_PREFIX}dlq" 2>/dev/null
R="redis-cli -p $OB_TEST_REDIS_PORT"
$R HSET "ob:{$A1}:state" stage bucket status failed request_id req-0001 stage_attempts 1 >/dev/null
$R HSET "ob:{$A2}:state" stage iam status failed request_id req-0001 stage_attempts 5 fence 9 >/dev/null
$R HSET "ob:{$A3}:state" stage connect status connected request_id req-0001 >/dev/null
"$CTL" replay --dry-run --json >"$T/rp" 2>"$T/err" || fail "replay dry run: $(cat "$T/err")"
tail -1 "$T/rp" | grep -q '"would_replay":2' || fail "dry run: $(tail -1 "$T/rp")"
tail -1 "$T/rp" | grep -q '"superseded":1' || fail "dry run: A3's older record not superseded"
grep -q '"action":"refused".*"stage":"intake".*class invalid_input' "$T/rp" ||
  fail "binary original not refused: $(cat "$T/rp")"
grep -q "\"action\":\"skipped\",\"account_id\":\"$A3\".*connected" "$T/rp" ||
  fail "connected account not skipped: $(cat "$T/rp")"
[ "$($R HGET "ob:{$A2}:state" stage_attempts)" = 5 ] || fail "dry run changed the state"
kcat -C -b "$OB_TEST_KAFKA_BROKERS" -t "${OB_TOPIC_PREFIX}iam" -e -q 2>/dev/null | grep -q . &&
  fail "dry run published"
"$CTL" replay --limit 1 --json >"$T/rp" 2>"$T/err" || fail "replay --limit: $(cat "$T/err")"
tail -1 "$T/rp" | grep -q '"replayed":1' || fail "replay --limit 1: $(tail -1 "$T/rp")"
"$CTL" replay >"$T/rp" 2>"$T/err" || fail "replay: $(cat "$T/err")"
grep -q '1 replayed' "$T/rp" || fail "replay: $(cat "$T/rp")"
grep -q 'already replayed' "$T/rp" || fail "replay: the --limit run's record not skipped"
kcat -C -b "$OB_TEST_KAFKA_BROKERS" -t "${OB_TOPIC_PREFIX}requests" -e -q -f '%k %h %s\n' \
  >"$T/req" 2>/dev/null
kcat -C -b "$OB_TEST_KAFKA_BROKERS" -t "${OB_TOPIC_PREFIX}iam" -e -q -f '%k %h %s\n' \
  >"$T/iam" 2>/dev/null
[ "$(wc -l <"$T/req")" = 1 ] && [ "$(wc -l <"$T/iam")" = 1 ] ||
  fail "replayed messages: $(wc -l <"$T/req") on requests, $(wc -l <"$T/iam") on iam; want 1 and 1"
grep -q "^$A1 .*ob-replay-of=[0-9a-f]\{32\}.*\"schema\":\"onboard.request/1\"" "$T/req" ||
  fail "request replay: $(cat "$T/req")"
grep -q "^$A2 .*ob-replay-of=.*\"replay_of\":\"[0-9a-f]\{32\}\"" "$T/iam" ||
  fail "hand-off replay lacks replay_of: $(cat "$T/iam")"
[ "$($R HGET "ob:{$A2}:state" stage_attempts)" = 0 ] || fail "attempts not reset"
[ "$($R HGET "ob:{$A2}:state" status)" = replayed ] || fail "status not replayed"
[ "$($R HGET "ob:{$A2}:state" fence)" = 9 ] || fail "replay touched the fence"
"$CTL" replay --json >"$T/rp" 2>&1 || fail "second replay"
tail -1 "$T/rp" | grep -q '"replayed":0' || fail "second replay replayed again: $(tail -1 "$T/rp")"
"$CTL" replay --account "$A3" --force --json | tail -1 | grep -q '"replayed":1' ||
  fail "--force did not replay the connected account"
[ "$(kcat -C -b "$OB_TEST_KAFKA_BROKERS" -t "${OB_TOPIC_PREFIX}iam" -e -q 2>/dev/null | wc -l)" = 2 ] ||
  fail "forced replay not published"
"$CTL" replay --limit x >/dev/null 2>&1; [ $? = 2 ] || fail "bad --limit must exit 2"

# 8. retry: only for a waiting account; the control message goes to the
#    input topic of its stage, keyed by the account.
"$CTL" retry "$A1" >/dev/null 2>"$T/err"; [ $? = 1 ] || fail "retry of a non-waiting account"
grep -q 'not waiting' "$T/err" || fail "retry: $(cat "$T/err")"
$R HSET "ob:{$A1}:state" status waiting stage cur stage_attempts 2 >/dev/null
"$CTL" retry "$A1" --no-wait >/dev/null 2>"$T/err" || fail "retry: $(cat "$T/err")"
kcat -C -b "$OB_TEST_KAFKA_BROKERS" -t "${OB_TOPIC_PREFIX}cur" -e -q -f '%k %h %s\n' 2>/dev/null |
  grep -q "^$A1 .*ob-control=retry-now.*\"action\":\"retry-now\"" || fail "retry-now not on the cur topic"
$R DEL "ob:{$A1}:state" "ob:{$A2}:state" "ob:{$A3}:state" "ob:{$A1}:replays" "ob:{$A2}:replays" \
  "ob:{$A3}:replays" >/dev/null

# 9. lag, from the broker: grows while no worker runs, drains when one runs,
#    and the exit code says whether it is over a threshold.
if [ -n "${3:-}" ] && [ -n "${2:-}" ]; then
  export OB_TOPIC_PREFIX="ctll$$."
  for i in $(seq 1 12); do
    a=$(printf '2000000000%02d' "$i")
    printf '{"account_id":"%s","mode":"new","region":"us-east-1","role_arn":"%s"}\n' "$a" "$(printf "$ROLE" "$a")"
  done >"$T/lag.jsonl"
  "$CTL" enqueue "$T/lag.jsonl" --format jsonl 2>"$T/err" || fail "enqueue for lag: $(cat "$T/err")"
  "$CTL" lag --stage bucket --json >"$T/lag" 2>"$T/err" || fail "lag: $(cat "$T/err")"
  tail -1 "$T/lag" | grep -q "\"${OB_TOPIC_PREFIX}bucket\":{\"lag\":12," || fail "lag before any worker: $(tail -1 "$T/lag")"
  grep -q '"committed":-' "$T/lag" || fail "lag: no commit expected yet: $(cat "$T/lag")"
  "$CTL" lag --stage bucket --threshold 5 >/dev/null 2>&1; [ $? = 4 ] || fail "lag over the threshold must exit 4"
  "$CTL" lag --stage bucket --threshold 20 >/dev/null 2>&1 || fail "lag under the threshold must exit 0"
  rm -f "$T/sim.port"
  "$2" --port-file "$T/sim.port" --org-accounts 20 >"$T/sim2.log" 2>&1 &
  SIM=$!
  for _ in $(seq 1 100); do [ -s "$T/sim.port" ] && break; sleep 0.05; done
  AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$T/sim.port") AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE \
  AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AWS_REGION=us-east-1 \
  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
  OB_KAFKA_AUTO_COMMIT_INTERVAL_MS=200 OB_KAFKA_SESSION_TIMEOUT_MS=6000 \
    "$3" >"$T/worker.log" 2>&1 &
  WORKER=$!
  drained=0
  for _ in $(seq 1 60); do
    if "$CTL" lag --stage bucket --json 2>/dev/null | tail -1 | grep -q "\"${OB_TOPIC_PREFIX}bucket\":{\"lag\":0,"; then
      drained=1; break
    fi
    sleep 1
  done
  kill -TERM $WORKER; wait $WORKER; wrc=$?
  kill $SIM 2>/dev/null
  [ $drained = 1 ] || fail "lag did not drain with the worker running: $("$CTL" lag --stage bucket 2>&1 | tail -3); $(tail -5 "$T/worker.log")"
  [ $wrc = 0 ] || fail "the worker exited $wrc on SIGTERM"
  "$CTL" lag --stage bucket --json | grep -q '"committed":-' && fail "offsets were not committed to Kafka"
  "$CTL" enqueue "$T/lag.jsonl" --format jsonl 2>/dev/null
  "$CTL" lag --stage bucket --json | tail -1 | grep -q "\"${OB_TOPIC_PREFIX}bucket\":{\"lag\":12," ||
    fail "lag did not grow again with the worker stopped"
  "$CTL" lag --stage frob >/dev/null 2>&1; [ $? = 2 ] || fail "lag --stage frob must exit 2"
fi

# 10. Usage errors.
"$CTL" frobnicate >/dev/null 2>&1; [ $? = 2 ] || fail "unknown command must exit 2"
# (into a file: grep -q leaves a pipe at its first match, and the rest of the
# usage would meet a closed pipe)
"$CTL" --help >"$T/help.txt" && grep -q 'enqueue' "$T/help.txt" && grep -q 'verify' "$T/help.txt" ||
  fail "--help"
echo "onboardctl: all checks passed"
