#!/usr/bin/env bash
# Start and stop the real services the tests and the local stack use:
# a single-node Apache Kafka broker in KRaft mode (jars from Maven Central,
# cached) with a plaintext and a TLS listener (a CA and certificate made with
# openssl at first start), redis-server, and moto (an independent AWS
# implementation), each on free loopback ports, with all state in one run
# directory.
#
#   scripts/services.sh start RUNDIR [kafka] [redis] [moto]   # default: all
#   scripts/services.sh stop RUNDIR
#   scripts/services.sh env RUNDIR        # prints export lines for the tests
#   scripts/services.sh restart-redis RUNDIR | restart-kafka RUNDIR
#   scripts/services.sh start RUNDIR kafka_cluster   # three brokers (RF 3, min ISR 2)
#   scripts/services.sh kill-broker RUNDIR N | start-broker RUNDIR N   # N: 1-3
#   scripts/services.sh start RUNDIR redis_ha   # TLS primary, replica and Sentinel
#   scripts/services.sh failover-redis RUNDIR [switch|kill]   # the replica promoted
#
# Readiness is asked of the services themselves (kcat -L, redis-cli PING),
# never assumed after a sleep.
#
# OB_TEST_KAFKA_PARTITIONS (4): partitions of the topics the broker creates.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${OB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/onboard}
KAFKA_LIBS=$CACHE/kafka-3.9.1/libs

