/*
 * ob_aws: one AWS call = credentials (maybe waited for) -> sign -> HTTP ->
 * classify -> maybe wait and go again. Each attempt is signed afresh (new
 * X-Amz-Date, possibly refreshed credentials) from the request as built, so
 * nothing from a failed attempt leaks into the next. Endpoints are resolved
 * once per (service, region) and cached: the environment and the shared config
 * do not change under a running worker.
 */
#include "ob_aws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ob_alloc.h"
#include "ob_awsconfig.h"
#include "ob_creds.h"
#include "ob_crypto.h"
#include "ob_endpoint.h"
#include "ob_list.h"
#include "ob_log.h"
#include "ob_sigv4.h"

typedef struct ep_cache_s {
    ob_aws_svc_t svc;
    char region[64];
    ob_endpoint_t ep;
    struct ep_cache_s *next;
} ep_cache_t;

struct ob_aws_s {
    ob_loop_t *loop;
    ob_http_t *http;
    ob_aws_opts_t opts;
    char profile[128];
    char region[64];
    ob_retry_policy_t policy;
    ob_retry_quota_t quota;
    ep_cache_t *eps;
    ob_list_t calls; /* ob_aws_call_t in flight, newest first */
    ob_aws_stats_t stats;
    unsigned short xsubi[3];
    ob_aws_limiter_t limiter;  /* limiter.acquire NULL: none */
    uint64_t inherit_priority; /* while a call starts a credential fetch */
    ob_aws_api_stat_t apis[OB_AWS_MAX_APIS];
    size_t napis;
};

struct ob_aws_call_s {
    ob_aws_t *aws;
    ob_aws_req_t req;
    ob_aws_svc_t svc;
    char region[64];
    ob_credsrc_t *creds;
    const ob_endpoint_t *ep; /* in aws->eps (kept until ob_aws_free) */
    ob_buf_t path;           /* full wire path */
    ob_buf_t url;
    ob_buf_t host;
    ob_aws_cb *cb;
    void *arg;
    int attempts;
    int quota_cost; /* cost of the last retry taken from the quota */
    int token_refreshed;
    uint64_t started;
    ob_http_xfer_t *xfer;
    ob_creds_wait_t *wait;
    ob_timer_t *timer;
    void *rl_wait;
    int rl_granted; /* the limiter let this attempt go */
    uint64_t priority;
    ob_list_t node; /* in aws->calls */
};

static const char *const expired_codes[] = {"ExpiredToken", "ExpiredTokenException",
                                            "RequestExpired", NULL};

static double default_rand(ob_aws_t *aws)
{
    if (aws->opts.rand01)
        return aws->opts.rand01(aws->opts.rand_ctx);
    return erand48(aws->xsubi);
}

static const char *env_get(const ob_aws_t *aws, const char *name)
{
    return aws->opts.getenv_fn ? aws->opts.getenv_fn(name, aws->opts.env_ctx) : getenv(name);
}

