"""GET /health, GET /version, GET and POST /items, GET and POST /counter (kept in the Redis accessory), on
port 8000; one log line per request.

On SIGTERM it stops accepting and finishes the requests in flight, so a
container being replaced never drops one.
"""

import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .db import connect
from .kv import redis_client

VERSION = os.environ.get("APP_VERSION", "dev")
BROKEN = os.environ.get("APP_BROKEN") == "1"
local = threading.local()


def cursor():
    if getattr(local, "connection", None) is None or local.connection.closed:
        local.connection = connect()
        local.connection.autocommit = True
    return local.connection.cursor()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one send: written apart, on a kept-alive connection the body waits
    # for the peer's delayed ACK of the headers (Nagle), 40 ms a response.
    wbufsize = 1 << 16

    def do_GET(self):
        if self.path == "/health":
            if BROKEN:
                return self.reply(503, {"status": "broken on purpose"})
            cursor().execute("SELECT 1")
            return self.reply(200, {"status": "ok", "version": VERSION})
        if self.path == "/version":
            return self.reply(200, {"version": VERSION})
        if self.path == "/counter":
            return self.reply(200, {"counter": int(redis_client().get("counter") or 0)})
        if self.path == "/items":
            with cursor() as c:
                c.execute("SELECT id, name, version FROM items ORDER BY id")
                rows = [{"id": i, "name": n, "version": v} for i, n, v in c.fetchall()]
            return self.reply(200, rows)
        return self.reply(404, {"error": "not found"})

    def do_POST(self):
        if self.path == "/counter":
            return self.reply(200, {"counter": redis_client().incr("counter")})
        if self.path != "/items":
            return self.reply(404, {"error": "not found"})
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with cursor() as c:
            c.execute("INSERT INTO items (name, version) VALUES (%s, %s) RETURNING id", (str(body.get("name", "")), VERSION))
            item_id = c.fetchone()[0]
        return self.reply(201, {"id": item_id, "name": body.get("name"), "version": VERSION})

    def reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that hung up (a health probe timing out) is not worth a traceback


def main():
    server = Server(("0.0.0.0", 8000), Handler)
    server.daemon_threads = False
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
