#!/usr/bin/env python3
"""A local stand-in for the EC2 instance metadata service (IMDSv2 only) and the
ECS/EKS container credentials endpoint, for the credential-chain tests.

Prints its port, then serves:
  PUT /latest/api/token                      needs X-aws-ec2-metadata-token-ttl-seconds
  GET /latest/meta-data/iam/security-credentials/[ROLE]
                                             needs a token from the PUT (401 otherwise)
  GET /container/creds[?ttl=S]               needs Authorization: <argv[1]>
  GET /stats                                 JSON counters
Credentials expire CRED_TTL seconds (env, default 21600) after they are served;
each serve gets a new AccessKeyId (ASIA...<n>) so refreshes can be told apart.
"""
import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AUTH = sys.argv[1] if len(sys.argv) > 1 else "Bearer test-token"
TTL = int(os.environ.get("CRED_TTL", "21600"))
lock = threading.Lock()
stats = {"tokens": 0, "imds_creds": 0, "container_creds": 0, "unauthorized": 0, "imdsv1": 0}
tokens = set()


def creds(kind, ttl=None):
    with lock:
        stats[kind] += 1
        n = stats[kind]
    exp = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                        time.gmtime(time.time() + (TTL if ttl is None else ttl)))
    return {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "ASIA%016d" % n,
            "SecretAccessKey": secrets.token_hex(20), "Token": "tok" + secrets.token_hex(40),
            "Expiration": exp, "AccountId": "111122223333"}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body, ctype="text/plain"):
        b = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def do_PUT(self):
        if self.path == "/latest/api/token":
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.send(400, "missing ttl")
            t = secrets.token_hex(16)
            with lock:
                tokens.add(t)
                stats["tokens"] += 1
            return self.send(200, t)
        self.send(404, "not found")

    def do_GET(self):
        p = self.path
        if p.startswith("/latest/meta-data/iam/security-credentials/"):
            if self.headers.get("X-aws-ec2-metadata-token") not in tokens:
                with lock:
                    stats["imdsv1"] += 1
                return self.send(401, "")
            role = p[len("/latest/meta-data/iam/security-credentials/"):]
            if role == "":
                return self.send(200, "test-role")
            if role != "test-role":
                return self.send(404, "")
            return self.send(200, json.dumps(creds("imds_creds")), "application/json")
        ttl = None
        if "?ttl=" in p:
            p, ttl = p.split("?ttl=")
            ttl = int(ttl)
        if p == "/container/creds":
            if self.headers.get("Authorization") != AUTH:
                with lock:
                    stats["unauthorized"] += 1
                return self.send(401, '{"message":"unauthorized"}', "application/json")
            return self.send(200, json.dumps(creds("container_creds", ttl)), "application/json")
        if p == "/stats":
            with lock:
                return self.send(200, json.dumps(stats), "application/json")
        self.send(404, "not found")


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
srv.serve_forever()
