/*
 * sim_s3: the S3 bucket API of the simulator (REST-XML, namespace
 * http://s3.amazonaws.com/doc/2006-03-01/): CreateBucket, HeadBucket,
 * DeleteBucket, GetBucketLocation, ListBuckets, and Put/Get/Delete of the
 * bucket policy, the public access block, default encryption and ownership
 * controls. Objects are not stored; any other operation answers 501
 * NotImplemented, so a client never mistakes a gap for success.
 *
 * Addressing: the bucket comes from a virtual-host Host header
 * ("BUCKET.s3.REGION.amazonaws.com", "BUCKET.s3.amazonaws.com",
 * "BUCKET.localhost:PORT") or else from the first path segment (path style,
 * what SDKs use behind a custom endpoint). identify() puts "bucket", "key"
 * (percent-decoded), "subresource" and every query parameter into c->params.
 *
 * Faithfulness notes, each checked against S3 behaviour or its documentation:
 *  - New buckets get the defaults S3 has applied since 2023: default SSE-S3
 *    encryption (AES256, bucket key off), all four Block Public Access
 *    settings on, and ObjectOwnership BucketOwnerEnforced (ACLs disabled).
 *    Buckets seeded from a file have none of these, so the "not found"
 *    errors of the Get operations can still be seen; the Delete operations
 *    remove them again (DeleteBucketEncryption falls back to SSE-S3, as S3
 *    does now).
 *  - Re-creating a bucket you own answers 409 BucketAlreadyOwnedByYou,
 *    except in us-east-1 where S3 keeps its legacy 200 OK.
 *  - A request signed for us-east-1 (the legacy global endpoint) may create
 *    a bucket in any region through its LocationConstraint; any other
 *    region must name itself.
 *  - Operations on a bucket of another region answer 301 PermanentRedirect
 *    with x-amz-bucket-region (HEAD: no body), which SDKs follow; a bucket
 *    of another account is 403 AccessDenied (bucket policies granting
 *    cross-account access are not evaluated).
 *  - The four Put operations that S3 marks httpChecksumRequired need
 *    Content-MD5 or an x-amz-checksum-{crc32,crc32c,sha1,sha256} header, and
 *    every one present is verified against the body.
 *
 * State: sim_section(sim, "buckets")[name] = {"owner", "region", "created",
 * "policy", "public_access_block", "encryption", "ownership"} (sim.h).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "ob_alloc.h"
#include "ob_crypto.h"
#include "ob_xml.h"
#include "sim.h"

#define S3_NS            "http://s3.amazonaws.com/doc/2006-03-01/"
#define POLICY_MAX_BYTES 20480

/* ---- small helpers ---- */

static const char *param(sim_call_t *c, const char *name)
{
    return json_string_value(json_object_get(c->params, name));
}

static const char *hdr(sim_call_t *c, const char *name)
{
    return ob_hdrs_get(c->http->headers, name);
}

static json_t *buckets(sim_call_t *c)
{
    return sim_section(c->sim, "buckets");
}

static const char *str_field(json_t *o, const char *k, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : dflt;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decode n bytes into a new string; plus_space for query components. */
static char *pct_decode(const char *s, size_t n, int plus_space)
{
    char *out = ob_malloc(n + 1);
    size_t j = 0;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            out[j++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (plus_space && s[i] == '+') {
            out[j++] = ' ';
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    return out;
}

/* The bucket named by a virtual-host style Host header, if any. */
static int host_bucket(const char *host, char *out, size_t out_size)
{
    char h[320];
    if (!host || host[0] == '[' || strlen(host) >= sizeof(h))
        return 0;
    size_t n = 0;
    for (; host[n] && host[n] != ':'; n++)
        h[n] = (char)tolower((unsigned char)host[n]);
    h[n] = '\0';
    size_t blen = 0;
    if (n > 10 && !strcmp(h + n - 10, ".localhost")) {
        blen = n - 10;
    } else if (n > 14 && !strcmp(h + n - 14, ".amazonaws.com")) {
        /* The last ".s3." or ".s3-" ends the bucket (names may hold dots). */
        for (size_t i = 0; i + 3 <= n - 14; i++)
            if (!strncmp(h + i, ".s3", 3) && (h[i + 3] == '.' || h[i + 3] == '-'))
                blen = i;
    }
    if (blen == 0 || blen >= out_size)
        return 0;
    memcpy(out, h, blen);
    out[blen] = '\0';
    return 1;
}

/* Regions S3 accepts as a LocationConstraint (the commercial partition). */
static const char *const s3_regions[] = {"af-south-1",     "ap-east-1",
                                         "ap-east-2",      "ap-northeast-1",
                                         "ap-northeast-2", "ap-northeast-3",
                                         "ap-south-1",     "ap-south-2",
                                         "ap-southeast-1", "ap-southeast-2",
                                         "ap-southeast-3", "ap-southeast-4",
                                         "ap-southeast-5", "ap-southeast-7",
                                         "ca-central-1",   "ca-west-1",
                                         "eu-central-1",   "eu-central-2",
                                         "eu-north-1",     "eu-south-1",
                                         "eu-south-2",     "eu-west-1",
                                         "eu-west-2",      "eu-west-3",
                                         "il-central-1",   "me-central-1",
                                         "me-south-1",     "mx-central-1",
                                         "sa-east-1",      "us-east-1",
                                         "us-east-2",      "us-west-1",
                                         "us-west-2",      NULL};

static int known_region(const char *r)
{
    for (int i = 0; s3_regions[i]; i++)
        if (!strcmp(s3_regions[i], r))
            return 1;
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* S3's bucket naming rules (general purpose buckets). */
static int bucket_name_valid(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '.' ||
              b[i] == '-'))
            return 0;
    if (!isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]) || strstr(b, ".."))
        return 0;
    static const char *const prefixes[] = {"xn--", "sthree-", "amzn-s3-demo-", NULL};
    static const char *const suffixes[] = {"-s3alias", "--ol-s3",    ".mrap",
                                           "--x-s3",   "--table-s3", NULL};
    for (int i = 0; prefixes[i]; i++)
        if (!strncmp(b, prefixes[i], strlen(prefixes[i])))
            return 0;
    for (int i = 0; suffixes[i]; i++)
        if (ends_with(b, suffixes[i]))
            return 0;
    /* Not formatted as an IPv4 address. */
    int dots = 0, digits_only = 1;
    for (size_t i = 0; i < n; i++) {
        if (b[i] == '.')
            dots++;
        else if (!isdigit((unsigned char)b[i]))
            digits_only = 0;
    }
    return !(digits_only && dots == 3);
}

/* ---- checksums ---- */

static uint32_t crc32_generic(const void *data, size_t len, uint32_t poly)
{
    const unsigned char *p = data;
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (poly & (0u - (crc & 1u)));
    }
    return crc ^ 0xFFFFFFFFu;
}

