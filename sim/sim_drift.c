/*
 * sim_drift: drift, both made and found.
 *
 * Made: POST /_sim/drift {"Account", "Kind", ...} changes an account's
 * resources out of band, as an operator with console access would, so that
 * the fleet's verification has something to find. The IAM kinds live here
 * (roles are the core's); the S3 and CUR kinds are handed to sim_s3_drift
 * and sim_cur_drift, which know their resources' rules.
 *
 * Found: sim_drift_check() is what CloudFormation's drift detection does for
 * one resource (sim_cfn.c runs it when a detection completes). An
 * AWS::IAM::Role is compared with the role as it is now, on the properties
 * the template set (as AWS does: "only resource properties explicitly
 * defined in the stack template are checked"): gone is DELETED, any
 * difference MODIFIED with PropertyDifferences whose paths are JSON
 * pointers into the properties ("/AssumeRolePolicyDocument/Statement/0/
 * Condition"). Policy documents are compared as IAM reads them, normalised:
 * a single Statement object is a one-element list, a one-element list of
 * actions, resources, principals or condition values is that value, and
 * longer ones are sets (sorted). Scalars compare by their text, so
 * MaxSessionDuration "3600" equals 3600. Inline policies match by name; the
 * ones an AWS::IAM::Policy of the same stack puts on the role, and managed
 * policies an AWS::IAM::ManagedPolicy of the stack attaches, are that
 * resource's, not drift of the role. Other resource types are not checked
 * (NULL), and AWS leaves unchecked resources out of the results as well.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ob_alloc.h"
#include "ob_buf.h"
#include "sim.h"

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int streq(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

/* ---- normalising policy documents ---- */

static int cmp_json_text(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    char *sx = json_dumps(x, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *sy = json_dumps(y, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    int r = strcmp(sx, sy);
    free(sx);
    free(sy);
    return r;
}

/* An array with its elements in order of their JSON text (new). */
static json_t *sorted(json_t *v)
{
    size_t n = json_array_size(v);
    json_t **items = ob_malloc((n + 1) * sizeof(*items));
    for (size_t i = 0; i < n; i++)
        items[i] = json_array_get(v, i);
    qsort(items, n, sizeof(*items), cmp_json_text);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(out, items[i]);
    free(items);
    return out;
}

/* A value IAM reads as a set: one element is that element, more are sorted. */
static json_t *norm_set(json_t *v)
{
    if (!json_is_array(v))
        return json_incref(v);
    if (json_array_size(v) == 1)
        return json_incref(json_array_get(v, 0));
    return sorted(v);
}

/* Every member of an object made a set (principals, one condition operator). */
static void norm_members(json_t *o)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        json_object_set_new(o, k, norm_set(v));
    }
}

/* A policy document (an object, or text holding one) as IAM compares it; new
 * reference, or a copy of v when it is no policy. */
static json_t *norm_policy(json_t *v)
{
    json_t *doc = json_is_string(v) ? json_loads(json_string_value(v), 0, NULL) : json_deep_copy(v);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return json_deep_copy(v);
    }
    json_t *st = json_object_get(doc, "Statement");
    if (json_is_object(st)) {
        json_t *list = json_array();
        json_array_append(list, st);
        json_object_set_new(doc, "Statement", list);
        st = list;
    }
    static const char *const sets[] = {"Action", "NotAction", "Resource", "NotResource", NULL};
    size_t i;
    json_t *s;
    json_array_foreach(st, i, s)
    {
        if (!json_is_object(s))
            continue;
        for (int j = 0; sets[j]; j++)
            if (json_object_get(s, sets[j]))
                json_object_set_new(s, sets[j], norm_set(json_object_get(s, sets[j])));
        norm_members(json_object_get(s, "Principal"));
        norm_members(json_object_get(s, "NotPrincipal"));
        const char *op;
        json_t *keys;
        json_object_foreach(json_object_get(s, "Condition"), op, keys)
        {
            norm_members(keys);
        }
    }
    return doc;
}

/* ---- comparing ---- */

