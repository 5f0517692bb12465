/*
 * ob_time: the one RFC 3339 / ISO 8601 form of a time the project writes
 * (UTC, milliseconds: 2026-01-31T12:00:00.000Z) and reads.
 *
 * Threading: reentrant.
 */
#ifndef OB_TIME_H
#define OB_TIME_H

#include <stdint.h>

#define OB_TIME_ISO_LEN 25 /* "2026-01-31T12:00:00.000Z" and its NUL */

/* ms since the epoch (wall clock) as 2026-01-31T12:00:00.000Z. */
void ob_time_format_ms(int64_t ms, char out[OB_TIME_ISO_LEN]);
/* The wall clock now, in that form. */
void ob_time_now_iso(char out[OB_TIME_ISO_LEN]);
/* The wall clock now, in ms since the epoch. */
int64_t ob_time_wall_ms(void);
/* "2026-11-26T07:00:00Z", "...T07:00:00.123Z", "...T07:00:00+00:00" or
 * without a zone (taken as UTC) -> ms since the epoch (fractions past the
 * millisecond are dropped). 0, or -1 for anything else. */
int ob_time_parse_iso_ms(const char *s, int64_t *out);

#endif
