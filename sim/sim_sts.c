/*
 * sim_sts: STS (Query protocol, 2011-06-15): AssumeRole with the role's trust
 * policy enforced (principal, action, and the sts:ExternalId condition),
 * AssumeRoleWithWebIdentity (unsigned), GetCallerIdentity.
 *
 * The trust evaluation covers what onboarding uses and a little more: Allow
 * and Deny statements (Deny wins), Action strings or lists with wildcards
 * "sts:*" and "*", Principal "*", {"AWS": account id | account root ARN |
 * principal ARN | role ARN of an assumed-role caller}, {"Federated": ...} for
 * web identity, and the condition operators StringEquals / StringLike (exact
 * match) on sts:ExternalId. Any other condition makes the statement not
 * apply, so the simulator errs towards refusing, as AWS would for a condition
 * it cannot satisfy.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim.h"

static const char *param(sim_call_t *c, const char *name)
{
    return json_string_value(json_object_get(c->params, name));
}

static ob_err_t sts_identify(sim_call_t *c)
{
    const char *action = param(c, "Action");
    static const char *const ops[] = {"AssumeRole", "AssumeRoleWithWebIdentity",
                                      "GetCallerIdentity", NULL};
    for (int i = 0; action && ops[i]; i++) {
        if (!strcmp(action, ops[i])) {
            snprintf(c->op, sizeof(c->op), "%s", action);
            /* Only AssumeRoleWithWebIdentity may come unsigned. */
            if (!c->caller_key && strcmp(action, "AssumeRoleWithWebIdentity") != 0) {
                sim_error(c, 403, "MissingAuthenticationToken",
                          "Request is missing Authentication Token");
                return OB_ERR_AWS;
            }
            return OB_OK;
        }
    }
    sim_error(c, 400, "InvalidAction", "Could not find operation %s for version 2011-06-15",
              action ? action : "(none)");
    return OB_ERR_AWS;
}

static int match_action(json_t *a, const char *action)
{
    if (json_is_string(a)) {
        const char *s = json_string_value(a);
        return !strcmp(s, "*") || !strcasecmp(s, "sts:*") || !strcasecmp(s, action);
    }
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (match_action(v, action)) return 1;
    return 0;
}

typedef struct caller_s {
    const char *account;
    const char *arn;
    const char *role_arn; /* assumed-role sessions */
    int web_identity;
    const char *external_id;
} caller_t;

static int match_aws_principal(const char *p, const caller_t *who)
{
    char root[64];
    if (!who->account || !*who->account)
        return 0;
    snprintf(root, sizeof(root), "arn:aws:iam::%s:root", who->account);
    return !strcmp(p, "*") || !strcmp(p, who->account) || !strcmp(p, root) ||
           (who->arn && !strcmp(p, who->arn)) || (who->role_arn && !strcmp(p, who->role_arn));
}

static int match_principal(json_t *pr, const caller_t *who)
{
    if (json_is_string(pr))
        return !strcmp(json_string_value(pr), "*");
    if (!json_is_object(pr))
        return 0;
    json_t *list = json_object_get(pr, who->web_identity ? "Federated" : "AWS");
    if (!list)
        return 0;
    if (who->web_identity)
        return 1; /* any identity provider named: tokens are not verified here */
    if (json_is_string(list))
        return match_aws_principal(json_string_value(list), who);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) if (json_is_string(v) &&
                                       match_aws_principal(json_string_value(v), who)) return 1;
    return 0;
}

static int match_values(json_t *want, const char *have)
{
    if (!have)
        return 0;
    if (json_is_string(want))
        return !strcmp(json_string_value(want), have);
    size_t i;
    json_t *v;
    json_array_foreach(want, i,
                       v) if (json_is_string(v) && !strcmp(json_string_value(v), have)) return 1;
    return 0;
}

static int match_condition(json_t *cond, const caller_t *who)
{
    if (!cond)
        return 1;
    const char *op;
    json_t *keys;
    json_object_foreach(cond, op, keys)
    {
        if (strcmp(op, "StringEquals") != 0 && strcmp(op, "StringLike") != 0)
            return 0;
        const char *k;
        json_t *want;
        json_object_foreach(keys, k, want)
        {
            if (strcasecmp(k, "sts:ExternalId") != 0 || !match_values(want, who->external_id))
                return 0;
        }
    }
    return 1;
}

