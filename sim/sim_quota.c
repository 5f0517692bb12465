/*
 * sim_quota: AWS request quotas (the rate limits AWS throttles callers with)
 * as token buckets.
 *
 * A rule names an API as the latency and fault rules do ("sts.AssumeRole",
 * "cloudformation.*"), a rate (tokens per second) and a burst (the bucket's
 * size); the exact rule for an API wins over its service's "SERVICE.*" rule.
 * A bucket is one rule for one scope: the rule's service decides the scope,
 * as AWS scopes that service's quota. STS counts against the CALLER's account
 * in the Region of the request's credential scope ("caller-region": a client
 * that spreads its calls over Regional endpoints gets one quota per Region);
 * CloudFormation against the TARGET account, per Region ("account-region");
 * S3's bucket operations, CUR and Organizations against the target account
 * alone ("account"). The target account is the account of the calling
 * identity: an assumed role's session touches its own account's resources.
 * So a "SERVICE.*" rule is one bucket that all of the service's operations
 * without a rule of their own share, and an exact rule is a bucket of that
 * operation alone. Unsigned calls (AssumeRoleWithWebIdentity) have no caller
 * account and are never limited.
 *
 * Buckets live in an ob_hash table keyed by rule + account + Region, so a
 * call costs a hash of a small fixed key and a lookup; one is allocated only
 * the first time a scope calls. A bucket left alone long enough to fill up
 * again (burst / rate seconds) is the same as no bucket, so idle buckets are
 * dropped: each rule keeps its buckets in least-recently-used order and every
 * call looks at the oldest ones of its own rule and of one other rule (round
 * robin). The number of buckets is capped; past the cap the oldest bucket of
 * the calling rule goes early (its scope starts full again: lenient, never
 * stricter than AWS). Changing the rules drops every bucket.
 *
 * Threading: the loop thread only, as the rest of the simulator.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "ob_hash.h"
#include "ob_list.h"
#include "sim.h"

#define MAX_QUOTA_RULES 256
#define MAX_BUCKETS     (1u << 17)
#define SWEEP_PER_CALL  4

typedef enum scope_e { SCOPE_CALLER_REGION, SCOPE_ACCOUNT_REGION, SCOPE_ACCOUNT } scope_t;

static const char *const scope_names[] = {"caller-region", "account-region", "account"};

/* How AWS scopes each service's quota (see the file comment). */
static const scope_t service_scope[OB_SVC__COUNT] = {
    [OB_SVC_S3] = SCOPE_ACCOUNT,
    [OB_SVC_STS] = SCOPE_CALLER_REGION,
    [OB_SVC_CLOUDFORMATION] = SCOPE_ACCOUNT_REGION,
    [OB_SVC_CUR] = SCOPE_ACCOUNT,
    [OB_SVC_ORGANIZATIONS] = SCOPE_ACCOUNT,
};

/* What a bucket is for; zero-filled before use, so that it hashes and
 * compares as bytes. */
typedef struct bkey_s {
    int rule;
    char account[13];
    char region[64];
} bkey_t;

typedef struct qbucket_s {
    ob_hnode_t node;
    ob_list_t lru; /* in its rule's buckets, least recently used first */
    bkey_t key;
    double tokens;
    uint64_t last_ms;
} qbucket_t;

typedef struct qrule_s {
    char api[96];
    double rate, burst;
    scope_t scope;
    ob_list_t lru; /* its buckets, least recently used first */
} qrule_t;

static qbucket_t *oldest(const qrule_t *r)
{
    return ob_list_empty(&r->lru) ? NULL : OB_LIST_ENTRY(ob_list_first(&r->lru), qbucket_t, lru);
}

struct sim_quotas_s {
    qrule_t rules[MAX_QUOTA_RULES];
    int nrules;
    ob_htab_t buckets;
    size_t nbuckets;
    int sweep_next;    /* the other rule the next call sweeps */
    json_t *throttled; /* {"service.Op": count} */
    uint64_t throttled_total;
};

