/*
 * sim_org: Organizations (JSON 1.1, AWSOrganizationsV20161128). Only the
 * management account may call it, as in AWS (delegated administrators are
 * not simulated).
 *
 * The tree: one root (SIM_ROOT_ID), organizational units that nest (the
 * "ous" section, each with its ParentId), and every account under exactly
 * one parent ("ParentId"; none recorded means the root). Reads:
 * DescribeOrganization, ListRoots, DescribeAccount,
 * DescribeOrganizationalUnit, ListAccounts, ListAccountsForParent,
 * ListOrganizationalUnitsForParent, ListChildren, ListParents,
 * DescribeCreateAccountStatus, ListCreateAccountStatus. Writes: MoveAccount
 * and CreateAccount. Accounts and OUs carry the Path(s) the current model
 * has ("o-.../r-.../ou-.../"), computed from the tree.
 *
 * Lists page in key order (ids; create-account requests by when they were
 * made); NextToken is "t" and the last key served, so paging stays
 * consistent while the tree changes, and MaxResults is 1..20 everywhere, as
 * the model says.
 *
 * CreateAccount answers IN_PROGRESS at once; the request completes after
 * sim_latency_ms("organizations.account_create"): SUCCEEDED with the account
 * made as --org-accounts members are (ACTIVE, JoinedMethod CREATED, under
 * the root, with a role named RoleName that the management account may
 * assume), or FAILED with EMAIL_ALREADY_EXISTS when an account has that
 * email by then (requests due together complete in the order they were
 * made). One loop timer per simulator, due when the earliest request is,
 * drives them; init() re-arms it from the state, so a restored state
 * resumes.
 *
 * Errors carry the model's codes; InvalidInputException also has AWS's
 * Reason (INPUT_REQUIRED, INVALID_PATTERN, INVALID_ENUM, ...). The messages
 * of the not-found errors follow the wording AWS uses for
 * AccountNotFoundException; AWS does not document the others' text.
 *
 * POST /_sim/accounts and POST /_sim/ous (sim.h) add to the tree while the
 * simulator runs, and the seed's "ous" are checked and applied here.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ob_alloc.h"
#include "sim.h"

#define PAGE_MAX     20
#define OU_DEPTH_MAX 64 /* AWS allows 5 levels; deeper seeds are still walked, cycles are not */
#define DEFAULT_ROLE "OrganizationAccountAccessRole"

static const char TARGET_PREFIX[] = "AWSOrganizationsV20161128.";

/* ---- per-simulator state ---- */

typedef struct org_ctx_s {
    sim_t *sim;
    ob_timer_t timer;               /* due when the earliest create-account request is */
    unsigned long long next_member; /* member ids below SIM_MEMBER_BASE + this are taken */
    struct org_ctx_s *next;
} org_ctx_t;

static org_ctx_t *contexts;

static org_ctx_t *ctx_find(sim_t *sim)
{
    for (org_ctx_t *x = contexts; x; x = x->next)
        if (x->sim == sim)
            return x;
    return NULL;
}

/* ---- small helpers ---- */

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static json_t *accounts_of(sim_t *sim)
{
    return sim_section(sim, "accounts");
}

static json_t *ous_of(sim_t *sim)
{
    return sim_section(sim, "ous");
}

static json_t *requests_of(sim_t *sim)
{
    return sim_section(sim, "create_account_requests");
}

static const char *org_id(sim_t *sim)
{
    const char *id = jstr(json_object_get(sim_state(sim), "org"), "Id");
    return id ? id : "o-sim0000001";
}

/* An account's parent: the root unless it records one. */
static const char *parent_of(sim_t *sim, const json_t *node)
{
    const char *p = jstr(node, "ParentId");
    return p ? p : sim_root_id(sim);
}

static int lower_alnum(const char *s, size_t lo, size_t hi)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!islower((unsigned char)s[n]) && !isdigit((unsigned char)s[n]))
            return 0;
    return n >= lo && n <= hi;
}

static int is_account_id(const char *s)
{
    if (!s || strlen(s) != 12)
        return 0;
    for (int i = 0; i < 12; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

static int is_root_id(const char *s)
{
    return s && !strncmp(s, "r-", 2) && lower_alnum(s + 2, 4, 32);
}

/* ou-[0-9a-z]{4,32}-[a-z0-9]{8,32} */
static int is_ou_id(const char *s)
{
    if (!s || strncmp(s, "ou-", 3) != 0)
        return 0;
    const char *dash = strchr(s + 3, '-');
    if (!dash || dash - (s + 3) < 4 || dash - (s + 3) > 32)
        return 0;
    for (const char *p = s + 3; p < dash; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p))
            return 0;
    return lower_alnum(dash + 1, 8, 32);
}

static int is_parent_id(const char *s)
{
    return is_root_id(s) || is_ou_id(s);
}

static int is_child_id(const char *s)
{
    return is_account_id(s) || is_ou_id(s);
}

static int is_car_id(const char *s)
{
    return s && !strncmp(s, "car-", 4) && lower_alnum(s + 4, 8, 32);
}

/* [^\s@]+@[^\s@]+\.[^\s@]+ */
static int is_email(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@'))
        return 0;
    for (const char *p = s; *p; p++)
        if (isspace((unsigned char)*p))
            return 0;
    const char *dot = strrchr(at + 1, '.');
    return dot && dot > at + 1 && dot[1];
}

static int printable_ascii(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e)
            return 0;
    return 1;
}

/* [\w+=,.@-]{1,64} */
static int is_role_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_+=,.@-", *s))
            return 0;
    return 1;
}

/* ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$, with any non-ASCII byte taken for a letter. */
static int is_tag_text(const char *s)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !((unsigned char)*s & 0x80) && !strchr(" _.:/=+-@", *s))
            return 0;
    return 1;
}

static int any_ok(const char *s)
{
    return s != NULL;
}

static int email_taken(sim_t *sim, const char *email)
{
    const char *k;
    json_t *a;
    json_object_foreach(accounts_of(sim), k, a)
    {
        const char *e = jstr(a, "Email");
        if (e && !strcasecmp(e, email))
            return 1;
    }
    return 0;
}

/* The lowest member id (SIM_MEMBER_BASE + i, i >= 1) no account has. */
static void next_member_id(sim_t *sim, char out[13])
{
    org_ctx_t *x = ctx_find(sim);
    unsigned long long i = x && x->next_member ? x->next_member : 1;
    for (;; i++) {
        snprintf(out, 13, "%012llu", SIM_MEMBER_BASE + i);
        if (!json_object_get(accounts_of(sim), out))
            break;
    }
    /* Accounts are never removed: every id below this one stays taken. */
    if (x)
        x->next_member = i;
}

/* ---- what the API shows ---- */

/* "o-.../r-.../ou-.../" of a parent (and what is under it), root first. */
static void path_of(sim_t *sim, const char *parent, char *out, size_t n)
{
    const char *chain[OU_DEPTH_MAX];
    int depth = 0;
    const char *p = parent;
    while (p && is_ou_id(p) && depth < OU_DEPTH_MAX) {
        chain[depth++] = p;
        p = jstr(json_object_get(ous_of(sim), p), "ParentId");
    }
    size_t len = (size_t)snprintf(out, n, "%s/%s/", org_id(sim), sim_root_id(sim));
    while (depth > 0 && len < n)
        len += (size_t)snprintf(out + len, n - len, "%s/", chain[--depth]);
}

/* An account as ListAccounts and DescribeAccount show it. */
static json_t *account_json(sim_t *sim, const json_t *a)
{
    const char *state = jstr(a, "State");
    char path[1024];
    if (!state)
        state = "ACTIVE";
    path_of(sim, parent_of(sim, a), path, sizeof(path));
    size_t len = strlen(path);
    snprintf(path + len, sizeof(path) - len, "%s/", jstr(a, "Id"));
    return json_pack("{s:O, s:O, s:O, s:O, s:s, s:s, s:O, s:O, s:[s]}", "Id",
                     json_object_get(a, "Id"), "Arn", json_object_get(a, "Arn"), "Email",
                     json_object_get(a, "Email"), "Name", json_object_get(a, "Name"), "State",
                     state,
                     /* the retiring Status field knows only ACTIVE and SUSPENDED */
                     "Status", !strcmp(state, "ACTIVE") ? "ACTIVE" : "SUSPENDED", "JoinedMethod",
                     json_object_get(a, "JoinedMethod"), "JoinedTimestamp",
                     json_object_get(a, "JoinedTimestamp"), "Paths", path);
}

static json_t *ou_json(sim_t *sim, const json_t *ou)
{
    char path[1024];
    path_of(sim, jstr(ou, "Id"), path, sizeof(path));
    return json_pack("{s:O, s:O, s:O, s:s}", "Id", json_object_get(ou, "Id"), "Arn",
                     json_object_get(ou, "Arn"), "Name", json_object_get(ou, "Name"), "Path", path);
}

static json_t *root_json(sim_t *sim)
{
    char arn[160];
    snprintf(arn, sizeof(arn), "arn:aws:organizations::%s:root/%s/%s", sim_management_account(sim),
             org_id(sim), sim_root_id(sim));
    return json_pack("{s:s, s:s, s:s, s:[]}", "Id", sim_root_id(sim), "Arn", arn, "Name", "Root",
                     "PolicyTypes");
}

/* Timestamps of this API are epoch seconds (with milliseconds). */
static json_t *seconds(const json_t *ms)
{
    return json_real((double)json_integer_value(ms) / 1000.0);
}

static json_t *request_json(const json_t *r)
{
    json_t *out = json_pack("{s:O, s:O, s:O, s:o}", "Id", json_object_get(r, "Id"), "AccountName",
                            json_object_get(r, "AccountName"), "State", json_object_get(r, "State"),
                            "RequestedTimestamp", seconds(json_object_get(r, "RequestedMs")));
    if (json_object_get(r, "CompletedMs"))
        json_object_set_new(out, "CompletedTimestamp", seconds(json_object_get(r, "CompletedMs")));
    if (jstr(r, "AccountId"))
        json_object_set(out, "AccountId", json_object_get(r, "AccountId"));
    if (jstr(r, "FailureReason"))
        json_object_set(out, "FailureReason", json_object_get(r, "FailureReason"));
    return out;
}

/* ---- errors and parameters ---- */

