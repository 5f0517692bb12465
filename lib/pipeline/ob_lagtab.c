/*
 * ob_lagtab: see ob_lagtab.h.
 */
#include "ob_lagtab.h"

#include <string.h>

void ob_lagtab_add(ob_lagtab_t *t, int64_t end, int64_t now_ms)
{
    if (t->n && end < t->pt[t->n - 1].offset)
        t->n = 0;
    if (t->n && end == t->pt[t->n - 1].offset)
        return; /* when the end reached it first is what counts */
    if (t->n == OB_LAGTAB_POINTS) {
        /* Every other point, the first and the last kept. */
        size_t k = 1;
        for (size_t i = 2; i < t->n - 1; i += 2)
            t->pt[k++] = t->pt[i];
        t->pt[k++] = t->pt[t->n - 1];
        t->n = k;
    }
    t->pt[t->n].offset = end;
    t->pt[t->n].ms = now_ms;
    t->n++;
}

double ob_lagtab_seconds(const ob_lagtab_t *t, int64_t committed, int64_t now_ms)
{
    if (!t->n || committed >= t->pt[t->n - 1].offset)
        return 0;
    double at;
    const ob_lagtab_pt_t *p = t->pt;
    if (committed < p[0].offset) {
        /* Before the first sample: at the first samples' rate, and no later
         * than the first sample. */
        at = (double)p[0].ms;
        if (t->n >= 2 && p[1].ms > p[0].ms) {
            double rate = (double)(p[1].offset - p[0].offset) / (double)(p[1].ms - p[0].ms);
            at -= (double)(p[0].offset - committed) / rate;
        }
    } else {
        /* The end passed committed between sample i-1 and sample i (the
         * message at committed was written after the end stood at
         * p[i-1].offset <= committed). */
        size_t i = 1;
        while (p[i].offset <= committed)
            i++;
        double frac =
            (double)(committed - p[i - 1].offset + 1) / (double)(p[i].offset - p[i - 1].offset);
        at = (double)p[i - 1].ms + frac * (double)(p[i].ms - p[i - 1].ms);
    }
    double age = ((double)now_ms - at) / 1000.0;
    return age > 0 ? age : 0;
}
