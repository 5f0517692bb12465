/*
 * ob_ratelimit: per-API token buckets in Redis with a local FIFO of waiters.
 *
 * Each limited API is an rl_api_t found through a small hash table (rebuilt
 * by configure). Everything that hands out tokens runs from the API's one
 * timer or from a Redis reply, never from acquire(): acquire only queues the
 * waiter and arms the timer at 0 ms. The timer first spends tokens leased
 * earlier, then starts a fetch (at most one in flight). A reply adds what
 * Redis granted to the lease and spends it on the FIFO, then arms the timer
 * again if waiters remain (0 ms if Redis has more tokens, else the wait Redis
 * reported). A Redis failure, or an outage while the connection is down,
 * takes the tokens from a local bucket at the base rate instead.
 *
 * Lifetimes: a Redis command holds a reference (refs) on its API. An API
 * that configure dropped is "removed": its waiters are released from its
 * timer and it is freed once no command, waiter or dispatch refers to it.
 * ob_ratelimit_free() drops waiters and timers at once and frees the rest
 * when the last command comes back (or is cancelled by ob_redis_free).
 */
#include "ob_ratelimit.h"

#include <ctype.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "ob_buf.h"
#include "ob_crypto.h"
#include "ob_hash.h"
#include "ob_log.h"

#define RL_KEY_TTL_MS   600000L /* idle buckets disappear after 10 minutes */
#define RL_THROTTLE_WIN 1000    /* ms: one decrease per window (also in SCRIPT) */
#define RL_MAX_WAIT_MS  1000
#define RL_MAX_NAME     200

/*
 * KEYS[1] the bucket; ARGV: mode ("take" or "throttle"), base rate/s, burst,
 * want, min_fraction, recover_ms, key ttl_ms. The rate is base * frac; frac
 * climbs linearly from min_fraction to 1 in recover_ms, so refilling over dt
 * integrates a ramp that may reach 1 part-way. Returns {granted (applied, in
 * throttle mode), ms until the next whole token, current rate * 1000}.
 */
static const char SCRIPT[] =
    "local base = tonumber(ARGV[2]) "
    "local burst = tonumber(ARGV[3]) "
    "local want = tonumber(ARGV[4]) "
    "local minf = tonumber(ARGV[5]) "
    "local rec = tonumber(ARGV[6]) "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 "
    "local h = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'frac', 'last_throttle') "
    "local tokens = tonumber(h[1]) "
    "local ts = tonumber(h[2]) "
    "local f = tonumber(h[3]) or 1 "
    "local lt = tonumber(h[4]) or 0 "
    "if tokens == nil or ts == nil then tokens = burst ts = now end "
    "if f > 1 then f = 1 end "
    "if f < minf then f = minf end "
    "local dt = now - ts "
    "if dt < 0 then dt = 0 end "
    "local area = dt "
    "if f < 1 then "
    "  local s = (1 - minf) / rec "
    "  local tr = (1 - f) / s "
    "  if dt <= tr then area = f * dt + s * dt * dt / 2 f = f + s * dt "
    "  else area = f * tr + s * tr * tr / 2 + (dt - tr) f = 1 end "
    "end "
    "tokens = math.min(burst, tokens + base * area / 1000) "
    "local granted = 0 "
    "if ARGV[1] == 'throttle' then "
    "  if now - lt >= 1000 then "
    "    f = math.max(minf, f / 2) lt = now tokens = 0 granted = 1 "
    "  end "
    "else "
    "  granted = math.max(0, math.min(want, math.floor(tokens))) "
    "  tokens = tokens - granted "
    "end "
    "local rate = base * f "
    "local wait = 0 "
    "if tokens < 1 then wait = math.ceil((1 - tokens) * 1000 / rate) end "
    "redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now, 'frac', f, 'rate', rate, "
    "  'base', base, 'burst', burst, 'last_throttle', lt) "
    "redis.call('PEXPIRE', KEYS[1], ARGV[7]) "
    "return {granted, wait, math.floor(rate * 1000 + 0.5)}";

typedef struct rl_api_s rl_api_t;

struct ob_ratelimit_wait_s {
    rl_api_t *api;
    ob_ratelimit_cb *cb;
    void *arg;
    uint64_t epoch; /* api->epoch when queued: differs at grant time if it waited */
    struct ob_ratelimit_wait_s *prev, *next;
};

