"""A bounded load loop: N clients hit the lab site (HTTPS on loopback) until told to stop (or a hard limit)."""

import http.client
import threading
import time
from collections import Counter


class LoadLoop:
    def __init__(self, site, path: str = "/version", clients: int = 20, max_seconds: float = 180,
                 max_requests: int = 400_000, keep_alive: bool = False, retry_closed: bool = True):
        """KEEP_ALIVE: each client keeps one connection. RETRY_CLOSED: as browsers do (RFC 9112 9.3.1), it
        retries a request once on a new connection when a reused one was closed before any response came;
        without it, that request fails, as it does for many API clients (Python's requests, for one)."""
        self.site, self.path, self.clients, self.keep_alive = site, path, clients, keep_alive
        self.retry_closed = retry_closed
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.outcomes: Counter = Counter()
        self.bodies: Counter = Counter()
        self.failures: list[str] = []
        self.failure_times: list[float] = []
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

    def _fetch(self, connection):
        connection.request("GET", self.path, headers={"Host": self.site.domain})
        response = connection.getresponse()
        return str(response.status), response.read().decode(errors="replace")

    def _client(self):
        connection, reused = None, False
        while not self._stop.is_set() and time.monotonic() < self._deadline and self.total < self.max_requests:
            try:
                if connection is None:
                    connection, reused = self.site.connection(), False
                try:
                    outcome, body = self._fetch(connection)
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    if not (reused and self.retry_closed):
                        raise
                    connection.close()
                    connection = self.site.connection()
                    outcome, body = self._fetch(connection)
                if self.keep_alive:
                    reused = True
                else:
                    connection.close()
                    connection = None
            except Exception as error:
                outcome, body = type(error).__name__, str(error)
                if connection is not None:
                    connection.close()
                connection = None
            with self._lock:
                self.outcomes[outcome] += 1
                if outcome == "200":
                    self.bodies[body] += 1
                else:
                    self.failure_times.append(time.monotonic())
                    if len(self.failures) < 20:
                        self.failures.append(f"{outcome}: {body[:120]}")


def strict_clients(site, clients: int = 20, **kwargs) -> LoadLoop:
    """CLIENTS that each keep one connection alive and never retry: any connection nginx closes under
    them (as a reload does to idle ones) costs a failed request."""
    return LoadLoop(site, clients=clients, keep_alive=True, retry_closed=False, **kwargs)
