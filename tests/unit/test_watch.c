/*
 * ob_watch: the organization watcher's listing (paged calls, the tree walk
 * that gives each account its OUs), the request it enqueues, and the
 * periodic verification's choices. Replies are Organizations' documented
 * shapes; the watcher against the simulator is integration.lifecycle's.
 */
#include <string.h>

#include "ob_state.h"
#include "ob_time.h"
#include "ob_watch.h"
#include "testutil.h"

#define S(x) ((char *)(x))

/* The next call must be op on parent (NULL: none) with token (NULL: none). */
static void expect_call(ob_watch_t *w, const char *op, const char *parent, const char *token)
{
    const char *got;
    json_t *body;
    assert_int_equal(ob_watch_next(w, &got, &body), 1);
    assert_string_equal(got, op);
    const char *p = json_string_value(json_object_get(body, "ParentId"));
    const char *t = json_string_value(json_object_get(body, "NextToken"));
    if (parent)
        assert_string_equal(p, parent);
    else
        assert_null(p);
    if (token)
        assert_string_equal(t, token);
    else
        assert_null(t);
    assert_int_equal(json_integer_value(json_object_get(body, "MaxResults")), 20);
    json_decref(body);
}

static void reply(ob_watch_t *w, const char *json)
{
    char why[256];
    ob_err_t e = ob_watch_reply(w, json, strlen(json), why, sizeof(why));
    if (e != OB_OK)
        fail_msg("reply refused: %s", why);
}

static void test_list_accounts_pages(void **state)
{
    (void)state;
    ob_config_t c = ob_test_lifecycle_config();
    ob_lifecycle_rules_t r;
    char err[256];
    assert_int_equal(ob_lifecycle_rules_load(&c, &r, err, sizeof(err)), OB_OK);
    ob_watch_t *w = ob_watch_new(&r);
    assert_false(ob_watch_walks_tree(w));
    expect_call(w, "ListAccounts", NULL, NULL);
    reply(w, "{\"Accounts\":[{\"Id\":\"111111111111\",\"Status\":\"ACTIVE\"},"
             "{\"Id\":\"222222222222\",\"State\":\"SUSPENDED\",\"Status\":\"SUSPENDED\"}],"
             "\"NextToken\":\"page2\"}");
    expect_call(w, "ListAccounts", NULL, "page2");
    /* State wins over Status (AWS retires Status). */
    reply(w, "{\"Accounts\":[{\"Id\":\"333333333333\",\"State\":\"ACTIVE\",\"Status\":\"x\"},"
             "{\"Id\":\"444444444444\",\"State\":\"PENDING_CLOSURE\",\"Status\":\"ACTIVE\"}]}");
    const char *op;
    json_t *body;
    assert_int_equal(ob_watch_next(w, &op, &body), 0);
    assert_int_equal(ob_watch_count(w), 4);
    assert_int_equal(ob_watch_calls(w), 2);
    const char *ids[] = {"111111111111", "222222222222", "333333333333", "444444444444"};
    const int active[] = {1, 0, 1, 0};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(ob_watch_account(w, i)->id, ids[i]);
        assert_int_equal(ob_watch_account(w, i)->active, active[i]);
        assert_null(ob_watch_account(w, i)->ous);
    }
    assert_null(ob_watch_account(w, 4));
    ob_watch_free(w);
    ob_lifecycle_rules_free(&r);
}

