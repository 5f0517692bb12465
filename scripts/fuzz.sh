#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers with libFuzzer (tests/fuzz): builds
# the fuzz targets with clang in a build directory of their own, seeds each
# target from the repository's examples and fixtures, runs every target for a
# while, and merges what it found into a corpus kept outside the source tree.
#
#   scripts/fuzz.sh [--time SECONDS] [--target NAME[,NAME...]] [--corpus DIR]
#
#   --time SECONDS  how long each target runs (default 60; hours are fine)
#   --target NAME   only these targets: fuzz_msg or msg, ... (default: all of
#                   tests/fuzz/fuzz_*.c)
#   --corpus DIR    the corpus, one folder per target (default
#                   $OB_CACHE_DIR/fuzz-corpus, else ~/.cache/onboard/fuzz-corpus)
#
# OB_FUZZ_BUILD names the build directory (default build/fuzz). An input that
# crashes a target, leaks, breaks one of its properties or runs too long is
# kept in <build>/crashes/<target>/; the script prints each one with the
# command that reproduces it, goes on with the other targets and exits 1.
# Once the library is fixed, keep the input as
# tests/fuzz/regressions/<target>/<name>: every run here replays those first,
# and so do the fuzz.* tests of the normal build (tests/fuzz.cmake).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

TIME=60
ONLY=""
CACHE=${OB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/onboard}
CORPUS=$CACHE/fuzz-corpus
BUILD=${OB_FUZZ_BUILD:-build/fuzz}
JOBS=${OB_JOBS:-$(nproc)}
SIGV4_SUITE=${OB_SIGV4_SUITE:-$ROOT/../shared/testdata/aws-sigv4-testsuite}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
  --time) TIME=${2:?--time needs seconds}; shift 2 ;;
  --target) ONLY=${2:?--target needs a name}; shift 2 ;;
  --corpus) CORPUS=${2:?--corpus needs a directory}; shift 2 ;;
  -h | --help) usage ;;
  *) echo "fuzz: unknown argument $1" >&2; usage ;;
  esac
done
case $TIME in '' | *[!0-9]*) echo "fuzz: --time takes whole seconds" >&2; exit 2 ;; esac

if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz: clang is missing (scripts/deps.sh installs it with libFuzzer)" >&2
  exit 1
fi

TARGETS=()
for f in tests/fuzz/fuzz_*.c; do
  t=$(basename "$f" .c)
  if [ -n "$ONLY" ]; then
    case ",$ONLY," in *",$t,"* | *",${t#fuzz_},"*) ;; *) continue ;; esac
  fi
  TARGETS+=("$t")
done
if [ ${#TARGETS[@]} -eq 0 ]; then
  echo "fuzz: no target matches '$ONLY' (they are: $(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//' | xargs))" >&2
  exit 2
fi

echo "fuzz: building ${TARGETS[*]} in $BUILD (clang, libFuzzer, ASan + UBSan)"
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DOB_FUZZ=ON -DOB_BUILD_TESTS=OFF \
  -DOB_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]}" >"$BUILD/fuzz-build.log" 2>&1 || {
  tail -n 40 "$BUILD/fuzz-build.log" >&2
  echo "fuzz: the build failed (the whole log: $BUILD/fuzz-build.log)" >&2
  exit 1
}

SEEDS=$BUILD/seeds
CRASHES=$BUILD/crashes
LOGS=$BUILD/logs
DICTS=$BUILD/dicts
mkdir -p "$CORPUS" "$CRASHES" "$LOGS" "$DICTS"

# ---- seeds: regenerated on every run from what the repository holds ----

