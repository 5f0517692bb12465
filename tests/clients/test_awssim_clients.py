#!/usr/bin/python3
"""Real AWS clients against awssim, and the same checks against moto.

Drives awssim (sim/) with Debian's boto3/botocore and awscli, through every
operation it serves and their error cases, and asserts that the replies
parse in those clients with the codes AWS documents. The S3, STS and
CloudFormation checks also run against moto (an independent implementation);
differences are printed as a table, never asserted, except where moto agrees
with AWS's documentation and awssim does not (an awssim bug).

Every check is a named observation: the outcome of one call, normalised to
"ok" (with a small summary value) or an error (code, HTTP status, message).
EXPECT maps each name to what AWS documents, with the source.

Run (see tests/clients/README.md):
  OB_AWSSIM=build/sim/awssim /usr/bin/python3 tests/clients/test_awssim_clients.py --group boto3
  groups: boto3, awscli, moto, all (default). Exit 77 when a client or moto
  is missing, unless OB_TEST_REQUIRE_SERVICES=1.

Environment: OB_AWSSIM (awssim binary), OB_TEST_MOTO_URL (a running moto;
else moto_server from $HOME/.cache/onboard/venv is started), OB_TEST_AWS_CLI
(default /usr/bin/aws), OB_CLIENTS_REPORT (write all observations as JSON).
"""
import base64
import collections
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import uuid
import warnings

try:
    import boto3
    import botocore
    from botocore import UNSIGNED
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials
    from botocore.exceptions import ClientError, WaiterError

    HAVE_BOTO3 = True
except ImportError:  # pragma: no cover - reported as a skip
    HAVE_BOTO3 = False

