/*
 * The iam stage: the Billing Engine role, launched as a CloudFormation stack
 * in each account (the template is workers/templates/billing-engine-role.json,
 * compiled in as ob_iam_template).
 *
 * Input: onboard.stage/1 at stage iam (new accounts carry the bucket and
 * report results, existing accounts none). Output: the hand-off to the
 * connect topic with results.stack {id, name, role_arn, external_id}.
 *
 * The stage is level-triggered: it describes the stack (by name, in the
 * account's identity and the request's region) and decides from what it
 * sees, never from what it believes it did; one stack poll is one more
 * describe after a WAIT step, so thousands of stacks in progress are only
 * thousands of timers in the runtime.
 *
 *   does not exist       -> CreateStack (a new ExternalId, unless a stack of
 *                           this run already had one)
 *   *_IN_PROGRESS        -> WAIT stack.poll, describe again (after our own
 *                           CreateStack, see "When to poll" below)
 *   CREATE/UPDATE_COMPLETE  made or updated by this run: done; found so at
 *                           the start (a rerun, an existing account, a new
 *                           template): UpdateStack, where "No updates are to
 *                           be performed." is success
 *   UPDATE_ROLLBACK_COMPLETE  after our update: permanent failure with the
 *                           reason; found at the start: UpdateStack again
 *   ROLLBACK_COMPLETE, CREATE_FAILED, REVIEW_IN_PROGRESS
 *                        -> DeleteStack, wait until gone, create again, at
 *                           most stack.redo.max times; then a permanent
 *                           failure with the reason of the resource that
 *                           failed (DescribeStackEvents)
 *   *_FAILED otherwise   -> permanent: a person has to look at the stack
 *
 * A request for another region than the account's stack (the account's
 * record lists the stacks earlier requests made): the Billing Engine role
 * has a fixed name and IAM is global, so the old region's stack is deleted
 * first (by its id, in its region, waiting until it is gone), its ExternalId
 * kept for the new one: the role's ARN and ExternalId stay what the Billing
 * Engine knows, and the account never has two Billing Engine roles. The role
 * is absent while the stack moves.
 *
 * Offboarding (mode offboard, onboard.stage/2): every stack the account's
 * record lists (in whichever region) and the stack of the fleet's name in
 * the request's region are deleted the way a move deletes one (DeleteStack
 * with a token, polled until gone; DELETE_FAILED is deleted again once, then
 * a permanent failure naming the stack), and with them the Billing Engine
 * role. -> hand-off to the connect topic with results.removed.stacks: the
 * fleet's stacks that are gone now.
 *
 * A repair (onboard.request/2 whose repair names stack_drifted or
 * role_unassumable: verification found the role changed or deleted by hand)
 * deletes the complete stack it finds and makes it again, once, its
 * ExternalId kept: CloudFormation's view of a role changed behind its back is
 * stale, and an update of an unchanged template changes nothing.
 *
 * The ExternalId (128 bits from OpenSSL, 32 hex) is generated once per
 * account: the stack keeps it (its ExternalId parameter is not NoEcho, see
 * the template's Description), every update sends UsePreviousValue, and a
 * redo reuses the one of the stack it deleted. It is never logged, never put
 * in an error message or a state field: it only travels in the CreateStack
 * call and in the connect hand-off.
 *
 * Idempotency: every CreateStack, UpdateStack and DeleteStack carries a
 * ClientRequestToken derived from the request id, the account, the region,
 * the stack name and the stack it is about: the stack to update or delete,
 * or for a create after a redo the rolled-back stack just deleted (so every
 * redo has a token of its own). The runtime's HTTP retries and a redelivered
 * message are thus deduplicated by CloudFormation. A token CloudFormation
 * ties to an older stack (CreateStack answered with a stack already deleted,
 * or TokenAlreadyExistsException) moves a counter in the token on.
 * AlreadyExistsException is a concurrent create: describe again.
 *
 * When to poll a stack this stage created. Polling every stack every
 * stack.poll from its create would cost one DescribeStacks per stack per
 * interval, tens per stack, while the account's stack simply takes the time
 * it takes (tens of seconds). So the process learns how long its creates
 * take and polls from then on:
 *   - up to IAM_PROBES stacks at a time are probes (a create takes a free
 *     place): polled every stack.poll from their create, so the time each
 *     was first seen finished is a fair (uncensored) sample of how long a
 *     create takes;
 *   - every other stack makes no call before it is as old as the estimate
 *     (the 10th percentile of the last IAM_SAMPLES probe samples, once there
 *     are IAM_MIN_SAMPLES), then polls every stack.poll;
 *   - before there is an estimate, it waits without calling, looking again
 *     every stack.poll (it becomes a probe when one finishes), for at most
 *     IAM_BLIND_MAX_MS, then polls.
 * In a burst of thousands of creates the first probes to finish set the
 * estimate for the rest; a stack that is slower than the estimate is polled
 * as before. Samples are only taken from probes: a stack first polled at the
 * estimate can only be seen finished at or after it, and learning from those
 * would push the estimate up run after run. This is the stage's only state
 * shared between messages (per process); stages.h has a hook for tests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ob_alloc.h"
#include "ob_awsproto.h"
#include "ob_crypto.h"
#include "ob_state.h"
#include "stages.h"

/* A stack still in progress after this long is given up (retries exhausted). */
#define IAM_MAX_WAIT_MS (60LL * 60 * 1000)
/* Concurrent creates, vanishing stacks, busy stacks and bad replies tolerated. */
#define IAM_MAX_RACES       5
#define IAM_MAX_TOKEN_BUMPS 3
#define IAM_MAX_BAD_REPLIES 3
#define IAM_STATUS_LEN      64
#define IAM_REASON_LEN      400
#define IAM_TAG_MANAGED     "onboard:managed-by"
/* When to poll a stack we created (see the header). */
#define IAM_PROBES       32
#define IAM_SAMPLES      64
#define IAM_MIN_SAMPLES  3
#define IAM_BLIND_MAX_MS (120LL * 1000)

typedef enum pending_e {
    P_START = 0, /* nothing asked yet */
    P_WAIT,      /* a WAIT step: describe next */
    P_DESCRIBE,
    P_CREATE,
    P_UPDATE,
    P_DELETE,
    P_EVENTS,      /* the failure reason, before giving up */
    P_MOVE,        /* DescribeStacks of an earlier request's stack in another region */
    P_MOVE_DELETE, /* DeleteStack of it */
    P_MOVE_WAIT    /* a WAIT step: describe it again */
} pending_t;

typedef enum acted_e { A_NONE = 0, A_CREATED, A_UPDATED, A_DELETED } acted_t;

/* What the last DescribeStacks showed. */
/* The strings of the state below are sized to their text (put(), never NULL
 * once parse ran: "" when empty), not to the most they could hold: ten
 * thousand stacks are waited on at once. */
typedef struct seen_s {
    char *id;
    char *status;
    char *reason;
    char *role_arn;
    int has_ext_param;                  /* the stack has an ExternalId parameter */
    char external_id[OB_BE_EXT_ID_LEN]; /* "" unless it is 32 lowercase hex */
    int has_bucket_param;
} seen_t;

