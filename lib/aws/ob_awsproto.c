/*
 * ob_awsproto: request builders and reply readers for Query, JSON 1.1 and
 * REST-XML.
 *
 * Request bodies match what botocore's serializers produce byte for byte
 * (the unit tests compare against botocore output): Query bodies are
 * botocore.utils.percent_encode_sequence of the parameters in insertion
 * order, S3 XML bodies have no XML declaration and carry the S3 namespace on
 * the root element.
 *
 * Error parsing is deliberately forgiving about *which* format arrives and
 * strict about *what* it accepts: the body is sniffed ('{' JSON, '<' XML),
 * parsed with the strict parsers, and only a non-empty error code counts as
 * recognised. Everything copied into ob_aws_error_t goes through one
 * sanitiser that replaces control characters (log injection) and cuts at a
 * UTF-8 character boundary, marking the cut with "...".
 */
#include "ob_awsproto.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_crypto.h"

#define OB_AWS_JSON_MAX_BYTES (16u * 1024u * 1024u)
#define OB_AWS_ERROR_BODY_MAX (1024u * 1024u)

void ob_aws_req_free(ob_aws_req_t *r)
{
    if (!r)
        return;
    ob_buf_free(&r->path);
    ob_buf_free(&r->query);
    ob_hdrs_clear(&r->headers);
    ob_buf_free(&r->body);
    memset(r, 0, sizeof(*r));
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

ob_err_t ob_aws_uri_encode(ob_buf_t *out, const char *s, size_t len, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!out || (!s && len))
        return OB_ERR_INVALID_ARG;
    /* Sized exactly, then written in place (a template body is kilobytes,
     * and the request keeps it while it waits for a connection). */
    size_t need = len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(is_unreserved(c) || (keep_slash && c == '/')))
            need += 2;
    }
    if (need < len || ob_buf_reserve(out, need) != OB_OK)
        return OB_ERR_NOMEM;
    char *d = out->data + out->len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            *d++ = (char)c;
        } else {
            *d++ = '%';
            *d++ = hex[c >> 4];
            *d++ = hex[c & 15];
        }
    }
    out->len = (size_t)(d - out->data);
    out->data[out->len] = '\0';
    return OB_OK;
}

static int is_alnum_name(const char *s, size_t max)
{
    size_t n = 0;
    if (!s || !*s)
        return 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return 0;
    }
    return n <= max;
}

static ob_err_t nomem(char *errstr, size_t errstr_size, const char *what)
{
    return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory building %s", what);
}

/* ---------------------------------------------------------------- Query */

ob_err_t ob_query_init(ob_aws_req_t *req, ob_aws_svc_t svc, const char *action, char *errstr,
                       size_t errstr_size)
{
    if (!req)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "ob_query_init: req is NULL");
    memset(req, 0, sizeof(*req));
    const ob_aws_svc_info_t *info = ob_aws_svc_info(svc);
    if (!info || info->protocol != OB_PROTO_QUERY || !info->api_version)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_query_init: service %s does not speak the Query protocol",
                       info ? info->id : "(invalid)");
    if (!is_alnum_name(action, 64))
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_query_init: action must be alphanumeric");
    req->svc = svc;
    req->op = action;
    memcpy(req->method, "POST", 5);
    if (ob_buf_puts(&req->path, "/") != OB_OK || ob_buf_append(&req->query, "", 0) != OB_OK ||
        ob_hdrs_set(&req->headers, "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf-8") != OB_OK ||
        ob_buf_printf(&req->body, "Action=%s&Version=", action) != OB_OK ||
        ob_aws_uri_encode(&req->body, info->api_version, strlen(info->api_version), 0) != OB_OK) {
        ob_aws_req_free(req);
        return nomem(errstr, errstr_size, "a Query request");
    }
    return OB_OK;
}

