/*
 * onboard-lag-exporter: every consumer group of the fleet, as the brokers
 * see it, whether or not a worker of the stage is running.
 *
 * A worker reports the lag of the partitions it owns; a stage that crash
 * loops or is scaled to zero owns none, so its lag would vanish exactly when
 * it matters. This process asks the brokers instead, every lag.interval,
 * for the five groups (<prefix>bucket, cur, iam, connect, verify) and their
 * input topics, all on the event loop through the admin API:
 *
 *   DescribeTopics                   the topics' partitions (a missing topic
 *                                    is logged and left out)
 *   ListOffsets latest (read_committed) and earliest, every partition
 *   ListConsumerGroupOffsets         each group's committed offsets
 *   DescribeConsumerGroups           each group's state and members, and who
 *                                    owns which partition
 *
 * and serves them on metrics.port in kafka-lag-exporter's names and labels
 * (cluster_name = lag.cluster.name, group, topic, partition, member_host,
 * consumer_id, client_id), so its dashboards work unchanged. The lag is the
 * partition's end (the last stable offset: transactions still open are not
 * lag) minus the committed offset (the log start when the group never
 * committed: the workers start at the earliest offset); its age is
 * kafka-lag-exporter's estimate from the ends seen over time (ob_lagtab).
 * A poll's answers are applied together when the last one is in, so a
 * scrape never mixes two polls.
 *
 * One replica is enough (it holds no state a restart cannot rebuild but the
 * age tables, which refill); two would report the same series twice.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "ob_kafka.h"
#include "ob_lagtab.h"
#include "ob_log.h"
#include "ob_metrics.h"
#include "ob_probes.h"
#include "ob_time.h"
#include "ob_worker.h"
#include "stages.h"

#ifndef OB_VERSION
#define OB_VERSION "dev"
#endif

#define REQUEST_TIMEOUT_MS 10000
#define NGROUPS            5
#define HOST_LEN           256
#define ID_LEN             256

/* What a poll's answers are told apart by (AdminOptions opaque). */
enum { REQ_TOPICS = 1, REQ_LATEST, REQ_EARLIEST, REQ_GROUPS, REQ_COMMITTED /* + group */ };

/* One partition: the brokers' answers of the last complete poll (cur) and
 * of the poll under way (next; -2: not answered). */
typedef struct part_s {
    int64_t earliest, latest, committed; /* committed -1: none */
    int64_t n_earliest, n_latest, n_committed;
    char host[HOST_LEN], consumer[ID_LEN], client[ID_LEN];
    char n_host[HOST_LEN], n_consumer[ID_LEN], n_client[ID_LEN];
    ob_lagtab_t tab;
} part_t;

/* A stage's group and the topic it consumes. */
typedef struct group_s {
    char name[256], topic[256];
    part_t *parts;
    int nparts;
    int missing; /* the topic does not exist (logged once) */
    int members, n_members;
    char state[32], n_state[32];
} group_t;

typedef struct lx_s {
    const ob_config_t *cfg;
    ob_loop_t *loop;
    ob_signal_t *signals;
    ob_kadmin_t *admin;
    ob_probes_t *endpoints;
    ob_timer_t poll_timer;
    group_t g[NGROUPS];
    int outstanding; /* answers the poll under way waits for */
    int failed;      /* one of them was an error */
    char why[512];   /* the first error */
    int64_t started_ms;
    /* figures */
    uint64_t polls_ok, polls_failed, polls_skipped;
    int64_t last_ok_ms;
    double last_poll_ms;
} lx_t;

static group_t *group_named(lx_t *x, const char *name)
{
    for (int i = 0; i < NGROUPS; i++)
        if (!strcmp(x->g[i].name, name))
            return &x->g[i];
    return NULL;
}

static part_t *part_of(lx_t *x, const char *topic, int32_t partition)
{
    for (int i = 0; i < NGROUPS; i++)
        if (!strcmp(x->g[i].topic, topic) && partition >= 0 && partition < x->g[i].nparts)
            return &x->g[i].parts[partition];
    return NULL;
}

