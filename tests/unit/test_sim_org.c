/*
 * The simulator's Organizations module, driven in-process over HTTP by the
 * project's own AWS client (JSON 1.1, SigV4) and the unsigned admin API:
 * the root and the OU tree (seeded, added while running, nested), every
 * read of it (ListRoots, ListOrganizationalUnitsForParent,
 * ListAccountsForParent, ListChildren, ListParents,
 * DescribeOrganizationalUnit) with pagination and AWS's errors; MoveAccount
 * and its errors; CreateAccount staying IN_PROGRESS for the
 * organizations.account_create latency and then SUCCEEDED (the account,
 * under the root, with a role the management account can assume) or FAILED
 * with EMAIL_ALREADY_EXISTS, ListCreateAccountStatus, and the request
 * resuming in a simulator restored from the state file; POST /_sim/accounts
 * and POST /_sim/ous with their errors; the seed's OUs and ParentIds, and
 * POST /_sim/reset back to them.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ob_aws.h"
#include "ob_credsrc.h"
#include "ob_http.h"
#include "ob_xml.h"
#include "sim.h"
#include "testutil.h"

#define ROOT      "r-sim0"
#define OU_ENG    "ou-sim0-engineer"
#define OU_PLAT   "ou-sim0-platform"
#define SEEDED    "300000000001"
#define ORG_PATH  "o-sim0000001/r-sim0/"
#define OU_PAT    "^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$"
#define PARENT_PT "^(r-[0-9a-z]{4,32})|(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$"

typedef ob_test_simfx_t fx_t;
typedef ob_test_got_t got_t;

/* Two nested OUs and an account in the inner one. */
static const char SEED[] =
    "{\"ous\": [{\"Id\": \"" OU_PLAT "\", \"Name\": \"Platform\", \"ParentId\": \"" OU_ENG "\"},"
    "           {\"Id\": \"" OU_ENG "\", \"Name\": \"Engineering\"}],"
    " \"accounts\": [{\"Id\": \"" SEEDED "\", \"Name\": \"platform-prod\", \"ParentId\": \"" OU_PLAT
    "\"}]}";

static void start(fx_t *f, int members, const char *latency, const char *seed_file,
                  const char *state_file)
{
    const char *lat[] = {latency, NULL};
    sim_opts_t o = {.profile = "instant",
                    .org_accounts = members,
                    .latency = lat,
                    .seed_file = seed_file,
                    .state_file = state_file,
                    .random_seed = 11};
    ob_test_simfx_start(f, &o, "us-east-1", NULL,
                        "arn:aws:iam::200000000001:role/OrganizationAccountAccessRole");
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    start(f, 3, NULL, NULL, NULL);
    *state = f;
    return 0;
}

/* ---- admin calls ---- */

static void admin_fails(fx_t *f, const char *path, const char *body, long status,
                        const char *message)
{
    json_t *j = ob_test_simfx_admin(f, "POST", path, body, status);
    const char *e = json_string_value(json_object_get(j, "error"));
    if (!e || strcmp(e, message) != 0)
        fail_msg("POST %s: error \"%s\", wanted \"%s\"", path, e ? e : "(none)", message);
    json_decref(j);
}

/* ---- Organizations calls ---- */

static void org_as(fx_t *f, ob_credsrc_t *creds, const char *op, json_t *params, got_t *g)
{
    ob_aws_req_t req;
    char err[256];
    memset(&req, 0, sizeof(req));
    assert_int_equal(ob_json11_init_obj(&req, OB_SVC_ORGANIZATIONS, op, params, err, sizeof(err)),
                     OB_OK);
    json_decref(params);
    ob_aws_target_t t = {.creds = creds};
    ob_test_aws_call(f, &req, &t, g, 10000);
}

/* The reply of a call that must succeed (new reference). */
static json_t *org(fx_t *f, const char *op, json_t *params)
{
    got_t g;
    org_as(f, f->mgmt, op, params, &g);
    if (g.err != OB_OK)
        fail_msg("%s: %ld %s: %s", op, g.status, g.code, g.message);
    json_t *j = json_incref(g.json);
    assert_non_null(j);
    ob_test_got_free(&g);
    return j;
}

/* The call fails with code (400), the message (NULL: any) and, for
 * InvalidInputException, the Reason. */
