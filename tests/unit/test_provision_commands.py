"""Provision as data: the probe, the plan and the file writer, without a server."""

import base64
import grp
import os
import pwd
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path


import pytest
import yaml

from fabfile import config
from fabfile.commands import provision, provision_plan, shell, tls
from fabfile.errors import SlipwayError

PROJECT = Path(__file__).resolve().parents[2]
SECRET = {}.__getitem__  # no inventory here names a secret provision writes
UFW_ACTIVE = """Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), deny (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere
80/tcp                     ALLOW IN    Anywhere
443/tcp                    ALLOW IN    Anywhere
22/tcp (v6)                ALLOW IN    Anywhere (v6)
80/tcp (v6)                ALLOW IN    Anywhere (v6)
443/tcp (v6)               ALLOW IN    Anywhere (v6)
"""


@pytest.fixture
def inventory(tmp_path):
    (tmp_path / "id.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDuptqmDfSXBQUmUGJh op@laptop\n")
    data = {
        "host": {"address": "203.0.113.7"},
        "server": {"authorized_keys": ["id.pub"], "timezone": "Europe/Berlin"},
        "app": {"name": "shop", "domains": ["shop.example.com"], "base_dir": "/srv/shop"},
        "services": {"api": {"image": "shop/api"}},
    }
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump(data))
    return config.load(tmp_path, "prod").inventory


def desired_for(inventory, os_id="debian", version="13"):
    return provision.desired_state(inventory, PROJECT, os_id, version, SECRET)


def converged_state(desired: provision.Desired) -> provision.HostState:
    """A host on which everything provision promises is already true."""
    return provision.HostState(
        os_id="debian", os_version="13", codename="trixie", architecture="amd64",
        installed=set(desired.packages),
        files={f.path: provision.FileState(f.mode, f.owner, f.group, f.content) for f in desired.files.values()},
        directories={d.path: provision.DirectoryState(d.mode, d.owner, d.group) for d in desired.directories},
        user_home="/home/deploy", user_shell="/bin/bash", user_groups={"deploy", "docker"},
        docker_enabled="enabled", docker_active="active",
        timezone_link=f"/usr/share/zoneinfo/{desired.timezone}",
        firewall=UFW_ACTIVE,
        timers_enabled=["enabled"] * len(desired.backup_timers),
    )


def needed(steps):
    return [step.name for step in steps if step.needed]


def test_fresh_host_needs_every_step_in_a_safe_order(inventory):
    desired = desired_for(inventory)
    steps = provision_plan.plan(desired, provision.HostState(os_id="debian", os_version="13"))
    assert needed(steps) == [
        "file /etc/docker/daemon.json", "packages", "timezone Europe/Berlin", "docker.service enabled and running",
        "user deploy (docker group)", "directory /home/deploy/.ssh", "file /home/deploy/.ssh/authorized_keys",
        "file /etc/sudoers.d/slipway-deploy", "directory /srv/shop", "directory /srv/shop/releases",
        "directory /srv/shop/shared", "directory /srv/shop/backups", "file /etc/apt/apt.conf.d/20auto-upgrades",
        # shop.example.com is a public name, so TLS is on: certbot's renewals get their hook and record.
        "directory /var/lib/slipway/shop",
        *[f"file /usr/local/lib/slipway/{name}" for name in tls.INSTALLED_SCRIPTS],
        "file /etc/slipway/shop/tls.conf", "file /etc/letsencrypt/renewal-hooks/deploy/slipway-shop",
        "file /etc/systemd/system/certbot.service.d/slipway-shop.conf",
        "firewall allows only 22/tcp, 80/tcp, 443/tcp", "sshd: no root login, no passwords",
    ]
    packages = next(step for step in steps if step.name == "packages")
    assert packages.actions[0].command.endswith(
        "slipway-apt_install 600 ca-certificates curl sudo tzdata ufw unattended-upgrades certbot jq "
        "docker.io docker-cli docker-compose openssl")


def test_converged_host_needs_nothing(inventory):
    desired = desired_for(inventory)
    assert needed(provision_plan.plan(desired, converged_state(desired))) == []


