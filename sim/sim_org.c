/*
 * sim_org: Organizations (JSON 1.1, AWSOrganizationsV20161128): ListAccounts
 * with pagination over the seeded accounts, DescribeAccount (an unknown id is
 * AccountNotFoundException), and DescribeOrganization. Only
 * the management account may call them, as in AWS. Pages follow the account
 * ids in order; the NextToken is the last id served, so pagination stays
 * consistent while accounts are added.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ob_alloc.h"
#include "sim.h"

static ob_err_t org_identify(sim_call_t *c)
{
    const char *target = ob_hdrs_get(c->http->headers, "X-Amz-Target");
    const char *prefix = "AWSOrganizationsV20161128.";
    if (target && !strncmp(target, prefix, strlen(prefix))) {
        const char *op = target + strlen(prefix);
        if (!strcmp(op, "ListAccounts") || !strcmp(op, "DescribeOrganization") ||
            !strcmp(op, "DescribeAccount")) {
            snprintf(c->op, sizeof(c->op), "%s", op);
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

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* An account as ListAccounts and DescribeAccount show it. */
static json_t *account_json(const json_t *a)
{
    const char *state = json_string_value(json_object_get(a, "State"));
    if (!state)
        state = "ACTIVE";
    return json_pack("{s:O, s:O, s:O, s:O, s:s, s:s, s:O, s:O}", "Id", json_object_get(a, "Id"),
                     "Arn", json_object_get(a, "Arn"), "Email", json_object_get(a, "Email"), "Name",
                     json_object_get(a, "Name"), "State", state,
                     /* the retiring Status field knows only ACTIVE and SUSPENDED */
                     "Status", !strcmp(state, "ACTIVE") ? "ACTIVE" : "SUSPENDED", "JoinedMethod",
                     json_object_get(a, "JoinedMethod"), "JoinedTimestamp",
                     json_object_get(a, "JoinedTimestamp"));
}

static void describe_account(sim_call_t *c)
{
    const json_t *idj = json_object_get(c->params, "AccountId");
    const char *id = json_string_value(idj);
    int ok = id && strlen(id) == 12;
    for (int i = 0; ok && i < 12; i++)
        ok = isdigit((unsigned char)id[i]);
    if (!ok) {
        sim_error(c, 400, "InvalidInputException",
                  "1 validation error detected: Value at 'accountId' failed to satisfy "
                  "constraint: Member must satisfy regular expression pattern: ^\\d{12}$");
        return;
    }
    json_t *a = json_object_get(sim_section(c->sim, "accounts"), id);
    if (!a) {
        sim_error(c, 400, "AccountNotFoundException",
                  "You specified an account that doesn't exist.");
        return;
    }
    sim_reply_json(c, json_pack("{s:o}", "Account", account_json(a)));
}

static void list_accounts(sim_call_t *c)
{
    json_t *mr = json_object_get(c->params, "MaxResults");
    json_int_t max = 20;
    if (mr) {
        max = json_integer_value(mr);
        if (!json_is_integer(mr) || max < 1 || max > 20) {
            sim_error(c, 400, "InvalidInputException",
                      "1 validation error detected: Value '%lld' at 'maxResults' failed to "
                      "satisfy constraint: Member must have value %s",
                      (long long)max,
                      max < 1 ? "greater than or equal to 1" : "less than or equal to 20");
            return;
        }
    }
    const char *next = json_string_value(json_object_get(c->params, "NextToken"));
    char after[16] = "";
    if (next) {
        /* Our tokens are "t" + 12 digits. */
        if (strlen(next) != 13 || next[0] != 't') {
            sim_error(c, 400, "InvalidInputException",
                      "You specified an invalid value for "
                      "nextToken.");
            return;
        }
        for (int i = 1; i < 13; i++)
            if (!isdigit((unsigned char)next[i])) {
                sim_error(c, 400, "InvalidInputException",
                          "You specified an invalid value for nextToken.");
                return;
            }
        snprintf(after, sizeof(after), "%s", next + 1);
    }
    json_t *accounts = sim_section(c->sim, "accounts");
    size_t n = json_object_size(accounts), k = 0;
    const char **ids = ob_malloc((n ? n : 1) * sizeof(*ids));
    const char *id;
    json_t *v;
    json_object_foreach(accounts, id, v)
    {
        if (!after[0] || strcmp(id, after) > 0)
            ids[k++] = id;
    }
    qsort(ids, k, sizeof(*ids), cmp_str);
    json_t *out = json_array();
    size_t take = k < (size_t)max ? k : (size_t)max;
    for (size_t i = 0; i < take; i++) {
        json_array_append_new(out, account_json(json_object_get(accounts, ids[i])));
    }
    json_t *reply = json_pack("{s:o}", "Accounts", out);
    if (take < k) {
        char tok[16];
        snprintf(tok, sizeof(tok), "t%s", ids[take - 1]);
        json_object_set_new(reply, "NextToken", json_string(tok));
    }
    free(ids);
    sim_reply_json(c, reply);
}

static void org_handle(sim_call_t *c)
{
    if (strcmp(c->account, sim_management_account(c->sim)) != 0) {
        sim_error(c, 400, "AccessDeniedException",
                  "You don't have permissions to access this resource.");
        return;
    }
    if (!strcmp(c->op, "ListAccounts")) {
        list_accounts(c);
        return;
    }
    if (!strcmp(c->op, "DescribeAccount")) {
        describe_account(c);
        return;
    }
    json_t *org = json_object_get(sim_state(c->sim), "org");
    sim_reply_json(c, json_pack("{s:{s:O, s:O, s:s, s:O, s:O, s:s, s:[]}}", "Organization", "Id",
                                json_object_get(org, "Id"), "Arn", json_object_get(org, "Arn"),
                                "FeatureSet", "ALL", "MasterAccountId",
                                json_object_get(org, "MasterAccountId"), "MasterAccountArn",
                                json_object_get(org, "Arn"), "MasterAccountEmail",
                                "aws+management@example.com", "AvailablePolicyTypes"));
}

const sim_service_t sim_org_service = {OB_SVC_ORGANIZATIONS, org_identify, org_handle, NULL, NULL};