ob_aws_t *ob_aws_new(ob_loop_t *loop, ob_http_t *http, const ob_aws_opts_t *opts, char *errstr,
                     size_t errstr_size)
{
    ob_aws_t *aws = ob_calloc(1, sizeof(*aws));
    ob_list_init(&aws->calls);
    aws->loop = loop;
    aws->http = http;
    if (opts)
        aws->opts = *opts;
    const char *profile = aws->opts.profile;
    if (!profile || !*profile)
        profile = env_get(aws, "AWS_PROFILE");
    if (!profile || !*profile)
        profile = env_get(aws, "AWS_DEFAULT_PROFILE");
    snprintf(aws->profile, sizeof(aws->profile), "%s", profile && *profile ? profile : "default");
    aws->opts.profile = aws->profile;
    if (aws->opts.region && *aws->opts.region) {
        snprintf(aws->region, sizeof(aws->region), "%s", aws->opts.region);
    } else {
        ob_err_t e = ob_aws_region_resolve(aws->opts.getenv_fn, aws->opts.env_ctx, aws->opts.config,
                                           aws->profile, aws->region, sizeof(aws->region));
        if (e == OB_ERR_NOT_FOUND) {
            /* No region configured: requests name their own; STS and the
             * global services live in us-east-1. */
            snprintf(aws->region, sizeof(aws->region), "us-east-1");
        } else if (e != OB_OK) {
            ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                    "the configured AWS region (AWS_REGION, AWS_DEFAULT_REGION or the profile's "
                    "region) is not a valid region name");
            free(aws);
            return NULL;
        }
    }
    aws->opts.region = aws->region;
    aws->policy.max_attempts = aws->opts.max_attempts;
    aws->policy.max_backoff_s = aws->opts.max_backoff_s;
    if (aws->policy.max_attempts <= 0)
        aws->policy.max_attempts = OB_RETRY_DEFAULT_MAX_ATTEMPTS;
    if (aws->policy.max_backoff_s <= 0)
        aws->policy.max_backoff_s = OB_RETRY_DEFAULT_MAX_BACKOFF_S;
    ob_retry_quota_init(&aws->quota, aws->opts.retry_quota);
    if (ob_random_bytes(aws->xsubi, sizeof(aws->xsubi)) != OB_OK)
        aws->xsubi[0] = (unsigned short)time(NULL);
    return aws;
}

#define CALL_OF(n) OB_LIST_ENTRY((n), ob_aws_call_t, node)

static void call_unlink(ob_aws_call_t *c)
{
    ob_list_remove(&c->node);
    c->aws->stats.in_flight--;
}

static void call_free(ob_aws_call_t *c)
{
    if (c->rl_wait)
        c->aws->limiter.cancel(c->aws->limiter.ctx, c->rl_wait);
    if (c->xfer)
        ob_http_cancel(c->xfer);
    if (c->wait)
        ob_creds_wait_cancel(c->wait);
    ob_timer_free(c->timer);
    if (c->creds)
        ob_credsrc_unref(c->creds);
    ob_aws_req_free(&c->req);
    ob_buf_free(&c->path);
    ob_buf_free(&c->url);
    ob_buf_free(&c->host);
    free(c);
}

static void finish(ob_aws_call_t *c, ob_aws_result_t *res)
{
    ob_aws_t *aws = c->aws;
    res->attempts = c->attempts;
    res->op = c->req.op;
    res->svc = c->svc;
    res->elapsed_ms = ob_loop_update_time(aws->loop) - c->started;
    if (res->err != OB_OK)
        aws->stats.failed++;
    call_unlink(c);
    c->xfer = NULL;
    c->wait = NULL;
    c->cb(res, c->arg);
    call_free(c);
}

/* The call ends without a reply of its own; cls and code say what the
 * failure was (OB_RETRY_NO and NULL: final, nothing more to say). */
static void fail_as(ob_aws_call_t *c, ob_err_t err, ob_retry_class_t cls, const char *code,
                    const char *fmt, const char *detail)
{
    ob_aws_result_t res;
    memset(&res, 0, sizeof(res));
    res.err = err;
    res.verdict = OB_RETRY_GIVE_UP_FINAL;
    res.retry_class = cls;
    if (code)
        snprintf(res.aws.code, sizeof(res.aws.code), "%s", code);
    snprintf(res.errmsg, sizeof(res.errmsg), fmt, ob_aws_svc_info(c->svc)->id, c->req.op,
             detail ? detail : "");
    finish(c, &res);
}

static void fail(ob_aws_call_t *c, ob_err_t err, const char *fmt, const char *detail)
{
    fail_as(c, err, OB_RETRY_NO, NULL, fmt, detail);
}

static void attempt(ob_aws_call_t *c);

static void on_creds(ob_err_t err, const char *errmsg, const ob_aws_creds_t *creds, void *arg)
{
    ob_aws_call_t *c = arg;
    c->wait = NULL;
    if (err != OB_OK) {
        /* What the credential source's own call ended with decides: an
         * AssumeRole denied is final, one throttled, reset, timed out or
         * cut short is retried like any call. */
        ob_retry_class_t cls = OB_RETRY_NO;
        const char *code = NULL;
        if (c->creds)
            ob_credsrc_last_failure(c->creds, &cls, &code);
        fail_as(c, OB_ERR_CREDENTIALS, cls, code && code[0] ? code : NULL,
                "%s %s: no credentials: %s", errmsg);
        return;
    }
    attempt(c);
}

