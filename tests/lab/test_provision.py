"""Provision on a fresh lab target: hardened Docker host, idempotent, dry run, lock-out guard.

These run in file order on the session's fresh target (see tests/conftest.py).
"""

import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SSHD_DROP_IN = "/etc/ssh/sshd_config.d/00-slipway-hardening.conf"


def summary(output):
    match = re.search(r"\[lab\] (\d+) ok, (\d+) (changed|would change), (\d+) failed in", output)
    assert match, output
    return int(match.group(1)), int(match.group(2)), int(match.group(4))


@pytest.fixture
def stranger_key(tmp_path):
    path = tmp_path / "stranger.pub"
    key = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    path.write_text(key + " stranger\n")
    return path


def test_lockout_guard_keeps_root_login_when_deploy_cannot_log_in(variant, stranger_key, login, target_host):
    # The deploy user gets a key the operator does not hold: its login must fail.
    fab = variant(lambda data: data["server"].update(authorized_keys=[str(stranger_key)]))
    result = fab("provision")
    assert result.returncode == 1
    assert "refusing to harden sshd: a new SSH login as deploy" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert re.search(r"sshd: no root login, no passwords +failed", result.stdout)
    assert not target_host.file(SSHD_DROP_IN).exists
    assert login("root") == "ok"
    assert login("deploy") == "refused"


def test_provision_makes_a_hardened_docker_host(cli, login):
    result = cli("fab", "-H", "lab", "provision")
    assert result.returncode == 0, result.stdout + result.stderr
    ok, changed, failed = summary(result.stdout)
    assert failed == 0 and changed >= 2
    assert login("root") == "refused"
    assert login("deploy") == "ok"


def test_verify_passes_on_the_provisioned_host(cli):
    result = cli("fab", "-H", "lab", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified: every promise of provision holds" in result.stdout
    assert re.search(r"\b3\d passed\b", result.stdout)


def test_deploy_user_runs_compose_v2_over_a_new_connection(as_deploy):
    assert as_deploy.user == "deploy"
    assert as_deploy.run("docker compose version --short").stdout.strip().startswith("2.")
    assert as_deploy.run("id -nG").stdout.split().count("docker") == 1


def fingerprint(as_deploy):
    """What a no-op must leave alone: managed files, packages, docker and sshd processes, firewall."""
    return as_deploy.run(
        "stat -c '%n %Y %a %U' /etc/docker/daemon.json /etc/ssh/sshd_config.d/00-slipway-hardening.conf "
        "/etc/sudoers.d/slipway-deploy /home/deploy/.ssh/authorized_keys /srv/demo /etc/localtime; "
        "stat -c '%Y' /var/lib/dpkg/status; systemctl show -p MainPID -p ActiveEnterTimestamp docker.service ssh.service; "
        "ufw status verbose", root=True).stdout


def test_second_run_changes_nothing(cli, as_deploy):
    before = fingerprint(as_deploy)
    result = cli("fab", "-H", "lab", "provision")
    assert result.returncode == 0, result.stderr
    assert summary(result.stdout)[1:] == (0, 0)
    assert "connect [127.0.0.1]" in result.stdout and "as deploy" in result.stdout
    assert fingerprint(as_deploy) == before


def test_dry_run_on_a_provisioned_host_has_nothing_to_change(cli):
    result = cli("fab", "-H", "lab", "provision", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert summary(result.stdout)[1:] == (0, 0)


def test_deleted_daemon_json_is_shown_by_dry_run_and_restored(cli, as_deploy):
    wanted = as_deploy.run("cat /etc/docker/daemon.json", root=True).stdout
    as_deploy.run("rm /etc/docker/daemon.json", root=True)

    dry = cli("fab", "-H", "lab", "provision", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert summary(dry.stdout)[1:] == (1, 0)
    assert "--- /dev/null\n    +++ /etc/docker/daemon.json (slipway)" in dry.stdout
    assert '    +  "live-restore": true' in dry.stdout
    assert as_deploy.run("test -e /etc/docker/daemon.json", root=True, check=False).failed

    real = cli("fab", "-H", "lab", "provision")
    assert real.returncode == 0, real.stderr
    assert summary(real.stdout)[1:] == (1, 0)
    assert as_deploy.run("cat /etc/docker/daemon.json", root=True).stdout == wanted
    assert as_deploy.run("docker info --format '{{.LiveRestoreEnabled}}'").stdout.strip() == "true"


def test_failed_step_names_itself_the_command_and_stderr(variant):
    fab = variant(lambda data: data["server"].update(timezone="Mars/Olympus_Mons"))
    result = fab("provision")
    assert result.returncode == 1
    assert "provision step 'timezone Mars/Olympus_Mons' failed" in result.stderr
    assert "command failed (exit 1): test -f /usr/share/zoneinfo/Mars/Olympus_Mons" in result.stderr
    assert "| no such time zone: Mars/Olympus_Mons" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_inventory_is_refused_before_any_connection(variant):
    fab = variant(lambda data: data["server"].update(ssh_port="twenty-two"))
    result = fab("provision")
    assert result.returncode == 1
    assert re.fullmatch(r"error: /\S+/inventories/lab\.yaml: server\.ssh_port: found 'twenty-two'; "
                        r"expected a valid integer, unable to parse string as an integer", result.stderr.strip())
    assert "connect" not in result.stdout
