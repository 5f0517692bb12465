#include "ob_arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"

/* The first chunk fits a typical message's strings; later ones double. */
#define FIRST_CHUNK 512
#define MAX_CHUNK   (64 * 1024)

typedef struct chunk_s {
    struct chunk_s *next;
    size_t size, used;
    max_align_t data[]; /* size bytes */
} chunk_t;

struct ob_arena_s {
    chunk_t *head; /* the chunk being filled; older ones behind it */
    size_t used, held;
    size_t first; /* size of the first chunk (0: FIRST_CHUNK) */
};

ob_arena_t *ob_arena_new(void)
{
    return ob_calloc(1, sizeof(ob_arena_t));
}

ob_arena_t *ob_arena_new_sized(size_t first)
{
    ob_arena_t *a = ob_arena_new();
    a->first = first < 64 ? 64 : (first + 7) & ~(size_t)7;
    return a;
}

void ob_arena_free(ob_arena_t *a)
{
    if (!a)
        return;
    chunk_t *c = a->head;
    while (c) {
        chunk_t *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

void *ob_arena_alloc(ob_arena_t *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    chunk_t *c = a->head;
    if (!c || c->size - c->used < n) {
        /* After a first chunk sized to what was known to come, a small one:
         * what comes later is a string or two, not as much again. */
        size_t size = !c                     ? (a->first ? a->first : FIRST_CHUNK)
                      : a->first && !c->next ? FIRST_CHUNK / 2
                                             : c->size * 2;
        if (size > MAX_CHUNK)
            size = MAX_CHUNK;
        if (size < n)
            size = n;
        c = ob_malloc(sizeof(chunk_t) + size);
        c->size = size;
        c->used = 0;
        c->next = a->head;
        a->head = c;
        a->held += size;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

const char *ob_arena_strndup(ob_arena_t *a, const char *s, size_t n)
{
    if (!s || !n)
        return "";
    char *d = ob_arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

const char *ob_arena_strdup(ob_arena_t *a, const char *s)
{
    return s ? ob_arena_strndup(a, s, strlen(s)) : "";
}

const char *ob_arena_vprintf(ob_arena_t *a, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n <= 0)
        return "";
    char *d = ob_arena_alloc(a, (size_t)n + 1);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    return d;
}

const char *ob_arena_printf(ob_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *s = ob_arena_vprintf(a, fmt, ap);
    va_end(ap);
    return s;
}

size_t ob_arena_used(const ob_arena_t *a)
{
    return a->used;
}

size_t ob_arena_held(const ob_arena_t *a)
{
    return a->held;
}
