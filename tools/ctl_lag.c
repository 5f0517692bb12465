/*
 * onboardctl lag: how far each consumer group is behind, per partition, and
 * who owns each partition, as kafka-consumer-groups.sh --describe shows it.
 *
 * The groups are the stages' (<prefix><stage> on the stage's input topic),
 * or one named with --group (on --topic, or on every topic it has committed
 * offsets for or whose partitions its members own). Everything is read from
 * the broker (DescribeGroups for the members and their assignments, the
 * group's committed offsets, the partitions' ends), so it works with no
 * worker running. A stage's group that no worker has
 * joined yet does not exist in Kafka: its lag is counted from the log's
 * start, as the group would start there. A topic that does not exist, or a
 * group named with --group that does not, is an error (EXIT_MISSING): a
 * typo in topic.prefix must not read as "no lag".
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ob_alloc.h"
#include "ob_kafka.h"

#define KAFKA_TIMEOUT_MS 10000

typedef struct lag_row_s {
    const char *group; /* the target's */
    char topic[256];
    int32_t partition;
    int64_t committed, end, lag;
    double age_s;        /* age of the oldest unprocessed message, -1 unknown */
    const json_t *owner; /* {consumer_id, host, client_id} or NULL */
} lag_row_t;

typedef struct target_s {
    char group[256];
    char topic[256]; /* "": every topic of the group's */
    int named;       /* --group: its absence is an error */
    int exists;      /* Kafka knows the group (state other than Dead) */
    int missing;     /* its group or topic does not exist: no totals */
    char state[32];
    size_t members;
    json_t *owners; /* "topic\npartition" -> {consumer_id, host, client_id} */
} target_t;

typedef struct lag_s {
    ctl_t *c;
    rd_kafka_t *rk;
    target_t *t;
    size_t nt;
    lag_row_t *rows;
    size_t n, cap;
    int missing;                     /* something asked for does not exist */
    rd_kafka_resp_err_t undescribed; /* why a group was not described (said once) */
} lag_t;

/* ---- the group, as the brokers describe it ---- */

static void owner_key(const char *topic, int32_t partition, char *out, size_t n)
{
    snprintf(out, n, "%s\n%d", topic, (int)partition);
}

/* Kafka's consumer protocol, big-endian: what a member's assignment holds. */
typedef struct bytes_s {
    const unsigned char *p, *end;
    int bad; /* read past the end */
} bytes_t;