/* The documented table, and the choices where AWS documents no figure
 * (sim/README.md, "Quotas", says which is which and cites the sources).
 * CloudFormation throttles per operation, so each has its own rule. */
static const struct {
    const char *api;
    double rate, burst;
} aws_table[] = {
    {"sts.*", 600, 600},
    {"cloudformation.CreateStack", 5, 5},
    {"cloudformation.UpdateStack", 5, 5},
    {"cloudformation.DeleteStack", 5, 5},
    {"cloudformation.DescribeStacks", 5, 5},
    {"cloudformation.ListStacks", 5, 5},
    {"cloudformation.DescribeStackEvents", 5, 5},
    {"cloudformation.GetTemplate", 5, 5},
    {"cloudformation.DetectStackDrift", 5, 5},
    {"cloudformation.DescribeStackDriftDetectionStatus", 5, 5},
    {"cloudformation.DescribeStackResourceDrifts", 5, 5},
    {"cloudformation.*", 5, 5},
    {"s3.*", 3500, 3500},
    {"cur.*", 5, 5},
    {"organizations.*", 10, 10},
};

sim_quotas_t *sim_quotas_new(void)
{
    sim_quotas_t *q = ob_calloc(1, sizeof(*q));
    q->throttled = json_object();
    return q;
}

static void drop_bucket(sim_quotas_t *q, qbucket_t *b)
{
    ob_list_remove(&b->lru);
    ob_htab_remove(&q->buckets, &b->node);
    q->nbuckets--;
    free(b);
}

static void drop_all_buckets(sim_quotas_t *q)
{
    for (int i = 0; i < q->nrules; i++)
        while (oldest(&q->rules[i]))
            drop_bucket(q, oldest(&q->rules[i]));
    ob_htab_clear(&q->buckets);
    q->sweep_next = 0;
}

void sim_quotas_free(sim_quotas_t *q)
{
    if (!q)
        return;
    drop_all_buckets(q);
    json_decref(q->throttled);
    free(q);
}

void sim_quotas_reset(sim_quotas_t *q)
{
    drop_all_buckets(q);
    json_object_clear(q->throttled);
    q->throttled_total = 0;
}

/* "SERVICE.Operation" or "SERVICE.*" with a service we serve; the service,
 * or OB_SVC__COUNT with the reason in errstr. */
static ob_aws_svc_t rule_service(const char *api, char *errstr, size_t errstr_size)
{
    char svc[32];
    const char *dot = strchr(api, '.');
    if (!dot || dot == api || (size_t)(dot - api) >= sizeof(svc) || !dot[1] ||
        strlen(api) >= sizeof(((qrule_t *)0)->api)) {
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                "quota %s: name an API as SERVICE.Operation or SERVICE.* (s3, sts, "
                "cloudformation, cur, organizations)",
                api);
        return OB_SVC__COUNT;
    }
    snprintf(svc, sizeof(svc), "%.*s", (int)(dot - api), api);
    ob_aws_svc_t s = ob_aws_svc_by_name(svc);
    if (s == OB_SVC__COUNT || strcmp(ob_aws_svc_info(s)->id, svc) != 0) {
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                "quota %s: unknown service \"%s\" (s3, sts, cloudformation, cur, organizations)",
                api, svc);
        return OB_SVC__COUNT;
    }
    if (strcmp(dot + 1, "*") != 0 && !(dot[1] >= 'A' && dot[1] <= 'Z')) {
        /* cloudformation.stack_create and the like are not API calls. */
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                "quota %s: quotas apply to API calls (SERVICE.Operation, SERVICE.*), not to "
                "work that takes time",
                api);
        return OB_SVC__COUNT;
    }
    return s;
}

/* "RATE" or "RATE/BURST": RATE > 0 per second, BURST >= 1 (default: RATE,
 * at least 1). */
