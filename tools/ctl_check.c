/*
 * onboardctl check / rebuild: the accounts' records in Redis against what the
 * topics say happened.
 *
 * The topics are the fleet's durable history: every request (requests), every
 * hand-off (cur, iam, connect), every connected event and every dead letter,
 * each in order per account (one key, one partition). Read whole (read
 * committed, no consumer group), they tell for each account its newest
 * request and what became of it:
 *   - an event of that request: connected, under the event's key, or
 *     disconnected (an offboarding);
 *   - none, but the connection in place was made by an earlier request with
 *     the same desired state, or the request's connect hand-off names the
 *     connection in place: connected, outcome unchanged;
 *   - none, but it offboards an account whose newest event is already a
 *     disconnection, or its connect hand-off removed nothing from an account
 *     with no connection: disconnected, outcome unchanged;
 *   - its dead letter: failed at that stage, with the reason;
 *   - otherwise under way, at the furthest stage its hand-offs reached.
 * `check` compares that with each record and names every disagreement (exit
 * code 5 when there is one); `rebuild` writes the record of every account
 * that has none (after Redis lost its data), or, with --force, of every
 * account whose record disagrees. A rebuild writes only what the topics can
 * tell (what retention kept of them: the connection's request, which
 * verification compares the account with, only while the requests topic
 * still holds it); run it with the fleet stopped or idle,
 * since a record written under a worker at work would be overwritten by it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ob_alloc.h"
#include "ob_buf.h"
#include "ob_msg.h"
#include "ob_state.h"

typedef struct hist_s {
    json_t *accounts; /* account -> {requests:[], handoffs:{}, events:[], dlq:{}} */
    const char *filter;
    size_t read, skipped;
} hist_t;

static json_t *account(hist_t *h, const char *id)
{
    json_t *a = json_object_get(h->accounts, id);
    if (!a) {
        a = json_pack("{s:[], s:{}, s:[], s:{}}", "requests", "handoffs", "events", "dlq");
        json_object_set_new(h->accounts, id, a);
    }
    return a;
}

static int wanted(const hist_t *h, const char *id)
{
    return !h->filter || !strcmp(h->filter, id);
}

