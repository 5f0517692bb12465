#include "ob_lifecycle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "ob_buf.h"

/* A setting's list without blanks ("a, b" -> "a,b"), malloc'd. */
static char *tidy_list(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    char *out = ob_malloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            *o++ = s[i];
    *o = '\0';
    return out;
}

static int mode_of(const char *s, ob_mode_t *out)
{
    if (!strcmp(s, "new"))
        *out = OB_MODE_NEW;
    else if (!strcmp(s, "existing"))
        *out = OB_MODE_EXISTING;
    else
        return -1;
    return 0;
}

/* An OU as the lists name it: ou-xxxx-yyyyyyyy or root. */
static int ou_ok(const char *s, size_t n)
{
    if (n == 4 && !strncmp(s, "root", 4))
        return 1;
    if (n < 8 || strncmp(s, "ou-", 3) != 0)
        return 0;
    for (size_t i = 3; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

static int account_ok(const char *s, size_t n)
{
    if (n != 12)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* Every item of a list passes ok(); else the first that does not, in errstr. */
static ob_err_t check_list(const char *name, const char *list, int (*ok)(const char *, size_t),
                           char *errstr, size_t errstr_size)
{
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n && !ok(p, n))
            return ob_errf(errstr, errstr_size, OB_ERR_CONFIG, "%s: \"%.*s\" is not %s", name,
                           (int)(n > 64 ? 64 : n), p,
                           ok == account_ok ? "a 12-digit account id"
                                            : "an OU id (ou-xxxx-yyyyyyyy) or root");
        p += n + (p[n] == ',');
    }
    return OB_OK;
}

ob_err_t ob_lifecycle_rules_load(const ob_config_t *cfg, ob_lifecycle_rules_t *out, char *errstr,
                                 size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->region, sizeof(out->region), "%s",
             cfg->lifecycle_region ? cfg->lifecycle_region : "");
    snprintf(out->role_name, sizeof(out->role_name), "%s",
             cfg->lifecycle_role_name ? cfg->lifecycle_role_name : "");
    snprintf(out->ct_role_name, sizeof(out->ct_role_name), "%s",
             cfg->lifecycle_ct_role_name ? cfg->lifecycle_ct_role_name : "");
    out->ou_modes = tidy_list(cfg->lifecycle_ou_modes);
    out->include_ous = tidy_list(cfg->lifecycle_include_ous);
    out->exclude_ous = tidy_list(cfg->lifecycle_exclude_ous);
    out->include_accounts = tidy_list(cfg->lifecycle_include_accounts);
    out->exclude_accounts = tidy_list(cfg->lifecycle_exclude_accounts);
    ob_err_t e = OB_OK;
    if (mode_of(cfg->lifecycle_mode ? cfg->lifecycle_mode : "", &out->mode) != 0)
        e = ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                    "lifecycle.mode: \"%.32s\" is not new or existing", cfg->lifecycle_mode);
    for (const char *p = out->ou_modes; e == OB_OK && *p;) {
        size_t n = strcspn(p, ","), eq = strcspn(p, "=");
        ob_mode_t m;
        char mode[16];
        snprintf(mode, sizeof(mode), "%.*s", eq < n ? (int)(n - eq - 1) : 0, p + eq + 1);
        if (eq >= n || !ou_ok(p, eq) || mode_of(mode, &m) != 0)
            e = ob_errf(errstr, errstr_size, OB_ERR_CONFIG,
                        "lifecycle.ou.modes: \"%.*s\" is not OU=new or OU=existing",
                        (int)(n > 64 ? 64 : n), p);
        p += n + (p[n] == ',');
    }
    if (e == OB_OK)
        e = check_list("lifecycle.include.ous", out->include_ous, ou_ok, errstr, errstr_size);
    if (e == OB_OK)
        e = check_list("lifecycle.exclude.ous", out->exclude_ous, ou_ok, errstr, errstr_size);
    if (e == OB_OK)
        e = check_list("lifecycle.include.accounts", out->include_accounts, account_ok, errstr,
                       errstr_size);
    if (e == OB_OK)
        e = check_list("lifecycle.exclude.accounts", out->exclude_accounts, account_ok, errstr,
                       errstr_size);
    if (e != OB_OK)
        ob_lifecycle_rules_free(out);
    return e;
}

void ob_lifecycle_rules_free(ob_lifecycle_rules_t *r)
{
    free(r->ou_modes);
    free(r->include_ous);
    free(r->exclude_ous);
    free(r->include_accounts);
    free(r->exclude_accounts);
    memset(r, 0, sizeof(*r));
}

/* The first OU of `ous` (nearest first) that `list` names, into out ("" and
 * 0: none). */
static int first_listed(const char *ous, const char *list, char *out, size_t n)
{
    out[0] = '\0';
    for (const char *p = ous ? ous : ""; *p;) {
        size_t k = strcspn(p, ",");
        snprintf(out, n, "%.*s", (int)k, p);
        if (ob_list_has(list, out))
            return 1;
        p += k + (p[k] == ',');
    }
    out[0] = '\0';
    return 0;
}