typedef struct iam_st_s {
    /* The hand-off: parsed (malloc'd) while the stage works on it, packed
     * while it waits a long while (a stack being made), never both. */
    ob_stage_msg_t *in;
    ob_stage_packed_t *packed;
    const char *principal; /* the settings' (billing.principal) */
    char *stack_name;
    long long poll_ms;
    int redo_max;
    char started_at[OB_TIME_LEN];

    pending_t pending;
    seen_t seen;
    char external_id[OB_BE_EXT_ID_LEN]; /* "" until known; never logged */
    acted_t acted;
    char *acted_id; /* the stack our last create/update answered with */
    char *redo_of;  /* the rolled-back stack this run deleted ("" none) */
    int redo;       /* rolled-back stacks deleted */
    int races, token_bumps, bad_replies;
    long long waited_ms;
    uint64_t created_ms; /* clock when our CreateStack was answered (0: none in progress) */
    int probe;           /* this stack is one of the probes (counted in the timing's probes) */
    int polls;           /* polls since our create (a probe's first come sooner) */
    char *fail_reason;   /* StackStatusReason of the stack we gave up on */
    char *fail_status;
    int resumed;           /* continues what another holder created or updated */
    long long hint_first;  /* that holder's first-poll estimate (-1: none) */
    uint64_t created_wall; /* wall clock ms of the create (0: not known) */
    int seen_busy;  /* a taken-over stack was seen in progress: its create time is a fair sample */
    char *progress; /* recorded for a new holder (see iam_resume) */
    /* Stacks earlier requests had the fleet make in other regions (the
     * account's record lists them): the role's name is fixed, so each is
     * deleted before this region's stack is made (malloc'd list; NULL:
     * none), its ExternalId kept. */
    char *move;
    char *moving;
    char moving_region[OB_REGION_LEN];
    int move_deletes;
    /* Offboarding: the stack of the fleet's name looked for (after the
     * record's), and the fleet's stacks found gone (malloc'd list; NULL:
     * none). */
    int off_named;
    char *removed;
    /* A repair of the stack's drift (the request's repair: stack_drifted,
     * role_unassumable): the stack found complete is deleted and made again
     * once, its ExternalId kept. */
    int repaired;
    struct iam_timing_s *tm; /* the worker's (ctx) */
} iam_st_t;

static int offboarding(const iam_st_t *st)
{
    return st->in && st->in->request.mode == OB_MODE_OFFBOARD;
}

/* ---- the state's strings ---- */

/* An empty string takes no memory: it is the literal "", never written to
 * and never freed (a state has eleven strings, mostly empty, and a worker
 * holds ten thousand states). */
static void str_free(char **d)
{
    if (*d && **d)
        free(*d);
    *d = NULL;
}

/* *d becomes a copy of s (NULL: ""), or of its first n bytes. */
static void put_n(char **d, const char *s, size_t n)
{
    str_free(d);
    size_t m = s ? strnlen(s, n) : 0;
    *d = m ? ob_strndup(s, m) : (char *)"";
}

static void put(char **d, const char *s)
{
    put_n(d, s, s ? strlen(s) : 0);
}

