/*
 * ob_creds: credentials, and the machinery every credential source shares.
 *
 * A source keeps its current credentials with their refresh deadlines, a
 * list of waiters, a single in-flight fetch, and a short memory of the last
 * failure. What differs per kind (ob_credsrc.h: STS, web identity, container,
 * IMDS) is only how a fetch is done (ops->fetch), which always ends in
 * ob_credsrc_fetched(). This core needs only the event loop.
 *
 * Waiter callbacks always run from a loop callback (a zero-delay timer or a
 * fetch completion), never from inside ob_credsrc_get(), so callers need not
 * guard against re-entry.
 */
#include "ob_creds.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "ob_list.h"
#include "ob_log.h"

#define FAIL_MEMORY_MS    1000  /* a failed fetch answers waiters for this long */
#define ADVISORY_RETRY_MS 30000 /* background refresh retry after a failure */

/* ---- credentials values ---- */

void ob_aws_secret_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* The three strings are one allocation (access_key_id's): one per target
 * account held, thousands at once. */
void ob_aws_creds_clear(ob_aws_creds_t *c)
{
    if (c->access_key_id) {
        size_t n = strlen(c->access_key_id) + 1 + strlen(c->secret_access_key) + 1 +
                   (c->session_token ? strlen(c->session_token) + 1 : 0);
        explicit_bzero(c->access_key_id, n);
        free(c->access_key_id);
    }
    memset(c, 0, sizeof(*c));
}

ob_err_t ob_aws_creds_set(ob_aws_creds_t *c, const char *akid, const char *secret,
                          const char *token, int64_t expires_ms)
{
    if (!akid || !secret)
        return OB_ERR_INVALID_ARG;
    ob_aws_creds_t n;
    memset(&n, 0, sizeof(n));
    size_t ka = strlen(akid) + 1, ks = strlen(secret) + 1,
           kt = token && *token ? strlen(token) + 1 : 0;
    char *mem = ob_malloc(ka + ks + kt);
    n.access_key_id = memcpy(mem, akid, ka);
    n.secret_access_key = memcpy(mem + ka, secret, ks);
    n.session_token = kt ? memcpy(mem + ka + ks, token, kt) : NULL;
    n.expires_ms = expires_ms;
    memcpy(n.account_id, c->account_id, sizeof(n.account_id));
    ob_aws_creds_clear(c);
    *c = n;
    return OB_OK;
}

ob_err_t ob_aws_creds_copy(ob_aws_creds_t *dst, const ob_aws_creds_t *src)
{
    ob_aws_creds_t n;
    memset(&n, 0, sizeof(n));
    ob_err_t e = ob_aws_creds_set(&n, src->access_key_id, src->secret_access_key,
                                  src->session_token, src->expires_ms);
    if (e != OB_OK)
        return e;
    memcpy(n.account_id, src->account_id, sizeof(n.account_id));
    ob_aws_creds_clear(dst);
    *dst = n;
    return OB_OK;
}

/* ---- the shared machinery ---- */

struct ob_creds_wait_s {
    ob_credsrc_t *src;
    ob_creds_cb *cb;
    void *arg;
    ob_list_t node; /* in src->waiters */
};

#define WAIT_OF(n) OB_LIST_ENTRY((n), ob_creds_wait_t, node)

struct ob_credsrc_s {
    const ob_credsrc_ops_t *ops;
    void *data; /* the kind's own */
    ob_loop_t *loop;
    int refs;
    ob_aws_creds_t creds;
    int have;
    int64_t advisory_at;  /* wall ms: refresh in the background from here */
    int64_t mandatory_at; /* wall ms: unusable from here */
    int fetching;
    uint64_t fetches;
    ob_err_t last_err;
    char *last_msg;              /* of the last failure (NULL: none yet) */
    ob_retry_class_t last_class; /* of the last failure */
    char *last_code;             /* its code (NULL: none) */
    uint64_t fail_until;         /* loop ms: answer waiters with last_err until then */
    uint64_t next_advisory;      /* loop ms: no background refresh before */
    ob_list_t waiters;           /* ob_creds_wait_t, newest first */
    ob_timer_t notify;
    char *describe; /* sized to its text: one source per target account */
};

static void start_fetch(ob_credsrc_t *s);

static int64_t wall_ms(void)
{
    return (int64_t)ob_wall_ms();
}

static void set_deadlines(ob_credsrc_t *s)
{
    if (s->creds.expires_ms == 0) {
        s->advisory_at = s->mandatory_at = 0;
        return;
    }
    int64_t life = s->creds.expires_ms - wall_ms();
    if (life < 0)
        life = 0;
    /* Short-lived credentials get proportionally shorter windows. */
    int64_t adv = life / 3 < OB_CREDS_ADVISORY_MS ? life / 3 : OB_CREDS_ADVISORY_MS;
    int64_t man = life / 6 < OB_CREDS_MANDATORY_MS ? life / 6 : OB_CREDS_MANDATORY_MS;
    s->advisory_at = s->creds.expires_ms - adv;
    s->mandatory_at = s->creds.expires_ms - man;
}

static int usable(const ob_credsrc_t *s)
{
    return s->have && (s->creds.expires_ms == 0 || wall_ms() < s->mandatory_at);
}

static void flush_waiters(ob_credsrc_t *s, ob_err_t err, const char *msg)
{
    ob_credsrc_ref(s);
    while (!ob_list_empty(&s->waiters)) {
        ob_creds_wait_t *w = WAIT_OF(ob_list_first(&s->waiters));
        ob_list_remove(&w->node);
        ob_creds_cb *cb = w->cb;
        void *arg = w->arg;
        free(w);
        if (err == OB_OK)
            cb(OB_OK, NULL, &s->creds, arg);
        else
            cb(err, msg, NULL, arg);
        /* A callback may have invalidated the credentials: the rest wait on. */
        if (err == OB_OK && !usable(s)) {
            if (!ob_list_empty(&s->waiters) && !s->fetching)
                start_fetch(s);
            break;
        }
    }
    ob_credsrc_unref(s);
}

static void credsrc_done(ob_credsrc_t *s, ob_err_t err, const char *msg,
                         const ob_aws_creds_t *creds)
{
    s->fetching = 0;
    uint64_t now = ob_loop_update_time(s->loop);
    if (err == OB_OK && creds) {
        ob_err_t e = ob_aws_creds_copy(&s->creds, creds);
        if (e != OB_OK) {
            err = e;
            msg = "out of memory";
        } else {
            s->have = 1;
            set_deadlines(s);
            s->last_err = OB_OK;
            free(s->last_msg);
            s->last_msg = NULL;
            if (!usable(s)) {
                s->have = 0;
                err = OB_ERR_CREDENTIALS;
                msg = "the credentials fetched are already expired or about to expire";
            }
        }
    }
    if (err == OB_OK) {
        s->last_class = OB_RETRY_NO;
        free(s->last_code);
        s->last_code = NULL;
    }
    if (err != OB_OK) {
        s->last_err = err;
        char text[512];
        snprintf(text, sizeof(text), "%s: %s", s->describe, msg ? msg : "failed");
        free(s->last_msg);
        s->last_msg = ob_strdup(text);
        s->fail_until = now + FAIL_MEMORY_MS;
        s->next_advisory = now + ADVISORY_RETRY_MS;
        ob_logkv(OB_LOG_WARN, "creds", "credentials refresh failed", "source", s->describe, "error",
                 msg, NULL);
        /* Credentials still valid keep being served; waiters get them. */
        if (usable(s)) {
            flush_waiters(s, OB_OK, NULL);
            return;
        }
        flush_waiters(s, err, s->last_msg);
        return;
    }
    flush_waiters(s, OB_OK, NULL);
}

int ob_credsrc_offer(ob_credsrc_t *s, const ob_aws_creds_t *creds)
{
    /* Fresh enough that the source would not refresh them at once: more
     * than the advisory window left (a session sealed an hour ago is not). */
    if (!creds || !creds->access_key_id || creds->expires_ms <= 0 ||
        creds->expires_ms - wall_ms() <= OB_CREDS_ADVISORY_MS)
        return 0;
    if (s->have && (s->creds.expires_ms == 0 || s->creds.expires_ms >= creds->expires_ms) &&
        usable(s))
        return 0;
    ob_aws_creds_t keep;
    memset(&keep, 0, sizeof(keep));
    if (s->have && ob_aws_creds_copy(&keep, &s->creds) != OB_OK)
        return 0;
    int had = s->have;
    if (ob_aws_creds_copy(&s->creds, creds) != OB_OK) {
        ob_aws_creds_clear(&keep);
        return 0;
    }
    memcpy(s->creds.account_id, keep.account_id, sizeof(s->creds.account_id));
    s->have = 1;
    set_deadlines(s);
    if (!usable(s)) {
        /* Too close to expiry: what the source had stays. */
        if (had)
            ob_aws_creds_copy(&s->creds, &keep);
        else
            ob_aws_creds_clear(&s->creds);
        s->have = had;
        set_deadlines(s);
        ob_aws_creds_clear(&keep);
        return 0;
    }
    ob_aws_creds_clear(&keep);
    if (!ob_list_empty(&s->waiters))
        ob_timer_start(&s->notify, 0);
    return 1;
}

void ob_credsrc_last_failure(const ob_credsrc_t *s, ob_retry_class_t *cls, const char **code)
{
    *cls = s->last_class;
    *code = s->last_code ? s->last_code : "";
}

static void start_fetch(ob_credsrc_t *s)
{
    if (s->fetching || !s->ops->fetch)
        return;
    s->fetching = 1;
    s->fetches++;
    ob_credsrc_ref(s); /* held while the fetch runs */
    s->ops->fetch(s);
}

void ob_credsrc_fetched(ob_credsrc_t *s, ob_err_t err, const char *msg, const ob_aws_creds_t *creds)
{
    credsrc_done(s, err, msg, creds);
    ob_credsrc_unref(s); /* the reference the fetch held */
}

void ob_credsrc_note_failure(ob_credsrc_t *s, ob_retry_class_t cls, const char *code)
{
    s->last_class = cls;
    free(s->last_code);
    s->last_code = ob_strdup(code ? code : "");
}

static void notify_fired(ob_timer_t *t, void *arg)
{
    ob_credsrc_t *s = arg;
    if (ob_list_empty(&s->waiters))
        return;
    if (usable(s)) {
        flush_waiters(s, OB_OK, NULL);
    } else if (s->last_err != OB_OK && ob_loop_now(s->loop) < s->fail_until) {
        flush_waiters(s, s->last_err, s->last_msg);
    } else if (!s->fetching) {
        if (s->ops->fetch)
            start_fetch(s);
        else
            flush_waiters(s, OB_ERR_CREDENTIALS, "credentials unavailable");
    }
}

ob_credsrc_t *ob_credsrc_new(ob_loop_t *loop, const ob_credsrc_ops_t *ops, void *data)
{
    ob_credsrc_t *s = ob_calloc(1, sizeof(*s));
    s->ops = ops;
    s->data = data;
    s->loop = loop;
    s->refs = 1;
    ob_list_init(&s->waiters);
    ob_timer_init(&s->notify, loop, notify_fired, s);
    s->describe = ob_strdup(ops->kind);
    return s;
}

void *ob_credsrc_data(const ob_credsrc_t *s)
{
    return s->data;
}

ob_loop_t *ob_credsrc_loop(const ob_credsrc_t *s)
{
    return s->loop;
}

void ob_credsrc_set_describe(ob_credsrc_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char text[320];
    vsnprintf(text, sizeof(text), fmt, ap);
    free(s->describe);
    s->describe = ob_strdup(text);
    va_end(ap);
}

ob_err_t ob_credsrc_set_fixed(ob_credsrc_t *s, const char *akid, const char *secret,
                              const char *token)
{
    ob_err_t e = ob_aws_creds_set(&s->creds, akid, secret, token, 0);
    if (e == OB_OK)
        s->have = 1;
    return e;
}

ob_credsrc_t *ob_credsrc_ref(ob_credsrc_t *s)
{
    if (s)
        s->refs++;
    return s;
}

void ob_credsrc_unref(ob_credsrc_t *s)
{
    if (!s || --s->refs > 0)
        return;
    /* No fetch can be running: it holds a reference. Waiters hold none, so
     * tell them. */
    while (!ob_list_empty(&s->waiters)) {
        ob_creds_wait_t *w = WAIT_OF(ob_list_first(&s->waiters));
        ob_list_remove(&w->node);
        w->cb(OB_ERR_CANCELLED, "credentials source released", NULL, w->arg);
        free(w);
    }
    if (s->ops->destroy)
        s->ops->destroy(s->data);
    ob_timer_stop(&s->notify);
    ob_aws_creds_clear(&s->creds);
    free(s->last_msg);
    free(s->last_code);
    free(s->describe);
    free(s);
}

const ob_aws_creds_t *ob_credsrc_peek(ob_credsrc_t *s)
{
    if (!usable(s))
        return NULL;
    if (s->creds.expires_ms && wall_ms() >= s->advisory_at && !s->fetching &&
        ob_loop_now(s->loop) >= s->next_advisory)
        start_fetch(s); /* background refresh; current credentials still good */
    return &s->creds;
}

ob_creds_wait_t *ob_credsrc_get(ob_credsrc_t *s, ob_creds_cb *cb, void *arg)
{
    ob_creds_wait_t *w = ob_calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->src = s;
    w->cb = cb;
    w->arg = arg;
    ob_list_push_front(&s->waiters, &w->node);
    if (!s->fetching)
        ob_timer_start(&s->notify, 0);
    return w;
}

void ob_creds_wait_cancel(ob_creds_wait_t *w)
{
    if (!w)
        return;
    ob_list_remove(&w->node);
    free(w);
}

void ob_credsrc_invalidate(ob_credsrc_t *s)
{
    if (s->ops->fetch)
        s->have = 0;
    s->fail_until = 0;
}

const char *ob_credsrc_describe(const ob_credsrc_t *s)
{
    return s->describe;
}

uint64_t ob_credsrc_fetches(const ob_credsrc_t *s)
{
    return s->fetches;
}