def test_sshd_is_hardened_only_between_two_proven_logins(inventory):
    desired = desired_for(inventory)
    (hardening,) = [s for s in provision_plan.plan(desired, provision.HostState()) if s.name.startswith("sshd")]
    kinds = [type(action).__name__ for action in hardening.actions]
    assert kinds == ["ProveLogin", "Write", "Shell", "ProveLogin", "Shell"]
    assert hardening.actions[0] == provision_plan.ProveLogin("deploy", "sudo -n true && docker compose version", "sshd")
    assert hardening.actions[3].undo == provision_plan.restore_sshd_command()
    assert hardening.disruptive
    assert hardening.actions[1].file.check_installed == "sshd -t"
    assert hardening.actions[2].command == "systemctl try-reload-or-restart ssh.service"


def test_new_authorized_keys_stay_only_once_a_new_login_gets_through_them(inventory):
    desired = desired_for(inventory)
    state = converged_state(desired)
    keys = "/home/deploy/.ssh/authorized_keys"
    state.files[keys].content = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOld op@old-laptop\n"
    (step,) = [s for s in provision_plan.plan(desired, state) if s.needed]
    write, prove, drop = step.actions
    assert write.file.path == keys and write.file.keep_previous and write.file.content == desired.files[keys].content
    assert (prove.user, prove.command, prove.what) == ("deploy", "true", "authorized_keys")
    assert shlex.split(prove.undo)[3:] == ["slipway-restore_previous", keys, f"{keys}.slipway-previous"]
    assert shlex.split(drop.command) == ["rm", "-f", f"{keys}.slipway-previous"]
    assert not step.disruptive


def test_keys_a_stopped_run_left_unproven_get_their_login_proof(inventory):
    desired = desired_for(inventory)
    state = converged_state(desired)
    keys = "/home/deploy/.ssh/authorized_keys"
    state.files[f"{keys}.slipway-previous"] = provision.FileState(0o600, "deploy", "deploy", "ssh-ed25519 AAAAold\n")
    (step,) = [s for s in provision_plan.plan(desired, state) if s.needed]
    assert [type(action).__name__ for action in step.actions] == ["ProveLogin", "Shell"]
    assert step.diff == f"{keys}: written by a run that stopped before a new login proved it"
    # Changed again meanwhile: the file to go back to is still the one from before the stopped run.
    state.files[keys].content = "ssh-ed25519 AAAAunproven\n"
    (step,) = [s for s in provision_plan.plan(desired, state) if s.needed]
    write, prove, _ = step.actions
    assert not write.file.keep_previous and shlex.split(prove.undo)[-1] == f"{keys}.slipway-previous"


def test_probe_reads_the_previous_authorized_keys_a_stopped_run_left(inventory, tmp_path):
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "authorized_keys.slipway-previous").write_text("ssh-ed25519 AAAAold\n")
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "getent").write_text(f"#!/bin/sh\necho 'deploy:x:1000:1000::{tmp_path}:/bin/bash'\n")
    (shims / "getent").chmod(0o755)
    home_part = next(part for part in provision.probe_script(inventory).splitlines() if part.startswith("home="))
    result = subprocess.run(["sh", "-c", home_part], capture_output=True, text=True,
                            env={"PATH": f"{shims}:/usr/bin:/bin"})
    files = provision.parse_probe(result.stdout).files
    assert files[f"{tmp_path}/.ssh/authorized_keys"] is None
    assert files[f"{tmp_path}/.ssh/authorized_keys.slipway-previous"].content == "ssh-ed25519 AAAAold\n"


def test_deleted_file_is_planned_back_with_a_diff(inventory):
    desired = desired_for(inventory)
    state = converged_state(desired)
    del state.files["/etc/docker/daemon.json"]
    (step,) = [s for s in provision_plan.plan(desired, state) if s.needed]
    assert step.name == "file /etc/docker/daemon.json"
    assert step.diff.startswith("--- /dev/null\n+++ /etc/docker/daemon.json (slipway)\n")
    assert '+  "live-restore": true\n' in step.diff
    assert step.actions[-1].command.startswith("if systemctl is-active --quiet docker.service; then systemctl restart")


def test_wrong_mode_alone_is_a_change(inventory):
    desired = desired_for(inventory)
    state = converged_state(desired)
    state.files["/etc/sudoers.d/slipway-deploy"].mode = 0o644
    (step,) = [s for s in provision_plan.plan(desired, state) if s.needed]
    assert step.diff.endswith("/etc/sudoers.d/slipway-deploy: 644 root:root -> 440 root:root")


