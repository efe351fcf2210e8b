#!/usr/bin/env python3
"""A minimal CloudEvents subscriber: prints each event Herald delivers (binary mode)."""
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        attributes = {k[3:]: v for k, v in self.headers.items() if k.lower().startswith("ce-")}
        print(attributes, body.decode("utf-8", "replace"), flush=True)
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", 9090), Handler).serve_forever()
