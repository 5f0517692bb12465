/*
 * test_retry: standard retry mode. Expected values come from botocore's
 * retries/standard.py and retries/quota.py (python3-botocore 1.43):
 * _TRANSIENT_ERROR_CODES, _THROTTLED_ERROR_CODES, _TRANSIENT_STATUS_CODES,
 * RetryQuotaChecker (_RETRY_COST 5, _TIMEOUT_RETRY_REQUEST 10,
 * _NO_RETRY_INCREMENT 1) and RetryQuota (capacity 500, release capped), plus
 * the project rules in docs/AWS-WIRE.md.
 */
#include "testutil.h"

#include <math.h>
#include <string.h>

#include "ob_retry.h"

static const ob_aws_svc_t all_svcs[] = {OB_SVC_S3, OB_SVC_STS, OB_SVC_CLOUDFORMATION, OB_SVC_CUR,
                                        OB_SVC_ORGANIZATIONS};
#define NSVC (sizeof(all_svcs) / sizeof(all_svcs[0]))

static void test_transient_codes(void **state)
{
    (void)state;
    static const char *const codes[] = {
        "RequestTimeout",     "RequestTimeoutException", "PriorRequestNotComplete",
        "InternalError",      "InternalErrorException",  "InternalFailure",
        "ServiceUnavailable",
    };
    for (size_t s = 0; s < NSVC; s++)
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
            /* By code alone, whatever the status (400 here: the code decides). */
            assert_int_equal(ob_retry_classify(all_svcs[s], OB_OK, 400, codes[i]),
                             OB_RETRY_TRANSIENT);
            assert_int_equal(ob_retry_classify(all_svcs[s], OB_ERR_AWS, 500, codes[i]),
                             OB_RETRY_TRANSIENT);
        }
}

static void test_throttle_codes(void **state)
{
    (void)state;
    static const char *const codes[] = {
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
    for (size_t s = 0; s < NSVC; s++)
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
            ob_retry_class_t want = OB_RETRY_THROTTLE;
            if (all_svcs[s] == OB_SVC_CLOUDFORMATION &&
                strcmp(codes[i], "LimitExceededException") == 0)
                want = OB_RETRY_NO;
            assert_int_equal(ob_retry_classify(all_svcs[s], OB_OK, 400, codes[i]), want);
        }
    /* The real shapes: CloudFormation Throttling is a 400, S3 SlowDown a 503. */
    assert_int_equal(ob_retry_classify(OB_SVC_CLOUDFORMATION, OB_OK, 400, "Throttling"),
                     OB_RETRY_THROTTLE);
    assert_int_equal(ob_retry_classify(OB_SVC_S3, OB_OK, 503, "SlowDown"), OB_RETRY_THROTTLE);
    assert_int_equal(
        ob_retry_classify(OB_SVC_ORGANIZATIONS, OB_OK, 400, "TooManyRequestsException"),
        OB_RETRY_THROTTLE);
}

static void test_cloudformation_limit_exceeded_is_a_quota(void **state)
{
    (void)state;
    assert_int_equal(ob_retry_classify(OB_SVC_CLOUDFORMATION, OB_OK, 400, "LimitExceededException"),
                     OB_RETRY_NO);
    /* ...but elsewhere it is throttling (botocore's list). */
    assert_int_equal(ob_retry_classify(OB_SVC_CUR, OB_OK, 400, "LimitExceededException"),
                     OB_RETRY_THROTTLE);
    /* And a CloudFormation 5xx still retries on status. */
    assert_int_equal(ob_retry_classify(OB_SVC_CLOUDFORMATION, OB_OK, 503, "Whatever"),
                     OB_RETRY_TRANSIENT);
}

static void test_service_specific_codes(void **state)
{
    (void)state;
    /* AWS-WIRE.md: S3 OperationAborted (409) is retryable. */
    assert_int_equal(ob_retry_classify(OB_SVC_S3, OB_OK, 409, "OperationAborted"),
                     OB_RETRY_TRANSIENT);
    assert_int_equal(ob_retry_classify(OB_SVC_CLOUDFORMATION, OB_OK, 409, "OperationAborted"),
                     OB_RETRY_NO);
    /* botocore special.RetryIDPCommunicationError: STS only. */
    assert_int_equal(ob_retry_classify(OB_SVC_STS, OB_OK, 400, "IDPCommunicationError"),
                     OB_RETRY_TRANSIENT);
    assert_int_equal(ob_retry_classify(OB_SVC_S3, OB_OK, 400, "IDPCommunicationError"),
                     OB_RETRY_NO);
}