/* The group's partition tp names, if it is of the group's topic. */
static part_t *group_part(group_t *g, const rd_kafka_topic_partition_t *tp)
{
    if (strcmp(tp->topic, g->topic) != 0 || tp->partition < 0 || tp->partition >= g->nparts)
        return NULL;
    return &g->parts[tp->partition];
}

static void poll_error(lx_t *x, const char *what, const char *msg)
{
    if (!x->failed)
        snprintf(x->why, sizeof(x->why), "%s: %s", what, msg);
    x->failed = 1;
}

/* ---- the poll ---- */

static rd_kafka_AdminOptions_t *options(lx_t *x, rd_kafka_admin_op_t op, intptr_t req)
{
    char err[256];
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(ob_kadmin_handle(x->admin), op);
    rd_kafka_AdminOptions_set_request_timeout(o, REQUEST_TIMEOUT_MS, err, sizeof(err));
    rd_kafka_AdminOptions_set_opaque(o, (void *)req);
    return o;
}

static void list_offsets(lx_t *x, int64_t spec, intptr_t req)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(64);
    for (int i = 0; i < NGROUPS; i++)
        for (int p = 0; p < x->g[i].nparts; p++)
            rd_kafka_topic_partition_list_add(l, x->g[i].topic, p)->offset = spec;
    rd_kafka_AdminOptions_t *o = options(x, RD_KAFKA_ADMIN_OP_LISTOFFSETS, req);
    if (spec == RD_KAFKA_OFFSET_SPEC_LATEST) {
        rd_kafka_error_t *e =
            rd_kafka_AdminOptions_set_isolation_level(o, RD_KAFKA_ISOLATION_LEVEL_READ_COMMITTED);
        if (e)
            rd_kafka_error_destroy(e);
    }
    rd_kafka_ListOffsets(ob_kadmin_handle(x->admin), l, o, ob_kadmin_queue(x->admin));
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_topic_partition_list_destroy(l);
    x->outstanding++;
}

/* The topics are known: everything else at once. */
static void ask_the_rest(lx_t *x)
{
    list_offsets(x, RD_KAFKA_OFFSET_SPEC_LATEST, REQ_LATEST);
    list_offsets(x, RD_KAFKA_OFFSET_SPEC_EARLIEST, REQ_EARLIEST);
    for (int i = 0; i < NGROUPS; i++) {
        rd_kafka_ListConsumerGroupOffsets_t *req =
            rd_kafka_ListConsumerGroupOffsets_new(x->g[i].name, NULL);
        rd_kafka_AdminOptions_t *o =
            options(x, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, REQ_COMMITTED + i);
        rd_kafka_ListConsumerGroupOffsets(ob_kadmin_handle(x->admin), &req, 1, o,
                                          ob_kadmin_queue(x->admin));
        rd_kafka_AdminOptions_destroy(o);
        rd_kafka_ListConsumerGroupOffsets_destroy(req);
        x->outstanding++;
    }
    const char *names[NGROUPS];
    for (int i = 0; i < NGROUPS; i++)
        names[i] = x->g[i].name;
    rd_kafka_AdminOptions_t *o = options(x, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, REQ_GROUPS);
    rd_kafka_DescribeConsumerGroups(ob_kadmin_handle(x->admin), names, NGROUPS, o,
                                    ob_kadmin_queue(x->admin));
    rd_kafka_AdminOptions_destroy(o);
    x->outstanding++;
}

