/*
 * ob_watch: the organization watcher's listing and the periodic
 * verification's choices (see ob_watch.h).
 */
#include "ob_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "ob_state.h"
#include "ob_time.h"

/* A parent still to list: its id and its chain ("ou-b,ou-a,root"). */
typedef struct parent_s {
    char *id, *chain;
} parent_t;

typedef enum phase_e {
    W_ACCOUNTS,   /* ListAccounts (no tree) */
    W_ROOTS,      /* ListRoots */
    W_P_ACCOUNTS, /* ListAccountsForParent of parents[cur] */
    W_P_OUS,      /* ListOrganizationalUnitsForParent of parents[cur] */
    W_DONE
} phase_t;

struct ob_watch_s {
    const ob_lifecycle_rules_t *rules;
    int tree;
    phase_t phase;
    char *next_token; /* of the call under way's previous page (NULL: first page) */
    parent_t *parents;
    size_t nparents, cap_parents, cur;
    ob_watch_account_t *accounts;
    size_t naccounts, cap_accounts;
    size_t calls;
};

ob_watch_t *ob_watch_new(const ob_lifecycle_rules_t *rules)
{
    ob_watch_t *w = ob_calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->rules = rules;
    w->tree = rules->include_ous[0] || rules->exclude_ous[0] || rules->ou_modes[0];
    w->phase = w->tree ? W_ROOTS : W_ACCOUNTS;
    return w;
}

void ob_watch_free(ob_watch_t *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nparents; i++) {
        free(w->parents[i].id);
        free(w->parents[i].chain);
    }
    free(w->parents);
    /* An account's ous is its parent's chain (owned there: the parents'
     * array moves as it grows, their strings do not). */
    free(w->accounts);
    free(w->next_token);
    free(w);
}

int ob_watch_walks_tree(const ob_watch_t *w)
{
    return w->tree;
}

size_t ob_watch_calls(const ob_watch_t *w)
{
    return w->calls;
}

size_t ob_watch_count(const ob_watch_t *w)
{
    return w->naccounts;
}

const ob_watch_account_t *ob_watch_account(const ob_watch_t *w, size_t i)
{
    return i < w->naccounts ? &w->accounts[i] : NULL;
}

int ob_watch_next(ob_watch_t *w, const char **op, json_t **body)
{
    json_t *b = json_object();
    switch (w->phase) {
    case W_ACCOUNTS:
        *op = "ListAccounts";
        break;
    case W_ROOTS:
        *op = "ListRoots";
        break;
    case W_P_ACCOUNTS:
        *op = "ListAccountsForParent";
        json_object_set_new(b, "ParentId", json_string(w->parents[w->cur].id));
        break;
    case W_P_OUS:
        *op = "ListOrganizationalUnitsForParent";
        json_object_set_new(b, "ParentId", json_string(w->parents[w->cur].id));
        break;
    case W_DONE:
    default:
        json_decref(b);
        *op = NULL;
        *body = NULL;
        return 0;
    }
    json_object_set_new(b, "MaxResults", json_integer(20));
    if (w->next_token)
        json_object_set_new(b, "NextToken", json_string(w->next_token));
    *body = b;
    return 1;
}

static void add_parent(ob_watch_t *w, const char *id, const char *chain)
{
    if (w->nparents == w->cap_parents) {
        w->cap_parents = w->cap_parents ? 2 * w->cap_parents : 16;
        w->parents = ob_realloc(w->parents, w->cap_parents * sizeof(*w->parents));
    }
    w->parents[w->nparents++] = (parent_t){ob_strdup(id), ob_strdup(chain)};
}

static int add_accounts(ob_watch_t *w, const json_t *list, const char *ous, char *why, size_t n)
{
    size_t i;
    const json_t *a;
    json_array_foreach(list, i, a)
    {
        const char *id = json_string_value(json_object_get(a, "Id"));
        /* State is the newer field (ACTIVE, SUSPENDED, PENDING_ACTIVATION,
         * PENDING_CLOSURE, CLOSED); Status the one AWS is retiring. */
        const char *state = json_string_value(json_object_get(a, "State"));
        if (!state)
            state = json_string_value(json_object_get(a, "Status"));
        if (!id || strlen(id) != 12 || strspn(id, "0123456789") != 12) {
            snprintf(why, n, "an account without a 12-digit Id in the listing");
            return -1;
        }
        if (w->naccounts == w->cap_accounts) {
            w->cap_accounts = w->cap_accounts ? 2 * w->cap_accounts : 64;
            w->accounts = ob_realloc(w->accounts, w->cap_accounts * sizeof(*w->accounts));
        }
        ob_watch_account_t *out = &w->accounts[w->naccounts++];
        memset(out, 0, sizeof(*out));
        memcpy(out->id, id, 13);
        out->active = state && !strcmp(state, "ACTIVE");
        out->ous = ous;
    }
    return 0;
}

