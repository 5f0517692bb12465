/*
 * ob_config: table-driven settings. Values from every source go through the
 * same parser and bounds check, so a default that violates its own bounds is
 * caught by the unit tests rather than at 3 a.m.
 */
#include "ob_config.h"
#include "ob_buf.h"
#include "ob_log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ob_alloc.h"

#define OFF(f) offsetof(ob_config_t, f)

const ob_cfg_def_t ob_config_table[] = {
    {"log.level", OB_CFG_STR, "info", 0, 0, OFF(log_level), 0, "debug, info, warn, error or off"},
    {"topic.prefix", OB_CFG_STR, "onboard.", 0, 0, OFF(topic_prefix), 0,
     "prefix of every topic name"},
    {"redis.host", OB_CFG_STR, "127.0.0.1", 0, 0, OFF(redis_host), 0, "Redis host"},
    {"redis.port", OB_CFG_INT, "6379", 1, 65535, OFF(redis_port), 0, "Redis port"},
    {"redis.password", OB_CFG_STR, "", 0, 0, OFF(redis_password), 1,
     "Redis AUTH password (empty: none)"},
    {"redis.db", OB_CFG_INT, "0", 0, 1023, OFF(redis_db), 0, "Redis database number"},
    {"redis.tls", OB_CFG_BOOL, "false", 0, 0, OFF(redis_tls), 0,
     "TLS to Redis and its sentinels (1.2 or later, the server's certificate and name checked)"},
    {"redis.tls.ca.file", OB_CFG_STR, "", 0, 0, OFF(redis_tls_ca), 0,
     "PEM file of the CAs that sign Redis's certificate (empty: the system's)"},
    {"redis.tls.cert.file", OB_CFG_STR, "", 0, 0, OFF(redis_tls_cert), 0,
     "PEM client certificate (chain) for servers that ask for one (empty: none)"},
    {"redis.tls.key.file", OB_CFG_STR, "", 0, 0, OFF(redis_tls_key), 0,
     "PEM private key of redis.tls.cert.file"},
    {"redis.tls.server.name", OB_CFG_STR, "", 0, 0, OFF(redis_tls_server_name), 0,
     "the name Redis's certificate must carry (empty: the host connected to)"},
    {"redis.sentinels", OB_CFG_STR, "", 0, 0, OFF(redis_sentinels), 0,
     "Redis Sentinel, host:port by commas: ask them for the primary of redis.sentinel.master "
     "before every connection, and follow a failover (empty: redis.host is the server)"},
    {"redis.sentinel.master", OB_CFG_STR, "mymaster", 0, 0, OFF(redis_sentinel_master), 0,
     "the name the sentinels monitor the primary under"},
    {"redis.sentinel.password", OB_CFG_STR, "", 0, 0, OFF(redis_sentinel_password), 1,
     "AUTH password of the sentinels (empty: none)"},
    {"redis.command.timeout", OB_CFG_MS, "2s", 10, 600000, OFF(redis_command_timeout_ms), 0,
     "deadline of one Redis command"},
    {"redis.connect.timeout", OB_CFG_MS, "2s", 10, 600000, OFF(redis_connect_timeout_ms), 0,
     "deadline of one Redis connection attempt"},
    {"http.timeout", OB_CFG_MS, "30s", 100, 3600000, OFF(http_timeout_ms), 0,
     "deadline of one HTTP request, connect included"},
    {"http.connect.timeout", OB_CFG_MS, "5s", 100, 600000, OFF(http_connect_timeout_ms), 0,
     "deadline of one TCP+TLS connect"},
    {"http.max.body", OB_CFG_SIZE, "8M", 1024, 1073741824LL, OFF(http_max_body), 0,
     "largest HTTP reply body accepted"},
    {"http.max.connections", OB_CFG_INT, "1024", 1, 65536, OFF(http_max_connections), 0,
     "concurrent HTTP connections per worker"},
    {"aws.max.attempts", OB_CFG_INT, "3", 1, 20, OFF(aws_max_attempts), 0,
     "HTTP attempts per AWS call (SDK standard mode)"},
    {"aws.max.backoff", OB_CFG_MS, "20s", 1, 300000, OFF(aws_max_backoff_ms), 0,
     "cap of one HTTP-level retry delay"},
    {"run.max", OB_CFG_INT, "1024", 0, 1000000, OFF(run_max), 0,
     "accounts a worker works on at once (0: all in flight); the rest wait in arrival order "
     "holding only their message"},
    {"inflight.max", OB_CFG_INT, "5000", 1, 1000000, OFF(inflight_max), 0,
     "accounts in flight per worker before partitions are paused"},
    {"metrics.port", OB_CFG_INT, "0", 0, 65535, OFF(metrics_port), 0,
     "port of /metrics, /healthz, /readyz (0: off)"},
    {"metrics.bind", OB_CFG_STR, "0.0.0.0", 0, 0, OFF(metrics_bind), 0,
     "address the metrics and health server listens on"},
    {"billing.principal", OB_CFG_STR, "", 0, 0, OFF(billing_principal), 0,
     "the AWS principal the Billing Engine role trusts (e.g. arn:aws:iam::ACCOUNT:root)"},
    {"billing.url", OB_CFG_STR, "", 0, 0, OFF(billing_url), 0,
     "POST each account-connected event here (empty: Kafka only)"},
    {"billing.secret", OB_CFG_STR, "", 0, 0, OFF(billing_secret), 1,
     "HMAC-SHA256 key signing the POSTed events"},
    {"stack.name.prefix", OB_CFG_STR, "billing-engine-access", 0, 0, OFF(stack_name_prefix), 0,
     "name of the IAM CloudFormation stack in every account"},
    {"stack.poll", OB_CFG_MS, "5s", 10, 600000, OFF(stack_poll_ms), 0,
     "how often a stack in progress is described"},
    {"stack.redo.max", OB_CFG_INT, "2", 0, 10, OFF(stack_redo_max), 0,
     "rolled-back stacks deleted and created again before giving up"},
    {"connect.retries", OB_CFG_INT, "10", 0, 100, OFF(connect_retries), 0,
     "AssumeRole retries on a just-created role (IAM is eventually consistent)"},
    {"connect.retry.wait", OB_CFG_MS, "2s", 10, 600000, OFF(connect_retry_ms), 0,
     "wait between those attempts"},
    {"stage.retry.max", OB_CFG_INT, "5", 1, 100, OFF(stage_retry_max), 0,
     "attempts of a stage for one request (throttling, 5xx, timeouts) before the dead letter"},
    {"stage.retry.wait", OB_CFG_MS, "30s", 10, 86400000, OFF(stage_retry_wait_ms), 0,
     "base of the exponential, full-jitter wait between stage attempts"},
    {"stage.retry.max.wait", OB_CFG_MS, "10m", 10, 86400000, OFF(stage_retry_max_wait_ms), 0,
     "cap of that wait"},
    {"stage.retry.window", OB_CFG_MS, "3m", 0, 86400000, OFF(stage_retry_window_ms), 0,
     "least time from a request's first failure at a stage to its last attempt there: the "
     "attempts are spread over at least this long, so an outage shorter than it cannot use "
     "them all up (0: no floor)"},
    {"stage.retry.throttling.max", OB_CFG_INT, "10", 0, 100, OFF(stage_retry_class_max[1]), 0,
     "stage attempts when AWS throttles (0: stage.retry.max)"},
    {"stage.retry.throttling.wait", OB_CFG_MS, "0", 0, 86400000, OFF(stage_retry_class_wait_ms[1]),
     0, "base wait after throttling (0: stage.retry.wait)"},
    {"stage.retry.transient.max", OB_CFG_INT, "0", 0, 100, OFF(stage_retry_class_max[2]), 0,
     "stage attempts after 5xx and connection errors (0: stage.retry.max)"},
    {"stage.retry.transient.wait", OB_CFG_MS, "0", 0, 86400000, OFF(stage_retry_class_wait_ms[2]),
     0, "base wait after 5xx and connection errors (0: stage.retry.wait)"},
    {"stage.retry.timeout.max", OB_CFG_INT, "0", 0, 100, OFF(stage_retry_class_max[3]), 0,
     "stage attempts after timeouts (0: stage.retry.max)"},
    {"stage.retry.timeout.wait", OB_CFG_MS, "0", 0, 86400000, OFF(stage_retry_class_wait_ms[3]), 0,
     "base wait after timeouts (0: stage.retry.wait)"},
    {"stage.retry.busy.max", OB_CFG_INT, "0", 0, 100, OFF(stage_retry_class_max[4]), 0,
     "stage attempts while a resource is still changing, e.g. a stack in progress (0: "
     "stage.retry.max)"},
    {"stage.retry.busy.wait", OB_CFG_MS, "0", 0, 86400000, OFF(stage_retry_class_wait_ms[4]), 0,
     "base wait for those (0: stage.retry.wait)"},
    {"lock.ttl", OB_CFG_MS, "30s", 1000, 600000, OFF(lock_ttl_ms), 0,
     "per-account lock lifetime (renewed at a third of it while held): how long a killed "
     "worker's accounts stay locked"},
    {"intake.organization.check", OB_CFG_BOOL, "true", 0, 0, OFF(intake_org_check), 0,
     "at intake, ask Organizations (DescribeAccount, as the fleet) whether the account is an "
     "ACTIVE member of the fleet's organization, and refuse it otherwise; skipped while the "
     "fleet's identity cannot see an organization"},
    {"intake.organization.standing", OB_CFG_BOOL, "true", 0, 0, OFF(intake_org_standing), 0,
     "keep the check's snapshot of the organization (ListAccounts, 20 accounts a call, as the "
     "fleet) listed from the worker's start and listed again before it expires while it saves "
     "more calls than it costs, so that a batch finds its members listed; false: list only "
     "when a burst of accounts arrives"},
    {"intake.allow.outside.accounts", OB_CFG_BOOL, "false", 0, 0, OFF(intake_allow_outside), 0,
     "onboard accounts that are not in the fleet's organization (the check still refuses "
     "suspended members)"},
    {"intake.existing.report.check", OB_CFG_BOOL, "true", 0, 0, OFF(intake_existing_report), 0,
     "mode existing: require the account to have a Cost and Usage Report already "
     "(DescribeReportDefinitions in the account; on the bucket the request names, if any) and "
     "put it in the connected event; false connects without looking (an organization whose "
     "reports are its payer account's)"},
    {"output.transactions", OB_CFG_BOOL, "true", 0, 0, OFF(output_transactions), 0,
     "exactly-once output: each worker's hand-offs, dead letters and events go out in Kafka "
     "transactions committed with its input offsets (false: an idempotent producer, "
     "at-least-once)"},
    {"output.commit.interval", OB_CFG_MS, "100ms", 1, 60000, OFF(output_commit_interval_ms), 0,
     "how often the open transaction is committed (a hand-off waits this long at most before "
     "the next stage can read it)"},
    {"lifecycle.region", OB_CFG_STR, "", 0, 0, OFF(lifecycle_region), 0,
     "the region of the requests the fleet makes by itself (accounts joining the organization: "
     "AWS's events at intake, the watcher); empty: such events are dead-lettered with that "
     "reason"},
    {"lifecycle.mode", OB_CFG_STR, "new", 0, 0, OFF(lifecycle_mode), 0,
     "their mode (new or existing) where lifecycle.ou.modes names none"},
    {"lifecycle.ou.modes", OB_CFG_STR, "", 0, 0, OFF(lifecycle_ou_modes), 0,
     "mode per OU, OU=MODE,... (ou-xxxx-yyyyyyyy or root; an account takes its nearest OU's)"},
    {"lifecycle.role.name", OB_CFG_STR, "OrganizationAccountAccessRole", 0, 0,
     OFF(lifecycle_role_name), 0, "the role assumed in an account that joined"},
    {"lifecycle.controltower.role.name", OB_CFG_STR, "AWSControlTowerExecution", 0, 0,
     OFF(lifecycle_ct_role_name), 0,
     "the role assumed in an account Control Tower's account factory made"},
    {"lifecycle.include.ous", OB_CFG_STR, "", 0, 0, OFF(lifecycle_include_ous), 0,
     "onboard only accounts in these OUs (comma-separated ids or root; nested OUs count); "
     "empty: every OU"},
    {"lifecycle.exclude.ous", OB_CFG_STR, "", 0, 0, OFF(lifecycle_exclude_ous), 0,
     "never onboard accounts in these OUs by itself (wins over include)"},
    {"lifecycle.include.accounts", OB_CFG_STR, "", 0, 0, OFF(lifecycle_include_accounts), 0,
     "onboard only these accounts by itself (comma-separated ids); empty: every account"},
    {"lifecycle.exclude.accounts", OB_CFG_STR, "", 0, 0, OFF(lifecycle_exclude_accounts), 0,
     "never onboard these accounts by itself (the management account is a good one)"},
    {"watcher.interval", OB_CFG_MS, "0", 0, 604800000LL, OFF(watcher_interval_ms), 0,
     "onboard-lifecycle: list the organization this often and enqueue every ACTIVE account "
     "the lifecycle.* rules take that the fleet does not know (0: no watcher)"},
    {"watcher.max.per.interval", OB_CFG_INT, "100", 1, 1000000, OFF(watcher_max_per_interval), 0,
     "the watcher enqueues at most this many accounts per interval (the rest wait for the "
     "next one)"},
    {"verify.interval", OB_CFG_MS, "0", 0, 31536000000LL, OFF(verify_interval_ms), 0,
     "onboard-lifecycle: verify every connected account this often (0: no periodic "
     "verification; onboardctl verify still works)"},
    {"verify.repair", OB_CFG_BOOL, "false", 0, 0, OFF(verify_repair), 0,
     "the periodic verification repairs the drift it finds (sends the account back through "
     "the stage that fixes it)"},
    {"verify.max.per.round", OB_CFG_INT, "1000", 1, 1000000, OFF(verify_max_per_round), 0,
     "verifications sent per round, the stalest accounts first (a round every "
     "verify.interval, at most every minute); "
     "with the verify workers' inflight.max and their own rate limits, what bounds "
     "verification's load"},
    {"lifecycle.lease.ttl", OB_CFG_MS, "30s", 1000, 600000, OFF(lifecycle_lease_ttl_ms), 0,
     "onboard-lifecycle: one replica works at a time under a lease in Redis of this TTL "
     "(renewed at a third of it); a standby takes over this long after the holder died"},
    {"lag.interval", OB_CFG_MS, "10s", 1000, 3600000, OFF(lag_interval_ms), 0,
     "onboard-lag-exporter: read every group's committed offsets and every partition's end "
     "from the brokers this often"},
    {"lag.cluster.name", OB_CFG_STR, "kafka", 0, 0, OFF(lag_cluster_name), 0,
     "onboard-lag-exporter: the cluster_name label of its series (kafka-lag-exporter's)"},
    {"instance.id", OB_CFG_STR, "", 0, 0, OFF(instance_id), 0,
     "a stable name of this replica (a StatefulSet pod's name): static group membership "
     "(group.instance.id) and a transactional.id that aborts what its predecessor left open; "
     "empty: a dynamic member with a random transactional.id"},
    {"session.keys", OB_CFG_STR, "", 0, 0, OFF(session_keys), 1,
     "ID:BASE64[,ID:BASE64...] (32-byte keys): a stage seals the account's assumed-role "
     "session for the next stage under the first key (every key opens), so one AssumeRole "
     "serves the account's stages; empty: each stage assumes the role itself"},
    {"aws.rate.limits", OB_CFG_STR, "sts.AssumeRole=500", 0, 0, OFF(rate_limits), 0,
     "fleet-wide request rates per AWS API shared through Redis, API=RATE[/BURST] by commas; "
     "throttling halves an API's rate for every replica, which then climbs back"},
};
const size_t ob_config_table_len = sizeof(ob_config_table) / sizeof(ob_config_table[0]);