def test_user_outside_docker_group_is_added(inventory):
    desired = desired_for(inventory)
    state = converged_state(desired)
    state.user_groups = {"deploy"}
    (step,) = [s for s in provision_plan.plan(desired, state) if s.needed]
    assert step.actions[0].command == "usermod --append --groups docker deploy"


def test_extra_firewall_rule_resets_rules_before_enabling(inventory):
    desired = desired_for(inventory)
    state = converged_state(desired)
    state.firewall = UFW_ACTIVE.replace("443/tcp                    ALLOW IN    Anywhere\n",
                                        "443/tcp                    ALLOW IN    Anywhere\n5432/tcp                   ALLOW IN    Anywhere\n")
    (step,) = [s for s in provision_plan.plan(desired, state) if s.needed]
    enable = shlex.split(step.actions[0].command)
    assert enable[3:] == ["slipway-firewall_enable", "22", str(provision_plan.FIREWALL_REVERT_SECONDS),
                          provision_plan.FIREWALL_BACKUP, "1", "22", "80", "443"]
    text = shell.script_text("firewall_enable")
    assert (text.index("systemd-run") < text.index("ufw --force reset") < text.index('ufw allow "$port/tcp"')
            < text.index("ufw --force enable"))


def test_firewall_is_enabled_behind_a_dead_mans_switch_and_a_proven_login(inventory):
    desired = desired_for(inventory)
    state = converged_state(desired)
    state.firewall = "Status: inactive\n"
    (step,) = [s for s in provision_plan.plan(desired, state) if s.needed]
    enable, prove, confirm = step.actions
    assert enable.stdin == shell.script_text("firewall_restore")
    assert prove.user is None and prove.what == "firewall"
    assert shlex.split(prove.undo)[3:] == ["slipway-firewall_restore", provision_plan.FIREWALL_BACKUP]
    assert shlex.split(confirm.command)[3:] == ["slipway-firewall_confirm", provision_plan.FIREWALL_BACKUP]
    assert step.disruptive
    assert shlex.split(enable.command)[7] == "0"  # no extra rules: no reset


def test_firewall_is_refused_before_anything_when_sshd_listens_elsewhere(inventory):
    desired = desired_for(inventory)
    state = converged_state(desired)
    state.firewall = "Status: inactive\n"
    state.sshd_ports = [2222]
    with pytest.raises(SlipwayError, match=r"server.ssh_port is 22 but sshd listens on 2222: .* nothing was changed"):
        provision_plan.plan(desired, state)
    state.sshd_ports = [2222, 22]
    assert [s.name for s in provision_plan.plan(desired, state) if s.needed] == ["firewall allows only 22/tcp, 80/tcp, 443/tcp"]


def test_an_image_store_switch_under_a_deployed_app_needs_the_operators_word(inventory):
    docker = inventory.server.docker.model_copy(update={"containerd_image_store": True})
    switched = inventory.model_copy(update={"server": inventory.server.model_copy(update={"docker": docker})})
    state = converged_state(desired_for(inventory))
    desired = desired_for(switched)
    assert '"containerd-snapshotter": true' in desired.files["/etc/docker/daemon.json"].content
    # Not deployed yet: nothing to lose.
    assert needed(provision_plan.plan(desired, state)) == ["file /etc/docker/daemon.json"]
    state.app_deployed = True
    with pytest.raises(SlipwayError, match=r"image store setting \(Docker's default -> true\).*--switch-image-store"):
        provision_plan.plan(desired, state)
    (step,) = [s for s in provision_plan.plan(desired, state, switch_image_store=True) if s.needed]
    # Containers of the old store would be left running where Docker can no longer see them: stopped first.
    commands = [action.command for action in step.actions if isinstance(action, provision_plan.Shell)]
    assert commands[0] == "docker ps -q | xargs -r docker stop" and "systemctl restart docker.service" in commands[1]
    # The same setting again is no switch.
    assert needed(provision_plan.plan(desired_for(inventory), state)) == []


def test_firewall_rules_parse_ufw_status():
    active, default, rules = provision.firewall_rules(UFW_ACTIVE)
    assert active and default.startswith("Default: deny (incoming)")
    assert rules == {"22/tcp ALLOW Anywhere", "80/tcp ALLOW Anywhere", "443/tcp ALLOW Anywhere"}
    assert provision.firewall_rules("Status: inactive\n") == (False, "", set())


