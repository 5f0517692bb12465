/*
 * onboardctl: the operator's command line.
 *
 *   onboardctl [-b BROKERS] [-X KEY=VALUE]... [--config FILE] [-o table|json]
 *              COMMAND [options]
 *
 *   enqueue [FILE|-] [--format csv|jsonl] [--dry-run]
 *   enqueue --from-organization --region R [--mode new|existing]
 *           [--role-name NAME] [--dry-run]
 *   offboard ACCOUNT... | --file F [--region R] [--dry-run]
 *   verify ACCOUNT... | --all [--repair] [--timeout T] [--no-wait]
 *   status ACCOUNT
 *   summary
 *   dlq list [filters]
 *   replay [filters] [--limit N] [--dry-run] [--force]
 *   retry ACCOUNT [--no-wait]
 *   lag [--stage S | --group G [--topic T]] [--threshold N]
 *   check [--account A]
 *   rebuild [--account A] [--force] [--dry-run]
 *   version
 *
 * Every command answers -h/--help with its own usage (ctl_help.c). Settings
 * (Kafka, Redis, topic prefix) come from the same table as the workers': the
 * defaults, the file (--config, else OB_CONFIG_FILE), the OB_* environment,
 * then -b and -X (ctl_cli.c); AWS settings follow the SDK conventions. Every
 * row is validated with the workers' own codec before anything is sent, and
 * bad rows are reported with their line numbers.
 *
 * Exit codes: 0 success; 1 a runtime failure (Kafka, Redis, AWS); 2 bad
 * usage or configuration; 3 invalid input rows (nothing was enqueued); 4 lag
 * over the --threshold given to lag; 5 records that disagree with the topics
 * (check); 6 accounts not as the fleet made them (verify); 7 a topic or
 * consumer group that does not exist (lag).
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_alloc.h"
#include "ob_aws.h"
#include "ob_awsconfig.h"
#include "ob_buf.h"
#include "ob_config.h"
#include "ob_credsrc.h"
#include "ob_crypto.h"
#include "ob_http.h"
#include "ob_kafka.h"
#include "ob_log.h"
#include "ob_msg.h"
#include "ob_redis.h"
#include "ob_state.h"
#include "ob_worker.h"

#include "ctl.h"

/* ---- input rows ---- */

/* The valid requests of an input, spooled: each as its line number, account
 * and normalized JSON on a line of an unlinked temporary file. Nothing is
 * enqueued unless every row is valid, so the input is read whole before the
 * first message goes out; the spool keeps that in bounded memory whatever
 * the input's size (one row at a time is in memory, not all of them). */
typedef struct rows_s {
    FILE *spool; /* "LINE ACCOUNT JSON\n" per valid row */
    size_t n;
    int bad;
    json_t *errors; /* the first ROW_ERRORS_MAX bad rows: {line, error} */
} rows_t;

#define ROW_ERRORS_MAX 1000

/* A bad row: said on stderr with its line number, and kept for -o json. */
static void row_error(rows_t *r, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void row_error(rows_t *r, int line, const char *fmt, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    ctl_progress_clear();
    fprintf(stderr, "line %d: %s\n", line, why);
    if (json_array_size(r->errors) < ROW_ERRORS_MAX)
        json_array_append_new(r->errors, json_pack("{s:i, s:s}", "line", line, "error", why));
    r->bad++;
}

static int rows_open(rows_t *r)
{
    memset(r, 0, sizeof(*r));
    r->errors = json_array();
    r->spool = tmpfile();
    if (!r->spool) {
        fprintf(stderr, "onboardctl: cannot create a temporary file: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static void rows_free(rows_t *r)
{
    if (r->spool)
        fclose(r->spool);
    r->spool = NULL;
    json_decref(r->errors);
    r->errors = NULL;
}

/* Each spooled row in order: fn(line, account, json, len, arg); 0, or what fn
 * returned when not 0. */
typedef int(rows_fn)(int line, const char *account, const char *json, size_t len, void *arg);
static int rows_each(rows_t *r, rows_fn *fn, void *arg)
{
    if (fflush(r->spool) != 0 || fseek(r->spool, 0, SEEK_SET) != 0) {
        fprintf(stderr, "onboardctl: temporary file: %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, r->spool)) > 0) {
        line[--len] = '\0'; /* the newline */
        char *acct = strchr(line, ' ');
        char *json = acct ? strchr(acct + 1, ' ') : NULL;
        if (!json) {
            fprintf(stderr, "onboardctl: temporary file: a line is damaged\n");
            rc = EXIT_RUNTIME;
            break;
        }
        *acct++ = '\0';
        *json++ = '\0';
        rc = fn(atoi(line), acct, json, (size_t)(line + len - json), arg);
    }
    free(line);
    return rc;
}

static void gen_request_id(char *out, size_t n)
{
    uint8_t rnd[12];
    char hex[25];
    if (ob_random_bytes(rnd, sizeof(rnd)) != OB_OK) {
        /* Ids that may repeat would merge requests: stop rather than guess. */
        fprintf(stderr, "onboardctl: no random bytes for a request id\n");
        exit(EXIT_RUNTIME);
    }
    ob_hex(rnd, sizeof(rnd), hex);
    snprintf(out, n, "ctl-%s", hex);
}

/* Validate one JSON object (from a CSV row or a JSON line) and keep it.
 * Without a "schema", the first version that says it: onboard.request/2
 * for an offboarding or a repair, /1 otherwise (read by every worker). */
static void add_row(rows_t *rows, int line, json_t *obj)
{
    if (!json_object_get(obj, "schema")) {
        const char *mode = json_string_value(json_object_get(obj, "mode"));
        int v2 = (mode && !strcmp(mode, "offboard")) || json_object_get(obj, "repair");
        json_object_set_new(obj, "schema",
                            json_string(v2 ? OB_SCHEMA_REQUEST_2 : OB_SCHEMA_REQUEST));
    }
    if (!json_object_get(obj, "cloud"))
        json_object_set_new(obj, "cloud", json_string("aws"));
    if (!json_object_get(obj, "request_id")) {
        char id[64];
        gen_request_id(id, sizeof(id));
        json_object_set_new(obj, "request_id", json_string(id));
    }
    ob_request_t req;
    ob_msg_error_t me;
    memset(&me, 0, sizeof(me));
    if (ob_request_parse_json(obj, &req, &me) != OB_OK) {
        row_error(rows, line, "%s (%s)", me.message, me.code);
        return;
    }
    char *json = NULL;
    size_t len = 0;
    if (ob_request_to_json(&req, &json, &len, &me) != OB_OK) {
        row_error(rows, line, "%s (%s)", me.message, me.code);
    } else if (fprintf(rows->spool, "%d %s %s\n", line, req.account_id, json) < 0) {
        row_error(rows, line, "temporary file: %s", strerror(errno));
    } else {
        rows->n++;
    }
    free(json);
    ob_request_clear(&req);
}

/* Split one CSV line (RFC 4180 quotes) into at most max fields. */
static int csv_split(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    while (n < max) {
        char *start = p, *w = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '\0')
                    break;
                if (*p == '"' && p[1] == '"') {
                    *w++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *w++ = *p++;
                }
            }
            while (*p && *p != ',')
                p++;
        } else {
            while (*p && *p != ',')
                *w++ = *p++;
        }
        char end = *p;
        *w = '\0';
        fields[n++] = start;
        if (end != ',')
            break;
        p++;
    }
    return n;
}

static int read_rows(FILE *f, const char *format, rows_t *rows)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    char *header[32];
    int nh = 0;
    char *header_buf = NULL;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        ctl_progress((size_t)lineno);
        char *s = ob_str_trim(line);
        if (!*s || *s == '#')
            continue;
        if (!strcmp(format, "jsonl")) {
            json_error_t je;
            json_t *obj = json_loads(s, JSON_REJECT_DUPLICATES, &je);
            if (!json_is_object(obj)) {
                row_error(rows, lineno, "not a JSON object: %s", obj ? "wrong type" : je.text);
            } else {
                add_row(rows, lineno, obj);
            }
            json_decref(obj);
            continue;
        }
        if (!nh) {
            header_buf = ob_strdup(s);
            nh = csv_split(header_buf, header, 32);
            for (int i = 0; i < nh; i++)
                header[i] = ob_str_trim(header[i]);
            int has_acct = 0;
            for (int i = 0; i < nh; i++)
                has_acct |= !strcmp(header[i], "account_id");
            if (!has_acct) {
                row_error(rows, lineno, "the CSV header must name an account_id column");
                free(header_buf);
                free(line);
                return -1;
            }
            continue;
        }
        char *fields[32];
        int nf = csv_split(s, fields, 32);
        if (nf != nh) {
            row_error(rows, lineno, "%d fields, the header has %d", nf, nh);
            continue;
        }
        json_t *obj = json_object();
        json_t *report = NULL, *bucket = NULL;
        const char *unknown = NULL;
        for (int i = 0; i < nf; i++) {
            char *v = ob_str_trim(fields[i]);
            if (!*v)
                continue;
            const char *k = header[i];
            if (!strcmp(k, "bucket")) {
                bucket = json_pack("{s:s}", "name", v);
            } else if (!strcmp(k, "report_name")) {
                report = json_pack("{s:s}", "name", v);
            } else if (!strcmp(k, "account_id") || !strcmp(k, "mode") || !strcmp(k, "region") ||
                       !strcmp(k, "role_arn") || !strcmp(k, "external_id") ||
                       !strcmp(k, "requester") || !strcmp(k, "request_id") || !strcmp(k, "cloud")) {
                json_object_set_new(obj, k, json_string(v));
            } else if (!unknown) {
                unknown = k;
            }
        }
        if (bucket)
            json_object_set_new(obj, "bucket", bucket);
        if (report)
            json_object_set_new(obj, "report", report);
        if (unknown)
            row_error(rows, lineno, "unknown column \"%s\"", unknown);
        else
            add_row(rows, lineno, obj);
        json_decref(obj);
    }
    free(header_buf);
    free(line);
    return 0;
}