static void put_printf(char **d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_printf(char **d, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    put(d, buf);
}

/* Forget what DescribeStacks showed (every string "" again). */
static void seen_reset(seen_t *s)
{
    put(&s->id, "");
    put(&s->status, "");
    put(&s->reason, "");
    put(&s->role_arn, "");
    s->has_ext_param = s->has_bucket_param = 0;
    memset(s->external_id, 0, sizeof(s->external_id));
}

static void strings_init(iam_st_t *st)
{
    seen_reset(&st->seen);
    char **owned[] = {&st->stack_name,  &st->acted_id, &st->redo_of, &st->fail_reason,
                      &st->fail_status, &st->progress, &st->moving};
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
        put(owned[i], "");
}

static void strings_free(iam_st_t *st)
{
    char **owned[] = {&st->seen.id,     &st->seen.status, &st->seen.reason, &st->seen.role_arn,
                      &st->stack_name,  &st->acted_id,    &st->redo_of,     &st->fail_reason,
                      &st->fail_status, &st->progress,    &st->moving};
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
        str_free(owned[i]);
}

/* ---- how long this process's creates take (see the header) ---- */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* What the stage learns of one worker's creates: its ctx (ob_stage_ops_t). */
typedef struct iam_timing_s {
    long long ms[IAM_SAMPLES]; /* a ring of probe samples */
    int n, next;
    long long first; /* the estimate from them (-1: not enough), kept as samples come */
    int probes;      /* probe stacks in progress */
    uint64_t (*now)(void);
} iam_timing_t;

/* The stage's per-worker context: the timings, and the streams that pack
 * the hand-offs of accounts waiting for their stacks (a hand-off packed is a
 * quarter of one parsed: 10,000 accounts waiting hold 9 MiB less). */
typedef struct iam_ctx_s {
    iam_timing_t tm; /* first: the ctx is its timing (ob_stage_iam_timing_reset) */
    ob_zip_t *zip;
    /* ob_iam_template without its indentation (malloc'd), as CreateStack and
     * UpdateStack send it: the same JSON, members in order, in two thirds of
     * the bytes and half once form-encoded. A create's body is mostly the
     * template, and a burst of creates holds a thousand bodies at once. */
    char *template_body;
} iam_ctx_t;

static void *iam_ctx_new(void)
{
    iam_ctx_t *c = ob_calloc(1, sizeof(*c));
    ob_stage_iam_timing_reset(c, NULL);
    c->zip = ob_zip_new();
    json_t *t = json_loads(ob_iam_template, JSON_REJECT_DUPLICATES, NULL);
    c->template_body = t ? json_dumps(t, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(t);
    if (!c->template_body) /* a template that does not parse: CloudFormation says why */
        c->template_body = ob_strdup(ob_iam_template);
    return c;
}

static void iam_ctx_free(void *ctx)
{
    iam_ctx_t *c = ctx;
    if (!c)
        return;
    ob_zip_free(c->zip);
    free(c->template_body);
    free(c);
}

void ob_stage_iam_timing_reset(void *ctx, uint64_t (*now_ms)(void))
{
    iam_timing_t *t = &((iam_ctx_t *)ctx)->tm;
    memset(t, 0, sizeof(*t));
    t->first = -1;
    t->now = now_ms ? now_ms : mono_ms;
}

static ob_zip_t *zip_of(const iam_st_t *st)
{
    return ((const iam_ctx_t *)(const void *)st->tm)->zip;
}

static const char *template_body(const iam_st_t *st)
{
    return ((const iam_ctx_t *)(const void *)st->tm)->template_body;
}

static void pack_in(iam_st_t *st)
{
    if (!st->in)
        return;
    st->packed = ob_stage_msg_pack(zip_of(st), st->in);
    free(st->in);
    st->in = NULL;
}

/* The hand-off parsed again: 0, or -1 when its pack is unreadable (out is
 * then a FAIL step). */
static int unpack_in(iam_st_t *st, ob_step_t *out)
{
    if (st->in || !st->packed)
        return 0;
    ob_stage_packed_t *p = st->packed;
    st->packed = NULL;
    st->in = ob_malloc(sizeof(*st->in));
    if (ob_stage_msg_unpack(zip_of(st), p, st->in) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "internal",
                     "the hand-off kept while the stack was made cannot be read back");
        return -1;
    }
    return 0;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* The age at which a non-probe stack is first polled (-1: not known yet):
 * the 10th percentile of the samples, computed when one arrives (stacks
 * waiting for it ask on every look). */
long long ob_stage_iam_first_poll_ms(const void *ctx)
{
    return ((const iam_timing_t *)ctx)->first;
}

static void timing_estimate(iam_timing_t *t)
{
    if (t->n < IAM_MIN_SAMPLES) {
        t->first = -1;
        return;
    }
    long long v[IAM_SAMPLES];
    memcpy(v, t->ms, sizeof(long long) * (size_t)t->n);
    qsort(v, (size_t)t->n, sizeof(v[0]), cmp_ll);
    t->first = v[t->n / 10];
}

static void timing_release(iam_st_t *st)
{
    if (st->probe && st->tm->probes > 0)
        st->tm->probes--;
    st->probe = 0;
}

/* Our created stack was seen finished (any final status). */
static void timing_finished(iam_st_t *st)
{
    if (!st->created_ms)
        return;
    if (st->probe && (!st->resumed || st->seen_busy)) {
        st->tm->ms[st->tm->next] = (long long)(st->tm->now() - st->created_ms);
        st->tm->next = (st->tm->next + 1) % IAM_SAMPLES;
        if (st->tm->n < IAM_SAMPLES)
            st->tm->n++;
        timing_estimate(st->tm);
    }
    timing_release(st);
    st->created_ms = 0;
}

/* ---- small helpers ---- */

static int hex32(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return 0;
    return n == 32;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return s[n] == '\0' || s[n] == ':';
}

/* What the template's BillingEnginePrincipal accepts: an account id, an
 * account root ARN, or an IAM role or user ARN. */
static int principal_ok(const char *p)
{
    if (strlen(p) == 12 && digits(p, 12))
        return 1;
    const char *parts[] = {"arn:aws:iam::", "arn:aws-cn:iam::", "arn:aws-us-gov:iam::"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(parts[i]);
        if (strncmp(p, parts[i], n) != 0)
            continue;
        const char *a = p + n;
        if (strlen(a) < 13 || !digits(a, 12) || a[12] != ':')
            return 0;
        const char *r = a + 13;
        if (!strcmp(r, "root"))
            return 1;
        const char *name = !strncmp(r, "role/", 5) ? r + 5 : !strncmp(r, "user/", 5) ? r + 5 : NULL;
        if (!name || !*name || strlen(name) > 512)
            return 0;
        for (; *name; name++)
            if (!((*name >= 'a' && *name <= 'z') || (*name >= 'A' && *name <= 'Z') ||
                  (*name >= '0' && *name <= '9') || strchr("_+=,.@/-", *name)))
                return 0;
        return 1;
    }
    return 0;
}

/* A stack name that is also a valid role name (the template names the role
 * after the stack): 1-64 letters, digits and hyphens, starting with a letter. */
static int stack_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-'))
            return 0;
    return 1;
}

static int aws_code_is(const ob_aws_result_t *res, const char *code)
{
    return res->err == OB_ERR_AWS && !strcmp(res->aws.code, code);
}

static int validation_says(const ob_aws_result_t *res, const char *text)
{
    return aws_code_is(res, "ValidationError") && strstr(res->aws.message, text) != NULL;
}

/* "ob-" + 40 hex of SHA-256 over what makes the call unique. */
static void make_token(const iam_st_t *st, const char *op, const char *what, int gen, char out[48])
{
    char buf[1024], hex[OB_SHA256_HEX_LEN];
    snprintf(buf, sizeof(buf), "onboard.iam|%s|%s|%s|%s|%s|%s|%d", op, st->in->request.request_id,
             st->in->request.account_id, st->in->request.region, st->stack_name, what, gen);
    ob_sha256_hex(buf, strlen(buf), hex);
    snprintf(out, 48, "ob-%.40s", hex);
}

/* ---- steps ---- */

static void fail_with_stack(iam_st_t *st, ob_step_t *out)
{
    out->state[0] = OB_ST_STACK_ID;
    out->state[1] = st->seen.id;
    out->state[2] = OB_ST_STACK_STATUS;
    out->state[3] = st->seen.status;
}

static void fail_aws(iam_st_t *st, ob_step_t *out, const ob_aws_result_t *res)
{
    ob_step_fail_aws(out, res);
    fail_with_stack(st, out);
}

static void wait_ms(iam_st_t *st, ob_step_t *out, long long ms)
{
    memset(out, 0, sizeof(*out));
    out->kind = OB_STEP_WAIT;
    out->wait_ms = (uint64_t)ms;
    st->waited_ms += ms;
    st->pending = P_WAIT;
}

/* A probe's first polls come sooner, doubling up to stack.poll
 * (poll/16, /8, /4, /2, then every stack.poll): a stack that is quick to
 * make (a small template, a region that answers fast) is seen done in a
 * fraction of the interval, and its sample says so; a slow one costs four
 * polls more, and only the probes (IAM_PROBES at a time) make them. */
#define IAM_RAMP_STEPS  4
#define IAM_POLL_MIN_MS 10

static long long probe_poll_ms(const iam_st_t *st)
{
    int shift = IAM_RAMP_STEPS - st->polls;
    long long ms = shift > 0 ? st->poll_ms >> shift : st->poll_ms;
    return ms < IAM_POLL_MIN_MS ? IAM_POLL_MIN_MS : ms; /* stack.poll is 10 ms at least */
}

static void wait_poll(iam_st_t *st, ob_step_t *out)
{
    if (st->created_ms && st->probe) {
        long long ms = probe_poll_ms(st);
        st->polls++;
        wait_ms(st, out, ms);
        return;
    }
    wait_ms(st, out, st->poll_ms);
}

/* Before polling a stack we created: how much longer to wait without a
 * call (0: poll now). */
static long long poll_not_before(iam_st_t *st)
{
    if (!st->created_ms || st->probe)
        return 0;
    long long age = (long long)(st->tm->now() - st->created_ms);
    long long first = ob_stage_iam_first_poll_ms(st->tm);
    if (first < 0 && st->resumed)
        first = st->hint_first; /* what the process that created it had learnt */
    if (first >= 0)
        return age < first ? first - age : 0;
    /* Nothing learnt anywhere yet: a probe if there is a place (a taken-over
     * stack too: its sample counts if it is seen in progress first), else
     * wait without a call for the probes to teach us. */
    if (st->tm->probes < IAM_PROBES) {
        st->probe = 1; /* a probe finished: take its place */
        st->tm->probes++;
        return 0;
    }
    if (age >= IAM_BLIND_MAX_MS)
        return 0;
    return st->poll_ms < IAM_BLIND_MAX_MS - age ? st->poll_ms : IAM_BLIND_MAX_MS - age;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* What a new holder of this request needs to continue (iam_resume): the
 * stack our create or update answered with, and when the create was. */
static void note_progress(iam_st_t *st, ob_step_t *out)
{
    if (st->acted == A_CREATED) {
        if (!st->created_wall)
            st->created_wall = wall_ms();
        long long first = ob_stage_iam_first_poll_ms(st->tm);
        put_printf(&st->progress, "created %llu %s %lld", (unsigned long long)st->created_wall,
                   st->acted_id[0] ? st->acted_id : "-",
                   first >= 0    ? first
                   : st->resumed ? st->hint_first
                                 : -1);
    } else if (st->acted == A_UPDATED)
        put_printf(&st->progress, "updated 0 %s", st->acted_id[0] ? st->acted_id : "-");
    else
        return;
    out->progress = st->progress;
}

/* After our CreateStack was answered. */
static void wait_created(iam_st_t *st, ob_step_t *out)
{
    timing_release(st); /* a redo's create: the earlier one's probe ends */
    st->created_ms = st->tm->now();
    if (!st->created_ms)
        st->created_ms = 1;
    if (st->tm->probes < IAM_PROBES) {
        st->probe = 1;
        st->tm->probes++;
    }
    st->polls = 0;
    if (st->probe) {
        wait_poll(st, out);
        return;
    }
    /* Not a probe: first polled at the age creates take (or, while nothing
     * is learnt, after a stack.poll of waiting to learn it). */
    long long w = poll_not_before(st);
    wait_ms(st, out, w > IAM_POLL_MIN_MS ? w : IAM_POLL_MIN_MS);
}

static int query_start(iam_st_t *st, ob_step_t *out, const char *action, pending_t p)
{
    char err[256];
    memset(out, 0, sizeof(*out));
    if (ob_query_init(&out->req, OB_SVC_CLOUDFORMATION, action, err, sizeof(err)) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "request_error", "%s: %s", action, err);
        return -1;
    }
    out->kind = OB_STEP_CALL;
    snprintf(out->region, sizeof(out->region), "%s", st->in->request.region);
    st->pending = p;
    return 0;
}

/* Add key=value pairs; a failure turns the step into a FAIL. */
static int q(ob_step_t *out, const char *key, const char *value)
{
    char err[256];
    if (out->kind != OB_STEP_CALL)
        return -1;
    if (ob_query_add(&out->req, key, value, err, sizeof(err)) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "request_error", "%s: %s", key, err);
        return -1;
    }
    return 0;
}