static const char *env_default(const char *name, void *ctx)
{
    return getenv(name);
}

ob_err_t ob_cfg_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) {
            *out = 1;
            return OB_OK;
        }
        if (!strcasecmp(s, no[i])) {
            *out = 0;
            return OB_OK;
        }
    }
    return OB_ERR_PARSE;
}

/* Parse "<integer><unit>" with units from the given table. */
static ob_err_t parse_scaled(const char *s, const char *const *units, const long long *mult,
                             size_t nunits, long long *out)
{
    errno = 0;
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return OB_ERR_PARSE;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE)
        return OB_ERR_PARSE;
    while (isspace((unsigned char)*end))
        end++;
    if (*end == '\0') {
        *out = v;
        return OB_OK;
    }
    for (size_t i = 0; i < nunits; i++) {
        if (!strcasecmp(end, units[i])) {
            if (v > LLONG_MAX / mult[i])
                return OB_ERR_PARSE;
            *out = v * mult[i];
            return OB_OK;
        }
    }
    return OB_ERR_PARSE;
}

ob_err_t ob_cfg_parse_ms(const char *s, long long *out)
{
    static const char *const units[] = {"ms", "s", "m", "h"};
    static const long long mult[] = {1, 1000, 60000, 3600000};
    return parse_scaled(s, units, mult, 4, out);
}

