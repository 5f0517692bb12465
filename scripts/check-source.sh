#!/usr/bin/env bash
# House rules a compiler does not check. Each prints the lines that break it.
#  - Allocation goes through ob_alloc.h (the out-of-memory policy), never the
#    C library's functions directly (tools/ob_mockkafka.c links none of ours).
#  - Stage logic (workers/stage_*.c) keeps no process-global mutable state:
#    what a stage learns across messages lives in its per-worker context
#    (ob_stage_ops_t.ctx_new).
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

raw=$(git grep -nE '(^|[^_[:alnum:].>])(malloc|calloc|realloc|strdup|strndup)\(' -- \
  'lib/*.c' 'lib/*.h' 'workers/*.c' 'workers/*.h' 'tools/*.c' 'tools/*.h' 'sim/*.c' 'sim/*.h' \
  ':!lib/base/ob_alloc.c' ':!tools/ob_mockkafka.c' | grep -vE '^[^:]+:[0-9]+:\s*(/?\*|//)' || true)
if [ -n "$raw" ]; then
  echo "$raw"
  echo "check-source: allocate with ob_malloc/ob_calloc/ob_realloc/ob_strdup/ob_strndup (lib/base/ob_alloc.h)" >&2
  fail=1
fi

globals=$(git grep -nE '^(static )?[[:alpha:]_][[:alnum:]_ ]*[ *][[:alnum:]_]+(\[[^]]*\])*( =[^(]*)?;|^static (struct|union) *\{' -- 'workers/stage_*.c' |
  grep -vE ':(static )?const |typedef|^[^:]+:[0-9]+:extern ' || true)
if [ -n "$globals" ]; then
  echo "$globals"
  echo "check-source: stage logic keeps no global state: put it in the stage's per-worker context (ctx_new)" >&2
  fail=1
fi

exit $fail