/* ---- publishing ---- */

typedef struct pub_s {
    size_t acked, failed, total;
} pub_t;

static void on_delivery(ob_kproducer_t *p, ob_err_t err, const char *errmsg,
                        const rd_kafka_message_t *m, void *opaque, void *arg)
{
    pub_t *pb = arg;
    if (err == OB_OK) {
        pb->acked++;
    } else {
        pb->failed++;
        ctl_progress_clear();
        fprintf(stderr, "delivery failed: %s\n", errmsg ? errmsg : "unknown");
    }
}

/* A dry run's request: a line of its own, or a row of the JSON document. */
static int print_row(int line, const char *account, const char *json, size_t len, void *arg)
{
    ctl_t *c = arg;
    if (!c->json) {
        printf("%s\n", json);
        return 0;
    }
    json_t *req = json_loadb(json, len, 0, NULL);
    if (!req) {
        fprintf(stderr, "onboardctl: temporary file: line %d is damaged\n", line);
        return EXIT_RUNTIME;
    }
    ctl_json_row(c, req);
    return 0;
}

typedef struct send_s {
    ctl_t *c;
    ob_kproducer_t *p;
    const char *topic;
    pub_t *pb;
    size_t sent;
} send_t;

static int send_row(int line, const char *acct, const char *json, size_t len, void *arg)
{
    send_t *sd = arg;
    char err[512];
    rd_kafka_t *rk = ob_kproducer_handle(sd->p);
    /* The builder writes "schema" first. */
    static const char v2[] = "{\"schema\":\"" OB_SCHEMA_REQUEST_2 "\"";
    const char *schema =
        !strncmp(json, v2, sizeof(v2) - 1) ? OB_SCHEMA_REQUEST_2 : OB_SCHEMA_REQUEST;
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, OB_MSG_HDR_SCHEMA, -1, schema, -1);
    while (ob_kproducer_send(sd->p, sd->topic, RD_KAFKA_PARTITION_UA, acct, strlen(acct), json, len,
                             h, NULL, err, sizeof(err)) != OB_OK) {
        /* Queue full: let deliveries drain, then try again. */
        if (rd_kafka_outq_len(rk) == 0) {
            ctl_progress_clear();
            fprintf(stderr, "onboardctl: line %d: %s\n", line, err);
            return EXIT_RUNTIME;
        }
        h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, OB_MSG_HDR_SCHEMA, -1, schema, -1);
        ob_loop_run_once(sd->c->loop, 50);
        ctl_progress(sd->pb->acked + sd->pb->failed);
    }
    if (sd->sent++ % 256 == 0)
        ob_loop_run_once(sd->c->loop, 0);
    ctl_progress(sd->pb->acked + sd->pb->failed);
    return 0;
}

/* What enqueue and offboard did, for -o json; after_rows: the end of the
 * document whose "requests" the dry run wrote (see publish). */
static void publish_report(ctl_t *c, const char *topic, const rows_t *rows, const pub_t *pb,
                           int after_rows)
{
    json_t *o = json_pack("{s:s, s:b, s:I, s:i, s:I, s:I, s:O}", "topic", topic, "dry_run",
                          c->dry_run, "valid", (json_int_t)rows->n, "invalid", rows->bad,
                          "enqueued", (json_int_t)(pb ? pb->acked : 0), "failed",
                          (json_int_t)(pb ? pb->failed : 0), "errors", rows->errors);
    if (after_rows)
        ctl_json_end(c, o);
    else
        ctl_json_print(o);
}

static int publish(ctl_t *c, rows_t *rows, const char *topic)
{
    char err[512];
    if (c->dry_run) {
        if (c->json)
            ctl_json_begin(c, "requests");
        int rc = rows_each(rows, print_row, c);
        if (c->json)
            publish_report(c, topic, rows, NULL, 1);
        else if (rc == 0)
            fprintf(stderr, "dry run: %zu requests would go to %s\n", rows->n, topic);
        return rc;
    }
    pub_t pb = {0, 0, rows->n};
    ob_kproducer_opts_t po = {.kafka = &c->cfg.kafka, .on_delivery = on_delivery, .arg = &pb};
    ob_kproducer_t *p = ob_kproducer_new(c->loop, &po, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "onboardctl: %s\n", err);
        return EXIT_RUNTIME;
    }
    ctl_progress_start("enqueued", rows->n);
    send_t sd = {c, p, topic, &pb, 0};
    if (rows_each(rows, send_row, &sd) != 0) {
        ctl_progress_stop();
        ob_kproducer_free(p);
        return EXIT_RUNTIME;
    }
    while (pb.acked + pb.failed < pb.total) {
        if (ob_kproducer_flush(p, 200) == OB_OK)
            break;
        ctl_progress(pb.acked + pb.failed);
    }
    ctl_progress_end(pb.acked + pb.failed);
    ob_kproducer_free(p);
    if (c->json)
        publish_report(c, topic, rows, &pb, 0);
    else
        fprintf(stderr, "enqueued %zu requests to %s%s\n", pb.acked, topic,
                pb.failed ? " (some failed)" : "");
    return pb.failed ? EXIT_RUNTIME : 0;
}

/* The end of enqueue and offboard: publish the rows when every one is
 * valid (and rc still 0), then free them. */
static int publish_rows(ctl_t *c, rows_t *rows, int rc, const char *what, const char *none)
{
    char topic[256];
    snprintf(topic, sizeof(topic), "%srequests", c->cfg.topic_prefix);
    ctl_progress_stop(); /* reading */
    if (rc == 0 && rows->bad) {
        fprintf(stderr, "%d invalid %s%s: nothing was enqueued\n", rows->bad, what,
                rows->bad == 1 ? "" : "s");
        rc = EXIT_INVALID;
    }
    if (rc == EXIT_INVALID && c->json)
        publish_report(c, topic, rows, NULL, 0);
    if (rc == 0 && rows->n == 0) {
        if (c->json)
            publish_report(c, topic, rows, NULL, 0);
        else
            fprintf(stderr, "%s\n", none);
    } else if (rc == 0) {
        rc = publish(c, rows, topic);
    }
    rows_free(rows);
    return rc;
}

/* ---- from the organization ---- */

typedef struct org_s {
    int done;
    ob_aws_result_t res;
    char *body;
} org_t;

static void on_org(ob_aws_result_t *res, void *arg)
{
    org_t *o = arg;
    o->done = 1;
    o->res = *res;
    o->res.headers = NULL;
    memset(&o->res.body, 0, sizeof(o->res.body));
    o->body = ob_strdup(res->body.data ? res->body.data : "");
}