ob_err_t ob_cfg_parse_size(const char *s, long long *out)
{
    static const char *const units[] = {"b", "k", "kb", "kib", "m", "mb", "mib", "g", "gb", "gib"};
    static const long long mult[] = {1,       1024,    1024,         1024,         1048576,
                                     1048576, 1048576, 1073741824LL, 1073741824LL, 1073741824LL};
    return parse_scaled(s, units, mult, 10, out);
}

static ob_err_t set_value(const ob_cfg_def_t *d, void *target, const char *value,
                          const char *source, char *errstr, size_t errstr_size)
{
    char *field = (char *)target + d->offset;
    long long v = 0;
    ob_err_t err = OB_OK;
    switch (d->type) {
    case OB_CFG_STR: {
        char *copy = ob_strdup(value);
        if (!copy)
            return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        free(*(char **)field);
        *(char **)field = copy;
        return OB_OK;
    }
    case OB_CFG_BOOL: {
        int b;
        if (ob_cfg_parse_bool(value, &b) != OB_OK)
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "%s (from %s): expected true or false, got \"%.64s\"", d->name, source,
                           d->secret ? "***" : value);
        *(int *)field = b;
        return OB_OK;
    }
    case OB_CFG_INT:
        err = parse_scaled(value, NULL, NULL, 0, &v);
        break;
    case OB_CFG_MS:
        err = ob_cfg_parse_ms(value, &v);
        break;
    case OB_CFG_SIZE:
        err = ob_cfg_parse_size(value, &v);
        break;
    }
    if (err != OB_OK)
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                       "%s (from %s): cannot read \"%.64s\" as %s", d->name, source,
                       d->secret ? "***" : value,
                       d->type == OB_CFG_MS     ? "a duration (e.g. 250ms, 30s, 5m)"
                       : d->type == OB_CFG_SIZE ? "a size (e.g. 512k, 8M)"
                                                : "an integer");
    if (v < d->min || v > d->max)
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                       "%s (from %s): %lld is out of bounds [%lld, %lld]", d->name, source, v,
                       d->min, d->max);
    *(long long *)field = v;
    return OB_OK;
}

