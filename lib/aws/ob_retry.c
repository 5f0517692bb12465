/*
 * ob_retry: standard retry mode. The code lists are botocore's
 * (retries/standard.py, TransientRetryableChecker._TRANSIENT_ERROR_CODES and
 * ThrottledRetryableChecker._THROTTLED_ERROR_CODES, plus special.py's STS
 * IDPCommunicationError) with the project rules from AWS-WIRE.md. The quota
 * follows RetryQuotaChecker/RetryQuota exactly:
 *
 *   acquire: cost = 10 if the failure was a connect/read timeout else 5;
 *            fails (takes nothing) when cost > available.
 *   release (after-call, only for 2xx responses): give back the amount of
 *            the last acquisition of that call, or 1 when it never retried;
 *            never above the maximum capacity.
 *
 * One deliberate divergence: botocore computes min(rand * 2^(n-1), 20), which
 * for n >= 6 is almost always exactly 20 s (every client waking together);
 * AWS-WIRE.md and the AWS SDK retry guidance use full jitter,
 * rand * min(2^(n-1), 20). The two agree for n <= 5, which covers the default
 * of 3 attempts.
 */
#include "ob_retry.h"

#include <stddef.h>
#include <string.h>

/* Transient codes: botocore's list plus server-side failure codes that come
 * with a 5xx (kept so that a lost status code still retries). */
static const char *const ob_retry_transient_codes[] = {
    "RequestTimeout",         "RequestTimeoutException", "PriorRequestNotComplete", "InternalError",
    "InternalErrorException", "InternalFailure",         "ServiceUnavailable",
};

/* botocore ThrottledRetryableChecker._THROTTLED_ERROR_CODES. It also lists
 * PriorRequestNotComplete; that one is classed transient here (either way it
 * is retried at the same cost). */
static const char *const ob_retry_throttle_codes[] = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "EC2ThrottledException",
};

static int in_list(const char *code, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(code, list[i]) == 0)
            return 1;
    return 0;
}

const char *ob_retry_class_name(ob_retry_class_t cls)
{
    switch (cls) {
    case OB_RETRY_NO:
        return "none";
    case OB_RETRY_TRANSIENT:
        return "transient";
    case OB_RETRY_THROTTLE:
        return "throttle";
    case OB_RETRY_TIMEOUT:
        return "timeout";
    }
    return "unknown";
}

ob_retry_class_t ob_retry_classify(ob_aws_svc_t svc, ob_err_t transport_err, long http_status,
                                   const char *aws_code)
{
    switch (transport_err) {
    case OB_OK:
    case OB_ERR_AWS:
        break;
    case OB_ERR_TIMEOUT:
        return OB_RETRY_TIMEOUT;
    case OB_ERR_CONN:
    case OB_ERR_HTTP:
        return OB_RETRY_TRANSIENT;
    default:
        return OB_RETRY_NO;
    }
    if (aws_code && *aws_code) {
        if (in_list(aws_code, ob_retry_throttle_codes,
                    sizeof(ob_retry_throttle_codes) / sizeof(ob_retry_throttle_codes[0]))) {
            /* For CloudFormation this is an account quota (stacks, stack
             * sets...): waiting seconds will not help. */
            if (svc == OB_SVC_CLOUDFORMATION && strcmp(aws_code, "LimitExceededException") == 0)
                return OB_RETRY_NO;
            return OB_RETRY_THROTTLE;
        }
        if (in_list(aws_code, ob_retry_transient_codes,
                    sizeof(ob_retry_transient_codes) / sizeof(ob_retry_transient_codes[0])))
            return OB_RETRY_TRANSIENT;
        /* S3: a conflicting conditional operation on the bucket is in progress. */
        if (svc == OB_SVC_S3 && strcmp(aws_code, "OperationAborted") == 0)
            return OB_RETRY_TRANSIENT;
        /* botocore special.RetryIDPCommunicationError. */
        if (svc == OB_SVC_STS && strcmp(aws_code, "IDPCommunicationError") == 0)
            return OB_RETRY_TRANSIENT;
    }
    if (http_status == 500 || http_status == 502 || http_status == 503 || http_status == 504)
        return OB_RETRY_TRANSIENT;
    return OB_RETRY_NO;
}

