/*
 * ob_watch: the organization watcher's pure logic, and the periodic
 * verification's choice of accounts (the onboard-lifecycle process drives
 * both; workers/lifecycle.c).
 *
 * A listing is a state machine over Organizations' paginated calls: ask
 * ob_watch_next() for the call to make, feed its reply to ob_watch_reply(),
 * until ob_watch_next() says the listing is complete. Without OU rules
 * (lifecycle.include.ous, lifecycle.exclude.ous and lifecycle.ou.modes all
 * empty) it is ListAccounts alone; with them it walks the tree from the root
 * (ListRoots, then for every parent ListAccountsForParent and
 * ListOrganizationalUnitsForParent, breadth first), so that each account
 * knows its OU and their ancestors, nearest first, as ob_lifecycle_decide
 * takes them ("ou-b,ou-a,root").
 *
 * The request the watcher enqueues for an account is an onboard.request/1
 * with request_id "watcher:" + the account (an account is asked for once:
 * a second enqueue of it, after a restart, is the same request, which the
 * stages see as done), requester "onboard-lifecycle/watcher".
 *
 * Threading: a listing belongs to its caller; no I/O here.
 */
#ifndef OB_WATCH_H
#define OB_WATCH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ob_err.h"
#include "ob_lifecycle.h"
#include "ob_msg.h"

#define OB_WATCH_REQUEST_PREFIX "watcher:"
#define OB_WATCH_REQUESTER      "onboard-lifecycle/watcher"

typedef struct ob_watch_s ob_watch_t;

typedef struct ob_watch_account_s {
    char id[OB_ACCOUNT_ID_LEN];
    int active;      /* State (or, from older APIs, Status) ACTIVE */
    const char *ous; /* nearest first, "root" last; NULL: not known (ListAccounts) */
} ob_watch_account_t;

/* A listing under these rules (borrowed; they must outlive it). NULL when
 * out of memory. */
ob_watch_t *ob_watch_new(const ob_lifecycle_rules_t *rules);
void ob_watch_free(ob_watch_t *w);
/* Whether the listing walks the tree (the rules name OUs). */
int ob_watch_walks_tree(const ob_watch_t *w);

/* The next call: 1 with *op (static) and *body (new JSON object, the
 * caller's); 0 when the listing is complete. */
int ob_watch_next(ob_watch_t *w, const char **op, json_t **body);
/* The reply (its JSON body) to the call ob_watch_next() gave last.
 * OB_ERR_PARSE with why when it is not what Organizations answers. */
ob_err_t ob_watch_reply(ob_watch_t *w, const char *json, size_t len, char *why, size_t why_size);
/* Calls made so far. */
size_t ob_watch_calls(const ob_watch_t *w);

/* The accounts listed, in the order listed (the tree's: breadth first). */
size_t ob_watch_count(const ob_watch_t *w);
const ob_watch_account_t *ob_watch_account(const ob_watch_t *w, size_t i);

/* The request the watcher enqueues for an account the rules take
 * (ob_lifecycle_decide said so with mode): malloc'd JSON, or NULL with why
 * (lifecycle.region unset, an id the request rules refuse). requested_at is
 * now. */
char *ob_watch_request(const ob_lifecycle_rules_t *rules, const char *account, ob_mode_t mode,
                       char *why, size_t why_size);

/* ---- the periodic verification ---- */

/* How long a repair the periodic verification sent holds the account's
 * next verification back while it has not ended connected, and how long a
 * verification sent and not answered does (a repair or verification that
 * is lost or given up on does not stop verification for good). */
#define OB_VERIFY_REPAIR_WAIT_MS (60ULL * 60 * 1000)
#define OB_VERIFY_ANSWER_WAIT_MS (15ULL * 60 * 1000)

/* What the periodic verification knows of a connected account. */
typedef struct ob_verify_seen_s {
    const char *verify_at;           /* the last verification's end (RFC 3339; "" never) */
    const char *verify_request;      /* its request id */
    uint64_t sent_ms;                /* when the scheduler last sent one (epoch ms; 0 never) */
    int unconfirmed;                 /* the broker's acknowledgement of it is not recorded */
    uint64_t lost_after_ms;          /* when an unconfirmed one is deemed lost (ms after sent) */
    const char *sent_request;        /* its request id */
    const char *sent_record_request; /* the record's request_id when it was sent */
    const char *record_request;      /* the record's request_id now */
    const char *repair_request;      /* the repair the last verification sent ("" none) */
    const char *connected_request;   /* the request the connection in place came from */
} ob_verify_seen_t;

/* Whether the account is due for verification at now_ms (epoch ms): its
 * last verification and the last one sent are both interval_ms old or
 * older; the one sent has been answered (verify_request is it, or a newer
 * request replaced the record since: a repair), or
 * OB_VERIFY_ANSWER_WAIT_MS passed (a verification can take longer than an
 * interval: sending another meanwhile would find the same drift twice); and
 * no repair is under way: a repair_request that is not (yet) the
 * connected_request, from a verification less than
 * OB_VERIFY_REPAIR_WAIT_MS ago. A verification sent but never acknowledged
 * by the broker (its sender died with it in the producer's queue) is
 * waited for lost_after_ms only, then counts as never sent: the caller
 * sends it again under the same request id. */
int ob_verify_due(const ob_verify_seen_t *s, uint64_t now_ms, uint64_t interval_ms);

/* When the account was last verified or sent a verification (epoch ms; 0
 * never): how stale it is, for choosing the stalest first. */
uint64_t ob_verify_last_ms(const ob_verify_seen_t *s);

/* The stalest accounts due, at most cap of them, whatever the order they
 * are offered in (a round that sends at most verify.max.per.round must not
 * serve the same accounts, first in Redis's scan order, every round). */
typedef struct ob_verify_pick_s {
    char account[OB_ACCOUNT_ID_LEN];
    uint64_t last_ms;
} ob_verify_pick_t;
typedef struct ob_verify_picks_s {
    ob_verify_pick_t *v; /* a max-heap on last_ms until sorted */
    size_t n, cap;
} ob_verify_picks_t;
void ob_verify_picks_init(ob_verify_picks_t *p, size_t cap);
void ob_verify_picks_offer(ob_verify_picks_t *p, const char *account, uint64_t last_ms);
/* Stalest first (then the heap is spent: offer no more). */
void ob_verify_picks_sort(ob_verify_picks_t *p);
void ob_verify_picks_free(ob_verify_picks_t *p);

/* The verification of a connected account from its record's fields
 * (status, idempotency_key, connected_spec, stack_id, role_arn):
 * malloc'd onboard.verify/1 JSON with request_id (the caller's, kept), or
 * NULL with why (not connected; a record with no connected_spec). */
char *ob_verify_of_record(const char *account, const char *status, const char *idempotency_key,
                          const char *connected_spec, const char *stack_id, const char *role_arn,
                          const char *request_id, int repair, const char *requester, char *why,
                          size_t why_size);

#endif
