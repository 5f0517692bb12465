/*
 * ob_credsrc: the kinds of credential sources. Each is an ob_credsrc_t of
 * the core (ob_creds.c) with its own data and fetch: STS (AssumeRole,
 * AssumeRoleWithWebIdentity) through ob_aws, container and IMDS through
 * ob_http. Then the default chain that picks one, and the assume-role cache
 * for target accounts.
 */
#include "ob_credsrc.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ob_alloc.h"
#include "ob_awsconfig.h"
#include "ob_awsproto.h"
#include "ob_hash.h"
#include "ob_list.h"
#include "ob_log.h"
#include "ob_time.h"
#include "ob_xml.h"

#define METADATA_TIMEOUT_MS  1000 /* IMDS, as botocore's default */
#define CONTAINER_TIMEOUT_MS 2000 /* container endpoint, as botocore */
#define METADATA_MAX_BODY    (64 * 1024)

typedef struct assume_s {
    ob_aws_t *aws;
    ob_credsrc_t *base;
    const char *role_arn;    /* in text, as the strings below */
    const char *external_id; /* NULL: none */
    const char *session_name;
    const char *region;
    int duration_s;
    ob_aws_call_t *call;
    size_t text_len;
    char text[]; /* one allocation with the source: one per target account */
} assume_t;

typedef struct webid_s {
    ob_aws_t *aws;
    char *token_file;
    char *role_arn;
    char *session_name;
    char region[64];
    ob_aws_call_t *call;
} webid_t;

typedef struct httpsrc_s {
    ob_aws_t *aws;
    char *url;        /* container: the full URL; IMDS: the base endpoint */
    char *auth;       /* container: Authorization value */
    char *auth_file;  /* container: file holding it */
    char *imds_token; /* IMDS: session token of the current fetch */
    char *role;       /* IMDS: role name */
    int step;         /* IMDS: 0 token, 1 role name, 2 credentials */
    ob_http_xfer_t *xfer;
} httpsrc_t;

/* ---- static ---- */

static const ob_credsrc_ops_t static_ops = {"static", NULL, NULL};

ob_credsrc_t *ob_credsrc_static(ob_aws_t *aws, const char *akid, const char *secret,
                                const char *token, const char *describe)
{
    if (!akid || !*akid || !secret || !*secret)
        return NULL;
    ob_credsrc_t *s = ob_credsrc_new(ob_aws_loop(aws), &static_ops, NULL);
    ob_credsrc_set_fixed(s, akid, secret, token);
    ob_credsrc_set_describe(s, "%s", describe ? describe : "static credentials");
    return s;
}

/* ---- STS replies (AssumeRole, AssumeRoleWithWebIdentity) ---- */

static ob_err_t parse_sts_credentials(const ob_aws_result_t *res, const char *action,
                                      ob_aws_creds_t *out, char *errstr, size_t errstr_size)
{
    ob_xml_doc_t *doc = NULL;
    const ob_xml_node_t *result = NULL;
    ob_err_t e = ob_query_parse_result(res->body.data, res->body.len, action, &doc, &result, errstr,
                                       errstr_size);
    if (e != OB_OK)
        return e;
    const char *akid = ob_xml_path_text(result, "Credentials/AccessKeyId");
    const char *secret = ob_xml_path_text(result, "Credentials/SecretAccessKey");
    const char *token = ob_xml_path_text(result, "Credentials/SessionToken");
    const char *exp = ob_xml_path_text(result, "Credentials/Expiration");
    const char *arn = ob_xml_path_text(result, "AssumedRoleUser/Arn");
    int64_t exp_ms = 0;
    if (!akid || !*akid || !secret || !*secret || !token || !*token ||
        ob_time_parse_iso_ms(exp, &exp_ms) != 0) {
        ob_xml_free(doc);
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE,
                       "%s reply lacks complete credentials (key, secret, token, expiration)",
                       action);
    }
    memset(out, 0, sizeof(*out));
    /* arn:aws:sts::123456789012:assumed-role/NAME/SESSION */
    if (arn) {
        const char *p = arn;
        for (int i = 0; i < 4 && p; i++) {
            p = strchr(p, ':');
            if (p)
                p++;
        }
        if (p && strlen(p) >= 12 && p[12] == ':') {
            memcpy(out->account_id, p, 12);
            out->account_id[12] = '\0';
        }
    }
    e = ob_aws_creds_set(out, akid, secret, token, exp_ms);
    ob_xml_free(doc);
    return e;
}

/* ---- AssumeRole ---- */