static int qm(ob_step_t *out, const char *list, int i, const char *field, const char *value)
{
    char err[256];
    if (out->kind != OB_STEP_CALL)
        return -1;
    if (ob_query_add_member(&out->req, list, i, field, value, err, sizeof(err)) != OB_OK) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "request_error", "%s.%d.%s: %s", list, i,
                     field ? field : "", err);
        return -1;
    }
    return 0;
}

static void describe(iam_st_t *st, ob_step_t *out)
{
    if (query_start(st, out, "DescribeStacks", P_DESCRIBE) == 0)
        q(out, "StackName", st->stack_name);
}

/* Capabilities and Tags, shared by CreateStack and UpdateStack: our own tag
 * first, then the request's (ours is left out when they already fill the
 * 50 CloudFormation allows). */
static void add_common(iam_st_t *st, ob_step_t *out)
{
    qm(out, "Capabilities.member", 1, NULL, "CAPABILITY_NAMED_IAM");
    const ob_request_t *r = &st->in->request;
    int n = 0;
    if (r->ntags < 50) {
        qm(out, "Tags.member", ++n, "Key", IAM_TAG_MANAGED);
        qm(out, "Tags.member", n, "Value", "onboard-iam");
    }
    for (size_t i = 0; i < r->ntags && n < 50; i++) {
        qm(out, "Tags.member", ++n, "Key", r->tags[i].key);
        qm(out, "Tags.member", n, "Value", r->tags[i].value);
    }
}

static void create(iam_st_t *st, ob_step_t *out)
{
    if (!st->external_id[0]) {
        uint8_t rnd[16];
        if (ob_random_bytes(rnd, sizeof(rnd)) != OB_OK) {
            ob_step_fail(out, OB_DLQ_RETRIES_EXHAUSTED, "random",
                         "OpenSSL could not produce random bytes for the ExternalId");
            return;
        }
        ob_hex(rnd, sizeof(rnd), st->external_id);
    }
    char token[48];
    make_token(st, "CreateStack", st->redo_of, st->token_bumps, token);
    if (query_start(st, out, "CreateStack", P_CREATE) != 0)
        return;
    const ob_request_t *r = &st->in->request;
    q(out, "StackName", st->stack_name);
    q(out, "TemplateBody", template_body(st));
    qm(out, "Parameters.member", 1, "ParameterKey", "BillingEnginePrincipal");
    qm(out, "Parameters.member", 1, "ParameterValue", st->principal);
    qm(out, "Parameters.member", 2, "ParameterKey", "ExternalId");
    qm(out, "Parameters.member", 2, "ParameterValue", st->external_id);
    qm(out, "Parameters.member", 3, "ParameterKey", "CurBucket");
    qm(out, "Parameters.member", 3, "ParameterValue", r->has_bucket ? r->bucket : "");
    add_common(st, out);
    q(out, "OnFailure", "ROLLBACK");
    q(out, "ClientRequestToken", token);
}

static void update(iam_st_t *st, ob_step_t *out)
{
    char token[48];
    make_token(st, "UpdateStack", st->seen.id, 0, token);
    if (query_start(st, out, "UpdateStack", P_UPDATE) != 0)
        return;
    const ob_request_t *r = &st->in->request;
    q(out, "StackName", st->stack_name);
    q(out, "TemplateBody", template_body(st));
    qm(out, "Parameters.member", 1, "ParameterKey", "BillingEnginePrincipal");
    qm(out, "Parameters.member", 1, "ParameterValue", st->principal);
    qm(out, "Parameters.member", 2, "ParameterKey", "ExternalId");
    qm(out, "Parameters.member", 2, "UsePreviousValue", "true");
    qm(out, "Parameters.member", 3, "ParameterKey", "CurBucket");
    if (r->has_bucket)
        qm(out, "Parameters.member", 3, "ParameterValue", r->bucket);
    else if (st->seen.has_bucket_param)
        qm(out, "Parameters.member", 3, "UsePreviousValue", "true"); /* keep what it reads */
    else
        qm(out, "Parameters.member", 3, "ParameterValue", "");
    add_common(st, out);
    q(out, "ClientRequestToken", token);
}

static void delete_stack(iam_st_t *st, ob_step_t *out)
{
    char token[48];
    make_token(st, "DeleteStack", st->seen.id, 0, token);
    if (query_start(st, out, "DeleteStack", P_DELETE) != 0)
        return;
    /* By id: never a newer stack that took the name meanwhile. */
    q(out, "StackName", st->seen.id);
    q(out, "ClientRequestToken", token);
}

static void events(iam_st_t *st, ob_step_t *out)
{
    if (query_start(st, out, "DescribeStackEvents", P_EVENTS) == 0)
        q(out, "StackName", st->seen.id);
}

/* Give up on a stack that failed: permanent, with the stack's reason and,
 * when found, the first resource's. */
static void give_up(iam_st_t *st, ob_step_t *out, const char *resource_reason)
{
    const char *why = st->fail_reason[0] ? st->fail_reason : "(no reason given)";
    if (resource_reason && resource_reason[0])
        ob_step_fail(out, OB_DLQ_PERMANENT, "stack_failed",
                     "stack %s in %s is %s after %d redo%s: %s (%s)", st->stack_name,
                     st->in->request.region, st->fail_status, st->redo, st->redo == 1 ? "" : "s",
                     resource_reason, why);
    else
        ob_step_fail(out, OB_DLQ_PERMANENT, "stack_failed",
                     "stack %s in %s is %s after %d redo%s: %s", st->stack_name,
                     st->in->request.region, st->fail_status, st->redo, st->redo == 1 ? "" : "s",
                     why);
    fail_with_stack(st, out);
    out->state[3] = st->fail_status;
}

static void hand_off(iam_st_t *st, ob_step_t *out)
{
    if (!st->seen.role_arn[0]) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "stack_output",
                     "stack %s is %s but has no RoleArn output: it was not made from the "
                     "Billing Engine template",
                     st->seen.id, st->seen.status);
        fail_with_stack(st, out);
        return;
    }
    ob_stage_msg_t m;
    ob_stage_msg_init(&m);
    if (ob_request_copy(&m.request, &st->in->request) != OB_OK) {
        ob_step_fail(out, OB_DLQ_RETRIES_EXHAUSTED, "out_of_memory", "cannot build the hand-off");
        return;
    }
    m.stage = OB_STAGE_CONNECT;
    m.has_bucket = st->in->has_bucket;
    m.bucket = st->in->bucket;
    m.has_report = st->in->has_report;
    m.report = st->in->report;
    memcpy(m.trace, st->in->trace, sizeof(m.trace));
    m.has_stack = 1;
    /* st outlives m: its strings are borrowed. */
    m.stack = (ob_stack_result_t){st->seen.id, st->stack_name, st->seen.role_arn, st->external_id};
    if (ob_stage_hand_on(&m, OB_STAGE_IAM, st->started_at, out) != 0) {
        fail_with_stack(st, out);
        return;
    }
    out->state[0] = OB_ST_STACK_ID;
    out->state[1] = st->seen.id;
    out->state[2] = OB_ST_ROLE_ARN;
    out->state[3] = st->seen.role_arn;
    out->state[4] = OB_ST_STACK_STATUS;
    out->state[5] = st->seen.status;
    out->state[6] = OB_ST_STACKS; /* the account's one stack now */
    out->state[7] = st->seen.id;
    /* What the earlier stages recorded, again: a write of theirs that Redis
     * lost (a failover, a flush) is made good here. */
    out->state[8] = OB_ST_BUCKET;
    out->state[9] = st->in->has_bucket ? st->in->bucket.name : "";
    out->state[10] = OB_ST_REPORT; /* the fleet's report: an existing account's own is not */
    out->state[11] =
        st->in->has_report && st->in->request.mode == OB_MODE_NEW ? st->in->report.name : "";
}