static int org_rows(ctl_t *c, const char *region, const char *mode, const char *role_name,
                    rows_t *rows)
{
    char err[512];
    ob_http_t *http = ob_http_new(c->loop, NULL, err, sizeof(err));
    ob_awsconfig_t *acfg = NULL;
    if (!http || ob_awsconfig_load(NULL, NULL, &acfg, err, sizeof(err)) != OB_OK) {
        fprintf(stderr, "onboardctl: %s\n", err);
        ob_http_free(http);
        return EXIT_USAGE;
    }
    ob_aws_opts_t ao = {.config = acfg};
    ob_aws_t *aws = ob_aws_new(c->loop, http, &ao, err, sizeof(err));
    ob_credsrc_t *creds = aws ? ob_credsrc_chain(aws, err, sizeof(err)) : NULL;
    int rc = 0;
    if (!creds) {
        fprintf(stderr, "onboardctl: AWS credentials: %s\n", err);
        rc = EXIT_USAGE;
    }
    char next[2048] = "";
    int page = 0, skipped = 0;
    while (rc == 0) {
        json_t *body = json_pack("{s:i}", "MaxResults", 20);
        if (next[0])
            json_object_set_new(body, "NextToken", json_string(next));
        ob_aws_req_t req;
        memset(&req, 0, sizeof(req));
        ob_json11_init_obj(&req, OB_SVC_ORGANIZATIONS, "ListAccounts", body, NULL, 0);
        json_decref(body);
        org_t o;
        memset(&o, 0, sizeof(o));
        ob_aws_target_t t = {.creds = creds};
        if (!ob_aws_send(aws, &req, &t, on_org, &o, err, sizeof(err))) {
            fprintf(stderr, "onboardctl: %s\n", err);
            rc = EXIT_RUNTIME;
            break;
        }
        while (!o.done)
            ob_loop_run_once(c->loop, 100);
        if (o.res.err != OB_OK) {
            fprintf(stderr, "onboardctl: %s\n", o.res.errmsg);
            free(o.body);
            rc = EXIT_RUNTIME;
            break;
        }
        json_t *j = json_loads(o.body, 0, NULL);
        free(o.body);
        size_t i;
        json_t *a;
        json_array_foreach(json_object_get(j, "Accounts"), i, a)
        {
            const char *id = json_string_value(json_object_get(a, "Id"));
            const char *state = json_string_value(json_object_get(a, "State"));
            if (!state)
                state = json_string_value(json_object_get(a, "Status"));
            if (!id)
                continue;
            if (!state || strcmp(state, "ACTIVE") != 0) {
                fprintf(stderr, "skipped %s: the account is %s, not ACTIVE\n", id,
                        state ? state : "of unknown state");
                skipped++;
                continue;
            }
            char arn[256];
            snprintf(arn, sizeof(arn), "arn:%s:iam::%s:role/%s", ob_region_partition(region), id,
                     role_name);
            json_t *obj =
                json_pack("{s:s, s:s, s:s, s:s, s:s}", "account_id", id, "mode", mode, "region",
                          region, "role_arn", arn, "requester", "onboardctl --from-organization");
            add_row(rows, page * 20 + (int)i + 1, obj);
            json_decref(obj);
        }
        const char *nt = json_string_value(json_object_get(j, "NextToken"));
        snprintf(next, sizeof(next), "%s", nt ? nt : "");
        json_decref(j);
        page++;
        if (!next[0])
            break;
    }
    if (rc == 0)
        fprintf(stderr, "organization: %zu accounts to enqueue, %d skipped\n", rows->n, skipped);
    ob_credsrc_unref(creds);
    ob_aws_free(aws);
    ob_http_free(http);
    ob_awsconfig_destroy(acfg);
    return rc;
}

static int cmd_enqueue(ctl_t *c, int argc, char **argv)
{
    const char *file = NULL, *format = NULL, *region = NULL, *mode = "new",
               *role_name = "OrganizationAccountAccessRole";
    int from_org = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--dry-run")) {
            c->dry_run = 1;
        } else if (!strcmp(a, "--from-organization")) {
            from_org = 1;
        } else if (!strcmp(a, "--format") && i + 1 < argc) {
            format = argv[++i];
        } else if (!strcmp(a, "--region") && i + 1 < argc) {
            region = argv[++i];
        } else if (!strcmp(a, "--mode") && i + 1 < argc) {
            mode = argv[++i];
        } else if (!strcmp(a, "--role-name") && i + 1 < argc) {
            role_name = argv[++i];
        } else if (a[0] != '-' || !strcmp(a, "-")) {
            file = a;
        } else {
            fprintf(stderr, "onboardctl enqueue: unknown option %s (try --help)\n", a);
            return EXIT_USAGE;
        }
    }
    rows_t rows;
    if (rows_open(&rows) != 0)
        return EXIT_RUNTIME;
    int rc = 0;
    if (from_org) {
        if (!region) {
            fprintf(stderr, "onboardctl enqueue --from-organization needs --region\n");
            rows_free(&rows);
            return EXIT_USAGE;
        }
        rc = org_rows(c, region, mode, role_name, &rows);
    } else {
        FILE *f = stdin;
        if (file && strcmp(file, "-") != 0) {
            f = fopen(file, "r");
            if (!f) {
                fprintf(stderr, "onboardctl: cannot open %s: %s\n", file, strerror(errno));
                rows_free(&rows);
                return EXIT_USAGE;
            }
        }
        if (!format)
            format = file && strlen(file) > 4 && !strcmp(file + strlen(file) - 4, ".csv") ? "csv"
                                                                                          : "jsonl";
        if (strcmp(format, "csv") != 0 && strcmp(format, "jsonl") != 0) {
            fprintf(stderr, "onboardctl: --format must be csv or jsonl\n");
            rc = EXIT_USAGE;
        } else {
            ctl_progress_start("lines read:", 0);
            if (read_rows(f, format, &rows) != 0)
                rc = EXIT_INVALID;
        }
        if (f != stdin)
            fclose(f);
    }
    return publish_rows(c, &rows, rc, "row", "no requests to enqueue");
}

/* ---- offboarding ---- */

/* One offboarding request for an account (a line of a file or an argument). */
static void offboard_row(rows_t *rows, int line, const char *account, const char *region,
                         const char *role_name, const char *requester)
{
    char arn[256], now[OB_TIME_LEN];
    snprintf(arn, sizeof(arn), "arn:%s:iam::%s:role/%s", ob_region_partition(region), account,
             role_name);
    ob_msg_now(now);
    json_t *obj =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "account_id", account, "mode", "offboard",
                  "region", region, "role_arn", arn, "requester", requester, "requested_at", now);
    if (obj)
        add_row(rows, line, obj);
    else
        rows->bad++;
    json_decref(obj);
}

static int cmd_offboard(ctl_t *c, int argc, char **argv)
{
    const char *file = NULL, *region = getenv("AWS_REGION"),
               *role_name = "OrganizationAccountAccessRole", *requester = "onboardctl offboard";
    rows_t rows;
    if (rows_open(&rows) != 0)
        return EXIT_RUNTIME;
    int nargs = 0, rc = 0;
    const char **accounts = ob_calloc((size_t)argc + 1, sizeof(*accounts));
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--dry-run")) {
            c->dry_run = 1;
        } else if (!strcmp(a, "--file") && i + 1 < argc) {
            file = argv[++i];
        } else if (!strcmp(a, "--region") && i + 1 < argc) {
            region = argv[++i];
        } else if (!strcmp(a, "--role-name") && i + 1 < argc) {
            role_name = argv[++i];
        } else if (!strcmp(a, "--requester") && i + 1 < argc) {
            requester = argv[++i];
        } else if (a[0] != '-') {
            accounts[nargs++] = a;
        } else {
            fprintf(stderr, "onboardctl offboard: unknown option %s (try --help)\n", a);
            rc = EXIT_USAGE;
        }
    }
    if (rc == 0 && (!region || !region[0])) {
        fprintf(stderr, "onboardctl offboard needs --region (or AWS_REGION): the region of the "
                        "accounts' stacks\n");
        rc = EXIT_USAGE;
    }
    if (rc == 0 && !nargs && !file) {
        fprintf(stderr, "onboardctl offboard: name the accounts, or --file F (- for stdin)\n");
        rc = EXIT_USAGE;
    }
    for (int i = 0; rc == 0 && i < nargs; i++)
        offboard_row(&rows, i + 1, accounts[i], region, role_name, requester);
    if (rc == 0 && file) {
        /* One account per line; blank lines and # comments are skipped. */
        FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
        if (!f) {
            fprintf(stderr, "onboardctl: cannot open %s: %s\n", file, strerror(errno));
            rc = EXIT_USAGE;
        }
        char *line = NULL;
        size_t cap = 0;
        for (int n = 1; f && getline(&line, &cap, f) >= 0; n++) {
            char *p = line + strspn(line, " \t");
            p[strcspn(p, " \t\r\n#")] = '\0';
            if (*p)
                offboard_row(&rows, n, p, region, role_name, requester);
        }
        free(line);
        if (f && f != stdin)
            fclose(f);
    }
    free(accounts);
    return publish_rows(c, &rows, rc, "account", "no accounts to offboard");
}