/* Digest of the body for a checksum algorithm; returns its length (0: unknown). */
static size_t body_digest(const char *algo, const void *data, size_t len, unsigned char out[64])
{
    if (!strcmp(algo, "crc32") || !strcmp(algo, "crc32c")) {
        uint32_t v = crc32_generic(data, len, !strcmp(algo, "crc32") ? 0xEDB88320u : 0x82F63B78u);
        out[0] = (unsigned char)(v >> 24);
        out[1] = (unsigned char)(v >> 16);
        out[2] = (unsigned char)(v >> 8);
        out[3] = (unsigned char)v;
        return 4;
    }
    const EVP_MD *md = !strcmp(algo, "md5")    ? EVP_md5()
                       : !strcmp(algo, "sha1") ? EVP_sha1()
                                               : EVP_sha256();
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, md, NULL) != 1)
        return 0;
    return n;
}

/* Content-MD5 / x-amz-checksum-* present and matching the body: 0; otherwise
 * the error is replied and -1 returned. */
static int check_integrity(sim_call_t *c)
{
    static const char *const algos[] = {"md5", "crc32", "crc32c", "sha1", "sha256", NULL};
    static const char *const names[] = {"Content-MD5", "CRC32", "CRC32C", "SHA1", "SHA256"};
    const char *body = c->http->body ? c->http->body : "";
    int any = 0;
    for (int i = 0; algos[i]; i++) {
        char hname[64];
        if (i == 0)
            snprintf(hname, sizeof(hname), "Content-MD5");
        else
            snprintf(hname, sizeof(hname), "x-amz-checksum-%s", algos[i]);
        const char *v = hdr(c, hname);
        if (!v)
            continue;
        any = 1;
        unsigned char want[64];
        size_t wn = body_digest(algos[i], body, c->http->body_len, want);
        uint8_t *got = NULL;
        size_t gn = 0;
        int ok = ob_base64_decode(v, strlen(v), &got, &gn) == OB_OK && gn == wn;
        int match = ok && ob_ct_memcmp(got, want, wn) == 0;
        free(got);
        if (!ok) {
            if (i == 0)
                sim_error(c, 400, "InvalidDigest", "The Content-MD5 you specified is not valid.");
            else
                sim_error(c, 400, "InvalidRequest", "Value for %s header is invalid.", hname);
            return -1;
        }
        if (!match) {
            if (i == 0)
                sim_error(c, 400, "BadDigest",
                          "The Content-MD5 you specified did not match what we received.");
            else
                sim_error(c, 400, "BadDigest",
                          "The %s you specified did not match the calculated checksum.", names[i]);
            return -1;
        }
    }
    if (!any) {
        sim_error(c, 400, "InvalidRequest",
                  "Missing required header for this request: Content-MD5");
        return -1;
    }
    return 0;
}

/* ---- identify ---- */

typedef struct route_s {
    const char *sub; /* "" for the bucket itself */
    const char *method;
    const char *op;
} route_t;

static const route_t routes[] = {
    {"", "PUT", "CreateBucket"},
    {"", "HEAD", "HeadBucket"},
    {"", "DELETE", "DeleteBucket"},
    {"location", "GET", "GetBucketLocation"},
    {"policy", "PUT", "PutBucketPolicy"},
    {"policy", "GET", "GetBucketPolicy"},
    {"policy", "DELETE", "DeleteBucketPolicy"},
    {"publicAccessBlock", "PUT", "PutPublicAccessBlock"},
    {"publicAccessBlock", "GET", "GetPublicAccessBlock"},
    {"publicAccessBlock", "DELETE", "DeletePublicAccessBlock"},
    {"encryption", "PUT", "PutBucketEncryption"},
    {"encryption", "GET", "GetBucketEncryption"},
    {"encryption", "DELETE", "DeleteBucketEncryption"},
    {"ownershipControls", "PUT", "PutBucketOwnershipControls"},
    {"ownershipControls", "GET", "GetBucketOwnershipControls"},
    {"ownershipControls", "DELETE", "DeleteBucketOwnershipControls"},
    {NULL, NULL, NULL},
};

/* Bucket subresources S3 has; the ones not routed above are not implemented. */
static const char *const subresources[] = {
    "location",    "policy",       "publicAccessBlock", "encryption",     "ownershipControls",
    "acl",         "accelerate",   "analytics",         "cors",           "intelligent-tiering",
    "inventory",   "lifecycle",    "logging",           "metrics",        "notification",
    "object-lock", "policyStatus", "replication",       "requestPayment", "tagging",
    "versioning",  "website",      "uploads",           "versions",       "delete",
    "list-type",   "session",      "restore",           "select",         "attributes",
    "retention",   "legal-hold",   "torrent",           "uploadId",       NULL};