static int32_t read_be(bytes_t *b, int n)
{
    if (b->bad || b->end - b->p < n) {
        b->bad = 1;
        return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | *b->p++;
    return n == 2 ? (int16_t)v : (int32_t)v;
}

/* The partitions member m owns, into g->owners: its assignment (version,
 * [topic, [partition]], user data). */
static void take_assignment(target_t *g, const struct rd_kafka_group_member_info *m)
{
    bytes_t b = {m->member_assignment,
                 (const unsigned char *)m->member_assignment + m->member_assignment_size, 0};
    if (m->member_assignment_size <= 0)
        return; /* nothing assigned yet */
    read_be(&b, 2);
    int32_t ntopics = read_be(&b, 4);
    for (int32_t i = 0; !b.bad && i < ntopics; i++) {
        int16_t len = (int16_t)read_be(&b, 2);
        if (len < 0 || b.end - b.p < len)
            break;
        char topic[256];
        snprintf(topic, sizeof(topic), "%.*s", (int)len, (const char *)b.p);
        b.p += len;
        int32_t nparts = read_be(&b, 4);
        for (int32_t k = 0; !b.bad && k < nparts; k++) {
            int32_t partition = read_be(&b, 4);
            char key[300];
            owner_key(topic, partition, key, sizeof(key));
            if (!b.bad)
                json_object_set_new(g->owners, key,
                                    json_pack("{s:s?, s:s?, s:s?}", "consumer_id", m->member_id,
                                              "host", m->client_host, "client_id", m->client_id));
        }
    }
}

/* Group g as its coordinator describes it: whether it exists, its state,
 * its members and what each owns. (DescribeGroups to the brokers, not the
 * admin API's DescribeConsumerGroups: librdkafka 2.8's admin requests to a
 * group coordinator abort the process when the request cannot be sent,
 * which is the case with the quickstart's mock cluster.) */
static int describe_group(lag_t *l, target_t *g)
{
    const struct rd_kafka_group_list *list = NULL;
    rd_kafka_resp_err_t e = rd_kafka_list_groups(l->rk, g->group, &list, KAFKA_TIMEOUT_MS);
    int unsupported = e == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE;
    if (e && e != RD_KAFKA_RESP_ERR__PARTIAL && !unsupported) {
        fprintf(stderr, "onboardctl: Kafka: describing consumer group %s: %s\n", g->group,
                rd_kafka_err2str(e));
        return EXIT_RUNTIME;
    }
    const struct rd_kafka_group_info *found = NULL;
    rd_kafka_resp_err_t why = unsupported ? e : RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; list && !found && i < list->group_cnt; i++) {
        const struct rd_kafka_group_info *gi = &list->groups[i];
        if (strcmp(gi->group, g->group) != 0)
            continue;
        if (!gi->err)
            found = gi;
        else if (!why || gi->err == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND)
            why = gi->err; /* (the other brokers answer that they are not its coordinator) */
    }
    if (found) {
        snprintf(g->state, sizeof(g->state), "%s", found->state ? found->state : "");
        g->exists = g->state[0] && strcmp(g->state, "Dead") != 0;
        g->members = (size_t)found->member_cnt;
        for (int i = 0; found->protocol_type && !strcmp(found->protocol_type, "consumer") &&
                        i < found->member_cnt;
             i++)
            take_assignment(g, &found->members[i]);
    } else if (why == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND || (!e && !why)) {
        /* Every broker answered, none knows it (the brokers list the
         * groups they coordinate, then describe them). */
        snprintf(g->state, sizeof(g->state), "Dead");
    } else {
        /* No coordinator described it (brokers without DescribeGroups):
         * its offsets still tell its lag, not who owns what. */
        snprintf(g->state, sizeof(g->state), "Unknown");
        g->exists = 1;
        l->undescribed = why ? why : e;
    }
    if (list)
        rd_kafka_group_list_destroy(list);
    return 0;
}

static int describe_groups(lag_t *l)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < l->nt; i++)
        rc = describe_group(l, &l->t[i]);
    if (rc == 0 && l->undescribed)
        fprintf(stderr,
                "onboardctl lag: the brokers did not describe the consumer groups (%s): "
                "no owners shown\n",
                rd_kafka_err2str(l->undescribed));
    return rc;
}

/* The committed offsets of group g for `parts` (set in place; none:
 * RD_KAFKA_OFFSET_INVALID), as the group's own consumer would read them
 * (without joining it). */
static int committed(lag_t *l, const target_t *g, rd_kafka_topic_partition_list_t *parts)
{
    char err[512];
    const char *defaults[] = {"group.id", g->group, "enable.auto.commit", "false", NULL};
    rd_kafka_conf_t *conf = ob_kafka_conf_new(&l->c->cfg.kafka, defaults, err, sizeof(err));
    rd_kafka_t *rk = conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)) : NULL;
    if (!rk) {
        fprintf(stderr, "onboardctl: %s\n", err);
        return EXIT_RUNTIME;
    }
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, parts, KAFKA_TIMEOUT_MS);
    rd_kafka_destroy(rk);
    if (e) {
        fprintf(stderr, "onboardctl: Kafka: the committed offsets of %s: %s\n", g->group,
                rd_kafka_err2str(e));
        return EXIT_RUNTIME;
    }
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].err)
            parts->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
    return 0;
}

/* ---- the rows ---- */

/* The partitions of topic: their count, 0 when it does not exist (said),
 * -1 on a failure (said). */