ob_err_t ob_cfg_kv_set(ob_cfg_kv_t *kv, const char *key, const char *value)
{
    for (size_t i = 0; i < kv->n; i++) {
        if (!strcmp(kv->keys[i], key)) {
            char *v = ob_strdup(value);
            if (!v)
                return OB_ERR_NOMEM;
            free(kv->values[i]);
            kv->values[i] = v;
            return OB_OK;
        }
    }
    char **k = ob_realloc(kv->keys, (kv->n + 1) * sizeof(char *));
    if (!k)
        return OB_ERR_NOMEM;
    kv->keys = k;
    char **v = ob_realloc(kv->values, (kv->n + 1) * sizeof(char *));
    if (!v)
        return OB_ERR_NOMEM;
    kv->values = v;
    kv->keys[kv->n] = ob_strdup(key);
    kv->values[kv->n] = ob_strdup(value);
    if (!kv->keys[kv->n] || !kv->values[kv->n]) {
        free(kv->keys[kv->n]);
        free(kv->values[kv->n]);
        return OB_ERR_NOMEM;
    }
    kv->n++;
    return OB_OK;
}

const char *ob_cfg_kv_get(const ob_cfg_kv_t *kv, const char *key)
{
    for (size_t i = 0; i < kv->n; i++)
        if (!strcmp(kv->keys[i], key))
            return kv->values[i];
    return NULL;
}

