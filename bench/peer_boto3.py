#!/usr/bin/python3
"""The peer: what a platform team would write instead of the fleet.

A boto3 thread pool (Debian's python3-boto3) onboards N new accounts against
the simulator with the same calls the fleet makes, in the same order, with
boto3's own retries: as the fleet (the management account's keys) AssumeRole
into the account's OrganizationAccountAccessRole and Organizations
DescribeAccount; as the account, CreateBucket and its four settings,
DescribeReportDefinitions and PutReportDefinition, DescribeStacks and
CreateStack (the fleet's own template, workers/templates/billing-engine-role.json)
polled until CREATE_COMPLETE; and as the Billing Engine, AssumeRole into the
new role with its ExternalId. No Kafka, no Redis, no state: a failed account
is only counted.

Prints wall time, accounts per second, the script's CPU per account (all its
threads: getrusage of the process) and the simulator's, and the calls the
simulator served per account; --json FILE writes them for docs/BENCHMARKS.md.

  bench/peer_boto3.py [--accounts 128] [--threads 64] [--profile instant|aws-typical]
                      [--build build] [--poll 1.0] [--json out.json]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.config
from botocore.exceptions import ClientError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MGMT_KEY = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
BE_PRINCIPAL = "arn:aws:iam::111111111111:root"
REGION = "us-east-1"


def members(n):
    """The simulator's first n ACTIVE members (every 50th is SUSPENDED)."""
    return [i for i in range(1, n + n // 49 + 2) if i % 50][:n]


def bucket_policy(account, bucket):
    b, objs = "arn:aws:s3:::" + bucket, "arn:aws:s3:::%s/*" % bucket
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "BillingReportsDelivery", "Effect": "Allow",
         "Principal": {"Service": "billingreports.amazonaws.com"},
         "Action": ["s3:GetBucketAcl", "s3:GetBucketPolicy", "s3:PutObject"], "Resource": [b, objs],
         "Condition": {"StringEquals": {"aws:SourceArn": "arn:aws:cur:us-east-1:%s:definition/*" % account,
                                        "aws:SourceAccount": account}}}]})


class Peer:
    def __init__(self, endpoint, poll):
        self.endpoint, self.poll = endpoint, poll
        self.template = open(os.path.join(ROOT, "workers", "templates", "billing-engine-role.json")).read()
        self.cfg = botocore.config.Config(retries={"mode": "standard", "max_attempts": 5},
                                          max_pool_connections=64)
        session = boto3.session.Session(aws_access_key_id=MGMT_KEY[0], aws_secret_access_key=MGMT_KEY[1],
                                        region_name=REGION)
        # Clients are thread-safe, sessions are not: every client comes from this one
        # session (its service models loaded once), made under a lock, as boto3's
        # documentation advises for threads; the fleet's two clients are made once.
        self.session = session
        self.make = threading.Lock()
        self.sts = session.client("sts", endpoint_url=endpoint, config=self.cfg)
        self.org = session.client("organizations", endpoint_url=endpoint, config=self.cfg)
        self.lock = threading.Lock()
        self.failed = []

    def client(self, creds, service):
        with self.make:
            return self.session.client(
                service, endpoint_url=self.endpoint, config=self.cfg,
                aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"])

    def onboard(self, account):
        try:
            creds = self.sts.assume_role(RoleArn="arn:aws:iam::%s:role/OrganizationAccountAccessRole" % account,
                                         RoleSessionName="onboard")["Credentials"]
            state = self.org.describe_account(AccountId=account)["Account"].get("Status")
            if state != "ACTIVE":
                raise RuntimeError("account %s is %s" % (account, state))
            bucket = "billing-cur-%s-%s" % (account, REGION)
            s3 = self.client(creds, "s3")
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_policy(Bucket=bucket, Policy=bucket_policy(account, bucket))
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True})
            s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
            s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
                "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
            cur = self.client(creds, "cur")
            names = [d["ReportName"] for d in cur.describe_report_definitions()["ReportDefinitions"]]
            if "billing-engine" not in names:
                cur.put_report_definition(ReportDefinition={
                    "ReportName": "billing-engine", "TimeUnit": "HOURLY", "Format": "textORcsv",
                    "Compression": "GZIP", "AdditionalSchemaElements": ["RESOURCES"], "S3Bucket": bucket,
                    "S3Prefix": "cur", "S3Region": REGION, "AdditionalArtifacts": [],
                    "RefreshClosedReports": True, "ReportVersioning": "OVERWRITE_REPORT"})
            cfn = self.client(creds, "cloudformation")
            stack = "billing-engine-access"
            try:
                cfn.describe_stacks(StackName=stack)
            except ClientError:
                pass
            external_id = uuid.uuid4().hex
            cfn.create_stack(StackName=stack, TemplateBody=self.template, Capabilities=["CAPABILITY_NAMED_IAM"],
                             Parameters=[{"ParameterKey": "BillingEnginePrincipal", "ParameterValue": BE_PRINCIPAL},
                                         {"ParameterKey": "ExternalId", "ParameterValue": external_id},
                                         {"ParameterKey": "CurBucket", "ParameterValue": bucket}])
            while True:
                time.sleep(self.poll)
                s = cfn.describe_stacks(StackName=stack)["Stacks"][0]
                if s["StackStatus"] != "CREATE_IN_PROGRESS":
                    break
            if s["StackStatus"] != "CREATE_COMPLETE":
                raise RuntimeError("stack %s" % s["StackStatus"])
            role = [o["OutputValue"] for o in s.get("Outputs", []) if o["OutputKey"] == "RoleArn"][0]
            self.sts.assume_role(RoleArn=role, RoleSessionName="billing-engine", ExternalId=external_id)
        except Exception as e:  # a script counts its failures and goes on
            with self.lock:
                self.failed.append((account, str(e)[:200]))