ob_err_t ob_query_add(ob_aws_req_t *req, const char *key, const char *value, char *errstr,
                      size_t errstr_size)
{
    if (!req || !key || !*key || !value)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_query_add: request, key and value are required");
    if (req->body.len == 0)
        return ob_errf(errstr, errstr_size, OB_ERR_STATE,
                       "ob_query_add: request was not set up with ob_query_init");
    size_t old = req->body.len;
    if (ob_buf_putc(&req->body, '&') != OB_OK ||
        ob_aws_uri_encode(&req->body, key, strlen(key), 0) != OB_OK ||
        ob_buf_putc(&req->body, '=') != OB_OK ||
        ob_aws_uri_encode(&req->body, value, strlen(value), 0) != OB_OK) {
        req->body.len = old;
        req->body.data[old] = '\0';
        return nomem(errstr, errstr_size, "a Query parameter");
    }
    return OB_OK;
}

ob_err_t ob_query_add_member(ob_aws_req_t *req, const char *list, int index, const char *field,
                             const char *value, char *errstr, size_t errstr_size)
{
    if (!list || !*list || index < 1)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_query_add_member: list name required and index must be >= 1");
    char key[256];
    int n = field ? snprintf(key, sizeof(key), "%s.%d.%s", list, index, field)
                  : snprintf(key, sizeof(key), "%s.%d", list, index);
    if (n < 0 || (size_t)n >= sizeof(key))
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_query_add_member: key too long");
    return ob_query_add(req, key, value, errstr, errstr_size);
}

ob_err_t ob_query_parse_result(const char *body, size_t len, const char *action, ob_xml_doc_t **doc,
                               const ob_xml_node_t **result, char *errstr, size_t errstr_size)
{
    if (!doc || !action)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_query_parse_result: doc and action are required");
    *doc = NULL;
    if (result)
        *result = NULL;
    char want[128];
    if ((size_t)snprintf(want, sizeof(want), "%sResponse", action) >= sizeof(want))
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_query_parse_result: action name too long");
    char xerr[256];
    ob_xml_doc_t *d = NULL;
    ob_err_t err = ob_xml_parse(body, len, &d, xerr, sizeof(xerr));
    if (err != OB_OK)
        return ob_errf(errstr, errstr_size, err, "%s reply is not valid XML: %s", action, xerr);
    const ob_xml_node_t *root = ob_xml_root(d);
    if (strcmp(ob_xml_name(root), want) != 0) {
        ob_errf(errstr, errstr_size, OB_ERR_PARSE, "%s reply: expected <%s>, got <%.60s>", action,
                want, ob_xml_name(root));
        ob_xml_free(d);
        return OB_ERR_PARSE;
    }
    if (result) {
        snprintf(want, sizeof(want), "%sResult", action);
        *result = ob_xml_child(root, want);
    }
    *doc = d;
    return OB_OK;
}

const char *ob_query_request_id(const ob_xml_doc_t *doc)
{
    return ob_xml_path_text(ob_xml_root(doc), "ResponseMetadata/RequestId");
}

/* ---------------------------------------------------------------- JSON 1.1 */

ob_err_t ob_json11_init(ob_aws_req_t *req, ob_aws_svc_t svc, const char *op, const char *json_body,
                        char *errstr, size_t errstr_size)
{
    if (!req)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "ob_json11_init: req is NULL");
    memset(req, 0, sizeof(*req));
    const ob_aws_svc_info_t *info = ob_aws_svc_info(svc);
    if (!info || info->protocol != OB_PROTO_JSON11 || !info->json_target)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_json11_init: service %s does not speak JSON 1.1",
                       info ? info->id : "(invalid)");
    if (!is_alnum_name(op, 64))
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_json11_init: operation must be alphanumeric");
    if (!json_body)
        json_body = "{}";
    json_error_t jerr;
    json_t *check = json_loads(json_body, 0, &jerr);
    if (!check || !json_is_object(check)) {
        json_decref(check);
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_json11_init: %s body is not a JSON object", op);
    }
    json_decref(check);
    req->svc = svc;
    req->op = op;
    memcpy(req->method, "POST", 5);
    char target[160];
    snprintf(target, sizeof(target), "%s.%s", info->json_target, op);
    if (ob_buf_puts(&req->path, "/") != OB_OK || ob_buf_append(&req->query, "", 0) != OB_OK ||
        ob_hdrs_set(&req->headers, "Content-Type", "application/x-amz-json-1.1") != OB_OK ||
        ob_hdrs_set(&req->headers, "X-Amz-Target", target) != OB_OK ||
        ob_buf_puts(&req->body, json_body) != OB_OK) {
        ob_aws_req_free(req);
        return nomem(errstr, errstr_size, "a JSON 1.1 request");
    }
    return OB_OK;
}