/* An STS call's failure, kept for the calls waiting on it. */
static void note_sts_failure(ob_credsrc_t *s, const ob_aws_result_t *res)
{
    ob_credsrc_note_failure(s, res->retry_class,
                            res->err == OB_ERR_AWS && res->aws.code[0] ? res->aws.code
                                                                       : ob_err2str(res->err));
}

/* A 200 whose body was cut short (a connection dropped mid-reply): nothing
 * STS decided, so it is tried again. */
static void note_truncated(ob_credsrc_t *s)
{
    ob_credsrc_note_failure(s, OB_RETRY_TRANSIENT, ob_err2str(OB_ERR_PARSE));
}

/* How an STS fetch ends (AssumeRole and AssumeRoleWithWebIdentity alike). */
static void sts_fetched(ob_credsrc_t *s, const ob_aws_result_t *res, const char *action)
{
    if (res->err != OB_OK) {
        note_sts_failure(s, res);
        ob_credsrc_fetched(s, res->err, res->errmsg, NULL);
        return;
    }
    ob_aws_creds_t c;
    char err[256];
    memset(&c, 0, sizeof(c));
    if (parse_sts_credentials(res, action, &c, err, sizeof(err)) != OB_OK) {
        note_truncated(s);
        ob_credsrc_fetched(s, OB_ERR_PARSE, err, NULL);
    } else {
        ob_credsrc_fetched(s, OB_OK, NULL, &c);
    }
    ob_aws_creds_clear(&c);
}

static void assume_done(ob_aws_result_t *res, void *arg)
{
    ((assume_t *)ob_credsrc_data(arg))->call = NULL;
    sts_fetched(arg, res, "AssumeRole");
}

static void assume_fetch(ob_credsrc_t *s)
{
    assume_t *a = ob_credsrc_data(s);
    ob_aws_req_t req;
    memset(&req, 0, sizeof(req));
    char err[512] = "", dur[16];
    snprintf(dur, sizeof(dur), "%d", a->duration_s);
    ob_err_t e = ob_query_init(&req, OB_SVC_STS, "AssumeRole", err, sizeof(err));
    if (e == OB_OK)
        e = ob_query_add(&req, "RoleArn", a->role_arn, err, sizeof(err));
    if (e == OB_OK)
        e = ob_query_add(&req, "RoleSessionName", a->session_name, err, sizeof(err));
    if (e == OB_OK)
        e = ob_query_add(&req, "DurationSeconds", dur, err, sizeof(err));
    if (e == OB_OK && a->external_id)
        e = ob_query_add(&req, "ExternalId", a->external_id, err, sizeof(err));
    if (e == OB_OK) {
        ob_aws_target_t t = {.region = a->region, .creds = a->base};
        a->call = ob_aws_send(a->aws, &req, &t, assume_done, s, err, sizeof(err));
        if (!a->call)
            e = OB_ERR_INVALID_ARG;
    }
    if (e != OB_OK) {
        ob_aws_req_free(&req);
        ob_credsrc_fetched(s, e, err, NULL);
    }
}

static void assume_destroy(void *data)
{
    assume_t *a = data;
    ob_credsrc_unref(a->base);
    explicit_bzero(a->text, a->text_len); /* the ExternalId is among them */
    free(a);
}

static const ob_credsrc_ops_t assume_ops = {"assume-role", assume_fetch, assume_destroy};

ob_credsrc_t *ob_credsrc_assume_role(ob_aws_t *aws, ob_credsrc_t *base, const char *role_arn,
                                     const char *external_id, const char *session_name,
                                     int duration_s, const char *region)
{
    if (!base || !role_arn || !*role_arn)
        return NULL;
    const char *ext = external_id && *external_id ? external_id : NULL;
    const char *sess = session_name && *session_name ? session_name : "onboard";
    const char *reg = region && *region ? region : ob_aws_default_region(aws);
    const char *parts[] = {role_arn, ext ? ext : "", sess, reg ? reg : ""};
    size_t lens[4], total = 0;
    for (int i = 0; i < 4; i++)
        total += lens[i] = strlen(parts[i]) + 1;
    assume_t *a = ob_calloc(1, sizeof(*a) + total);
    a->text_len = total;
    char *p = a->text;
    const char **dst[] = {&a->role_arn, &a->external_id, &a->session_name, &a->region};
    for (int i = 0; i < 4; i++) {
        *dst[i] = memcpy(p, parts[i], lens[i]);
        p += lens[i];
    }
    if (!ext)
        a->external_id = NULL;
    a->aws = aws;
    a->base = ob_credsrc_ref(base);
    a->duration_s = duration_s > 0 ? duration_s : 3600;
    ob_credsrc_t *s = ob_credsrc_new(ob_aws_loop(aws), &assume_ops, a);
    ob_credsrc_set_describe(s, "assume-role %.200s%s", role_arn,
                            a->external_id ? " (with ExternalId)" : "");
    return s;
}