# Never read the developer's own AWS configuration.
for _v in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
           "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION"):
    os.environ.pop(_v, None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

AWS_CLI = os.environ.get("OB_TEST_AWS_CLI", "/usr/bin/aws")
MOTO_SERVER = os.environ.get(
    "OB_TEST_MOTO_SERVER", os.path.expanduser("~/.cache/onboard/venv/bin/moto_server"))
AWSSIM = os.environ.get("OB_AWSSIM", "")
REQUIRE = os.environ.get("OB_TEST_REQUIRE_SERVICES") == "1"

MGMT = "111111111111"
MGMT_AKID = "AKIAIOSFODNN7EXAMPLE"
MGMT_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MEMBERS = 60
SUSPENDED = {"%012d" % (200000000000 + i) for i in range(1, MEMBERS + 1) if i % 50 == 0}
ORG_ROLE = "OrganizationAccountAccessRole"


def member(i):
    return "%012d" % (200000000000 + i)


# ---------------------------------------------------------------------------
# What AWS documents for each observation. Sources:
#   S3ERR  https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html (error code list)
#   S3API  https://docs.aws.amazon.com/AmazonS3/latest/API/API_<Op>.html
#   S3BN   https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
#   S3DEF  https://docs.aws.amazon.com/AmazonS3/latest/userguide/create-bucket-faq.html
#          (April 2023 defaults: Block Public Access on, BucketOwnerEnforced) and
#          .../userguide/default-bucket-encryption.html (SSE-S3 on every bucket since 2023-01-05)
#   STSAR  https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
#   STSWI  https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html
#   STSCE  https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html
#   IAMRC  https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_terms-and-concepts.html#iam-term-role-chaining
#   CFNCS  https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStack.html
#   CFNUS  https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_UpdateStack.html
#   CFNDS  https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html
#   CFNDL  https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DeleteStack.html
#   CFNTR  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/troubleshooting.html
#   CURAPI https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_cur_PutReportDefinition.html
#   CURUG  https://docs.aws.amazon.com/cur/latest/userguide/cur-s3.html (bucket policy)
#   ORG    https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListAccounts.html
#   ORGAPI https://docs.aws.amazon.com/organizations/latest/APIReference/API_<Op>.html
#   CFNDR  https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_<Op>.html for
#          DetectStackDrift, DescribeStackDriftDetectionStatus, DescribeStackResourceDrifts
#   SIM    sim/README.md (awssim's admin API: what a POST /_sim/drift changes)
#   MODEL  botocore/data/<service>/<version>/service-2.json (Debian python3-botocore 1.29)
# ---------------------------------------------------------------------------


class Exp:
    """An expected outcome: ok (optionally a summary value and status) or an error."""

    def __init__(self, kind, code=None, status=None, value=None, msg=None, doc=""):
        self.kind, self.code, self.status, self.value, self.msg, self.doc = (
            kind, code, status, value, msg, doc)

    def matches(self, o):
        if self.kind == "any":  # informational: printed, never asserted
            return o is not None
        if o is None or o["kind"] != self.kind:
            return False
        if self.status is not None and o.get("status") != self.status:
            return False
        if self.kind == "ok":
            return self.value is None or o.get("value") == self.value
        if self.code is not None and o.get("code") != self.code:
            return False
        return self.msg is None or self.msg in (o.get("message") or "")

    def __str__(self):
        if self.kind == "any":
            return "(not asserted)"
        if self.kind == "ok":
            s = "ok"
            if self.status is not None:
                s += " %d" % self.status
            if self.value is not None:
                s += " %s" % (self.value,)
            return s
        s = "%s %s" % (self.code or "an error", self.status if self.status is not None else "")
        if self.msg:
            s += ' "%s"' % self.msg
        return s.strip()


def OK(value=None, status=None, doc=""):
    return Exp("ok", value=value, status=status, doc=doc)


def ERR(code, status=None, msg=None, doc=""):
    return Exp("error", code=code, status=status, msg=msg, doc=doc)


def INFO(doc=""):
    return Exp("any", doc=doc)


def essence(o):
    """What a comparison looks at: kind, code, status, value (not the wording)."""
    if o is None:
        return None
    if o["kind"] == "exception":
        return ("exception",)
    return (o["kind"], o.get("code"), o.get("status"), json.dumps(o.get("value"), default=str))


def fmt(o):
    if o is None:
        return "(not run)"
    if o["kind"] == "exception" and "invalid XML received" in (o.get("message") or ""):
        return "unparseable reply (an HTML error page)"
    return _fmt(o).replace("\n", " ").replace("|", "/")


def _fmt(o):
    if o["kind"] == "ok":
        s = "ok"
        if o.get("status") is not None:
            s += " %s" % o["status"]
        if o.get("value") is not None:
            s += " %s" % (o["value"],)
        return s
    if o["kind"] == "error":
        m = (o.get("message") or "").replace("\n", " ")
        return "%s %s%s" % (o.get("code"), o.get("status"), (' "%s"' % m[:90]) if m else "")
    return "%s: %s" % (o["kind"], (o.get("message") or "")[:120])


EXPECT = collections.OrderedDict()


def expect(key, exp):
    assert key not in EXPECT, key
    EXPECT[key] = exp


# ---- S3 ----
expect("s3.CreateBucket us-east-1, no configuration", OK(status=200, doc="S3API CreateBucket"))
expect("s3.CreateBucket eu-west-1, LocationConstraint eu-west-1",
       OK(status=200, doc="S3API CreateBucket"))
expect("s3.CreateBucket us-east-1 endpoint, LocationConstraint us-east-1",
       ERR("InvalidLocationConstraint", 400, doc="S3ERR InvalidLocationConstraint; "
           "S3API CreateBucket: us-east-1 is the default, no constraint"))
expect("s3.CreateBucket us-east-1 endpoint, LocationConstraint moon-1",
       ERR("InvalidLocationConstraint", 400, doc="S3ERR InvalidLocationConstraint"))
expect("s3.CreateBucket eu-west-1 endpoint, no configuration",
       ERR("IllegalLocationConstraintException", 400,
           doc="S3ERR IllegalLocationConstraintException (constraint must match the "
               "regional endpoint)"))
expect("s3.CreateBucket eu-west-1 endpoint, LocationConstraint ap-south-1",
       ERR("IllegalLocationConstraintException", 400, doc="S3ERR IllegalLocationConstraintException"))
for _n in ("Bad_Name", "ab", "a..b-bucket", "192.168.5.4", "xn--bucket", "my-bucket-s3alias",
           "-leading-dash"):
    expect("s3.CreateBucket InvalidBucketName %r" % _n,
           ERR("InvalidBucketName", 400, doc="S3BN naming rules; S3ERR InvalidBucketName"))
expect("s3.CreateBucket again, own bucket in us-east-1",
       OK(status=200, doc="MODEL/S3ERR BucketAlreadyOwnedByYou: 'except in the North Virginia "
          "Region ... returns 200 OK'"))
expect("s3.CreateBucket again, own bucket in eu-west-1",
       ERR("BucketAlreadyOwnedByYou", 409, doc="S3ERR BucketAlreadyOwnedByYou"))
expect("s3.CreateBucket as member (assumed role)", OK(status=200, doc="S3API CreateBucket"))
expect("s3.CreateBucket name owned by another account",
       ERR("BucketAlreadyExists", 409, doc="S3ERR BucketAlreadyExists"))
expect("s3.HeadBucket own us-east-1 bucket: x-amz-bucket-region",
       OK(status=200, value="us-east-1", doc="S3API HeadBucket (x-amz-bucket-region)"))
expect("s3.HeadBucket own eu-west-1 bucket: x-amz-bucket-region",
       OK(status=200, value="eu-west-1", doc="S3API HeadBucket"))
expect("s3.HeadBucket missing bucket", ERR("404", 404, doc="S3API HeadBucket: 404 Not Found, no body"))
expect("s3.HeadBucket bucket of another account",
       ERR("403", 403, doc="S3API HeadBucket: 403 Forbidden"))
expect("s3.GetBucketLocation us-east-1 bucket", OK(value=None, doc="S3API GetBucketLocation: "
       "null LocationConstraint for us-east-1"))
expect("s3.GetBucketLocation eu-west-1 bucket", OK(value="eu-west-1", doc="S3API GetBucketLocation"))
expect("s3.GetBucketLocation missing bucket", ERR("NoSuchBucket", 404, doc="S3ERR NoSuchBucket"))
expect("s3.ListBuckets (management): own buckets listed, member's not",
       OK(value=[True, True, False], doc="S3API ListBuckets: buckets owned by the sender"))
expect("s3.ListBuckets (member): own bucket only",
       OK(value=[True, False], doc="S3API ListBuckets"))
expect("s3.GetBucketPolicy before any policy",
       ERR("NoSuchBucketPolicy", 404, doc="S3ERR NoSuchBucketPolicy"))
expect("s3.PutBucketPolicy valid policy", OK(doc="S3API PutBucketPolicy (204 No Content in "
       "its example)"))
expect("s3.GetBucketPolicy returns the policy", OK(value=True, doc="S3API GetBucketPolicy"))
expect("s3.PutBucketPolicy not JSON", ERR("MalformedPolicy", 400, doc="S3ERR MalformedPolicy"))
expect("s3.PutBucketPolicy JSON without Statement",
       ERR("MalformedPolicy", 400, doc="S3ERR MalformedPolicy ('Missing required field "
           "Statement')"))
expect("s3.PutBucketPolicy missing bucket", ERR("NoSuchBucket", 404, doc="S3ERR NoSuchBucket"))
expect("s3.DeleteBucketPolicy", OK(status=204, doc="S3API DeleteBucketPolicy: 204"))
expect("s3.DeleteBucketPolicy when there is none", OK(status=204, doc="S3API DeleteBucketPolicy "
       "(idempotent: 204)"))
expect("s3.GetBucketPolicy bucket of another account",
       ERR("AccessDenied", 403, doc="S3ERR AccessDenied (no cross-account permission)"))
expect("s3.PutBucketPolicy bucket of another account",
       ERR("AccessDenied", 403, doc="S3ERR AccessDenied"))
expect("s3.GetBucketPolicy after delete",
       ERR("NoSuchBucketPolicy", 404, doc="S3ERR NoSuchBucketPolicy"))
expect("s3.GetPublicAccessBlock on a new bucket",
       OK(value=[True, True, True, True], doc="S3DEF: since April 2023 new buckets have all four "
          "Block Public Access settings on"))
expect("s3.PutPublicAccessBlock", OK(status=200, doc="S3API PutPublicAccessBlock"))
expect("s3.GetPublicAccessBlock after put",
       OK(value=[True, False, True, False], doc="S3API GetPublicAccessBlock"))
expect("s3.GetBucketEncryption on a new bucket",
       OK(value="AES256", doc="S3DEF default-bucket-encryption: SSE-S3 is the default for every "
          "bucket since 2023-01-05"))
expect("s3.PutBucketEncryption AES256", OK(status=200, doc="S3API PutBucketEncryption"))
expect("s3.GetBucketEncryption after put", OK(value="AES256", doc="S3API GetBucketEncryption"))
expect("s3.GetBucketOwnershipControls on a new bucket",
       OK(value="BucketOwnerEnforced", doc="S3DEF: since April 2023 new buckets default to "
          "BucketOwnerEnforced"))
expect("s3.PutBucketOwnershipControls BucketOwnerEnforced",
       OK(status=200, doc="S3API PutBucketOwnershipControls"))
expect("s3.GetBucketOwnershipControls after put",
       OK(value="BucketOwnerEnforced", doc="S3API GetBucketOwnershipControls"))
expect("s3.PutBucketPolicy raw, no Content-MD5",
       ERR("InvalidRequest", 400, doc="S3API PutBucketPolicy: Content-MD5 required "
           "(MODEL httpChecksum requestChecksumRequired); S3ERR InvalidRequest "
           "'Missing required header for this request: Content-MD5'"))
expect("s3.PutPublicAccessBlock raw, no Content-MD5",
       ERR("InvalidRequest", 400, doc="MODEL requestChecksumRequired; S3ERR InvalidRequest"))
expect("s3.PutBucketPolicy raw, Content-MD5 of other bytes",
       ERR("BadDigest", 400, doc="S3ERR BadDigest"))
expect("s3.PutBucketPolicy raw, Content-MD5 not base64 MD5",
       ERR("InvalidDigest", 400, doc="S3ERR InvalidDigest"))
expect("s3.PutBucketPolicy raw, with Content-MD5", OK(doc="S3API PutBucketPolicy"))
expect("s3.GetBucketLocation virtual-host (Host: BUCKET.s3.us-east-1.amazonaws.com)",
       OK(status=200, value="eu-west-1", doc="S3API GetBucketLocation; virtual-hosted style "
          "https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html"))
expect("s3.GetBucketPolicy virtual-host", OK(status=200, value=True, doc="S3API GetBucketPolicy"))
expect("s3.HeadBucket virtual-host", OK(status=200, value="us-east-1", doc="S3API HeadBucket"))
expect("s3.CreateBucket virtual-host, eu-west-1 (PUT / with a LocationConstraint body)",
       OK(status=200, doc="S3API CreateBucket; VirtualHosting"))
expect("s3.GetBucketLocation of the bucket created virtual-host", OK(value="eu-west-1",
       doc="S3API GetBucketLocation"))
expect("s3.PutBucketPolicy raw, x-amz-content-sha256 not the body's",
       ERR("XAmzContentSHA256Mismatch", 400, doc="S3ERR XAmzContentSHA256Mismatch"))
expect("s3.PutBucketPolicy raw, no x-amz-content-sha256",
       ERR("InvalidRequest", 400, doc="https://docs.aws.amazon.com/AmazonS3/latest/API/"
           "sig-v4-header-based-auth.html: x-amz-content-sha256 is required for all SigV4 "
           "requests"))
expect("s3.ListBuckets raw, signed 20 minutes ago",
       ERR("RequestTimeTooSkewed", 403, doc="S3ERR RequestTimeTooSkewed (15 minutes)"))
expect("s3.GetBucketLocation presigned URL (query-string SigV4)",
       INFO(doc="https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html; "
            "not in issue 3's list"))
expect("sts.GetCallerIdentity raw, signed 20 minutes ago",
       ERR(None, doc="STSCE RequestExpired: 'more than 15 minutes after the date stamp' (AWS is "
           "also seen to answer SignatureDoesNotMatch 'Signature expired'): any error"))
expect("s3.ListBuckets signed with a wrong secret",
       ERR("SignatureDoesNotMatch", 403, doc="S3ERR SignatureDoesNotMatch"))
expect("s3.ListBuckets with an unknown access key",
       ERR("InvalidAccessKeyId", 403, doc="S3ERR InvalidAccessKeyId"))
expect("s3.ListBuckets with a wrong session token",
       ERR("InvalidToken", 400, doc="S3ERR InvalidToken ('The provided token is malformed or "
           "otherwise invalid.', 400)"))

# ---- STS ----
expect("sts.GetCallerIdentity (management key): Account", OK(value=True, doc="STS GetCallerIdentity"))
expect("sts.AssumeRole member OrganizationAccountAccessRole",
       OK(value=True, doc="STSAR (AssumedRoleUser.Arn arn:aws:sts::ACCT:assumed-role/ROLE/SESSION)"))
expect("sts.GetCallerIdentity with member session: Account and Arn", OK(value=True, doc="STS "
       "GetCallerIdentity"))
expect("sts.AssumeRole role that does not exist",
       ERR("AccessDenied", 403, doc="STSAR: not authorized -> AccessDenied"))
expect("sts.AssumeRole member role from another member (not trusted)",
       ERR("AccessDenied", 403, doc="STSAR trust policy"))
expect("sts.AssumeRole ExternalId role without ExternalId",
       ERR("AccessDenied", 403, doc="STSAR ExternalId; IAM confused deputy guide"))
expect("sts.AssumeRole ExternalId role with a wrong ExternalId",
       ERR("AccessDenied", 403, doc="STSAR ExternalId"))
expect("sts.AssumeRole ExternalId role with the right ExternalId", OK(value=True, doc="STSAR"))
expect("sts.AssumeRole ExternalId shorter than 2",
       ERR("ValidationError", 400, doc="STSAR ExternalId length 2-1224"))
expect("sts.AssumeRole RoleSessionName with a space",
       ERR("ValidationError", 400, doc="STSAR RoleSessionName pattern [\\w+=,.@-]*"))
expect("sts.AssumeRole DurationSeconds=899",
       ERR("ValidationError", 400, doc="STSAR DurationSeconds minimum 900"))
expect("sts.AssumeRole DurationSeconds=43201",
       ERR("ValidationError", 400, doc="STSAR DurationSeconds maximum 43200"))
expect("sts.AssumeRole DurationSeconds=900: expires in 15 minutes",
       OK(value=True, doc="STSAR DurationSeconds"))
expect("sts.AssumeRole DurationSeconds=3601 on a role with the default MaxSessionDuration",
       ERR("ValidationError", 400, doc="STSAR: 'If you specify a value higher than this setting "
           "[MaxSessionDuration, default 1 hour] the operation fails'"))
expect("sts.AssumeRole DurationSeconds=7200 on a role with MaxSessionDuration 7200",
       OK(value=True, doc="STSAR; AWS::IAM::Role MaxSessionDuration"))
expect("sts.AssumeRole role chaining DurationSeconds=3600", OK(value=True, doc="IAMRC"))
expect("sts.AssumeRole role chaining DurationSeconds=7200",
       ERR("ValidationError", 400, msg="role chaining",
           doc="IAMRC: role chaining limits the session to one hour; STSAR 'the operation fails'"))
expect("sts.AssumeRoleWithWebIdentity unsigned, Federated trust",
       OK(value=True, doc="STSWI (no AWS credentials needed)"))
expect("sts.GetCallerIdentity with web identity session", OK(value=True, doc="STS GetCallerIdentity"))
expect("sts.AssumeRoleWithWebIdentity unsigned, role without Federated trust",
       ERR("AccessDenied", 403, doc="STSWI errors; trust policy"))
expect("sts.GetCallerIdentity unsigned",
       ERR("MissingAuthenticationToken", 403, doc="STSCE MissingAuthenticationToken 403"))
expect("sts.GetCallerIdentity signed with a wrong secret",
       ERR("SignatureDoesNotMatch", 403, doc="STS Query error SignatureDoesNotMatch (403)"))
expect("sts.GetCallerIdentity with an unknown access key",
       ERR("InvalidClientTokenId", 403, doc="STSCE InvalidClientTokenId 403"))
expect("sts.GetCallerIdentity with a wrong session token",
       ERR("InvalidClientTokenId", 403, doc="STSCE InvalidClientTokenId ('The security token "
           "included in the request is invalid')"))
expect("sts.AssumeRole after its stack was deleted",
       ERR("AccessDenied", 403, doc="STSAR (the role no longer exists)"))

# ---- CloudFormation ----
expect("cloudformation.CreateStack roles stack (CAPABILITY_NAMED_IAM)",
       OK(value=True, doc="CFNCS (StackId arn:aws:cloudformation:REGION:ACCT:stack/NAME/ID)"))
expect("cloudformation waiter stack_create_complete", OK(doc="MODEL waiters-2 StackCreateComplete"))
expect("cloudformation.DescribeStacks status and Outputs (role ARNs)",
       OK(value=True, doc="CFNDS Outputs"))
expect("cloudformation.CreateStack same name again",
       ERR("AlreadyExistsException", 400, doc="CFNCS errors; MODEL AlreadyExistsException 400"))
expect("cloudformation.CreateStack with ClientRequestToken", OK(value=True, doc="CFNCS"))
expect("cloudformation.CreateStack retried with the same ClientRequestToken: same StackId",
       OK(value=True, doc="CFNCS ClientRequestToken: retries are recognised as the same request"))
expect("cloudformation.CreateStack named role without capabilities",
       ERR("InsufficientCapabilitiesException", 400, doc="CFNCS errors; MODEL 400"))
expect("cloudformation.CreateStack named role with CAPABILITY_IAM only",
       ERR("InsufficientCapabilitiesException", 400,
           doc="CFNCS Capabilities: custom names need CAPABILITY_NAMED_IAM"))
expect("cloudformation.CreateStack template that is not JSON/YAML",
       ERR("ValidationError", 400, msg="Template format error",
           doc="CFNTR 'Template format error'; CFNCS"))
expect("cloudformation.CreateStack unknown resource type",
       ERR("ValidationError", 400, msg="Template format error",
           doc="CFNTR: 'Template format error: Unrecognized resource types'"))
expect("cloudformation.CreateStack invalid stack name",
       ERR("ValidationError", 400, doc="CFNCS StackName pattern [a-zA-Z][-a-zA-Z0-9]*"))
expect("cloudformation.CreateStack failing resource (role name taken)",
       OK(doc="CFNCS (the failure is asynchronous)"))
expect("cloudformation waiter stack_create_complete on a failing stack",
       Exp("waiter-failed", doc="MODEL waiters-2 StackCreateComplete: ROLLBACK_COMPLETE is a "
           "failure state"))
expect("cloudformation.DescribeStacks failed stack: ROLLBACK_COMPLETE with a reason",
       OK(value=["ROLLBACK_COMPLETE", True], doc="CFNDS StackStatusReason"))
expect("cloudformation.CreateStack name of a ROLLBACK_COMPLETE stack",
       ERR("AlreadyExistsException", 400, doc="CFNTR: delete a ROLLBACK_COMPLETE stack first"))
expect("cloudformation.UpdateStack ROLLBACK_COMPLETE stack",
       ERR("ValidationError", 400, doc="CFNUS (stack state does not allow update)"))
expect("cloudformation.UpdateStack no changes",
       ERR("ValidationError", 400, msg="No updates are to be performed.", doc="CFNUS; CFNTR"))
expect("cloudformation.UpdateStack new ExternalId", OK(value=True, doc="CFNUS"))
expect("cloudformation waiter stack_update_complete", OK(doc="MODEL waiters-2"))
expect("cloudformation.DescribeStacks after update: UPDATE_COMPLETE",
       OK(value="UPDATE_COMPLETE", doc="CFNDS"))
expect("sts.AssumeRole with the updated ExternalId", OK(value=True, doc="STSAR"))
expect("sts.AssumeRole with the old ExternalId after update",
       ERR("AccessDenied", 403, doc="STSAR"))
expect("cloudformation.DeleteStack", OK(status=200, doc="CFNDL"))
expect("cloudformation waiter stack_delete_complete", OK(doc="MODEL waiters-2"))
expect("cloudformation.DescribeStacks deleted stack by name",
       ERR("ValidationError", 400, msg="does not exist", doc="CFNDS"))
expect("cloudformation.DescribeStacks deleted stack by StackId: DELETE_COMPLETE",
       OK(value="DELETE_COMPLETE", doc="CFNDS: deleted stacks are described by unique stack ID"))
expect("cloudformation.DescribeStacks stack that never existed",
       ERR("ValidationError", 400, msg="does not exist", doc="CFNDS"))
expect("cloudformation.DeleteStack stack that does not exist",
       OK(status=200, doc="CFNDL (deleting a missing stack succeeds)"))
expect("cloudformation.ListStacks: statuses of this run's stacks",
       OK(value=True, doc="https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/"
          "API_ListStacks.html (includes deleted stacks)"))
expect("cloudformation.ListStacks StackStatusFilter CREATE_COMPLETE",
       OK(value=[True, False], doc="API_ListStacks StackStatusFilter"))
expect("cloudformation.CreateStack without a required parameter",
       ERR("ValidationError", 400, msg="must have values",
           doc="CFNTR; CloudFormation answers 'Parameters: [ExternalId] must have values'"))
expect("cloudformation.CreateStack failing, OnFailure=DO_NOTHING: CREATE_FAILED",
       OK(value="CREATE_FAILED", doc="CFNCS OnFailure DO_NOTHING"))
expect("cloudformation.CreateStack failing, OnFailure=DELETE: stack gone",
       OK(value=True, doc="CFNCS OnFailure DELETE (ends DELETE_COMPLETE)"))
expect("cloudformation.DescribeStacks without StackName: live stacks only",
       OK(value=[True, False], doc="CFNDS: 'If you don't pass a StackName, ... all stacks'; "
          "deleted stacks are not listed"))
expect("cloudformation.CreateStack YAML template",
       INFO(doc="CFNCS TemplateBody accepts JSON or YAML; the simulator's scope (issue 3) is JSON"))
expect("cloudformation.DescribeStacks unknown-resource-type stack",
       INFO(doc="what became of the stack AWS would have refused"))
expect("cloudformation.CreateStack signed with a wrong secret",
       ERR("SignatureDoesNotMatch", 403, doc="Query error SignatureDoesNotMatch"))

# ---- CUR (awssim only: moto has no CUR) ----
expect("cur.PutReportDefinition defaults, bucket with the CUR policy",
       OK(status=200, doc="CURAPI; CURUG bucket policy"))
expect("cur.DescribeReportDefinitions: the report as put", OK(value=True, doc="CURAPI Describe"))
expect("cur.PutReportDefinition bucket without a policy",
       ERR("ValidationException", 400, doc="CURUG: the policy must let billingreports write"))
expect("cur.PutReportDefinition bucket whose policy does not name billingreports",
       ERR("ValidationException", 400, doc="CURUG"))
expect("cur.PutReportDefinition missing bucket", ERR("ValidationException", 400, doc="CURUG"))
expect("cur.PutReportDefinition bucket of another account",
       ERR("ValidationException", 400, doc="CURUG: the bucket must be owned by the account"))
expect("cur.PutReportDefinition same name again",
       ERR("DuplicateReportNameException", 400, doc="MODEL DuplicateReportNameException"))
for _k in ("ATHENA with REDSHIFT", "ATHENA with textORcsv", "ATHENA with CREATE_NEW_REPORT",
           "ATHENA with an empty prefix", "Parquet format with GZIP", "textORcsv with Parquet "
           "compression", "REDSHIFT with Parquet", "QUICKSIGHT with Parquet", "TimeUnit WEEKLY",
           "ReportName with a space", "S3Prefix with a space", "Compression BZIP2",
           "AdditionalArtifacts unknown", "ReportName of 257 characters"):
    expect("cur.PutReportDefinition invalid: %s" % _k,
           ERR("ValidationException", 400, doc="CURAPI ReportDefinition fields; MODEL "
               "enums/patterns; AWS-WIRE combination rules"))
expect("cur.PutReportDefinition ATHENA, Parquet, OVERWRITE_REPORT, prefix",
       OK(status=200, doc="CURAPI AdditionalArtifacts"))
expect("cur.PutReportDefinition reports 3..5", OK(value=True, doc="CURAPI"))
expect("cur.PutReportDefinition sixth report",
       ERR("ReportLimitReachedException", 400, doc="MODEL ReportLimitReachedException (five)"))
expect("cur.DescribeReportDefinitions paginator (management): its 5 reports",
       OK(value=True, doc="CURAPI DescribeReportDefinitions; MODEL paginators-1"))
expect("cur.PutReportDefinition member account, own bucket (2 reports)", OK(value=True, doc="CURAPI"))
expect("cur.DescribeReportDefinitions paginator (member): its 2 reports only",
       OK(value=True, doc="CURAPI: reports owned by the account"))
expect("cur.ModifyReportDefinition TimeUnit DAILY", OK(status=200, doc="CURAPI Modify"))
expect("cur.DescribeReportDefinitions after modify: DAILY", OK(value="DAILY", doc="CURAPI"))
expect("cur.ModifyReportDefinition missing report",
       ERR("ValidationException", 400, doc="MODEL ModifyReportDefinition errors"))
expect("cur.ModifyReportDefinition invalid combination",
       ERR("ValidationException", 400, doc="AWS-WIRE combination rules"))
expect("cur.DeleteReportDefinition", OK(status=200, doc="CURAPI Delete"))
expect("cur.DescribeReportDefinitions after delete: gone", OK(value=True, doc="CURAPI"))
expect("cur.PutReportDefinition after a delete frees a slot", OK(status=200, doc="CURAPI"))
expect("cur.DescribeReportDefinitions PageSize 5 (MaxResults=5): each page at most 5",
       OK(value=True, doc="MODEL MaxResults min 5 max 5; paginators-1"))
expect("cur.DeleteReportDefinition missing report",
       INFO(doc="MODEL lists ValidationException; AWS's answer for a missing name is not documented"))
expect("cur.DescribeReportDefinitions signed with a wrong secret",
       ERR("InvalidSignatureException", doc="JSON protocol auth error"))
expect("cur.DescribeReportDefinitions with an unknown access key",
       ERR("UnrecognizedClientException", doc="JSON protocol auth error"))

# ---- Organizations (awssim only) ----
expect("organizations.ListAccounts paginator: 61 accounts, all ids",
       OK(value=True, doc="ORG (page until NextToken is absent)"))
expect("organizations.ListAccounts: SUSPENDED accounts marked",
       OK(value=sorted(SUSPENDED), doc="ORG Account.State"))
expect("organizations.ListAccounts: more than one page", OK(value=True, doc="ORG MaxResults 20"))
expect("organizations.ListAccounts raw JSON: State and Status on every account",
       OK(value=True, doc="ORG Account: State (ACTIVE|SUSPENDED|PENDING_CLOSURE|CLOSED) and the "
          "retiring Status; botocore 1.29 models only Status"))
expect("organizations.DescribeAccount: a member, ACTIVE",
       OK(value=True, doc="ORG API_DescribeAccount: Account with Id, Arn, Email, Name, Status"))
expect("organizations.DescribeAccount: a SUSPENDED member",
       OK(value="SUSPENDED", doc="ORG Account.Status"))
expect("organizations.DescribeAccount: an account outside the organization",
       ERR("AccountNotFoundException", doc="ORG API_DescribeAccount Errors"))
expect("organizations.ListAccounts as a member account",
       ERR("AccessDeniedException", doc="ORG: only the management account or a delegated admin"))
expect("organizations.ListAccounts signed with a wrong secret",
       ERR("InvalidSignatureException", doc="JSON protocol auth error"))
expect("organizations.ListAccounts with an unknown access key",
       ERR("UnrecognizedClientException", doc="JSON protocol auth error"))

# ---- Organizations tree and CreateAccount (awssim only) ----
expect("organizations.ListRoots: one root", OK(value=[["r-sim0", "Root", True, []]],
       doc="ORGAPI ListRoots: Root Id r-[0-9a-z]{4,32}, Arn, Name, PolicyTypes"))
expect("organizations.ListOrganizationalUnitsForParent root: the OU POST /_sim/ous added",
       OK(value=["Billing"], doc="ORGAPI ListOrganizationalUnitsForParent"))
expect("organizations.ListOrganizationalUnitsForParent paginator, nested OU",
       OK(value=["Prod"], doc="ORGAPI ListOrganizationalUnitsForParent; MODEL paginators-1"))
expect("organizations.DescribeOrganizationalUnit: Id pattern, Name, Arn",
       OK(value=[True, "Prod", True], doc="ORGAPI DescribeOrganizationalUnit; MODEL "
          "OrganizationalUnitId ^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$"))
expect("organizations.MoveAccount member to the nested OU", OK(status=200, doc="ORGAPI MoveAccount"))
expect("organizations.ListAccountsForParent nested OU: the moved account",
       OK(value=[True], doc="ORGAPI ListAccountsForParent"))
expect("organizations.ListAccountsForParent paginator root, PageSize 20: 60 accounts, 3 pages",
       OK(value=[60, 3], doc="ORGAPI ListAccountsForParent (MaxResults 1-20); MODEL paginators-1"))
expect("organizations.ListParents account: its OU",
       OK(value=[["Prod", "ORGANIZATIONAL_UNIT"]], doc="ORGAPI ListParents"))
expect("organizations.ListParents paginator, top OU: the root",
       OK(value=[["r-sim0", "ROOT"]], doc="ORGAPI ListParents; MODEL paginators-1"))
expect("organizations.ListChildren root, ORGANIZATIONAL_UNIT", OK(value=["Billing"],
       doc="ORGAPI ListChildren"))
expect("organizations.ListChildren paginator nested OU, ACCOUNT", OK(value=[True],
       doc="ORGAPI ListChildren; MODEL paginators-1"))
expect("organizations.ListAccountsForParent OU that does not exist",
       ERR("ParentNotFoundException", 400, doc="ORGAPI ListAccountsForParent Errors"))
expect("organizations.ListParents account that does not exist",
       ERR("ChildNotFoundException", 400, doc="ORGAPI ListParents Errors"))
expect("organizations.DescribeOrganizationalUnit OU that does not exist",
       ERR("OrganizationalUnitNotFoundException", 400, doc="ORGAPI DescribeOrganizationalUnit"))
expect("organizations.MoveAccount to where it is",
       ERR("DuplicateAccountException", 400, doc="ORGAPI MoveAccount Errors"))
expect("organizations.ListChildren ChildType USER (no client validation)",
       ERR("InvalidInputException", 400, doc="MODEL ChildType enum; ORGAPI InvalidInputException"))
expect("organizations.CreateAccount: IN_PROGRESS with a car- id",
       OK(value=["IN_PROGRESS", True], doc="ORGAPI CreateAccount (asynchronous; "
          "CreateAccountRequestId ^car-[a-z0-9]{8,32}$)"))
expect("organizations.DescribeCreateAccountStatus at once: IN_PROGRESS",
       OK(value="IN_PROGRESS", doc="ORGAPI DescribeCreateAccountStatus"))
expect("organizations.DescribeCreateAccountStatus after organizations.account_create: SUCCEEDED",
       OK(value=["SUCCEEDED", member(MEMBERS + 1), True],
          doc="ORGAPI DescribeCreateAccountStatus (AccountId, CompletedTimestamp)"))
expect("organizations.DescribeAccount the created account: ACTIVE, CREATED",
       OK(value=["ACTIVE", "CREATED"], doc="ORGAPI DescribeAccount"))
expect("organizations.ListParents the created account: the root",
       OK(value=[["r-sim0", "ROOT"]], doc="ORGAPI CreateAccount: new accounts join the root"))
expect("sts.AssumeRole OrganizationAccountAccessRole of the created account",
       OK(value=True, doc="ORGAPI CreateAccount: the role the management account may assume"))
expect("organizations.DescribeCreateAccountStatus email taken: FAILED EMAIL_ALREADY_EXISTS",
       OK(value=["FAILED", "EMAIL_ALREADY_EXISTS", None],
          doc="MODEL CreateAccountFailureReason EMAIL_ALREADY_EXISTS"))
expect("organizations.ListCreateAccountStatus paginator States FAILED: the taken email's request",
       OK(value=True, doc="ORGAPI ListCreateAccountStatus; MODEL paginators-1"))
expect("organizations.DescribeCreateAccountStatus id that does not exist",
       ERR("CreateAccountStatusNotFoundException", 400,
           doc="ORGAPI DescribeCreateAccountStatus Errors"))

# ---- CloudFormation drift detection, and drift made with POST /_sim/drift (awssim only) ----
expect("cloudformation.DescribeStacks before any detection: NOT_CHECKED",
       OK(value=["NOT_CHECKED", False], doc="CFNDS StackDriftInformation"))
expect("cloudformation.DetectStackDrift: a StackDriftDetectionId",
       OK(value=True, doc="CFNDR DetectStackDrift"))
expect("cloudformation.DescribeStackDriftDetectionStatus at once: DETECTION_IN_PROGRESS",
       OK(value="DETECTION_IN_PROGRESS", doc="CFNDR DescribeStackDriftDetectionStatus"))
expect("cloudformation.DetectStackDrift while one runs",
       ERR("ValidationError", 400, msg="Drift detection is already in progress",
           doc="UserGuide detect-drift-stack: one drift detection per stack at a time"))
expect("cloudformation.DescribeStackDriftDetectionStatus after cloudformation.drift_detect: IN_SYNC",
       OK(value=["DETECTION_COMPLETE", "IN_SYNC", 0],
          doc="CFNDR DescribeStackDriftDetectionStatus"))
expect("cloudformation.DescribeStackResourceDrifts in sync",
       OK(value=[["Role", "IN_SYNC", True]], doc="CFNDR DescribeStackResourceDrifts"))
expect("cloudformation.DescribeStacks after a detection: IN_SYNC, LastCheckTimestamp",
       OK(value=["IN_SYNC", True], doc="CFNDS StackDriftInformation"))
expect("cloudformation.DescribeStackDriftDetectionStatus after the trust drift: DRIFTED",
       OK(value=["DETECTION_COMPLETE", "DRIFTED", 1], doc="CFNDR; SIM trust_policy"))
expect("cloudformation.DescribeStackResourceDrifts MODIFIED: the ExternalId condition removed",
       OK(value=["MODIFIED", [["/AssumeRolePolicyDocument/Statement/0/Condition", "REMOVE"]],
                 True], doc="CFNDR StackResourceDrift PropertyDifferences; SIM trust_policy"))
expect("cloudformation.DescribeStackResourceDrifts after the role was deleted: DELETED",
       OK(value=[["Role", "DELETED", False]], doc="CFNDR StackResourceDriftStatus DELETED "
          "(no Expected/ActualProperties); SIM delete_role"))
expect("sts.AssumeRole on the role deleted out of band",
       ERR("AccessDenied", 403, doc="STSAR (the role no longer exists); SIM delete_role"))
expect("cloudformation.DescribeStackDriftDetectionStatus id that does not exist",
       ERR("ValidationError", 400, doc="CFNDR DescribeStackDriftDetectionStatus"))
expect("s3.GetBucketPolicy after POST /_sim/drift bucket_policy: billingreports gone",
       OK(value=["bcm-data-exports.amazonaws.com", "DenyInsecureTransport"],
          doc="S3API GetBucketPolicy; SIM bucket_policy (the other statements stay)"))
expect("s3.GetBucketPolicy after POST /_sim/drift delete_bucket_policy",
       ERR("NoSuchBucketPolicy", 404, doc="S3ERR NoSuchBucketPolicy; SIM delete_bucket_policy"))
expect("s3.GetPublicAccessBlock after POST /_sim/drift public_access",
       ERR("NoSuchPublicAccessBlockConfiguration", 404,
           doc="S3ERR NoSuchPublicAccessBlockConfiguration; SIM public_access"))
expect("s3.GetBucketOwnershipControls after POST /_sim/drift ownership",
       OK(value="ObjectWriter", doc="S3API GetBucketOwnershipControls; SIM ownership"))
expect("s3.GetBucketOwnershipControls after POST /_sim/drift ownership null",
       ERR("OwnershipControlsNotFoundError", 404,
           doc="S3API GetBucketOwnershipControls; SIM ownership"))
expect("s3.GetBucketEncryption after POST /_sim/drift encryption",
       OK(value="aws:kms", doc="S3API GetBucketEncryption; SIM encryption"))
expect("cur.DescribeReportDefinitions after POST /_sim/drift change_report",
       OK(value="DAILY", doc="CURAPI DescribeReportDefinitions; SIM change_report"))
expect("cur.DescribeReportDefinitions after POST /_sim/drift delete_report",
       OK(value=[], doc="CURAPI DescribeReportDefinitions; SIM delete_report"))
expect("s3.HeadBucket after POST /_sim/drift delete_bucket",
       ERR("404", 404, doc="S3API HeadBucket: 404 Not Found; SIM delete_bucket"))

# ---- awscli (awssim only) ----
for _k, _exp in [
        ("aws sts get-caller-identity", OK(value=[0, True])),
        ("aws s3api create-bucket", OK(value=[0, True])),
        ("aws s3api create-bucket --create-bucket-configuration LocationConstraint=eu-west-1 "
         "(--region eu-west-1)", OK(value=[0, True])),
        ("aws s3api put-bucket-policy", OK(value=[0, True])),
        ("aws s3api get-bucket-policy", OK(value=[0, True])),
        ("aws s3api head-bucket", OK(value=[0, True])),
        ("aws s3api get-bucket-location", OK(value=[0, True])),
        ("aws s3api put-public-access-block", OK(value=[0, True])),
        ("aws s3api put-bucket-encryption", OK(value=[0, True])),
        ("aws s3api put-bucket-ownership-controls", OK(value=[0, True])),
        ("aws cur put-report-definition", OK(value=[0, True])),
        ("aws cur describe-report-definitions", OK(value=[0, True])),
        ("aws cloudformation create-stack", OK(value=[0, True])),
        ("aws cloudformation wait stack-create-complete", OK(value=[0, True])),
        ("aws cloudformation describe-stacks", OK(value=[0, True])),
        ("aws cloudformation list-stacks", OK(value=[0, True])),
        ("aws organizations list-accounts", OK(value=[0, True])),
        ("aws s3api get-bucket-policy (no policy): exit 254", OK(value=[254, True])),
        ("aws s3api head-bucket (missing): exit 254", OK(value=[254, True])),
        ("aws s3api create-bucket (name of another account): exit 254", OK(value=[254, True])),
        ("aws cloudformation describe-stacks (missing): exit 254", OK(value=[254, True])),
        ("aws sts get-caller-identity (wrong secret): exit 254", OK(value=[254, True])),
        ("aws cur put-report-definition (bucket without policy): exit 254", OK(value=[254, True])),
        ("aws organizations list-accounts (member): exit 254", OK(value=[254, True])),
        ("aws cloudformation wait stack-create-complete (ROLLBACK_COMPLETE): exit 255",
         OK(value=[255, True])),
]:
    _exp.doc = ("https://docs.aws.amazon.com/cli/latest/topic/return-codes.html (0 ok, 254 "
                "service error, 255 other); output as the service model says")
    expect("awscli: " + _k, _exp)


# ---------------------------------------------------------------------------
# Targets: awssim (started here) and moto
# ---------------------------------------------------------------------------

class Awssim:
    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="awssim-clients-")
        port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "awssim.log")
        args = [binary, "--port-file", port_file, "--org-accounts", str(MEMBERS),
                "--random-seed", "42",
                "--latency", "cloudformation.stack_create=500ms",
                "--latency", "cloudformation.stack_update=500ms",
                "--latency", "cloudformation.stack_delete=300ms",
                "--latency", "organizations.account_create=300ms",
                "--latency", "cloudformation.drift_detect=300ms"]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        self.port = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("awssim exited with %s:\n%s" % (self.proc.returncode,
                                                                  self.read_log()))
            try:
                with open(port_file) as f:
                    txt = f.read().strip()
                if txt:
                    self.port = int(txt)
                    if http_get("http://127.0.0.1:%d/_sim/health" % self.port)[0] == 200:
                        break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("awssim did not become ready in 30 s:\n" + self.read_log())
        self.url = "http://127.0.0.1:%d" % self.port

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-20000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.final_log = self.read_log()
        shutil.rmtree(self.dir, ignore_errors=True)