/* Offboarding: the fleet's stacks are gone, and the role with them. */
static void offboard_hand_off(iam_st_t *st, ob_step_t *out)
{
    ob_stage_msg_t m;
    ob_stage_msg_init(&m);
    if (ob_request_copy(&m.request, &st->in->request) != OB_OK) {
        ob_step_fail(out, OB_DLQ_RETRIES_EXHAUSTED, "out_of_memory", "cannot build the hand-off");
        return;
    }
    m.stage = OB_STAGE_CONNECT;
    m.has_removed = m.has_removed_stacks = 1;
    m.removed_reports = st->in->removed_reports; /* st outlives m: borrowed */
    m.removed_stacks = st->removed ? st->removed : "";
    memcpy(m.trace, st->in->trace, sizeof(m.trace));
    if (ob_stage_hand_on(&m, OB_STAGE_IAM, st->started_at, out) != 0)
        return;
    out->state[0] = OB_ST_STACK_ID;
    out->state[1] = "";
    out->state[2] = OB_ST_STACKS;
    out->state[3] = "";
    out->state[4] = OB_ST_STACK_STATUS;
    out->state[5] = "DELETE_COMPLETE";
}

/* The stack's ExternalId must be readable before it is kept or handed on. */
static int need_external_id(iam_st_t *st, ob_step_t *out)
{
    if (st->seen.external_id[0])
        return 0;
    ob_step_fail(out, OB_DLQ_PERMANENT, "external_id",
                 st->seen.has_ext_param
                     ? "stack %s has an ExternalId parameter that is not 32 lowercase hex digits "
                       "(NoEcho, or set by hand): the ExternalId cannot be kept; delete the "
                       "stack to start over with a new one"
                     : "stack %s has no ExternalId parameter: it was not made from the Billing "
                       "Engine template",
                 st->seen.id);
    fail_with_stack(st, out);
    return -1;
}

/* The stack is not there (never made, or deleted). */
static void on_gone(iam_st_t *st, ob_step_t *out)
{
    seen_reset(&st->seen);
    if (st->acted == A_CREATED) {
        /* CreateStack answered, yet no stack: its token belongs to a stack
         * deleted earlier (CloudFormation replayed that call), or someone
         * deleted ours. A new generation makes a new token. */
        if (++st->token_bumps > IAM_MAX_TOKEN_BUMPS) {
            ob_step_fail(out, OB_DLQ_RETRIES_EXHAUSTED, "stack_vanished",
                         "stack %s in %s does not exist right after CreateStack succeeded, %d "
                         "times",
                         st->stack_name, st->in->request.region, st->token_bumps);
            out->retry_reason = OB_RR_BUSY;
            return;
        }
    }
    st->acted = A_NONE;
    create(st, out);
}

static int seen_is(const iam_st_t *st, const char *status)
{
    return !strcmp(st->seen.status, status);
}

static int ours(const iam_st_t *st, acted_t a)
{
    return st->acted == a && (!st->acted_id[0] || !strcmp(st->acted_id, st->seen.id));
}

/* Decide from what DescribeStacks showed. */
static void on_seen(iam_st_t *st, ob_step_t *out)
{
    if (st->seen.external_id[0])
        snprintf(st->external_id, sizeof(st->external_id), "%s", st->seen.external_id);
    if (seen_is(st, "DELETE_COMPLETE")) {
        on_gone(st, out);
        return;
    }
    if (seen_is(st, "ROLLBACK_COMPLETE") || seen_is(st, "CREATE_FAILED") ||
        seen_is(st, "REVIEW_IN_PROGRESS")) {
        /* Nothing usable: delete it and create it again. */
        put(&st->fail_reason, st->seen.reason);
        put(&st->fail_status, st->seen.status);
        if (st->redo >= st->redo_max) {
            events(st, out);
            return;
        }
        st->redo++;
        put(&st->redo_of, st->seen.id);
        st->acted = A_NONE;
        delete_stack(st, out);
        return;
    }
    if (!ends_with(st->seen.status, "_IN_PROGRESS") || st->acted != A_CREATED)
        timing_finished(st);
    if (ends_with(st->seen.status, "_IN_PROGRESS")) {
        st->seen_busy = 1;
        if (st->waited_ms >= IAM_MAX_WAIT_MS) {
            ob_step_fail(out, OB_DLQ_RETRIES_EXHAUSTED, "stack_timeout",
                         "stack %s is still %s after %lld minutes", st->stack_name, st->seen.status,
                         st->waited_ms / 60000);
            out->retry_reason = OB_RR_BUSY;
            fail_with_stack(st, out);
            return;
        }
        wait_poll(st, out);
        return;
    }
    if ((seen_is(st, "CREATE_COMPLETE") || seen_is(st, "UPDATE_COMPLETE") ||
         seen_is(st, "IMPORT_COMPLETE") || seen_is(st, "UPDATE_ROLLBACK_COMPLETE")) &&
        (st->in->request.repair & (OB_DRIFT_STACK_DRIFTED | OB_DRIFT_ROLE_UNASSUMABLE)) &&
        !st->repaired && st->acted == A_NONE) {
        /* Its role was changed or deleted by hand: CloudFormation's view of
         * it is stale, and an update would change nothing ("No updates are
         * to be performed."). Make it again, the same ExternalId: the role's
         * ARN and ExternalId stay what the Billing Engine knows. */
        if (need_external_id(st, out) != 0)
            return;
        st->repaired = 1;
        put(&st->redo_of, st->seen.id);
        delete_stack(st, out);
        return;
    }
    if (seen_is(st, "CREATE_COMPLETE") || seen_is(st, "UPDATE_COMPLETE") ||
        seen_is(st, "IMPORT_COMPLETE")) {
        if (need_external_id(st, out) != 0)
            return;
        if (ours(st, A_CREATED) || ours(st, A_UPDATED)) {
            hand_off(st, out);
            return;
        }
        update(st, out); /* found complete: bring it to this template and these parameters */
        return;
    }
    if (seen_is(st, "UPDATE_ROLLBACK_COMPLETE") || seen_is(st, "IMPORT_ROLLBACK_COMPLETE")) {
        if (ours(st, A_UPDATED)) {
            put(&st->fail_reason, st->seen.reason);
            put(&st->fail_status, st->seen.status);
            events(st, out);
            return;
        }
        if (need_external_id(st, out) != 0)
            return;
        update(st, out); /* an earlier update rolled back: try it again */
        return;
    }
    /* ROLLBACK_FAILED, UPDATE_ROLLBACK_FAILED, DELETE_FAILED, UPDATE_FAILED...:
     * CloudFormation could not clean up; retrying cannot help. */
    ob_step_fail(out, OB_DLQ_PERMANENT, "stack_failed",
                 "stack %s in %s is %s and needs a person (continue the rollback or delete it): "
                 "%s",
                 st->stack_name, st->in->request.region, st->seen.status,
                 st->seen.reason[0] ? st->seen.reason : "(no reason given)");
    fail_with_stack(st, out);
}

/* A reply that is 200 but not what the call answers: ask again after a poll. */
static void bad_reply(iam_st_t *st, ob_step_t *out, const char *what, const char *err)
{
    if (++st->bad_replies > IAM_MAX_BAD_REPLIES) {
        ob_step_fail(out, OB_DLQ_RETRIES_EXHAUSTED, "bad_reply", "%s: %s", what, err);
        fail_with_stack(st, out);
        return;
    }
    wait_poll(st, out);
}