static void retry_fired(ob_timer_t *t, void *arg)
{
    attempt(arg);
}

static ob_aws_api_stat_t *api_stat(ob_aws_t *aws, const ob_aws_call_t *c)
{
    const char *svc = ob_aws_svc_info(c->svc)->id;
    for (size_t i = 0; i < aws->napis; i++)
        if (aws->apis[i].service == svc && !strcmp(aws->apis[i].operation, c->req.op))
            return &aws->apis[i];
    if (aws->napis == OB_AWS_MAX_APIS)
        return NULL;
    ob_aws_api_stat_t *a = &aws->apis[aws->napis++];
    a->service = svc;
    snprintf(a->operation, sizeof(a->operation), "%s", c->req.op);
    return a;
}

static void on_rate(void *arg)
{
    ob_aws_call_t *c = arg;
    c->rl_wait = NULL;
    c->rl_granted = 1;
    attempt(c);
}

/* "sts.AssumeRole": the limiter's name for the call's API. */
static void api_name(const ob_aws_call_t *c, char *out, size_t n)
{
    snprintf(out, n, "%s.%s", ob_aws_svc_info(c->svc)->id, c->req.op);
}

static int is_expired_code(const char *code)
{
    for (int i = 0; expired_codes[i]; i++)
        if (!strcmp(code, expired_codes[i]))
            return 1;
    return 0;
}

static void on_http(ob_http_resp_t *resp, void *arg)
{
    ob_aws_call_t *c = arg;
    ob_aws_t *aws = c->aws;
    c->xfer = NULL;
    ob_aws_result_t res;
    memset(&res, 0, sizeof(res));
    res.status = resp->status;
    res.headers = &resp->headers;
    ob_retry_class_t cls;
    if (resp->err != OB_OK) {
        res.err = resp->err;
        cls = ob_retry_classify(c->svc, resp->err, 0, NULL);
        snprintf(res.errmsg, sizeof(res.errmsg), "%s %s: %s: %.300s", ob_aws_svc_info(c->svc)->id,
                 c->req.op, ob_err2str(resp->err), resp->errmsg);
    } else if (resp->status >= 200 && resp->status < 300) {
        ob_retry_quota_release(&aws->quota, c->quota_cost);
        res.err = OB_OK;
        res.retry_class = OB_RETRY_NO;
        ob_http_resp_take_body(resp, &res.body);
        finish(c, &res);
        ob_buf_free(&res.body);
        return;
    } else {
        res.err = OB_ERR_AWS;
        ob_aws_parse_error(c->svc, resp->status, &resp->headers, resp->body.data, resp->body.len,
                           &res.aws);
        cls = ob_retry_classify(c->svc, OB_OK, resp->status, res.aws.code);
        if (cls == OB_RETRY_THROTTLE) {
            aws->stats.throttled++;
            ob_aws_api_stat_t *as = api_stat(aws, c);
            if (as)
                as->throttles++;
            if (aws->limiter.throttled) {
                char api[160];
                api_name(c, api, sizeof(api));
                aws->limiter.throttled(aws->limiter.ctx, api);
            }
        }
        snprintf(res.errmsg, sizeof(res.errmsg), "%s %s: %s: %.400s (HTTP %ld, request id %.100s)",
                 ob_aws_svc_info(c->svc)->id, c->req.op, res.aws.code, res.aws.message,
                 resp->status, res.aws.request_id[0] ? res.aws.request_id : "none");
        /* Temporary credentials went stale under us: refresh once and retry. */
        if (c->creds && !c->token_refreshed && is_expired_code(res.aws.code)) {
            c->token_refreshed = 1;
            ob_credsrc_invalidate(c->creds);
            ob_http_resp_take_body(resp, &res.body);
            ob_buf_free(&res.body);
            attempt(c);
            return;
        }
    }
    res.retry_class = cls;
    double delay = 0;
    int cost = 0;
    res.verdict = ob_retry_decide(&aws->policy, &aws->quota, c->attempts, cls, default_rand(aws),
                                  &delay, &cost);
    if (res.verdict == OB_RETRY_AGAIN) {
        c->quota_cost = cost;
        ob_logkv(OB_LOG_DEBUG, "aws", "retrying", "call", res.errmsg, "class",
                 ob_retry_class_name(cls), NULL);
        ob_timer_start(c->timer, (uint64_t)(delay * 1000.0));
        return;
    }
    size_t n = strlen(res.errmsg);
    if (n + 48 < sizeof(res.errmsg))
        snprintf(res.errmsg + n, sizeof(res.errmsg) - n, " after %d attempt%s", c->attempts,
                 c->attempts == 1 ? "" : "s");
    ob_http_resp_take_body(resp, &res.body);
    finish(c, &res);
    ob_buf_free(&res.body);
}

