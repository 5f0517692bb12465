/*
 * ob_schema: the compiled-in schemas load, and the validator agrees with the
 * examples in proto/examples (the ones a standard JSON Schema validator
 * checks in proto.schemas): every valid and codec-only example passes; every
 * invalid example is refused with exactly the code and field its .why file
 * names, cross-member rules (if/then, oneOf, not) included. The one answer
 * that is the codec's own is unsupported_cloud: a cloud the schema knows but
 * the workers refuse.
 */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_msg.h"
#include "ob_schema.h"
#include "testutil.h"

#define EXAMPLES OB_FIXTURES "/../../proto/examples"

static void read_why(const char *path, char *code, size_t cn, char *field, size_t fn)
{
    char *text = ob_test_read_file(path, NULL);
    assert_non_null(text);
    char *l2 = strchr(text, '\n');
    assert_non_null(l2);
    *l2++ = '\0';
    char *end = strchr(l2, '\n');
    if (end)
        *end = '\0';
    assert_int_equal(strncmp(text, "code: ", 6), 0);
    assert_int_equal(strncmp(l2, "field:", 6), 0);
    snprintf(code, cn, "%s", text + 6);
    snprintf(field, fn, "%s", l2[6] == ' ' ? l2 + 7 : l2 + 6);
    free(text);
}

static ob_msg_kind_t kind_of(const char *dir)
{
    return !strncmp(dir, "onboard.request.", 16)        ? OB_MSG_REQUEST
           : !strncmp(dir, "onboard.stage.", 14)        ? OB_MSG_STAGE
           : !strncmp(dir, "onboard.connected.", 18)    ? OB_MSG_CONNECTED
           : !strncmp(dir, "onboard.disconnected.", 21) ? OB_MSG_DISCONNECTED
           : !strncmp(dir, "onboard.verify.", 15)       ? OB_MSG_VERIFY
           : !strncmp(dir, "onboard.drift.", 14)        ? OB_MSG_DRIFT
                                                        : OB_MSG_DLQ;
}

/* 1 when the codec refuses the file with exactly this code and field. */
static int codec_says(ob_msg_kind_t kind, const char *path, const char *code, const char *field)
{
    size_t len;
    char *json = ob_test_read_file(path, &len);
    ob_msg_error_t me;
    int ok =
        ob_msg_validate(kind, json, len, &me) != OB_OK &&
        (!strcmp(me.code, code) || (!strcmp(code, "type") && !strcmp(me.code, "not_object"))) &&
        !strcmp(me.field, field);
    free(json);
    return ok;
}

static void test_examples(void **state)
{
    char **schemas;
    size_t ns = ob_test_list_dir(EXAMPLES, "", &schemas), checked = 0, refused = 0, by_hand = 0;
    assert_true(ns >= 4);
    int failures = 0;
    for (size_t s = 0; s < ns; s++) {
        if (strncmp(schemas[s], "onboard.", 8) != 0) {
            free(schemas[s]); /* aws-events: AWS's own (unit.lifecycle) */
            continue;
        }
        char schema[128];
        snprintf(schema, sizeof(schema), "%s.json", schemas[s]);
        static const char *const kinds[] = {"valid", "codec-only", "invalid"};
        for (int k = 0; k < 3; k++) {
            char dir[1024];
            snprintf(dir, sizeof(dir), "%s/%s/%s", EXAMPLES, schemas[s], kinds[k]);
            char **files;
            size_t nf = ob_test_list_dir(dir, ".json", &files);
            for (size_t i = 0; i < nf; i++) {
                char path[1200];
                snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
                json_error_t je;
                json_t *doc = json_load_file(path, JSON_DECODE_ANY, &je);
                ob_schema_error_t err;
                checked++;
                if (!doc) {
                    /* Not JSON at all: the codec's loader says so first. */
                    free(files[i]);
                    continue;
                }
                ob_err_t rc = ob_schema_validate(schema, doc, &err);
                assert_true(rc == OB_OK || rc == OB_ERR_PARSE);
                if (k < 2) {
                    if (rc != OB_OK) {
                        print_error("%s: refused: [%s] %s\n", path, err.code, err.message);
                        failures++;
                    }
                } else {
                    char code[64], field[256], why[1200];
                    snprintf(why, sizeof(why), "%.*s.why", (int)(strlen(path) - 5), path);
                    read_why(why, code, sizeof(code), field, sizeof(field));
                    if (!strcmp(code, "not_object"))
                        snprintf(code, sizeof(code), "type");
                    if (rc != OB_OK && !strcmp(err.code, code) && !strcmp(err.field, field)) {
                        refused++;
                        assert_int_equal(strncmp(err.message, err.field, strlen(err.field)), 0);
                    } else if (!strcmp(code, "unsupported_cloud") &&
                               codec_says(kind_of(schemas[s]), path, code, field)) {
                        /* A valid cloud the workers refuse: the codec's
                         * answer to what the schema refuses as "enum". */
                        by_hand++;
                    } else {
                        print_error("%s: expected [%s] at \"%s\"; the schema says %s %s\n", path,
                                    code, field, rc == OB_OK ? "nothing" : err.code,
                                    rc == OB_OK ? "" : err.field);
                        failures++;
                    }
                }
                json_decref(doc);
                free(files[i]);
            }
            free(files);
        }
        free(schemas[s]);
    }
    free(schemas);
    print_message("%zu examples: %zu refused by the schema as their .why says, %zu refused "
                  "for their cloud\n",
                  checked, refused, by_hand);
    assert_int_equal(failures, 0);
    assert_true(refused > 150);
}

static void test_secrets_not_echoed(void **state)
{
    json_t *doc = json_loads("{\"schema\":\"onboard.request/1\",\"request_id\":\"r-1\","
                             "\"account_id\":\"123456789012\",\"cloud\":\"aws\",\"mode\":\"new\","
                             "\"region\":\"us-east-1\","
                             "\"role_arn\":\"arn:aws:iam::123456789012:role/x\","
                             "\"external_id\":\"hunter2 with spaces\"}",
                             0, NULL);
    ob_schema_error_t err;
    assert_int_equal(ob_schema_validate("onboard.request.v1.json", doc, &err), OB_ERR_PARSE);
    assert_string_equal(err.field, "/external_id");
    assert_string_equal(err.code, "pattern");
    assert_null(strstr(err.message, "hunter2"));
    assert_non_null(strstr(err.message, "(value not shown)"));
    json_decref(doc);
}

static void test_parts_and_unknown(void **state)
{
    assert_non_null(ob_schema_get("onboard.defs.v1.json#/$defs/account_id"));
    assert_null(ob_schema_get("onboard.nope.v1.json"));
    json_t *v = json_string("12345678901");
    ob_schema_error_t err;
    assert_int_equal(ob_schema_validate("onboard.defs.v1.json#/$defs/account_id", v, &err),
                     OB_ERR_PARSE);
    assert_string_equal(err.code, "pattern");
    json_decref(v);
    v = json_string("123456789012");
    assert_int_equal(ob_schema_validate("onboard.defs.v1.json#/$defs/account_id", v, &err), OB_OK);
    assert_int_equal(ob_schema_validate("onboard.nope.v1.json", v, &err), OB_ERR_CONFIG);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_secrets_not_echoed),
        cmocka_unit_test(test_parts_and_unknown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ob_schema_unload();
    return rc;
}
