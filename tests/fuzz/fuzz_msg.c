/*
 * fuzz_msg: the message codec (lib/pipeline/ob_msg.h).
 *
 * Every input goes through the four parsers (request, hand-off, connected
 * event, dead letter). What the request, hand-off and event parsers accept
 * is written back with its builder and must parse again to the very same
 * bytes: a message the fleet accepts is one it can produce, unchanged. A
 * hand-off for the connect stage must also make a connected event that
 * round-trips. A parsed dead letter gives its original back.
 *
 * The input is also dead-lettered (ob_dlq_build, which never fails on
 * content) as a worker would a poison message; the record must parse and give
 * back the input: the same bytes when kept as base64, the same JSON value
 * when kept as JSON.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../json_within.h"
#include "fuzz.h"
#include "ob_msg.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    json_object_seed(1); /* the same object iteration order on every run */
    return 0;
}

/* The builder's form of an accepted message says what the message said (the
 * workers keep only the parsed form and write it again for a dead letter);
 * members left to their defaults are written out. */
static void says_the_same(const char *what, const char *json, size_t len, const char *a)
{
    json_t *in = json_loadb(json, len, 0, NULL), *out = json_loads(a, 0, NULL);
    if (!in || !out || !ob_json_within(in, out))
        fuzz_fail("%s: the builder's form does not say what the message said:\n%.*s\n%s", what,
                  (int)len, json, a);
    json_decref(in);
    json_decref(out);
}

/* Two serialisations of one message must be the same bytes. */
static void same_json(const char *what, const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen || memcmp(a, b, alen) != 0)
        fuzz_fail("%s: serialisation changes when parsed and written again:\n%.*s\n%.*s", what,
                  (int)alen, a, (int)blen, b);
}

static void check_request(const char *json, size_t len)
{
    ob_request_t r, r2;
    ob_msg_error_t err;
    if (ob_request_parse(json, len, &r, &err) != OB_OK) {
        ob_request_clear(&r);
        return;
    }
    char desired[OB_DESIRED_LEN];
    ob_request_desired(&r, desired);

    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    if (ob_request_to_json(&r, &a, &alen, &err) != OB_OK)
        fuzz_fail("request: parsed, but the builder refuses it: %s", err.message);
    if (ob_request_parse(a, alen, &r2, &err) != OB_OK)
        fuzz_fail("request: the builder's output does not parse: %s\n%s", err.message, a);
    if (ob_request_to_json(&r2, &b, &blen, &err) != OB_OK)
        fuzz_fail("request: reparsed, but the builder refuses it: %s", err.message);
    same_json("request", a, alen, b, blen);
    says_the_same("request", json, len, a);

    char desired2[OB_DESIRED_LEN];
    ob_request_desired(&r2, desired2);
    if (strcmp(desired, desired2) != 0)
        fuzz_fail("request: the desired state changes when written and parsed again");

    ob_request_t copy;
    if (ob_request_copy(&copy, &r) != OB_OK)
        fuzz_fail("request: copy failed");
    ob_request_clear(&copy);
    free(a);
    free(b);
    ob_request_clear(&r);
    ob_request_clear(&r2);
}

static void check_connected_value(const ob_connected_t *c, const char *what)
{
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    ob_msg_error_t err;
    ob_connected_t c2;
    if (ob_connected_to_json(c, &a, &alen, &err) != OB_OK)
        fuzz_fail("%s: the builder refuses it: %s", what, err.message);
    if (ob_connected_parse(a, alen, &c2, &err) != OB_OK)
        fuzz_fail("%s: the builder's output does not parse: %s\n%s", what, err.message, a);
    if (ob_connected_to_json(&c2, &b, &blen, &err) != OB_OK)
        fuzz_fail("%s: reparsed, but the builder refuses it: %s", what, err.message);
    same_json(what, a, alen, b, blen);
    ob_connected_clear(&c2);
    free(a);
    free(b);
}

static void check_disconnected_value(const ob_disconnected_t *d, const char *what)
{
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    ob_msg_error_t err;
    ob_disconnected_t d2;
    if (ob_disconnected_to_json(d, &a, &alen, &err) != OB_OK)
        fuzz_fail("%s: the builder refuses it: %s", what, err.message);
    if (ob_disconnected_parse(a, alen, &d2, &err) != OB_OK)
        fuzz_fail("%s: the builder's output does not parse: %s\n%s", what, err.message, a);
    if (ob_disconnected_to_json(&d2, &b, &blen, &err) != OB_OK)
        fuzz_fail("%s: reparsed, but the builder refuses it: %s", what, err.message);
    same_json(what, a, alen, b, blen);
    ob_disconnected_clear(&d2);
    free(a);
    free(b);
}

