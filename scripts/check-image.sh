#!/usr/bin/env bash
# The image, built and run (CI runs it once, from scripts/test.sh):
#
#  1. builds it from the Dockerfile (scripts/build-image.sh: buildah, on Debian
#     base images made with debootstrap; cached, so a rebuild takes seconds)
#  2. its configuration: user 10001:10001, no entrypoint, CMD onboard-bucket,
#     port 9464, workdir /tmp
#  3. its filesystem (mounted): the nine programs in /usr/local/bin (root's,
#     0755, stripped, no rpath into a build machine's cache), every library they
#     need found in the image, the onboard user with no shell and no home,
#     /var/lib/awssim the user's (0750), CA certificates and bash (the compose
#     health checks) present, no compiler, build tree or package lists left
#  4. runs it as docker-compose.yml runs it: the AWS simulator and the four
#     workers as containers (podman, --network host, read-only root, /tmp a
#     tmpfs, no capabilities, no-new-privileges) against a real Kafka broker and
#     Redis (scripts/services.sh, or those scripts/test.sh started:
#     OB_TEST_KAFKA_BROKERS, OB_TEST_REDIS_PORT), plus onboard-verify,
#     onboard-lifecycle and onboard-lag-exporter; every process runs as uid 10001 and answers /healthz
#     and /readyz, and the compose health check passes inside the container
#  5. onboards one account end to end: `onboardctl enqueue` from the image, then
#     the account's connected event on the connected topic, its state in Redis
#     (connect, connected) and `onboardctl status` agreeing, no dead letter, the
#     simulator's state file written to /var/lib/awssim as the image's user
#  6. stops every process with SIGTERM (each is PID 1, no shell wrapper) and
#     requires exit code 0
#
# Where podman cannot run a container (no OCI runtime that works in this
# sandbox: the reasons are printed), step 4 runs the same programs from the
# image's mounted filesystem instead, chrooted as uid 10001 with the same
# environment (OB_IMAGE_RUN=chroot forces that; OB_IMAGE_RUN=podman forbids it).
#
#   scripts/check-image.sh [--no-build]    # --no-build: check the image built last
#
# The workers use the check's own topics (prefix imgcheck<pid>.) and Redis
# database 12 (emptied before and after). Needs root, buildah and debootstrap
# (podman for containers); scripts/deps.sh installs them.
# Exit 0: all passed; 1: something failed (listed at the end); 77: skipped, a
# tool is missing or not root (a failure when CI=true or OB_TEST_REQUIRE_SERVICES=1).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
CACHE=${OB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/onboard}
IMG_DIR=$CACHE/image
IMAGE=${OB_IMAGE:-localhost/onboard:dev}
BUILD=1
[ "${1:-}" != --no-build ] || BUILD=0
ACCOUNT=200000000001
REDIS_DB=12
PREFIX="imgcheck$$."
CNAME="obimgcheck$$"
start=$SECONDS

say() { printf '%s\n' "$*"; }
FAILED=()
PASSED=0
ok() { PASSED=$((PASSED + 1)); say "  ok    $*"; }
bad() { FAILED+=("$*"); say "  FAIL  $*"; }
section() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - start)); }

skip_all() {
  if [ "${CI:-}" = true ] || [ "${OB_TEST_REQUIRE_SERVICES:-0}" = 1 ]; then
    say "check-image: FAIL: $* (CI=${CI:-} OB_TEST_REQUIRE_SERVICES=${OB_TEST_REQUIRE_SERVICES:-0})" >&2
    exit 1
  fi
  {
    say "*****************************************************************"
    say "check-image: SKIPPED: $*"
    say "the image is neither built nor run (scripts/deps.sh installs what it needs)"
    say "*****************************************************************"
  } >&2
  exit 77
}

# ---------------------------------------------------------------- tools
section "tools"
missing=()
for t in buildah debootstrap kcat redis-cli curl python3 readelf; do
  command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