/* A value as PropertyDifferences shows it: scalars as their text, the rest as JSON. */
static void value_text(json_t *v, ob_buf_t *out)
{
    if (!v || json_is_null(v)) {
        ob_buf_puts(out, "null");
    } else if (json_is_string(v)) {
        ob_buf_puts(out, json_string_value(v));
    } else if (json_is_integer(v)) {
        ob_buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        ob_buf_printf(out, "%g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        ob_buf_puts(out, json_is_true(v) ? "true" : "false");
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
        ob_buf_puts(out, s);
        free(s);
    }
}

static int is_scalar(json_t *v)
{
    return json_is_string(v) || json_is_number(v) || json_is_boolean(v);
}

static int same_value(json_t *e, json_t *a)
{
    if (is_scalar(e) && is_scalar(a)) {
        ob_buf_t x = {0}, y = {0};
        value_text(e, &x);
        value_text(a, &y);
        int same = !strcmp(x.data, y.data);
        ob_buf_free(&x);
        ob_buf_free(&y);
        return same;
    }
    return json_equal(e, a);
}

static void add_diff(json_t *diffs, const char *path, json_t *e, json_t *a, const char *type)
{
    ob_buf_t x = {0}, y = {0};
    value_text(e, &x);
    value_text(a, &y);
    json_array_append_new(diffs,
                          json_pack("{s:s, s:s, s:s, s:s}", "PropertyPath", path, "ExpectedValue",
                                    x.data, "ActualValue", y.data, "DifferenceType", type));
    ob_buf_free(&x);
    ob_buf_free(&y);
}

/* path + "/" + key, with the key escaped as a JSON pointer (~0, ~1). */
static void child_path(char *out, size_t n, const char *path, const char *key)
{
    size_t len = (size_t)snprintf(out, n, "%s/", path);
    for (; *key && len + 3 < n; key++) {
        if (*key == '~' || *key == '/') {
            out[len++] = '~';
            out[len++] = *key == '~' ? '0' : '1';
        } else {
            out[len++] = *key;
        }
    }
    out[len] = '\0';
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Differences between expected e and actual a at path, appended to diffs:
 * members or elements only in e are REMOVE, only in a ADD, differing values
 * NOT_EQUAL. */
static void diff(const char *path, json_t *e, json_t *a, json_t *diffs)
{
    char sub[1024];
    if (json_is_object(e) && json_is_object(a)) {
        size_t n = json_object_size(e) + json_object_size(a), k = 0;
        const char **keys = ob_malloc((n + 1) * sizeof(*keys));
        const char *key;
        json_t *v;
        json_object_foreach(e, key, v)
        {
            keys[k++] = key;
        }
        json_object_foreach(a, key, v)
        {
            if (!json_object_get(e, key))
                keys[k++] = key;
        }
        qsort(keys, k, sizeof(*keys), cmp_cstr);
        for (size_t i = 0; i < k; i++) {
            json_t *x = json_object_get(e, keys[i]), *y = json_object_get(a, keys[i]);
            child_path(sub, sizeof(sub), path, keys[i]);
            if (!y)
                add_diff(diffs, sub, x, NULL, "REMOVE");
            else if (!x)
                add_diff(diffs, sub, NULL, y, "ADD");
            else
                diff(sub, x, y, diffs);
        }
        free(keys);
    } else if (json_is_array(e) && json_is_array(a)) {
        size_t ne = json_array_size(e), na = json_array_size(a);
        for (size_t i = 0; i < ne || i < na; i++) {
            snprintf(sub, sizeof(sub), "%s/%zu", path, i);
            if (i >= na)
                add_diff(diffs, sub, json_array_get(e, i), NULL, "REMOVE");
            else if (i >= ne)
                add_diff(diffs, sub, NULL, json_array_get(a, i), "ADD");
            else
                diff(sub, json_array_get(e, i), json_array_get(a, i), diffs);
        }
    } else if (!same_value(e, a)) {
        add_diff(diffs, path, e, a, "NOT_EQUAL");
    }
}

/* ---- AWS::IAM::Role ---- */

static int names_role(json_t *props, const char *role)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(props, "Roles"), i, r)
    {
        if (streq(json_string_value(r), role))
            return 1;
    }
    return 0;
}

/* Inline policy names and managed policy ARNs that other resources of the
 * stack put on the role: {"policies": {name: true}, "managed": {arn: true}}. */
static json_t *owned_elsewhere(json_t *resources, const char *role)
{
    json_t *out = json_pack("{s:{}, s:{}}", "policies", "managed");
    const char *k;
    json_t *r;
    json_object_foreach(resources, k, r)
    {
        json_t *props = json_object_get(r, "Properties");
        if (!names_role(props, role))
            continue;
        if (streq(jstr(r, "Type"), "AWS::IAM::Policy") && jstr(props, "PolicyName"))
            json_object_set_new(json_object_get(out, "policies"), jstr(props, "PolicyName"),
                                json_true());
        else if (streq(jstr(r, "Type"), "AWS::IAM::ManagedPolicy") && jstr(r, "PhysicalResourceId"))
            json_object_set_new(json_object_get(out, "managed"), jstr(r, "PhysicalResourceId"),
                                json_true());
    }
    return out;
}

