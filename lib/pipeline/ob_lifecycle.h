/*
 * ob_lifecycle: which accounts of the organization the fleet onboards by
 * itself, and how: the rules the watcher (lists the organization) and the
 * intake (AWS's events about accounts joining, as EventBridge delivers them)
 * share, and the turning of such an event into an onboarding request.
 *
 * The rules (settings lifecycle.*): the region of the requests made, the
 * mode (new or existing; per OU where lifecycle.ou.modes names it), the role
 * to assume (lifecycle.role.name; for Control Tower's accounts
 * lifecycle.controltower.role.name, the role Control Tower's account factory
 * makes), and filters: accounts and OUs to include (empty: all) and to
 * exclude (exclusion wins). An OU is named by its id (ou-xxxx-yyyyyyyy) or
 * as `root` (an account directly under the organization's root); an account
 * is in an OU when the OU is its parent or any ancestor.
 *
 * The events (an EventBridge envelope: version, id, detail-type, source,
 * account, time, region, resources, detail), each naming one account that
 * has just joined:
 *   - aws.organizations, "AWS Service Event via CloudTrail", CreateAccountResult
 *     with serviceEventDetails.createAccountStatus.state SUCCEEDED (the
 *     account lands under the root);
 *   - aws.organizations, "AWS API Call via CloudTrail", AcceptHandshake or
 *     InviteAccountToOrganization whose responseElements.handshake is
 *     ACCEPTED (the invited account: the handshake's party of type ACCOUNT;
 *     under the root);
 *   - aws.controltower, "AWS Service Event via CloudTrail", CreateManagedAccount
 *     with serviceEventDetails.createManagedAccountStatus.state SUCCEEDED (in
 *     the OU it names).
 * Anything else in an envelope (another source or event, a failed call, a
 * state other than SUCCEEDED or ACCEPTED) is refused with code
 * unsupported_event and a reason naming the event; an account the rules
 * leave out, with code excluded and the rule.
 *
 * The request made from an event is an onboard.request/1: request_id
 * "eventbridge:" + the event's id (a redelivered event is the same request),
 * requester "eventbridge:SOURCE/EVENT", requested_at the event's time.
 *
 * Threading: pure functions; rules are read-only once parsed.
 */
#ifndef OB_LIFECYCLE_H
#define OB_LIFECYCLE_H

#include <jansson.h>
#include <stddef.h>

#include "ob_config.h"
#include "ob_err.h"
#include "ob_msg.h"

typedef struct ob_lifecycle_rules_s {
    char region[OB_REGION_LEN];
    ob_mode_t mode; /* the default */
    char *ou_modes; /* "OU=MODE,..." (malloc'd; "" none) */
    char role_name[65];
    char ct_role_name[65];
    char *include_ous, *exclude_ous, *include_accounts, *exclude_accounts; /* lists */
} ob_lifecycle_rules_t;

/* The rules of the settings; OB_ERR_CONFIG with errstr naming the setting
 * and why. Release with ob_lifecycle_rules_free. */
ob_err_t ob_lifecycle_rules_load(const ob_config_t *cfg, ob_lifecycle_rules_t *out, char *errstr,
                                 size_t errstr_size);
void ob_lifecycle_rules_free(ob_lifecycle_rules_t *r);

/* Whether the rules take an account whose parent and ancestors are `ous`
 * (comma-separated ids, nearest first, "root" for the root; NULL: not
 * known, only the account filters apply). 1 with *mode set; 0 with why
 * (the rule that leaves it out). */
int ob_lifecycle_decide(const ob_lifecycle_rules_t *r, const char *account, const char *ous,
                        ob_mode_t *mode, char *why, size_t why_size);

/* Whether a JSON object is an EventBridge envelope (detail-type, source and
 * detail, and no "schema"). */
int ob_event_is_envelope(const json_t *o);

/* The onboarding request an event asks for, normalized into *out (release
 * with ob_request_clear). OB_ERR_PARSE with err: code unsupported_event (not
 * an account joining; the message names the source, detail-type and event),
 * excluded (the rules leave the account out; field /detail), or a request
 * rule the event's values break (an account id that is not 12 digits). */
ob_err_t ob_event_request(const json_t *envelope, const ob_lifecycle_rules_t *rules,
                          ob_request_t *out, ob_msg_error_t *err);

#endif