static void org_fails(fx_t *f, const char *op, json_t *params, const char *code, const char *reason,
                      const char *message)
{
    got_t g;
    org_as(f, f->mgmt, op, params, &g);
    if (g.err != OB_ERR_AWS || g.status != 400 || strcmp(g.code, code) != 0)
        fail_msg("%s: wanted 400 %s, got %d %ld %s: %s", op, code, g.err, g.status, g.code,
                 g.message);
    if (message && strcmp(g.message, message) != 0)
        fail_msg("%s: message \"%s\", wanted \"%s\"", op, g.message, message);
    const char *r = json_string_value(json_object_get(g.json, "Reason"));
    if (reason && (!r || strcmp(r, reason) != 0))
        fail_msg("%s: Reason %s, wanted %s", op, r ? r : "(none)", reason);
    ob_test_got_free(&g);
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* The ids of a list member (Accounts, OrganizationalUnits, Children...), joined by spaces. */
static void ids_of(json_t *reply, const char *list, char *out, size_t n)
{
    size_t i, len = 0;
    json_t *x;
    out[0] = '\0';
    json_array_foreach(json_object_get(reply, list), i, x)
    {
        len += (size_t)snprintf(out + len, n - len, "%s%s", len ? " " : "", jstr(x, "Id"));
    }
}

static void expect_ids(fx_t *f, const char *op, json_t *params, const char *list, const char *want)
{
    char got[4096];
    json_t *r = org(f, op, params);
    ids_of(r, list, got, sizeof(got));
    if (strcmp(got, want) != 0)
        fail_msg("%s %s: \"%s\", wanted \"%s\"", op, list, got, want);
    assert_null(json_object_get(r, "NextToken"));
    json_decref(r);
}

/* Every page of a listing with MaxResults max: the ids in order, and how
 * many pages it took. */
static int all_pages(fx_t *f, const char *op, json_t *params, const char *list, int max, char *out,
                     size_t n)
{
    char *tok = NULL;
    int pages = 0;
    size_t len = 0;
    out[0] = '\0';
    do {
        json_t *p = json_deep_copy(params);
        json_object_set_new(p, "MaxResults", json_integer(max));
        if (tok)
            json_object_set_new(p, "NextToken", json_string(tok));
        free(tok);
        tok = NULL;
        json_t *r = org(f, op, p);
        assert_true(json_array_size(json_object_get(r, list)) <= (size_t)max);
        char ids[4096];
        ids_of(r, list, ids, sizeof(ids));
        if (ids[0])
            len += (size_t)snprintf(out + len, n - len, "%s%s", len ? " " : "", ids);
        if (json_object_get(r, "NextToken"))
            tok = strdup(jstr(r, "NextToken"));
        json_decref(r);
        pages++;
    } while (tok && pages < 100);
    json_decref(params);
    return pages;
}

static char *write_seed(const char *text)
{
    char *path = strdup("/tmp/test_sim_org_seed_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* ---- tests ---- */

static void test_tree(void **state)
{
    fx_t *f = *state;
    json_t *r = org(f, "ListRoots", json_object());
    json_t *root = json_array_get(json_object_get(r, "Roots"), 0);
    assert_int_equal(json_array_size(json_object_get(r, "Roots")), 1);
    assert_string_equal(jstr(root, "Id"), ROOT);
    assert_string_equal(jstr(root, "Arn"),
                        "arn:aws:organizations::111111111111:root/o-sim0000001/r-sim0");
    assert_string_equal(jstr(root, "Name"), "Root");
    assert_true(json_is_array(json_object_get(root, "PolicyTypes")));
    assert_int_equal(json_array_size(json_object_get(root, "PolicyTypes")), 0);
    json_decref(r);

    /* Before any OU: everything is under the root. */
    expect_ids(f, "ListOrganizationalUnitsForParent", json_pack("{s:s}", "ParentId", ROOT),
               "OrganizationalUnits", "");
    expect_ids(f, "ListChildren", json_pack("{s:s, s:s}", "ParentId", ROOT, "ChildType", "ACCOUNT"),
               "Children", "111111111111 200000000001 200000000002 200000000003");

    json_t *s = ob_test_simfx_admin(f, "POST", "/_sim/seed", SEED, 200);
    assert_int_equal(json_integer_value(json_object_get(s, "ous")), 2);
    assert_int_equal(json_integer_value(json_object_get(s, "accounts")), 1);
    json_decref(s);

    expect_ids(f, "ListOrganizationalUnitsForParent", json_pack("{s:s}", "ParentId", ROOT),
               "OrganizationalUnits", OU_ENG);
    expect_ids(f, "ListOrganizationalUnitsForParent", json_pack("{s:s}", "ParentId", OU_ENG),
               "OrganizationalUnits", OU_PLAT);
    expect_ids(f, "ListOrganizationalUnitsForParent", json_pack("{s:s}", "ParentId", OU_PLAT),
               "OrganizationalUnits", "");
    expect_ids(f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", OU_PLAT), "Accounts",
               SEEDED);
    expect_ids(f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", OU_ENG), "Accounts", "");
    expect_ids(f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", ROOT), "Accounts",
               "111111111111 200000000001 200000000002 200000000003");
    expect_ids(f, "ListChildren",
               json_pack("{s:s, s:s}", "ParentId", ROOT, "ChildType", "ORGANIZATIONAL_UNIT"),
               "Children", OU_ENG);

    /* What each shows. */
    r = org(f, "ListChildren",
            json_pack("{s:s, s:s}", "ParentId", OU_ENG, "ChildType", "ORGANIZATIONAL_UNIT"));
    json_t *child = json_array_get(json_object_get(r, "Children"), 0);
    assert_string_equal(jstr(child, "Type"), "ORGANIZATIONAL_UNIT");
    json_decref(r);
    r = org(f, "DescribeOrganizationalUnit", json_pack("{s:s}", "OrganizationalUnitId", OU_PLAT));
    json_t *ou = json_object_get(r, "OrganizationalUnit");
    assert_string_equal(jstr(ou, "Id"), OU_PLAT);
    assert_string_equal(jstr(ou, "Name"), "Platform");
    assert_string_equal(jstr(ou, "Arn"),
                        "arn:aws:organizations::111111111111:ou/o-sim0000001/" OU_PLAT);
    assert_string_equal(jstr(ou, "Path"), ORG_PATH OU_ENG "/" OU_PLAT "/");
    json_decref(r);
    r = org(f, "DescribeAccount", json_pack("{s:s}", "AccountId", SEEDED));
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(r, "Account"), "Paths"), 0)),
                        ORG_PATH OU_ENG "/" OU_PLAT "/" SEEDED "/");
    json_decref(r);
    r = org(f, "ListChildren",
            json_pack("{s:s, s:s}", "ParentId", OU_PLAT, "ChildType", "ACCOUNT"));
    assert_string_equal(jstr(json_array_get(json_object_get(r, "Children"), 0), "Type"), "ACCOUNT");
    json_decref(r);

    /* Parents: an account in an OU, an OU in an OU, an OU and an account at the root. */
    struct {
        const char *child, *id, *type;
    } parents[] = {{SEEDED, OU_PLAT, "ORGANIZATIONAL_UNIT"},
                   {OU_PLAT, OU_ENG, "ORGANIZATIONAL_UNIT"},
                   {OU_ENG, ROOT, "ROOT"},
                   {"111111111111", ROOT, "ROOT"}};
    for (size_t i = 0; i < sizeof(parents) / sizeof(parents[0]); i++) {
        r = org(f, "ListParents", json_pack("{s:s}", "ChildId", parents[i].child));
        json_t *p = json_object_get(r, "Parents");
        assert_int_equal(json_array_size(p), 1);
        assert_string_equal(jstr(json_array_get(p, 0), "Id"), parents[i].id);
        assert_string_equal(jstr(json_array_get(p, 0), "Type"), parents[i].type);
        json_decref(r);
    }
}