/* ---- AssumeRoleWithWebIdentity ---- */

static void webid_done(ob_aws_result_t *res, void *arg)
{
    ((webid_t *)ob_credsrc_data(arg))->call = NULL;
    sts_fetched(arg, res, "AssumeRoleWithWebIdentity");
}

/* Small local file, read at refresh time (hourly): not worth a thread. */
static char *read_small_file(const char *path, size_t max, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        ob_errf(errstr, errstr_size, OB_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = ob_malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    fclose(f);
    if (!buf || n > max) {
        free(buf);
        ob_errf(errstr, errstr_size, OB_ERR_TOO_LARGE, "%s is larger than %zu bytes", path, max);
        return NULL;
    }
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        n--;
    buf[n] = '\0';
    return buf;
}

static void webid_fetch(ob_credsrc_t *s)
{
    webid_t *w = ob_credsrc_data(s);
    char err[512] = "";
    char *token = read_small_file(w->token_file, 64 * 1024, err, sizeof(err));
    ob_aws_req_t req;
    memset(&req, 0, sizeof(req));
    ob_err_t e = token ? OB_OK : OB_ERR_CREDENTIALS;
    if (e == OB_OK && !*token)
        e = ob_errf(err, sizeof(err), OB_ERR_CREDENTIALS, "web identity token file %s is empty",
                    w->token_file);
    if (e == OB_OK)
        e = ob_query_init(&req, OB_SVC_STS, "AssumeRoleWithWebIdentity", err, sizeof(err));
    if (e == OB_OK)
        e = ob_query_add(&req, "RoleArn", w->role_arn, err, sizeof(err));
    if (e == OB_OK)
        e = ob_query_add(&req, "RoleSessionName", w->session_name, err, sizeof(err));
    if (e == OB_OK)
        e = ob_query_add(&req, "WebIdentityToken", token, err, sizeof(err));
    ob_aws_secret_free(token);
    if (e == OB_OK) {
        ob_aws_target_t t = {.region = w->region, .creds = NULL};
        w->call = ob_aws_send(w->aws, &req, &t, webid_done, s, err, sizeof(err));
        if (!w->call)
            e = OB_ERR_INVALID_ARG;
    }
    if (e != OB_OK) {
        ob_aws_req_free(&req);
        ob_credsrc_fetched(s, e, err, NULL);
    }
}

static void webid_destroy(void *data)
{
    webid_t *w = data;
    free(w->token_file);
    free(w->role_arn);
    free(w->session_name);
    free(w);
}

static const ob_credsrc_ops_t webid_ops = {"web-identity", webid_fetch, webid_destroy};

ob_credsrc_t *ob_credsrc_web_identity(ob_aws_t *aws, const char *token_file, const char *role_arn,
                                      const char *session_name, const char *region)
{
    if (!token_file || !*token_file || !role_arn || !*role_arn)
        return NULL;
    webid_t *w = ob_calloc(1, sizeof(*w));
    w->aws = aws;
    w->token_file = ob_strdup(token_file);
    w->role_arn = ob_strdup(role_arn);
    if (session_name && *session_name)
        w->session_name = ob_strdup(session_name);
    else {
        char name[64];
        snprintf(name, sizeof(name), "onboard-%lld", (long long)(ob_wall_ms() / 1000));
        w->session_name = ob_strdup(name);
    }
    snprintf(w->region, sizeof(w->region), "%s",
             region && *region ? region : ob_aws_default_region(aws));
    ob_credsrc_t *s = ob_credsrc_new(ob_aws_loop(aws), &webid_ops, w);
    ob_credsrc_set_describe(s, "web identity %.200s", role_arn);
    return s;
}

/* ---- container and IMDS: JSON credentials over HTTP ---- */

static ob_err_t parse_json_creds(const char *body, size_t len, int imds, ob_aws_creds_t *out,
                                 char *errstr, size_t errstr_size)
{
    json_error_t je;
    json_t *j = json_loadb(body ? body : "", len, 0, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE, "credentials reply is not a JSON object");
    }
    const char *code = json_string_value(json_object_get(j, "Code"));
    if (imds && code && strcmp(code, "Success") != 0) {
        ob_errf(errstr, errstr_size, OB_ERR_CREDENTIALS, "instance metadata says %.64s", code);
        json_decref(j);
        return OB_ERR_CREDENTIALS;
    }
    const char *akid = json_string_value(json_object_get(j, "AccessKeyId"));
    const char *secret = json_string_value(json_object_get(j, "SecretAccessKey"));
    const char *token = json_string_value(json_object_get(j, "Token"));
    const char *exp = json_string_value(json_object_get(j, "Expiration"));
    const char *acct = json_string_value(json_object_get(j, "AccountId"));
    int64_t exp_ms = 0;
    if (!akid || !*akid || !secret || !*secret ||
        (exp && ob_time_parse_iso_ms(exp, &exp_ms) != 0)) {
        json_decref(j);
        return ob_errf(errstr, errstr_size, OB_ERR_PARSE,
                       "credentials reply lacks AccessKeyId/SecretAccessKey or has a bad "
                       "Expiration");
    }
    memset(out, 0, sizeof(*out));
    ob_err_t e = ob_aws_creds_set(out, akid, secret, token, exp_ms);
    if (acct && strlen(acct) == 12)
        memcpy(out->account_id, acct, 13);
    json_decref(j);
    return e;
}

