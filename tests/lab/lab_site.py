"""The lab's site as a browser on the operator's machine sees it: HTTPS to the target's published port,
under the app's name (SNI and Host), trusting only the root of the lab's ACME CA (Pebble)."""

import http.client
import json
import ssl
from dataclasses import dataclass
from pathlib import Path


class _NamedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:PORT that asks for, and verifies, the certificate of DOMAIN."""

    def __init__(self, port: int, domain: str, context: ssl.SSLContext, timeout: float):
        super().__init__("127.0.0.1", port, context=context, timeout=timeout)
        self.domain = domain

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.domain)


@dataclass(frozen=True)
class Site:
    http_port: int
    https_port: int
    domain: str
    root_certificate: str

    @classmethod
    def of(cls, lab_status: dict, domain: str | None = None) -> "Site":
        return cls(lab_status["http_port"], lab_status["https_port"], domain or lab_status["domains"][0],
                   lab_status["acme"]["root_certificate"])

    def context(self, **versions) -> ssl.SSLContext:
        # Pebble makes a new root whenever it starts: read the file each time.
        context = ssl.create_default_context(cadata=Path(self.root_certificate).read_text())
        for key, value in versions.items():
            setattr(context, key, value)
        return context

    def connection(self, https: bool = True, timeout: float = 10, domain: str | None = None, **versions):
        if https:
            return _NamedHTTPSConnection(self.https_port, domain or self.domain, self.context(**versions), timeout)
        return http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)

    def request(self, method: str, path: str, body=None, headers=None, https: bool = True, domain: str | None = None):
        connection = self.connection(https, domain=domain)
        try:
            connection.request(method, path, body=body, headers={"Host": domain or self.domain, **(headers or {})})
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace"), dict(response.getheaders())
        finally:
            connection.close()


def get(site: Site, path: str, **kwargs):
    return site.request("GET", path, **kwargs)


def post(site: Site, path: str, payload):
    status, body, _ = site.request("POST", path, body=json.dumps(payload), headers={"Content-Type": "application/json"})
    return status, json.loads(body)
