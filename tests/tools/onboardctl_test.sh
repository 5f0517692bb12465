#!/usr/bin/env bash
# onboardctl against a real Kafka broker and Redis: validation with line
# numbers and exit code 3 (nothing sent), dry runs, enqueue from CSV and JSON
# lines (the messages really land on the intake topic, keyed by account, and
# parse with the workers' codec), status and summary from Redis state, dead
# letters listed, replayed (once) and waiting retries started; lag with the
# owner of each partition, and a missing topic or group an error; every
# command's --help and -o json, --version, and the settings from -b, -X,
# --config and the environment in that order of precedence.
#
#   onboardctl_test.sh ONBOARDCTL [AWSSIM [ONBOARD-BUCKET [OB-MOCKKAFKA]]]
set -uo pipefail
CTL=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
# The file $1 is one JSON document; with $2, a Python expression on it (d)
# that must hold.
json_is() {
  python3 - "$@" <<'PY' || fail "$1: $(head -c 600 "$1")"
import json, sys
d = json.load(open(sys.argv[1]))
if len(sys.argv) > 2 and not eval(sys.argv[2]):
    sys.exit("does not hold: " + sys.argv[2])
PY
}
if [ -z "${OB_TEST_KAFKA_BROKERS:-}" ] || [ -z "${OB_TEST_REDIS_PORT:-}" ]; then
  [ "${OB_TEST_REQUIRE_SERVICES:-}" = 1 ] && fail "Kafka and Redis are required"
  echo "SKIPPED: Kafka or Redis not available; run scripts/test.sh"; exit 77
