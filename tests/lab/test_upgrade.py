"""Upgrading slipway: a server that an earlier slipway provisioned and deployed is taken over by this one, with no
flag and no failed request. Each earlier slipway runs from its own commit, unpacked into a temporary folder, on a
target made afresh for it (the stage replaces the target, so it comes after test_disaster_recovery.py)."""

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT, run_cli
from lab_site import Site, get, post
from load import strict_clients

from lab.target import target_status

EARLIER = {
    "d0a998f": "main before the database password file (layout 1)",
    "1aa813e": "main when the upgrade work was filed: password file, nginx on Docker's DNS (layout 2)",
    "07e7b22": "main before fixed addresses, the last to land (layout 2)",
}


def unpacked(commit: str, into: Path) -> Path:
    """COMMIT's tree in INTO, with the lab's inventory (without accessories, which that slipway did not know)
    and secrets."""
    archive = subprocess.run(["git", "-C", str(PROJECT), "archive", commit], capture_output=True)
    assert archive.returncode == 0, (f"git archive {commit}: {archive.stderr.decode().strip()} (the upgrade test "
                                     "needs the project's history: a full clone)")
    into.mkdir()
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    inventory = yaml.safe_load((PROJECT / "inventories" / "lab.yaml").read_text())
    del inventory["accessories"]
    (into / "inventories" / "lab.yaml").write_text(yaml.safe_dump(inventory))
    (into / "inventories" / "lab.env").write_bytes((PROJECT / "inventories" / "lab.env").read_bytes())
    return into


def succeeded(*args, cwd=PROJECT):
    result = run_cli(*args, cwd=cwd)
    assert result.returncode == 0, f"{' '.join(args)} (in {cwd})\n{result.stdout}{result.stderr}"
    return result


def release_ids(output: str) -> list[str]:
    return [word for line in output.splitlines() for word in line.lstrip("* ").split()[:1]
            if len(word) == 15 and word[8] == "-"]


@pytest.mark.parametrize("commit", list(EARLIER))
def test_a_server_an_earlier_slipway_laid_out_is_taken_over_under_load(ctx, commit, tmp_path, capsys):
    succeeded("inv", "lab.down")
    succeeded("inv", "lab.up")
    earlier = unpacked(commit, tmp_path / commit)
    site = Site.of(target_status(ctx))
    for version in ("v1", "v2"):
        succeeded("fab", "-H", "lab", "provision", cwd=earlier)
        succeeded("fab", "-H", "lab", "deploy", "--version", version, cwd=earlier)
    assert post(site, "/items", {"name": f"kept-from-{commit}"})[0] == 201
    old_releases = sorted(release_ids(succeeded("fab", "-H", "lab", "releases", cwd=earlier).stdout))
    assert len(old_releases) == 2

    dry_run = succeeded("fab", "-H", "lab", "deploy", "--version", "v2", "--dry-run")
    assert "layout 2 -> 3:" in dry_run.stdout
    with strict_clients(site, clients=10) as load, strict_clients(site, clients=10, path="/items") as reads:
        started = time.monotonic()
        provisioned = succeeded("fab", "-H", "lab", "provision")
        provision_took = time.monotonic() - started
        deployed = succeeded("fab", "-H", "lab", "deploy", "--version", "v2")
        took = time.monotonic() - started
    assert "nginx config installed, not reloaded" in deployed.stdout, deployed.stdout
    for output in (provisioned.stdout + provisioned.stderr, deployed.stdout + deployed.stderr):
        assert "--restart-db" not in output and "--restart-nginx" not in output
    releases = succeeded("fab", "-H", "lab", "releases").stdout
    assert set(old_releases) < set(release_ids(releases)), releases
    answer, body, _ = get(site, "/items")
    assert answer == 200 and f"kept-from-{commit}" in body
    # The accessory the earlier slipway's inventory did not have: this deploy started it.
    assert "accessories redis up and healthy" in deployed.stdout
    assert post(site, "/counter", {})[0] == 200

    # Back to the release the earlier slipway deployed first (v1): its nginx config asks Docker's DNS.
    with strict_clients(site, clients=20) as back:
        rolled_back = run_cli("fab", "-H", "lab", "rollback", "--to", old_releases[0])
    with capsys.disabled():
        print(f"\n    slipway at {commit} -> this one: provision ({provision_took:.1f} s) and deploy (in all "
              f"{took:.1f} s) under 20 keep-alive clients that never retry: {load.failed + reads.failed} failed of "
              f"{load.total + reads.total}; rollback to "
              f"{old_releases[0]} refused: {rolled_back.stderr.strip()}")
    assert load.failed == 0 and reads.failed == 0, load.failures + reads.failures
    assert rolled_back.returncode == 1 and rolled_back.stderr.count("\n") == 1, rolled_back.stderr
    assert rolled_back.stderr.endswith("deploy its version instead: fab -H lab deploy --version v1\n")
    assert back.failed == 0, back.failures
    assert json.loads(get(site, "/version")[1])["version"] == "v2"

    # The reload the upgrade left to the operator (RUNBOOK, "Upgrading slipway"), which `status` asks for: nginx
    # then reaches the containers at their addresses, which the restarts in test_restarts.py rely on.
    pending = "nginx runs an older config than its files"
    assert pending in run_cli("fab", "-H", "lab", "status").stdout
    succeeded("fab", "-H", "lab", "--", "docker exec demo-nginx-1 nginx -s reload")
    assert pending not in run_cli("fab", "-H", "lab", "status").stdout
    assert get(site, "/health")[0] == 200
    config = succeeded("fab", "-H", "lab", "--", "docker exec demo-nginx-1 nginx -T").stdout
    assert "upstream demo-blue-api {" in config and "resolver 127.0.0.11" not in config
