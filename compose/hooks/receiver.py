#!/usr/bin/env python3
"""An example hook receiver for partway. Python 3 standard library only.

partway POSTs one JSON request per hook (--hooks-http=http://hooks:8000/):

    {"Type": "post-finish", "Event": {"Upload": {...}, "HTTPRequest": {...}}, "ID": "<event id>"}

This receiver:

- checks the signature when HOOK_SECRET_FILE names the file partway reads
  with --hooks-signing-secret. Hook-Signature is "v1=" and the lowercase hex
  HMAC-SHA256 of "<Hook-Timestamp>.<raw body>"; a timestamp more than 5
  minutes from now is refused, so an old request cannot be replayed;
- acts once per event. Delivery is at least once, so an event may come again
  with the same Hook-Id. The ids seen are kept in memory here; a real receiver
  records them in its database, in the same transaction as its work;
- logs each event on one line;
- with REQUIRE_FILENAME=1, refuses in pre-create an upload without
  `filename` metadata (the client gets 400); answers {} ("go on unchanged")
  to everything else.

An answer must be 2xx, application/json and a JSON object. Anything else,
or no answer in time, is a failure: the client of a blocking hook gets 503
with Retry-After, and a durable event (post-create, post-finish,
post-terminate) is tried again later.

Run: HOOK_SECRET_FILE=/run/secrets/hook-secret python3 receiver.py (HOST, PORT: 0.0.0.0, 8000)
"""

import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = os.environ.get("HOST", "0.0.0.0")
PORT = int(os.environ.get("PORT", "8000"))
REQUIRE_FILENAME = os.environ.get("REQUIRE_FILENAME") == "1"
MAX_SKEW = 300  # seconds allowed between Hook-Timestamp and now

SECRET = None
if os.environ.get("HOOK_SECRET_FILE"):
    with open(os.environ["HOOK_SECRET_FILE"], "rb") as f:
        SECRET = f.read().rstrip()  # a trailing newline is not part of the secret

seen = set()  # event ids already acted on (a database table in a real receiver)
seen_lock = threading.Lock()


def signature_ok(headers, body):
    """Whether the request was signed with SECRET, recently."""
    timestamp = headers.get("Hook-Timestamp", "")
    try:
        if abs(time.time() - int(timestamp)) > MAX_SKEW:
            return False
    except ValueError:
        return False
    mac = hmac.new(SECRET, timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("v1=" + mac.hexdigest(), headers.get("Hook-Signature", ""))


def decide(hook, upload):
    """The answer to a hook. It depends only on the event, so an event sent
    again gets the same answer."""
    metadata = upload.get("MetaData") or {}
    if hook == "pre-create" and REQUIRE_FILENAME and not metadata.get("filename"):
        return {
            "RejectUpload": True,
            "HTTPResponse": {
                "StatusCode": 400,
                "Body": "an upload needs filename metadata\n",
                "Header": {"Content-Type": "text/plain; charset=utf-8"},
            },
        }
    return {}


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if SECRET is not None and not signature_ok(self.headers, body):
            return self.reply(401, {"error": "bad or stale signature"})
        try:
            request = json.loads(body)
            hook, upload = request["Type"], request["Event"]["Upload"]
        except (ValueError, KeyError, TypeError):
            return self.reply(400, {"error": "not a hook request"})
        event_id = self.headers.get("Hook-Id") or request.get("ID") or ""

        answer = decide(hook, upload)
        with seen_lock:
            duplicate = event_id in seen
            seen.add(event_id)
        # The application's work goes here, done only when not a duplicate.
        print(
            f"{hook} upload={upload.get('ID') or '-'}"
            f" offset={upload.get('Offset')}/{upload.get('Size')}"
            f" filename={(upload.get('MetaData') or {}).get('filename')!r}"
            f" hook-id={event_id}"
            + (" duplicate" if duplicate else "")
            + (" rejected" if answer.get("RejectUpload") else ""),
            flush=True,
        )
        self.reply(200, answer)

    def reply(self, status, answer):
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass  # no access log: do_POST prints one line per event instead


if __name__ == "__main__":
    # As PID 1 in a container, Python would ignore SIGTERM.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    checked = "checked" if SECRET is not None else "NOT checked"
    print(f"hook receiver on {HOST}:{PORT}, signatures {checked}", flush=True)
    ThreadingHTTPServer((HOST, PORT), Receiver).serve_forever()
