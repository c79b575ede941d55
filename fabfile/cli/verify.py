"""`fab -H NAME verify`: run slipway's testinfra suite against the real server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import testinfra

from .. import ssh
from ..commands import provision as commands
from ..errors import LoginRefused, SlipwayError
from ..remote import Reporter
from .common import load_deployment, operator_task, project_dir, session, trust_hint

SUITE = Path(__file__).resolve().parent.parent / "verify" / "test_server.py"


class ServerFixtures:
    """Hands the suite its host and expectations (a pytest plugin object)."""

    def __init__(self, host, desired: commands.Desired, deployment, hint: str):
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


@operator_task
def verify(c):
    """Check every promise of provision on the server with testinfra (packages, users, sshd, firewall, files)."""
    deployment = load_deployment(c)
    reporter = Reporter(deployment.name)
    with session(c, deployment, reporter) as remote:
        os_id, os_version = remote.run(". /etc/os-release && echo \"$ID $VERSION_ID\"").stdout.split()
        desired = commands.desired_state(deployment.inventory, project_dir(c), os_id, os_version)
        host = deployment.inventory.host
        infra = testinfra.get_host(f"paramiko://{remote.user}@{host.address}:{host.port}")
        infra.backend.client = remote.conn.client
        fixtures = ServerFixtures(infra, desired, deployment, trust_hint(c))
        exit_code = pytest.main(
            [str(SUITE), "-c", os.devnull, "--rootdir", str(SUITE.parent), "-p", "no:cacheprovider", "-p", "no:pytest11.testinfra",
             "-W", "ignore::pytest.PytestAssertRewriteWarning", "-q", "-rf"],
            plugins=[fixtures],
        )
    if exit_code != 0:
        raise SlipwayError(f"{deployment.name}: the server does not keep every promise of provision (see the failures above)")
    print(f"[{deployment.name}] verified: every promise of provision holds")