def test_swap_step_only_when_asked_and_sized_differently(inventory):
    desired = desired_for(inventory)
    assert not [s for s in provision_plan.plan(desired, converged_state(desired)) if s.name.startswith("swap")]
    sized = provision.Desired(**{**desired.__dict__, "swap_mb": 512})
    state = converged_state(sized)
    (step,) = [s for s in provision_plan.plan(sized, state) if s.needed]
    assert "fallocate -l 512M /swapfile" in step.actions[0].command
    # What a live swap file looks like: swapon counts one page less than the file holds.
    state.swaps = {"/swapfile": 512 * 1024 * 1024 - 4096}
    state.swap_file_bytes = 512 * 1024 * 1024
    assert needed(provision_plan.plan(sized, state)) == []
    state.swap_file_bytes = 256 * 1024 * 1024
    assert needed(provision_plan.plan(sized, state)) == ["swap file /swapfile of 512 MiB"]


def test_probe_reads_sshd_ports_swap_file_and_whether_the_app_was_deployed():
    output = "@@slipway@@ sshd_ports\n22\n2222\n@@slipway@@ swapfile\n536870912\n@@slipway@@ app_state\npresent\n"
    state = provision.parse_probe(output)
    assert state.sshd_ports == [22, 2222] and state.swap_file_bytes == 536870912 and state.app_deployed


@pytest.mark.parametrize("os_id, version, packages", [
    ("debian", "13", ("docker.io", "docker-cli", "docker-compose")),
    ("ubuntu", "24.04", ("docker.io", "docker-compose-v2")),
    ("ubuntu", "22.04", ("docker.io", "docker-compose-v2")),
])
def test_distribution_docker_packages(inventory, os_id, version, packages):
    assert provision.docker_packages(inventory, os_id, version) == packages


def test_debian_12_needs_dockers_repository_for_compose_v2(inventory):
    with pytest.raises(SlipwayError, match="Debian 12's own archive has only Compose v1"):
        provision.docker_packages(inventory, "debian", "12")
    with pytest.raises(SlipwayError, match="fedora 40 is not a system"):
        provision.docker_packages(inventory, "fedora", "40")


def test_repository_packages_add_the_apt_source_first(inventory):
    docker = inventory.server.docker.model_copy(update={"packages": "repository", "repository_url": "https://apt.example/linux/debian"})
    server = inventory.server.model_copy(update={"docker": docker})
    inventory = inventory.model_copy(update={"server": server})
    desired = desired_for(inventory, "debian", "12")
    assert desired.packages[-5:-1] == ("docker-ce", "docker-ce-cli", "containerd.io", "docker-compose-plugin")
    state = provision.HostState(os_id="debian", os_version="12", codename="bookworm", architecture="amd64")
    steps = provision_plan.plan(desired, state)
    assert steps[0].name == "docker apt repository"
    assert steps[0].actions[-1].file.content == (
        "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] https://apt.example/linux/debian bookworm stable\n")


def test_probe_output_is_parsed_section_by_section(inventory):
    daemon = '{"live-restore": true}\n'
    output = "\n".join([
        "@@slipway@@ os", "debian", "13", "trixie", "amd64",
        "@@slipway@@ packages", "docker.io ii ", "ufw un ", "sudo ii ",
        "@@slipway@@ user", "/home/deploy:/bin/bash", "deploy docker",
        "@@slipway@@ docker", "enabled", "active",
        "@@slipway@@ timezone", "/usr/share/zoneinfo/Etc/UTC",
        "@@slipway@@ firewall", *UFW_ACTIVE.splitlines(),
        "@@slipway@@ swaps", "/swapfile 536870912",
        "@@slipway@@ file /etc/docker/daemon.json", "644 root root", base64.b64encode(daemon.encode()).decode(),
        "@@slipway@@ file /etc/sudoers.d/slipway-deploy",
        "@@slipway@@ dir /srv/shop", "750 deploy deploy",
        "@@slipway@@ dir /srv/shop/releases",
    ])
    state = provision.parse_probe(output)
    assert (state.os_id, state.os_version, state.codename, state.architecture) == ("debian", "13", "trixie", "amd64")
    assert state.installed == {"docker.io", "sudo"}
    assert (state.user_home, state.user_shell, state.user_groups) == ("/home/deploy", "/bin/bash", {"deploy", "docker"})
    assert (state.docker_enabled, state.docker_active) == ("enabled", "active")
    assert provision.firewall_rules(state.firewall)[0]
    assert state.swaps == {"/swapfile": 536870912}
    assert state.files["/etc/docker/daemon.json"] == provision.FileState(0o644, "root", "root", daemon.rstrip("\n") + "\n")
    assert state.files["/etc/sudoers.d/slipway-deploy"] is None
    assert state.directories == {"/srv/shop": provision.DirectoryState(0o750, "deploy", "deploy"), "/srv/shop/releases": None}


