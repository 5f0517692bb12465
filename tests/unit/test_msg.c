/*
 * ob_msg: the message codec against the examples in proto/examples (the same
 * files ajv checks in proto.schemas), then the pipeline's own flow (request ->
 * hand-offs -> connected event), dead letters, and hostile input: truncation
 * at every offset, random mutations, deep nesting, huge strings, bad UTF-8.
 *
 * For every example: valid/ files are accepted (or, with a .refused file,
 * refused with its code and field); invalid/ and codec-only/ files are
 * refused with exactly the code and field their .why file names.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../json_within.h"
#include "ob_arena.h"
#include "ob_crypto.h"
#include "ob_msg.h"
#include "ob_schema.h"
#include "testutil.h"

#define EXAMPLES OB_FIXTURES "/../../proto/examples"

static const char *const CODES[] = {
    "not_json", "not_object",  "missing",   "unknown_field",     "type",     "pattern", "range",
    "enum",     "combination", "too_large", "unsupported_cloud", "mismatch", NULL};

static int utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        if (!n)
            return 0;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return 0;
        p += n;
    }
    return 1;
}

/* Every refusal carries a known code, a pointer-shaped field and a message. */
static int error_well_formed(const ob_msg_error_t *e)
{
    int known = 0;
    for (int i = 0; CODES[i]; i++)
        known |= strcmp(CODES[i], e->code) == 0;
    return known && e->message[0] && (e->field[0] == '\0' || e->field[0] == '/') &&
           utf8_ok(e->message) && utf8_ok(e->field);
}

/* The kind of an examples folder: onboard.<kind>.v<N>, every version. */
static ob_msg_kind_t kind_of_dir(const char *name)
{
    static const struct {
        const char *prefix;
        ob_msg_kind_t kind;
    } kinds[] = {{"onboard.request.v", OB_MSG_REQUEST},
                 {"onboard.stage.v", OB_MSG_STAGE},
                 {"onboard.connected.v", OB_MSG_CONNECTED},
                 {"onboard.disconnected.v", OB_MSG_DISCONNECTED},
                 {"onboard.verify.v", OB_MSG_VERIFY},
                 {"onboard.drift.v", OB_MSG_DRIFT},
                 {"onboard.dlq.v", OB_MSG_DLQ}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strncmp(name, kinds[i].prefix, strlen(kinds[i].prefix)))
            return kinds[i].kind;
    return OB_MSG__KIND_COUNT;
}

/* The "code:" and "field:" lines of a .why or .refused file. */
static int read_why(const char *path, char *code, size_t codesz, char *field, size_t fieldsz)
{
    char *text = ob_test_read_file(path, NULL);
    if (!text)
        return 0;
    int ok = 0;
    char *nl = strchr(text, '\n');
    if (strncmp(text, "code: ", 6) == 0 && nl) {
        *nl = '\0';
        snprintf(code, codesz, "%s", text + 6);
        char *l2 = nl + 1, *nl2 = strchr(l2, '\n');
        if (nl2 && strncmp(l2, "field:", 6) == 0) {
            *nl2 = '\0';
            snprintf(field, fieldsz, "%s", l2[6] == ' ' ? l2 + 7 : l2 + 6);
            ok = 1;
        }
    }
    free(text);
    return ok;
}

/* Parse, serialize, parse again: the normalized form is a fixed point. */
/* A parsed message holds its strings, not its text: about what they take
 * (names, punctuation and enum words are not kept), under the compact JSON's
 * length. */
static void check_arena(const ob_arena_t *mem, size_t compact, const char *name)
{
    size_t used = ob_arena_used(mem), held = ob_arena_held(mem);
    if (held > used + 256 || (compact > 400 && held >= compact))
        fail_msg("%s: the parsed strings take %zu bytes, the arena holds %zu (compact JSON: %zu)",
                 name, used, held, compact);
}

/* A hand-off packed while it waits and unpacked again is the same hand-off
 * (every string carried: one left out would point into the arena the pack
 * freed), in a fraction of the parsed form's memory. */
static void check_pack(ob_stage_msg_t *m, const char *want, const char *name)
{
    static ob_zip_t *z;
    if (!z)
        z = ob_zip_new(); /* one for the run, as a worker keeps one */
    ob_stage_msg_t copy;
    assert_int_equal(ob_request_copy(&copy.request, &m->request), OB_OK);
    ob_request_t keep = copy.request;
    copy = *m;
    copy.request = keep;
    size_t parsed = sizeof(*m) + ob_arena_held(m->request.mem);
    ob_stage_packed_t *p = ob_stage_msg_pack(z, &copy);
    assert_null(copy.request.mem); /* the pack took the strings */
    size_t packed = ob_stage_packed_size(p);
    ob_stage_msg_t back;
    assert_int_equal(ob_stage_msg_unpack(z, p, &back), OB_OK);
    char *got = NULL;
    ob_msg_error_t err;
    assert_int_equal(ob_stage_to_json(&back, &got, NULL, &err), OB_OK);
    if (strcmp(got, want) != 0)
        fail_msg("%s: packed and unpacked, it reads\n%s\nnot\n%s", name, got, want);
    if (packed * 2 > parsed)
        fail_msg("%s: the pack holds %zu bytes, the parsed form %zu", name, packed, parsed);
    free(got);
    ob_stage_msg_clear(&back);
}

/* The normalized form is a fixed point, and it says what the message said:
 * the workers keep only the parsed form of a message in flight and encode
 * it again for a dead letter or a fresh start, so nothing may be lost or
 * changed on the way (members the message left to their defaults are
 * written out). */
static void check_round_trip(ob_msg_kind_t kind, const char *json, size_t len, const char *name)
{
    ob_msg_error_t err;
    char *a = NULL, *b = NULL;
    if (kind == OB_MSG_REQUEST) {
        ob_request_t r, r2;
        assert_int_equal(ob_request_parse(json, len, &r, &err), OB_OK);
        assert_int_equal(ob_request_to_json(&r, &a, NULL, &err), OB_OK);
        check_arena(r.mem, strlen(a), name);
        assert_int_equal(ob_request_parse(a, strlen(a), &r2, &err), OB_OK);
        assert_int_equal(ob_request_to_json(&r2, &b, NULL, &err), OB_OK);
        ob_request_clear(&r);
        ob_request_clear(&r2);
    } else if (kind == OB_MSG_STAGE) {
        ob_stage_msg_t *m = calloc(2, sizeof *m);
        assert_int_equal(ob_stage_parse(json, len, &m[0], &err), OB_OK);
        assert_int_equal(ob_stage_to_json(&m[0], &a, NULL, &err), OB_OK);
        check_arena(m[0].request.mem, strlen(a), name);
        check_pack(&m[0], a, name);
        assert_int_equal(ob_stage_parse(a, strlen(a), &m[1], &err), OB_OK);
        assert_int_equal(ob_stage_to_json(&m[1], &b, NULL, &err), OB_OK);
        ob_stage_msg_clear(&m[0]);
        ob_stage_msg_clear(&m[1]);
        free(m);
    } else if (kind == OB_MSG_CONNECTED) {
        ob_connected_t *c = calloc(2, sizeof *c);
        assert_int_equal(ob_connected_parse(json, len, &c[0], &err), OB_OK);
        assert_int_equal(ob_connected_to_json(&c[0], &a, NULL, &err), OB_OK);
        assert_int_equal(ob_connected_parse(a, strlen(a), &c[1], &err), OB_OK);
        assert_int_equal(ob_connected_to_json(&c[1], &b, NULL, &err), OB_OK);
        ob_connected_clear(&c[0]);
        ob_connected_clear(&c[1]);
        free(c);
    } else if (kind == OB_MSG_DISCONNECTED) {
        ob_disconnected_t d[2];
        assert_int_equal(ob_disconnected_parse(json, len, &d[0], &err), OB_OK);
        assert_int_equal(ob_disconnected_to_json(&d[0], &a, NULL, &err), OB_OK);
        assert_int_equal(ob_disconnected_parse(a, strlen(a), &d[1], &err), OB_OK);
        assert_int_equal(ob_disconnected_to_json(&d[1], &b, NULL, &err), OB_OK);
        ob_disconnected_clear(&d[0]);
        ob_disconnected_clear(&d[1]);
    } else if (kind == OB_MSG_VERIFY) {
        ob_verify_msg_t v[2];
        assert_int_equal(ob_verify_parse(json, len, &v[0], &err), OB_OK);
        assert_int_equal(ob_verify_to_json(&v[0], &a, NULL, &err), OB_OK);
        assert_int_equal(ob_verify_parse(a, strlen(a), &v[1], &err), OB_OK);
        assert_int_equal(ob_verify_to_json(&v[1], &b, NULL, &err), OB_OK);
        ob_verify_clear(&v[0]);
        ob_verify_clear(&v[1]);
    } else if (kind == OB_MSG_DRIFT) {
        ob_drift_t *d = calloc(2, sizeof(*d));
        assert_int_equal(ob_drift_parse(json, len, &d[0], &err), OB_OK);
        assert_int_equal(ob_drift_to_json(&d[0], &a, NULL, &err), OB_OK);
        assert_int_equal(ob_drift_parse(a, strlen(a), &d[1], &err), OB_OK);
        assert_int_equal(ob_drift_to_json(&d[1], &b, NULL, &err), OB_OK);
        ob_drift_clear(&d[0]);
        ob_drift_clear(&d[1]);
        free(d);
    } else {
        return;
    }
    if (strcmp(a, b) != 0)
        fail_msg("%s: normalized form changes on a second pass:\n%s\n%s", name, a, b);
    json_t *orig = json_loadb(json, len, 0, NULL), *again = json_loads(a, 0, NULL);
    assert_non_null(orig);
    assert_non_null(again);
    if (!ob_json_within(orig, again))
        fail_msg("%s: the normalized form does not say what the message said:\n%.*s\n%s", name,
                 (int)len, json, a);
    json_decref(orig);
    json_decref(again);
    free(a);
    free(b);
}