static int is_control(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *v;
    size_t n;
    return rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
           rd_kafka_header_get_last(hdrs, OB_MSG_HDR_CONTROL, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

static void on_request(ctl_t *c, const rd_kafka_message_t *m, void *arg)
{
    hist_t *h = arg;
    h->read++;
    ob_request_t r;
    ob_msg_error_t me;
    if (is_control(m) || ob_request_parse(m->payload, m->len, &r, &me) != OB_OK) {
        h->skipped++;
        return;
    }
    if (wanted(h, r.account_id)) {
        char desired[OB_DESIRED_LEN], intake[OB_INTAKE_LEN];
        ob_request_desired(&r, desired);
        snprintf(intake, sizeof(intake), "%lld:%s:%d:%lld",
                 (long long)rd_kafka_message_timestamp(m, NULL), rd_kafka_topic_name(m->rkt),
                 (int)m->partition, (long long)m->offset);
        /* What verification compares the account with, should this request
         * be the connection's (as the connect stage keeps it). */
        r.repair = 0;
        json_t *o = ob_request_to_object(&r);
        char *spec = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        json_array_append_new(json_object_get(account(h, r.account_id), "requests"),
                              json_pack("{s:s, s:s, s:s, s:s}", "id", r.request_id, "desired",
                                        desired, "intake", intake, "spec", spec ? spec : ""));
        free(spec);
    }
    ob_request_clear(&r);
}

static void on_handoff(ctl_t *c, const rd_kafka_message_t *m, void *arg)
{
    hist_t *h = arg;
    h->read++;
    ob_stage_msg_t s;
    ob_msg_error_t me;
    if (is_control(m) || ob_stage_parse(m->payload, m->len, &s, &me) != OB_OK) {
        h->skipped++;
        return;
    }
    const ob_request_t *r = &s.request;
    if (wanted(h, r->account_id)) {
        json_t *hand = json_object_get(account(h, r->account_id), "handoffs");
        json_t *was = json_object_get(hand, r->request_id);
        if (!was || json_integer_value(json_object_get(was, "stage")) < (json_int_t)s.stage) {
            json_t *e = json_pack("{s:i}", "stage", (json_int_t)s.stage);
            ob_connected_t ev;
            if (s.stage == OB_STAGE_CONNECT && r->mode == OB_MODE_OFFBOARD &&
                !s.removed_reports[0] && !s.removed_stacks[0])
                json_object_set_new(e, "nothing_removed", json_true());
            else if (s.stage == OB_STAGE_CONNECT &&
                     ob_connected_from_stage(&s, NULL, &ev, &me) == OB_OK) {
                json_object_set_new(e, "key", json_string(ev.idempotency_key));
                ob_connected_clear(&ev);
            }
            json_object_set_new(hand, r->request_id, e);
        }
    }
    ob_stage_msg_clear(&s);
}

static void on_event(ctl_t *c, const rd_kafka_message_t *m, void *arg)
{
    hist_t *h = arg;
    h->read++;
    ob_connected_t ev;
    ob_msg_error_t me;
    if (ob_connected_parse(m->payload, m->len, &ev, &me) != OB_OK) {
        ob_disconnected_t d;
        if (ob_disconnected_parse(m->payload, m->len, &d, &me) != OB_OK) {
            h->skipped++;
            return;
        }
        if (wanted(h, d.account_id))
            json_array_append_new(json_object_get(account(h, d.account_id), "events"),
                                  json_pack("{s:s, s:s, s:s, s:s, s:s}", "kind", "disconnected",
                                            "request_id", d.request_id, "key", d.idempotency_key,
                                            "disconnected_at", d.disconnected_at, "buckets",
                                            d.kept_buckets));
        ob_disconnected_clear(&d);
        return;
    }
    if (wanted(h, ev.account_id))
        json_array_append_new(json_object_get(account(h, ev.account_id), "events"),
                              json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kind",
                                        "connected", "request_id", ev.request_id, "key",
                                        ev.idempotency_key, "connected_at", ev.connected_at,
                                        "role_arn", ev.role_arn, "stack_id", ev.stack_id, "report",
                                        ev.has_report ? ev.report.name : "", "bucket",
                                        ev.has_report ? ev.report.bucket : ""));
    ob_connected_clear(&ev);
}

static void on_dead(ctl_t *c, const rd_kafka_message_t *m, void *arg)
{
    hist_t *h = arg;
    h->read++;
    ob_dlq_t d;
    ob_msg_error_t me;
    if (ob_dlq_parse(m->payload, m->len, &d, &me) != OB_OK) {
        h->skipped++;
        return;
    }
    if (d.account_id && d.request_id && wanted(h, d.account_id))
        json_object_set_new(json_object_get(account(h, d.account_id), "dlq"), d.request_id,
                            json_pack("{s:s, s:s, s:s, s:s}", "stage", ob_stage_name(d.stage),
                                      "class", ob_dlq_class_name(d.cls), "code", d.code, "message",
                                      d.message));
    ob_dlq_clear(&d);
}

static const char *str(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

/* The request of `id` in the account's list (NULL: not on the topic). */
static const json_t *request_of(const json_t *reqs, const char *id, size_t *at)
{
    for (size_t i = 0; i < json_array_size(reqs); i++) {
        const json_t *r = json_array_get(reqs, i);
        if (!strcmp(str(r, "id"), id)) {
            if (at)
                *at = i;
            return r;
        }
    }
    return NULL;
}

/* What the topics say the account's record is: an object of fields (NULL
 * when the account has no request left on the topic). */
static json_t *expected(const json_t *a)
{
    const json_t *reqs = json_object_get(a, "requests");
    size_t n = json_array_size(reqs);
    if (!n)
        return NULL;
    const json_t *r = json_array_get(reqs, n - 1);
    const char *rid = str(r, "id");
    json_t *rec = json_pack("{s:s, s:s, s:s}", "request_id", rid, "desired", str(r, "desired"),
                            "intake", str(r, "intake"));
    const json_t *events = json_object_get(a, "events"), *ev, *last = NULL, *mine = NULL;
    size_t i;
    json_array_foreach(events, i, ev)
    {
        last = ev;
        if (!strcmp(str(ev, "request_id"), rid))
            mine = ev;
    }
    /* An offboarding ends the connection: the newest event says which. */
    int gone = last && !strcmp(str(last, "kind"), "disconnected");
    /* The connection in place: the newest event (and its request). */
    json_t *buckets = json_string("");
    json_array_foreach(events, i, ev)
    {
        const char *b = str(ev, "bucket")[0] ? str(ev, "bucket") : str(ev, "buckets");
        if (b[0]) {
            char *l = ob_list_with(json_string_value(buckets), b, 100);
            json_decref(buckets);
            buckets = json_string(l ? l : "");
            free(l);
        }
    }
    if (json_string_value(buckets)[0])
        json_object_set(rec, OB_ST_BUCKETS, buckets);
    json_decref(buckets);
    const json_t *conn = mine ? mine : last;
    if (conn && !strcmp(str(conn, "kind"), "disconnected")) {
        const json_t *q = request_of(reqs, str(conn, "request_id"), NULL);
        json_object_set_new(rec, OB_ST_DISCONNECTED_AT, json_string(str(conn, "disconnected_at")));
        json_object_set_new(rec, OB_ST_DISCONNECT_KEY, json_string(str(conn, "key")));
        if (q)
            json_object_set_new(rec, OB_ST_CONNECTED_DESIRED, json_string(str(q, "desired")));
        conn = NULL;
    }
    if (conn) {
        const json_t *q = request_of(reqs, str(conn, "request_id"), NULL);
        json_object_set_new(rec, OB_ST_CONNECTED_REQUEST, json_string(str(conn, "request_id")));
        json_object_set_new(rec, OB_ST_IDEMPOTENCY_KEY, json_string(str(conn, "key")));
        json_object_set_new(rec, OB_ST_CONNECTED_AT, json_string(str(conn, "connected_at")));
        json_object_set_new(rec, OB_ST_ROLE_ARN, json_string(str(conn, "role_arn")));
        if (q)
            json_object_set_new(rec, OB_ST_CONNECTED_DESIRED, json_string(str(q, "desired")));
        if (str(conn, "report")[0])
            json_object_set_new(rec, OB_ST_REPORTS, json_string(str(conn, "report")));
        json_object_set_new(rec, OB_ST_STACKS, json_string(str(conn, "stack_id")));
        json_object_set_new(rec, OB_ST_STACK_ID, json_string(str(conn, "stack_id")));
        if (q && str(q, "spec")[0])
            json_object_set_new(rec, OB_ST_CONNECTED_SPEC, json_string(str(q, "spec")));
    }
    const json_t *hand = json_object_get(json_object_get(a, "handoffs"), rid);
    const json_t *dead = json_object_get(json_object_get(a, "dlq"), rid);
    const json_t *q = last ? request_of(reqs, str(last, "request_id"), NULL) : NULL;
    const char *status, *stage, *outcome = NULL;
    if (mine && !strcmp(str(mine, "kind"), "disconnected")) {
        status = OB_ST_STATUS_DISCONNECTED;
        stage = "connect";
        outcome = OB_ST_OUTCOME_DISCONNECTED;
    } else if (mine) {
        status = OB_ST_STATUS_CONNECTED;
        stage = "connect";
        outcome = OB_ST_OUTCOME_CONNECTED;
    } else if (json_is_true(json_object_get(hand, "nothing_removed")) && (!last || gone)) {
        /* An offboarding that found nothing of the fleet's, and no connection
         * to end: no event. */
        status = OB_ST_STATUS_DISCONNECTED;
        stage = "connect";
        outcome = OB_ST_OUTCOME_UNCHANGED;
    } else if (gone && q && !strcmp(str(q, "desired"), str(r, "desired"))) {
        /* Offboarded again: nothing was left to remove. */
        status = OB_ST_STATUS_DISCONNECTED;
        stage = "connect";
        outcome = OB_ST_OUTCOME_UNCHANGED;
    } else if (last && !gone &&
               ((q && !strcmp(str(q, "desired"), str(r, "desired"))) ||
                !strcmp(str(hand, "key"), str(last, "key")))) {
        /* Asked for what the account had: nothing to announce. */
        status = OB_ST_STATUS_CONNECTED;
        stage = "connect";
        outcome = OB_ST_OUTCOME_UNCHANGED;
    } else if (dead) {
        status = OB_ST_STATUS_FAILED;
        stage = str(dead, "stage");
        json_object_set_new(rec, OB_ST_ERROR_CLASS, json_string(str(dead, "class")));
        json_object_set_new(rec, OB_ST_ERROR_CODE, json_string(str(dead, "code")));
        json_object_set_new(rec, OB_ST_ERROR_MESSAGE, json_string(str(dead, "message")));
    } else {
        json_int_t at = json_integer_value(json_object_get(hand, "stage"));
        status = OB_ST_STATUS_RUNNING;
        stage = at ? ob_stage_name((ob_stage_t)at) : "bucket";
    }
    json_object_set_new(rec, OB_ST_STATUS, json_string(status));
    json_object_set_new(rec, OB_ST_STAGE, json_string(stage));
    if (outcome)
        json_object_set_new(rec, OB_ST_OUTCOME, json_string(outcome));
    /* The earlier requests nobody announced: superseded (at most 20). */
    json_t *sup = json_string("");
    for (i = 0; i + 1 < n; i++) {
        const char *id = str(json_array_get(reqs, i), "id");
        int announced = 0;
        for (size_t k = 0; k < json_array_size(events); k++)
            announced |= !strcmp(str(json_array_get(events, k), "request_id"), id);
        if (!announced && !json_object_get(json_object_get(a, "dlq"), id)) {
            char *l = ob_list_with(json_string_value(sup), id, 20);
            json_decref(sup);
            sup = json_string(l ? l : "");
            free(l);
        }
    }
    if (json_string_value(sup)[0])
        json_object_set(rec, OB_ST_SUPERSEDED, sup);
    json_decref(sup);
    return rec;
}

/* How the record disagrees with what the topics say ("" when it agrees). */
static void disagreement(const json_t *want, const json_t *have, char *out, size_t n)
{
    out[0] = '\0';
    if (!have || !json_object_size(have)) {
        snprintf(out, n, "no record; the topics say %s at %s for request %s",
                 str(want, OB_ST_STATUS), str(want, OB_ST_STAGE), str(want, OB_ST_REQUEST_ID));
        return;
    }
    if (strcmp(str(have, OB_ST_REQUEST_ID), str(want, OB_ST_REQUEST_ID)) != 0) {
        snprintf(out, n, "the record is request %s's; the newest request is %s",
                 str(have, OB_ST_REQUEST_ID), str(want, OB_ST_REQUEST_ID));
        return;
    }
    const char *ws = str(want, OB_ST_STATUS), *hs = str(have, OB_ST_STATUS);
    if (!strcmp(ws, OB_ST_STATUS_CONNECTED)) {
        if (strcmp(hs, OB_ST_STATUS_CONNECTED) != 0)
            snprintf(out, n, "the record says %s at %s; the topics say connected under key %.16s",
                     hs, str(have, OB_ST_STAGE), str(want, OB_ST_IDEMPOTENCY_KEY));
        else if (strcmp(str(have, OB_ST_IDEMPOTENCY_KEY), str(want, OB_ST_IDEMPOTENCY_KEY)) != 0)
            snprintf(out, n, "the record's key is %.16s; the account's last event's is %.16s",
                     str(have, OB_ST_IDEMPOTENCY_KEY), str(want, OB_ST_IDEMPOTENCY_KEY));
    } else if (!strcmp(ws, OB_ST_STATUS_DISCONNECTED)) {
        if (strcmp(hs, OB_ST_STATUS_DISCONNECTED) != 0)
            snprintf(out, n,
                     "the record says %s at %s; the topics say disconnected under key %.16s", hs,
                     str(have, OB_ST_STAGE), str(want, OB_ST_DISCONNECT_KEY));
    } else if (!strcmp(ws, OB_ST_STATUS_FAILED)) {
        if (strcmp(hs, OB_ST_STATUS_FAILED) != 0)
            snprintf(out, n, "the record says %s at %s; the request was dead-lettered at %s (%s)",
                     hs, str(have, OB_ST_STAGE), str(want, OB_ST_STAGE),
                     str(want, OB_ST_ERROR_CODE));
    } else if (!strcmp(hs, OB_ST_STATUS_CONNECTED) || !strcmp(hs, OB_ST_STATUS_FAILED) ||
               !strcmp(hs, OB_ST_STATUS_DISCONNECTED)) {
        snprintf(out, n, "the record says %s; the topics have no outcome for request %s yet", hs,
                 str(want, OB_ST_REQUEST_ID));
    }
}

typedef struct got_s {
    int done;
    ob_err_t err;
    json_t *rec;
} got_t;

static void on_state(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    got_t *g = arg;
    g->done = 1;
    g->err = err;
    if (err != OB_OK || !reply || reply->type != REDIS_REPLY_ARRAY)
        return;
    g->rec = json_object();
    for (size_t i = 0; i + 1 < reply->elements; i += 2)
        json_object_set_new(g->rec, reply->element[i]->str,
                            json_string(reply->element[i + 1]->str));
}

/* Write the record (all of want's fields) if the account has none, or with
 * force whatever it has (the account's fence is left as it is). */
static const char REBUILD[] = "if ARGV[1] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then "
                              "  return 0 end "
                              "redis.call('HSET', KEYS[1], unpack(ARGV, 2)) return 1";

static ob_err_t write_record(ctl_t *c, ob_redis_t *r, const char *acct, const json_t *want,
                             int force, got_t *g)
{
    size_t nf = json_object_size(want);
    const char **argv = ob_calloc(6 + 2 * nf, sizeof(*argv));
    if (!argv)
        return OB_ERR_NOMEM;
    char key[OB_STATE_KEY_LEN];
    ob_state_key(acct, key, sizeof(key));
    size_t k = 0;
    argv[k++] = "EVAL";
    argv[k++] = REBUILD;
    argv[k++] = "1";
    argv[k++] = key;
    argv[k++] = force ? "1" : "0";
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)want, name, v)
    {
        argv[k++] = name;
        argv[k++] = json_string_value(v);
    }
    ob_err_t e = ob_redis_command_argv(r, on_state, g, (int)k, argv, NULL);
    free(argv);
    return e;
}