static void http_destroy(void *data)
{
    httpsrc_t *h = data;
    free(h->url);
    ob_aws_secret_free(h->auth);
    free(h->auth_file);
    ob_aws_secret_free(h->imds_token);
    free(h->role);
    free(h);
}

static void container_done(ob_http_resp_t *resp, void *arg)
{
    ob_credsrc_t *s = arg;
    ((httpsrc_t *)ob_credsrc_data(s))->xfer = NULL;
    char err[512];
    if (resp->err != OB_OK) {
        snprintf(err, sizeof(err), "container credentials endpoint: %s", resp->errmsg);
        ob_credsrc_fetched(s, resp->err, err, NULL);
    } else if (resp->status != 200) {
        snprintf(err, sizeof(err), "container credentials endpoint answered HTTP %ld",
                 resp->status);
        ob_credsrc_fetched(s, OB_ERR_CREDENTIALS, err, NULL);
    } else {
        ob_aws_creds_t c;
        memset(&c, 0, sizeof(c));
        if (parse_json_creds(resp->body.data, resp->body.len, 0, &c, err, sizeof(err)) != OB_OK) {
            ob_credsrc_fetched(s, OB_ERR_CREDENTIALS, err, NULL);
        } else
            ob_credsrc_fetched(s, OB_OK, NULL, &c);
        ob_aws_creds_clear(&c);
    }
}

static void container_fetch(ob_credsrc_t *s)
{
    httpsrc_t *h = ob_credsrc_data(s);
    char err[512] = "";
    ob_hdrs_t hd = {0};
    char *auth = NULL;
    if (h->auth_file) {
        auth = read_small_file(h->auth_file, 16 * 1024, err, sizeof(err));
        if (!auth) {
            ob_credsrc_fetched(s, OB_ERR_CREDENTIALS, err, NULL);
            return;
        }
    }
    const char *a = auth ? auth : h->auth;
    if (a && strpbrk(a, "\r\n")) {
        ob_aws_secret_free(auth);
        ob_credsrc_fetched(s, OB_ERR_CREDENTIALS,
                           "container authorization token contains a newline", NULL);
        return;
    }
    if (a && *a)
        ob_hdrs_add(&hd, "Authorization", a);
    ob_hdrs_add(&hd, "Accept", "application/json");
    ob_http_req_t req = {.method = "GET",
                         .url = h->url,
                         .headers = &hd,
                         .timeout_ms = CONTAINER_TIMEOUT_MS,
                         .max_body = METADATA_MAX_BODY};
    h->xfer = ob_http_send(ob_aws_http(h->aws), &req, container_done, s, err, sizeof(err));
    ob_hdrs_clear(&hd);
    ob_aws_secret_free(auth);
    if (!h->xfer) {
        ob_credsrc_fetched(s, OB_ERR_CREDENTIALS, err, NULL);
    }
}

static const ob_credsrc_ops_t container_ops = {"container", container_fetch, http_destroy};

static const char *aws_env(ob_aws_t *aws, const char *name)
{
    const ob_aws_opts_t *o = ob_aws_opts(aws);
    const char *v = o->getenv_fn ? o->getenv_fn(name, o->env_ctx) : getenv(name);
    return v && *v ? v : NULL;
}

/* FULL_URI hosts the SDKs accept over plain HTTP. */
static int allowed_container_host(const char *url)
{
    static const char *const ok[] = {
        "http://127.",           "http://localhost:",     "http://localhost/",
        "http://[::1]",          "http://169.254.170.2:", "http://169.254.170.2/",
        "http://169.254.170.23", "http://[fd00:ec2::23]", NULL};
    if (!strncasecmp(url, "https://", 8))
        return 1;
    for (int i = 0; ok[i]; i++)
        if (!strncasecmp(url, ok[i], strlen(ok[i])))
            return 1;
    return !strcasecmp(url, "http://localhost") || !strcasecmp(url, "http://169.254.170.2");
}

