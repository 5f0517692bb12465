/*
 * ob_arena: one owner for many small strings, sized to their content.
 *
 * A message's strings (ids, ARNs, names, times) are copied into the arena of
 * the value that holds them, back to back in chunks that grow as needed, and
 * all go at once with the arena. A value holds what its strings take, not
 * the most any of them could (a 1.2 KiB ExternalId buffer for a 36-byte
 * ExternalId).
 *
 * Ownership: the arena owns every string it returns; they live until
 * ob_arena_free. Threading: one thread per arena.
 */
#ifndef OB_ARENA_H
#define OB_ARENA_H

#include <stdarg.h>
#include <stddef.h>

typedef struct ob_arena_s ob_arena_t;

/* An empty arena; its first chunk is allocated on first use. */
ob_arena_t *ob_arena_new(void);
/* The same, its first chunk `first` bytes: what the strings will take when
 * the caller knows (a parsed message's strings); a chunk after it is small
 * (a string or two more), later ones double. */
ob_arena_t *ob_arena_new_sized(size_t first);
void ob_arena_free(ob_arena_t *a);
/* n bytes (8-aligned), zeroed. */
void *ob_arena_alloc(ob_arena_t *a, size_t n);
/* Copies of s (NULL: ""), of its first n bytes, or of printf output. */
const char *ob_arena_strdup(ob_arena_t *a, const char *s);
const char *ob_arena_strndup(ob_arena_t *a, const char *s, size_t n);
const char *ob_arena_printf(ob_arena_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *ob_arena_vprintf(ob_arena_t *a, const char *fmt, va_list ap);
/* Bytes handed out and bytes held (for the memory figures). */
size_t ob_arena_used(const ob_arena_t *a);
size_t ob_arena_held(const ob_arena_t *a);

#endif