/* InvalidInputException with AWS's Reason member. */
static void org_invalid(sim_call_t *c, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void org_invalid(sim_call_t *c, const char *reason, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *j = json_pack("{s:s, s:s, s:s}", "__type", "InvalidInputException", "message", msg,
                          "Reason", reason);
    char *s = json_dumps(j, JSON_COMPACT);
    ob_hdrs_set(&c->headers, "x-amzn-RequestId", c->request_id);
    sim_reply(c, 400, "application/x-amz-json-1.1", s, strlen(s));
    free(s);
    json_decref(j);
}

/* The string parameter k (field: its name in messages): 0 with *out set (NULL
 * when absent and optional), or -1 with the error replied. pattern is what
 * the message names when ok() refuses the value; AWS leaves the value out. */
static int str_param(sim_call_t *c, const char *k, const char *field, int required,
                     int (*ok)(const char *), const char *pattern, const char **out)
{
    json_t *v = json_object_get(c->params, k);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        org_invalid(c, "INPUT_REQUIRED",
                    "1 validation error detected: Value null at '%s' failed to satisfy "
                    "constraint: Member must not be null",
                    field);
        return -1;
    }
    if (!json_is_string(v)) {
        sim_error(c, 400, "SerializationException", "Expected a string for %s", k);
        return -1;
    }
    if (!ok(json_string_value(v))) {
        org_invalid(c, "INVALID_PATTERN",
                    "1 validation error detected: Value at '%s' failed to satisfy constraint: "
                    "Member must satisfy regular expression pattern: %s",
                    field, pattern);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/* A string of lo..hi characters (bytes); -1 with the error replied. */
static int length_ok(sim_call_t *c, const char *v, const char *field, size_t lo, size_t hi)
{
    size_t n = strlen(v);
    if (n >= lo && n <= hi)
        return 0;
    org_invalid(c, n < lo ? "MIN_LENGTH_EXCEEDED" : "MAX_LENGTH_EXCEEDED",
                "1 validation error detected: Value at '%s' failed to satisfy constraint: Member "
                "must have length %s than or equal to %zu",
                field, n < lo ? "greater" : "less", n < lo ? lo : hi);
    return -1;
}

static int enum_ok(sim_call_t *c, const char *v, const char *field, const char *const *values,
                   const char *shown)
{
    for (int i = 0; values[i]; i++)
        if (!strcmp(v, values[i]))
            return 0;
    org_invalid(c, "INVALID_ENUM",
                "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: "
                "Member must satisfy enum value set: [%s]",
                v, field, shown);
    return -1;
}

/* ---- paging ---- */

typedef struct page_s {
    json_int_t max;
    char after[160]; /* the last key served before, "" for the first page */
} page_t;

/* One listed item: its sort key and where its JSON comes from (borrowed). */
typedef struct item_s {
    const char *key;
    json_t *src;
} item_t;

/* MaxResults and NextToken; key_ok says whether a token's key can be one of
 * this listing's. -1 with the error replied. */
static int page_args(sim_call_t *c, int (*key_ok)(const char *), page_t *pg)
{
    json_t *mr = json_object_get(c->params, "MaxResults");
    pg->max = PAGE_MAX;
    pg->after[0] = '\0';
    if (mr && !json_is_null(mr)) {
        pg->max = json_integer_value(mr);
        if (!json_is_integer(mr) || pg->max < 1 || pg->max > PAGE_MAX) {
            org_invalid(c, pg->max < 1 ? "MIN_VALUE_EXCEEDED" : "MAX_VALUE_EXCEEDED",
                        "1 validation error detected: Value '%lld' at 'maxResults' failed to "
                        "satisfy constraint: Member must have value %s",
                        (long long)pg->max,
                        pg->max < 1 ? "greater than or equal to 1" : "less than or equal to 20");
            return -1;
        }
    }
    const char *next = jstr(c->params, "NextToken");
    if (next) {
        if (next[0] != 't' || strlen(next) >= sizeof(pg->after) || !key_ok(next + 1)) {
            org_invalid(c, "INVALID_NEXT_TOKEN", "You specified an invalid value for nextToken.");
            return -1;
        }
        snprintf(pg->after, sizeof(pg->after), "%s", next + 1);
    }
    return 0;
}

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const item_t *)a)->key, ((const item_t *)b)->key);
}

/* The page of items[n] after pg->after, as {list: [shape(item)...],
 * "NextToken"} (items is sorted in place). */
static json_t *page_of(sim_t *sim, item_t *items, size_t n, const page_t *pg, const char *list,
                       json_t *(*shape)(sim_t *sim, const item_t *it))
{
    qsort(items, n, sizeof(*items), cmp_item);
    size_t i = 0;
    while (pg->after[0] && i < n && strcmp(items[i].key, pg->after) <= 0)
        i++;
    json_t *out = json_array();
    size_t end = i + (size_t)pg->max < n ? i + (size_t)pg->max : n;
    for (size_t j = i; j < end; j++)
        json_array_append_new(out, shape(sim, &items[j]));
    json_t *reply = json_pack("{s:o}", list, out);
    if (end < n) {
        char tok[200];
        snprintf(tok, sizeof(tok), "t%s", items[end - 1].key);
        json_object_set_new(reply, "NextToken", json_string(tok));
    }
    return reply;
}

static json_t *shape_account(sim_t *sim, const item_t *it)
{
    return account_json(sim, it->src);
}

static json_t *shape_ou(sim_t *sim, const item_t *it)
{
    return ou_json(sim, it->src);
}

static json_t *shape_root(sim_t *sim, const item_t *it)
{
    return root_json(sim);
}

static json_t *shape_child(sim_t *sim, const item_t *it)
{
    return json_pack("{s:s, s:s}", "Id", it->key, "Type",
                     is_ou_id(it->key) ? "ORGANIZATIONAL_UNIT" : "ACCOUNT");
}

static json_t *shape_parent(sim_t *sim, const item_t *it)
{
    return json_pack("{s:s, s:s}", "Id", it->key, "Type",
                     is_ou_id(it->key) ? "ORGANIZATIONAL_UNIT" : "ROOT");
}

static json_t *shape_request(sim_t *sim, const item_t *it)
{
    return request_json(it->src);
}