static void attempt(ob_aws_call_t *c)
{
    ob_aws_t *aws = c->aws;
    const ob_aws_creds_t *creds = NULL;
    if (c->creds) {
        creds = ob_credsrc_peek(c->creds);
        if (!creds) {
            /* An AssumeRole this starts takes the call's place in line. */
            uint64_t outer = aws->inherit_priority;
            aws->inherit_priority = c->priority;
            c->wait = ob_credsrc_get(c->creds, on_creds, c);
            aws->inherit_priority = outer;
            if (!c->wait)
                fail(c, OB_ERR_NOMEM, "%s %s: out of memory%s", NULL);
            return;
        }
    }
    if (aws->limiter.acquire && !c->rl_granted) {
        char api[160];
        api_name(c, api, sizeof(api));
        c->rl_wait = aws->limiter.acquire(aws->limiter.ctx, api, on_rate, c);
        if (c->rl_wait) {
            aws->stats.rate_waits++;
            return;
        }
    }
    c->rl_granted = 0; /* the next attempt asks again */
    char err[512];
    ob_hdrs_t hd = {0};
    for (size_t i = 0; i < c->req.headers.n; i++)
        if (ob_hdrs_add(&hd, c->req.headers.v[i].name, c->req.headers.v[i].value) != OB_OK)
            goto nomem;
    if (ob_hdrs_set(&hd, "Host", c->host.data) != OB_OK)
        goto nomem;
    if (creds) {
        ob_sigv4_creds_t sc = {creds->access_key_id, creds->secret_access_key,
                               creds->session_token};
        ob_sigv4_params_t sp = {.service = ob_aws_svc_info(c->svc)->signing_name,
                                .region = c->ep->signing_region,
                                .now = time(NULL),
                                .s3 = c->svc == OB_SVC_S3};
        if (ob_sigv4_sign(c->req.method, c->path.data, c->req.query.data ? c->req.query.data : "",
                          &hd, c->req.body.data, c->req.body.len, &sc, &sp, NULL, err,
                          sizeof(err)) != OB_OK) {
            ob_hdrs_clear(&hd);
            fail(c, OB_ERR_INVALID_ARG, "%s %s: cannot sign the request: %s", err);
            return;
        }
    }
    ob_http_req_t hr = {.method = c->req.method,
                        .url = c->url.data,
                        .headers = &hd,
                        .body = c->req.body.data,
                        .body_len = c->req.body.len,
                        .body_kept = 1, /* the call outlives its transfers */
                        .timeout_ms = aws->opts.attempt_timeout_ms,
                        .priority = c->priority};
    c->attempts++;
    aws->stats.attempts++;
    ob_aws_api_stat_t *as = api_stat(aws, c);
    if (as)
        as->requests++;
    if (c->attempts > 1)
        aws->stats.retries++;
    c->xfer = ob_http_send(aws->http, &hr, on_http, c, err, sizeof(err));
    ob_hdrs_clear(&hd);
    if (!c->xfer)
        fail(c, OB_ERR_HTTP, "%s %s: %s", err);
    return;
nomem:
    ob_hdrs_clear(&hd);
    fail(c, OB_ERR_NOMEM, "%s %s: out of memory%s", NULL);
}