fi
command -v kcat >/dev/null || { echo "SKIPPED: kcat missing"; exit 77; }
T=$(mktemp -d)
SIM=; WORKER=; MOCK=
cleanup() {
  [ -n "$WORKER" ] && kill "$WORKER" 2>/dev/null
  [ -n "$MOCK" ] && kill "$MOCK" 2>/dev/null
  [ -n "$SIM" ] && kill "$SIM" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
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
"$CTL" enqueue "$T/bad.csv" -o json >"$T/bad.json" 2>/dev/null; rc=$?
[ $rc = 3 ] || fail "bad rows -o json: exit $rc, want 3"
json_is "$T/bad.json" 'd["invalid"] == 3 and d["enqueued"] == 0 and [e["line"] for e in d["errors"]] == [3, 4, 5]'

# 2. Dry run: normalized requests on stdout, defaults filled, nothing sent.
{
  echo "account_id,mode,region,role_arn,bucket"
  for i in 1 2 3; do a=$(printf '1111222233%02d' "$i"); echo "$a,new,eu-west-1,$(printf "$ROLE" "$a"),"; done
} >"$T/good.csv"
"$CTL" enqueue "$T/good.csv" --dry-run >"$T/dry" 2>"$T/err" || fail "dry run failed: $(cat "$T/err")"
[ "$(wc -l <"$T/dry")" = 3 ] || fail "dry run printed $(wc -l <"$T/dry") lines"
grep -q '"time_unit":"HOURLY"' "$T/dry" || fail "defaults not filled in the dry run"
grep -q 'billing-cur-111122223301-eu-west-1' "$T/dry" || fail "default bucket name missing"
"$CTL" -o json enqueue "$T/good.csv" --dry-run >"$T/dry.json" 2>"$T/err" || fail "dry run -o json: $(cat "$T/err")"
json_is "$T/dry.json" 'd["dry_run"] and d["valid"] == 3 and len(d["requests"]) == 3 and d["requests"][0]["report"]["time_unit"] == "HOURLY"'

# 3. Enqueue CSV and JSON lines for real.
"$CTL" enqueue "$T/good.csv" 2>"$T/err" || fail "enqueue csv: $(cat "$T/err")"
printf '{"account_id":"444455556666","mode":"existing","region":"us-east-1","role_arn":"%s"}\n' \
  "$(printf "$ROLE" 444455556666)" | "$CTL" enqueue - --format jsonl 2>"$T/err" ||
  fail "enqueue jsonl: $(cat "$T/err")"
kcat -C -b "$OB_TEST_KAFKA_BROKERS" -t "${OB_TOPIC_PREFIX}requests" -e -q -f '%k %s\n' >"$T/got" 2>/dev/null
[ "$(wc -l <"$T/got")" = 4 ] || fail "$(wc -l <"$T/got") messages on the intake topic, want 4"
grep -q '^111122223302 {"schema":"onboard.request/1"' "$T/got" || fail "keyed request missing"
grep -q '^444455556666 .*"mode":"existing"' "$T/got" || fail "jsonl request missing"
# nothing but the result in a pipe: no progress line
grep -q 'of 3' "$T/err" && fail "a progress line in a pipe: $(cat "$T/err")"

# 4. status and summary read Redis.
redis-cli -p "$OB_TEST_REDIS_PORT" HSET 'ob:{777788889999}:state' stage iam status done fence 3 >/dev/null
redis-cli -p "$OB_TEST_REDIS_PORT" HSET 'ob:{777788889990}:state' stage bucket status failed error_code BucketAlreadyExists >/dev/null
"$CTL" status 777788889999 --json >"$T/st" || fail "status"
grep -q '"stage":"iam"' "$T/st" || fail "status json: $(cat "$T/st")"
grep -q fence "$T/st" && fail "status shows the fence"
json_is "$T/st" 'd["known"] and d["account_id"] == "777788889999" and d["history"] == []'
"$CTL" status 000000000001 | grep -q 'no onboarding state' || fail "unknown account"
"$CTL" status 000000000001 -o json >"$T/st" || fail "status of an unknown account"
json_is "$T/st" 'd == {"account_id": "000000000001", "known": False}' 
"$CTL" status 12 >/dev/null 2>&1; [ $? = 2 ] || fail "bad account id must exit 2"
"$CTL" summary --json >"$T/sum" || fail "summary"
grep -q '"iam/done":' "$T/sum" || fail "summary: $(cat "$T/sum")"
grep -q '"bucket/failed":' "$T/sum" || fail "summary lacks bucket/failed"
json_is "$T/sum" 'd["by_stage_status"]["iam/done"] >= 1'
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
  kill $SIM; SIM=
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
json_is "$T/dlq" 'len(d["dead_letters"]) == 2 and d["matching"] == 2 and d["by_stage_code"]["bucket/BucketAlreadyExists"] == 1'
[ "$(wc -l <"$T/dlq")" = 1 ] || fail "dlq list -o json: one document on one line"
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
json_is "$T/rp" 'any(r["action"] == "refused" and r["stage"] == "intake" and "class invalid_input" in r["reason"] for r in d["results"])'
json_is "$T/rp" 'any(r["action"] == "skipped" and r["account_id"] == "'"$A3"'" and "connected" in r["reason"] for r in d["results"])'
json_is "$T/rp" 'd["dry_run"] and len(d["results"]) == 4' 
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
"$CTL" retry "$A1" --no-wait -o json >"$T/retry" 2>"$T/err" || fail "retry: $(cat "$T/err")"
json_is "$T/retry" 'd["account_id"] == "'"$A1"'" and d["topic"].endswith("cur") and not d["waited"] and not d["retrying"]' 
kcat -C -b "$OB_TEST_KAFKA_BROKERS" -t "${OB_TOPIC_PREFIX}cur" -e -q -f '%k %h %s\n' 2>/dev/null |
  grep -q "^$A1 .*ob-control=retry-now.*\"action\":\"retry-now\"" || fail "retry-now not on the cur topic"
$R DEL "ob:{$A1}:state" "ob:{$A2}:state" "ob:{$A3}:state" "ob:{$A1}:replays" "ob:{$A2}:replays" \
  "ob:{$A3}:replays" >/dev/null

# 9. lag, from the broker: grows while no worker runs (its group does not
#    exist yet: the lag counts from the log's start), drains when one runs,
#    names the member that owns each partition, and the exit code says
#    whether it is over a threshold. A missing topic or group is an error.
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
  json_is "$T/lag" 'd["groups"]["'"${OB_TOPIC_PREFIX}"'bucket"]["state"] == "Dead" and all(p["consumer_id"] is None for p in d["partitions"])'
  # a topic that does not exist: an error, not "within the threshold"
  OB_TOPIC_PREFIX="nosuch$$." "$CTL" lag --stage bucket --threshold 5 >"$T/out" 2>"$T/err"; rc=$?
  [ $rc = 7 ] || fail "lag on a missing topic: exit $rc, want 7: $(cat "$T/out" "$T/err")"
  grep -q "topic nosuch$$.requests does not exist" "$T/err" || fail "missing topic not named: $(cat "$T/err")"
  grep -q 'within the threshold' "$T/out" && fail "a missing topic read as within the threshold"
  OB_TOPIC_PREFIX="nosuch$$." "$CTL" lag >/dev/null 2>&1; [ $? = 7 ] || fail "lag (every stage) on missing topics must exit 7"
  # a group that does not exist, named: an error
  "$CTL" lag --group "nosuch-$$" >"$T/out" 2>"$T/err"; rc=$?
  [ $rc = 7 ] || fail "lag --group on a missing group: exit $rc, want 7"
  grep -q "consumer group nosuch-$$ does not exist" "$T/err" || fail "missing group not named: $(cat "$T/err")"
  "$CTL" lag --group "nosuch-$$" -o json >"$T/out" 2>/dev/null; [ $? = 7 ] || fail "lag --group -o json: exit"
  json_is "$T/out" 'd["partitions"] == [] and d["groups"] == {}'
  rm -f "$T/sim.port"
  "$2" --port-file "$T/sim.port" --org-accounts 20 >"$T/sim2.log" 2>&1 &
  SIM=$!
  for _ in $(seq 1 100); do [ -s "$T/sim.port" ] && break; sleep 0.05; done
  AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$T/sim.port") AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE \
  AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AWS_REGION=us-east-1 \
  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
  OB_KAFKA_AUTO_COMMIT_INTERVAL_MS=200 OB_KAFKA_SESSION_TIMEOUT_MS=6000 \
  OB_KAFKA_CLIENT_ID=ctl-test-bucket \
    "$3" >"$T/worker.log" 2>&1 &
  WORKER=$!
  drained=0
  for _ in $(seq 1 60); do
    if "$CTL" lag --stage bucket --json 2>/dev/null | tail -1 | grep -q "\"${OB_TOPIC_PREFIX}bucket\":{\"lag\":0,"; then
      drained=1; break
    fi
    sleep 1
  done
  # the owner of each partition: the worker, as Kafka knows it
  "$CTL" lag --stage bucket -o json >"$T/own" 2>"$T/err" || fail "lag with a member: $(cat "$T/err")"
  json_is "$T/own" 'all(p["client_id"] == "ctl-test-bucket" and p["consumer_id"].startswith("ctl-test-bucket-") and p["host"] for p in d["partitions"]) and d["groups"]["'"${OB_TOPIC_PREFIX}"'bucket"]["members"] == 1'
  "$CTL" lag --stage bucket >"$T/own.txt" 2>&1
  grep -q 'CONSUMER-ID *HOST *CLIENT-ID' "$T/own.txt" || fail "lag: no owner columns: $(cat "$T/own.txt")"
  [ "$(grep -c ' ctl-test-bucket-[0-9a-f-]* .* ctl-test-bucket$' "$T/own.txt")" = 4 ] ||
    fail "lag: the owner of every partition: $(cat "$T/own.txt")"
  "$CTL" lag --group "${OB_TOPIC_PREFIX}bucket" --topic "${OB_TOPIC_PREFIX}requests" -o json >"$T/own" ||
    fail "lag --group --topic"
  json_is "$T/own" 'len(d["partitions"]) == 4 and d["partitions"][0]["client_id"] == "ctl-test-bucket"'
  kill -TERM $WORKER; wait $WORKER; wrc=$?; WORKER=
  kill $SIM 2>/dev/null; SIM=
  [ $drained = 1 ] || fail "lag did not drain with the worker running: $("$CTL" lag --stage bucket 2>&1 | tail -3); $(tail -5 "$T/worker.log")"
  [ $wrc = 0 ] || fail "the worker exited $wrc on SIGTERM"
  "$CTL" lag --stage bucket --json | grep -q '"committed":-' && fail "offsets were not committed to Kafka"
  "$CTL" enqueue "$T/lag.jsonl" --format jsonl 2>/dev/null
  "$CTL" lag --stage bucket --json | tail -1 | grep -q "\"${OB_TOPIC_PREFIX}bucket\":{\"lag\":12," ||
    fail "lag did not grow again with the worker stopped"
  "$CTL" lag --stage frob >/dev/null 2>&1; [ $? = 2 ] || fail "lag --stage frob must exit 2"
  # the group exists without members now: every topic it committed offsets for
  "$CTL" lag --group "${OB_TOPIC_PREFIX}bucket" -o json >"$T/grp" || fail "lag --group of an empty group"
  json_is "$T/grp" 'len(d["partitions"]) == 4 and all(p["consumer_id"] is None for p in d["partitions"]) and d["groups"]["'"${OB_TOPIC_PREFIX}"'bucket"]["state"] == "Empty"'
  "$CTL" lag --group "${OB_TOPIC_PREFIX}bucket" --topic "nosuch$$" >/dev/null 2>&1; [ $? = 7 ] ||
    fail "lag --topic of a missing topic must exit 7"
fi

# 10. Usage: every command's own --help (stdout, exit 0, naming it), the
#     version, usage errors.
"$CTL" frobnicate >/dev/null 2>&1; [ $? = 2 ] || fail "unknown command must exit 2"
# (into a file: grep -q leaves a pipe at its first match, and the rest of the
# usage would meet a closed pipe)
"$CTL" --help >"$T/help.txt" && grep -q 'enqueue' "$T/help.txt" && grep -q 'verify' "$T/help.txt" ||
  fail "--help"
for cmd in enqueue offboard verify status summary dlq replay retry lag check rebuild version; do
  for h in --help -h; do
    OB_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1 "$CTL" $cmd $h >"$T/help.txt" 2>"$T/err"; rc=$?
    [ $rc = 0 ] || fail "$cmd $h: exit $rc: $(cat "$T/err")"
    grep -q "^usage: onboardctl $cmd" "$T/help.txt" || fail "$cmd $h does not name it: $(head -3 "$T/help.txt")"
    [ -s "$T/err" ] && fail "$cmd $h wrote on stderr: $(cat "$T/err")"
  done
done
"$CTL" dlq list --help >"$T/help.txt" && grep -q '^usage: onboardctl dlq list' "$T/help.txt" ||
  fail "dlq list --help"
"$CTL" help lag >"$T/help.txt" && grep -q '^usage: onboardctl lag' "$T/help.txt" || fail "help lag"
grep -q 'client id' "$T/help.txt" || fail "lag --help does not tell the owner columns"
"$CTL" --version >"$T/v" || fail "--version"
grep -Eq '^onboardctl [0-9]+\.[0-9]+\.[0-9]+ \(librdkafka [0-9.]+\)$' "$T/v" || fail "--version: $(cat "$T/v")"
"$CTL" version -o json >"$T/v" || fail "version -o json"
json_is "$T/v" 'd["version"].count(".") == 2 and d["librdkafka"]'
"$CTL" summary --output yaml >/dev/null 2>&1; [ $? = 2 ] || fail "--output yaml must exit 2"

# 11. Settings: -b over the environment, -X (a librdkafka property, a fleet
#     setting), --config FILE; flags over the environment over the file.
export OB_TOPIC_PREFIX="ctls$$."
"$CTL" enqueue "$T/good.csv" 2>"$T/err" || fail "enqueue for the settings: $(cat "$T/err")"
for b in "-b $OB_TEST_KAFKA_BROKERS" "--bootstrap-server $OB_TEST_KAFKA_BROKERS" \
         "--bootstrap-server=$OB_TEST_KAFKA_BROKERS"; do
  OB_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1 timeout 60 "$CTL" $b lag --stage bucket -o json \
    >"$T/out" 2>"$T/err" || fail "$b did not override OB_KAFKA_BOOTSTRAP_SERVERS: $(cat "$T/err")"
  json_is "$T/out" 'd["groups"]["'"$OB_TOPIC_PREFIX"'bucket"]["lag"] == 3'
done
# (after the command too)
OB_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1 timeout 60 "$CTL" check -b "$OB_TEST_KAFKA_BROKERS" \
  >/dev/null 2>"$T/err"; [ $? = 5 ] || fail "check -b: $(cat "$T/err")"
OB_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1 timeout 60 "$CTL" -X "bootstrap.servers=$OB_TEST_KAFKA_BROKERS" \
  lag --stage bucket >/dev/null 2>"$T/err" || fail "-X bootstrap.servers: $(cat "$T/err")"
OB_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1 timeout 60 "$CTL" -X "kafka.bootstrap.servers=$OB_TEST_KAFKA_BROKERS" \
  lag --stage bucket >/dev/null 2>"$T/err" || fail "-X kafka.bootstrap.servers: $(cat "$T/err")"
"$CTL" -X bogus.property=1 summary >/dev/null 2>"$T/err"; rc=$?
[ $rc = 2 ] || fail "-X bogus.property: exit $rc, want 2"
grep -q 'bogus.property.*No such configuration property' "$T/err" || fail "-X bogus: $(cat "$T/err")"
"$CTL" summary -X socket.timeout.ms=abc >/dev/null 2>"$T/err"; [ $? = 2 ] || fail "-X bad value must exit 2"
grep -q "socket.timeout.ms" "$T/err" || fail "-X bad value not named: $(cat "$T/err")"
"$CTL" -X redis.port=0 summary >/dev/null 2>"$T/err"; [ $? = 2 ] || fail "-X redis.port=0 must exit 2"
grep -q 'redis.port (from -X): 0 is out of bounds' "$T/err" || fail "-X redis.port=0: $(cat "$T/err")"
"$CTL" -X nokeyvalue summary >/dev/null 2>&1; [ $? = 2 ] || fail "-X without = must exit 2"
# a fleet setting from -X over the environment's
"$CTL" lag --stage bucket -X "topic.prefix=nosuch$$." >/dev/null 2>&1; [ $? = 7 ] ||
  fail "-X topic.prefix did not override OB_TOPIC_PREFIX"
# the file: below the environment, above the defaults
printf '# as the workers read it\ntopic.prefix = %s\nkafka.bootstrap.servers = %s\nredis.port = %s\n' \
  "$OB_TOPIC_PREFIX" "$OB_TEST_KAFKA_BROKERS" "$OB_TEST_REDIS_PORT" >"$T/ctl.conf"
env -u OB_TOPIC_PREFIX -u OB_KAFKA_BOOTSTRAP_SERVERS -u OB_REDIS_PORT \
  "$CTL" --config "$T/ctl.conf" lag --stage bucket -o json >"$T/out" 2>"$T/err" ||
  fail "--config: $(cat "$T/err")"
json_is "$T/out" '"'"$OB_TOPIC_PREFIX"'bucket" in d["groups"]'
OB_TOPIC_PREFIX="nosuch$$." "$CTL" --config "$T/ctl.conf" lag --stage bucket >/dev/null 2>&1
[ $? = 7 ] || fail "the environment must override the file"
OB_TOPIC_PREFIX="nosuch$$." "$CTL" --config "$T/ctl.conf" -X "topic.prefix=$OB_TOPIC_PREFIX" \
  lag --stage bucket >/dev/null 2>"$T/err" || fail "-X must override the environment: $(cat "$T/err")"
OB_CONFIG_FILE="$T/ctl.conf" env -u OB_TOPIC_PREFIX "$CTL" lag --stage bucket >/dev/null 2>"$T/err" ||
  fail "OB_CONFIG_FILE: $(cat "$T/err")"
"$CTL" --config "$T/none.conf" summary >/dev/null 2>"$T/err"; [ $? = 2 ] || fail "a missing --config file must exit 2"
grep -q "none.conf" "$T/err" || fail "the missing file not named: $(cat "$T/err")"
printf 'redis.prot = 1\n' >"$T/typo.conf"
"$CTL" --config "$T/typo.conf" summary >/dev/null 2>"$T/err"; [ $? = 2 ] || fail "a typo in --config must exit 2"
grep -q 'typo.conf:1: unknown setting "redis.prot"' "$T/err" || fail "typo: $(cat "$T/err")"

# 12. -o json: one JSON document from every command.
A=111122223301
redis-cli -p "$OB_TEST_REDIS_PORT" HSET "ob:{$A}:state" stage bucket status waiting stage_attempts 1 >/dev/null
python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), separators=(",",":")).replace("123456789012", sys.argv[2]))' \
  "$EX/bucket-already-exists.json" "$A" | kcat -P -b "$OB_TEST_KAFKA_BROKERS" -t "${OB_TOPIC_PREFIX}dlq" 2>/dev/null
