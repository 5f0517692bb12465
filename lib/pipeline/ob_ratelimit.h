/*
 * ob_ratelimit: one fleet-wide rate per AWS API, shared by every worker
 * replica through Redis, that slows the whole fleet down when AWS throttles
 * any one of them (AIMD).
 *
 * An API is limited by its own rule ("organizations.ListAccounts") or, when
 * it has none, by its service's ("organizations.*": one bucket every call of
 * the service shares, as AWS's quota for Organizations or STS is one per
 * caller).
 *
 * Each limited API is a token bucket in one Redis hash, KEY_PREFIX{API}
 * (default ob:rl:{sts.AssumeRole}; the hash tag keeps it in one Cluster
 * slot), with the fields tokens, ts (Redis TIME, ms), frac (current rate as
 * a fraction of the base rate), last_throttle (ms), and for people reading it
 * rate, base and burst. A single Lua script, run with EVALSHA (EVAL when the
 * server answers NOSCRIPT), refills the bucket at the current rate, lets the
 * rate climb back linearly to the base (from base*min_fraction to base in
 * recover_s), takes up to `want` tokens and answers {granted, ms until the
 * next token, current rate x1000}. Base and burst come from the caller on
 * every call, so a configuration change takes effect at once; the rate is
 * stored as a fraction of the base, so replicas configured with different
 * bases (a rolling deploy) each see their own base scaled by the same
 * throttle state. The key expires after max(10 minutes, 2 * recover_s)
 * without use, so idle APIs leave nothing behind.
 *
 * ob_ratelimit_throttled() runs the same script in throttle mode: it halves
 * the fraction (never below min_fraction) and empties the bucket, at most
 * once per second fleet-wide (a volley of throttled calls counts once).
 *
 * Locally each API keeps a FIFO of waiters and at most one fetch in flight.
 * A fetch asks for min(waiters, max(1, ceil(rate * 0.1))) tokens, a 100 ms
 * share, so one replica does not take the whole burst. Granted tokens go to
 * the waiters in order; tokens nobody is left to use (waiters cancelled
 * meanwhile) are kept for lease_ms and then dropped. When Redis grants none,
 * the next fetch waits for the time Redis says the next token needs
 * (clamped to 1..1000 ms). Under contention every waiting replica polls once
 * per token interval, so Redis sees about replicas * rate script calls per
 * second for a saturated API (cheap calls, but mind it for high rates).
 *
 * Redis down or failing: the limiter fails open to a local token bucket per
 * API at the base rate (so N replicas may together reach N times the base
 * while Redis is away), logs one warning per outage, counts redis_errors,
 * and tries Redis again on the next fetch once the connection is up. A fetch
 * sent to an unresponsive server waits at most the connection's
 * command_timeout_ms before the local bucket takes over.
 *
 * Ownership: the caller owns the loop and the Redis connection, which must
 * outlive the limiter: free the limiter first (ob_ratelimit_free), then the
 * connection. A wait handle belongs to the limiter: it is freed just before
 * its callback is called (so the callback must not cancel it), or by
 * ob_ratelimit_cancel(), or by ob_ratelimit_free() (without a callback).
 * Spec and API strings are copied.
 *
 * Threading: loop thread only. Callbacks run from the loop (a timer or a
 * Redis reply), never inside the call that registered them; a callback may
 * call acquire, cancel (of other waits), throttled and configure, but not
 * ob_ratelimit_free().
 */
#ifndef OB_RATELIMIT_H
#define OB_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "ob_aws.h"
#include "ob_err.h"
#include "ob_loop.h"
#include "ob_redis.h"

typedef struct ob_ratelimit_s ob_ratelimit_t;
typedef struct ob_ratelimit_wait_s ob_ratelimit_wait_t;

/* A token was granted: go ahead with the call. The wait handle is already
 * freed when this runs. */
typedef void(ob_ratelimit_cb)(void *arg);

