/*
 * The four stages of onboarding, as pure logic for ob_worker (see
 * lib/pipeline/ob_worker.h): each reads its input message and turns every AWS
 * reply into the next step. No I/O here, so every path is a unit test.
 */
#ifndef OB_STAGES_H
#define OB_STAGES_H

#include "ob_worker.h"

extern const ob_stage_ops_t ob_stage_bucket;  /* stage_bucket.c */
extern const ob_stage_ops_t ob_stage_cur;     /* stage_cur.c */
extern const ob_stage_ops_t ob_stage_iam;     /* stage_iam.c */
extern const ob_stage_ops_t ob_stage_connect; /* stage_connect.c */
extern const ob_stage_ops_t ob_stage_verify;  /* stage_verify.c: a side stage */

/* The end of a stage's hand-off m (request and results set, m->stage the
 * next stage): the trace entry of stage `done` (started_at, now; none for
 * OB_STAGE_INTAKE), m encoded (m is cleared) and *out the DONE step that
 * produces it to the next stage's topic. 0, or -1 with *out a FAIL step
 * saying why the codec refused it (stage_handoff.c). */
int ob_stage_hand_on(ob_stage_msg_t *m, ob_stage_t done, const char *started_at, ob_step_t *out);

/* The Billing Engine role template (JSON), kept in workers/templates/ and
 * compiled in (stage_iam.c). */
extern const char ob_iam_template[];
/* The iam stage's estimate of how long one worker's creates take
 * (stage_iam.c, "When to poll"), kept in the worker's stage context
 * (ob_stage_iam.ctx_new): the age at which a stack is first polled, -1 while
 * unknown. reset forgets every sample and sets the clock (NULL:
 * CLOCK_MONOTONIC). */
long long ob_stage_iam_first_poll_ms(const void *ctx);
void ob_stage_iam_timing_reset(void *ctx, uint64_t (*now_ms)(void));
/* Tests: the bucket stage's clock (NULL: the monotonic one), its snapshot of
 * the organization and its memory of a blind identity forgotten. */
void ob_stage_bucket_clock(void *ctx, uint64_t (*now_ms)(void));

/* The CUR delivery bucket policy for an account's bucket (malloc'd JSON):
 * billingreports.amazonaws.com and bcm-data-exports.amazonaws.com, each
 * limited by aws:SourceArn and aws:SourceAccount to the account. */
char *ob_cur_bucket_policy(const char *partition, const char *account_id, const char *bucket);
/* The ReportDefinition a request asks for (a new object), delivering to
 * bucket in bucket_region (stage_cur_def.c). */
json_t *ob_cur_definition(const ob_request_t *r, const char *bucket, const char *bucket_region);
/* How many members of an existing definition differ from the one wanted,
 * each noted in changes ("Member have -> want; ..."). Absent optional members
 * read as AWS's defaults; members the fleet does not manage are not compared. */
int ob_cur_differences(const json_t *have, const json_t *want, char *changes, size_t size);
/* "[A, B]" of a set, for messages. */
void ob_cur_set_text(char *out, size_t n, unsigned set, const char *(*name_of)(unsigned bit));
/* The partition of a role ("aws", "aws-cn", "aws-us-gov"). */
const char *ob_role_partition(const char *role_arn);
/* Where the role's partition keeps Cost and Usage Reports: us-east-1,
 * cn-northwest-1, or "" (AWS GovCloud has none). */
const char *ob_cur_region(const char *role_arn);

#endif