static void poll_start(ob_timer_t *t, void *arg)
{
    (void)t;
    lx_t *x = arg;
    ob_timer_start(&x->poll_timer, (uint64_t)x->cfg->lag_interval_ms);
    if (x->outstanding) {
        x->polls_skipped++; /* the last one has not finished: no pile-up */
        return;
    }
    x->failed = 0;
    x->why[0] = '\0';
    x->started_ms = ob_time_wall_ms();
    const char *names[NGROUPS];
    for (int i = 0; i < NGROUPS; i++) {
        group_t *g = &x->g[i];
        names[i] = g->topic;
        g->n_members = -2;
        g->n_state[0] = '\0';
        for (int p = 0; p < g->nparts; p++) {
            part_t *pp = &g->parts[p];
            pp->n_earliest = pp->n_latest = pp->n_committed = -2;
            pp->n_host[0] = pp->n_consumer[0] = pp->n_client[0] = '\0';
        }
    }
    rd_kafka_TopicCollection_t *tc = rd_kafka_TopicCollection_of_topic_names(names, NGROUPS);
    rd_kafka_AdminOptions_t *o = options(x, RD_KAFKA_ADMIN_OP_DESCRIBETOPICS, REQ_TOPICS);
    rd_kafka_DescribeTopics(ob_kadmin_handle(x->admin), tc, o, ob_kadmin_queue(x->admin));
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_TopicCollection_destroy(tc);
    x->outstanding = 1;
}

/* A topic's partition count changed (or it appeared): its partitions keep
 * what they had where they still exist. */
static void resize(group_t *g, int n)
{
    if (n == g->nparts)
        return;
    part_t *parts = ob_calloc(n ? (size_t)n : 1, sizeof(*parts));
    for (int p = 0; p < n; p++) {
        if (p < g->nparts)
            parts[p] = g->parts[p];
        else {
            parts[p].earliest = parts[p].latest = parts[p].committed = -1;
            parts[p].n_earliest = parts[p].n_latest = parts[p].n_committed = -2;
        }
    }
    free(g->parts);
    g->parts = parts;
    g->nparts = n;
}

static void on_topics(lx_t *x, rd_kafka_event_t *ev)
{
    const rd_kafka_DescribeTopics_result_t *r = rd_kafka_event_DescribeTopics_result(ev);
    size_t n = 0;
    const rd_kafka_TopicDescription_t **td =
        r ? rd_kafka_DescribeTopics_result_topics(r, &n) : NULL;
    for (size_t i = 0; i < n; i++) {
        const char *name = rd_kafka_TopicDescription_name(td[i]);
        for (int k = 0; k < NGROUPS; k++) {
            group_t *g = &x->g[k];
            if (strcmp(g->topic, name) != 0)
                continue;
            const rd_kafka_error_t *e = rd_kafka_TopicDescription_error(td[i]);
            if (e && rd_kafka_error_code(e)) {
                if (!g->missing)
                    ob_logkv(OB_LOG_WARN, "lag", "topic not described: left out", "topic", name,
                             "reason", rd_kafka_error_string(e), NULL);
                g->missing = 1;
                resize(g, 0);
                continue;
            }
            size_t np = 0;
            rd_kafka_TopicDescription_partitions(td[i], &np);
            if (g->missing)
                ob_logkv(OB_LOG_INFO, "lag", "topic found", "topic", name, NULL);
            g->missing = 0;
            resize(g, (int)np);
        }
    }
    ask_the_rest(x);
}

static void on_offsets(lx_t *x, rd_kafka_event_t *ev, int latest)
{
    const rd_kafka_ListOffsets_result_t *r = rd_kafka_event_ListOffsets_result(ev);
    size_t n = 0;
    const rd_kafka_ListOffsetsResultInfo_t **infos =
        r ? rd_kafka_ListOffsets_result_infos(r, &n) : NULL;
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_topic_partition_t *tp =
            rd_kafka_ListOffsetsResultInfo_topic_partition(infos[i]);
        part_t *p = tp ? part_of(x, tp->topic, tp->partition) : NULL;
        if (!p)
            continue;
        if (tp->err) {
            poll_error(x, "ListOffsets", rd_kafka_err2str(tp->err));
            continue;
        }
        if (latest)
            p->n_latest = tp->offset;
        else
            p->n_earliest = tp->offset;
    }
}