static void parse_query(json_t *params, const char *q)
{
    while (q && *q) {
        const char *end = strchr(q, '&');
        size_t n = end ? (size_t)(end - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        size_t kl = eq ? (size_t)(eq - q) : n;
        char *k = pct_decode(q, kl, 1);
        char *v = eq ? pct_decode(eq + 1, n - kl - 1, 1) : ob_strdup("");
        if (k && v && *k)
            json_object_set_new(params, k, json_string(v));
        free(k);
        free(v);
        q = end ? end + 1 : NULL;
    }
}

static ob_err_t s3_identify(sim_call_t *c)
{
    const ob_httpd_req_t *r = c->http;
    json_t *params = c->params;
    parse_query(params, r->query);

    char vbucket[256];
    const char *path = r->path && r->path[0] == '/' ? r->path + 1 : (r->path ? r->path : "");
    char *bucket = NULL, *key = NULL;
    if (host_bucket(hdr(c, "Host"), vbucket, sizeof(vbucket))) {
        bucket = ob_strdup(vbucket);
        if (*path)
            key = pct_decode(path, strlen(path), 0);
    } else if (*path) {
        const char *slash = strchr(path, '/');
        bucket = pct_decode(path, slash ? (size_t)(slash - path) : strlen(path), 0);
        if (slash && slash[1])
            key = pct_decode(slash + 1, strlen(slash + 1), 0);
    }
    if (bucket && *bucket)
        json_object_set_new(params, "bucket", json_string(bucket));
    if (key && *key)
        json_object_set_new(params, "key", json_string(key));
    int has_bucket = bucket && *bucket, has_key = key && *key;
    free(bucket);
    free(key);

    const char *sub = "";
    for (int i = 0; subresources[i]; i++)
        if (json_object_get(params, subresources[i])) {
            sub = subresources[i];
            break;
        }
    if (*sub)
        json_object_set_new(params, "subresource", json_string(sub));

    if (!has_bucket) {
        if (!strcmp(r->method, "GET")) {
            snprintf(c->op, sizeof(c->op), "ListBuckets");
            return OB_OK;
        }
        sim_error(c, 405, "MethodNotAllowed",
                  "The specified method is not allowed against this resource.");
        return OB_ERR_AWS;
    }
    if (!has_key) {
        int sub_known = 0;
        for (int i = 0; routes[i].op; i++) {
            if (strcmp(routes[i].sub, sub) != 0)
                continue;
            sub_known = 1;
            if (!strcmp(routes[i].method, r->method)) {
                snprintf(c->op, sizeof(c->op), "%s", routes[i].op);
                return OB_OK;
            }
        }
        if (sub_known && *sub) {
            sim_error(c, 405, "MethodNotAllowed",
                      "The specified method is not allowed against this resource.");
            return OB_ERR_AWS;
        }
    }
    sim_error(c, 501, "NotImplemented",
              "A header you provided implies functionality that is not implemented (awssim "
              "serves bucket operations only: %s %s%s%s)",
              r->method, has_key ? "object" : "bucket", *sub ? " ?" : "", sub);
    return OB_ERR_AWS;
}

/* ---- bucket access ---- */

/* The bucket the call addresses when the caller may use it; otherwise the
 * error is replied and NULL returned. With redirect, a bucket of another
 * region answers 301 as S3's regional endpoints do. */
static json_t *access_bucket(sim_call_t *c, int redirect)
{
    json_t *b = json_object_get(buckets(c), param(c, "bucket"));
    if (!b) {
        sim_error(c, 404, "NoSuchBucket", "The specified bucket does not exist");
        return NULL;
    }
    const char *region = str_field(b, "region", "us-east-1");
    if (redirect && strcmp(region, c->region) != 0) {
        ob_hdrs_set(&c->headers, "x-amz-bucket-region", region);
        sim_error(c, 301, "PermanentRedirect",
                  "The bucket you are attempting to access must be addressed using the specified "
                  "endpoint. Please send all future requests to this endpoint.");
        return NULL;
    }
    if (strcmp(str_field(b, "owner", ""), c->account) != 0) {
        if (!strcmp(c->http->method, "HEAD"))
            ob_hdrs_set(&c->headers, "x-amz-bucket-region", region);
        sim_error(c, 403, "AccessDenied", "Access Denied");
        return NULL;
    }
    return b;
}

/* Parse the XML body and check its root element; NULL (MalformedXML sent) when not. */
static const ob_xml_node_t *xml_body(sim_call_t *c, const char *root, ob_xml_doc_t **doc)
{
    *doc = NULL;
    const ob_xml_node_t *n = NULL;
    if (c->http->body_len &&
        ob_xml_parse(c->http->body, c->http->body_len, doc, NULL, 0) == OB_OK) {
        n = ob_xml_root(*doc);
        const char *ns = ob_xml_ns(n);
        if (strcmp(ob_xml_name(n), root) != 0 || (*ns && strcmp(ns, S3_NS) != 0))
            n = NULL;
    }
    if (!n) {
        ob_xml_free(*doc);
        *doc = NULL;
        sim_error(c, 400, "MalformedXML",
                  "The XML you provided was not well-formed or did not validate against our "
                  "published schema");
    }
    return n;
}

static void malformed_xml(sim_call_t *c)
{
    sim_error(c, 400, "MalformedXML",
              "The XML you provided was not well-formed or did not validate against our "
              "published schema");
}

static int parse_bool(const char *s, int *out)
{
    if (!strcasecmp(s, "true"))
        *out = 1;
    else if (!strcasecmp(s, "false"))
        *out = 0;
    else
        return -1;
    return 0;
}

static json_t *default_public_access_block(void)
{
    return json_pack("{s:b, s:b, s:b, s:b}", "BlockPublicAcls", 1, "IgnorePublicAcls", 1,
                     "BlockPublicPolicy", 1, "RestrictPublicBuckets", 1);
}

static json_t *default_encryption(void)
{
    return json_pack("{s:s, s:b}", "SSEAlgorithm", "AES256", "BucketKeyEnabled", 0);
}

/* ---- operations ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void canonical_id(const char *account, char out[OB_SHA256_HEX_LEN])
{
    char seed[64];
    snprintf(seed, sizeof(seed), "awssim-canonical-user:%s", account);
    ob_sha256_hex(seed, strlen(seed), out);
}

static void list_buckets(sim_call_t *c)
{
    json_t *all = buckets(c);
    size_t n = json_object_size(all), k = 0;
    const char **names = ob_malloc((n ? n : 1) * sizeof(*names));
    const char *name;
    json_t *b;
    if (!names) {
        sim_error(c, 500, "InternalError", "We encountered an internal error. Please try again.");
        return;
    }
    json_object_foreach(all, name, b)
    {
        if (!strcmp(str_field(b, "owner", ""), c->account))
            names[k++] = name;
    }
    qsort(names, k, sizeof(*names), cmp_str);
    char id[OB_SHA256_HEX_LEN];
    canonical_id(c->account, id);
    json_t *acct = json_object_get(sim_section(c->sim, "accounts"), c->account);
    const char *display = str_field(acct, "Name", c->account);
    ob_buf_t x = {0};
    ob_buf_printf(&x, "<ListAllMyBucketsResult xmlns=\"%s\"><Owner><ID>%s</ID><DisplayName>", S3_NS,
                  id);
    sim_xml_text(&x, display);
    ob_buf_puts(&x, "</DisplayName></Owner><Buckets>");
    for (size_t i = 0; i < k; i++) {
        char when[32];
        b = json_object_get(all, names[i]);
        sim_iso8601((int64_t)json_integer_value(json_object_get(b, "created")) * 1000, when);
        ob_buf_puts(&x, "<Bucket><Name>");
        sim_xml_text(&x, names[i]);
        ob_buf_printf(&x, "</Name><CreationDate>%s</CreationDate></Bucket>", when);
    }
    ob_buf_puts(&x, "</Buckets></ListAllMyBucketsResult>");
    free(names);
    sim_reply_s3(c, 200, x.data);
    ob_buf_free(&x);
}

static void create_bucket(sim_call_t *c)
{
    const char *name = param(c, "bucket");
    if (!bucket_name_valid(name)) {
        sim_error(c, 400, "InvalidBucketName", "The specified bucket is not valid.");
        return;
    }
    /* The LocationConstraint (an empty or whitespace-only body means none). */
    char constraint[64] = "";
    int has_body = 0;
    for (size_t i = 0; i < c->http->body_len; i++)
        if (!isspace((unsigned char)c->http->body[i]))
            has_body = 1;
    if (has_body) {
        ob_xml_doc_t *doc;
        const ob_xml_node_t *root = xml_body(c, "CreateBucketConfiguration", &doc);
        if (!root)
            return;
        const char *lc = ob_xml_path_text(root, "LocationConstraint");
        if (lc && strlen(lc) >= sizeof(constraint)) {
            ob_xml_free(doc);
            sim_error(c, 400, "InvalidLocationConstraint",
                      "The specified location-constraint is not valid");
            return;
        }
        snprintf(constraint, sizeof(constraint), "%s", lc ? lc : "");
        ob_xml_free(doc);
    }
    const char *region = c->region;
    int global = !strcmp(region, "us-east-1");
    char target[64];
    if (!constraint[0]) {
        if (!global) {
            sim_error(c, 400, "IllegalLocationConstraintException",
                      "The unspecified location constraint is incompatible for the region "
                      "specific endpoint this request was sent to.");
            return;
        }
        snprintf(target, sizeof(target), "us-east-1");
    } else {
        snprintf(target, sizeof(target), "%s",
                 !strcmp(constraint, "EU") ? "eu-west-1" : constraint);
        if (!known_region(target) || (global && !strcmp(constraint, "us-east-1"))) {
            sim_error(c, 400, "InvalidLocationConstraint",
                      "The specified location-constraint is not valid");
            return;
        }
        if (!global && strcmp(target, region) != 0) {
            sim_error(c, 400, "IllegalLocationConstraintException",
                      "The %s location constraint is incompatible for the region specific "
                      "endpoint this request was sent to.",
                      constraint);
            return;
        }
    }
    const char *ownership = hdr(c, "x-amz-object-ownership");
    if (ownership && strcmp(ownership, "BucketOwnerEnforced") != 0 &&
        strcmp(ownership, "BucketOwnerPreferred") != 0 && strcmp(ownership, "ObjectWriter") != 0) {
        sim_error(c, 400, "InvalidArgument", "Invalid x-amz-object-ownership header: %s",
                  ownership);
        return;
    }
    if (!ownership)
        ownership = "BucketOwnerEnforced";
    const char *acl = hdr(c, "x-amz-acl");
    if (acl && strcmp(acl, "private") != 0 && strcmp(acl, "bucket-owner-full-control") != 0 &&
        !strcmp(ownership, "BucketOwnerEnforced")) {
        sim_error(c, 400, "InvalidBucketAclWithObjectOwnership",
                  "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting");
        return;
    }
    char location[300];
    if (!strcmp(target, "us-east-1"))
        snprintf(location, sizeof(location), "/%s", name);
    else
        snprintf(location, sizeof(location), "http://%s.s3.amazonaws.com/", name);

    json_t *b = json_object_get(buckets(c), name);
    if (b) {
        if (strcmp(str_field(b, "owner", ""), c->account) != 0) {
            sim_error(c, 409, "BucketAlreadyExists",
                      "The requested bucket name is not available. The bucket namespace is shared "
                      "by all users of the system. Please select a different name and try again.");
            return;
        }
        /* S3's legacy us-east-1 behaviour: re-creating your own bucket is 200 OK. */
        if (global && !strcmp(str_field(b, "region", "us-east-1"), "us-east-1")) {
            ob_hdrs_set(&c->headers, "Location", location);
            sim_reply_s3(c, 200, NULL);
            return;
        }
        sim_error(c, 409, "BucketAlreadyOwnedByYou",
                  "Your previous request to create the named bucket succeeded and you already "
                  "own it.");
        return;
    }
    b = json_pack("{s:s, s:s, s:I, s:o, s:o, s:s}", "owner", c->account, "region", target,
                  "created", (json_int_t)(sim_now_ms() / 1000), "public_access_block",
                  default_public_access_block(), "encryption", default_encryption(), "ownership",
                  ownership);
    if (!strcmp(constraint, "EU"))
        json_object_set_new(b, "location_constraint", json_string("EU"));
    json_object_set_new(buckets(c), name, b);
    sim_touch(c->sim);
    ob_hdrs_set(&c->headers, "Location", location);
    sim_reply_s3(c, 200, NULL);
}