static int cmp_tag(const void *a, const void *b)
{
    const char *x = jstr(*(json_t *const *)a, "Key"), *y = jstr(*(json_t *const *)b, "Key");
    return strcmp(x ? x : "", y ? y : "");
}

/* Tags are a set keyed by Key: sorted by it. */
static json_t *norm_tags(json_t *tags)
{
    size_t n = json_array_size(tags);
    json_t **v = ob_malloc((n + 1) * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(tags, i);
    qsort(v, n, sizeof(*v), cmp_tag);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(out, v[i]);
    free(v);
    return out;
}

/* A role property as the comparison sees it (new reference). */
static json_t *norm_prop(const char *key, json_t *v)
{
    if (!strcmp(key, "AssumeRolePolicyDocument"))
        return norm_policy(v);
    if (!strcmp(key, "ManagedPolicyArns") && json_is_array(v))
        return sorted(v);
    if (!strcmp(key, "Tags") && json_is_array(v))
        return norm_tags(v);
    return json_deep_copy(v);
}

/* The template's Policies: [{PolicyName, PolicyDocument}] with normalised documents. */
static json_t *expected_policies(json_t *list)
{
    json_t *out = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p)
    {
        json_t *doc = norm_policy(json_object_get(p, "PolicyDocument"));
        json_array_append_new(out,
                              json_pack("{s:O, s:o}", "PolicyName",
                                        json_object_get(p, "PolicyName"), "PolicyDocument", doc));
    }
    return out;
}

/* The role's inline policies as the same list: the template's names first,
 * in its order (those the role still has), then the others, by name. */
static json_t *actual_policies(json_t *expected, json_t *have, json_t *skip)
{
    json_t *out = json_array();
    size_t i, n = json_object_size(have), k = 0;
    json_t *p;
    json_array_foreach(expected, i, p)
    {
        json_t *doc = json_object_get(have, jstr(p, "PolicyName"));
        if (doc)
            json_array_append_new(out, json_pack("{s:O, s:o}", "PolicyName",
                                                 json_object_get(p, "PolicyName"), "PolicyDocument",
                                                 norm_policy(doc)));
    }
    const char **extra = ob_malloc((n + 1) * sizeof(*extra));
    const char *name;
    json_object_foreach(have, name, p)
    {
        int listed = 0;
        size_t j;
        json_t *e;
        json_array_foreach(expected, j, e)
        {
            listed |= streq(jstr(e, "PolicyName"), name);
        }
        if (!listed && !json_object_get(skip, name))
            extra[k++] = name;
    }
    qsort(extra, k, sizeof(*extra), cmp_cstr);
    for (i = 0; i < k; i++)
        json_array_append_new(out, json_pack("{s:s, s:o}", "PolicyName", extra[i], "PolicyDocument",
                                             norm_policy(json_object_get(have, extra[i]))));
    free(extra);
    return out;
}

/* Policies match by name: a template policy the role lacks is REMOVE at its
 * index, a changed document differs inside it, one the role has besides is
 * ADD at its index in the actual list. */
static void diff_policies(json_t *e, json_t *a, json_t *diffs)
{
    char path[256];
    size_t i, j;
    json_t *p, *q;
    json_array_foreach(e, i, p)
    {
        json_t *found = NULL;
        json_array_foreach(a, j, q)
        {
            if (streq(jstr(q, "PolicyName"), jstr(p, "PolicyName")))
                found = q;
        }
        snprintf(path, sizeof(path), "/Policies/%zu", i);
        if (!found) {
            add_diff(diffs, path, p, NULL, "REMOVE");
            continue;
        }
        snprintf(path, sizeof(path), "/Policies/%zu/PolicyDocument", i);
        diff(path, json_object_get(p, "PolicyDocument"), json_object_get(found, "PolicyDocument"),
             diffs);
    }
    json_array_foreach(a, j, q)
    {
        int listed = 0;
        json_array_foreach(e, i, p)
        {
            listed |= streq(jstr(q, "PolicyName"), jstr(p, "PolicyName"));
        }
        snprintf(path, sizeof(path), "/Policies/%zu", j);
        if (!listed)
            add_diff(diffs, path, NULL, q, "ADD");
    }
}