/* The codec's names for enum values are the schemas' enums, in order: a
 * value added to a schema and not to the codec (or the other way) fails. */
static const char *by_index_raw(int which, unsigned i);
static const char *by_index(int which, unsigned i)
{
    const char *n = by_index_raw(which, i);
    return n ? n : "?";
}

static const char *by_index_raw(int which, unsigned i)
{
    switch (which) {
    case 0:
        return ob_cloud_name((ob_cloud_t)i);
    case 1:
        return ob_mode_name((ob_mode_t)i);
    case 2:
        return ob_time_unit_name((ob_time_unit_t)i);
    case 3:
        return ob_format_name((ob_format_t)i);
    case 4:
        return ob_compression_name((ob_compression_t)i);
    case 5:
        return ob_versioning_name((ob_versioning_t)i);
    case 6:
        return i < 31 ? ob_schema_elem_name(1u << i) : "?";
    case 7:
        return i < 31 ? ob_artifact_name(1u << i) : "?";
    case 8:
        return ob_dlq_class_name((ob_dlq_class_t)i);
    case 10:
        return i < 31 ? ob_drift_name(1u << i) : "?";
    default:
        return ob_stage_name((ob_stage_t)i);
    }
}

static void test_names_match_schema(void **state)
{
    (void)state;
    static const char *const where[] = {
        "onboard.request.v1.json#/properties/cloud",
        "onboard.defs.v1.json#/$defs/lifecycle_mode",
        "onboard.defs.v1.json#/$defs/report_settings/properties/time_unit",
        "onboard.defs.v1.json#/$defs/report_settings/properties/format",
        "onboard.defs.v1.json#/$defs/report_settings/properties/compression",
        "onboard.defs.v1.json#/$defs/report_settings/properties/versioning",
        "onboard.defs.v1.json#/$defs/report_settings/properties/schema_elements/items",
        "onboard.defs.v1.json#/$defs/report_settings/properties/artifacts/items",
        "onboard.dlq.v1.json#/properties/error/properties/class",
        "onboard.dlq.v1.json#/properties/stage",
        "onboard.defs.v1.json#/$defs/drift_kind",
    };
    for (int w = 0; w < (int)(sizeof where / sizeof where[0]); w++) {
        const json_t *en = json_object_get(ob_schema_get(where[w]), "enum");
        if (!json_is_array(en))
            fail_msg("%s has no enum", where[w]);
        size_t i;
        const json_t *v;
        json_array_foreach(en, i, v)
        {
            if (strcmp(json_string_value(v), by_index(w, (unsigned)i)) != 0)
                fail_msg("%s[%zu] is %s, the codec says %s", where[w], i, json_string_value(v),
                         by_index(w, (unsigned)i));
        }
        if (strcmp(by_index(w, (unsigned)json_array_size(en)), "?") != 0)
            fail_msg("%s: the codec has a name (%s) the schema lacks", where[w],
                     by_index(w, (unsigned)json_array_size(en)));
    }
    /* The "schema" values the codec names are the schemas' consts. */
    static const struct {
        const char *file, *name;
    } ids[] = {{"onboard.request.v1.json", OB_SCHEMA_REQUEST},
               {"onboard.request.v2.json", OB_SCHEMA_REQUEST_2},
               {"onboard.stage.v1.json", OB_SCHEMA_STAGE},
               {"onboard.stage.v2.json", OB_SCHEMA_STAGE_2},
               {"onboard.connected.v1.json", OB_SCHEMA_CONNECTED},
               {"onboard.disconnected.v1.json", OB_SCHEMA_DISCONNECTED},
               {"onboard.verify.v1.json", OB_SCHEMA_VERIFY},
               {"onboard.drift.v1.json", OB_SCHEMA_DRIFT},
               {"onboard.dlq.v1.json", OB_SCHEMA_DLQ}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char where_id[128];
        snprintf(where_id, sizeof where_id, "%s#/properties/schema", ids[i].file);
        assert_string_equal(json_string_value(json_object_get(ob_schema_get(where_id), "const")),
                            ids[i].name);
    }
}

static void test_examples(void **state)
{
    char **schemas;
    size_t nschemas = ob_test_list_dir(EXAMPLES, "", &schemas); /* every onboard.*.vN */
    size_t checked = 0, failures = 0, per_kind[OB_MSG__KIND_COUNT] = {0};
    assert_true(nschemas >= 4);
    for (size_t s = 0; s < nschemas; s++) {
        if (strncmp(schemas[s], "onboard.", 8) != 0)
            continue; /* aws-events: AWS's own (unit.lifecycle) */
        ob_msg_kind_t kind = kind_of_dir(schemas[s]);
        assert_true(kind < OB_MSG__KIND_COUNT);
        static const char *const kinds[] = {"valid", "invalid", "codec-only"};
        for (int k = 0; k < 3; k++) {
            char dir[1024];
            snprintf(dir, sizeof dir, "%s/%s/%s", EXAMPLES, schemas[s], kinds[k]);
            char **files;
            size_t nfiles = ob_test_list_dir(dir, ".json", &files);
            if (k < 2 && nfiles == 0)
                fail_msg("%s has no examples", dir);
            for (size_t i = 0; i < nfiles; i++) {
                char path[1200], side[1200], code[64] = "", field[256] = "";
                snprintf(path, sizeof path, "%s/%s", dir, files[i]);
                size_t len;
                char *json = ob_test_read_file(path, &len);
                assert_non_null(json);
                snprintf(side, sizeof side, "%.*s%s", (int)(strlen(path) - 5), path,
                         k == 0 ? ".refused" : ".why");
                int expect_fail = k > 0 || access(side, R_OK) == 0;
                if (expect_fail && !read_why(side, code, sizeof code, field, sizeof field))
                    fail_msg("%s: missing or malformed (code:/field: lines)", side);
                ob_msg_error_t err;
                ob_err_t rc = ob_msg_validate(kind, json, len, &err);
                checked++;
                per_kind[kind]++;
                if (!expect_fail && rc != OB_OK) {
                    print_error("%s/%s/%s: refused: [%s] %s\n", schemas[s], kinds[k], files[i],
                                err.code, err.message);
                    failures++;
                } else if (expect_fail && rc == OB_OK) {
                    print_error("%s/%s/%s: accepted, but %s says %s %s\n", schemas[s], kinds[k],
                                files[i], side, code, field);
                    failures++;
                } else if (expect_fail &&
                           (strcmp(err.code, code) != 0 || strcmp(err.field, field) != 0)) {
                    print_error("%s/%s/%s: expected [%s] at \"%s\", got [%s] at \"%s\": %s\n",
                                schemas[s], kinds[k], files[i], code, field, err.code, err.field,
                                err.message);
                    failures++;
                } else if (expect_fail && !error_well_formed(&err)) {
                    print_error("%s: malformed error [%s] \"%s\" %s\n", path, err.code, err.field,
                                err.message);
                    failures++;
                } else if (!expect_fail) {
                    check_round_trip(kind, json, len, path);
                }
                free(json);
            }
            ob_test_free_list(files, nfiles);
        }
    }
    ob_test_free_list(schemas, nschemas);
    print_message("checked %zu examples (request %zu, stage %zu, connected %zu, dlq %zu, "
                  "disconnected %zu)\n",
                  checked, per_kind[0], per_kind[1], per_kind[2], per_kind[3], per_kind[4]);
    assert_int_equal(failures, 0);
    assert_true(checked > 150);
}

