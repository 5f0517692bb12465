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
        self.moto_diffs = 0
        self.kinds = {}

    def check(self, name, ok, seen=""):
        if ok:
            self.passed += 1
            print("ok    %s" % name)
        else:
            self.failed += 1
            print("FAIL  %s: saw %s" % (name, seen))
        return ok

    def moto(self, kind, account, what, seen, aws):
        """A known moto 5.2.5 difference from AWS (kind), seen exactly as known: not a
        failure. Printed in full the first time, then counted."""
        self.moto_diffs += 1
        first = kind not in self.kinds
        self.kinds.setdefault(kind, []).append(account)
        if first:
            print("moto  %s: %s: moto %s; AWS %s" % (account, what, seen, aws))
        else:
            print("moto  %s: %s: %s again" % (account, what, kind))

    def summary(self):
        for kind, accounts in self.kinds.items():
            print("known moto difference %-26s %2d account(s): %s" %
                  (kind, len(accounts), " ".join(accounts)))
        print("conformance: %d checks passed, %d failed, %d known moto differences" %
              (self.passed, self.failed, self.moto_diffs))

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
    (no condition, no bucket statements), no Cost Explorer access, other descriptions."""
    t = json.loads(json.dumps(template))
    t["Description"] = "Billing Engine read-only access (onboard template v0)"
    del t["Parameters"]["CurBucket"]
    del t["Conditions"]
    props = t["Resources"]["BillingEngineRole"]["Properties"]
    props["Description"] = "Read-only access for the Billing Engine (v0)"
    pol = props["Policies"][0]["PolicyDocument"]
    pol["Statement"] = [s for s in pol["Statement"] if "Fn::If" not in s]
    for st in pol["Statement"]:
        st["Action"] = [x for x in st["Action"] if x != "ce:Get*"]
    return t


# ---- the role a template makes, as CloudFormation resolves it ----

_NOVALUE = object()


def resolve(node, params, conds):
    """Ref (parameters, AWS::Partition, AWS::NoValue), Fn::If, Fn::Sub as CloudFormation
    resolves them: AWS::NoValue removes the list element or object member it is in."""
    pseudo = dict(params, **{"AWS::Partition": "aws"})
    if isinstance(node, dict):
        if list(node) == ["Ref"]:
            return _NOVALUE if node["Ref"] == "AWS::NoValue" else pseudo[node["Ref"]]
        if list(node) == ["Fn::If"]:
            c, yes, no = node["Fn::If"]
            return resolve(yes if conds[c] else no, params, conds)
        if list(node) == ["Fn::Sub"]:
            text = node["Fn::Sub"]
            for k, v in pseudo.items():
                text = text.replace("${%s}" % k, v)
            return text
        out = {}
        for k, v in node.items():
            r = resolve(v, params, conds)
            if r is not _NOVALUE:
                out[k] = r
        return out
    if isinstance(node, list):
        return [r for r in (resolve(x, params, conds) for x in node) if r is not _NOVALUE]
    return node


def condition(node, params):
    if isinstance(node, dict) and list(node) == ["Fn::Not"]:
        return not condition(node["Fn::Not"][0], params)
    if isinstance(node, dict) and list(node) == ["Fn::Equals"]:
        x, y = (resolve(v, params, {}) for v in node["Fn::Equals"])
        return x == y
    raise ValueError("condition %r is not handled here" % (node,))


def expected_role(template, params):
    """(trust policy, inline policies by name, description) of the template's role."""
    conds = {k: condition(v, params) for k, v in template.get("Conditions", {}).items()}
    props = template["Resources"]["BillingEngineRole"]["Properties"]
    trust = resolve(props["AssumeRolePolicyDocument"], params, conds)
    pols = {p["PolicyName"]: resolve(p["PolicyDocument"], params, conds)
            for p in props["Policies"]}
    return trust, pols, props["Description"]