static void head_bucket(sim_call_t *c)
{
    json_t *b = access_bucket(c, 1);
    if (!b)
        return;
    ob_hdrs_set(&c->headers, "x-amz-bucket-region", str_field(b, "region", "us-east-1"));
    ob_hdrs_set(&c->headers, "x-amz-access-point-alias", "false");
    sim_reply_s3(c, 200, NULL);
}

static void delete_bucket(sim_call_t *c)
{
    if (!access_bucket(c, 1))
        return;
    json_object_del(buckets(c), param(c, "bucket"));
    sim_touch(c->sim);
    sim_reply_s3(c, 204, NULL);
}

static void get_bucket_location(sim_call_t *c)
{
    json_t *b = access_bucket(c, 0);
    if (!b)
        return;
    const char *region = str_field(b, "location_constraint", str_field(b, "region", "us-east-1"));
    ob_buf_t x = {0};
    if (!strcmp(region, "us-east-1"))
        ob_buf_printf(&x, "<LocationConstraint xmlns=\"%s\"/>", S3_NS);
    else
        ob_buf_printf(&x, "<LocationConstraint xmlns=\"%s\">%s</LocationConstraint>", S3_NS,
                      region);
    sim_reply_s3(c, 200, x.data);
    ob_buf_free(&x);
}

/* ---- bucket policies ---- */

/* S3 actions a bucket policy may name (case-insensitive, after "s3:"). */
static const char *const s3_actions[] = {"AbortMultipartUpload",
                                         "BypassGovernanceRetention",
                                         "CreateBucket",
                                         "DeleteBucket",
                                         "DeleteBucketOwnershipControls",
                                         "DeleteBucketPolicy",
                                         "DeleteBucketWebsite",
                                         "DeleteObject",
                                         "DeleteObjectTagging",
                                         "DeleteObjectVersion",
                                         "DeleteObjectVersionTagging",
                                         "GetAccelerateConfiguration",
                                         "GetAnalyticsConfiguration",
                                         "GetBucketAcl",
                                         "GetBucketCORS",
                                         "GetBucketLocation",
                                         "GetBucketLogging",
                                         "GetBucketNotification",
                                         "GetBucketObjectLockConfiguration",
                                         "GetBucketOwnershipControls",
                                         "GetBucketPolicy",
                                         "GetBucketPolicyStatus",
                                         "GetBucketPublicAccessBlock",
                                         "GetBucketRequestPayment",
                                         "GetBucketTagging",
                                         "GetBucketVersioning",
                                         "GetBucketWebsite",
                                         "GetEncryptionConfiguration",
                                         "GetIntelligentTieringConfiguration",
                                         "GetInventoryConfiguration",
                                         "GetLifecycleConfiguration",
                                         "GetMetricsConfiguration",
                                         "GetObject",
                                         "GetObjectAcl",
                                         "GetObjectAttributes",
                                         "GetObjectLegalHold",
                                         "GetObjectRetention",
                                         "GetObjectTagging",
                                         "GetObjectTorrent",
                                         "GetObjectVersion",
                                         "GetObjectVersionAcl",
                                         "GetObjectVersionAttributes",
                                         "GetObjectVersionForReplication",
                                         "GetObjectVersionTagging",
                                         "GetObjectVersionTorrent",
                                         "GetReplicationConfiguration",
                                         "ListBucket",
                                         "ListBucketMultipartUploads",
                                         "ListBucketVersions",
                                         "ListMultipartUploadParts",
                                         "ObjectOwnerOverrideToBucketOwner",
                                         "PutAccelerateConfiguration",
                                         "PutAnalyticsConfiguration",
                                         "PutBucketAcl",
                                         "PutBucketCORS",
                                         "PutBucketLogging",
                                         "PutBucketNotification",
                                         "PutBucketObjectLockConfiguration",
                                         "PutBucketOwnershipControls",
                                         "PutBucketPolicy",
                                         "PutBucketPublicAccessBlock",
                                         "PutBucketRequestPayment",
                                         "PutBucketTagging",
                                         "PutBucketVersioning",
                                         "PutBucketWebsite",
                                         "PutEncryptionConfiguration",
                                         "PutIntelligentTieringConfiguration",
                                         "PutInventoryConfiguration",
                                         "PutLifecycleConfiguration",
                                         "PutMetricsConfiguration",
                                         "PutObject",
                                         "PutObjectAcl",
                                         "PutObjectLegalHold",
                                         "PutObjectRetention",
                                         "PutObjectTagging",
                                         "PutObjectVersionAcl",
                                         "PutObjectVersionTagging",
                                         "PutReplicationConfiguration",
                                         "ReplicateDelete",
                                         "ReplicateObject",
                                         "ReplicateTags",
                                         "RestoreObject",
                                         NULL};

