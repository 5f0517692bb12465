/*
 * onboardctl verify: are connected accounts still as the fleet made them?
 *
 * For each account asked for (or every connected one, --all), the record's
 * connection (its key, the request that made it: connected_spec, the stack,
 * the Billing Engine role) becomes an onboard.verify/1 on <prefix>verify,
 * which the verify workers check (workers/stage_verify.c); then the tool
 * follows <prefix>drift until each verification's finding is there (or the
 * timeout) and tells them: in sync, or what drifted, and the repair sent
 * with --repair; a verification the workers gave up on has no finding, and
 * its reason is read from the account's record (verify_error). Accounts that
 * are not connected are named and skipped. Exit code 0 when all are in sync,
 * 6 when one drifted, 1 on a timeout or a failed verification.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "ob_alloc.h"
#include "ob_crypto.h"
#include "ob_kafka.h"
#include "ob_msg.h"
#include "ob_state.h"
#include "ob_watch.h"

#define FIELDS 5 /* status, idempotency_key, connected_spec, stack_id, role_arn */

typedef struct target_s {
    char account[OB_ACCOUNT_ID_LEN];
    char request_id[OB_REQUEST_ID_LEN];
    char *fields[FIELDS];
    int sent, answered;
    json_t *answer; /* the drift event */
} target_t;

typedef struct verify_s {
    ctl_t *c;
    target_t *t;
    size_t n, cap;
    int pending; /* Redis replies awaited */
    int idle;
    int failed;
    size_t answered, sent;
    int all_answered;
} verify_t;

static void on_fields(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg);

typedef struct fetch_s {
    verify_t *v;
    size_t i;
} fetch_t;

static ob_err_t ask_record(verify_t *v, ob_redis_t *r, size_t i)
{
    char key[OB_STATE_KEY_LEN];
    ob_state_key(v->t[i].account, key, sizeof(key));
    fetch_t *f = ob_malloc(sizeof(*f));
    *f = (fetch_t){v, i};
    ob_err_t e = ob_redis_command(r, on_fields, f,
                                  "HMGET %s " OB_ST_STATUS " " OB_ST_IDEMPOTENCY_KEY
                                  " " OB_ST_CONNECTED_SPEC " " OB_ST_STACK_ID " " OB_ST_ROLE_ARN,
                                  key);
    if (e != OB_OK) {
        free(f);
        return e;
    }
    v->pending++;
    v->idle = 0;
    return OB_OK;
}

static void on_fields(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    (void)r;
    fetch_t *f = arg;
    verify_t *v = f->v;
    v->idle = --v->pending == 0;
    if (err != OB_OK || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != FIELDS)
        v->failed = 1;
    else
        for (int k = 0; k < FIELDS; k++)
            v->t[f->i].fields[k] = ob_strdup(reply->element[k]->str ? reply->element[k]->str : "");
    free(f);
}

static void add_target(verify_t *v, const char *account)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->t = ob_realloc(v->t, v->cap * sizeof(*v->t));
    }
    target_t *t = &v->t[v->n++];
    memset(t, 0, sizeof(*t));
    snprintf(t->account, sizeof(t->account), "%s", account);
}

typedef struct scan_s {
    int done;
    ob_err_t err;
    char cursor[32];
    verify_t *v;
} scan_t;