static const char MINIMAL[] =
    "{\"schema\":\"onboard.request/1\",\"request_id\":\"req-1\",\"account_id\":\"123456789012\","
    "\"cloud\":\"aws\",\"mode\":\"new\",\"region\":\"us-east-1\","
    "\"role_arn\":\"arn:aws:iam::123456789012:role/OnboardingAccess\"}";

static void test_request_defaults(void **state)
{
    ob_request_t r;
    ob_msg_error_t err;
    assert_int_equal(ob_request_parse(MINIMAL, strlen(MINIMAL), &r, &err), OB_OK);
    assert_string_equal(r.account_id, "123456789012");
    assert_int_equal(r.mode, OB_MODE_NEW);
    assert_true(r.has_bucket && r.has_report);
    assert_string_equal(r.bucket, "billing-cur-123456789012-us-east-1");
    assert_string_equal(r.report.name, "billing-engine-cur");
    assert_string_equal(r.report.prefix, "CUR");
    assert_int_equal(r.report.time_unit, OB_TIME_UNIT_HOURLY);
    assert_int_equal(r.report.format, OB_FORMAT_TEXT_OR_CSV);
    assert_int_equal(r.report.compression, OB_COMPRESSION_GZIP);
    assert_int_equal(r.report.schema_elements, OB_SCHEMA_ELEM_RESOURCES);
    assert_int_equal(r.report.artifacts, OB_ARTIFACT_REDSHIFT);
    assert_int_equal(r.report.refresh_closed_reports, 1);
    assert_int_equal(r.report.versioning, OB_VERSIONING_OVERWRITE_REPORT);
    assert_string_equal(r.external_id, "");
    char *json;
    assert_int_equal(ob_request_to_json(&r, &json, NULL, &err), OB_OK);
    assert_string_equal(
        json,
        "{\"schema\":\"onboard.request/1\",\"request_id\":\"req-1\",\"account_id\":"
        "\"123456789012\",\"cloud\":\"aws\",\"mode\":\"new\",\"region\":\"us-east-1\","
        "\"role_arn\":\"arn:aws:iam::123456789012:role/OnboardingAccess\",\"bucket\":{"
        "\"name\":\"billing-cur-123456789012-us-east-1\"},\"report\":{\"name\":\"billing-"
        "engine-cur\",\"prefix\":\"CUR\",\"time_unit\":\"HOURLY\",\"format\":\"textORcsv\","
        "\"compression\":\"GZIP\",\"schema_elements\":[\"RESOURCES\"],\"artifacts\":["
        "\"REDSHIFT\"],\"refresh_closed_reports\":true,\"versioning\":\"OVERWRITE_REPORT\"}}");
    free(json);
    ob_request_clear(&r);

    /* Existing accounts: no defaults for bucket or report. */
    const char *ex = "{\"schema\":\"onboard.request/1\",\"request_id\":\"r\",\"account_id\":"
                     "\"000000000001\",\"cloud\":\"aws\",\"mode\":\"existing\",\"region\":"
                     "\"eu-west-1\",\"role_arn\":\"arn:aws:iam::000000000001:role/x\"}";
    assert_int_equal(ob_request_parse(ex, strlen(ex), &r, &err), OB_OK);
    assert_false(r.has_bucket);
    assert_false(r.has_report);
    assert_string_equal(r.account_id, "000000000001");
    ob_request_clear(&r);

    /* A JSON object built in memory (onboardctl's CSV rows). */
    json_t *o = json_loads(MINIMAL, 0, NULL);
    json_object_set_new(o, "tags", json_pack("{s:s, s:s}", "b", "2", "a", "1"));
    assert_int_equal(ob_request_parse_json(o, &r, &err), OB_OK);
    assert_int_equal(r.ntags, 2);
    assert_string_equal(r.tags[0].key, "b");
    assert_string_equal(r.tags[1].value, "1");
    ob_request_t copy;
    assert_int_equal(ob_request_copy(&copy, &r), OB_OK);
    ob_request_clear(&r);
    assert_string_equal(copy.tags[1].key, "a");
    ob_request_clear(&copy);
    json_array_append_new(o, json_null()); /* no-op on an object */
    json_object_set_new(o, "regoin", json_string("x"));
    assert_int_equal(ob_request_parse_json(o, &r, &err), OB_ERR_PARSE);
    assert_string_equal(err.code, "unknown_field");
    assert_string_equal(err.message,
                        "/regoin: unknown member \"regoin\" (did you mean \"region\"?)");
    json_decref(o);
    json_t *arr = json_array();
    assert_int_equal(ob_request_parse_json(arr, &r, &err), OB_ERR_PARSE);
    assert_string_equal(err.code, "not_object");
    json_decref(arr);
}

/* A request with one member replaced (raw JSON text for the value). */
static ob_err_t parse_with(const char *member, const char *value, ob_request_t *r,
                           ob_msg_error_t *err)
{
    char buf[70000];
    snprintf(buf, sizeof buf,
             "{\"schema\":\"onboard.request/1\",\"request_id\":\"req-1\",\"account_id\":"
             "\"123456789012\",\"cloud\":\"aws\",\"mode\":\"new\",\"region\":\"us-east-1\","
             "\"role_arn\":\"arn:aws:iam::123456789012:role/OnboardingAccess\",\"%s\":%s}",
             member, value);
    return ob_request_parse(buf, strlen(buf), r, err);
}

