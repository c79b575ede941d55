"""The lab target, started once per test session, reached over verified SSH."""

import os
import subprocess
import sys
from pathlib import Path

import invoke
import pytest
import testinfra

from fabfile import config, ns, ssh
from fabfile.cli import lab

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def ctx():
    settings = invoke.Config(project_location=str(PROJECT))
    settings.load_collection(ns.configuration())
    return invoke.Context(settings)


@pytest.fixture(scope="session")
def lab_target(ctx):
    return lab.ensure_target(ctx)


@pytest.fixture(scope="session")
def lab_deployment(lab_target):
    return config.load(Path(lab_target["inventory"]).parent, "lab")


@pytest.fixture(scope="session")
def target_host(lab_deployment):
    """testinfra over slipway's own host-key-checked paramiko client (testinfra alone only warns)."""
    host = lab_deployment.inventory.host
    conn = ssh.open_connection(ssh.connection(host, "lab", "inv trust"), "lab", ssh.known_hosts_file(host), "inv trust")
    infra = testinfra.get_host(f"paramiko://{host.user}@{host.address}:{host.port}")
    infra.backend.client = conn.client
    yield infra
    conn.close()


def run_cli(*args: str, env_extra: dict | None = None, cwd: Path = PROJECT) -> subprocess.CompletedProcess:
    """Run `fab`/`inv` from this venv exactly as an operator would."""
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def cli():
    return run_cli