/* After the last page of the call under way: the next call. */
static void advance(ob_watch_t *w)
{
    switch (w->phase) {
    case W_ACCOUNTS:
        w->phase = W_DONE;
        break;
    case W_ROOTS:
        w->cur = 0;
        w->phase = w->nparents ? W_P_ACCOUNTS : W_DONE;
        break;
    case W_P_ACCOUNTS:
        w->phase = W_P_OUS;
        break;
    case W_P_OUS:
        w->phase = ++w->cur < w->nparents ? W_P_ACCOUNTS : W_DONE;
        break;
    case W_DONE:
        break;
    }
}

ob_err_t ob_watch_reply(ob_watch_t *w, const char *json, size_t len, char *why, size_t n)
{
    json_error_t je;
    json_t *r = json_loadb(json, len, 0, &je);
    if (!json_is_object(r)) {
        snprintf(why, n, "Organizations answered with no JSON object");
        json_decref(r);
        return OB_ERR_PARSE;
    }
    w->calls++;
    const char *list_name = w->phase == W_ROOTS   ? "Roots"
                            : w->phase == W_P_OUS ? "OrganizationalUnits"
                                                  : "Accounts";
    const json_t *list = json_object_get(r, list_name);
    if (!json_is_array(list)) {
        snprintf(why, n, "Organizations answered without %s", list_name);
        json_decref(r);
        return OB_ERR_PARSE;
    }
    ob_err_t e = OB_OK;
    size_t i;
    const json_t *it;
    switch (w->phase) {
    case W_ACCOUNTS:
        if (add_accounts(w, list, NULL, why, n) != 0)
            e = OB_ERR_PARSE;
        break;
    case W_P_ACCOUNTS:
        if (add_accounts(w, list, w->parents[w->cur].chain, why, n) != 0)
            e = OB_ERR_PARSE;
        break;
    case W_ROOTS:
        json_array_foreach(list, i, it)
        {
            const char *id = json_string_value(json_object_get(it, "Id"));
            if (!id) {
                snprintf(why, n, "a root without an Id");
                e = OB_ERR_PARSE;
                break;
            }
            add_parent(w, id, "root");
        }
        break;
    case W_P_OUS:
        json_array_foreach(list, i, it)
        {
            const char *id = json_string_value(json_object_get(it, "Id"));
            if (!id || strncmp(id, "ou-", 3) != 0) {
                snprintf(why, n, "an organizational unit without an ou- Id");
                e = OB_ERR_PARSE;
                break;
            }
            /* The parent may move in the array: copy its chain first. */
            char *chain = ob_malloc(strlen(id) + strlen(w->parents[w->cur].chain) + 2);
            sprintf(chain, "%s,%s", id, w->parents[w->cur].chain);
            add_parent(w, id, chain);
            free(chain);
        }
        break;
    case W_DONE:
        break;
    }
    const char *tok = json_string_value(json_object_get(r, "NextToken"));
    free(w->next_token);
    w->next_token = e == OB_OK && tok && tok[0] ? ob_strdup(tok) : NULL;
    if (e == OB_OK && !w->next_token)
        advance(w);
    json_decref(r);
    return e;
}

/* ---- requests ---- */

char *ob_watch_request(const ob_lifecycle_rules_t *rules, const char *account, ob_mode_t mode,
                       char *why, size_t n)
{
    if (!rules->region[0]) {
        snprintf(why, n, "lifecycle.region is not set: the watcher cannot make requests");
        return NULL;
    }
    char role[256], rid[64], now[OB_TIME_LEN];
    snprintf(role, sizeof(role), "arn:%s:iam::%s:role/%s", ob_region_partition(rules->region),
             account, rules->role_name);
    snprintf(rid, sizeof(rid), OB_WATCH_REQUEST_PREFIX "%.20s", account);
    ob_msg_now(now);
    json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "schema",
                            OB_SCHEMA_REQUEST, "request_id", rid, "account_id", account, "cloud",
                            "aws", "mode", ob_mode_name(mode), "region", rules->region, "role_arn",
                            role, "requester", OB_WATCH_REQUESTER, "requested_at", now);
    ob_request_t r;
    ob_msg_error_t me;
    char *out = NULL;
    if (!req)
        snprintf(why, n, "out of memory");
    else if (ob_request_parse_json(req, &r, &me) != OB_OK)
        snprintf(why, n, "%s", me.message);
    else {
        if (ob_request_to_json(&r, &out, NULL, &me) != OB_OK)
            snprintf(why, n, "%s", me.message);
        ob_request_clear(&r);
    }
    json_decref(req);
    return out;
}

/* ---- the periodic verification ---- */

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

