#!/usr/bin/env bash
# Check every example in proto/examples against its JSON Schema with a real
# validator: ajv-cli (JSON Schema draft 2020-12, strict schema mode, formats
# from ajv-formats), installed from npm into a private cache folder, never
# globally.
#
# Layout: proto/examples/<schema>/{valid,invalid,codec-only}/*.json, where
# <schema> names proto/<schema>.json.
#   valid/       must pass. A sibling NAME.refused means the message is valid
#                but the workers refuse it (azure, gcp); the C tests check that.
#   invalid/     must fail. Each has a sibling NAME.why.
#   codec-only/  must PASS the schema: rules a JSON Schema cannot express
#                (cross-member equality, digests, duplicate keys), which only
#                the C codec enforces. Each has a sibling NAME.why.
# A .why/.refused file starts with "code: CODE" and "field: JSON-POINTER"
# lines (the codec's answer, checked by tests/unit/test_msg.c), then prose.
#
# Exit status: 0 all good; 1 a verdict was wrong or a file is malformed;
# 77 (skipped) when npm is missing or the install fails, unless
# OB_TEST_REQUIRE_SERVICES=1 makes that a failure too.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

CACHE=${OB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/onboard}
NPM_DIR=$CACHE/npm
AJV=$NPM_DIR/node_modules/.bin/ajv
PKGS=(ajv-cli@5.0.0 ajv@8.20.0 ajv-formats@2.1.1)
CODES=" not_json not_object missing unknown_field type pattern range enum combination too_large \
unsupported_cloud mismatch "

skip() {
    if [ "${OB_TEST_REQUIRE_SERVICES:-0}" = 1 ]; then
        echo "check-schemas: $* (and OB_TEST_REQUIRE_SERVICES=1)" >&2
        exit 1
    fi
    echo "check-schemas: SKIPPED: $*" >&2
    exit 77
}

installed() {
    [ -x "$AJV" ] && [ -f "$NPM_DIR/node_modules/ajv-formats/package.json" ] &&
        grep -q '"version": "5.0.0"' "$NPM_DIR/node_modules/ajv-cli/package.json"
}

if ! installed; then
    command -v node >/dev/null 2>&1 || skip "node is not installed (Debian: apt-get install nodejs npm)"
    command -v npm >/dev/null 2>&1 || skip "npm is not installed (Debian: apt-get install npm)"
    mkdir -p "$NPM_DIR"
    # One installer at a time: two build trees may run this test at once.
    if ! (
        flock 9
        installed || npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error \
            "${PKGS[@]}" >&2
    ) 9>"$NPM_DIR/.install.lock"; then
        skip "npm install ${PKGS[*]} into $NPM_DIR failed"
    fi
    installed || skip "ajv-cli is still missing from $NPM_DIR after npm install"
fi

AJV_OPTS=(--spec=draft2020 --strict=true --strict-types=false --strict-required=false
    -c ajv-formats --all-errors --errors=line)

passed=0
failed=0
fail() {
    echo "FAIL: $*" >&2
    failed=$((failed + 1))
}

# The "code:" and "field:" lines of a .why/.refused file must be well formed.
check_why() {
    local why=$1 code field
    code=$(sed -n '1s/^code: //p' "$why")
    field=$(sed -n '2s/^field: \{0,1\}//p' "$why")
    if [ -z "$code" ] || [[ "$CODES" != *" $code "* ]]; then
        fail "$why: first line must be 'code: CODE' with a codec code (got '$(sed -n 1p "$why")')"
        return
    fi
    if ! sed -n 2p "$why" | grep -q '^field:'; then
        fail "$why: second line must be 'field: JSON-POINTER' (empty for the whole message)"
        return
    fi
    if [ -n "$field" ] && [ "${field:0:1}" != / ]; then
        fail "$why: field '$field' is not a JSON pointer"
        return
    fi
    if [ "$(sed -n '3,$p' "$why" | tr -d '[:space:]')" = "" ]; then
        fail "$why: say in prose which rule the example breaks"
    fi
}

# Validate files against a schema in one ajv run; expect = valid|invalid.
run_batch() {
    local schema=$1 expect=$2
    shift 2
    [ $# -gt 0 ] || return 0
    local refs=() s f out
    for s in proto/*.json; do
        [ "$s" = "$schema" ] || refs+=(-r "$s")
    done
    local data=()
    for f in "$@"; do
        data+=(-d "$f")
    done
    out=$("$AJV" validate "${AJV_OPTS[@]}" -s "$schema" "${refs[@]}" "${data[@]}" 2>&1) || true
    for f in "$@"; do
        if grep -qxF "$f $expect" <<<"$out"; then
            passed=$((passed + 1))
        elif grep -qxF "$f valid" <<<"$out" || grep -qxF "$f invalid" <<<"$out"; then
            if [ "$expect" = valid ]; then
                fail "$f should pass $schema but ajv says:"
                "$AJV" validate "${AJV_OPTS[@]}" -s "$schema" "${refs[@]}" -d "$f" >&2 || true
            else
                fail "$f should fail $schema (see its .why) but ajv accepts it"
            fi
        else
            fail "$f: ajv gave no verdict:"
            printf '%s\n' "$out" | tail -n 5 >&2
        fi
    done
}

shopt -s nullglob
schemas=0
for dir in proto/examples/*/; do
    dir=${dir%/}
    name=${dir##*/}
    # AWS's own events, not messages of ours: tests/unit/test_lifecycle.c reads them.
    [ "$name" = aws-events ] && continue
    schema=proto/$name.json
    if [ ! -f "$schema" ]; then
        fail "$dir has no schema $schema"
        continue
    fi
    schemas=$((schemas + 1))
    valid=("$dir"/valid/*.json)
    invalid=("$dir"/invalid/*.json)
    codec_only=("$dir"/codec-only/*.json)
    [ ${#valid[@]} -gt 0 ] || fail "$dir/valid has no example"
    [ ${#invalid[@]} -gt 0 ] || fail "$dir/invalid has no example"
    for f in "${invalid[@]}" "${codec_only[@]}"; do
        if [ -f "${f%.json}.why" ]; then check_why "${f%.json}.why"; else fail "$f has no .why"; fi
    done
    for f in "$dir"/valid/*.refused; do
        [ -f "${f%.refused}.json" ] || fail "$f has no example beside it"
        check_why "$f"
    done
    for f in "$dir"/invalid/*.why "$dir"/codec-only/*.why; do
        [ -f "${f%.why}.json" ] || fail "$f has no example beside it"
    done
    for f in "$dir"/*/*; do
        case "$f" in
        "$dir"/valid/*.json | "$dir"/valid/*.refused | "$dir"/invalid/*.json | \
            "$dir"/invalid/*.why | "$dir"/codec-only/*.json | "$dir"/codec-only/*.why) ;;
        *) fail "$f: unexpected file (see the layout in $0)" ;;
        esac
    done
    run_batch "$schema" valid "${valid[@]}" "${codec_only[@]}"
    run_batch "$schema" invalid "${invalid[@]}"
done
# Every message schema has examples.
for s in proto/*.json; do
    name=${s#proto/}
    name=${name%.json}
    case "$name" in *.defs.*) continue ;; esac
    [ -d "proto/examples/$name" ] || fail "$s has no examples in proto/examples/$name"
done
[ "$schemas" -gt 0 ] || fail "no examples found under proto/examples"

ajv_version=$(node -p "require('$NPM_DIR/node_modules/ajv/package.json').version" 2>/dev/null || echo '?')
echo "check-schemas: $schemas schemas, examples checked with ajv $ajv_version"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
