/*
 * sim_cfn: CloudFormation for awssim (API 2010-05-15, Query protocol, replies
 * in the namespace http://cloudformation.amazonaws.com/doc/2010-05-15/).
 *
 * Operations: CreateStack, UpdateStack, DeleteStack, DescribeStacks,
 * ListStacks, DescribeStackEvents, GetTemplate, and drift detection
 * (DetectStackDrift, DescribeStackDriftDetectionStatus,
 * DescribeStackResourceDrifts), with AWS's validation and error wording
 * (checked against botocore's model and AWS's documentation).
 *
 * State: stacks live in the state document under "stacks", keyed by StackId
 * ("arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/UUID"), one object each:
 * what DescribeStacks shows (times in epoch ms), the template text, the
 * resolved parameters, the resources the stack owns (logical id -> type,
 * physical id, attributes, evaluated properties), its events, and, while an
 * operation runs, "Pending": {"Op", "DueMs"}, what happens next and when
 * (wall clock). Two more sections index them: "stack_names" (account ->
 * region -> live stack name -> StackId; a name is live until its stack is
 * DELETE_COMPLETE) and "stack_tokens" (account -> region ->
 * ClientRequestToken -> the call that used it). Nothing in the state points
 * anywhere, so dumping, persisting and restoring it stay one call each.
 *
 * Time: a call moves a stack to *_IN_PROGRESS at once and arms one loop timer
 * for the stack, due after sim_latency_ms("cloudformation.stack_create",
 * "...stack_update", "...stack_delete"); when it fires the work happens all
 * at once (roles created or removed, outputs evaluated) and the stack takes
 * its next status. The timers sit in a module-private hash table per
 * simulator (StackId -> timer) that init() rebuilds from "Pending", so a
 * restored state resumes where it stopped. Thousands of stacks in progress
 * are thousands of entries in the loop's timer heap: cheap.
 *
 * Drift: DetectStackDrift (on a stack in a status AWS detects drift in, one
 * detection at a time) records a detection in "stack_drift_detections"
 * (id -> StackId, DetectionStatus, Timestamp, DueMs...) and arms a timer in
 * the same table, keyed by the detection's id, due after
 * sim_latency_ms("cloudformation.drift_detect"). When it fires every
 * resource of the stack is compared with what it is now (sim_drift_check,
 * sim_drift.c) and the stack keeps the results ("ResourceDrifts", what
 * DescribeStackResourceDrifts pages through) and its "DriftInformation";
 * a stack deleted meanwhile fails the detection. A stack remembers its last
 * DRIFT_KEPT detection ids; older ones are forgotten.
 *
 * Templates: JSON only (YAML is refused with a ValidationError that says
 * so), at most 51,200 bytes, TemplateURL not supported. A template is
 * checked when the call arrives, as AWS does: structure, parameters (Type,
 * Default, AllowedValues, AllowedPattern, Min/MaxLength, Min/MaxValue,
 * NoEcho), conditions, and a dry run of every intrinsic function (Ref,
 * Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::If,
 * Fn::FindInMap, Fn::Base64, Fn::GetAZs) that finds unresolved references,
 * the order the resources depend on each other and the capabilities the
 * template needs. When the timer fires the same evaluation runs for real, in
 * dependency order, with physical ids and attributes. Resource types:
 * AWS::IAM::Role (a real role through sim_put_role, so STS can assume it),
 * AWS::IAM::Policy and AWS::IAM::ManagedPolicy (attached to the roles they
 * name), AWS::CloudFormation::WaitConditionHandle (nothing to do). Any other
 * well-formed type fails its resource and the stack rolls back with the
 * reason, as when AWS cannot create a resource.
 *
 * The rollback fault (--fault cloudformation.stack_create=rollback:RATE or
 * rollback:count=N): CreateStack asks sim_rollback_fault() whether this stack
 * fails, unless a stack of that account, region and name has already failed
 * from it, and marks the stack ("InjectedFault"). When the create timer
 * fires, the first IAM role of the plan (else its first resource) fails with
 * FAULT_REASON, what depends on it is never attempted, and the stack takes
 * the path of any failed creation: CREATE_FAILED, then per OnFailure
 * ROLLBACK_IN_PROGRESS -> ROLLBACK_COMPLETE (what it made removed), stays
 * CREATE_FAILED (DO_NOTHING) or is deleted (DELETE). The name goes into the
 * "stack_faults" section, so a re-created stack of that name succeeds, also
 * after a restart from the state file.
 *
 * Updates and rollbacks are one mechanism: apply a template to the resources
 * the stack has. What the stack had and the new template no longer produces
 * is removed at the end on success; on failure the previous template is
 * applied back the same way.
 *
 * Threading: loop thread only, like the rest of the simulator.
 */
#include "sim.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ob_alloc.h"
#include "ob_crypto.h"
#include "ob_hash.h"

#define CFN_TEMPLATE_MAX 51200
#define CFN_STACK_LIMIT  2000 /* AWS's default quota of stacks per account and region */
#define CFN_PAGE         100
#define CFN_EVENTS_MAX   1000
#define CFN_RETENTION_MS (90LL * 24 * 3600 * 1000) /* deleted stacks stay listable 90 days */
#define CFN_EVAL_DEPTH   64
#define CFN_ERR          "ValidationError"
/* The ResourceStatusReason of the resource the rollback fault fails. */
#define FAULT_REASON                                                                               \
    "Internal Failure (injected by awssim: fault cloudformation.stack_create=rollback)"

/* ---- small helpers ---- */

typedef struct cfn_err_s {
    const char *code;
    char msg[1536];
} cfn_err_t;

static int cfn_fail(cfn_err_t *er, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int cfn_fail(cfn_err_t *er, const char *code, const char *fmt, ...)
{
    va_list ap;
    er->code = code;
    va_start(ap, fmt);
    vsnprintf(er->msg, sizeof(er->msg), fmt, ap);
    va_end(ap);
    return -1;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int64_t jint(const json_t *o, const char *k)
{
    return (int64_t)json_integer_value(json_object_get(o, k));
}

static const char *param(const sim_call_t *c, const char *k)
{
    return jstr(c->params, k);
}

static int streq(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "A, B, C": the keys of an object, sorted. */
static void keys_joined(json_t *set, ob_buf_t *out)
{
    size_t n = json_object_size(set), i = 0;
    const char **v = ob_calloc(n ? n : 1, sizeof(*v));
    const char *k;
    json_t *x;
    if (!v)
        return;
    json_object_foreach(set, k, x)
    {
        v[i++] = k;
    }
    qsort(v, n, sizeof(*v), cmp_cstr);
    for (i = 0; i < n; i++)
        ob_buf_printf(out, "%s%s", i ? ", " : "", v[i]);
    free(v);
}

static const char *buf_str(const ob_buf_t *b)
{
    return b->data ? b->data : "";
}

/* Append a scalar as CloudFormation turns it into text; -1 for lists and maps. */
static int append_scalar(ob_buf_t *b, json_t *v)
{
    if (json_is_string(v))
        ob_buf_append(b, json_string_value(v), json_string_length(v));
    else if (json_is_integer(v))
        ob_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        ob_buf_printf(b, "%g", json_real_value(v));
    else if (json_is_boolean(v))
        ob_buf_puts(b, json_is_true(v) ? "true" : "false");
    else
        return -1;
    return 0;
}

static int is_true_text(const char *s)
{
    return s && !strcasecmp(s, "true");
}

static void make_uuid(char out[37])
{
    unsigned char r[16];
    sim_random_bytes(r, sizeof(r));
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
}

/* ---- per-simulator timers ---- */

typedef struct cfn_ctx_s cfn_ctx_t;
typedef struct cfn_timer_s cfn_timer_t;

struct cfn_timer_s {
    cfn_ctx_t *ctx;
    ob_timer_t *timer;
    cfn_timer_t *next; /* hash chain */
    char *key;         /* a StackId, or a drift detection's id (a UUID) */
};

struct cfn_ctx_s {
    sim_t *sim;
    cfn_timer_t **slots;
    size_t nslots, count;
    cfn_ctx_t *next;
};

static cfn_ctx_t *contexts;

static void stack_advance(sim_t *sim, const char *stack_id);
static json_t *detections_of(sim_t *sim);
static void drift_finish(sim_t *sim, const char *id);

static size_t hash_id(const char *s)
{
    return (size_t)ob_hash_str(s);
}

static cfn_ctx_t *ctx_find(sim_t *sim)
{
    for (cfn_ctx_t *x = contexts; x; x = x->next)
        if (x->sim == sim)
            return x;
    return NULL;
}

static cfn_ctx_t *ctx_get(sim_t *sim)
{
    cfn_ctx_t *x = ctx_find(sim);
    if (x)
        return x;
    x = ob_calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->sim = sim;
    x->nslots = 256;
    x->slots = ob_calloc(x->nslots, sizeof(*x->slots));
    if (!x->slots) {
        free(x);
        return NULL;
    }
    x->next = contexts;
    contexts = x;
    return x;
}

/* The link that points at the entry for id (or at the NULL ending its chain). */
static cfn_timer_t **timer_link(cfn_ctx_t *x, const char *id)
{
    cfn_timer_t **l = &x->slots[hash_id(id) % x->nslots];
    while (*l && strcmp((*l)->key, id) != 0)
        l = &(*l)->next;
    return l;
}

static void timers_grow(cfn_ctx_t *x)
{
    size_t n = x->nslots * 4;
    cfn_timer_t **s = ob_calloc(n, sizeof(*s));
    if (!s)
        return;
    for (size_t i = 0; i < x->nslots; i++) {
        cfn_timer_t *e = x->slots[i];
        while (e) {
            cfn_timer_t *next = e->next;
            size_t h = hash_id(e->key) % n;
            e->next = s[h];
            s[h] = e;
            e = next;
        }
    }
    free(x->slots);
    x->slots = s;
    x->nslots = n;
}

static void timer_entry_free(cfn_timer_t *e)
{
    ob_timer_free(e->timer);
    free(e->key);
    free(e);
}

static void timer_fired(ob_timer_t *t, void *arg)
{
    cfn_timer_t *e = arg;
    cfn_ctx_t *x = e->ctx;
    cfn_timer_t **l = timer_link(x, e->key);
    if (*l == e) {
        *l = e->next;
        x->count--;
    }
    /* The entry is out of the table: advancing may arm a new one. */
    if (json_object_get(detections_of(x->sim), e->key))
        drift_finish(x->sim, e->key);
    else
        stack_advance(x->sim, e->key);
    timer_entry_free(e);
}

static void schedule(sim_t *sim, const char *key, uint64_t delay_ms)
{
    cfn_ctx_t *x = ctx_get(sim);
    if (!x)
        return;
    cfn_timer_t **l = timer_link(x, key);
    cfn_timer_t *e = *l;
    if (!e) {
        e = ob_calloc(1, sizeof(*e));
        if (!e)
            return;
        e->ctx = x;
        e->key = ob_strdup(key);
        e->timer = ob_timer_new(sim_loop(sim), timer_fired, e);
        if (!e->key || !e->timer) {
            timer_entry_free(e);
            return;
        }
        *l = e;
        if (++x->count > x->nslots * 2)
            timers_grow(x);
    }
    ob_timer_start(e->timer, delay_ms);
}

static void unschedule(sim_t *sim, const char *key)
{
    cfn_ctx_t *x = ctx_find(sim);
    if (!x)
        return;
    cfn_timer_t **l = timer_link(x, key);
    cfn_timer_t *e = *l;
    if (e) {
        *l = e->next;
        x->count--;
        timer_entry_free(e);
    }
}

static void timers_clear(cfn_ctx_t *x)
{
    for (size_t i = 0; i < x->nslots; i++) {
        while (x->slots[i]) {
            cfn_timer_t *e = x->slots[i];
            x->slots[i] = e->next;
            timer_entry_free(e);
        }
    }
    x->count = 0;
}

/* ---- indexes ---- */

static json_t *stacks_of(sim_t *sim)
{
    return sim_section(sim, "stacks");
}

/* section[account][region], created on demand when create is set. */
static json_t *by_region(sim_t *sim, const char *section, const char *account, const char *region,
                         int create)
{
    json_t *s = sim_section(sim, section);
    json_t *a = json_object_get(s, account);
    if (!a) {
        if (!create)
            return NULL;
        a = json_object();
        json_object_set_new(s, account, a);
    }
    json_t *r = json_object_get(a, region);
    if (!r && create) {
        r = json_object();
        json_object_set_new(a, region, r);
    }
    return r;
}

/* A stack by name (live stacks only) or by StackId (any, deleted included). */
static json_t *find_stack(sim_t *sim, const char *account, const char *region,
                          const char *name_or_id)
{
    if (!strncmp(name_or_id, "arn:", 4)) {
        json_t *st = json_object_get(stacks_of(sim), name_or_id);
        if (st && streq(jstr(st, "Account"), account) && streq(jstr(st, "Region"), region))
            return st;
        return NULL;
    }
    const char *id = jstr(by_region(sim, "stack_names", account, region, 0), name_or_id);
    return id ? json_object_get(stacks_of(sim), id) : NULL;
}

typedef struct sref_s {
    const char *account, *region, *name, *id;
} sref_t;

static sref_t stack_ref(const json_t *st)
{
    sref_t r = {jstr(st, "Account"), jstr(st, "Region"), jstr(st, "StackName"),
                jstr(st, "StackId")};
    return r;
}

/* ---- events ---- */

static void add_event(json_t *st, const char *logical, const char *physical, const char *type,
                      const char *status, const char *reason)
{
    json_t *ev = json_object_get(st, "Events");
    if (!ev) {
        ev = json_array();
        json_object_set_new(st, "Events", ev);
    }
    int64_t now = sim_now_ms();
    char id[160], ts[32], uuid[37];
    if (!strcmp(type, "AWS::CloudFormation::Stack")) {
        make_uuid(uuid);
        snprintf(id, sizeof(id), "%s", uuid);
    } else {
        sim_iso8601(now, ts);
        snprintf(id, sizeof(id), "%.100s-%s-%s", logical, status, ts);
    }
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "EventId", id, "LogicalResourceId",
                          logical, "PhysicalResourceId", physical ? physical : "", "ResourceType",
                          type, "Timestamp", (json_int_t)now, "ResourceStatus", status);
    if (!e)
        return;
    if (reason)
        json_object_set_new(e, "ResourceStatusReason", json_string(reason));
    json_array_append_new(ev, e);
    if (json_array_size(ev) > CFN_EVENTS_MAX)
        json_array_remove(ev, 0);
}

/* New status; reason is the stack's StackStatusReason (NULL: none), the event
 * gets event_reason. */
static void set_status(json_t *st, const char *status, const char *reason, const char *event_reason)
{
    json_object_set_new(st, "StackStatus", json_string(status));
    if (reason)
        json_object_set_new(st, "StackStatusReason", json_string(reason));
    else
        json_object_del(st, "StackStatusReason");
    add_event(st, jstr(st, "StackName"), jstr(st, "StackId"), "AWS::CloudFormation::Stack", status,
              event_reason ? event_reason : reason);
}

/* ---- template evaluation ---- */

typedef struct eval_s {
    json_t *tmpl;
    json_t *values; /* parameter -> value (string, or array for list types) */
    json_t *conds;  /* condition -> true/false, filled as they are evaluated */
    json_t *res;    /* real run: logical id -> resource entry; NULL: dry run */
    json_t *deps;   /* dry run: the logical ids referenced (a set) */
    const sref_t *ref;
    const char *block; /* "Resources" or "Outputs", for messages */
    json_t *novalue;   /* what Ref AWS::NoValue returns */
    int depth, cond_depth, in_conditions;
    char err[1024];
} eval_t;

static json_t *ev(eval_t *e, json_t *v);
static int cond_lookup(eval_t *e, const char *name);

static json_t *ev_err(eval_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static json_t *ev_err(eval_t *e, const char *fmt, ...)
{
    if (!e->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->err, sizeof(e->err), fmt, ap);
        va_end(ap);
    }
    return NULL;
}

static json_t *res_def(eval_t *e, const char *name)
{
    return json_object_get(json_object_get(e->tmpl, "Resources"), name);
}

/* 1 when the resource is in the stack (its Condition holds), 0 not, -1 error. */
static int res_active(eval_t *e, const char *name)
{
    const char *cond = jstr(res_def(e, name), "Condition");
    return cond ? cond_lookup(e, cond) : 1;
}

static json_t *unresolved(eval_t *e, const char *name)
{
    if (e->in_conditions)
        return ev_err(e,
                      "Template format error: Unresolved dependencies [%s]. Cannot reference "
                      "resources in the Conditions block of the template",
                      name);
    return ev_err(e,
                  "Template format error: Unresolved resource dependencies [%s] in the %s block "
                  "of the template",
                  name, e->block);
}

static json_t *ev_ref(eval_t *e, const char *name)
{
    json_t *v = json_object_get(e->values, name);
    const sref_t *r = e->ref;
    if (v)
        return json_incref(v);
    if (!strcmp(name, "AWS::AccountId"))
        return json_string(r->account);
    if (!strcmp(name, "AWS::Region"))
        return json_string(r->region);
    if (!strcmp(name, "AWS::StackName"))
        return json_string(r->name);
    if (!strcmp(name, "AWS::StackId"))
        return json_string(r->id);
    if (!strcmp(name, "AWS::Partition"))
        return json_string("aws");
    if (!strcmp(name, "AWS::URLSuffix"))
        return json_string("amazonaws.com");
    if (!strcmp(name, "AWS::NoValue"))
        return json_incref(e->novalue);
    if (!strcmp(name, "AWS::NotificationARNs"))
        return json_array();
    if (!res_def(e, name) || e->in_conditions)
        return unresolved(e, name);
    int act = res_active(e, name);
    if (act <= 0)
        return act < 0 ? NULL : unresolved(e, name);
    if (!e->res) {
        json_object_set_new(e->deps, name, json_true());
        return json_sprintf("awssim-ref-%s", name);
    }
    const char *pid = jstr(json_object_get(e->res, name), "PhysicalResourceId");
    if (!pid)
        return ev_err(e, "Resource %s is not available", name);
    return json_string(pid);
}

static int type_has_attr(const char *type, const char *att)
{
    if (!strcmp(type, "AWS::IAM::Role"))
        return !strcmp(att, "Arn") || !strcmp(att, "RoleId");
    if (!strcmp(type, "AWS::IAM::ManagedPolicy"))
        return !strcmp(att, "PolicyArn") || !strcmp(att, "PolicyId");
    if (!strcmp(type, "AWS::IAM::Policy") ||
        !strcmp(type, "AWS::CloudFormation::WaitConditionHandle"))
        return 0;
    return 1; /* types awssim does not create: their resource fails anyway */
}

static json_t *ev_getatt_of(eval_t *e, const char *res, const char *att)
{
    json_t *def = res_def(e, res);
    if (!def || e->in_conditions)
        return ev_err(e, "Template error: instance of Fn::GetAtt references undefined resource %s",
                      res);
    if (!type_has_attr(jstr(def, "Type"), att))
        return ev_err(e,
                      "Template error: resource %s does not support attribute type %s in "
                      "Fn::GetAtt",
                      res, att);
    int act = res_active(e, res);
    if (act <= 0)
        return act < 0 ? NULL : unresolved(e, res);
    if (!e->res) {
        json_object_set_new(e->deps, res, json_true());
        return json_sprintf("awssim-att-%s-%s", res, att);
    }
    json_t *v = json_object_get(json_object_get(json_object_get(e->res, res), "Attributes"), att);
    if (!v)
        return ev_err(e, "Attribute %s of resource %s is not available", att, res);
    return json_incref(v);
}

static json_t *ev_getatt(eval_t *e, json_t *arg)
{
    char res[256], att[256];
    if (json_is_string(arg)) {
        const char *s = json_string_value(arg), *dot = strchr(s, '.');
        if (!dot || dot == s || !dot[1])
            goto bad;
        snprintf(res, sizeof(res), "%.*s", (int)(dot - s), s);
        snprintf(att, sizeof(att), "%s", dot + 1);
        return ev_getatt_of(e, res, att);
    }
    if (!json_is_array(arg) || json_array_size(arg) != 2 || !json_is_string(json_array_get(arg, 0)))
        goto bad;
    snprintf(res, sizeof(res), "%s", json_string_value(json_array_get(arg, 0)));
    json_t *a = ev(e, json_array_get(arg, 1));
    if (!a)
        return NULL;
    if (!json_is_string(a)) {
        json_decref(a);
        goto bad;
    }
    snprintf(att, sizeof(att), "%s", json_string_value(a));
    json_decref(a);
    return ev_getatt_of(e, res, att);
bad:
    return ev_err(e, "Template error: every Fn::GetAtt object requires two non-empty parameters");
}

static json_t *ev_sub(eval_t *e, json_t *arg)
{
    const char *s;
    json_t *vars = NULL;
    if (json_is_string(arg)) {
        s = json_string_value(arg);
    } else if (json_is_array(arg) && json_array_size(arg) == 2 &&
               json_is_string(json_array_get(arg, 0)) && json_is_object(json_array_get(arg, 1))) {
        s = json_string_value(json_array_get(arg, 0));
        vars = ev(e, json_array_get(arg, 1));
        if (!vars)
            return NULL;
    } else {
        return ev_err(e, "Template error: One or more Fn::Sub intrinsic functions don't specify "
                         "expected arguments. Specify a string as first argument, and an optional "
                         "second argument to specify a mapping of values to replace in the string");
    }
    ob_buf_t out = {0};
    json_t *result = NULL;
    while (*s) {
        if (s[0] != '$' || s[1] != '{') {
            ob_buf_putc(&out, *s++);
            continue;
        }
        const char *close = strchr(s + 2, '}');
        if (!close) {
            ob_buf_puts(&out, s);
            break;
        }
        if (s[2] == '!') { /* ${!Literal} */
            ob_buf_puts(&out, "${");
            ob_buf_append(&out, s + 3, (size_t)(close - (s + 3)) + 1);
            s = close + 1;
            continue;
        }
        char name[256];
        const char *a = s + 2, *b = close;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        snprintf(name, sizeof(name), "%.*s", (int)(b - a), a);
        json_t *v = json_object_get(vars, name);
        const char *dot = strchr(name, '.');
        if (v) {
            json_incref(v);
        } else if (dot && strncmp(name, "AWS::", 5) != 0) {
            char res[256];
            snprintf(res, sizeof(res), "%.*s", (int)(dot - name), name);
            v = ev_getatt_of(e, res, dot + 1);
        } else {
            v = ev_ref(e, name);
        }
        if (!v)
            goto done;
        if (v == e->novalue || append_scalar(&out, v) != 0) {
            json_decref(v);
            ev_err(e,
                   "Template error: variable %s in Fn::Sub expression does not resolve to a "
                   "string",
                   name);
            goto done;
        }
        json_decref(v);
        s = close + 1;
    }
    result = json_string(buf_str(&out));
done:
    ob_buf_free(&out);
    json_decref(vars);
    return result;
}

static json_t *ev_join(eval_t *e, json_t *arg)
{
    if (!json_is_array(arg) || json_array_size(arg) != 2 || !json_is_string(json_array_get(arg, 0)))
        goto bad;
    json_t *list = ev(e, json_array_get(arg, 1));
    if (!list)
        return NULL;
    if (!json_is_array(list)) {
        json_decref(list);
        goto bad;
    }
    ob_buf_t out = {0};
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
    {
        if (i)
            ob_buf_puts(&out, json_string_value(json_array_get(arg, 0)));
        if (append_scalar(&out, x) != 0) {
            ob_buf_free(&out);
            json_decref(list);
            goto bad;
        }
    }
    json_t *r = json_string(buf_str(&out));
    ob_buf_free(&out);
    json_decref(list);
    return r;
bad:
    return ev_err(e, "Template error: every Fn::Join object requires two parameters, (1) a string "
                     "delimiter and (2) a list of strings to be joined or a function that returns "
                     "a list of strings (such as Fn::GetAZs) to be joined.");
}

static json_t *ev_select(eval_t *e, json_t *arg)
{
    if (!json_is_array(arg) || json_array_size(arg) != 2)
        return ev_err(e, "Template error: Fn::Select requires a list argument with two elements: "
                         "an integer index and a list");
    json_t *ix = ev(e, json_array_get(arg, 0));
    if (!ix)
        return NULL;
    long n = -1;
    if (json_is_integer(ix))
        n = (long)json_integer_value(ix);
    else if (json_is_string(ix) && *json_string_value(ix)) {
        char *end;
        n = strtol(json_string_value(ix), &end, 10);
        if (*end)
            n = -1;
    }
    json_decref(ix);
    json_t *list = ev(e, json_array_get(arg, 1));
    if (!list)
        return NULL;
    json_t *r = NULL;
    if (!json_is_array(list))
        ev_err(e, "Template error: Fn::Select requires a list argument with two elements: an "
                  "integer index and a list");
    else if (n < 0 || (size_t)n >= json_array_size(list))
        ev_err(e, "Template error: Fn::Select cannot select nonexistent value at index %ld", n);
    else
        r = json_incref(json_array_get(list, (size_t)n));
    json_decref(list);
    return r;
}

static json_t *ev_split(eval_t *e, json_t *arg)
{
    if (!json_is_array(arg) || json_array_size(arg) != 2 ||
        !json_is_string(json_array_get(arg, 0)) || !*json_string_value(json_array_get(arg, 0)))
        return ev_err(e, "Template error: every Fn::Split object requires two parameters, (1) a "
                         "string delimiter and (2) a string to be split or a function that "
                         "returns a string to be split.");
    const char *d = json_string_value(json_array_get(arg, 0));
    json_t *src = ev(e, json_array_get(arg, 1));
    if (!src)
        return NULL;
    if (!json_is_string(src)) {
        json_decref(src);
        return ev_err(e, "Template error: Fn::Split requires a string to split");
    }
    json_t *out = json_array();
    const char *s = json_string_value(src), *p;
    size_t dl = strlen(d);
    while ((p = strstr(s, d)) != NULL) {
        json_array_append_new(out, json_stringn(s, (size_t)(p - s)));
        s = p + dl;
    }
    json_array_append_new(out, json_string(s));
    json_decref(src);
    return out;
}

static json_t *ev_if(eval_t *e, json_t *arg)
{
    if (!json_is_array(arg) || json_array_size(arg) != 3 || !json_is_string(json_array_get(arg, 0)))
        return ev_err(e, "Template error: Fn::If requires a list argument with three elements");
    int c = cond_lookup(e, json_string_value(json_array_get(arg, 0)));
    if (c < 0)
        return NULL;
    return ev(e, json_array_get(arg, c ? 1 : 2));
}

static json_t *ev_findinmap(eval_t *e, json_t *arg)
{
    if (!json_is_array(arg) || json_array_size(arg) != 3)
        return ev_err(e, "Template error: every Fn::FindInMap object requires three parameters, "
                         "the map name, map key and the attribute for return value");
    char k[3][256];
    for (size_t i = 0; i < 3; i++) {
        json_t *v = ev(e, json_array_get(arg, i));
        if (!v)
            return NULL;
        ob_buf_t b = {0};
        int bad = append_scalar(&b, v);
        snprintf(k[i], sizeof(k[i]), "%s", buf_str(&b));
        ob_buf_free(&b);
        json_decref(v);
        if (bad)
            return ev_err(e, "Template error: every Fn::FindInMap object requires three "
                             "parameters, the map name, map key and the attribute for return "
                             "value");
    }
    json_t *v = json_object_get(
        json_object_get(json_object_get(json_object_get(e->tmpl, "Mappings"), k[0]), k[1]), k[2]);
    if (!v)
        return ev_err(e, "Template error: Unable to get mapping for %s::%s::%s", k[0], k[1], k[2]);
    return json_incref(v);
}

static json_t *ev_base64(eval_t *e, json_t *arg)
{
    json_t *v = ev(e, arg);
    if (!v)
        return NULL;
    if (!json_is_string(v)) {
        json_decref(v);
        return ev_err(e, "Template error: Fn::Base64 requires a string");
    }
    char *s = ob_base64_encode(json_string_value(v), json_string_length(v));
    json_decref(v);
    json_t *r = json_string(s ? s : "");
    free(s);
    return r;
}

static json_t *ev_getazs(eval_t *e, json_t *arg)
{
    json_t *v = ev(e, arg);
    if (!v)
        return NULL;
    const char *region =
        json_is_string(v) && *json_string_value(v) ? json_string_value(v) : e->ref->region;
    json_t *out = json_array();
    for (char z = 'a'; z <= 'c'; z++)
        json_array_append_new(out, json_sprintf("%s%c", region, z));
    json_decref(v);
    return out;
}

static json_t *ev_fn(eval_t *e, const char *k, json_t *arg)
{
    if (!strcmp(k, "Ref")) {
        if (!json_is_string(arg))
            return ev_err(
                e, "Template format error: Every Ref object must have a single String value.");
        return ev_ref(e, json_string_value(arg));
    }
    if (!strcmp(k, "Fn::GetAtt"))
        return ev_getatt(e, arg);
    if (!strcmp(k, "Fn::Sub"))
        return ev_sub(e, arg);
    if (!strcmp(k, "Fn::Join"))
        return ev_join(e, arg);
    if (!strcmp(k, "Fn::Select"))
        return ev_select(e, arg);
    if (!strcmp(k, "Fn::Split"))
        return ev_split(e, arg);
    if (!strcmp(k, "Fn::If"))
        return ev_if(e, arg);
    if (!strcmp(k, "Fn::FindInMap"))
        return ev_findinmap(e, arg);
    if (!strcmp(k, "Fn::Base64"))
        return ev_base64(e, arg);
    if (!strcmp(k, "Fn::GetAZs"))
        return ev_getazs(e, arg);
    if (!strcmp(k, "Fn::Equals") || !strcmp(k, "Fn::And") || !strcmp(k, "Fn::Or") ||
        !strcmp(k, "Fn::Not"))
        return ev_err(e, "Template error: %s can only be used in the Conditions block", k);
    if (!strcmp(k, "Fn::ImportValue") || !strcmp(k, "Fn::Cidr") || !strcmp(k, "Fn::Transform") ||
        !strcmp(k, "Fn::Length") || !strcmp(k, "Fn::ToJsonString"))
        return ev_err(e, "Template error: awssim does not implement %s", k);
    return ev_err(e, "Template format error: Encountered unsupported function: %s", k);
}

static json_t *ev_in(eval_t *e, json_t *v)
{
    if (json_is_object(v)) {
        if (json_object_size(v) == 1) {
            void *it = json_object_iter(v);
            const char *k = json_object_iter_key(it);
            if (!strcmp(k, "Ref") || !strncmp(k, "Fn::", 4))
                return ev_fn(e, k, json_object_iter_value(it));
        }
        json_t *out = json_object();
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            json_t *r = ev(e, x);
            if (!r) {
                json_decref(out);
                return NULL;
            }
            if (r == e->novalue)
                json_decref(r);
            else
                json_object_set_new(out, k, r);
        }
        return out;
    }
    if (json_is_array(v)) {
        json_t *out = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            json_t *r = ev(e, x);
            if (!r) {
                json_decref(out);
                return NULL;
            }
            if (r == e->novalue)
                json_decref(r);
            else
                json_array_append_new(out, r);
        }
        return out;
    }
    return json_incref(v);
}