int ob_verify_due(const ob_verify_seen_t *s, uint64_t now_ms, uint64_t interval_ms)
{
    int64_t at = 0;
    if (!s->verify_at || !s->verify_at[0] || ob_time_parse_iso_ms(s->verify_at, &at) != 0 || at < 0)
        at = 0;
    if (at && now_ms < (uint64_t)at + interval_ms)
        return 0;
    if (s->sent_ms && s->unconfirmed) {
        /* Its sender may still be delivering it; past that, it never
         * reached the broker. */
        if (now_ms < s->sent_ms + s->lost_after_ms)
            return 0;
    } else if (s->sent_ms) {
        /* Answered, or a newer request replaced the record since it was
         * sent (a repair: its verification fields went with it). */
        int answered = !strcmp(or_empty(s->sent_request), or_empty(s->verify_request)) ||
                       strcmp(or_empty(s->sent_record_request), or_empty(s->record_request)) != 0;
        uint64_t wait = answered || interval_ms > OB_VERIFY_ANSWER_WAIT_MS
                            ? interval_ms
                            : OB_VERIFY_ANSWER_WAIT_MS;
        if (now_ms < s->sent_ms + wait)
            return 0;
    }
    const char *rr = or_empty(s->repair_request);
    int repairing = rr[0] && strcmp(rr, or_empty(s->connected_request)) != 0;
    return !(repairing && at && now_ms < (uint64_t)at + OB_VERIFY_REPAIR_WAIT_MS);
}

uint64_t ob_verify_last_ms(const ob_verify_seen_t *s)
{
    int64_t at = 0;
    if (!s->verify_at || !s->verify_at[0] || ob_time_parse_iso_ms(s->verify_at, &at) != 0 || at < 0)
        at = 0;
    return (uint64_t)at > s->sent_ms ? (uint64_t)at : s->sent_ms;
}

void ob_verify_picks_init(ob_verify_picks_t *p, size_t cap)
{
    p->cap = cap;
    p->n = 0;
    p->v = ob_calloc(cap ? cap : 1, sizeof(*p->v));
}

static void pick_swap(ob_verify_pick_t *a, ob_verify_pick_t *b)
{
    ob_verify_pick_t t = *a;
    *a = *b;
    *b = t;
}

static void pick_down(ob_verify_pick_t *v, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, top = i;
        if (l < n && v[l].last_ms > v[top].last_ms)
            top = l;
        if (r < n && v[r].last_ms > v[top].last_ms)
            top = r;
        if (top == i)
            return;
        pick_swap(&v[i], &v[top]);
        i = top;
    }
}

void ob_verify_picks_offer(ob_verify_picks_t *p, const char *account, uint64_t last_ms)
{
    if (!p->cap)
        return;
    if (p->n < p->cap) {
        size_t i = p->n++;
        snprintf(p->v[i].account, sizeof(p->v[i].account), "%s", account);
        p->v[i].last_ms = last_ms;
        while (i && p->v[(i - 1) / 2].last_ms < p->v[i].last_ms) {
            pick_swap(&p->v[i], &p->v[(i - 1) / 2]);
            i = (i - 1) / 2;
        }
        return;
    }
    if (last_ms >= p->v[0].last_ms)
        return; /* fresher than every account kept */
    snprintf(p->v[0].account, sizeof(p->v[0].account), "%s", account);
    p->v[0].last_ms = last_ms;
    pick_down(p->v, p->n, 0);
}

void ob_verify_picks_sort(ob_verify_picks_t *p)
{
    /* Heap sort: the freshest goes to the end each time. */
    for (size_t n = p->n; n > 1; n--) {
        pick_swap(&p->v[0], &p->v[n - 1]);
        pick_down(p->v, n - 1, 0);
    }
}

void ob_verify_picks_free(ob_verify_picks_t *p)
{
    free(p->v);
    memset(p, 0, sizeof(*p));
}

char *ob_verify_of_record(const char *account, const char *status, const char *idempotency_key,
                          const char *connected_spec, const char *stack_id, const char *role_arn,
                          const char *request_id, int repair, const char *requester, char *why,
                          size_t n)
{
    if (!status || strcmp(status, OB_ST_STATUS_CONNECTED) != 0) {
        snprintf(why, n, "not connected (%s): nothing to verify",
                 status && status[0] ? status : "no record");
        return NULL;
    }
    ob_verify_msg_t m;
    ob_verify_init(&m);
    ob_msg_error_t me;
    if (!connected_spec || !connected_spec[0] ||
        ob_request_parse(connected_spec, strlen(connected_spec), &m.request, &me) != OB_OK) {
        snprintf(why, n,
                 "the record does not keep the connection's request (connected before this "
                 "version): onboard it again (onboardctl enqueue) to verify it");
        ob_verify_clear(&m);
        return NULL;
    }
    char now[OB_TIME_LEN];
    ob_msg_now(now);
    m.request_id = request_id;
    m.account_id = account;
    m.connection_key = idempotency_key ? idempotency_key : "";
    m.stack_id = stack_id ? stack_id : "";
    m.role_arn = role_arn ? role_arn : "";
    m.repair = repair;
    m.requester = requester;
    m.requested_at = now;
    char *json = NULL;
    if (ob_verify_to_json(&m, &json, NULL, &me) != OB_OK)
        snprintf(why, n, "%s", me.message);
    ob_verify_clear(&m);
    return json;
}