static int partitions_of(lag_t *l, target_t *g, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(l->rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(l->rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (!e && (md->topic_cnt != 1 || md->topics[0].err))
        e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    int n = e ? 0 : md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || (!e && n == 0)) {
        ctl_progress_clear();
        if (g->named)
            fprintf(stderr, "onboardctl lag: topic %s does not exist\n", topic);
        else
            fprintf(stderr,
                    "onboardctl lag: topic %s does not exist (is topic.prefix \"%s\" right?)\n",
                    topic, l->c->cfg.topic_prefix);
        l->missing = 1;
        g->missing = g->topic[0] != '\0'; /* the group's only topic */
        return 0;
    }
    if (e) {
        fprintf(stderr, "onboardctl: Kafka: %s: %s\n", topic, rd_kafka_err2str(e));
        return -1;
    }
    return n;
}

static lag_row_t *new_row(lag_t *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->rows = ob_realloc(l->rows, l->cap * sizeof(*l->rows));
    }
    lag_row_t *r = &l->rows[l->n++];
    memset(r, 0, sizeof(*r));
    return r;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The rows of group g on topic: committed, end, lag, owner per partition. */
static int topic_rows(lag_t *l, target_t *g, const char *topic)
{
    int nparts = partitions_of(l, g, topic);
    if (nparts <= 0)
        return nparts < 0 ? EXIT_RUNTIME : 0;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(nparts);
    for (int p = 0; p < nparts; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_INVALID;
    /* A group Kafka does not know has committed nothing. */
    int rc = g->exists ? committed(l, g, parts) : 0;
    for (int p = 0; rc == 0 && p < nparts; p++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(l->rk, topic, p, &lo, &hi, 10000)) {
            fprintf(stderr, "onboardctl: cannot read the end of %s [%d]\n", topic, p);
            rc = EXIT_RUNTIME;
            break;
        }
        lag_row_t *r = new_row(l);
        char key[300];
        owner_key(topic, p, key, sizeof(key));
        r->group = g->group;
        snprintf(r->topic, sizeof(r->topic), "%s", topic);
        r->partition = p;
        r->committed = parts->elems[p].offset; /* < 0: none */
        r->end = hi;
        /* With no commit the group starts at the log start (auto.offset.reset earliest). */
        int64_t from = r->committed >= 0 ? r->committed : lo;
        r->lag = hi > from ? hi - from : 0;
        r->age_s = r->lag > 0 ? -1 : 0;
        r->owner = json_object_get(g->owners, key);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return rc;
}

/* The rows of every topic of group g's: those it has committed offsets for
 * (of every topic in the cluster but Kafka's own) and those its members own. */
static int group_rows(lag_t *l, target_t *g)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(l->rk, 1, NULL, &md, KAFKA_TIMEOUT_MS);
    if (e) {
        fprintf(stderr, "onboardctl: Kafka: the cluster's topics: %s\n", rd_kafka_err2str(e));
        return EXIT_RUNTIME;
    }
    rd_kafka_topic_partition_list_t *all = rd_kafka_topic_partition_list_new(64);
    for (int i = 0; i < md->topic_cnt; i++)
        for (int p = 0; !md->topics[i].err && strncmp(md->topics[i].topic, "__", 2) != 0 &&
                        p < md->topics[i].partition_cnt;
             p++)
            rd_kafka_topic_partition_list_add(all, md->topics[i].topic, p);
    rd_kafka_metadata_destroy(md);
    int rc = all->cnt ? committed(l, g, all) : 0;
    json_t *topics = json_object(); /* the group's, sorted below */
    for (int i = 0; rc == 0 && i < all->cnt; i++)
        if (all->elems[i].offset >= 0)
            json_object_set_new(topics, all->elems[i].topic, json_true());
    rd_kafka_topic_partition_list_destroy(all);
    const char *k;
    json_t *v;
    json_object_foreach(g->owners, k, v)
    {
        char topic[256];
        snprintf(topic, sizeof(topic), "%.*s", (int)strcspn(k, "\n"), k);
        json_object_set_new(topics, topic, json_true());
    }
    const char **names = ob_calloc(json_object_size(topics) + 1, sizeof(*names));
    size_t n = 0;
    json_object_foreach(topics, k, v) names[n++] = k;
    qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = topic_rows(l, g, names[i]);
    free(names);
    json_decref(topics);
    return rc;
}

/* The age of the message at each lagging row's committed offset (one read each). */
static void lag_ages(ctl_t *c, lag_row_t *rows, size_t n)
{
    char err[512];
    static const char *const defaults[] = {"group.id", "onboardctl-lag-reader",
                                           "enable.auto.commit", "false", NULL};
    rd_kafka_conf_t *conf = ob_kafka_conf_new(&c->cfg.kafka, defaults, err, sizeof(err));
    rd_kafka_t *rk = conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)) : NULL;
    if (!rk)
        return;
    rd_kafka_topic_partition_list_t *assign = rd_kafka_topic_partition_list_new((int)n);
    size_t want = 0;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].lag <= 0)
            continue;
        rd_kafka_topic_partition_list_add(assign, rows[i].topic, rows[i].partition)->offset =
            rows[i].end - rows[i].lag;
        want++;
    }
    if (want)
        rd_kafka_assign(rk, assign);
    rd_kafka_topic_partition_list_destroy(assign);
    uint64_t deadline = ob_wall_ms() + 10000;
    while (want > 0 && ob_wall_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m)
            continue;
        for (size_t i = 0; !m->err && i < n; i++) {
            if (rows[i].lag > 0 && rows[i].age_s < 0 && rows[i].partition == m->partition &&
                !strcmp(rows[i].topic, rd_kafka_topic_name(m->rkt))) {
                int64_t ts = rd_kafka_message_timestamp(m, NULL);
                rows[i].age_s = ts > 0 ? (double)((int64_t)ob_wall_ms() - ts) / 1000.0 : 0;
                if (rows[i].age_s < 0)
                    rows[i].age_s = 0;
                want--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* ---- what is printed ---- */

static const char *owner_field(const lag_row_t *r, const char *k)
{
    const char *v = json_string_value(json_object_get(r->owner, k));
    return v && v[0] ? v : NULL;
}

/* Per group: {lag, max_lag_seconds, members, state}; *over when one's total
 * is over threshold (>= 0). */
static json_t *group_totals(const lag_t *l, long long threshold, int *over)
{
    json_t *groups = json_object();
    for (size_t i = 0; i < l->nt; i++) {
        const target_t *g = &l->t[i];
        if (g->missing)
            continue;
        json_object_set_new(groups, g->group,
                            json_pack("{s:I, s:f, s:I, s:s}", "lag", (json_int_t)0,
                                      "max_lag_seconds", 0.0, "members", (json_int_t)g->members,
                                      "state", g->state));
    }
    for (size_t i = 0; i < l->n; i++) {
        const lag_row_t *r = &l->rows[i];
        json_t *g = json_object_get(groups, r->group);
        json_int_t total = json_integer_value(json_object_get(g, "lag")) + r->lag;
        json_object_set_new(g, "lag", json_integer(total));
        if (r->age_s > json_real_value(json_object_get(g, "max_lag_seconds")))
            json_object_set_new(g, "max_lag_seconds", json_real(r->age_s));
        if (threshold >= 0 && total > threshold)
            *over = 1;
    }
    return groups;
}

static json_t *string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static void print_json(const lag_t *l, json_t *groups, int over)
{
    json_t *parts = json_array();
    for (size_t i = 0; i < l->n; i++) {
        const lag_row_t *r = &l->rows[i];
        json_t *o =
            json_pack("{s:s, s:s, s:i, s:I, s:I, s:I}", "group", r->group, "topic", r->topic,
                      "partition", r->partition, "committed", (json_int_t)r->committed, "end",
                      (json_int_t)r->end, "lag", (json_int_t)r->lag);
        json_object_set_new(o, "lag_seconds", r->age_s >= 0 ? json_real(r->age_s) : json_null());
        /* null: no member owns the partition */
        json_object_set_new(o, "consumer_id", string_or_null(owner_field(r, "consumer_id")));
        json_object_set_new(o, "host", string_or_null(owner_field(r, "host")));
        json_object_set_new(o, "client_id", string_or_null(owner_field(r, "client_id")));
        json_array_append_new(parts, o);
    }
    ctl_json_print(json_pack("{s:o, s:O, s:b}", "partitions", parts, "groups", groups,
                             "over_threshold", over));
}

static int width(int w, const char *s)
{
    int n = (int)strlen(s ? s : "-");
    return n > w ? n : w;
}

static void print_table(const lag_t *l, json_t *groups)
{
    int wg = 5, wt = 5, wc = 11, wh = 4;
    for (size_t i = 0; i < l->n; i++) {
        wg = width(wg, l->rows[i].group);
        wt = width(wt, l->rows[i].topic);
        wc = width(wc, owner_field(&l->rows[i], "consumer_id"));
        wh = width(wh, owner_field(&l->rows[i], "host"));
    }
    if (l->n)
        printf("%-*s %-*s %5s %12s %12s %10s %10s  %-*s %-*s %s\n", wg, "GROUP", wt, "TOPIC",
               "PART", "COMMITTED", "END", "LAG", "LAG_AGE_S", wc, "CONSUMER-ID", wh, "HOST",
               "CLIENT-ID");
    for (size_t i = 0; i < l->n; i++) {
        const lag_row_t *r = &l->rows[i];
        char committed[32] = "-", age[32] = "?";
        if (r->committed >= 0)
            snprintf(committed, sizeof(committed), "%lld", (long long)r->committed);
        if (r->age_s >= 0)
            snprintf(age, sizeof(age), "%.1f", r->age_s);
        const char *cid = owner_field(r, "consumer_id"), *host = owner_field(r, "host"),
                   *client = owner_field(r, "client_id");
        printf("%-*s %-*s %5d %12s %12lld %10lld %10s  %-*s %-*s %s\n", wg, r->group, wt, r->topic,
               (int)r->partition, committed, (long long)r->end, (long long)r->lag, age, wc,
               cid ? cid : "-", wh, host ? host : "-", client ? client : "-");
    }
    if (l->n)
        printf("\n");
    const char *k;
    json_t *v;
    json_object_foreach(groups, k, v)
    {
        long long members = json_integer_value(json_object_get(v, "members"));
        const char *state = json_string_value(json_object_get(v, "state"));
        printf("%-28s total lag %lld, oldest unprocessed message %.1f s old, ", k,
               (long long)json_integer_value(json_object_get(v, "lag")),
               json_real_value(json_object_get(v, "max_lag_seconds")));
        if (!strcmp(state, "Dead"))
            printf("no such group yet: no worker has joined it\n");
        else if (!strcmp(state, "Unknown"))
            printf("members not known\n");
        else
            printf("%lld member%s (%s)\n", members, members == 1 ? "" : "s", state);
    }
}

/* ---- the command ---- */

static const char *const STAGES[][2] = {
    {"bucket", "requests"}, {"cur", "cur"}, {"iam", "iam"}, {"connect", "connect"}};

static void add_target(lag_t *l, const char *group, const char *topic, int named)
{
    l->t = ob_realloc(l->t, (l->nt + 1) * sizeof(*l->t));
    target_t *g = &l->t[l->nt++];
    memset(g, 0, sizeof(*g));
    snprintf(g->group, sizeof(g->group), "%s", group);
    snprintf(g->topic, sizeof(g->topic), "%s", topic ? topic : "");
    g->named = named;
    g->owners = json_object();
}

/* The targets the options ask for: 0, or EXIT_USAGE said. */
static int targets(lag_t *l, const char *stage, const char *group, const char *topic)
{
    const char *prefix = l->c->cfg.topic_prefix;
    if (stage && group) {
        fprintf(stderr, "onboardctl lag: --stage or --group, not both\n");
        return EXIT_USAGE;
    }
    if (topic && !group) {
        fprintf(stderr, "onboardctl lag: --topic goes with --group (a stage has its topic)\n");
        return EXIT_USAGE;
    }
    if (group) {
        add_target(l, group, topic, 1);
        return 0;
    }
    for (size_t s = 0; s < 4; s++) {
        if (stage && strcmp(stage, STAGES[s][0]) != 0)
            continue;
        char g[256], t[256];
        snprintf(g, sizeof(g), "%s%s", prefix, STAGES[s][0]);
        snprintf(t, sizeof(t), "%s%s", prefix, STAGES[s][1]);
        add_target(l, g, t, 0);
    }
    if (!l->nt) {
        fprintf(stderr, "onboardctl lag: --stage is one of bucket, cur, iam, connect\n");
        return EXIT_USAGE;
    }
    return 0;
}

static int parse(int argc, char **argv, long long *threshold, const char **stage,
                 const char **group, const char **topic)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--threshold") && i + 1 < argc) {
            char *end;
            *threshold = strtoll(argv[++i], &end, 10);
            if (*end || *threshold < 0) {
                fprintf(stderr, "onboardctl lag: --threshold takes a number of messages >= 0\n");
                return EXIT_USAGE;
            }
        } else if (!strcmp(a, "--stage") && i + 1 < argc) {
            *stage = argv[++i];
        } else if (!strcmp(a, "--group") && i + 1 < argc) {
            *group = argv[++i];
        } else if (!strcmp(a, "--topic") && i + 1 < argc) {
            *topic = argv[++i];
        } else {
            fprintf(stderr, "onboardctl lag: unknown or incomplete option %s (try --help)\n", a);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* Every target's rows: 0, or EXIT_RUNTIME said. */
static int read_rows(lag_t *l)
{
    int rc = describe_groups(l);
    for (size_t i = 0; rc == 0 && i < l->nt; i++) {
        target_t *g = &l->t[i];
        if (g->named && !g->exists) {
            fprintf(stderr, "onboardctl lag: consumer group %s does not exist\n", g->group);
            l->missing = g->missing = 1;
        } else if (g->topic[0]) {
            rc = topic_rows(l, g, g->topic);
        } else {
            rc = group_rows(l, g);
        }
    }
    return rc;
}

int ctl_lag(ctl_t *c, int argc, char **argv)
{
    long long threshold = -1;
    const char *stage = NULL, *group = NULL, *topic = NULL;
    lag_t l;
    memset(&l, 0, sizeof(l));
    l.c = c;
    int rc = parse(argc, argv, &threshold, &stage, &group, &topic);
    if (rc == 0)
        rc = targets(&l, stage, group, topic);
    char err[512];
    static const char *const defaults[] = {"group.id", "onboardctl-lag-reader", NULL};
    rd_kafka_conf_t *conf =
        rc ? NULL : ob_kafka_conf_new(&c->cfg.kafka, defaults, err, sizeof(err));
    l.rk = conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)) : NULL;
    if (rc == 0 && !l.rk) {
        fprintf(stderr, "onboardctl: %s\n", err);
        rc = EXIT_RUNTIME;
    }
    if (rc == 0)
        rc = read_rows(&l);
    if (l.rk)
        rd_kafka_destroy(l.rk);
    int over = 0;
    if (rc == 0) {
        lag_ages(c, l.rows, l.n);
        json_t *groups = group_totals(&l, threshold, &over);
        if (c->json)
            print_json(&l, groups, over);
        else
            print_table(&l, groups);
        if (!c->json && threshold >= 0 && !l.missing)
            printf("%s\n", over ? "lag over the threshold" : "lag within the threshold");
        json_decref(groups);
    }
    for (size_t i = 0; i < l.nt; i++)
        json_decref(l.t[i].owners);
    free(l.t);
    free(l.rows);
    return rc ? rc : l.missing ? EXIT_MISSING : over ? EXIT_LAGGING : 0;
}