class Moto:
    """OB_TEST_MOTO_URL, or a moto_server started here on a free port."""

    def __init__(self):
        self.proc = None
        self.url = os.environ.get("OB_TEST_MOTO_URL")
        if self.url:
            return
        port = free_port()
        self.logf = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.url = "http://127.0.0.1:%d" % port
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("moto_server exited with %s" % self.proc.returncode)
            if http_get(self.url + "/moto-api/data.json")[0] == 200:
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("moto_server not ready in 60 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2):
    return http_request("GET", url, timeout)


def http_request(method, url, timeout=5):
    u = urllib.parse.urlsplit(url)
    try:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        c.request(method, u.path + ("?" + u.query if u.query else ""))
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body
    except OSError:
        return 0, b""


class Target:
    """One endpoint with its identities. kind: 'awssim' or 'moto'."""

    def __init__(self, kind, url):
        self.kind, self.url = kind, url
        self.mgmt = MGMT if kind == "awssim" else "123456789012"  # moto's default account
        self.creds = {"aws_access_key_id": MGMT_AKID, "aws_secret_access_key": MGMT_SECRET}
        self.sfx = uuid.uuid4().hex[:8]
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self._sessions = {}
        self.cache = {}

    def client(self, service, region="us-east-1", creds=None, unsigned=False, validate=True):
        c = creds or self.creds
        key = (c.get("aws_access_key_id"), c.get("aws_secret_access_key"),
               c.get("aws_session_token"), region)
        sess = self._sessions.get(key)
        if sess is None:
            sess = boto3.session.Session(region_name=region, **c)
            self._sessions[key] = sess
        cfg = Config(s3={"addressing_style": "path"},
                     retries={"mode": "standard", "total_max_attempts": 1},
                     parameter_validation=validate, connect_timeout=5, read_timeout=60)
        if unsigned:
            cfg = cfg.merge(Config(signature_version=UNSIGNED))
        return sess.client(service, endpoint_url=self.url, config=cfg)

    def role_arn(self, account, name=ORG_ROLE):
        return "arn:aws:iam::%s:role/%s" % (account, name)

    def assume(self, account, name=ORG_ROLE, creds=None, session="onboard-test", **kw):
        r = self.client("sts", creds=creds).assume_role(
            RoleArn=self.role_arn(account, name), RoleSessionName=session, **kw)
        return session_creds(r)


def session_creds(resp):
    c = resp["Credentials"]
    return {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"],
            "aws_session_token": c["SessionToken"]}


# ---------------------------------------------------------------------------
# Recording observations
# ---------------------------------------------------------------------------

class Recorder:
    def __init__(self, target):
        self.t = target
        self.obs = collections.OrderedDict()

    def put(self, key, outcome):
        assert key in EXPECT, "no expectation for %r" % key
        self.obs[key] = outcome

    def call(self, key, fn, summarize=None):
        """Run fn(); record its outcome under key; return the response (None on error)."""
        try:
            resp = fn()
        except ClientError as e:
            err = e.response.get("Error", {})
            self.put(key, {"kind": "error", "code": err.get("Code"),
                           "status": e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
                           "message": err.get("Message")})
            return None
        except WaiterError as e:
            lr = e.last_response or {}
            msg = str(e)
            if isinstance(lr, dict) and "Error" in lr:
                msg += " (%s)" % lr["Error"].get("Code")
            self.put(key, {"kind": "waiter-failed", "message": msg})
            return None
        except Exception as e:  # parse failures, connection errors: what we look for
            self.put(key, {"kind": "exception", "code": type(e).__name__, "message": str(e)})
            return None
        status = None
        if isinstance(resp, dict):
            status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
        try:
            val = summarize(resp) if summarize else None
        except Exception as e:
            self.put(key, {"kind": "exception", "code": "summary " + type(e).__name__,
                           "message": "%s; reply %r" % (e, resp)[:400]})
            return None
        self.put(key, {"kind": "ok", "status": status, "value": val})
        return resp if resp is not None else True

    def raw(self, key, resp, summarize=None):
        """Record a raw (status, headers, body) S3 or Query reply."""
        status, headers, body = resp
        if status == 0:
            self.put(key, {"kind": "exception", "code": "connection", "message": "no reply"})
            return None
        if status >= 300:
            m = re.search(rb"<Code>(.*?)</Code>", body)
            mm = re.search(rb"<Message>(.*?)</Message>", body)
            code = m.group(1).decode() if m else str(status)
            self.put(key, {"kind": "error", "code": code, "status": status,
                           "message": mm.group(1).decode() if mm else ""})
            return None
        try:
            val = summarize(status, headers, body) if summarize else None
        except Exception as e:
            self.put(key, {"kind": "exception", "code": "summary " + type(e).__name__,
                           "message": "%s; body %r" % (e, body[:300])})
            return None
        self.put(key, {"kind": "ok", "status": status, "value": val})
        return resp

    def skip(self, key, why):
        self.put(key, {"kind": "not-run", "message": why})

    def mismatches(self, keys=None):
        out = []
        for k, o in self.obs.items():
            if keys is not None and k not in keys:
                continue
            if not EXPECT[k].matches(o):
                out.append("%s\n      expected (AWS): %s   [%s]\n      got:            %s"
                           % (k, EXPECT[k], EXPECT[k].doc, fmt(o)))
        return out


class _Clock:
    """Stands in for botocore.auth's datetime module to sign in the past."""

    def __init__(self, minutes):
        skew = datetime.timedelta(minutes=minutes)

        class Skewed(datetime.datetime):
            @classmethod
            def utcnow(cls):
                return datetime.datetime.utcnow() - skew

        self.datetime = Skewed


def sign(auth, req, skew_minutes=0):
    if not skew_minutes:
        auth.add_auth(req)
        return
    saved = botocore.auth.datetime
    botocore.auth.datetime = _Clock(skew_minutes)
    try:
        auth.add_auth(req)
    finally:
        botocore.auth.datetime = saved


def raw_s3(t, method, bucket, query="", body=b"", headers=None, region="us-east-1",
           creds=None, virtual_host=False, plain_sigv4=False, skew_minutes=0):
    """A hand-signed S3 request. Path style to the endpoint, or virtual-host style
    (Host: BUCKET.s3.REGION.amazonaws.com) sent to the endpoint's address.
    plain_sigv4: sign as a non-S3 service would, keeping any X-Amz-Content-SHA256
    given in headers (or sending none)."""
    c = creds or t.creds
    if virtual_host:
        host = "%s.s3.%s.amazonaws.com" % (bucket, region)
        path = "/"
    else:
        host = "%s:%d" % (t.host, t.port)
        path = "/" + bucket
    url = "http://%s%s%s" % (host, path, ("?" + query) if query else "")
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    cr = Credentials(c["aws_access_key_id"], c["aws_secret_access_key"],
                     c.get("aws_session_token"))
    sign((SigV4Auth if plain_sigv4 else S3SigV4Auth)(cr, "s3", region), req, skew_minutes)
    hdrs = {k: v for k, v in req.headers.items()}
    hdrs["Host"] = host
    conn = http.client.HTTPConnection(t.host, t.port, timeout=30)
    try:
        conn.request(method, path + (("?" + query) if query else ""), body=body or None,
                     headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def raw_query(t, service, params, region="us-east-1", creds=None, skew_minutes=0):
    """A hand-signed Query-protocol request; returns (status, headers, body bytes)."""
    c = creds or t.creds
    data = urllib.parse.urlencode(params).encode()
    req = AWSRequest(method="POST", url=t.url + "/", data=data, headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    sign(SigV4Auth(Credentials(c["aws_access_key_id"], c["aws_secret_access_key"],
                               c.get("aws_session_token")), service, region), req, skew_minutes)
    hdrs = dict(req.headers.items())
    hdrs["Host"] = "%s:%d" % (t.host, t.port)
    conn = http.client.HTTPConnection(t.host, t.port, timeout=30)
    try:
        conn.request("POST", "/", body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw_json(t, service, target, body, region="us-east-1", creds=None):
    """A hand-signed JSON 1.1 request; returns (status, headers, body bytes)."""
    c = creds or t.creds
    data = json.dumps(body).encode()
    req = AWSRequest(method="POST", url=t.url + "/", data=data, headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target})
    SigV4Auth(Credentials(c["aws_access_key_id"], c["aws_secret_access_key"],
                          c.get("aws_session_token")), service, region).add_auth(req)
    hdrs = dict(req.headers.items())
    hdrs["Host"] = "%s:%d" % (t.host, t.port)
    conn = http.client.HTTPConnection(t.host, t.port, timeout=30)
    try:
        conn.request("POST", "/", body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def admin_post(t, path, body):
    """POST JSON to awssim's admin API; (status, parsed answer)."""
    conn = http.client.HTTPConnection(t.host, t.port, timeout=10)
    try:
        conn.request("POST", path, body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def sim_drift(t, **body):
    """POST /_sim/drift; the change must be made."""
    st, ans = admin_post(t, "/_sim/drift", body)
    if st != 200:
        raise RuntimeError("POST /_sim/drift %r: HTTP %d %r" % (body, st, ans))
    return ans


def poll(fn, done, limit=15):
    """Call fn until done(result) (at most limit seconds); the last result."""
    deadline = time.time() + limit
    while True:
        x = fn()
        if done(x) or time.time() > deadline:
            return x
        time.sleep(0.05)


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


# ---------------------------------------------------------------------------
# Templates and policies
# ---------------------------------------------------------------------------

def trust_account(account, external_id=None):
    st = {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root" % account},
          "Action": "sts:AssumeRole"}
    if external_id is not None:
        st["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [st]}


def role_resource(name, trust, **props):
    p = {"RoleName": name, "AssumeRolePolicyDocument": trust,
         "Policies": [{"PolicyName": "read-billing", "PolicyDocument": {
             "Version": "2012-10-17", "Statement": [{
                 "Effect": "Allow", "Action": ["cur:DescribeReportDefinitions",
                                               "organizations:ListAccounts"],
                 "Resource": "*"}]}}]}
    p.update(props)
    return {"Type": "AWS::IAM::Role", "Properties": p}


def roles_template(t):
    """The roles the STS checks need: ExternalId, web identity, long sessions."""
    s = t.sfx
    web_trust_plain = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": "arn:aws:iam::%s:oidc-provider/oidc.eks.local" % t.mgmt},
        "Action": "sts:AssumeRoleWithWebIdentity"}]}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "onboard client tests: roles for STS",
        "Parameters": {"ExternalId": {"Type": "String"}},
        "Resources": {
            "ExtRole": role_resource("ob-ext-" + s, trust_account(t.mgmt, {"Ref": "ExternalId"})),
            "WebRole": role_resource("ob-web-" + s, web_trust_plain),
            "LongRole": role_resource("ob-long-" + s, trust_account(t.mgmt),
                                      MaxSessionDuration=7200),
        },
        "Outputs": {
            "ExtRoleArn": {"Value": {"Fn::GetAtt": ["ExtRole", "Arn"]}},
            "WebRoleArn": {"Value": {"Fn::GetAtt": ["WebRole", "Arn"]}},
            "LongRoleArn": {"Value": {"Fn::GetAtt": ["LongRole", "Arn"]}},
        },
    }


def one_role_template(t, role_name):
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {"ExternalId": {"Type": "String"}},
        "Resources": {"Role": role_resource(role_name,
                                            trust_account(t.mgmt, {"Ref": "ExternalId"}))},
        "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["Role", "Arn"]}}},
    }


def cur_policy(bucket, account):
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "billingreports.amazonaws.com"},
         "Action": ["s3:GetBucketAcl", "s3:GetBucketPolicy"],
         "Resource": "arn:aws:s3:::%s" % bucket,
         "Condition": {"StringEquals": {
             "aws:SourceArn": "arn:aws:cur:us-east-1:%s:definition/*" % account,
             "aws:SourceAccount": account}}},
        {"Effect": "Allow", "Principal": {"Service": "billingreports.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": "arn:aws:s3:::%s/*" % bucket,
         "Condition": {"StringEquals": {
             "aws:SourceArn": "arn:aws:cur:us-east-1:%s:definition/*" % account,
             "aws:SourceAccount": account}}},
        {"Effect": "Allow", "Principal": {"Service": "bcm-data-exports.amazonaws.com"},
         "Action": ["s3:PutObject", "s3:GetBucketPolicy"],
         "Resource": ["arn:aws:s3:::%s" % bucket, "arn:aws:s3:::%s/*" % bucket],
         "Condition": {"StringEquals": {
             "aws:SourceArn": "arn:aws:bcm-data-exports:us-east-1:%s:export/*" % account,
             "aws:SourceAccount": account}}},
    ]}