struct rl_api_s {
    ob_ratelimit_t *rl;
    char *name;
    char *key;
    uint32_t hash;
    double base, burst;
    char base_s[32], burst_s[32]; /* script arguments */
    rl_api_t *hnext;              /* hash chain (live APIs only) */
    rl_api_t *next;               /* every API, live or removed */
    ob_timer_t *timer;            /* spend the lease / fetch / release after removal */
    ob_ratelimit_wait_t *head, *tail;
    size_t nwaiters;
    uint64_t epoch;    /* bumped whenever the waiters must wait for a refill */
    int fetching;      /* a take command is in flight */
    int fetch_eval;    /* ... and it is the EVAL sent after NOSCRIPT */
    long want;         /* what that command asked for */
    int throttling;    /* a throttle command is in flight */
    int throttle_eval; /* ... sent as EVAL after NOSCRIPT */
    uint64_t throttle_sent;
    uint64_t throttle_quiet_until; /* a decrease we sent was applied: no use sending more */
    int refs;                      /* Redis commands whose callback refers to us */
    int dispatching;               /* user callbacks are running from this API */
    int removed;                   /* configure dropped the limit */
    int mark;                      /* scratch for configure */
    long leased;                   /* tokens granted to us and not yet handed out */
    uint64_t lease_until;
    double cur_rate; /* tokens/s as last seen from Redis, 0 unknown */
    double ltokens;  /* the local bucket used while Redis is away */
    uint64_t lts;
};

struct ob_ratelimit_s {
    ob_loop_t *loop;
    ob_redis_t *redis; /* NULL: local buckets only */
    char *prefix;
    long lease_ms;
    char minf_s[32], rec_s[32], ttl_s[24];
    char sha[41];
    rl_api_t **table; /* live APIs by name */
    size_t nbuckets;  /* a power of two, or 0 */
    rl_api_t *all;
    ob_ratelimit_stats_t stats;
    int outage; /* the last Redis command failed */
    int closing;
};

static uint32_t name_hash(const char *s)
{
    return (uint32_t)ob_hash_str(s);
}

