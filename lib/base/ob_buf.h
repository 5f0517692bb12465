/*
 * ob_buf: a growable byte buffer and the header list used by HTTP and SigV4.
 *
 * Ownership: an ob_buf_t owns its bytes; a zero-initialised struct is an empty
 * buffer. `data` is always NUL-terminated when not NULL, so text can be read
 * as a C string. ob_hdrs_t owns copies of every name and value it holds;
 * names compare case-insensitively; insertion order is kept.
 *
 * Thread safety: none; each value belongs to one thread.
 */
#ifndef OB_BUF_H
#define OB_BUF_H

#include <stddef.h>

#include "ob_err.h"

typedef struct ob_buf_s {
    char *data;
    size_t len;
    size_t cap;
} ob_buf_t;

ob_err_t ob_buf_append(ob_buf_t *b, const void *p, size_t n);
ob_err_t ob_buf_puts(ob_buf_t *b, const char *s);
ob_err_t ob_buf_putc(ob_buf_t *b, char c);
ob_err_t ob_buf_printf(ob_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Make room for n more bytes without changing len. */
ob_err_t ob_buf_reserve(ob_buf_t *b, size_t n);
/* Give back the room beyond the contents (a buffer only read from now on,
 * such as a request body kept for its retries). */
void ob_buf_fit(ob_buf_t *b);
/* Forget the contents, keep the memory. */
void ob_buf_reset(ob_buf_t *b);
void ob_buf_free(ob_buf_t *b);
/* Hand the bytes to the caller (free() them); the buffer becomes empty.
 * Returns an empty string, not NULL, for an empty buffer (NULL on ENOMEM). */
char *ob_buf_steal(ob_buf_t *b);

/* Strip leading and trailing white space from s in place; returns the start. */
char *ob_str_trim(char *s);

/* Comma-separated lists of names ("a,b,c"), as the account's state keeps
 * them (names never hold a comma). */
/* 1 when item is in list. */
int ob_list_has(const char *list, const char *item);
/* The list with item last (moved there when present), keeping at most max
 * items (the first ones dropped; max 0: no limit). malloc'd; NULL on ENOMEM. */
char *ob_list_with(const char *list, const char *item, size_t max);
/* The list without item. malloc'd; NULL on ENOMEM. */
char *ob_list_without(const char *list, const char *item);

typedef struct ob_hdr_s {
    char *name;
    char *value;
} ob_hdr_t;

typedef struct ob_hdrs_s {
    ob_hdr_t *v;
    size_t n;
    size_t cap;
} ob_hdrs_t;

/* Append a header (duplicates allowed, order kept). */
ob_err_t ob_hdrs_add(ob_hdrs_t *h, const char *name, const char *value);
/* Replace every header of this name with one. */
ob_err_t ob_hdrs_set(ob_hdrs_t *h, const char *name, const char *value);
/* First value of this name, or NULL. */
const char *ob_hdrs_get(const ob_hdrs_t *h, const char *name);
/* Remove every header of this name. */
void ob_hdrs_del(ob_hdrs_t *h, const char *name);
void ob_hdrs_clear(ob_hdrs_t *h);

#endif