/* Case-insensitive glob with '*' and '?'. */
static int glob_match(const char *pat, const char *s)
{
    if (!*pat)
        return !*s;
    if (*pat == '*')
        return glob_match(pat + 1, s) || (*s && glob_match(pat, s + 1));
    if (!*s)
        return 0;
    if (*pat == '?' || tolower((unsigned char)*pat) == tolower((unsigned char)*s))
        return glob_match(pat + 1, s + 1);
    return 0;
}

/* Object-level actions apply to "bucket/key" resources, the others to the bucket. */
static int action_on_objects(const char *name)
{
    return strcasestr(name, "Object") || !strcasecmp(name, "AbortMultipartUpload") ||
           !strcasecmp(name, "ListMultipartUploadParts") || !strncasecmp(name, "Replicate", 9) ||
           !strcasecmp(name, "BypassGovernanceRetention");
}

/* A string or a list of strings (policy grammar); 0 when neither. */
static int str_or_list(json_t *v)
{
    if (json_is_string(v))
        return 1;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return 0;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e))
            return 0;
    }
    return 1;
}

static const char *list_item(json_t *v, size_t i)
{
    return json_is_string(v) ? (i == 0 ? json_string_value(v) : NULL)
                             : json_string_value(json_array_get(v, i));
}

static int principal_valid(json_t *p)
{
    if (json_is_string(p))
        return !strcmp(json_string_value(p), "*");
    if (!json_is_object(p) || json_object_size(p) == 0)
        return 0;
    const char *k;
    json_t *v;
    json_object_foreach(p, k, v)
    {
        if (!str_or_list(v))
            return 0;
        for (size_t i = 0; list_item(v, i); i++) {
            const char *s = list_item(v, i);
            if (!strcmp(k, "AWS")) {
                size_t n = strlen(s), d = 0;
                while (d < n && isdigit((unsigned char)s[d]))
                    d++;
                if (strcmp(s, "*") != 0 && !(n == 12 && d == 12) && strncmp(s, "arn:aws:", 8) != 0)
                    return 0;
            } else if (!strcmp(k, "Service")) {
                if (!ends_with(s, ".amazonaws.com") && !ends_with(s, ".amazonaws.com.cn"))
                    return 0;
            } else if (strcmp(k, "CanonicalUser") != 0 && strcmp(k, "Federated") != 0) {
                return 0;
            }
        }
    }
    return 1;
}

static int principal_public(json_t *p)
{
    if (json_is_string(p))
        return !strcmp(json_string_value(p), "*");
    json_t *aws = json_object_get(p, "AWS");
    for (size_t i = 0; aws && list_item(aws, i); i++)
        if (!strcmp(list_item(aws, i), "*"))
            return 1;
    return 0;
}

/* Validate a bucket policy as S3 does; NULL when fine, else the MalformedPolicy
 * message. *is_public tells whether some Allow statement grants everyone
 * without conditions (what BlockPublicPolicy refuses). */