static json_t *check_role(sim_t *sim, const char *account, json_t *entry, json_t *resources,
                          json_t *out)
{
    const char *name = jstr(entry, "PhysicalResourceId");
    json_t *role = name ? sim_get_role(sim, account, name) : NULL;
    if (!role) {
        json_object_set_new(out, "StackResourceDriftStatus", json_string("DELETED"));
        return out;
    }
    json_t *props = json_object_get(entry, "Properties");
    json_t *own = owned_elsewhere(resources, name);
    json_t *expected = json_object(), *actual = json_object(), *diffs = json_array();
    /* In name order, so the differences come in a stable order. */
    size_t nkeys = 0;
    const char **keys = ob_malloc((json_object_size(props) + 1) * sizeof(*keys));
    const char *k;
    json_t *v;
    json_object_foreach(props, k, v)
    {
        keys[nkeys++] = k;
    }
    qsort(keys, nkeys, sizeof(*keys), cmp_cstr);
    for (size_t ki = 0; ki < nkeys; ki++) {
        k = keys[ki];
        v = json_object_get(props, k);
        json_t *have = json_object_get(role, k);
        if (!strcmp(k, "Policies")) {
            json_t *e = expected_policies(v);
            json_t *a = actual_policies(e, json_object_get(role, "Policies"),
                                        json_object_get(own, "policies"));
            diff_policies(e, a, diffs);
            json_object_set_new(expected, k, e);
            json_object_set_new(actual, k, a);
            continue;
        }
        json_t *e = norm_prop(k, v);
        json_object_set_new(expected, k, e);
        if (!strcmp(k, "ManagedPolicyArns") && json_is_array(have)) {
            json_t *mine = json_array();
            size_t i;
            json_t *arn;
            json_array_foreach(have, i, arn)
            {
                if (!json_object_get(json_object_get(own, "managed"), json_string_value(arn)))
                    json_array_append(mine, arn);
            }
            json_object_set_new(actual, k, sorted(mine));
            json_decref(mine);
        } else if (have) {
            json_object_set_new(actual, k, norm_prop(k, have));
        }
        char path[160];
        child_path(path, sizeof(path), "", k);
        if (!json_object_get(actual, k))
            add_diff(diffs, path, e, NULL, "REMOVE");
        else
            diff(path, e, json_object_get(actual, k), diffs);
    }
    free(keys);
    char *es = json_dumps(expected, JSON_COMPACT | JSON_SORT_KEYS);
    char *as = json_dumps(actual, JSON_COMPACT | JSON_SORT_KEYS);
    json_object_set_new(out, "ExpectedProperties", json_string(es));
    json_object_set_new(out, "ActualProperties", json_string(as));
    json_object_set_new(out, "StackResourceDriftStatus",
                        json_string(json_array_size(diffs) ? "MODIFIED" : "IN_SYNC"));
    if (json_array_size(diffs))
        json_object_set(out, "PropertyDifferences", diffs);
    free(es);
    free(as);
    json_decref(expected);
    json_decref(actual);
    json_decref(diffs);
    json_decref(own);
    return out;
}

json_t *sim_drift_check(sim_t *sim, const char *account, json_t *entry, json_t *resources)
{
    const char *type = jstr(entry, "Type");
    if (!streq(type, "AWS::IAM::Role"))
        return NULL;
    json_t *out = json_pack("{s:O, s:O, s:s}", "LogicalResourceId",
                            json_object_get(entry, "LogicalResourceId"), "PhysicalResourceId",
                            json_object_get(entry, "PhysicalResourceId"), "ResourceType", type);
    return check_role(sim, account, entry, resources, out);
}

/* ---- POST /_sim/drift ---- */

/* Remove every sts:ExternalId condition key (and the operators and
 * Condition blocks it leaves empty); how many were removed. */
static int strip_external_id(json_t *doc)
{
    json_t *st = json_object_get(doc, "Statement");
    json_t *one = NULL;
    if (json_is_object(st)) {
        one = json_array();
        json_array_append(one, st);
        st = one;
    }
    int removed = 0;
    size_t i;
    json_t *s;
    json_array_foreach(st, i, s)
    {
        json_t *cond = json_object_get(s, "Condition");
        const char *op, *key;
        json_t *keys, *v;
        void *t1, *t2;
        json_object_foreach_safe(cond, t1, op, keys)
        {
            json_object_foreach_safe(keys, t2, key, v)
            {
                if (!strcasecmp(key, "sts:ExternalId")) {
                    json_object_del(keys, key);
                    removed++;
                }
            }
            if (json_is_object(keys) && !json_object_size(keys))
                json_object_del(cond, op);
        }
        if (cond && json_is_object(cond) && !json_object_size(cond))
            json_object_del(s, "Condition");
    }
    json_decref(one);
    return removed;
}