static void on_scan(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    (void)r;
    scan_t *s = arg;
    s->done = 1;
    s->err = err;
    if (err != OB_OK || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
        return;
    snprintf(s->cursor, sizeof(s->cursor), "%s", reply->element[0]->str);
    for (size_t i = 0; i < reply->element[1]->elements; i++) {
        char acct[OB_STATE_KEY_LEN];
        if (ob_state_account_of(reply->element[1]->element[i]->str, acct, sizeof(acct)) == 0 &&
            strlen(acct) < OB_ACCOUNT_ID_LEN)
            add_target(s->v, acct);
    }
}

/* The records of the targets (every account's, with `all`). */
static int read_records(verify_t *v, int all)
{
    ob_redis_t *r = ctl_redis_connect(v->c);
    if (!r)
        return EXIT_RUNTIME;
    ob_err_t e = OB_OK;
    if (all) {
        scan_t s = {0, OB_OK, "0", v};
        do {
            s.done = 0;
            e = ctl_redis(v->c, r, on_scan, &s, &s.done,
                          "SCAN %s MATCH " OB_STATE_KEY_PATTERN " COUNT 1000", s.cursor);
        } while (e == OB_OK && s.err == OB_OK && strcmp(s.cursor, "0") != 0);
        if (s.err != OB_OK)
            e = s.err;
    }
    v->idle = 1;
    for (size_t i = 0; e == OB_OK && i < v->n; i++)
        e = ask_record(v, r, i);
    if (e == OB_OK && ctl_wait(v->c, &v->idle, 30000, "Redis") != OB_OK)
        e = OB_ERR_TIMEOUT;
    ob_redis_free(r);
    if (e != OB_OK || v->failed) {
        fprintf(stderr, "onboardctl: Redis: the accounts' records could not be read (%s)\n",
                ob_err2str(e != OB_OK ? e : OB_ERR_REDIS));
        return EXIT_RUNTIME;
    }
    return 0;
}

/* The verification of target t (malloc'd JSON; NULL with why). */
static char *verify_message(target_t *t, int repair, char *why, size_t n)
{
    uint8_t rnd[8];
    char hex[17];
    ob_random_bytes(rnd, sizeof(rnd));
    ob_hex(rnd, sizeof(rnd), hex);
    snprintf(t->request_id, sizeof(t->request_id), "verify:%s", hex);
    return ob_verify_of_record(t->account, t->fields[0], t->fields[1], t->fields[2], t->fields[3],
                               t->fields[4], t->request_id, repair, "onboardctl verify", why, n);
}

static void on_drift(ctl_t *c, const rd_kafka_message_t *m, void *arg)
{
    (void)c;
    verify_t *v = arg;
    json_t *d = json_loadb(m->payload, m->len, 0, NULL);
    const char *rid = json_string_value(json_object_get(d, "request_id"));
    for (size_t i = 0; rid && i < v->n; i++) {
        target_t *t = &v->t[i];
        if (t->sent && !t->answered && !strcmp(t->request_id, rid)) {
            t->answered = 1;
            t->answer = json_incref(d);
            v->answered++;
        }
    }
    json_decref(d);
    v->all_answered = v->answered >= v->sent;
    ctl_progress(v->answered);
}

typedef struct failed_s {
    verify_t *v;
    size_t i;
} failed_t;

static void on_failed(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    (void)r;
    failed_t *f = arg;
    verify_t *v = f->v;
    target_t *t = &v->t[f->i];
    v->idle = --v->pending == 0;
    if (err == OB_OK && reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->str && !strcmp(reply->element[0]->str, t->request_id) &&
        reply->element[1]->str && reply->element[1]->str[0] && !t->answered) {
        t->answered = 1;
        t->answer = json_pack("{s:s, s:s, s:[]}", "status", "failed", "reason",
                              reply->element[1]->str, "findings");
        v->answered++;
        v->all_answered = v->answered >= v->sent;
        ctl_progress(v->answered);
    }
    free(f);
}

/* Verifications the workers gave up on: their records say so. */
static int read_failures(verify_t *v, ob_redis_t *r)
{
    v->idle = 1;
    for (size_t i = 0; i < v->n; i++) {
        if (!v->t[i].sent || v->t[i].answered)
            continue;
        char key[OB_STATE_KEY_LEN];
        ob_state_key(v->t[i].account, key, sizeof(key));
        failed_t *f = ob_malloc(sizeof(*f));
        *f = (failed_t){v, i};
        if (ob_redis_command(r, on_failed, f, "HMGET %s verify_request verify_error", key) !=
            OB_OK) {
            free(f);
            break;
        }
        v->pending++;
        v->idle = 0;
    }
    return ctl_wait(v->c, &v->idle, 15000, "Redis") == OB_OK ? 0 : EXIT_RUNTIME;
}

static int send_all(verify_t *v, int repair, json_t *skipped)
{
    char err[512], topic[256];
    snprintf(topic, sizeof(topic), "%sverify", v->c->cfg.topic_prefix);
    ob_kproducer_opts_t po = {.kafka = &v->c->cfg.kafka};
    ob_kproducer_t *p = ob_kproducer_new(v->c->loop, &po, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "onboardctl: %s\n", err);
        return EXIT_RUNTIME;
    }
    for (size_t i = 0; i < v->n; i++) {
        target_t *t = &v->t[i];
        char why[512];
        char *json = verify_message(t, repair, why, sizeof(why));
        if (!json) {
            json_array_append_new(skipped,
                                  json_pack("{s:s, s:s}", "account_id", t->account, "reason", why));
            continue;
        }
        rd_kafka_headers_t *h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, OB_MSG_HDR_SCHEMA, -1, OB_SCHEMA_VERIFY, -1);
        if (ob_kproducer_send(p, topic, RD_KAFKA_PARTITION_UA, t->account, strlen(t->account), json,
                              strlen(json), h, NULL, err, sizeof(err)) != OB_OK) {
            fprintf(stderr, "onboardctl: %s: %s\n", t->account, err);
            free(json);
            ob_kproducer_free(p);
            return EXIT_RUNTIME;
        }
        free(json);
        t->sent = 1;
        v->sent++;
    }
    int rc = ob_kproducer_flush(p, 30000) == OB_OK ? 0 : EXIT_RUNTIME;
    if (rc)
        fprintf(stderr, "onboardctl: the verifications could not all be sent\n");
    ob_kproducer_free(p);
    return rc;
}

