"""The lab target behaves like a fresh cloud VM, and slipway checks its host key."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def test_systemd_is_pid_1_and_the_system_is_running(target_host):
    assert target_host.process.get(pid=1).comm == "systemd"
    assert target_host.run("systemctl is-system-running").stdout.strip() == "running"


def test_sshd_is_enabled_and_listening(target_host):
    assert target_host.service("ssh").is_enabled
    assert target_host.service("ssh").is_running
    assert target_host.socket("tcp://0.0.0.0:22").is_listening


def test_root_logs_in_with_the_lab_key(target_host, lab_deployment):
    assert lab_deployment.inventory.host.user == "root"
    assert target_host.user().name == "root"
    assert target_host.file("/root/.ssh/authorized_keys").mode == 0o600
    assert target_host.file("/root/.ssh/authorized_keys").content_string.split()[:2] == \
        lab_deployment.inventory.host.key_file.with_suffix(".pub").read_text().split()[:2]


def test_target_is_debian_trixie(target_host):
    assert target_host.system_info.distribution == "debian"
    assert target_host.system_info.codename == "trixie"


def test_fab_facts_prints_os_and_kernel(lab_target, cli):
    result = cli("fab", "-H", "lab", "facts")
    assert result.returncode == 0, result.stderr
    assert "OS             Debian GNU/Linux 13 (trixie)" in result.stdout
    assert "Kernel         Linux " in result.stdout
    assert "[lab] gather facts" in result.stdout


def test_inv_uses_the_inventory_from_invoke_config(lab_target, cli):
    result = cli("inv", "facts")
    assert result.returncode == 0, result.stderr
    assert "Init (PID 1)   systemd" in result.stdout


def test_lab_status_json_has_what_scripts_read(lab_target, cli):
    result = cli("inv", "lab.status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["state"] == "running"
    assert status["ssh_port"] == lab_target["ssh_port"]
    for key in ("http_port", "https_port", "key_file", "known_hosts"):
        assert status[key]
    # What a client of the lab's HTTPS site needs: the CA's root, read from the running CA.
    root = Path(status["acme"]["root_certificate"]).read_text()
    assert root.startswith("-----BEGIN CERTIFICATE-----")
    assert status["domains"] == ["demo.slipway.test", "www.demo.slipway.test"]


def test_the_acme_ca_resolves_the_apps_domains_to_the_target(lab_target):
    for domain in lab_target["domains"]:
        found = subprocess.run(["docker", "exec", lab_target["acme"]["container"], "getent", "hosts", domain],
                               capture_output=True, text=True, timeout=30)
        assert found.returncode == 0 and found.stdout.split()[0].startswith("172.30.99."), found.stdout


def test_second_lab_up_reuses_everything(lab_target, cli):
    result = cli("inv", "lab.up")
    assert result.returncode == 0, result.stderr
    assert ", 0 changed, 0 failed in " in result.stdout
    assert re.search(r"target container slipway-lab-target +ok .*running", result.stdout)


@pytest.fixture
def known_hosts_copy(tmp_path, lab_target):
    path = tmp_path / "known_hosts"
    shutil.copy(lab_target["known_hosts"], path)
    return path


@pytest.fixture
def fab_with(variant, known_hosts_copy):
    """`fab -H lab` on an inventory whose known-hosts file the test may break."""
    return variant(lambda data: data["host"].update(known_hosts=str(known_hosts_copy)))


def test_changed_host_key_is_refused(known_hosts_copy, fab_with):
    known_hosts = known_hosts_copy
    assert fab_with("facts").returncode == 0
    name = known_hosts.read_text().split()[0]
    impostor = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    known_hosts.write_text(f"{name} {impostor}\n")
    result = fab_with("facts")
    assert result.returncode == 1
    assert "has CHANGED" in result.stderr and "refusing to connect" in result.stderr
    assert "Traceback" not in result.stderr
    assert "OS " not in result.stdout


def test_unknown_host_is_refused_until_trusted(known_hosts_copy, fab_with):
    known_hosts = known_hosts_copy
    known_hosts.write_text("")
    result = fab_with("facts")
    assert result.returncode == 1
    assert "is not in" in result.stderr and "fab -H lab trust" in result.stderr

    scan = fab_with("trust")
    assert scan.returncode == 1 and "no terminal to confirm on" in scan.stderr
    fingerprint = scan.stdout.split()[3]
    assert fingerprint.startswith("SHA256:")
    trust = fab_with("trust", "--fingerprint", fingerprint)
    assert trust.returncode == 0, trust.stderr
    assert fab_with("facts").returncode == 0