static void test_status_codes(void **state)
{
    (void)state;
    static const long transient[] = {500, 502, 503, 504};
    static const long final[] = {200, 204, 301, 307, 400, 401, 403, 404, 409, 412, 429, 501, 505};
    for (size_t s = 0; s < NSVC; s++) {
        for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
            assert_int_equal(ob_retry_classify(all_svcs[s], OB_OK, transient[i], NULL),
                             OB_RETRY_TRANSIENT);
            assert_int_equal(ob_retry_classify(all_svcs[s], OB_OK, transient[i], ""),
                             OB_RETRY_TRANSIENT);
            assert_int_equal(ob_retry_classify(all_svcs[s], OB_OK, transient[i], "HTTP503"),
                             OB_RETRY_TRANSIENT);
        }
        for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++)
            assert_int_equal(ob_retry_classify(all_svcs[s], OB_OK, final[i], NULL), OB_RETRY_NO);
    }
}

static void test_not_retryable_codes(void **state)
{
    (void)state;
    static const struct {
        ob_aws_svc_t svc;
        long status;
        const char *code;
    } cases[] = {
        {OB_SVC_STS, 403, "AccessDenied"},
        {OB_SVC_CLOUDFORMATION, 400, "ValidationError"},
        {OB_SVC_CLOUDFORMATION, 400, "AlreadyExistsException"},
        {OB_SVC_CLOUDFORMATION, 400, "InsufficientCapabilitiesException"},
        {OB_SVC_S3, 404, "NoSuchBucketPolicy"},
        {OB_SVC_S3, 409, "BucketAlreadyExists"},
        {OB_SVC_S3, 409, "BucketAlreadyOwnedByYou"},
        {OB_SVC_S3, 404, "NotFound"},
        {OB_SVC_CUR, 400, "DuplicateReportNameException"},
        {OB_SVC_CUR, 400, "ValidationException"},
        {OB_SVC_ORGANIZATIONS, 400, "AccessDeniedException"},
        /* Codes compare case-sensitively, as in botocore. */
        {OB_SVC_CLOUDFORMATION, 400, "throttling"},
        {OB_SVC_S3, 400, "slowdown"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(ob_retry_classify(cases[i].svc, OB_OK, cases[i].status, cases[i].code),
                         OB_RETRY_NO);
}

static void test_transport_errors(void **state)
{
    (void)state;
    for (size_t s = 0; s < NSVC; s++) {
        assert_int_equal(ob_retry_classify(all_svcs[s], OB_ERR_TIMEOUT, 0, NULL), OB_RETRY_TIMEOUT);
        assert_int_equal(ob_retry_classify(all_svcs[s], OB_ERR_CONN, 0, NULL), OB_RETRY_TRANSIENT);
        assert_int_equal(ob_retry_classify(all_svcs[s], OB_ERR_HTTP, 0, NULL), OB_RETRY_TRANSIENT);
        static const ob_err_t final[] = {OB_ERR_CANCELLED,   OB_ERR_NOMEM,      OB_ERR_INVALID_ARG,
                                         OB_ERR_CREDENTIALS, OB_ERR_PARSE,      OB_ERR_TOO_LARGE,
                                         OB_ERR_IO,          OB_ERR_RETRY_QUOTA};
        for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++)
            assert_int_equal(ob_retry_classify(all_svcs[s], final[i], 503, "SlowDown"),
                             OB_RETRY_NO);
        /* A transport error wins over whatever status/code might be lying around. */
        assert_int_equal(ob_retry_classify(all_svcs[s], OB_ERR_TIMEOUT, 400, "AccessDenied"),
                         OB_RETRY_TIMEOUT);
    }
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(ob_retry_class_name(OB_RETRY_NO), "none");
    assert_string_equal(ob_retry_class_name(OB_RETRY_TRANSIENT), "transient");
    assert_string_equal(ob_retry_class_name(OB_RETRY_THROTTLE), "throttle");
    assert_string_equal(ob_retry_class_name(OB_RETRY_TIMEOUT), "timeout");
    assert_string_equal(ob_retry_class_name((ob_retry_class_t)42), "unknown");
    assert_string_equal(ob_retry_verdict_name(OB_RETRY_AGAIN), "again");
    assert_string_equal(ob_retry_verdict_name(OB_RETRY_GIVE_UP_FINAL), "not_retryable");
    assert_string_equal(ob_retry_verdict_name(OB_RETRY_GIVE_UP_ATTEMPTS), "max_attempts");
    assert_string_equal(ob_retry_verdict_name(OB_RETRY_GIVE_UP_QUOTA), "retry_quota");
}

static void test_delay_bounds_and_jitter(void **state)
{
    (void)state;
    /* Bound for attempt n is min(2^(n-1), 20). */
    static const double bound[] = {0, 1, 2, 4, 8, 16, 20, 20, 20, 20, 20};
    for (int n = 1; n <= 10; n++) {
        assert_true(ob_retry_delay_s(n, 0.0, 20) == 0.0);
        assert_true(fabs(ob_retry_delay_s(n, 1.0, 20) - bound[n]) < 1e-12);
        /* Full jitter: exactly rand * bound, so the whole [0, bound] range is used. */
        for (int k = 0; k <= 100; k++) {
            double r = k / 100.0;
            double d = ob_retry_delay_s(n, r, 20);
            assert_true(d >= 0 && d <= bound[n]);
            assert_true(fabs(d - r * bound[n]) < 1e-9);
        }
    }
    /* Mean over a uniform grid is half the bound (not clustered at the cap). */
    double sum = 0;
    for (int k = 0; k < 10000; k++)
        sum += ob_retry_delay_s(8, (k + 0.5) / 10000.0, 20);
    assert_true(fabs(sum / 10000.0 - 10.0) < 0.01);

    /* Defensive inputs. */
    assert_true(ob_retry_delay_s(0, 1.0, 20) == 1.0);
    assert_true(ob_retry_delay_s(-5, 1.0, 20) == 1.0);
    assert_true(ob_retry_delay_s(1000000, 1.0, 20) == 20.0);
    assert_true(ob_retry_delay_s(64, 0.5, 20) == 10.0);
    assert_true(ob_retry_delay_s(3, NAN, 20) == 0.0);
    assert_true(ob_retry_delay_s(3, -1.0, 20) == 0.0);
    assert_true(ob_retry_delay_s(3, 7.0, 20) == 4.0);
    assert_true(ob_retry_delay_s(10, 1.0, 0) == 20.0); /* default cap */
    assert_true(ob_retry_delay_s(10, 1.0, -3) == 20.0);
    assert_true(ob_retry_delay_s(10, 1.0, NAN) == 20.0);
    assert_true(ob_retry_delay_s(10, 1.0, 5) == 5.0); /* custom cap */
    assert_true(ob_retry_delay_s(2, 1.0, 0.5) == 0.5);
}

static void test_should_retry(void **state)
{
    (void)state;
    ob_retry_policy_t p;
    ob_retry_policy_init(&p);
    assert_int_equal(p.max_attempts, 3);
    assert_true(p.max_backoff_s == 20.0);
    /* AWS_MAX_ATTEMPTS semantics: 3 attempts in total, so retry after 1 and 2. */
    assert_true(ob_retry_should_retry(&p, 1, OB_RETRY_TRANSIENT));
    assert_true(ob_retry_should_retry(&p, 2, OB_RETRY_THROTTLE));
    assert_false(ob_retry_should_retry(&p, 3, OB_RETRY_TIMEOUT));
    assert_false(ob_retry_should_retry(&p, 1, OB_RETRY_NO));
    assert_true(ob_retry_should_retry(NULL, 2, OB_RETRY_TIMEOUT));
    assert_false(ob_retry_should_retry(NULL, 3, OB_RETRY_TIMEOUT));
    p.max_attempts = 1; /* no retries at all */
    assert_false(ob_retry_should_retry(&p, 1, OB_RETRY_TRANSIENT));
    p.max_attempts = 5;
    assert_true(ob_retry_should_retry(&p, 4, OB_RETRY_TRANSIENT));
    assert_false(ob_retry_should_retry(&p, 5, OB_RETRY_TRANSIENT));
    p.max_attempts = 0; /* unset means the default */
    assert_true(ob_retry_should_retry(&p, 2, OB_RETRY_TRANSIENT));
    assert_false(ob_retry_should_retry(&p, 3, OB_RETRY_TRANSIENT));
}

static void test_quota_acquire(void **state)
{
    (void)state;
    ob_retry_quota_t q;
    ob_retry_quota_init(&q, 0);
    assert_int_equal(q.capacity, 500);
    assert_int_equal(q.available, 500);
    assert_int_equal(ob_retry_quota_acquire(&q, OB_RETRY_TRANSIENT), 5);
    assert_int_equal(ob_retry_quota_acquire(&q, OB_RETRY_THROTTLE), 5);
    assert_int_equal(ob_retry_quota_acquire(&q, OB_RETRY_TIMEOUT), 10);
    assert_int_equal(ob_retry_quota_acquire(&q, OB_RETRY_NO), 0);
    assert_int_equal(q.available, 480);

    /* Drain: 96 more retries at 5 empty the bucket exactly; the next fails
     * and takes nothing. */
    for (int i = 0; i < 96; i++)
        assert_int_equal(ob_retry_quota_acquire(&q, OB_RETRY_TRANSIENT), 5);
    assert_int_equal(q.available, 0);
    assert_int_equal(ob_retry_quota_acquire(&q, OB_RETRY_TRANSIENT), 0);
    assert_int_equal(ob_retry_quota_acquire(&q, OB_RETRY_TIMEOUT), 0);
    assert_int_equal(q.available, 0);

    /* Partial: 7 tokens allow a normal retry but not a timeout retry. */
    ob_retry_quota_init(&q, 7);
    assert_int_equal(ob_retry_quota_acquire(&q, OB_RETRY_TIMEOUT), 0);
    assert_int_equal(q.available, 7);
    assert_int_equal(ob_retry_quota_acquire(&q, OB_RETRY_THROTTLE), 5);
    assert_int_equal(ob_retry_quota_acquire(&q, OB_RETRY_THROTTLE), 0);
    assert_int_equal(q.available, 2);
}

static void test_quota_release(void **state)
{
    (void)state;
    ob_retry_quota_t q;
    ob_retry_quota_init(&q, 500);
    /* At capacity, successes change nothing. */
    ob_retry_quota_release(&q, 0);
    ob_retry_quota_release(&q, 10);
    assert_int_equal(q.available, 500);

    /* A call that needed a retry and then succeeded gives back that retry's cost. */
    int cost = ob_retry_quota_acquire(&q, OB_RETRY_TRANSIENT);
    assert_int_equal(q.available, 495);
    ob_retry_quota_release(&q, cost);
    assert_int_equal(q.available, 500);

    cost = ob_retry_quota_acquire(&q, OB_RETRY_TIMEOUT);
    assert_int_equal(q.available, 490);
    ob_retry_quota_release(&q, cost);
    assert_int_equal(q.available, 500);

    /* Successes without retries refill one token each (NO_RETRY_INCREMENT). */
    for (int i = 0; i < 4; i++)
        ob_retry_quota_acquire(&q, OB_RETRY_TRANSIENT);
    assert_int_equal(q.available, 480);
    for (int i = 0; i < 7; i++)
        ob_retry_quota_release(&q, 0);
    assert_int_equal(q.available, 487);
    ob_retry_quota_release(&q, -3); /* nonsense cost counts as "no retry" */
    assert_int_equal(q.available, 488);

    /* Never above capacity. */
    ob_retry_quota_release(&q, 10);
    ob_retry_quota_release(&q, 10);
    assert_int_equal(q.available, 500);
    ob_retry_quota_acquire(&q, OB_RETRY_TRANSIENT);
    ob_retry_quota_release(&q, 10);
    assert_int_equal(q.available, 500);
}

/* An outage: every call fails with 503 and is retried until the bucket is
 * empty, then calls succeed again and the bucket refills, as botocore does. */
static void test_quota_outage_and_recovery(void **state)
{
    (void)state;
    ob_retry_quota_t q;
    ob_retry_quota_init(&q, 500);
    ob_retry_policy_t p;
    ob_retry_policy_init(&p);
    int calls_retried = 0, gave_up_quota = 0;
    for (int call = 0; call < 200; call++) {
        for (int attempts = 1;; attempts++) {
            ob_retry_class_t cls = ob_retry_classify(OB_SVC_S3, OB_OK, 503, "SlowDown");
            double delay;
            int cost;
            ob_retry_verdict_t v = ob_retry_decide(&p, &q, attempts, cls, 0.5, &delay, &cost);
            if (v == OB_RETRY_AGAIN) {
                assert_int_equal(cost, 5);
                calls_retried += attempts == 1;
                continue;
            }
            if (v == OB_RETRY_GIVE_UP_QUOTA)
                gave_up_quota++;
            break;
        }
    }
    /* 500 tokens / 5 = 100 retries, 2 per call: 50 calls retried. */
    assert_int_equal(q.available, 0);
    assert_int_equal(calls_retried, 50);
    assert_int_equal(gave_up_quota, 150);
    /* Recovery: first-try successes add 1 token each. */
    for (int i = 0; i < 123; i++)
        ob_retry_quota_release(&q, 0);
    assert_int_equal(q.available, 123);
    /* A call that retried once and then succeeded: net zero. */
    int cost = 0;
    assert_int_equal(ob_retry_decide(&p, &q, 1, OB_RETRY_TRANSIENT, 0.0, NULL, &cost),
                     OB_RETRY_AGAIN);
    assert_int_equal(q.available, 118);
    ob_retry_quota_release(&q, cost);
    assert_int_equal(q.available, 123);
}

static void test_decide(void **state)
{
    (void)state;
    ob_retry_policy_t p;
    ob_retry_policy_init(&p);
    ob_retry_quota_t q;
    ob_retry_quota_init(&q, 500);
    double delay = -1;
    int cost = -1;

    assert_int_equal(ob_retry_decide(&p, &q, 1, OB_RETRY_NO, 0.5, &delay, &cost),
                     OB_RETRY_GIVE_UP_FINAL);
    assert_true(delay == 0 && cost == 0);
    assert_int_equal(q.available, 500);

    assert_int_equal(ob_retry_decide(&p, &q, 1, OB_RETRY_THROTTLE, 0.5, &delay, &cost),
                     OB_RETRY_AGAIN);
    assert_true(delay == 0.5); /* attempt 1: rand * 1 */
    assert_int_equal(cost, 5);
    assert_int_equal(ob_retry_decide(&p, &q, 2, OB_RETRY_TIMEOUT, 0.5, &delay, &cost),
                     OB_RETRY_AGAIN);
    assert_true(delay == 1.0); /* attempt 2: rand * 2 */
    assert_int_equal(cost, 10);
    assert_int_equal(q.available, 485);

    /* Attempts exhausted: the quota is not touched. */
    assert_int_equal(ob_retry_decide(&p, &q, 3, OB_RETRY_TRANSIENT, 0.5, &delay, &cost),
                     OB_RETRY_GIVE_UP_ATTEMPTS);
    assert_int_equal(q.available, 485);
    assert_true(delay == 0 && cost == 0);

    /* Quota exhausted. */
    q.available = 4;
    assert_int_equal(ob_retry_decide(&p, &q, 1, OB_RETRY_TRANSIENT, 0.5, &delay, &cost),
                     OB_RETRY_GIVE_UP_QUOTA);
    assert_int_equal(q.available, 4);

    /* NULL policy = defaults; NULL outputs allowed; the policy cap applies. */
    q.available = 500;
    assert_int_equal(ob_retry_decide(NULL, &q, 2, OB_RETRY_TRANSIENT, 1.0, NULL, NULL),
                     OB_RETRY_AGAIN);
    p.max_attempts = 10;
    p.max_backoff_s = 3;
    assert_int_equal(ob_retry_decide(&p, &q, 9, OB_RETRY_TRANSIENT, 1.0, &delay, &cost),
                     OB_RETRY_AGAIN);
    assert_true(delay == 3.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transient_codes),
        cmocka_unit_test(test_throttle_codes),
        cmocka_unit_test(test_cloudformation_limit_exceeded_is_a_quota),
        cmocka_unit_test(test_service_specific_codes),
        cmocka_unit_test(test_status_codes),
        cmocka_unit_test(test_not_retryable_codes),
        cmocka_unit_test(test_transport_errors),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_delay_bounds_and_jitter),
        cmocka_unit_test(test_should_retry),
        cmocka_unit_test(test_quota_acquire),
        cmocka_unit_test(test_quota_release),
        cmocka_unit_test(test_quota_outage_and_recovery),
        cmocka_unit_test(test_decide),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