static json_t *ev(eval_t *e, json_t *v)
{
    if (e->depth >= CFN_EVAL_DEPTH)
        return ev_err(e, "Template error: expressions are nested too deeply");
    e->depth++;
    json_t *r = ev_in(e, v);
    e->depth--;
    return r;
}

static int scalar_equal(json_t *a, json_t *b)
{
    ob_buf_t x = {0}, y = {0};
    int eq;
    if (append_scalar(&x, a) == 0 && append_scalar(&y, b) == 0)
        eq = x.len == y.len && (x.len == 0 || !memcmp(x.data, y.data, x.len));
    else
        eq = json_equal(a, b);
    ob_buf_free(&x);
    ob_buf_free(&y);
    return eq;
}

static int cond_eval(eval_t *e, json_t *v)
{
    if (!json_is_object(v) || json_object_size(v) != 1)
        goto bad;
    void *it = json_object_iter(v);
    const char *k = json_object_iter_key(it);
    json_t *arg = json_object_iter_value(it);
    if (!strcmp(k, "Condition")) {
        if (!json_is_string(arg))
            goto bad;
        return cond_lookup(e, json_string_value(arg));
    }
    if (!strcmp(k, "Fn::Equals")) {
        if (!json_is_array(arg) || json_array_size(arg) != 2)
            goto bad;
        json_t *a = ev(e, json_array_get(arg, 0));
        if (!a)
            return -1;
        json_t *b = ev(e, json_array_get(arg, 1));
        if (!b) {
            json_decref(a);
            return -1;
        }
        int eq = scalar_equal(a, b);
        json_decref(a);
        json_decref(b);
        return eq;
    }
    int and_ = !strcmp(k, "Fn::And"), or_ = !strcmp(k, "Fn::Or"), not_ = !strcmp(k, "Fn::Not");
    if (!json_is_array(arg) || (!and_ && !or_ && !not_))
        goto bad;
    size_t n = json_array_size(arg);
    if (not_ ? n != 1 : (n < 2 || n > 10))
        goto bad;
    int acc = and_ ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        int r = cond_eval(e, json_array_get(arg, i));
        if (r < 0)
            return -1;
        if (not_)
            return !r;
        acc = and_ ? (acc && r) : (acc || r);
    }
    return acc;
bad:
    ev_err(e, "Template format error: Conditions can only be boolean operations on parameters "
              "and other conditions");
    return -1;
}

static int cond_lookup(eval_t *e, const char *name)
{
    json_t *have = json_object_get(e->conds, name);
    if (have)
        return json_is_true(have);
    json_t *def = json_object_get(json_object_get(e->tmpl, "Conditions"), name);
    if (!def) {
        ev_err(e, "Template error: unresolved condition dependency %s in Fn::If", name);
        return -1;
    }
    if (e->cond_depth > 32) {
        ev_err(e, "Template error: circular dependency between conditions");
        return -1;
    }
    int saved = e->in_conditions;
    e->cond_depth++;
    e->in_conditions = 1;
    int r = cond_eval(e, def);
    e->in_conditions = saved;
    e->cond_depth--;
    if (r >= 0)
        json_object_set_new(e->conds, name, json_boolean(r));
    return r;
}

/* ---- templates and plans ---- */

/* Everything an operation needs from a template and its parameters. */
typedef struct plan_s {
    json_t *tmpl;
    json_t *values; /* parameter -> value for Ref */
    json_t *plist;  /* [{"ParameterKey","ParameterValue","NoEcho"}], template order */
    json_t *conds;  /* condition -> true/false */
    json_t *order;  /* logical ids of the resources in the stack, dependencies first */
    json_t *deps;   /* logical id -> set of logical ids it needs */
    int needs_iam, needs_named;
} plan_t;

static void plan_free(plan_t *p)
{
    json_decref(p->tmpl);
    json_decref(p->values);
    json_decref(p->plist);
    json_decref(p->conds);
    json_decref(p->order);
    json_decref(p->deps);
    memset(p, 0, sizeof(*p));
}

static void eval_init(eval_t *e, plan_t *p, const sref_t *ref)
{
    memset(e, 0, sizeof(*e));
    e->tmpl = p->tmpl;
    e->values = p->values;
    e->conds = p->conds;
    e->ref = ref;
    e->block = "Resources";
    e->novalue = json_object();
}

static void eval_done(eval_t *e)
{
    json_decref(e->novalue);
    e->novalue = NULL;
}

static int name_part_ok(const char *s, size_t n)
{
    if (!n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
            return 0;
    }
    return 1;
}

/* AWS::Service::Resource (or Alexa::...), Custom::Name. */
/* Resource types CloudFormation recognizes: AWS::<service>::<resource> of a
 * real service, and Custom:: resources. Types of unknown services are a
 * template format error at CreateStack, as AWS gives; recognized types this
 * simulator does not implement fail at creation instead. */
static int type_known(const char *type)
{
    static const char *const services[] = {"ApiGateway",
                                           "AppSync",
                                           "Athena",
                                           "AutoScaling",
                                           "BCMDataExports",
                                           "Backup",
                                           "Budgets",
                                           "CE",
                                           "CUR",
                                           "CertificateManager",
                                           "CloudFormation",
                                           "CloudFront",
                                           "CloudTrail",
                                           "CloudWatch",
                                           "CodeBuild",
                                           "Config",
                                           "DynamoDB",
                                           "EC2",
                                           "ECR",
                                           "ECS",
                                           "EKS",
                                           "ElastiCache",
                                           "ElasticLoadBalancingV2",
                                           "Events",
                                           "Glue",
                                           "IAM",
                                           "KMS",
                                           "Kinesis",
                                           "Lambda",
                                           "Logs",
                                           "Organizations",
                                           "RDS",
                                           "Route53",
                                           "S3",
                                           "SNS",
                                           "SQS",
                                           "SSM",
                                           "SecretsManager",
                                           "StepFunctions",
                                           NULL};
    if (!strncmp(type, "Custom::", 8))
        return 1;
    if (strncmp(type, "AWS::", 5) != 0)
        return 0;
    const char *svc = type + 5;
    const char *end = strstr(svc, "::");
    if (!end)
        return 0;
    for (int i = 0; services[i]; i++)
        if (strlen(services[i]) == (size_t)(end - svc) && !strncmp(svc, services[i], end - svc))
            return 1;
    return 0;
}