static void test_tree_walk(void **state)
{
    (void)state;
    ob_config_t c = ob_test_lifecycle_config();
    c.lifecycle_exclude_ous = S("ou-root-sandbox");
    c.lifecycle_ou_modes = S("ou-root-prod=existing");
    ob_lifecycle_rules_t r;
    char err[256];
    assert_int_equal(ob_lifecycle_rules_load(&c, &r, err, sizeof(err)), OB_OK);
    ob_watch_t *w = ob_watch_new(&r);
    assert_true(ob_watch_walks_tree(w));
    expect_call(w, "ListRoots", NULL, NULL);
    reply(w, "{\"Roots\":[{\"Id\":\"r-ab12\",\"Name\":\"Root\"}]}");
    expect_call(w, "ListAccountsForParent", "r-ab12", NULL);
    reply(w, "{\"Accounts\":[{\"Id\":\"100000000001\",\"State\":\"ACTIVE\"}]}");
    expect_call(w, "ListOrganizationalUnitsForParent", "r-ab12", NULL);
    reply(w, "{\"OrganizationalUnits\":[{\"Id\":\"ou-root-prod\"}],\"NextToken\":\"t1\"}");
    expect_call(w, "ListOrganizationalUnitsForParent", "r-ab12", "t1");
    reply(w, "{\"OrganizationalUnits\":[{\"Id\":\"ou-root-sandbox\"}]}");
    expect_call(w, "ListAccountsForParent", "ou-root-prod", NULL);
    reply(w, "{\"Accounts\":[{\"Id\":\"100000000002\",\"State\":\"ACTIVE\"}]}");
    expect_call(w, "ListOrganizationalUnitsForParent", "ou-root-prod", NULL);
    reply(w, "{\"OrganizationalUnits\":[{\"Id\":\"ou-root-prodeu\"}]}");
    expect_call(w, "ListAccountsForParent", "ou-root-sandbox", NULL);
    reply(w, "{\"Accounts\":[{\"Id\":\"100000000003\",\"State\":\"ACTIVE\"}]}");
    expect_call(w, "ListOrganizationalUnitsForParent", "ou-root-sandbox", NULL);
    reply(w, "{\"OrganizationalUnits\":[]}");
    expect_call(w, "ListAccountsForParent", "ou-root-prodeu", NULL);
    reply(w, "{\"Accounts\":[{\"Id\":\"100000000004\",\"State\":\"ACTIVE\"}]}");
    expect_call(w, "ListOrganizationalUnitsForParent", "ou-root-prodeu", NULL);
    reply(w, "{\"OrganizationalUnits\":[]}");
    const char *op;
    json_t *body;
    assert_int_equal(ob_watch_next(w, &op, &body), 0);
    assert_int_equal(ob_watch_count(w), 4);
    const char *chains[] = {"root", "ou-root-prod,root", "ou-root-sandbox,root",
                            "ou-root-prodeu,ou-root-prod,root"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(ob_watch_account(w, i)->ous, chains[i]);
    /* What the rules make of them: the nested OU takes its ancestor's mode,
     * the sandbox is left out. */
    ob_mode_t mode;
    char why[256];
    assert_true(ob_lifecycle_decide(&r, "100000000001", ob_watch_account(w, 0)->ous, &mode, why,
                                    sizeof(why)));
    assert_int_equal(mode, OB_MODE_NEW);
    assert_true(ob_lifecycle_decide(&r, "100000000004", ob_watch_account(w, 3)->ous, &mode, why,
                                    sizeof(why)));
    assert_int_equal(mode, OB_MODE_EXISTING);
    assert_false(ob_lifecycle_decide(&r, "100000000003", ob_watch_account(w, 2)->ous, &mode, why,
                                     sizeof(why)));
    assert_non_null(strstr(why, "ou-root-sandbox"));
    ob_watch_free(w);
    ob_lifecycle_rules_free(&r);
}

static void test_bad_replies(void **state)
{
    (void)state;
    ob_config_t c = ob_test_lifecycle_config();
    ob_lifecycle_rules_t r;
    char err[256], why[256];
    assert_int_equal(ob_lifecycle_rules_load(&c, &r, err, sizeof(err)), OB_OK);
    const char *bad[] = {"not json",
                         "[]",
                         "{\"Roots\":[]}",
                         "{\"Accounts\":{}}",
                         "{\"Accounts\":[{\"Id\":\"12\"}]}",
                         "{\"Accounts\":[{\"State\":\"ACTIVE\"}]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ob_watch_t *w = ob_watch_new(&r);
        why[0] = '\0';
        assert_int_equal(ob_watch_reply(w, bad[i], strlen(bad[i]), why, sizeof(why)), OB_ERR_PARSE);
        assert_true(why[0] != '\0');
        /* The listing does not move on past a reply it refused. */
        expect_call(w, "ListAccounts", NULL, NULL);
        ob_watch_free(w);
    }
    ob_lifecycle_rules_free(&r);
}

static void test_request(void **state)
{
    (void)state;
    ob_config_t c = ob_test_lifecycle_config();
    ob_lifecycle_rules_t r;
    char err[256], why[256];
    assert_int_equal(ob_lifecycle_rules_load(&c, &r, err, sizeof(err)), OB_OK);
    char *json = ob_watch_request(&r, "123456789012", OB_MODE_EXISTING, why, sizeof(why));
    assert_non_null(json);
    ob_request_t q;
    ob_msg_error_t me;
    assert_int_equal(ob_request_parse(json, strlen(json), &q, &me), OB_OK);
    assert_string_equal(q.request_id, "watcher:123456789012");
    assert_string_equal(q.account_id, "123456789012");
    assert_int_equal(q.mode, OB_MODE_EXISTING);
    assert_string_equal(q.region, "eu-west-1");
    assert_string_equal(q.role_arn, "arn:aws:iam::123456789012:role/OrganizationAccountAccessRole");
    assert_string_equal(q.requester, OB_WATCH_REQUESTER);
    assert_int_equal(q.version, 1);
    ob_request_clear(&q);
    free(json);
    /* No region: no request, and why says which setting. */
    ob_lifecycle_rules_free(&r);
    c.lifecycle_region = S("");
    assert_int_equal(ob_lifecycle_rules_load(&c, &r, err, sizeof(err)), OB_OK);
    assert_null(ob_watch_request(&r, "123456789012", OB_MODE_NEW, why, sizeof(why)));
    assert_non_null(strstr(why, "lifecycle.region"));
    ob_lifecycle_rules_free(&r);
}

static void test_verify_due(void **state)
{
    (void)state;
    const uint64_t h = 3600000, m = 60000, now = 1800000000000ULL;
    char at[OB_TIME_ISO_LEN];
    ob_verify_seen_t s = {0};
    assert_true(ob_verify_due(&s, now, h)); /* never verified, never sent */
    ob_time_format_ms((int64_t)(now - h / 2), at);
    s.verify_at = at;
    assert_false(ob_verify_due(&s, now, h)); /* verified half an interval ago */
    ob_time_format_ms((int64_t)(now - 2 * h), at);
    assert_true(ob_verify_due(&s, now, h));
    /* Sent a minute ago, not answered yet. */
    s.sent_ms = now - m;
    s.sent_request = "verify:2";
    s.verify_request = "verify:1";
    assert_false(ob_verify_due(&s, now, h));
    /* Sent an interval ago and answered: due. */
    s.sent_ms = now - h;
    s.verify_request = "verify:2";
    assert_true(ob_verify_due(&s, now, h));
    /* Sent two short intervals ago, still not answered (drift detection
     * takes its time): not sent again until the answer wait passed. */
    s.verify_request = "verify:1";
    s.sent_ms = now - 2 * m;
    assert_false(ob_verify_due(&s, now, m));
    s.sent_ms = now - OB_VERIFY_ANSWER_WAIT_MS - m;
    assert_true(ob_verify_due(&s, now, m));
    /* Never verified yet, the first one still under way. */
    s.sent_ms = now - 2 * m;
    s.verify_request = "";
    s.verify_at = "";
    s.sent_record_request = s.record_request = "r-1";
    assert_false(ob_verify_due(&s, now, m));
    /* A repair replaced the record since (no verification in it), the
     * connection kept. */
    s.record_request = "repair:1";
    s.connected_request = "r-1";
    assert_true(ob_verify_due(&s, now, m));
    /* A repair under way holds it back; once connected, it is due again. */
    ob_verify_seen_t r = {0};
    ob_time_format_ms((int64_t)(now - 5 * m), at);
    r.verify_at = at;
    r.repair_request = "repair:1";
    r.connected_request = "r-1";
    assert_false(ob_verify_due(&r, now, 2 * m));
    r.connected_request = "repair:1";
    assert_true(ob_verify_due(&r, now, 2 * m));
    /* ... but not for ever: a repair lost on the way stops verification an
     * hour at most. */
    r.connected_request = "r-1";
    ob_time_format_ms((int64_t)(now - OB_VERIFY_REPAIR_WAIT_MS - m), at);
    assert_true(ob_verify_due(&r, now, 2 * m));
    /* Sent but never acknowledged by the broker (the sender was killed
     * with it in its queue): lost after lost_after_ms, not the answer
     * wait; and never while the interval since the last verification runs. */
    ob_verify_seen_t u = {
        .sent_ms = now - m, .sent_request = "verify:3", .unconfirmed = 1, .lost_after_ms = 2 * m};
    assert_false(ob_verify_due(&u, now, m));
    u.sent_ms = now - 3 * m;
    assert_true(ob_verify_due(&u, now, m));
    u.unconfirmed = 0; /* acknowledged: the answer wait again */
    assert_false(ob_verify_due(&u, now, m));
    u.unconfirmed = 1;
    ob_time_format_ms((int64_t)(now - m / 2), at);
    u.verify_at = at;
    assert_false(ob_verify_due(&u, now, m));
    ob_verify_seen_t g = {.verify_at = "garbage"};
    assert_true(ob_verify_due(&g, now, h));
}

static void test_verify_picks(void **state)
{
    (void)state;
    ob_verify_picks_t p;
    ob_verify_picks_init(&p, 4);
    /* Offered in scan order; the four stalest are kept, whatever the order. */
    const uint64_t last[] = {50, 10, 90, 0, 70, 30, 20, 80, 60, 40};
    char acct[16];
    for (int i = 0; i < 10; i++) {
        snprintf(acct, sizeof(acct), "1000000000%02d", i);
        ob_verify_picks_offer(&p, acct, last[i]);
    }
    ob_verify_picks_sort(&p);
    assert_int_equal(p.n, 4);
    const char *want[] = {"100000000003", "100000000001", "100000000006", "100000000005"};
    const uint64_t when[] = {0, 10, 20, 30};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(p.v[i].account, want[i]);
        assert_int_equal(p.v[i].last_ms, when[i]);
    }
    ob_verify_picks_free(&p);
    /* Fewer than the cap: all of them. */
    ob_verify_picks_init(&p, 100);
    ob_verify_picks_offer(&p, "100000000001", 5);
    ob_verify_picks_offer(&p, "100000000002", 1);
    ob_verify_picks_sort(&p);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.v[0].account, "100000000002");
    ob_verify_picks_free(&p);
    /* How stale: the later of the last verification and the last sent. */
    char at[OB_TIME_ISO_LEN];
    ob_time_format_ms(5000, at);
    ob_verify_seen_t s = {.verify_at = at, .sent_ms = 3000};
    assert_int_equal(ob_verify_last_ms(&s), 5000);
    s.sent_ms = 9000;
    assert_int_equal(ob_verify_last_ms(&s), 9000);
    ob_verify_seen_t never = {0};
    assert_int_equal(ob_verify_last_ms(&never), 0);
}