static const ob_endpoint_t *endpoint_for(ob_aws_t *aws, ob_aws_svc_t svc, const char *region,
                                         char *errstr, size_t errstr_size)
{
    for (ep_cache_t *e = aws->eps; e; e = e->next)
        if (e->svc == svc && !strcmp(e->region, region))
            return &e->ep;
    ep_cache_t *e = ob_calloc(1, sizeof(*e));
    if (!e) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (ob_endpoint_resolve(svc, region, aws->opts.getenv_fn, aws->opts.env_ctx, aws->opts.config,
                            aws->profile, &e->ep, errstr, errstr_size) != OB_OK) {
        free(e);
        return NULL;
    }
    e->svc = svc;
    snprintf(e->region, sizeof(e->region), "%s", region);
    e->next = aws->eps;
    aws->eps = e;
    return &e->ep;
}

ob_aws_call_t *ob_aws_send(ob_aws_t *aws, ob_aws_req_t *req, const ob_aws_target_t *target,
                           ob_aws_cb *cb, void *arg, char *errstr, size_t errstr_size)
{
    const char *region = target && target->region && *target->region ? target->region : aws->region;
    const ob_aws_svc_info_t *info = ob_aws_svc_info(req->svc);
    if (!info || !req->op || !req->method[0] || !req->path.data) {
        ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                "incomplete AWS request (service, operation, method and path are required)");
        return NULL;
    }
    const ob_endpoint_t *ep = endpoint_for(aws, req->svc, region, errstr, errstr_size);
    if (!ep)
        return NULL;
    ob_aws_call_t *c = ob_calloc(1, sizeof(*c));
    if (!c) {
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    c->aws = aws;
    c->svc = req->svc;
    c->ep = ep;
    snprintf(c->region, sizeof(c->region), "%s", region);
    c->cb = cb;
    c->arg = arg;
    c->priority = target && target->priority ? target->priority : aws->inherit_priority;
    c->timer = ob_timer_new(aws->loop, retry_fired, c);
    ob_err_t e = c->timer ? OB_OK : OB_ERR_NOMEM;

    /* Where the request goes: S3 buckets by virtual host or path style. */
    const char *rel = req->path.data;
    if (e == OB_OK && req->svc == OB_SVC_S3 && target && target->s3_bucket) {
        ob_buf_t prefix = {0};
        e = ob_s3_url(c->ep, target->s3_bucket, NULL, &prefix, &c->host);
        if (e == OB_OK) {
            /* prefix is "/" (virtual host) or "/bucket" or "/bucket/" (path style). */
            size_t pl = prefix.len;
            while (pl > 0 && prefix.data[pl - 1] == '/')
                pl--;
            if (pl > 0)
                e = ob_buf_append(&c->path, prefix.data, pl);
            if (e == OB_OK && (strcmp(rel, "/") != 0 || pl == 0))
                e = ob_buf_puts(&c->path, rel);
        } else {
            ob_errf(errstr, errstr_size, e, "bucket name \"%.80s\" cannot be addressed",
                    target->s3_bucket);
        }
        ob_buf_free(&prefix);
    } else if (e == OB_OK) {
        e = ob_buf_puts(&c->host, c->ep->host);
        if (e == OB_OK && c->ep->base_path[0]) {
            e = ob_buf_puts(&c->path, c->ep->base_path);
            if (e == OB_OK && c->path.len > 0 && c->path.data[c->path.len - 1] == '/')
                rel++;
        }
        if (e == OB_OK)
            e = ob_buf_puts(&c->path, rel);
    }
    if (e == OB_OK) {
        /* The URL's host is the endpoint's; a virtual-host bucket changes it. */
        const char *scheme_end = strstr(c->ep->url, "://");
        if (req->svc == OB_SVC_S3 && scheme_end && strcmp(c->host.data, c->ep->host) != 0)
            e = ob_buf_printf(&c->url, "%.*s://%s%s", (int)(scheme_end - c->ep->url), c->ep->url,
                              c->host.data, c->path.data);
        else
            e = ob_buf_printf(&c->url, "%s%s", c->ep->url, c->path.data);
        if (e == OB_OK && req->query.len > 0)
            e = ob_buf_printf(&c->url, "?%s", req->query.data);
    }
    if (e != OB_OK) {
        if (errstr && errstr_size && !errstr[0])
            ob_errf(errstr, errstr_size, e, "cannot build the request URL");
        call_free(c);
        return NULL;
    }
    c->req = *req;
    memset(req, 0, sizeof(*req));
    ob_buf_fit(&c->req.body); /* kept as long as the call, for its retries */
    if (target && target->creds)
        c->creds = ob_credsrc_ref(target->creds);
    c->started = ob_loop_update_time(aws->loop);
    ob_list_push_front(&aws->calls, &c->node);
    aws->stats.calls++;
    aws->stats.in_flight++;
    /* Start from the loop, so the callback can never run inside this call. */
    ob_timer_start(c->timer, 0);
    return c;
}

