/*
 * ob_aws: the AWS client every stage uses. It sends one AWS API call
 * (ob_aws_req_t, built with ob_awsproto) to the right endpoint, signed with
 * SigV4 by the given credentials, and retries it the way the SDKs' standard
 * retry mode does: transient and throttling errors are tried again after a
 * full-jitter exponential delay, up to max attempts, while a per-client retry
 * quota stops a fleet from hammering a failing service. Delays are loop
 * timers, never sleeps; thousands of calls can be in flight at once.
 *
 * What comes back (ob_aws_result_t) is everything a stage needs to decide:
 * success with the body, or an AWS error (code, message, request id, HTTP
 * status), or a transport failure, plus how the last failure was classified
 * (so a stage can schedule its own, slower retry for throttling) and how many
 * attempts were made. errmsg is one line, safe to log: it never holds
 * credentials.
 *
 * Credentials: a call names an ob_credsrc_t (see ob_creds.h). When the source
 * holds valid credentials the request is signed at once; otherwise the call
 * waits for the source's refresh without blocking. A reply saying the token
 * expired (ExpiredToken and friends) invalidates the source and retries once
 * with fresh credentials.
 *
 * Ownership: ob_aws_send() takes the contents of *req (it is zeroed). The
 * result passed to the callback is valid only during the callback (its body
 * may be moved out). ob_aws_cancel() drops a call without a callback.
 * ob_aws_free() calls back every call still pending with OB_ERR_CANCELLED.
 * Threading: loop thread only.
 */
#ifndef OB_AWS_H
#define OB_AWS_H

#include <stdint.h>

#include "ob_awsproto.h"
#include "ob_config.h"
#include "ob_err.h"
#include "ob_http.h"
#include "ob_loop.h"
#include "ob_retry.h"

typedef struct ob_aws_s ob_aws_t;
typedef struct ob_aws_call_s ob_aws_call_t;
typedef struct ob_credsrc_s ob_credsrc_t;
typedef struct ob_awsconfig_s ob_awsconfig_t;

typedef struct ob_aws_opts_s {
    ob_getenv_fn getenv_fn; /* NULL: getenv (endpoint overrides, region) */
    void *env_ctx;
    const ob_awsconfig_t *config; /* shared config/credentials files (may be NULL) */
    const char *profile;          /* NULL: AWS_PROFILE or "default" */
    const char *region;           /* default region for calls that name none (NULL: resolved) */
    int max_attempts;             /* per call, first included (0: 3) */
    double max_backoff_s;         /* (0: 20) */
    int retry_quota;              /* tokens (0: 500) */
    long attempt_timeout_ms;      /* per HTTP attempt (0: the HTTP client's default) */
    /* Random source in [0,1) for backoff jitter (tests); NULL: rand48 seeded from OpenSSL. */
    double (*rand01)(void *ctx);
    void *rand_ctx;
} ob_aws_opts_t;

typedef struct ob_aws_target_s {
    const char *region;    /* NULL: the client's default region */
    ob_credsrc_t *creds;   /* NULL: unsigned request (STS AssumeRoleWithWebIdentity) */
    const char *s3_bucket; /* S3: the bucket addressed; req path is then relative to it */
    /* Order among attempts waiting for an HTTP slot (ob_http_req_t.priority);
     * 0: the priority of the call waiting for credentials this one fetches,
     * if any, else first. */
    uint64_t priority;
} ob_aws_target_t;

typedef struct ob_aws_result_s {
    ob_err_t err; /* OB_OK (2xx), OB_ERR_AWS (AWS error reply), OB_ERR_CREDENTIALS,
                   * transport codes (OB_ERR_TIMEOUT, OB_ERR_CONN, ...), OB_ERR_CANCELLED */
    char errmsg[768];
    long status;              /* HTTP status of the last attempt (0: none) */
    ob_aws_error_t aws;       /* when err == OB_ERR_AWS */
    const ob_hdrs_t *headers; /* reply headers of the last attempt (may be NULL) */
    ob_buf_t body;            /* reply body of the last attempt */
    int attempts;
    ob_retry_class_t retry_class; /* classification of the last failure (OB_RETRY_NO on success) */
    ob_retry_verdict_t verdict;   /* why retrying stopped */
    uint64_t elapsed_ms;
    const char *op; /* the operation ("CreateStack") */
    ob_aws_svc_t svc;
} ob_aws_result_t;

