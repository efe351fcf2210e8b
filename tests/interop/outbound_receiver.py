#!/usr/bin/env python3
"""A webhook receiver that checks Standard Webhooks signatures with the official
`standardwebhooks` library, over HTTP or HTTPS.

usage: outbound_receiver.py [--tls CERT KEY] [--secret whsec_...]...
Binds 127.0.0.1 on a free port and prints `listening PORT`, then one JSON line per request:
{"path", "headers" (lower-case names), "body_b64", "verified": [one bool per --secret]}.
Answers 204 when there is no --secret or any secret verifies, else 401.
"""
import argparse
import base64
import json
import ssl
import sys
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

warnings.simplefilter("ignore")
from standardwebhooks.webhooks import Webhook  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
parser.add_argument("--secret", action="append", default=[])
args = parser.parse_args()
# Requests are handled on several threads: one line at a time on stdout.
print_lock = threading.Lock()


def verifies(secret, body, headers):
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
        return True
    except Exception:  # the library raises WebhookVerificationError (or a decoding error)
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = [verifies(s, body, headers) for s in args.secret]
        line = json.dumps({
            "path": self.path,
            "headers": headers,
            "body_b64": base64.b64encode(body).decode(),
            "verified": verified,
        })
        with print_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        ok = not args.secret or any(verified)
        self.send_response(204 if ok else 401)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if args.tls:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.tls[0], args.tls[1])
    server.socket = context.wrap_socket(server.socket, server_side=True)
print("listening", server.server_address[1], flush=True)
server.serve_forever()
