"""The worker: records a heartbeat row every two seconds until SIGTERM."""

import os
import signal
import threading

from .db import connect

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
version = os.environ.get("APP_VERSION", "dev")
while not stop.is_set():
    try:
        with connect() as connection, connection.cursor() as cursor:
            cursor.execute("INSERT INTO worker_beats (version) VALUES (%s)", (version,))
    except Exception as error:  # the database may still be starting; keep beating
        print(f"worker: {error}", flush=True)
    stop.wait(2)
