/*
 * ob_credsrc: the kinds of credential sources, the default chain, and the
 * assume-role cache for target accounts. Each fetches through the AWS client
 * (STS) or the HTTP client (container, IMDS) and is an ob_credsrc_t of the
 * core (ob_creds.h), which keeps, refreshes and hands out what it fetched.
 *
 * Sources, in the order of the SDKs' default chain (ob_credsrc_chain):
 *  1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
 *  2. the profile (AWS_PROFILE or "default") with role_arn: AssumeRole with
 *     credentials from source_profile (recursively) or credential_source
 *     (Environment, Ec2InstanceMetadata, EcsContainer), external_id,
 *     role_session_name, duration_seconds; or with web_identity_token_file;
 *  3. web identity from the environment (EKS IRSA): AWS_WEB_IDENTITY_TOKEN_FILE,
 *     AWS_ROLE_ARN, AWS_ROLE_SESSION_NAME -> AssumeRoleWithWebIdentity;
 *  4. static keys of the profile in the shared credentials or config file;
 *  5. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (ECS) or
 *     AWS_CONTAINER_CREDENTIALS_FULL_URI (loopback, ECS/EKS link-local hosts,
 *     or HTTPS) with AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE);
 *  6. EC2 instance metadata, IMDSv2 only (token PUT, then the role's
 *     credentials), unless AWS_EC2_METADATA_DISABLED=true;
 *     AWS_EC2_METADATA_SERVICE_ENDPOINT overrides the address.
 *
 * Target accounts are reached with ob_assume_cache_t: one AssumeRole source
 * per (role ARN, ExternalId), built on the fleet's own credentials, kept
 * until a few minutes before expiry and refreshed in the background, bounded
 * in size (least recently used sources are dropped first).
 *
 * Secrets are never logged or put in error messages (see ob_creds.h).
 * Threading: loop thread only.
 */
#ifndef OB_CREDSRC_H
#define OB_CREDSRC_H

#include <stddef.h>

#include "ob_aws.h"
#include "ob_creds.h"

/* Fixed credentials (never refreshed). */
ob_credsrc_t *ob_credsrc_static(ob_aws_t *aws, const char *akid, const char *secret,
                                const char *token, const char *describe);
/* AssumeRole with `base`'s credentials (a reference to base is taken).
 * external_id and session_name may be NULL; duration_s 0 means 3600. */
ob_credsrc_t *ob_credsrc_assume_role(ob_aws_t *aws, ob_credsrc_t *base, const char *role_arn,
                                     const char *external_id, const char *session_name,
                                     int duration_s, const char *region);
/* AssumeRoleWithWebIdentity; the token file is read at every refresh. */
ob_credsrc_t *ob_credsrc_web_identity(ob_aws_t *aws, const char *token_file, const char *role_arn,
                                      const char *session_name, const char *region);
/* Container credentials from the environment; NULL (with errstr) when not
 * configured or the URI is not allowed. */
ob_credsrc_t *ob_credsrc_container(ob_aws_t *aws, char *errstr, size_t errstr_size);
/* IMDSv2 instance-role credentials. */
ob_credsrc_t *ob_credsrc_imds(ob_aws_t *aws);

/* The default chain (see above), resolved from the client's environment and
 * shared config. NULL with errstr when the configuration is wrong (unknown
 * AWS_PROFILE, a role_arn without a source, a source_profile loop...). */
ob_credsrc_t *ob_credsrc_chain(ob_aws_t *aws, char *errstr, size_t errstr_size);

typedef struct ob_assume_cache_s ob_assume_cache_t;

typedef struct ob_assume_cache_opts_s {
    size_t max_entries;       /* 0: 10000 */
    int duration_s;           /* 0: 3600 */
    const char *session_name; /* 0: "onboard" */
    const char *region;       /* STS region (NULL: the client's default) */
} ob_assume_cache_opts_t;

ob_assume_cache_t *ob_assume_cache_new(ob_aws_t *aws, ob_credsrc_t *base,
                                       const ob_assume_cache_opts_t *opts);
/* The source for this role and ExternalId (created on first use). The pointer
 * is borrowed: take a reference to keep it past the current callback. */
ob_credsrc_t *ob_assume_cache_get(ob_assume_cache_t *c, const char *role_arn,
                                  const char *external_id);
size_t ob_assume_cache_size(const ob_assume_cache_t *c);
void ob_assume_cache_free(ob_assume_cache_t *c);

#endif