double ob_retry_delay_s(int attempt, double rand01, double max_backoff_s)
{
    if (!(max_backoff_s > 0)) /* also catches NaN */
        max_backoff_s = OB_RETRY_DEFAULT_MAX_BACKOFF_S;
    if (!(rand01 >= 0))
        rand01 = 0;
    if (rand01 > 1)
        rand01 = 1;
    if (attempt < 1)
        attempt = 1;
    /* 2^30 s is far above any sane cap, so larger exponents just saturate. */
    double base = attempt - 1 >= 30 ? max_backoff_s : (double)(1ul << (attempt - 1));
    if (base > max_backoff_s)
        base = max_backoff_s;
    return rand01 * base;
}

void ob_retry_policy_init(ob_retry_policy_t *p)
{
    p->max_attempts = OB_RETRY_DEFAULT_MAX_ATTEMPTS;
    p->max_backoff_s = OB_RETRY_DEFAULT_MAX_BACKOFF_S;
}

int ob_retry_should_retry(const ob_retry_policy_t *p, int attempts_made, ob_retry_class_t cls)
{
    int max = p && p->max_attempts > 0 ? p->max_attempts : OB_RETRY_DEFAULT_MAX_ATTEMPTS;
    return cls != OB_RETRY_NO && attempts_made < max;
}

void ob_retry_quota_init(ob_retry_quota_t *q, int capacity)
{
    q->capacity = capacity > 0 ? capacity : OB_RETRY_QUOTA_CAPACITY;
    q->available = q->capacity;
}

int ob_retry_quota_acquire(ob_retry_quota_t *q, ob_retry_class_t cls)
{
    if (cls == OB_RETRY_NO)
        return 0;
    int cost = cls == OB_RETRY_TIMEOUT ? OB_RETRY_TIMEOUT_COST : OB_RETRY_COST;
    if (cost > q->available)
        return 0;
    q->available -= cost;
    return cost;
}

void ob_retry_quota_release(ob_retry_quota_t *q, int cost_acquired_or_0)
{
    int amount = cost_acquired_or_0 > 0 ? cost_acquired_or_0 : OB_RETRY_NO_RETRY_INCREMENT;
    if (q->available >= q->capacity)
        return;
    int room = q->capacity - q->available;
    q->available += amount < room ? amount : room;
}

ob_retry_verdict_t ob_retry_decide(const ob_retry_policy_t *p, ob_retry_quota_t *q,
                                   int attempts_made, ob_retry_class_t cls, double rand01,
                                   double *delay_s, int *cost)
{
    if (delay_s)
        *delay_s = 0;
    if (cost)
        *cost = 0;
    if (cls == OB_RETRY_NO)
        return OB_RETRY_GIVE_UP_FINAL;
    if (!ob_retry_should_retry(p, attempts_made, cls))
        return OB_RETRY_GIVE_UP_ATTEMPTS;
    int c = ob_retry_quota_acquire(q, cls);
    if (c == 0)
        return OB_RETRY_GIVE_UP_QUOTA;
    if (cost)
        *cost = c;
    if (delay_s)
        *delay_s = ob_retry_delay_s(attempts_made, rand01, p ? p->max_backoff_s : 0);
    return OB_RETRY_AGAIN;
}

const char *ob_retry_verdict_name(ob_retry_verdict_t v)
{
    switch (v) {
    case OB_RETRY_AGAIN:
        return "again";
    case OB_RETRY_GIVE_UP_FINAL:
        return "not_retryable";
    case OB_RETRY_GIVE_UP_ATTEMPTS:
        return "max_attempts";
    case OB_RETRY_GIVE_UP_QUOTA:
        return "retry_quota";
    }
    return "unknown";
}