static void on_committed(lx_t *x, rd_kafka_event_t *ev)
{
    const rd_kafka_ListConsumerGroupOffsets_result_t *r =
        rd_kafka_event_ListConsumerGroupOffsets_result(ev);
    size_t n = 0;
    const rd_kafka_group_result_t **gr =
        r ? rd_kafka_ListConsumerGroupOffsets_result_groups(r, &n) : NULL;
    for (size_t i = 0; i < n; i++) {
        group_t *g = group_named(x, rd_kafka_group_result_name(gr[i]));
        const rd_kafka_error_t *e = rd_kafka_group_result_error(gr[i]);
        if (!g)
            continue;
        if (e && rd_kafka_error_code(e)) {
            poll_error(x, "ListConsumerGroupOffsets", rd_kafka_error_string(e));
            continue;
        }
        for (int p = 0; p < g->nparts; p++)
            g->parts[p].n_committed = -1; /* none unless listed */
        const rd_kafka_topic_partition_list_t *l = rd_kafka_group_result_partitions(gr[i]);
        for (int k = 0; l && k < l->cnt; k++) {
            const rd_kafka_topic_partition_t *tp = &l->elems[k];
            part_t *p = group_part(g, tp);
            if (p)
                p->n_committed = !tp->err && tp->offset >= 0 ? tp->offset : -1;
        }
    }
}

static void on_groups(lx_t *x, rd_kafka_event_t *ev)
{
    const rd_kafka_DescribeConsumerGroups_result_t *r =
        rd_kafka_event_DescribeConsumerGroups_result(ev);
    size_t n = 0;
    const rd_kafka_ConsumerGroupDescription_t **gd =
        r ? rd_kafka_DescribeConsumerGroups_result_groups(r, &n) : NULL;
    for (size_t i = 0; i < n; i++) {
        group_t *g = group_named(x, rd_kafka_ConsumerGroupDescription_group_id(gd[i]));
        if (!g)
            continue;
        const rd_kafka_error_t *e = rd_kafka_ConsumerGroupDescription_error(gd[i]);
        if (e && rd_kafka_error_code(e)) {
            poll_error(x, "DescribeConsumerGroups", rd_kafka_error_string(e));
            continue;
        }
        snprintf(
            g->n_state, sizeof(g->n_state), "%s",
            rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(gd[i])));
        size_t members = rd_kafka_ConsumerGroupDescription_member_count(gd[i]);
        g->n_members = (int)members;
        for (size_t m = 0; m < members; m++) {
            const rd_kafka_MemberDescription_t *md =
                rd_kafka_ConsumerGroupDescription_member(gd[i], m);
            const rd_kafka_MemberAssignment_t *as = rd_kafka_MemberDescription_assignment(md);
            const rd_kafka_topic_partition_list_t *l =
                as ? rd_kafka_MemberAssignment_partitions(as) : NULL;
            for (int k = 0; l && k < l->cnt; k++) {
                part_t *p = group_part(g, &l->elems[k]);
                if (!p)
                    continue;
                const char *host = rd_kafka_MemberDescription_host(md);
                const char *cid = rd_kafka_MemberDescription_consumer_id(md);
                const char *client = rd_kafka_MemberDescription_client_id(md);
                /* The broker writes the host as "/10.0.0.7". */
                snprintf(p->n_host, sizeof(p->n_host), "%s",
                         host ? (host[0] == '/' ? host + 1 : host) : "");
                snprintf(p->n_consumer, sizeof(p->n_consumer), "%s", cid ? cid : "");
                snprintf(p->n_client, sizeof(p->n_client), "%s", client ? client : "");
            }
        }
    }
}