static int trust_allows(json_t *doc, const char *action, const caller_t *who)
{
    json_t *st = json_object_get(doc, "Statement");
    json_t *one = NULL;
    if (json_is_object(st)) {
        one = json_array();
        json_array_append(one, st);
        st = one;
    }
    int allow = 0, deny = 0;
    size_t i;
    json_t *s;
    json_array_foreach(st, i, s)
    {
        const char *effect = json_string_value(json_object_get(s, "Effect"));
        if (!effect || !match_action(json_object_get(s, "Action"), action) ||
            !match_principal(json_object_get(s, "Principal"), who) ||
            !match_condition(json_object_get(s, "Condition"), who))
            continue;
        if (!strcmp(effect, "Deny"))
            deny = 1;
        else if (!strcmp(effect, "Allow"))
            allow = 1;
    }
    json_decref(one);
    return allow && !deny;
}

static int valid_chars(const char *s, const char *extra)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && !strchr(extra, *s))
            return 0;
    return 1;
}

/* Validate the request fields the two AssumeRole calls share. 0 when fine. */
static int validate_common(sim_call_t *c, const char *role_arn, const char *session, int *duration)
{
    if (!role_arn) {
        sim_error(c, 400, "ValidationError",
                  "1 validation error detected: Value null at 'roleArn' failed to satisfy "
                  "constraint: Member must not be null");
        return -1;
    }
    if (strlen(role_arn) < 20 || strlen(role_arn) > 2048) {
        sim_error(c, 400, "ValidationError",
                  "1 validation error detected: Value '%s' at 'roleArn' failed to satisfy "
                  "constraint: Member must have length %s",
                  role_arn,
                  strlen(role_arn) < 20 ? "greater than or equal to 20"
                                        : "less than or equal to 2048");
        return -1;
    }
    if (!session) {
        sim_error(c, 400, "ValidationError",
                  "1 validation error detected: Value null at 'roleSessionName' failed to "
                  "satisfy constraint: Member must not be null");
        return -1;
    }
    if (strlen(session) < 2 || strlen(session) > 64 || !valid_chars(session, "+=,.@-")) {
        sim_error(c, 400, "ValidationError",
                  "1 validation error detected: Value '%s' at 'roleSessionName' failed to "
                  "satisfy constraint: Member must satisfy regular expression pattern: "
                  "[\\w+=,.@-]*",
                  session);
        return -1;
    }
    const char *d = param(c, "DurationSeconds");
    *duration = 3600;
    if (d) {
        char *end;
        long v = strtol(d, &end, 10);
        if (*end || v < 900 || v > 43200) {
            sim_error(c, 400, "ValidationError",
                      "1 validation error detected: Value '%s' at 'durationSeconds' failed to "
                      "satisfy constraint: Member must have value %s",
                      d, v < 900 ? "greater than or equal to 900" : "less than or equal to 43200");
            return -1;
        }
        *duration = (int)v;
    }
    return 0;
}

static void reply_credentials(sim_call_t *c, const char *account, const char *role_arn,
                              json_t *role, const char *session, int duration, const char *extra)
{
    const char *akid, *secret, *token;
    int64_t exp;
    sim_issue_session(c->sim, account, role_arn, session, duration, &akid, &secret, &token, &exp);
    char iso[32];
    sim_iso8601(exp, iso);
    ob_buf_t b = {0};
    ob_buf_printf(&b,
                  "    <Credentials>\n      <AccessKeyId>%s</AccessKeyId>\n"
                  "      <SecretAccessKey>%s</SecretAccessKey>\n"
                  "      <SessionToken>%s</SessionToken>\n"
                  "      <Expiration>%s</Expiration>\n    </Credentials>\n",
                  akid, secret, token, iso);
    const char *name = json_string_value(json_object_get(role, "RoleName"));
    ob_buf_printf(&b, "    <AssumedRoleUser>\n      <AssumedRoleId>%s:",
                  json_string_value(json_object_get(role, "RoleId")));
    sim_xml_text(&b, session);
    ob_buf_printf(&b, "</AssumedRoleId>\n      <Arn>arn:aws:sts::%s:assumed-role/%s/", account,
                  name);
    sim_xml_text(&b, session);
    ob_buf_puts(&b, "</Arn>\n    </AssumedRoleUser>\n    <PackedPolicySize>0</PackedPolicySize>");
    if (extra)
        ob_buf_puts(&b, extra);
    sim_reply_query(c, b.data);
    ob_buf_free(&b);
}