ob_credsrc_t *ob_credsrc_container(ob_aws_t *aws, char *errstr, size_t errstr_size)
{
    const char *rel = aws_env(aws, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = aws_env(aws, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    char url[2048];
    if (rel) {
        snprintf(url, sizeof(url), "http://169.254.170.2%s%s", rel[0] == '/' ? "" : "/", rel);
    } else if (full) {
        if (!allowed_container_host(full)) {
            ob_errf(errstr, errstr_size, OB_ERR_CREDENTIALS,
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI must use HTTPS or a loopback or "
                    "ECS/EKS link-local host");
            return NULL;
        }
        snprintf(url, sizeof(url), "%s", full);
    } else {
        ob_errf(errstr, errstr_size, OB_ERR_CREDENTIALS, "no container credentials configured");
        return NULL;
    }
    httpsrc_t *h = ob_calloc(1, sizeof(*h));
    h->aws = aws;
    h->url = ob_strdup(url);
    const char *tf = aws_env(aws, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tok = aws_env(aws, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    if (tf)
        h->auth_file = ob_strdup(tf);
    else if (tok)
        h->auth = ob_strdup(tok);
    ob_credsrc_t *s = ob_credsrc_new(ob_aws_loop(aws), &container_ops, h);
    ob_credsrc_set_describe(s, "container credentials (%s)", rel ? "ECS relative URI" : "full URI");
    return s;
}

/* IMDSv2: PUT a session token, GET the role name, GET the role's credentials. */
static void imds_step(ob_credsrc_t *s);

static void imds_reply(ob_http_resp_t *resp, void *arg)
{
    ob_credsrc_t *s = arg;
    httpsrc_t *h = ob_credsrc_data(s);
    h->xfer = NULL;
    char err[512];
    static const char *const what[] = {"token", "role name", "credentials"};
    if (resp->err != OB_OK || resp->status != 200) {
        if (resp->err != OB_OK)
            snprintf(err, sizeof(err), "instance metadata %s: %s", what[h->step], resp->errmsg);
        else
            snprintf(err, sizeof(err), "instance metadata %s: HTTP %ld", what[h->step],
                     resp->status);
        ob_credsrc_fetched(s, OB_ERR_CREDENTIALS, err, NULL);
        return;
    }
    const char *body = resp->body.data ? resp->body.data : "";
    if (h->step == 0) {
        ob_aws_secret_free(h->imds_token);
        h->imds_token = ob_strdup(body);
        h->step = 1;
        imds_step(s);
    } else if (h->step == 1) {
        size_t n = strcspn(body, "\r\n");
        free(h->role);
        h->role = ob_strndup(body, n);
        if (!h->role || !*h->role || strchr(h->role, '/')) {
            ob_credsrc_fetched(s, OB_ERR_CREDENTIALS,
                               "instance metadata: no instance role attached", NULL);
            return;
        }
        h->step = 2;
        imds_step(s);
    } else {
        ob_aws_creds_t c;
        memset(&c, 0, sizeof(c));
        if (parse_json_creds(resp->body.data, resp->body.len, 1, &c, err, sizeof(err)) != OB_OK)
            ob_credsrc_fetched(s, OB_ERR_CREDENTIALS, err, NULL);
        else
            ob_credsrc_fetched(s, OB_OK, NULL, &c);
        ob_aws_creds_clear(&c);
    }
}

static void imds_step(ob_credsrc_t *s)
{
    httpsrc_t *h = ob_credsrc_data(s);
    ob_hdrs_t hd = {0};
    ob_buf_t url = {0};
    const char *method = "GET";
    if (h->step == 0) {
        method = "PUT";
        ob_buf_printf(&url, "%s/latest/api/token", h->url);
        ob_hdrs_add(&hd, "X-aws-ec2-metadata-token-ttl-seconds", "21600");
    } else {
        ob_buf_printf(&url, "%s/latest/meta-data/iam/security-credentials/%s", h->url,
                      h->step == 2 ? h->role : "");
        ob_hdrs_add(&hd, "X-aws-ec2-metadata-token", h->imds_token ? h->imds_token : "");
    }
    char err[512] = "";
    ob_http_req_t req = {.method = method,
                         .url = url.data,
                         .headers = &hd,
                         .timeout_ms = METADATA_TIMEOUT_MS,
                         .connect_timeout_ms = METADATA_TIMEOUT_MS,
                         .max_body = METADATA_MAX_BODY};
    h->xfer =
        url.data ? ob_http_send(ob_aws_http(h->aws), &req, imds_reply, s, err, sizeof(err)) : NULL;
    ob_hdrs_clear(&hd);
    ob_buf_free(&url);
    if (!h->xfer) {
        ob_credsrc_fetched(s, OB_ERR_CREDENTIALS, err[0] ? err : "out of memory", NULL);
    }
}

static void imds_fetch(ob_credsrc_t *s)
{
    ((httpsrc_t *)ob_credsrc_data(s))->step = 0;
    imds_step(s);
}

static const ob_credsrc_ops_t imds_ops = {"imds", imds_fetch, http_destroy};

ob_credsrc_t *ob_credsrc_imds(ob_aws_t *aws)
{
    const char *ep = aws_env(aws, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
    char base[512];
    snprintf(base, sizeof(base), "%s", ep ? ep : "http://169.254.169.254");
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    httpsrc_t *h = ob_calloc(1, sizeof(*h));
    h->aws = aws;
    h->url = ob_strdup(base);
    ob_credsrc_t *s = ob_credsrc_new(ob_aws_loop(aws), &imds_ops, h);
    ob_credsrc_set_describe(s, "instance metadata (IMDSv2)");
    return s;
}

/* ---- the default chain ---- */

#define MAX_PROFILE_DEPTH 8

static ob_credsrc_t *profile_source(ob_aws_t *aws, const ob_awsconfig_t *cfg, const char *profile,
                                    int depth, const char **visited, char *errstr,
                                    size_t errstr_size);

static ob_credsrc_t *profile_static(ob_aws_t *aws, const ob_awsconfig_t *cfg, const char *profile)
{
    const char *akid = ob_awsconfig_get(cfg, profile, "aws_access_key_id");
    const char *secret = ob_awsconfig_get(cfg, profile, "aws_secret_access_key");
    if (!akid || !*akid || !secret || !*secret)
        return NULL;
    char d[256];
    snprintf(d, sizeof(d), "profile %.128s (shared credentials)", profile);
    return ob_credsrc_static(aws, akid, secret, ob_awsconfig_get(cfg, profile, "aws_session_token"),
                             d);
}

static ob_credsrc_t *env_static(ob_aws_t *aws, char *errstr, size_t errstr_size, int *partial)
{
    const char *akid = aws_env(aws, "AWS_ACCESS_KEY_ID");
    const char *secret = aws_env(aws, "AWS_SECRET_ACCESS_KEY");
    *partial = 0;
    if (!akid && !secret)
        return NULL;
    if (!akid || !secret) {
        *partial = 1;
        ob_errf(errstr, errstr_size, OB_ERR_CREDENTIALS,
                "partial credentials in the environment: %s is set but %s is not",
                akid ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                akid ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        return NULL;
    }
    return ob_credsrc_static(aws, akid, secret, aws_env(aws, "AWS_SESSION_TOKEN"), "environment");
}

static ob_credsrc_t *role_source(ob_aws_t *aws, const ob_awsconfig_t *cfg, const char *profile,
                                 int depth, const char **visited, char *errstr, size_t errstr_size)
{
    const char *role_arn = ob_awsconfig_get(cfg, profile, "role_arn");
    const char *src_profile = ob_awsconfig_get(cfg, profile, "source_profile");
    const char *cred_source = ob_awsconfig_get(cfg, profile, "credential_source");
    const char *webid_file = ob_awsconfig_get(cfg, profile, "web_identity_token_file");
    const char *session = ob_awsconfig_get(cfg, profile, "role_session_name");
    const char *region = ob_awsconfig_get(cfg, profile, "region");
    if (webid_file && !src_profile && !cred_source)
        return ob_credsrc_web_identity(aws, webid_file, role_arn, session, region);
    if (src_profile && cred_source) {
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                "profile %s has both source_profile and credential_source", profile);
        return NULL;
    }
    ob_credsrc_t *base = NULL;
    if (src_profile) {
        if (!strcmp(src_profile, profile)) {
            /* A profile that is its own source uses its static keys. */
            base = profile_static(aws, cfg, profile);
            if (!base)
                ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                        "profile %s is its own source_profile but has no static keys", profile);
        } else {
            base = profile_source(aws, cfg, src_profile, depth + 1, visited, errstr, errstr_size);
        }
    } else if (cred_source) {
        int partial;
        if (!strcmp(cred_source, "Environment")) {
            base = env_static(aws, errstr, errstr_size, &partial);
            if (!base && !partial)
                ob_errf(errstr, errstr_size, OB_ERR_CREDENTIALS,
                        "profile %s: credential_source Environment, but no keys in the "
                        "environment",
                        profile);
        } else if (!strcmp(cred_source, "Ec2InstanceMetadata")) {
            base = ob_credsrc_imds(aws);
        } else if (!strcmp(cred_source, "EcsContainer")) {
            base = ob_credsrc_container(aws, errstr, errstr_size);
        } else {
            ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                    "profile %s: unknown credential_source \"%.64s\"", profile, cred_source);
        }
    } else {
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                "profile %s has role_arn but neither source_profile nor credential_source",
                profile);
    }
    if (!base)
        return NULL;
    const char *dur = ob_awsconfig_get(cfg, profile, "duration_seconds");
    long duration = 0;
    if (dur) {
        /* STS takes 900 to 43200 seconds; anything else is a mistake to say
         * now, not an AssumeRole that fails at every refresh. */
        char *end = NULL;
        errno = 0;
        duration = strtol(dur, &end, 10);
        if (errno || end == dur || *end || duration < 900 || duration > 43200) {
            ob_credsrc_unref(base);
            ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                    "profile %s: duration_seconds must be a whole number from 900 to 43200",
                    profile);
            return NULL;
        }
    }
    ob_credsrc_t *s =
        ob_credsrc_assume_role(aws, base, role_arn, ob_awsconfig_get(cfg, profile, "external_id"),
                               session, (int)duration, region);
    ob_credsrc_unref(base);
    if (s) {
        char d[320];
        snprintf(d, sizeof(d), "%s", ob_credsrc_describe(s));
        ob_credsrc_set_describe(s, "%.250s via profile %.64s", d, profile);
    }
    return s;
}

static ob_credsrc_t *profile_source(ob_aws_t *aws, const ob_awsconfig_t *cfg, const char *profile,
                                    int depth, const char **visited, char *errstr,
                                    size_t errstr_size)
{
    if (depth >= MAX_PROFILE_DEPTH) {
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "source_profile chain is too deep at %s",
                profile);
        return NULL;
    }
    for (int i = 0; i < depth; i++) {
        if (!strcmp(visited[i], profile)) {
            ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "source_profile loop through profile %s",
                    profile);
            return NULL;
        }
    }
    visited[depth] = profile;
    if (!cfg || !ob_awsconfig_has(cfg, OB_AWSCONFIG_PROFILE, profile)) {
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "profile %s not found", profile);
        return NULL;
    }
    if (ob_awsconfig_get(cfg, profile, "role_arn"))
        return role_source(aws, cfg, profile, depth, visited, errstr, errstr_size);
    ob_credsrc_t *s = profile_static(aws, cfg, profile);
    if (!s)
        ob_errf(errstr, errstr_size, OB_ERR_CREDENTIALS, "profile %s has no credentials", profile);
    return s;
}

