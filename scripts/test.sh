#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies, build with
# warnings as errors, start a real Kafka broker and redis-server, run every
# test through CTest (the chaos run included: it kills workers and restarts
# Kafka and Redis), fuzz every parser for a short while (scripts/fuzz.sh),
# then build again with ASan+UBSan and run everything once more. Stops every
# service it started, whatever happens.
#
#   scripts/test.sh            # everything
#   OB_TEST_SKIP_SANITIZE=1 scripts/test.sh   # skip the sanitizer pass
#   OB_TEST_SKIP_FUZZ=1 scripts/test.sh       # skip the fuzzing (OB_TEST_FUZZ_TIME:
#                                             # seconds per target, default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${OB_JOBS:-$(nproc)}
start=$SECONDS

step() { printf '\n=== %s (%ds)\n' "$*" $((SECONDS - start)); }

step "dependencies"
scripts/deps.sh

RUN=$(mktemp -d "${TMPDIR:-/tmp}/onboard-test.XXXXXX")
cleanup() {
  "$ROOT/scripts/services.sh" stop "$RUN" >/dev/null 2>&1 || true
  rm -rf "$RUN"
}
trap cleanup EXIT INT TERM

step "format (clang-format)"
if ! git ls-files -z '*.c' '*.h' | xargs -0 clang-format --dry-run -Werror; then
  echo "clang-format: the files above need 'clang-format -i'" >&2
  exit 1
fi

step "house rules (scripts/check-source.sh)"
scripts/check-source.sh

step "build (warnings as errors)"
cmake -S . -B build/ci -DOB_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/ci -j"$JOBS"

step "services: Apache Kafka (KRaft), redis-server, Redis with TLS, a replica and Sentinel, moto"
# Redis keeps an append-only file, so the chaos run's Redis restart loses
# nothing, as in a deployment.
export OB_REDIS_AOF=yes
scripts/services.sh start "$RUN" kafka redis redis_ha moto
eval "$(scripts/services.sh env "$RUN")"
export OB_TEST_REQUIRE_SERVICES=1

run_ctest() {
  local dir=$1
  # Unit tests in parallel; integration tests one at a time, since some of
  # them restart the shared services.
  (cd "$dir" && ctest -j"$JOBS" -LE integration --output-on-failure --timeout 300)
  (cd "$dir" && ctest -L integration --output-on-failure --timeout 600)
  # The chaos and scale-out runs' figures (CTest keeps a passing test's output to itself).
  for f in chaos-summary.txt scaleout-summary.txt; do
    if [ -f "$RUN/$f" ]; then
      cat "$RUN/$f"
      rm -f "$RUN/$f"
    fi
  done
}

step "tests"
run_ctest build/ci

# Every fuzz target (tests/fuzz) for a short while, on top of the corpus the
# earlier runs left in the cache: clang, libFuzzer, ASan + UBSan.
if [ "${OB_TEST_SKIP_FUZZ:-0}" != 1 ]; then
  step "fuzzing (${OB_TEST_FUZZ_TIME:-15} s per target)"
  scripts/fuzz.sh --time "${OB_TEST_FUZZ_TIME:-15}"
fi

# The fleet benchmark's quick variant: 1,000 accounts through the four workers
# on their own broker and Redis. Its figures are printed; it fails only on a
# gross regression (ten times slower than docs/BENCHMARKS.md records).
step "benchmark (quick: 1,000 accounts)"
python3 bench/fleet_bench.py --accounts 1000 --build build/ci --json build/ci/bench.json \
  --max-cpu-ms 25 --min-rate 10

# The Grafana dashboard: decoded strictly into Grafana's published types, and
# every panel's query run against a real Prometheus that scraped the four
# workers and onboard-lag-exporter through a benchmark run (each must return
# series).
step "dashboard (bench/dashboard_check.py)"
python3 bench/dashboard_check.py --build build/ci --accounts 1000 --no-png

# The image, built from the Dockerfile and run (scripts/check-image.sh): buildah
# on Debian base images made with debootstrap (cached in ~/.cache/onboard/image),
# its configuration and filesystem checked, the simulator and the workers run
# from it against the broker and Redis above, one account onboarded end to end.
# Once: the sanitizer pass does not repeat it. OB_TEST_SKIP_IMAGE=1 skips it.
if [ "${OB_TEST_SKIP_IMAGE:-0}" != 1 ]; then
  step "image (scripts/check-image.sh: built with buildah, run, one account onboarded)"
  scripts/check-image.sh
fi

if [ "${OB_TEST_SKIP_SANITIZE:-0}" != 1 ]; then
  step "build (ASan + UBSan)"
  cmake -S . -B build/asan -DOB_WERROR=ON -DOB_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build build/asan -j"$JOBS"
  step "tests under ASan + UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_ctest build/asan
fi

step "all tests passed"
