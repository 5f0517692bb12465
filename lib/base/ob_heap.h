/*
 * ob_heap: an intrusive binary min-heap of nodes embedded in the caller's
 * objects, ordered by key, then by the order they were pushed. A node knows
 * its position, so removing one from the middle is O(log n). No allocation
 * but the array of pointers. Used for the loop's timers, HTTP transfers
 * waiting for a slot and jobs waiting for a place to run.
 */
#ifndef OB_HEAP_H
#define OB_HEAP_H

#include <stddef.h>
#include <stdint.h>

#include "ob_err.h"

typedef struct ob_heap_node_s {
    uint64_t key; /* lowest first */
    uint64_t seq; /* then in push order */
    size_t pos;   /* 1-based position; 0 when in no heap (a zeroed node is out) */
} ob_heap_node_t;

typedef struct ob_heap_s {
    ob_heap_node_t **v;
    size_t n, cap;
    uint64_t seq; /* the last push's sequence number */
} ob_heap_t;

/* The object that contains node `ptr` (its member `member`). */
#define OB_HEAP_ENTRY(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline int ob_heap_in(const ob_heap_node_t *x)
{
    return x->pos != 0;
}

/* Insert x with key (taken out first if it is in h). OB_ERR_NOMEM. */
ob_err_t ob_heap_push(ob_heap_t *h, ob_heap_node_t *x, uint64_t key);
/* The lowest node, or NULL. */
ob_heap_node_t *ob_heap_top(const ob_heap_t *h);
/* Take x out of h (no-op when it is in no heap). */
void ob_heap_remove(ob_heap_t *h, ob_heap_node_t *x);
/* Take every node out and free the array. */
void ob_heap_clear(ob_heap_t *h);

#endif
