/*
 * ob_offsets: one ring buffer of (offset, done) per partition, in arrival
 * order. Completion marks the slot; the head advances over done slots, and
 * the first not-done slot (or last done + 1 when the ring empties) is what may
 * be committed. Partitions are few (tens), so they live in a small array.
 */
#include "ob_offsets.h"

#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"

typedef struct slot_s {
    int64_t offset;
    int done;
} slot_t;

typedef struct part_s {
    char *topic;
    int32_t partition;
    slot_t *ring;
    size_t cap, head, len; /* ring[head .. head+len) in arrival order */
    int64_t last_added;
} part_t;

struct ob_offsets_s {
    part_t *parts;
    size_t n, cap;
    size_t total;
};

ob_offsets_t *ob_offsets_new(void)
{
    return ob_calloc(1, sizeof(ob_offsets_t));
}

void ob_offsets_free(ob_offsets_t *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->parts[i].topic);
        free(t->parts[i].ring);
    }
    free(t->parts);
    free(t);
}

static part_t *find(const ob_offsets_t *t, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->parts[i].partition == partition && !strcmp(t->parts[i].topic, topic))
            return &t->parts[i];
    return NULL;
}

static slot_t *at(part_t *p, size_t i)
{
    return &p->ring[(p->head + i) % p->cap];
}

ob_err_t ob_offsets_add(ob_offsets_t *t, const char *topic, int32_t partition, int64_t offset)
{
    part_t *p = find(t, topic, partition);
    if (!p) {
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 16;
            part_t *np = ob_realloc(t->parts, cap * sizeof(*np));
            if (!np)
                return OB_ERR_NOMEM;
            t->parts = np;
            t->cap = cap;
        }
        p = &t->parts[t->n];
        memset(p, 0, sizeof(*p));
        p->topic = ob_strdup(topic);
        if (!p->topic)
            return OB_ERR_NOMEM;
        p->partition = partition;
        p->last_added = -1;
        t->n++;
    }
    if (offset <= p->last_added)
        return OB_ERR_INVALID_ARG;
    if (p->len == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        slot_t *r = ob_malloc(cap * sizeof(*r));
        if (!r)
            return OB_ERR_NOMEM;
        for (size_t i = 0; i < p->len; i++)
            r[i] = *at(p, i);
        free(p->ring);
        p->ring = r;
        p->cap = cap;
        p->head = 0;
    }
    slot_t *s = &p->ring[(p->head + p->len) % p->cap];
    s->offset = offset;
    s->done = 0;
    p->len++;
    p->last_added = offset;
    t->total++;
    return OB_OK;
}

int ob_offsets_done(ob_offsets_t *t, const char *topic, int32_t partition, int64_t offset,
                    int64_t *commit)
{
    part_t *p = find(t, topic, partition);
    if (!p || p->len == 0)
        return -1;
    /* Binary search: offsets increase along the ring. */
    size_t lo = 0, hi = p->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (at(p, mid)->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == p->len || at(p, lo)->offset != offset || at(p, lo)->done)
        return -1;
    at(p, lo)->done = 1;
    if (lo != 0)
        return 0;
    int64_t last = offset;
    while (p->len > 0 && at(p, 0)->done) {
        last = at(p, 0)->offset;
        p->head = (p->head + 1) % p->cap;
        p->len--;
        t->total--;
    }
    if (commit)
        *commit = p->len > 0 ? at(p, 0)->offset : last + 1;
    return 1;
}

int64_t ob_offsets_committable(const ob_offsets_t *t, const char *topic, int32_t partition)
{
    part_t *p = find(t, topic, partition);
    if (!p || p->last_added < 0)
        return -1;
    return p->len > 0 ? at(p, 0)->offset : p->last_added + 1;
}

size_t ob_offsets_done_map(const ob_offsets_t *t, const char *topic, int32_t partition,
                           int64_t base, unsigned char *map, size_t max)
{
    part_t *p = find(t, topic, partition);
    size_t used = 0;
    if (!p || max == 0)
        return 0;
    memset(map, 0, max);
    for (size_t i = 0; i < p->len; i++) {
        const slot_t *s = at(p, i);
        if (!s->done || s->offset < base)
            continue;
        uint64_t bit = (uint64_t)(s->offset - base);
        if (bit / 8 >= max)
            break;
        map[bit / 8] |= (unsigned char)(1u << (bit % 8));
        if (bit / 8 + 1 > used)
            used = (size_t)(bit / 8 + 1);
    }
    return used;
}

int64_t ob_offsets_last(const ob_offsets_t *t, const char *topic, int32_t partition)
{
    const part_t *p = find(t, topic, partition);
    return p ? p->last_added : -1;
}

void ob_offsets_forget(ob_offsets_t *t, const char *topic, int32_t partition)
{
    part_t *p = find(t, topic, partition);
    if (!p)
        return;
    t->total -= p->len;
    free(p->topic);
    free(p->ring);
    *p = t->parts[--t->n];
}

size_t ob_offsets_pending(const ob_offsets_t *t, const char *topic, int32_t partition)
{
    part_t *p = find(t, topic, partition);
    return p ? p->len : 0;
}

size_t ob_offsets_total(const ob_offsets_t *t)
{
    return t->total;
}