static void copy_text(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

static void on_describe(iam_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    if (validation_says(res, "does not exist")) {
        on_gone(st, out);
        return;
    }
    if (res->err != OB_OK) {
        fail_aws(st, out, res);
        return;
    }
    ob_xml_doc_t *doc = NULL;
    const ob_xml_node_t *result = NULL;
    char err[256];
    if (ob_query_parse_result(res->body.data ? res->body.data : "", res->body.len, "DescribeStacks",
                              &doc, &result, err, sizeof(err)) != OB_OK) {
        bad_reply(st, out, "DescribeStacks", err);
        return;
    }
    const ob_xml_node_t *m = ob_xml_path(result, "Stacks/member");
    if (!m) {
        /* An empty list for a name: as good as "does not exist". */
        ob_xml_free(doc);
        on_gone(st, out);
        return;
    }
    seen_t *s = &st->seen;
    seen_reset(s);
    put(&s->id, ob_xml_path_text(m, "StackId"));
    put(&s->status, ob_xml_path_text(m, "StackStatus"));
    put(&s->reason, ob_xml_path_text(m, "StackStatusReason"));
    const ob_xml_node_t *p;
    for (p = ob_xml_child(ob_xml_child(m, "Parameters"), "member"); p;
         p = ob_xml_next(p, "member")) {
        const char *k = ob_xml_path_text(p, "ParameterKey");
        const char *v = ob_xml_path_text(p, "ParameterValue");
        if (k && !strcmp(k, "ExternalId")) {
            s->has_ext_param = 1;
            if (v && hex32(v))
                copy_text(s->external_id, sizeof(s->external_id), v);
        } else if (k && !strcmp(k, "CurBucket")) {
            s->has_bucket_param = 1;
        }
    }
    for (p = ob_xml_child(ob_xml_child(m, "Outputs"), "member"); p; p = ob_xml_next(p, "member")) {
        const char *k = ob_xml_path_text(p, "OutputKey");
        if (k && !strcmp(k, "RoleArn"))
            put(&s->role_arn, ob_xml_path_text(p, "OutputValue"));
    }
    ob_xml_free(doc);
    if (!s->id[0] || !s->status[0]) {
        bad_reply(st, out, "DescribeStacks", "a stack without StackId or StackStatus");
        return;
    }
    on_seen(st, out);
}

/* The StackId a CreateStack/UpdateStack reply names ("" when unreadable:
 * the call happened all the same). */
static void reply_stack_id(const ob_aws_result_t *res, const char *action, char **out)
{
    ob_xml_doc_t *doc = NULL;
    const ob_xml_node_t *result = NULL;
    char err[256];
    put(out, "");
    if (ob_query_parse_result(res->body.data ? res->body.data : "", res->body.len, action, &doc,
                              &result, err, sizeof(err)) == OB_OK)
        put(out, ob_xml_path_text(result, "StackId"));
    ob_xml_free(doc);
}

static void on_create(iam_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    if (res->err == OB_OK) {
        st->acted = A_CREATED;
        reply_stack_id(res, "CreateStack", &st->acted_id);
        st->created_wall = wall_ms();
        wait_created(st, out);
        note_progress(st, out);
        return;
    }
    if (aws_code_is(res, "AlreadyExistsException")) {
        /* Someone created it between our describe and our create. */
        if (++st->races > IAM_MAX_RACES) {
            fail_aws(st, out, res);
            out->fail_class = OB_DLQ_RETRIES_EXHAUSTED;
            out->retry_reason = OB_RR_BUSY;
            return;
        }
        describe(st, out);
        return;
    }
    if (aws_code_is(res, "TokenAlreadyExistsException") &&
        ++st->token_bumps <= IAM_MAX_TOKEN_BUMPS) {
        create(st, out);
        return;
    }
    if (aws_code_is(res, "LimitExceededException")) {
        ob_step_fail_aws(out, res);
        out->fail_class = OB_DLQ_PERMANENT; /* a quota, not throttling: never retried */
        snprintf(out->message, sizeof(out->message),
                 "the CloudFormation stack quota of the account in %s is reached (%.300s): "
                 "raise the quota or delete stacks, then replay",
                 st->in->request.region, res->aws.message);
        return;
    }
    /* InsufficientCapabilitiesException, ValidationError (a template or
     * parameter refused), access denied: permanent; throttling and 5xx after
     * the HTTP retries: retries exhausted. */
    fail_aws(st, out, res);
}

static void on_update(iam_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    if (res->err == OB_OK) {
        st->acted = A_UPDATED;
        reply_stack_id(res, "UpdateStack", &st->acted_id);
        wait_poll(st, out);
        note_progress(st, out);
        return;
    }
    if (validation_says(res, "No updates are to be performed")) {
        hand_off(st, out); /* the stack is already what we want */
        return;
    }
    if (validation_says(res, "does not exist")) {
        on_gone(st, out);
        return;
    }
    if (validation_says(res, "_IN_PROGRESS state") && ++st->races <= IAM_MAX_RACES) {
        wait_poll(st, out); /* someone else started an operation on it */
        return;
    }
    fail_aws(st, out, res);
}

static void on_delete(iam_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    if (res->err == OB_OK || validation_says(res, "does not exist")) {
        st->acted = A_DELETED;
        wait_poll(st, out);
        return;
    }
    fail_aws(st, out, res);
}

/* The reason of the resource that failed in the stack's last operation:
 * events come newest first; the last *_FAILED resource event before the
 * operation's start is its root cause. */
static void on_events(iam_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    char why[IAM_REASON_LEN] = "";
    ob_xml_doc_t *doc = NULL;
    const ob_xml_node_t *result = NULL;
    char err[256];
    if (res->err == OB_OK &&
        ob_query_parse_result(res->body.data ? res->body.data : "", res->body.len,
                              "DescribeStackEvents", &doc, &result, err, sizeof(err)) == OB_OK) {
        const ob_xml_node_t *e;
        for (e = ob_xml_path(result, "StackEvents/member"); e; e = ob_xml_next(e, "member")) {
            const char *type = ob_xml_path_text(e, "ResourceType");
            const char *status = ob_xml_path_text(e, "ResourceStatus");
            const char *reason = ob_xml_path_text(e, "ResourceStatusReason");
            if (!type || !status)
                continue;
            if (!strcmp(type, "AWS::CloudFormation::Stack")) {
                if (!strcmp(status, "CREATE_IN_PROGRESS") || !strcmp(status, "UPDATE_IN_PROGRESS"))
                    break;
                continue;
            }
            if (ends_with(status, "_FAILED") && reason && reason[0] &&
                !strstr(reason, "Resource creation cancelled"))
                snprintf(why, sizeof(why), "%s: %s",
                         ob_xml_path_text(e, "LogicalResourceId")
                             ? ob_xml_path_text(e, "LogicalResourceId")
                             : type,
                         reason);
        }
    }
    ob_xml_free(doc);
    give_up(st, out, why);
}

/* ---- the stage ---- */

static ob_err_t iam_parse(void *p, void *ctx, const ob_config_t *cfg, const char *payload,
                          size_t len, ob_job_plan_t *plan, ob_step_t *fail)
{
    iam_st_t *st = p;
    st->tm = ctx; /* ob_stage_iam.ctx_new's: never NULL */
    strings_init(st);
    ob_msg_error_t me;
    memset(&me, 0, sizeof(me));
    st->in = ob_malloc(sizeof(*st->in));
    if (ob_stage_parse(payload, len, st->in, &me) != OB_OK) {
        ob_step_fail(fail, ob_dlq_class_for(&me), me.code, "%s", me.message);
        snprintf(fail->field, sizeof(fail->field), "%s", me.field);
        return OB_ERR_PARSE;
    }
    const ob_request_t *r = &st->in->request;
    snprintf(plan->account_id, sizeof(plan->account_id), "%s", r->account_id);
    snprintf(plan->request_id, sizeof(plan->request_id), "%s", r->request_id);
    ob_request_desired(r, plan->desired);
    plan->offboard = r->mode == OB_MODE_OFFBOARD;
    plan->repair = r->repair;
    plan->mode = ob_mode_name(r->mode);
    snprintf(plan->role_arn, sizeof(plan->role_arn), "%s", r->role_arn);
    snprintf(plan->external_id, sizeof(plan->external_id), "%s", r->external_id);
    snprintf(plan->region, sizeof(plan->region), "%s", r->region);
    if (st->in->stage != OB_STAGE_IAM) {
        ob_step_fail(fail, OB_DLQ_INVALID_INPUT, "wrong_stage",
                     "/stage: the iam worker takes hand-offs at stage iam, got %s",
                     ob_stage_name(st->in->stage));
        snprintf(fail->field, sizeof(fail->field), "/stage");
        return OB_ERR_PARSE;
    }
    const char *principal = cfg && cfg->billing_principal ? cfg->billing_principal : "";
    const char *name = cfg && cfg->stack_name_prefix ? cfg->stack_name_prefix : "";
    if (!principal[0]) {
        ob_step_fail(fail, OB_DLQ_PERMANENT, "config",
                     "billing.principal (OB_BILLING_PRINCIPAL) is not set: the Billing Engine "
                     "role needs the principal it trusts; set it and replay");
        return OB_ERR_CONFIG;
    }
    if (!principal_ok(principal)) {
        ob_step_fail(fail, OB_DLQ_PERMANENT, "config",
                     "billing.principal (OB_BILLING_PRINCIPAL) \"%.200s\" is not an account id, an "
                     "account root ARN or an IAM role or user ARN",
                     principal);
        return OB_ERR_CONFIG;
    }
    if (!stack_name_ok(name)) {
        ob_step_fail(fail, OB_DLQ_PERMANENT, "config",
                     "stack.name.prefix (OB_STACK_NAME_PREFIX) \"%.200s\" must be 1-64 letters, "
                     "digits and hyphens starting with a letter (it also names the role)",
                     name);
        return OB_ERR_CONFIG;
    }
    st->principal = principal;
    put(&st->stack_name, name);
    st->poll_ms = cfg->stack_poll_ms > 0 ? cfg->stack_poll_ms : 5000;
    st->redo_max = (int)cfg->stack_redo_max;
    ob_msg_now(st->started_at);
    return OB_OK;
}

/* ---- moving the stack from another region ---- */

/* The region of a stack id (arn:PARTITION:cloudformation:REGION:...), "" if
 * none. */
static void stack_region(const char *id, char *out, size_t n)
{
    out[0] = '\0';
    const char *p = id;
    for (int i = 0; i < 3 && p; i++)
        p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL;
    const char *e = p ? strchr(p, ':') : NULL;
    if (p && e && (size_t)(e - p) < n) {
        memcpy(out, p, (size_t)(e - p));
        out[e - p] = '\0';
    }
}

/* The next stack to move away from, or 0 when none is left. */
static int move_next(iam_st_t *st)
{
    while (st->move && st->move[0]) {
        const char *list = st->move, *comma = strchr(list, ',');
        size_t n = comma ? (size_t)(comma - list) : strlen(list);
        put_n(&st->moving, list, n);
        char *rest = ob_list_without(list, st->moving);
        free(st->move);
        st->move = rest;
        stack_region(st->moving, st->moving_region, sizeof(st->moving_region));
        if (st->moving[0] && st->moving_region[0] &&
            (offboarding(st) || strcmp(st->moving_region, st->in->request.region) != 0)) {
            st->move_deletes = 0;
            return 1;
        }
    }
    put(&st->moving, "");
    return 0;
}

static void move_describe(iam_st_t *st, ob_step_t *out)
{
    if (query_start(st, out, "DescribeStacks", P_MOVE) != 0)
        return;
    snprintf(out->region, sizeof(out->region), "%s", st->moving_region);
    q(out, "StackName", st->moving);
}

/* Offboarding: a stack of the fleet's is gone (listed once). */
static void removed_add(iam_st_t *st, const char *id)
{
    if (!id || strncmp(id, "arn:", 4) != 0)
        return;
    char *more = ob_list_with(st->removed ? st->removed : "", id, 20);
    if (more) {
        free(st->removed);
        st->removed = more;
    }
}

static void offboard_hand_off(iam_st_t *st, ob_step_t *out);

/* The moves are done: on to this region's stack (describe it), or, when
 * offboarding, to the stack of the fleet's name here, then the hand-off. */
static void moves_done(iam_st_t *st, ob_step_t *out)
{
    if (!offboarding(st)) {
        describe(st, out);
        return;
    }
    if (st->off_named) {
        offboard_hand_off(st, out);
        return;
    }
    st->off_named = 1;
    put(&st->moving, st->stack_name);
    snprintf(st->moving_region, sizeof(st->moving_region), "%s", st->in->request.region);
    st->move_deletes = 0;
    move_describe(st, out);
}

static void next_move(iam_st_t *st, ob_step_t *out)
{
    if (move_next(st))
        move_describe(st, out);
    else
        moves_done(st, out);
}

static void move_wait(iam_st_t *st, ob_step_t *out)
{
    wait_poll(st, out);
    st->pending = P_MOVE_WAIT;
}

/* What DescribeStacks says of the stack being moved away from. */
static void on_move_describe(iam_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    if (validation_says(res, "does not exist")) {
        removed_add(st, st->moving);
        next_move(st, out);
        return;
    }
    if (res->err != OB_OK) {
        ob_step_fail_aws(out, res);
        return;
    }
    ob_xml_doc_t *doc = NULL;
    const ob_xml_node_t *result = NULL;
    char err[256], status[IAM_STATUS_LEN] = "", id[OB_STACK_ID_LEN] = "";
    if (ob_query_parse_result(res->body.data ? res->body.data : "", res->body.len, "DescribeStacks",
                              &doc, &result, err, sizeof(err)) != OB_OK) {
        bad_reply(st, out, "DescribeStacks", err);
        return;
    }
    const ob_xml_node_t *m = ob_xml_path(result, "Stacks/member"), *p;
    copy_text(status, sizeof(status), m ? ob_xml_path_text(m, "StackStatus") : "");
    copy_text(id, sizeof(id), m ? ob_xml_path_text(m, "StackId") : "");
    for (p = m ? ob_xml_child(ob_xml_child(m, "Parameters"), "member") : NULL; p;
         p = ob_xml_next(p, "member")) {
        const char *k = ob_xml_path_text(p, "ParameterKey");
        const char *v = ob_xml_path_text(p, "ParameterValue");
        if (k && !strcmp(k, "ExternalId") && v && hex32(v) && !st->external_id[0])
            copy_text(st->external_id, sizeof(st->external_id), v);
    }
    ob_xml_free(doc);
    if (id[0] && strncmp(st->moving, "arn:", 4) != 0)
        put(&st->moving, id); /* found by name: its id from now on, which names it when gone */
    if (!m || !status[0] || !strcmp(status, "DELETE_COMPLETE")) {
        removed_add(st, id[0] ? id : st->moving);
        next_move(st, out);
        return;
    }
    if (ends_with(status, "_IN_PROGRESS")) {
        if (st->waited_ms >= IAM_MAX_WAIT_MS) {
            if (offboarding(st))
                ob_step_fail(out, OB_DLQ_RETRIES_EXHAUSTED, "stack_timeout",
                             "stack %s, to be deleted to offboard the account, is still %s after "
                             "%lld minutes",
                             st->moving, status, st->waited_ms / 60000);
            else
                ob_step_fail(out, OB_DLQ_RETRIES_EXHAUSTED, "stack_timeout",
                             "stack %s, to be moved to %s, is still %s after %lld minutes",
                             st->moving, st->in->request.region, status, st->waited_ms / 60000);
            out->retry_reason = OB_RR_BUSY;
            return;
        }
        move_wait(st, out);
        return;
    }
    if (offboarding(st) &&
        (st->move_deletes >= 3 || (!strcmp(status, "DELETE_FAILED") && st->move_deletes >= 2))) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "stack_delete_failed",
                     "stack %s is %s after %d DeleteStack calls: CloudFormation cannot remove "
                     "what it made (a resource changed by hand, such as a policy attached to the "
                     "Billing Engine role); fix or delete the stack, then replay the offboarding",
                     st->moving, status, st->move_deletes);
        return;
    }
    if (!offboarding(st) && (!strcmp(status, "DELETE_FAILED") || st->move_deletes >= 3)) {
        ob_step_fail(out, OB_DLQ_PERMANENT, "stack_move_failed",
                     "the account's stack %s must go before one is made in %s (the Billing Engine "
                     "role has one name in the account), but it is %s: delete it, then replay",
                     st->moving, st->in->request.region, status);
        return;
    }
    char token[48];
    make_token(st, "DeleteStack", st->moving, st->move_deletes++, token);
    if (query_start(st, out, "DeleteStack", P_MOVE_DELETE) != 0)
        return;
    snprintf(out->region, sizeof(out->region), "%s", st->moving_region);
    q(out, "StackName", st->moving);
    q(out, "ClientRequestToken", token);
}

