"""The pytest plugin that hands slipway's server suite its host and expectations."""

from __future__ import annotations

import pytest

from .. import ssh
from ..commands import provision
from ..errors import LoginRefused


class ServerFixtures:
    """Hands the suite its host and expectations (a pytest plugin object)."""

    def __init__(self, host, desired: provision.Desired, deployment, hint: str):
        self._host = host
        self._desired = desired
        self._deployment = deployment
        self._hint = hint

    def pytest_generate_tests(self, metafunc):
        if "package" in metafunc.fixturenames:
            metafunc.parametrize("package", self._desired.packages)
        if "managed_file" in metafunc.fixturenames:
            metafunc.parametrize("managed_file", list(self._desired.files.values()), ids=lambda f: f.path)
        if "directory" in metafunc.fixturenames:
            metafunc.parametrize("directory", self._desired.directories, ids=lambda d: d.path)

    @pytest.fixture
    def host(self):
        return self._host

    @pytest.fixture
    def desired(self):
        return self._desired

    @pytest.fixture
    def server(self):
        return self._deployment.inventory.server

    @pytest.fixture
    def login(self):
        """USER -> "ok" or "refused": a fresh key login, as the operator would make it."""
        host = self._deployment.inventory.host

        def attempt(user: str) -> str:
            conn = ssh.connection(host, self._deployment.name, self._hint, user=user)
            try:
                ssh.open_connection(conn, self._deployment.name, ssh.known_hosts_file(host), self._hint)
                return "ok"
            except LoginRefused:
                return "refused"
            finally:
                conn.close()

        return attempt

    @pytest.fixture
    def auth_methods(self):
        host = self._deployment.inventory.host
        recorded = ssh.recorded_keys(ssh.known_hosts_file(host), host.address, host.port)
        return lambda user: ssh.allowed_auth_methods(host.address, host.port, user, next(iter(recorded.values()), None))