static void test_tree_errors(void **state)
{
    fx_t *f = *state;
    const char *missing = "ou-sim0-zzzzzzzz";
    org_fails(f, "ListChildren",
              json_pack("{s:s, s:s}", "ParentId", missing, "ChildType", "ACCOUNT"),
              "ParentNotFoundException", NULL, "You specified a root or OU that doesn't exist.");
    org_fails(f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", "r-nope"),
              "ParentNotFoundException", NULL, NULL);
    org_fails(f, "ListOrganizationalUnitsForParent", json_pack("{s:s}", "ParentId", missing),
              "ParentNotFoundException", NULL, NULL);
    org_fails(f, "ListParents", json_pack("{s:s}", "ChildId", "999999999999"),
              "ChildNotFoundException", NULL, "You specified an account or OU that doesn't exist.");
    org_fails(f, "ListParents", json_pack("{s:s}", "ChildId", missing), "ChildNotFoundException",
              NULL, NULL);
    org_fails(f, "DescribeOrganizationalUnit", json_pack("{s:s}", "OrganizationalUnitId", missing),
              "OrganizationalUnitNotFoundException", NULL,
              "You specified an organizational unit that doesn't exist.");
    /* The model's patterns, enums and required members. */
    org_fails(f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", "x-1"),
              "InvalidInputException", "INVALID_PATTERN",
              "1 validation error detected: Value at 'parentId' failed to satisfy constraint: "
              "Member must satisfy regular expression pattern: " PARENT_PT);
    org_fails(f, "ListAccountsForParent", json_object(), "InvalidInputException", "INPUT_REQUIRED",
              "1 validation error detected: Value null at 'parentId' failed to satisfy "
              "constraint: Member must not be null");
    org_fails(f, "ListChildren", json_pack("{s:s, s:s}", "ParentId", ROOT, "ChildType", "USER"),
              "InvalidInputException", "INVALID_ENUM",
              "1 validation error detected: Value 'USER' at 'childType' failed to satisfy "
              "constraint: Member must satisfy enum value set: [ACCOUNT, ORGANIZATIONAL_UNIT]");
    org_fails(f, "ListChildren", json_pack("{s:s}", "ParentId", ROOT), "InvalidInputException",
              "INPUT_REQUIRED", NULL);
    org_fails(f, "ListParents", json_pack("{s:s}", "ChildId", "12345"), "InvalidInputException",
              "INVALID_PATTERN", NULL);
    org_fails(f, "DescribeOrganizationalUnit", json_pack("{s:s}", "OrganizationalUnitId", ROOT),
              "InvalidInputException", "INVALID_PATTERN",
              "1 validation error detected: Value at 'organizationalUnitId' failed to satisfy "
              "constraint: Member must satisfy regular expression pattern: " OU_PAT);
    org_fails(f, "ListRoots", json_pack("{s:i}", "MaxResults", 0), "InvalidInputException",
              "MIN_VALUE_EXCEEDED", NULL);
    org_fails(f, "ListParents",
              json_pack("{s:s, s:i}", "ChildId", "111111111111", "MaxResults", 21),
              "InvalidInputException", "MAX_VALUE_EXCEEDED", NULL);
    org_fails(f, "DescribeAccount", json_pack("{s:s}", "AccountId", "1234"),
              "InvalidInputException", "INVALID_PATTERN",
              "1 validation error detected: Value at 'accountId' failed to satisfy constraint: "
              "Member must satisfy regular expression pattern: ^\\d{12}$");
    /* Only the management account may call. */
    got_t g;
    org_as(f, f->member, "ListRoots", json_object(), &g);
    assert_int_equal(g.err, OB_ERR_AWS);
    assert_string_equal(g.code, "AccessDeniedException");
    ob_test_got_free(&g);
    org_as(f, f->member, "ListChildren",
           json_pack("{s:s, s:s}", "ParentId", ROOT, "ChildType", "ACCOUNT"), &g);
    assert_string_equal(g.code, "AccessDeniedException");
    ob_test_got_free(&g);
}

