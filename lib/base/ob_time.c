#include "ob_time.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void ob_time_format_ms(int64_t ms, char out[OB_TIME_ISO_LEN])
{
    if (ms < 0)
        ms = 0;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    /* A year past 9999 does not fit the form: clamp rather than cut. */
    if (tm.tm_year + 1900 > 9999) {
        snprintf(out, OB_TIME_ISO_LEN, "9999-12-31T23:59:59.999Z");
        return;
    }
    char buf[64]; /* what the int fields could print, for the compiler's sake */
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    memcpy(out, buf, OB_TIME_ISO_LEN - 1);
    out[OB_TIME_ISO_LEN - 1] = '\0';
}

int64_t ob_time_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ob_time_now_iso(char out[OB_TIME_ISO_LEN])
{
    ob_time_format_ms(ob_time_wall_ms(), out);
}

int ob_time_parse_iso_ms(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
        return -1;
    const char *p = s + n;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    if (!(*p == '\0' || !strcmp(p, "Z") || !strcmp(p, "+00:00")))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = (int64_t)t * 1000 + frac;
    return 0;
}
