#!/usr/bin/env python3
"""A deliberately misbehaving HTTP server for the HTTP client tests.

Prints its port on stdout, then serves until killed:
  /echo            200, JSON of the method, path, headers and body received
  /status/N        reply with status N and a small body
  /slow?ms=N       wait N ms, then 200
  /silent          accept, read the request, never answer
  /reset           read the request, then close with a TCP RST
  /truncated       promise 1000 bytes, send 10, close
  /big?n=N         200 with N bytes of body
  /aws-error/C/N   status N with a Query-protocol AWS error body of code C
  /xml-truncated   200 with an STS reply cut short
  /html-200        200 with an HTML page instead of XML
  /stats           JSON: requests served and the peak number handled at once
                   (?clear=1: then start counting the peak afresh)
"""
import json
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

lock = threading.Lock()
state = {"active": 0, "peak": 0, "served": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":  # else the body would be read as the next reply
            self.wfile.write(body)

    def _handle(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        body = self._body()
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
        try:
            p = url.path if url.path == "/" else url.path.rstrip("/")
            if p == "/echo":
                out = {"method": self.command, "path": self.path,
                       "headers": {k.lower(): v for k, v in self.headers.items()},
                       "body": body.decode("utf-8", "replace")}
                self._send(200, json.dumps(out).encode())
            elif p.startswith("/status/"):
                code = int(p.split("/")[2])
                self._send(code, b'{"status":%d}' % code)
            elif p == "/slow":
                time.sleep(int(q.get("ms", ["100"])[0]) / 1000.0)
                self._send(200, b"slow")
            elif p == "/silent":
                time.sleep(3600)
            elif p == "/reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
            elif p == "/truncated":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"0123456789")
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
            elif p == "/big":
                self._send(200, b"x" * int(q.get("n", ["1024"])[0]), "text/plain")
            elif p.startswith("/aws-error/"):
                # /aws-error/CODE/STATUS[/...]: a Query-protocol error reply
                parts = p.split("/")
                code, status = parts[2], int(parts[3])
                xml = ("<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code>"
                       "<Message>Rate exceeded</Message></Error>"
                       "<RequestId>req-%d</RequestId></ErrorResponse>" % (code, state["served"]))
                self._send(status, xml.encode(), "text/xml")
            elif p == "/xml-truncated":
                self._send(200, b"<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/"
                           b"2011-06-15/\"><AssumeRoleResult><Credentials><AccessKeyId>ASIA",
                           "text/xml")
            elif p == "/html-200":
                self._send(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")
            elif p == "/stats":
                with lock:
                    s = dict(state)
                    if q.get("clear"):
                        state["peak"] = 0
                self._send(200, json.dumps(s).encode())
            else:
                self._send(404, b'{"error":"not found"}')
        finally:
            with lock:
                state["active"] -= 1
                state["served"] += 1

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        pass  # clients that hang up early are part of the tests


srv = Server(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
try:
    srv.serve_forever()
except KeyboardInterrupt:
    pass
sys.exit(0)
