#!/usr/bin/env python3
"""A CloudEvents subscriber built on the official Python SDK's `from_http`.

usage: subscriber.py PORT
Prints `listening` once bound, then one JSON line per received event.
"""
import json
import sys
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

warnings.simplefilter("ignore")
from cloudevents.v1.http import from_http  # noqa: E402


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        event = from_http(dict(self.headers.items()), body)
        attributes = {k: str(v) for k, v in event.get_attributes().items()}
        print(json.dumps({"attributes": attributes, "data": event.get_data()}), flush=True)
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print("listening", flush=True)
server.serve_forever()