static rl_api_t *lookup_exact(const ob_ratelimit_t *rl, const char *name)
{
    uint32_t h = name_hash(name);
    for (rl_api_t *a = rl->table[h & (rl->nbuckets - 1)]; a; a = a->hnext)
        if (a->hash == h && strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

/* The API's own limit, else its service's ("organizations.*": one rate
 * every operation of the service shares, as AWS's quota for it is one). */
static rl_api_t *lookup(const ob_ratelimit_t *rl, const char *name)
{
    if (!rl || !name || rl->nbuckets == 0)
        return NULL;
    rl_api_t *a = lookup_exact(rl, name);
    const char *dot = strchr(name, '.');
    if (a || !dot || !dot[1] || dot[1] == '*' || (size_t)(dot - name) > RL_MAX_NAME - 2)
        return a;
    char svc[RL_MAX_NAME + 1];
    snprintf(svc, sizeof(svc), "%.*s.*", (int)(dot - name), name);
    return lookup_exact(rl, svc);
}

/* ---- lifetimes ---- */

static void rl_free_if_done(ob_ratelimit_t *rl)
{
    if (rl->closing && !rl->all) {
        free(rl->table);
        free(rl->prefix);
        free(rl);
    }
}

static void api_destroy(rl_api_t *a)
{
    ob_ratelimit_t *rl = a->rl;
    for (rl_api_t **p = &rl->all; *p; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            break;
        }
    ob_timer_free(a->timer);
    free(a->name);
    free(a->key);
    free(a);
}

/* Free a removed API (or any, while closing) once nothing refers to it. */
static void api_maybe_free(rl_api_t *a)
{
    ob_ratelimit_t *rl = a->rl;
    if (!(a->removed || rl->closing) || a->refs || a->nwaiters || a->dispatching)
        return;
    api_destroy(a);
    rl_free_if_done(rl);
}

/* ---- waiters ---- */

static void wait_unlink(rl_api_t *a, ob_ratelimit_wait_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        a->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        a->tail = w->prev;
    w->prev = w->next = NULL;
    a->nwaiters--;
}

/* Hand one token to the oldest waiter. The caller holds a->dispatching. */
static void grant_one(rl_api_t *a)
{
    ob_ratelimit_wait_t *w = a->head;
    ob_ratelimit_t *rl = a->rl;
    wait_unlink(a, w);
    rl->stats.granted++;
    if (w->epoch != a->epoch)
        rl->stats.waited++;
    ob_ratelimit_cb *cb = w->cb;
    void *arg = w->arg;
    free(w);
    if (cb)
        cb(arg);
}

static void spend_lease(rl_api_t *a)
{
    if (a->leased > 0 && ob_loop_now(a->rl->loop) >= a->lease_until)
        a->leased = 0;
    a->dispatching++;
    /* Callbacks may queue more waiters (served here too) or drop the lease. */
    while (a->leased > 0 && a->head) {
        a->leased--;
        grant_one(a);
    }
    a->dispatching--;
}

/* The API lost its limit: everyone waiting may go. */
static void release_all(rl_api_t *a)
{
    a->dispatching++;
    while (a->head)
        grant_one(a);
    a->dispatching--;
    api_maybe_free(a);
}

/* ---- Redis health ---- */

static void redis_failed(ob_ratelimit_t *rl, const char *why)
{
    rl->stats.redis_errors++;
    if (!rl->outage) {
        rl->outage = 1;
        ob_logf(OB_LOG_WARN, "ratelimit",
                "Redis failed (%s): rate limits fall back to local buckets at the base rates "
                "until Redis answers again",
                why);
    }
}

static void redis_ok(ob_ratelimit_t *rl)
{
    if (rl->outage) {
        rl->outage = 0;
        ob_logf(OB_LOG_INFO, "ratelimit", "Redis answers again: fleet-wide rate limits restored");
    }
}

static const char *failure_text(ob_err_t err, const redisReply *reply)
{
    if (err != OB_OK)
        return ob_err2str(err);
    const char *e = ob_redis_reply_error(reply);
    return e ? e : "unexpected reply to the rate limit script";
}

static int is_noscript(ob_err_t err, const redisReply *reply)
{
    const char *e = err == OB_OK ? ob_redis_reply_error(reply) : NULL;
    return e && strncmp(e, "NOSCRIPT", 8) == 0;
}

/* {granted, wait_ms, rate x1000} */
static int parse_reply(ob_err_t err, const redisReply *reply, long *granted, long *wait_ms,
                       double *rate)
{
    if (err != OB_OK || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return 0;
    for (size_t i = 0; i < 3; i++)
        if (!reply->element[i] || reply->element[i]->type != REDIS_REPLY_INTEGER)
            return 0;
    *granted = (long)reply->element[0]->integer;
    *wait_ms = (long)reply->element[1]->integer;
    *rate = (double)reply->element[2]->integer / 1000.0;
    return 1;
}

static ob_err_t send_script(rl_api_t *a, ob_redis_cb *cb, const char *mode, long want, int eval)
{
    ob_ratelimit_t *rl = a->rl;
    char want_s[24];
    snprintf(want_s, sizeof(want_s), "%ld", want);
    const char *argv[] = {eval ? "EVAL" : "EVALSHA",
                          eval ? SCRIPT : rl->sha,
                          "1",
                          a->key,
                          mode,
                          a->base_s,
                          a->burst_s,
                          want_s,
                          rl->minf_s,
                          rl->rec_s,
                          rl->ttl_s};
    return ob_redis_command_argv(rl->redis, cb, a, (int)(sizeof(argv) / sizeof(argv[0])), argv,
                                 NULL);
}

/* ---- fetching ---- */

/* Tokens arrived (from Redis or the local bucket): hand them out, then decide
 * when to look again. */
static void after_fetch(rl_api_t *a, long granted, long wait_ms)
{
    ob_ratelimit_t *rl = a->rl;
    if (granted > 0) {
        a->leased += granted;
        a->lease_until = ob_loop_now(rl->loop) + (uint64_t)rl->lease_ms;
    }
    spend_lease(a);
    if (a->removed) { /* a callback reconfigured; its timer releases the rest */
        api_maybe_free(a);
        return;
    }
    if (!a->head)
        return;
    if (granted > 0 && wait_ms <= 0) {
        ob_timer_start(a->timer, 0); /* the bucket has more: ask again right away */
        return;
    }
    a->epoch++;
    if (wait_ms < 1)
        wait_ms = 1;
    if (wait_ms > RL_MAX_WAIT_MS)
        wait_ms = RL_MAX_WAIT_MS;
    ob_timer_start(a->timer, (uint64_t)wait_ms);
}

static void local_refill(rl_api_t *a, uint64_t now)
{
    if (now > a->lts) {
        a->ltokens += (double)(now - a->lts) * a->base / 1000.0;
        if (a->ltokens > a->burst)
            a->ltokens = a->burst;
    }
    a->lts = now;
}

/* Fail open: the local bucket at the base rate serves every waiter it can. */
static void local_fetch(rl_api_t *a)
{
    local_refill(a, ob_loop_now(a->rl->loop));
    double avail = floor(a->ltokens);
    long granted = avail < (double)a->nwaiters ? (long)avail : (long)a->nwaiters;
    if (granted < 0)
        granted = 0;
    a->ltokens -= (double)granted;
    long wait_ms = a->ltokens >= 1 ? 0 : (long)ceil((1 - a->ltokens) * 1000.0 / a->base);
    after_fetch(a, granted, wait_ms);
}

static void on_fetch(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    rl_api_t *a = arg;
    ob_ratelimit_t *rl = a->rl;
    a->refs--;
    if (rl->closing || a->removed) {
        a->fetching = 0;
        api_maybe_free(a);
        return;
    }
    if (is_noscript(err, reply) && !a->fetch_eval) {
        /* The server lost its script cache (restart, SCRIPT FLUSH): EVAL loads it. */
        a->fetch_eval = 1;
        if (send_script(a, on_fetch, "take", a->want, 1) == OB_OK) {
            a->refs++;
            return;
        }
    }
    a->fetching = 0;
    long granted, wait_ms;
    double rate;
    if (parse_reply(err, reply, &granted, &wait_ms, &rate)) {
        redis_ok(rl);
        a->cur_rate = rate;
        if (granted > a->want)
            granted = a->want;
        after_fetch(a, granted, wait_ms);
    } else {
        redis_failed(rl, failure_text(err, reply));
        local_fetch(a);
    }
}

static void start_fetch(rl_api_t *a)
{
    ob_ratelimit_t *rl = a->rl;
    if (!rl->redis || (rl->outage && !ob_redis_connected(rl->redis))) {
        local_fetch(a);
        return;
    }
    /* A 100 ms share of the rate, so that one replica does not take the burst. */
    double rate = a->cur_rate > 0 ? a->cur_rate : a->base;
    double share = ceil(rate * 0.1);
    long want = share < 1 ? 1 : share < (double)a->nwaiters ? (long)share : (long)a->nwaiters;
    a->want = want;
    a->fetch_eval = 0;
    if (send_script(a, on_fetch, "take", want, 0) != OB_OK) {
        redis_failed(rl, "cannot queue the command");
        local_fetch(a);
        return;
    }
    a->fetching = 1;
    a->refs++;
    rl->stats.fetches++;
}

static void on_timer(ob_timer_t *t, void *arg)
{
    rl_api_t *a = arg;
    if (a->removed) {
        release_all(a);
        return;
    }
    spend_lease(a);
    if (a->removed) {
        api_maybe_free(a);
        return;
    }
    if (a->head && !a->fetching)
        start_fetch(a);
}

/* ---- throttling ---- */

static void on_throttle(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    rl_api_t *a = arg;
    ob_ratelimit_t *rl = a->rl;
    a->refs--;
    if (rl->closing || a->removed) {
        a->throttling = 0;
        api_maybe_free(a);
        return;
    }
    if (is_noscript(err, reply) && !a->throttle_eval) {
        a->throttle_eval = 1;
        if (send_script(a, on_throttle, "throttle", 0, 1) == OB_OK) {
            a->refs++;
            return;
        }
    }
    a->throttling = 0;
    long applied, wait_ms;
    double rate;
    if (!parse_reply(err, reply, &applied, &wait_ms, &rate)) {
        redis_failed(rl, failure_text(err, reply));
        return;
    }
    redis_ok(rl);
    a->cur_rate = rate;
    if (applied) {
        /* The window started no earlier than our send: later reports in it are void. */
        a->throttle_quiet_until = a->throttle_sent + RL_THROTTLE_WIN;
        a->leased = 0;
        ob_logf(OB_LOG_INFO, "ratelimit", "%s throttled by AWS: fleet-wide rate now %.3g/s",
                a->name, rate);
    }
}

void ob_ratelimit_throttled(ob_ratelimit_t *rl, const char *api)
{
    rl_api_t *a = lookup(rl, api);
    if (!a)
        return;
    rl->stats.throttles++;
    a->leased = 0; /* fetched at the old rate */
    if (!rl->redis || a->throttling)
        return;
    uint64_t now = ob_loop_now(rl->loop);
    if (now < a->throttle_quiet_until)
        return;
    if (rl->outage && !ob_redis_connected(rl->redis))
        return;
    a->throttle_eval = 0;
    a->throttle_sent = now;
    if (send_script(a, on_throttle, "throttle", 0, 0) != OB_OK) {
        redis_failed(rl, "cannot queue the command");
        return;
    }
    a->throttling = 1;
    a->refs++;
}

/* ---- public API ---- */

ob_ratelimit_t *ob_ratelimit_new(ob_loop_t *loop, ob_redis_t *redis, const ob_ratelimit_opts_t *o,
                                 char *errstr, size_t errstr_size)
{
    ob_ratelimit_opts_t defaults = {0};
    if (!o)
        o = &defaults;
    if (!loop) {
        ob_errf(errstr, errstr_size, OB_ERR_INVALID_ARG, "rate limiter: no event loop");
        return NULL;
    }
    double minf = o->min_fraction == 0 ? 0.05 : o->min_fraction;
    double rec = o->recover_s == 0 ? 60 : o->recover_s;
    long lease = o->lease_ms == 0 ? 1000 : o->lease_ms;
    if (!(minf > 0 && minf <= 1)) {
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                "rate limiter: min_fraction %g is not in (0, 1]", o->min_fraction);
        return NULL;
    }
    if (!(rec > 0 && rec < 1e9)) {
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                "rate limiter: recover_s %g is not a positive number of seconds", o->recover_s);
        return NULL;
    }
    if (lease < 0) {
        ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "rate limiter: lease_ms %ld is negative",
                o->lease_ms);
        return NULL;
    }
    ob_ratelimit_t *rl = ob_calloc(1, sizeof(*rl));
    if (!rl || !(rl->prefix = ob_strdup(o->key_prefix ? o->key_prefix : "ob:rl:"))) {
        free(rl);
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    rl->loop = loop;
    rl->redis = redis;
    rl->lease_ms = lease;
    snprintf(rl->minf_s, sizeof(rl->minf_s), "%.17g", minf);
    snprintf(rl->rec_s, sizeof(rl->rec_s), "%.17g", rec * 1000.0);
    /* Keep a bucket at least as long as its recovery takes. */
    double ttl = rec * 2000.0 > (double)RL_KEY_TTL_MS ? rec * 2000.0 : (double)RL_KEY_TTL_MS;
    snprintf(rl->ttl_s, sizeof(rl->ttl_s), "%.0f", ttl);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(SCRIPT, strlen(SCRIPT), md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20) {
        free(rl->prefix);
        free(rl);
        ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "rate limiter: cannot compute SHA-1");
        return NULL;
    }
    ob_hex(md, mdlen, rl->sha);
    return rl;
}

