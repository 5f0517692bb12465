/*
 * ob_buf: growable buffers and header lists. Growth doubles the capacity so
 * appends are amortised O(1); every buffer keeps a trailing NUL.
 */
#include "ob_buf.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ob_alloc.h"

ob_err_t ob_buf_reserve(ob_buf_t *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return OB_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1) {
        if (cap > ((size_t)-1) / 2)
            return OB_ERR_NOMEM;
        cap *= 2;
    }
    char *d = ob_realloc(b->data, cap);
    if (!d)
        return OB_ERR_NOMEM;
    b->data = d;
    b->cap = cap;
    b->data[b->len] = '\0'; /* a fresh buffer is an empty string, not garbage */
    return OB_OK;
}

void ob_buf_fit(ob_buf_t *b)
{
    if (!b->data || b->cap == b->len + 1)
        return;
    b->data = ob_realloc(b->data, b->len + 1);
    b->cap = b->len + 1;
}

ob_err_t ob_buf_append(ob_buf_t *b, const void *p, size_t n)
{
    if (ob_buf_reserve(b, n) != OB_OK)
        return OB_ERR_NOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return OB_OK;
}

ob_err_t ob_buf_puts(ob_buf_t *b, const char *s)
{
    return ob_buf_append(b, s, strlen(s));
}

ob_err_t ob_buf_putc(ob_buf_t *b, char c)
{
    if (b->len + 2 <= b->cap) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return OB_OK;
    }
    return ob_buf_append(b, &c, 1);
}

ob_err_t ob_buf_printf(ob_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return OB_ERR_INVALID_ARG;
    if (ob_buf_reserve(b, (size_t)n) != OB_OK)
        return OB_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return OB_OK;
}

void ob_buf_reset(ob_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void ob_buf_free(ob_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *ob_buf_steal(ob_buf_t *b)
{
    char *d = b->data;
    if (!d)
        d = ob_calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

ob_err_t ob_hdrs_add(ob_hdrs_t *h, const char *name, const char *value)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        ob_hdr_t *v = ob_realloc(h->v, cap * sizeof(*v));
        if (!v)
            return OB_ERR_NOMEM;
        h->v = v;
        h->cap = cap;
    }
    char *n = ob_strdup(name), *val = ob_strdup(value ? value : "");
    if (!n || !val) {
        free(n);
        free(val);
        return OB_ERR_NOMEM;
    }
    h->v[h->n].name = n;
    h->v[h->n].value = val;
    h->n++;
    return OB_OK;
}

ob_err_t ob_hdrs_set(ob_hdrs_t *h, const char *name, const char *value)
{
    ob_hdrs_del(h, name);
    return ob_hdrs_add(h, name, value);
}

const char *ob_hdrs_get(const ob_hdrs_t *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->v[i].name, name) == 0)
            return h->v[i].value;
    return NULL;
}

void ob_hdrs_del(ob_hdrs_t *h, const char *name)
{
    size_t j = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (strcasecmp(h->v[i].name, name) == 0) {
            free(h->v[i].name);
            free(h->v[i].value);
        } else {
            h->v[j++] = h->v[i];
        }
    }
    h->n = j;
}

void ob_hdrs_clear(ob_hdrs_t *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->v[i].name);
        free(h->v[i].value);
    }
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

char *ob_str_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Calls fn(item, len, arg) for each non-empty item of list. */
static void list_each(const char *list, void (*fn)(const char *, size_t, void *), void *arg)
{
    for (const char *p = list ? list : ""; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n)
            fn(p, n, arg);
        p += n + (e ? 1 : 0);
    }
}

typedef struct list_acc_s {
    const char *skip;
    size_t count, drop;
    ob_buf_t out;
    ob_err_t err;
} list_acc_t;

static void list_count(const char *p, size_t n, void *arg)
{
    list_acc_t *a = arg;
    if (!(strlen(a->skip) == n && !memcmp(p, a->skip, n)))
        a->count++;
}

static void list_copy(const char *p, size_t n, void *arg)
{
    list_acc_t *a = arg;
    if (strlen(a->skip) == n && !memcmp(p, a->skip, n))
        return;
    if (a->drop) {
        a->drop--;
        return;
    }
    if (a->err == OB_OK && a->out.len)
        a->err = ob_buf_append(&a->out, ",", 1);
    if (a->err == OB_OK)
        a->err = ob_buf_append(&a->out, p, n);
}

static void list_find(const char *p, size_t n, void *arg)
{
    list_acc_t *a = arg;
    if (strlen(a->skip) == n && !memcmp(p, a->skip, n))
        a->count++;
}

int ob_list_has(const char *list, const char *item)
{
    list_acc_t a = {.skip = item};
    list_each(list, list_find, &a);
    return a.count > 0;
}

char *ob_list_with(const char *list, const char *item, size_t max)
{
    list_acc_t a = {.skip = item};
    list_each(list, list_count, &a);
    if (max && a.count + 1 > max)
        a.drop = a.count + 1 - max;
    list_each(list, list_copy, &a);
    if (a.err == OB_OK && *item && a.out.len)
        a.err = ob_buf_append(&a.out, ",", 1);
    if (a.err == OB_OK && *item)
        a.err = ob_buf_append(&a.out, item, strlen(item));
    if (a.err != OB_OK) {
        ob_buf_free(&a.out);
        return NULL;
    }
    return ob_buf_steal(&a.out);
}

char *ob_list_without(const char *list, const char *item)
{
    list_acc_t a = {.skip = item};
    list_each(list, list_copy, &a);
    if (a.err != OB_OK) {
        ob_buf_free(&a.out);
        return NULL;
    }
    return ob_buf_steal(&a.out);
}
