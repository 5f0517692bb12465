/*
 * ob_awsproto: building AWS requests and reading AWS replies for the three
 * wire protocols the fleet speaks (see docs/AWS-WIRE.md):
 *
 *   Query     (STS, CloudFormation): POST / with a form body
 *             Action=..&Version=..&Key=Value, XML replies.
 *   JSON 1.1  (CUR, Organizations):  POST / with a JSON body and
 *             X-Amz-Target: <target prefix>.<Operation>, JSON replies.
 *   REST-XML  (S3):                  method + path + query, XML or raw bodies.
 *
 * A request is described by ob_aws_req_t; the HTTP/SigV4 layer adds Host,
 * X-Amz-Date, X-Amz-Security-Token, x-amz-content-sha256 and Authorization and
 * sends it. Builders here only add protocol headers (Content-Type,
 * X-Amz-Target, Content-MD5).
 *
 * Error replies of every protocol are normalised into ob_aws_error_t by
 * ob_aws_parse_error(), which never fails to fill it: unparseable bodies (an
 * HTML page from a proxy, a truncated reply) still yield a code derived from
 * the HTTP status and a message saying what was received.
 *
 * Ownership: an ob_aws_req_t owns its path, query, headers and body buffers;
 * ob_aws_req_free() releases them. `op` is NOT copied: pass a string that
 * outlives the request (a literal). The *_init functions overwrite the whole
 * struct without freeing it, so pass a zero-initialised or freed request.
 * Documents and JSON values returned by the reply helpers belong to the
 * caller (ob_xml_free(), json_decref()).
 *
 * Thread safety: all functions are reentrant; a request belongs to one thread.
 */
#ifndef OB_AWSPROTO_H
#define OB_AWSPROTO_H

#include <stddef.h>

#include <jansson.h>

#include "ob_awssvc.h"
#include "ob_buf.h"
#include "ob_err.h"
#include "ob_xml.h"

typedef struct ob_aws_req_s {
    ob_aws_svc_t svc;
    const char *op;    /* operation name, e.g. "CreateStack" (static string, not owned) */
    char method[8];    /* "GET", "PUT", "POST", "HEAD", "DELETE" */
    ob_buf_t path;     /* wire path, percent-encoded once, starts with "/" */
    ob_buf_t query;    /* wire query without '?', may be empty */
    ob_hdrs_t headers; /* Content-Type, X-Amz-Target, Content-MD5...; no Host, no signing */
    ob_buf_t body;
} ob_aws_req_t;

/* Free the members and zero the struct; a zero-initialised struct is valid. */
void ob_aws_req_free(ob_aws_req_t *r);

/* Append s (len bytes) percent-encoded the AWS way (RFC 3986 unreserved
 * A-Za-z0-9-_.~ kept, every other byte %XX with uppercase hex, space is
 * %20); with keep_slash, '/' is kept too (paths). */
ob_err_t ob_aws_uri_encode(ob_buf_t *out, const char *s, size_t len, int keep_slash);

/* ---- Query protocol (STS, CloudFormation) ----------------------------- */

/* POST /, Content-Type application/x-www-form-urlencoded; charset=utf-8,
 * body "Action=<action>&Version=<service api version>". svc must be a Query
 * service; action must be alphanumeric. */
ob_err_t ob_query_init(ob_aws_req_t *req, ob_aws_svc_t svc, const char *action, char *errstr,
                       size_t errstr_size);
/* Append "&key=value", both form-encoded (see ob_aws_uri_encode). Keys follow
 * the Query serialisation of botocore: "StackName", lists as
 * "Capabilities.member.1", structure lists as "Parameters.member.1.ParameterKey",
 * maps as "Tags.member.1.Key"/"Tags.member.1.Value". Indexes start at 1. */
ob_err_t ob_query_add(ob_aws_req_t *req, const char *key, const char *value, char *errstr,
                      size_t errstr_size);
/* ob_query_add with key "<list>.<index>" (field NULL) or
 * "<list>.<index>.<field>": ob_query_add_member(r, "Parameters.member", 1,
 * "ParameterKey", "Env"). index must be >= 1. */
ob_err_t ob_query_add_member(ob_aws_req_t *req, const char *list, int index, const char *field,
                             const char *value, char *errstr, size_t errstr_size);
/* Parse a successful Query reply <ActionResponse><ActionResult>...: checks the
 * root element is <action>Response and points *result at <action>Result
 * (NULL for actions without output, e.g. DeleteStack). *doc owns the tree.
 * OB_ERR_PARSE when the body is not XML or not this action's reply. */
ob_err_t ob_query_parse_result(const char *body, size_t len, const char *action, ob_xml_doc_t **doc,
                               const ob_xml_node_t **result, char *errstr, size_t errstr_size);
/* ResponseMetadata/RequestId of a Query reply document, or NULL. */
const char *ob_query_request_id(const ob_xml_doc_t *doc);

/* ---- JSON 1.1 (CUR, Organizations) ------------------------------------ */

/* POST /, X-Amz-Target "<json_target>.<op>", Content-Type
 * application/x-amz-json-1.1, body json_body ("{}" when NULL). svc must be a
 * JSON 1.1 service; json_body must be a JSON object (checked). */
ob_err_t ob_json11_init(ob_aws_req_t *req, ob_aws_svc_t svc, const char *op, const char *json_body,
                        char *errstr, size_t errstr_size);
