#!/usr/bin/python3
"""boto3's side of the moto conformance run (tests/integration/itest_conformance_moto.c).

The C test runs the four stage workers against moto (S3, STS, CloudFormation) and
awssim (Cost and Usage Reports). This script is the independent AWS client of that
run: Debian's /usr/bin/python3 with python3-boto3, never the project's own client.
It has three commands, each reading one JSON file the C test wrote and, for
mirror, writing one back:

  setup   create the older stacks some "existing" accounts already have in moto
          (CloudFormation, as the account), before the workers start;
  mirror  read each bucket the bucket stage made in moto (as its account: listed by
          ListBuckets, GetBucketLocation, GetBucketPolicy) so that the C test can
          copy it into awssim, whose CUR only accepts a report on a bucket it
          holds itself (the account's, in S3Region, with the delivery policy);
  check   the final audit: for every account, the bucket and its policy, public
          access block, encryption and ownership controls in moto; the stack, its
          parameters, tags and Outputs in moto; the IAM role moto made from the
          template (trust policy naming the Billing Engine principal with the
          sts:ExternalId of the connected event, and the inline policy after
          Fn::If / AWS::NoValue); the report in awssim (CUR DescribeReportDefinitions).

Every check prints one line ("ok" or "FAIL" with what was seen); the exit status is
0 when all passed, 1 otherwise, and 77 when boto3 is missing (1 with
OB_TEST_REQUIRE_SERVICES=1).

  /usr/bin/python3 conformance_moto.py setup|mirror|check IN.json [OUT.json]

IN.json always names "moto" (URL), "sim" (awssim URL) and "fleet" (the fleet's
access key pair: awssim's management key; moto accepts any key and calls the
caller 123456789012). Accounts are reached as the SDKs would: AssumeRole on
arn:aws:iam::ACCOUNT:role/OrganizationAccountAccessRole, in moto (its multi-account
mode maps the session to ACCOUNT) or in awssim (where the C test made that role).
"""
import ast
import json
import os
import sys

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError:  # reported as a skip
    boto3 = None

# Never read the developer's own AWS configuration.
for _v in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
           "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION",
           "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_CLOUDFORMATION",
           "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_COST_AND_USAGE_REPORT_SERVICE"):
    os.environ.pop(_v, None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

ORG_ROLE = "OrganizationAccountAccessRole"
MANAGED_TAG = ("onboard:managed-by", "onboard-iam")
# The seed's report settings (proto/onboard.request.v1.json defaults).
SEED_REPORT = {"ReportName": "billing-engine-cur", "TimeUnit": "HOURLY", "Format": "textORcsv",
               "Compression": "GZIP", "AdditionalSchemaElements": ["RESOURCES"],
               "S3Prefix": "CUR", "AdditionalArtifacts": ["REDSHIFT"],
               "RefreshClosedReports": True, "ReportVersioning": "OVERWRITE_REPORT"}


def client(svc, url, region, creds):
    cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
                 read_timeout=30, s3={"addressing_style": "path"})
    return boto3.client(svc, endpoint_url=url, region_name=region, config=cfg,
                        aws_access_key_id=creds[0], aws_secret_access_key=creds[1],
                        aws_session_token=creds[2] if len(creds) > 2 else None)


def as_account(url, fleet, account, region):
    """Temporary credentials in `account` (AssumeRole on its organization role)."""
    sts = client("sts", url, region, fleet)
    c = sts.assume_role(RoleArn="arn:aws:iam::%s:role/%s" % (account, ORG_ROLE),
                        RoleSessionName="onboard-conformance")["Credentials"]
    return (c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


def error_code(e):
    return e.response.get("Error", {}).get("Code", "?")


class Audit:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def check(self, name, ok, seen=""):
        if ok:
            self.passed += 1
            print("ok    %s" % name)
        else:
            self.failed += 1
            print("FAIL  %s: saw %s" % (name, seen))
        return ok

    def equal(self, name, seen, want):
        return self.check(name, seen == want, "%r, want %r" % (seen, want))

    def call(self, name, fn, *args, **kw):
        """fn(*args, **kw), or None after a FAIL line naming the error."""
        try:
            return fn(*args, **kw)
        except ClientError as e:
            self.check(name, False, "%s: %s" % (error_code(e), e))
        except Exception as e:  # an unparseable reply, a connection error
            self.check(name, False, "%s: %s" % (type(e).__name__, e))
        return None


# ---- what the fleet must have made (written from the docs, not from the C code) ----

def cur_bucket_policy(account, bucket):
    """The CUR delivery policy (AWS CUR user guide, cur-s3.html, with the Data Exports
    principal), as the bucket stage writes it."""
    b, objs = "arn:aws:s3:::%s" % bucket, "arn:aws:s3:::%s/*" % bucket
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "BillingReportsDelivery", "Effect": "Allow",
             "Principal": {"Service": "billingreports.amazonaws.com"},
             "Action": ["s3:GetBucketAcl", "s3:GetBucketPolicy", "s3:PutObject"],
             "Resource": [b, objs],
             "Condition": {"StringEquals": {
                 "aws:SourceArn": "arn:aws:cur:us-east-1:%s:definition/*" % account,
                 "aws:SourceAccount": account}}},
            {"Sid": "DataExportsDelivery", "Effect": "Allow",
             "Principal": {"Service": "bcm-data-exports.amazonaws.com"},
             "Action": ["s3:PutObject", "s3:GetBucketPolicy"],
             "Resource": [b, objs],
             "Condition": {"StringEquals": {
                 "aws:SourceArn": "arn:aws:bcm-data-exports:us-east-1:%s:export/*" % account,
                 "aws:SourceAccount": account}}},
        ]}