static void test_paging(void **state)
{
    fx_t f = {0};
    start(&f, 44, NULL, NULL, NULL);
    char ids[8192], want[8192];
    size_t len = (size_t)snprintf(want, sizeof(want), "111111111111");
    for (int i = 1; i <= 44; i++)
        len += (size_t)snprintf(want + len, sizeof(want) - len, " %012llu",
                                SIM_MEMBER_BASE + (unsigned long long)i);
    /* 45 accounts: 20 + 20 + 5, each once, in order. */
    int pages = all_pages(&f, "ListChildren",
                          json_pack("{s:s, s:s}", "ParentId", ROOT, "ChildType", "ACCOUNT"),
                          "Children", 20, ids, sizeof(ids));
    assert_int_equal(pages, 3);
    assert_string_equal(ids, want);
    pages = all_pages(&f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", ROOT), "Accounts",
                      7, ids, sizeof(ids));
    assert_int_equal(pages, 7);
    assert_string_equal(ids, want);

    /* The default page is 20, with a token to go on. */
    json_t *r = org(&f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", ROOT));
    assert_int_equal(json_array_size(json_object_get(r, "Accounts")), 20);
    assert_string_equal(jstr(r, "NextToken"), "t200000000019");
    json_decref(r);

    /* An account that joins between two pages shows on a later page; nothing repeats. */
    r = org(
        &f, "ListChildren",
        json_pack("{s:s, s:s, s:i}", "ParentId", ROOT, "ChildType", "ACCOUNT", "MaxResults", 20));
    char *tok = strdup(jstr(r, "NextToken"));
    json_decref(r);
    json_decref(ob_test_simfx_admin(&f, "POST", "/_sim/accounts",
                                    "{\"Name\": \"late\", \"Id\": \"299999999999\"}", 200));
    size_t seen = 20;
    int found = 0;
    while (tok) {
        r = org(&f, "ListChildren",
                json_pack("{s:s, s:s, s:s}", "ParentId", ROOT, "ChildType", "ACCOUNT", "NextToken",
                          tok));
        free(tok);
        tok = NULL;
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(r, "Children"), i, x)
        {
            found |= !strcmp(jstr(x, "Id"), "299999999999");
            assert_string_not_equal(jstr(x, "Id"), "200000000019");
            seen++;
        }
        if (json_object_get(r, "NextToken"))
            tok = strdup(jstr(r, "NextToken"));
        json_decref(r);
    }
    assert_true(found);
    assert_int_equal(seen, 46);

    /* OUs page too. */
    for (int i = 0; i < 23; i++) {
        char body[64];
        snprintf(body, sizeof(body), "{\"Name\": \"team-%02d\"}", i);
        json_decref(ob_test_simfx_admin(&f, "POST", "/_sim/ous", body, 200));
    }
    pages = all_pages(&f, "ListOrganizationalUnitsForParent", json_pack("{s:s}", "ParentId", ROOT),
                      "OrganizationalUnits", 20, ids, sizeof(ids));
    assert_int_equal(pages, 2);
    assert_int_equal(strlen(ids), 23 * 16 + 22);
    pages = all_pages(&f, "ListChildren",
                      json_pack("{s:s, s:s}", "ParentId", ROOT, "ChildType", "ORGANIZATIONAL_UNIT"),
                      "Children", 10, ids, sizeof(ids));
    assert_int_equal(pages, 3);
    pages = all_pages(&f, "ListRoots", json_object(), "Roots", 1, ids, sizeof(ids));
    assert_int_equal(pages, 1);
    assert_string_equal(ids, ROOT);

    /* Tokens that are not this listing's. */
    org_fails(&f, "ListOrganizationalUnitsForParent",
              json_pack("{s:s, s:s}", "ParentId", ROOT, "NextToken", "t200000000001"),
              "InvalidInputException", "INVALID_NEXT_TOKEN",
              "You specified an invalid value for nextToken.");
    org_fails(&f, "ListAccounts", json_pack("{s:s}", "NextToken", "garbage"),
              "InvalidInputException", "INVALID_NEXT_TOKEN", NULL);
    org_fails(&f, "ListChildren",
              json_pack("{s:s, s:s, s:s}", "ParentId", ROOT, "ChildType", "ACCOUNT", "NextToken",
                        "tou-sim0-aaaaaaaa"),
              "InvalidInputException", "INVALID_NEXT_TOKEN", NULL);
    ob_test_simfx_stop(&f, 0);
}

static void test_move_account(void **state)
{
    fx_t *f = *state;
    json_decref(ob_test_simfx_admin(f, "POST", "/_sim/seed", SEED, 200));
    const char *acct = "200000000002";
    json_decref(org(f, "MoveAccount",
                    json_pack("{s:s, s:s, s:s}", "AccountId", acct, "SourceParentId", ROOT,
                              "DestinationParentId", OU_ENG)));
    expect_ids(f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", OU_ENG), "Accounts",
               acct);
    expect_ids(f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", ROOT), "Accounts",
               "111111111111 200000000001 200000000003");
    json_t *r = org(f, "ListParents", json_pack("{s:s}", "ChildId", acct));
    assert_string_equal(jstr(json_array_get(json_object_get(r, "Parents"), 0), "Id"), OU_ENG);
    json_decref(r);
    /* Still one account in ListAccounts, now with the OU in its path. */
    r = org(f, "DescribeAccount", json_pack("{s:s}", "AccountId", acct));
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(r, "Account"), "Paths"), 0)),
                        ORG_PATH OU_ENG "/200000000002/");
    json_decref(r);

    org_fails(f, "MoveAccount",
              json_pack("{s:s, s:s, s:s}", "AccountId", "999999999999", "SourceParentId", ROOT,
                        "DestinationParentId", OU_ENG),
              "AccountNotFoundException", NULL, "You specified an account that doesn't exist.");
    org_fails(f, "MoveAccount",
              json_pack("{s:s, s:s, s:s}", "AccountId", acct, "SourceParentId", "ou-sim0-zzzzzzzz",
                        "DestinationParentId", ROOT),
              "SourceParentNotFoundException", NULL, NULL);
    org_fails(f, "MoveAccount",
              json_pack("{s:s, s:s, s:s}", "AccountId", acct, "SourceParentId", OU_ENG,
                        "DestinationParentId", "ou-sim0-zzzzzzzz"),
              "DestinationParentNotFoundException", NULL, NULL);
    /* Not under the source given. */
    org_fails(f, "MoveAccount",
              json_pack("{s:s, s:s, s:s}", "AccountId", acct, "SourceParentId", ROOT,
                        "DestinationParentId", OU_PLAT),
              "AccountNotFoundException", NULL, NULL);
    org_fails(f, "MoveAccount",
              json_pack("{s:s, s:s, s:s}", "AccountId", acct, "SourceParentId", OU_ENG,
                        "DestinationParentId", OU_ENG),
              "DuplicateAccountException", NULL,
              "That account is already present in the specified destination.");
    org_fails(f, "MoveAccount",
              json_pack("{s:s, s:s, s:s}", "AccountId", acct, "SourceParentId", OU_ENG,
                        "DestinationParentId", "root"),
              "InvalidInputException", "INVALID_PATTERN", NULL);
    org_fails(f, "MoveAccount",
              json_pack("{s:s, s:s}", "AccountId", acct, "SourceParentId", OU_ENG),
              "InvalidInputException", "INPUT_REQUIRED", NULL);
    /* Back to the root. */
    json_decref(org(f, "MoveAccount",
                    json_pack("{s:s, s:s, s:s}", "AccountId", acct, "SourceParentId", OU_ENG,
                              "DestinationParentId", ROOT)));
    expect_ids(f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", OU_ENG), "Accounts", "");
}