#define KEY "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_verify_of_record(void **state)
{
    (void)state;
    const char *spec =
        "{\"schema\":\"onboard.request/1\",\"request_id\":\"r-1\",\"account_id\":\"123456789012\","
        "\"cloud\":\"aws\",\"mode\":\"new\",\"region\":\"eu-west-1\",\"role_arn\":"
        "\"arn:aws:iam::123456789012:role/OrganizationAccountAccessRole\"}";
    char why[512];
    char *json = ob_verify_of_record("123456789012", OB_ST_STATUS_CONNECTED, KEY, spec,
                                     "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1",
                                     "arn:aws:iam::123456789012:role/BillingEngine", "verify:ab", 1,
                                     "onboard-lifecycle/verify", why, sizeof(why));
    if (!json)
        fail_msg("%s", why);
    ob_verify_msg_t v;
    ob_msg_error_t me;
    assert_int_equal(ob_verify_parse(json, strlen(json), &v, &me), OB_OK);
    assert_string_equal(v.request_id, "verify:ab");
    assert_string_equal(v.connection_key, KEY);
    assert_int_equal(v.repair, 1);
    assert_string_equal(v.requester, "onboard-lifecycle/verify");
    assert_string_equal(v.request.request_id, "r-1");
    ob_verify_clear(&v);
    free(json);
    assert_null(ob_verify_of_record("123456789012", "failed", "", spec, "", "", "verify:ab", 0, "x",
                                    why, sizeof(why)));
    assert_non_null(strstr(why, "not connected (failed)"));
    assert_null(ob_verify_of_record("123456789012", OB_ST_STATUS_CONNECTED, "k", "", "", "",
                                    "verify:ab", 0, "x", why, sizeof(why)));
    assert_non_null(strstr(why, "connection's request"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_accounts_pages), cmocka_unit_test(test_tree_walk),
        cmocka_unit_test(test_bad_replies),         cmocka_unit_test(test_request),
        cmocka_unit_test(test_verify_due),          cmocka_unit_test(test_verify_of_record),
        cmocka_unit_test(test_verify_picks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
