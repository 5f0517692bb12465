/*
 * ob_lock: three small Lua scripts (acquire with fence, renew, release) and
 * a fenced state write. Scripts go with EVAL: they are a few hundred bytes and
 * Redis caches their compilation.
 */
#include "ob_lock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "ob_crypto.h"
#include "ob_log.h"
#include "ob_state.h"

/* The fence is the larger of the last one plus one and the server's clock in
 * microseconds: it never goes back, even on a replica promoted without the
 * last writes or after the keys are lost (a fence counter starting again at 1
 * would be below the fences of holders still at work, and their successors'
 * writes refused). Microseconds since 1970 stay exact in Lua's doubles
 * until 2255.
 *
 * On success: {fence, the account's state as HGETALL gives it} (what earlier
 * holders recorded: a redelivered message continues its count and its
 * stage's work, is told from another message of the same request, and a
 * request from a newer one). */
static const char ACQUIRE[] =
    "local won = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) "
    "if not won and ARGV[3] ~= '' then "
    "  local cur = redis.call('GET', KEYS[1]) "
    "  if cur and string.sub(cur, 1, string.len(ARGV[3])) == ARGV[3] then "
    "    won = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "  end "
    "end "
    "if won then "
    "  local t = redis.call('TIME') "
    "  local f = math.max(tonumber(redis.call('GET', KEYS[2]) or '0') + 1, "
    "                     tonumber(t[1]) * 1000000 + tonumber(t[2])) "
    "  redis.call('SET', KEYS[2], string.format('%.0f', f)) "
    "  return {f, redis.call('HGETALL', KEYS[3])} "
    "end "
    "return {-redis.call('PTTL', KEYS[1])}";