static void test_request_messages(void **state)
{
    ob_request_t r;
    ob_msg_error_t err;
    assert_int_equal(
        parse_with("report", "{\"format\":\"Parquet\",\"compression\":\"GZIP\",\"artifacts\":[]}",
                   &r, &err),
        OB_ERR_PARSE);
    assert_string_equal(err.field, "/report/compression");
    assert_string_equal(err.code, "combination");
    assert_string_equal(
        err.message,
        "/report/compression: Parquet format requires Parquet compression: expected \"Parquet\", "
        "got \"GZIP\"");
    parse_with("report", "{\"format\":\"Parquet\",\"artifacts\":[]}", &r, &err);
    assert_string_equal(err.message, "/report/compression: Parquet format requires Parquet "
                                     "compression: got \"GZIP\" (the default)");
    parse_with("report", "{\"format\":\"Parquet\",\"compression\":\"Parquet\"}", &r, &err);
    assert_string_equal(err.field, "/report/artifacts");
    assert_non_null(strstr(err.message, "got [\"REDSHIFT\"] (the default)"));
    parse_with("bucket", "{\"name\":\"192.168.5.4\"}", &r, &err);
    assert_string_equal(
        err.message, "/bucket/name: A bucket name must not be an IP address, got \"192.168.5.4\"");
    parse_with("requested_at", "\"2025-02-29T00:00:00Z\"", &r, &err);
    assert_string_equal(err.message,
                        "/requested_at: \"2025-02-29T00:00:00Z\" is not a real date and time");
    parse_with("tags", "{\"x/y\":1}", &r, &err);
    assert_string_equal(err.field, "/tags/x~1y");
    assert_string_equal(err.code, "type");
    parse_with("tags", "{\"a~b\":\"1\"}", &r, &err);
    assert_string_equal(err.field, "/tags/a~0b");
    assert_string_equal(err.code, "pattern");

    /* ExternalIds are never echoed. */
    parse_with("external_id", "\"top secret value\"", &r, &err);
    assert_string_equal(err.code, "pattern");
    assert_null(strstr(err.message, "secret"));
    assert_non_null(strstr(err.message, "(value not shown)"));

    /* Values are echoed short and without control characters. */
    char big[3000];
    snprintf(big, sizeof big, "\"%s\\u0001%0*d\"", "x", 2000, 0);
    parse_with("bucket", "{\"name\":\"a\\nbc\"}", &r, &err);
    assert_string_equal(err.code, "pattern");
    assert_non_null(strstr(err.message, "lowercase letters, digits, dots and hyphens"));
    assert_non_null(strstr(err.message, ", got \"a?bc\""));
    parse_with("requester", big, &r, &err);
    assert_string_equal(err.code, "range");
    parse_with("regoin", big, &r, &err);
    assert_string_equal(err.code, "unknown_field");

    /* Azure and Google Cloud are refused for that reason, whatever else they hold. */
    const char *az = "{\"schema\":\"onboard.request/1\",\"cloud\":\"azure\",\"anything\":1}";
    assert_int_equal(ob_request_parse(az, strlen(az), &r, &err), OB_ERR_PARSE);
    assert_string_equal(err.code, "unsupported_cloud");
    assert_string_equal(err.field, "/cloud");
    assert_non_null(strstr(err.message, OB_MSG_UNSUPPORTED_CLOUD_REASON));
    assert_int_equal(ob_dlq_class_for(&err), OB_DLQ_UNSUPPORTED_CLOUD);
    parse_with("region", "\"US\"", &r, &err);
    assert_int_equal(ob_dlq_class_for(&err), OB_DLQ_INVALID_INPUT);

    /* Partition and account of the role. */
    parse_with("region", "\"cn-north-1\"", &r, &err); /* duplicate key: refused as such */
    assert_string_equal(err.code, "not_json");
    assert_non_null(strstr(err.message, "duplicate"));

    /* NULL arguments. */
    assert_int_equal(ob_request_parse(NULL, 0, &r, &err), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_request_parse(MINIMAL, strlen(MINIMAL), NULL, &err), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_request_parse(MINIMAL, strlen(MINIMAL), &r, NULL), OB_OK);
    ob_request_clear(&r);
    ob_request_clear(NULL);
}

static void test_request_to_json_validates(void **state)
{
    ob_request_t r;
    ob_msg_error_t err;
    char *json = NULL;
    assert_int_equal(ob_request_parse(MINIMAL, strlen(MINIMAL), &r, &err), OB_OK);
    r.bucket = ob_request_printf(&r, "Bad_Bucket");
    assert_int_equal(ob_request_to_json(&r, &json, NULL, &err), OB_ERR_PARSE);
    assert_null(json);
    assert_string_equal(err.field, "/bucket/name");
    assert_string_equal(err.code, "pattern");
    char b[OB_BUCKET_LEN];
    ob_request_default_bucket(r.account_id, r.region, b);
    r.bucket = ob_request_str(&r, b);
    r.report.format = OB_FORMAT_PARQUET;
    assert_int_equal(ob_request_to_json(&r, &json, NULL, &err), OB_ERR_PARSE);
    assert_string_equal(err.field, "/report/compression");
    r.report.compression = OB_COMPRESSION_PARQUET;
    r.report.artifacts = OB_ARTIFACT_ATHENA;
    size_t len;
    assert_int_equal(ob_request_to_json(&r, &json, &len, &err), OB_OK);
    assert_int_equal(len, strlen(json));
    free(json);
    /* Bytes that are not UTF-8 never reach the wire. */
    r.requester = ob_request_printf(&r, "ops \xff team");
    assert_int_equal(ob_request_to_json(&r, &json, NULL, &err), OB_OK);
    assert_non_null(strstr(json, "\"requester\":\"ops ? team\""));
    free(json);
    r.region = ob_request_printf(&r, "us-east-\xff");
    assert_int_equal(ob_request_to_json(&r, &json, NULL, &err), OB_ERR_PARSE);
    assert_string_equal(err.field, "/region");
    assert_int_equal(ob_request_add_tag(&r, "k", "v"), OB_OK);
    assert_int_equal(ob_request_add_tag(&r, "aws:k", "v"), OB_OK);
    r.region = ob_request_printf(&r, "us-east-1");
    assert_int_equal(ob_request_to_json(&r, &json, NULL, &err), OB_ERR_PARSE);
    assert_string_equal(err.field, "/tags/aws:k");
    ob_request_clear(&r);
}

static void test_limits(void **state)
{
    ob_request_t r;
    ob_msg_error_t err;
    /* Exactly 64 KiB (padded with spaces) is accepted, one byte more is not. */
    size_t n = OB_MSG_MAX_BYTES;
    char *buf = malloc(n + 2);
    memset(buf, ' ', n + 1);
    memcpy(buf, MINIMAL, strlen(MINIMAL));
    assert_int_equal(ob_request_parse(buf, n, &r, &err), OB_OK);
    ob_request_clear(&r);
    assert_int_equal(ob_request_parse(buf, n + 1, &r, &err), OB_ERR_TOO_LARGE);
    assert_string_equal(err.code, "too_large");
    assert_string_equal(err.field, "");
    assert_int_equal(ob_request_parse(buf, 0, &r, &err), OB_ERR_PARSE);
    assert_string_equal(err.code, "not_json");

    /* Deep nesting: jansson's depth limit, then our type checks. */
    memset(buf, '[', n);
    assert_int_equal(ob_request_parse(buf, n, &r, &err), OB_ERR_PARSE);
    assert_string_equal(err.code, "not_json");
    size_t o = (size_t)snprintf(buf, n,
                                "{\"schema\":\"onboard.request/1\",\"cloud\":\"aws\","
                                "\"request_id\":\"r\",\"account_id\":");
    for (int i = 0; i < 1500; i++)
        buf[o++] = '[';
    for (int i = 0; i < 1500; i++)
        buf[o++] = ']';
    buf[o++] = '}';
    assert_int_equal(ob_request_parse(buf, o, &r, &err), OB_ERR_PARSE);
    assert_string_equal(err.code, "type");
    assert_string_equal(err.field, "/account_id");
    for (int kind = 0; kind < OB_MSG__KIND_COUNT; kind++) {
        memset(buf, '{', n);
        assert_int_equal(ob_msg_validate((ob_msg_kind_t)kind, buf, n, &err), OB_ERR_PARSE);
        assert_string_equal(err.code, "not_json");
    }

    /* Huge strings and keys. */
    o = (size_t)snprintf(buf, n, "{\"schema\":\"onboard.request/1\",\"cloud\":\"aws\",\"");
    memset(buf + o, 'k', 60000);
    o += 60000;
    o += (size_t)snprintf(buf + o, n - o, "\":1}");
    assert_int_equal(ob_request_parse(buf, o, &r, &err), OB_ERR_PARSE);
    assert_string_equal(err.code, "unknown_field");
    assert_true(strlen(err.field) < sizeof err.field);
    assert_true(error_well_formed(&err));
    o = (size_t)snprintf(buf, n,
                         "{\"schema\":\"onboard.request/1\",\"cloud\":\"aws\","
                         "\"account_id\":\"123456789012\",\"mode\":\"new\","
                         "\"region\":\"us-east-1\","
                         "\"role_arn\":\"arn:aws:iam::123456789012:role/x\","
                         "\"request_id\":\"");
    for (int i = 0; i < 20000; i++)
        o += (size_t)snprintf(buf + o, n - o, "\xe2\x82\xac"); /* euro sign */
    o += (size_t)snprintf(buf + o, n - o, "\"}");
    assert_int_equal(ob_request_parse(buf, o, &r, &err), OB_ERR_PARSE);
    assert_string_equal(err.code, "range");
    assert_string_equal(err.message, "/request_id: must be 1 to 128 characters, got 20000");
    /* A cut multi-byte character never ends up in a message or a field. */
    o = (size_t)snprintf(buf, n, "{\"schema\":\"onboard.request/1\",\"cloud\":\"aws\",\"");
    for (int i = 0; i < 300; i++)
        o += (size_t)snprintf(buf + o, n - o, "\xf0\x9f\x98\x80");
    o += (size_t)snprintf(buf + o, n - o, "\":1}");
    assert_int_equal(ob_request_parse(buf, o, &r, &err), OB_ERR_PARSE);
    assert_true(error_well_formed(&err));
    free(buf);
}

