"""A webhook receiver for the tests: verifies every request with the `standardwebhooks`
package (the specification's own Python implementation, independent of ours) and appends
one JSON line per request to OUT: the verified payload and webhook-id, or the error.

usage: receiver.py PORT OUT SECRET [hang]
With `hang` it reads each request and never answers (a receiver that hangs).
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PORT, OUT, SECRET = int(sys.argv[1]), sys.argv[2], sys.argv[3]
HANG = len(sys.argv) > 4 and sys.argv[4] == "hang"
hook = Webhook(SECRET)
lock = threading.Lock()


def record(obj):
    with lock, open(OUT, "a") as f:
        f.write(json.dumps(obj) + "\n")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        if HANG:
            record({"hung": headers.get("webhook-id")})
            time.sleep(3600)
            return
        try:
            payload = hook.verify(body, headers)
            # The same signature must not pass for another body.
            tampered_ok = True
            try:
                hook.verify(body + b" ", headers)
            except WebhookVerificationError:
                tampered_ok = False
            record({"id": headers["webhook-id"], "payload": payload,
                    "tampered_accepted": tampered_ok})
            self.send_response(204)
        except WebhookVerificationError as e:
            record({"error": str(e)})
            self.send_response(400)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
server.daemon_threads = True
print("ready", flush=True)
server.serve_forever()