ob_credsrc_t *ob_credsrc_chain(ob_aws_t *aws, char *errstr, size_t errstr_size)
{
    const ob_aws_opts_t *o = ob_aws_opts(aws);
    const ob_awsconfig_t *cfg = o->config;
    const char *profile = o->profile ? o->profile : "default";
    int explicit_profile =
        aws_env(aws, "AWS_PROFILE") != NULL || (o->profile && strcmp(o->profile, "default") != 0);
    const char *visited[MAX_PROFILE_DEPTH];
    int partial = 0;

    /* 1. Environment. */
    ob_credsrc_t *s = env_static(aws, errstr, errstr_size, &partial);
    if (s || partial)
        return s;
    /* A named profile that does not exist is a configuration error. */
    int has_profile = cfg && ob_awsconfig_has(cfg, OB_AWSCONFIG_PROFILE, profile);
    if (explicit_profile && !has_profile) {
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                "AWS profile %s not found in the shared config or credentials file", profile);
        return NULL;
    }
    /* 2. The profile's role. */
    if (has_profile && ob_awsconfig_get(cfg, profile, "role_arn"))
        return profile_source(aws, cfg, profile, 0, visited, errstr, errstr_size);
    /* 3. Web identity from the environment. */
    const char *wf = aws_env(aws, "AWS_WEB_IDENTITY_TOKEN_FILE");
    const char *wr = aws_env(aws, "AWS_ROLE_ARN");
    if (wf && wr)
        return ob_credsrc_web_identity(aws, wf, wr, aws_env(aws, "AWS_ROLE_SESSION_NAME"), NULL);
    /* 4. Static keys of the profile. */
    if (has_profile && (s = profile_static(aws, cfg, profile)))
        return s;
    /* 5. Container. */
    if (aws_env(aws, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") ||
        aws_env(aws, "AWS_CONTAINER_CREDENTIALS_FULL_URI"))
        return ob_credsrc_container(aws, errstr, errstr_size);
    /* 6. Instance metadata. */
    const char *dis = aws_env(aws, "AWS_EC2_METADATA_DISABLED");
    if (dis && !strcasecmp(dis, "true")) {
        ob_errf(errstr, errstr_size, OB_ERR_CREDENTIALS,
                "no AWS credentials: none in the environment, profile %s, web identity or "
                "container settings, and instance metadata is disabled",
                profile);
        return NULL;
    }
    return ob_credsrc_imds(aws);
}