/* Items of a section whose ParentId is parent (every item when NULL). */
static item_t *items_under(sim_t *sim, json_t *section, const char *parent, size_t *n)
{
    item_t *v = ob_malloc((json_object_size(section) + 1) * sizeof(*v));
    const char *k;
    json_t *x;
    *n = 0;
    json_object_foreach(section, k, x)
    {
        if (!parent || !strcmp(parent_of(sim, x), parent)) {
            v[*n].key = k;
            v[(*n)++].src = x;
        }
    }
    return v;
}

static int parent_exists(sim_t *sim, const char *id)
{
    return !strcmp(id, sim_root_id(sim)) || json_object_get(ous_of(sim), id) != NULL;
}

/* The ParentId parameter naming an existing root or OU; NULL with the error replied. */
static const char *existing_parent(sim_call_t *c)
{
    const char *p;
    if (str_param(c, "ParentId", "parentId", 1, is_parent_id,
                  "^(r-[0-9a-z]{4,32})|(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$", &p) != 0)
        return NULL;
    if (!parent_exists(c->sim, p)) {
        sim_error(c, 400, "ParentNotFoundException",
                  "You specified a root or OU that doesn't exist.");
        return NULL;
    }
    return p;
}

/* ---- operations: the tree ---- */

static void describe_organization(sim_call_t *c)
{
    json_t *org = json_object_get(sim_state(c->sim), "org");
    sim_reply_json(c, json_pack("{s:{s:O, s:O, s:s, s:O, s:O, s:s, s:[]}}", "Organization", "Id",
                                json_object_get(org, "Id"), "Arn", json_object_get(org, "Arn"),
                                "FeatureSet", "ALL", "MasterAccountId",
                                json_object_get(org, "MasterAccountId"), "MasterAccountArn",
                                json_object_get(org, "Arn"), "MasterAccountEmail",
                                "aws+management@example.com", "AvailablePolicyTypes"));
}

static void list_roots(sim_call_t *c)
{
    page_t pg;
    if (page_args(c, is_root_id, &pg) != 0)
        return;
    item_t root = {sim_root_id(c->sim), NULL};
    sim_reply_json(c, page_of(c->sim, &root, 1, &pg, "Roots", shape_root));
}

/* A Describe call: the item of section whose id the parameter names,
 * answered as {key: shape(item)}, or AWS's not-found error. */
typedef struct describe_s {
    const char *param, *member; /* the parameter, and its name in messages */
    int (*is_id)(const char *);
    const char *pattern;
    json_t *(*section)(sim_t *);
    const char *missing_code, *missing_message;
    const char *key;
    json_t *(*shape)(sim_t *, const json_t *);
} describe_t;

static void describe_one(sim_call_t *c, const describe_t *d)
{
    const char *id;
    if (str_param(c, d->param, d->member, 1, d->is_id, d->pattern, &id) != 0)
        return;
    json_t *item = json_object_get(d->section(c->sim), id);
    if (!item) {
        sim_error(c, 400, d->missing_code, "%s", d->missing_message);
        return;
    }
    sim_reply_json(c, json_pack("{s:o}", d->key, d->shape(c->sim, item)));
}

static void describe_account(sim_call_t *c)
{
    static const describe_t d = {"AccountId",
                                 "accountId",
                                 is_account_id,
                                 "^\\d{12}$",
                                 accounts_of,
                                 "AccountNotFoundException",
                                 "You specified an account that doesn't exist.",
                                 "Account",
                                 account_json};
    describe_one(c, &d);
}

static void describe_ou(sim_call_t *c)
{
    static const describe_t d = {"OrganizationalUnitId",
                                 "organizationalUnitId",
                                 is_ou_id,
                                 "^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$",
                                 ous_of,
                                 "OrganizationalUnitNotFoundException",
                                 "You specified an organizational unit that doesn't exist.",
                                 "OrganizationalUnit",
                                 ou_json};
    describe_one(c, &d);
}

static void list_accounts(sim_call_t *c)
{
    page_t pg;
    size_t n;
    if (page_args(c, is_account_id, &pg) != 0)
        return;
    item_t *v = items_under(c->sim, accounts_of(c->sim), NULL, &n);
    sim_reply_json(c, page_of(c->sim, v, n, &pg, "Accounts", shape_account));
    free(v);
}

/* A page of the accounts or OUs directly under the request's ParentId. */
static void list_for_parent(sim_call_t *c, json_t *section, int (*key_ok)(const char *),
                            const char *list, json_t *(*shape)(sim_t *, const item_t *))
{
    page_t pg;
    size_t n;
    const char *parent = existing_parent(c);
    if (!parent || page_args(c, key_ok, &pg) != 0)
        return;
    item_t *v = items_under(c->sim, section, parent, &n);
    sim_reply_json(c, page_of(c->sim, v, n, &pg, list, shape));
    free(v);
}

static void list_accounts_for_parent(sim_call_t *c)
{
    list_for_parent(c, accounts_of(c->sim), is_account_id, "Accounts", shape_account);
}

static void list_ous_for_parent(sim_call_t *c)
{
    list_for_parent(c, ous_of(c->sim), is_ou_id, "OrganizationalUnits", shape_ou);
}

static void list_children(sim_call_t *c)
{
    static const char *const types[] = {"ACCOUNT", "ORGANIZATIONAL_UNIT", NULL};
    page_t pg;
    size_t n;
    const char *parent = existing_parent(c), *type;
    if (!parent || str_param(c, "ChildType", "childType", 1, any_ok, "", &type) != 0 ||
        enum_ok(c, type, "childType", types, "ACCOUNT, ORGANIZATIONAL_UNIT") != 0)
        return;
    int accounts = !strcmp(type, "ACCOUNT");
    if (page_args(c, accounts ? is_account_id : is_ou_id, &pg) != 0)
        return;
    item_t *v = items_under(c->sim, accounts ? accounts_of(c->sim) : ous_of(c->sim), parent, &n);
    sim_reply_json(c, page_of(c->sim, v, n, &pg, "Children", shape_child));
    free(v);
}