void ob_cfg_kv_free(ob_cfg_kv_t *kv)
{
    for (size_t i = 0; i < kv->n; i++) {
        free(kv->keys[i]);
        free(kv->values[i]);
    }
    free(kv->keys);
    free(kv->values);
    memset(kv, 0, sizeof(*kv));
}

static const ob_cfg_def_t *find_def(const ob_cfg_def_t *table, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(table[i].name, name))
            return &table[i];
    return NULL;
}

static ob_err_t load_file(const ob_cfg_def_t *table, size_t n, void *target, const char *file,
                          ob_cfg_kv_t *kafka, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "cannot open config file %s: %s", file,
                       strerror(errno));
    char line[4096];
    int lineno = 0;
    ob_err_t err = OB_OK;
    while (err == OB_OK && fgets(line, sizeof(line), f)) {
        lineno++;
        char source[512];
        snprintf(source, sizeof(source), "%s:%d", file, lineno);
        if (!strchr(line, '\n') && !feof(f)) {
            err = ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "%s: line longer than %zu bytes",
                          source, sizeof(line) - 2);
            break;
        }
        char *s = ob_str_trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            err = ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "%s: expected key = value", source);
            break;
        }
        *eq = '\0';
        char *key = ob_str_trim(s), *value = ob_str_trim(eq + 1);
        if (!strncmp(key, "kafka.", 6) && kafka) {
            if (ob_cfg_kv_set(kafka, key + 6, value) != OB_OK)
                err = ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
            continue;
        }
        const ob_cfg_def_t *d = find_def(table, n, key);
        if (!d) {
            err = ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "%s: unknown setting \"%.128s\"",
                          source, key);
            break;
        }
        err = set_value(d, target, value, source, errstr, errstr_size);
    }
    fclose(f);
    return err;
}

