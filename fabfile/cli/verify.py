"""`fab -H NAME verify`: run slipway's testinfra suite against the real server."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SlipwayError
from ..lazy import lazy_module
from ..remote import Reporter
from ..tasking import load_deployment, operator_task, project_dir, session, trust_hint

commands = lazy_module("..commands.provision", __package__)

SUITE = Path(__file__).resolve().parent.parent / "verify" / "test_server.py"


@operator_task
def verify(c):
    """Check every promise of provision on the server with testinfra (packages, users, sshd, firewall, files)."""
    # pytest and testinfra load only here: every other task starts faster without them.
    import pytest
    import testinfra

    from ..verify.plugin import ServerFixtures

    deployment = load_deployment(c)
    reporter = Reporter(deployment.name)
    with session(c, deployment, reporter) as remote:
        os_id, os_version = remote.run(". /etc/os-release && echo \"$ID $VERSION_ID\"").stdout.split()
        home = remote.run(commands.deploy_home_command(deployment.inventory)).stdout.strip()
        desired = commands.desired_state(deployment.inventory, project_dir(c), os_id, os_version, deployment.secret,
                                         home=home or None, inventory_name=deployment.name)
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