void ob_ratelimit_free(ob_ratelimit_t *rl)
{
    if (!rl)
        return;
    rl->closing = 1;
    rl_api_t *next;
    for (rl_api_t *a = rl->all; a; a = next) {
        next = a->next;
        while (a->head) {
            ob_ratelimit_wait_t *w = a->head;
            wait_unlink(a, w);
            free(w);
        }
        ob_timer_free(a->timer);
        a->timer = NULL;
        if (a->refs == 0)
            api_destroy(a);
    }
    free(rl->table);
    rl->table = NULL;
    rl->nbuckets = 0;
    rl_free_if_done(rl);
}

/* ---- configuration ---- */

typedef struct rl_item_s {
    const char *name;
    double rate, burst;
    rl_api_t *api;
    int fresh; /* api was created by this configure */
} rl_item_t;

static int parse_number(char *s, double *out)
{
    s = ob_str_trim(s);
    if (!*s)
        return 0;
    char *end = NULL;
    double d = strtod(s, &end);
    if (end == s || *end || !isfinite(d))
        return 0;
    *out = d;
    return 1;
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RL_MAX_NAME)
        return 0;
    /* SERVICE.* : the whole service */
    if (n > 2 && !strcmp(s + n - 2, ".*"))
        n -= 2;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-:", s[i]))
            return 0;
    return 1;
}

