/*
 * ob_offsets: at-least-once offset tracking for one consumer.
 *
 * Messages of a partition arrive in offset order but finish in any order
 * (thousands of accounts are in flight at once). The offset that may be
 * committed is the lowest one not yet finished: everything before it is
 * done, so a restart resumes there and redoes at most the unfinished work.
 * Per partition a sorted ring of in-flight offsets with done flags gives O(1)
 * amortised arrival and completion bookkeeping (completion finds its slot by
 * binary search; offsets may have gaps from compaction or transaction
 * markers).
 *
 * Ownership: the tracker owns its partitions' rings; topic names are copied.
 * Threading: one thread (the loop).
 */
#ifndef OB_OFFSETS_H
#define OB_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include "ob_err.h"

typedef struct ob_offsets_s ob_offsets_t;

ob_offsets_t *ob_offsets_new(void);
void ob_offsets_free(ob_offsets_t *t);

/* A message at `offset` entered processing. Offsets of one partition must be
 * added in increasing order (OB_ERR_INVALID_ARG otherwise). */
ob_err_t ob_offsets_add(ob_offsets_t *t, const char *topic, int32_t partition, int64_t offset);
/* It finished. Returns 1 when this moved the partition's committable offset
 * (then *commit is the next offset to consume), 0 when not, -1 when the
 * offset is not tracked (e.g. its partition was revoked meanwhile). */
int ob_offsets_done(ob_offsets_t *t, const char *topic, int32_t partition, int64_t offset,
                    int64_t *commit);
/* The offset that may be committed now (the lowest unfinished one, or the
 * last finished + 1), or -1 when the partition has none tracked. */
int64_t ob_offsets_committable(const ob_offsets_t *t, const char *topic, int32_t partition);
/* The finished offsets above `base`, as a bitmap: bit i (byte i / 8, least
 * significant bit first) set when offset base + i is finished. Writes at most
 * `max` bytes and returns how many (trailing zero bytes left out). */
size_t ob_offsets_done_map(const ob_offsets_t *t, const char *topic, int32_t partition,
                           int64_t base, unsigned char *map, size_t max);
/* The last offset added for the partition since it was last forgotten (-1:
 * none): a message at or below it means the consumer went back. */
int64_t ob_offsets_last(const ob_offsets_t *t, const char *topic, int32_t partition);
/* Forget a partition (revoked): its in-flight offsets are no longer tracked. */
void ob_offsets_forget(ob_offsets_t *t, const char *topic, int32_t partition);
/* Unfinished messages on one partition, and in total. */
size_t ob_offsets_pending(const ob_offsets_t *t, const char *topic, int32_t partition);
size_t ob_offsets_total(const ob_offsets_t *t);

#endif
