/*
 * ob_retry: the AWS SDKs' "standard" retry mode as pure functions.
 *
 * This mirrors botocore's retries/standard.py and retries/quota.py (checked
 * against python3-botocore 1.43): which failures are retryable
 * (TransientRetryableChecker, ThrottledRetryableChecker, the STS
 * IDPCommunicationError special case), how long to wait (ExponentialBackoff,
 * with full jitter), how many attempts (MaxAttemptsChecker, AWS_MAX_ATTEMPTS
 * semantics: total attempts including the first, default 3) and the retry
 * quota token bucket (RetryQuotaChecker: 500 tokens, a retry costs 5, a retry
 * after a timeout 10, a success gives back the cost of the retry that
 * succeeded or 1 when no retry was needed). Project-specific rules from
 * AWS-WIRE.md on top: LimitExceededException is a quota, not throttling, for
 * CloudFormation; S3 OperationAborted is retryable; InternalError-style codes
 * are transient even when the status code is lost.
 *
 * These are the HTTP-level retries inside one stage attempt; stage-level
 * retries (minutes apart, kept in Redis) are a separate mechanism.
 *
 * Typical use by the HTTP layer, after attempt number `attempts` failed:
 *
 *     cls = ob_retry_classify(svc, transport_err, status, aws_error.code);
 *     v = ob_retry_decide(&policy, &quota, attempts, cls, rand01, &delay, &cost);
 *     if (v == OB_RETRY_AGAIN) { last_cost = cost; schedule a resend in delay s; }
 *     ...
 *     on the final 2xx: ob_retry_quota_release(&quota, last_cost); (0 if never retried)
 *
 * Thread safety: classification, delay and policy functions are pure and
 * thread-safe. An ob_retry_quota_t is plain data with no locking: keep one per
 * event-loop thread (botocore keeps one per client), or lock around it.
 */
#ifndef OB_RETRY_H
#define OB_RETRY_H

#include "ob_awssvc.h"
#include "ob_err.h"

typedef enum ob_retry_class_e {
    OB_RETRY_NO = 0,    /* not retryable (success, client error, unknown) */
    OB_RETRY_TRANSIENT, /* 5xx, connection errors, transient AWS codes */
    OB_RETRY_THROTTLE,  /* AWS asked us to slow down */
    OB_RETRY_TIMEOUT    /* our deadline passed (connect or read): costs more quota */
} ob_retry_class_t;

#define OB_RETRY_DEFAULT_MAX_ATTEMPTS  3
#define OB_RETRY_DEFAULT_MAX_BACKOFF_S 20.0
#define OB_RETRY_QUOTA_CAPACITY        500 /* botocore quota.RetryQuota.INITIAL_CAPACITY */
#define OB_RETRY_COST                  5   /* RetryQuotaChecker._RETRY_COST */
#define OB_RETRY_TIMEOUT_COST          10  /* RetryQuotaChecker._TIMEOUT_RETRY_REQUEST */
#define OB_RETRY_NO_RETRY_INCREMENT    1   /* RetryQuotaChecker._NO_RETRY_INCREMENT */

typedef struct ob_retry_policy_s {
    int max_attempts;     /* total attempts including the first; <= 0 means 3 */
    double max_backoff_s; /* cap of the exponential part; <= 0 means 20 */
} ob_retry_policy_t;

/* Token bucket shared by all requests of one client (event loop). */
typedef struct ob_retry_quota_s {
    int capacity;
    int available;
} ob_retry_quota_t;

/* Stable lower-case name for logs and metric labels ("throttle"...). */
const char *ob_retry_class_name(ob_retry_class_t cls);

/* Classify one failed attempt. transport_err is what the HTTP layer reported:
 * OB_OK (or OB_ERR_AWS) when a response arrived, in which case http_status and
 * aws_code (the parsed ob_aws_error_t code; NULL or "" if none) decide;
 * OB_ERR_TIMEOUT -> OB_RETRY_TIMEOUT; OB_ERR_CONN and OB_ERR_HTTP ->
 * OB_RETRY_TRANSIENT; anything else (cancelled, no memory, bad argument,
 * credentials...) -> OB_RETRY_NO. A 2xx/3xx response without a retryable
 * code is OB_RETRY_NO. Codes compare case-sensitively, as in botocore. */
ob_retry_class_t ob_retry_classify(ob_aws_svc_t svc, ob_err_t transport_err, long http_status,
                                   const char *aws_code);

/* Seconds to wait before the next attempt: rand01 * min(2^(attempt-1), max),
 * where attempt is the 1-based count of attempts already made and rand01 is
 * uniform in [0, 1) (clamped to [0, 1]; NaN counts as 0). max_backoff_s <= 0
 * means 20. Result is always within [0, max_backoff_s]. */
double ob_retry_delay_s(int attempt, double rand01, double max_backoff_s);

/* Defaults: 3 attempts, 20 s maximum backoff. */
void ob_retry_policy_init(ob_retry_policy_t *p);

/* 1 when another attempt is allowed: cls is retryable and attempts_made
 * (attempts already sent, >= 1) is below the policy's max attempts. p may be
 * NULL for defaults. Does not consult the quota. */
int ob_retry_should_retry(const ob_retry_policy_t *p, int attempts_made, ob_retry_class_t cls);

/* Fill a full bucket; capacity <= 0 means 500. */
void ob_retry_quota_init(ob_retry_quota_t *q, int capacity);
/* Take the cost of one retry (10 for OB_RETRY_TIMEOUT, else 5). Returns the
 * cost taken, or 0 when the bucket holds less than that (nothing is taken)
 * or cls is OB_RETRY_NO. */
int ob_retry_quota_acquire(ob_retry_quota_t *q, ob_retry_class_t cls);
/* Call once per API call that ended in a 2xx response, with the cost returned
 * by the last successful ob_retry_quota_acquire() of that call, or 0 when it
 * was never retried (then 1 token is given back). Never exceeds capacity.
 * Do not call for calls that ended in an error: those give nothing back. */
void ob_retry_quota_release(ob_retry_quota_t *q, int cost_acquired_or_0);

typedef enum ob_retry_verdict_e {
    OB_RETRY_AGAIN = 0,        /* send again after *delay_s; *cost was taken from the quota */
    OB_RETRY_GIVE_UP_FINAL,    /* the failure is not retryable */
    OB_RETRY_GIVE_UP_ATTEMPTS, /* retryable, but max attempts reached */
    OB_RETRY_GIVE_UP_QUOTA     /* retryable, but the retry quota is empty */
} ob_retry_verdict_t;

/* The whole decision of botocore's RetryHandler.needs_retry after attempt
 * number attempts_made failed with class cls: policy check, then quota, then
 * delay. On OB_RETRY_AGAIN *delay_s and *cost (either may be NULL) are set;
 * otherwise they are set to 0. */
ob_retry_verdict_t ob_retry_decide(const ob_retry_policy_t *p, ob_retry_quota_t *q,
                                   int attempts_made, ob_retry_class_t cls, double rand01,
                                   double *delay_s, int *cost);
/* "again", "not_retryable", "max_attempts", "retry_quota". */
const char *ob_retry_verdict_name(ob_retry_verdict_t v);

#endif