static int type_well_formed(const char *t)
{
    if (!strncmp(t, "Custom::", 8))
        return name_part_ok(t + 8, strlen(t + 8));
    if (strncmp(t, "AWS::", 5) != 0 && strncmp(t, "Alexa::", 7) != 0)
        return 0;
    const char *p = strstr(t, "::") + 2;
    int parts = 1;
    for (;;) {
        const char *q = strstr(p, "::");
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (!name_part_ok(p, n))
            return 0;
        parts++;
        if (!q)
            break;
        p = q + 2;
    }
    return parts == 3 || parts == 4;
}

static int param_type_ok(const char *t)
{
    return !strcmp(t, "String") || !strcmp(t, "Number") || !strcmp(t, "List<Number>") ||
           !strcmp(t, "CommaDelimitedList") || !strncmp(t, "AWS::", 5) ||
           !strncmp(t, "List<AWS::", 10);
}

static int is_list_type(const char *t)
{
    return !strncmp(t, "List<", 5) || !strcmp(t, "CommaDelimitedList");
}

static const char *const template_keys[] = {"AWSTemplateFormatVersion",
                                            "Description",
                                            "Metadata",
                                            "Parameters",
                                            "Rules",
                                            "Mappings",
                                            "Conditions",
                                            "Transform",
                                            "Resources",
                                            "Outputs",
                                            NULL};

static int template_parse(const char *body, json_t **out, cfn_err_t *er)
{
    const char *p = body;
    *out = NULL;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    if (*p != '{')
        return cfn_fail(er, CFN_ERR,
                        "Template format error: awssim accepts JSON templates only (YAML is not "
                        "supported); send the template as a JSON object");
    json_error_t je;
    json_t *t = json_loads(body, JSON_REJECT_DUPLICATES, &je);
    if (!t)
        return cfn_fail(er, CFN_ERR,
                        "Template format error: JSON not well-formed. (line %d,  column %d)",
                        je.line, je.column);
    if (!json_is_object(t)) {
        json_decref(t);
        return cfn_fail(er, CFN_ERR, "Template format error: the template must be a JSON object");
    }
    *out = t; /* the caller frees it, also on failure */
    const char *k;
    json_t *v;
    int rc = -1;
    json_t *bad = json_object();
    ob_buf_t b = {0};
    json_object_foreach(t, k, v)
    {
        int known = 0;
        for (int i = 0; template_keys[i]; i++)
            known |= !strcmp(k, template_keys[i]);
        if (!known)
            json_object_set_new(bad, k, json_true());
    }
    if (json_object_size(bad)) {
        keys_joined(bad, &b);
        cfn_fail(er, CFN_ERR, "Template format error: Invalid template property or properties [%s]",
                 buf_str(&b));
        goto out;
    }
    json_t *ver = json_object_get(t, "AWSTemplateFormatVersion");
    if (ver && !streq(json_string_value(ver), "2010-09-09")) {
        cfn_fail(er, CFN_ERR,
                 "Template format error: Unsupported template version; "
                 "AWSTemplateFormatVersion must be 2010-09-09");
        goto out;
    }
    if (json_object_get(t, "Transform")) {
        cfn_fail(er, CFN_ERR,
                 "awssim does not process template Transforms (CAPABILITY_AUTO_EXPAND); deploy "
                 "the processed template");
        goto out;
    }
    json_t *desc = json_object_get(t, "Description");
    if (desc && !json_is_string(desc)) {
        cfn_fail(er, CFN_ERR, "Template format error: Every Description member must be a string.");
        goto out;
    }
    json_t *conds = json_object_get(t, "Conditions");
    json_t *maps = json_object_get(t, "Mappings");
    json_t *params = json_object_get(t, "Parameters");
    json_t *outs = json_object_get(t, "Outputs");
    json_t *res = json_object_get(t, "Resources");
    const char *const sections[] = {"Conditions", "Mappings", "Parameters", "Outputs"};
    json_t *const values[] = {conds, maps, params, outs};
    for (int i = 0; i < 4; i++) {
        if (values[i] && !json_is_object(values[i])) {
            cfn_fail(er, CFN_ERR, "Template format error: %s must be an object", sections[i]);
            goto out;
        }
    }
    json_object_foreach(params, k, v)
    {
        const char *type = jstr(v, "Type");
        if (!json_is_object(v) || !type) {
            cfn_fail(er, CFN_ERR,
                     "Template format error: Every Parameters object must contain a Type "
                     "member.");
            goto out;
        }
        if (!param_type_ok(type)) {
            cfn_fail(er, CFN_ERR, "Template format error: Unrecognized parameter type: %s", type);
            goto out;
        }
    }
    if (!json_is_object(res) || json_object_size(res) == 0) {
        cfn_fail(er, CFN_ERR,
                 "Template format error: At least one Resources member must be defined.");
        goto out;
    }
    json_object_clear(bad);
    json_object_foreach(res, k, v)
    {
        const char *type = jstr(v, "Type");
        if (!json_is_object(v) || !type) {
            cfn_fail(er, CFN_ERR,
                     "Template format error: [/Resources/%s] Every Resources object must "
                     "contain a Type member.",
                     k);
            goto out;
        }
        if (!type_well_formed(type) || !type_known(type))
            json_object_set_new(bad, type, json_true());
        json_t *props = json_object_get(v, "Properties");
        if (props && !json_is_object(props)) {
            cfn_fail(er, CFN_ERR,
                     "Template format error: [/Resources/%s/Properties] must be an object", k);
            goto out;
        }
        if (json_object_get(params, k)) {
            cfn_fail(er, CFN_ERR, "Template format error: %s is both a parameter and a resource",
                     k);
            goto out;
        }
        json_t *cond = json_object_get(v, "Condition");
        if (cond && (!json_is_string(cond) || !json_object_get(conds, json_string_value(cond)))) {
            cfn_fail(er, CFN_ERR,
                     "Template format error: Unresolved condition dependency %s in the Resources "
                     "block of the template",
                     json_is_string(cond) ? json_string_value(cond) : "(not a string)");
            goto out;
        }
        json_t *dep = json_object_get(v, "DependsOn");
        if (dep && !json_is_string(dep) && !json_is_array(dep)) {
            cfn_fail(er, CFN_ERR,
                     "Template format error: DependsOn of %s must be a string or a list of "
                     "strings",
                     k);
            goto out;
        }
        size_t n = json_is_array(dep) ? json_array_size(dep) : (dep ? 1 : 0);
        for (size_t i = 0; i < n; i++) {
            json_t *d = json_is_array(dep) ? json_array_get(dep, i) : dep;
            if (!json_is_string(d)) {
                cfn_fail(er, CFN_ERR,
                         "Template format error: DependsOn of %s must be a string or a list of "
                         "strings",
                         k);
                goto out;
            }
            if (!json_object_get(res, json_string_value(d))) {
                cfn_fail(er, CFN_ERR,
                         "Template format error: Unresolved resource dependencies [%s] in the "
                         "Resources block of the template",
                         json_string_value(d));
                goto out;
            }
        }
    }
    if (json_object_size(bad)) {
        keys_joined(bad, &b);
        cfn_fail(er, CFN_ERR, "Template format error: Unrecognized resource types: [%s]",
                 buf_str(&b));
        goto out;
    }
    json_object_foreach(outs, k, v)
    {
        if (!json_is_object(v) || !json_object_get(v, "Value")) {
            cfn_fail(er, CFN_ERR,
                     "Template format error: Every Outputs member must contain a Value object");
            goto out;
        }
        json_t *cond = json_object_get(v, "Condition");
        if (cond && (!json_is_string(cond) || !json_object_get(conds, json_string_value(cond)))) {
            cfn_fail(er, CFN_ERR,
                     "Template format error: Unresolved condition dependency %s in the Outputs "
                     "block of the template",
                     json_is_string(cond) ? json_string_value(cond) : "(not a string)");
            goto out;
        }
    }
    rc = 0;
out:
    ob_buf_free(&b);
    json_decref(bad);
    return rc;
}

/* Parsed and checked templates, by template text. Every stack of a fleet
 * carries the same template, and CreateStack and the stack's timer each
 * parsed it again: that was most of the simulator's CPU once the patterns
 * were compiled once. A cached template is shared, never changed (plans and
 * evaluation only read it); templates that fail the checks are not kept. A
 * bounded set, replaced in turn once full; the simulator is single-threaded. */
#define TEMPLATE_CACHE_SIZE 16

typedef struct template_entry_s {
    char *body; /* NULL: free slot */
    size_t len;
    json_t *tmpl;
} template_entry_t;

static template_entry_t template_cache[TEMPLATE_CACHE_SIZE];
static unsigned template_next;

static void template_entry_clear(template_entry_t *e)
{
    free(e->body);
    json_decref(e->tmpl);
    memset(e, 0, sizeof(*e));
}

static void template_cache_clear(void)
{
    for (size_t i = 0; i < TEMPLATE_CACHE_SIZE; i++)
        template_entry_clear(&template_cache[i]);
    template_next = 0;
}

/* template_parse, through the cache: *out is the caller's reference. */
static int template_load(const char *body, json_t **out, cfn_err_t *er)
{
    size_t len = strlen(body);
    for (size_t i = 0; i < TEMPLATE_CACHE_SIZE; i++) {
        template_entry_t *e = &template_cache[i];
        if (e->body && e->len == len && !memcmp(e->body, body, len)) {
            *out = json_incref(e->tmpl);
            return 0;
        }
    }
    if (template_parse(body, out, er) != 0)
        return -1;
    char *copy = ob_malloc(len + 1);
    if (copy) {
        memcpy(copy, body, len + 1);
        template_entry_t *e = &template_cache[template_next++ % TEMPLATE_CACHE_SIZE];
        template_entry_clear(e);
        e->body = copy;
        e->len = len;
        e->tmpl = json_incref(*out);
    }
    return 0;
}

/* Java-style AllowedPattern -> POSIX extended regex, anchored at both ends
 * (AWS matches the whole value). */
static void pattern_to_posix(const char *p, ob_buf_t *out)
{
    int in_class = 0, class_dash = 0;
    ob_buf_puts(out, "^(");
    while (*p) {
        if (*p == '\\' && p[1]) {
            char ch = p[1];
            p += 2;
            if (ch == 'd')
                ob_buf_puts(out, in_class ? "0-9" : "[0-9]");
            else if (ch == 'w')
                ob_buf_puts(out, in_class ? "A-Za-z0-9_" : "[A-Za-z0-9_]");
            else if (ch == 's')
                ob_buf_puts(out, in_class ? "[:space:]" : "[[:space:]]");
            else if (!in_class && ch == 'D')
                ob_buf_puts(out, "[^0-9]");
            else if (!in_class && ch == 'W')
                ob_buf_puts(out, "[^A-Za-z0-9_]");
            else if (!in_class && ch == 'S')
                ob_buf_puts(out, "[^[:space:]]");
            else if (in_class && ch == '-')
                class_dash = 1;
            else if (in_class && ch == ']')
                ob_buf_puts(out, "]"); /* rare; POSIX wants it first */
            else if (in_class)
                ob_buf_putc(out, ch);
            else {
                ob_buf_putc(out, '\\');
                ob_buf_putc(out, ch);
            }
            continue;
        }
        if (!in_class && *p == '[') {
            in_class = 1;
            class_dash = 0;
            ob_buf_putc(out, *p++);
            if (*p == '^')
                ob_buf_putc(out, *p++);
            continue;
        }
        if (in_class && *p == ']') {
            if (class_dash)
                ob_buf_putc(out, '-');
            in_class = 0;
        }
        ob_buf_putc(out, *p++);
    }
    ob_buf_puts(out, ")$");
}

/* Compiled AllowedPatterns, by pattern text. Every stack of a fleet carries
 * the same template, and compiling its patterns took most of the
 * simulator's CPU, so each is compiled once (a bounded set, replaced in
 * turn once full; the simulator is single-threaded). */
#define PATTERN_CACHE_SIZE 64

typedef struct pattern_entry_s {
    char *pattern; /* NULL: free slot */
    int ok;        /* 0: regcomp refused it */
    regex_t re;
} pattern_entry_t;

static pattern_entry_t pattern_cache[PATTERN_CACHE_SIZE];
static unsigned pattern_next;

static void pattern_entry_clear(pattern_entry_t *e)
{
    if (e->pattern && e->ok)
        regfree(&e->re);
    free(e->pattern);
    e->pattern = NULL;
}

static void pattern_cache_clear(void)
{
    for (size_t i = 0; i < PATTERN_CACHE_SIZE; i++)
        pattern_entry_clear(&pattern_cache[i]);
    pattern_next = 0;
}

/* 1 match, 0 no match, -1 the pattern cannot be compiled here (not checked). */
static int pattern_matches(const char *pattern, const char *value)
{
    pattern_entry_t *e = NULL;
    for (size_t i = 0; i < PATTERN_CACHE_SIZE && !e; i++)
        if (pattern_cache[i].pattern && !strcmp(pattern_cache[i].pattern, pattern))
            e = &pattern_cache[i];
    if (!e) {
        e = &pattern_cache[pattern_next++ % PATTERN_CACHE_SIZE];
        pattern_entry_clear(e);
        ob_buf_t b = {0};
        pattern_to_posix(pattern, &b);
        e->ok = regcomp(&e->re, buf_str(&b), REG_EXTENDED | REG_NOSUB) == 0;
        ob_buf_free(&b);
        e->pattern = ob_strdup(pattern);
        if (!e->pattern) {
            if (e->ok)
                regfree(&e->re);
            return -1;
        }
    }
    if (!e->ok)
        return -1;
    return regexec(&e->re, value, 0, NULL, 0) == 0;
}

static int parse_number(const char *s, double *out)
{
    char *end;
    if (!s || !*s)
        return -1;
    *out = strtod(s, &end);
    return *end ? -1 : 0;
}

static int json_number_of(json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    return parse_number(json_string_value(v), out);
}

