#!/usr/bin/env python3
"""Publishes events to a Herald broker with the official CloudEvents Python SDK.

usage: publisher.py BROKER_URL COUNT
Half the events go in binary mode, half structured; prints one line per answer status.
"""
import http.client
import sys
import urllib.parse
import warnings

warnings.simplefilter("ignore")
from cloudevents.v1.http import CloudEvent, to_binary, to_structured  # noqa: E402

url = urllib.parse.urlparse(sys.argv[1])
count = int(sys.argv[2])
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
for n in range(count):
    event = CloudEvent(
        {
            "id": f"py-{n}",
            "type": "dev.herald.interop",
            "source": "/interop/python",
            "subject": f"item {n}",
            "interopext": f"value-{n}",
        },
        {"n": n, "text": "hello"},
    )
    headers, body = to_binary(event) if n % 2 == 0 else to_structured(event)
    conn.request("POST", url.path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    print(response.status, flush=True)
