#!/usr/bin/env bash
# Install what building and testing need on Debian 12: the C libraries, the
# real services the tests use (redis-server, a Java runtime for the Kafka
# broker), and the tools the tests call. Idempotent: packages already present
# are skipped, so it is cheap to run every time.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git ca-certificates
  librdkafka-dev libcurl4-openssl-dev libssl-dev libjansson-dev libhiredis-dev libcmocka-dev
  redis-server kcat python3 python3-venv curl default-jre-headless maven
  valgrind clang libclang-rt-14-dev clang-format
  awscli python3-boto3 wrk npm gnuplot-nox
  docker-compose prometheus golang-go
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A JDK from elsewhere (java on PATH) is as good as default-jre-headless.
if command -v java >/dev/null 2>&1; then
  missing=("${missing[@]/default-jre-headless/}")
fi
if command -v mvn >/dev/null 2>&1; then
  missing=("${missing[@]/maven/}")
fi
if command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/npm/}")
fi
# scripts/check-deploy.sh: docker-compose (config checks), promtool (from the
# prometheus package) and Go (builds helm from the Go module proxy); a Go from
# elsewhere (go on PATH) is as good as golang-go, and better: Debian 12's Go
# 1.19 is too old for that build (1.21+ fetches the toolchain it needs).
if command -v go >/dev/null 2>&1; then
  missing=("${missing[@]/golang-go/}")
fi
read -r -a missing <<<"${missing[*]}"
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Python tools the tests use, in a private virtual environment (never the
# system's): moto, an independent implementation of the AWS APIs.
CACHE=${OB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/onboard}
VENV=$CACHE/venv
PY_REQS=("moto[server]==5.2.5" "cfn-lint==1.58.0")
STAMP="$VENV/.reqs-$(printf '%s\n' "${PY_REQS[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  echo "deps: installing ${PY_REQS[*]} into $VENV"
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_REQS[@]}"
  touch "$STAMP"
fi