static void test_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "\xc0\x80",         /* overlong NUL */
        "\xe0\x80\xaf",     /* overlong '/' */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xf5\x80\x80\x80", /* invalid lead */
        "\xe2\x82",         /* truncated */
        "\x80",             /* lone continuation */
        "\xff",
    };
    ob_request_t r;
    ob_msg_error_t err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[512];
        int n = snprintf(
            buf, sizeof buf,
            "{\"schema\":\"onboard.request/1\",\"cloud\":\"aws\",\"requester\":\"a%sb\"}", bad[i]);
        assert_int_equal(ob_request_parse(buf, (size_t)n, &r, &err), OB_ERR_PARSE);
        assert_string_equal(err.code, "not_json");
        assert_non_null(strstr(err.message, "not UTF-8"));
        assert_true(error_well_formed(&err));
    }
    /* Valid 4-byte characters count as one character each. */
    char buf[2048];
    int o = snprintf(buf, sizeof buf, "%.*s,\"requester\":\"", (int)strlen(MINIMAL) - 1, MINIMAL);
    for (int i = 0; i < 256; i++)
        o += snprintf(buf + o, sizeof buf - (size_t)o, "\xf0\x9f\x98\x80");
    o += snprintf(buf + o, sizeof buf - (size_t)o, "\"}");
    assert_int_equal(ob_request_parse(buf, (size_t)o, &r, &err), OB_OK);
    assert_int_equal(strlen(r.requester), 1024);
    ob_request_clear(&r);
    /* A NUL byte, raw or escaped. */
    char nul[] = "{\"schema\":\"onboard.request/1\",\"cloud\":\"aws\",\"x\":\"a\0b\"}";
    assert_int_equal(ob_request_parse(nul, sizeof nul - 1, &r, &err), OB_ERR_PARSE);
    assert_string_equal(err.code, "not_json");
    const char *esc = "{\"schema\":\"onboard.request/1\",\"cloud\":\"aws\",\"x\":\"a\\u0000b\"}";
    assert_int_equal(ob_request_parse(esc, strlen(esc), &r, &err), OB_ERR_PARSE);
    assert_string_equal(err.code, "not_json");
}

/* Parse any bytes with every parser: never a crash, always a reason. */
static void parse_all(const char *buf, size_t len, int *accepted)
{
    for (int kind = 0; kind < OB_MSG__KIND_COUNT; kind++) {
        ob_msg_error_t err;
        ob_err_t rc = ob_msg_validate((ob_msg_kind_t)kind, buf, len, &err);
        if (rc == OB_OK) {
            (*accepted)++;
            continue;
        }
        if ((rc != OB_ERR_PARSE && rc != OB_ERR_TOO_LARGE) || !error_well_formed(&err))
            fail_msg("kind %d: rc %d, malformed error [%s] \"%s\" %s", kind, rc, err.code,
                     err.field, err.message);
    }
}

static char **valid_examples(size_t *n)
{
    static const char *const dirs[] = {"onboard.request.v1", "onboard.stage.v1",
                                       "onboard.connected.v1", "onboard.dlq.v1"};
    char **all = NULL;
    *n = 0;
    for (int d = 0; d < 4; d++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s/valid", EXAMPLES, dirs[d]);
        char **files;
        size_t nf = ob_test_list_dir(dir, ".json", &files);
        all = realloc(all, (*n + nf) * sizeof *all);
        for (size_t i = 0; i < nf; i++) {
            char path[1200];
            snprintf(path, sizeof path, "%s/%s", dir, files[i]);
            all[(*n)++] = strdup(path);
        }
        ob_test_free_list(files, nf);
    }
    return all;
}

static void test_truncated_everywhere(void **state)
{
    size_t n;
    char **files = valid_examples(&n);
    assert_true(n > 10);
    size_t total = 0;
    for (size_t f = 0; f < n; f++) {
        size_t len;
        char *json = ob_test_read_file(files[f], &len);
        assert_non_null(json);
        const char *end = strrchr(json, '}');
        for (size_t cut = 0; cut < len; cut++) {
            int accepted = 0;
            char *copy = malloc(cut ? cut : 1); /* exact size: ASan sees any over-read */
            memcpy(copy, json, cut);
            parse_all(copy, cut, &accepted);
            if (json + cut <= end && accepted)
                fail_msg("%s cut at %zu was accepted", files[f], cut);
            free(copy);
            total++;
        }
        free(json);
        free(files[f]);
    }
    free(files);
    print_message("%zu truncated messages, all refused with a reason\n", total);
}

static void test_mutations(void **state)
{
    size_t n;
    char **files = valid_examples(&n);
    uint64_t seed = 0x9e3779b97f4a7c15u;
    size_t accepted_total = 0, runs = 0;
    static const char *const tokens[] = {"\"",   "{",    "}",     "[",   "]",       ",",
                                         ":",    "null", "1e999", "-0",  "\\u0000", "\\ud800",
                                         "\xc3", "\xff", "0.5",   "true"};
    for (size_t f = 0; f < n; f++) {
        size_t len;
        char *json = ob_test_read_file(files[f], &len);
        for (int it = 0; it < 400; it++) {
            char *m = malloc(len + 64);
            memcpy(m, json, len);
            size_t ml = len;
            int edits = 1 + it % 4;
            for (int e = 0; e < edits; e++) {
                seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
                size_t pos = ml ? (size_t)(seed % ml) : 0;
                switch ((seed >> 32) % 4) {
                case 0: /* flip a byte */
                    if (ml)
                        m[pos] = (char)(seed >> 40);
                    break;
                case 1: /* delete a byte */
                    if (ml) {
                        memmove(m + pos, m + pos + 1, ml - pos - 1);
                        ml--;
                    }
                    break;
                default: { /* insert a token */
                    const char *t = tokens[(seed >> 48) % (sizeof tokens / sizeof tokens[0])];
                    size_t tl = strlen(t);
                    if (ml + tl <= len + 64) {
                        memmove(m + pos + tl, m + pos, ml - pos);
                        memcpy(m + pos, t, tl);
                        ml += tl;
                    }
                }
                }
            }
            int accepted = 0;
            char *exact = malloc(ml ? ml : 1);
            memcpy(exact, m, ml);
            parse_all(exact, ml, &accepted);
            accepted_total += (size_t)accepted;
            runs++;
            free(exact);
            free(m);
        }
        free(json);
        free(files[f]);
    }
    free(files);
    print_message("%zu mutated messages (%zu accepted by some parser)\n", runs, accepted_total);
}

