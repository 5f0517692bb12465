/*
 * ob_lock: per-account locks in Redis, with fencing, for worker replicas.
 *
 * A lock is the key ob:{ACCOUNT}:lock (the layout is ob_state.h's) holding a
 * random token, set with NX and a TTL; acquiring it also raises
 * ob:{ACCOUNT}:fence, in the same Lua script, and returns the new value: the
 * fencing token (the larger of the last one plus one and Redis's clock in
 * microseconds, so that it keeps rising on a promoted replica that lost the
 * last writes). Every state write
 * for the account carries the fence (ob_lock_state_write), and Redis refuses
 * a write whose fence is lower than one already written, so a stale holder
 * (paused past its TTL, then waking up) cannot overwrite a newer holder's
 * work. The holder renews the TTL on a timer at a third of the TTL; if a
 * renewal finds the token gone, the lock is lost and the owner is told.
 * Release deletes the key only if it still holds our token.
 *
 * The {ACCOUNT} hash tag keeps an account's keys in one Redis Cluster slot.
 *
 * Ownership: the caller owns the ob_lock_t until ob_lock_release(), which
 * frees it (and may be called at any time, also before the acquire callback
 * ran: then the pending acquisition is abandoned and released if it won).
 * Threading: loop thread only.
 */
#ifndef OB_LOCK_H
#define OB_LOCK_H

#include <stdint.h>

#include "ob_err.h"
#include "ob_loop.h"
#include "ob_redis.h"

typedef struct ob_lock_s ob_lock_t;

typedef enum ob_lock_event_e {
    OB_LOCK_ACQUIRED, /* fence is valid */
    OB_LOCK_BUSY,     /* someone else holds it; retry_ms: its remaining TTL */
    OB_LOCK_ERROR,    /* Redis failed (err) */
    OB_LOCK_LOST      /* a renewal found the lock taken or expired */
} ob_lock_event_t;

typedef void(ob_lock_cb)(ob_lock_t *l, ob_lock_event_t ev, uint64_t fence, long retry_ms,
                         ob_err_t err, void *arg);

/* Try once to take the lock for `account`. The callback runs once with
 * ACQUIRED, BUSY or ERROR, and later (while held) possibly with LOST. NULL
 * (and no callback) when the command cannot be queued or no random token can
 * be had: try again later. */
ob_lock_t *ob_lock_acquire(ob_redis_t *r, ob_loop_t *loop, const char *account, long ttl_ms,
                           ob_lock_cb *cb, void *arg);
/* The same, for an owner: a lock held by the same owner (another holder
 * under the same name: the previous owner of a Kafka partition, dead or
 * revoked) is taken over at once instead of waiting for its TTL; the fence
 * moves on, so that holder's state writes are refused and its renewal finds
 * the lock lost. */
ob_lock_t *ob_lock_acquire_as(ob_redis_t *r, ob_loop_t *loop, const char *account, long ttl_ms,
                              const char *owner, ob_lock_cb *cb, void *arg);
void ob_lock_release(ob_lock_t *l);
uint64_t ob_lock_fence(const ob_lock_t *l);
/* After ACQUIRED: what the account's state said when the lock was taken (in
 * the same script): its request_id, stage and stage_attempts ("" and 0 when
 * absent). Pointers live as long as the lock. */
void ob_lock_prior(const ob_lock_t *l, const char **request_id, const char **stage, int *attempts);
/* And its status ("" when absent). */
const char *ob_lock_prior_status(const ob_lock_t *l);
/* And its progress: what the stage recorded of its work in progress (a
 * stack it created and when...), for a new holder to continue ("" when
 * absent). */
const char *ob_lock_prior_progress(const ob_lock_t *l);
/* And the input message whose outcome it records ("TOPIC:PARTITION:OFFSET",
 * "" when absent). */
const char *ob_lock_prior_input(const ob_lock_t *l);

/* After ACQUIRED: any field of the account's state when the lock was taken
 * ("" when absent). The pointer lives as long as the lock. */
const char *ob_lock_prior_get(const ob_lock_t *l, const char *field);
/* Forget the prior state (the holder has read what it needs): the getters
 * above answer "" and 0 from then on. Thousands of locks are held at once,
 * each for as long as its account's stage takes. */
void ob_lock_prior_drop(ob_lock_t *l);

/* Write fields of ob:{ACCOUNT}:state if `fence` is not lower than the fence
 * stored there. fields: NULL-terminated name, value, name, value... The
 * callback gets OB_OK, OB_ERR_STATE (fenced out) or a Redis error. */
typedef void(ob_lock_write_cb)(ob_err_t err, void *arg);
ob_err_t ob_lock_state_write(ob_redis_t *r, const char *account, uint64_t fence,
                             const char *const *fields, ob_lock_write_cb *cb, void *arg);
/* The same, replacing the record: every field but those named in `keep`
 * (NULL-terminated; NULL: none) is removed first, in the same script. */
ob_err_t ob_lock_state_replace(ob_redis_t *r, const char *account, uint64_t fence,
                               const char *const *keep, const char *const *fields,
                               ob_lock_write_cb *cb, void *arg);
/* Both, also pushing `history` (NULL or "": nothing) onto the account's
 * history (ob_state_history_key, newest first, the last
 * OB_STATE_HISTORY_KEPT kept) in the same script, under the same fence. */
ob_err_t ob_lock_state_write_h(ob_redis_t *r, const char *account, uint64_t fence,
                               const char *const *fields, const char *history, ob_lock_write_cb *cb,
                               void *arg);
ob_err_t ob_lock_state_replace_h(ob_redis_t *r, const char *account, uint64_t fence,
                                 const char *const *keep, const char *const *fields,
                                 const char *history, ob_lock_write_cb *cb, void *arg);

#endif