static ob_err_t parse_spec(const char *api, const char *spec, double *rate, double *burst,
                           char *errstr, size_t errstr_size)
{
    char *end;
    if (!spec)
        spec = "";
    *rate = strtod(spec, &end);
    if (end == spec || !(*rate > 0) || !isfinite(*rate))
        goto bad;
    if (*end == '/') {
        const char *b = end + 1;
        *burst = strtod(b, &end);
        if (end == b || *end || !(*burst >= 1) || !isfinite(*burst))
            goto bad;
    } else if (*end) {
        goto bad;
    } else {
        *burst = *rate < 1 ? 1 : *rate;
    }
    return OB_OK;
bad:
    return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                   "quota %s: cannot read \"%s\" (use RATE or RATE/BURST: requests per second "
                   "above 0, and a burst of at least 1)",
                   api, spec);
}

ob_err_t sim_quotas_check(const char *api, const char *spec, char *errstr, size_t errstr_size)
{
    double rate, burst;
    if (rule_service(api, errstr, errstr_size) == OB_SVC__COUNT)
        return OB_ERR_CONFIG;
    return parse_spec(api, spec, &rate, &burst, errstr, errstr_size);
}

static ob_err_t put_rule(sim_quotas_t *q, const char *api, double rate, double burst,
                         ob_aws_svc_t svc, char *errstr, size_t errstr_size)
{
    drop_all_buckets(q);
    for (int i = 0; i < q->nrules; i++) {
        if (!strcmp(q->rules[i].api, api)) {
            q->rules[i].rate = rate;
            q->rules[i].burst = burst;
            return OB_OK;
        }
    }
    if (q->nrules == MAX_QUOTA_RULES)
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "too many quota rules");
    qrule_t *r = &q->rules[q->nrules++];
    memset(r, 0, sizeof(*r));
    ob_list_init(&r->lru);
    snprintf(r->api, sizeof(r->api), "%s", api);
    r->rate = rate;
    r->burst = burst;
    r->scope = service_scope[svc];
    return OB_OK;
}

ob_err_t sim_quotas_set(sim_quotas_t *q, const char *api, const char *spec, char *errstr,
                        size_t errstr_size)
{
    double rate = 0, burst = 0;
    ob_aws_svc_t svc = rule_service(api, errstr, errstr_size);
    if (svc == OB_SVC__COUNT)
        return OB_ERR_CONFIG;
    if (parse_spec(api, spec, &rate, &burst, errstr, errstr_size) != OB_OK)
        return OB_ERR_CONFIG;
    return put_rule(q, api, rate, burst, svc, errstr, errstr_size);
}

ob_err_t sim_quotas_preset(sim_quotas_t *q, const char *name, char *errstr, size_t errstr_size)
{
    int aws = name && !strcmp(name, "aws");
    if (!aws && !(name && !strcmp(name, "none")))
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "unknown quota table \"%s\" (aws, none)",
                       name ? name : "(null)");
    drop_all_buckets(q);
    q->nrules = 0;
    for (size_t i = 0; aws && i < sizeof(aws_table) / sizeof(aws_table[0]); i++)
        put_rule(q, aws_table[i].api, aws_table[i].rate, aws_table[i].burst,
                 rule_service(aws_table[i].api, NULL, 0), NULL, 0);
    return OB_OK;
}

/* The rule for api: its own, else its service's "SERVICE.*"; -1 for none. */
static int find_rule(const sim_quotas_t *q, const char *api)
{
    const char *dot = strchr(api, '.');
    size_t svc_len = dot ? (size_t)(dot - api) : 0;
    int wild = -1;
    for (int i = 0; i < q->nrules; i++) {
        const char *r = q->rules[i].api;
        if (!strcmp(r, api))
            return i;
        if (dot && !strncmp(r, api, svc_len + 1) && !strcmp(r + svc_len + 1, "*"))
            wild = i;
    }
    return wild;
}