typedef struct ob_ratelimit_opts_s {
    const char *key_prefix; /* NULL: "ob:rl:"; the key is prefix + "{" + api + "}" */
    double min_fraction;    /* 0: 0.05; throttles never take the rate below base * this */
    double recover_s;       /* 0: 60; seconds for the rate to climb from its floor to base */
    long lease_ms;          /* 0: 1000; unused tokens fetched from Redis expire after this */
} ob_ratelimit_opts_t;

/* o may be NULL (all defaults). redis may be NULL: local buckets only, per
 * process (tests, single-replica tools). Starts with no limits: see
 * configure. NULL with errstr filled on bad options or out of memory. */
ob_ratelimit_t *ob_ratelimit_new(ob_loop_t *loop, ob_redis_t *redis, const ob_ratelimit_opts_t *o,
                                 char *errstr, size_t errstr_size);
/* Pending waits are dropped without callbacks. NULL is fine. Commands still
 * in flight on the Redis connection finish (or are cancelled by
 * ob_redis_free) without touching anything of the caller's. */
void ob_ratelimit_free(ob_ratelimit_t *rl);

/* Set the limits from a spec "API=RATE[/BURST],API=RATE[/BURST],...", e.g.
 * "sts.AssumeRole=500,cloudformation.CreateStack=20/40": RATE is tokens per
 * second (> 0, may be fractional), BURST the bucket size (>= 1, default
 * max(1, RATE)). Spaces around items are ignored; NULL or "" means no
 * limits. API names are 1 to 200 letters, digits, '.', '_', '-' or ':'.
 * Replaces the earlier limits as a whole, or on error (OB_ERR_CONFIG, errstr
 * naming the bad item) changes nothing. Waits pending on an API that loses
 * its limit are granted (from the loop, soon); an API that keeps its limit
 * keeps its waits, and the new rate applies from the next fetch. */
ob_err_t ob_ratelimit_configure(ob_ratelimit_t *rl, const char *spec, char *errstr,
                                size_t errstr_size);
/* 1 if api has a limit. */
int ob_ratelimit_limited(const ob_ratelimit_t *rl, const char *api);

/* Ask for one token for api. Returns NULL if api has no limit (go now; no
 * callback will run). Otherwise a wait handle: cb(arg) runs later from the
 * loop (never inside this call), exactly once, unless cancelled. NULL is
 * also returned (and the call should go ahead) if memory runs out. */
ob_ratelimit_wait_t *ob_ratelimit_acquire(ob_ratelimit_t *rl, const char *api, ob_ratelimit_cb *cb,
                                          void *arg);
/* Withdraw a wait whose callback has not run yet, and free it. Never call it
 * after the callback ran (the handle is gone then: drop your pointer in the
 * callback). NULL is fine. */
void ob_ratelimit_cancel(ob_ratelimit_wait_t *w);

/* AWS throttled a call to api (ThrottlingException, RequestLimitExceeded,
 * SlowDown...): halve the fleet-wide rate, not below its floor, at most once
 * per 1 s window fleet-wide. Also drops this replica's leased tokens for api.
 * One report per API is in flight per replica at a time (a volley sends one
 * command); nothing is sent while Redis is known to be away. No-op for
 * unlimited APIs. */
void ob_ratelimit_throttled(ob_ratelimit_t *rl, const char *api);

/* The limiter as the AWS client's interface (ob_aws_set_limiter): rl is
 * borrowed by the client. */
ob_aws_limiter_t ob_ratelimit_aws_limiter(ob_ratelimit_t *rl);

typedef struct ob_ratelimit_stats_s {
    uint64_t granted;      /* callbacks run (tokens handed out) */
    uint64_t waited;       /* of those, grants that had to wait for a refill */
    uint64_t throttles;    /* ob_ratelimit_throttled calls for limited APIs */
    uint64_t redis_errors; /* Redis commands that failed (local bucket used instead) */
    uint64_t fetches;      /* token requests sent to Redis */
} ob_ratelimit_stats_t;
void ob_ratelimit_get_stats(const ob_ratelimit_t *rl, ob_ratelimit_stats_t *out);

/* The fleet's current rate for api (tokens/s) as last seen from Redis; 0 if
 * unknown yet or api is unlimited. */
double ob_ratelimit_current(const ob_ratelimit_t *rl, const char *api);

#endif