static void list_parents(sim_call_t *c)
{
    const char *child;
    page_t pg;
    if (str_param(c, "ChildId", "childId", 1, is_child_id,
                  "^(\\d{12})|(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$", &child) != 0 ||
        page_args(c, is_parent_id, &pg) != 0)
        return;
    json_t *node = json_object_get(is_ou_id(child) ? ous_of(c->sim) : accounts_of(c->sim), child);
    if (!node) {
        sim_error(c, 400, "ChildNotFoundException",
                  "You specified an account or OU that doesn't exist.");
        return;
    }
    /* In AWS a child has exactly one parent. */
    item_t parent = {parent_of(c->sim, node), NULL};
    sim_reply_json(c, page_of(c->sim, &parent, 1, &pg, "Parents", shape_parent));
}

static void move_account(sim_call_t *c)
{
    const char *id, *src, *dst;
    const char *pp = "^(r-[0-9a-z]{4,32})|(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$";
    if (str_param(c, "AccountId", "accountId", 1, is_account_id, "^\\d{12}$", &id) != 0 ||
        str_param(c, "SourceParentId", "sourceParentId", 1, is_parent_id, pp, &src) != 0 ||
        str_param(c, "DestinationParentId", "destinationParentId", 1, is_parent_id, pp, &dst) != 0)
        return;
    json_t *a = json_object_get(accounts_of(c->sim), id);
    if (!a) {
        sim_error(c, 400, "AccountNotFoundException",
                  "You specified an account that doesn't exist.");
        return;
    }
    if (!parent_exists(c->sim, src)) {
        sim_error(c, 400, "SourceParentNotFoundException",
                  "You specified a source parent that doesn't exist.");
        return;
    }
    if (!parent_exists(c->sim, dst)) {
        sim_error(c, 400, "DestinationParentNotFoundException",
                  "You specified a destination parent that doesn't exist.");
        return;
    }
    /* The account is looked for under the source parent. */
    if (strcmp(parent_of(c->sim, a), src) != 0) {
        sim_error(c, 400, "AccountNotFoundException",
                  "You specified an account that doesn't exist.");
        return;
    }
    if (!strcmp(src, dst)) {
        sim_error(c, 400, "DuplicateAccountException",
                  "That account is already present in the specified destination.");
        return;
    }
    json_object_set_new(a, "ParentId", json_string(dst));
    sim_touch(c->sim);
    sim_reply_json(c, json_object());
}

/* ---- operations: creating accounts ---- */

static void rearm(org_ctx_t *x);

static int check_tags(sim_call_t *c, json_t *tags)
{
    if (!tags || json_is_null(tags))
        return 0;
    if (!json_is_array(tags)) {
        sim_error(c, 400, "SerializationException", "Expected a list for Tags");
        return -1;
    }
    size_t i, j;
    json_t *t, *u;
    json_array_foreach(tags, i, t)
    {
        const char *k = jstr(t, "Key"), *v = jstr(t, "Value");
        if (!k || !v) {
            org_invalid(c, "INPUT_REQUIRED",
                        "1 validation error detected: Value null at 'tags.%zu.member.%s' failed "
                        "to satisfy constraint: Member must not be null",
                        i + 1, !k ? "key" : "value");
            return -1;
        }
        if (strlen(k) < 1 || strlen(k) > 128 || strlen(v) > 256 || !is_tag_text(k) ||
            !is_tag_text(v)) {
            org_invalid(c, "INVALID_PATTERN",
                        "You provided a value that does not match the required pattern.");
            return -1;
        }
        json_array_foreach(tags, j, u)
        {
            if (j < i && !strcmp(jstr(u, "Key"), k)) {
                org_invalid(c, "DUPLICATE_TAG_KEY", "You specified a duplicate tag key.");
                return -1;
            }
        }
    }
    return 0;
}

static void create_account(sim_call_t *c)
{
    static const char *const billing[] = {"ALLOW", "DENY", NULL};
    const char *email, *name, *role, *access;
    json_t *tags = json_object_get(c->params, "Tags");
    if (str_param(c, "Email", "email", 1, is_email, "[^\\s@]+@[^\\s@]+\\.[^\\s@]+", &email) != 0 ||
        length_ok(c, email, "email", 6, 64) != 0 ||
        str_param(c, "AccountName", "accountName", 1, printable_ascii, "[\\u0020-\\u007E]+",
                  &name) != 0 ||
        length_ok(c, name, "accountName", 1, 50) != 0 ||
        str_param(c, "RoleName", "roleName", 0, is_role_name, "[\\w+=,.@-]{1,64}", &role) != 0 ||
        str_param(c, "IamUserAccessToBilling", "iamUserAccessToBilling", 0, any_ok, "", &access) !=
            0 ||
        (access && enum_ok(c, access, "iamUserAccessToBilling", billing, "ALLOW, DENY") != 0) ||
        check_tags(c, tags) != 0)
        return;
    unsigned char rnd[16];
    char id[40] = "car-";
    sim_random_bytes(rnd, sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(id + 4 + 2 * i, 3, "%02x", rnd[i]);
    int64_t now = sim_now_ms();
    uint64_t wait = sim_latency_ms(c->sim, "organizations.account_create");
    /* Seq orders the requests (several may share a millisecond). */
    json_t *r =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "Id", id, "AccountName", name,
                  "Email", email, "RoleName", role ? role : DEFAULT_ROLE, "State", "IN_PROGRESS",
                  "RequestedMs", (json_int_t)now, "DueMs", (json_int_t)(now + (int64_t)wait), "Seq",
                  (json_int_t)json_object_size(requests_of(c->sim)) + 1);
    if (json_array_size(tags))
        json_object_set(r, "Tags", tags);
    json_object_set_new(requests_of(c->sim), id, r);
    sim_touch(c->sim);
    rearm(ctx_find(c->sim));
    sim_reply_json(c, json_pack("{s:o}", "CreateAccountStatus", request_json(r)));
}