static int param_fail(cfn_err_t *er, const char *name, json_t *def, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A constraint failed: AWS prints the ConstraintDescription when there is one. */
static int param_fail(cfn_err_t *er, const char *name, json_t *def, const char *fmt, ...)
{
    const char *cd = jstr(def, "ConstraintDescription");
    if (cd)
        return cfn_fail(er, CFN_ERR, "Parameter '%s' failed to satisfy constraint: %s", name, cd);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cfn_fail(er, CFN_ERR, "Parameter '%s' %s", name, msg);
}

static int allowed_value(json_t *allowed, const char *v)
{
    size_t i;
    json_t *x;
    json_array_foreach(allowed, i, x)
    {
        ob_buf_t b = {0};
        int eq = append_scalar(&b, x) == 0 && !strcmp(buf_str(&b), v);
        ob_buf_free(&b);
        if (eq)
            return 1;
    }
    return 0;
}

static int check_param(const char *name, json_t *def, const char *type, const char *val,
                       cfn_err_t *er)
{
    json_t *allowed = json_object_get(def, "AllowedValues");
    if (is_list_type(type)) {
        json_t *parts = json_array();
        const char *s = val, *c;
        while ((c = strchr(s, ',')) != NULL) {
            json_array_append_new(parts, json_stringn(s, (size_t)(c - s)));
            s = c + 1;
        }
        json_array_append_new(parts, json_string(s));
        size_t i;
        json_t *x;
        int rc = 0;
        json_array_foreach(parts, i, x)
        {
            double d;
            const char *item = json_string_value(x);
            if (!strcmp(type, "List<Number>") && parse_number(item, &d) != 0) {
                rc = param_fail(er, name, def, "must be a list of numbers");
                break;
            }
            if (json_is_array(allowed) && !allowed_value(allowed, item)) {
                rc = param_fail(er, name, def, "must be one of AllowedValues");
                break;
            }
        }
        json_decref(parts);
        return rc;
    }
    if (json_is_array(allowed) && !allowed_value(allowed, val))
        return param_fail(er, name, def, "must be one of AllowedValues");
    if (!strcmp(type, "Number")) {
        double d, lim;
        if (parse_number(val, &d) != 0)
            return param_fail(er, name, def, "must be a number");
        for (int i = 0; i < 2; i++) {
            json_t *bound = json_object_get(def, i ? "MaxValue" : "MinValue");
            if (json_number_of(bound, &lim) != 0 || (i ? d <= lim : d >= lim))
                continue;
            ob_buf_t b = {0};
            append_scalar(&b, bound);
            int rc = param_fail(er, name, def, "must be a number not %s than %s",
                                i ? "greater" : "less", buf_str(&b));
            ob_buf_free(&b);
            return rc;
        }
        return 0;
    }
    double lim;
    size_t len = strlen(val);
    if (json_number_of(json_object_get(def, "MinLength"), &lim) == 0 && (double)len < lim)
        return param_fail(er, name, def, "must contain at least %.0f characters", lim);
    if (json_number_of(json_object_get(def, "MaxLength"), &lim) == 0 && (double)len > lim)
        return param_fail(er, name, def, "must contain at most %.0f characters", lim);
    const char *pat = jstr(def, "AllowedPattern");
    if (pat && pattern_matches(pat, val) == 0)
        return param_fail(er, name, def, "must match pattern %s", pat);
    return 0;
}

/* given: {name: value text}. Fills p->values and p->plist. */
static int resolve_params(plan_t *p, json_t *given, cfn_err_t *er)
{
    json_t *defs = json_object_get(p->tmpl, "Parameters");
    json_t *unknown = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(given, k, v)
    {
        if (!json_object_get(defs, k))
            json_object_set_new(unknown, k, json_true());
    }
    if (json_object_size(unknown)) {
        ob_buf_t b = {0};
        keys_joined(unknown, &b);
        cfn_fail(er, CFN_ERR, "Parameters: [%s] do not exist in the template", buf_str(&b));
        ob_buf_free(&b);
        json_decref(unknown);
        return -1;
    }
    json_decref(unknown);
    ob_buf_t missing = {0};
    json_object_foreach(defs, k, v)
    {
        if (!json_object_get(given, k) && !json_object_get(v, "Default"))
            ob_buf_printf(&missing, "%s%s", missing.len ? ", " : "", k);
    }
    if (missing.len) {
        cfn_fail(er, CFN_ERR, "Parameters: [%s] must have values", buf_str(&missing));
        ob_buf_free(&missing);
        return -1;
    }
    json_object_foreach(defs, k, v)
    {
        const char *type = jstr(v, "Type");
        ob_buf_t b = {0};
        json_t *g = json_object_get(given, k);
        if (g) {
            append_scalar(&b, g);
        } else {
            json_t *d = json_object_get(v, "Default");
            if (json_is_array(d)) {
                size_t i;
                json_t *x;
                json_array_foreach(d, i, x)
                {
                    if (i)
                        ob_buf_putc(&b, ',');
                    append_scalar(&b, x);
                }
            } else if (append_scalar(&b, d) != 0) {
                ob_buf_free(&b);
                return cfn_fail(er, CFN_ERR,
                                "Template format error: Default of parameter %s must be a string",
                                k);
            }
        }
        const char *val = buf_str(&b);
        if (check_param(k, v, type, val, er) != 0) {
            ob_buf_free(&b);
            return -1;
        }
        if (is_list_type(type)) {
            json_t *parts = json_array();
            const char *s = val, *c;
            while ((c = strchr(s, ',')) != NULL) {
                json_array_append_new(parts, json_stringn(s, (size_t)(c - s)));
                s = c + 1;
            }
            json_array_append_new(parts, json_string(s));
            json_object_set_new(p->values, k, parts);
        } else {
            json_object_set_new(p->values, k, json_string(val));
        }
        json_t *noecho = json_object_get(v, "NoEcho");
        int hidden = json_is_true(noecho) || is_true_text(json_string_value(noecho));
        json_t *m = json_pack("{s:s, s:s}", "ParameterKey", k, "ParameterValue", val);
        if (m && hidden)
            json_object_set_new(m, "NoEcho", json_true());
        if (m)
            json_array_append_new(p->plist, m);
        ob_buf_free(&b);
    }
    return 0;
}

static const char *const named_iam[][2] = {
    {"AWS::IAM::Role", "RoleName"},
    {"AWS::IAM::ManagedPolicy", "ManagedPolicyName"},
    {"AWS::IAM::User", "UserName"},
    {"AWS::IAM::Group", "GroupName"},
    {"AWS::IAM::InstanceProfile", "InstanceProfileName"},
};

/* Dry-run the resources and outputs: references, dependencies, order. */
static int plan_resources(plan_t *p, eval_t *e, cfn_err_t *er)
{
    json_t *res = json_object_get(p->tmpl, "Resources");
    const char *k;
    json_t *def;
    json_object_foreach(res, k, def)
    {
        const char *type = jstr(def, "Type");
        if (!strncmp(type, "AWS::IAM::", 10))
            p->needs_iam = 1;
        for (size_t i = 0; i < sizeof(named_iam) / sizeof(named_iam[0]); i++)
            if (!strcmp(type, named_iam[i][0]) &&
                json_object_get(json_object_get(def, "Properties"), named_iam[i][1]))
                p->needs_named = 1;
        int act = res_active(e, k);
        if (act < 0)
            return cfn_fail(er, CFN_ERR, "%s", e->err);
        if (!act)
            continue;
        e->deps = json_object();
        e->block = "Resources";
        json_t *props = json_object_get(def, "Properties");
        if (props) {
            json_t *v = ev(e, props);
            if (!v) {
                json_decref(e->deps);
                e->deps = NULL;
                return cfn_fail(er, CFN_ERR, "%s", e->err);
            }
            json_decref(v);
        }
        json_t *dep = json_object_get(def, "DependsOn");
        json_t *list = json_is_string(dep) ? json_pack("[O]", dep) : json_incref(dep);
        size_t i;
        json_t *d;
        json_array_foreach(list, i, d)
        {
            const char *dn = json_string_value(d);
            int da = res_active(e, dn);
            if (da <= 0) {
                json_decref(list);
                json_decref(e->deps);
                e->deps = NULL;
                if (da == 0)
                    unresolved(e, dn);
                return cfn_fail(er, CFN_ERR, "%s", e->err);
            }
            json_object_set_new(e->deps, dn, json_true());
        }
        json_decref(list);
        json_object_set_new(p->deps, k, e->deps);
        e->deps = NULL;
    }
    /* Outputs: references must resolve too. */
    json_t *out;
    json_object_foreach(json_object_get(p->tmpl, "Outputs"), k, out)
    {
        const char *cond = jstr(out, "Condition");
        int act = cond ? cond_lookup(e, cond) : 1;
        if (act < 0)
            return cfn_fail(er, CFN_ERR, "%s", e->err);
        if (!act)
            continue;
        e->deps = json_object();
        e->block = "Outputs";
        json_t *v = ev(e, json_object_get(out, "Value"));
        json_decref(e->deps);
        e->deps = NULL;
        if (!v)
            return cfn_fail(er, CFN_ERR, "%s", e->err);
        json_decref(v);
    }
    /* Order: repeatedly take, in name order, what has all it needs. */
    size_t n = json_object_size(p->deps), placed_n = 0;
    const char **names = ob_calloc(n ? n : 1, sizeof(*names));
    json_t *placed = json_object();
    size_t idx = 0;
    json_object_foreach(p->deps, k, def)
    {
        names[idx++] = k;
    }
    qsort(names, n, sizeof(*names), cmp_cstr);
    while (placed_n < n) {
        int progress = 0;
        for (size_t i = 0; i < n; i++) {
            if (json_object_get(placed, names[i]))
                continue;
            int ready = 1;
            const char *dk;
            json_t *dv;
            json_object_foreach(json_object_get(p->deps, names[i]), dk, dv)
            {
                if (!json_object_get(placed, dk))
                    ready = 0;
            }
            if (ready) {
                json_object_set_new(placed, names[i], json_true());
                json_array_append_new(p->order, json_string(names[i]));
                placed_n++;
                progress = 1;
            }
        }
        if (!progress)
            break;
    }
    int rc = 0;
    if (placed_n < n) {
        ob_buf_t b = {0};
        for (size_t i = 0; i < n; i++)
            if (!json_object_get(placed, names[i]))
                ob_buf_printf(&b, "%s%s", b.len ? ", " : "", names[i]);
        rc = cfn_fail(er, CFN_ERR, "Circular dependency between resources: [%s]", buf_str(&b));
        ob_buf_free(&b);
    }
    json_decref(placed);
    free(names);
    return rc;
}

/* Parse and check a template with its parameters, the way CreateStack and
 * UpdateStack do before answering. */
static int plan_build(const char *body, json_t *given, const sref_t *ref, plan_t *p, cfn_err_t *er)
{
    memset(p, 0, sizeof(*p));
    if (template_load(body, &p->tmpl, er) != 0)
        return -1;
    p->values = json_object();
    p->plist = json_array();
    p->conds = json_object();
    p->order = json_array();
    p->deps = json_object();
    if (resolve_params(p, given, er) != 0)
        return -1;
    eval_t e;
    eval_init(&e, p, ref);
    const char *k;
    json_t *v;
    int rc = 0;
    json_object_foreach(json_object_get(p->tmpl, "Conditions"), k, v)
    {
        if (cond_lookup(&e, k) < 0) {
            rc = cfn_fail(er, CFN_ERR, "%s", e.err);
            break;
        }
    }
    if (rc == 0)
        rc = plan_resources(p, &e, er);
    eval_done(&e);
    return rc;
}

/* The plan of a stack's stored template and parameters (src: the stack, or
 * its "Previous" copy). */
static int stack_plan(json_t *st, json_t *src, plan_t *p, cfn_err_t *er)
{
    json_t *given = json_object();
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(src, "Parameters"), i, m)
    {
        json_object_set(given, jstr(m, "ParameterKey"), json_object_get(m, "ParameterValue"));
    }
    sref_t r = stack_ref(st);
    const char *body = jstr(src, "TemplateBody");
    int rc = plan_build(body ? body : "", given, &r, p, er);
    json_decref(given);
    return rc;
}

/* ---- resources ---- */

typedef struct apply_s {
    sim_t *sim;
    json_t *st;
    const sref_t *ref;
    const char *fail_logical; /* this resource fails (the rollback fault), or NULL */
} apply_t;

static int same_stack(json_t *role, const char *stack_id)
{
    return streq(jstr(role, "StackId"), stack_id);
}

/* A policy document: an object, or a string holding one. New reference. */
static json_t *policy_doc(json_t *v)
{
    if (json_is_object(v))
        return json_deep_copy(v);
    if (json_is_string(v)) {
        json_t *d = json_loads(json_string_value(v), 0, NULL);
        if (json_is_object(d))
            return d;
        json_decref(d);
    }
    return NULL;
}

/* STACK-LOGICAL-RANDOM within max characters, as AWS names resources: the
 * two names share what the random suffix leaves. */
static void gen_name(const char *stack, const char *logical, size_t max, char *out, size_t out_size)
{
    char rnd[16];
    sim_random_id("", 12, rnd, sizeof(rnd));
    size_t budget = max - 2 - strlen(rnd);
    size_t sl = strlen(stack), ll = strlen(logical);
    size_t half = budget / 2;
    if (ll > budget - (sl < half ? sl : half))
        ll = budget - (sl < half ? sl : half);
    if (sl > budget - ll)
        sl = budget - ll;
    snprintf(out, out_size, "%.*s-%.*s-%s", (int)sl, stack, (int)ll, logical, rnd);
}

static int role_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return 0;
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr("_+=,.@-", ch)))
            return 0;
    }
    return 1;
}

static int path_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 512 || s[0] != '/' || s[n - 1] != '/')
        return 0;
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e)
            return 0;
    return 1;
}

static json_t *role_names_of(json_t *props, const char *logical, char *why, size_t whyn)
{
    json_t *roles = json_object_get(props, "Roles");
    if (roles && !json_is_array(roles)) {
        snprintf(why, whyn,
                 "Properties validation failed for resource %s with message: #/Roles: expected "
                 "type: JSONArray",
                 logical);
        return NULL;
    }
    return roles ? json_incref(roles) : json_array();
}

static json_t *res_role(apply_t *a, const char *logical, json_t *props, json_t *old, char *why,
                        size_t whyn)
{
    const char *acct = a->ref->account, *sid = a->ref->id;
    json_t *doc = json_object_get(props, "AssumeRolePolicyDocument");
    if (!doc) {
        snprintf(why, whyn,
                 "Properties validation failed for resource %s with message: #: required key "
                 "[AssumeRolePolicyDocument] not found",
                 logical);
        return NULL;
    }
    json_t *rn = json_object_get(props, "RoleName"), *pathv = json_object_get(props, "Path");
    if ((rn && !json_is_string(rn)) || (pathv && !json_is_string(pathv))) {
        snprintf(why, whyn,
                 "Properties validation failed for resource %s with message: #/%s: expected "
                 "type: String",
                 logical, rn && !json_is_string(rn) ? "RoleName" : "Path");
        return NULL;
    }
    char name[160];
    int generated = 0;
    if (rn) {
        snprintf(name, sizeof(name), "%s", json_string_value(rn));
    } else if (old && json_is_true(json_object_get(old, "Generated"))) {
        snprintf(name, sizeof(name), "%s", jstr(old, "PhysicalResourceId"));
        generated = 1;
    } else {
        gen_name(a->ref->name, logical, 64, name, sizeof(name));
        generated = 1;
    }
    if (strlen(name) > 64) {
        snprintf(why, whyn,
                 "Properties validation failed for resource %s with message: #/RoleName: "
                 "expected maxLength: 64, actual: %zu",
                 logical, strlen(name));
        return NULL;
    }
    if (!role_name_ok(name)) {
        snprintf(why, whyn,
                 "Properties validation failed for resource %s with message: #/RoleName: "
                 "failed validation constraint for keyword [pattern]",
                 logical);
        return NULL;
    }
    const char *path = pathv ? json_string_value(pathv) : "/";
    if (!path_ok(path)) {
        snprintf(why, whyn,
                 "Properties validation failed for resource %s with message: #/Path: failed "
                 "validation constraint for keyword [pattern]",
                 logical);
        return NULL;
    }
    json_t *trust = policy_doc(doc);
    if (!trust) {
        snprintf(why, whyn,
                 "Properties validation failed for resource %s with message: "
                 "#/AssumeRolePolicyDocument: expected type: JSONObject",
                 logical);
        return NULL;
    }
    json_t *pols = json_object();
    size_t i;
    json_t *x;
    json_t *plist = json_object_get(props, "Policies");
    json_array_foreach(plist, i, x)
    {
        const char *pn = jstr(x, "PolicyName");
        json_t *pd = policy_doc(json_object_get(x, "PolicyDocument"));
        if (!pn || !pd) {
            snprintf(why, whyn,
                     "Properties validation failed for resource %s with message: #/Policies/%zu: "
                     "required key [%s] not found",
                     logical, i, !pn ? "PolicyName" : "PolicyDocument");
            json_decref(pd);
            json_decref(pols);
            json_decref(trust);
            return NULL;
        }
        json_object_set_new(pols, pn, pd);
    }
    json_t *mpa = json_object_get(props, "ManagedPolicyArns");
    json_array_foreach(mpa, i, x)
    {
        if (!json_is_string(x) || strncmp(json_string_value(x), "arn:", 4) != 0) {
            snprintf(why, whyn,
                     "Properties validation failed for resource %s with message: "
                     "#/ManagedPolicyArns/%zu: expected an ARN",
                     logical, i);
            json_decref(pols);
            json_decref(trust);
            return NULL;
        }
    }
    json_t *existing = sim_get_role(a->sim, acct, name);
    if (existing && !same_stack(existing, sid)) {
        snprintf(why, whyn, "%s already exists", name);
        json_decref(pols);
        json_decref(trust);
        return NULL;
    }
    /* Updating our own role in place keeps its id and creation date. */
    char role_id[64] = "";
    json_int_t created = 0;
    if (existing) {
        snprintf(role_id, sizeof(role_id), "%s",
                 jstr(existing, "RoleId") ? jstr(existing, "RoleId") : "");
        created = json_integer_value(json_object_get(existing, "CreateDate"));
    }
    json_t *r = sim_put_role(a->sim, acct, name, path, trust, sid);
    if (!r) {
        snprintf(why, whyn, "Internal failure creating role %s", name);
        json_decref(pols);
        return NULL;
    }
    if (role_id[0]) {
        json_object_set_new(r, "RoleId", json_string(role_id));
        json_object_set_new(r, "CreateDate", json_integer(created));
    }
    json_object_set_new(r, "Policies", pols);
    json_object_set_new(r, "ManagedPolicyArns", mpa ? json_deep_copy(mpa) : json_array());
    static const char *const extra[] = {"Description", "MaxSessionDuration", "PermissionsBoundary",
                                        "Tags", NULL};
    for (int j = 0; extra[j]; j++)
        if (json_object_get(props, extra[j]))
            json_object_set_new(r, extra[j], json_deep_copy(json_object_get(props, extra[j])));
    return json_pack("{s:s, s:{s:s, s:s}, s:b}", "PhysicalResourceId", name, "Attributes", "Arn",
                     jstr(r, "Arn"), "RoleId", jstr(r, "RoleId"), "Generated", generated);
}

static void detach_policy(apply_t *a, json_t *entry)
{
    json_t *props = json_object_get(entry, "Properties");
    const char *pn = jstr(props, "PolicyName");
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(props, "Roles"), i, x)
    {
        json_t *role = sim_get_role(a->sim, a->ref->account, json_string_value(x));
        if (role && pn)
            json_object_del(json_object_get(role, "Policies"), pn);
    }
}

static void detach_managed(apply_t *a, json_t *entry)
{
    const char *arn = jstr(entry, "PhysicalResourceId");
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(json_object_get(entry, "Properties"), "Roles"), i, x)
    {
        json_t *role = sim_get_role(a->sim, a->ref->account, json_string_value(x));
        json_t *list = json_object_get(role, "ManagedPolicyArns");
        for (size_t j = json_array_size(list); j-- > 0;)
            if (streq(json_string_value(json_array_get(list, j)), arn))
                json_array_remove(list, j);
    }
}

/* Every role named in roles exists; else why says which does not. */
static int roles_exist(apply_t *a, json_t *roles, char *why, size_t whyn)
{
    size_t i;
    json_t *x;
    json_array_foreach(roles, i, x)
    {
        if (!json_is_string(x) || !sim_get_role(a->sim, a->ref->account, json_string_value(x))) {
            snprintf(why, whyn, "The role with name %s cannot be found.",
                     json_is_string(x) ? json_string_value(x) : "(not a string)");
            return 0;
        }
    }
    return 1;
}

static json_t *res_policy(apply_t *a, const char *logical, json_t *props, json_t *old, char *why,
                          size_t whyn)
{
    const char *pn = jstr(props, "PolicyName");
    json_t *doc = policy_doc(json_object_get(props, "PolicyDocument"));
    if (!pn || !doc) {
        snprintf(why, whyn,
                 "Properties validation failed for resource %s with message: #: required key "
                 "[%s] not found",
                 logical, !pn ? "PolicyName" : "PolicyDocument");
        json_decref(doc);
        return NULL;
    }
    json_t *roles = role_names_of(props, logical, why, whyn);
    if (!roles || !roles_exist(a, roles, why, whyn)) {
        json_decref(roles);
        json_decref(doc);
        return NULL;
    }
    if (json_array_size(roles) == 0 && json_array_size(json_object_get(props, "Users")) == 0 &&
        json_array_size(json_object_get(props, "Groups")) == 0) {
        snprintf(why, whyn, "At least one of [Groups,Roles,Users] must be non-empty.");
        json_decref(roles);
        json_decref(doc);
        return NULL;
    }
    if (old)
        detach_policy(a, old);
    size_t i;
    json_t *x;
    json_array_foreach(roles, i, x)
    {
        json_t *role = sim_get_role(a->sim, a->ref->account, json_string_value(x));
        json_t *pols = json_object_get(role, "Policies");
        if (!json_is_object(pols)) {
            pols = json_object();
            json_object_set_new(role, "Policies", pols);
        }
        json_object_set_new(pols, pn, json_deep_copy(doc));
    }
    json_decref(roles);
    json_decref(doc);
    char id[160];
    if (old)
        snprintf(id, sizeof(id), "%s", jstr(old, "PhysicalResourceId"));
    else
        gen_name(a->ref->name, "Polic", 64, id, sizeof(id));
    return json_pack("{s:s, s:{}}", "PhysicalResourceId", id, "Attributes");
}