static void assume_role(sim_call_t *c, int web_identity)
{
    const char *role_arn = param(c, "RoleArn");
    const char *session = param(c, "RoleSessionName");
    int duration;
    if (validate_common(c, role_arn, session, &duration))
        return;
    const char *ext = param(c, "ExternalId");
    if (ext && (strlen(ext) < 2 || strlen(ext) > 1224 || !valid_chars(ext, "+=,.@:/-"))) {
        sim_error(c, 400, "ValidationError",
                  "1 validation error detected: Value at 'externalId' failed to satisfy "
                  "constraint: Member must %s",
                  strlen(ext) < 2 || strlen(ext) > 1224
                      ? "have length between 2 and 1224"
                      : "satisfy regular expression pattern: [\\w+=,.@:\\/-]*");
        return;
    }
    const char *token = param(c, "WebIdentityToken");
    if (web_identity && (!token || strlen(token) < 4)) {
        sim_error(c, 400, "ValidationError",
                  "1 validation error detected: Value at 'webIdentityToken' failed to satisfy "
                  "constraint: Member must have length greater than or equal to 4");
        return;
    }
    const char *action = web_identity ? "sts:AssumeRoleWithWebIdentity" : "sts:AssumeRole";
    char account[13], name[128];
    json_t *role = NULL;
    if (sim_parse_role_arn(role_arn, account, name, sizeof(name)) == 0)
        role = sim_get_role(c->sim, account, name);
    const char *caller_role =
        c->caller_key ? json_string_value(json_object_get(c->caller_key, "role_arn")) : NULL;
    caller_t who = {c->account, c->caller_arn, caller_role, web_identity, ext};
    if (!role || strcmp(json_string_value(json_object_get(role, "Arn")), role_arn) != 0 ||
        !trust_allows(json_object_get(role, "AssumeRolePolicyDocument"), action, &who)) {
        if (web_identity)
            sim_error(c, 403, "AccessDenied", "Not authorized to perform %s", action);
        else
            sim_error(c, 403, "AccessDenied",
                      "User: %s is not authorized to perform: %s on resource: %s", c->caller_arn,
                      action, role_arn);
        return;
    }
    /* A role session assuming another role is role chaining: one hour at most. */
    if (caller_role && duration > 3600) {
        sim_error(c, 400, "ValidationError",
                  "The requested DurationSeconds exceeds the 1 hour session limit for roles "
                  "assumed by role chaining.");
        return;
    }
    json_int_t max_session = json_integer_value(json_object_get(role, "MaxSessionDuration"));
    if (!json_is_integer(json_object_get(role, "MaxSessionDuration"))) {
        const char *ms = json_string_value(json_object_get(role, "MaxSessionDuration"));
        max_session = ms ? atoll(ms) : 0;
    }
    if (max_session < 3600 || max_session > 43200)
        max_session = 3600;
    if (duration > max_session) {
        sim_error(c, 400, "ValidationError",
                  "The requested DurationSeconds exceeds the MaxSessionDuration set for this "
                  "role.");
        return;
    }
    if (web_identity)
        reply_credentials(c, account, role_arn, role, session, duration,
                          "\n    <SubjectFromWebIdentityToken>system:serviceaccount:onboard:"
                          "worker</SubjectFromWebIdentityToken>\n    <Audience>sts.amazonaws.com"
                          "</Audience>\n    <Provider>oidc.eks.local</Provider>");
    else
        reply_credentials(c, account, role_arn, role, session, duration, NULL);
}

static void caller_identity(sim_call_t *c)
{
    char user_id[160];
    const char *role_arn = json_string_value(json_object_get(c->caller_key, "role_arn"));
    if (role_arn) {
        char acct[13], name[128];
        json_t *role = NULL;
        if (sim_parse_role_arn(role_arn, acct, name, sizeof(name)) == 0)
            role = sim_get_role(c->sim, acct, name);
        const char *slash = strrchr(c->caller_arn, '/');
        snprintf(user_id, sizeof(user_id), "%s:%s",
                 role ? json_string_value(json_object_get(role, "RoleId")) : "AROAUNKNOWN",
                 slash ? slash + 1 : "session");
    } else {
        /* A stable id derived from the account for long-term keys. */
        snprintf(user_id, sizeof(user_id), "AIDA%s%s", c->account, "EXAMPLE");
    }
    ob_buf_t b = {0};
    ob_buf_printf(&b, "    <Arn>%s</Arn>\n    <UserId>%s</UserId>\n    <Account>%s</Account>",
                  c->caller_arn, user_id, c->account);
    sim_reply_query(c, b.data);
    ob_buf_free(&b);
}

static void sts_handle(sim_call_t *c)
{
    if (!strcmp(c->op, "AssumeRole"))
        assume_role(c, 0);
    else if (!strcmp(c->op, "AssumeRoleWithWebIdentity"))
        assume_role(c, 1);
    else
        caller_identity(c);
}

const sim_service_t sim_sts_service = {OB_SVC_STS, sts_identify, sts_handle, NULL, NULL};