static json_t *request_of_sim(sim_t *sim, const json_t *r)
{
    (void)sim;
    return request_json(r);
}

static void describe_create_status(sim_call_t *c)
{
    static const describe_t d = {"CreateAccountRequestId",
                                 "createAccountRequestId",
                                 is_car_id,
                                 "^car-[a-z0-9]{8,32}$",
                                 requests_of,
                                 "CreateAccountStatusNotFoundException",
                                 "You specified a create account request that doesn't exist.",
                                 "CreateAccountStatus",
                                 request_of_sim};
    describe_one(c, &d);
}

/* Request keys sort in the order the requests were made: 10 digits of their
 * Seq, "-", the id. */
static int is_request_key(const char *s)
{
    for (int i = 0; i < 10; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return s[10] == '-' && is_car_id(s + 11);
}

static void list_create_status(sim_call_t *c)
{
    static const char *const states[] = {"IN_PROGRESS", "SUCCEEDED", "FAILED", NULL};
    json_t *want = json_object_get(c->params, "States");
    page_t pg;
    size_t i;
    json_t *s;
    if (want && !json_is_null(want) && !json_is_array(want)) {
        sim_error(c, 400, "SerializationException", "Expected a list for States");
        return;
    }
    json_array_foreach(want, i, s)
    {
        if (!json_is_string(s)) {
            sim_error(c, 400, "SerializationException", "Expected a string in States");
            return;
        }
        if (enum_ok(c, json_string_value(s), "states", states, "IN_PROGRESS, SUCCEEDED, FAILED"))
            return;
    }
    if (page_args(c, is_request_key, &pg) != 0)
        return;
    json_t *all = requests_of(c->sim);
    size_t n = 0, total = json_object_size(all);
    item_t *v = ob_malloc((total + 1) * sizeof(*v));
    char(*keys)[64] = ob_malloc((total + 1) * sizeof(*keys));
    const char *k;
    json_t *r;
    json_object_foreach(all, k, r)
    {
        int keep = json_array_size(want) == 0;
        json_array_foreach(want, i, s)
        {
            keep |= !strcmp(json_string_value(s), jstr(r, "State"));
        }
        if (!keep)
            continue;
        snprintf(keys[n], sizeof(keys[n]), "%010lld-%s",
                 (long long)json_integer_value(json_object_get(r, "Seq")), k);
        v[n].key = keys[n];
        v[n++].src = r;
    }
    sim_reply_json(c, page_of(c->sim, v, n, &pg, "CreateAccountStatuses", shape_request));
    free(keys);
    free(v);
}

static int cmp_made(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "Seq"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "Seq"));
    return x < y ? -1 : x > y;
}

/* Complete the requests that are due, oldest first. */
static void complete_due(sim_t *sim)
{
    json_t *all = requests_of(sim);
    int64_t now = sim_now_ms();
    size_t n = 0;
    json_t **due = ob_malloc((json_object_size(all) + 1) * sizeof(*due));
    const char *k;
    json_t *r;
    json_object_foreach(all, k, r)
    {
        if (!strcmp(jstr(r, "State"), "IN_PROGRESS") &&
            json_integer_value(json_object_get(r, "DueMs")) <= now)
            due[n++] = r;
    }
    qsort(due, n, sizeof(*due), cmp_made);
    for (size_t i = 0; i < n; i++) {
        r = due[i];
        json_object_set_new(r, "CompletedMs", json_integer(now));
        json_object_del(r, "DueMs");
        if (email_taken(sim, jstr(r, "Email"))) {
            json_object_set_new(r, "State", json_string("FAILED"));
            json_object_set_new(r, "FailureReason", json_string("EMAIL_ALREADY_EXISTS"));
            continue;
        }
        char id[13];
        next_member_id(sim, id);
        json_t *a = sim_put_account(sim, id, jstr(r, "AccountName"), jstr(r, "Email"), "ACTIVE",
                                    "CREATED", NULL);
        if (json_object_get(r, "Tags"))
            json_object_set(a, "Tags", json_object_get(r, "Tags"));
        sim_put_org_role(sim, id, jstr(r, "RoleName"));
        json_object_set_new(r, "State", json_string("SUCCEEDED"));
        json_object_set_new(r, "AccountId", json_string(id));
    }
    free(due);
    if (n)
        sim_touch(sim);
}

/* Arm the timer for the earliest request still in progress. */
static void rearm(org_ctx_t *x)
{
    if (!x)
        return;
    int64_t first = -1;
    const char *k;
    json_t *r;
    json_object_foreach(requests_of(x->sim), k, r)
    {
        json_t *due = json_object_get(r, "DueMs");
        if (json_is_integer(due) && (first < 0 || json_integer_value(due) < first))
            first = json_integer_value(due);
    }
    if (first < 0) {
        ob_timer_stop(&x->timer);
        return;
    }
    int64_t now = sim_now_ms();
    ob_timer_start(&x->timer, first > now ? (uint64_t)(first - now) : 0);
}

