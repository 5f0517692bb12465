/*
 * ob_alloc: the project's one out-of-memory policy.
 *
 * Allocation failure stops the process (as redis does): a line is logged and
 * the process aborts. Nothing is lost by it: a worker commits an offset only
 * once the message's outcome is recorded, so a restart redoes what was in
 * flight, and an operator tool is run again. Checking every allocation (as
 * hiredis does) instead would put an untested error path after each of them,
 * and a path that skips work on a failed allocation is how a message gets
 * committed without being done.
 *
 * So: every allocation in lib/, workers/, tools/ and sim/ goes through these
 * functions (never malloc, calloc, realloc, strdup or strndup directly) and
 * their results need no NULL check. The third-party libraries that allocate
 * on our behalf are given the same policy where they allow it (ob_libs_init:
 * jansson, hiredis, curl); librdkafka aborts on allocation failure itself.
 *
 * Threading: any thread.
 */
#ifndef OB_ALLOC_H
#define OB_ALLOC_H

#include <stddef.h>

void *ob_malloc(size_t n);
void *ob_calloc(size_t n, size_t size);
/* n 0 frees p and returns NULL, as realloc may. */
void *ob_realloc(void *p, size_t n);
char *ob_strdup(const char *s);
char *ob_strndup(const char *s, size_t n);
/* Log that n bytes could not be had, and abort. */
_Noreturn void ob_oom(size_t n);

#endif