def cpu_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=128)
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--profile", default="instant", choices=["instant", "aws-typical"])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--poll", type=float, default=None, help="seconds between stack polls "
                    "(default 0.2 instant, 1 aws-typical: the fleet benchmark's stack.poll)")
    ap.add_argument("--json")
    args = ap.parse_args()
    poll = args.poll if args.poll is not None else (0.2 if args.profile == "instant" else 1.0)
    n = args.accounts
    run = tempfile.mkdtemp(prefix="onboard-peer.")
    portfile = os.path.join(run, "sim.port")
    sim = subprocess.Popen([os.path.join(args.build, "sim", "awssim"), "--port-file", portfile,
                            "--org-accounts", str(n + n // 49 + 10), "--profile", args.profile],
                           stdout=subprocess.DEVNULL, stderr=open(os.path.join(run, "sim.log"), "w"))
    try:
        for _ in range(200):
            if os.path.exists(portfile) and open(portfile).read().strip():
                break
            time.sleep(0.05)
        url = "http://127.0.0.1:" + open(portfile).read().strip()
        peer = Peer(url, poll)
        accounts = ["%012d" % (200000000000 + i) for i in members(n)]
        sim0, cpu0 = cpu_of(sim.pid), resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.time()
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            list(pool.map(peer.onboard, accounts))
        wall = time.time() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        with urllib.request.urlopen(url + "/_sim/stats", timeout=30) as r:
            stats = json.loads(r.read().decode())
        done = n - len(peer.failed)
        result = {"accounts": n, "threads": args.threads, "profile": args.profile,
                  "wall_s": round(wall, 2), "accounts_per_s": round(done / wall, 1),
                  "cpu_ms_per_account": round(cpu * 1000.0 / n, 2),
                  "simulator_cpu_s": round(cpu_of(sim.pid) - sim0, 2),
                  "aws_requests_per_account": round(stats.get("requests", 0) / float(n), 2),
                  "failed": len(peer.failed), "failures": peer.failed[:5]}
        print("%-34s %d (%d threads, profile %s)" % ("accounts", n, args.threads, args.profile))
        print("%-34s %.2f s" % ("wall time", wall))
        print("%-34s %.1f" % ("accounts per second", result["accounts_per_s"]))
        print("%-34s %.2f ms" % ("CPU per account (the script)", result["cpu_ms_per_account"]))
        print("%-34s %.2f s" % ("awssim CPU", result["simulator_cpu_s"]))
        print("%-34s %s" % ("AWS requests per account", result["aws_requests_per_account"]))
        print("%-34s %d%s" % ("failed", len(peer.failed),
                              " (first: %s: %s)" % peer.failed[0] if peer.failed else ""))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2, sort_keys=True)
        return 1 if peer.failed else 0
    finally:
        sim.terminate()
        sim.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
