/*
 * ob_log: structured logging, one JSON object per line on stderr.
 *
 *   {"ts":"2026-11-26T05:50:06.123Z","level":"info","component":"kafka",
 *    "msg":"partition assigned","topic":"onboard.bucket","partition":"3"}
 *
 * Each line is built in memory and written with a single write(2), so lines
 * from several processes sharing a pipe do not interleave. Callers must never
 * pass secrets (keys, session tokens, ExternalIds) as fields or message text.
 *
 * Threading: safe to call from any thread (librdkafka's log callback may run on
 * its own threads); the level and output descriptor are process-wide and
 * should be set once at start-up.
 */
#ifndef OB_LOG_H
#define OB_LOG_H

typedef enum ob_log_level_e {
    OB_LOG_DEBUG = 0,
    OB_LOG_INFO,
    OB_LOG_WARN,
    OB_LOG_ERROR,
    OB_LOG_OFF
} ob_log_level_t;

void ob_log_set_level(ob_log_level_t level);
ob_log_level_t ob_log_get_level(void);
/* Parse "debug", "info", "warn"/"warning", "error", "off"; -1 if unknown. */
int ob_log_level_parse(const char *s);
/* Write to this descriptor instead of 2 (tests). */
void ob_log_set_fd(int fd);
/* Name added to every line as "service" (e.g. "worker-bucket"). Copied. */
void ob_log_set_service(const char *name);

int ob_log_enabled(ob_log_level_t level);

/* Message with printf formatting, no extra fields. */
void ob_logf(ob_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Message plus string fields: key/value pairs ending with a NULL key.
 * A NULL value is written as JSON null. */
void ob_logkv(ob_log_level_t level, const char *component, const char *msg, ...)
    __attribute__((sentinel));

#define OB_DEBUG(comp, ...) ob_logf(OB_LOG_DEBUG, comp, __VA_ARGS__)
#define OB_INFO(comp, ...)  ob_logf(OB_LOG_INFO, comp, __VA_ARGS__)
#define OB_WARN(comp, ...)  ob_logf(OB_LOG_WARN, comp, __VA_ARGS__)
#define OB_ERROR(comp, ...) ob_logf(OB_LOG_ERROR, comp, __VA_ARGS__)

#endif
