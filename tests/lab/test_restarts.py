"""Ordinary events on a server with nobody at the keyboard: Docker's daemon or containerd restarts (an unattended
security update), it reboots. The last stage, as the target goes down and up again under it."""

import json
import subprocess
import time
from pathlib import Path

import pytest
from fabfile import config
from fabfile.remote import Remote
from lab_names import LAB
from lab_server import live_release, wait_until
from lab_site import Site, get
from load import strict_clients
from conftest import connect, run_cli

from lab.target import ensure_target, target_status


@pytest.fixture(scope="module")
def lab_now(ctx):
    """The lab as it is now, not as the session found it (test_disaster_recovery.py, before this module,
    replaced the target): provisioned, its offsite key trusted, a release serving, a fresh backup (so that
    `status` has nothing to say before the reboot)."""
    status = ensure_target(ctx)
    for step in (("fab", "-H", "lab", "provision"), ("inv", "lab.trust-offsite-key")):
        result = run_cli(*step)
        assert result.returncode == 0, " ".join(step) + "\n" + result.stdout + result.stderr
    if "*" not in run_cli("fab", "-H", "lab", "releases").stdout:
        deployed = run_cli("fab", "-H", "lab", "deploy")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    backed_up = run_cli("fab", "-H", "lab", "backup")
    assert backed_up.returncode == 0, backed_up.stdout + backed_up.stderr
    return status


def as_deploy_user(status: dict) -> Remote:
    deployment = config.load(Path(status["inventory"]).parent, "lab")
    return Remote(connect(deployment, deployment.inventory.server.deploy_user), "lab")


# A VM's reboot, measured from the moment it starts again to the site's first good answer over HTTPS.
BOOT_TO_ANSWER_LIMIT_SECONDS = 30


def report(capsys, text):
    with capsys.disabled():
        print(f"\n    {text}")


def slipway_timers(remote) -> list[str]:
    listed = remote.run(["systemctl", "list-timers", "--all", "--no-legend", "--plain"]).stdout
    return sorted(unit for line in listed.splitlines() for unit in line.split()
                  if unit.endswith(".timer") and (unit.startswith("slipway-") or unit == "certbot.timer"))


def answers_health(site: Site):
    try:
        return get(site, "/health")[0] == 200
    except OSError:
        return False


def reboot(target: str) -> float:
    """`systemctl reboot` on the target, as on a VM: systemd stops every unit, the machine goes down (its
    container exits) and boots again. The monotonic time it started again."""
    subprocess.run(["docker", "exec", target, "systemctl", "reboot"], check=True)
    subprocess.run(["docker", "wait", target], check=True, capture_output=True, timeout=120)
    subprocess.run(["docker", "start", target], check=True, capture_output=True)
    return time.monotonic()


# How long the load goes on once the daemon answers again: past nginx's fail_timeout (a server marked failed
# is tried again after it) and past the 5 s a resolver lookup used to wait before its 502.
LOAD_AFTER_RESTART_SECONDS = 8


def docker_answers(target: str) -> bool:
    return subprocess.run(["docker", "exec", target, "docker", "info", "-f", "{{.ServerVersion}}"],
                          capture_output=True).returncode == 0


@pytest.mark.parametrize("unit", ["docker", "containerd"])
def test_a_restart_of_docker_or_containerd_fails_no_request(ctx, lab_now, unit, capsys):
    """As an unattended docker.io or containerd update does: the containers keep running (live-restore) and nginx
    reaches them at their fixed addresses, with nothing asked of the daemon that is down."""
    target = lab_now["container"]
    site = Site.of(lab_now)
    remote = as_deploy_user(lab_now)
    try:
        serving = live_release(remote)
    finally:
        remote.close()
    with strict_clients(site) as load:
        wait_until(lambda: load.total > 500, 30, "the load's first requests")
        started = time.monotonic()
        # A unit restarted too often within a minute is refused by systemd: the lab's earlier restarts do not count.
        subprocess.run(["docker", "exec", target, "systemctl", "reset-failed", f"{unit}.service"], check=False)
        subprocess.run(["docker", "exec", target, "systemctl", "restart", f"{unit}.service"], check=True, timeout=120)
        wait_until(lambda: docker_answers(target), 60, f"Docker to answer after {unit} restarted")
        took = time.monotonic() - started
        during = load.total
        time.sleep(LOAD_AFTER_RESTART_SECONDS)
    report(capsys, f"systemctl restart {unit}: Docker answered again after {took:.1f} s; {load.total} requests "
                   f"from 20 keep-alive clients that never retry ({during} until then), {load.failed} failed")
    assert load.failed == 0, load.failures
    assert set(load.bodies) == {next(iter(load.bodies))}, "one release answered throughout"
    remote = as_deploy_user(lab_now)
    try:
        assert live_release(remote) == serving
    finally:
        remote.close()
    if unit == "docker":
        deployed = run_cli("fab", "-H", "lab", "deploy")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr


def test_a_rebooted_server_serves_the_same_release_over_https_by_itself(ctx, lab_now, capsys):
    remote = as_deploy_user(lab_now)
    try:
        serving = live_release(remote)
        version = json.loads(remote.run(["cat", f"{LAB.release_dir(serving)}/release.json"]).stdout)["version"]
        timers = slipway_timers(remote)
        firewall = remote.run(["ufw", "status", "verbose"], root=True).stdout
    finally:
        remote.close()
    before = run_cli("fab", "-H", "lab", "status")
    assert before.returncode == 0, before.stdout + before.stderr
    assert run_cli("fab", "-H", "lab", "maintenance.on", "--message", "back after the reboot").returncode == 0

    booted = reboot(lab_now["container"])
    site = Site.of(target_status(ctx))
    wait_until(lambda: answers_health(site), 90, "the site's /health over HTTPS after the reboot")
    took = time.monotonic() - booted
    report(capsys, f"rebooted: the site answered over HTTPS {took:.1f} s after the server started again")
    assert took < BOOT_TO_ANSWER_LIMIT_SECONDS
    # The lab's files name the target's ports, which a restart keeps (lab/commands.py); written again if not.
    status = ensure_target(ctx)

    assert get(site, "/version")[0] == 503, "maintenance that was on is still on"
    assert run_cli("fab", "-H", "lab", "maintenance.off").returncode == 0
    answer, body, _ = get(site, "/version")
    assert (answer, json.loads(body)["version"]) == (200, version)
    after = run_cli("fab", "-H", "lab", "status")
    assert after.returncode == 0, after.stdout + after.stderr
    remote = as_deploy_user(status)
    try:
        assert live_release(remote) == serving
        active = remote.run(["systemctl", "is-active", *timers], check=False).stdout.split()
        assert dict(zip(timers, active)) == {timer: "active" for timer in timers}
        assert remote.run(["ufw", "status", "verbose"], root=True).stdout == firewall
    finally:
        remote.close()