int ob_lifecycle_decide(const ob_lifecycle_rules_t *r, const char *account, const char *ous,
                        ob_mode_t *mode, char *why, size_t why_size)
{
    char ou[64];
    if (ob_list_has(r->exclude_accounts, account)) {
        snprintf(why, why_size, "account %s is in lifecycle.exclude.accounts", account);
        return 0;
    }
    if (r->include_accounts[0] && !ob_list_has(r->include_accounts, account)) {
        snprintf(why, why_size, "account %s is not in lifecycle.include.accounts", account);
        return 0;
    }
    if (ous && first_listed(ous, r->exclude_ous, ou, sizeof(ou))) {
        snprintf(why, why_size, "account %s is in %s, which lifecycle.exclude.ous names", account,
                 ou);
        return 0;
    }
    if (r->include_ous[0] && !(ous && first_listed(ous, r->include_ous, ou, sizeof(ou)))) {
        snprintf(why, why_size, "account %s is in %s, outside lifecycle.include.ous", account,
                 ous ? ous : "an OU the event does not name");
        return 0;
    }
    *mode = r->mode;
    /* The nearest OU with a mode of its own decides. */
    for (const char *p = ous ? ous : ""; *p;) {
        size_t k = strcspn(p, ",");
        for (const char *q = r->ou_modes; *q;) {
            size_t m = strcspn(q, ","), eq = strcspn(q, "=");
            if (eq == k && !strncmp(q, p, k)) {
                char name[16];
                snprintf(name, sizeof(name), "%.*s", (int)(m - eq - 1), q + eq + 1);
                mode_of(name, mode);
                return 1;
            }
            q += m + (q[m] == ',');
        }
        p += k + (p[k] == ',');
    }
    return 1;
}

int ob_event_is_envelope(const json_t *o)
{
    return json_is_object(o) && !json_object_get(o, "schema") &&
           json_is_string(json_object_get(o, "detail-type")) &&
           json_is_string(json_object_get(o, "source")) &&
           json_is_object(json_object_get(o, "detail"));
}

static const char *str_at(const json_t *o, const char *path)
{
    char key[64];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof(key), "%.*s", (int)n, path);
        o = json_object_get(o, key);
        path += n + (path[n] == '.');
    }
    return json_string_value(o);
}

static ob_err_t refuse(ob_msg_error_t *err, const char *field, const char *code, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
static ob_err_t refuse(ob_msg_error_t *err, const char *field, const char *code, const char *fmt,
                       ...)
{
    snprintf(err->field, sizeof(err->field), "%s", field);
    snprintf(err->code, sizeof(err->code), "%s", code);
    size_t n =
        (size_t)snprintf(err->message, sizeof(err->message), "%s%s", field, field[0] ? ": " : "");
    if (n < sizeof(err->message)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message + n, sizeof(err->message) - n, fmt, ap);
        va_end(ap);
    }
    return OB_ERR_PARSE;
}

/* The account an event says has joined, and where (ous: "root" or the OU
 * Control Tower names); OB_ERR_PARSE with err otherwise. */