log() { echo "services: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

kafka_jars() {
  if [ -f "$KAFKA_LIBS/.complete" ]; then return 0; fi
  log "fetching the Kafka broker jars into $KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS"
  (cd "$HERE/kafka" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$KAFKA_LIBS") >&2
  ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null
  touch "$KAFKA_LIBS/.complete"
}

wait_kafka() {
  local brokers=$1 deadline=$((SECONDS + ${2:-90}))
  until kcat -b "$brokers" -L -m 2 >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then log "Kafka at $brokers not ready"; return 1; fi
    sleep 0.5
  done
}

# A CA and a broker certificate for the TLS listener, made with openssl.
kafka_tls_certs() {
  local tls=$1
  [ -f "$tls/broker.pem" ] && return 0
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=onboard test CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$tls/broker.key" -out "$tls/broker.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls/san.ext"
  openssl x509 -req -in "$tls/broker.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
    -CAcreateserial -days 30 -extfile "$tls/san.ext" -out "$tls/broker.crt" 2>/dev/null
  # Kafka's PEM key store: the PKCS#8 key, then the certificate chain.
  openssl pkcs8 -topk8 -nocrypt -in "$tls/broker.key" -out "$tls/broker.p8" 2>/dev/null
  cat "$tls/broker.p8" "$tls/broker.crt" "$tls/ca.pem" >"$tls/broker.pem"
}

start_kafka() {
  local dir=$1/kafka
  kafka_jars
  mkdir -p "$dir"
  local port cport sport
  if [ -f "$dir/port" ]; then port=$(cat "$dir/port"); cport=$(cat "$dir/cport"); else
    port=$(free_port); cport=$(free_port)
    while [ "$cport" = "$port" ]; do cport=$(free_port); done
    echo "$port" >"$dir/port"; echo "$cport" >"$dir/cport"
  fi
  if [ -f "$dir/sport" ]; then sport=$(cat "$dir/sport"); else
    sport=$(free_port)
    while [ "$sport" = "$port" ] || [ "$sport" = "$cport" ]; do sport=$(free_port); done
    echo "$sport" >"$dir/sport"
  fi
  kafka_tls_certs "$dir/tls"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport,SSL://127.0.0.1:$sport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SSL://127.0.0.1:$sport
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL
ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/broker.pem
ssl.client.auth=none
log.dirs=$dir/data
num.partitions=${OB_TEST_KAFKA_PARTITIONS:-4}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=24
PROPS
  cat >"$dir/log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
PROPS
  local cp="$KAFKA_LIBS/*"
  if [ ! -f "$dir/data/meta.properties" ]; then
    local id
    id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    java -cp "$cp" -Dlog4j.configuration="file:$dir/log4j.properties" kafka.tools.StorageTool \
      format -t "$id" -c "$dir/server.properties" >"$dir/format.log" 2>&1
  fi
  nohup java -Xmx512m -Xms256m -XX:+UseSerialGC -Dlog4j.configuration="file:$dir/log4j.properties" \
    -cp "$cp" kafka.Kafka "$dir/server.properties" >>"$dir/broker.log" 2>&1 &
  echo $! >"$dir/pid"
  if ! wait_kafka "127.0.0.1:$port" 120; then tail -30 "$dir/broker.log" >&2; return 1; fi
  log "Kafka ready at 127.0.0.1:$port (pid $(cat "$dir/pid"))"
}

# A cluster of three KRaft brokers (combined broker and controller roles),
# replication factor 3 and min.insync.replicas 2, so that one broker can be
# killed mid-run: leaders move and transactional producers carry on.
cluster_node_dir() { echo "$1/kcluster/n$2"; }

start_kafka_cluster() {
  local base=$1/kcluster
  kafka_jars
  mkdir -p "$base"
  local n voters=""
  for n in 1 2 3; do
    local d; d=$(cluster_node_dir "$1" $n)
    mkdir -p "$d"
    if [ ! -f "$d/port" ]; then
      free_port >"$d/port"
      free_port >"$d/cport"
    fi
    voters="$voters${voters:+,}$n@127.0.0.1:$(cat "$d/cport")"
  done
  local cp="$KAFKA_LIBS/*"
  if [ ! -f "$base/cluster.id" ]; then
    java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1 >"$base/cluster.id"
  fi
  for n in 1 2 3; do
    local d; d=$(cluster_node_dir "$1" $n)
    cat >"$d/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(cat "$d/port"),CONTROLLER://127.0.0.1:$(cat "$d/cport")
advertised.listeners=PLAINTEXT://127.0.0.1:$(cat "$d/port")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$d/data
num.partitions=${OB_TEST_KAFKA_PARTITIONS:-4}
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=24
PROPS
    cp "$HERE/kafka/log4j.properties" "$d/log4j.properties" 2>/dev/null ||
      printf 'log4j.rootLogger=WARN, stdout\nlog4j.appender.stdout=org.apache.log4j.ConsoleAppender\nlog4j.appender.stdout.layout=org.apache.log4j.PatternLayout\nlog4j.appender.stdout.layout.ConversionPattern=[%%d] %%p %%m (%%c)%%n\n' >"$d/log4j.properties"
    if [ ! -f "$d/data/meta.properties" ]; then
      java -cp "$cp" -Dlog4j.configuration="file:$d/log4j.properties" kafka.tools.StorageTool \
        format -t "$(cat "$base/cluster.id")" -c "$d/server.properties" >"$d/format.log" 2>&1
    fi
  done
  for n in 1 2 3; do start_cluster_broker "$1" $n nowait; done
  local all
  all=$(cluster_bootstrap "$1")
  local deadline=$((SECONDS + 180))
  until [ "$(kcat -b "$all" -L -m 2 2>/dev/null | grep -c '^  broker [0-9]')" = 3 ]; do
    if [ $SECONDS -ge $deadline ]; then
      log "the Kafka cluster at $all did not come up with three brokers"
      tail -20 "$(cluster_node_dir "$1" 1)/broker.log" >&2
      return 1
    fi
    sleep 0.5
  done
  log "Kafka cluster ready at $all"
}

cluster_bootstrap() {
  local n out=""
  for n in 1 2 3; do out="$out${out:+,}127.0.0.1:$(cat "$(cluster_node_dir "$1" $n)/port")"; done
  echo "$out"
}

start_cluster_broker() {
  local d; d=$(cluster_node_dir "$1" "$2")
  local cp="$KAFKA_LIBS/*"
  nohup java -Xmx512m -Xms256m -XX:+UseSerialGC -Dlog4j.configuration="file:$d/log4j.properties" \
    -cp "$cp" kafka.Kafka "$d/server.properties" >>"$d/broker.log" 2>&1 &
  echo $! >"$d/pid"
  [ "${3:-}" = nowait ] || wait_kafka "127.0.0.1:$(cat "$d/port")" 120
}

kill_cluster_broker() {
  local d; d=$(cluster_node_dir "$1" "$2")
  [ -f "$d/pid" ] || return 0
  kill -9 "$(cat "$d/pid")" 2>/dev/null || true
  rm -f "$d/pid"
}

stop_kafka_cluster() {
  local n
  [ -d "$1/kcluster" ] || return 0
  for n in 1 2 3; do
    local d; d=$(cluster_node_dir "$1" $n)
    [ -f "$d/pid" ] || continue
    local pid; pid=$(cat "$d/pid")
    kill "$pid" 2>/dev/null || true
  done
  for n in 1 2 3; do
    local d; d=$(cluster_node_dir "$1" $n)
    [ -f "$d/pid" ] || continue
    local pid; pid=$(cat "$d/pid")
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$d/pid"
  done
}

stop_kafka() {
  local dir=$1/kafka
  [ -f "$dir/pid" ] || return 0
  local pid; pid=$(cat "$dir/pid")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}

start_redis() {
  local dir=$1/redis
  mkdir -p "$dir"
  local port
  if [ -f "$dir/port" ]; then port=$(cat "$dir/port"); else port=$(free_port); echo "$port" >"$dir/port"; fi
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly "${OB_REDIS_AOF:-no}" \
    --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  local deadline=$((SECONDS + 30))
  until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do
    if [ $SECONDS -ge $deadline ]; then log "Redis on port $port not ready"; return 1; fi
    sleep 0.1
  done
  log "Redis ready at 127.0.0.1:$port"
}

stop_redis() {
  local dir=$1/redis
  [ -f "$dir/port" ] || return 0
  redis-cli -p "$(cat "$dir/port")" shutdown nosave >/dev/null 2>&1 || true
  if [ -f "$dir/redis.pid" ]; then
    local pid; pid=$(cat "$dir/redis.pid")
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
}

# Redis as a managed service runs it: TLS only (certificates checked), a
# primary, a replica and a Sentinel (quorum 1, a primary is down after 1 s)
# that promotes the replica when the primary dies or on `failover-redis`.
rcli() { redis-cli --tls --cacert "$1/tls/ca.pem" -h 127.0.0.1 -p "$2" "${@:3}"; }

# The primary's port, as the Sentinel says.
redis_ha_primary() {
  local dir=$1
  [ -f "$dir/sport" ] || return 1
  rcli "$dir" "$(cat "$dir/sport")" SENTINEL get-master-addr-by-name mymaster 2>/dev/null | sed -n 2p
}

# Node N (1 or 2) of the pair; one that comes back joins as a replica of
# whoever is the primary now.
redis_ha_node() {
  local dir=$1 n=$2 port primary
  port=$(cat "$dir/port$n")
  local args=(--port 0 --tls-port "$port" --bind 127.0.0.1 --save '' --appendonly no
    --tls-cert-file "$dir/tls/broker.crt" --tls-key-file "$dir/tls/broker.key"
    --tls-ca-cert-file "$dir/tls/ca.pem" --tls-auth-clients optional --tls-replication yes
    --dir "$dir" --dbfilename "dump$n.rdb" --daemonize yes --pidfile "$dir/redis$n.pid"
    --logfile "$dir/redis$n.log")
  primary=$(redis_ha_primary "$dir" || true)
  [ -z "$primary" ] && [ "$n" = 2 ] && primary=$(cat "$dir/port1")
  if [ -n "$primary" ] && [ "$primary" != "$port" ]; then args+=(--replicaof 127.0.0.1 "$primary"); fi
  redis-server "${args[@]}"
  local deadline=$((SECONDS + 30))
  until rcli "$dir" "$port" ping 2>/dev/null | grep -q PONG; do
    if [ $SECONDS -ge $deadline ]; then log "Redis node $n not ready"; return 1; fi
    sleep 0.1
  done
}

start_redis_ha() {
  local dir=$1/redis_ha
  mkdir -p "$dir"
  kafka_tls_certs "$dir/tls"
  for f in port1 port2 sport; do [ -f "$dir/$f" ] || free_port >"$dir/$f"; done
  redis_ha_node "$dir" 1
  redis_ha_node "$dir" 2
  {
    echo "port 0"
    echo "tls-port $(cat "$dir/sport")"
    echo "bind 127.0.0.1"
    echo "tls-cert-file $dir/tls/broker.crt"
    echo "tls-key-file $dir/tls/broker.key"
    echo "tls-ca-cert-file $dir/tls/ca.pem"
    echo "tls-auth-clients optional"
    echo "tls-replication yes"
    echo "daemonize yes"
    echo "pidfile $dir/sentinel.pid"
    echo "logfile $dir/sentinel.log"
    echo "dir $dir"
    echo "sentinel monitor mymaster 127.0.0.1 $(cat "$dir/port1") 1"
    echo "sentinel down-after-milliseconds mymaster 1000"
    echo "sentinel failover-timeout mymaster 5000"
  } >"$dir/sentinel.conf"
  redis-server "$dir/sentinel.conf" --sentinel
  local deadline=$((SECONDS + 30))
  until rcli "$dir" "$(cat "$dir/port2")" INFO replication 2>/dev/null | grep -q 'master_link_status:up' &&
    [ -n "$(redis_ha_primary "$dir")" ]; do
    if [ $SECONDS -ge $deadline ]; then log "Redis primary, replica and Sentinel not ready"; return 1; fi
    sleep 0.2
  done
  log "Redis (TLS) ready: primary 127.0.0.1:$(cat "$dir/port1"), replica :$(cat "$dir/port2"), Sentinel :$(cat "$dir/sport")"
}

stop_redis_ha() {
  local dir=$1/redis_ha pf
  [ -d "$dir" ] || return 0
  for pf in "$dir/redis1.pid" "$dir/redis2.pid" "$dir/sentinel.pid"; do
    if [ -f "$pf" ]; then kill -9 "$(cat "$pf")" 2>/dev/null || true; fi
  done
}

# Fail the primary over: `kill` SIGKILLs it (the Sentinel promotes the replica
# once it has been down for a second; the node then comes back as a replica),
# `switch` asks the Sentinel for a failover.
failover_redis() {
  local dir=$1/redis_ha how=${2:-switch} old new n=1
  old=$(redis_ha_primary "$dir")
  if [ "$how" = kill ]; then
    [ "$old" = "$(cat "$dir/port2")" ] && n=2
    kill -9 "$(cat "$dir/redis$n.pid")"
  else
    rcli "$dir" "$(cat "$dir/sport")" SENTINEL FAILOVER mymaster >/dev/null
  fi
  local deadline=$((SECONDS + 60))
  while new=$(redis_ha_primary "$dir"); [ -z "$new" ] || [ "$new" = "$old" ]; do
    if [ $SECONDS -ge $deadline ]; then log "no failover from :$old"; return 1; fi
    sleep 0.2
  done
  if [ "$how" = kill ]; then redis_ha_node "$dir" "$n"; fi
  log "Redis failed over ($how): primary :$old -> :$new"
}

start_moto() {
  local dir=$1/moto
  mkdir -p "$dir"
  local port
  if [ -f "$dir/port" ]; then port=$(cat "$dir/port"); else port=$(free_port); echo "$port" >"$dir/port"; fi
  nohup "$CACHE/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >>"$dir/moto.log" 2>&1 &
  echo $! >"$dir/pid"
  local deadline=$((SECONDS + 60))
  until curl -sf "http://127.0.0.1:$port/moto-api/data.json" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then log "moto on port $port not ready"; tail -20 "$dir/moto.log" >&2; return 1; fi
    sleep 0.2
  done
  log "moto ready at http://127.0.0.1:$port"
}

stop_moto() {
  local dir=$1/moto
  [ -f "$dir/pid" ] || return 0
  kill "$(cat "$dir/pid")" 2>/dev/null || true
  rm -f "$dir/pid"
}

print_env() {
  local run=$1
  [ -f "$run/kafka/port" ] && echo "export OB_TEST_KAFKA_BROKERS=127.0.0.1:$(cat "$run/kafka/port")"
  [ -d "$run/kcluster" ] && echo "export OB_TEST_KAFKA_BROKERS=$(cluster_bootstrap "$run")"
  if [ -f "$run/kafka/sport" ]; then
    echo "export OB_TEST_KAFKA_TLS_BROKERS=127.0.0.1:$(cat "$run/kafka/sport")"
    echo "export OB_TEST_KAFKA_TLS_CA=$run/kafka/tls/ca.pem"
  fi
  [ -f "$run/redis/port" ] && echo "export OB_TEST_REDIS_PORT=$(cat "$run/redis/port")"
  if [ -f "$run/redis_ha/sport" ]; then
    echo "export OB_TEST_REDIS_HA_SENTINELS=127.0.0.1:$(cat "$run/redis_ha/sport")"
    echo "export OB_TEST_REDIS_HA_CA=$run/redis_ha/tls/ca.pem"
  fi
  [ -f "$run/moto/port" ] && echo "export OB_TEST_MOTO_URL=http://127.0.0.1:$(cat "$run/moto/port")"
  echo "export OB_TEST_SERVICES_DIR=$run"
  echo "export OB_TEST_SERVICES_SCRIPT=$HERE/services.sh"
}

cmd=${1:-}; run=${2:-}
[ -n "$cmd" ] && [ -n "$run" ] || { echo "usage: $0 start|stop|env|restart-redis|restart-kafka RUNDIR [kafka] [redis]" >&2; exit 2; }
mkdir -p "$run"; run=$(cd "$run" && pwd)
shift 2
case "$cmd" in
  start)
    what=("$@"); [ ${#what[@]} -gt 0 ] || what=(kafka redis moto)
    for w in "${what[@]}"; do "start_$w" "$run"; done ;;
  stop) stop_moto "$run"; stop_redis "$run"; stop_redis_ha "$run"; stop_kafka "$run"; stop_kafka_cluster "$run" ;;
  failover-redis) failover_redis "$run" "${1:-switch}" ;;
  env) print_env "$run" ;;
  restart-redis) stop_redis "$run"; start_redis "$run" ;;
  restart-kafka) stop_kafka "$run"; start_kafka "$run" ;;
  stop-redis) stop_redis "$run" ;;
  kill-broker) kill_cluster_broker "$run" "$1" ;;
  start-broker) start_cluster_broker "$run" "$1" ;;
  start-redis) start_redis "$run" ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