void ob_aws_cancel(ob_aws_call_t *c)
{
    if (!c)
        return;
    call_unlink(c);
    call_free(c);
}

void ob_aws_free(ob_aws_t *aws)
{
    if (!aws)
        return;
    while (!ob_list_empty(&aws->calls)) {
        ob_aws_call_t *c = CALL_OF(ob_list_first(&aws->calls));
        ob_aws_result_t res;
        memset(&res, 0, sizeof(res));
        res.err = OB_ERR_CANCELLED;
        res.verdict = OB_RETRY_GIVE_UP_FINAL;
        snprintf(res.errmsg, sizeof(res.errmsg), "%s %s: cancelled (client shut down)",
                 ob_aws_svc_info(c->svc)->id, c->req.op);
        /* Its transfer and its wait for credentials are still out there,
         * pointing at it: take them back before it goes (finish() forgets
         * them, being for calls they have already answered). */
        if (c->xfer) {
            ob_http_cancel(c->xfer);
            c->xfer = NULL;
        }
        if (c->wait) {
            ob_creds_wait_cancel(c->wait);
            c->wait = NULL;
        }
        finish(c, &res);
    }
    while (aws->eps) {
        ep_cache_t *e = aws->eps;
        aws->eps = e->next;
        free(e);
    }
    free(aws);
}

void ob_aws_set_limiter(ob_aws_t *aws, const ob_aws_limiter_t *limiter)
{
    if (!limiter || !limiter->acquire) {
        for (ob_list_t *pos = aws->calls.next; pos != &aws->calls; pos = pos->next) {
            ob_aws_call_t *c = CALL_OF(pos);
            if (c->rl_wait) {
                aws->limiter.cancel(aws->limiter.ctx, c->rl_wait);
                c->rl_wait = NULL;
                c->rl_granted = 1;
                ob_timer_start(c->timer, 0);
            }
        }
    }
    if (limiter && limiter->acquire)
        aws->limiter = *limiter;
    else
        memset(&aws->limiter, 0, sizeof(aws->limiter));
}

const char *ob_aws_default_region(const ob_aws_t *aws)
{
    return aws->region;
}

ob_loop_t *ob_aws_loop(const ob_aws_t *aws)
{
    return aws->loop;
}

ob_http_t *ob_aws_http(const ob_aws_t *aws)
{
    return aws->http;
}

const ob_aws_opts_t *ob_aws_opts(const ob_aws_t *aws)
{
    return &aws->opts;
}

size_t ob_aws_api_stats(const ob_aws_t *aws, ob_aws_api_stat_t *out, size_t max)
{
    size_t n = aws->napis < max ? aws->napis : max;
    memcpy(out, aws->apis, n * sizeof(*out));
    return n;
}

void ob_aws_get_stats(const ob_aws_t *aws, ob_aws_stats_t *out)
{
    *out = aws->stats;
    out->quota_available = aws->quota.available;
}
