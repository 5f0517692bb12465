/*
 * ob_hash: the project's one string hash (FNV-1a, 64 bits) and a hash table
 * of intrusive nodes that grows with what it holds.
 *
 * The table owns only its bucket array: nodes live in their owners (embed an
 * ob_hnode_t and get back with OB_HNODE_ENTRY), are found with a key and an
 * equality function of the caller's, and are never freed by the table. It
 * doubles its buckets when it holds more nodes than buckets (a chain is then
 * one node long on average) and halves them when a quarter full, so a table
 * sized for ten accounts serves a million and gives the memory back after.
 *
 * Threading: one thread per table.
 */
#ifndef OB_HASH_H
#define OB_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t ob_hash_bytes(const void *data, size_t len);
uint64_t ob_hash_str(const char *s);

typedef struct ob_hnode_s {
    struct ob_hnode_s *next;
    uint64_t hash;
} ob_hnode_t;

typedef struct ob_htab_s {
    ob_hnode_t **buckets; /* nbuckets, a power of two (none until the first insert) */
    size_t nbuckets;
    size_t n;
} ob_htab_t;

#define OB_HNODE_ENTRY(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* eq(node, key): 1 when node is the key's. */
typedef int(ob_htab_eq_fn)(const ob_hnode_t *node, const void *key);

/* A zeroed ob_htab_t is an empty table. */
ob_hnode_t *ob_htab_find(const ob_htab_t *t, uint64_t hash, ob_htab_eq_fn *eq, const void *key);
/* Add a node that is not in the table (the caller found no node of its key). */
void ob_htab_insert(ob_htab_t *t, ob_hnode_t *node, uint64_t hash);
/* Take a node out (it must be in the table). */
void ob_htab_remove(ob_htab_t *t, ob_hnode_t *node);
/* Free the bucket array (the nodes are the caller's); the table is empty after. */
void ob_htab_clear(ob_htab_t *t);

#endif
