/*
 * ob_err: the project's error codes.
 *
 * Every fallible function in lib/ returns an ob_err_t (OB_OK on success) or
 * a NULL handle, and fills a caller-supplied `char *errstr, size_t errstr_size`
 * with a human sentence saying what went wrong and why. The code is for
 * programs (retry decisions, metrics labels); the sentence is for people.
 * Sentences never contain secrets (keys, session tokens, ExternalIds).
 *
 * Thread safety: all functions here are pure and thread-safe.
 */
#ifndef OB_ERR_H
#define OB_ERR_H

#include <stddef.h>

typedef enum ob_err_e {
    OB_OK = 0,
    OB_ERR_INVALID_ARG, /* a caller passed something malformed */
    OB_ERR_NOMEM,       /* allocation failed */
    OB_ERR_IO,          /* a system call failed (errno in the text) */
    OB_ERR_CONFIG,      /* a setting is unknown, malformed or out of bounds */
    OB_ERR_NOT_FOUND,   /* the thing looked for does not exist */
    OB_ERR_PARSE,       /* malformed input (JSON, XML, INI, URL, ...) */
    OB_ERR_TOO_LARGE,   /* input or reply exceeds a configured limit */
    OB_ERR_TIMEOUT,     /* a deadline passed */
    OB_ERR_CANCELLED,   /* the operation was abandoned (shutdown, disconnect) */
    OB_ERR_CONN,        /* connection refused, reset or closed early */
    OB_ERR_HTTP,        /* other transport-level HTTP failure */
    OB_ERR_AWS,         /* AWS answered with an error (code in ob_aws_error) */
    OB_ERR_CREDENTIALS, /* no usable AWS credentials */
    OB_ERR_KAFKA,       /* librdkafka reported an error */
    OB_ERR_REDIS,       /* Redis replied with an error or is unreachable */
    OB_ERR_RETRY_QUOTA, /* the retry token bucket is empty */
    OB_ERR_STATE,       /* the call is not valid in the object's current state */
    OB_ERR__COUNT
} ob_err_t;

/* Short stable name of a code, e.g. "timeout"; never NULL. */
const char *ob_err2str(ob_err_t err);

/* Write a formatted message into errstr (if not NULL) and return err. */
ob_err_t ob_errf(char *errstr, size_t errstr_size, ob_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