def deny_insecure_policy(bucket):
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": ["arn:aws:s3:::%s" % bucket, "arn:aws:s3:::%s/*" % bucket],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


def wait_stack(cfn, name, delay=1, attempts=120, waiter="stack_create_complete"):
    return cfn.get_waiter(waiter).wait(StackName=name,
                                       WaiterConfig={"Delay": delay, "MaxAttempts": attempts})


def roles_stack(t):
    """Create (once per target) the stack with the roles the STS checks use."""
    if "roles" in t.cache:
        return t.cache["roles"]
    cfn = t.client("cloudformation")
    name = "ob-cl-roles-" + t.sfx
    ext = "ext-" + t.sfx
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(roles_template(t)),
                     Parameters=[{"ParameterKey": "ExternalId", "ParameterValue": ext}],
                     Capabilities=["CAPABILITY_NAMED_IAM"])
    wait_stack(cfn, name)
    st = cfn.describe_stacks(StackName=name)["Stacks"][0]
    outs = {o["OutputKey"]: o["OutputValue"] for o in st.get("Outputs", [])}
    t.cache["roles"] = {"stack": name, "external_id": ext, **outs}
    return t.cache["roles"]


# ---------------------------------------------------------------------------
# The checks. Each takes a Target and a Recorder; the same code runs against
# awssim and moto.
# ---------------------------------------------------------------------------

def chk_s3(t, r):
    s = t.sfx
    us = t.client("s3", "us-east-1")
    eu = t.client("s3", "eu-west-1")
    b_us, b_eu, b_m = "ob-cl-%s-use1" % s, "ob-cl-%s-euw1" % s, "ob-cl-%s-member" % s
    r.call("s3.CreateBucket us-east-1, no configuration", lambda: us.create_bucket(Bucket=b_us))
    r.call("s3.CreateBucket eu-west-1, LocationConstraint eu-west-1",
           lambda: eu.create_bucket(Bucket=b_eu, CreateBucketConfiguration={
               "LocationConstraint": "eu-west-1"}))
    r.call("s3.CreateBucket us-east-1 endpoint, LocationConstraint us-east-1",
           lambda: us.create_bucket(Bucket="ob-cl-%s-lc1" % s, CreateBucketConfiguration={
               "LocationConstraint": "us-east-1"}))
    r.call("s3.CreateBucket us-east-1 endpoint, LocationConstraint moon-1",
           lambda: us.create_bucket(Bucket="ob-cl-%s-lc2" % s, CreateBucketConfiguration={
               "LocationConstraint": "moon-1"}))
    r.call("s3.CreateBucket eu-west-1 endpoint, no configuration",
           lambda: eu.create_bucket(Bucket="ob-cl-%s-lc3" % s))
    r.call("s3.CreateBucket eu-west-1 endpoint, LocationConstraint ap-south-1",
           lambda: eu.create_bucket(Bucket="ob-cl-%s-lc4" % s, CreateBucketConfiguration={
               "LocationConstraint": "ap-south-1"}))
    for n in ("Bad_Name", "ab", "a..b-bucket", "192.168.5.4", "xn--bucket", "my-bucket-s3alias",
              "-leading-dash"):
        name = n if n in ("ab", "192.168.5.4") else n.replace("bucket", "bucket" + s)
        r.call("s3.CreateBucket InvalidBucketName %r" % n, lambda: us.create_bucket(Bucket=name))
    r.call("s3.CreateBucket again, own bucket in us-east-1", lambda: us.create_bucket(Bucket=b_us))
    r.call("s3.CreateBucket again, own bucket in eu-west-1",
           lambda: eu.create_bucket(Bucket=b_eu, CreateBucketConfiguration={
               "LocationConstraint": "eu-west-1"}))
    mcreds = t.assume(member(1))
    mus = t.client("s3", "us-east-1", creds=mcreds)
    r.call("s3.CreateBucket as member (assumed role)", lambda: mus.create_bucket(Bucket=b_m))
    r.call("s3.CreateBucket name owned by another account", lambda: us.create_bucket(Bucket=b_m))

    def region_hdr(x):
        return x["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region")

    r.call("s3.HeadBucket own us-east-1 bucket: x-amz-bucket-region",
           lambda: us.head_bucket(Bucket=b_us), region_hdr)
    r.call("s3.HeadBucket own eu-west-1 bucket: x-amz-bucket-region",
           lambda: eu.head_bucket(Bucket=b_eu), region_hdr)
    r.call("s3.HeadBucket missing bucket", lambda: us.head_bucket(Bucket="ob-cl-%s-none" % s))
    r.call("s3.HeadBucket bucket of another account", lambda: us.head_bucket(Bucket=b_m))
    r.call("s3.GetBucketLocation us-east-1 bucket", lambda: us.get_bucket_location(Bucket=b_us),
           lambda x: x.get("LocationConstraint"))
    r.call("s3.GetBucketLocation eu-west-1 bucket", lambda: us.get_bucket_location(Bucket=b_eu),
           lambda x: x.get("LocationConstraint"))
    r.call("s3.GetBucketLocation missing bucket",
           lambda: us.get_bucket_location(Bucket="ob-cl-%s-none" % s))

    def names(x):
        return {b["Name"] for b in x.get("Buckets", [])}

    r.call("s3.ListBuckets (management): own buckets listed, member's not", us.list_buckets,
           lambda x: [b_us in names(x), b_eu in names(x), b_m in names(x)])
    r.call("s3.ListBuckets (member): own bucket only", mus.list_buckets,
           lambda x: [b_m in names(x), b_us in names(x)])

    # Policies
    pol = deny_insecure_policy(b_us)
    r.call("s3.GetBucketPolicy before any policy", lambda: us.get_bucket_policy(Bucket=b_us))
    r.call("s3.PutBucketPolicy valid policy",
           lambda: us.put_bucket_policy(Bucket=b_us, Policy=json.dumps(pol)))
    r.call("s3.GetBucketPolicy returns the policy", lambda: us.get_bucket_policy(Bucket=b_us),
           lambda x: json.loads(x["Policy"]) == pol)
    r.call("s3.PutBucketPolicy not JSON",
           lambda: us.put_bucket_policy(Bucket=b_us, Policy="{not json"))
    r.call("s3.PutBucketPolicy JSON without Statement",
           lambda: us.put_bucket_policy(Bucket=b_us, Policy='{"Version": "2012-10-17"}'))
    r.call("s3.PutBucketPolicy missing bucket",
           lambda: us.put_bucket_policy(Bucket="ob-cl-%s-none" % s, Policy=json.dumps(
               deny_insecure_policy("ob-cl-%s-none" % s))))
    r.call("s3.DeleteBucketPolicy", lambda: us.delete_bucket_policy(Bucket=b_us))
    r.call("s3.GetBucketPolicy after delete", lambda: us.get_bucket_policy(Bucket=b_us))
    r.call("s3.DeleteBucketPolicy when there is none", lambda: us.delete_bucket_policy(Bucket=b_us))
    r.call("s3.GetBucketPolicy bucket of another account",
           lambda: mus.get_bucket_policy(Bucket=b_us))
    r.call("s3.PutBucketPolicy bucket of another account",
           lambda: mus.put_bucket_policy(Bucket=b_us, Policy=json.dumps(pol)))

    # Public access block, encryption, ownership (fresh state on b_eu, puts on b_us)
    def pab(x):
        c = x["PublicAccessBlockConfiguration"]
        return [c.get("BlockPublicAcls"), c.get("IgnorePublicAcls"), c.get("BlockPublicPolicy"),
                c.get("RestrictPublicBuckets")]

    r.call("s3.GetPublicAccessBlock on a new bucket",
           lambda: eu.get_public_access_block(Bucket=b_eu), pab)
    r.call("s3.PutPublicAccessBlock", lambda: us.put_public_access_block(
        Bucket=b_us, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": False, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": False}))
    r.call("s3.GetPublicAccessBlock after put", lambda: us.get_public_access_block(Bucket=b_us), pab)

    def sse(x):
        return x["ServerSideEncryptionConfiguration"]["Rules"][0][
            "ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]

    r.call("s3.GetBucketEncryption on a new bucket", lambda: eu.get_bucket_encryption(Bucket=b_eu),
           sse)
    r.call("s3.PutBucketEncryption AES256", lambda: us.put_bucket_encryption(
        Bucket=b_us, ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}))
    r.call("s3.GetBucketEncryption after put", lambda: us.get_bucket_encryption(Bucket=b_us), sse)

    def own(x):
        return x["OwnershipControls"]["Rules"][0]["ObjectOwnership"]

    r.call("s3.GetBucketOwnershipControls on a new bucket",
           lambda: eu.get_bucket_ownership_controls(Bucket=b_eu), own)
    r.call("s3.PutBucketOwnershipControls BucketOwnerEnforced",
           lambda: us.put_bucket_ownership_controls(Bucket=b_us, OwnershipControls={
               "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}))
    r.call("s3.GetBucketOwnershipControls after put",
           lambda: us.get_bucket_ownership_controls(Bucket=b_us), own)

    # Content-MD5, by hand
    body = json.dumps(pol).encode()
    r.raw("s3.PutBucketPolicy raw, no Content-MD5", raw_s3(t, "PUT", b_us, "policy", body))
    pab_xml = (b'<PublicAccessBlockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
               b"<BlockPublicAcls>true</BlockPublicAcls></PublicAccessBlockConfiguration>")
    r.raw("s3.PutPublicAccessBlock raw, no Content-MD5",
          raw_s3(t, "PUT", b_us, "publicAccessBlock", pab_xml))
    r.raw("s3.PutBucketPolicy raw, Content-MD5 of other bytes",
          raw_s3(t, "PUT", b_us, "policy", body, {"Content-MD5": md5_b64(b"other bytes")}))
    r.raw("s3.PutBucketPolicy raw, Content-MD5 not base64 MD5",
          raw_s3(t, "PUT", b_us, "policy", body, {"Content-MD5": "not-an-md5"}))
    r.raw("s3.PutBucketPolicy raw, with Content-MD5",
          raw_s3(t, "PUT", b_us, "policy", body, {"Content-MD5": md5_b64(body)}))

    r.raw("s3.PutBucketPolicy raw, x-amz-content-sha256 not the body's",
          raw_s3(t, "PUT", b_us, "policy", body, {
              "Content-MD5": md5_b64(body),
              "X-Amz-Content-SHA256": hashlib.sha256(b"other").hexdigest()}, plain_sigv4=True))
    r.raw("s3.PutBucketPolicy raw, no x-amz-content-sha256",
          raw_s3(t, "PUT", b_us, "policy", body, {"Content-MD5": md5_b64(body)},
                 plain_sigv4=True))
    r.raw("s3.ListBuckets raw, signed 20 minutes ago",
          raw_s3(t, "GET", "", skew_minutes=20))
    url = us.generate_presigned_url("get_bucket_location", Params={"Bucket": b_eu},
                                    ExpiresIn=300)
    st, data = http_get(url, timeout=10)
    r.raw("s3.GetBucketLocation presigned URL (query-string SigV4)", (st, {}, data),
          lambda st, h, d: re.search(rb"<LocationConstraint[^>]*>(.*?)<", d).group(1).decode())

    # Virtual-host style: Host: BUCKET.s3.REGION.amazonaws.com
    def loc(status, headers, data):
        m = re.search(rb"<LocationConstraint[^>]*>(.*?)</LocationConstraint>", data)
        return m.group(1).decode() if m else None

    r.raw("s3.GetBucketLocation virtual-host (Host: BUCKET.s3.us-east-1.amazonaws.com)",
          raw_s3(t, "GET", b_eu, "location", virtual_host=True), loc)
    r.raw("s3.GetBucketPolicy virtual-host", raw_s3(t, "GET", b_us, "policy", virtual_host=True),
          lambda st, h, d: json.loads(d) == pol)
    r.raw("s3.HeadBucket virtual-host", raw_s3(t, "HEAD", b_us, virtual_host=True),
          lambda st, h, d: h.get("x-amz-bucket-region"))
    b_vh = "ob-cl-%s-vhost" % s
    cfg = (b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
           b"<LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>")
    if r.raw("s3.CreateBucket virtual-host, eu-west-1 (PUT / with a LocationConstraint body)",
             raw_s3(t, "PUT", b_vh, "", cfg, region="eu-west-1", virtual_host=True)):
        r.call("s3.GetBucketLocation of the bucket created virtual-host",
               lambda: us.get_bucket_location(Bucket=b_vh), lambda x: x.get("LocationConstraint"))

    # Identity
    bad = dict(t.creds, aws_secret_access_key="wrong" + MGMT_SECRET[5:])
    r.call("s3.ListBuckets signed with a wrong secret", t.client("s3", creds=bad).list_buckets)
    unk = {"aws_access_key_id": "AKIAUNKNOWNKEY000000", "aws_secret_access_key": MGMT_SECRET}
    r.call("s3.ListBuckets with an unknown access key", t.client("s3", creds=unk).list_buckets)
    badtok = dict(mcreds, aws_session_token=mcreds["aws_session_token"][:-4] + "AAAA")
    r.call("s3.ListBuckets with a wrong session token", t.client("s3", creds=badtok).list_buckets)


def chk_sts(t, r):
    sts = t.client("sts")
    r.call("sts.GetCallerIdentity (management key): Account", sts.get_caller_identity,
           lambda x: x["Account"] == t.mgmt)
    m1, m2 = member(1), member(2)
    resp = r.call("sts.AssumeRole member OrganizationAccountAccessRole",
                  lambda: sts.assume_role(RoleArn=t.role_arn(m1), RoleSessionName="onboard-test"),
                  lambda x: x["AssumedRoleUser"]["Arn"] ==
                  "arn:aws:sts::%s:assumed-role/%s/onboard-test" % (m1, ORG_ROLE)
                  and len(x["Credentials"]["AccessKeyId"]) >= 16)
    if resp:
        mc = session_creds(resp)
        r.call("sts.GetCallerIdentity with member session: Account and Arn",
               t.client("sts", creds=mc).get_caller_identity,
               lambda x: x["Account"] == m1 and x["Arn"] ==
               "arn:aws:sts::%s:assumed-role/%s/onboard-test" % (m1, ORG_ROLE))
        r.call("sts.AssumeRole member role from another member (not trusted)",
               lambda: t.client("sts", creds=mc).assume_role(
                   RoleArn=t.role_arn(m2), RoleSessionName="hop"))
        badtok = dict(mc, aws_session_token=mc["aws_session_token"][:-4] + "AAAA")
        r.call("sts.GetCallerIdentity with a wrong session token",
               t.client("sts", creds=badtok).get_caller_identity)
    r.call("sts.AssumeRole role that does not exist",
           lambda: sts.assume_role(RoleArn=t.role_arn(m1, "NoSuchRole"), RoleSessionName="x1"))

    roles = roles_stack(t)
    ext_arn, ext = roles["ExtRoleArn"], roles["external_id"]
    r.call("sts.AssumeRole ExternalId role without ExternalId",
           lambda: sts.assume_role(RoleArn=ext_arn, RoleSessionName="x2"))
    r.call("sts.AssumeRole ExternalId role with a wrong ExternalId",
           lambda: sts.assume_role(RoleArn=ext_arn, RoleSessionName="x3", ExternalId="wrong-id"))
    ok = r.call("sts.AssumeRole ExternalId role with the right ExternalId",
                lambda: sts.assume_role(RoleArn=ext_arn, RoleSessionName="x4", ExternalId=ext),
                lambda x: x["AssumedRoleUser"]["Arn"].startswith(
                    "arn:aws:sts::%s:assumed-role/ob-ext-%s/x4" % (t.mgmt, t.sfx)))
    nv = t.client("sts", validate=False)
    r.call("sts.AssumeRole ExternalId shorter than 2",
           lambda: nv.assume_role(RoleArn=ext_arn, RoleSessionName="x5", ExternalId="x"))
    r.call("sts.AssumeRole RoleSessionName with a space",
           lambda: nv.assume_role(RoleArn=t.role_arn(m1), RoleSessionName="a b"))
    r.call("sts.AssumeRole DurationSeconds=899",
           lambda: nv.assume_role(RoleArn=t.role_arn(m1), RoleSessionName="d1",
                                  DurationSeconds=899))
    r.call("sts.AssumeRole DurationSeconds=43201",
           lambda: nv.assume_role(RoleArn=t.role_arn(m1), RoleSessionName="d2",
                                  DurationSeconds=43201))

    def expires_in(lo, hi):
        def f(x):
            exp = x["Credentials"]["Expiration"]
            left = (exp - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
            return lo <= left <= hi
        return f

    r.call("sts.AssumeRole DurationSeconds=900: expires in 15 minutes",
           lambda: sts.assume_role(RoleArn=t.role_arn(m1), RoleSessionName="d3",
                                   DurationSeconds=900), expires_in(840, 960))
    r.call("sts.AssumeRole DurationSeconds=3601 on a role with the default MaxSessionDuration",
           lambda: sts.assume_role(RoleArn=t.role_arn(m1), RoleSessionName="d4",
                                   DurationSeconds=3601))
    long_arn = roles.get("LongRoleArn", t.role_arn(t.mgmt, "ob-long-" + t.sfx))
    r.call("sts.AssumeRole DurationSeconds=7200 on a role with MaxSessionDuration 7200",
           lambda: sts.assume_role(RoleArn=long_arn, RoleSessionName="d5", DurationSeconds=7200),
           expires_in(7100, 7300))
    if ok:
        chain = t.client("sts", creds=session_creds(ok))
        r.call("sts.AssumeRole role chaining DurationSeconds=3600",
               lambda: chain.assume_role(RoleArn=long_arn, RoleSessionName="c1",
                                         DurationSeconds=3600), expires_in(3500, 3700))
        r.call("sts.AssumeRole role chaining DurationSeconds=7200",
               lambda: chain.assume_role(RoleArn=long_arn, RoleSessionName="c2",
                                         DurationSeconds=7200))
    # Web identity, unsigned
    un = t.client("sts", unsigned=True)
    token = ("eyJhbGciOiJSUzI1NiIsImtpZCI6InNpbSJ9.eyJpc3MiOiJodHRwczovL29pZGMuZWtzLmxvY2FsIiwic3Vi"
             "Ijoic3lzdGVtOnNlcnZpY2VhY2NvdW50Om9uYm9hcmQ6d29ya2VyIiwiYXVkIjoic3RzLmFtYXpvbmF3cy5j"
             "b20ifQ.c2lnbmF0dXJl")
    web_arn = roles.get("WebRoleArn", t.role_arn(t.mgmt, "ob-web-" + t.sfx))
    w = r.call("sts.AssumeRoleWithWebIdentity unsigned, Federated trust",
               lambda: un.assume_role_with_web_identity(RoleArn=web_arn, RoleSessionName="w1",
                                                        WebIdentityToken=token),
               lambda x: x["AssumedRoleUser"]["Arn"] ==
               "arn:aws:sts::%s:assumed-role/ob-web-%s/w1" % (t.mgmt, t.sfx)
               and bool(x["Credentials"]["SessionToken"]))
    if w:
        r.call("sts.GetCallerIdentity with web identity session",
               t.client("sts", creds=session_creds(w)).get_caller_identity,
               lambda x: x["Account"] == t.mgmt and x["Arn"].endswith("/ob-web-%s/w1" % t.sfx))
    r.call("sts.AssumeRoleWithWebIdentity unsigned, role without Federated trust",
           lambda: un.assume_role_with_web_identity(RoleArn=t.role_arn(m1), RoleSessionName="w2",
                                                    WebIdentityToken=token))
    r.call("sts.GetCallerIdentity unsigned", un.get_caller_identity)
    r.raw("sts.GetCallerIdentity raw, signed 20 minutes ago",
          raw_query(t, "sts", {"Action": "GetCallerIdentity", "Version": "2011-06-15"},
                    skew_minutes=20))
    bad = dict(t.creds, aws_secret_access_key="wrong" + MGMT_SECRET[5:])
    r.call("sts.GetCallerIdentity signed with a wrong secret",
           t.client("sts", creds=bad).get_caller_identity)
    unk = {"aws_access_key_id": "AKIAUNKNOWNKEY000000", "aws_secret_access_key": MGMT_SECRET}
    r.call("sts.GetCallerIdentity with an unknown access key",
           t.client("sts", creds=unk).get_caller_identity)


def chk_cfn(t, r):
    s = t.sfx
    cfn = t.client("cloudformation")
    sts = t.client("sts")
    name = "ob-cl-cfn-" + s
    role = "ob-cfn-" + s
    tpl = json.dumps(one_role_template(t, role))
    params = [{"ParameterKey": "ExternalId", "ParameterValue": "first-" + s}]
    created = r.call("cloudformation.CreateStack roles stack (CAPABILITY_NAMED_IAM)",
                     lambda: cfn.create_stack(StackName=name, TemplateBody=tpl,
                                              Parameters=params,
                                              Capabilities=["CAPABILITY_NAMED_IAM"]),
                     lambda x: x["StackId"].startswith(
                         "arn:aws:cloudformation:us-east-1:%s:stack/%s/" % (t.mgmt, name)))
    r.call("cloudformation waiter stack_create_complete", lambda: wait_stack(cfn, name))

    def outputs_ok(x):
        st = x["Stacks"][0]
        outs = {o["OutputKey"]: o["OutputValue"] for o in st.get("Outputs", [])}
        return (st["StackStatus"] == "CREATE_COMPLETE" and st["StackName"] == name and
                outs.get("RoleArn") == "arn:aws:iam::%s:role/%s" % (t.mgmt, role) and
                {p["ParameterKey"]: p["ParameterValue"] for p in st.get("Parameters", [])} ==
                {"ExternalId": "first-" + s})

    r.call("cloudformation.DescribeStacks status and Outputs (role ARNs)",
           lambda: cfn.describe_stacks(StackName=name), outputs_ok)
    r.call("cloudformation.CreateStack same name again",
           lambda: cfn.create_stack(StackName=name, TemplateBody=tpl, Parameters=params,
                                    Capabilities=["CAPABILITY_NAMED_IAM"]))
    # ClientRequestToken
    tok_name, tok = "ob-cl-tok-" + s, "tok-" + s
    tok_tpl = json.dumps(one_role_template(t, "ob-tok-" + s))
    mk = lambda: cfn.create_stack(StackName=tok_name, TemplateBody=tok_tpl, Parameters=params,  # noqa: E731
                                  Capabilities=["CAPABILITY_NAMED_IAM"], ClientRequestToken=tok)
    first = r.call("cloudformation.CreateStack with ClientRequestToken", mk,
                   lambda x: bool(x["StackId"]))
    r.call("cloudformation.CreateStack retried with the same ClientRequestToken: same StackId", mk,
           lambda x: bool(first) and x["StackId"] == first["StackId"])
    r.call("cloudformation.CreateStack named role without capabilities",
           lambda: cfn.create_stack(StackName="ob-cl-nocap-" + s, TemplateBody=json.dumps(
               one_role_template(t, "ob-nocap-" + s)), Parameters=params))
    r.call("cloudformation.CreateStack named role with CAPABILITY_IAM only",
           lambda: cfn.create_stack(StackName="ob-cl-nocap2-" + s, TemplateBody=json.dumps(
               one_role_template(t, "ob-nocap2-" + s)), Parameters=params,
               Capabilities=["CAPABILITY_IAM"]))
    r.call("cloudformation.CreateStack template that is not JSON/YAML",
           lambda: cfn.create_stack(StackName="ob-cl-badtpl-" + s,
                                    TemplateBody='{"Resources": {"R": ['))
    r.call("cloudformation.CreateStack unknown resource type",
           lambda: cfn.create_stack(StackName="ob-cl-badtype-" + s, TemplateBody=json.dumps({
               "Resources": {"Thing": {"Type": "AWS::Nope::Thing", "Properties": {}}}})))
    r.call("cloudformation.CreateStack invalid stack name",
           lambda: cfn.create_stack(StackName="1-bad-" + s, TemplateBody=json.dumps(
               one_role_template(t, "ob-badname-" + s)), Parameters=params,
               Capabilities=["CAPABILITY_NAMED_IAM"]))
    # A resource that fails: the role name is already taken (by the stack above).
    fail_name = "ob-cl-fail-" + s
    r.call("cloudformation.CreateStack failing resource (role name taken)",
           lambda: cfn.create_stack(StackName=fail_name, TemplateBody=tpl, Parameters=params,
                                    Capabilities=["CAPABILITY_NAMED_IAM"]))
    r.call("cloudformation waiter stack_create_complete on a failing stack",
           lambda: wait_stack(cfn, fail_name, attempts=60))
    r.call("cloudformation.DescribeStacks failed stack: ROLLBACK_COMPLETE with a reason",
           lambda: cfn.describe_stacks(StackName=fail_name),
           lambda x: [x["Stacks"][0]["StackStatus"],
                      bool(x["Stacks"][0].get("StackStatusReason"))])
    r.call("cloudformation.CreateStack name of a ROLLBACK_COMPLETE stack",
           lambda: cfn.create_stack(StackName=fail_name, TemplateBody=tpl, Parameters=params,
                                    Capabilities=["CAPABILITY_NAMED_IAM"]))
    r.call("cloudformation.UpdateStack ROLLBACK_COMPLETE stack",
           lambda: cfn.update_stack(StackName=fail_name, TemplateBody=tpl, Parameters=params,
                                    Capabilities=["CAPABILITY_NAMED_IAM"]))
    def status_after(n):
        settle(cfn, n)
        try:
            st = cfn.describe_stacks(StackName=n)["Stacks"][0]
        except ClientError as e:
            return {"gone": "does not exist" in str(e), "status": None}
        return {"gone": st["StackStatus"] == "DELETE_COMPLETE", "status": st["StackStatus"],
                "reason": st.get("StackStatusReason")}

    for on_failure, key, summ in (
            ("DO_NOTHING", "cloudformation.CreateStack failing, OnFailure=DO_NOTHING: CREATE_FAILED",
             lambda x: x["status"]),
            ("DELETE", "cloudformation.CreateStack failing, OnFailure=DELETE: stack gone",
             lambda x: x["gone"])):
        n = "ob-cl-fail-%s-%s" % (on_failure.lower().replace("_", ""), s)
        r.call(key, lambda n=n, f=on_failure: (cfn.create_stack(
            StackName=n, TemplateBody=tpl, Parameters=params, OnFailure=f,
            Capabilities=["CAPABILITY_NAMED_IAM"]), status_after(n))[1], summ)
    r.call("cloudformation.CreateStack without a required parameter",
           lambda: cfn.create_stack(StackName="ob-cl-noparam-" + s, TemplateBody=json.dumps(
               one_role_template(t, "ob-noparam-" + s)), Capabilities=["CAPABILITY_NAMED_IAM"]))
    yaml_tpl = YAML_TEMPLATE % {"role": "ob-yaml-" + s, "mgmt": t.mgmt}
    r.call("cloudformation.CreateStack YAML template",
           lambda: (cfn.create_stack(StackName="ob-cl-yaml-" + s, TemplateBody=yaml_tpl,
                                     Parameters=params, Capabilities=["CAPABILITY_NAMED_IAM"]),
                    status_after("ob-cl-yaml-" + s))[1], lambda x: x["status"])
    if r.obs.get("cloudformation.CreateStack unknown resource type", {}).get("kind") == "ok":
        r.call("cloudformation.DescribeStacks unknown-resource-type stack",
               lambda: status_after("ob-cl-badtype-" + s),
               lambda x: "%s: %s" % (x["status"], x.get("reason")))
    # Updates
    r.call("cloudformation.UpdateStack no changes",
           lambda: cfn.update_stack(StackName=name, TemplateBody=tpl, Parameters=params,
                                    Capabilities=["CAPABILITY_NAMED_IAM"]))
    r.call("cloudformation.UpdateStack new ExternalId",
           lambda: cfn.update_stack(StackName=name, TemplateBody=tpl, Parameters=[
               {"ParameterKey": "ExternalId", "ParameterValue": "second-" + s}],
               Capabilities=["CAPABILITY_NAMED_IAM"]),
           lambda x: bool(created) and x["StackId"] == created["StackId"])
    r.call("cloudformation waiter stack_update_complete",
           lambda: wait_stack(cfn, name, waiter="stack_update_complete"))
    r.call("cloudformation.DescribeStacks after update: UPDATE_COMPLETE",
           lambda: cfn.describe_stacks(StackName=name), lambda x: x["Stacks"][0]["StackStatus"])
    arn = t.role_arn(t.mgmt, role)
    r.call("sts.AssumeRole with the updated ExternalId",
           lambda: sts.assume_role(RoleArn=arn, RoleSessionName="u1", ExternalId="second-" + s),
           lambda x: bool(x["Credentials"]["AccessKeyId"]))
    r.call("sts.AssumeRole with the old ExternalId after update",
           lambda: sts.assume_role(RoleArn=arn, RoleSessionName="u2", ExternalId="first-" + s))
    # Delete
    r.call("cloudformation.DeleteStack", lambda: cfn.delete_stack(StackName=name))
    r.call("cloudformation waiter stack_delete_complete",
           lambda: wait_stack(cfn, name, waiter="stack_delete_complete"))
    r.call("cloudformation.DescribeStacks deleted stack by name",
           lambda: cfn.describe_stacks(StackName=name))
    if created:
        r.call("cloudformation.DescribeStacks deleted stack by StackId: DELETE_COMPLETE",
               lambda: cfn.describe_stacks(StackName=created["StackId"]),
               lambda x: x["Stacks"][0]["StackStatus"])
    def all_stacks():
        out = []
        for page in cfn.get_paginator("describe_stacks").paginate():
            out.extend(page.get("Stacks", []))
        return {"Stacks": out}

    r.call("cloudformation.DescribeStacks without StackName: live stacks only", all_stacks,
           lambda x: [any(st["StackName"] == tok_name for st in x["Stacks"]),
                      any(st["StackName"] == name for st in x["Stacks"])])
    r.call("sts.AssumeRole after its stack was deleted",
           lambda: sts.assume_role(RoleArn=arn, RoleSessionName="u3", ExternalId="second-" + s))
    r.call("cloudformation.DescribeStacks stack that never existed",
           lambda: cfn.describe_stacks(StackName="ob-cl-never-" + s))
    r.call("cloudformation.DeleteStack stack that does not exist",
           lambda: cfn.delete_stack(StackName="ob-cl-never-" + s))

    def list_all(**kw):
        out = []
        for page in cfn.get_paginator("list_stacks").paginate(**kw):
            out.extend(page.get("StackSummaries", []))
        return {"StackSummaries": out}

    def statuses(x):
        mine = {}
        for st in x["StackSummaries"]:
            if st["StackName"].endswith(s):
                mine.setdefault(st["StackName"], set()).add(st["StackStatus"])
        return ("DELETE_COMPLETE" in mine.get(name, ()) and
                "ROLLBACK_COMPLETE" in mine.get(fail_name, ()) and
                "CREATE_COMPLETE" in mine.get(tok_name, ()))

    r.call("cloudformation.ListStacks: statuses of this run's stacks", list_all, statuses)
    r.call("cloudformation.ListStacks StackStatusFilter CREATE_COMPLETE",
           lambda: list_all(StackStatusFilter=["CREATE_COMPLETE"]),
           lambda x: [any(st["StackName"] == tok_name for st in x["StackSummaries"]),
                      any(st["StackName"] == name for st in x["StackSummaries"])])
    bad = dict(t.creds, aws_secret_access_key="wrong" + MGMT_SECRET[5:])
    r.call("cloudformation.CreateStack signed with a wrong secret",
           lambda: t.client("cloudformation", creds=bad).create_stack(
               StackName="ob-cl-badsig-" + s, TemplateBody=tpl, Parameters=params,
               Capabilities=["CAPABILITY_NAMED_IAM"]))


YAML_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  ExternalId:
    Type: String
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      RoleName: %(role)s
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal:
              AWS: "arn:aws:iam::%(mgmt)s:root"
            Action: sts:AssumeRole
            Condition:
              StringEquals:
                "sts:ExternalId": !Ref ExternalId
Outputs:
  RoleArn:
    Value: !GetAtt Role.Arn
"""


def report(name, bucket, **kw):
    d = {"ReportName": name, "TimeUnit": "HOURLY", "Format": "textORcsv",
         "Compression": "GZIP", "AdditionalSchemaElements": ["RESOURCES"],
         "S3Bucket": bucket, "S3Prefix": "CUR", "S3Region": "us-east-1",
         "AdditionalArtifacts": ["REDSHIFT"], "RefreshClosedReports": True,
         "ReportVersioning": "CREATE_NEW_REPORT"}
    d.update(kw)
    return {k: v for k, v in d.items() if v is not None}


def chk_cur(t, r):
    s = t.sfx
    s3 = t.client("s3")
    cur = t.client("cur", "us-east-1", validate=False)
    bucket = "ob-cur-%s" % s
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(cur_policy(bucket, t.mgmt)))
    base = report("onboard-cur", bucket)
    r.call("cur.PutReportDefinition defaults, bucket with the CUR policy",
           lambda: cur.put_report_definition(ReportDefinition=base))

    def describe_all(client):
        out = []
        for page in client.get_paginator("describe_report_definitions").paginate():
            out.extend(page.get("ReportDefinitions", []))
        return {"ReportDefinitions": out}

    r.call("cur.DescribeReportDefinitions: the report as put", lambda: describe_all(cur),
           lambda x: [d for d in x["ReportDefinitions"] if d["ReportName"] == "onboard-cur"]
           and all(
               [d for d in x["ReportDefinitions"] if d["ReportName"] == "onboard-cur"][0].get(k)
               == v for k, v in base.items()))
    nopol = "ob-cur-nopol-%s" % s
    s3.create_bucket(Bucket=nopol)
    r.call("cur.PutReportDefinition bucket without a policy",
           lambda: cur.put_report_definition(ReportDefinition=report("r-nopol", nopol)))
    other = "ob-cur-other-%s" % s
    s3.create_bucket(Bucket=other)
    s3.put_bucket_policy(Bucket=other, Policy=json.dumps(deny_insecure_policy(other)))
    r.call("cur.PutReportDefinition bucket whose policy does not name billingreports",
           lambda: cur.put_report_definition(ReportDefinition=report("r-other", other)))
    r.call("cur.PutReportDefinition missing bucket",
           lambda: cur.put_report_definition(ReportDefinition=report("r-missing",
                                                                     "ob-cur-none-" + s)))
    # A member's bucket (with a CUR policy for the member account).
    mcreds = t.assume(member(3))
    ms3 = t.client("s3", creds=mcreds)
    mbucket = "ob-cur-m3-%s" % s
    ms3.create_bucket(Bucket=mbucket)
    ms3.put_bucket_policy(Bucket=mbucket, Policy=json.dumps(cur_policy(mbucket, member(3))))
    r.call("cur.PutReportDefinition bucket of another account",
           lambda: cur.put_report_definition(ReportDefinition=report("r-theirs", mbucket)))
    r.call("cur.PutReportDefinition same name again",
           lambda: cur.put_report_definition(ReportDefinition=base))
    invalid = {
        "ATHENA with REDSHIFT": dict(AdditionalArtifacts=["ATHENA", "REDSHIFT"], Format="Parquet",
                                     Compression="Parquet", ReportVersioning="OVERWRITE_REPORT"),
        "ATHENA with textORcsv": dict(AdditionalArtifacts=["ATHENA"],
                                      ReportVersioning="OVERWRITE_REPORT"),
        "ATHENA with CREATE_NEW_REPORT": dict(AdditionalArtifacts=["ATHENA"], Format="Parquet",
                                              Compression="Parquet"),
        "ATHENA with an empty prefix": dict(AdditionalArtifacts=["ATHENA"], Format="Parquet",
                                            Compression="Parquet", S3Prefix="",
                                            ReportVersioning="OVERWRITE_REPORT"),
        "Parquet format with GZIP": dict(AdditionalArtifacts=None, Format="Parquet"),
        "textORcsv with Parquet compression": dict(AdditionalArtifacts=None,
                                                   Compression="Parquet"),
        "REDSHIFT with Parquet": dict(Format="Parquet", Compression="Parquet"),
        "QUICKSIGHT with Parquet": dict(AdditionalArtifacts=["QUICKSIGHT"], Format="Parquet",
                                        Compression="Parquet"),
        "TimeUnit WEEKLY": dict(TimeUnit="WEEKLY"),
        "ReportName with a space": dict(ReportName="bad name"),
        "S3Prefix with a space": dict(S3Prefix="bad prefix"),
        "Compression BZIP2": dict(Compression="BZIP2"),
        "AdditionalArtifacts unknown": dict(AdditionalArtifacts=["EXCEL"]),
        "ReportName of 257 characters": dict(ReportName="r" * 257),
    }
    for i, (k, kw) in enumerate(invalid.items()):
        d = report("r-invalid-%d" % i, bucket, **kw)
        r.call("cur.PutReportDefinition invalid: %s" % k,
               lambda d=d: cur.put_report_definition(ReportDefinition=d))
    r.call("cur.PutReportDefinition ATHENA, Parquet, OVERWRITE_REPORT, prefix",
           lambda: cur.put_report_definition(ReportDefinition=report(
               "onboard-athena", bucket, AdditionalArtifacts=["ATHENA"], Format="Parquet",
               Compression="Parquet", ReportVersioning="OVERWRITE_REPORT", S3Prefix="athena",
               RefreshClosedReports=None)))

    def put_more():
        for i in range(3, 6):
            cur.put_report_definition(ReportDefinition=report("onboard-%d" % i, bucket,
                                                              TimeUnit="DAILY"))
        return True

    r.call("cur.PutReportDefinition reports 3..5", put_more, lambda x: True)
    r.call("cur.PutReportDefinition sixth report",
           lambda: cur.put_report_definition(ReportDefinition=report("onboard-6", bucket)))
    five = {"onboard-cur", "onboard-athena", "onboard-3", "onboard-4", "onboard-5"}
    r.call("cur.DescribeReportDefinitions paginator (management): its 5 reports",
           lambda: describe_all(cur),
           lambda x: sorted(d["ReportName"] for d in x["ReportDefinitions"]) == sorted(five))
    mcur = t.client("cur", creds=mcreds)

    def member_reports():
        for n in ("member-a", "member-b"):
            mcur.put_report_definition(ReportDefinition=report(n, mbucket))
        return True

    r.call("cur.PutReportDefinition member account, own bucket (2 reports)", member_reports,
           lambda x: True)
    r.call("cur.DescribeReportDefinitions paginator (member): its 2 reports only",
           lambda: describe_all(mcur),
           lambda x: sorted(d["ReportName"] for d in x["ReportDefinitions"]) ==
           ["member-a", "member-b"])
    def pages5():
        pages = list(cur.get_paginator("describe_report_definitions").paginate(
            PaginationConfig={"PageSize": 5}))
        return {"pages": [len(p.get("ReportDefinitions", [])) for p in pages]}

    r.call("cur.DescribeReportDefinitions PageSize 5 (MaxResults=5): each page at most 5", pages5,
           lambda x: all(n <= 5 for n in x["pages"]) and sum(x["pages"]) == 5)
    r.call("cur.ModifyReportDefinition TimeUnit DAILY",
           lambda: cur.modify_report_definition(ReportName="onboard-cur", ReportDefinition=report(
               "onboard-cur", bucket, TimeUnit="DAILY")))
    r.call("cur.DescribeReportDefinitions after modify: DAILY", lambda: describe_all(cur),
           lambda x: [d["TimeUnit"] for d in x["ReportDefinitions"]
                      if d["ReportName"] == "onboard-cur"][0])
    r.call("cur.ModifyReportDefinition missing report",
           lambda: cur.modify_report_definition(ReportName="no-such-report",
                                                ReportDefinition=report("no-such-report", bucket)))
    r.call("cur.ModifyReportDefinition invalid combination",
           lambda: cur.modify_report_definition(ReportName="onboard-cur", ReportDefinition=report(
               "onboard-cur", bucket, Format="Parquet")))
    r.call("cur.DeleteReportDefinition",
           lambda: cur.delete_report_definition(ReportName="onboard-3"))
    r.call("cur.DescribeReportDefinitions after delete: gone", lambda: describe_all(cur),
           lambda x: "onboard-3" not in {d["ReportName"] for d in x["ReportDefinitions"]} and
           len(x["ReportDefinitions"]) == 4)
    r.call("cur.DeleteReportDefinition missing report",
           lambda: cur.delete_report_definition(ReportName="no-such-report"),
           lambda x: x.get("ResponseMessage"))
    r.call("cur.PutReportDefinition after a delete frees a slot",
           lambda: cur.put_report_definition(ReportDefinition=report("onboard-6", bucket)))
    bad = dict(t.creds, aws_secret_access_key="wrong" + MGMT_SECRET[5:])
    r.call("cur.DescribeReportDefinitions signed with a wrong secret",
           t.client("cur", creds=bad).describe_report_definitions)
    unk = {"aws_access_key_id": "AKIAUNKNOWNKEY000000", "aws_secret_access_key": MGMT_SECRET}
    r.call("cur.DescribeReportDefinitions with an unknown access key",
           t.client("cur", creds=unk).describe_report_definitions)


def chk_org(t, r):
    org = t.client("organizations")
    pages = []

    def all_accounts():
        out = []
        for page in org.get_paginator("list_accounts").paginate():
            pages.append(len(page.get("Accounts", [])))
            out.extend(page.get("Accounts", []))
        return {"Accounts": out}

    want = {MGMT} | {member(i) for i in range(1, MEMBERS + 1)}
    resp = r.call("organizations.ListAccounts paginator: 61 accounts, all ids", all_accounts,
                  lambda x: len(x["Accounts"]) == 61 and {a["Id"] for a in x["Accounts"]} == want
                  and all(a["Arn"].endswith("/" + a["Id"]) and a.get("Email") and a.get("Name")
                          for a in x["Accounts"]))
    if resp:
        # botocore 1.29 models only the retiring Status; newer ones also State.
        r.put("organizations.ListAccounts: SUSPENDED accounts marked",
              {"kind": "ok", "status": 200, "value": sorted(
                  a["Id"] for a in resp["Accounts"]
                  if a.get("State", a.get("Status")) == "SUSPENDED")})
        r.put("organizations.ListAccounts: more than one page",
              {"kind": "ok", "status": 200, "value": len(pages) > 1})
    def raw_pages():
        accounts, token = [], None
        for _ in range(20):
            body = {"MaxResults": 20}
            if token:
                body["NextToken"] = token
            st, _h, data = raw_json(t, "organizations", "AWSOrganizationsV20161128.ListAccounts",
                                    body)
            if st != 200:
                raise RuntimeError("HTTP %d: %r" % (st, data[:200]))
            j = json.loads(data)
            accounts.extend(j.get("Accounts", []))
            token = j.get("NextToken")
            if not token:
                break
        return {"Accounts": accounts}

    r.call("organizations.ListAccounts raw JSON: State and Status on every account", raw_pages,
           lambda x: len(x["Accounts"]) == 61 and all(
               a.get("State") in ("ACTIVE", "SUSPENDED", "PENDING_CLOSURE", "CLOSED") and
               a.get("Status") in ("ACTIVE", "SUSPENDED", "PENDING_CLOSURE")
               for a in x["Accounts"]) and
           {a["Id"] for a in x["Accounts"] if a["State"] == "SUSPENDED"} == SUSPENDED)
    r.call("organizations.DescribeAccount: a member, ACTIVE",
           lambda: org.describe_account(AccountId=member(3)),
           lambda x: x["Account"]["Id"] == member(3) and x["Account"]["Status"] == "ACTIVE" and
           x["Account"]["Arn"].endswith("/" + member(3)) and bool(x["Account"].get("Email")))
    r.call("organizations.DescribeAccount: a SUSPENDED member",
           lambda: org.describe_account(AccountId=sorted(SUSPENDED)[0]),
           lambda x: x["Account"]["Status"])
    r.call("organizations.DescribeAccount: an account outside the organization",
           lambda: org.describe_account(AccountId="999999999999"))
    mcreds = t.assume(member(4))
    r.call("organizations.ListAccounts as a member account",
           t.client("organizations", creds=mcreds).list_accounts)
    bad = dict(t.creds, aws_secret_access_key="wrong" + MGMT_SECRET[5:])
    r.call("organizations.ListAccounts signed with a wrong secret",
           t.client("organizations", creds=bad).list_accounts)
    unk = {"aws_access_key_id": "AKIAUNKNOWNKEY000000", "aws_secret_access_key": MGMT_SECRET}
    r.call("organizations.ListAccounts with an unknown access key",
           t.client("organizations", creds=unk).list_accounts)


def chk_org_tree(t, r):
    org = t.client("organizations")
    nv = t.client("organizations", validate=False)
    root = "r-sim0"
    r.call("organizations.ListRoots: one root", org.list_roots,
           lambda x: [[ro["Id"], ro["Name"], ro["Arn"].endswith("/" + ro["Id"]),
                       ro["PolicyTypes"]] for ro in x["Roots"]])
    st, ans = admin_post(t, "/_sim/ous", {"Name": "Billing"})
    billing = ans["ou"]["Id"]
    st, ans = admin_post(t, "/_sim/ous", {"Name": "Prod", "ParentId": billing})
    prod = ans["ou"]["Id"]

    def paged(op, key, **kw):
        out = []
        for page in org.get_paginator(op).paginate(**kw):
            out.extend(page.get(key, []))
        return {key: out}

    r.call("organizations.ListOrganizationalUnitsForParent root: the OU POST /_sim/ous added",
           lambda: org.list_organizational_units_for_parent(ParentId=root),
           lambda x: [o["Name"] for o in x["OrganizationalUnits"]])
    r.call("organizations.ListOrganizationalUnitsForParent paginator, nested OU",
           lambda: paged("list_organizational_units_for_parent", "OrganizationalUnits",
                         ParentId=billing),
           lambda x: [o["Name"] for o in x["OrganizationalUnits"]])
    r.call("organizations.DescribeOrganizationalUnit: Id pattern, Name, Arn",
           lambda: org.describe_organizational_unit(OrganizationalUnitId=prod),
           lambda x: [bool(re.match(r"^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$",
                                    x["OrganizationalUnit"]["Id"])),
                      x["OrganizationalUnit"]["Name"],
                      x["OrganizationalUnit"]["Arn"].endswith("/" + prod)])
    moved = member(7)
    r.call("organizations.MoveAccount member to the nested OU",
           lambda: org.move_account(AccountId=moved, SourceParentId=root,
                                    DestinationParentId=prod))
    r.call("organizations.ListAccountsForParent nested OU: the moved account",
           lambda: org.list_accounts_for_parent(ParentId=prod),
           lambda x: [a["Id"] == moved for a in x["Accounts"]])
    pages = []

    def root_accounts():
        out = []
        for page in org.get_paginator("list_accounts_for_parent").paginate(
                ParentId=root, PaginationConfig={"PageSize": 20}):
            pages.append(len(page["Accounts"]))
            out.extend(page["Accounts"])
        return {"Accounts": out}

    r.call("organizations.ListAccountsForParent paginator root, PageSize 20: 60 accounts, 3 pages",
           root_accounts, lambda x: [len({a["Id"] for a in x["Accounts"]}), len(pages)])
    names = {billing: "Billing", prod: "Prod", root: root}
    r.call("organizations.ListParents account: its OU",
           lambda: org.list_parents(ChildId=moved),
           lambda x: [[names[p["Id"]], p["Type"]] for p in x["Parents"]])
    r.call("organizations.ListParents paginator, top OU: the root",
           lambda: paged("list_parents", "Parents", ChildId=billing),
           lambda x: [[p["Id"], p["Type"]] for p in x["Parents"]])
    r.call("organizations.ListChildren root, ORGANIZATIONAL_UNIT",
           lambda: org.list_children(ParentId=root, ChildType="ORGANIZATIONAL_UNIT"),
           lambda x: [names[c["Id"]] for c in x["Children"]])
    r.call("organizations.ListChildren paginator nested OU, ACCOUNT",
           lambda: paged("list_children", "Children", ParentId=prod, ChildType="ACCOUNT"),
           lambda x: [c["Id"] == moved and c["Type"] == "ACCOUNT" for c in x["Children"]])
    r.call("organizations.ListAccountsForParent OU that does not exist",
           lambda: org.list_accounts_for_parent(ParentId="ou-sim0-zzzzzzzz"))
    r.call("organizations.ListParents account that does not exist",
           lambda: org.list_parents(ChildId="999999999999"))
    r.call("organizations.DescribeOrganizationalUnit OU that does not exist",
           lambda: org.describe_organizational_unit(OrganizationalUnitId="ou-sim0-zzzzzzzz"))
    r.call("organizations.MoveAccount to where it is",
           lambda: org.move_account(AccountId=moved, SourceParentId=prod,
                                    DestinationParentId=prod))
    r.call("organizations.ListChildren ChildType USER (no client validation)",
           lambda: nv.list_children(ParentId=root, ChildType="USER"))

    # CreateAccount: IN_PROGRESS for organizations.account_create (300 ms here), then done.
    created = r.call("organizations.CreateAccount: IN_PROGRESS with a car- id",
                     lambda: org.create_account(Email="new-%s@example.com" % t.sfx,
                                                AccountName="created " + t.sfx),
                     lambda x: [x["CreateAccountStatus"]["State"],
                                bool(re.match(r"^car-[a-z0-9]{8,32}$",
                                              x["CreateAccountStatus"]["Id"]))])

    def status(car):
        return org.describe_create_account_status(CreateAccountRequestId=car)

    if created:
        car = created["CreateAccountStatus"]["Id"]
        r.call("organizations.DescribeCreateAccountStatus at once: IN_PROGRESS",
               lambda: status(car), lambda x: x["CreateAccountStatus"]["State"])
        done = r.call(
            "organizations.DescribeCreateAccountStatus after organizations.account_create: "
            "SUCCEEDED",
            lambda: poll(lambda: status(car),
                         lambda x: x["CreateAccountStatus"]["State"] != "IN_PROGRESS"),
            lambda x: [x["CreateAccountStatus"]["State"], x["CreateAccountStatus"].get("AccountId"),
                       x["CreateAccountStatus"]["CompletedTimestamp"] >=
                       x["CreateAccountStatus"]["RequestedTimestamp"]])
        if done:
            new = done["CreateAccountStatus"]["AccountId"]
            r.call("organizations.DescribeAccount the created account: ACTIVE, CREATED",
                   lambda: org.describe_account(AccountId=new),
                   lambda x: [x["Account"]["Status"], x["Account"]["JoinedMethod"]])
            r.call("organizations.ListParents the created account: the root",
                   lambda: org.list_parents(ChildId=new),
                   lambda x: [[p["Id"], p["Type"]] for p in x["Parents"]])
            r.call("sts.AssumeRole OrganizationAccountAccessRole of the created account",
                   lambda: t.client("sts").assume_role(RoleArn=t.role_arn(new),
                                                       RoleSessionName="new-account"),
                   lambda x: x["AssumedRoleUser"]["Arn"].startswith(
                       "arn:aws:sts::%s:assumed-role/%s/" % (new, ORG_ROLE)))
    taken = org.create_account(Email="aws+member-1@example.com", AccountName="taken")
    tid = taken["CreateAccountStatus"]["Id"]
    r.call("organizations.DescribeCreateAccountStatus email taken: FAILED EMAIL_ALREADY_EXISTS",
           lambda: poll(lambda: status(tid),
                        lambda x: x["CreateAccountStatus"]["State"] != "IN_PROGRESS"),
           lambda x: [x["CreateAccountStatus"]["State"],
                      x["CreateAccountStatus"].get("FailureReason"),
                      x["CreateAccountStatus"].get("AccountId")])
    r.call("organizations.ListCreateAccountStatus paginator States FAILED: the taken email's request",
           lambda: paged("list_create_account_status", "CreateAccountStatuses",
                         States=["FAILED"]),
           lambda x: [c["Id"] for c in x["CreateAccountStatuses"]] == [tid])
    r.call("organizations.DescribeCreateAccountStatus id that does not exist",
           lambda: status("car-0123456789abcdef0123456789abcdef"))


def chk_drift(t, r):
    """Drift made with POST /_sim/drift, found with CloudFormation's drift detection and the
    S3 and CUR reads the fleet verifies with."""
    s = t.sfx
    cfn = t.client("cloudformation")
    name, role = "ob-cl-drift-" + s, "ob-drift-" + s
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(one_role_template(t, role)),
                     Parameters=[{"ParameterKey": "ExternalId", "ParameterValue": "ext-" + s}],
                     Capabilities=["CAPABILITY_NAMED_IAM"])
    wait_stack(cfn, name)

    def drift_info():
        return cfn.describe_stacks(StackName=name)["Stacks"][0].get("DriftInformation", {})

    r.call("cloudformation.DescribeStacks before any detection: NOT_CHECKED", drift_info,
           lambda x: [x.get("StackDriftStatus"), "LastCheckTimestamp" in x])

    def detection(did):
        return cfn.describe_stack_drift_detection_status(StackDriftDetectionId=did)

    def finished(did):
        return poll(lambda: detection(did),
                    lambda x: x["DetectionStatus"] != "DETECTION_IN_PROGRESS")

    def outcome(x):
        return [x["DetectionStatus"], x.get("StackDriftStatus"),
                x.get("DriftedStackResourceCount")]

    det = r.call("cloudformation.DetectStackDrift: a StackDriftDetectionId",
                 lambda: cfn.detect_stack_drift(StackName=name),
                 lambda x: len(x["StackDriftDetectionId"]) == 36)
    if det:
        did = det["StackDriftDetectionId"]
        r.call("cloudformation.DescribeStackDriftDetectionStatus at once: DETECTION_IN_PROGRESS",
               lambda: detection(did), lambda x: x["DetectionStatus"])
        r.call("cloudformation.DetectStackDrift while one runs",
               lambda: cfn.detect_stack_drift(StackName=name))
        r.call("cloudformation.DescribeStackDriftDetectionStatus after cloudformation.drift_detect: "
               "IN_SYNC", lambda: finished(did), outcome)

    def resource_drifts(**kw):
        return cfn.describe_stack_resource_drifts(StackName=name, **kw)

    r.call("cloudformation.DescribeStackResourceDrifts in sync", resource_drifts,
           lambda x: [[d["LogicalResourceId"], d["StackResourceDriftStatus"],
                       json.loads(d["ExpectedProperties"]) == json.loads(d["ActualProperties"])]
                      for d in x["StackResourceDrifts"]])
    r.call("cloudformation.DescribeStacks after a detection: IN_SYNC, LastCheckTimestamp",
           drift_info, lambda x: [x.get("StackDriftStatus"), "LastCheckTimestamp" in x])
    sim_drift(t, Account=t.mgmt, Kind="trust_policy", RoleName=role)
    did = cfn.detect_stack_drift(StackName=name)["StackDriftDetectionId"]
    r.call("cloudformation.DescribeStackDriftDetectionStatus after the trust drift: DRIFTED",
           lambda: finished(did), outcome)
    r.call("cloudformation.DescribeStackResourceDrifts MODIFIED: the ExternalId condition removed",
           lambda: resource_drifts(StackResourceDriftStatusFilters=["MODIFIED"]),
           lambda x: [x["StackResourceDrifts"][0]["StackResourceDriftStatus"],
                      [[p["PropertyPath"], p["DifferenceType"]]
                       for p in x["StackResourceDrifts"][0]["PropertyDifferences"]],
                      "sts:ExternalId" not in x["StackResourceDrifts"][0]["ActualProperties"]])
    sim_drift(t, Account=t.mgmt, Kind="delete_role", RoleName=role)
    did = cfn.detect_stack_drift(StackName=name)["StackDriftDetectionId"]
    finished(did)
    r.call("cloudformation.DescribeStackResourceDrifts after the role was deleted: DELETED",
           resource_drifts,
           lambda x: [[d["LogicalResourceId"], d["StackResourceDriftStatus"],
                       "ExpectedProperties" in d] for d in x["StackResourceDrifts"]])
    r.call("sts.AssumeRole on the role deleted out of band",
           lambda: t.client("sts").assume_role(RoleArn=t.role_arn(t.mgmt, role),
                                               RoleSessionName="gone", ExternalId="ext-" + s))
    r.call("cloudformation.DescribeStackDriftDetectionStatus id that does not exist",
           lambda: detection("00000000-0000-4000-8000-000000000000"))

    # The bucket and the report the fleet made, drifted; read back as the fleet verifies.
    s3, cur = t.client("s3"), t.client("cur")
    bucket = "ob-cl-drift-%s" % s
    s3.create_bucket(Bucket=bucket)
    pol = cur_policy(bucket, t.mgmt)
    pol["Statement"].append(deny_insecure_policy(bucket)["Statement"][0])
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(pol))
    cur.put_report_definition(ReportDefinition=report("drift-" + s, bucket))
    sim_drift(t, Account=t.mgmt, Kind="bucket_policy", Bucket=bucket)
    r.call("s3.GetBucketPolicy after POST /_sim/drift bucket_policy: billingreports gone",
           lambda: s3.get_bucket_policy(Bucket=bucket),
           lambda x: [st.get("Sid") or st["Principal"]["Service"]
                      for st in json.loads(x["Policy"])["Statement"]])
    sim_drift(t, Account=t.mgmt, Kind="delete_bucket_policy", Bucket=bucket)
    r.call("s3.GetBucketPolicy after POST /_sim/drift delete_bucket_policy",
           lambda: s3.get_bucket_policy(Bucket=bucket))
    sim_drift(t, Account=t.mgmt, Kind="public_access", Bucket=bucket)
    r.call("s3.GetPublicAccessBlock after POST /_sim/drift public_access",
           lambda: s3.get_public_access_block(Bucket=bucket))
    sim_drift(t, Account=t.mgmt, Kind="ownership", Bucket=bucket)
    r.call("s3.GetBucketOwnershipControls after POST /_sim/drift ownership",
           lambda: s3.get_bucket_ownership_controls(Bucket=bucket),
           lambda x: x["OwnershipControls"]["Rules"][0]["ObjectOwnership"])
    sim_drift(t, Account=t.mgmt, Kind="ownership", Bucket=bucket, Ownership=None)
    r.call("s3.GetBucketOwnershipControls after POST /_sim/drift ownership null",
           lambda: s3.get_bucket_ownership_controls(Bucket=bucket))
    sim_drift(t, Account=t.mgmt, Kind="encryption", Bucket=bucket)
    r.call("s3.GetBucketEncryption after POST /_sim/drift encryption",
           lambda: s3.get_bucket_encryption(Bucket=bucket),
           lambda x: x["ServerSideEncryptionConfiguration"]["Rules"][0][
               "ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"])
    sim_drift(t, Account=t.mgmt, Kind="change_report", ReportName="drift-" + s,
              Changes={"TimeUnit": "DAILY"})
    r.call("cur.DescribeReportDefinitions after POST /_sim/drift change_report",
           cur.describe_report_definitions,
           lambda x: [d["TimeUnit"] for d in x["ReportDefinitions"]
                      if d["ReportName"] == "drift-" + s][0])
    sim_drift(t, Account=t.mgmt, Kind="delete_report", ReportName="drift-" + s)
    r.call("cur.DescribeReportDefinitions after POST /_sim/drift delete_report",
           cur.describe_report_definitions,
           lambda x: [d["ReportName"] for d in x["ReportDefinitions"]])
    sim_drift(t, Account=t.mgmt, Kind="delete_bucket", Bucket=bucket)
    r.call("s3.HeadBucket after POST /_sim/drift delete_bucket",
           lambda: s3.head_bucket(Bucket=bucket))


# ---- awscli ----

def run_aws(t, args, creds=None, region="us-east-1", home=None):
    c = creds or t.creds
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8",
           "AWS_ACCESS_KEY_ID": c["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": c["aws_secret_access_key"],
           "AWS_DEFAULT_REGION": region, "AWS_PAGER": "",
           "AWS_CONFIG_FILE": os.path.join(home, "config"),
           "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "credentials"),
           "AWS_EC2_METADATA_DISABLED": "true"}
    if c.get("aws_session_token"):
        env["AWS_SESSION_TOKEN"] = c["aws_session_token"]
    p = subprocess.run([AWS_CLI] + args + ["--endpoint-url", t.url, "--output", "json"],
                       env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def chk_awscli(t, r, home):
    s = t.sfx
    with open(os.path.join(home, "config"), "w") as f:
        f.write("[default]\nregion = us-east-1\noutput = json\ncli_pager =\n"
                "s3 =\n  addressing_style = path\n")
    open(os.path.join(home, "credentials"), "w").close()

    def cli(key, args, check, **kw):
        rc, out, err = run_aws(t, args, home=home, **kw)
        try:
            good = bool(check(out, err))
        except Exception as e:
            good = False
            err += "\n(check raised %r)" % e
        r.put("awscli: aws " + key, {"kind": "ok", "status": None, "value": [rc, good],
                                 "message": (out + err)[-400:]})
        return rc, out, err

    def js(out):
        return json.loads(out) if out.strip() else {}

    def error_line(code, op):
        return lambda out, err: ("An error occurred (%s) when calling the %s operation"
                                 % (code, op)) in err

    cli("sts get-caller-identity", ["sts", "get-caller-identity"],
        lambda o, e: js(o)["Account"] == MGMT and js(o)["Arn"].startswith("arn:aws:iam::"))
    b = "ob-cli-%s" % s
    cli("s3api create-bucket", ["s3api", "create-bucket", "--bucket", b],
        lambda o, e: js(o).get("Location") is not None)
    cli("s3api create-bucket --create-bucket-configuration LocationConstraint=eu-west-1 "
        "(--region eu-west-1)",
        ["s3api", "create-bucket", "--bucket", b + "-eu", "--create-bucket-configuration",
         "LocationConstraint=eu-west-1"], lambda o, e: True, region="eu-west-1")
    cli("s3api put-bucket-policy", ["s3api", "put-bucket-policy", "--bucket", b, "--policy",
                                    json.dumps(cur_policy(b, MGMT))], lambda o, e: True)
    cli("s3api get-bucket-policy", ["s3api", "get-bucket-policy", "--bucket", b],
        lambda o, e: json.loads(js(o)["Policy"]) == cur_policy(b, MGMT))
    cli("s3api head-bucket", ["s3api", "head-bucket", "--bucket", b], lambda o, e: True)
    cli("s3api get-bucket-location", ["s3api", "get-bucket-location", "--bucket", b + "-eu"],
        lambda o, e: js(o)["LocationConstraint"] == "eu-west-1")
    cli("s3api put-public-access-block",
        ["s3api", "put-public-access-block", "--bucket", b, "--public-access-block-configuration",
         "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,"
         "RestrictPublicBuckets=true"], lambda o, e: True)
    cli("s3api put-bucket-encryption",
        ["s3api", "put-bucket-encryption", "--bucket", b, "--server-side-encryption-configuration",
         json.dumps({"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})],
        lambda o, e: True)
    cli("s3api put-bucket-ownership-controls",
        ["s3api", "put-bucket-ownership-controls", "--bucket", b, "--ownership-controls",
         "Rules=[{ObjectOwnership=BucketOwnerEnforced}]"], lambda o, e: True)
    rep = report("cli-report-" + s, b)
    cli("cur put-report-definition", ["cur", "put-report-definition", "--report-definition",
                                      json.dumps(rep)], lambda o, e: True)
    cli("cur describe-report-definitions", ["cur", "describe-report-definitions"],
        lambda o, e: any(d["ReportName"] == rep["ReportName"] and d["S3Bucket"] == b
                         for d in js(o)["ReportDefinitions"]))
    tpl_path = os.path.join(home, "template.json")
    with open(tpl_path, "w") as f:
        json.dump(one_role_template(t, "ob-cli-" + s), f)
    stack = "ob-cli-stack-" + s
    cli("cloudformation create-stack",
        ["cloudformation", "create-stack", "--stack-name", stack, "--template-body",
         "file://" + tpl_path, "--capabilities", "CAPABILITY_NAMED_IAM", "--parameters",
         "ParameterKey=ExternalId,ParameterValue=cli-" + s],
        lambda o, e: js(o)["StackId"].startswith("arn:aws:cloudformation:us-east-1:"))
    # The CLI waiter polls every 30 s; let the stack finish first so its first poll answers.
    cfn = t.client("cloudformation")
    settle(cfn, stack)
    cli("cloudformation wait stack-create-complete",
        ["cloudformation", "wait", "stack-create-complete", "--stack-name", stack],
        lambda o, e: True)
    cli("cloudformation describe-stacks", ["cloudformation", "describe-stacks", "--stack-name",
                                           stack],
        lambda o, e: js(o)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE" and
        js(o)["Stacks"][0]["Outputs"][0]["OutputValue"] ==
        "arn:aws:iam::%s:role/ob-cli-%s" % (MGMT, s))
    cli("cloudformation list-stacks", ["cloudformation", "list-stacks"],
        lambda o, e: any(x["StackName"] == stack for x in js(o)["StackSummaries"]))
    cli("organizations list-accounts", ["organizations", "list-accounts"],
        lambda o, e: len(js(o)["Accounts"]) == 61 and sorted(
            a["Id"] for a in js(o)["Accounts"]
            if a.get("State", a.get("Status")) == "SUSPENDED") == sorted(SUSPENDED))
    # Errors
    cli("s3api get-bucket-policy (no policy): exit 254",
        ["s3api", "get-bucket-policy", "--bucket", b + "-eu"],
        error_line("NoSuchBucketPolicy", "GetBucketPolicy"))
    cli("s3api head-bucket (missing): exit 254",
        ["s3api", "head-bucket", "--bucket", b + "-missing"],
        lambda o, e: "An error occurred (404) when calling the HeadBucket operation: Not Found" in e)
    mcreds = t.assume(member(5))
    mb = "ob-cli-m5-%s" % s
    t.client("s3", creds=mcreds).create_bucket(Bucket=mb)
    cli("s3api create-bucket (name of another account): exit 254",
        ["s3api", "create-bucket", "--bucket", mb],
        error_line("BucketAlreadyExists", "CreateBucket"))
    cli("cloudformation describe-stacks (missing): exit 254",
        ["cloudformation", "describe-stacks", "--stack-name", "ob-cli-missing-" + s],
        lambda o, e: error_line("ValidationError", "DescribeStacks")(o, e) and
        "does not exist" in e)
    bad = dict(t.creds, aws_secret_access_key="wrong" + MGMT_SECRET[5:])
    cli("sts get-caller-identity (wrong secret): exit 254", ["sts", "get-caller-identity"],
        error_line("SignatureDoesNotMatch", "GetCallerIdentity"), creds=bad)
    cli("cur put-report-definition (bucket without policy): exit 254",
        ["cur", "put-report-definition", "--report-definition",
         json.dumps(report("cli-nopol-" + s, b + "-eu"))],
        error_line("ValidationException", "PutReportDefinition"))
    cli("organizations list-accounts (member): exit 254", ["organizations", "list-accounts"],
        error_line("AccessDeniedException", "ListAccounts"), creds=mcreds)
    # A stack that fails (role name taken) makes the CLI waiter fail: exit 255.
    fail = "ob-cli-fail-" + s
    try:
        cfn.create_stack(StackName=fail, TemplateBody=json.dumps(
            one_role_template(t, "ob-cli-" + s)), Parameters=[
                {"ParameterKey": "ExternalId", "ParameterValue": "x-" + s}],
            Capabilities=["CAPABILITY_NAMED_IAM"])
    except ClientError as e:
        print("  awscli: the failing stack was refused at once: %s" % e)
    settle(cfn, fail)
    cli("cloudformation wait stack-create-complete (ROLLBACK_COMPLETE): exit 255",
        ["cloudformation", "wait", "stack-create-complete", "--stack-name", fail],
        lambda o, e: "Waiter StackCreateComplete failed" in e)


def settle(cfn, name, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            st = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        except ClientError:
            return
        if not st.endswith("_IN_PROGRESS"):
            return
        time.sleep(0.25)


# ---------------------------------------------------------------------------
# Test cases
# ---------------------------------------------------------------------------

_awssim = None
_moto = None
ALL_OBS = collections.OrderedDict()  # target kind -> {key: outcome}


def awssim_target():
    global _awssim
    if not HAVE_BOTO3:
        raise unittest.SkipTest("python3-boto3 is not installed")
    if not AWSSIM or not os.access(AWSSIM, os.X_OK):
        raise unittest.SkipTest("OB_AWSSIM does not name the awssim binary")
    if _awssim is None:
        _awssim = Awssim(AWSSIM)
    else:
        # Each test class starts from the seeded state (the CUR limit is per account).
        st, body = http_request("POST", _awssim.url + "/_sim/reset")
        if st != 200:
            raise RuntimeError("POST /_sim/reset: HTTP %d %r" % (st, body[:200]))
    return Target("awssim", _awssim.url)


def moto_target():
    global _moto
    if not HAVE_BOTO3:
        raise unittest.SkipTest("python3-boto3 is not installed")
    if _moto is None:
        if not os.environ.get("OB_TEST_MOTO_URL") and not os.access(MOTO_SERVER, os.X_OK):
            raise unittest.SkipTest("no moto (OB_TEST_MOTO_URL unset, %s missing)" % MOTO_SERVER)
        _moto = Moto()
    return Target("moto", _moto.url)


SANITIZER_REPORTS = []


def tearDownModule():
    global _awssim, _moto
    if _awssim:
        _awssim.stop()
        # An ASan/UBSan build of awssim reports memory errors and leaks at exit.
        log = _awssim.final_log
        if _awssim.proc.returncode not in (0, -signal.SIGTERM):
            log += "\nawssim exited with status %s after SIGTERM" % _awssim.proc.returncode
        if "Sanitizer" in log or "runtime error:" in log or "after SIGTERM" in log:
            SANITIZER_REPORTS.append(log)
            print("awssim: sanitizer report:\n" + log, file=sys.stderr)
        _awssim = None
    if _moto:
        _moto.stop()
        _moto = None
    path = os.environ.get("OB_CLIENTS_REPORT")
    if path and ALL_OBS:
        with open(path, "w") as f:
            json.dump({"expect": {k: {"expected": str(v), "doc": v.doc} for k, v in EXPECT.items()},
                       "observed": ALL_OBS}, f, indent=1, default=str)


class AwssimCase(unittest.TestCase):
    """Runs one check against awssim and fails with every mismatch it saw."""
    maxDiff = None
    target = None

    @classmethod
    def setUpClass(cls):
        cls.target = awssim_target()

    def setUp(self):
        # botocore leaves pooled sockets to the garbage collector
        warnings.simplefilter("ignore", ResourceWarning)

    def run_check(self, fn, *extra):
        r = Recorder(self.target)
        try:
            fn(self.target, r, *extra)
        finally:
            ALL_OBS.setdefault("awssim", collections.OrderedDict()).update(r.obs)
            for k, o in r.obs.items():
                print("  %-4s %-95s %s" % ("ok" if EXPECT[k].matches(o) else "FAIL", k, fmt(o)))
        bad = r.mismatches()
        if bad:
            self.fail("%d of %d observations differ from AWS's documented behaviour:\n  - %s"
                      % (len(bad), len(r.obs), "\n  - ".join(bad)))


class Boto3Sts(AwssimCase):
    def test_sts(self):
        self.run_check(chk_sts)


class Boto3S3(AwssimCase):
    def test_s3(self):
        self.run_check(chk_s3)


class Boto3Cfn(AwssimCase):
    def test_cloudformation(self):
        self.run_check(chk_cfn)


class Boto3Cur(AwssimCase):
    def test_cur(self):
        self.run_check(chk_cur)


class Boto3Org(AwssimCase):
    def test_organizations(self):
        self.run_check(chk_org)


class Boto3OrgTree(AwssimCase):
    def test_organizations_tree(self):
        self.run_check(chk_org_tree)


class Boto3Drift(AwssimCase):
    def test_drift(self):
        self.run_check(chk_drift)


class AwsCli(AwssimCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(AWS_CLI, os.X_OK):
            raise unittest.SkipTest("%s is not installed" % AWS_CLI)
        super().setUpClass()

    def test_awscli(self):
        home = tempfile.mkdtemp(prefix="awscli-home-")
        try:
            self.run_check(chk_awscli, home)
        finally:
            shutil.rmtree(home, ignore_errors=True)


class MotoComparison(unittest.TestCase):
    """S3, STS and CloudFormation checks against both; differences printed.

    Asserted only: where moto's answer is AWS's documented one, awssim's is too.
    """
    maxDiff = None

    def test_compare(self):
        warnings.simplefilter("ignore", ResourceWarning)
        sim, moto = awssim_target(), moto_target()
        results = {}
        for t in (sim, moto):
            r = Recorder(t)
            for fn in (chk_s3, chk_sts, chk_cfn):
                try:
                    fn(t, r)
                except Exception as e:  # a check that cannot go on (moto lacks a feature)
                    print("  %s: %s stopped early: %s: %s" % (t.kind, fn.__name__,
                                                             type(e).__name__, e))
            results[t.kind] = r.obs
            ALL_OBS.setdefault(t.kind + " (comparison)", collections.OrderedDict()).update(r.obs)
        keys = [k for k in EXPECT if k in results["awssim"] or k in results["moto"]]
        diffs, bugs = [], []
        for k in keys:
            a, m = results["awssim"].get(k), results["moto"].get(k)
            exp = EXPECT[k]
            if essence(a) != essence(m):
                if exp.kind == "any":
                    who = "not asserted"
                else:
                    who = " and ".join(n for n, o in (("awssim", a), ("moto", m))
                                       if exp.matches(o)) or "neither"
                diffs.append((k, fmt(a), fmt(m), who, exp))
            if exp.kind != "any" and exp.matches(m) and not exp.matches(a):
                bugs.append("%s\n      AWS/moto: %s [%s]\n      awssim:   %s"
                            % (k, exp, exp.doc, fmt(a)))
        print("\nawssim vs moto: %d observations, %d differ" % (len(keys), len(diffs)))
        print("| check | awssim | moto | matches AWS docs | AWS documents |")
        print("|---|---|---|---|---|")
        for k, a, m, who, exp in diffs:
            print("| %s | %s | %s | %s | %s (%s) |" % (k, a, m, who, exp, exp.doc))
        if bugs:
            self.fail("awssim differs where moto matches AWS's documentation:\n  - "
                      + "\n  - ".join(bugs))


GROUPS = {
    "boto3": ["Boto3Sts", "Boto3S3", "Boto3Cfn", "Boto3Cur", "Boto3Org", "Boto3OrgTree",
              "Boto3Drift"],
    "awscli": ["AwsCli"],
    "moto": ["MotoComparison"],
}


def main():
    argv = sys.argv[1:]
    group = "all"
    if len(argv) >= 2 and argv[0] == "--group":
        group, argv = argv[1], argv[2:]
    names = argv or (sum(GROUPS.values(), []) if group == "all" else GROUPS[group])
    missing = []
    if not HAVE_BOTO3:
        missing.append("python3-boto3")
    if not AWSSIM or not os.access(AWSSIM, os.X_OK):
        missing.append("the awssim binary (OB_AWSSIM)")
    if group in ("awscli", "all") and not os.access(AWS_CLI, os.X_OK):
        missing.append(AWS_CLI)
    if group in ("moto", "all") and not os.environ.get("OB_TEST_MOTO_URL") and not os.access(
            MOTO_SERVER, os.X_OK):
        missing.append("moto (OB_TEST_MOTO_URL or %s)" % MOTO_SERVER)
    if missing:
        print("clients: missing %s" % ", ".join(missing))
        if REQUIRE:
            print("clients: OB_TEST_REQUIRE_SERVICES=1, so that is a failure")
            return 1
        return 77
    start = time.time()
    prog = unittest.main(module=__name__, argv=[sys.argv[0], "-v"] + names, exit=False)
    print("clients (%s): %.1f s" % (group, time.time() - start))
    if SANITIZER_REPORTS:
        print("clients: awssim's sanitizer reported errors (above)")
        return 1
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