/* Split and check the spec (in place, in buf) into items[]. */
static ob_err_t parse_spec(char *buf, rl_item_t *items, size_t *nitems, char *errstr,
                           size_t errstr_size)
{
    size_t n = 0;
    if (!*ob_str_trim(buf)) {
        *nitems = 0;
        return OB_OK;
    }
    char *p = buf;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        char *item = ob_str_trim(p);
        char shown[96];
        snprintf(shown, sizeof(shown), "%s", item);
        if (!*item)
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "rate limits: empty item (a doubled comma, or one at either end)");
        char *eq = strchr(item, '=');
        if (!eq)
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "rate limit \"%s\": expected API=RATE[/BURST]", shown);
        *eq = '\0';
        char *name = ob_str_trim(item);
        if (!valid_name(name))
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "rate limit \"%s\": the API name must be 1 to %d letters, digits, "
                           "'.', '_', '-' or ':' (or SERVICE.* for all of a service's calls)",
                           shown, RL_MAX_NAME);
        char *slash = strchr(eq + 1, '/');
        if (slash)
            *slash = '\0';
        double rate, burst;
        if (!parse_number(eq + 1, &rate) || rate <= 0)
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "rate limit \"%s\": the rate must be a number of calls per second "
                           "greater than 0",
                           shown);
        if (slash) {
            if (!parse_number(slash + 1, &burst) || burst < 1)
                return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                               "rate limit \"%s\": the burst must be a number of at least 1",
                               shown);
        } else {
            burst = rate > 1 ? rate : 1;
        }
        for (size_t i = 0; i < n; i++)
            if (strcmp(items[i].name, name) == 0)
                return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                               "rate limit \"%s\": API %s is listed twice", shown, name);
        items[n].name = name;
        items[n].rate = rate;
        items[n].burst = burst;
        n++;
        if (!comma)
            break;
        p = comma + 1;
    }
    *nitems = n;
    return OB_OK;
}