/* Same with a jansson object, serialised compactly (the reference is not stolen). */
ob_err_t ob_json11_init_obj(ob_aws_req_t *req, ob_aws_svc_t svc, const char *op, const json_t *body,
                            char *errstr, size_t errstr_size);
/* Parse a JSON reply body into a new object reference (*out, json_decref it).
 * An empty or all-whitespace body is an empty object, as botocore treats it.
 * OB_ERR_PARSE ("line L col C: ...") when not JSON or not an object;
 * OB_ERR_TOO_LARGE above 16 MiB. */
ob_err_t ob_aws_json_parse(const char *body, size_t len, json_t **out, char *errstr,
                           size_t errstr_size);

/* ---- REST-XML (S3) ---------------------------------------------------- */

/* S3 request: method one of GET PUT POST HEAD DELETE; path is the decoded
 * path starting with "/" (e.g. "/my-bucket" for path style, "/" for virtual
 * host style), encoded here once keeping '/'; query is the wire query
 * (already encoded, e.g. "policy" or "list-type=2&prefix=a%2Fb"), NULL or ""
 * for none, and may only contain A-Za-z0-9 - _ . ~ % = &. op is for logs. */
ob_err_t ob_s3_init(ob_aws_req_t *req, const char *op, const char *method, const char *path,
                    const char *query, char *errstr, size_t errstr_size);
/* Append "key=value" (or just "key" when value is NULL) to the query, both
 * encoded, with '&' between parameters. */
ob_err_t ob_s3_add_query(ob_aws_req_t *req, const char *key, const char *value, char *errstr,
                         size_t errstr_size);
/* Set the body (copied), Content-Type (unless NULL) and, when content_md5 is
 * non-zero, Content-MD5 = base64(MD5(body)), which PutBucketPolicy,
 * PutPublicAccessBlock, PutBucketEncryption and PutBucketOwnershipControls
 * require. Replaces any previous body and those headers. */
ob_err_t ob_s3_set_body(ob_aws_req_t *req, const void *body, size_t len, const char *content_type,
                        int content_md5, char *errstr, size_t errstr_size);

#define OB_S3_XMLNS "http://s3.amazonaws.com/doc/2006-03-01/"

/* Request bodies of the bucket stage, byte-for-byte what botocore sends
 * (no XML declaration, S3 namespace on the root). Each appends to out. */

/* CreateBucket: <CreateBucketConfiguration><LocationConstraint>region</...>.
 * For us-east-1 S3 wants no body at all: appends nothing and returns OB_OK
 * (send the request without a body). region must look like a region name. */
ob_err_t ob_s3_xml_create_bucket_configuration(ob_buf_t *out, const char *region, char *errstr,
                                               size_t errstr_size);
/* PutPublicAccessBlock with all four settings true. */
ob_err_t ob_s3_xml_public_access_block(ob_buf_t *out, char *errstr, size_t errstr_size);
/* PutBucketEncryption: one rule, SSEAlgorithm AES256 (SSE-S3). */
ob_err_t ob_s3_xml_sse_aes256(ob_buf_t *out, char *errstr, size_t errstr_size);
/* PutBucketOwnershipControls: ObjectOwnership BucketOwnerEnforced (ACLs off). */
ob_err_t ob_s3_xml_ownership_enforced(ob_buf_t *out, char *errstr, size_t errstr_size);

/* ---- Error replies ------------------------------------------------------ */

typedef struct ob_aws_error_s {
    long http_status;
    char code[128];       /* "ValidationError", "NoSuchBucketPolicy", "NotFound", "HTTP503" */
    char message[1024];   /* AWS's message (control characters replaced, UTF-8-safe cut) */
    char request_id[128]; /* from x-amzn-RequestId / x-amz-request-id, else the body */
    char type[16];        /* "Sender"/"Receiver" (Query), else "client"/"server" from status */
} ob_aws_error_t;

/* Normalise an error reply. body may be NULL when len is 0; resp_headers may
 * be NULL. Recognised forms:
 *   JSON 1.1  {"__type":"prefix#Code:suffix","message"|"Message":..}, the
 *             x-amzn-query-error "Code;Sender" and x-amzn-ErrorType headers;
 *   Query     <ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>
 *             (also the EC2 form <Response><Errors><Error>..);
 *   S3        <Error><Code/><Message/><RequestId/></Error>;
 *   no body   (HEAD, some 5xx): code from the status (301 PermanentRedirect,
 *             307 TemporaryRedirect, 400 BadRequest, 403 Forbidden,
 *             404 NotFound, 405 MethodNotAllowed, 409 Conflict,
 *             412 PreconditionFailed, 500 InternalError, 503 ServiceUnavailable...;
 *             other statuses "HTTP<status>").
 * The format is recognised from the body whatever svc says (svc only picks
 * which header names to trust first), so local emulators work too.
 * *out is always completely filled. Returns OB_OK when the reply was a
 * recognisable AWS error (or had no body); OB_ERR_PARSE when the body was
 * something else (HTML, garbage, truncated): then code is "HTTP<status>" and
 * message says what was received; OB_ERR_INVALID_ARG only when out is NULL. */
ob_err_t ob_aws_parse_error(ob_aws_svc_t svc, long status, const ob_hdrs_t *resp_headers,
                            const char *body, size_t len, ob_aws_error_t *out);

#endif