/* ---- Redis reads ---- */

typedef struct rq_s {
    int done;
    ob_err_t err;
    json_t *out;
} rq_t;

static void on_hgetall(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    rq_t *q = arg;
    q->done = 1;
    q->err = err;
    if (err != OB_OK || !reply || reply->type != REDIS_REPLY_ARRAY)
        return;
    q->out = json_object();
    for (size_t i = 0; i + 1 < reply->elements; i += 2)
        json_object_set_new(q->out, reply->element[i]->str,
                            json_string(reply->element[i + 1]->str));
}

/* LRANGE of the history: its entries oldest first (parsed JSON). */
static void on_history(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    rq_t *q = arg;
    q->done = 1;
    q->err = err;
    if (err != OB_OK || !reply || reply->type != REDIS_REPLY_ARRAY)
        return;
    q->out = json_array();
    for (size_t i = reply->elements; i-- > 0;) {
        json_t *e = reply->element[i]->str ? json_loads(reply->element[i]->str, 0, NULL) : NULL;
        if (e)
            json_array_append_new(q->out, e);
    }
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

/* The history as lines: time, event, request, and what it says. */
static void print_history(const json_t *hist)
{
    size_t i;
    const json_t *e;
    if (!json_array_size(hist))
        return;
    printf("\nhistory (oldest first)\n");
    json_array_foreach(hist, i, e)
    {
        printf("  %-24s  %-12s  %s", jstr(e, "at"), jstr(e, "event"), jstr(e, "request_id"));
        if (jstr(e, "stage")[0])
            printf(" at %s", jstr(e, "stage"));
        if (jstr(e, "key")[0])
            printf(", key %.16s", jstr(e, "key"));
        if (jstr(e, "detail")[0])
            printf(": %s", jstr(e, "detail"));
        printf("\n");
    }
}

static int cmd_status(ctl_t *c, int argc, char **argv)
{
    const char *acct = NULL;
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-' || acct) {
            fprintf(stderr, "onboardctl status: unknown argument %s (try --help)\n", argv[i]);
            return EXIT_USAGE;
        }
        acct = argv[i];
    }
    if (!acct || strlen(acct) != 12 || strspn(acct, "0123456789") != 12) {
        fprintf(stderr, "onboardctl status: give a 12-digit account id\n");
        return EXIT_USAGE;
    }
    ob_redis_t *r = ctl_redis_connect(c);
    if (!r)
        return EXIT_RUNTIME;
    rq_t q = {0}, h = {0};
    char key[OB_STATE_KEY_LEN], hkey[OB_STATE_KEY_LEN];
    ob_state_key(acct, key, sizeof(key));
    ob_state_history_key(acct, hkey, sizeof(hkey));
    ob_err_t e = ctl_redis(c, r, on_hgetall, &q, &q.done, "HGETALL %s", key);
    if (e == OB_OK)
        e = ctl_redis(c, r, on_history, &h, &h.done, "LRANGE %s 0 -1", hkey);
    ob_redis_free(r);
    if (e != OB_OK) {
        json_decref(q.out);
        json_decref(h.out);
        return EXIT_RUNTIME;
    }
    if (q.err != OB_OK || h.err != OB_OK) {
        fprintf(stderr, "onboardctl: Redis: %s\n", ob_err2str(q.err != OB_OK ? q.err : h.err));
        json_decref(q.out);
        json_decref(h.out);
        return EXIT_RUNTIME;
    }
    if (!q.out || json_object_size(q.out) == 0) {
        if (c->json)
            ctl_json_print(json_pack("{s:s, s:b}", "account_id", acct, "known", 0));
        else
            printf("%s: no onboarding state (never seen, or not yet picked up)\n", acct);
        json_decref(q.out);
        json_decref(h.out);
        return 0;
    }
    json_object_del(q.out, OB_ST_FENCE);
    if (c->json) {
        json_object_set_new(q.out, "account_id", json_string(acct));
        json_object_set_new(q.out, "known", json_true());
        json_object_set_new(q.out, "history", h.out ? h.out : json_array());
        h.out = NULL;
        ctl_json_print(json_incref(q.out));
    } else {
        printf("account  %s\n", acct);
        const char *k;
        json_t *v;
        json_object_foreach(q.out, k, v)
        {
            if (json_string_value(v)[0])
                printf("%-14s %s\n", k, json_string_value(v));
        }
        print_history(h.out);
    }
    json_decref(q.out);
    json_decref(h.out);
    return 0;
}

typedef struct scan_s {
    int done;
    ob_err_t err;
    char cursor[32];
    json_t *keys;
} scan_t;