static rl_api_t *api_new(ob_ratelimit_t *rl, const char *name)
{
    rl_api_t *a = ob_calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->rl = rl;
    a->name = ob_strdup(name);
    size_t klen = strlen(rl->prefix) + strlen(name) + 3;
    a->key = ob_malloc(klen);
    a->timer = ob_timer_new(rl->loop, on_timer, a);
    if (!a->name || !a->key || !a->timer) {
        ob_timer_free(a->timer);
        free(a->name);
        free(a->key);
        free(a);
        return NULL;
    }
    snprintf(a->key, klen, "%s{%s}", rl->prefix, name);
    a->hash = name_hash(name);
    return a;
}

static void api_set_limit(rl_api_t *a, double rate, double burst, int fresh)
{
    if (fresh) {
        a->ltokens = burst;
        a->lts = ob_loop_now(a->rl->loop);
    } else if (a->cur_rate > 0 && a->base > 0) {
        a->cur_rate *= rate / a->base; /* Redis scales by the base too */
    }
    a->base = rate;
    a->burst = burst;
    if (a->ltokens > burst)
        a->ltokens = burst;
    snprintf(a->base_s, sizeof(a->base_s), "%.17g", rate);
    snprintf(a->burst_s, sizeof(a->burst_s), "%.17g", burst);
}