static void env_name(const char *name, char *out, size_t outsz)
{
    size_t j = 0;
    const char *pre = "OB_";
    for (; *pre && j + 1 < outsz; pre++)
        out[j++] = *pre;
    for (const char *p = name; *p && j + 1 < outsz; p++)
        out[j++] = (*p == '.' || *p == '-') ? '_' : (char)toupper((unsigned char)*p);
    out[j] = '\0';
}

extern char **environ;

ob_err_t ob_cfg_load(const ob_cfg_def_t *table, size_t n, void *target, const char *file,
                     ob_getenv_fn getenv_fn, void *env_ctx, ob_cfg_kv_t *kafka, char *errstr,
                     size_t errstr_size)
{
    if (!getenv_fn)
        getenv_fn = env_default;
    for (size_t i = 0; i < n; i++) {
        char src[160];
        snprintf(src, sizeof(src), "default of %s", table[i].name);
        ob_err_t err = set_value(&table[i], target, table[i].defval ? table[i].defval : "", src,
                                 errstr, errstr_size);
        if (err != OB_OK)
            return err;
    }
    if (file && *file) {
        ob_err_t err = load_file(table, n, target, file, kafka, errstr, errstr_size);
        if (err != OB_OK)
            return err;
    }
    for (size_t i = 0; i < n; i++) {
        char name[160];
        env_name(table[i].name, name, sizeof(name));
        const char *v = getenv_fn(name, env_ctx);
        if (!v)
            continue;
        ob_err_t err = set_value(&table[i], target, v, name, errstr, errstr_size);
        if (err != OB_OK)
            return err;
    }
    /* kafka.* from the environment: OB_KAFKA_<PROPERTY> with '_' read as '.'.
     * Only the real process environment can be listed, so an injected
     * environment (tests) carries no passthrough keys. */
    if (kafka && getenv_fn == env_default) {
        for (char **e = environ; e && *e; e++) {
            if (strncmp(*e, "OB_KAFKA_", 9) != 0)
                continue;
            const char *eq = strchr(*e, '=');
            char key[256];
            size_t len = eq ? (size_t)(eq - (*e + 9)) : 0;
            /* An empty value is unset (compose and Helm pass unset variables as ""). */
            if (len == 0 || len >= sizeof(key) || !eq[1])
                continue;
            for (size_t i = 0; i < len; i++) {
                char c = (*e)[9 + i];
                key[i] = c == '_' ? '.' : (char)tolower((unsigned char)c);
            }
            key[len] = '\0';
            if (ob_cfg_kv_set(kafka, key, eq + 1) != OB_OK)
                return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        }
    }
    return OB_OK;
}

void ob_cfg_free(const ob_cfg_def_t *table, size_t n, void *target)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].type == OB_CFG_STR) {
            char **p = (char **)((char *)target + table[i].offset);
            free(*p);
            *p = NULL;
        }
    }
}

ob_err_t ob_config_load(ob_config_t *cfg, const char *file, ob_getenv_fn getenv_fn, void *env_ctx,
                        char *errstr, size_t errstr_size)
{
    memset(cfg, 0, sizeof(*cfg));
    if (!getenv_fn)
        getenv_fn = env_default;
    if (!file)
        file = getenv_fn("OB_CONFIG_FILE", env_ctx);
    ob_err_t err = ob_cfg_load(ob_config_table, ob_config_table_len, cfg, file, getenv_fn, env_ctx,
                               &cfg->kafka, errstr, errstr_size);
    if (err == OB_OK && ob_log_level_parse(cfg->log_level) < 0)
        err = ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                      "log.level: \"%.32s\" is not one of debug, info, warn, error, off",
                      cfg->log_level);
    if (err != OB_OK)
        ob_config_free(cfg);
    return err;
}

void ob_config_free(ob_config_t *cfg)
{
    ob_cfg_free(ob_config_table, ob_config_table_len, cfg);
    ob_cfg_kv_free(&cfg->kafka);
}