def test_probe_script_is_valid_shell_that_reads_absent_paths(inventory):
    result = subprocess.run(["sh", "-n", "-c", provision.probe_script(inventory)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def run_writer(managed: provision.ManagedFile) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", provision_plan.write_file_command(managed)], input=managed.content,
                          capture_output=True, text=True)


def test_file_writer_replaces_atomically_with_owner_and_mode(tmp_path):
    target = tmp_path / "etc" / "app.conf"
    result = run_writer(provision.ManagedFile(str(target), "a = 1\n", mode=0o640))
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "a = 1\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["app.conf"]


def test_file_writer_keeps_the_live_file_when_the_candidate_check_fails(tmp_path):
    target = tmp_path / "sudoers"
    target.write_text("old\n")
    result = run_writer(provision.ManagedFile(str(target), "new\n", check_candidate="grep -q valid {path}"))
    assert result.returncode != 0
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["sudoers"]


def test_file_writer_restores_the_previous_file_when_the_installed_check_fails(tmp_path):
    target = tmp_path / "sshd.conf"
    target.write_text("PermitRootLogin prohibit-password\n")
    result = run_writer(provision.ManagedFile(str(target), "broken\n", check_installed="false"))
    assert result.returncode == 1
    assert "rejected by: false; previous file restored" in result.stderr
    assert target.read_text() == "PermitRootLogin prohibit-password\n"


OLD_KEYS = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOld op@old-laptop\n"


def write_authorized_keys(inventory, home: Path, before: str | None):
    """The authorized_keys step's write carried out in HOME (owned by whoever runs the tests); its other actions."""
    keys = home / ".ssh" / "authorized_keys"
    if before is not None:
        keys.parent.mkdir()
        keys.write_text(before)
        keys.chmod(0o640)
        os.utime(keys, (1_000_000_000, 1_000_000_000))
    desired = provision.desired_state(inventory, PROJECT, "debian", "13", SECRET, home=str(home))
    state = provision.HostState(os_id="debian", os_version="13")
    (step,) = [s for s in provision_plan.plan(desired, state) if s.name == f"file {keys}"]
    write, prove, drop = step.actions
    me = replace(write.file, owner=pwd.getpwuid(os.getuid()).pw_name, group=grp.getgrgid(os.getgid()).gr_name)
    result = run_writer(me)
    assert result.returncode == 0, result.stderr
    assert keys.read_text() == desired.files[str(keys)].content
    return keys, prove, drop


@pytest.mark.parametrize("before", [OLD_KEYS, None])
def test_a_refused_login_puts_back_the_authorized_keys_there_were(inventory, tmp_path, before):
    keys, prove, _ = write_authorized_keys(inventory, tmp_path, before)
    undo = subprocess.run(shlex.split(prove.undo), capture_output=True, text=True)
    assert undo.returncode == 0, undo.stderr
    if before is None:
        assert list(keys.parent.iterdir()) == []
    else:
        assert [p.name for p in keys.parent.iterdir()] == ["authorized_keys"]
        assert keys.read_text() == before
        assert (keys.stat().st_mode & 0o777, keys.stat().st_mtime) == (0o640, 1_000_000_000)


def test_a_proven_login_keeps_the_new_authorized_keys_alone(inventory, tmp_path):
    keys, _, drop = write_authorized_keys(inventory, tmp_path, OLD_KEYS)
    assert subprocess.run(shlex.split(drop.command)).returncode == 0
    assert [p.name for p in keys.parent.iterdir()] == ["authorized_keys"]
    assert "op@laptop" in keys.read_text() and keys.stat().st_mode & 0o777 == 0o600