ob_err_t ob_json11_init_obj(ob_aws_req_t *req, ob_aws_svc_t svc, const char *op, const json_t *body,
                            char *errstr, size_t errstr_size)
{
    if (body && !json_is_object(body)) {
        if (req)
            memset(req, 0, sizeof(*req));
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_json11_init_obj: body must be a JSON object");
    }
    char *text = NULL;
    if (body) {
        text = json_dumps(body, JSON_COMPACT);
        if (!text) {
            if (req)
                memset(req, 0, sizeof(*req));
            return nomem(errstr, errstr_size, "a JSON body");
        }
    }
    ob_err_t err = ob_json11_init(req, svc, op, text, errstr, errstr_size);
    free(text);
    return err;
}

ob_err_t ob_aws_json_parse(const char *body, size_t len, json_t **out, char *errstr,
                           size_t errstr_size)
{
    if (!out)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "ob_aws_json_parse: out is NULL");
    *out = NULL;
    if (!body && len)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "ob_aws_json_parse: body is NULL");
    if (len > OB_AWS_JSON_MAX_BYTES)
        return ob_errf(errstr, errstr_size, OB_ERR_TOO_LARGE,
                       "JSON reply of %zu bytes exceeds the %u byte limit", len,
                       OB_AWS_JSON_MAX_BYTES);
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i == len) {
        *out = json_object();
        return *out ? OB_OK : nomem(errstr, errstr_size, "an empty JSON object");
    }
    json_error_t jerr;
    json_t *v = json_loadb(body, len, 0, &jerr);
    if (!v)
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE, "line %d col %d: %s", jerr.line,
                       jerr.column, jerr.text);
    if (!json_is_object(v)) {
        json_decref(v);
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE,
                       "line 1 col 1: JSON reply is not an object");
    }
    *out = v;
    return OB_OK;
}

/* ---------------------------------------------------------------- S3 */

static int valid_wire_query(const char *q)
{
    for (; *q; q++) {
        unsigned char c = (unsigned char)*q;
        if (!is_unreserved(c) && c != '%' && c != '=' && c != '&')
            return 0;
        if (c == '%' && !(q[1] && q[2] && strchr("0123456789ABCDEFabcdef", q[1]) &&
                          strchr("0123456789ABCDEFabcdef", q[2])))
            return 0;
    }
    return 1;
}

ob_err_t ob_s3_init(ob_aws_req_t *req, const char *op, const char *method, const char *path,
                    const char *query, char *errstr, size_t errstr_size)
{
    static const char *const methods[] = {"GET", "PUT", "POST", "HEAD", "DELETE"};
    if (!req)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "ob_s3_init: req is NULL");
    memset(req, 0, sizeof(*req));
    int ok = 0;
    for (size_t i = 0; method && i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(method, methods[i]) == 0)
            ok = 1;
    if (!ok)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "ob_s3_init: unsupported method");
    if (!path || path[0] != '/')
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_s3_init: path must start with '/'");
    if (!query)
        query = "";
    if (!valid_wire_query(query))
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_s3_init: query must already be percent-encoded (no '?', spaces or "
                       "reserved characters)");
    req->svc = OB_SVC_S3;
    req->op = op ? op : "S3";
    memcpy(req->method, method, strlen(method) + 1);
    if (ob_aws_uri_encode(&req->path, path, strlen(path), 1) != OB_OK ||
        ob_buf_puts(&req->query, query) != OB_OK) {
        ob_aws_req_free(req);
        return nomem(errstr, errstr_size, "an S3 request");
    }
    return OB_OK;
}