/* The request's state, as DescribeCreateAccountStatus shows it (new). */
static json_t *create_status(fx_t *f, const char *id)
{
    json_t *r =
        org(f, "DescribeCreateAccountStatus", json_pack("{s:s}", "CreateAccountRequestId", id));
    json_t *s = json_incref(json_object_get(r, "CreateAccountStatus"));
    json_decref(r);
    return s;
}

static int request_done(void *arg)
{
    void **a = arg;
    json_t *s = create_status(a[0], a[1]);
    int done = strcmp(jstr(s, "State"), "IN_PROGRESS") != 0;
    json_decref(s);
    return done;
}

/* Poll until the request leaves IN_PROGRESS; its final state (new). */
static json_t *wait_request(fx_t *f, const char *id)
{
    void *a[2] = {f, (void *)id};
    assert_true(ob_test_run_until(f->loop, request_done, a, 10000));
    return create_status(f, id);
}

static char *create(fx_t *f, json_t *params)
{
    json_t *r = org(f, "CreateAccount", params);
    json_t *s = json_object_get(r, "CreateAccountStatus");
    assert_string_equal(jstr(s, "State"), "IN_PROGRESS");
    char *id = strdup(jstr(s, "Id"));
    json_decref(r);
    return id;
}

static void test_create_account(void **state)
{
    fx_t f = {0};
    start(&f, 3, "organizations.account_create=300ms", NULL, NULL);
    uint64_t t0 = ob_loop_update_time(f.loop);
    json_t *r = org(&f, "CreateAccount",
                    json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "Email", "finance@example.com",
                              "AccountName", "Finance", "Tags", "Key", "team", "Value", "finops"));
    json_t *s = json_object_get(r, "CreateAccountStatus");
    assert_string_equal(jstr(s, "State"), "IN_PROGRESS");
    assert_string_equal(jstr(s, "AccountName"), "Finance");
    char id[64];
    snprintf(id, sizeof(id), "%s", jstr(s, "Id"));
    assert_int_equal(strlen(id), 4 + 32);
    assert_int_equal(strncmp(id, "car-", 4), 0);
    assert_int_equal(strspn(id + 4, "0123456789abcdef"), 32);
    double requested = json_number_value(json_object_get(s, "RequestedTimestamp"));
    assert_true(requested > 1.7e9);
    assert_null(json_object_get(s, "AccountId"));
    assert_null(json_object_get(s, "CompletedTimestamp"));
    char *car = strdup(id);
    json_decref(r);

    /* In progress: no account yet. */
    json_t *st = create_status(&f, car);
    assert_string_equal(jstr(st, "State"), "IN_PROGRESS");
    json_decref(st);
    expect_ids(&f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", ROOT), "Accounts",
               "111111111111 200000000001 200000000002 200000000003");

    st = wait_request(&f, car);
    assert_true(ob_loop_update_time(f.loop) - t0 >= 290);
    assert_string_equal(jstr(st, "State"), "SUCCEEDED");
    assert_string_equal(jstr(st, "AccountId"), "200000000004");
    assert_true(json_number_value(json_object_get(st, "CompletedTimestamp")) >= requested + 0.29);
    assert_null(json_object_get(st, "FailureReason"));
    json_decref(st);

    /* The account: ACTIVE, CREATED, under the root, with the role. */
    r = org(&f, "DescribeAccount", json_pack("{s:s}", "AccountId", "200000000004"));
    json_t *a = json_object_get(r, "Account");
    assert_string_equal(jstr(a, "Name"), "Finance");
    assert_string_equal(jstr(a, "Email"), "finance@example.com");
    assert_string_equal(jstr(a, "State"), "ACTIVE");
    assert_string_equal(jstr(a, "JoinedMethod"), "CREATED");
    json_decref(r);
    expect_ids(&f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", ROOT), "Accounts",
               "111111111111 200000000001 200000000002 200000000003 200000000004");
    json_t *role = sim_get_role(f.sim, "200000000004", "OrganizationAccountAccessRole");
    assert_non_null(role);
    json_t *seeded = sim_get_role(f.sim, "200000000001", "OrganizationAccountAccessRole");
    assert_true(json_equal(json_object_get(role, "AssumeRolePolicyDocument"),
                           json_object_get(seeded, "AssumeRolePolicyDocument")));
    ob_credsrc_t *as = ob_credsrc_assume_role(
        f.aws, f.mgmt, "arn:aws:iam::200000000004:role/OrganizationAccountAccessRole", NULL, "test",
        0, "us-east-1");
    got_t g;
    org_as(&f, as, "ListRoots", json_object(), &g);
    /* Assumed (the call is signed as the new account), then refused as a member. */
    assert_string_equal(g.code, "AccessDeniedException");
    ob_test_got_free(&g);
    ob_credsrc_unref(as);

    /* A RoleName of one's own. */
    char *car2 =
        create(&f, json_pack("{s:s, s:s, s:s, s:s}", "Email", "ops@example.com", "AccountName",
                             "Ops", "RoleName", "OrgAdmin", "IamUserAccessToBilling", "DENY"));
    st = wait_request(&f, car2);
    assert_string_equal(jstr(st, "AccountId"), "200000000005");
    json_decref(st);
    assert_non_null(sim_get_role(f.sim, "200000000005", "OrgAdmin"));
    assert_null(sim_get_role(f.sim, "200000000005", "OrganizationAccountAccessRole"));

    /* An email an account has (any case): FAILED, and no account. Two requests
     * for one new email: the first made wins. */
    char *dup = create(
        &f, json_pack("{s:s, s:s}", "Email", "AWS+Member-1@example.com", "AccountName", "Dup"));
    char *first =
        create(&f, json_pack("{s:s, s:s}", "Email", "twice@example.com", "AccountName", "First"));
    char *second =
        create(&f, json_pack("{s:s, s:s}", "Email", "twice@example.com", "AccountName", "Second"));
    st = wait_request(&f, dup);
    assert_string_equal(jstr(st, "State"), "FAILED");
    assert_string_equal(jstr(st, "FailureReason"), "EMAIL_ALREADY_EXISTS");
    assert_null(json_object_get(st, "AccountId"));
    assert_non_null(json_object_get(st, "CompletedTimestamp"));
    json_decref(st);
    st = wait_request(&f, second);
    json_t *st1 = create_status(&f, first);
    assert_string_equal(jstr(st1, "State"), "SUCCEEDED");
    assert_string_equal(jstr(st, "State"), "FAILED");
    assert_string_equal(jstr(st, "FailureReason"), "EMAIL_ALREADY_EXISTS");
    json_decref(st);
    json_decref(st1);
    assert_int_equal(json_object_size(sim_section(f.sim, "accounts")), 7);

    /* ListCreateAccountStatus: all five in the order made, by state, paged. */
    char ids[2048], want[2048];
    snprintf(want, sizeof(want), "%s %s %s %s %s", car, car2, dup, first, second);
    int pages = all_pages(&f, "ListCreateAccountStatus", json_object(), "CreateAccountStatuses", 2,
                          ids, sizeof(ids));
    assert_int_equal(pages, 3);
    assert_string_equal(ids, want);
    snprintf(want, sizeof(want), "%s %s", dup, second);
    expect_ids(&f, "ListCreateAccountStatus", json_pack("{s:[s]}", "States", "FAILED"),
               "CreateAccountStatuses", want);
    expect_ids(&f, "ListCreateAccountStatus", json_pack("{s:[s]}", "States", "IN_PROGRESS"),
               "CreateAccountStatuses", "");
    org_fails(&f, "ListCreateAccountStatus", json_pack("{s:[s]}", "States", "DONE"),
              "InvalidInputException", "INVALID_ENUM", NULL);
    free(car);
    free(car2);
    free(dup);
    free(first);
    free(second);
    ob_test_simfx_stop(&f, 0);
}