# copy_seeds DEST FILE...: each file under a name made of its path.
copy_seeds() {
  local dest=$1 f
  shift
  for f in "$@"; do
    [ -f "$f" ] || continue
    cp "$f" "$dest/$(printf '%s' "${f#"$ROOT"/}" | tr '/ ' '__')"
  done
}

# An AWS reply for fuzz_awsreply: two selector bytes (tests/fuzz/fuzz_awsreply.c)
# then optional header lines, then the body from a file.
#   reply_seed DEST NAME PARSER SERVICE ARG WITH_HEADERS FILE
# PARSER 0 Query result, 1 JSON reply, 2 error; SERVICE 0 S3, 1 STS,
# 2 CloudFormation, 3 CUR, 4 Organizations; ARG the action or status index.
reply_seed() {
  local dest=$1 name=$2 parser=$3 svc=$4 arg=$5 hdrs=$6 file=$7
  local sel=$((parser | svc << 2 | hdrs << 5))
  {
    printf "\\$(printf '%03o' "$sel")\\$(printf '%03o' "$arg")"
    if [ "$hdrs" = 1 ]; then
      printf 'x-amzn-RequestId: 4f1e1e8c-9f4a-11ee-8c90-0242ac120002\r\n'
      printf 'x-amz-request-id: D3F18909B654014A\r\nContent-Type: text/xml\r\n'
      printf 'x-amzn-query-error: Throttling;Sender\r\nx-amzn-ErrorType: ValidationException:\r\n\r\n'
    fi
    cat "$file"
  } >"$dest/$name"
}

seed_target() {
  local t=$1 dest=$SEEDS/$1
  rm -rf "$dest"
  mkdir -p "$dest"
  copy_seeds "$dest" tests/fuzz/seeds/"$t"/*
  case $t in
  fuzz_msg)
    copy_seeds "$dest" proto/examples/*/*/*.json
    ;;
  fuzz_xml)
    copy_seeds "$dest" tests/fixtures/aws/*.xml tests/fixtures/aws/*.html
    ;;
  fuzz_awsreply)
    local f base svc
    for f in tests/fixtures/aws/*; do
      base=$(basename "$f")
      case $base in
      s3_*) svc=0 ;; sts_*) svc=1 ;; cfn_*) svc=2 ;; cur_*) svc=3 ;; org_*) svc=4 ;;
      *.html) svc=0 ;; *) continue ;;
      esac
      # statuses[3] = 400, statuses[11] = 503 in the target's table
      reply_seed "$dest" "error-$base" 2 "$svc" 3 0 "$f"
      reply_seed "$dest" "error-headers-$base" 3 "$svc" 11 1 "$f"
      case $base in *.json) reply_seed "$dest" "json-$base" 1 "$svc" 0 0 "$f" ;; esac
    done
    # actions[1] = GetCallerIdentity, actions[6] = DescribeStacks
    reply_seed "$dest" query-get-caller-identity 0 1 1 0 tests/fixtures/aws/sts_get_caller_identity.xml
    reply_seed "$dest" query-describe-stacks 0 2 6 1 tests/fixtures/aws/cfn_describe_stacks.xml
    printf '\x06\x05' >"$dest/error-no-body"
    ;;
  fuzz_awsconfig)
    local f
    for f in tests/fixtures/awsconfig/*; do
      [ -f "$f" ] && copy_seeds "$dest" "$f"
    done
    { cat tests/fixtures/awsconfig/config; printf '\0'; cat tests/fixtures/awsconfig/credentials; } \
      >"$dest/config-and-credentials"
    ;;
  fuzz_sigv4)
    # AWS's SigV4 test suite, read in place when it is there (never copied
    # into the repository); its .req files are requests in the target's form.
    if [ -d "$SIGV4_SUITE" ]; then
      local n=0 f
      while IFS= read -r -d '' f; do
        cp "$f" "$dest/suite-$n-$(basename "$f")"
        n=$((n + 1))
      done < <(find "$SIGV4_SUITE" -name '*.req' -print0)
    fi
    ;;
  esac
}

dict_for() {
  local t=$1 d=tests/fuzz/dict
  case $t in
  fuzz_msg)
    # JSON syntax, plus every member name and enum value of the schemas.
    {
      cat $d/json.dict
      python3 - proto/*.json <<'PY'
import json, sys
words = set()
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "properties" and isinstance(x, dict):
                words.update(x.keys())
            if k in ("enum", "const"):
                for e in (x if isinstance(x, list) else [x]):
                    if isinstance(e, str):
                        words.add(e)
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
for path in sys.argv[1:]:
    with open(path) as f:
        walk(json.load(f))
for w in sorted(words):
    esc = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\x%02x" % ord(c) for c in w)
    print('"\\"%s\\""' % esc)
PY
    } >"$DICTS/$t.dict"
    ;;
  fuzz_xml) cp $d/xml.dict "$DICTS/$t.dict" ;;
  fuzz_awsreply) cat $d/xml.dict $d/json.dict >"$DICTS/$t.dict" ;;
  fuzz_httpd) cp $d/http.dict "$DICTS/$t.dict" ;;
  fuzz_sigv4) cp $d/sigv4.dict "$DICTS/$t.dict" ;;
  fuzz_config) cp $d/config.dict "$DICTS/$t.dict" ;;
  fuzz_awsconfig) cp $d/awsconfig.dict "$DICTS/$t.dict" ;;
  *) return 1 ;;
  esac
  echo "$DICTS/$t.dict"
}

# ---- run ----

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
start=$SECONDS
for t in "${TARGETS[@]}"; do
  bin=$BUILD/tests/fuzz/$t
  seed_target "$t"
  mkdir -p "$CORPUS/$t" "$CRASHES/$t"
  dirs=("$CORPUS/$t" "$SEEDS/$t")
  [ -d "tests/fuzz/regressions/$t" ] && dirs+=("tests/fuzz/regressions/$t")
  dict_args=()
  if dict=$(dict_for "$t"); then
    dict_args=(-dict="$dict")
  fi
  log=$LOGS/$t.log
  stamp=$(mktemp "$BUILD/.fuzz-stamp.XXXXXX")
  printf 'fuzz: %-16s %ss, corpus %s (%s inputs) ... ' "$t" "$TIME" "$CORPUS/$t" \
    "$(find "$CORPUS/$t" -type f | wc -l)"
  rc=0
  "$bin" -max_total_time="$TIME" -timeout=10 -rss_limit_mb=2560 -print_final_stats=1 \
    "${dict_args[@]}" -artifact_prefix="$CRASHES/$t/" "${dirs[@]}" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)
  if [ "$rc" -ne 0 ]; then
    echo "FAILED (exit $rc)"
    { grep -E '^(==[0-9]+==|SUMMARY|fuzz: property)|runtime error|^ParseDictionary' "$log" || true; } |
      head -n 8 | sed 's/^/    /'
    found=0
    while IFS= read -r -d '' a; do
      found=1
      echo "    input: $a"
      echo "    reproduce: $bin $a"
    done < <(find "$CRASHES/$t" -type f -newer "$stamp" -print0)
    [ "$found" = 1 ] || echo "    no input was kept; see the log"
    echo "    log: $log"
    failed+=("$t")
  else
    echo "ok: ${execs:-?} exec/s, ${cov:-cov ?}"
    # Keep the corpus small: only inputs that add coverage (seeds included).
    merged=$(mktemp -d "$CORPUS/.$t.merge.XXXXXX")
    if "$bin" -merge=1 -timeout=10 -rss_limit_mb=2560 "$merged" "$CORPUS/$t" "$SEEDS/$t" \
      >"$LOGS/$t.merge.log" 2>&1; then
      rm -rf "$CORPUS/$t"
      mv "$merged" "$CORPUS/$t"
    else
      rm -rf "$merged"
      echo "    (the corpus merge failed, the corpus is kept as it was: $LOGS/$t.merge.log)"
    fi
  fi
  rm -f "$stamp"
done

echo "fuzz: ${#TARGETS[@]} targets in $((SECONDS - start))s; corpus in $CORPUS, logs in $LOGS"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $CRASHES)" >&2
  exit 1
fi
