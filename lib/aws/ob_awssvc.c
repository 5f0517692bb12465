/*
 * ob_awssvc: the service table. Values checked against the botocore service
 * models (metadata.signingName, endpointPrefix, protocol, apiVersion,
 * targetPrefix) and the SDKs' endpoint-variable names.
 */
#include "ob_awssvc.h"

#include <string.h>

static const ob_aws_svc_info_t ob_svc_table[OB_SVC__COUNT] = {
    [OB_SVC_S3] = {"s3", "s3", "s3", "S3", OB_PROTO_REST_XML, "2006-03-01", NULL,
                   "http://s3.amazonaws.com/doc/2006-03-01/", NULL},
    [OB_SVC_STS] = {"sts", "sts", "sts", "STS", OB_PROTO_QUERY, "2011-06-15", NULL,
                    "https://sts.amazonaws.com/doc/2011-06-15/", NULL},
    [OB_SVC_CLOUDFORMATION] = {"cloudformation", "cloudformation", "cloudformation",
                               "CLOUDFORMATION", OB_PROTO_QUERY, "2010-05-15", NULL,
                               "http://cloudformation.amazonaws.com/doc/2010-05-15/", NULL},
    [OB_SVC_CUR] = {"cur", "cur", "cur", "COST_AND_USAGE_REPORT_SERVICE", OB_PROTO_JSON11,
                    "2017-01-06", "AWSOrigamiServiceGatewayService", NULL, "us-east-1"},
    [OB_SVC_ORGANIZATIONS] = {"organizations", "organizations", "organizations", "ORGANIZATIONS",
                              OB_PROTO_JSON11, "2016-11-28", "AWSOrganizationsV20161128", NULL,
                              "us-east-1"},
};

const ob_aws_svc_info_t *ob_aws_svc_info(ob_aws_svc_t svc)
{
    if ((int)svc < 0 || svc >= OB_SVC__COUNT)
        return NULL;
    return &ob_svc_table[svc];
}

ob_aws_svc_t ob_aws_svc_by_name(const char *name)
{
    for (int i = 0; i < OB_SVC__COUNT; i++)
        if (strcmp(ob_svc_table[i].id, name) == 0 ||
            strcmp(ob_svc_table[i].signing_name, name) == 0)
            return (ob_aws_svc_t)i;
    return OB_SVC__COUNT;
}