def inline_policy(doc):
    """A role policy document as GetRolePolicy returns it: a dict, URL-decoded JSON
    text, or (moto 5.2.5, for roles made by CloudFormation) the Python repr of a
    dict. Returns (dict, form)."""
    if isinstance(doc, dict):
        return doc, "json"
    try:
        return json.loads(doc), "json text"
    except ValueError:
        return ast.literal_eval(doc), "python repr"


# ---- setup ----

def older_template(template):
    """The template as an older fleet would have launched it: no CurBucket parameter
    (no condition, no bucket statements), another description."""
    t = json.loads(json.dumps(template))
    t["Description"] = "Billing Engine read-only access (onboard template v0)"
    del t["Parameters"]["CurBucket"]
    del t["Conditions"]
    pol = t["Resources"]["BillingEngineRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    pol["Statement"] = [s for s in pol["Statement"] if "Fn::If" not in s]
    return t


def cmd_setup(inp, out_path):
    with open(inp["template"]) as f:
        template = json.load(f)
    for s in inp["stacks"]:
        creds = as_account(inp["moto"], inp["fleet"], s["account"], s["region"])
        cfn = client("cloudformation", inp["moto"], s["region"], creds)
        body = template if s["template"] == "current" else older_template(template)
        params = [{"ParameterKey": "BillingEnginePrincipal", "ParameterValue": inp["principal"]},
                  {"ParameterKey": "ExternalId", "ParameterValue": s["external_id"]}]
        if s["template"] == "current":
            params.append({"ParameterKey": "CurBucket", "ParameterValue": ""})
        # The fleet's own tag, so that an update with the current template is a no-op.
        r = cfn.create_stack(StackName=inp["stack_name"], TemplateBody=json.dumps(body),
                             Parameters=params, Capabilities=["CAPABILITY_NAMED_IAM"],
                             Tags=[{"Key": MANAGED_TAG[0], "Value": MANAGED_TAG[1]}])
        st = cfn.describe_stacks(StackName=r["StackId"])["Stacks"][0]["StackStatus"]
        print("setup: account %s: %s template stack %s in %s is %s" %
              (s["account"], s["template"], inp["stack_name"], s["region"], st))
        if st != "CREATE_COMPLETE":
            return 1
    return 0


# ---- mirror ----

def cmd_mirror(inp, out_path):
    out = {}
    for b in inp["buckets"]:
        creds = as_account(inp["moto"], inp["fleet"], b["account"], b["region"])
        s3 = client("s3", inp["moto"], b["region"], creds)
        names = [x["Name"] for x in s3.list_buckets()["Buckets"]]
        if b["name"] not in names:
            print("mirror: bucket %s is not among account %s's buckets in moto: %s" %
                  (b["name"], b["account"], names))
            return 1
        loc = s3.get_bucket_location(Bucket=b["name"]).get("LocationConstraint") or "us-east-1"
        policy = s3.get_bucket_policy(Bucket=b["name"])["Policy"]
        out[b["name"]] = {"owner": b["account"], "region": loc, "policy": policy}
    with open(out_path, "w") as f:
        json.dump({"buckets": out}, f)
    print("mirror: read %d bucket(s) from moto" % len(out))
    return 0


# ---- check ----

def check_bucket(a, inp, acct, creds):
    ev, region = acct["event"], acct["region"]
    s3 = client("s3", inp["moto"], region, creds)
    lb = a.call("s3.ListBuckets as %s" % acct["account"], s3.list_buckets)
    names = sorted(x["Name"] for x in lb["Buckets"]) if lb else None
    if acct["mode"] == "existing":
        a.equal("%s: no bucket made for an existing account" % acct["account"], names, [])
        return
    bucket = ev.get("report", {}).get("bucket")
    want_name = "billing-cur-%s-%s" % (acct["account"], region)
    a.equal("%s: the event's report bucket" % acct["account"], bucket, want_name)
    a.equal("%s: exactly the CUR bucket in the account (moto ListBuckets)" % acct["account"],
            names, [want_name])
    p = "%s: bucket %s" % (acct["account"], want_name)
    loc = a.call(p + " GetBucketLocation", s3.get_bucket_location, Bucket=want_name)
    if loc is not None:
        a.equal(p + " region", loc.get("LocationConstraint") or "us-east-1", region)
    pol = a.call(p + " GetBucketPolicy", s3.get_bucket_policy, Bucket=want_name)
    if pol is not None:
        a.equal(p + " policy is the CUR delivery policy", json.loads(pol["Policy"]),
                cur_bucket_policy(acct["account"], want_name))
    pab = a.call(p + " GetPublicAccessBlock", s3.get_public_access_block, Bucket=want_name)
    if pab is not None:
        a.equal(p + " public access block", pab["PublicAccessBlockConfiguration"],
                {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                 "RestrictPublicBuckets": True})
    enc = a.call(p + " GetBucketEncryption", s3.get_bucket_encryption, Bucket=want_name)
    if enc is not None:
        rules = enc["ServerSideEncryptionConfiguration"]["Rules"]
        a.equal(p + " default encryption", [r["ApplyServerSideEncryptionByDefault"]
                                            ["SSEAlgorithm"] for r in rules], ["AES256"])
    own = a.call(p + " GetBucketOwnershipControls", s3.get_bucket_ownership_controls,
                 Bucket=want_name)
    if own is not None:
        a.equal(p + " object ownership", [r["ObjectOwnership"] for r in
                                          own["OwnershipControls"]["Rules"]],
                ["BucketOwnerEnforced"])


def check_stack(a, inp, acct, creds):
    ev, region, n = acct["event"], acct["region"], acct["account"]
    name = inp["stack_name"]
    cfn = client("cloudformation", inp["moto"], region, creds)
    ds = a.call("%s: DescribeStacks %s" % (n, name), cfn.describe_stacks, StackName=name)
    if ds is None:
        return None
    stacks = ds["Stacks"]
    if not a.equal("%s: one stack named %s" % (n, name), len(stacks), 1):
        return None
    s = stacks[0]
    a.equal("%s: stack status" % n, s["StackStatus"], acct["want_status"])
    a.equal("%s: the event's stack_id is the stack" % n, ev.get("stack_id"), s["StackId"])
    outs = {o["OutputKey"]: o["OutputValue"] for o in s.get("Outputs", [])}
    role_arn = "arn:aws:iam::%s:role/%s" % (n, name)
    a.equal("%s: stack Outputs" % n, outs, {"RoleArn": role_arn, "RoleName": name})
    a.equal("%s: the event's role_arn is the RoleArn output" % n, ev.get("role_arn"), role_arn)
    params = {p["ParameterKey"]: p.get("ParameterValue") for p in s.get("Parameters", [])}
    bucket = ev.get("report", {}).get("bucket", "") if acct["mode"] == "new" else ""
    a.equal("%s: stack parameters" % n, params,
            {"BillingEnginePrincipal": inp["principal"], "ExternalId": ev.get("external_id"),
             "CurBucket": bucket})
    if acct.get("preset_external_id"):
        a.equal("%s: the stack kept the ExternalId it had before the run" % n,
                ev.get("external_id"), acct["preset_external_id"])
    tags = {t["Key"]: t["Value"] for t in s.get("Tags", [])}
    a.equal("%s: stack tag %s" % (n, MANAGED_TAG[0]), tags.get(MANAGED_TAG[0]), MANAGED_TAG[1])
    ls = a.call("%s: ListStacks" % n, cfn.list_stacks)
    if ls is not None:
        live = [x["StackId"] for x in ls["StackSummaries"] if x["StackName"] == name and
                x["StackStatus"] != "DELETE_COMPLETE"]
        a.equal("%s: live stacks named %s in %s" % (n, name, region), live, [s["StackId"]])
    return role_arn


def check_role(a, inp, acct, creds, role_arn):
    ev, n, name = acct["event"], acct["account"], inp["stack_name"]
    iam = client("iam", inp["moto"], "us-east-1", creds)
    r = a.call("%s: iam.GetRole %s" % (n, name), iam.get_role, RoleName=name)
    if r is None:
        return
    role = r["Role"]
    a.equal("%s: role ARN" % n, role["Arn"], role_arn)
    a.equal("%s: role MaxSessionDuration" % n, role.get("MaxSessionDuration"), 3600)
    trust = role["AssumeRolePolicyDocument"]
    if isinstance(trust, str):
        trust = json.loads(trust)
    st = trust.get("Statement", [])
    a.equal("%s: trust policy has one statement" % n, len(st), 1)
    if st:
        s = st[0]
        a.equal("%s: trust Effect/Action" % n, (s.get("Effect"), s.get("Action")),
                ("Allow", "sts:AssumeRole"))
        a.equal("%s: trust Principal is the Billing Engine" % n, s.get("Principal"),
                {"AWS": inp["principal"]})
        ext = s.get("Condition", {}).get("StringEquals", {}).get("sts:ExternalId")
        a.check("%s: trust sts:ExternalId is the connected event's" % n,
                ext is not None and ext == ev.get("external_id") and len(ext) == 32,
                "%r (event: %r)" % (ext, ev.get("external_id")))
    pols = a.call("%s: iam.ListRolePolicies" % n, iam.list_role_policies, RoleName=name)
    if pols is None:
        return
    a.equal("%s: inline policies" % n, pols["PolicyNames"], ["BillingEngineRead"])
    gp = a.call("%s: iam.GetRolePolicy" % n, iam.get_role_policy, RoleName=name,
                PolicyName="BillingEngineRead")
    if gp is None:
        return
    doc, form = inline_policy(gp["PolicyDocument"])
    if form == "python repr":
        print("note  %s: GetRolePolicy returned the document as a Python repr, not JSON "
              "(moto)" % n)
    sids = [s.get("Sid") for s in doc.get("Statement", [])]
    bucket = ev.get("report", {}).get("bucket") if acct["mode"] == "new" else None
    if bucket:
        a.equal("%s: role policy statements (CurBucket given: both Fn::If branches kept)" % n,
                sids, ["CurBucketList", "CurBucketRead", "BillingData"])
        res = {s.get("Sid"): s.get("Resource") for s in doc.get("Statement", [])}
        a.equal("%s: role policy bucket resources (Fn::Sub)" % n,
                (res.get("CurBucketList"), res.get("CurBucketRead")),
                ("arn:aws:s3:::%s" % bucket, "arn:aws:s3:::%s/*" % bucket))
    else:
        a.equal("%s: role policy statements (no CurBucket: AWS::NoValue dropped both)" % n,
                sids, ["BillingData"])


def check_report(a, inp, acct):
    n, ev = acct["account"], acct["event"]
    creds = a.call("%s: awssim sts.AssumeRole" % n, as_account, inp["sim"], inp["fleet"], n,
                   "us-east-1")
    if creds is None:
        return
    cur = client("cur", inp["sim"], "us-east-1", creds)
    r = a.call("%s: awssim cur.DescribeReportDefinitions" % n, cur.describe_report_definitions)
    if r is None:
        return
    defs = r["ReportDefinitions"]
    if acct["mode"] == "existing":
        a.equal("%s: no report for an existing account" % n, defs, [])
        return
    if not a.equal("%s: one report" % n, len(defs), 1):
        return
    d = defs[0]
    want = dict(SEED_REPORT, S3Bucket=ev.get("report", {}).get("bucket"),
                S3Region=acct["region"])
    got = {k: d.get(k) for k in want}
    a.equal("%s: report definition (the seed's settings)" % n, got, want)
    rep = ev.get("report", {})
    a.equal("%s: the event's report" % n, rep,
            {"name": d.get("ReportName"), "bucket": d.get("S3Bucket"),
             "prefix": d.get("S3Prefix"), "region": d.get("S3Region")})


def cmd_check(inp, out_path):
    a = Audit()
    for acct in inp["accounts"]:
        n, ev = acct["account"], acct["event"]
        print("-- account %s (%s, %s)" % (n, acct["mode"], acct["region"]))
        a.equal("%s: connected event account_id" % n, ev.get("account_id"), n)
        creds = a.call("%s: moto sts.AssumeRole" % n, as_account, inp["moto"], inp["fleet"], n,
                       acct["region"])
        if creds is None:
            continue
        ident = a.call("%s: moto sts.GetCallerIdentity" % n,
                       client("sts", inp["moto"], acct["region"], creds).get_caller_identity)
        if ident is not None:
            a.equal("%s: moto maps the session to the account" % n, ident["Account"], n)
        check_bucket(a, inp, acct, creds)
        role_arn = check_stack(a, inp, acct, creds)
        if role_arn:
            check_role(a, inp, acct, creds, role_arn)
        check_report(a, inp, acct)
    print("conformance: %d checks passed, %d failed" % (a.passed, a.failed))
    return 1 if a.failed else 0


def main(argv):
    if len(argv) < 3 or argv[1] not in ("setup", "mirror", "check"):
        print(__doc__)
        return 2
    if boto3 is None:
        print("conformance: boto3 is missing (apt-get install python3-boto3)")
        return 1 if os.environ.get("OB_TEST_REQUIRE_SERVICES") == "1" else 77
    with open(argv[2]) as f:
        inp = json.load(f)
    out = argv[3] if len(argv) > 3 else None
    return {"setup": cmd_setup, "mirror": cmd_mirror, "check": cmd_check}[argv[1]](inp, out)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
