/*
 * fuzz_awsreply: the parsers of AWS replies (lib/aws/ob_awsproto.h).
 *
 * Input: two selector bytes, then the reply.
 *   byte 0: bits 0-1 the parser (0 ob_query_parse_result, 1 ob_aws_json_parse,
 *           2 and 3 ob_aws_parse_error), bits 2-4 the service (modulo the
 *           number of services), bit 5: the reply starts with header lines
 *           ("Name: value", up to an empty line) before its body;
 *   byte 1: the Query action (modulo the list below) or the HTTP status
 *           (modulo the list below).
 * Properties: ob_aws_parse_error always fills a code, and strings that are
 * valid UTF-8 without control characters (they go into logs and dead
 * letters); a reply it does not recognise gets the status's type; a Query
 * reply that parses has the action's root element.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "ob_awsproto.h"

static const char *const actions[] = {
    "AssumeRole",     "GetCallerIdentity",   "AssumeRoleWithWebIdentity",
    "CreateStack",    "UpdateStack",         "DeleteStack",
    "DescribeStacks", "DescribeStackEvents", "DescribeStackResources",
};
static const long statuses[] = {200, 301, 307, 400, 403, 404, 409,
                                412, 429, 500, 502, 503, 504, 999};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    json_object_seed(1);
    return 0;
}

/* "Name: value" lines up to an empty line; returns where the body starts. */
static size_t read_headers(const char *p, size_t len, ob_hdrs_t *h)
{
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(p + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - p) : len;
        size_t l = end - i;
        if (l && p[i + l - 1] == '\r')
            l--;
        size_t next = nl ? end + 1 : len;
        if (l == 0)
            return next;
        const char *colon = memchr(p + i, ':', l);
        if (colon) {
            char *line = fuzz_strndup(p + i, l);
            char *c = line + (colon - (p + i));
            *c++ = '\0';
            while (*c == ' ')
                c++;
            if (ob_hdrs_add(h, line, c) != OB_OK)
                fuzz_fail("out of memory");
            free(line);
        }
        i = next;
    }
    return len;
}

static void check_clean(const char *what, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap)
        fuzz_fail("error %s is not terminated", what);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            fuzz_fail("error %s holds control character 0x%02x: %s", what, (unsigned char)s[i], s);
    json_t *j = json_string(s); /* NULL when not UTF-8 */
    if (!j)
        fuzz_fail("error %s is not UTF-8: %s", what, s);
    json_decref(j);
}

static void parse_error(ob_aws_svc_t svc, long status, const ob_hdrs_t *h, const char *body,
                        size_t len)
{
    ob_aws_error_t e;
    ob_err_t rc = ob_aws_parse_error(svc, status, h, body, len, &e);
    if (rc != OB_OK && rc != OB_ERR_PARSE)
        fuzz_fail("ob_aws_parse_error returned %d", (int)rc);
    if (e.http_status != status || !e.code[0])
        fuzz_fail("an error without status or code");
    check_clean("code", e.code, sizeof(e.code));
    check_clean("message", e.message, sizeof(e.message));
    check_clean("request id", e.request_id, sizeof(e.request_id));
    /* A Query error's Type is passed on as AWS wrote it; the others are ours. */
    if (rc != OB_OK && e.type[0] && strcmp(e.type, "client") != 0 && strcmp(e.type, "server") != 0)
        fuzz_fail("an unrecognised reply with type \"%s\"", e.type);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned sel = data[0], arg = data[1];
    ob_aws_svc_t svc = (ob_aws_svc_t)((sel >> 2 & 7) % OB_SVC__COUNT);
    const char *p = (const char *)data + 2;
    size_t len = size - 2;
    ob_hdrs_t h = {0};
    if (sel & 0x20) {
        size_t body = read_headers(p, len, &h);
        p += body;
        len -= body;
    }
    char errstr[256];
    switch (sel & 3) {
    case 0: {
        const char *action = actions[arg % (sizeof(actions) / sizeof(actions[0]))];
        ob_xml_doc_t *doc = NULL;
        const ob_xml_node_t *result = NULL;
        if (ob_query_parse_result(p, len, action, &doc, &result, errstr, sizeof(errstr)) == OB_OK) {
            const char *root = ob_xml_name(ob_xml_root(doc));
            if (strncmp(root, action, strlen(action)) != 0)
                fuzz_fail("a %s reply whose root is <%s>", action, root);
            if (result && ob_xml_parent(result) != ob_xml_root(doc))
                fuzz_fail("a result that is not the root's child");
            (void)ob_query_request_id(doc);
            (void)ob_xml_path_text(result, "Stacks/member/StackStatus");
            (void)ob_xml_path_text(result, "Credentials/SessionToken");
        } else if (doc || result) {
            fuzz_fail("a refused Query reply left a document");
        }
        ob_xml_free(doc);
        break;
    }
    case 1: {
        json_t *v = NULL;
        if (ob_aws_json_parse(p, len, &v, errstr, sizeof(errstr)) == OB_OK) {
            if (!json_is_object(v))
                fuzz_fail("a JSON reply that is not an object");
        } else if (v) {
            fuzz_fail("a refused JSON reply left a value");
        }
        json_decref(v);
        break;
    }
    default:
        parse_error(svc, statuses[arg % (sizeof(statuses) / sizeof(statuses[0]))],
                    (sel & 0x20) ? &h : NULL, p, len);
        break;
    }
    ob_hdrs_clear(&h);
    return 0;
}