static const char *policy_problem(const char *text, size_t len, const char *bucket, int *is_public,
                                  char *buf, size_t bufsz)
{
    static const char bad_json[] = "Policies must be valid JSON and the first byte must be '{'";
    *is_public = 0;
    if (!len || text[0] != '{')
        return bad_json;
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    const char *why = NULL;
    if (!json_is_object(doc)) {
        why = bad_json;
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v)
    {
        if (strcmp(k, "Version") != 0 && strcmp(k, "Id") != 0 && strcmp(k, "Statement") != 0) {
            snprintf(buf, bufsz, "Unknown field %s", k);
            why = buf;
            goto out;
        }
    }
    json_t *st = json_object_get(doc, "Statement");
    if (!st || (json_is_array(st) && json_array_size(st) == 0)) {
        why = "Missing required field Statement";
        goto out;
    }
    size_t nst = json_is_array(st) ? json_array_size(st) : 1;
    for (size_t si = 0; si < nst; si++) {
        json_t *s = json_is_array(st) ? json_array_get(st, si) : st;
        if (!json_is_object(s)) {
            why = bad_json;
            goto out;
        }
        json_object_foreach(s, k, v)
        {
            static const char *const fields[] = {
                "Sid",       "Effect",   "Principal",   "NotPrincipal", "Action",
                "NotAction", "Resource", "NotResource", "Condition",    NULL};
            int known = 0;
            for (int i = 0; fields[i]; i++)
                known |= !strcmp(k, fields[i]);
            if (!known) {
                snprintf(buf, bufsz, "Unknown field %s", k);
                why = buf;
                goto out;
            }
        }
        const char *effect = json_string_value(json_object_get(s, "Effect"));
        if (!json_object_get(s, "Effect")) {
            why = "Missing required field Effect";
            goto out;
        }
        if (!effect || (strcmp(effect, "Allow") != 0 && strcmp(effect, "Deny") != 0)) {
            snprintf(buf, bufsz, "Invalid effect: %s", effect ? effect : "");
            why = buf;
            goto out;
        }
        json_t *pr = json_object_get(s, "Principal");
        json_t *npr = json_object_get(s, "NotPrincipal");
        if (!pr && !npr) {
            why = "Missing required field Principal";
            goto out;
        }
        if ((pr && !principal_valid(pr)) || (npr && !principal_valid(npr))) {
            why = "Invalid principal in policy";
            goto out;
        }
        json_t *act = json_object_get(s, "Action");
        if (!act)
            act = json_object_get(s, "NotAction");
        if (!act) {
            why = "Missing required field Action";
            goto out;
        }
        json_t *res = json_object_get(s, "Resource");
        if (!res)
            res = json_object_get(s, "NotResource");
        if (!res) {
            why = "Missing required field Resource";
            goto out;
        }
        if (!str_or_list(act)) {
            why = "Policy has invalid action";
            goto out;
        }
        if (!str_or_list(res)) {
            why = "Policy has invalid resource";
            goto out;
        }
        int any_bucket_action = 0, any_object_action = 0;
        for (size_t i = 0; list_item(act, i); i++) {
            const char *a = list_item(act, i);
            if (!strcmp(a, "*")) {
                any_bucket_action = any_object_action = 1;
                continue;
            }
            if (strncasecmp(a, "s3:", 3) != 0) {
                why = "Policy has invalid action";
                goto out;
            }
            int matched = 0;
            for (int j = 0; s3_actions[j]; j++) {
                if (glob_match(a + 3, s3_actions[j])) {
                    matched = 1;
                    if (action_on_objects(s3_actions[j]))
                        any_object_action = 1;
                    else
                        any_bucket_action = 1;
                }
            }
            if (!matched) {
                why = "Policy has invalid action";
                goto out;
            }
        }
        char arn[300];
        snprintf(arn, sizeof(arn), "arn:aws:s3:::%s", bucket);
        size_t an = strlen(arn);
        int on_bucket = 0, on_objects = 0;
        for (size_t i = 0; list_item(res, i); i++) {
            const char *r = list_item(res, i);
            if (strncmp(r, arn, an) != 0 || (r[an] != '\0' && r[an] != '/' && r[an] != '*')) {
                why = "Policy has invalid resource";
                goto out;
            }
            if (r[an] == '\0')
                on_bucket = 1;
            else if (r[an] == '*')
                on_bucket = on_objects = 1;
            else
                on_objects = 1;
        }
        if (json_object_get(s, "Action") && json_object_get(s, "Resource") &&
            !((any_bucket_action && on_bucket) || (any_object_action && on_objects))) {
            why = "Action does not apply to any resource(s) in statement";
            goto out;
        }
        json_t *cond = json_object_get(s, "Condition");
        if (cond && !json_is_object(cond)) {
            why = "Invalid Condition in policy";
            goto out;
        }
        if (!strcmp(effect, "Allow") && pr && principal_public(pr) && !cond)
            *is_public = 1;
    }
out:
    json_decref(doc);
    return why;
}

static void put_bucket_policy(sim_call_t *c)
{
    json_t *b = access_bucket(c, 1);
    if (!b || check_integrity(c) != 0)
        return;
    const char *body = c->http->body ? c->http->body : "";
    size_t len = c->http->body_len;
    if (len > POLICY_MAX_BYTES) {
        sim_error(c, 400, "PolicyTooLarge", "Policy exceeds the maximum allowed document size.");
        return;
    }
    char buf[300];
    int is_public = 0;
    const char *why = policy_problem(body, len, param(c, "bucket"), &is_public, buf, sizeof(buf));
    if (why) {
        sim_error(c, 400, "MalformedPolicy", "%s", why);
        return;
    }
    json_t *pab = json_object_get(b, "public_access_block");
    if (is_public && json_is_true(json_object_get(pab, "BlockPublicPolicy"))) {
        sim_error(c, 403, "AccessDenied",
                  "User: %s is not authorized to perform: s3:PutBucketPolicy on resource: "
                  "\"arn:aws:s3:::%s\" because public policies are blocked by the "
                  "BlockPublicPolicy block public access setting.",
                  c->caller_arn, param(c, "bucket"));
        return;
    }
    json_object_set_new(b, "policy", json_stringn(body, len));
    sim_touch(c->sim);
    sim_reply_s3(c, 204, NULL);
}

static void get_bucket_policy(sim_call_t *c)
{
    json_t *b = access_bucket(c, 1);
    if (!b)
        return;
    json_t *p = json_object_get(b, "policy");
    if (!json_is_string(p)) {
        sim_error(c, 404, "NoSuchBucketPolicy", "The bucket policy does not exist");
        return;
    }
    sim_reply_s3(c, 200, NULL); /* request ids */
    sim_reply(c, 200, "application/json", json_string_value(p), json_string_length(p));
}

static void delete_bucket_policy(sim_call_t *c)
{
    json_t *b = access_bucket(c, 1);
    if (!b)
        return;
    json_object_del(b, "policy");
    sim_touch(c->sim);
    sim_reply_s3(c, 204, NULL);
}

/* ---- public access block, encryption, ownership ---- */