static void print_result(const verify_t *v, const json_t *skipped, int waited)
{
    size_t in_sync = 0, drifted = 0, missing = 0, failures = 0;
    json_t *accounts = json_array();
    for (size_t i = 0; i < v->n; i++) {
        const target_t *t = &v->t[i];
        if (!t->sent)
            continue;
        if (!t->answered) {
            missing++;
            json_array_append_new(accounts, json_pack("{s:s, s:s, s:s}", "account_id", t->account,
                                                      "request_id", t->request_id, "status",
                                                      waited ? "no answer" : "sent"));
            continue;
        }
        const char *status = json_string_value(json_object_get(t->answer, "status"));
        int drift = status && !strcmp(status, "drifted");
        int failed = status && !strcmp(status, "failed");
        drifted += drift;
        in_sync += !drift && !failed;
        failures += failed;
        json_t *row = json_pack("{s:s, s:s, s:s, s:O}", "account_id", t->account, "request_id",
                                t->request_id, "status", status ? status : "?", "findings",
                                json_object_get(t->answer, "findings"));
        json_t *rr = json_object_get(t->answer, "repair_request_id");
        if (rr)
            json_object_set(row, "repair_request_id", rr);
        json_t *why = json_object_get(t->answer, "reason");
        if (why)
            json_object_set(row, "reason", why);
        json_array_append_new(accounts, row);
    }
    if (v->c->json) {
        json_t *out =
            json_pack("{s:O, s:O, s:I, s:I, s:I, s:I}", "accounts", accounts, "skipped", skipped,
                      "in_sync", (json_int_t)in_sync, "drifted", (json_int_t)drifted, "failed",
                      (json_int_t)failures, "unanswered", (json_int_t)missing);
        char *s = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
        json_decref(out);
    } else {
        size_t i;
        json_t *row;
        json_array_foreach(accounts, i, row)
        {
            const char *acct = json_string_value(json_object_get(row, "account_id"));
            printf("%s  %s", acct, json_string_value(json_object_get(row, "status")));
            const json_t *rr = json_object_get(row, "repair_request_id");
            if (rr)
                printf(" (repair sent: %s)", json_string_value(rr));
            const json_t *why = json_object_get(row, "reason");
            if (why)
                printf(": %s", json_string_value(why));
            printf("\n");
            size_t k;
            json_t *f;
            json_array_foreach(json_object_get(row, "findings"), k, f)
            {
                printf("    %-22s %s: %s\n", json_string_value(json_object_get(f, "kind")),
                       json_string_value(json_object_get(f, "resource")),
                       json_string_value(json_object_get(f, "detail")));
            }
        }
        json_array_foreach(skipped, i, row)
        {
            printf("%s  skipped: %s\n", json_string_value(json_object_get(row, "account_id")),
                   json_string_value(json_object_get(row, "reason")));
        }
        printf("%zu in sync, %zu drifted, %zu failed, %zu skipped%s\n", in_sync, drifted, failures,
               json_array_size(skipped),
               missing ? (waited ? ", some unanswered" : ", sent (not waited for)") : "");
    }
    json_decref(accounts);
}