/* The last answer is in: apply the poll. */
static void poll_end(lx_t *x)
{
    int64_t now = ob_time_wall_ms();
    for (int i = 0; i < NGROUPS; i++) {
        group_t *g = &x->g[i];
        if (g->n_members != -2) {
            g->members = g->n_members;
            memcpy(g->state, g->n_state, sizeof(g->state));
        }
        for (int p = 0; p < g->nparts; p++) {
            part_t *pp = &g->parts[p];
            if (pp->n_latest != -2) {
                pp->latest = pp->n_latest;
                ob_lagtab_add(&pp->tab, pp->latest, now);
            }
            if (pp->n_earliest != -2)
                pp->earliest = pp->n_earliest;
            if (pp->n_committed != -2)
                pp->committed = pp->n_committed;
            if (g->n_members != -2) { /* owners as the group now says */
                memcpy(pp->host, pp->n_host, sizeof(pp->host));
                memcpy(pp->consumer, pp->n_consumer, sizeof(pp->consumer));
                memcpy(pp->client, pp->n_client, sizeof(pp->client));
            }
        }
    }
    x->last_poll_ms = (double)(now - x->started_ms);
    if (x->failed) {
        x->polls_failed++;
        ob_logkv(OB_LOG_WARN, "lag", "poll failed", "reason", x->why, NULL);
    } else {
        if (!x->polls_ok)
            ob_logf(OB_LOG_INFO, "lag", "first poll done in %.0f ms", x->last_poll_ms);
        x->polls_ok++;
        x->last_ok_ms = now;
    }
}

static void on_result(ob_kadmin_t *a, rd_kafka_event_t *ev, void *arg)
{
    (void)a;
    lx_t *x = arg;
    intptr_t req = (intptr_t)rd_kafka_event_opaque(ev);
    if (req < REQ_TOPICS || x->outstanding <= 0)
        return;
    if (rd_kafka_event_error(ev))
        poll_error(x, rd_kafka_event_name(ev), rd_kafka_event_error_string(ev));
    else if (req == REQ_TOPICS)
        on_topics(x, ev);
    else if (req == REQ_LATEST || req == REQ_EARLIEST)
        on_offsets(x, ev, req == REQ_LATEST);
    else if (req == REQ_GROUPS)
        on_groups(x, ev);
    else
        on_committed(x, ev);
    if (req == REQ_TOPICS && rd_kafka_event_error(ev))
        x->outstanding = 0; /* nothing else was asked */
    else
        x->outstanding--;
    if (x->outstanding == 0)
        poll_end(x);
}

/* ---- /metrics ---- */