static const char *const pab_fields[] = {"BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                                         "RestrictPublicBuckets", NULL};

static void put_public_access_block(sim_call_t *c)
{
    json_t *b = access_bucket(c, 1);
    ob_xml_doc_t *doc = NULL;
    if (!b || check_integrity(c) != 0)
        return;
    const ob_xml_node_t *root = xml_body(c, "PublicAccessBlockConfiguration", &doc);
    if (!root)
        return;
    json_t *pab = json_pack("{s:b, s:b, s:b, s:b}", pab_fields[0], 0, pab_fields[1], 0,
                            pab_fields[2], 0, pab_fields[3], 0);
    int ok = 1;
    for (const ob_xml_node_t *n = ob_xml_first_child(root); n && ok; n = ob_xml_next(n, NULL)) {
        int known = 0, v = 0;
        for (int i = 0; pab_fields[i]; i++)
            known |= !strcmp(ob_xml_name(n), pab_fields[i]);
        ok = known && ob_xml_child_count(root, ob_xml_name(n)) == 1 &&
             parse_bool(ob_xml_text(n), &v) == 0;
        if (ok)
            json_object_set_new(pab, ob_xml_name(n), json_boolean(v));
    }
    ob_xml_free(doc);
    if (!ok) {
        json_decref(pab);
        malformed_xml(c);
        return;
    }
    json_object_set_new(b, "public_access_block", pab);
    sim_touch(c->sim);
    sim_reply_s3(c, 200, NULL);
}

static void get_public_access_block(sim_call_t *c)
{
    json_t *b = access_bucket(c, 1);
    if (!b)
        return;
    json_t *pab = json_object_get(b, "public_access_block");
    if (!json_is_object(pab)) {
        sim_error(c, 404, "NoSuchPublicAccessBlockConfiguration",
                  "The public access block configuration was not found");
        return;
    }
    ob_buf_t x = {0};
    ob_buf_printf(&x, "<PublicAccessBlockConfiguration xmlns=\"%s\">", S3_NS);
    for (int i = 0; pab_fields[i]; i++)
        ob_buf_printf(&x, "<%s>%s</%s>", pab_fields[i],
                      json_is_true(json_object_get(pab, pab_fields[i])) ? "true" : "false",
                      pab_fields[i]);
    ob_buf_puts(&x, "</PublicAccessBlockConfiguration>");
    sim_reply_s3(c, 200, x.data);
    ob_buf_free(&x);
}

static void delete_public_access_block(sim_call_t *c)
{
    json_t *b = access_bucket(c, 1);
    if (!b)
        return;
    json_object_del(b, "public_access_block");
    sim_touch(c->sim);
    sim_reply_s3(c, 204, NULL);
}

static void put_bucket_encryption(sim_call_t *c)
{
    json_t *b = access_bucket(c, 1);
    ob_xml_doc_t *doc = NULL;
    if (!b || check_integrity(c) != 0)
        return;
    const ob_xml_node_t *root = xml_body(c, "ServerSideEncryptionConfiguration", &doc);
    if (!root)
        return;
    const ob_xml_node_t *rule = ob_xml_child(root, "Rule");
    const ob_xml_node_t *def = ob_xml_child(rule, "ApplyServerSideEncryptionByDefault");
    const char *alg = ob_xml_path_text(def, "SSEAlgorithm");
    const char *kms = ob_xml_path_text(def, "KMSMasterKeyID");
    const char *bke = ob_xml_path_text(rule, "BucketKeyEnabled");
    int bucket_key = 0;
    int ok = rule && ob_xml_child_count(root, NULL) == 1 && def && alg &&
             (!strcmp(alg, "AES256") || !strcmp(alg, "aws:kms") || !strcmp(alg, "aws:kms:dsse")) &&
             (!bke || parse_bool(bke, &bucket_key) == 0);
    if (!ok) {
        ob_xml_free(doc);
        malformed_xml(c);
        return;
    }
    if (kms && !strcmp(alg, "AES256")) {
        ob_xml_free(doc);
        sim_error(c, 400, "InvalidArgument",
                  "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms "
                  "or aws:kms:dsse");
        return;
    }
    json_t *enc = json_pack("{s:s, s:b}", "SSEAlgorithm", alg, "BucketKeyEnabled", bucket_key);
    if (kms)
        json_object_set_new(enc, "KMSMasterKeyID", json_string(kms));
    ob_xml_free(doc);
    json_object_set_new(b, "encryption", enc);
    sim_touch(c->sim);
    sim_reply_s3(c, 200, NULL);
}

static void get_bucket_encryption(sim_call_t *c)
{
    json_t *b = access_bucket(c, 1);
    if (!b)
        return;
    json_t *enc = json_object_get(b, "encryption");
    if (!json_is_object(enc)) {
        sim_error(c, 404, "ServerSideEncryptionConfigurationNotFoundError",
                  "The server side encryption configuration was not found");
        return;
    }
    ob_buf_t x = {0};
    ob_buf_printf(&x,
                  "<ServerSideEncryptionConfiguration xmlns=\"%s\"><Rule>"
                  "<ApplyServerSideEncryptionByDefault><SSEAlgorithm>",
                  S3_NS);
    sim_xml_text(&x, str_field(enc, "SSEAlgorithm", "AES256"));
    ob_buf_puts(&x, "</SSEAlgorithm>");
    if (json_object_get(enc, "KMSMasterKeyID")) {
        ob_buf_puts(&x, "<KMSMasterKeyID>");
        sim_xml_text(&x, str_field(enc, "KMSMasterKeyID", ""));
        ob_buf_puts(&x, "</KMSMasterKeyID>");
    }
    ob_buf_printf(&x,
                  "</ApplyServerSideEncryptionByDefault><BucketKeyEnabled>%s</BucketKeyEnabled>"
                  "</Rule></ServerSideEncryptionConfiguration>",
                  json_is_true(json_object_get(enc, "BucketKeyEnabled")) ? "true" : "false");
    sim_reply_s3(c, 200, x.data);
    ob_buf_free(&x);
}

static void delete_bucket_encryption(sim_call_t *c)
{
    json_t *b = access_bucket(c, 1);
    if (!b)
        return;
    /* Since 2023 a bucket always has default encryption: deleting the
     * configuration falls back to SSE-S3. */
    json_object_set_new(b, "encryption", default_encryption());
    sim_touch(c->sim);
    sim_reply_s3(c, 204, NULL);
}

static void put_ownership_controls(sim_call_t *c)
{
    json_t *b = access_bucket(c, 1);
    ob_xml_doc_t *doc = NULL;
    if (!b || check_integrity(c) != 0)
        return;
    const ob_xml_node_t *root = xml_body(c, "OwnershipControls", &doc);
    if (!root)
        return;
    const ob_xml_node_t *rule = ob_xml_child(root, "Rule");
    const char *own = ob_xml_path_text(rule, "ObjectOwnership");
    int ok = rule && ob_xml_child_count(root, NULL) == 1 && own &&
             (!strcmp(own, "BucketOwnerEnforced") || !strcmp(own, "BucketOwnerPreferred") ||
              !strcmp(own, "ObjectWriter"));
    if (ok)
        json_object_set_new(b, "ownership", json_string(own));
    ob_xml_free(doc);
    if (!ok) {
        malformed_xml(c);
        return;
    }
    sim_touch(c->sim);
    sim_reply_s3(c, 200, NULL);
}

static void get_ownership_controls(sim_call_t *c)
{
    json_t *b = access_bucket(c, 1);
    if (!b)
        return;
    const char *own = json_string_value(json_object_get(b, "ownership"));
    if (!own) {
        sim_error(c, 404, "OwnershipControlsNotFoundError",
                  "The bucket ownership controls were not found");
        return;
    }
    ob_buf_t x = {0};
    ob_buf_printf(&x,
                  "<OwnershipControls xmlns=\"%s\"><Rule><ObjectOwnership>%s</ObjectOwnership>"
                  "</Rule></OwnershipControls>",
                  S3_NS, own);
    sim_reply_s3(c, 200, x.data);
    ob_buf_free(&x);
}

static void delete_ownership_controls(sim_call_t *c)
{
    json_t *b = access_bucket(c, 1);
    if (!b)
        return;
    json_object_del(b, "ownership");
    sim_touch(c->sim);
    sim_reply_s3(c, 204, NULL);
}

/* ---- dispatch ---- */

typedef struct handler_s {
    const char *op;
    void (*fn)(sim_call_t *c);
} handler_t;

static const handler_t handlers[] = {
    {"ListBuckets", list_buckets},
    {"CreateBucket", create_bucket},
    {"HeadBucket", head_bucket},
    {"DeleteBucket", delete_bucket},
    {"GetBucketLocation", get_bucket_location},
    {"PutBucketPolicy", put_bucket_policy},
    {"GetBucketPolicy", get_bucket_policy},
    {"DeleteBucketPolicy", delete_bucket_policy},
    {"PutPublicAccessBlock", put_public_access_block},
    {"GetPublicAccessBlock", get_public_access_block},
    {"DeletePublicAccessBlock", delete_public_access_block},
    {"PutBucketEncryption", put_bucket_encryption},
    {"GetBucketEncryption", get_bucket_encryption},
    {"DeleteBucketEncryption", delete_bucket_encryption},
    {"PutBucketOwnershipControls", put_ownership_controls},
    {"GetBucketOwnershipControls", get_ownership_controls},
    {"DeleteBucketOwnershipControls", delete_ownership_controls},
    {NULL, NULL},
};

static void s3_handle(sim_call_t *c)
{
    if (!c->account[0]) {
        sim_error(c, 403, "AccessDenied", "Access Denied");
        return;
    }
    for (int i = 0; handlers[i].op; i++)
        if (!strcmp(handlers[i].op, c->op)) {
            handlers[i].fn(c);
            return;
        }
    sim_error(c, 501, "NotImplemented",
              "A header you provided implies functionality that is not "
              "implemented");
}

const sim_service_t sim_s3_service = {OB_SVC_S3, s3_identify, s3_handle, NULL, NULL};

/* ---- drift (POST /_sim/drift, sim_drift.c) ---- */

/* Does a statement grant something to the billingreports service principal? */
static int grants_billingreports(json_t *st)
{
    json_t *svc = json_object_get(json_object_get(st, "Principal"), "Service");
    for (size_t i = 0; list_item(svc, i); i++)
        if (!strcmp(list_item(svc, i), "billingreports.amazonaws.com"))
            return 1;
    return 0;
}

/* bucket_policy: the Policy given, else the policy without the statements
 * for billingreports.amazonaws.com (what breaks Cost and Usage Reports);
 * when none is left the bucket has no policy. */
static int drift_policy(sim_t *sim, const char *name, json_t *b, json_t *body, json_t *out)
{
    json_t *given = json_object_get(body, "Policy");
    char *text = NULL;
    if (given) {
        text = json_is_string(given) ? ob_strdup(json_string_value(given))
                                     : json_dumps(given, JSON_COMPACT);
        char why[300];
        int is_public = 0;
        const char *bad =
            json_is_object(given) || json_is_string(given)
                ? policy_problem(text, strlen(text), name, &is_public, why, sizeof(why))
                : "Policy must be a policy document";
        if (bad) {
            json_object_set_new(out, "error", json_sprintf("Policy: %s", bad));
            free(text);
            return 400;
        }
    } else {
        json_t *doc = json_loads(str_field(b, "policy", ""), 0, NULL);
        json_t *st = json_object_get(doc, "Statement");
        json_t *keep = json_array();
        size_t i, dropped = 0;
        json_t *x;
        if (json_is_object(st)) {
            json_array_append(keep, st);
        } else {
            json_array_foreach(st, i, x)
            {
                json_array_append(keep, x);
            }
        }
        for (i = json_array_size(keep); i-- > 0;)
            if (grants_billingreports(json_array_get(keep, i))) {
                json_array_remove(keep, i);
                dropped++;
            }
        if (!doc || !dropped) {
            json_object_set_new(
                out, "error",
                json_sprintf("bucket %s has %s; give the Policy to set", name,
                             doc ? "no statement for billingreports.amazonaws.com" : "no policy"));
            json_decref(keep);
            json_decref(doc);
            return doc ? 400 : 404;
        }
        json_object_set_new(doc, "Statement", keep);
        text = json_array_size(keep) ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
    }
    if (text)
        json_object_set_new(b, "policy", json_string(text));
    else
        json_object_del(b, "policy");
    json_object_set_new(out, "policy", text ? json_string(text) : json_null());
    free(text);
    return 200;
}

int sim_s3_drift(sim_t *sim, const char *account, const char *kind, json_t *body, json_t **out)
{
    const char *name = json_string_value(json_object_get(body, "Bucket"));
    json_t *all = sim_section(sim, "buckets");
    json_t *b = name ? json_object_get(all, name) : NULL;
    if (!name) {
        *out = sim_admin_err("%s needs a Bucket", kind);
        return 400;
    }
    if (!b || strcmp(str_field(b, "owner", ""), account) != 0) {
        *out = sim_admin_err("account %s has no bucket %s", account, name);
        return 404;
    }
    json_t *res = json_pack("{s:s, s:s, s:s, s:s}", "status", "drifted", "kind", kind, "account",
                            account, "bucket", name);
    int status = 200;
    if (!strcmp(kind, "bucket_policy")) {
        status = drift_policy(sim, name, b, body, res);
    } else if (!strcmp(kind, "delete_bucket_policy") || !strcmp(kind, "public_access")) {
        const char *field = kind[0] == 'd' ? "policy" : "public_access_block";
        if (!json_object_get(b, field)) {
            json_object_set_new(res, "error",
                                json_sprintf("bucket %s has no %s", name,
                                             kind[0] == 'd' ? "policy" : "public access block"));
            status = 404;
        }
        json_object_del(b, field);
    } else if (!strcmp(kind, "ownership")) {
        /* ObjectWriter (ACLs back on) unless given; null removes the controls. */
        json_t *want = json_object_get(body, "Ownership");
        const char *own = want ? json_string_value(want) : "ObjectWriter";
        if (want && !json_is_null(want) &&
            (!own || (strcmp(own, "ObjectWriter") != 0 && strcmp(own, "BucketOwnerPreferred") &&
                      strcmp(own, "BucketOwnerEnforced")))) {
            json_object_set_new(res, "error",
                                json_string("Ownership must be ObjectWriter, "
                                            "BucketOwnerPreferred, BucketOwnerEnforced or null"));
            status = 400;
        } else if (!own && !json_object_get(b, "ownership")) {
            json_object_set_new(res, "error",
                                json_sprintf("bucket %s has no ownership controls", name));
            status = 404;
        } else if (own) {
            json_object_set_new(b, "ownership", json_string(own));
        } else {
            json_object_del(b, "ownership");
        }
        json_object_set_new(res, "ownership", own ? json_string(own) : json_null());
    } else if (!strcmp(kind, "encryption")) {
        /* A bucket always has SSE-S3 at least: the drift is SSE-KMS, with the
         * AWS managed key aws/s3 unless a KMSMasterKeyID is given. */
        json_t *key = json_object_get(body, "KMSMasterKeyID");
        json_t *enc = json_pack("{s:s, s:b}", "SSEAlgorithm", "aws:kms", "BucketKeyEnabled", 0);
        if (json_is_string(key))
            json_object_set(enc, "KMSMasterKeyID", key);
        json_object_set(res, "encryption", enc);
        json_object_set_new(b, "encryption", enc);
    } else {
        json_object_del(all, name);
    }
    if (status != 200) {
        *out = json_pack("{s:O}", "error", json_object_get(res, "error"));
        json_decref(res);
        return status;
    }
    sim_touch(sim);
    *out = res;
    return 200;
}