ob_err_t ob_ratelimit_configure(ob_ratelimit_t *rl, const char *spec, char *errstr,
                                size_t errstr_size)
{
    if (!spec)
        spec = "";
    size_t cap = 1;
    for (const char *s = spec; *s; s++)
        cap += *s == ',';
    char *buf = ob_strdup(spec);
    rl_item_t *items = ob_calloc(cap, sizeof(*items));
    if (!buf || !items) {
        free(buf);
        free(items);
        return ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
    }
    size_t n = 0;
    ob_err_t err = parse_spec(buf, items, &n, errstr, errstr_size);
    size_t nb = 0;
    rl_api_t **table = NULL;
    if (err == OB_OK && n > 0) {
        nb = 16;
        while (nb < 2 * n)
            nb *= 2;
        table = ob_calloc(nb, sizeof(*table));
        if (!table)
            err = ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
    }
    /* Allocate everything before changing anything. */
    for (size_t i = 0; err == OB_OK && i < n; i++) {
        items[i].api = rl->nbuckets ? lookup_exact(rl, items[i].name) : NULL;
        if (!items[i].api) {
            items[i].api = api_new(rl, items[i].name);
            items[i].fresh = 1;
            if (!items[i].api)
                err = ob_errf(errstr, errstr_size, OB_ERR_NOMEM, "out of memory");
        }
    }
    if (err != OB_OK) {
        for (size_t i = 0; i < n; i++)
            if (items[i].fresh && items[i].api) {
                ob_timer_free(items[i].api->timer);
                free(items[i].api->name);
                free(items[i].api->key);
                free(items[i].api);
            }
        free(table);
        free(items);
        free(buf);
        return err;
    }
    /* Commit: APIs not in the new spec lose their limit. */
    for (rl_api_t *a = rl->all; a; a = a->next)
        a->mark = 0;
    for (size_t i = 0; i < n; i++)
        items[i].api->mark = 1;
    rl_api_t *next;
    for (rl_api_t *a = rl->all; a; a = next) {
        next = a->next;
        if (a->mark || a->removed)
            continue;
        a->removed = 1;
        a->hnext = NULL;
        if (a->head)
            ob_timer_start(a->timer, 0);
        else
            ob_timer_stop(a->timer);
        api_maybe_free(a);
    }
    for (size_t i = 0; i < n; i++) {
        rl_api_t *a = items[i].api;
        api_set_limit(a, items[i].rate, items[i].burst, items[i].fresh);
        if (items[i].fresh) {
            a->next = rl->all;
            rl->all = a;
        }
        size_t b = a->hash & (nb - 1);
        a->hnext = table[b];
        table[b] = a;
    }
    free(rl->table);
    rl->table = table;
    rl->nbuckets = nb;
    free(items);
    free(buf);
    return OB_OK;
}

int ob_ratelimit_limited(const ob_ratelimit_t *rl, const char *api)
{
    return lookup(rl, api) != NULL;
}

ob_ratelimit_wait_t *ob_ratelimit_acquire(ob_ratelimit_t *rl, const char *api, ob_ratelimit_cb *cb,
                                          void *arg)
{
    rl_api_t *a = lookup(rl, api);
    if (!a)
        return NULL;
    ob_ratelimit_wait_t *w = ob_calloc(1, sizeof(*w));
    if (!w)
        return NULL; /* fail open */
    w->api = a;
    w->cb = cb;
    w->arg = arg;
    w->epoch = a->epoch;
    w->prev = a->tail;
    if (a->tail)
        a->tail->next = w;
    else
        a->head = w;
    a->tail = w;
    a->nwaiters++;
    /* Tokens are handed out from the loop, never from here. */
    if (!a->fetching && !ob_timer_active(a->timer))
        ob_timer_start(a->timer, 0);
    return w;
}

void ob_ratelimit_cancel(ob_ratelimit_wait_t *w)
{
    if (!w)
        return;
    rl_api_t *a = w->api;
    wait_unlink(a, w);
    free(w);
    api_maybe_free(a);
}

void ob_ratelimit_get_stats(const ob_ratelimit_t *rl, ob_ratelimit_stats_t *out)
{
    *out = rl->stats;
}

double ob_ratelimit_current(const ob_ratelimit_t *rl, const char *api)
{
    const rl_api_t *a = lookup(rl, api);
    return a ? a->cur_rate : 0;
}

static void *aws_acquire(void *ctx, const char *api, ob_aws_limiter_cb *cb, void *arg)
{
    return ob_ratelimit_acquire(ctx, api, cb, arg);
}

static void aws_cancel(void *ctx, void *wait)
{
    ob_ratelimit_cancel(wait);
}

static void aws_throttled(void *ctx, const char *api)
{
    ob_ratelimit_throttled(ctx, api);
}

ob_aws_limiter_t ob_ratelimit_aws_limiter(ob_ratelimit_t *rl)
{
    ob_aws_limiter_t l = {rl, aws_acquire, aws_cancel, aws_throttled};
    return l;
}