static void check_stage(const char *json, size_t len)
{
    ob_stage_msg_t m, m2;
    ob_msg_error_t err;
    if (ob_stage_parse(json, len, &m, &err) != OB_OK) {
        ob_stage_msg_clear(&m);
        return;
    }
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    if (ob_stage_to_json(&m, &a, &alen, &err) != OB_OK)
        fuzz_fail("hand-off: parsed, but the builder refuses it: %s", err.message);
    if (ob_stage_parse(a, alen, &m2, &err) != OB_OK)
        fuzz_fail("hand-off: the builder's output does not parse: %s\n%s", err.message, a);
    if (ob_stage_to_json(&m2, &b, &blen, &err) != OB_OK)
        fuzz_fail("hand-off: reparsed, but the builder refuses it: %s", err.message);
    same_json("hand-off", a, alen, b, blen);
    says_the_same("hand-off", json, len, a);
    free(a);
    free(b);

    if (m.stage == OB_STAGE_CONNECT && m.request.mode == OB_MODE_OFFBOARD) {
        ob_disconnected_t d;
        if (ob_disconnected_from_stage(&m, NULL, m.request.role_arn, "", "2025-01-31T12:00:00.000Z",
                                       &d, &err) != OB_OK)
            fuzz_fail("disconnected event of a hand-off: refused: %s", err.message);
        check_disconnected_value(&d, "disconnected event of a hand-off");
        ob_disconnected_clear(&d);
    } else if (m.stage == OB_STAGE_CONNECT) {
        ob_connected_t c;
        if (ob_connected_from_stage(&m, "2025-01-31T12:00:00.000Z", &c, &err) == OB_OK) {
            check_connected_value(&c, "connected event of a hand-off");
            ob_connected_clear(&c);
        }
    }
    (void)ob_stage_next(m.request.mode, m.stage);
    ob_stage_msg_clear(&m);
    ob_stage_msg_clear(&m2);
}

static void check_disconnected(const char *json, size_t len)
{
    ob_disconnected_t d;
    ob_msg_error_t err;
    if (ob_disconnected_parse(json, len, &d, &err) == OB_OK) {
        check_disconnected_value(&d, "disconnected event");
        ob_disconnected_clear(&d);
    }
}

static void check_connected(const char *json, size_t len)
{
    ob_connected_t c;
    ob_msg_error_t err;
    if (ob_connected_parse(json, len, &c, &err) == OB_OK) {
        check_connected_value(&c, "connected event");
        ob_connected_clear(&c);
    }
}

static void check_dlq(const char *json, size_t len)
{
    ob_dlq_t d;
    ob_msg_error_t err;
    if (ob_dlq_parse(json, len, &d, &err) == OB_OK) {
        char *orig = NULL;
        size_t olen = 0;
        if (ob_dlq_original(&d, &orig, &olen) == OB_OK) {
            /* What a replay would send: it goes through intake again. */
            ob_msg_validate(OB_MSG_REQUEST, orig, olen, &err);
            free(orig);
        }
    }
    ob_dlq_clear(&d);
}

/* The input as a poison message on the requests topic. */
static void check_dead_letter(const char *data, size_t len)
{
    ob_msg_header_t hdr = {"ob-schema", data, len < 64 ? len : 64};
    ob_dlq_input_t in = {
        .stage = OB_STAGE_BUCKET,
        .topic = "onboard.requests",
        .partition = 3,
        .offset = 42,
        .key = data,
        .key_len = len < 16 ? len : 16,
        .payload = data,
        .payload_len = len,
        .headers = &hdr,
        .nheaders = 1,
        .cls = OB_DLQ_INVALID_INPUT,
        .code = "not_json",
        .message = "fuzzed",
        .attempts = 1,
        .first_failure_at = "2025-01-31T12:00:00.000Z",
        .last_failure_at = "2025-01-31T12:00:00.000Z",
        .worker_name = "fuzz",
        .worker_version = "0",
        .worker_host = "localhost",
        .replayable = -1,
    };
    char *rec = NULL, errstr[256];
    size_t rlen = 0;
    if (ob_dlq_build(&in, &rec, &rlen, errstr, sizeof(errstr)) != OB_OK)
        fuzz_fail("dead letter: the builder failed on content: %s", errstr);
    ob_dlq_t d;
    ob_msg_error_t err;
    if (ob_dlq_parse(rec, rlen, &d, &err) != OB_OK)
        fuzz_fail("dead letter: the builder's record does not parse: %s\n%s", err.message, rec);
    if (d.partition != 3 || d.offset != 42 || strcmp(d.topic, "onboard.requests") != 0)
        fuzz_fail("dead letter: the record names another message");

    char *orig = NULL;
    size_t olen = 0;
    ob_err_t rc = ob_dlq_original(&d, &orig, &olen);
    if (rc == OB_OK && d.payload_b64) {
        if (olen != len || (len && memcmp(orig, data, len) != 0))
            fuzz_fail("dead letter: the original bytes do not come back");
    } else if (rc == OB_OK) {
        json_error_t je;
        json_t *want = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
        json_t *got = json_loadb(orig, olen, JSON_DECODE_ANY, &je);
        if (!want || !got || !json_equal(want, got))
            fuzz_fail("dead letter: the original JSON does not come back: %s", orig);
        json_decref(want);
        json_decref(got);
    } else if (rc != OB_ERR_STATE || !d.truncated) {
        fuzz_fail("dead letter: no original from an untruncated record (%d)", (int)rc);
    }
    free(orig);
    ob_dlq_clear(&d);
    free(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    check_request(json, size);
    check_stage(json, size);
    check_connected(json, size);
    check_disconnected(json, size);
    check_dlq(json, size);
    check_dead_letter(json, size);
    return 0;
}