static void render(void *arg, ob_buf_t *out)
{
    lx_t *x = arg;
    int64_t now = ob_time_wall_ms();
    const char *cluster = x->cfg->lag_cluster_name;
    ob_metrics_t m;
    ob_metrics_begin(&m, out);
    static const char *const fam[][3] = {
        {"kafka_consumergroup_group_offset", "gauge", "The group's committed offset."},
        {"kafka_consumergroup_group_lag", "gauge",
         "Messages of the partition the group has not committed past (its end is the last "
         "stable offset)."},
        {"kafka_consumergroup_group_lag_seconds", "gauge",
         "How long ago the partition's end passed the group's committed offset (estimated "
         "from the ends seen)."},
    };
    for (int f = 0; f < 3; f++) {
        ob_metrics_family(&m, fam[f][0], fam[f][1], fam[f][2]);
        for (int i = 0; i < NGROUPS; i++) {
            group_t *g = &x->g[i];
            for (int p = 0; p < g->nparts; p++) {
                part_t *pp = &g->parts[p];
                if (pp->latest < 0)
                    continue; /* not answered yet */
                int64_t from = pp->committed >= 0 ? pp->committed : pp->earliest;
                if (from < 0)
                    from = 0;
                int64_t lag = pp->latest > from ? pp->latest - from : 0;
                double v = f == 0   ? (double)from
                           : f == 1 ? (double)lag
                                    : (lag ? ob_lagtab_seconds(&pp->tab, from, now) : 0);
                char part[16];
                snprintf(part, sizeof(part), "%d", p);
                const char *l[] = {"cluster_name", cluster,    "group",       g->name,
                                   "topic",        g->topic,   "partition",   part,
                                   "member_host",  pp->host,   "consumer_id", pp->consumer,
                                   "client_id",    pp->client, NULL};
                ob_metrics_sample(&m, fam[f][0], l, v);
            }
        }
    }
    /* Per group: the largest and the total, in messages and seconds. */
    static const char *const gfam[][2] = {
        {"kafka_consumergroup_group_max_lag", "The group's largest partition lag."},
        {"kafka_consumergroup_group_max_lag_seconds", "The group's oldest partition lag."},
        {"kafka_consumergroup_group_sum_lag", "The group's lag over all its partitions."},
        {"kafka_consumergroup_group_topic_sum_lag", "The group's lag over a topic."},
        {"onboard_consumergroup_members", "Members of the group (0: nobody consumes)."},
    };
    for (int f = 0; f < 5; f++) {
        ob_metrics_family(&m, gfam[f][0], "gauge", gfam[f][1]);
        for (int i = 0; i < NGROUPS; i++) {
            group_t *g = &x->g[i];
            if (g->missing || !g->nparts || g->parts[0].latest < 0)
                continue;
            double max = 0, sum = 0, max_s = 0;
            for (int p = 0; p < g->nparts; p++) {
                part_t *pp = &g->parts[p];
                int64_t from = pp->committed >= 0 ? pp->committed : pp->earliest;
                int64_t lag = pp->latest > from && from >= 0 ? pp->latest - from : 0;
                double s = lag ? ob_lagtab_seconds(&pp->tab, from, now) : 0;
                max = (double)lag > max ? (double)lag : max;
                max_s = s > max_s ? s : max_s;
                sum += (double)lag;
            }
            const char *lg[] = {"cluster_name", cluster, "group", g->name, NULL};
            const char *lt[] = {"cluster_name", cluster, "group", g->name, "topic", g->topic, NULL};
            double v = f == 0 ? max : f == 1 ? max_s : f == 4 ? (double)g->members : sum;
            ob_metrics_sample(&m, gfam[f][0], f == 3 ? lt : lg, v);
        }
    }
    for (int f = 0; f < 2; f++) {
        const char *name = f ? "kafka_partition_earliest_offset" : "kafka_partition_latest_offset";
        ob_metrics_family(&m, name, "gauge",
                          f ? "The partition's log start." : "The partition's last stable offset.");
        for (int i = 0; i < NGROUPS; i++) {
            group_t *g = &x->g[i];
            for (int p = 0; p < g->nparts; p++) {
                part_t *pp = &g->parts[p];
                int64_t v = f ? pp->earliest : pp->latest;
                if (v < 0)
                    continue;
                char part[16];
                snprintf(part, sizeof(part), "%d", p);
                const char *l[] = {"cluster_name", cluster, "topic", g->topic,
                                   "partition",    part,    NULL};
                ob_metrics_sample(&m, name, l, (double)v);
            }
        }
    }
    const char *lc[] = {"cluster_name", cluster, NULL};
    /* kafka-lag-exporter's kafka_consumergroup_poll_time_ms, in seconds as
     * Prometheus's conventions (and promtool's lint) want. */
    ob_metrics_family(&m, "onboard_lag_exporter_poll_duration_seconds", "gauge",
                      "How long the last poll of the brokers took.");
    if (x->polls_ok + x->polls_failed)
        ob_metrics_sample(&m, "onboard_lag_exporter_poll_duration_seconds", lc,
                          x->last_poll_ms / 1000.0);
    ob_metrics_family(&m, "onboard_lag_exporter_polls_total", "counter",
                      "Polls of the brokers, by result (skipped: the last one was not over).");
    const char *l_ok[] = {"result", "ok", NULL}, *l_f[] = {"result", "failed", NULL},
               *l_s[] = {"result", "skipped", NULL};
    ob_metrics_sample(&m, "onboard_lag_exporter_polls_total", l_ok, (double)x->polls_ok);
    ob_metrics_sample(&m, "onboard_lag_exporter_polls_total", l_f, (double)x->polls_failed);
    ob_metrics_sample(&m, "onboard_lag_exporter_polls_total", l_s, (double)x->polls_skipped);
    ob_metrics_family(&m, "onboard_lag_exporter_last_poll_timestamp_seconds", "gauge",
                      "When the last complete poll ended (0: never).");
    ob_metrics_sample(&m, "onboard_lag_exporter_last_poll_timestamp_seconds", NULL,
                      (double)x->last_ok_ms / 1000.0);
    ob_metrics_family(&m, "onboard_build_info", "gauge", "The build, always 1.");
    const char *lb[] = {"version", OB_VERSION, "stage", "lag-exporter", NULL};
    ob_metrics_sample(&m, "onboard_build_info", lb, 1);
}