int ctl_check(ctl_t *c, int argc, char **argv, int rebuild)
{
    const char *cmd = rebuild ? "rebuild" : "check";
    hist_t h = {json_object(), NULL, 0, 0};
    int force = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--account") && i + 1 < argc)
            h.filter = argv[++i];
        else if (rebuild && !strcmp(argv[i], "--force"))
            force = 1;
        else if (rebuild && !strcmp(argv[i], "--dry-run"))
            c->dry_run = 1;
        else {
            fprintf(stderr, "onboardctl %s: unknown argument %s (try --help)\n", cmd, argv[i]);
            json_decref(h.accounts);
            return EXIT_USAGE;
        }
    }
    static const char *const handoffs[] = {"cur", "iam", "connect"};
    c->scan_progress = 1;
    int rc = ctl_topic_scan(c, "requests", on_request, &h, 1);
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = ctl_topic_scan(c, handoffs[i], on_handoff, &h, 1);
    if (rc == 0)
        rc = ctl_topic_scan(c, "connected", on_event, &h, 1);
    if (rc == 0)
        rc = ctl_topic_scan(c, "dlq", on_dead, &h, 1);
    ob_redis_t *r = rc == 0 ? ctl_redis_connect(c) : NULL;
    if (!r) {
        json_decref(h.accounts);
        return EXIT_RUNTIME;
    }
    size_t n_ok = 0, n_differ = 0, n_written = 0, n_kept = 0, done = 0;
    const char *acct;
    json_t *a;
    got_t g, w;
    if (c->json)
        ctl_json_begin(c, "accounts");
    ctl_progress_start("checked", json_object_size(h.accounts));
    json_object_foreach(h.accounts, acct, a)
    {
        ctl_progress(done++);
        json_t *want = expected(a);
        if (!want)
            continue;
        /* g and w live as long as r: a command still unanswered when the
         * wait gives up is answered (cancelled) by ob_redis_free. */
        memset(&g, 0, sizeof(g));
        char state_key[OB_STATE_KEY_LEN];
        ob_state_key(acct, state_key, sizeof(state_key));
        if (ctl_redis(c, r, on_state, &g, &g.done, "HGETALL %s", state_key) != OB_OK) {
            json_decref(g.rec);
            json_decref(want);
            rc = EXIT_RUNTIME;
            break;
        }
        if (g.err != OB_OK) {
            ctl_progress_clear();
            fprintf(stderr, "onboardctl: Redis: %s\n", ob_err2str(g.err));
            json_decref(want);
            rc = EXIT_RUNTIME;
            break;
        }
        char why[600];
        disagreement(want, g.rec, why, sizeof(why));
        int missing = !g.rec || !json_object_size(g.rec);
        json_decref(g.rec);
        const char *action = NULL;
        if (!why[0]) {
            n_ok++;
        } else if (!rebuild) {
            n_differ++;
            action = "differs";
        } else if (!missing && !force) {
            n_kept++;
            action = "kept"; /* a record of its own: --force to replace it */
        } else if (c->dry_run) {
            n_written++;
            action = "would write";
        } else {
            memset(&w, 0, sizeof(w));
            if (write_record(c, r, acct, want, force, &w) != OB_OK) {
                ctl_progress_clear();
                fprintf(stderr, "onboardctl: Redis: the record of %s could not be sent\n", acct);
                rc = EXIT_RUNTIME;
                json_decref(want);
                break;
            }
            if (ctl_wait(c, &w.done, 15000, "Redis") != OB_OK) {
                rc = EXIT_RUNTIME;
                json_decref(want);
                break;
            }
            json_decref(w.rec);
            if (w.err != OB_OK) {
                ctl_progress_clear();
                fprintf(stderr, "onboardctl: Redis: %s\n", ob_err2str(w.err));
                rc = EXIT_RUNTIME;
                json_decref(want);
                break;
            }
            n_written++;
            action = "written";
        }
        if (action && c->json) {
            ctl_json_row(c, json_pack("{s:s, s:s, s:s, s:O}", "account_id", acct, "action", action,
                                      "why", why, "record", want));
        } else if (action) {
            ctl_progress_clear();
            printf("%s  %-11s %s\n", acct, action, why);
        }
        json_decref(want);
    }
    ob_redis_free(r);
    if (rc == 0)
        ctl_progress_end(done);
    else
        ctl_progress_stop();
    if (c->json)
        ctl_json_end(c,
                     rc ? NULL
                        : json_pack("{s:{s:I, s:I, s:I, s:I, s:I, s:I}}", "summary", "messages",
                                    (json_int_t)h.read, "unreadable", (json_int_t)h.skipped,
                                    "agree", (json_int_t)n_ok, "differ", (json_int_t)n_differ,
                                    "written", (json_int_t)n_written, "kept", (json_int_t)n_kept));
    if (rc == 0 && !c->json && rebuild)
        printf("\n%zu records %s, %zu kept (a record of their own: --force replaces them), "
               "%zu agree with the topics (%zu messages read)\n",
               n_written, c->dry_run ? "would be written" : "written", n_kept, n_ok, h.read);
    else if (rc == 0 && !c->json)
        printf("\n%zu accounts agree with the topics, %zu differ (%zu messages read)\n", n_ok,
               n_differ, h.read);
    if (rc == 0 && !rebuild && n_differ)
        rc = EXIT_DIFFERS;
    json_decref(h.accounts);
    return rc;
}