static void test_create_account_errors(void **state)
{
    fx_t *f = *state;
    org_fails(f, "CreateAccount", json_pack("{s:s}", "AccountName", "x"), "InvalidInputException",
              "INPUT_REQUIRED",
              "1 validation error detected: Value null at 'email' failed to satisfy constraint: "
              "Member must not be null");
    org_fails(f, "CreateAccount", json_pack("{s:s}", "Email", "a@example.com"),
              "InvalidInputException", "INPUT_REQUIRED", NULL);
    org_fails(f, "CreateAccount",
              json_pack("{s:s, s:s}", "Email", "not-an-email", "AccountName", "x"),
              "InvalidInputException", "INVALID_PATTERN", NULL);
    org_fails(f, "CreateAccount", json_pack("{s:s, s:s}", "Email", "a@b.c", "AccountName", "x"),
              "InvalidInputException", "MIN_LENGTH_EXCEEDED", NULL);
    org_fails(f, "CreateAccount",
              json_pack("{s:s, s:s}", "Email", "a@example.com", "AccountName",
                        "a name that is longer than fifty characters, surely it is"),
              "InvalidInputException", "MAX_LENGTH_EXCEEDED",
              "1 validation error detected: Value at 'accountName' failed to satisfy constraint: "
              "Member must have length less than or equal to 50");
    org_fails(f, "CreateAccount",
              json_pack("{s:s, s:s, s:s}", "Email", "a@example.com", "AccountName", "x", "RoleName",
                        "bad name"),
              "InvalidInputException", "INVALID_PATTERN", NULL);
    org_fails(f, "CreateAccount",
              json_pack("{s:s, s:s, s:s}", "Email", "a@example.com", "AccountName", "x",
                        "IamUserAccessToBilling", "MAYBE"),
              "InvalidInputException", "INVALID_ENUM", NULL);
    org_fails(f, "CreateAccount",
              json_pack("{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s}]}", "Email", "a@example.com",
                        "AccountName", "x", "Tags", "Key", "k", "Value", "1", "Key", "k", "Value",
                        "2"),
              "InvalidInputException", "DUPLICATE_TAG_KEY", NULL);
    org_fails(f, "CreateAccount",
              json_pack("{s:s, s:s, s:[{s:s}]}", "Email", "a@example.com", "AccountName", "x",
                        "Tags", "Key", "k"),
              "InvalidInputException", "INPUT_REQUIRED", NULL);
    org_fails(f, "DescribeCreateAccountStatus",
              json_pack("{s:s}", "CreateAccountRequestId", "car-0123456789abcdef"),
              "CreateAccountStatusNotFoundException", NULL,
              "You specified a create account request that doesn't exist.");
    org_fails(f, "DescribeCreateAccountStatus",
              json_pack("{s:s}", "CreateAccountRequestId", "car-X"), "InvalidInputException",
              "INVALID_PATTERN", NULL);
    /* Nothing was requested. */
    assert_int_equal(json_object_size(sim_section(f->sim, "create_account_requests")), 0);
}

static void test_create_latency_names(void **state)
{
    fx_t *f = *state;
    /* instant: done by the time the next call is served. */
    char *car =
        create(f, json_pack("{s:s, s:s}", "Email", "now@example.com", "AccountName", "Now"));
    json_t *st = create_status(f, car);
    assert_string_equal(jstr(st, "State"), "SUCCEEDED");
    json_decref(st);
    free(car);
    assert_int_equal(sim_latency_ms(f->sim, "organizations.account_create"), 0);
    /* aws-typical: a few seconds; the wildcard for API calls does not apply. */
    fx_t g = {0};
    sim_opts_t o = {.profile = "aws-typical", .random_seed = 3};
    ob_test_simfx_start(&g, &o, "us-east-1", NULL, NULL);
    for (int i = 0; i < 20; i++) {
        uint64_t ms = sim_latency_ms(g.sim, "organizations.account_create");
        assert_true(ms >= 4000 && ms <= 8000);
    }
    ob_test_simfx_stop(&g, 0);
}

