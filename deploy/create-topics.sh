#!/bin/sh
# Create the fleet's eight topics with Kafka's own kafka-topics.sh; safe to run
# again (existing topics are kept as they are, and a topic with fewer
# partitions than asked is reported, never altered: adding partitions moves
# accounts to other partitions, which breaks the per-account order while
# messages are in flight).
#
# docker-compose.yml runs it in the apache/kafka image as the one-shot
# `topics` service; it works against any cluster the kafka-topics.sh in
# $KAFKA_BIN reaches. It reads the same OB_* variables as the workers:
#
#   OB_KAFKA_BOOTSTRAP_SERVERS            brokers (required)
#   OB_KAFKA_SECURITY_PROTOCOL            plaintext | ssl | sasl_plaintext | sasl_ssl
#   OB_KAFKA_SASL_MECHANISMS              PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
#   OB_KAFKA_SASL_USERNAME, OB_KAFKA_SASL_PASSWORD
#   OB_KAFKA_SSL_CA_LOCATION              PEM file of the CA (else the JVM's)
#   OB_KAFKA_SSL_CERTIFICATE_LOCATION, OB_KAFKA_SSL_KEY_LOCATION
#                                         client certificate and PKCS#8 key (mTLS)
#   OB_TOPIC_PREFIX                       default "onboard."
# and its own:
#   OB_TOPIC_PARTITIONS                   requests, cur, iam, connect (default 12)
#   OB_TOPIC_CONNECTED_PARTITIONS         connected (default 12)
#   OB_TOPIC_DLQ_PARTITIONS               dlq (default 3)
#   OB_TOPIC_REPLICATION_FACTOR           default: the broker's default.replication.factor
#   OB_TOPIC_DLQ_RETENTION_MS             default 2592000000 (30 days: dead letters
#                                         wait for an operator's replay)
#   OB_TOPICS_WAIT                        seconds to wait for the brokers (default 180;
#                                         docker-compose.yml's job relies on it rather
#                                         than on the local broker's health)
#   KAFKA_BIN                             default /opt/kafka/bin
set -eu

BIN=${KAFKA_BIN:-/opt/kafka/bin}
BOOT=${OB_KAFKA_BOOTSTRAP_SERVERS:?OB_KAFKA_BOOTSTRAP_SERVERS is required}
PREFIX=${OB_TOPIC_PREFIX-onboard.}
STAGE_P=${OB_TOPIC_PARTITIONS:-12}
CONNECTED_P=${OB_TOPIC_CONNECTED_PARTITIONS:-12}
DLQ_P=${OB_TOPIC_DLQ_PARTITIONS:-3}
RF=${OB_TOPIC_REPLICATION_FACTOR:-}
DLQ_RETENTION=${OB_TOPIC_DLQ_RETENTION_MS:-2592000000}
WAIT=${OB_TOPICS_WAIT:-180}

log() { echo "topics: $*" >&2; }

for n in "$STAGE_P" "$CONNECTED_P" "$DLQ_P" "$WAIT" "$DLQ_RETENTION" ${RF:+"$RF"}; do
  case $n in '' | *[!0-9]*) log "not a positive integer: '$n'"; exit 2 ;; esac
done

# The Java client's settings, from the librdkafka ones the workers use.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PROPS=$WORK/client.properties
: >"$PROPS"
chmod 600 "$PROPS"
proto=$(printf '%s' "${OB_KAFKA_SECURITY_PROTOCOL:-plaintext}" | tr '[:lower:]' '[:upper:]')
echo "security.protocol=$proto" >>"$PROPS"
case $proto in
  SASL_*)
    mech=$(printf '%s' "${OB_KAFKA_SASL_MECHANISMS:-PLAIN}" | tr '[:lower:]' '[:upper:]')
    case $mech in
      PLAIN) module=org.apache.kafka.common.security.plain.PlainLoginModule ;;
      SCRAM-SHA-256 | SCRAM-SHA-512) module=org.apache.kafka.common.security.scram.ScramLoginModule ;;
      *) log "SASL mechanism $mech is not supported here (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"; exit 2 ;;
    esac
    # JAAS quoting: backslash and double quote escaped; properties: backslash doubled.
    jaas_quote() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\\/\\\\/g'; }
    {
      echo "sasl.mechanism=$mech"
      printf 'sasl.jaas.config=%s required username="%s" password="%s";\n' "$module" \
        "$(jaas_quote "${OB_KAFKA_SASL_USERNAME:-}")" "$(jaas_quote "${OB_KAFKA_SASL_PASSWORD:-}")"
    } >>"$PROPS"
    ;;
esac
case $proto in
  *SSL)
    if [ -n "${OB_KAFKA_SSL_CA_LOCATION:-}" ]; then
      printf 'ssl.truststore.type=PEM\nssl.truststore.location=%s\n' "$OB_KAFKA_SSL_CA_LOCATION" >>"$PROPS"
    fi
    if [ -n "${OB_KAFKA_SSL_CERTIFICATE_LOCATION:-}" ] && [ -n "${OB_KAFKA_SSL_KEY_LOCATION:-}" ]; then
      cat "$OB_KAFKA_SSL_KEY_LOCATION" "$OB_KAFKA_SSL_CERTIFICATE_LOCATION" >"$WORK/keystore.pem"
      printf 'ssl.keystore.type=PEM\nssl.keystore.location=%s\n' "$WORK/keystore.pem" >>"$PROPS"
    fi
    ;;
esac

topics() { "$BIN/kafka-topics.sh" --bootstrap-server "$BOOT" --command-config "$PROPS" "$@"; }

log "waiting for the brokers at $BOOT (up to ${WAIT}s)"
start=$(date +%s)
until topics --list >/dev/null 2>"$WORK/err"; do
  if [ $(($(date +%s) - start)) -ge "$WAIT" ]; then
    log "brokers at $BOOT not reachable after ${WAIT}s:"
    tail -5 "$WORK/err" >&2
    exit 1
  fi
  sleep 2
done

existing=$(topics --list)
failed=0
create() { # NAME PARTITIONS [--config k=v ...]
  name=$PREFIX$1 parts=$2
  shift 2
  if printf '%s\n' "$existing" | grep -qxF "$name"; then
    have=$(topics --describe --topic "$name" | grep -c 'Partition: ' || true)
    if [ "$have" -lt "$parts" ]; then
      log "WARNING: $name exists with $have partitions (< $parts asked); left unchanged"
    else
      log "$name exists ($have partitions)"
    fi
    return 0
  fi
  if topics --create --if-not-exists --topic "$name" --partitions "$parts" \
      ${RF:+--replication-factor "$RF"} "$@" >/dev/null; then
    log "$name created ($parts partitions, replication factor ${RF:-the cluster default})"
  else
    log "ERROR: could not create $name"
    failed=1
  fi
}

for t in requests cur iam connect verify; do create "$t" "$STAGE_P"; done
create connected "$CONNECTED_P"
create drift "$CONNECTED_P"
create dlq "$DLQ_P" --config "retention.ms=$DLQ_RETENTION"

if [ "$failed" -ne 0 ]; then exit 1; fi
log "all eight topics present under prefix '$PREFIX'"