ob_err_t ob_s3_add_query(ob_aws_req_t *req, const char *key, const char *value, char *errstr,
                         size_t errstr_size)
{
    if (!req || !key || !*key)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_s3_add_query: request and key are required");
    size_t old = req->query.len;
    ob_err_t err = OB_OK;
    if (old > 0)
        err = ob_buf_putc(&req->query, '&');
    if (err == OB_OK)
        err = ob_aws_uri_encode(&req->query, key, strlen(key), 0);
    if (err == OB_OK && value) {
        err = ob_buf_putc(&req->query, '=');
        if (err == OB_OK)
            err = ob_aws_uri_encode(&req->query, value, strlen(value), 0);
    }
    if (err != OB_OK) {
        req->query.len = old;
        if (req->query.data)
            req->query.data[old] = '\0';
        return nomem(errstr, errstr_size, "an S3 query parameter");
    }
    return OB_OK;
}

ob_err_t ob_s3_set_body(ob_aws_req_t *req, const void *body, size_t len, const char *content_type,
                        int content_md5, char *errstr, size_t errstr_size)
{
    if (!req || (!body && len))
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "ob_s3_set_body: request required and body NULL only when empty");
    ob_buf_t nb = {0};
    if (ob_buf_append(&nb, body ? body : "", len) != OB_OK)
        return nomem(errstr, errstr_size, "an S3 body");
    ob_hdrs_del(&req->headers, "Content-Type");
    ob_hdrs_del(&req->headers, "Content-MD5");
    ob_err_t err = OB_OK;
    if (content_type)
        err = ob_hdrs_set(&req->headers, "Content-Type", content_type);
    if (err == OB_OK && content_md5) {
        char md5[OB_MD5_B64_LEN];
        ob_md5_base64(nb.data, len, md5);
        err = ob_hdrs_set(&req->headers, "Content-MD5", md5);
    }
    if (err != OB_OK) {
        ob_buf_free(&nb);
        return nomem(errstr, errstr_size, "S3 body headers");
    }
    ob_buf_free(&req->body);
    req->body = nb;
    return OB_OK;
}

static int valid_region(const char *r)
{
    size_t n = 0;
    if (!r || !*r)
        return 0;
    for (; r[n]; n++) {
        char c = r[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return n <= 32 && r[0] != '-' && r[n - 1] != '-';
}

ob_err_t ob_s3_xml_create_bucket_configuration(ob_buf_t *out, const char *region, char *errstr,
                                               size_t errstr_size)
{
    if (!out || !valid_region(region))
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG,
                       "CreateBucketConfiguration: '%.40s' is not a region name",
                       region ? region : "(null)");
    if (strcmp(region, "us-east-1") == 0)
        return OB_OK; /* S3 rejects LocationConstraint us-east-1; no body instead. */
    if (ob_buf_printf(out,
                      "<CreateBucketConfiguration xmlns=\"" OB_S3_XMLNS "\">"
                      "<LocationConstraint>%s</LocationConstraint>"
                      "</CreateBucketConfiguration>",
                      region) != OB_OK)
        return nomem(errstr, errstr_size, "CreateBucketConfiguration");
    return OB_OK;
}

static ob_err_t put_static(ob_buf_t *out, const char *xml, const char *what, char *errstr,
                           size_t errstr_size)
{
    if (!out)
        return ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "%s: out is NULL", what);
    return ob_buf_puts(out, xml) == OB_OK ? OB_OK : nomem(errstr, errstr_size, what);
}