/* A policy document given in a body: an object, or text holding one (new). */
static json_t *body_policy(json_t *v)
{
    if (json_is_object(v))
        return json_deep_copy(v);
    json_t *d = json_is_string(v) ? json_loads(json_string_value(v), 0, NULL) : NULL;
    if (json_is_object(d))
        return d;
    json_decref(d);
    return NULL;
}

static int drift_role(sim_t *sim, const char *account, const char *kind, json_t *body, json_t **out)
{
    const char *name = jstr(body, "RoleName");
    if (!name) {
        *out = sim_admin_err("%s needs a RoleName", kind);
        return 400;
    }
    json_t *role = sim_get_role(sim, account, name);
    if (!role) {
        *out = sim_admin_err("account %s has no role %s", account, name);
        return 404;
    }
    *out = json_pack("{s:s, s:s, s:s, s:s}", "status", "drifted", "kind", kind, "account", account,
                     "role", name);
    if (!strcmp(kind, "delete_role")) {
        sim_delete_role(sim, account, name);
        return 200;
    }
    json_t *given = json_object_get(body, "Policy");
    json_t *doc = given ? body_policy(given) : NULL;
    if (given && !doc) {
        json_decref(*out);
        *out = sim_admin_err("Policy must be a policy document (an object, or text holding one)");
        return 400;
    }
    if (!strcmp(kind, "trust_policy")) {
        if (!doc) {
            doc = json_deep_copy(json_object_get(role, "AssumeRolePolicyDocument"));
            if (strip_external_id(doc) == 0) {
                json_decref(doc);
                json_decref(*out);
                *out = sim_admin_err("the trust policy of role %s has no sts:ExternalId "
                                     "condition to remove; give the Policy to set",
                                     name);
                return 400;
            }
        }
        json_object_set_new(role, "AssumeRolePolicyDocument", doc);
        json_object_set(*out, "AssumeRolePolicyDocument", doc);
        sim_touch(sim);
        return 200;
    }
    /* role_policy: put the inline policy, or delete it when no Policy is given. */
    const char *pname = jstr(body, "PolicyName");
    json_t *pols = json_object_get(role, "Policies");
    if (!pname) {
        json_decref(doc);
        json_decref(*out);
        *out = sim_admin_err("role_policy needs a PolicyName");
        return 400;
    }
    if (!json_is_object(pols)) {
        pols = json_object();
        json_object_set_new(role, "Policies", pols);
    }
    if (!doc && !json_object_get(pols, pname)) {
        json_decref(*out);
        *out = sim_admin_err("role %s has no inline policy %s", name, pname);
        return 404;
    }
    json_object_set_new(*out, "PolicyName", json_string(pname));
    if (doc) {
        json_object_set_new(pols, pname, doc);
        json_object_set(*out, "PolicyDocument", doc);
    } else {
        json_object_del(pols, pname);
        json_object_set_new(*out, "PolicyDocument", json_null());
    }
    sim_touch(sim);
    return 200;
}

int sim_admin_drift(sim_t *sim, json_t *body, json_t **out)
{
    static const char *const roles[] = {"delete_role", "trust_policy", "role_policy", NULL};
    static const char *const s3[] = {"bucket_policy",
                                     "delete_bucket_policy",
                                     "public_access",
                                     "ownership",
                                     "encryption",
                                     "delete_bucket",
                                     NULL};
    static const char *const cur[] = {"delete_report", "change_report", NULL};
    const char *account = jstr(body, "Account"), *kind = jstr(body, "Kind");
    int digits = account && strlen(account) == 12;
    for (int i = 0; digits && i < 12; i++)
        digits = account[i] >= '0' && account[i] <= '9';
    if (!digits || !kind) {
        *out = sim_admin_err("drift needs an Account (12 digits) and a Kind");
        return 400;
    }
    for (int i = 0; roles[i]; i++)
        if (!strcmp(kind, roles[i]))
            return drift_role(sim, account, kind, body, out);
    for (int i = 0; s3[i]; i++)
        if (!strcmp(kind, s3[i]))
            return sim_s3_drift(sim, account, kind, body, out);
    for (int i = 0; cur[i]; i++)
        if (!strcmp(kind, cur[i]))
            return sim_cur_drift(sim, account, kind, body, out);
    *out = sim_admin_err("unknown Kind \"%.64s\" (delete_role, trust_policy, role_policy, "
                         "bucket_policy, delete_bucket_policy, public_access, ownership, "
                         "encryption, delete_bucket, delete_report, change_report)",
                         kind);
    return 400;
}
