#!/usr/bin/env bash
# The fleet over Kafka TLS: onboardctl and a worker reach the broker only
# through its TLS listener (certificates made with openssl by
# scripts/services.sh), configured with the same settings as in production
# (kafka.security.protocol=ssl, kafka.ssl.ca.location). Requests enqueued over
# TLS are onboarded by the bucket worker over TLS (its hand-offs land on the
# cur topic, read back over plaintext), the lag drains, and a client that
# does not trust the broker's CA is refused with a clear error.
#
#   kafka_tls_test.sh ONBOARDCTL AWSSIM ONBOARD-BUCKET
set -uo pipefail
CTL=$1 SIMBIN=$2 WORKER=$3
fail() { echo "FAIL: $*" >&2; exit 1; }
if [ -z "${OB_TEST_KAFKA_TLS_BROKERS:-}" ] || [ -z "${OB_TEST_REDIS_PORT:-}" ]; then
  [ "${OB_TEST_REQUIRE_SERVICES:-}" = 1 ] && fail "the broker's TLS listener and Redis are required"
  echo "SKIPPED: no Kafka TLS listener (OB_TEST_KAFKA_TLS_BROKERS); run scripts/test.sh"; exit 77
fi
T=$(mktemp -d)
SIM=; WPID=
cleanup() { [ -n "$WPID" ] && kill "$WPID" 2>/dev/null; [ -n "$SIM" ] && kill "$SIM" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
export OB_KAFKA_BOOTSTRAP_SERVERS=$OB_TEST_KAFKA_TLS_BROKERS
export OB_KAFKA_SECURITY_PROTOCOL=ssl OB_KAFKA_SSL_CA_LOCATION=$OB_TEST_KAFKA_TLS_CA
export OB_REDIS_PORT=$OB_TEST_REDIS_PORT OB_TOPIC_PREFIX="tls$$."
ROLE='arn:aws:iam::%s:role/OrganizationAccountAccessRole'

for i in $(seq 1 6); do
  a=$(printf '2000000000%02d' "$i")
  # a fresh simulator: what earlier tests recorded for these accounts is gone
  redis-cli -p "$OB_TEST_REDIS_PORT" DEL "ob:{$a}:state" >/dev/null
  printf '{"account_id":"%s","mode":"new","region":"us-east-1","role_arn":"%s"}\n' "$a" "$(printf "$ROLE" "$a")"
done >"$T/req.jsonl"
"$CTL" enqueue "$T/req.jsonl" --format jsonl 2>"$T/err" || fail "enqueue over TLS: $(cat "$T/err")"
"$CTL" lag --stage bucket --json 2>"$T/err" | tail -1 | grep -q "\"${OB_TOPIC_PREFIX}bucket\":{\"lag\":6," ||
  fail "lag over TLS: $(cat "$T/err")"

"$SIMBIN" --port-file "$T/sim.port" --org-accounts 10 >"$T/sim.log" 2>&1 &
SIM=$!
for _ in $(seq 1 100); do [ -s "$T/sim.port" ] && break; sleep 0.05; done
AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$T/sim.port") AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE \
AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AWS_REGION=us-east-1 \
AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
OB_KAFKA_AUTO_COMMIT_INTERVAL_MS=200 "$WORKER" >"$T/worker.log" 2>&1 &
WPID=$!
drained=0
for _ in $(seq 1 60); do
  if "$CTL" lag --stage bucket --json 2>/dev/null | tail -1 | grep -q "\"${OB_TOPIC_PREFIX}bucket\":{\"lag\":0,"; then
    drained=1; break
  fi
  sleep 1
done
[ $drained = 1 ] || fail "the worker did not drain the lag over TLS: $(tail -5 "$T/worker.log")"
kill -TERM "$WPID"; wait "$WPID"; rc=$?; WPID=
[ $rc = 0 ] || fail "worker exit $rc on SIGTERM"
n=$(kcat -C -b "$OB_TEST_KAFKA_TLS_BROKERS" -X security.protocol=ssl -X ssl.ca.location="$OB_TEST_KAFKA_TLS_CA" \
     -t "${OB_TOPIC_PREFIX}cur" -e -q 2>/dev/null | wc -l)
[ "$n" = 6 ] || fail "$n hand-offs on the cur topic, want 6"

# A client that does not trust the broker's CA is refused, with the reason.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=other CA" \
  -keyout "$T/other.key" -out "$T/other.pem" 2>/dev/null
OB_KAFKA_SSL_CA_LOCATION=$T/other.pem timeout 60 "$CTL" lag --stage bucket >/dev/null 2>"$T/err"
rc=$?
[ $rc = 1 ] || fail "an untrusted broker certificate: exit $rc, want 1"
grep -qi 'certificate\|ssl\|handshake\|timed out' "$T/err" || fail "no reason given: $(cat "$T/err")"
echo "kafka tls: all checks passed"