static void on_move_delete(iam_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    if (res->err == OB_OK || validation_says(res, "does not exist")) {
        move_wait(st, out);
        return;
    }
    ob_step_fail_aws(out, res);
}

static void step(iam_st_t *st, const ob_aws_result_t *res, ob_step_t *out);

/* A wait for a stack this long or longer, and every wait without a call
 * (until creates are likely done), is spent with the hand-off packed; a wake
 * that only waits on reads nothing of it. A poll unpacks it, and the polls
 * a second apart that follow keep it so (packing each time would cost more
 * CPU than the memory is worth for those few seconds). */
#define IAM_PACK_MS 5000

static void iam_step(void *p, const ob_aws_result_t *res, ob_step_t *out)
{
    iam_st_t *st = p;
    memset(out, 0, sizeof(*out));
    put(&st->progress, ""); /* the last step's: recorded when it was returned */
    if (!res && st->pending == P_WAIT) {
        long long w = poll_not_before(st);
        if (w > 0 && st->waited_ms < IAM_MAX_WAIT_MS) {
            wait_ms(st, out, w); /* our stack is younger than creates take */
            pack_in(st);
            return;
        }
        if (unpack_in(st, out) == 0)
            describe(st, out); /* a poll after a WAIT */
        return;
    }
    if (unpack_in(st, out) != 0)
        return;
    step(st, res, out);
    if (out->kind == OB_STEP_WAIT && st->pending == P_WAIT && out->wait_ms >= IAM_PACK_MS)
        pack_in(st);
}

