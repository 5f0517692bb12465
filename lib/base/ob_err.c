/*
 * ob_err: names for the error codes and a helper to fill errstr buffers.
 */
#include "ob_err.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const ob_err_names[OB_ERR__COUNT] = {
    [OB_OK] = "ok",
    [OB_ERR_INVALID_ARG] = "invalid_argument",
    [OB_ERR_NOMEM] = "out_of_memory",
    [OB_ERR_IO] = "io_error",
    [OB_ERR_CONFIG] = "config_error",
    [OB_ERR_NOT_FOUND] = "not_found",
    [OB_ERR_PARSE] = "parse_error",
    [OB_ERR_TOO_LARGE] = "too_large",
    [OB_ERR_TIMEOUT] = "timeout",
    [OB_ERR_CANCELLED] = "cancelled",
    [OB_ERR_CONN] = "connection_error",
    [OB_ERR_HTTP] = "http_error",
    [OB_ERR_AWS] = "aws_error",
    [OB_ERR_CREDENTIALS] = "credentials_error",
    [OB_ERR_KAFKA] = "kafka_error",
    [OB_ERR_REDIS] = "redis_error",
    [OB_ERR_RETRY_QUOTA] = "retry_quota_exhausted",
    [OB_ERR_STATE] = "invalid_state",
};

const char *ob_err2str(ob_err_t err)
{
    if ((int)err < 0 || err >= OB_ERR__COUNT || !ob_err_names[err])
        return "unknown_error";
    return ob_err_names[err];
}

ob_err_t ob_errf(char *errstr, size_t errstr_size, ob_err_t err, const char *fmt, ...)
{
    if (errstr && errstr_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}