ob_err_t ob_s3_xml_public_access_block(ob_buf_t *out, char *errstr, size_t errstr_size)
{
    return put_static(out,
                      "<PublicAccessBlockConfiguration xmlns=\"" OB_S3_XMLNS "\">"
                      "<BlockPublicAcls>true</BlockPublicAcls>"
                      "<IgnorePublicAcls>true</IgnorePublicAcls>"
                      "<BlockPublicPolicy>true</BlockPublicPolicy>"
                      "<RestrictPublicBuckets>true</RestrictPublicBuckets>"
                      "</PublicAccessBlockConfiguration>",
                      "PublicAccessBlockConfiguration", errstr, errstr_size);
}

ob_err_t ob_s3_xml_sse_aes256(ob_buf_t *out, char *errstr, size_t errstr_size)
{
    return put_static(out,
                      "<ServerSideEncryptionConfiguration xmlns=\"" OB_S3_XMLNS "\">"
                      "<Rule><ApplyServerSideEncryptionByDefault>"
                      "<SSEAlgorithm>AES256</SSEAlgorithm>"
                      "</ApplyServerSideEncryptionByDefault></Rule>"
                      "</ServerSideEncryptionConfiguration>",
                      "ServerSideEncryptionConfiguration", errstr, errstr_size);
}

ob_err_t ob_s3_xml_ownership_enforced(ob_buf_t *out, char *errstr, size_t errstr_size)
{
    return put_static(out,
                      "<OwnershipControls xmlns=\"" OB_S3_XMLNS "\">"
                      "<Rule><ObjectOwnership>BucketOwnerEnforced</ObjectOwnership></Rule>"
                      "</OwnershipControls>",
                      "OwnershipControls", errstr, errstr_size);
}

/* ---------------------------------------------------------------- errors */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    /* Overlongs and surrogates. */
    if (c == 0xE0 && s[1] < 0xA0)
        return 0;
    if (c == 0xED && s[1] >= 0xA0)
        return 0;
    if (c == 0xF0 && s[1] < 0x90)
        return 0;
    if (c == 0xF4 && s[1] >= 0x90)
        return 0;
    return len;
}

/* Copy src (n bytes) into dst (size > 0): C0 controls and DEL become spaces,
 * invalid UTF-8 bytes become '?', and when it does not fit it is cut at a
 * character boundary and ends with "...". Always NUL-terminates. */