static void test_flow_new(void **state)
{
    const char *path = EXAMPLES "/onboard.request.v1/valid/new-full.json";
    size_t len;
    char *json = ob_test_read_file(path, &len);
    ob_msg_error_t err;
    ob_stage_msg_t *m = calloc(1, sizeof *m), *back = calloc(1, sizeof *back);
    assert_int_equal(ob_request_parse(json, len, &m->request, &err), OB_OK);
    free(json);
    assert_string_equal(m->request.external_id, "platform-onboarding:7f3a9c");
    assert_int_equal(m->request.ntags, 3);

    /* bucket -> cur */
    assert_int_equal(ob_stage_next(OB_MODE_NEW, OB_STAGE_BUCKET), OB_STAGE_CUR);
    m->stage = OB_STAGE_CUR;
    ob_stage_fill_bucket(m);
    assert_string_equal(m->bucket.arn, "arn:aws:s3:::acme-billing-cur-eu");
    m->trace[OB_STAGE_BUCKET] =
        (ob_trace_t){1, "2025-06-02T10:00:00.000Z", "2025-06-02T10:00:01.000Z", 1, "bucket@host"};
    char *text;
    assert_int_equal(ob_stage_to_json(m, &text, NULL, &err), OB_OK);
    assert_int_equal(ob_stage_parse(text, strlen(text), back, &err), OB_OK);
    free(text);
    assert_int_equal(back->stage, OB_STAGE_CUR);
    assert_string_equal(back->bucket.name, "acme-billing-cur-eu");
    assert_string_equal(back->request.tags[2].key, "env");
    assert_true(back->trace[OB_STAGE_BUCKET].present);
    assert_false(back->trace[OB_STAGE_CUR].present);

    /* A stage result too early is refused by the builder. */
    ob_stage_fill_report(m);
    assert_int_equal(ob_stage_to_json(m, &text, NULL, &err), OB_ERR_PARSE);
    assert_string_equal(err.field, "/results/report");
    assert_string_equal(err.code, "combination");

    /* cur -> iam -> connect */
    m->stage = ob_stage_next(OB_MODE_NEW, OB_STAGE_CUR);
    assert_int_equal(m->stage, OB_STAGE_IAM);
    assert_int_equal(ob_stage_to_json(m, &text, NULL, &err), OB_OK);
    free(text);
    m->stage = OB_STAGE_CONNECT;
    m->has_stack = 1;
    m->stack.id = ob_request_printf(
        &m->request, "arn:aws:cloudformation:eu-west-1:123456789012:stack/billing-engine-access/"
                     "5b918d10-cd98-11ea-90d5-0a9cd3354c10");
    m->stack.name = ob_request_printf(&m->request, "billing-engine-access");
    m->stack.role_arn =
        ob_request_printf(&m->request, "arn:aws:iam::123456789012:role/BillingEngineReadOnly");
    uint8_t rnd[16];
    assert_int_equal(ob_random_bytes(rnd, sizeof rnd), OB_OK);
    char hex[OB_BE_EXT_ID_LEN];
    ob_hex(rnd, sizeof rnd, hex);
    m->stack.external_id = ob_request_str(&m->request, hex);
    assert_int_equal(ob_stage_to_json(m, &text, NULL, &err), OB_OK);
    ob_stage_msg_clear(back);
    assert_int_equal(ob_stage_parse(text, strlen(text), back, &err), OB_OK);
    free(text);

    /* connect -> the event */
    ob_connected_t ev, ev2;
    assert_int_equal(ob_connected_from_stage(back, "2025-06-02T10:03:42.318Z", &ev, &err), OB_OK);
    char key[OB_IDEMPOTENCY_LEN], want[OB_SHA256_HEX_LEN], text_in[1024];
    ob_connected_key("123456789012", "arn:aws:iam::123456789012:role/BillingEngineReadOnly",
                     m->stack.external_id, &back->report, key);
    assert_string_equal(ev.idempotency_key, key);
    snprintf(text_in, sizeof text_in,
             "onboard.connected/1|123456789012|arn:aws:iam::123456789012:role/"
             "BillingEngineReadOnly|%s|%s|%s|%s|%s",
             m->stack.external_id, back->report.name, back->report.bucket, back->report.prefix,
             back->report.region);
    ob_sha256_hex(text_in, strlen(text_in), want);
    assert_string_equal(key, want);
    assert_true(ev.has_report);
    assert_string_equal(ev.report.bucket, "acme-billing-cur-eu");
    assert_string_equal(ev.requested_at, "2025-06-02T09:59:58.250Z");
    assert_int_equal(ob_connected_to_json(&ev, &text, NULL, &err), OB_OK);
    assert_int_equal(ob_connected_parse(text, strlen(text), &ev2, &err), OB_OK);
    assert_string_equal(ev2.external_id, m->stack.external_id);
    /* The same hand-off always gives the same key (redeliveries dedupe). */
    ob_connected_t ev3;
    assert_int_equal(ob_connected_from_stage(back, NULL, &ev3, &err), OB_OK);
    assert_string_equal(ev3.idempotency_key, ev.idempotency_key);
    assert_true(ob_msg_time_valid(ev3.connected_at));
    ob_connected_clear(&ev2);
    ob_connected_clear(&ev3);
    /* The key names the connection: another request for the same account,
     * role, ExternalId and report gives the same key; another report, role
     * or ExternalId a new one. */
    ob_stage_msg_t *other = calloc(1, sizeof *other);
    ob_connected_t ev4;
    char *copy;
    assert_int_equal(ob_stage_to_json(back, &copy, NULL, &err), OB_OK);
    assert_int_equal(ob_stage_parse(copy, strlen(copy), other, &err), OB_OK);
    free(copy);
    other->request.request_id = ob_request_printf(&other->request, "another-request");
    assert_int_equal(ob_connected_from_stage(other, NULL, &ev4, &err), OB_OK);
    assert_string_equal(ev4.idempotency_key, ev.idempotency_key);
    ob_connected_clear(&ev4);
    other->report.prefix = ob_request_printf(&other->request, "CUR2");
    other->request.report.prefix = ob_request_printf(&other->request, "CUR2");
    assert_int_equal(ob_connected_from_stage(other, NULL, &ev4, &err), OB_OK);
    assert_string_not_equal(ev4.idempotency_key, ev.idempotency_key);
    ob_connected_clear(&ev4);
    ob_stage_msg_clear(other);
    free(other);
    char k2[OB_IDEMPOTENCY_LEN];
    ob_connected_key("123456789012", "arn:aws:iam::123456789012:role/BillingEngineReadOnly",
                     "00000000000000000000000000000000", &back->report, k2);
    assert_string_not_equal(k2, key);
    ob_connected_key("123456789012", "arn:aws:iam::123456789012:role/Other", m->stack.external_id,
                     &back->report, k2);
    assert_string_not_equal(k2, key);
    free(text);

    ob_connected_clear(&ev);
    /* The event is only built from a connect-stage hand-off. */
    back->stage = OB_STAGE_IAM;
    back->has_stack = 0;
    assert_int_equal(ob_connected_from_stage(back, NULL, &ev, &err), OB_ERR_PARSE);
    assert_string_equal(err.field, "/stage");
    back->stage = OB_STAGE_CONNECT;
    assert_int_equal(ob_connected_from_stage(back, NULL, &ev, &err), OB_ERR_PARSE);
    assert_string_equal(err.field, "/results/stack");
    assert_string_equal(err.code, "missing");
    ob_stage_msg_clear(m);
    ob_stage_msg_clear(back);
    free(m);
    free(back);
}