typedef void(ob_aws_cb)(ob_aws_result_t *res, void *arg);

typedef struct ob_aws_stats_s {
    uint64_t calls;      /* ob_aws_send() accepted */
    uint64_t attempts;   /* HTTP requests sent */
    uint64_t retries;    /* attempts after the first */
    uint64_t throttled;  /* attempts answered with a throttling error */
    uint64_t rate_waits; /* attempts that waited for the fleet-wide rate limiter */
    uint64_t failed;     /* calls that ended in an error */
    size_t in_flight;
    int quota_available;
} ob_aws_stats_t;

ob_aws_t *ob_aws_new(ob_loop_t *loop, ob_http_t *http, const ob_aws_opts_t *opts, char *errstr,
                     size_t errstr_size);
void ob_aws_free(ob_aws_t *aws);

/* Start a call. NULL with errstr filled when it cannot even start (bad
 * endpoint override, unknown region...); the callback is then never called. */
ob_aws_call_t *ob_aws_send(ob_aws_t *aws, ob_aws_req_t *req, const ob_aws_target_t *target,
                           ob_aws_cb *cb, void *arg, char *errstr, size_t errstr_size);
void ob_aws_cancel(ob_aws_call_t *call);

const char *ob_aws_default_region(const ob_aws_t *aws);
ob_loop_t *ob_aws_loop(const ob_aws_t *aws);
ob_http_t *ob_aws_http(const ob_aws_t *aws);
void ob_aws_get_stats(const ob_aws_t *aws, ob_aws_stats_t *out);
/* Per API (service and operation): HTTP attempts sent and throttling
 * answers. Up to OB_AWS_MAX_APIS distinct APIs are counted (more are
 * counted in the totals only). Copies at most max entries; returns how many. */
#define OB_AWS_MAX_APIS 64
typedef struct ob_aws_api_stat_s {
    const char *service; /* "sts" */
    char operation[64];  /* "AssumeRole" */
    uint64_t requests, throttles;
} ob_aws_api_stat_t;
size_t ob_aws_api_stats(const ob_aws_t *aws, ob_aws_api_stat_t *out, size_t max);
/* The options the client was made with (getenv, config, profile). */
const ob_aws_opts_t *ob_aws_opts(const ob_aws_t *aws);

/*
 * A rate limiter the client asks before every attempt (retries included),
 * naming the API as "<service id>.<Operation>" ("sts.AssumeRole"), and tells
 * of every throttling answer, so that replicas slow down together. The
 * fleet's limiter (ob_ratelimit, in the pipeline layer above) keeps its state
 * in Redis; the client knows only this interface and links no Redis.
 *   acquire:   NULL lets the attempt go now; otherwise a wait whose cb(arg)
 *              runs later on the loop, unless cancel withdraws it first.
 *   cancel:    withdraw a wait acquire returned (cb never runs).
 *   throttled: AWS answered a throttling error for api.
 */
typedef void(ob_aws_limiter_cb)(void *arg);
typedef struct ob_aws_limiter_s {
    void *ctx;
    void *(*acquire)(void *ctx, const char *api, ob_aws_limiter_cb *cb, void *arg);
    void (*cancel)(void *ctx, void *wait);
    void (*throttled)(void *ctx, const char *api);
} ob_aws_limiter_t;
/* Copied; the ctx stays borrowed. NULL detaches the limiter (waits in
 * progress are withdrawn and those calls go ahead): detach before freeing it. */
void ob_aws_set_limiter(ob_aws_t *aws, const ob_aws_limiter_t *limiter);

#endif
