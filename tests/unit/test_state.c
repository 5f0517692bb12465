/*
 * ob_state: the key layout (every key of an account in one hash slot, the
 * account read back from a record's key) and the account's own fields.
 */
#include <string.h>

#include "ob_state.h"
#include "testutil.h"

static void test_keys(void **state)
{
    char k[OB_STATE_KEY_LEN], acct[32];
    ob_state_key("123456789012", k, sizeof(k));
    assert_string_equal(k, "ob:{123456789012}:state");
    ob_state_lock_key("123456789012", k, sizeof(k));
    assert_string_equal(k, "ob:{123456789012}:lock");
    ob_state_fence_key("123456789012", k, sizeof(k));
    assert_string_equal(k, "ob:{123456789012}:fence");
    ob_state_replays_key("123456789012", k, sizeof(k));
    assert_string_equal(k, "ob:{123456789012}:replays");

    /* The longest account id an intake request may carry fits. */
    char longest[129];
    memset(longest, 'a', 128);
    longest[128] = '\0';
    ob_state_lock_key(longest, k, sizeof(k));
    assert_int_equal(strlen(k), 128 + strlen("ob:{}:lock"));

    assert_int_equal(ob_state_account_of("ob:{123456789012}:state", acct, sizeof(acct)), 0);
    assert_string_equal(acct, "123456789012");
    assert_int_equal(ob_state_account_of("ob:{123456789012}:lock", acct, sizeof(acct)), -1);
    assert_int_equal(ob_state_account_of("ob:{}:state", acct, sizeof(acct)), -1);
    assert_int_equal(ob_state_account_of("x:{123456789012}:state", acct, sizeof(acct)), -1);
    assert_int_equal(ob_state_account_of("ob:{123456789012}:state", acct, 8), -1);
}

static void test_account_fields(void **state)
{
    /* The connection in place and what the fleet made survive a newer
     * request; the request's own fields do not. */
    static const char *const kept[] = {
        "connected_request", "connected_desired", "connected_at",  "idempotency_key", "role_arn",
        "buckets",           "old_buckets",       "reports",       "stacks",          "superseded",
        "disconnected_at",   "disconnect_key",    "connected_spec"};
    size_t n = 0;
    while (OB_STATE_ACCOUNT_FIELDS[n])
        n++;
    assert_int_equal(n, sizeof(kept) / sizeof(kept[0]));
    for (size_t i = 0; i < n; i++)
        assert_string_equal(OB_STATE_ACCOUNT_FIELDS[i], kept[i]);
    for (size_t i = 0; i < n; i++) {
        assert_string_not_equal(OB_STATE_ACCOUNT_FIELDS[i], OB_ST_STATUS);
        assert_string_not_equal(OB_STATE_ACCOUNT_FIELDS[i], OB_ST_REQUEST_ID);
        assert_string_not_equal(OB_STATE_ACCOUNT_FIELDS[i], OB_ST_STAGE);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_account_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
