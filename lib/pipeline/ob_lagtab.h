/*
 * ob_lagtab: how old a consumer group's lag is, from the partition's end
 * offsets alone, as kafka-lag-exporter estimates it. A lag exporter sees the
 * committed offset and the end offset, never the messages, so it records, at
 * every poll, the end offset and when it was seen; the age of the committed
 * offset is how long ago the end passed it, interpolated between the two
 * samples around it (extrapolated before the first one, from the first
 * samples' rate). A consumer that stalls shows an age that grows by the
 * wall clock, whatever the producers do.
 *
 * The table keeps a point only when the end moved (a quiet partition costs
 * nothing), and when full it drops every other point but the first and the
 * last: the span it covers keeps growing, at a coarser resolution, so a
 * consumer stalled for a day still reads a day.
 *
 * Threading: pure functions on the caller's table.
 */
#ifndef OB_LAGTAB_H
#define OB_LAGTAB_H

#include <stddef.h>
#include <stdint.h>

#define OB_LAGTAB_POINTS 64

typedef struct ob_lagtab_pt_s {
    int64_t offset; /* the end offset seen ... */
    int64_t ms;     /* ... first at this time (epoch ms) */
} ob_lagtab_pt_t;

typedef struct ob_lagtab_s {
    ob_lagtab_pt_t pt[OB_LAGTAB_POINTS]; /* increasing offsets and times */
    size_t n;
} ob_lagtab_t;

/* The end offset seen at now_ms. An end lower than the last one (the topic
 * was recreated) starts the table again. */
void ob_lagtab_add(ob_lagtab_t *t, int64_t end, int64_t now_ms);

/* Seconds since the end passed committed (0 when committed is at or past
 * the last end seen, or nothing was seen). */
double ob_lagtab_seconds(const ob_lagtab_t *t, int64_t committed, int64_t now_ms);

#endif
