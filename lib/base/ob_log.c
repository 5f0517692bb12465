/*
 * ob_log: JSON-lines logger. Strings are escaped per RFC 8259 (control
 * characters as \u00XX; invalid UTF-8 bytes replaced by U+FFFD so every line
 * stays valid JSON for log pipelines). Lines over 16 KiB are truncated with a
 * "truncated":true marker rather than split.
 */
#include "ob_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ob_time.h"

#define OB_LOG_LINE_MAX 16384

static atomic_int ob_log_level = OB_LOG_INFO;
static atomic_int ob_log_fd = 2;
static char ob_log_service[64];

void ob_log_set_level(ob_log_level_t level)
{
    atomic_store(&ob_log_level, (int)level);
}

ob_log_level_t ob_log_get_level(void)
{
    return (ob_log_level_t)atomic_load(&ob_log_level);
}

int ob_log_level_parse(const char *s)
{
    if (!s)
        return -1;
    if (!strcmp(s, "debug"))
        return OB_LOG_DEBUG;
    if (!strcmp(s, "info"))
        return OB_LOG_INFO;
    if (!strcmp(s, "warn") || !strcmp(s, "warning"))
        return OB_LOG_WARN;
    if (!strcmp(s, "error"))
        return OB_LOG_ERROR;
    if (!strcmp(s, "off"))
        return OB_LOG_OFF;
    return -1;
}

void ob_log_set_fd(int fd)
{
    atomic_store(&ob_log_fd, fd);
}

void ob_log_set_service(const char *name)
{
    snprintf(ob_log_service, sizeof(ob_log_service), "%s", name ? name : "");
}

int ob_log_enabled(ob_log_level_t level)
{
    return (int)level >= atomic_load(&ob_log_level) && level < OB_LOG_OFF;
}

typedef struct line_s {
    char buf[OB_LOG_LINE_MAX];
    size_t len;
    int truncated;
} line_t;

/* Room kept free for what closes a line: a quote, the truncation marker, "}\n". */
#define OB_LOG_RESERVE 64

/* All or nothing: a piece that does not fit marks the line truncated. */
static int put(line_t *l, const char *s, size_t n)
{
    if (l->truncated || l->len + n > sizeof(l->buf) - OB_LOG_RESERVE) {
        l->truncated = 1;
        return 0;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return 1;
}

/* Closing pieces use the reserve. */
static void put_closing(line_t *l, const char *s)
{
    size_t n = strlen(s);
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_raw(line_t *l, const char *s)
{
    (void)put(l, s, strlen(s));
}

/* Length of a valid UTF-8 sequence starting at s (n bytes available), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return 1;
    size_t len;
    unsigned cp;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static void put_json_str(line_t *l, const char *s)
{
    if (!s) {
        puts_raw(l, "null");
        return;
    }
    if (!put(l, "\"", 1))
        return;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            if (!put(l, esc, 2))
                break;
            i++;
        } else if (c == '\n') {
            if (!put(l, "\\n", 2))
                break;
            i++;
        } else if (c == '\r') {
            if (!put(l, "\\r", 2))
                break;
            i++;
        } else if (c == '\t') {
            if (!put(l, "\\t", 2))
                break;
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            if (!put(l, esc, 6))
                break;
            i++;
        } else {
            size_t k = utf8_len(p + i, n - i);
            if (k == 0) {
                if (!put(l, "\xEF\xBF\xBD", 3))
                    break;
                i++;
            } else {
                if (!put(l, (const char *)p + i, k))
                    break;
                i += k;
            }
        }
    }
    put_closing(l, "\"");
}

static void begin(line_t *l, ob_log_level_t level, const char *component)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char tbuf[OB_TIME_ISO_LEN];
    ob_time_now_iso(tbuf);
    l->len = 0;
    l->truncated = 0;
    puts_raw(l, "{\"ts\":\"");
    puts_raw(l, tbuf);
    puts_raw(l, "\",\"level\":\"");
    puts_raw(l, names[level]);
    puts_raw(l, "\"");
    if (ob_log_service[0]) {
        puts_raw(l, ",\"service\":");
        put_json_str(l, ob_log_service);
    }
    puts_raw(l, ",\"component\":");
    put_json_str(l, component ? component : "");
}

static void finish(line_t *l)
{
    if (l->truncated)
        put_closing(l, ",\"truncated\":true");
    put_closing(l, "}\n");
    ssize_t r = write(atomic_load(&ob_log_fd), l->buf, l->len);
    (void)r;
}

void ob_logf(ob_log_level_t level, const char *component, const char *fmt, ...)
{
    if (!ob_log_enabled(level))
        return;
    line_t l;
    char msg[OB_LOG_LINE_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    begin(&l, level, component);
    puts_raw(&l, ",\"msg\":");
    put_json_str(&l, msg);
    finish(&l);
}

void ob_logkv(ob_log_level_t level, const char *component, const char *msg, ...)
{
    if (!ob_log_enabled(level))
        return;
    line_t l;
    begin(&l, level, component);
    puts_raw(&l, ",\"msg\":");
    put_json_str(&l, msg);
    va_list ap;
    va_start(ap, msg);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        /* A key must fit whole (escaped, worst case) with room for its value
         * to start, or the field is left out. */
        if (l.truncated || l.len + 6 * strlen(k) + 16 > sizeof(l.buf) - OB_LOG_RESERVE) {
            l.truncated = 1;
            break;
        }
        puts_raw(&l, ",");
        put_json_str(&l, k);
        puts_raw(&l, ":");
        put_json_str(&l, v);
    }
    va_end(ap);
    finish(&l);
}