static void step(iam_st_t *st, const ob_aws_result_t *res, ob_step_t *out)
{
    if (!res && st->pending == P_MOVE_WAIT) {
        move_describe(st, out);
        return;
    }
    if (!res && st->pending == P_START && offboarding(st)) {
        next_move(st, out);
        return;
    }
    if (!res && st->pending == P_START && move_next(st)) {
        move_describe(st, out);
        return;
    }
    if (!res) {
        describe(st, out); /* the first step (a poll after a WAIT: iam_step) */
        return;
    }
    switch (st->pending) {
    case P_DESCRIBE:
        on_describe(st, res, out);
        return;
    case P_CREATE:
        on_create(st, res, out);
        return;
    case P_UPDATE:
        on_update(st, res, out);
        return;
    case P_DELETE:
        on_delete(st, res, out);
        return;
    case P_EVENTS:
        on_events(st, res, out);
        return;
    case P_MOVE:
        on_move_describe(st, res, out);
        return;
    case P_MOVE_DELETE:
        on_move_delete(st, res, out);
        return;
    case P_MOVE_WAIT:
    case P_START:
    case P_WAIT:
        break;
    }
    describe(st, out); /* a reply nobody asked for: look again */
}

/* Another holder of this request created or updated the stack (a rebalance
 * or a kill moved the message here): it is ours, so a complete stack is
 * handed on without an UpdateStack, and one in progress is first described
 * when creates take that long, as if this process had created it. */
static void iam_resume(void *p, const char *progress)
{
    iam_st_t *st = p;
    char what[16], id[OB_STACK_ID_LEN];
    unsigned long long at = 0;
    long long first = -1;
    if (sscanf(progress, "%15s %llu %319s %lld", what, &at, id, &first) < 3)
        return;
    if (!strcmp(what, "created"))
        st->acted = A_CREATED;
    else if (!strcmp(what, "updated"))
        st->acted = A_UPDATED;
    else
        return;
    put(&st->acted_id, strcmp(id, "-") ? id : "");
    st->resumed = 1;
    st->hint_first = first;
    st->created_wall = at;
    if (st->acted == A_CREATED && at > 0) {
        uint64_t now = st->tm->now(), wall = wall_ms();
        uint64_t age = wall > at ? wall - at : 0;
        st->created_ms = now > age ? now - age : 1;
        st->pending = P_WAIT; /* the first step waits as a poll would */
    }
}

/* Handed back mid-stage: what it created or updated, with what this process
 * has learnt of how long creates take by now. */
static const char *iam_snapshot(void *p)
{
    iam_st_t *st = p;
    ob_step_t scratch;
    memset(&scratch, 0, sizeof(scratch));
    note_progress(st, &scratch);
    return scratch.progress;
}

/* The stacks earlier requests made (the record's list, or its stack). */
static void iam_prior(void *p, const char *(*get)(const void *ctx, const char *field),
                      const void *ctx)
{
    iam_st_t *st = p;
    free(st->move);
    st->move = ob_list_with(get(ctx, OB_ST_STACKS), get(ctx, OB_ST_STACK_ID), 20);
}

static void iam_clear(void *p)
{
    iam_st_t *st = p;
    free(st->move);
    free(st->removed);
    st->move = st->removed = NULL;
    timing_release(st);
    strings_free(st);
    ob_stage_msg_clear(st->in);
    free(st->in);
    st->in = NULL;
    ob_stage_packed_free(st->packed);
    st->packed = NULL;
    memset(st->external_id, 0, sizeof(st->external_id));
    memset(st->seen.external_id, 0, sizeof(st->seen.external_id));
}

static ob_err_t iam_reencode(void *p, char **json, size_t *len)
{
    iam_st_t *st = p; /* unpacked if it waits packed: the same hand-off */
    ob_step_t scratch;
    memset(&scratch, 0, sizeof(scratch));
    if (unpack_in(st, &scratch) != 0) {
        ob_step_clear(&scratch);
        return OB_ERR_PARSE;
    }
    if (!st->in)
        return OB_ERR_STATE;
    ob_msg_error_t me;
    return ob_stage_to_json(st->in, json, len, &me);
}

const ob_stage_ops_t ob_stage_iam = {
    .name = "iam",
    .stage = OB_STAGE_IAM,
    .input = "iam",
    .outputs = "connect",
    .state_size = sizeof(iam_st_t),
    .ctx_new = iam_ctx_new,
    .ctx_free = iam_ctx_free,
    .parse = iam_parse,
    .step = iam_step,
    .reencode = iam_reencode,
    .clear = iam_clear,
    .prior = iam_prior,
    .resume = iam_resume,
    .snapshot = iam_snapshot,
};
