"""The lab target, created fresh once per test session, reached over verified SSH."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra
import yaml

from fabfile import config, ssh
from fabfile.errors import LoginRefused
from fabfile.remote import Remote
from lab import target as lab
from lab_names import PROJECT, checkout_context
from lab_site import Site

BIN = Path(sys.executable).parent
# A module marked so gets the app serving from its site fixture: deployed first when no release serves yet.
DEPLOY_IF_NOTHING_SERVES = "deploy_if_nothing_serves"


def pytest_configure(config):
    config.addinivalue_line("markers", f"{DEPLOY_IF_NOTHING_SERVES}: the module's site fixture deploys the app first "
                                       "when no release serves (the module run on its own)")


@pytest.fixture(scope="session")
def ctx():
    """A context as `inv` makes one in the checkout (tasks.py's collection: slipway's settings and the lab's)."""
    return checkout_context()


@pytest.fixture(scope="session")
def lab_target(ctx, request):
    """A target made from nothing for this session: provision is always tested from a fresh host."""
    return lab.ensure_target(ctx, fresh=not request.config.getoption("--lab-reuse"))


@pytest.fixture(scope="session")
def lab_deployment(lab_target):
    return config.load(Path(lab_target["inventory"]).parent, "lab")


def connect(deployment, user):
    host = deployment.inventory.host
    conn = ssh.connection(host, "lab", "inv trust", user=user)
    return ssh.open_connection(conn, "lab", ssh.known_hosts_file(host), "inv trust")


@pytest.fixture(scope="session")
def login(lab_deployment):
    """USER -> "ok" or "refused": a brand-new key login to the target."""

    def attempt(user):
        try:
            connect(lab_deployment, user).close()
            return "ok"
        except LoginRefused:
            return "refused"

    return attempt


@pytest.fixture
def as_deploy(lab_deployment):
    """Commands on the provisioned target as the deploy user (root ones through sudo)."""
    remote = Remote(connect(lab_deployment, lab_deployment.inventory.server.deploy_user), "lab")
    yield remote
    remote.close()


@pytest.fixture(scope="session")
def target_host(lab_deployment):
    """testinfra over slipway's own host-key-checked paramiko client (testinfra alone only warns)."""
    host = lab_deployment.inventory.host
    conn = connect(lab_deployment, host.user)
    infra = testinfra.get_host(f"paramiko://{host.user}@{host.address}:{host.port}")
    infra.backend.client = conn.client
    yield infra
    conn.close()


def run_cli(*args, env_extra=None, cwd=PROJECT):
    """Run `fab`/`inv` from this venv exactly as an operator would."""
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def cli():
    return run_cli


@pytest.fixture
def variant(tmp_path, lab_target):
    """Make a copy of the lab inventory, edited by a function, in its own folder; return `fab -H lab` for it."""

    def make(edit, extra_secrets=None):
        folder = tmp_path / "inventories"
        folder.mkdir(exist_ok=True)
        data = yaml.safe_load(Path(lab_target["inventory"]).read_text())
        edit(data)
        (folder / "lab.yaml").write_text(yaml.safe_dump(data))
        shutil.copy(Path(lab_target["inventory"]).with_suffix(".env"), folder / "lab.env")
        with open(folder / "lab.env", "a") as secrets:
            secrets.writelines(f"{key}={value}\n" for key, value in (extra_secrets or {}).items())
        return lambda *args: run_cli("fab", "-H", "lab", *args, env_extra={"FABRIC_SLIPWAY_INVENTORY_DIR": str(folder)})

    return make


@pytest.fixture(scope="session")
def provisioned(lab_target):
    """The target provisioned (a no-op re-run when test_provision.py already did it), its offsite
    key authorized on the backup host as the operator would after the first provision."""
    result = run_cli("fab", "-H", "lab", "provision")
    assert result.returncode == 0, result.stdout + result.stderr
    trusted = run_cli("inv", "lab.trust-offsite-key")
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    return lab_target


@pytest.fixture(scope="module")
def site(request, provisioned):
    """The lab's site as a browser sees it, on the provisioned target. In a module marked
    deploy_if_nothing_serves, the app serves too: deployed here when no release does yet (that module run on
    its own). Modules whose every test needs the provisioned target use it with
    `pytestmark = pytest.mark.usefixtures("site")`."""
    if request.node.get_closest_marker(DEPLOY_IF_NOTHING_SERVES):
        if "*" not in run_cli("fab", "-H", "lab", "releases").stdout:
            deployed = run_cli("fab", "-H", "lab", "deploy")
            assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    return Site.of(provisioned)
