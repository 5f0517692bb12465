#include "ob_hash.h"

#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"

#define FNV_OFFSET  1469598103934665603ULL
#define FNV_PRIME   1099511628211ULL
#define MIN_BUCKETS 16

uint64_t ob_hash_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

uint64_t ob_hash_str(const char *s)
{
    uint64_t h = FNV_OFFSET;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * FNV_PRIME;
    return h;
}

static void rehash(ob_htab_t *t, size_t nb)
{
    ob_hnode_t **b = ob_calloc(nb, sizeof(*b));
    for (size_t i = 0; i < t->nbuckets; i++) {
        ob_hnode_t *n = t->buckets[i];
        while (n) {
            ob_hnode_t *next = n->next;
            ob_hnode_t **head = &b[n->hash & (nb - 1)];
            n->next = *head;
            *head = n;
            n = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
}

ob_hnode_t *ob_htab_find(const ob_htab_t *t, uint64_t hash, ob_htab_eq_fn *eq, const void *key)
{
    if (!t->nbuckets)
        return NULL;
    for (ob_hnode_t *n = t->buckets[hash & (t->nbuckets - 1)]; n; n = n->next)
        if (n->hash == hash && eq(n, key))
            return n;
    return NULL;
}

void ob_htab_insert(ob_htab_t *t, ob_hnode_t *node, uint64_t hash)
{
    if (t->n >= t->nbuckets)
        rehash(t, t->nbuckets ? t->nbuckets * 2 : MIN_BUCKETS);
    node->hash = hash;
    ob_hnode_t **head = &t->buckets[hash & (t->nbuckets - 1)];
    node->next = *head;
    *head = node;
    t->n++;
}

void ob_htab_remove(ob_htab_t *t, ob_hnode_t *node)
{
    ob_hnode_t **pp = &t->buckets[node->hash & (t->nbuckets - 1)];
    while (*pp && *pp != node)
        pp = &(*pp)->next;
    if (!*pp)
        return;
    *pp = node->next;
    node->next = NULL;
    t->n--;
    if (t->nbuckets > MIN_BUCKETS && t->n < t->nbuckets / 4)
        rehash(t, t->nbuckets / 2);
}

void ob_htab_clear(ob_htab_t *t)
{
    free(t->buckets);
    memset(t, 0, sizeof(*t));
}