static void test_flow_existing(void **state)
{
    const char *req = "{\"schema\":\"onboard.request/1\",\"request_id\":\"r-9\",\"account_id\":"
                      "\"123456789012\",\"cloud\":\"aws\",\"mode\":\"existing\",\"region\":"
                      "\"cn-north-1\",\"role_arn\":\"arn:aws-cn:iam::123456789012:role/x\"}";
    ob_msg_error_t err;
    ob_stage_msg_t *m = calloc(1, sizeof *m);
    assert_int_equal(ob_request_parse(req, strlen(req), &m->request, &err), OB_OK);
    assert_int_equal(ob_stage_next(OB_MODE_EXISTING, OB_STAGE_INTAKE), OB_STAGE_IAM);
    assert_int_equal(ob_stage_next(OB_MODE_EXISTING, OB_STAGE_BUCKET), OB_STAGE__COUNT);
    assert_int_equal(ob_stage_next(OB_MODE_EXISTING, OB_STAGE_CONNECT), OB_STAGE__COUNT);
    assert_int_equal(ob_stage_next(OB_MODE_NEW, OB_STAGE_INTAKE), OB_STAGE_BUCKET);
    m->stage = OB_STAGE_IAM;
    char *text;
    assert_int_equal(ob_stage_to_json(m, &text, NULL, &err), OB_OK);
    free(text);
    m->stage = OB_STAGE_CUR;
    assert_int_equal(ob_stage_to_json(m, &text, NULL, &err), OB_ERR_PARSE);
    assert_string_equal(err.field, "/request/mode");
    m->stage = OB_STAGE_CONNECT;
    m->has_stack = 1;
    m->stack.id = ob_request_printf(&m->request,
                                    "arn:aws-cn:cloudformation:cn-north-1:123456789012:stack/be/1");
    m->stack.name = ob_request_printf(&m->request, "be");
    m->stack.role_arn = ob_request_printf(&m->request, "arn:aws-cn:iam::123456789012:role/be");
    m->stack.external_id = ob_request_printf(&m->request, "%032d", 7);
    snprintf(m->replay_of, sizeof m->replay_of, "%032d", 1);
    ob_connected_t ev;
    assert_int_equal(ob_connected_from_stage(m, NULL, &ev, &err), OB_OK);
    assert_false(ev.has_report);
    assert_int_equal(ob_connected_to_json(&ev, &text, NULL, &err), OB_OK);
    assert_null(strstr(text, "\"report\""));
    assert_null(strstr(text, "requested_at"));
    free(text);
    ob_connected_clear(&ev);
    ob_stage_msg_clear(m);
    free(m);
}

static void test_dlq(void **state)
{
    char *text;
    char errstr[256];
    ob_dlq_t d;
    ob_msg_error_t err;

    /* Unparseable bytes: base64, the account from a 12-digit key. */
    const char raw[] = "{\"schema\":\"onboard.request/1\",";
    ob_msg_header_t hdrs[40];
    for (int i = 0; i < 40; i++)
        hdrs[i] = (ob_msg_header_t){"h", "v", 1};
    hdrs[0] = (ob_msg_header_t){"ob-schema", "onboard.request/1", 17};
    hdrs[1] = (ob_msg_header_t){"bin", "\xff\x00", 2};
    hdrs[2] = (ob_msg_header_t){"null", NULL, 0};
    hdrs[3] = (ob_msg_header_t){"", "empty name", 10};
    ob_dlq_input_t in = {.stage = OB_STAGE_INTAKE,
                         .topic = "onboard.requests",
                         .partition = 3,
                         .offset = 1042,
                         .key = "123456789012",
                         .key_len = 12,
                         .payload = raw,
                         .payload_len = sizeof raw - 1,
                         .headers = hdrs,
                         .nheaders = 40,
                         .cls = OB_DLQ_INVALID_INPUT,
                         .code = "not_json",
                         .message = "not JSON: \xff premature end",
                         .field = "no pointer",
                         .attempts = 0,
                         .worker_name = "bucket",
                         .replayable = 1};
    assert_int_equal(ob_dlq_build(&in, &text, NULL, errstr, sizeof errstr), OB_OK);
    assert_int_equal(ob_dlq_parse(text, strlen(text), &d, &err), OB_OK);
    free(text);
    char id[OB_DLQ_ID_LEN];
    ob_dlq_id("onboard.requests", 3, 1042, id);
    assert_string_equal(d.dlq_id, id);
    assert_string_equal(d.account_id, "123456789012");
    assert_null(d.request_id);
    assert_null(d.payload);
    assert_non_null(d.payload_b64);
    assert_false(d.replayable); /* asked for, but raw bytes cannot be replayed */
    assert_true(d.truncated);   /* headers: 40 given, an empty name dropped, 32 kept */
    assert_string_equal(d.message, "not JSON: ? premature end");
    assert_null(d.field);
    assert_int_equal(d.attempts, 1);
    assert_string_equal(d.worker_host, "unknown");
    const json_t *h = json_object_get(json_object_get(d.doc, "original"), "headers");
    assert_int_equal(json_array_size(h), 32);
    assert_non_null(json_object_get(json_array_get(h, 1), "value_base64"));
    assert_int_equal(json_object_size(json_array_get(h, 2)), 1);
    size_t olen;
    char *orig;
    assert_int_equal(ob_dlq_original(&d, &orig, &olen), OB_OK);
    assert_int_equal(olen, sizeof raw - 1);
    assert_memory_equal(orig, raw, olen);
    free(orig);
    ob_dlq_clear(&d);

    /* A parsed request that AWS refused: replayable, ids from the payload. */
    const char *req = MINIMAL;
    in = (ob_dlq_input_t){.stage = OB_STAGE_BUCKET,
                          .topic = "onboard.requests",
                          .partition = 0,
                          .offset = 7,
                          .payload = req,
                          .payload_len = strlen(req),
                          .cls = OB_DLQ_PERMANENT,
                          .code = "Bucket Already Exists",
                          .message = "The requested bucket name is not available.",
                          .field = "/bucket/name",
                          .aws_request_id = "4442587FB7D0A2F9",
                          .http_status = 409,
                          .attempts = 2,
                          .first_failure_at = "2025-06-02T10:00:00Z",
                          .last_failure_at = "yesterday",
                          .worker_name = "bucket",
                          .worker_version = "0.1.0",
                          .worker_host = "w\xc3",
                          .replayable = -1};
    assert_int_equal(ob_dlq_build(&in, &text, NULL, errstr, sizeof errstr), OB_OK);
    assert_int_equal(ob_dlq_parse(text, strlen(text), &d, &err), OB_OK);
    free(text);
    assert_string_equal(d.account_id, "123456789012");
    assert_string_equal(d.request_id, "req-1");
    assert_non_null(d.payload);
    assert_true(d.replayable);
    assert_string_equal(d.code, "Bucket_Already_Exists");
    assert_string_equal(d.field, "/bucket/name");
    assert_int_equal(d.http_status, 409);
    assert_string_equal(d.first_failure_at, "2025-06-02T10:00:00Z");
    assert_true(ob_msg_time_valid(d.last_failure_at));
    assert_string_equal(d.worker_host, "w?");
    assert_null(d.key);
    assert_int_equal(ob_dlq_original(&d, &orig, &olen), OB_OK);
    assert_string_equal(orig, MINIMAL);
    free(orig);
    ob_dlq_clear(&d);

    /* The same request encoded again by a worker that kept it parsed only:
     * the record gives that, with the size and digest of the bytes that
     * arrived (here an indented form of it). */
    const char sent[] = "{ \"schema\": \"onboard.request/1\", \"request_id\": \"req-1\", "
                        "\"account_id\": \"123456789012\", \"cloud\": \"aws\",\n "
                        "\"region\": \"us-east-1\", "
                        "\"role_arn\": \"arn:aws:iam::123456789012:role/OnboardingAccess\" }";
    uint8_t sent_sha[OB_SHA256_LEN];
    char sent_hex[OB_SHA256_HEX_LEN];
    ob_sha256(sent, sizeof sent - 1, sent_sha);
    ob_sha256_hex(sent, sizeof sent - 1, sent_hex);
    in.arrived_sha256 = sent_sha;
    in.arrived_len = sizeof sent - 1;
    assert_int_equal(ob_dlq_build(&in, &text, NULL, errstr, sizeof errstr), OB_OK);
    assert_int_equal(ob_dlq_parse(text, strlen(text), &d, &err), OB_OK);
    free(text);
    assert_non_null(d.payload);
    assert_true(d.replayable);
    assert_false(d.truncated);
    assert_int_equal(d.payload_size, (int64_t)(sizeof sent - 1));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(d.doc, "original"), "payload_sha256")),
        sent_hex);
    assert_int_equal(ob_dlq_original(&d, &orig, &olen), OB_OK);
    assert_string_equal(orig, MINIMAL);
    free(orig);
    ob_dlq_clear(&d);

    /* ... and one that could not be encoded again: the record says so. */
    in.payload = NULL;
    in.payload_len = 0;
    assert_int_equal(ob_dlq_build(&in, &text, NULL, errstr, sizeof errstr), OB_OK);
    assert_int_equal(ob_dlq_parse(text, strlen(text), &d, &err), OB_OK);
    free(text);
    assert_null(d.payload);
    assert_false(d.replayable);
    assert_true(d.truncated);
    assert_int_equal(d.payload_size, (int64_t)(sizeof sent - 1));
    assert_int_equal(ob_dlq_original(&d, &orig, &olen), OB_ERR_STATE);
    ob_dlq_clear(&d);
    in.arrived_sha256 = NULL;

    /* Too large: the first 256 KiB as base64, marked truncated, not replayable. */
    size_t big = 300000;
    char *huge = malloc(big);
    memset(huge, 'x', big);
    char *bigkey = malloc(5000);
    memset(bigkey, 'k', 5000);
    in = (ob_dlq_input_t){.stage = OB_STAGE_INTAKE,
                          .topic = "onboard.requests",
                          .offset = 1,
                          .key = bigkey,
                          .key_len = 5000,
                          .payload = huge,
                          .payload_len = big,
                          .cls = OB_DLQ_INVALID_INPUT,
                          .code = "too_large",
                          .replayable = -1};
    size_t tlen;
    assert_int_equal(ob_dlq_build(&in, &text, &tlen, errstr, sizeof errstr), OB_OK);
    assert_true(tlen <= OB_DLQ_MAX_BYTES);
    assert_int_equal(ob_dlq_parse(text, tlen, &d, &err), OB_OK);
    free(text);
    assert_int_equal(d.payload_size, (int64_t)big);
    assert_int_equal(strlen(d.payload_b64), 349528);
    assert_string_equal(d.message, "(no message)");
    assert_int_equal(ob_dlq_original(&d, &orig, &olen), OB_ERR_STATE);
    const json_t *tr = json_object_get(json_object_get(d.doc, "original"), "truncated");
    assert_int_equal(json_array_size(tr), 2);
    ob_dlq_clear(&d);
    free(huge);
    free(bigkey);

    /* A payload nested too deep for the record goes base64 rather than failing. */
    char *deep = malloc(4000);
    memset(deep, '[', 1500);
    memset(deep + 1500, ']', 1500);
    in = (ob_dlq_input_t){.stage = OB_STAGE_INTAKE,
                          .topic = "t",
                          .payload = deep,
                          .payload_len = 3000,
                          .cls = OB_DLQ_INVALID_INPUT,
                          .code = "not_object",
                          .replayable = -1};
    assert_int_equal(ob_dlq_build(&in, &text, NULL, errstr, sizeof errstr), OB_OK);
    assert_int_equal(ob_dlq_parse(text, strlen(text), &d, &err), OB_OK);
    assert_non_null(d.payload_b64);
    free(text);
    ob_dlq_clear(&d);
    free(deep);

    /* A tombstone (null payload). */
    in = (ob_dlq_input_t){.stage = OB_STAGE_CUR, .topic = "t", .cls = OB_DLQ_INVALID_INPUT};
    assert_int_equal(ob_dlq_build(&in, &text, NULL, errstr, sizeof errstr), OB_OK);
    assert_int_equal(ob_dlq_parse(text, strlen(text), &d, &err), OB_OK);
    assert_string_equal(d.payload_b64, "");
    assert_string_equal(d.code, "unknown");
    assert_int_equal(d.payload_size, 0);
    free(text);
    ob_dlq_clear(&d);

    /* What the builder refuses: arguments, never content. */
    in.topic = "bad topic";
    assert_int_equal(ob_dlq_build(&in, &text, NULL, errstr, sizeof errstr), OB_ERR_INVALID_ARG);
    assert_non_null(strstr(errstr, "topic"));
    in.topic = "t";
    in.partition = -1;
    assert_int_equal(ob_dlq_build(&in, &text, NULL, errstr, sizeof errstr), OB_ERR_INVALID_ARG);
    in.partition = 0;
    in.stage = OB_STAGE__COUNT;
    assert_int_equal(ob_dlq_build(&in, &text, NULL, errstr, sizeof errstr), OB_ERR_INVALID_ARG);
    assert_int_equal(ob_dlq_build(NULL, &text, NULL, errstr, sizeof errstr), OB_ERR_INVALID_ARG);
    ob_dlq_clear(NULL);
}