static const char RENEW[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                            "  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
                            "end return 0";
static const char RELEASE[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                              "  return redis.call('DEL', KEYS[1]) "
                              "end return 0";
/* A fenced write: KEYS[1] the record, KEYS[2] its history; ARGV[1] the
 * fence, ARGV[2] an entry for the history ("" : none), then the pairs. */
#define HISTORY_PUSH                                                                               \
    "if ARGV[2] ~= '' then "                                                                       \
    "  redis.call('LPUSH', KEYS[2], ARGV[2]) "                                                     \
    "  redis.call('LTRIM', KEYS[2], 0, " OB_STR(OB_STATE_HISTORY_KEPT) " - 1) "                    \
                                                                       "end "
#define OB_STR_(x) #x
#define OB_STR(x)  OB_STR_(x)
static const char WRITE[] =
    "local f = tonumber(redis.call('HGET', KEYS[1], '" OB_ST_FENCE "') or '0') "
    "if tonumber(ARGV[1]) < f then return -1 end " HISTORY_PUSH
    "redis.call('HSET', KEYS[1], '" OB_ST_FENCE "', ARGV[1], unpack(ARGV, 3)) "
    "return 1";
/* A fenced write that replaces the record: ARGV[3] is how many names follow
 * that are kept (the account's own fields); every other field goes, then the
 * pairs after them are set. */
static const char REPLACE[] =
    "local f = tonumber(redis.call('HGET', KEYS[1], '" OB_ST_FENCE "') or '0') "
    "if tonumber(ARGV[1]) < f then return -1 end " HISTORY_PUSH "local nk = tonumber(ARGV[3]) "
    "local keep = {['" OB_ST_FENCE "'] = true} "
    "for i = 4, 3 + nk do keep[ARGV[i]] = true end "
    "for _, k in ipairs(redis.call('HKEYS', KEYS[1])) do "
    "  if not keep[k] then redis.call('HDEL', KEYS[1], k) end "
    "end "
    "redis.call('HSET', KEYS[1], '" OB_ST_FENCE "', ARGV[1], unpack(ARGV, 4 + nk)) "
    "return 1";

struct ob_lock_s {
    ob_redis_t *r;
    ob_loop_t *loop;
    char *lock_key; /* in text, sized to it: thousands of locks are held at once */
    char **prior;   /* name, value, name, value... of the state (malloc'd) */
    size_t nprior;
    int prior_attempts;
    char *token; /* [owner "|"] 32 hex, in text */
    long ttl_ms;
    uint64_t fence;
    int held;
    int abandoned; /* released by the owner while a command is in flight */
    int inflight;  /* commands whose callback still refers to us */
    ob_timer_t renew;
    ob_lock_cb *cb;
    void *arg;
    char text[]; /* lock_key and token, one allocation with the lock */
};

static void prior_free(ob_lock_t *l)
{
    for (size_t i = 0; i < l->nprior; i++)
        free(l->prior[i]);
    free(l->prior);
    l->prior = NULL;
    l->nprior = 0;
}

void ob_lock_prior_drop(ob_lock_t *l)
{
    prior_free(l);
    l->prior_attempts = 0;
}

static void lock_free_if_idle(ob_lock_t *l)
{
    if (l->abandoned && l->inflight == 0) {
        ob_timer_stop(&l->renew);
        prior_free(l);
        free(l);
    }
}

/* Keep the state HGETALL returned (pairs of strings). */
static void prior_keep(ob_lock_t *l, const redisReply *all)
{
    prior_free(l);
    if (!all || all->type != REDIS_REPLY_ARRAY || all->elements < 2)
        return;
    l->prior = ob_calloc(all->elements, sizeof(*l->prior));
    if (!l->prior)
        return;
    for (size_t i = 0; i + 1 < all->elements; i += 2) {
        const redisReply *k = all->element[i], *v = all->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        l->prior[l->nprior] = ob_strdup(k->str);
        l->prior[l->nprior + 1] = ob_strdup(v->str);
        if (!l->prior[l->nprior] || !l->prior[l->nprior + 1]) {
            free(l->prior[l->nprior]);
            free(l->prior[l->nprior + 1]);
            break;
        }
        l->nprior += 2;
    }
    l->prior_attempts = atoi(ob_lock_prior_get(l, OB_ST_STAGE_ATTEMPTS));
}

static void send_release(ob_lock_t *l);

static long long reply_int(const redisReply *r)
{
    if (!r)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return atoll(r->str);
    return 0;
}

static void on_acquire(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    ob_lock_t *l = arg;
    l->inflight--;
    int ok = err == OB_OK && reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1;
    long long first = ok ? reply_int(reply->element[0]) : 0;
    if (l->abandoned) {
        /* The owner gave up; if we won the lock anyway, give it back. */
        if (ok && first > 0)
            send_release(l);
        lock_free_if_idle(l);
        return;
    }
    if (!ok) {
        l->cb(l, OB_LOCK_ERROR, 0, 0, err != OB_OK ? err : OB_ERR_REDIS, l->arg);
        return;
    }
    if (first > 0) {
        l->held = 1;
        l->fence = (uint64_t)first;
        prior_keep(l, reply->elements >= 2 ? reply->element[1] : NULL);
        ob_timer_start(&l->renew, (uint64_t)(l->ttl_ms / 3));
        l->cb(l, OB_LOCK_ACQUIRED, l->fence, 0, OB_OK, l->arg);
    } else {
        long left = (long)-first;
        l->cb(l, OB_LOCK_BUSY, 0, left > 0 ? left : 0, OB_OK, l->arg);
    }
}

static void on_renew(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    ob_lock_t *l = arg;
    l->inflight--;
    if (l->abandoned) {
        lock_free_if_idle(l);
        return;
    }
    if (err != OB_OK) {
        /* Redis unreachable: try again soon; the TTL still covers us. */
        ob_timer_start(&l->renew, (uint64_t)(l->ttl_ms / 6 > 0 ? l->ttl_ms / 6 : 1));
        return;
    }
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
        ob_timer_start(&l->renew, (uint64_t)(l->ttl_ms / 3));
        return;
    }
    l->held = 0;
    l->cb(l, OB_LOCK_LOST, l->fence, 0, OB_OK, l->arg);
}

static void renew_fired(ob_timer_t *t, void *arg)
{
    ob_lock_t *l = arg;
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%ld", l->ttl_ms);
    if (ob_redis_command(l->r, on_renew, l, "EVAL %s 1 %s %s %s", RENEW, l->lock_key, l->token,
                         ttl) == OB_OK)
        l->inflight++;
    else
        ob_timer_start(&l->renew, (uint64_t)(l->ttl_ms / 6 > 0 ? l->ttl_ms / 6 : 1));
}

static void on_release(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    ob_lock_t *l = arg;
    l->inflight--;
    lock_free_if_idle(l);
}

static void send_release(ob_lock_t *l)
{
    if (ob_redis_command(l->r, on_release, l, "EVAL %s 1 %s %s", RELEASE, l->lock_key, l->token) ==
        OB_OK)
        l->inflight++;
}

ob_lock_t *ob_lock_acquire(ob_redis_t *r, ob_loop_t *loop, const char *account, long ttl_ms,
                           ob_lock_cb *cb, void *arg)
{
    return ob_lock_acquire_as(r, loop, account, ttl_ms, NULL, cb, arg);
}

ob_lock_t *ob_lock_acquire_as(ob_redis_t *r, ob_loop_t *loop, const char *account, long ttl_ms,
                              const char *owner, ob_lock_cb *cb, void *arg)
{
    char lock_key[OB_STATE_KEY_LEN], fence_key[OB_STATE_KEY_LEN], state_key[OB_STATE_KEY_LEN];
    ob_state_lock_key(account, lock_key, sizeof(lock_key));
    ob_state_fence_key(account, fence_key, sizeof(fence_key));
    ob_state_key(account, state_key, sizeof(state_key));
    uint8_t rnd[16];
    char hex[33], prefix[264] = "";
    if (ob_random_bytes(rnd, sizeof(rnd)) != OB_OK) {
        /* A token that is not random is not this holder's alone: no lock. */
        ob_logf(OB_LOG_ERROR, "lock", "no random bytes for a lock token: lock not taken");
        return NULL;
    }
    ob_hex(rnd, sizeof(rnd), hex);
    if (owner && owner[0])
        snprintf(prefix, sizeof(prefix), "%.250s|", owner);
    char token[300];
    snprintf(token, sizeof(token), "%s%s", prefix, hex);
    size_t klen = strlen(lock_key) + 1, tlen = strlen(token) + 1;
    ob_lock_t *l = ob_calloc(1, sizeof(*l) + klen + tlen);
    l->r = r;
    l->loop = loop;
    l->ttl_ms = ttl_ms > 30 ? ttl_ms : 30;
    l->cb = cb;
    l->arg = arg;
    l->lock_key = memcpy(l->text, lock_key, klen);
    l->token = memcpy(l->text + klen, token, tlen);
    ob_timer_init(&l->renew, loop, renew_fired, l);
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%ld", l->ttl_ms);
    if (ob_redis_command(r, on_acquire, l, "EVAL %s 3 %s %s %s %s %s %s", ACQUIRE, l->lock_key,
                         fence_key, state_key, l->token, ttl, prefix) != OB_OK) {
        free(l);
        return NULL;
    }
    l->inflight++;
    return l;
}

void ob_lock_release(ob_lock_t *l)
{
    if (!l)
        return;
    ob_timer_stop(&l->renew);
    if (l->held)
        send_release(l);
    l->held = 0;
    l->abandoned = 1;
    lock_free_if_idle(l);
}

uint64_t ob_lock_fence(const ob_lock_t *l)
{
    return l->fence;
}

const char *ob_lock_prior_get(const ob_lock_t *l, const char *field)
{
    for (size_t i = 0; i + 1 < l->nprior; i += 2)
        if (!strcmp(l->prior[i], field))
            return l->prior[i + 1];
    return "";
}

const char *ob_lock_prior_status(const ob_lock_t *l)
{
    return ob_lock_prior_get(l, OB_ST_STATUS);
}

const char *ob_lock_prior_progress(const ob_lock_t *l)
{
    return ob_lock_prior_get(l, OB_ST_PROGRESS);
}

const char *ob_lock_prior_input(const ob_lock_t *l)
{
    return ob_lock_prior_get(l, "input");
}

void ob_lock_prior(const ob_lock_t *l, const char **request_id, const char **stage, int *attempts)
{
    *request_id = ob_lock_prior_get(l, OB_ST_REQUEST_ID);
    *stage = ob_lock_prior_get(l, OB_ST_STAGE);
    *attempts = l->prior_attempts;
}

typedef struct write_s {
    ob_lock_write_cb *cb;
    void *arg;
} write_t;

static void on_write(ob_redis_t *r, ob_err_t err, redisReply *reply, void *arg)
{
    write_t *w = arg;
    ob_err_t e = err;
    if (e == OB_OK && (!reply || reply->type != REDIS_REPLY_INTEGER))
        e = OB_ERR_REDIS;
    else if (e == OB_OK && reply->integer < 0)
        e = OB_ERR_STATE;
    if (w->cb)
        w->cb(e, w->arg);
    free(w);
}

/* One fenced write: WRITE (keep NULL) or REPLACE (keep: the names kept). */
static ob_err_t state_write(ob_redis_t *r, const char *account, uint64_t fence,
                            const char *const *keep, const char *const *fields, const char *history,
                            ob_lock_write_cb *cb, void *arg)
{
    size_t nf = 0, nk = 0;
    while (fields[nf])
        nf++;
    while (keep && keep[nk])
        nk++;
    if (nf == 0 || nf % 2)
        return OB_ERR_INVALID_ARG;
    size_t argc = 7 + (keep ? 1 + nk : 0) + nf;
    const char **argv = ob_calloc(argc, sizeof(*argv));
    char key[OB_STATE_KEY_LEN], hkey[OB_STATE_KEY_LEN], fence_s[24], nk_s[24];
    write_t *w = ob_malloc(sizeof(*w));
    if (!argv || !w) {
        free(argv);
        free(w);
        return OB_ERR_NOMEM;
    }
    ob_state_key(account, key, sizeof(key));
    ob_state_history_key(account, hkey, sizeof(hkey));
    snprintf(fence_s, sizeof(fence_s), "%llu", (unsigned long long)fence);
    snprintf(nk_s, sizeof(nk_s), "%zu", nk);
    size_t a = 0;
    argv[a++] = "EVAL";
    argv[a++] = keep ? REPLACE : WRITE;
    argv[a++] = "2";
    argv[a++] = key;
    argv[a++] = hkey;
    argv[a++] = fence_s;
    argv[a++] = history ? history : "";
    if (keep) {
        argv[a++] = nk_s;
        for (size_t i = 0; i < nk; i++)
            argv[a++] = keep[i];
    }
    for (size_t i = 0; i < nf; i++)
        argv[a++] = fields[i];
    w->cb = cb;
    w->arg = arg;
    ob_err_t e = ob_redis_command_argv(r, on_write, w, (int)argc, argv, NULL);
    free(argv);
    if (e != OB_OK)
        free(w);
    return e;
}

ob_err_t ob_lock_state_write(ob_redis_t *r, const char *account, uint64_t fence,
                             const char *const *fields, ob_lock_write_cb *cb, void *arg)
{
    return state_write(r, account, fence, NULL, fields, NULL, cb, arg);
}

ob_err_t ob_lock_state_write_h(ob_redis_t *r, const char *account, uint64_t fence,
                               const char *const *fields, const char *history, ob_lock_write_cb *cb,
                               void *arg)
{
    return state_write(r, account, fence, NULL, fields, history, cb, arg);
}

ob_err_t ob_lock_state_replace(ob_redis_t *r, const char *account, uint64_t fence,
                               const char *const *keep, const char *const *fields,
                               ob_lock_write_cb *cb, void *arg)
{
    return ob_lock_state_replace_h(r, account, fence, keep, fields, NULL, cb, arg);
}

ob_err_t ob_lock_state_replace_h(ob_redis_t *r, const char *account, uint64_t fence,
                                 const char *const *keep, const char *const *fields,
                                 const char *history, ob_lock_write_cb *cb, void *arg)
{
    static const char *const none[] = {NULL};
    return state_write(r, account, fence, keep ? keep : none, fields, history, cb, arg);
}