[ ${#missing[@]} -eq 0 ] || skip_all "missing ${missing[*]}"
[ "$(id -u)" -eq 0 ] || skip_all "not root (debootstrap and buildah's chroot isolation need root)"
say "  $(buildah --version), $(command -v podman >/dev/null && podman --version || echo 'no podman')"

# The storage build-image.sh uses (its comments say why it is our own).
STORE=()
if [ "${OB_IMAGE_STORAGE:-}" != system ]; then
  GRAPHROOT=${OB_IMAGE_STORAGE:-$IMG_DIR/storage}
  RUNROOT=/run/onboard-image-$(printf '%s' "$GRAPHROOT" | sha256sum | cut -c1-12)
  STORE=(--root "$GRAPHROOT" --runroot "$RUNROOT")
fi
if [ -n "${OB_IMAGE_STORAGE_DRIVER:-}" ]; then STORE+=(--storage-driver "$OB_IMAGE_STORAGE_DRIVER"); fi
bah() { buildah "${STORE[@]}" "$@"; }
PBASE=(podman "${STORE[@]}")
[ ${#STORE[@]} -eq 0 ] || PBASE+=(--tmpdir "$RUNROOT/libpod")
PBASE+=(--events-backend file)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/check-image.XXXXXX")
SVC=""
REDIS_PORT=""
FS_CTR=""
RUN_CTR=""
declare -A PIDS=()
# shellcheck disable=SC2317 # run by the trap
cleanup() {
  set +e
  local n
  for n in "${!PIDS[@]}"; do kill -9 "${PIDS[$n]}" 2>/dev/null; done
  if command -v podman >/dev/null 2>&1; then
    "${PBASE[@]}" ps -a --format '{{.Names}}' 2>/dev/null | grep "^$CNAME-" |
      xargs -r "${PBASE[@]}" rm -f -t 0 >/dev/null 2>&1
  fi
  [ -z "$FS_CTR" ] || bah rm "$FS_CTR" >/dev/null 2>&1
  [ -z "$RUN_CTR" ] || bah rm "$RUN_CTR" >/dev/null 2>&1
  [ -z "$REDIS_PORT" ] || redis-cli -p "$REDIS_PORT" -n "$REDIS_DB" FLUSHDB >/dev/null 2>&1
  [ -z "$SVC" ] || "$ROOT/scripts/services.sh" stop "$SVC" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'echo "check-image: FAIL: internal error (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

# ---------------------------------------------------------------- build
section "build (scripts/build-image.sh)"
if [ $BUILD = 1 ]; then
  t0=$SECONDS
  set +e
  scripts/build-image.sh --id-file "$WORK/iid" 2>&1 | sed 's/^/  /'
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" = 77 ]; then skip_all "scripts/build-image.sh cannot run here"; fi
  if [ "$rc" != 0 ]; then
    bad "the image does not build (scripts/build-image.sh exited $rc)"
    say "check-image: FAIL"
    exit 1
  fi
  ID=$(cat "$WORK/iid")
  ok "built $IMAGE in $((SECONDS - t0)) s"
else
  ID=$(bah inspect --type image --format '{{.FromImageID}}' "$IMAGE" 2>/dev/null) ||
    { bad "no image $IMAGE to check (--no-build)"; exit 1; }
  ok "the image built last: $IMAGE"
fi
say "  image $ID"

# ---------------------------------------------------------------- config
section "configuration"
bah inspect --type image "$ID" >"$WORK/config.json"
python3 - "$WORK/config.json" >"$WORK/config.out" <<'EOF' || true
import json, sys
c = json.load(open(sys.argv[1]))["OCIv1"]["config"]
def check(ok, what):
    print(("ok " if ok else "bad ") + what)
check(c.get("User") == "10001:10001", "user 10001:10001 (is %r)" % c.get("User"))
check(not c.get("Entrypoint"), "no entrypoint, the program is PID 1 (is %r)" % c.get("Entrypoint"))
check(c.get("Cmd") == ["onboard-bucket"], "CMD [\"onboard-bucket\"] (is %r)" % c.get("Cmd"))
check("9464/tcp" in (c.get("ExposedPorts") or {}), "exposes 9464 (%s)" % ",".join(c.get("ExposedPorts") or {}))
check(c.get("WorkingDir") == "/tmp", "workdir /tmp (is %r)" % c.get("WorkingDir"))
check((c.get("Labels") or {}).get("org.opencontainers.image.title") == "onboard", "OCI title label onboard")
path = [e for e in c.get("Env") or [] if e.startswith("PATH=")]
check(bool(path) and "/usr/local/bin" in path[0], "PATH has /usr/local/bin")
EOF
while read -r verdict what; do
  if [ "$verdict" = ok ]; then ok "$what"; else bad "$what"; fi
done <"$WORK/config.out"
[ -s "$WORK/config.out" ] || bad "cannot read the image's configuration"

# ---------------------------------------------------------------- filesystem
section "filesystem"
BINS=(onboard-bucket onboard-cur onboard-iam onboard-connect onboard-verify onboard-lifecycle onboard-lag-exporter onboardctl awssim)
FS_CTR=$(bah from --pull=never --name "$CNAME-fs" "$ID")
MNT=$(bah mount "$FS_CTR")
bins_bad=()
for b in "${BINS[@]}"; do
  f=$MNT/usr/local/bin/$b
  if [ ! -f "$f" ]; then bins_bad+=("$b: missing"); continue; fi
  meta=$(stat -c '%a %u:%g' "$f")
  [ "$meta" = "755 0:0" ] || bins_bad+=("$b: mode/owner $meta")
  if readelf -S "$f" 2>/dev/null | grep -q '\.symtab'; then bins_bad+=("$b: not stripped"); fi
  rpath=$(readelf -d "$f" 2>/dev/null | grep -E 'RPATH|RUNPATH' || true)
  [ -z "$rpath" ] || bins_bad+=("$b: ${rpath##*: }")
  # The image's own dynamic loader resolves every library from the image.
  interp=$(readelf -l "$f" 2>/dev/null | sed -n 's/.*program interpreter: \([^]]*\)].*/\1/p')
  if [ -z "$interp" ] || ! chroot "$MNT" "$interp" --list "/usr/local/bin/$b" >"$WORK/ldd" 2>&1 ||
      grep -q 'not found' "$WORK/ldd"; then
    bins_bad+=("$b: $(grep 'not found' "$WORK/ldd" | awk '{print $1}' | tr '\n' ' ')")
  fi
done
if [ ${#bins_bad[@]} -eq 0 ]; then
  ok "the ${#BINS[@]} programs in /usr/local/bin: root's, 0755, stripped, no rpath, every library found in the image"
else
  bad "programs: ${bins_bad[*]}"
fi
pw=$(grep '^onboard:' "$MNT/etc/passwd" || true)
if [ "$pw" = "onboard:x:10001:10001::/nonexistent:/usr/sbin/nologin" ]; then
  ok "user onboard (10001:10001), no home, no login shell"
else
  bad "user onboard in /etc/passwd: '$pw'"
fi
[ ! -e "$MNT/nonexistent" ] || bad "/nonexistent exists"
meta=$(stat -c '%a %u:%g' "$MNT/var/lib/awssim" 2>/dev/null || echo missing)
if [ "$meta" = "750 10001:10001" ]; then ok "/var/lib/awssim: 0750, 10001:10001"; else bad "/var/lib/awssim: $meta"; fi
if [ -s "$MNT/etc/ssl/certs/ca-certificates.crt" ]; then ok "CA certificates"; else bad "no /etc/ssl/certs/ca-certificates.crt"; fi
if [ -x "$MNT/usr/bin/bash" ] || [ -x "$MNT/bin/bash" ]; then ok "bash (the compose health checks use it)"; else bad "no bash"; fi
leftovers=()
for p in usr/bin/gcc usr/bin/cc usr/bin/cmake usr/bin/make usr/include/librdkafka src build out; do
  [ ! -e "$MNT/$p" ] || leftovers+=("/$p")
done
if compgen -G "$MNT/var/lib/apt/lists/*_Packages*" >/dev/null; then leftovers+=(/var/lib/apt/lists); fi
if compgen -G "$MNT/var/cache/apt/archives/*.deb" >/dev/null; then leftovers+=(/var/cache/apt/archives); fi
if [ ${#leftovers[@]} -eq 0 ]; then
  ok "no compiler, build tree, package lists or package files"
else
  bad "left in the image: ${leftovers[*]}"
fi
bah umount "$FS_CTR" >/dev/null
bah rm "$FS_CTR" >/dev/null
FS_CTR=""

# ---------------------------------------------------------------- how to run it
section "running it: podman, or chrooted from its filesystem"
PODMAN=()
PRUN=()
MODE=""
HARDEN=(--read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges)
if [ "${OB_IMAGE_RUN:-auto}" != chroot ]; then
  if command -v podman >/dev/null 2>&1; then
    nofile=$(ulimit -Hn)
    { [ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ]; } && nofile=1048576
    # Rootful podman asks the runtime to raise the container's open-file and
    # process limits (to 1048576), which needs CAP_SYS_RESOURCE; where the
    # machine withholds it, explicit limits within ours are what works. crun
    # refuses a hybrid cgroup hierarchy that runc accepts.
    limits=(--ulimit "nofile=$nofile:$nofile" --ulimit nproc=4096:4096)
    tries=("default||" "limits||${limits[*]}")
    command -v runc >/dev/null 2>&1 && tries+=("runc, limits|--runtime runc|${limits[*]}")
    command -v crun >/dev/null 2>&1 && tries+=("crun, limits, no cgroups|--runtime crun|${limits[*]} --cgroups disabled")
    reasons=()
    for t in "${tries[@]}"; do
      IFS='|' read -r label g r <<<"$t"
      read -r -a ga <<<"$g"
      read -r -a ra <<<"$r"
      if timeout 120 "${PBASE[@]}" "${ga[@]}" run --rm --network host "${HARDEN[@]}" "${ra[@]}" "$ID" \
          onboardctl --help >/dev/null 2>"$WORK/probe.err"; then
        PODMAN=("${PBASE[@]}" "${ga[@]}")
        PRUN=("${ra[@]}")
        MODE=podman
        for r in "${reasons[@]}"; do say "  note  podman, $r"; done
        ok "podman runs the image ($label): containers it is"
        break
      fi
      reasons+=("$label: $(grep -v '^time=' "$WORK/probe.err" | tail -1 | cut -c1-200)")
    done
    if [ -z "$MODE" ]; then
      say "  podman cannot run a container here:"
      printf '    %s\n' "${reasons[@]}"
    fi
  else
    say "  no podman"
  fi
fi
if [ -z "$MODE" ]; then
  if [ "${OB_IMAGE_RUN:-auto}" = podman ]; then
    bad "podman cannot run the image (OB_IMAGE_RUN=podman)"
    say "check-image: FAIL"
    exit 1
  fi
  MODE=chroot
  RUN_CTR=$(bah from --pull=never --name "$CNAME-run" "$ID")
  RMNT=$(bah mount "$RUN_CTR")
  say "  running the programs from the image's filesystem ($RMNT), chrooted as 10001:10001"
fi
IMG_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# chrooted ENVFILE CMD...: CMD from the image's filesystem as 10001:10001 in
# /tmp, with only ENVFILE's environment (and the image's PATH), in a mount
# namespace of its own for /dev and /proc. Every step execs the next, so the
# program keeps the PID of the subshell this runs in (always one: it execs)
# and signals reach it directly.
chrooted() {
  local envf=$1
  shift
  # shellcheck disable=SC2046,SC2016 # one variable a line, no spaces; $@ is the inner shells'
  exec env -i $(cat "$envf") PATH=$IMG_PATH unshare --mount sh -c \
    'm=$1; shift; mount --rbind /dev "$m/dev" && mount -t proc proc "$m/proc" &&
     exec chroot --userspec=10001:10001 "$m" /bin/sh -c "cd /tmp && exec \"\$@\"" sh "$@"' \
    sh "$RMNT" "$@"
}
# launch NAME ENVFILE CMD...: a long-running program of the image, in the background.
launch() {
  local name=$1 envf=$2
  shift 2
  if [ $MODE = podman ]; then
    local hard=("${HARDEN[@]}")
    [ "$name" != awssim ] || hard=(--cap-drop ALL --security-opt no-new-privileges)
    "${PODMAN[@]}" run -d --name "$CNAME-$name" --network host "${hard[@]}" "${PRUN[@]}" \
      --env-file "$envf" "$ID" "$@" >/dev/null
    PIDS[$name]=$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$CNAME-$name")
  else
    chrooted "$envf" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS[$name]=$!
  fi
}
# once ENVFILE CMD...: a one-off program of the image, stdin passed on.
once() {
  local envf=$1
  shift
  if [ $MODE = podman ]; then
    "${PODMAN[@]}" run -i --rm --network host "${HARDEN[@]}" "${PRUN[@]}" --env-file "$envf" "$ID" "$@"
  else
    (chrooted "$envf" "$@")
  fi
}
logs() {
  if [ $MODE = podman ]; then "${PODMAN[@]}" logs "$CNAME-$1" 2>&1; else cat "$WORK/$1.log"; fi
}
alive() {
  if [ $MODE = podman ]; then
    [ "$("${PODMAN[@]}" inspect --format '{{.State.Running}}' "$CNAME-$1" 2>/dev/null)" = true ]
  else kill -0 "${PIDS[$1]}" 2>/dev/null; fi
}

# Every program runs and prints its usage (libraries load, the loader works).
help_bad=()
: >"$WORK/empty.env"
for b in "${BINS[@]}"; do
  once "$WORK/empty.env" "$b" --help </dev/null >"$WORK/help.out" 2>&1 || help_bad+=("$b")
  grep -qi usage "$WORK/help.out" || help_bad+=("$b (no usage)")
done
if [ ${#help_bad[@]} -eq 0 ]; then ok "all ${#BINS[@]} programs run (--help, as 10001)"; else bad "--help failed: ${help_bad[*]}"; fi

# ---------------------------------------------------------------- services
section "services: Kafka and Redis"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
if [ -n "${OB_TEST_KAFKA_BROKERS:-}" ] && [ -n "${OB_TEST_REDIS_PORT:-}" ]; then
  BROKERS=$OB_TEST_KAFKA_BROKERS
  REDIS_PORT=$OB_TEST_REDIS_PORT
  say "  the running ones: Kafka $BROKERS, Redis 127.0.0.1:$REDIS_PORT"
else
  SVC=$WORK/services
  if ! "$ROOT/scripts/services.sh" start "$SVC" kafka redis >"$WORK/services.log" 2>&1; then
    sed 's/^/    /' "$WORK/services.log" | tail -20
    skip_all "cannot start Kafka and Redis (scripts/services.sh)"
  fi
  eval "$("$ROOT/scripts/services.sh" env "$SVC")"
  BROKERS=$OB_TEST_KAFKA_BROKERS
  REDIS_PORT=$OB_TEST_REDIS_PORT
  say "  started: Kafka $BROKERS, Redis 127.0.0.1:$REDIS_PORT"
fi
redis-cli -p "$REDIS_PORT" -n $REDIS_DB FLUSHDB >/dev/null
# The topics exist before the workers start, as in a deployment (the test
# broker creates a topic when its metadata is asked for).
for t in requests cur iam connect connected dlq verify; do
  for _ in $(seq 1 50); do
    kcat -b "$BROKERS" -L -t "$PREFIX$t" 2>/dev/null | grep -q ' partition 0,' && break
    sleep 0.2
  done
done

# ---------------------------------------------------------------- the fleet
section "the fleet from the image ($MODE)"
SIM_PORT=$(free_port)
ENV=$WORK/fleet.env
cat >"$ENV" <<EOF
OB_LOG_LEVEL=info
OB_TOPIC_PREFIX=$PREFIX
OB_KAFKA_BOOTSTRAP_SERVERS=$BROKERS
OB_REDIS_HOST=127.0.0.1
OB_REDIS_PORT=$REDIS_PORT
OB_REDIS_DB=$REDIS_DB
OB_METRICS_BIND=127.0.0.1
OB_BILLING_PRINCIPAL=arn:aws:iam::111111111111:root
OB_STACK_POLL=200ms
OB_AWS_RATE_LIMITS=
OB_KAFKA_SESSION_TIMEOUT_MS=6000
AWS_ENDPOINT_URL=http://127.0.0.1:$SIM_PORT
AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE
AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
AWS_REGION=us-east-1
AWS_EC2_METADATA_DISABLED=true
AWS_CONFIG_FILE=/dev/null
AWS_SHARED_CREDENTIALS_FILE=/dev/null
EOF
launch awssim "$WORK/empty.env" awssim --bind 127.0.0.1 --port "$SIM_PORT" --org-accounts 10 \
  --profile instant --state-file /var/lib/awssim/state.json
deadline=$((SECONDS + 30))
until curl -sf "http://127.0.0.1:$SIM_PORT/_sim/health" 2>/dev/null | grep -q '"ok"'; do
  if [ $SECONDS -ge $deadline ] || ! alive awssim; then break; fi
  sleep 0.2
done
if curl -sf "http://127.0.0.1:$SIM_PORT/_sim/health" 2>/dev/null | grep -q '"ok"'; then
  ok "awssim answers /_sim/health on 127.0.0.1:$SIM_PORT"
else
  bad "awssim did not come up"
  logs awssim | tail -20 | sed 's/^/        /'
fi

PROCS=(bucket cur iam connect verify lifecycle lag-exporter)
declare -A MPORT=()
for p in "${PROCS[@]}"; do
  MPORT[$p]=$(free_port)
  cp "$ENV" "$WORK/$p.env"
  echo "OB_METRICS_PORT=${MPORT[$p]}" >>"$WORK/$p.env"
  launch "$p" "$WORK/$p.env" "onboard-$p"
done
# /healthz while the event loop turns; /readyz once Redis and Kafka are ready.
for probe in healthz readyz; do
  deadline=$((SECONDS + 60))
  pending=("${PROCS[@]}")
  while [ ${#pending[@]} -gt 0 ] && [ $SECONDS -lt $deadline ]; do
    left=()
    for p in "${pending[@]}"; do
      code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${MPORT[$p]}/$probe" 2>/dev/null || true)
      [ "$code" = 200 ] || left+=("$p")
    done
    pending=("${left[@]}")
    [ ${#pending[@]} -eq 0 ] || sleep 0.3
  done
  if [ ${#pending[@]} -eq 0 ]; then
    ok "/$probe answers 200 on all ${#PROCS[@]}: ${PROCS[*]}"
  else
    bad "/$probe not 200 within 60 s: ${pending[*]}"
    for p in "${pending[@]}"; do
      say "        -- $p:"
      logs "$p" | tail -8 | sed 's/^/        /'
    done
  fi
done
uids=()
for p in awssim "${PROCS[@]}"; do
  u=$(awk '/^Uid:/ {print $2}' "/proc/${PIDS[$p]}/status" 2>/dev/null || echo gone)
  [ "$u" = 10001 ] || uids+=("$p: $u")
done
if [ ${#uids[@]} -eq 0 ]; then ok "every process runs as uid 10001"; else bad "processes not running as 10001: ${uids[*]}"; fi
if [ $MODE = podman ]; then
  # docker-compose.yml's worker health check, run in the container.
  if "${PODMAN[@]}" exec "$CNAME-bucket" bash -c "exec 3<>/dev/tcp/127.0.0.1/${MPORT[bucket]} && printf 'GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 && head -1 <&3 | grep -q ' 200'"; then
    ok "the compose health check (bash /dev/tcp, /readyz) passes inside the container"
  else
    bad "the compose health check fails inside the container"
  fi
fi

# ---------------------------------------------------------------- one account
section "one account end to end"
t0=$SECONDS
printf '{"account_id":"%s","mode":"new","region":"us-east-1","role_arn":"arn:aws:iam::%s:role/OrganizationAccountAccessRole","request_id":"image-check-%s"}\n' \
  "$ACCOUNT" "$ACCOUNT" "$$" >"$WORK/request.jsonl"
if once "$ENV" onboardctl enqueue - --format jsonl <"$WORK/request.jsonl" >"$WORK/enqueue.out" 2>&1; then
  ok "onboardctl enqueue (from the image): $(tail -1 "$WORK/enqueue.out")"
else
  bad "onboardctl enqueue failed: $(tail -3 "$WORK/enqueue.out")"
fi
deadline=$((SECONDS + ${OB_IMAGE_CHECK_TIMEOUT:-120}))
event=""
while [ $SECONDS -lt $deadline ]; do
  event=$(kcat -C -b "$BROKERS" -t "${PREFIX}connected" -e -q -f '%k %s\n' 2>/dev/null | grep "^$ACCOUNT " || true)
  [ -z "$event" ] || break
  dead=$(kcat -C -b "$BROKERS" -t "${PREFIX}dlq" -e -q -f '%s\n' 2>/dev/null | head -1 || true)
  [ -z "$dead" ] || break
  gone=()
  for p in "${PROCS[@]}"; do alive "$p" || gone+=("$p"); done
  [ ${#gone[@]} -eq 0 ] || break
  sleep 0.5
done
if [ -n "$event" ]; then
  ok "the connected event in $((SECONDS - t0)) s, keyed by the account"
  if printf '%s' "${event#* }" | python3 -c '
import json, sys
e = json.load(sys.stdin)
a = sys.argv[1]
assert e.get("account_id") == a, e
assert e.get("idempotency_key"), e
assert ":%s:role/" % a in json.dumps(e), e
' "$ACCOUNT" 2>"$WORK/event.err"; then
    ok "the event names the account, its Billing Engine role and an idempotency key"
  else
    bad "unexpected connected event: $(tail -1 "$WORK/event.err" | cut -c1-300)"
  fi
else
  bad "no connected event for $ACCOUNT within ${OB_IMAGE_CHECK_TIMEOUT:-120} s${dead:+; dead letter: $dead}${gone:+; exited: ${gone[*]}}"
  for p in awssim "${PROCS[@]}"; do
    say "        -- $p:"
    logs "$p" | tail -6 | sed 's/^/        /'
  done
fi
state=$(redis-cli -p "$REDIS_PORT" -n $REDIS_DB HMGET "ob:{$ACCOUNT}:state" stage status | tr '\n' ' ')
if [ "$state" = "connect connected " ]; then
  ok "Redis: ob:{$ACCOUNT}:state is stage connect, status connected"
else
  bad "Redis: ob:{$ACCOUNT}:state is '$state'"
fi
if once "$ENV" onboardctl status "$ACCOUNT" --json </dev/null >"$WORK/status.json" 2>&1 &&
    grep -q '"status":"connected"' "$WORK/status.json"; then
  ok "onboardctl status (from the image) says connected"
else
  bad "onboardctl status: $(head -c 300 "$WORK/status.json")"
fi
dlq=$(kcat -C -b "$BROKERS" -t "${PREFIX}dlq" -e -q -f '%s\n' 2>/dev/null | wc -l)
if [ "$dlq" = 0 ]; then ok "no dead letters"; else bad "$dlq dead letter(s) on ${PREFIX}dlq"; fi
# awssim writes its state 0.5 s after a change, as the image's user.
state_file=""
for _ in $(seq 1 20); do
  if [ $MODE = podman ]; then
    state_file=$("${PODMAN[@]}" exec "$CNAME-awssim" stat -c '%U %a %s' /var/lib/awssim/state.json 2>/dev/null || true)
  else
    state_file=$(stat -c '%u %a %s' "$RMNT/var/lib/awssim/state.json" 2>/dev/null || true)
  fi
  [ -z "$state_file" ] || break
  sleep 0.25
done
case "$state_file" in
  "onboard "* | "10001 "*) ok "awssim's state file in /var/lib/awssim, written as the image's user ($state_file)" ;;
  *) bad "awssim's state file in /var/lib/awssim: '${state_file:-none}'" ;;
esac

# ---------------------------------------------------------------- stop
section "SIGTERM"
stop_bad=()
t0=$SECONDS
for p in "${PROCS[@]}" awssim; do
  if [ $MODE = podman ]; then
    "${PODMAN[@]}" stop -t 40 "$CNAME-$p" >/dev/null 2>&1 || true
    rc=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$CNAME-$p" 2>/dev/null || echo '?')
  else
    kill -TERM "${PIDS[$p]}" 2>/dev/null || true
    rc=0
    wait "${PIDS[$p]}" || rc=$?
  fi
  unset "PIDS[$p]"
  [ "$rc" = 0 ] || stop_bad+=("$p: exit $rc")
done
if [ ${#stop_bad[@]} -eq 0 ]; then
  ok "all $((${#PROCS[@]} + 1)) stop on SIGTERM with exit code 0 ($((SECONDS - t0)) s)"
else
  bad "on SIGTERM: ${stop_bad[*]}"
fi

# ---------------------------------------------------------------- summary
printf '\n'
if [ ${#FAILED[@]} -eq 0 ]; then
  say "check-image: all $PASSED checks passed ($MODE, $((SECONDS - start)) s)"
  exit 0
fi
say "check-image: FAIL (${#FAILED[@]} of $((PASSED + ${#FAILED[@]})) checks, $MODE, $((SECONDS - start)) s):"
printf '  - %s\n' "${FAILED[@]}"
exit 1