static void on_scan(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    scan_t *s = arg;
    s->done = 1;
    s->err = err;
    if (err != OB_OK || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
        return;
    snprintf(s->cursor, sizeof(s->cursor), "%s", reply->element[0]->str);
    for (size_t i = 0; i < reply->element[1]->elements; i++)
        json_array_append_new(s->keys, json_string(reply->element[1]->element[i]->str));
}

typedef struct hm_s {
    json_t *counts;
    json_t *drift; /* drift_status -> accounts (verified ones) */
    int pending;
    int idle;   /* 1 while nothing is pending */
    int failed; /* a reply was an error: the counts are short */
} hm_t;

static void on_hmget(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    hm_t *h = arg;
    h->idle = --h->pending == 0;
    if (err != OB_OK || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        h->failed = 1;
        return;
    }
    const char *drift = reply->element[2]->str;
    if (drift && drift[0])
        json_object_set_new(h->drift, drift,
                            json_integer(json_integer_value(json_object_get(h->drift, drift)) + 1));
    char k[128];
    snprintf(k, sizeof(k), "%s/%s", reply->element[0]->str ? reply->element[0]->str : "?",
             reply->element[1]->str ? reply->element[1]->str : "?");
    json_object_set_new(h->counts, k,
                        json_integer(json_integer_value(json_object_get(h->counts, k)) + 1));
}

static int cmd_summary(ctl_t *c, int argc, char **argv)
{
    if (argc > 0) {
        fprintf(stderr, "onboardctl summary: unknown argument %s (try --help)\n", argv[0]);
        return EXIT_USAGE;
    }
    ob_redis_t *r = ctl_redis_connect(c);
    if (!r)
        return EXIT_RUNTIME;
    hm_t h = {json_object(), json_object(), 0, 1, 0};
    scan_t s = {0, OB_OK, "0", NULL};
    size_t total = 0;
    ob_err_t e = OB_OK;
    do {
        s.done = 0;
        s.keys = json_array();
        e = ctl_redis(c, r, on_scan, &s, &s.done,
                      "SCAN %s MATCH " OB_STATE_KEY_PATTERN " COUNT 1000", s.cursor);
        size_t i;
        json_t *k;
        json_array_foreach(s.keys, i, k)
        {
            if (e != OB_OK || s.err != OB_OK)
                break;
            e = ob_redis_command(r, on_hmget, &h,
                                 "HMGET %s " OB_ST_STAGE " " OB_ST_STATUS " " OB_ST_DRIFT_STATUS,
                                 json_string_value(k));
            if (e != OB_OK) {
                fprintf(stderr, "onboardctl: Redis: the command could not be sent: %s\n",
                        ob_err2str(e));
                break;
            }
            h.pending++;
            h.idle = 0;
            total++;
        }
        json_decref(s.keys);
        if (ctl_wait(c, &h.idle, 15000, "Redis") != OB_OK)
            e = OB_ERR_TIMEOUT;
    } while (e == OB_OK && s.err == OB_OK && strcmp(s.cursor, "0") != 0);
    ob_redis_free(r); /* what is still pending is answered (cancelled) here */
    if (e == OB_OK && s.err != OB_OK)
        fprintf(stderr, "onboardctl: Redis: %s\n", ob_err2str(s.err));
    else if (e == OB_OK && h.failed)
        fprintf(stderr, "onboardctl: Redis: some accounts' states could not be read\n");
    if (e != OB_OK || s.err != OB_OK || h.failed) {
        json_decref(h.counts);
        json_decref(h.drift);
        return EXIT_RUNTIME;
    }
    if (c->json) {
        ctl_json_print(json_pack("{s:I, s:O, s:O}", "accounts", (json_int_t)total,
                                 "by_stage_status", h.counts, "by_drift_status", h.drift));
    } else {
        printf("%-24s %8s\n", "stage/status", "accounts");
        const char *k;
        json_t *v;
        json_object_foreach(h.counts, k, v)
            printf("%-24s %8lld\n", k, (long long)json_integer_value(v));
        printf("%-24s %8zu\n", "total", total);
        /* What the last verification of each verified account found. */
        json_object_foreach(h.drift, k, v)
            printf("%-24s %8lld\n", k[0] == 'i' ? "verified/in_sync" : "verified/drifted",
                   (long long)json_integer_value(v));
    }
    json_decref(h.counts);
    json_decref(h.drift);
    return 0;
}

/* ---- dead letters ---- */

typedef struct dlq_filter_s {
    const char *account, *stage, *code, *since, *until, *dlq_id;
} dlq_filter_t;

static int dlq_match(const ob_dlq_t *d, const dlq_filter_t *f)
{
    if (f->account && (!d->account_id || strcmp(d->account_id, f->account) != 0))
        return 0;
    if (f->stage && strcmp(ob_stage_name(d->stage), f->stage) != 0)
        return 0;
    if (f->code && strcmp(d->code, f->code) != 0)
        return 0;
    if (f->since && strcmp(d->last_failure_at, f->since) < 0)
        return 0;
    if (f->until && strcmp(d->last_failure_at, f->until) > 0)
        return 0;
    if (f->dlq_id && strcmp(d->dlq_id, f->dlq_id) != 0)
        return 0;
    return 1;
}

typedef int(dlq_each_fn)(ctl_t *c, ob_dlq_t *d, void *arg); /* 1: keep d (the callee owns it) */

typedef struct dlq_read_s {
    dlq_each_fn *each;
    void *arg;
    size_t *total, *unreadable;
} dlq_read_t;

static void dlq_message(ctl_t *c, const rd_kafka_message_t *m, void *arg)
{
    dlq_read_t *r = arg;
    (*r->total)++;
    ob_dlq_t d;
    ob_msg_error_t me;
    if (ob_dlq_parse(m->payload, m->len, &d, &me) != OB_OK) {
        (*r->unreadable)++;
        fprintf(stderr, "%s [%d] offset %lld: unreadable dead letter: %s\n",
                rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset, me.message);
    } else if (!r->each(c, &d, r->arg)) {
        ob_dlq_clear(&d);
    }
}

/* Read the whole dead-letter topic (every partition from its start to its
 * current end) without joining any consumer group, so nothing is committed.
 * Unreadable records are reported on stderr and counted in *unreadable. */
static int dlq_scan(ctl_t *c, dlq_each_fn *each, void *arg, size_t *total, size_t *unreadable)
{
    dlq_read_t r = {each, arg, total, unreadable};
    return ctl_topic_scan(c, "dlq", dlq_message, &r, 0);
}

/* Shared by dlq list and replay. */
static int dlq_filter_arg(dlq_filter_t *f, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (*i + 1 >= argc)
        return 0;
    const char **slot = !strcmp(a, "--account") ? &f->account
                        : !strcmp(a, "--stage") ? &f->stage
                        : !strcmp(a, "--code")  ? &f->code
                        : !strcmp(a, "--since") ? &f->since
                        : !strcmp(a, "--until") ? &f->until
                        : !strcmp(a, "--id")    ? &f->dlq_id
                                                : NULL;
    if (!slot)
        return 0;
    *slot = argv[++*i];
    return 1;
}

typedef struct list_s {
    const dlq_filter_t *f;
    json_t *counts;
    size_t shown;
} list_t;

static int list_each(ctl_t *c, ob_dlq_t *d, void *arg)
{
    list_t *l = arg;
    if (!dlq_match(d, l->f))
        return 0;
    l->shown++;
    char key[160];
    snprintf(key, sizeof(key), "%s/%s", ob_stage_name(d->stage), d->code);
    json_object_set_new(l->counts, key,
                        json_integer(json_integer_value(json_object_get(l->counts, key)) + 1));
    if (c->json) {
        ctl_json_row(c,
                     json_pack("{s:s, s:s?, s:s?, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:b}",
                               "dlq_id", d->dlq_id, "account_id", d->account_id, "request_id",
                               d->request_id, "stage", ob_stage_name(d->stage), "class",
                               ob_dlq_class_name(d->cls), "code", d->code, "message", d->message,
                               "attempts", d->attempts, "first_failure_at", d->first_failure_at,
                               "last_failure_at", d->last_failure_at, "replayable", d->replayable));
    } else {
        printf("%-14s %-8s %-18s %-24s %s\n", d->account_id ? d->account_id : "-",
               ob_stage_name(d->stage), ob_dlq_class_name(d->cls), d->code, d->message);
    }
    return 0;
}

static int cmd_dlq(ctl_t *c, int argc, char **argv)
{
    dlq_filter_t f = {0};
    if (argc < 1 || strcmp(argv[0], "list") != 0) {
        fprintf(stderr, "onboardctl dlq: the subcommand is list (try --help)\n");
        return EXIT_USAGE;
    }
    for (int i = 1; i < argc; i++) {
        if (!dlq_filter_arg(&f, argc, argv, &i)) {
            fprintf(stderr, "onboardctl dlq list: unknown or incomplete option %s\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    list_t l = {&f, json_object(), 0};
    size_t total = 0, unreadable = 0;
    if (c->json)
        ctl_json_begin(c, "dead_letters");
    int rc = dlq_scan(c, list_each, &l, &total, &unreadable);
    if (c->json) {
        ctl_json_end(c, json_pack("{s:I, s:I, s:I, s:O}", "records", (json_int_t)total, "matching",
                                  (json_int_t)l.shown, "unreadable", (json_int_t)unreadable,
                                  "by_stage_code", l.counts));
    } else {
        printf("\n%zu of %zu dead letters match", l.shown, total);
        if (unreadable)
            printf(" (%zu unreadable)", unreadable);
        printf("; per stage/code:\n");
        const char *k;
        json_t *v;
        json_object_foreach(l.counts, k, v)
            printf("  %-40s %lld\n", k, (long long)json_integer_value(v));
    }
    json_decref(l.counts);
    return rc;
}

/* ---- replay ---- */

/*
 * Reserve a dead letter for replay, atomically with the checks that make a
 * replay safe. KEYS: the account's state, its replay ledger. ARGV: dlq_id,
 * the record's request_id, force (0/1), dry run (0/1), now.
 * Returns {verdict, detail}: ok (reserved; detail "pending" when an earlier
 * run reserved it but did not confirm the publish), would (dry run), replayed
 * (done before, detail: when), connected, moved (the account's state is not
 * this record's failure any more: detail says what it is).
 */
static const char *const replay_lua =
    "local m = redis.call('HGET', KEYS[2], ARGV[1])\n"
    "if m and string.sub(m, 1, 5) == 'done:' then return {'replayed', string.sub(m, 6)} end\n"
    "local st = redis.call('HMGET', KEYS[1], '" OB_ST_STATUS "', '" OB_ST_REQUEST_ID
    "', '" OB_ST_STAGE "', '" OB_ST_REPLAY_OF "')\n"
    "local status, rid = st[1] or '', st[2] or ''\n"
    "if ARGV[3] ~= '1' then\n"
    "  if status == '" OB_ST_STATUS_CONNECTED "' then return {'connected', rid} end\n"
    "  local ours = status == '' or (status == '" OB_ST_STATUS_FAILED "' and (rid == ARGV[2] or "
    "ARGV[2] == ''))\n"
    "  ours = ours or (status == '" OB_ST_STATUS_REPLAYED "' and st[4] == ARGV[1])\n"
    "  if not ours then return {'moved', status .. ' at ' .. (st[3] or '?') .. ' for request ' "
    ".. rid} end\n"
    "end\n"
    "if ARGV[4] == '1' then return {'would', m and 'pending' or ''} end\n"
    "redis.call('HSET', KEYS[2], ARGV[1], 'pending:' .. ARGV[5])\n"
    "redis.call('HSET', KEYS[1], '" OB_ST_STATUS "', '" OB_ST_STATUS_REPLAYED
    "', '" OB_ST_STAGE_ATTEMPTS "', '0', '" OB_ST_REPLAY_OF "', ARGV[1], '" OB_ST_UPDATED_AT
    "', ARGV[5], '" OB_ST_NEXT_ATTEMPT_AT "', '')\n"
    "return {'ok', m and 'pending' or ''}\n";

/* The text value of the dead letter's original header `name` (NULL: none). */
static const char *original_header(const ob_dlq_t *d, const char *name)
{
    const json_t *hs = json_object_get(json_object_get(d->doc, "original"), "headers"), *h;
    size_t i;
    json_array_foreach(hs, i, h)
    {
        const char *n = json_string_value(json_object_get(h, "name"));
        const char *v = json_string_value(json_object_get(h, "value"));
        if (n && v && !strcmp(n, name))
            return v;
    }
    return NULL;
}

typedef struct pick_s {
    const dlq_filter_t *f;
    json_t *latest; /* account (or dlq_id without one) -> index in v */
    ob_dlq_t *v;
    size_t n, cap;
    size_t superseded;
} pick_t;

static int pick_each(ctl_t *c, ob_dlq_t *d, void *arg)
{
    pick_t *p = arg;
    if (!dlq_match(d, p->f))
        return 0;
    const char *key = d->account_id ? d->account_id : d->dlq_id;
    json_t *at = json_object_get(p->latest, key);
    if (at) {
        /* The newest failure of the account wins: by last failure time (the
         * workers key dead letters by account, so they also share a partition
         * and come in order; records produced without a key may not). */
        p->superseded++;
        size_t i = (size_t)json_integer_value(at);
        if (strcmp(d->last_failure_at, p->v[i].last_failure_at) < 0)
            return 0;
        ob_dlq_clear(&p->v[i]);
        p->v[i] = *d;
        return 1;
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->v = ob_realloc(p->v, p->cap * sizeof(*p->v));
    }
    json_object_set_new(p->latest, key, json_integer((json_int_t)p->n));
    p->v[p->n++] = *d;
    return 1;
}

typedef struct rr_s {
    int done;
    ob_err_t err;
    char verdict[16];
    char detail[256];
} rr_t;

static void on_reserve(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    rr_t *q = arg;
    q->done = 1;
    q->err = err;
    const char *rerr = reply ? ob_redis_reply_error(reply) : NULL;
    if (err == OB_OK && rerr) {
        q->err = OB_ERR_REDIS;
        snprintf(q->detail, sizeof(q->detail), "%s", rerr);
        return;
    }
    if (err != OB_OK || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        if (q->err == OB_OK)
            q->err = OB_ERR_REDIS;
        return;
    }
    snprintf(q->verdict, sizeof(q->verdict), "%s", reply->element[0]->str);
    snprintf(q->detail, sizeof(q->detail), "%s", reply->element[1]->str);
}

static void on_simple(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    rr_t *q = arg;
    q->done = 1;
    q->err = err == OB_OK && reply && ob_redis_reply_error(reply) ? OB_ERR_REDIS : err;
}

static void redis_wait(ctl_t *c, rr_t *q)
{
    while (!q->done)
        ob_loop_run_once(c->loop, 100);
}

/* The bytes to publish for a replay of d, with replay_of set; NULL and *why
 * when the record cannot be replayed. */
static char *replay_payload(const ob_dlq_t *d, size_t *len, const char **schema, char *why,
                            size_t why_size)
{
    if (!d->payload) {
        snprintf(why, why_size,
                 "the original is not a JSON message (kept as base64): fix it and enqueue it anew");
        return NULL;
    }
    char *orig = NULL;
    size_t olen = 0;
    ob_err_t e = ob_dlq_original(d, &orig, &olen);
    if (e != OB_OK) {
        snprintf(why, why_size, "%s",
                 e == OB_ERR_STATE ? "the original was truncated in the dead letter"
                                   : "cannot rebuild the original");
        return NULL;
    }
    ob_msg_error_t me;
    char *out = NULL;
    if (d->stage == OB_STAGE_INTAKE || d->stage == OB_STAGE_BUCKET) {
        ob_request_t req;
        if (ob_request_parse(orig, olen, &req, &me) != OB_OK) {
            snprintf(why, why_size, "the original request does not read as %s: %s",
                     OB_SCHEMA_REQUEST, me.message);
        } else {
            ob_request_clear(&req);
            out = orig;
            orig = NULL;
            *len = olen;
            *schema = OB_SCHEMA_REQUEST;
        }
    } else {
        ob_stage_msg_t m;
        if (ob_stage_parse(orig, olen, &m, &me) != OB_OK) {
            snprintf(why, why_size, "the original hand-off does not read as %s: %s",
                     OB_SCHEMA_STAGE, me.message);
        } else {
            snprintf(m.replay_of, sizeof(m.replay_of), "%s", d->dlq_id);
            if (ob_stage_to_json(&m, &out, len, &me) != OB_OK)
                snprintf(why, why_size, "cannot rebuild the hand-off: %s", me.message);
            *schema = OB_SCHEMA_STAGE;
            ob_stage_msg_clear(&m);
        }
    }
    free(orig);
    return out;
}

typedef struct rp_del_s {
    int done;
    ob_err_t err;
    char errmsg[256];
} rp_del_t;

static void on_replay_delivery(ob_kproducer_t *p, ob_err_t err, const char *errmsg,
                               const rd_kafka_message_t *m, void *opaque, void *arg)
{
    rp_del_t *d = opaque;
    if (!d)
        return;
    d->done = 1;
    d->err = err;
    if (errmsg)
        snprintf(d->errmsg, sizeof(d->errmsg), "%s", errmsg);
}

static void replay_report(ctl_t *c, const ob_dlq_t *d, const char *action, const char *why)
{
    if (c->json) {
        ctl_json_row(c, json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s}", "dlq_id", d->dlq_id, "action",
                                  action, "account_id", d->account_id, "stage",
                                  ob_stage_name(d->stage), "code", d->code, "reason", why));
    } else {
        ctl_progress_clear();
        printf("%-9s %-14s %-8s %-24s %s\n", action, d->account_id ? d->account_id : "-",
               ob_stage_name(d->stage), d->code, why);
    }
}

static int cmd_replay(ctl_t *c, int argc, char **argv)
{
    dlq_filter_t f = {0};
    int force = 0;
    long limit = -1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--dry-run"))
            c->dry_run = 1;
        else if (!strcmp(argv[i], "--force"))
            force = 1;
        else if (!strcmp(argv[i], "--limit") && i + 1 < argc) {
            char *end;
            limit = strtol(argv[++i], &end, 10);
            if (*end || limit < 0) {
                fprintf(stderr, "onboardctl replay: --limit takes a number >= 0\n");
                return EXIT_USAGE;
            }
        } else if (!dlq_filter_arg(&f, argc, argv, &i)) {
            fprintf(stderr, "onboardctl replay: unknown or incomplete option %s\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    pick_t p = {.f = &f, .latest = json_object()};
    size_t total = 0, unreadable = 0;
    if (c->json)
        ctl_json_begin(c, "results");
    c->scan_progress = 1;
    int rc = dlq_scan(c, pick_each, &p, &total, &unreadable);
    ob_redis_t *r = rc == 0 ? ctl_redis_connect(c) : NULL;
    ob_kproducer_t *prod = NULL;
    char err[512];
    if (rc == 0 && r && !c->dry_run) {
        ob_kproducer_opts_t po = {.kafka = &c->cfg.kafka, .on_delivery = on_replay_delivery};
        prod = ob_kproducer_new(c->loop, &po, err, sizeof(err));
        if (!prod)
            fprintf(stderr, "onboardctl: %s\n", err);
    }
    if (rc == 0 && (!r || (!c->dry_run && !prod)))
        rc = EXIT_RUNTIME;
    size_t n_replayed = 0, n_would = 0, n_skipped = 0, n_refused = 0, n_failed = 0, i;
    if (rc == 0)
        ctl_progress_start(c->dry_run ? "replay (dry run):" : "replay:", p.n);
    for (i = 0; rc == 0 && i < p.n; i++) {
        ob_dlq_t *d = &p.v[i];
        char why[768];
        ctl_progress(i);
        if (limit >= 0 && (long)(n_replayed + n_would) >= limit)
            break;
        if (d->cls == OB_DLQ_INVALID_INPUT || d->cls == OB_DLQ_UNSUPPORTED_CLOUD) {
            snprintf(why, sizeof(why),
                     "class %s: the same message would fail the same way; fix "
                     "the request and enqueue it anew",
                     ob_dlq_class_name(d->cls));
            replay_report(c, d, "refused", why);
            n_refused++;
            continue;
        }
        if (!d->account_id) {
            replay_report(c, d, "refused", "the record names no account");
            n_refused++;
            continue;
        }
        size_t len = 0;
        const char *schema = NULL;
        char *payload = replay_payload(d, &len, &schema, why, sizeof(why));
        if (!payload) {
            replay_report(c, d, "refused", why);
            n_refused++;
            continue;
        }
        /* The input topic of the stage that failed, under today's prefix. */
        static const ob_topic_t input_of[OB_STAGE__COUNT] = {
            OB_TOPIC_REQUESTS, OB_TOPIC_REQUESTS, OB_TOPIC_CUR, OB_TOPIC_IAM, OB_TOPIC_CONNECT};
        char topic[256];
        if (ob_topic_name(c->cfg.topic_prefix, input_of[d->stage], topic, sizeof(topic), why,
                          sizeof(why)) != OB_OK) {
            replay_report(c, d, "refused", why);
            n_refused++;
            free(payload);
            continue;
        }
        char state_key[OB_STATE_KEY_LEN], ledger_key[OB_STATE_KEY_LEN], now[OB_TIME_LEN];
        ob_state_key(d->account_id, state_key, sizeof(state_key));
        ob_state_replays_key(d->account_id, ledger_key, sizeof(ledger_key));
        ob_msg_now(now);
        rr_t q = {0};
        ob_redis_command(r, on_reserve, &q, "EVAL %s 2 %s %s %s %s %s %s %s", replay_lua, state_key,
                         ledger_key, d->dlq_id, d->request_id ? d->request_id : "",
                         force ? "1" : "0", c->dry_run ? "1" : "0", now);
        redis_wait(c, &q);
        if (q.err != OB_OK) {
            ctl_progress_clear();
            fprintf(stderr, "onboardctl: Redis: %s %s\n", ob_err2str(q.err), q.detail);
            free(payload);
            rc = EXIT_RUNTIME;
            break;
        }
        if (!strcmp(q.verdict, "replayed") || !strcmp(q.verdict, "connected") ||
            !strcmp(q.verdict, "moved")) {
            if (!strcmp(q.verdict, "replayed"))
                snprintf(why, sizeof(why), "already replayed at %s", q.detail);
            else if (!strcmp(q.verdict, "connected"))
                snprintf(why, sizeof(why), "the account is connected (--force replays anyway)");
            else
                snprintf(why, sizeof(why),
                         "the account moved on since this failure: %s (--force replays anyway)",
                         q.detail);
            replay_report(c, d, "skipped", why);
            n_skipped++;
            free(payload);
            continue;
        }
        if (!strcmp(q.verdict, "would")) {
            snprintf(why, sizeof(why), "to %s, attempts reset%s", topic,
                     q.detail[0] ? " (an earlier run did not finish it)" : "");
            replay_report(c, d, "would", why);
            n_would++;
            free(payload);
            continue;
        }
        rd_kafka_headers_t *h = rd_kafka_headers_new(3);
        rd_kafka_header_add(h, OB_MSG_HDR_SCHEMA, -1, schema, -1);
        rd_kafka_header_add(h, OB_MSG_HDR_REPLAY_OF, -1, d->dlq_id, -1);
        /* Where its request entered the fleet: a replay is still that
         * request, and stops like it if a newer one replaced it. */
        const char *intake = original_header(d, OB_MSG_HDR_INTAKE);
        if (intake)
            rd_kafka_header_add(h, OB_MSG_HDR_INTAKE, -1, intake, -1);
        rp_del_t del = {0};
        ob_err_t e =
            ob_kproducer_send(prod, topic, RD_KAFKA_PARTITION_UA, d->account_id,
                              strlen(d->account_id), payload, len, h, &del, err, sizeof(err));
        free(payload);
        if (e == OB_OK) {
            while (!del.done)
                ob_loop_run_once(c->loop, 100);
            e = del.err;
            snprintf(err, sizeof(err), "%s", del.errmsg);
        }
        if (e != OB_OK) {
            /* The reservation stays pending: the next run publishes it. */
            snprintf(why, sizeof(why), "publish to %.200s failed: %.400s", topic, err);
            replay_report(c, d, "failed", why);
            n_failed++;
            continue;
        }
        rr_t q2 = {0};
        char mark[64];
        snprintf(mark, sizeof(mark), "done:%s", now);
        ob_redis_command(r, on_simple, &q2, "HSET %s %s %s", ledger_key, d->dlq_id, mark);
        redis_wait(c, &q2);
        snprintf(why, sizeof(why), "to %s, attempts reset%s", topic,
                 q.detail[0] ? " (finishing an earlier run)" : "");
        replay_report(c, d, "replayed", why);
        n_replayed++;
    }
    if (rc == 0)
        ctl_progress_end(i);
    else
        ctl_progress_stop();
    if (prod) {
        ob_kproducer_flush(prod, 10000);
        ob_kproducer_free(prod);
    }
    ob_redis_free(r);
    for (i = 0; i < p.n; i++)
        ob_dlq_clear(&p.v[i]);
    free(p.v);
    json_decref(p.latest);
    if (c->json) {
        ctl_json_end(c,
                     json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "records",
                               (json_int_t)total, "unreadable", (json_int_t)unreadable,
                               "superseded", (json_int_t)p.superseded, "replayed",
                               (json_int_t)n_replayed, "would_replay", (json_int_t)n_would,
                               "skipped", (json_int_t)n_skipped, "refused", (json_int_t)n_refused,
                               "failed", (json_int_t)n_failed, "dry_run", c->dry_run));
    } else {
        printf("\n%s%zu replayed, %zu skipped, %zu refused, %zu failed (%zu records, %zu older "
               "records of the same accounts superseded",
               c->dry_run ? "dry run: " : "", c->dry_run ? n_would : n_replayed, n_skipped,
               n_refused, n_failed, total, p.superseded);
        if (unreadable)
            printf(", %zu unreadable", unreadable);
        printf(")\n");
    }
    if (rc == 0 && n_failed)
        rc = EXIT_RUNTIME;
    return rc;
}

/* ---- retry now ---- */

/* What retry did: sent (no wait), the attempt started (seen: the state
 * then), or the account still waiting after the wait. */
static void retry_report(ctl_t *c, const char *acct, const char *topic, const char *stage,
                         int waited, const json_t *seen)
{
    const char *st = json_string_value(json_object_get(seen, OB_ST_STATUS));
    const char *at = json_string_value(json_object_get(seen, OB_ST_STAGE_ATTEMPTS));
    const char *now_at = json_string_value(json_object_get(seen, OB_ST_STAGE));
    if (c->json) {
        ctl_json_print(json_pack("{s:s, s:s, s:b, s:b, s:s?, s:s?, s:s?}", "account_id", acct,
                                 "topic", topic, "waited", waited, "retrying", seen != NULL,
                                 "status", st, "stage", seen ? now_at : stage, "stage_attempts",
                                 at));
    } else if (seen) {
        printf("%s: retrying now (status %s, stage %s, attempt %s)\n", acct, st,
               now_at ? now_at : "?", at ? at : "?");
    } else if (waited) {
        printf("%s: retry sent to %s; the account is still waiting (is the %s worker "
               "running?)\n",
               acct, topic, stage);
    } else {
        printf("%s: retry sent to %s\n", acct, topic);
    }
}

static int cmd_retry(ctl_t *c, int argc, char **argv)
{
    rq_t s; /* as long as r: see ctl_redis */
    const char *acct = NULL;
    long wait_ms = 15000;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--no-wait"))
            wait_ms = 0;
        else if (argv[i][0] != '-' && !acct)
            acct = argv[i];
        else {
            fprintf(stderr, "onboardctl retry: unknown argument %s\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!acct || strlen(acct) != 12 || strspn(acct, "0123456789") != 12) {
        fprintf(stderr, "onboardctl retry: give a 12-digit account id\n");
        return EXIT_USAGE;
    }
    ob_redis_t *r = ctl_redis_connect(c);
    if (!r)
        return EXIT_RUNTIME;
    char key[OB_STATE_KEY_LEN];
    ob_state_key(acct, key, sizeof(key));
    rq_t q = {0};
    if (ctl_redis(c, r, on_hgetall, &q, &q.done, "HGETALL %s", key) != OB_OK) {
        ob_redis_free(r);
        json_decref(q.out);
        return EXIT_RUNTIME;
    }
    const char *status = json_string_value(json_object_get(q.out, OB_ST_STATUS));
    const char *stage = json_string_value(json_object_get(q.out, OB_ST_STAGE));
    const char *attempts = json_string_value(json_object_get(q.out, OB_ST_STAGE_ATTEMPTS));
    static const char *const inputs[][2] = {
        {"bucket", "requests"}, {"cur", "cur"}, {"iam", "iam"}, {"connect", "connect"}};
    const char *input = NULL;
    for (size_t i = 0; stage && i < 4; i++)
        if (!strcmp(stage, inputs[i][0]))
            input = inputs[i][1];
    int rc = 0;
    if (q.err != OB_OK) {
        fprintf(stderr, "onboardctl: Redis: %s\n", ob_err2str(q.err));
        rc = EXIT_RUNTIME;
    } else if (!status || strcmp(status, OB_ST_STATUS_WAITING) != 0 || !input) {
        fprintf(stderr,
                "onboardctl retry: %s is not waiting for a retry (status %s at stage %s); "
                "see onboardctl status %s\n",
                acct, status ? status : "unknown", stage ? stage : "none", acct);
        rc = EXIT_RUNTIME;
    }
    char attempts0[16], stage0[32];
    snprintf(attempts0, sizeof(attempts0), "%s", attempts ? attempts : "");
    snprintf(stage0, sizeof(stage0), "%s", stage ? stage : "");
    char topic[256], err[512];
    snprintf(topic, sizeof(topic), "%s%s", c->cfg.topic_prefix, input ? input : "");
    json_t *msg = json_pack("{s:s, s:s, s:s, s:O?}", "schema", OB_SCHEMA_CONTROL, "action",
                            OB_CONTROL_RETRY_NOW, "account_id", acct, "request_id",
                            json_object_get(q.out, OB_ST_REQUEST_ID));
    char *body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (!body && rc == 0) {
        fprintf(stderr, "onboardctl: out of memory\n");
        rc = EXIT_RUNTIME;
    }
    json_decref(q.out);
    int sent = 0;
    if (rc == 0) {
        ob_kproducer_opts_t po = {.kafka = &c->cfg.kafka, .on_delivery = on_replay_delivery};
        ob_kproducer_t *prod = ob_kproducer_new(c->loop, &po, err, sizeof(err));
        rp_del_t del = {0};
        rd_kafka_headers_t *h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, OB_MSG_HDR_SCHEMA, -1, OB_SCHEMA_CONTROL, -1);
        rd_kafka_header_add(h, OB_MSG_HDR_CONTROL, -1, OB_CONTROL_RETRY_NOW, -1);
        ob_err_t e = prod ? ob_kproducer_send(prod, topic, RD_KAFKA_PARTITION_UA, acct, 12, body,
                                              strlen(body), h, &del, err, sizeof(err))
                          : OB_ERR_KAFKA;
        if (!prod)
            rd_kafka_headers_destroy(h);
        if (e == OB_OK) {
            while (!del.done)
                ob_loop_run_once(c->loop, 100);
            e = del.err;
            snprintf(err, sizeof(err), "%s", del.errmsg);
        }
        ob_kproducer_free(prod);
        if (e != OB_OK) {
            fprintf(stderr, "onboardctl: cannot send the retry to %s: %s\n", topic, err);
            rc = EXIT_RUNTIME;
        }
        sent = e == OB_OK;
    }
    json_t *seen = NULL; /* the state once the attempt started */
    int moved = 0;
    if (rc == 0 && wait_ms > 0) {
        /* The worker that owns the account's partition starts the attempt
         * at once: watch the state move on. */
        uint64_t end = ob_loop_update_time(c->loop) + (uint64_t)wait_ms;
        while (!moved && ob_loop_update_time(c->loop) < end) {
            memset(&s, 0, sizeof(s));
            if (ctl_redis(c, r, on_hgetall, &s, &s.done, "HGETALL %s", key) != OB_OK) {
                json_decref(s.out);
                break;
            }
            const char *st = json_string_value(json_object_get(s.out, OB_ST_STATUS));
            const char *at = json_string_value(json_object_get(s.out, OB_ST_STAGE_ATTEMPTS));
            moved = st && (strcmp(st, OB_ST_STATUS_WAITING) != 0 || (at && strcmp(at, attempts0)));
            if (moved)
                seen = json_incref(s.out);
            json_decref(s.out);
            if (!moved)
                ob_loop_run_once(c->loop, 200);
        }
        if (!moved)
            rc = EXIT_RUNTIME;
    }
    if (sent)
        retry_report(c, acct, topic, stage0, wait_ms > 0, seen);
    json_decref(seen);
    free(body);
    ob_redis_free(r);
    return rc;
}

/* ---- main ---- */

typedef int(cmd_fn)(ctl_t *c, int argc, char **argv);

static int cmd_check(ctl_t *c, int argc, char **argv)
{
    return ctl_check(c, argc, argv, 0);
}

static int cmd_rebuild(ctl_t *c, int argc, char **argv)
{
    return ctl_check(c, argc, argv, 1);
}

static const struct {
    const char *name;
    cmd_fn *fn;
} COMMANDS[] = {
    {"enqueue", cmd_enqueue}, {"offboard", cmd_offboard}, {"status", cmd_status},
    {"summary", cmd_summary}, {"dlq", cmd_dlq},           {"replay", cmd_replay},
    {"retry", cmd_retry},     {"lag", ctl_lag},           {"verify", ctl_verify},
    {"check", cmd_check},     {"rebuild", cmd_rebuild},   {"version", ctl_version},
};

static cmd_fn *command(const char *name)
{
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++)
        if (!strcmp(COMMANDS[i].name, name))
            return COMMANDS[i].fn;
    return NULL;
}

/* What needs no settings: the usage, a command's usage, the version. -1
 * when the command is to run. */
static int without_settings(ctl_t *c, const ctl_cli_t *cli)
{
    const char *name = cli->argc ? cli->argv[0] : NULL;
    if (cli->version)
        return ctl_version(c, 0, NULL);
    if (!name) {
        ctl_usage(stderr, NULL);
        return EXIT_USAGE;
    }
    if (ctl_is_help(name))
        return ctl_help(NULL);
    if (!strcmp(name, "help")) {
        if (cli->argc > 1 && !command(cli->argv[1])) {
            fprintf(stderr, "onboardctl: unknown command %s (try --help)\n", cli->argv[1]);
            return EXIT_USAGE;
        }
        return ctl_help(cli->argc > 1 ? cli->argv[1] : NULL);
    }
    if (!command(name)) {
        fprintf(stderr, "onboardctl: unknown command %s (try --help)\n", name);
        return EXIT_USAGE;
    }
    for (int i = 1; i < cli->argc; i++)
        if (ctl_is_help(cli->argv[i]))
            return ctl_help(name);
    if (!strcmp(name, "version"))
        return ctl_version(c, cli->argc - 1, cli->argv + 1);
    return -1;
}

int main(int argc, char **argv)
{
    json_set_alloc_funcs(ob_malloc, free); /* the out-of-memory policy: ob_alloc.h */
    ctl_t c;
    memset(&c, 0, sizeof(c));
    ctl_cli_t cli;
    int rc = ctl_cli_parse(argc, argv, &cli);
    c.json = cli.json;
    if (rc == 0)
        rc = without_settings(&c, &cli);
    if (rc >= 0) {
        ctl_cli_free(&cli);
        return rc;
    }
    rc = ctl_config_load(&c, &cli);
    if (rc != 0) {
        ctl_cli_free(&cli);
        return rc;
    }
    ob_log_set_level(OB_LOG_WARN);
    char err[1024];
    c.loop = ob_loop_new(err, sizeof(err));
    if (!c.loop) {
        fprintf(stderr, "onboardctl: %s\n", err);
        rc = EXIT_RUNTIME;
    } else {
        rc = command(cli.argv[0])(&c, cli.argc - 1, cli.argv + 1);
    }
    ob_loop_free(c.loop);
    ob_config_free(&c.cfg);
    ctl_cli_free(&cli);
    return rc;
}