static json_t *res_managed(apply_t *a, const char *logical, json_t *props, json_t *old, char *why,
                           size_t whyn)
{
    json_t *doc = policy_doc(json_object_get(props, "PolicyDocument"));
    if (!doc) {
        snprintf(why, whyn,
                 "Properties validation failed for resource %s with message: #: required key "
                 "[PolicyDocument] not found",
                 logical);
        return NULL;
    }
    json_decref(doc);
    const char *given = jstr(props, "ManagedPolicyName"), *path = jstr(props, "Path");
    char name[160], arn[512], pid[32];
    if (!path)
        path = "/";
    if (!path_ok(path)) {
        snprintf(why, whyn,
                 "Properties validation failed for resource %s with message: #/Path: failed "
                 "validation constraint for keyword [pattern]",
                 logical);
        return NULL;
    }
    if (given)
        snprintf(name, sizeof(name), "%s", given);
    else if (old && json_is_true(json_object_get(old, "Generated")) &&
             strrchr(jstr(old, "PhysicalResourceId") ? jstr(old, "PhysicalResourceId") : "", '/'))
        snprintf(name, sizeof(name), "%s", strrchr(jstr(old, "PhysicalResourceId"), '/') + 1);
    else
        gen_name(a->ref->name, logical, 128, name, sizeof(name));
    json_t *roles = role_names_of(props, logical, why, whyn);
    if (!roles || !roles_exist(a, roles, why, whyn)) {
        json_decref(roles);
        return NULL;
    }
    if (old)
        detach_managed(a, old);
    snprintf(arn, sizeof(arn), "arn:aws:iam::%s:policy%s%s", a->ref->account, path, name);
    size_t i;
    json_t *x;
    json_array_foreach(roles, i, x)
    {
        json_t *role = sim_get_role(a->sim, a->ref->account, json_string_value(x));
        json_t *list = json_object_get(role, "ManagedPolicyArns");
        if (!json_is_array(list)) {
            list = json_array();
            json_object_set_new(role, "ManagedPolicyArns", list);
        }
        int have = 0;
        size_t j;
        json_t *y;
        json_array_foreach(list, j, y)
        {
            have |= streq(json_string_value(y), arn);
        }
        if (!have)
            json_array_append_new(list, json_string(arn));
    }
    json_decref(roles);
    const char *old_id = jstr(json_object_get(old, "Attributes"), "PolicyId");
    if (old_id)
        snprintf(pid, sizeof(pid), "%s", old_id);
    else
        sim_random_id("ANPA", 17, pid, sizeof(pid));
    return json_pack("{s:s, s:{s:s, s:s}, s:b}", "PhysicalResourceId", arn, "Attributes",
                     "PolicyArn", arn, "PolicyId", pid, "Generated", !given);
}

static json_t *res_do(apply_t *a, const char *logical, const char *type, json_t *props, json_t *old,
                      char *why, size_t whyn)
{
    if (!strcmp(type, "AWS::IAM::Role"))
        return res_role(a, logical, props, old, why, whyn);
    if (!strcmp(type, "AWS::IAM::Policy"))
        return res_policy(a, logical, props, old, why, whyn);
    if (!strcmp(type, "AWS::IAM::ManagedPolicy"))
        return res_managed(a, logical, props, old, why, whyn);
    if (!strcmp(type, "AWS::CloudFormation::WaitConditionHandle")) {
        char uuid[37];
        make_uuid(uuid);
        return json_pack("{s:s, s:{}}", "PhysicalResourceId",
                         old ? jstr(old, "PhysicalResourceId") : uuid, "Attributes");
    }
    snprintf(why, whyn, "awssim does not implement resource type %s", type);
    return NULL;
}

static void res_delete(apply_t *a, json_t *entry)
{
    const char *type = jstr(entry, "Type"), *pid = jstr(entry, "PhysicalResourceId");
    if (!type || !pid)
        return;
    if (!strcmp(type, "AWS::IAM::Role")) {
        json_t *role = sim_get_role(a->sim, a->ref->account, pid);
        if (role && same_stack(role, a->ref->id))
            sim_delete_role(a->sim, a->ref->account, pid);
    } else if (!strcmp(type, "AWS::IAM::Policy")) {
        detach_policy(a, entry);
    } else if (!strcmp(type, "AWS::IAM::ManagedPolicy")) {
        detach_managed(a, entry);
    }
}

static int in_use(json_t *keep, json_t *entry)
{
    const char *k;
    json_t *v;
    json_object_foreach(keep, k, v)
    {
        if (streq(jstr(v, "Type"), jstr(entry, "Type")) &&
            streq(jstr(v, "PhysicalResourceId"), jstr(entry, "PhysicalResourceId")))
            return 1;
    }
    return 0;
}

/* Remove the resources in cands (an array of entries) that keep does not hold:
 * policies first, then roles. */
static void cleanup(apply_t *a, json_t *cands, json_t *keep)
{
    for (int roles = 0; roles <= 1; roles++) {
        size_t i;
        json_t *x;
        json_array_foreach(cands, i, x)
        {
            if (streq(jstr(x, "Type"), "AWS::IAM::Role") != roles || in_use(keep, x))
                continue;
            const char *lid = jstr(x, "LogicalResourceId");
            add_event(a->st, lid ? lid : "", jstr(x, "PhysicalResourceId"), jstr(x, "Type"),
                      "DELETE_IN_PROGRESS", NULL);
            res_delete(a, x);
            add_event(a->st, lid ? lid : "", jstr(x, "PhysicalResourceId"), jstr(x, "Type"),
                      "DELETE_COMPLETE", NULL);
        }
    }
}

/* Apply a plan to the stack's resources. Returns the new resource map;
 * *failed maps each logical id that failed to "create" or "update"; *left
 * gets the entries the stack had that the new map no longer holds. */
static json_t *apply(apply_t *a, plan_t *p, json_t **failed, json_t **left)
{
    json_t *old = json_object_get(a->st, "Resources");
    json_t *now = json_object(), *bad = json_object();
    *failed = json_object();
    *left = json_array();
    eval_t e;
    eval_init(&e, p, a->ref);
    e.res = now;
    size_t i;
    json_t *nm;
    json_array_foreach(p->order, i, nm)
    {
        const char *logical = json_string_value(nm);
        const char *type = jstr(res_def(&e, logical), "Type");
        json_t *prev = json_object_get(old, logical);
        if (prev && !streq(jstr(prev, "Type"), type))
            prev = NULL; /* a new type replaces the resource */
        int skip = 0;
        const char *dk;
        json_t *dv;
        json_object_foreach(json_object_get(p->deps, logical), dk, dv)
        {
            if (json_object_get(bad, dk) || !json_object_get(now, dk))
                skip = 1;
        }
        if (skip) { /* never attempted: what it needs failed */
            json_object_set_new(bad, logical, json_true());
            if (prev)
                json_object_set(now, logical, prev);
            continue;
        }
        const char *verb = prev ? "UPDATE" : "CREATE";
        char st_buf[64], why[1024] = "";
        snprintf(st_buf, sizeof(st_buf), "%s_IN_PROGRESS", verb);
        add_event(a->st, logical, prev ? jstr(prev, "PhysicalResourceId") : "", type, st_buf, NULL);
        json_t *raw = json_object_get(res_def(&e, logical), "Properties");
        json_t *props = raw ? ev(&e, raw) : json_object();
        if (props == e.novalue) {
            json_decref(props);
            props = json_object();
        }
        json_t *entry = NULL;
        if (!props) {
            snprintf(why, sizeof(why), "%s", e.err);
            e.err[0] = '\0';
        } else if (streq(a->fail_logical, logical)) {
            snprintf(why, sizeof(why), "%s", FAULT_REASON);
        } else {
            entry = res_do(a, logical, type, props, prev, why, sizeof(why));
        }
        if (!entry) {
            json_object_set_new(*failed, logical, json_string(prev ? "update" : "create"));
            json_object_set_new(bad, logical, json_true());
            snprintf(st_buf, sizeof(st_buf), "%s_FAILED", verb);
            add_event(a->st, logical, prev ? jstr(prev, "PhysicalResourceId") : "", type, st_buf,
                      why);
            if (prev)
                json_object_set(now, logical, prev);
            json_decref(props);
            continue;
        }
        snprintf(st_buf, sizeof(st_buf), "%s_COMPLETE", verb);
        json_object_set_new(entry, "LogicalResourceId", json_string(logical));
        json_object_set_new(entry, "Type", json_string(type));
        json_object_set_new(entry, "Properties", props);
        json_object_set_new(entry, "ResourceStatus", json_string(st_buf));
        json_object_set_new(entry, "Timestamp", json_integer(sim_now_ms()));
        if (prev && !streq(jstr(prev, "PhysicalResourceId"), jstr(entry, "PhysicalResourceId")))
            json_array_append(*left, prev);
        add_event(a->st, logical, jstr(entry, "PhysicalResourceId"), type, st_buf, NULL);
        json_object_set_new(now, logical, entry);
    }
    const char *k;
    json_t *v;
    json_object_foreach(old, k, v)
    {
        json_t *cur = json_object_get(now, k);
        if (!cur || (cur != v && !streq(jstr(cur, "Type"), jstr(v, "Type"))))
            json_array_append(*left, v);
    }
    eval_done(&e);
    json_decref(bad);
    return now;
}

static json_t *eval_outputs(plan_t *p, const sref_t *ref, json_t *res)
{
    eval_t e;
    eval_init(&e, p, ref);
    e.res = res;
    e.block = "Outputs";
    json_t *out = json_array();
    const char *k;
    json_t *o;
    json_object_foreach(json_object_get(p->tmpl, "Outputs"), k, o)
    {
        const char *cond = jstr(o, "Condition");
        if (cond && cond_lookup(&e, cond) != 1)
            continue;
        json_t *v = ev(&e, json_object_get(o, "Value"));
        e.err[0] = '\0';
        if (!v || v == e.novalue) {
            json_decref(v);
            continue;
        }
        ob_buf_t b = {0};
        if (json_is_array(v)) {
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x)
            {
                if (i)
                    ob_buf_putc(&b, ',');
                append_scalar(&b, x);
            }
        } else if (append_scalar(&b, v) != 0) {
            char *s = json_dumps(v, JSON_COMPACT);
            ob_buf_puts(&b, s ? s : "");
            free(s);
        }
        json_t *m = json_pack("{s:s, s:s}", "OutputKey", k, "OutputValue", buf_str(&b));
        ob_buf_free(&b);
        json_decref(v);
        if (!m)
            continue;
        if (jstr(o, "Description"))
            json_object_set_new(m, "Description", json_string(jstr(o, "Description")));
        json_t *exp = json_object_get(json_object_get(o, "Export"), "Name");
        if (exp) {
            json_t *en = ev(&e, exp);
            e.err[0] = '\0';
            if (json_is_string(en))
                json_object_set(m, "ExportName", en);
            json_decref(en);
        }
        json_array_append_new(out, m);
    }
    eval_done(&e);
    return out;
}

/* "The following resource(s) failed to create: [A, B]. " (and/or "update"). */
static void failure_reason(json_t *failed, ob_buf_t *out)
{
    static const char *const verbs[] = {"create", "update"};
    for (int i = 0; i < 2; i++) {
        json_t *set = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(failed, k, v)
        {
            if (streq(json_string_value(v), verbs[i]))
                json_object_set_new(set, k, json_true());
        }
        if (json_object_size(set)) {
            ob_buf_printf(out, "The following resource(s) failed to %s: [", verbs[i]);
            keys_joined(set, out);
            ob_buf_puts(out, "]. ");
        }
        json_decref(set);
    }
}

/* ---- lifecycle ---- */

static void arm(sim_t *sim, json_t *st, const char *op, const char *latency)
{
    uint64_t ms = sim_latency_ms(sim, latency);
    json_object_set_new(
        st, "Pending",
        json_pack("{s:s, s:I}", "Op", op, "DueMs", (json_int_t)(sim_now_ms() + (int64_t)ms)));
    schedule(sim, jstr(st, "StackId"), ms);
}

static void unindex(sim_t *sim, json_t *st)
{
    json_t *names = by_region(sim, "stack_names", jstr(st, "Account"), jstr(st, "Region"), 0);
    const char *name = jstr(st, "StackName");
    if (names && name && streq(jstr(names, name), jstr(st, "StackId")))
        json_object_del(names, name);
}

static void all_resources(json_t *st, json_t *into)
{
    const char *k;
    json_t *v;
    size_t i;
    json_object_foreach(json_object_get(st, "Resources"), k, v)
    {
        json_array_append(into, v);
    }
    json_array_foreach(json_object_get(st, "Leftovers"), i, v)
    {
        json_array_append(into, v);
    }
}

/* ---- the rollback fault ---- */

/* Has the rollback fault already failed a stack of this name? */
static int fault_failed_before(sim_t *sim, const char *account, const char *region,
                               const char *name)
{
    return json_object_get(by_region(sim, "stack_faults", account, region, 0), name) != NULL;
}

/* The resource the fault fails: the first IAM role to be created (what a
 * stack of this project is for), else the first resource. */
static const char *fault_target(const plan_t *p)
{
    json_t *res = json_object_get(p->tmpl, "Resources");
    const char *first = NULL;
    size_t i;
    json_t *nm;
    json_array_foreach(p->order, i, nm)
    {
        const char *logical = json_string_value(nm);
        if (!first)
            first = logical;
        if (streq(jstr(json_object_get(res, logical), "Type"), "AWS::IAM::Role"))
            return logical;
    }
    return first;
}

static void finish_create(sim_t *sim, json_t *st)
{
    plan_t p;
    cfn_err_t er = {0};
    sref_t r = stack_ref(st);
    apply_t a = {sim, st, &r, NULL};
    json_t *failed = NULL, *left = NULL;
    ob_buf_t reason = {0};
    /* Marked by CreateStack when the rollback fault fired; a name fails once. */
    int inject = json_object_get(st, "InjectedFault") != NULL &&
                 !fault_failed_before(sim, r.account, r.region, r.name);
    if (stack_plan(st, st, &p, &er) != 0) {
        ob_buf_puts(&reason, er.msg);
    } else {
        if (inject && (a.fail_logical = fault_target(&p)) != NULL)
            json_object_set_new(by_region(sim, "stack_faults", r.account, r.region, 1), r.name,
                                json_integer(sim_now_ms()));
        json_object_set_new(st, "Resources", apply(&a, &p, &failed, &left));
        if (json_object_size(failed) == 0) {
            json_object_set_new(st, "Outputs",
                                eval_outputs(&p, &r, json_object_get(st, "Resources")));
            set_status(st, "CREATE_COMPLETE", NULL, NULL);
        } else {
            failure_reason(failed, &reason);
        }
    }
    plan_free(&p);
    json_decref(failed);
    json_decref(left);
    json_object_del(st, "InjectedFault");
    if (!reason.len)
        return;
    const char *on_failure = jstr(st, "OnFailure");
    if (streq(on_failure, "DO_NOTHING")) {
        set_status(st, "CREATE_FAILED", buf_str(&reason), NULL);
    } else if (streq(on_failure, "DELETE")) {
        set_status(st, "CREATE_FAILED", buf_str(&reason), NULL);
        json_object_set_new(st, "DeletionTime", json_integer(sim_now_ms()));
        set_status(st, "DELETE_IN_PROGRESS", NULL, NULL);
        arm(sim, st, "delete", "cloudformation.stack_delete");
    } else {
        set_status(st, "CREATE_FAILED", buf_str(&reason), NULL);
        ob_buf_puts(&reason, "Rollback requested by user.");
        json_object_set_new(st, "LastUpdatedTime", json_integer(sim_now_ms()));
        set_status(st, "ROLLBACK_IN_PROGRESS", buf_str(&reason), NULL);
        arm(sim, st, "rollback", "cloudformation.stack_delete");
    }
    ob_buf_free(&reason);
}

static void finish_remove(sim_t *sim, json_t *st, const char *final_status)
{
    sref_t r = stack_ref(st);
    apply_t a = {sim, st, &r, NULL};
    json_t *all = json_array(), *none = json_object();
    all_resources(st, all);
    cleanup(&a, all, none);
    json_decref(all);
    json_decref(none);
    json_object_set_new(st, "Resources", json_object());
    json_object_del(st, "Leftovers");
    json_object_del(st, "Previous");
    if (!strcmp(final_status, "DELETE_COMPLETE")) {
        json_object_del(st, "Outputs");
        unindex(sim, st);
        if (!json_object_get(st, "DeletionTime"))
            json_object_set_new(st, "DeletionTime", json_integer(sim_now_ms()));
        set_status(st, final_status, NULL, NULL);
    } else {
        const char *why = jstr(st, "StackStatusReason");
        char *keep = why ? ob_strdup(why) : NULL;
        set_status(st, final_status, keep, NULL);
        free(keep);
    }
}