int ctl_verify(ctl_t *c, int argc, char **argv)
{
    verify_t v;
    memset(&v, 0, sizeof(v));
    v.c = c;
    int all = 0, repair = 0, wait = 1, rc = 0;
    long long timeout_ms = 300000;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--all"))
            all = 1;
        else if (!strcmp(a, "--repair"))
            repair = 1;
        else if (!strcmp(a, "--no-wait"))
            wait = 0;
        else if (!strcmp(a, "--timeout") && i + 1 < argc) {
            if (ob_cfg_parse_ms(argv[++i], &timeout_ms) != OB_OK || timeout_ms <= 0) {
                fprintf(stderr, "onboardctl verify: --timeout takes a duration (90s, 5m)\n");
                rc = EXIT_USAGE;
            }
        } else if (a[0] != '-' && strlen(a) == 12 && strspn(a, "0123456789") == 12)
            add_target(&v, a);
        else {
            fprintf(stderr, "onboardctl verify: unknown argument %s (try --help)\n", a);
            rc = EXIT_USAGE;
        }
    }
    if (rc == 0 && !all && !v.n) {
        fprintf(stderr, "onboardctl verify: name accounts (12 digits), or --all\n");
        rc = EXIT_USAGE;
    }
    if (rc == 0)
        rc = read_records(&v, all);
    json_t *skipped = json_array();
    ctl_follow_t *f = NULL;
    if (rc == 0 && wait && !(f = ctl_follow_open(c, "drift")))
        rc = EXIT_RUNTIME;
    if (rc == 0)
        rc = send_all(&v, repair, skipped);
    if (rc == 0 && wait && v.sent) {
        ctl_progress_start("verified", v.sent);
        /* The findings come on the drift topic; a verification that failed
         * (no finding: its reason is in the record) is seen in Redis. */
        ob_redis_t *r = ctl_redis_connect(c);
        if (!r)
            rc = EXIT_RUNTIME;
        for (long long waited = 0; r && !v.all_answered; waited += 3000) {
            ctl_progress(v.answered);
            if (waited >= timeout_ms) {
                ctl_progress_end(v.answered);
                fprintf(stderr, "onboardctl: timed out waiting for the verifications\n");
                rc = EXIT_RUNTIME;
                break;
            }
            ctl_follow(f, on_drift, &v, &v.all_answered, 3000);
            if (!v.all_answered && read_failures(&v, r) != 0) {
                rc = EXIT_RUNTIME;
                break;
            }
        }
        ctl_progress_end(v.answered); /* (nothing when ended above) */
        ob_redis_free(r);
    }
    ctl_follow_close(f);
    if (rc == 0 || rc == EXIT_RUNTIME)
        print_result(&v, skipped, wait);
    int drifted = 0, failed = 0;
    for (size_t i = 0; i < v.n; i++) {
        const char *s = json_string_value(json_object_get(v.t[i].answer, "status"));
        drifted |= s && !strcmp(s, "drifted");
        failed |= s && !strcmp(s, "failed");
        for (int k = 0; k < FIELDS; k++)
            free(v.t[i].fields[k]);
        json_decref(v.t[i].answer);
    }
    free(v.t);
    json_decref(skipped);
    return rc ? rc : failed ? EXIT_RUNTIME : drifted ? EXIT_DRIFTED : 0;
}