json_of() { # EXIT ARGS...: onboardctl ARGS -o json exits EXIT and prints one document
  local want=$1; shift
  "$CTL" "$@" -o json >"$T/j" 2>"$T/jerr"; local rc=$?
  [ $rc = "$want" ] || fail "$* -o json: exit $rc, want $want: $(cat "$T/jerr")"
  [ "$(wc -l <"$T/j")" = 1 ] || fail "$* -o json: not one line: $(head -c 300 "$T/j")"
  json_is "$T/j"
}
json_of 0 enqueue "$T/good.csv" --dry-run
json_of 0 enqueue "$T/good.csv"
json_of 0 offboard "$A" --region eu-west-1 --dry-run
json_of 0 status "$A"
json_of 0 summary
json_of 0 dlq list
json_of 0 replay --dry-run
json_of 0 retry "$A" --no-wait
json_of 0 lag --stage bucket
json_of 7 lag # (cur, iam, connect: no such topics)
json_of 5 check
json_of 0 rebuild --dry-run
json_of 0 verify "$A"
json_of 0 version
redis-cli -p "$OB_TEST_REDIS_PORT" DEL "ob:{$A}:state" >/dev/null

# 13. lag on the quickstart's Kafka (librdkafka's mock cluster), which does
#     not describe consumer groups: the lag without owners, said so, exit 0
#     (and no abort: librdkafka's admin requests to a coordinator abort on it).
if [ -n "${4:-}" ]; then
  "$4" --partitions 2 --prefix "mock$$." --bootstrap-file "$T/mock.bs" >"$T/mock.log" 2>&1 &
  MOCK=$!
  for _ in $(seq 1 100); do [ -s "$T/mock.bs" ] && break; sleep 0.05; done
  MB=$(sed 's/^bootstrap.servers=//' "$T/mock.bs")
  "$CTL" -b "$MB" -X "topic.prefix=mock$$." enqueue "$T/good.csv" 2>"$T/err" || fail "enqueue to the mock: $(cat "$T/err")"
  timeout 60 "$CTL" -b "$MB" -X "topic.prefix=mock$$." lag --threshold 2 -o json >"$T/out" 2>"$T/err"; rc=$?
  [ $rc = 4 ] || fail "lag on the mock cluster: exit $rc, want 4: $(cat "$T/err")"
  json_is "$T/out" 'd["groups"]["mock'"$$"'.bucket"] == {"lag": 3, "max_lag_seconds": d["groups"]["mock'"$$"'.bucket"]["max_lag_seconds"], "members": 0, "state": "Unknown"}'
  grep -q 'did not describe the consumer groups' "$T/err" || fail "lag on the mock: $(cat "$T/err")"
  kill "$MOCK"; MOCK=
fi
echo "onboardctl: all checks passed"
