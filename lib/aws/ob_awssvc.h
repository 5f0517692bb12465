/*
 * ob_awssvc: the AWS services the fleet speaks to, and their fixed facts
 * (signing name, endpoint prefix, protocol, API version, the suffix of the
 * AWS_ENDPOINT_URL_<SERVICE> variable). One table, read by endpoint
 * resolution, request building and retry classification.
 *
 * Thread safety: read-only data.
 */
#ifndef OB_AWSSVC_H
#define OB_AWSSVC_H

typedef enum ob_aws_svc_e {
    OB_SVC_S3 = 0,
    OB_SVC_STS,
    OB_SVC_CLOUDFORMATION,
    OB_SVC_CUR,
    OB_SVC_ORGANIZATIONS,
    OB_SVC__COUNT
} ob_aws_svc_t;

typedef enum ob_aws_proto_e {
    OB_PROTO_REST_XML = 0, /* S3 */
    OB_PROTO_QUERY,        /* STS, CloudFormation */
    OB_PROTO_JSON11        /* CUR, Organizations */
} ob_aws_proto_t;

typedef struct ob_aws_svc_info_s {
    const char *id;              /* our short name: "s3", "cur", ... */
    const char *signing_name;    /* SigV4 credential scope service */
    const char *endpoint_prefix; /* host prefix: "s3", "cur", "cloudformation" ... */
    const char *env_suffix;      /* AWS_ENDPOINT_URL_<env_suffix> */
    ob_aws_proto_t protocol;
    const char *api_version;   /* Query "Version=" value, or NULL */
    const char *json_target;   /* JSON 1.1 X-Amz-Target prefix, or NULL */
    const char *xml_namespace; /* reply namespace, or NULL */
    const char *global_region; /* service only lives in this region (signs with it), or NULL */
} ob_aws_svc_info_t;

/* Facts about one service; NULL for an out-of-range value. */
const ob_aws_svc_info_t *ob_aws_svc_info(ob_aws_svc_t svc);
/* Look a service up by id or signing name ("s3", "cur", "cloudformation"...);
 * returns OB_SVC__COUNT when unknown. */
ob_aws_svc_t ob_aws_svc_by_name(const char *name);

#endif
