#include "ob_alloc.h"

#include <stdlib.h>
#include <string.h>

#include "ob_log.h"

_Noreturn void ob_oom(size_t n)
{
    ob_logf(OB_LOG_ERROR, "alloc", "out of memory (%zu bytes): stopping", n);
    abort();
}

void *ob_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        ob_oom(n);
    return p;
}

void *ob_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        ob_oom(n * size);
    return p;
}

void *ob_realloc(void *p, size_t n)
{
    if (n == 0) {
        free(p);
        return NULL;
    }
    void *q = realloc(p, n);
    if (!q)
        ob_oom(n);
    return q;
}

char *ob_strdup(const char *s)
{
    size_t n = strlen(s);
    char *d = ob_malloc(n + 1);
    memcpy(d, s, n + 1);
    return d;
}

char *ob_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = ob_malloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}