/* A bucket untouched for burst / rate seconds is full again. */
static int bucket_full_again(const qrule_t *r, const qbucket_t *b, uint64_t now_ms)
{
    return (double)(now_ms - b->last_ms) >= r->burst / r->rate * 1000.0;
}

static void sweep(sim_quotas_t *q, int rule, uint64_t now_ms)
{
    qrule_t *r = &q->rules[rule];
    qbucket_t *b;
    for (int n = 0; n < SWEEP_PER_CALL && (b = oldest(r)) && bucket_full_again(r, b, now_ms); n++)
        drop_bucket(q, b);
}

static int key_eq(const ob_hnode_t *node, const void *key)
{
    const qbucket_t *b = OB_HNODE_ENTRY(node, qbucket_t, node);
    return !memcmp(&b->key, key, sizeof(bkey_t));
}

int sim_quotas_admit(sim_quotas_t *q, const char *api, const char *account, const char *region,
                     uint64_t now_ms)
{
    if (!q->nrules || !account || !*account)
        return 1;
    int rule = find_rule(q, api);
    if (rule < 0)
        return 1;
    qrule_t *r = &q->rules[rule];
    sweep(q, rule, now_ms);
    sweep(q, q->sweep_next, now_ms);
    q->sweep_next = (q->sweep_next + 1) % q->nrules;

    bkey_t k;
    memset(&k, 0, sizeof(k));
    k.rule = rule;
    snprintf(k.account, sizeof(k.account), "%s", account);
    if (r->scope != SCOPE_ACCOUNT)
        snprintf(k.region, sizeof(k.region), "%s", region ? region : "");
    uint64_t h = ob_hash_bytes(&k, sizeof(k));
    ob_hnode_t *n = ob_htab_find(&q->buckets, h, key_eq, &k);
    qbucket_t *b;
    if (n) {
        b = OB_HNODE_ENTRY(n, qbucket_t, node);
        if (now_ms > b->last_ms)
            b->tokens += (double)(now_ms - b->last_ms) * r->rate / 1000.0;
        if (b->tokens > r->burst)
            b->tokens = r->burst;
        /* Most recently used last. */
        ob_list_remove(&b->lru);
        ob_list_push_back(&r->lru, &b->lru);
    } else {
        for (int i = 0; q->nbuckets >= MAX_BUCKETS && i <= q->nrules; i++) {
            /* The calling rule's oldest first, else any rule's. */
            qbucket_t *old = oldest(i == 0 ? r : &q->rules[i - 1]);
            if (old)
                drop_bucket(q, old);
        }
        b = ob_calloc(1, sizeof(*b));
        b->key = k;
        b->tokens = r->burst;
        ob_htab_insert(&q->buckets, &b->node, h);
        q->nbuckets++;
        ob_list_push_back(&r->lru, &b->lru);
    }
    b->last_ms = now_ms;
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return 1;
    }
    json_t *c = json_object_get(q->throttled, api);
    if (json_is_integer(c))
        json_integer_set(c, json_integer_value(c) + 1);
    else
        json_object_set_new(q->throttled, api, json_integer(1));
    q->throttled_total++;
    return 0;
}

static json_t *number(double v)
{
    return v == floor(v) && fabs(v) < 1e15 ? json_integer((json_int_t)v) : json_real(v);
}

json_t *sim_quotas_rules_json(const sim_quotas_t *q)
{
    json_t *o = json_object();
    for (int i = 0; i < q->nrules; i++) {
        const qrule_t *r = &q->rules[i];
        json_object_set_new(o, r->api,
                            json_pack("{s:o, s:o, s:s}", "rate", number(r->rate), "burst",
                                      number(r->burst), "scope", scope_names[r->scope]));
    }
    return o;
}

json_t *sim_quotas_throttled(const sim_quotas_t *q)
{
    return q->throttled;
}

uint64_t sim_quotas_throttled_total(const sim_quotas_t *q)
{
    return q->throttled_total;
}

size_t sim_quotas_buckets(const sim_quotas_t *q)
{
    return q->nbuckets;
}
