/*
 * ob_endpoint: which region, which URL, which signing region, and how to
 * address an S3 bucket.
 *
 * Region: AWS_REGION, then AWS_DEFAULT_REGION, then the profile's `region`.
 *
 * Endpoint, in the SDKs' order (botocore's ConfiguredEndpointProvider):
 *   1. AWS_ENDPOINT_URL_<SUFFIX> (SUFFIX from ob_awssvc, e.g. S3, STS,
 *      COST_AND_USAGE_REPORT_SERVICE),
 *   2. AWS_ENDPOINT_URL,
 *   3. the profile's `services = NAME` pointing at a config-file section
 *      "[services NAME]" with "<service id> =\n  endpoint_url = URL" (service
 *      id = the suffix in lowercase; naming a missing section is an error),
 *   4. the profile's `endpoint_url`;
 * all four are skipped when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS (or the
 * profile's ignore_configured_endpoint_urls) is "true". Otherwise the
 * standard endpoint https://PREFIX.REGION.amazonaws.com (amazonaws.com.cn in
 * cn-* regions); CUR and Organizations live in one region of each partition
 * (us-east-1 in the aws partition, from ob_awssvc's global_region) which is
 * then both the host's and the signing region, also behind an override. STS
 * is always regional. Regions of the isolated partitions (us-iso*, eu-isoe*,
 * eusc-*) are rejected rather than given a wrong host.
 *
 * An override must be http:// or https://, a host name, IPv4 or [IPv6]
 * address, an optional port and an optional path (kept as base_path); user
 * info, a query or a fragment is rejected. Overrides are local or proxy
 * endpoints, so S3 uses path-style addressing behind them. The profile's
 * "s3 =\n  addressing_style = path|virtual|auto" is honoured.
 *
 * Ownership: outputs are caller-owned structs and buffers; nothing is kept.
 * Thread safety: reentrant; reads the environment through ob_getenv_fn.
 */
#ifndef OB_ENDPOINT_H
#define OB_ENDPOINT_H

#include <stddef.h>

#include "ob_awsconfig.h"
#include "ob_awssvc.h"
#include "ob_buf.h"
#include "ob_err.h"

#define OB_REGION_MAX 64

typedef struct ob_endpoint_s {
    char url[512];       /* scheme://host[:port], no trailing slash */
    char host[300];      /* Host header value, with the port when not the scheme's default */
    char base_path[512]; /* path prefix from an override URL, no trailing slash; usually "" */
    char signing_region[OB_REGION_MAX];
    int path_style;  /* 1 for overrides (S3 then uses path style), or per addressing_style */
    int is_override; /* 1 when the URL came from the environment or the config file */
} ob_endpoint_t;

/* 1 if `region` is a plausible region name: lowercase letters, digits and
 * single hyphens, starting with a letter, at most 63 characters. */
int ob_aws_region_valid(const char *region);

/*
 * The default region (see above) into out. `cfg` may be NULL; `profile` NULL
 * means the config's selected profile. Errors: OB_ERR_NOT_FOUND (no region
 * anywhere), OB_ERR_CONFIG (the first region found is not a valid name),
 * OB_ERR_INVALID_ARG (out too small). out is "" on error.
 */
ob_err_t ob_aws_region_resolve(ob_getenv_fn getenv_fn, void *ctx, const ob_awsconfig_t *cfg,
                               const char *profile, char *out, size_t outsz);

/*
 * Resolve the endpoint of a service for a region (see above). `cfg` may be
 * NULL; `profile` NULL means the config's selected profile.
 * Errors: OB_ERR_CONFIG (invalid region, malformed override URL, missing
 * services section, service not offered in the region's partition, bad
 * addressing_style), OB_ERR_INVALID_ARG (unknown service). *out is zeroed
 * first.
 */
ob_err_t ob_endpoint_resolve(ob_aws_svc_t svc, const char *region, ob_getenv_fn getenv_fn,
                             void *ctx, const ob_awsconfig_t *cfg, const char *profile,
                             ob_endpoint_t *out, char *errstr, size_t errstr_size);

/*
 * Where an S3 bucket (and optionally a key) is addressed on an endpoint:
 * virtual-host style (host BUCKET.<ep host>, path "/KEY" or "/") for endpoints
 * without path_style and bucket names that are DNS labels (3-63 of a-z 0-9 -,
 * no dots); otherwise path style (host = the endpoint's, path "/BUCKET" or
 * "/BUCKET/KEY"). The endpoint's base_path is prepended. The key is
 * percent-encoded once (unreserved characters and '/' kept), the form that
 * ob_sigv4_sign(s3 = 1) signs as is. Both buffers are reset, then filled.
 * Errors: OB_ERR_INVALID_ARG (NULL argument, empty key, bucket name that is
 * empty, longer than 255 or outside A-Z a-z 0-9 . - _), OB_ERR_NOMEM.
 */
ob_err_t ob_s3_url(const ob_endpoint_t *ep, const char *bucket, const char *key_or_null,
                   ob_buf_t *path_out, ob_buf_t *host_out);

#endif
