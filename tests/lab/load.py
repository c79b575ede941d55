"""A bounded load loop: N clients hit a URL on loopback until told to stop (or a hard limit)."""

import http.client
import threading
import time
from collections import Counter


class LoadLoop:
    def __init__(self, port: int, path: str = "/version", clients: int = 20, max_seconds: float = 180,
                 max_requests: int = 400_000):
        self.port, self.path, self.clients = port, path, clients
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.outcomes: Counter = Counter()
        self.bodies: Counter = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def __enter__(self):
        self._deadline = time.monotonic() + self.max_seconds
        for thread in self._threads:
            thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    @property
    def failed(self) -> int:
        return self.total - self.outcomes["200"]

    def _client(self):
        while not self._stop.is_set() and time.monotonic() < self._deadline and self.total < self.max_requests:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                connection.request("GET", self.path)
                response = connection.getresponse()
                body = response.read().decode(errors="replace")
                connection.close()
                outcome = str(response.status)
            except Exception as error:
                outcome, body = type(error).__name__, str(error)
            with self._lock:
                self.outcomes[outcome] += 1
                if outcome == "200":
                    self.bodies[body] += 1
                elif len(self.failures) < 20:
                    self.failures.append(f"{outcome}: {body[:120]}")