static void finish_update(sim_t *sim, json_t *st)
{
    plan_t p;
    cfn_err_t er = {0};
    sref_t r = stack_ref(st);
    apply_t a = {sim, st, &r, NULL};
    json_t *failed = NULL, *left = NULL;
    ob_buf_t reason = {0};
    if (stack_plan(st, st, &p, &er) != 0) {
        ob_buf_puts(&reason, er.msg);
    } else {
        json_t *now = apply(&a, &p, &failed, &left);
        if (json_object_size(failed) == 0) {
            cleanup(&a, left, now);
            json_object_set_new(st, "Resources", now);
            json_object_set_new(st, "Outputs", eval_outputs(&p, &r, now));
            json_object_del(st, "Previous");
            json_object_del(st, "Leftovers");
            set_status(st, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", NULL, NULL);
            set_status(st, "UPDATE_COMPLETE", NULL, NULL);
        } else {
            json_object_set_new(st, "Resources", now);
            json_t *keep = json_object_get(st, "Leftovers");
            if (!keep) {
                keep = json_array();
                json_object_set_new(st, "Leftovers", keep);
            }
            json_array_extend(keep, left);
            failure_reason(failed, &reason);
        }
    }
    plan_free(&p);
    json_decref(failed);
    json_decref(left);
    if (reason.len) {
        set_status(st, "UPDATE_ROLLBACK_IN_PROGRESS", buf_str(&reason), NULL);
        arm(sim, st, "update_rollback", "cloudformation.stack_update");
    }
    ob_buf_free(&reason);
}

static void finish_update_rollback(sim_t *sim, json_t *st)
{
    json_t *prev = json_object_get(st, "Previous");
    static const char *const fields[] = {"TemplateBody", "Parameters",  "Tags",
                                         "Capabilities", "Description", NULL};
    for (int i = 0; prev && fields[i]; i++) {
        json_t *v = json_object_get(prev, fields[i]);
        if (v)
            json_object_set(st, fields[i], v);
        else
            json_object_del(st, fields[i]);
    }
    json_object_del(st, "Previous");
    plan_t p;
    cfn_err_t er = {0};
    sref_t r = stack_ref(st);
    apply_t a = {sim, st, &r, NULL};
    json_t *failed = NULL, *left = NULL;
    const char *why = jstr(st, "StackStatusReason");
    char *reason = why ? ob_strdup(why) : NULL;
    if (stack_plan(st, st, &p, &er) != 0) {
        set_status(st, "UPDATE_ROLLBACK_FAILED", er.msg, NULL);
    } else {
        json_t *now = apply(&a, &p, &failed, &left);
        json_t *stale = json_object_get(st, "Leftovers");
        if (stale)
            json_array_extend(left, stale);
        json_object_del(st, "Leftovers");
        cleanup(&a, left, now);
        json_object_set_new(st, "Resources", now);
        json_object_set_new(st, "Outputs", eval_outputs(&p, &r, now));
        if (json_object_size(failed)) {
            ob_buf_t b = {0};
            failure_reason(failed, &b);
            set_status(st, "UPDATE_ROLLBACK_FAILED", buf_str(&b), NULL);
            ob_buf_free(&b);
        } else {
            set_status(st, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", reason, NULL);
            set_status(st, "UPDATE_ROLLBACK_COMPLETE", reason, NULL);
        }
    }
    free(reason);
    plan_free(&p);
    json_decref(failed);
    json_decref(left);
}

static void stack_advance(sim_t *sim, const char *stack_id)
{
    json_t *st = json_object_get(stacks_of(sim), stack_id);
    char op[32];
    if (!st || !jstr(json_object_get(st, "Pending"), "Op"))
        return;
    snprintf(op, sizeof(op), "%s", jstr(json_object_get(st, "Pending"), "Op"));
    json_incref(st); /* held while its timers and sections change */
    json_object_del(st, "Pending");
    if (!strcmp(op, "create"))
        finish_create(sim, st);
    else if (!strcmp(op, "update"))
        finish_update(sim, st);
    else if (!strcmp(op, "update_rollback"))
        finish_update_rollback(sim, st);
    else if (!strcmp(op, "rollback"))
        finish_remove(sim, st, "ROLLBACK_COMPLETE");
    else if (!strcmp(op, "delete"))
        finish_remove(sim, st, "DELETE_COMPLETE");
    json_decref(st);
    sim_touch(sim);
}

/* ---- request parameters ---- */

static int check_stack_name(const char *name, cfn_err_t *er)
{
    if (!name)
        return cfn_fail(er, CFN_ERR,
                        "1 validation error detected: Value null at 'stackName' failed to satisfy "
                        "constraint: Member must not be null");
    int ok = (name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z');
    for (const char *p = name + 1; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             *p == '-';
    if (!ok)
        return cfn_fail(er, CFN_ERR,
                        "1 validation error detected: Value '%s' at 'stackName' failed to "
                        "satisfy constraint: Member must satisfy regular expression pattern: "
                        "[a-zA-Z][-a-zA-Z0-9]*",
                        name);
    if (strlen(name) > 128)
        return cfn_fail(er, CFN_ERR,
                        "1 validation error detected: Value '%s' at 'stackName' failed to "
                        "satisfy constraint: Member must have length less than or equal to 128",
                        name);
    return 0;
}

static int check_token(const char *tok, cfn_err_t *er)
{
    if (!tok)
        return 0;
    size_t n = strlen(tok);
    if (n == 0)
        return cfn_fail(er, CFN_ERR,
                        "1 validation error detected: Value '' at 'clientRequestToken' failed to "
                        "satisfy constraint: Member must have length greater than or equal to 1");
    int ok = (tok[0] >= 'a' && tok[0] <= 'z') || (tok[0] >= 'A' && tok[0] <= 'Z') ||
             (tok[0] >= '0' && tok[0] <= '9');
    for (const char *p = tok + 1; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             *p == '-';
    if (!ok)
        return cfn_fail(er, CFN_ERR,
                        "1 validation error detected: Value '%s' at 'clientRequestToken' failed "
                        "to satisfy constraint: Member must satisfy regular expression pattern: "
                        "[a-zA-Z0-9][-a-zA-Z0-9]*",
                        tok);
    if (n > 128)
        return cfn_fail(er, CFN_ERR,
                        "1 validation error detected: Value '%s' at 'clientRequestToken' failed "
                        "to satisfy constraint: Member must have length less than or equal to 128",
                        tok);
    return 0;
}

/* "<list>.member.N[.field]" values, N from 1 while present. */
static json_t *collect_list(const sim_call_t *c, const char *list)
{
    json_t *out = json_array();
    for (int i = 1;; i++) {
        char k[128];
        snprintf(k, sizeof(k), "%s.member.%d", list, i);
        const char *v = param(c, k);
        if (!v)
            break;
        json_array_append_new(out, json_string(v));
    }
    return out;
}

static int collect_caps(const sim_call_t *c, json_t **out, cfn_err_t *er)
{
    json_t *caps = collect_list(c, "Capabilities");
    size_t i;
    json_t *x;
    json_array_foreach(caps, i, x)
    {
        const char *v = json_string_value(x);
        if (strcmp(v, "CAPABILITY_IAM") != 0 && strcmp(v, "CAPABILITY_NAMED_IAM") != 0 &&
            strcmp(v, "CAPABILITY_AUTO_EXPAND") != 0) {
            ob_buf_t b = {0};
            size_t j;
            json_t *y;
            json_array_foreach(caps, j, y)
            {
                ob_buf_printf(&b, "%s%s", j ? ", " : "", json_string_value(y));
            }
            cfn_fail(er, CFN_ERR,
                     "1 validation error detected: Value '[%s]' at 'capabilities' failed to "
                     "satisfy constraint: Member must satisfy constraint: [Member must satisfy "
                     "enum value set: [CAPABILITY_AUTO_EXPAND, CAPABILITY_NAMED_IAM, "
                     "CAPABILITY_IAM]]",
                     buf_str(&b));
            ob_buf_free(&b);
            json_decref(caps);
            return -1;
        }
    }
    *out = caps;
    return 0;
}

static int has_cap(json_t *caps, const char *cap)
{
    size_t i;
    json_t *x;
    json_array_foreach(caps, i, x)
    {
        if (streq(json_string_value(x), cap))
            return 1;
    }
    return 0;
}

static int check_caps(const plan_t *p, json_t *caps, cfn_err_t *er)
{
    if (p->needs_named && !has_cap(caps, "CAPABILITY_NAMED_IAM"))
        return cfn_fail(er, "InsufficientCapabilitiesException",
                        "Requires capabilities : [CAPABILITY_NAMED_IAM]");
    if (p->needs_iam && !has_cap(caps, "CAPABILITY_IAM") && !has_cap(caps, "CAPABILITY_NAMED_IAM"))
        return cfn_fail(er, "InsufficientCapabilitiesException",
                        "Requires capabilities : [CAPABILITY_IAM]");
    return 0;
}

static int collect_tags(const sim_call_t *c, json_t **out, cfn_err_t *er)
{
    json_t *tags = json_array();
    for (int i = 1;; i++) {
        char kk[64], kv[64];
        snprintf(kk, sizeof(kk), "Tags.member.%d.Key", i);
        snprintf(kv, sizeof(kv), "Tags.member.%d.Value", i);
        const char *k = param(c, kk), *v = param(c, kv);
        if (!k && !v)
            break;
        if (!k || !v) {
            json_decref(tags);
            return cfn_fail(er, CFN_ERR,
                            "1 validation error detected: Value null at 'tags.%d.member.%s' failed "
                            "to satisfy constraint: Member must not be null",
                            i, k ? "value" : "key");
        }
        json_array_append_new(tags, json_pack("{s:s, s:s}", "Key", k, "Value", v));
    }
    if (json_array_size(tags) > 50) {
        json_decref(tags);
        return cfn_fail(er, CFN_ERR,
                        "1 validation error detected: Value at 'tags' failed to satisfy "
                        "constraint: Member must have length less than or equal to 50");
    }
    *out = tags;
    return 0;
}

/* Parameters.member.N.{ParameterKey,ParameterValue,UsePreviousValue} ->
 * {key: value}; prev is the stack's current parameter list (UpdateStack). */
static int collect_params(const sim_call_t *c, json_t *prev, json_t **out, cfn_err_t *er)
{
    json_t *given = json_object();
    for (int i = 1;; i++) {
        char kk[80], kv[80], ku[80];
        snprintf(kk, sizeof(kk), "Parameters.member.%d.ParameterKey", i);
        snprintf(kv, sizeof(kv), "Parameters.member.%d.ParameterValue", i);
        snprintf(ku, sizeof(ku), "Parameters.member.%d.UsePreviousValue", i);
        const char *k = param(c, kk), *v = param(c, kv), *use = param(c, ku);
        if (!k && !v && !use)
            break;
        if (!k)
            continue;
        if (is_true_text(use)) {
            if (v && *v) {
                json_decref(given);
                return cfn_fail(er, CFN_ERR,
                                "Invalid input for parameter key %s. Cannot specify "
                                "usePreviousValue as true and non empty value for a parameter",
                                k);
            }
            const char *pv = NULL;
            size_t j;
            json_t *m;
            json_array_foreach(prev, j, m)
            {
                if (streq(jstr(m, "ParameterKey"), k))
                    pv = jstr(m, "ParameterValue");
            }
            if (!pv) {
                json_decref(given);
                return cfn_fail(er, CFN_ERR,
                                "Invalid input for parameter key %s. Cannot specify "
                                "usePreviousValue as true for a parameter key not in the "
                                "previous template",
                                k);
            }
            json_object_set_new(given, k, json_string(pv));
        } else {
            json_object_set_new(given, k, json_string(v ? v : ""));
        }
    }
    *out = given;
    return 0;
}

/* The template text of CreateStack/UpdateStack (body borrowed from params). */
static int template_param(const sim_call_t *c, const char **body, cfn_err_t *er)
{
    const char *tb = param(c, "TemplateBody"), *tu = param(c, "TemplateURL");
    if (tb && tu)
        return cfn_fail(er, CFN_ERR, "Specify either TemplateBody or TemplateURL, not both.");
    if (tu)
        return cfn_fail(er, CFN_ERR,
                        "TemplateURL is not supported by awssim; send the template as "
                        "TemplateBody");
    if (!tb)
        return cfn_fail(er, CFN_ERR, "Either Template URL or Template Body must be specified.");
    if (strlen(tb) > CFN_TEMPLATE_MAX)
        return cfn_fail(er, CFN_ERR,
                        "Templates with a size greater than 51,200 bytes must be deployed via an "
                        "S3 Bucket. Please add the template to an S3 bucket and try again.");
    *body = tb;
    return 0;
}

static json_t *token_get(sim_t *sim, const sim_call_t *c, const char *token)
{
    return json_object_get(by_region(sim, "stack_tokens", c->account, c->region, 0), token);
}

static void token_put(sim_t *sim, const sim_call_t *c, const char *token, const char *op,
                      json_t *st)
{
    if (!token)
        return;
    json_object_set_new(by_region(sim, "stack_tokens", c->account, c->region, 1), token,
                        json_pack("{s:s, s:s, s:s, s:I}", "Op", op, "StackName",
                                  jstr(st, "StackName"), "StackId", jstr(st, "StackId"), "Time",
                                  (json_int_t)sim_now_ms()));
}

/* A token seen before: 1 when it is the same call again (reply with the
 * stack id), -1 (error set) when another call used it, 0 unseen. */
static int token_replay(sim_t *sim, const sim_call_t *c, const char *token, const char *name,
                        const char *stack_id, cfn_err_t *er)
{
    json_t *t = token ? token_get(sim, c, token) : NULL;
    if (!t)
        return 0;
    if (streq(jstr(t, "Op"), c->op) &&
        (stack_id ? streq(jstr(t, "StackId"), stack_id) : streq(jstr(t, "StackName"), name)))
        return 1;
    return cfn_fail(er, "TokenAlreadyExistsException",
                    "Another %s request with the same client request token [%s] already exists "
                    "for stack %s",
                    jstr(t, "Op") ? jstr(t, "Op") : "stack", token,
                    jstr(t, "StackName") ? jstr(t, "StackName") : "");
}

static int parse_bool_param(const sim_call_t *c, const char *name, int dflt, int *out,
                            cfn_err_t *er)
{
    const char *v = param(c, name);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!strcasecmp(v, "true") || !strcasecmp(v, "false")) {
        *out = !strcasecmp(v, "true");
        return 0;
    }
    return cfn_fail(er, CFN_ERR, "Invalid value '%s' for %s: expected true or false", v, name);
}

/* ---- replies ---- */

static void xml_el(ob_buf_t *b, const char *name, const char *text)
{
    ob_buf_putc(b, '<');
    ob_buf_puts(b, name);
    ob_buf_putc(b, '>');
    sim_xml_text(b, text ? text : "");
    ob_buf_puts(b, "</");
    ob_buf_puts(b, name);
    ob_buf_putc(b, '>');
}

static void xml_time(ob_buf_t *b, const char *name, json_t *ms)
{
    char t[32];
    if (!json_is_integer(ms))
        return;
    sim_iso8601((int64_t)json_integer_value(ms), t);
    xml_el(b, name, t);
}

/* The stack's drift as the last completed detection left it. */
static void xml_drift_info(ob_buf_t *b, json_t *st)
{
    json_t *di = json_object_get(st, "DriftInformation");
    const char *status = jstr(di, "StackDriftStatus");
    ob_buf_puts(b, "<DriftInformation>");
    xml_el(b, "StackDriftStatus", status ? status : "NOT_CHECKED");
    xml_time(b, "LastCheckTimestamp", json_object_get(di, "LastCheckTimestamp"));
    ob_buf_puts(b, "</DriftInformation>");
}

static void xml_stack(ob_buf_t *b, json_t *st)
{
    size_t i;
    json_t *m;
    ob_buf_puts(b, "<member>");
    xml_el(b, "StackId", jstr(st, "StackId"));
    xml_el(b, "StackName", jstr(st, "StackName"));
    if (jstr(st, "Description"))
        xml_el(b, "Description", jstr(st, "Description"));
    json_t *params = json_object_get(st, "Parameters");
    if (json_array_size(params)) {
        ob_buf_puts(b, "<Parameters>");
        json_array_foreach(params, i, m)
        {
            ob_buf_puts(b, "<member>");
            xml_el(b, "ParameterKey", jstr(m, "ParameterKey"));
            xml_el(b, "ParameterValue",
                   json_is_true(json_object_get(m, "NoEcho")) ? "****" : jstr(m, "ParameterValue"));
            ob_buf_puts(b, "</member>");
        }
        ob_buf_puts(b, "</Parameters>");
    }
    xml_time(b, "CreationTime", json_object_get(st, "CreationTime"));
    xml_time(b, "DeletionTime", json_object_get(st, "DeletionTime"));
    xml_time(b, "LastUpdatedTime", json_object_get(st, "LastUpdatedTime"));
    ob_buf_puts(b, "<RollbackConfiguration/>");
    xml_el(b, "StackStatus", jstr(st, "StackStatus"));
    if (jstr(st, "StackStatusReason"))
        xml_el(b, "StackStatusReason", jstr(st, "StackStatusReason"));
    xml_el(b, "DisableRollback",
           json_is_true(json_object_get(st, "DisableRollback")) ? "true" : "false");
    json_t *arns = json_object_get(st, "NotificationARNs");
    if (json_array_size(arns)) {
        ob_buf_puts(b, "<NotificationARNs>");
        json_array_foreach(arns, i, m)
        {
            xml_el(b, "member", json_string_value(m));
        }
        ob_buf_puts(b, "</NotificationARNs>");
    } else {
        ob_buf_puts(b, "<NotificationARNs/>");
    }
    if (json_is_integer(json_object_get(st, "TimeoutInMinutes")))
        ob_buf_printf(b, "<TimeoutInMinutes>%" JSON_INTEGER_FORMAT "</TimeoutInMinutes>",
                      json_integer_value(json_object_get(st, "TimeoutInMinutes")));
    json_t *caps = json_object_get(st, "Capabilities");
    if (json_array_size(caps)) {
        ob_buf_puts(b, "<Capabilities>");
        json_array_foreach(caps, i, m)
        {
            xml_el(b, "member", json_string_value(m));
        }
        ob_buf_puts(b, "</Capabilities>");
    }
    json_t *outs = json_object_get(st, "Outputs");
    if (json_array_size(outs)) {
        ob_buf_puts(b, "<Outputs>");
        json_array_foreach(outs, i, m)
        {
            ob_buf_puts(b, "<member>");
            xml_el(b, "OutputKey", jstr(m, "OutputKey"));
            xml_el(b, "OutputValue", jstr(m, "OutputValue"));
            if (jstr(m, "Description"))
                xml_el(b, "Description", jstr(m, "Description"));
            if (jstr(m, "ExportName"))
                xml_el(b, "ExportName", jstr(m, "ExportName"));
            ob_buf_puts(b, "</member>");
        }
        ob_buf_puts(b, "</Outputs>");
    }
    if (jstr(st, "RoleARN"))
        xml_el(b, "RoleARN", jstr(st, "RoleARN"));
    json_t *tags = json_object_get(st, "Tags");
    if (json_array_size(tags)) {
        ob_buf_puts(b, "<Tags>");
        json_array_foreach(tags, i, m)
        {
            ob_buf_puts(b, "<member>");
            xml_el(b, "Key", jstr(m, "Key"));
            xml_el(b, "Value", jstr(m, "Value"));
            ob_buf_puts(b, "</member>");
        }
        ob_buf_puts(b, "</Tags>");
    } else {
        ob_buf_puts(b, "<Tags/>");
    }
    xml_el(b, "EnableTerminationProtection",
           json_is_true(json_object_get(st, "EnableTerminationProtection")) ? "true" : "false");
    xml_drift_info(b, st);
    ob_buf_puts(b, "</member>");
}

static void reply_stack_id(sim_call_t *c, const char *id)
{
    ob_buf_t b = {0};
    xml_el(&b, "StackId", id);
    sim_reply_query(c, buf_str(&b));
    ob_buf_free(&b);
}

static void reply_err(sim_call_t *c, const cfn_err_t *er)
{
    sim_error(c, 400, er->code ? er->code : CFN_ERR, "%s", er->msg);
}

static int cmp_stack_time(const void *pa, const void *pb)
{
    json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    int64_t ta = jint(a, "CreationTime"), tb = jint(b, "CreationTime");
    if (ta != tb)
        return ta > tb ? -1 : 1; /* newest first, as AWS lists them */
    return strcmp(jstr(b, "StackId"), jstr(a, "StackId"));
}

/* NextToken: the offset into the sorted list. */
static int page_start(const sim_call_t *c, size_t *start, cfn_err_t *er)
{
    const char *t = param(c, "NextToken");
    *start = 0;
    if (!t)
        return 0;
    char *end;
    unsigned long long v = strtoull(t, &end, 10);
    if (!*t || *end)
        return cfn_fail(er, CFN_ERR, "Invalid NextToken");
    *start = (size_t)v;
    return 0;
}

static void page_end(ob_buf_t *b, size_t start, size_t n, size_t total)
{
    if (start + n < total)
        ob_buf_printf(b, "<NextToken>%zu</NextToken>", start + n);
}

/* ---- operations ---- */

static void op_create(sim_call_t *c)
{
    sim_t *sim = c->sim;
    cfn_err_t er = {0};
    const char *name = param(c, "StackName"), *token = param(c, "ClientRequestToken");
    const char *body = NULL, *on_failure = param(c, "OnFailure");
    json_t *given = NULL, *caps = NULL, *tags = NULL;
    plan_t p;
    memset(&p, 0, sizeof(p));
    int disable_rollback = 0, protect = 0;
    if (check_stack_name(name, &er) || check_token(token, &er))
        goto fail;
    int replay = token_replay(sim, c, token, name, NULL, &er);
    if (replay < 0)
        goto fail;
    if (replay) {
        reply_stack_id(c, jstr(token_get(sim, c, token), "StackId"));
        return;
    }
    if (find_stack(sim, c->account, c->region, name)) {
        cfn_fail(&er, "AlreadyExistsException", "Stack [%s] already exists", name);
        goto fail;
    }
    if (json_object_size(by_region(sim, "stack_names", c->account, c->region, 0)) >=
        CFN_STACK_LIMIT) {
        cfn_fail(&er, "LimitExceededException",
                 "Limit on the number of stacks has been exceeded: an account may have %d stacks "
                 "in a region",
                 CFN_STACK_LIMIT);
        goto fail;
    }
    if (on_failure && strcmp(on_failure, "ROLLBACK") != 0 &&
        strcmp(on_failure, "DO_NOTHING") != 0 && strcmp(on_failure, "DELETE") != 0) {
        cfn_fail(&er, CFN_ERR,
                 "1 validation error detected: Value '%s' at 'onFailure' failed to satisfy "
                 "constraint: Member must satisfy enum value set: [DO_NOTHING, ROLLBACK, DELETE]",
                 on_failure);
        goto fail;
    }
    if (parse_bool_param(c, "DisableRollback", 0, &disable_rollback, &er) ||
        parse_bool_param(c, "EnableTerminationProtection", 0, &protect, &er))
        goto fail;
    if (on_failure && param(c, "DisableRollback")) {
        cfn_fail(&er, CFN_ERR,
                 "You can specify either DisableRollback or OnFailure, but not both.");
        goto fail;
    }
    if (template_param(c, &body, &er) || collect_params(c, NULL, &given, &er) ||
        collect_caps(c, &caps, &er) || collect_tags(c, &tags, &er))
        goto fail;

    char uuid[37], stack_id[512];
    make_uuid(uuid);
    snprintf(stack_id, sizeof(stack_id), "arn:aws:cloudformation:%s:%s:stack/%s/%s", c->region,
             c->account, name, uuid);
    sref_t ref = {c->account, c->region, name, stack_id};
    if (plan_build(body, given, &ref, &p, &er) != 0 || check_caps(&p, caps, &er) != 0)
        goto fail;

    int64_t now = sim_now_ms();
    json_t *st = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:s, s:O, s:O, s:O, s:o, s:s, s:b, s:b, "
        "s:o, s:o, s:o}",
        "StackId", stack_id, "StackName", name, "Account", c->account, "Region", c->region,
        "CreationTime", (json_int_t)now, "TemplateBody", body, "Parameters", p.plist,
        "Capabilities", caps, "Tags", tags, "NotificationARNs", collect_list(c, "NotificationARNs"),
        "OnFailure", disable_rollback ? "DO_NOTHING" : (on_failure ? on_failure : "ROLLBACK"),
        "DisableRollback", disable_rollback, "EnableTerminationProtection", protect, "Resources",
        json_object(), "Outputs", json_array(), "Events", json_array());
    if (!st) {
        cfn_fail(&er, "InternalFailure", "could not record the stack");
        goto fail;
    }
    if (jstr(p.tmpl, "Description"))
        json_object_set_new(st, "Description", json_string(jstr(p.tmpl, "Description")));
    const char *timeout = param(c, "TimeoutInMinutes");
    if (timeout && atoi(timeout) > 0)
        json_object_set_new(st, "TimeoutInMinutes", json_integer(atoi(timeout)));
    if (param(c, "RoleARN"))
        json_object_set_new(st, "RoleARN", json_string(param(c, "RoleARN")));
    json_object_set_new(stacks_of(sim), stack_id, st);
    json_object_set_new(by_region(sim, "stack_names", c->account, c->region, 1), name,
                        json_string(stack_id));
    token_put(sim, c, token, "CreateStack", st);
    /* The rollback fault decides now, in the order the calls come, and the
     * stack carries the decision (through a saved state) to its timer. */
    if (!fault_failed_before(sim, c->account, c->region, name) &&
        sim_rollback_fault(sim, "cloudformation.stack_create"))
        json_object_set_new(st, "InjectedFault", json_string("rollback"));
    set_status(st, "CREATE_IN_PROGRESS", NULL, "User Initiated");
    arm(sim, st, "create", "cloudformation.stack_create");
    sim_touch(sim);
    reply_stack_id(c, stack_id);
    goto done;
fail:
    reply_err(c, &er);
done:
    plan_free(&p);
    json_decref(given);
    json_decref(caps);
    json_decref(tags);
}

static int updatable(const char *status)
{
    return streq(status, "CREATE_COMPLETE") || streq(status, "UPDATE_COMPLETE") ||
           streq(status, "UPDATE_ROLLBACK_COMPLETE") || streq(status, "IMPORT_COMPLETE") ||
           streq(status, "IMPORT_ROLLBACK_COMPLETE");
}

static int same_params(json_t *a, json_t *b)
{
    if (json_array_size(a) != json_array_size(b))
        return 0;
    size_t i;
    json_t *m;
    json_array_foreach(a, i, m)
    {
        int found = 0;
        size_t j;
        json_t *n;
        json_array_foreach(b, j, n)
        {
            if (streq(jstr(m, "ParameterKey"), jstr(n, "ParameterKey")) &&
                streq(jstr(m, "ParameterValue"), jstr(n, "ParameterValue")))
                found = 1;
        }
        if (!found)
            return 0;
    }
    return 1;
}

static void op_update(sim_call_t *c)
{
    sim_t *sim = c->sim;
    cfn_err_t er = {0};
    const char *name = param(c, "StackName"), *token = param(c, "ClientRequestToken");
    const char *body = NULL;
    json_t *given = NULL, *caps = NULL, *tags = NULL, *st = NULL;
    plan_t p;
    memset(&p, 0, sizeof(p));
    int use_prev = 0;
    if (!name) {
        check_stack_name(name, &er);
        goto fail;
    }
    if (check_token(token, &er))
        goto fail;
    st = find_stack(sim, c->account, c->region, name);
    if (!st) {
        cfn_fail(&er, CFN_ERR, "Stack with id %s does not exist", name);
        goto fail;
    }
    int replay = token_replay(sim, c, token, NULL, jstr(st, "StackId"), &er);
    if (replay < 0)
        goto fail;
    if (replay) {
        reply_stack_id(c, jstr(st, "StackId"));
        return;
    }
    const char *status = jstr(st, "StackStatus");
    if (!updatable(status)) {
        cfn_fail(&er, CFN_ERR, "Stack:%s is in %s state and can not be updated.",
                 jstr(st, "StackId"), status);
        goto fail;
    }
    if (parse_bool_param(c, "UsePreviousTemplate", 0, &use_prev, &er))
        goto fail;
    if (use_prev) {
        if (param(c, "TemplateBody") || param(c, "TemplateURL")) {
            cfn_fail(&er, CFN_ERR,
                     "You cannot specify both usePreviousTemplate and Template Body/Template URL.");
            goto fail;
        }
        body = jstr(st, "TemplateBody");
    } else if (template_param(c, &body, &er)) {
        goto fail;
    }
    if (collect_params(c, json_object_get(st, "Parameters"), &given, &er) ||
        collect_caps(c, &caps, &er) || collect_tags(c, &tags, &er))
        goto fail;
    if (!param(c, "Tags.member.1.Key")) {
        json_decref(tags);
        tags = json_deep_copy(json_object_get(st, "Tags"));
        if (!tags)
            tags = json_array();
    }
    sref_t ref = stack_ref(st);
    if (plan_build(body, given, &ref, &p, &er) != 0 || check_caps(&p, caps, &er) != 0)
        goto fail;
    json_t *cur = json_loads(jstr(st, "TemplateBody"), 0, NULL);
    int same = cur && json_equal(cur, p.tmpl) &&
               same_params(p.plist, json_object_get(st, "Parameters")) &&
               json_equal(tags, json_object_get(st, "Tags"));
    json_decref(cur);
    if (same) {
        cfn_fail(&er, CFN_ERR, "No updates are to be performed.");
        goto fail;
    }
    json_t *prev = json_object();
    static const char *const fields[] = {"TemplateBody", "Parameters", "Tags", "Capabilities",
                                         "Description",  "Outputs",    NULL};
    for (int i = 0; fields[i]; i++)
        if (json_object_get(st, fields[i]))
            json_object_set(prev, fields[i], json_object_get(st, fields[i]));
    json_object_set_new(st, "Previous", prev);
    json_object_set_new(st, "TemplateBody", json_string(body));
    json_object_set(st, "Parameters", p.plist);
    json_object_set(st, "Capabilities", caps);
    json_object_set(st, "Tags", tags);
    if (jstr(p.tmpl, "Description"))
        json_object_set_new(st, "Description", json_string(jstr(p.tmpl, "Description")));
    else
        json_object_del(st, "Description");
    int dr;
    if (param(c, "DisableRollback") && parse_bool_param(c, "DisableRollback", 0, &dr, &er) == 0)
        json_object_set_new(st, "DisableRollback", json_boolean(dr));
    json_object_set_new(st, "LastUpdatedTime", json_integer(sim_now_ms()));
    token_put(sim, c, token, "UpdateStack", st);
    set_status(st, "UPDATE_IN_PROGRESS", NULL, "User Initiated");
    arm(sim, st, "update", "cloudformation.stack_update");
    sim_touch(sim);
    reply_stack_id(c, jstr(st, "StackId"));
    goto done;
fail:
    reply_err(c, &er);
done:
    plan_free(&p);
    json_decref(given);
    json_decref(caps);
    json_decref(tags);
}

static void op_delete(sim_call_t *c)
{
    sim_t *sim = c->sim;
    cfn_err_t er = {0};
    const char *name = param(c, "StackName"), *token = param(c, "ClientRequestToken");
    if (!name) {
        check_stack_name(name, &er);
        reply_err(c, &er);
        return;
    }
    if (check_token(token, &er)) {
        reply_err(c, &er);
        return;
    }
    json_t *st = find_stack(sim, c->account, c->region, name);
    if (!st) { /* deleting what is not there succeeds, as in AWS */
        sim_reply_query(c, NULL);
        return;
    }
    int replay = token_replay(sim, c, token, NULL, jstr(st, "StackId"), &er);
    if (replay < 0) {
        reply_err(c, &er);
        return;
    }
    const char *status = jstr(st, "StackStatus");
    if (replay || streq(status, "DELETE_COMPLETE") || streq(status, "DELETE_IN_PROGRESS")) {
        sim_reply_query(c, NULL);
        return;
    }
    if (json_is_true(json_object_get(st, "EnableTerminationProtection"))) {
        sim_error(c, 400, CFN_ERR,
                  "Stack [%s] cannot be deleted while TerminationProtection is enabled",
                  jstr(st, "StackName"));
        return;
    }
    if (strstr(status, "_IN_PROGRESS") && strcmp(status, "CREATE_IN_PROGRESS") != 0) {
        sim_error(c, 400, CFN_ERR, "Stack [%s] cannot be deleted while in status %s",
                  jstr(st, "StackId"), status);
        return;
    }
    unschedule(sim, jstr(st, "StackId"));
    json_object_del(st, "Pending");
    json_object_set_new(st, "DeletionTime", json_integer(sim_now_ms()));
    token_put(sim, c, token, "DeleteStack", st);
    set_status(st, "DELETE_IN_PROGRESS", NULL, "User Initiated");
    arm(sim, st, "delete", "cloudformation.stack_delete");
    sim_touch(sim);
    sim_reply_query(c, NULL);
}

static void op_describe(sim_call_t *c)
{
    sim_t *sim = c->sim;
    cfn_err_t er = {0};
    const char *name = param(c, "StackName");
    ob_buf_t b = {0};
    if (name) {
        json_t *st = find_stack(sim, c->account, c->region, name);
        if (!st) {
            sim_error(c, 400, CFN_ERR, "Stack with id %s does not exist", name);
            return;
        }
        ob_buf_puts(&b, "<Stacks>");
        xml_stack(&b, st);
        ob_buf_puts(&b, "</Stacks>");
        sim_reply_query(c, buf_str(&b));
        ob_buf_free(&b);
        return;
    }
    size_t start;
    if (page_start(c, &start, &er)) {
        reply_err(c, &er);
        return;
    }
    json_t *names = by_region(sim, "stack_names", c->account, c->region, 0);
    size_t n = 0, total = json_object_size(names);
    json_t **v = ob_calloc(total ? total : 1, sizeof(*v));
    const char *k;
    json_t *id;
    json_object_foreach(names, k, id)
    {
        json_t *st = json_object_get(stacks_of(sim), json_string_value(id));
        if (st)
            v[n++] = st;
    }
    qsort(v, n, sizeof(*v), cmp_stack_time);
    ob_buf_puts(&b, "<Stacks>");
    size_t shown = 0;
    for (size_t i = start; i < n && shown < CFN_PAGE; i++, shown++)
        xml_stack(&b, v[i]);
    ob_buf_puts(&b, "</Stacks>");
    page_end(&b, start, shown, n);
    sim_reply_query(c, buf_str(&b));
    ob_buf_free(&b);
    free(v);
}

static const char *const stack_statuses[] = {"CREATE_IN_PROGRESS",
                                             "CREATE_FAILED",
                                             "CREATE_COMPLETE",
                                             "ROLLBACK_IN_PROGRESS",
                                             "ROLLBACK_FAILED",
                                             "ROLLBACK_COMPLETE",
                                             "DELETE_IN_PROGRESS",
                                             "DELETE_FAILED",
                                             "DELETE_COMPLETE",
                                             "UPDATE_IN_PROGRESS",
                                             "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
                                             "UPDATE_COMPLETE",
                                             "UPDATE_FAILED",
                                             "UPDATE_ROLLBACK_IN_PROGRESS",
                                             "UPDATE_ROLLBACK_FAILED",
                                             "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
                                             "UPDATE_ROLLBACK_COMPLETE",
                                             "REVIEW_IN_PROGRESS",
                                             "IMPORT_IN_PROGRESS",
                                             "IMPORT_COMPLETE",
                                             "IMPORT_ROLLBACK_IN_PROGRESS",
                                             "IMPORT_ROLLBACK_FAILED",
                                             "IMPORT_ROLLBACK_COMPLETE",
                                             NULL};

static void op_list(sim_call_t *c)
{
    sim_t *sim = c->sim;
    cfn_err_t er = {0};
    json_t *filter = collect_list(c, "StackStatusFilter");
    size_t i;
    json_t *x;
    json_array_foreach(filter, i, x)
    {
        int ok = 0;
        for (int j = 0; stack_statuses[j]; j++)
            ok |= streq(json_string_value(x), stack_statuses[j]);
        if (!ok) {
            sim_error(c, 400, CFN_ERR,
                      "1 validation error detected: Value '%s' at 'stackStatusFilter' failed to "
                      "satisfy constraint: Member must satisfy constraint: [Member must satisfy "
                      "enum value set: [CREATE_IN_PROGRESS, CREATE_FAILED, CREATE_COMPLETE, "
                      "ROLLBACK_IN_PROGRESS, ROLLBACK_FAILED, ROLLBACK_COMPLETE, ...]]",
                      json_string_value(x));
            json_decref(filter);
            return;
        }
    }
    size_t start;
    if (page_start(c, &start, &er)) {
        json_decref(filter);
        reply_err(c, &er);
        return;
    }
    json_t *stacks = stacks_of(sim);
    size_t n = 0;
    json_t **v = ob_calloc(json_object_size(stacks) + 1, sizeof(*v));
    const char *k;
    json_t *st;
    json_object_foreach(stacks, k, st)
    {
        if (!streq(jstr(st, "Account"), c->account) || !streq(jstr(st, "Region"), c->region))
            continue;
        int keep = json_array_size(filter) == 0;
        json_array_foreach(filter, i, x)
        {
            keep |= streq(json_string_value(x), jstr(st, "StackStatus"));
        }
        if (keep)
            v[n++] = st;
    }
    json_decref(filter);
    qsort(v, n, sizeof(*v), cmp_stack_time);
    ob_buf_t b = {0};
    ob_buf_puts(&b, "<StackSummaries>");
    size_t shown = 0;
    for (i = start; i < n && shown < CFN_PAGE; i++, shown++) {
        st = v[i];
        ob_buf_puts(&b, "<member>");
        xml_el(&b, "StackId", jstr(st, "StackId"));
        xml_el(&b, "StackName", jstr(st, "StackName"));
        if (jstr(st, "Description"))
            xml_el(&b, "TemplateDescription", jstr(st, "Description"));
        xml_time(&b, "CreationTime", json_object_get(st, "CreationTime"));
        xml_time(&b, "LastUpdatedTime", json_object_get(st, "LastUpdatedTime"));
        xml_time(&b, "DeletionTime", json_object_get(st, "DeletionTime"));
        xml_el(&b, "StackStatus", jstr(st, "StackStatus"));
        if (jstr(st, "StackStatusReason"))
            xml_el(&b, "StackStatusReason", jstr(st, "StackStatusReason"));
        xml_drift_info(&b, st);
        ob_buf_puts(&b, "</member>");
    }
    ob_buf_puts(&b, "</StackSummaries>");
    page_end(&b, start, shown, n);
    sim_reply_query(c, buf_str(&b));
    ob_buf_free(&b);
    free(v);
}

static json_t *stack_by_param(sim_call_t *c)
{
    const char *name = param(c, "StackName");
    json_t *st = name ? find_stack(c->sim, c->account, c->region, name) : NULL;
    if (!st)
        sim_error(c, 400, CFN_ERR, "Stack with id %s does not exist", name ? name : "null");
    return st;
}

static void op_events(sim_call_t *c)
{
    cfn_err_t er = {0};
    json_t *st = stack_by_param(c);
    size_t start;
    if (!st)
        return;
    if (page_start(c, &start, &er)) {
        reply_err(c, &er);
        return;
    }
    json_t *evs = json_object_get(st, "Events");
    size_t n = json_array_size(evs), shown = 0;
    ob_buf_t b = {0};
    ob_buf_puts(&b, "<StackEvents>");
    for (size_t i = start; i < n && shown < CFN_PAGE; i++, shown++) {
        json_t *e = json_array_get(evs, n - 1 - i); /* newest first */
        ob_buf_puts(&b, "<member>");
        xml_el(&b, "StackId", jstr(st, "StackId"));
        xml_el(&b, "EventId", jstr(e, "EventId"));
        xml_el(&b, "StackName", jstr(st, "StackName"));
        xml_el(&b, "LogicalResourceId", jstr(e, "LogicalResourceId"));
        xml_el(&b, "PhysicalResourceId", jstr(e, "PhysicalResourceId"));
        xml_el(&b, "ResourceType", jstr(e, "ResourceType"));
        xml_time(&b, "Timestamp", json_object_get(e, "Timestamp"));
        xml_el(&b, "ResourceStatus", jstr(e, "ResourceStatus"));
        if (jstr(e, "ResourceStatusReason"))
            xml_el(&b, "ResourceStatusReason", jstr(e, "ResourceStatusReason"));
        ob_buf_puts(&b, "</member>");
    }
    ob_buf_puts(&b, "</StackEvents>");
    page_end(&b, start, shown, n);
    sim_reply_query(c, buf_str(&b));
    ob_buf_free(&b);
}

static void op_get_template(sim_call_t *c)
{
    json_t *st = stack_by_param(c);
    if (!st)
        return;
    ob_buf_t b = {0};
    xml_el(&b, "TemplateBody", jstr(st, "TemplateBody"));
    ob_buf_puts(&b, "<StagesAvailable><member>Original</member><member>Processed</member>"
                    "</StagesAvailable>");
    sim_reply_query(c, buf_str(&b));
    ob_buf_free(&b);
}

/* ---- drift detection ---- */

#define DRIFT_KEPT 10 /* detections remembered per stack; older ids are forgotten */

static json_t *detections_of(sim_t *sim)
{
    return sim_section(sim, "stack_drift_detections");
}

/* The stack statuses AWS detects drift in. */
static int drift_detectable(const char *status)
{
    return streq(status, "CREATE_COMPLETE") || streq(status, "UPDATE_COMPLETE") ||
           streq(status, "UPDATE_ROLLBACK_COMPLETE") || streq(status, "UPDATE_ROLLBACK_FAILED") ||
           streq(status, "IMPORT_COMPLETE") || streq(status, "IMPORT_ROLLBACK_COMPLETE");
}

/* Results of earlier detections for the resources this one did not check
 * (a LogicalResourceIds filter), as long as the stack still has them. */
static void keep_unchecked(json_t *st, json_t *results, json_t *checked)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(st, "ResourceDrifts"), i, r)
    {
        const char *lid = jstr(r, "LogicalResourceId");
        if (lid && !json_object_get(checked, lid) &&
            json_object_get(json_object_get(st, "Resources"), lid))
            json_array_append(results, r);
    }
}

static int cmp_drift(const void *a, const void *b)
{
    return strcmp(jstr(*(json_t *const *)a, "LogicalResourceId"),
                  jstr(*(json_t *const *)b, "LogicalResourceId"));
}

/* The detection's timer: compare every checked resource with what it is now. */
static void drift_finish(sim_t *sim, const char *id)
{
    json_t *d = json_object_get(detections_of(sim), id);
    if (!d || !streq(jstr(d, "DetectionStatus"), "DETECTION_IN_PROGRESS"))
        return;
    json_t *st = json_object_get(stacks_of(sim), jstr(d, "StackId"));
    json_object_del(d, "DueMs");
    json_object_del(d, "DetectionStatusReason");
    sim_touch(sim);
    if (st)
        json_object_del(st, "DriftDetecting");
    const char *status = jstr(st, "StackStatus");
    if (!st || streq(status, "DELETE_IN_PROGRESS") || streq(status, "DELETE_COMPLETE")) {
        json_object_set_new(d, "DetectionStatus", json_string("DETECTION_FAILED"));
        json_object_set_new(d, "StackDriftStatus", json_string("UNKNOWN"));
        json_object_set_new(
            d, "DetectionStatusReason",
            json_sprintf("Stack [%s] was deleted while its drift was being detected",
                         jstr(d, "StackId")));
        return;
    }
    json_t *filter = json_object_get(d, "LogicalResourceIds");
    json_t *res = json_object_get(st, "Resources");
    json_t *results = json_array(), *checked = json_object();
    int64_t now = sim_now_ms();
    int drifted = 0;
    const char *lid;
    json_t *entry;
    json_object_foreach(res, lid, entry)
    {
        int wanted = !json_array_size(filter);
        size_t i;
        json_t *x;
        json_array_foreach(filter, i, x)
        {
            wanted |= streq(json_string_value(x), lid);
        }
        json_t *r = wanted ? sim_drift_check(sim, jstr(st, "Account"), entry, res) : NULL;
        if (!r)
            continue;
        json_object_set_new(checked, lid, json_true());
        json_object_set(r, "StackId", json_object_get(st, "StackId"));
        json_object_set_new(r, "Timestamp", json_integer(now));
        drifted += !streq(jstr(r, "StackResourceDriftStatus"), "IN_SYNC");
        json_array_append_new(results, r);
    }
    keep_unchecked(st, results, checked);
    json_decref(checked);
    size_t n = json_array_size(results), any = 0;
    json_t **v = ob_malloc((n + 1) * sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        v[i] = json_array_get(results, i);
        any += !streq(jstr(v[i], "StackResourceDriftStatus"), "IN_SYNC");
    }
    qsort(v, n, sizeof(*v), cmp_drift);
    json_t *ordered = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(ordered, v[i]);
    free(v);
    json_decref(results);
    json_object_set_new(st, "ResourceDrifts", ordered);
    json_object_set_new(st, "DriftInformation",
                        json_pack("{s:s, s:O}", "StackDriftStatus", any ? "DRIFTED" : "IN_SYNC",
                                  "LastCheckTimestamp", json_object_get(d, "Timestamp")));
    json_object_set_new(d, "DetectionStatus", json_string("DETECTION_COMPLETE"));
    json_object_set_new(d, "StackDriftStatus", json_string(drifted ? "DRIFTED" : "IN_SYNC"));
    json_object_set_new(d, "DriftedStackResourceCount", json_integer(drifted));
}

/* Remember the detection on its stack; the oldest beyond DRIFT_KEPT go. */
static void remember_detection(sim_t *sim, json_t *st, const char *id)
{
    json_t *ids = json_object_get(st, "DriftDetections");
    if (!json_is_array(ids)) {
        ids = json_array();
        json_object_set_new(st, "DriftDetections", ids);
    }
    json_array_append_new(ids, json_string(id));
    while (json_array_size(ids) > DRIFT_KEPT) {
        json_object_del(detections_of(sim), json_string_value(json_array_get(ids, 0)));
        json_array_remove(ids, 0);
    }
}

static void op_detect_drift(sim_call_t *c)
{
    json_t *st = stack_by_param(c);
    if (!st)
        return;
    const char *status = jstr(st, "StackStatus");
    if (!drift_detectable(status)) {
        sim_error(c, 400, CFN_ERR, "Stack [%s] is in %s state and can not be checked for drift",
                  jstr(st, "StackId"), status);
        return;
    }
    if (jstr(st, "DriftDetecting")) {
        sim_error(c, 400, CFN_ERR, "Drift detection is already in progress for stack [%s]",
                  jstr(st, "StackId"));
        return;
    }
    json_t *filter = collect_list(c, "LogicalResourceIds");
    size_t i;
    json_t *x;
    json_array_foreach(filter, i, x)
    {
        if (!json_object_get(json_object_get(st, "Resources"), json_string_value(x))) {
            sim_error(c, 400, CFN_ERR, "Resource [%s] does not exist in stack [%s]",
                      json_string_value(x), jstr(st, "StackName"));
            json_decref(filter);
            return;
        }
    }
    char id[37];
    make_uuid(id);
    uint64_t ms = sim_latency_ms(c->sim, "cloudformation.drift_detect");
    int64_t now = sim_now_ms();
    json_t *d = json_pack("{s:s, s:O, s:s, s:s, s:s, s:s, s:I, s:I}", "StackDriftDetectionId", id,
                          "StackId", json_object_get(st, "StackId"), "Account", c->account,
                          "Region", c->region, "DetectionStatus", "DETECTION_IN_PROGRESS",
                          "DetectionStatusReason", "User Initiated", "Timestamp", (json_int_t)now,
                          "DueMs", (json_int_t)(now + (int64_t)ms));
    if (json_array_size(filter))
        json_object_set(d, "LogicalResourceIds", filter);
    json_decref(filter);
    json_object_set_new(detections_of(c->sim), id, d);
    json_object_set_new(st, "DriftDetecting", json_string(id));
    remember_detection(c->sim, st, id);
    schedule(c->sim, id, ms);
    sim_touch(c->sim);
    ob_buf_t b = {0};
    xml_el(&b, "StackDriftDetectionId", id);
    sim_reply_query(c, buf_str(&b));
    ob_buf_free(&b);
}

static void op_drift_status(sim_call_t *c)
{
    const char *id = param(c, "StackDriftDetectionId");
    if (!id) {
        sim_error(c, 400, CFN_ERR,
                  "1 validation error detected: Value null at 'stackDriftDetectionId' failed to "
                  "satisfy constraint: Member must not be null");
        return;
    }
    if (!*id || strlen(id) > 36) {
        sim_error(c, 400, CFN_ERR,
                  "1 validation error detected: Value '%s' at 'stackDriftDetectionId' failed to "
                  "satisfy constraint: Member must have length %s",
                  id, *id ? "less than or equal to 36" : "greater than or equal to 1");
        return;
    }
    json_t *d = json_object_get(detections_of(c->sim), id);
    if (!d || !streq(jstr(d, "Account"), c->account) || !streq(jstr(d, "Region"), c->region)) {
        sim_error(c, 400, CFN_ERR, "Drift detection with id %s does not exist", id);
        return;
    }
    ob_buf_t b = {0};
    xml_el(&b, "StackId", jstr(d, "StackId"));
    xml_el(&b, "StackDriftDetectionId", id);
    if (jstr(d, "StackDriftStatus"))
        xml_el(&b, "StackDriftStatus", jstr(d, "StackDriftStatus"));
    xml_el(&b, "DetectionStatus", jstr(d, "DetectionStatus"));
    if (jstr(d, "DetectionStatusReason"))
        xml_el(&b, "DetectionStatusReason", jstr(d, "DetectionStatusReason"));
    if (json_is_integer(json_object_get(d, "DriftedStackResourceCount")))
        ob_buf_printf(
            &b, "<DriftedStackResourceCount>%" JSON_INTEGER_FORMAT "</DriftedStackResourceCount>",
            json_integer_value(json_object_get(d, "DriftedStackResourceCount")));
    xml_time(&b, "Timestamp", json_object_get(d, "Timestamp"));
    sim_reply_query(c, buf_str(&b));
    ob_buf_free(&b);
}

static const char *const resource_drift_statuses[] = {
    "IN_SYNC", "MODIFIED", "DELETED", "NOT_CHECKED", "UNKNOWN", "UNSUPPORTED", NULL};

static void xml_resource_drift(ob_buf_t *b, json_t *r)
{
    size_t i;
    json_t *p;
    ob_buf_puts(b, "<member>");
    xml_el(b, "StackId", jstr(r, "StackId"));
    xml_el(b, "LogicalResourceId", jstr(r, "LogicalResourceId"));
    if (jstr(r, "PhysicalResourceId"))
        xml_el(b, "PhysicalResourceId", jstr(r, "PhysicalResourceId"));
    xml_el(b, "ResourceType", jstr(r, "ResourceType"));
    if (jstr(r, "ExpectedProperties"))
        xml_el(b, "ExpectedProperties", jstr(r, "ExpectedProperties"));
    if (jstr(r, "ActualProperties"))
        xml_el(b, "ActualProperties", jstr(r, "ActualProperties"));
    json_t *diffs = json_object_get(r, "PropertyDifferences");
    if (json_array_size(diffs)) {
        ob_buf_puts(b, "<PropertyDifferences>");
        json_array_foreach(diffs, i, p)
        {
            ob_buf_puts(b, "<member>");
            xml_el(b, "PropertyPath", jstr(p, "PropertyPath"));
            xml_el(b, "ExpectedValue", jstr(p, "ExpectedValue"));
            xml_el(b, "ActualValue", jstr(p, "ActualValue"));
            xml_el(b, "DifferenceType", jstr(p, "DifferenceType"));
            ob_buf_puts(b, "</member>");
        }
        ob_buf_puts(b, "</PropertyDifferences>");
    }
    xml_el(b, "StackResourceDriftStatus", jstr(r, "StackResourceDriftStatus"));
    xml_time(b, "Timestamp", json_object_get(r, "Timestamp"));
    ob_buf_puts(b, "</member>");
}

static void op_resource_drifts(sim_call_t *c)
{
    cfn_err_t er = {0};
    json_t *st = stack_by_param(c);
    if (!st)
        return;
    json_t *filter = collect_list(c, "StackResourceDriftStatusFilters");
    size_t i, start;
    json_t *x;
    int bad = json_array_size(filter) > 4;
    json_array_foreach(filter, i, x)
    {
        int ok = 0;
        for (int j = 0; resource_drift_statuses[j]; j++)
            ok |= streq(json_string_value(x), resource_drift_statuses[j]);
        bad |= !ok;
    }
    if (bad) {
        ob_buf_t shown = {0};
        json_array_foreach(filter, i, x)
        {
            ob_buf_printf(&shown, "%s%s", i ? ", " : "", json_string_value(x));
        }
        sim_error(c, 400, CFN_ERR,
                  json_array_size(filter) > 4
                      ? "1 validation error detected: Value '[%s]' at "
                        "'stackResourceDriftStatusFilters' failed to satisfy constraint: Member "
                        "must have length less than or equal to 4"
                      : "1 validation error detected: Value '[%s]' at "
                        "'stackResourceDriftStatusFilters' failed to satisfy constraint: Member "
                        "must satisfy constraint: [Member must satisfy enum value set: [IN_SYNC, "
                        "MODIFIED, DELETED, NOT_CHECKED, UNKNOWN, UNSUPPORTED]]",
                  buf_str(&shown));
        ob_buf_free(&shown);
        json_decref(filter);
        return;
    }
    const char *mr = param(c, "MaxResults");
    long max = 100;
    if (mr) {
        char *end;
        max = strtol(mr, &end, 10);
        if (!*mr || *end || max < 1 || max > 100) {
            sim_error(c, 400, CFN_ERR,
                      "1 validation error detected: Value '%s' at 'maxResults' failed to satisfy "
                      "constraint: Member must have value %s",
                      mr, max < 1 ? "greater than or equal to 1" : "less than or equal to 100");
            json_decref(filter);
            return;
        }
    }
    if (page_start(c, &start, &er)) {
        json_decref(filter);
        reply_err(c, &er);
        return;
    }
    json_t *all = json_object_get(st, "ResourceDrifts"), *r;
    size_t n = 0, shown = 0;
    ob_buf_t b = {0};
    ob_buf_puts(&b, "<StackResourceDrifts>");
    json_array_foreach(all, i, r)
    {
        int keep = json_array_size(filter) == 0;
        size_t j;
        json_array_foreach(filter, j, x)
        {
            keep |= streq(json_string_value(x), jstr(r, "StackResourceDriftStatus"));
        }
        if (!keep)
            continue;
        if (n++ >= start && shown < (size_t)max) {
            xml_resource_drift(&b, r);
            shown++;
        }
    }
    ob_buf_puts(&b, "</StackResourceDrifts>");
    page_end(&b, start, shown, n);
    sim_reply_query(c, buf_str(&b));
    ob_buf_free(&b);
    json_decref(filter);
}

typedef struct cfn_op_s {
    const char *name;
    void (*fn)(sim_call_t *c);
} cfn_op_t;

static const cfn_op_t cfn_ops[] = {
    {"CreateStack", op_create},
    {"UpdateStack", op_update},
    {"DeleteStack", op_delete},
    {"DescribeStacks", op_describe},
    {"ListStacks", op_list},
    {"DescribeStackEvents", op_events},
    {"GetTemplate", op_get_template},
    {"DetectStackDrift", op_detect_drift},
    {"DescribeStackDriftDetectionStatus", op_drift_status},
    {"DescribeStackResourceDrifts", op_resource_drifts},
    {NULL, NULL},
};

static ob_err_t cfn_identify(sim_call_t *c)
{
    const char *action = param(c, "Action");
    if (!action || !*action) {
        sim_error(c, 400, "MissingAction", "The request must contain the parameter Action");
        return OB_ERR_INVALID_ARG;
    }
    for (int i = 0; cfn_ops[i].name; i++) {
        if (!strcmp(action, cfn_ops[i].name)) {
            snprintf(c->op, sizeof(c->op), "%s", action);
            return OB_OK;
        }
    }
    sim_error(c, 400, "InvalidAction", "Could not find operation %.64s for version 2010-05-15",
              action);
    return OB_ERR_INVALID_ARG;
}

static void cfn_handle(sim_call_t *c)
{
    if (!c->account[0]) {
        sim_error(c, 403, "MissingAuthenticationToken", "Request is missing Authentication Token");
        return;
    }
    for (int i = 0; cfn_ops[i].name; i++) {
        if (!strcmp(c->op, cfn_ops[i].name)) {
            cfn_ops[i].fn(c);
            return;
        }
    }
    sim_error(c, 400, "InvalidAction", "Could not find operation %s for version 2010-05-15", c->op);
}

/* Rebuild the name index and the timers from the state (start-up, reset,
 * restored state file); deleted stacks older than AWS keeps them go, and
 * drift detections in progress resume. */
static void cfn_init(sim_t *sim)
{
    cfn_ctx_t *x = ctx_get(sim);
    if (x)
        timers_clear(x);
    json_t *stacks = stacks_of(sim);
    json_object_clear(sim_section(sim, "stack_names"));
    sim_section(sim, "stack_tokens");
    int64_t now = sim_now_ms();
    const char *k;
    json_t *st;
    void *tmp;
    json_object_foreach_safe(stacks, tmp, k, st)
    {
        if (streq(jstr(st, "StackStatus"), "DELETE_COMPLETE")) {
            if (jint(st, "DeletionTime") < now - CFN_RETENTION_MS)
                json_object_del(stacks, k);
            continue;
        }
        const char *acct = jstr(st, "Account"), *region = jstr(st, "Region");
        if (!acct || !region || !jstr(st, "StackName"))
            continue;
        json_object_set_new(by_region(sim, "stack_names", acct, region, 1), jstr(st, "StackName"),
                            json_string(k));
        json_t *pend = json_object_get(st, "Pending");
        if (pend) {
            int64_t due = jint(pend, "DueMs");
            schedule(sim, k, due > now ? (uint64_t)(due - now) : 0);
        }
    }
    json_t *detections = detections_of(sim);
    json_object_foreach_safe(detections, tmp, k, st)
    {
        /* A detection whose stack went with the retention period goes too. */
        if (!json_object_get(stacks, jstr(st, "StackId")))
            json_object_del(detections, k);
        else if (json_object_get(st, "DueMs"))
            schedule(sim, k, jint(st, "DueMs") > now ? (uint64_t)(jint(st, "DueMs") - now) : 0);
    }
}

static void cfn_fini(sim_t *sim)
{
    cfn_ctx_t **l = &contexts;
    while (*l && (*l)->sim != sim)
        l = &(*l)->next;
    cfn_ctx_t *x = *l;
    if (!x)
        return;
    *l = x->next;
    timers_clear(x);
    free(x->slots);
    free(x);
    if (!contexts) {
        pattern_cache_clear();
        template_cache_clear();
    }
}

const sim_service_t sim_cfn_service = {
    .svc = OB_SVC_CLOUDFORMATION,
    .identify = cfn_identify,
    .handle = cfn_handle,
    .init = cfn_init,
    .fini = cfn_fini,
};