static void test_admin_accounts_and_ous(void **state)
{
    fx_t *f = *state;
    json_t *j =
        ob_test_simfx_admin(f, "POST", "/_sim/accounts", "{\"Name\": \"joined-mid-run\"}", 200);
    assert_string_equal(jstr(j, "status"), "added");
    json_t *a = json_object_get(j, "account");
    assert_string_equal(jstr(a, "Id"), "200000000004");
    assert_string_equal(jstr(a, "Email"), "aws+200000000004@example.com");
    assert_string_equal(jstr(a, "State"), "ACTIVE");
    assert_string_equal(jstr(a, "JoinedMethod"), "CREATED");
    /* As DescribeAccount shows it. */
    json_t *d = org(f, "DescribeAccount", json_pack("{s:s}", "AccountId", "200000000004"));
    assert_true(json_equal(json_object_get(d, "Account"), a));
    json_decref(d);
    json_decref(j);
    assert_non_null(sim_get_role(f->sim, "200000000004", "OrganizationAccountAccessRole"));

    j = ob_test_simfx_admin(f, "POST", "/_sim/ous", "{\"Name\": \"Security\"}", 200);
    assert_string_equal(jstr(j, "status"), "added");
    json_t *ou = json_object_get(j, "ou");
    char ouid[64];
    snprintf(ouid, sizeof(ouid), "%s", jstr(ou, "Id"));
    assert_int_equal(strlen(ouid), strlen("ou-sim0-") + 8);
    assert_int_equal(strncmp(ouid, "ou-sim0-", 8), 0);
    assert_string_equal(jstr(ou, "ParentId"), ROOT);
    d = org(f, "DescribeOrganizationalUnit", json_pack("{s:s}", "OrganizationalUnitId", ouid));
    json_object_del(ou, "ParentId");
    assert_true(json_equal(json_object_get(d, "OrganizationalUnit"), ou));
    json_decref(d);
    json_decref(j);
    char body[512];
    snprintf(body, sizeof(body), "{\"Name\": \"Audit\", \"ParentId\": \"%s\"}", ouid);
    j = ob_test_simfx_admin(f, "POST", "/_sim/ous", body, 200);
    char inner[64];
    snprintf(inner, sizeof(inner), "%s", jstr(json_object_get(j, "ou"), "Id"));
    json_decref(j);
    expect_ids(f, "ListOrganizationalUnitsForParent", json_pack("{s:s}", "ParentId", ouid),
               "OrganizationalUnits", inner);

    snprintf(body, sizeof(body),
             "{\"Name\": \"invited\", \"Id\": \"444444444444\", \"Email\": \"inv@example.com\", "
             "\"ParentId\": \"%s\", \"State\": \"SUSPENDED\", \"JoinedMethod\": \"INVITED\"}",
             inner);
    j = ob_test_simfx_admin(f, "POST", "/_sim/accounts", body, 200);
    a = json_object_get(j, "account");
    assert_string_equal(jstr(a, "State"), "SUSPENDED");
    assert_string_equal(jstr(a, "Status"), "SUSPENDED");
    assert_string_equal(jstr(a, "JoinedMethod"), "INVITED");
    assert_string_equal(jstr(a, "Email"), "inv@example.com");
    json_decref(j);
    expect_ids(f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", inner), "Accounts",
               "444444444444");
    assert_non_null(sim_get_role(f->sim, "444444444444", "OrganizationAccountAccessRole"));

    /* Refused. */
    admin_fails(f, "/_sim/accounts", "{\"Id\": \"555555555555\"}", 400,
                "an account needs a Name of 1 to 128 characters");
    admin_fails(f, "/_sim/accounts", "{\"Name\": \"x\", \"Id\": \"55\"}", 400,
                "Id \"55\" is not 12 digits");
    admin_fails(f, "/_sim/accounts", "{\"Name\": \"x\", \"Email\": \"nope\"}", 400,
                "Email \"nope\" is not an email address of 6 to 64 characters");
    admin_fails(f, "/_sim/accounts", "{\"Name\": \"x\", \"ParentId\": \"ou-sim0-zzzzzzzz\"}", 400,
                "ParentId ou-sim0-zzzzzzzz is neither the root nor an OU");
    admin_fails(f, "/_sim/accounts", "{\"Name\": \"x\", \"State\": \"CLOSED\"}", 400,
                "State must be ACTIVE or SUSPENDED");
    admin_fails(f, "/_sim/accounts", "{\"Name\": \"x\", \"JoinedMethod\": \"MAGIC\"}", 400,
                "JoinedMethod must be CREATED or INVITED");
    admin_fails(f, "/_sim/accounts", "{\"Name\": \"x\", \"Nope\": \"1\"}", 400,
                "Nope: expected string members Name, Id, Email, ParentId, State, JoinedMethod");
    admin_fails(f, "/_sim/accounts", "[1]", 400, "body must be a JSON object");
    admin_fails(f, "/_sim/accounts", "{\"Name\": \"x\", \"Id\": \"444444444444\"}", 409,
                "account 444444444444 already exists");
    admin_fails(f, "/_sim/accounts", "{\"Name\": \"x\", \"Email\": \"INV@example.com\"}", 409,
                "an account with email INV@example.com already exists");
    admin_fails(f, "/_sim/ous", "{\"Name\": \"Security\"}", 409,
                "an OU named \"Security\" already exists under r-sim0");
    admin_fails(f, "/_sim/ous", "{\"Name\": \"y\", \"ParentId\": \"ou-sim0-zzzzzzzz\"}", 400,
                "ParentId ou-sim0-zzzzzzzz is neither the root nor an OU");
    admin_fails(f, "/_sim/ous", "{\"ParentId\": \"r-sim0\"}", 400,
                "an OU needs a Name of 1 to 128 characters (and may name its ParentId, a string)");
    /* The same name under another parent is fine. */
    snprintf(body, sizeof(body), "{\"Name\": \"Security\", \"ParentId\": \"%s\"}", ouid);
    json_decref(ob_test_simfx_admin(f, "POST", "/_sim/ous", body, 200));
    /* The state shows the tree. */
    j = ob_test_simfx_admin(f, "GET", "/_sim/state", NULL, 200);
    assert_non_null(json_object_get(json_object_get(j, "ous"), inner));
    assert_string_equal(
        jstr(json_object_get(json_object_get(j, "accounts"), "444444444444"), "ParentId"), inner);
    assert_string_equal(jstr(json_object_get(j, "org"), "RootId"), ROOT);
    json_decref(j);
}

