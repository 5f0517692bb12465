/*
 * ob_lifecycle: the rules of which joining accounts the fleet onboards by
 * itself, and the events AWS sends about accounts joining, read from the
 * real examples in proto/examples/aws-events (accepted/: with a NAME.expect
 * of what the request must say; refused/: with a NAME.why of the code and
 * field).
 */
#include <string.h>

#include "ob_lifecycle.h"
#include "testutil.h"

#define EVENTS OB_FIXTURES "/../../proto/examples/aws-events"

/* The settings' strings are the config's own (malloc'd, not const): these
 * tests only read them. */
#define S(x) ((char *)(x))

/* The value of "key: value" in an .expect file ("" when absent). */
static void expect_of(const char *text, const char *key, char *out, size_t n)
{
    out[0] = '\0';
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (!strncmp(p, key, kl) && p[kl] == ':' && p[kl + 1] == ' ') {
            size_t v = strcspn(p + kl + 2, "\n");
            snprintf(out, n, "%.*s", (int)v, p + kl + 2);
            return;
        }
    }
}

static json_t *load_event(const char *path)
{
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        fail_msg("%s: %s", path, je.text);
    assert_true(ob_event_is_envelope(doc));
    return doc;
}

/* Example i of a folder: the event, and its sibling file `ext` (malloc'd). */
static json_t *example(const char *dir, const char *file, const char *ext, char **side_text)
{
    char path[1024], side[1024];
    snprintf(path, sizeof(path), "%s/%s/%s", EVENTS, dir, file);
    snprintf(side, sizeof(side), "%.*s%s", (int)(strlen(path) - 5), path, ext);
    size_t len;
    *side_text = ob_test_read_file(side, &len);
    if (!*side_text)
        fail_msg("%s: no %s", path, ext);
    return load_event(path);
}

static void rules_of(ob_lifecycle_rules_t *rules)
{
    ob_config_t cfg = ob_test_lifecycle_config();
    char err[256];
    assert_int_equal(ob_lifecycle_rules_load(&cfg, rules, err, sizeof(err)), OB_OK);
}

static void test_accepted_events(void **state)
{
    (void)state;
    ob_lifecycle_rules_t rules;
    char err[256];
    rules_of(&rules);
    char **files;
    size_t n = ob_test_list_dir(EVENTS "/accepted", ".json", &files);
    assert_true(n >= 4);
    for (size_t i = 0; i < n; i++) {
        char want[256], *expect;
        json_t *doc = example("accepted", files[i], ".expect", &expect);
        ob_request_t r;
        ob_msg_error_t me;
        if (ob_event_request(doc, &rules, &r, &me) != OB_OK)
            fail_msg("%s refused: [%s] %s", files[i], me.code, me.message);
        expect_of(expect, "account", want, sizeof(want));
        assert_string_equal(r.account_id, want);
        expect_of(expect, "mode", want, sizeof(want));
        assert_string_equal(ob_mode_name(r.mode), want);
        expect_of(expect, "role", want, sizeof(want));
        assert_string_equal(r.role_arn, want);
        expect_of(expect, "request_id", want, sizeof(want));
        assert_string_equal(r.request_id, want);
        assert_string_equal(r.region, "eu-west-1");
        assert_int_equal(r.version, 1);
        assert_non_null(strstr(r.requester, "eventbridge:aws."));
        assert_string_equal(r.requested_at, json_string_value(json_object_get(doc, "time")));
        /* The same event again is the same request. */
        ob_request_t again;
        assert_int_equal(ob_event_request(doc, &rules, &again, &me), OB_OK);
        assert_string_equal(again.request_id, r.request_id);
        ob_request_clear(&again);
        /* Left out by account: refused with the rule, as a permanent failure. */
        expect_of(expect, "account", want, sizeof(want));
        ob_config_t ex = ob_test_lifecycle_config();
        ex.lifecycle_exclude_accounts = S(want);
        ob_lifecycle_rules_t xr;
        assert_int_equal(ob_lifecycle_rules_load(&ex, &xr, err, sizeof(err)), OB_OK);
        assert_int_equal(ob_event_request(doc, &xr, &again, &me), OB_ERR_PARSE);
        assert_string_equal(me.code, "excluded");
        assert_non_null(strstr(me.message, "lifecycle.exclude.accounts"));
        ob_lifecycle_rules_free(&xr);
        /* A Control Tower account's OU decides its mode. */
        char ou[64];
        expect_of(expect, "ous", ou, sizeof(ou));
        if (ou[0]) {
            char modes[96];
            snprintf(modes, sizeof(modes), "%s=existing", ou);
            ob_config_t om = ob_test_lifecycle_config();
            om.lifecycle_ou_modes = S(modes);
            assert_int_equal(ob_lifecycle_rules_load(&om, &xr, err, sizeof(err)), OB_OK);
            assert_int_equal(ob_event_request(doc, &xr, &again, &me), OB_OK);
            assert_int_equal(again.mode, OB_MODE_EXISTING);
            ob_request_clear(&again);
            ob_lifecycle_rules_free(&xr);
        }
        ob_request_clear(&r);
        json_decref(doc);
        free(expect);
    }
    ob_test_free_list(files, n);
    ob_lifecycle_rules_free(&rules);
}