static ob_err_t joined(const json_t *env, const char **account, char *ous, size_t ous_size,
                       int *controltower, ob_msg_error_t *err)
{
    const char *source = str_at(env, "source"), *type = str_at(env, "detail-type");
    const json_t *d = json_object_get(env, "detail");
    const char *name = str_at(d, "eventName");
    char what[256];
    snprintf(what, sizeof(what), "%.64s \"%.64s\" %.64s", source, type,
             name ? name : "(no eventName)");
    *controltower = 0;
    snprintf(ous, ous_size, "root");
    if (!name)
        return refuse(err, "/detail/eventName", "unsupported_event",
                      "%s: not an account joining the organization (the fleet takes "
                      "Organizations CreateAccountResult, AcceptHandshake and "
                      "InviteAccountToOrganization, and Control Tower CreateManagedAccount)",
                      what);
    if (!strcmp(source, "aws.organizations") && !strcmp(name, "CreateAccountResult")) {
        const json_t *s =
            json_object_get(json_object_get(d, "serviceEventDetails"), "createAccountStatus");
        const char *state = str_at(s, "state");
        if (!state || strcmp(state, "SUCCEEDED") != 0)
            return refuse(err, "/detail/serviceEventDetails/createAccountStatus/state",
                          "unsupported_event", "%s: state %s%s%s: no account joined", what,
                          state ? state : "(none)", str_at(s, "failureReason") ? ", " : "",
                          str_at(s, "failureReason") ? str_at(s, "failureReason") : "");
        *account = str_at(s, "accountId");
        if (!*account)
            return refuse(err, "/detail/serviceEventDetails/createAccountStatus/accountId",
                          "unsupported_event", "%s: SUCCEEDED without an accountId", what);
        return OB_OK;
    }
    if (!strcmp(source, "aws.organizations") &&
        (!strcmp(name, "AcceptHandshake") || !strcmp(name, "InviteAccountToOrganization"))) {
        if (str_at(d, "errorCode"))
            return refuse(err, "/detail/errorCode", "unsupported_event",
                          "%s failed (%.64s: %.200s): no account joined", what,
                          str_at(d, "errorCode"),
                          str_at(d, "errorMessage") ? str_at(d, "errorMessage") : "");
        const json_t *h = json_object_get(json_object_get(d, "responseElements"), "handshake");
        const char *state = str_at(h, "state"), *action = str_at(h, "action");
        if (!state || strcmp(state, "ACCEPTED") != 0)
            return refuse(err, "/detail/responseElements/handshake/state", "unsupported_event",
                          "%s: handshake %.64s is %s, not ACCEPTED: the account joins when it "
                          "accepts the invitation (its AcceptHandshake event)",
                          what, str_at(h, "id") ? str_at(h, "id") : "?", state ? state : "absent");
        if (action && strcmp(action, "INVITE") != 0)
            return refuse(err, "/detail/responseElements/handshake/action", "unsupported_event",
                          "%s: a %.32s handshake, not an invitation: no account joined", what,
                          action);
        size_t i;
        const json_t *p;
        json_array_foreach(json_object_get(h, "parties"), i, p)
        {
            const char *t = str_at(p, "type");
            if (t && !strcmp(t, "ACCOUNT")) {
                *account = str_at(p, "id");
                if (*account)
                    return OB_OK;
            }
        }
        /* Invited by email: the one who accepts is the account. */
        *account = !strcmp(name, "AcceptHandshake") ? str_at(d, "userIdentity.accountId") : NULL;
        if (*account)
            return OB_OK;
        return refuse(err, "/detail/responseElements/handshake/parties", "unsupported_event",
                      "%s: the handshake names no party of type ACCOUNT", what);
    }
    if (!strcmp(source, "aws.controltower") && !strcmp(name, "CreateManagedAccount")) {
        const json_t *s = json_object_get(json_object_get(d, "serviceEventDetails"),
                                          "createManagedAccountStatus");
        const char *state = str_at(s, "state");
        if (!state || strcmp(state, "SUCCEEDED") != 0)
            return refuse(err, "/detail/serviceEventDetails/createManagedAccountStatus/state",
                          "unsupported_event", "%s: state %s (%.200s): no account joined", what,
                          state ? state : "(none)",
                          str_at(s, "message") ? str_at(s, "message") : "no message");
        *account = str_at(json_object_get(s, "account"), "accountId");
        if (!*account)
            return refuse(err, "/detail/serviceEventDetails/createManagedAccountStatus/account",
                          "unsupported_event", "%s: SUCCEEDED without an accountId", what);
        const char *ou = str_at(json_object_get(s, "organizationalUnit"), "organizationalUnitId");
        snprintf(ous, ous_size, "%s", ou ? ou : "");
        *controltower = 1;
        return OB_OK;
    }
    return refuse(err, "/detail/eventName", "unsupported_event",
                  "%s: not an account joining the organization (the fleet takes Organizations "
                  "CreateAccountResult, AcceptHandshake and InviteAccountToOrganization, and "
                  "Control Tower CreateManagedAccount)",
                  what);
}

ob_err_t ob_event_request(const json_t *env, const ob_lifecycle_rules_t *rules, ob_request_t *out,
                          ob_msg_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!ob_event_is_envelope(env))
        return refuse(err, "", "not_object",
                      "not an EventBridge event (detail-type, source and "
                      "detail)");
    const char *account = NULL;
    char ous[80];
    int ct = 0;
    ob_err_t e = joined(env, &account, ous, sizeof(ous), &ct, err);
    if (e != OB_OK)
        return e;
    if (!rules->region[0])
        return refuse(err, "", "lifecycle_config",
                      "%s joined, but lifecycle.region is not set: the fleet cannot make its "
                      "request (set it, then replay)",
                      account);
    ob_mode_t mode;
    char why[256];
    if (!ob_lifecycle_decide(rules, account, ous[0] ? ous : NULL, &mode, why, sizeof(why)))
        return refuse(err, "/detail", "excluded", "%s", why);
    const char *region = rules->region;
    char role[256], rid[160], who[160];
    snprintf(role, sizeof(role), "arn:%s:iam::%s:role/%s", ob_region_partition(region), account,
             ct ? rules->ct_role_name : rules->role_name);
    snprintf(rid, sizeof(rid), "eventbridge:%.128s", str_at(env, "id") ? str_at(env, "id") : "");
    snprintf(who, sizeof(who), "eventbridge:%.64s/%.64s", str_at(env, "source"),
             str_at(json_object_get(env, "detail"), "eventName"));
    json_t *req =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "schema", OB_SCHEMA_REQUEST,
                  "request_id", rid, "account_id", account, "cloud", "aws", "mode",
                  ob_mode_name(mode), "region", region, "role_arn", role, "requester", who);
    const char *at = str_at(env, "time");
    if (req && at && ob_msg_time_valid(at))
        json_object_set_new(req, "requested_at", json_string(at));
    if (!req)
        return refuse(err, "", "not_json", "out of memory");
    e = ob_request_parse_json(req, out, err);
    json_decref(req);
    return e;
}