/* ---- the assume-role cache for target accounts ---- */

typedef struct centry_s {
    ob_hnode_t hnode; /* in the cache's table, by key */
    ob_list_t lru;    /* in the cache's LRU list: most recently used first */
    char *key;        /* role_arn "\n" external_id */
    ob_credsrc_t *src;
} centry_t;

struct ob_assume_cache_s {
    ob_aws_t *aws;
    ob_credsrc_t *base;
    ob_assume_cache_opts_t opts;
    char session_name[64];
    char region[64];
    ob_htab_t table;
    ob_list_t lru;
};

ob_assume_cache_t *ob_assume_cache_new(ob_aws_t *aws, ob_credsrc_t *base,
                                       const ob_assume_cache_opts_t *opts)
{
    ob_assume_cache_t *c = ob_calloc(1, sizeof(*c));
    c->aws = aws;
    c->base = ob_credsrc_ref(base);
    if (opts)
        c->opts = *opts;
    if (!c->opts.max_entries)
        c->opts.max_entries = 10000;
    if (!c->opts.duration_s)
        c->opts.duration_s = 3600;
    snprintf(c->session_name, sizeof(c->session_name), "%s",
             c->opts.session_name ? c->opts.session_name : "onboard");
    snprintf(c->region, sizeof(c->region), "%s",
             c->opts.region ? c->opts.region : ob_aws_default_region(aws));
    ob_list_init(&c->lru);
    return c;
}