static void test_names_topics_time(void **state)
{
    char t[300], errstr[256];
    assert_int_equal(ob_topic_name(NULL, OB_TOPIC_REQUESTS, t, sizeof t, errstr, sizeof errstr),
                     OB_OK);
    assert_string_equal(t, "onboard.requests");
    assert_int_equal(ob_topic_name("acme-", OB_TOPIC_DLQ, t, sizeof t, errstr, sizeof errstr),
                     OB_OK);
    assert_string_equal(t, "acme-dlq");
    assert_int_equal(ob_topic_name("", OB_TOPIC_CONNECTED, t, sizeof t, errstr, sizeof errstr),
                     OB_OK);
    assert_string_equal(t, "connected");
    assert_int_equal(ob_topic_name("a b", OB_TOPIC_CUR, t, sizeof t, errstr, sizeof errstr),
                     OB_ERR_CONFIG);
    assert_int_equal(ob_topic_name(NULL, OB_TOPIC__COUNT, t, sizeof t, errstr, sizeof errstr),
                     OB_ERR_INVALID_ARG);
    assert_int_equal(ob_topic_name(NULL, OB_TOPIC_IAM, t, 5, errstr, sizeof errstr),
                     OB_ERR_INVALID_ARG);
    assert_string_equal(ob_topic_suffix(OB_TOPIC_CONNECT), "connect");
    assert_string_equal(ob_stage_name(OB_STAGE_IAM), "iam");
    assert_string_equal(ob_artifact_name(OB_ARTIFACT_ATHENA), "ATHENA");
    assert_null(ob_artifact_name(8));
    assert_string_equal(ob_schema_elem_name(OB_SCHEMA_ELEM_SPLIT_COST_ALLOCATION_DATA),
                        "SPLIT_COST_ALLOCATION_DATA");
    assert_string_equal(ob_compression_name(OB_COMPRESSION_PARQUET), "Parquet");
    assert_string_equal(ob_msg_schema(OB_MSG_DLQ), "onboard.dlq/1");
    assert_string_equal(ob_dlq_class_name(OB_DLQ_RETRIES_EXHAUSTED), "retries_exhausted");

    char now[OB_TIME_LEN];
    ob_msg_now(now);
    assert_true(ob_msg_time_valid(now));
    assert_int_equal(strlen(now), 24);
    assert_true(ob_msg_time_valid("2024-02-29T00:00:00Z"));
    assert_true(ob_msg_time_valid("2016-12-31T23:59:60Z"));
    assert_true(ob_msg_time_valid("2025-01-01T00:00:00.123456789-08:00"));
    assert_false(ob_msg_time_valid("2100-02-29T00:00:00Z"));
    assert_false(ob_msg_time_valid("2025-01-01T00:00:00.1234567890Z"));
    assert_false(ob_msg_time_valid("2025-01-01t00:00:00z"));
    assert_false(ob_msg_time_valid("2025-01-01T00:00:00+24:00"));
    assert_false(ob_msg_time_valid("2025-01-01T12:59:60Z"));
    assert_false(ob_msg_time_valid("2025-13-01T00:00:00Z"));
    assert_false(ob_msg_time_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_request_defaults),
        cmocka_unit_test(test_request_messages),
        cmocka_unit_test(test_request_to_json_validates),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_flow_new),
        cmocka_unit_test(test_flow_existing),
        cmocka_unit_test(test_dlq),
        cmocka_unit_test(test_names_topics_time),
        cmocka_unit_test(test_names_match_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