static void requests_due(ob_timer_t *t, void *arg)
{
    org_ctx_t *x = arg;
    complete_due(x->sim);
    rearm(x);
}

/* ---- identify, dispatch, lifecycle ---- */

typedef struct org_op_s {
    const char *name;
    void (*fn)(sim_call_t *c);
} org_op_t;

static const org_op_t org_ops[] = {
    {"DescribeOrganization", describe_organization},
    {"ListRoots", list_roots},
    {"DescribeAccount", describe_account},
    {"DescribeOrganizationalUnit", describe_ou},
    {"ListAccounts", list_accounts},
    {"ListAccountsForParent", list_accounts_for_parent},
    {"ListOrganizationalUnitsForParent", list_ous_for_parent},
    {"ListChildren", list_children},
    {"ListParents", list_parents},
    {"MoveAccount", move_account},
    {"CreateAccount", create_account},
    {"DescribeCreateAccountStatus", describe_create_status},
    {"ListCreateAccountStatus", list_create_status},
    {NULL, NULL},
};

static ob_err_t org_identify(sim_call_t *c)
{
    const char *target = ob_hdrs_get(c->http->headers, "X-Amz-Target");
    size_t pl = strlen(TARGET_PREFIX);
    if (target && !strncmp(target, TARGET_PREFIX, pl)) {
        for (int i = 0; org_ops[i].name; i++) {
            if (strcmp(target + pl, org_ops[i].name) != 0)
                continue;
            snprintf(c->op, sizeof(c->op), "%s", org_ops[i].name);
            if (!json_is_object(c->params)) {
                sim_error(c, 400, "SerializationException", "The request body is not an object");
                return OB_ERR_AWS;
            }
            return OB_OK;
        }
    }
    sim_error(c, 400, "UnknownOperationException", "Operation %s is not supported",
              target ? target : "(no X-Amz-Target)");
    return OB_ERR_AWS;
}

static void org_handle(sim_call_t *c)
{
    if (strcmp(c->account, sim_management_account(c->sim)) != 0) {
        sim_error(c, 400, "AccessDeniedException",
                  "You don't have permissions to access this resource.");
        return;
    }
    for (int i = 0; org_ops[i].name; i++)
        if (!strcmp(c->op, org_ops[i].name)) {
            org_ops[i].fn(c);
            return;
        }
}

static void org_fini(sim_t *sim)
{
    org_ctx_t **l = &contexts;
    while (*l && (*l)->sim != sim)
        l = &(*l)->next;
    org_ctx_t *x = *l;
    if (!x)
        return;
    *l = x->next;
    ob_timer_stop(&x->timer);
    free(x);
}

/* Start-up, reset or a restored state: requests in progress resume. */
static void org_init(sim_t *sim)
{
    org_fini(sim);
    org_ctx_t *x = ob_calloc(1, sizeof(*x));
    x->sim = sim;
    ob_timer_init(&x->timer, sim_loop(sim), requests_due, x);
    x->next = contexts;
    contexts = x;
    rearm(x);
}

const sim_service_t sim_org_service = {OB_SVC_ORGANIZATIONS, org_identify, org_handle, org_init,
                                       org_fini};

/* ---- the seed's OUs ---- */

/* An OU id of this simulator's root: ou-<root suffix>-[a-z0-9]{8,32}. */
static int is_own_ou_id(sim_t *sim, const char *s)
{
    char prefix[48];
    snprintf(prefix, sizeof(prefix), "ou-%s-", sim_root_id(sim) + 2);
    return is_ou_id(s) && !strncmp(s, prefix, strlen(prefix));
}

/* The parent an OU id has in the seed (first) or the state; NULL when unknown. */
static const char *seed_parent(sim_t *sim, json_t *seed, const char *ou, int *known)
{
    size_t i;
    json_t *v;
    *known = 1;
    json_array_foreach(json_object_get(seed, "ous"), i, v)
    {
        if (!strcmp(jstr(v, "Id"), ou))
            return jstr(v, "ParentId") ? jstr(v, "ParentId") : sim_root_id(sim);
    }
    json_t *cur = json_object_get(ous_of(sim), ou);
    *known = cur != NULL;
    return cur ? parent_of(sim, cur) : NULL;
}

/* Is id the root, or an OU (of the seed or the state) whose parents lead
 * to the root without a cycle? */
static int reaches_root(sim_t *sim, json_t *seed, const char *id)
{
    for (int depth = 0; id && depth <= OU_DEPTH_MAX; depth++) {
        if (!strcmp(id, sim_root_id(sim)))
            return 1;
        int known;
        id = seed_parent(sim, seed, id, &known);
        if (!known)
            return 0;
    }
    return 0;
}

ob_err_t sim_org_seed_check(sim_t *sim, json_t *seed, const char *what, char *errstr,
                            size_t errstr_size)
{
    size_t i;
    json_t *v;
    json_t *ous = json_object_get(seed, "ous");
    if (ous && !json_is_array(ous))
        return ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "%s: \"ous\" must be an array", what);
    json_array_foreach(ous, i, v)
    {
        const char *id = jstr(v, "Id"), *name = jstr(v, "Name"), *parent = jstr(v, "ParentId");
        if (!id || !is_own_ou_id(sim, id) || !name || !*name || strlen(name) > 128)
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "%s: ou %zu needs an Id ou-%s-<8 to 32 of [a-z0-9]> and a Name of 1 "
                           "to 128 characters",
                           what, i, sim_root_id(sim) + 2);
        if (parent && !reaches_root(sim, seed, parent))
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "%s: ou %zu: ParentId %s is neither the root nor an OU under it", what,
                           i, parent);
    }
    json_array_foreach(json_object_get(seed, "accounts"), i, v)
    {
        const char *parent = jstr(v, "ParentId");
        if (parent && !reaches_root(sim, seed, parent))
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                           "%s: account %zu: ParentId %s is neither the root nor an OU under it",
                           what, i, parent);
    }
    return OB_OK;
}