static void copy_clean(char *dst, size_t size, const char *src, size_t n)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0, i = 0;
    int cut = 0;
    while (i < n) {
        size_t len = utf8_seq_len(s + i, n - i);
        char one = 0;
        if (len == 0) {
            one = '?';
            len = 1;
        } else if (len == 1) {
            one = (s[i] < 0x20 || s[i] == 0x7F) ? ' ' : (char)s[i];
        }
        size_t need = one ? 1 : len;
        if (o + need > size - 1) {
            cut = 1;
            break;
        }
        if (one)
            dst[o] = one;
        else
            memcpy(dst + o, s + i, len);
        o += need;
        i += len;
    }
    if (cut && size > 4) {
        /* Make room for "..." on a character boundary. */
        while (o > size - 4) {
            o--;
            while (o > 0 && ((unsigned char)dst[o] & 0xC0) == 0x80)
                o--;
        }
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

static void copy_cstr(char *dst, size_t size, const char *src)
{
    copy_clean(dst, size, src ? src : "", src ? strlen(src) : 0);
}

static const char *status_reason(long status)
{
    switch (status) {
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 416:
        return "Range Not Satisfiable";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}

/* Code for a body-less error, as the SDKs name S3 HEAD errors. */
static void status_code_name(long status, char *dst, size_t size)
{
    const char *name = NULL;
    switch (status) {
    case 301:
        name = "PermanentRedirect";
        break;
    case 302:
        name = "Found";
        break;
    case 304:
        name = "NotModified";
        break;
    case 307:
        name = "TemporaryRedirect";
        break;
    case 400:
        name = "BadRequest";
        break;
    case 401:
        name = "Unauthorized";
        break;
    case 403:
        name = "Forbidden";
        break;
    case 404:
        name = "NotFound";
        break;
    case 405:
        name = "MethodNotAllowed";
        break;
    case 409:
        name = "Conflict";
        break;
    case 411:
        name = "MissingContentLength";
        break;
    case 412:
        name = "PreconditionFailed";
        break;
    case 416:
        name = "InvalidRange";
        break;
    case 429:
        name = "TooManyRequests";
        break;
    case 500:
        name = "InternalError";
        break;
    case 501:
        name = "NotImplemented";
        break;
    case 502:
        name = "BadGateway";
        break;
    case 503:
        name = "ServiceUnavailable";
        break;
    case 504:
        name = "GatewayTimeout";
        break;
    default:
        break;
    }
    if (name)
        snprintf(dst, size, "%s", name);
    else
        snprintf(dst, size, "HTTP%ld", status);
}

/* "prefix#Code:suffix" -> "Code" (after the last '#', before the first ':'
 * that follows it). Covers every form in the Smithy awsJson1_1 tests. */
static void set_code(ob_aws_error_t *out, const char *raw, size_t n)
{
    const char *end = raw + n;
    const char *start = raw;
    for (const char *p = raw; p < end; p++)
        if (*p == '#')
            start = p + 1;
    const char *colon = memchr(start, ':', (size_t)(end - start));
    if (colon)
        end = colon;
    while (start < end && (*start == ' ' || *start == '\t'))
        start++;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    copy_clean(out->code, sizeof(out->code), start, (size_t)(end - start));
}

static void set_type_from_status(ob_aws_error_t *out)
{
    if (out->type[0])
        return;
    if (out->http_status >= 400 && out->http_status < 500)
        snprintf(out->type, sizeof(out->type), "client");
    else if (out->http_status >= 500 && out->http_status < 600)
        snprintf(out->type, sizeof(out->type), "server");
}

static const char *hdr(const ob_hdrs_t *h, const char *name)
{
    return h ? ob_hdrs_get(h, name) : NULL;
}

static int parse_json_error(const ob_hdrs_t *h, const char *body, size_t len, ob_aws_error_t *out)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!root)
        return 0;
    if (!json_is_object(root)) {
        json_decref(root);
        return 0;
    }
    const char *msg = json_string_value(json_object_get(root, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(root, "Message"));
    if (!msg)
        msg = json_string_value(json_object_get(root, "errorMessage"));
    if (msg)
        copy_cstr(out->message, sizeof(out->message), msg);

    /* Code: awsQueryCompatible header, then the body, then x-amzn-ErrorType. */
    const char *qe = hdr(h, "x-amzn-query-error");
    const char *semi = qe ? strchr(qe, ';') : NULL;
    if (qe && semi && semi > qe) {
        copy_clean(out->code, sizeof(out->code), qe, (size_t)(semi - qe));
        copy_cstr(out->type, sizeof(out->type), semi + 1);
    }
    const char *raw = json_string_value(json_object_get(root, "__type"));
    if (!raw)
        raw = json_string_value(json_object_get(root, "code"));
    if (!raw)
        raw = json_string_value(json_object_get(root, "Code"));
    if (!raw)
        raw = hdr(h, "x-amzn-ErrorType");
    if (!out->code[0] && raw)
        set_code(out, raw, strlen(raw));
    json_decref(root);
    return out->code[0] != '\0';
}

static int parse_xml_error(const char *body, size_t len, ob_aws_error_t *out,
                           const char **req_id_out, ob_xml_doc_t **doc_out)
{
    ob_xml_doc_t *doc = NULL;
    if (ob_xml_parse(body, len, &doc, NULL, 0) != OB_OK)
        return 0;
    *doc_out = doc;
    const ob_xml_node_t *root = ob_xml_root(doc);
    const ob_xml_node_t *err = NULL;
    const char *name = ob_xml_name(root);
    if (strcmp(name, "Error") == 0) {
        err = root; /* S3 */
    } else if (strcmp(name, "ErrorResponse") == 0 || strcmp(name, "Response") == 0) {
        err = ob_xml_child(root, "Error"); /* Query */
        if (!err)
            err = ob_xml_path(root, "Errors/Error"); /* EC2 */
    }
    if (!err)
        return 0;
    const char *code = ob_xml_path_text(err, "Code");
    if (!code || !*code)
        return 0;
    set_code(out, code, strlen(code));
    copy_cstr(out->message, sizeof(out->message), ob_xml_path_text(err, "Message"));
    const char *type = ob_xml_path_text(err, "Type");
    if (type && *type)
        copy_cstr(out->type, sizeof(out->type), type);
    const char *rid = ob_xml_path_text(err, "RequestId");
    if (!rid)
        rid = ob_xml_path_text(root, "RequestId");
    if (!rid)
        rid = ob_xml_path_text(root, "RequestID");
    *req_id_out = rid;
    return out->code[0] != '\0';
}

ob_err_t ob_aws_parse_error(ob_aws_svc_t svc, long status, const ob_hdrs_t *resp_headers,
                            const char *body, size_t len, ob_aws_error_t *out)
{
    if (!out)
        return OB_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    out->http_status = status;
    if (!body)
        len = 0;

    /* Request id: headers are authoritative. S3 uses x-amz-request-id; the
     * others x-amzn-RequestId. */
    const char *rid = svc == OB_SVC_S3 ? hdr(resp_headers, "x-amz-request-id")
                                       : hdr(resp_headers, "x-amzn-RequestId");
    if (!rid)
        rid = hdr(resp_headers, "x-amzn-RequestId");
    if (!rid)
        rid = hdr(resp_headers, "x-amz-request-id");
    if (rid)
        copy_cstr(out->request_id, sizeof(out->request_id), rid);

    size_t i = 0;
    if (len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;

    if (i == len) {
        /* No body: HEAD errors, some 5xx, JSON errors carried only in headers. */
        const char *et = hdr(resp_headers, "x-amzn-ErrorType");
        if (et && *et)
            set_code(out, et, strlen(et));
        if (!out->code[0])
            status_code_name(status, out->code, sizeof(out->code));
        snprintf(out->message, sizeof(out->message), "HTTP %ld %s (no response body)", status,
                 status_reason(status));
        set_type_from_status(out);
        return OB_OK;
    }

    int ok = 0;
    if (len - i <= OB_AWS_ERROR_BODY_MAX) {
        if (body[i] == '{') {
            ok = parse_json_error(resp_headers, body + i, len - i, out);
        } else if (body[i] == '<') {
            const char *body_rid = NULL;
            ob_xml_doc_t *doc = NULL;
            ok = parse_xml_error(body + i, len - i, out, &body_rid, &doc);
            if (ok && !out->request_id[0] && body_rid)
                copy_cstr(out->request_id, sizeof(out->request_id), body_rid);
            ob_xml_free(doc);
        }
    }
    if (ok) {
        set_type_from_status(out);
        return OB_OK;
    }

    /* Not an AWS error document: keep the status, say what arrived. */
    char saved_msg[sizeof(out->message)];
    snprintf(saved_msg, sizeof(saved_msg), "%s", out->message);
    snprintf(out->code, sizeof(out->code), "HTTP%ld", status);
    out->type[0] = '\0';
    set_type_from_status(out);
    const char *ctype = hdr(resp_headers, "Content-Type");
    char snippet[161];
    copy_clean(snippet, sizeof(snippet), body + i, len - i);
    char ctbuf[64];
    copy_cstr(ctbuf, sizeof(ctbuf), ctype ? ctype : "no Content-Type");
    char msg[sizeof(out->message) + 400];
    if (saved_msg[0])
        snprintf(msg, sizeof(msg), "%s", saved_msg);
    else
        snprintf(msg, sizeof(msg),
                 "HTTP %ld %s: the reply body (%zu bytes, %s) was not a recognizable AWS "
                 "error: %s",
                 status, status_reason(status), len, ctbuf, snippet);
    copy_cstr(out->message, sizeof(out->message), msg);
    return OB_ERR_PARSE;
}