def cmd_setup(inp, out_path):
    with open(inp["template"]) as f:
        text = f.read()
    template = json.loads(text)
    for s in inp["stacks"]:
        creds = as_account(inp["moto"], inp["fleet"], s["account"], s["region"])
        cfn = client("cloudformation", inp["moto"], s["region"], creds)
        # The current template byte for byte as the fleet sends it (compact, members in
        # order); the older one re-made.
        body = (json.dumps(template, separators=(",", ":")) if s["template"] == "current"
                else json.dumps(older_template(template)))
        params = [{"ParameterKey": "BillingEnginePrincipal", "ParameterValue": inp["principal"]},
                  {"ParameterKey": "ExternalId", "ParameterValue": s["external_id"]}]
        if s["template"] == "current":
            params.append({"ParameterKey": "CurBucket", "ParameterValue": ""})
        # The fleet's own tag, so that an update with the current template is a no-op.
        r = cfn.create_stack(StackName=inp["stack_name"], TemplateBody=body,
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


def nulls_dropped(seen, want):
    """seen is want with AWS::NoValue left as null list elements (moto 5.2.5)."""
    if not isinstance(seen, dict) or not isinstance(want, dict) or set(seen) != set(want):
        return False
    for k in seen:
        a, b = seen[k], want[k]
        if isinstance(a, list) and isinstance(b, list):
            if [x for x in a if x is not None] != b:
                return False
        elif a != b:
            return False
    return seen != want


def check_role(a, inp, acct, creds, role_arn, template):
    ev, n, name = acct["event"], acct["account"], inp["stack_name"]
    bucket = ev.get("report", {}).get("bucket", "") if acct["mode"] == "new" else ""
    params = {"BillingEnginePrincipal": inp["principal"], "ExternalId": ev.get("external_id"),
              "CurBucket": bucket}
    trust_want, pols_want, desc_want = expected_role(template, params)
    iam = client("iam", inp["moto"], "us-east-1", creds)
    r = a.call("%s: iam.GetRole %s" % (n, name), iam.get_role, RoleName=name)
    if r is None:
        return
    role = r["Role"]
    a.equal("%s: role ARN" % n, role["Arn"], role_arn)
    a.equal("%s: role MaxSessionDuration" % n, role.get("MaxSessionDuration"), 3600)
    a.equal("%s: role Description (the template's)" % n, role.get("Description"), desc_want)
    trust = role["AssumeRolePolicyDocument"]
    if isinstance(trust, str):
        trust = json.loads(trust)
    st = trust.get("Statement", [])
    if st:
        s = st[0]
        a.equal("%s: trust Principal is the Billing Engine" % n, s.get("Principal"),
                {"AWS": inp["principal"]})
        ext = s.get("Condition", {}).get("StringEquals", {}).get("sts:ExternalId")
        a.check("%s: trust sts:ExternalId is the connected event's" % n,
                ext is not None and ext == ev.get("external_id") and len(ext) == 32,
                "%r (event: %r)" % (ext, ev.get("external_id")))
    a.equal("%s: trust policy (the template's, resolved)" % n, trust, trust_want)
    pols = a.call("%s: iam.ListRolePolicies" % n, iam.list_role_policies, RoleName=name)
    if pols is None:
        return
    a.equal("%s: inline policies" % n, pols["PolicyNames"], sorted(pols_want))
    for pname, want in pols_want.items():
        gp = a.call("%s: iam.GetRolePolicy %s" % (n, pname), iam.get_role_policy,
                    RoleName=name, PolicyName=pname)
        if gp is None:
            continue
        doc, form = inline_policy(gp["PolicyDocument"])
        short = "inline policy %s (%s)" % (pname, "CurBucket given: Fn::If true, Fn::Sub"
                                           if bucket else "no CurBucket: Fn::If AWS::NoValue")
        what = "%s: %s" % (n, short)
        if form == "python repr":
            a.moto("policy-as-python-repr", n, "GetRolePolicy " + pname,
                   "returns the PolicyDocument of a role made by CloudFormation as a Python "
                   "repr (single quotes, True/None)", "URL-encoded JSON")
        if doc == want:
            a.check(what, True)
        elif nulls_dropped(doc, want):
            a.moto("novalue-in-list-kept-as-null", n, short,
                   "leaves AWS::NoValue inside a list as null: %s" %
                   json.dumps(doc["Statement"])[:110], "removes the element")
        elif acct.get("preset") == "older" and doc == expected_role(
                older_template(template), params)[1].get(pname):
            a.moto("update-keeps-role-policies", n, short,
                   "kept the policy of the template the stack was created with "
                   "(UpdateStack does not update an AWS::IAM::Role's Policies)",
                   "replaces it with the updated template's")
        else:
            a.equal(what, doc, want)


def check_template(a, inp, acct, creds, text):
    n = acct["account"]
    cfn = client("cloudformation", inp["moto"], acct["region"], creds)
    t = a.call("%s: GetTemplate" % n, cfn.get_template, StackName=inp["stack_name"])
    if t is not None:
        body = t["TemplateBody"]
        a.check("%s: the stack's template is workers/templates/billing-engine-role.json" % n,
                body == text or body == json.loads(text), str(body)[:120])


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
    with open(inp["template"]) as f:
        text = f.read()
    template = json.loads(text)
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
            check_template(a, inp, acct, creds, text)
            check_role(a, inp, acct, creds, role_arn, template)
        check_report(a, inp, acct)
    a.summary()
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