static void entry_remove(ob_assume_cache_t *c, centry_t *e)
{
    ob_htab_remove(&c->table, &e->hnode);
    ob_list_remove(&e->lru);
    ob_credsrc_unref(e->src);
    ob_aws_secret_free(e->key);
    free(e);
}

static int centry_eq(const ob_hnode_t *n, const void *key)
{
    return !strcmp(OB_HNODE_ENTRY(n, centry_t, hnode)->key, key);
}

ob_credsrc_t *ob_assume_cache_get(ob_assume_cache_t *c, const char *role_arn,
                                  const char *external_id)
{
    size_t kl = strlen(role_arn) + 2 + (external_id ? strlen(external_id) : 0);
    char *key = ob_malloc(kl);
    snprintf(key, kl, "%s\n%s", role_arn, external_id ? external_id : "");
    uint64_t h = ob_hash_str(key);
    ob_hnode_t *n = ob_htab_find(&c->table, h, centry_eq, key);
    if (n) {
        centry_t *e = OB_HNODE_ENTRY(n, centry_t, hnode);
        ob_aws_secret_free(key);
        ob_list_remove(&e->lru);
        ob_list_push_front(&c->lru, &e->lru);
        return e->src;
    }
    ob_credsrc_t *src = ob_credsrc_assume_role(c->aws, c->base, role_arn, external_id,
                                               c->session_name, c->opts.duration_s, c->region);
    if (!src) {
        ob_aws_secret_free(key);
        return NULL;
    }
    centry_t *e = ob_calloc(1, sizeof(*e));
    e->key = key;
    e->src = src;
    ob_htab_insert(&c->table, &e->hnode, h);
    ob_list_push_front(&c->lru, &e->lru);
    /* Over the bound: drop the least recently used (callers holding a
     * reference keep theirs alive). */
    while (c->table.n > c->opts.max_entries && ob_list_last(&c->lru) != &e->lru)
        entry_remove(c, OB_LIST_ENTRY(ob_list_last(&c->lru), centry_t, lru));
    return src;
}

size_t ob_assume_cache_size(const ob_assume_cache_t *c)
{
    return c->table.n;
}

void ob_assume_cache_free(ob_assume_cache_t *c)
{
    if (!c)
        return;
    while (!ob_list_empty(&c->lru))
        entry_remove(c, OB_LIST_ENTRY(ob_list_first(&c->lru), centry_t, lru));
    ob_htab_clear(&c->table);
    ob_credsrc_unref(c->base);
    free(c);
}