static json_t *put_ou(sim_t *sim, const char *id, const char *name, const char *parent)
{
    char arn[200];
    snprintf(arn, sizeof(arn), "arn:aws:organizations::%s:ou/%s/%s", sim_management_account(sim),
             org_id(sim), id);
    json_t *ou = json_pack("{s:s, s:s, s:s, s:s}", "Id", id, "Arn", arn, "Name", name, "ParentId",
                           parent ? parent : sim_root_id(sim));
    json_object_set_new(ous_of(sim), id, ou);
    sim_touch(sim);
    return ou;
}

void sim_org_seed_apply(sim_t *sim, json_t *seed)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(seed, "ous"), i, v)
    {
        put_ou(sim, jstr(v, "Id"), jstr(v, "Name"), jstr(v, "ParentId"));
    }
}

/* ---- admin calls ---- */

int sim_org_admin_account(sim_t *sim, json_t *body, json_t **out)
{
    static const char *const keys[] = {"Name",  "Id",           "Email", "ParentId",
                                       "State", "JoinedMethod", NULL};
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        int known = 0;
        for (int i = 0; keys[i]; i++)
            known |= !strcmp(k, keys[i]);
        if (!known || !json_is_string(v)) {
            *out = sim_admin_err("%s: expected string members Name, Id, Email, ParentId, State, "
                                 "JoinedMethod",
                                 k);
            return 400;
        }
    }
    const char *name = jstr(body, "Name"), *id = jstr(body, "Id"), *email = jstr(body, "Email");
    const char *parent = jstr(body, "ParentId"), *state = jstr(body, "State");
    const char *joined = jstr(body, "JoinedMethod");
    char idbuf[13], mail[96];
    if (!name || !*name || strlen(name) > 128) {
        *out = sim_admin_err("an account needs a Name of 1 to 128 characters");
        return 400;
    }
    if (id && !is_account_id(id)) {
        *out = sim_admin_err("Id \"%.40s\" is not 12 digits", id);
        return 400;
    }
    if (email && (!is_email(email) || strlen(email) < 6 || strlen(email) > 64)) {
        *out =
            sim_admin_err("Email \"%.80s\" is not an email address of 6 to 64 characters", email);
        return 400;
    }
    if (parent && !parent_exists(sim, parent)) {
        *out = sim_admin_err("ParentId %.80s is neither the root nor an OU", parent);
        return 400;
    }
    if (state && strcmp(state, "ACTIVE") != 0 && strcmp(state, "SUSPENDED") != 0) {
        *out = sim_admin_err("State must be ACTIVE or SUSPENDED");
        return 400;
    }
    if (joined && strcmp(joined, "CREATED") != 0 && strcmp(joined, "INVITED") != 0) {
        *out = sim_admin_err("JoinedMethod must be CREATED or INVITED");
        return 400;
    }
    if (id && json_object_get(accounts_of(sim), id)) {
        *out = sim_admin_err("account %s already exists", id);
        return 409;
    }
    if (!id) {
        next_member_id(sim, idbuf);
        id = idbuf;
    }
    if (!email) {
        snprintf(mail, sizeof(mail), "aws+%s@example.com", id);
        email = mail;
    }
    if (email_taken(sim, email)) {
        *out = sim_admin_err("an account with email %s already exists", email);
        return 409;
    }
    json_t *a = sim_put_account(sim, id, name, email, state ? state : "ACTIVE",
                                joined ? joined : "CREATED", parent);
    sim_put_org_role(sim, id, DEFAULT_ROLE);
    *out = json_pack("{s:s, s:o}", "status", "added", "account", account_json(sim, a));
    return 200;
}

int sim_org_admin_ou(sim_t *sim, json_t *body, json_t **out)
{
    const char *name = jstr(body, "Name"), *parent = jstr(body, "ParentId");
    json_t *pv = json_object_get(body, "ParentId");
    if (!name || !*name || strlen(name) > 128 || (pv && !parent)) {
        *out = sim_admin_err("an OU needs a Name of 1 to 128 characters (and may name its "
                             "ParentId, a string)");
        return 400;
    }
    if (!parent)
        parent = sim_root_id(sim);
    if (!parent_exists(sim, parent)) {
        *out = sim_admin_err("ParentId %.80s is neither the root nor an OU", parent);
        return 400;
    }
    const char *k;
    json_t *v;
    json_object_foreach(ous_of(sim), k, v)
    {
        if (!strcmp(parent_of(sim, v), parent) && !strcmp(jstr(v, "Name"), name)) {
            *out = sim_admin_err("an OU named \"%.128s\" already exists under %s", name, parent);
            return 409;
        }
    }
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    char id[48];
    do {
        unsigned char rnd[8];
        sim_random_bytes(rnd, sizeof(rnd));
        int n = snprintf(id, sizeof(id), "ou-%s-", sim_root_id(sim) + 2);
        for (size_t i = 0; i < sizeof(rnd); i++)
            id[n++] = alphabet[rnd[i] % 36];
        id[n] = '\0';
    } while (json_object_get(ous_of(sim), id));
    json_t *ou = put_ou(sim, id, name, parent);
    *out = json_pack("{s:s, s:o}", "status", "added", "ou", ou_json(sim, ou));
    json_object_set_new(json_object_get(*out, "ou"), "ParentId", json_string(parent));
    return 200;
}