static void test_seed_checks(void **state)
{
    fx_t *f = *state;
    char *before = json_dumps(sim_state(f->sim), JSON_SORT_KEYS | JSON_COMPACT);
    admin_fails(f, "/_sim/seed", "{\"ous\": [{\"Id\": \"ou-sim0-aaaaaaaa\"}]}", 400,
                "seed: ou 0 needs an Id ou-sim0-<8 to 32 of [a-z0-9]> and a Name of 1 to 128 "
                "characters");
    admin_fails(f, "/_sim/seed", "{\"ous\": [{\"Id\": \"ou-abcd-aaaaaaaa\", \"Name\": \"x\"}]}",
                400,
                "seed: ou 0 needs an Id ou-sim0-<8 to 32 of [a-z0-9]> and a Name of 1 to 128 "
                "characters");
    admin_fails(f, "/_sim/seed",
                "{\"ous\": [{\"Id\": \"ou-sim0-aaaaaaaa\", \"Name\": \"x\", \"ParentId\": "
                "\"ou-sim0-bbbbbbbb\"}]}",
                400,
                "seed: ou 0: ParentId ou-sim0-bbbbbbbb is neither the root nor an OU under it");
    /* A cycle reaches no root. */
    admin_fails(f, "/_sim/seed",
                "{\"ous\": [{\"Id\": \"ou-sim0-aaaaaaaa\", \"Name\": \"a\", \"ParentId\": "
                "\"ou-sim0-bbbbbbbb\"}, {\"Id\": \"ou-sim0-bbbbbbbb\", \"Name\": \"b\", "
                "\"ParentId\": \"ou-sim0-aaaaaaaa\"}]}",
                400,
                "seed: ou 0: ParentId ou-sim0-bbbbbbbb is neither the root nor an OU under it");
    admin_fails(
        f, "/_sim/seed",
        "{\"accounts\": [{\"Id\": \"300000000009\", \"ParentId\": \"ou-sim0-cccccccc\"}]}", 400,
        "seed: account 0: ParentId ou-sim0-cccccccc is neither the root nor an OU under it");
    admin_fails(f, "/_sim/seed", "{\"ous\": {}}", 400, "seed: \"ous\" must be an array");
    char *after = json_dumps(sim_state(f->sim), JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(after, before);
    free(before);
    free(after);
}

static void test_seed_file_state_and_reset(void **state)
{
    char *seed = write_seed(SEED);
    char state_file[] = "/tmp/test_sim_org_state_XXXXXX";
    int fd = mkstemp(state_file);
    close(fd);
    unlink(state_file);
    fx_t f = {0};
    start(&f, 2, "organizations.account_create=400ms", seed, state_file);
    expect_ids(&f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", OU_PLAT), "Accounts",
               SEEDED);
    json_decref(ob_test_simfx_admin(&f, "POST", "/_sim/ous", "{\"Name\": \"added\"}", 200));
    json_decref(org(&f, "MoveAccount",
                    json_pack("{s:s, s:s, s:s}", "AccountId", "200000000001", "SourceParentId",
                              ROOT, "DestinationParentId", OU_ENG)));
    char *car =
        create(&f, json_pack("{s:s, s:s}", "Email", "later@example.com", "AccountName", "Later"));
    /* Stop with the request in progress; a new simulator restores it all. */
    ob_test_simfx_stop(&f, 1);
    start(&f, 2, "organizations.account_create=400ms", seed, state_file);
    json_t *st = create_status(&f, car);
    assert_string_equal(jstr(st, "State"), "IN_PROGRESS");
    json_decref(st);
    st = wait_request(&f, car);
    assert_string_equal(jstr(st, "State"), "SUCCEEDED");
    assert_string_equal(jstr(st, "AccountId"), "200000000003");
    json_decref(st);
    expect_ids(&f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", OU_ENG), "Accounts",
               "200000000001");
    json_t *r = org(&f, "ListOrganizationalUnitsForParent", json_pack("{s:s}", "ParentId", ROOT));
    assert_int_equal(json_array_size(json_object_get(r, "OrganizationalUnits")), 2);
    json_decref(r);

    /* Reset: the seed's tree, nothing added since. */
    json_decref(ob_test_simfx_admin(&f, "POST", "/_sim/reset", NULL, 200));
    expect_ids(&f, "ListOrganizationalUnitsForParent", json_pack("{s:s}", "ParentId", ROOT),
               "OrganizationalUnits", OU_ENG);
    expect_ids(&f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", OU_ENG), "Accounts", "");
    expect_ids(&f, "ListAccountsForParent", json_pack("{s:s}", "ParentId", OU_PLAT), "Accounts",
               SEEDED);
    org_fails(&f, "DescribeCreateAccountStatus", json_pack("{s:s}", "CreateAccountRequestId", car),
              "CreateAccountStatusNotFoundException", NULL, NULL);
    ob_test_simfx_stop(&f, 0);
    free(car);
    unlink(state_file);
    unlink(seed);
    free(seed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tree, setup, ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_tree_errors, setup, ob_test_simfx_teardown),
        cmocka_unit_test(test_paging),
        cmocka_unit_test_setup_teardown(test_move_account, setup, ob_test_simfx_teardown),
        cmocka_unit_test(test_create_account),
        cmocka_unit_test_setup_teardown(test_create_account_errors, setup, ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_create_latency_names, setup, ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_admin_accounts_and_ous, setup, ob_test_simfx_teardown),
        cmocka_unit_test_setup_teardown(test_seed_checks, setup, ob_test_simfx_teardown),
        cmocka_unit_test(test_seed_file_state_and_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