static void test_refused_events(void **state)
{
    (void)state;
    ob_lifecycle_rules_t rules;
    rules_of(&rules);
    char **files;
    size_t n = ob_test_list_dir(EVENTS "/refused", ".json", &files);
    assert_true(n >= 6);
    for (size_t i = 0; i < n; i++) {
        char code[64], field[256], *why;
        json_t *doc = example("refused", files[i], ".why", &why);
        expect_of(why, "code", code, sizeof(code));
        char *f = strstr(why, "field:");
        assert_non_null(f);
        snprintf(field, sizeof(field), "%.*s", (int)strcspn(f + 7, "\n"), f + 7);
        ob_request_t r;
        ob_msg_error_t me;
        if (ob_event_request(doc, &rules, &r, &me) != OB_ERR_PARSE)
            fail_msg("%s accepted", files[i]);
        assert_string_equal(me.code, code);
        assert_string_equal(me.field, field);
        /* The reason names the event. */
        const char *name =
            json_string_value(json_object_get(json_object_get(doc, "detail"), "eventName"));
        assert_non_null(strstr(me.message, name ? name : "(no eventName)"));
        assert_non_null(strstr(me.message, json_string_value(json_object_get(doc, "source"))));
        json_decref(doc);
        free(why);
    }
    ob_test_free_list(files, n);
    ob_lifecycle_rules_free(&rules);
}

static void test_rules(void **state)
{
    (void)state;
    ob_config_t c = ob_test_lifecycle_config();
    c.lifecycle_include_ous = S("ou-ab12-aaaaaaaa, root");
    c.lifecycle_exclude_ous = S("ou-ab12-bbbbbbbb");
    c.lifecycle_exclude_accounts = S("111111111111");
    c.lifecycle_ou_modes = S("ou-ab12-aaaaaaaa=existing,ou-ab12-cccccccc=new");
    ob_lifecycle_rules_t r;
    char why[256];
    assert_int_equal(ob_lifecycle_rules_load(&c, &r, why, sizeof(why)), OB_OK);
    ob_mode_t m;
    /* Nested: the nearest OU with a mode decides; an excluded ancestor wins. */
    assert_int_equal(ob_lifecycle_decide(&r, "222222222222",
                                         "ou-ab12-cccccccc,ou-ab12-aaaaaaaa,root", &m, why,
                                         sizeof(why)),
                     1);
    assert_int_equal(m, OB_MODE_NEW);
    assert_int_equal(
        ob_lifecycle_decide(&r, "222222222222", "ou-ab12-aaaaaaaa,root", &m, why, sizeof(why)), 1);
    assert_int_equal(m, OB_MODE_EXISTING);
    assert_int_equal(ob_lifecycle_decide(&r, "222222222222",
                                         "ou-ab12-dddddddd,ou-ab12-bbbbbbbb,root", &m, why,
                                         sizeof(why)),
                     0);
    assert_non_null(strstr(why, "lifecycle.exclude.ous"));
    assert_int_equal(ob_lifecycle_decide(&r, "111111111111", "root", &m, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "lifecycle.exclude.accounts"));
    assert_int_equal(
        ob_lifecycle_decide(&r, "222222222222", "ou-ab12-eeeeeeee", &m, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "outside lifecycle.include.ous"));
    ob_lifecycle_rules_free(&r);
    /* Settings that are wrong are refused with the setting named. */
    static const struct {
        const char *mode, *ou_modes, *inc_ous, *exc_acc, *says;
    } bad[] = {{"offboard", "", "", "", "lifecycle.mode"},
               {"new", "ou-ab12-aaaaaaaa", "", "", "lifecycle.ou.modes"},
               {"new", "ou-ab12-aaaaaaaa=maybe", "", "", "lifecycle.ou.modes"},
               {"new", "", "Workloads", "", "lifecycle.include.ous"},
               {"new", "", "", "12345", "lifecycle.exclude.accounts"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ob_config_t b = ob_test_lifecycle_config();
        b.lifecycle_mode = S(bad[i].mode);
        b.lifecycle_ou_modes = S(bad[i].ou_modes);
        b.lifecycle_include_ous = S(bad[i].inc_ous);
        b.lifecycle_exclude_accounts = S(bad[i].exc_acc);
        assert_int_equal(ob_lifecycle_rules_load(&b, &r, why, sizeof(why)), OB_ERR_CONFIG);
        assert_non_null(strstr(why, bad[i].says));
    }
    /* No region: an event is refused with what to set. */
    ob_config_t nr = ob_test_lifecycle_config();
    nr.lifecycle_region = S("");
    assert_int_equal(ob_lifecycle_rules_load(&nr, &r, why, sizeof(why)), OB_OK);
    json_t *doc = load_event(EVENTS "/accepted/organizations-create-account-result.json");
    ob_request_t q;
    ob_msg_error_t me;
    assert_int_equal(ob_event_request(doc, &r, &q, &me), OB_ERR_PARSE);
    assert_string_equal(me.code, "lifecycle_config");
    assert_non_null(strstr(me.message, "lifecycle.region"));
    json_decref(doc);
    ob_lifecycle_rules_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_events),
        cmocka_unit_test(test_refused_events),
        cmocka_unit_test(test_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
