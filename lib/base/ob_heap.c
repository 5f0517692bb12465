#include "ob_heap.h"

#include <stdlib.h>

#include "ob_alloc.h"

static int less(const ob_heap_node_t *a, const ob_heap_node_t *b)
{
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void set(ob_heap_t *h, size_t i, ob_heap_node_t *x)
{
    h->v[i] = x;
    x->pos = i + 1;
}

static void sift_up(ob_heap_t *h, size_t i)
{
    ob_heap_node_t *x = h->v[i];
    while (i > 0 && less(x, h->v[(i - 1) / 2])) {
        set(h, i, h->v[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    set(h, i, x);
}

static void sift_down(ob_heap_t *h, size_t i)
{
    ob_heap_node_t *x = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && less(h->v[c + 1], h->v[c]))
            c++;
        if (!less(h->v[c], x))
            break;
        set(h, i, h->v[c]);
        i = c;
    }
    set(h, i, x);
}

ob_err_t ob_heap_push(ob_heap_t *h, ob_heap_node_t *x, uint64_t key)
{
    ob_heap_remove(h, x);
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        ob_heap_node_t **v = ob_realloc(h->v, cap * sizeof(*v));
        if (!v)
            return OB_ERR_NOMEM;
        h->v = v;
        h->cap = cap;
    }
    x->key = key;
    x->seq = ++h->seq;
    set(h, h->n++, x);
    sift_up(h, h->n - 1);
    return OB_OK;
}

ob_heap_node_t *ob_heap_top(const ob_heap_t *h)
{
    return h->n ? h->v[0] : NULL;
}

void ob_heap_remove(ob_heap_t *h, ob_heap_node_t *x)
{
    if (!x->pos)
        return;
    size_t i = x->pos - 1;
    ob_heap_node_t *last = h->v[--h->n];
    x->pos = 0;
    if (last == x)
        return;
    set(h, i, last);
    if (i > 0 && less(last, h->v[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

void ob_heap_clear(ob_heap_t *h)
{
    for (size_t i = 0; i < h->n; i++)
        h->v[i]->pos = 0;
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
