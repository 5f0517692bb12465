#!/usr/bin/env bash
# Install what building and testing need on Debian 12: the C libraries, the
# real services the tests use (redis-server, a Java runtime for the Kafka
# broker), and the tools the tests call (clang with libFuzzer for
# scripts/fuzz.sh, llvm for the llvm-symbolizer that names the frames of a
# sanitizer's report). Idempotent: packages already present are skipped, so
# it is cheap to run every time.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git ca-certificates
  libcurl4-openssl-dev libssl-dev libjansson-dev libcmocka-dev dpkg-dev libjemalloc-dev
  liblz4-dev libsasl2-dev libzstd-dev zlib1g-dev
  redis-server kcat python3 python3-venv curl default-jre-headless maven
  valgrind clang libclang-rt-14-dev llvm clang-format
  awscli python3-boto3 wrk npm gnuplot-nox
  docker-compose prometheus golang-go
  # integration.onboardctl_tty: onboardctl's progress line read off a real terminal
  tmux
  # scripts/build-image.sh and check-image.sh: the image built from the
  # Dockerfile on a debootstrapped base and run (runc: crun refuses some
  # sandboxes' hybrid cgroup hierarchy)
  buildah podman runc debootstrap
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

# The Kafka and Redis client libraries, newer than Debian 12 ships, built from
# Debian 13's source packages into a prefix of our own (cached). The fleet needs
# librdkafka >= 2.4 (cooperative rebalancing: a resumed partition no longer
# rewinds its fetch position, a cooperative consumer no longer hangs at close,
# transactions with KIP-447 fencing by group metadata) and hiredis >= 1.0 with
# hiredis_ssl (Redis over TLS). The source packages come from the same Debian
# archive as the system's packages, through a private apt configuration that
# knows only trixie's deb-src index; apt checks the index's signature and the
# sources' checksums against it. No Debian 13 binary package is installed.
#
# libcurl is Debian 12's own (7.88.1, its current revision from bookworm's
# deb-src index), built with only what the workers use: HTTP and HTTPS over
# OpenSSL, the threaded resolver, zlib. Debian's build also links GnuTLS,
# Kerberos, LDAP, libssh2, librtmp, libpsl, libidn2, brotli and nghttp2 into
# every process that loads it: 3 to 7 MiB of each worker's resident memory
# (docs/BENCHMARKS.md). librdkafka is built against it, so one libcurl is
# loaded.
DEPS_LIBS=("librdkafka=2.8.0-1" "hiredis=1.2.0-6" "curl/bookworm")
DEPS_DIR=$CACHE/deps
DEPS_PREFIX=${OB_DEPS_PREFIX:-$DEPS_DIR/prefix}
DEPS_KEY=$( (printf '%s\n' "${DEPS_LIBS[@]}"; sed -n '/^build_libs()/,/^}/p' "$0") | sha256sum | cut -c1-16)
build_libs() {
  local work=$DEPS_DIR/work apt=$DEPS_DIR/apt out=$DEPS_PREFIX
  # Built in place (the .pc files name their prefix); the stamp written after a
  # whole build is what marks it usable.
  rm -rf "$work" "$out"
  mkdir -p "$work" "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/parts"
  cat >"$apt/parts/trixie-src.sources" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  local opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt/parts"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
    -o "APT::Sandbox::User=root" -q)
  apt-get "${opts[@]}" update >/dev/null
  (cd "$work" && apt-get "${opts[@]}" source --download-only "${DEPS_LIBS[@]}" >/dev/null)
  local jobs log=$DEPS_DIR/build.log
  jobs=$(nproc)
  # dpkg-source cannot check the uploaders' signatures (Debian's keyring is not
  # installed); the files were already checked against the signed index.
  (cd "$work" && for d in *.dsc; do dpkg-source -q -x "$d" >/dev/null 2>&1; done)
  echo "deps: building libcurl, librdkafka and hiredis (about two minutes, once; log: $log)"
  if ! (
    set -e
    cd "$work"/curl-7.88.1
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$out" \
      -DCMAKE_INSTALL_LIBDIR=lib -DBUILD_SHARED_LIBS=ON -DBUILD_CURL_EXE=OFF \
      -DBUILD_TESTING=OFF -DENABLE_MANUAL=OFF -DHTTP_ONLY=ON -DCURL_USE_OPENSSL=ON \
      -DENABLE_THREADED_RESOLVER=ON -DCURL_USE_LIBPSL=OFF -DUSE_LIBIDN2=OFF \
      -DCURL_USE_LIBSSH2=OFF -DCURL_BROTLI=OFF -DCURL_ZSTD=OFF -DUSE_NGHTTP2=OFF \
      -DCURL_DISABLE_LDAP=ON -DCURL_USE_GSSAPI=OFF
    cmake --build build -j"$jobs"
    cmake --install build
    export PKG_CONFIG_PATH="$out/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    cd "$work"/librdkafka-2.8.0
    ./configure --prefix="$out" --disable-debug-symbols --enable-ssl --enable-zstd \
      --enable-lz4-ext --enable-gssapi --enable-curl
    make -C src -j"$jobs"
    make -C src install
    cd "$work"/hiredis-1.2.0
    make -j"$jobs" USE_SSL=1 PREFIX="$out"
    make USE_SSL=1 PREFIX="$out" install
  ) >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "deps: building the client libraries failed (the whole log: $log)" >&2
    exit 1
  fi
  rm -rf "$work"
}
if [ ! -f "$DEPS_PREFIX/.built-$DEPS_KEY" ]; then
  build_libs
  touch "$DEPS_PREFIX/.built-$DEPS_KEY"
  echo "deps: libcurl, librdkafka and hiredis in $DEPS_PREFIX"
fi