static int ready(void *arg, char *why, size_t n)
{
    lx_t *x = arg;
    if (!x->polls_ok) {
        snprintf(why, n, "no complete poll of the brokers yet%s%s", x->why[0] ? ": " : "", x->why);
        return 0;
    }
    snprintf(why, n, "ready");
    return 1;
}

/* ---- the process ---- */

static void on_signal(ob_signal_t *s, int signo, void *arg)
{
    (void)s;
    lx_t *x = arg;
    ob_logf(OB_LOG_INFO, "lag", "signal %d: shutting down", signo);
    ob_loop_stop(x->loop);
}

static int lx_start(lx_t *x, char *err, size_t n)
{
    const ob_config_t *cfg = x->cfg;
    const ob_stage_ops_t *const stages[NGROUPS] = {&ob_stage_bucket, &ob_stage_cur, &ob_stage_iam,
                                                   &ob_stage_connect, &ob_stage_verify};
    for (int i = 0; i < NGROUPS; i++) {
        snprintf(x->g[i].name, sizeof(x->g[i].name), "%s%s", cfg->topic_prefix, stages[i]->name);
        snprintf(x->g[i].topic, sizeof(x->g[i].topic), "%s%s", cfg->topic_prefix, stages[i]->input);
    }
    const int sigs[] = {SIGINT, SIGTERM};
    x->signals = ob_signal_new(x->loop, sigs, 2, on_signal, x, err, n);
    if (!x->signals)
        return -1;
    char group[300];
    snprintf(group, sizeof(group), "%slag-exporter", cfg->topic_prefix);
    x->admin = ob_kadmin_new(x->loop, &cfg->kafka, group, on_result, x, err, n);
    if (!x->admin)
        return -1;
    if (cfg->metrics_port > 0) {
        x->endpoints = ob_probes_new(x->loop, cfg->metrics_bind, (int)cfg->metrics_port,
                                     "onboard-lag-exporter", render, ready, x, err, n);
        if (!x->endpoints)
            return -1;
    }
    ob_timer_init(&x->poll_timer, x->loop, poll_start, x);
    ob_timer_start(&x->poll_timer, 0);
    char every[32];
    snprintf(every, sizeof(every), "%lldms", cfg->lag_interval_ms);
    ob_logkv(OB_LOG_INFO, "lag", "started", "interval", every, "cluster_name",
             cfg->lag_cluster_name, NULL);
    return 0;
}

static void lx_free(lx_t *x)
{
    ob_timer_stop(&x->poll_timer);
    ob_probes_free(x->endpoints);
    ob_kadmin_free(x->admin);
    ob_signal_free(x->signals);
    for (int i = 0; i < NGROUPS; i++)
        free(x->g[i].parts);
}

int main(int argc, char **argv)
{
    char err[1024];
    ob_config_t cfg;
    int begun = ob_process_begin(
        argc, argv,
        "The fleet's lag exporter: every stage's consumer group as the brokers see\nit "
        "(committed offsets, partition ends, members), in kafka-lag-exporter's\nnames, on "
        "metrics.port, every lag.interval; whether or not a worker runs.",
        "lag-exporter", &cfg);
    if (begun >= 0)
        return begun;
    lx_t x;
    memset(&x, 0, sizeof(x));
    x.cfg = &cfg;
    x.loop = ob_loop_new(err, sizeof(err));
    int rc = 0;
    if (!x.loop || lx_start(&x, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: cannot start: %s\n", argv[0], err);
        rc = 1;
    } else
        ob_loop_run(x.loop);
    if (x.loop) {
        lx_free(&x);
        ob_loop_free(x.loop);
    }
    ob_config_free(&cfg);
    return rc;
}
