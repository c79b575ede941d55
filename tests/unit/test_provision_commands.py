"""Provision as data: the probe, the plan and the file writer, without a server."""

import base64
import io
import grp
import os
import pwd
import subprocess
import tarfile
from dataclasses import replace
from pathlib import Path


import pytest
import yaml

from fabfile import config
from fabfile.commands import facts, provision, provision_plan, shell, tls
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
    assert shell.shown(packages.actions[0].command) == (
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
    assert hardening.actions[3].undo[3:] == ["slipway-restore_sshd", provision.SSHD_DROP_IN,
                                             f"{provision.SSHD_DROP_IN}.slipway-previous"]
    assert hardening.disruptive
    assert hardening.actions[1].file.check_installed == "sshd -t"
    assert hardening.actions[2].command == "systemctl try-reload-or-restart ssh.service"
    assert hardening.actions[4].command == ["rm", "-f", f"{provision.SSHD_DROP_IN}.slipway-previous"]


def test_new_authorized_keys_stay_only_once_a_new_login_gets_through_them(inventory):
    desired = desired_for(inventory)
    state = converged_state(desired)
    keys = "/home/deploy/.ssh/authorized_keys"
    state.files[keys].content = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOld op@old-laptop\n"
    (step,) = [s for s in provision_plan.plan(desired, state) if s.needed]
    write, prove, drop = step.actions
    assert write.file.path == keys and write.file.keep_previous and write.file.content == desired.files[keys].content
    assert (prove.user, prove.command, prove.what) == ("deploy", "true", "authorized_keys")
    assert prove.undo[3:] == ["slipway-restore_previous", keys, f"{keys}.slipway-previous"]
    assert drop.command == ["rm", "-f", f"{keys}.slipway-previous"]
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
    assert not write.file.keep_previous and prove.undo[-1] == f"{keys}.slipway-previous"


def fake_commands(folder: Path, **programs: str) -> dict[str, str]:
    """PROGRAMS (NAME=shell text) as commands in FOLDER; the environment that puts them first on PATH.
    /usr/sbin stays off it: sshd, ufw and swapon of this machine are not the server's."""
    folder.mkdir(exist_ok=True)
    for name, text in programs.items():
        (folder / name).write_text("#!/bin/sh\n" + text + "\n")
        (folder / name).chmod(0o755)
    return {"PATH": f"{folder}:/usr/bin:/bin"}


def run_probe(argv, env, cwd=None) -> subprocess.CompletedProcess:
    """The probe as the server runs it: its argv joined into one line for the login shell."""
    return subprocess.run(["sh", "-c", shell.line(argv)], capture_output=True, text=True, env=env, cwd=cwd)


def test_probe_reads_the_previous_authorized_keys_a_stopped_run_left(inventory, tmp_path):
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "authorized_keys.slipway-previous").write_text("ssh-ed25519 AAAAold\n")
    env = fake_commands(tmp_path / "bin", getent=f"echo 'deploy:x:1000:1000::{tmp_path}:/bin/bash'")
    result = run_probe(provision.probe_script(inventory), env)
    assert result.returncode == 0, result.stderr
    state = provision.parse_probe(result.stdout)
    assert f"{tmp_path}/.ssh/authorized_keys" not in state.files
    assert state.files[f"{tmp_path}/.ssh/authorized_keys.slipway-previous"].content == "ssh-ed25519 AAAAold\n"
    assert state.directories[f"{tmp_path}/.ssh"] is not None


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
    assert step.actions[0].command == ["usermod", "--append", "--groups", "docker", "deploy"]


def test_extra_firewall_rule_resets_rules_before_enabling(inventory):
    desired = desired_for(inventory)
    state = converged_state(desired)
    state.firewall = UFW_ACTIVE.replace("443/tcp                    ALLOW IN    Anywhere\n",
                                        "443/tcp                    ALLOW IN    Anywhere\n5432/tcp                   ALLOW IN    Anywhere\n")
    (step,) = [s for s in provision_plan.plan(desired, state) if s.needed]
    enable = step.actions[0].command
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
    assert prove.undo[3:] == ["slipway-firewall_restore", provision_plan.FIREWALL_BACKUP]
    assert confirm.command[3:] == ["slipway-firewall_confirm", provision_plan.FIREWALL_BACKUP]
    assert step.disruptive
    assert enable.command[7] == "0"  # no extra rules: no reset


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
    assert step.actions[0].command[3:] == ["slipway-swap_file", "/swapfile", "512M"]
    assert 'fallocate -l "$size" "$file"' in shell.script_text("swap_file")
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


def probed_paths(files: dict[str, tuple[int, str, str, str]], folders: dict[str, tuple[int, str, str]]) -> str:
    """The probe's paths section: a gzipped tar, in base64, of what is there."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as members:
        for path, (mode, owner, group, *content) in [*files.items(), *folders.items()]:
            member = tarfile.TarInfo(path)
            member.mode, member.uname, member.gname = mode, owner, group
            data = content[0].encode() if content else b""
            member.type, member.size = (tarfile.REGTYPE, len(data)) if content else (tarfile.DIRTYPE, 0)
            members.addfile(member, io.BytesIO(data))
    return base64.b64encode(archive.getvalue()).decode()


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
        "@@slipway@@ paths", probed_paths({"/etc/docker/daemon.json": (0o644, "root", "root", daemon)},
                                          {"/srv/shop/": (0o2750, "deploy", "deploy")}),
    ])
    state = provision.parse_probe(output)
    assert (state.os_id, state.os_version, state.codename, state.architecture) == ("debian", "13", "trixie", "amd64")
    assert state.installed == {"docker.io", "sudo"}
    assert (state.user_home, state.user_shell, state.user_groups) == ("/home/deploy", "/bin/bash", {"deploy", "docker"})
    assert (state.docker_enabled, state.docker_active) == ("enabled", "active")
    assert provision.firewall_rules(state.firewall)[0]
    assert state.swaps == {"/swapfile": 536870912}
    assert state.files == {"/etc/docker/daemon.json": provision.FileState(0o644, "root", "root", daemon)}
    assert state.directories == {"/srv/shop": provision.DirectoryState(0o2750, "deploy", "deploy")}


def test_the_probe_script_prints_every_section_and_reads_files_and_folders_there_or_not(inventory, tmp_path,
                                                                                      monkeypatch):
    home = tmp_path / "the home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA op@laptop\n")
    there, folder = tmp_path / "there.conf", tmp_path / "folder"
    there.write_text("a = 1\n")
    there.chmod(0o640)
    folder.mkdir()
    env = fake_commands(
        tmp_path / "bin", getent=f"[ \"$2\" = deploy ] && echo 'deploy:x:1000:1000::{home}:/bin/bash'",
        id='[ "$2" = deploy ] && echo deploy docker', systemctl='shift; for unit do echo "enabled $unit"; done',
        sshd="printf 'port 22\\nport 2222\\naddressfamily any\\n'", ufw="echo 'Status: inactive'",
        readlink="echo /usr/share/zoneinfo/Etc/UTC", **{"dpkg-query": 'for p do echo "$p ii "; done', "dpkg": "echo amd64"})
    # Another name of the same file (a hard link, a symbolic one) is read as the file it names.
    os.link(there, tmp_path / "linked.conf")
    (tmp_path / "pointer.conf").symlink_to(there)
    files = [str(there), str(tmp_path / "missing.conf"), str(tmp_path / "linked.conf"), str(tmp_path / "pointer.conf")]
    folders = [str(folder), str(tmp_path / "no-folder")]
    monkeypatch.setattr(provision, "managed_paths", lambda _: (files, folders))
    result = run_probe(provision.probe_script(inventory), env)
    assert result.returncode == 0, result.stderr
    headers = [header for header, _ in facts.sections(result.stdout)]
    assert headers == ["os", "packages", "user", "docker", "timezone", "swaps", "swapfile", "sshd_ports",
                       "timers", "offsite_key", "app_state", "layout", "paths", "firewall"]
    state = provision.parse_probe(result.stdout)
    assert state.architecture == "amd64" and set(provision.BASE_PACKAGES) <= state.installed
    assert (state.user_home, state.user_shell, state.user_groups) == (str(home), "/bin/bash", {"deploy", "docker"})
    assert (state.docker_enabled, state.docker_active) == ("enabled docker.service", "enabled docker.service")
    assert state.sshd_ports == [22, 2222] and state.timezone_link == "/usr/share/zoneinfo/Etc/UTC"
    assert state.timers_enabled == [] and not state.app_deployed
    assert state.files[str(there)] == provision.FileState(0o640, *owner_and_group(), "a = 1\n")
    assert str(tmp_path / "missing.conf") not in state.files
    assert state.files[str(tmp_path / "linked.conf")] == state.files[str(tmp_path / "pointer.conf")] == state.files[str(there)]
    assert state.files[f"{home}/.ssh/authorized_keys"].content == "ssh-ed25519 AAAA op@laptop\n"
    assert state.directories[str(folder)].mode == folder.stat().st_mode & 0o777
    assert str(tmp_path / "no-folder") not in state.directories
    assert provision.firewall_rules(state.firewall) == provision.firewall_rules("Status: inactive")
    # A user still to be made: no home, so nothing is read in one.
    env = fake_commands(tmp_path / "bin", getent="exit 2")
    without = provision.parse_probe(run_probe(provision.probe_script(inventory), env).stdout)
    assert without.user_home is None and not any(path.startswith(str(home)) for path in without.files)


def owner_and_group() -> tuple[str, str]:
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


# --- values reach the server as argv elements, never as program text ---------------------------------

HOSTILE = "it's \"odd\" $(touch pwned) `touch pwned` ;touch pwned\nline two"


def hostile_desired(inventory) -> provision.Desired:
    """DESIRED with HOSTILE in every value a step puts on a command line: user, home, paths, time zone, URL, units."""
    desired = desired_for(inventory)
    user, home = HOSTILE, f"/home/{HOSTILE}"
    files = {path: managed for path, managed in desired.files.items()
             if path not in ("/etc/sudoers.d/slipway-deploy", "/home/deploy/.ssh/authorized_keys")}
    timer = provision.ManagedFile(f"/etc/systemd/system/{HOSTILE}.timer", "[Timer]\n",
                                  check_candidate=provision.TIMER_CHECK)
    files.update({managed.path: managed for managed in (
        replace(desired.files["/etc/sudoers.d/slipway-deploy"], path=f"/etc/sudoers.d/slipway-{user}"),
        replace(desired.files["/home/deploy/.ssh/authorized_keys"], path=f"{home}/.ssh/authorized_keys",
                owner=user, group=user),
        timer)})
    return replace(
        desired, deploy_user=user, deploy_home=home, timezone=HOSTILE, docker_repository=f"https://apt.example/{HOSTILE}",
        files=files, swap_mb=512, backup_files=(timer.path,), backup_timers=(f"{HOSTILE}.timer",),
        offsite_key=f"/etc/slipway/{HOSTILE}/offsite_ed25519",
        directories=(provision.Directory(f"{home}/.ssh", user, user, 0o700),
                     provision.Directory(f"/srv/{HOSTILE}", user, user, 0o750),
                     provision.Directory(f"/var/lib/slipway/{HOSTILE}", "root", "root", 0o755)))


def commands_of(steps):
    """Every command the steps' actions send to the server (the file writer's too)."""
    for step in steps:
        for action in step.actions:
            if isinstance(action, provision_plan.Shell):
                yield action.command
            elif isinstance(action, provision_plan.Write):
                yield provision_plan.write_file_command(action.file)
            else:
                yield action.command
                if action.undo:
                    yield action.undo


def program_texts(command) -> list[str]:
    """What a shell on the server reads as program in COMMAND: a fixed line; a packaged script's text and the
    file writer's checks (shell text run on the file). The elements of any other argv are only ever values."""
    if isinstance(command, str):
        return [command]
    if command[:2] != ["sh", "-c"]:
        return []
    options = ("--candidate-check", "--installed-check")
    return [command[2], *(value for option, value in zip(command[3:], command[4:]) if option in options)]


def test_hostile_values_reach_every_step_as_argv_elements_never_as_program_text(inventory):
    desired = hostile_desired(inventory)
    fresh = provision.HostState(os_id="debian", os_version="13", codename="trixie", architecture="amd64")
    outside_docker = replace(fresh, user_home=f"/home/{HOSTILE}", user_groups={HOSTILE})
    commands = [*commands_of(provision_plan.plan(desired, fresh)), *commands_of(provision_plan.plan(desired, outside_docker)),
                provision_plan.restore_sshd_command()]
    carrying = []
    for command in commands:
        assert all("touch pwned" not in text and HOSTILE not in text for text in program_texts(command)), command
        if isinstance(command, list) and any(HOSTILE in word for word in command):
            carrying.append(shell.shown(command).split()[0])
    assert {"useradd", "usermod", "install", "slipway-timezone", "slipway-offsite_key", "slipway-enable_units",
            "slipway-docker_keyring", "slipway-install_file", "slipway-restore_previous", "rm"} <= set(carrying)
    assert ["slipway-timezone", f"/usr/share/zoneinfo/{HOSTILE}", HOSTILE] in [c[3:] for c in commands if isinstance(c, list)]


def test_hostile_values_reach_the_probe_as_its_arguments(inventory, tmp_path, monkeypatch):
    server = inventory.server.model_copy(update={"deploy_user": HOSTILE})
    app = inventory.app.model_copy(update={"base_dir": Path(f"/srv/{HOSTILE}")})
    hostile = inventory.model_copy(update={"server": server, "app": app})
    probe = provision.probe_script(hostile)
    assert "touch pwned" not in probe[2] and probe[3:5] == ["slipway-probe", facts.MARK]
    assert probe[5] == HOSTILE and f"/srv/{HOSTILE}/.slipway" in probe and f"/srv/{HOSTILE}/releases" in probe
    assert provision.deploy_home_command(hostile)[3:] == ["slipway-deploy_home", HOSTILE]
    # Run: a line break cannot be told from the next line of the probe's output, the rest can.
    odd = HOSTILE.replace("\n", " ")
    (tmp_path / odd).write_text("x\n")
    (tmp_path / f"{odd} folder").mkdir()
    files, folders = [str(tmp_path / odd), str(tmp_path / f"{odd} missing")], [str(tmp_path / f"{odd} folder")]
    monkeypatch.setattr(provision, "managed_paths", lambda _: (files, folders))
    env = fake_commands(tmp_path / "bin", getent='[ "$2" = "$HOSTILE" ] && echo "x:x:1:1::$HOME_DIR:/bin/sh"')
    env.update(HOSTILE=HOSTILE, HOME_DIR=str(tmp_path))
    result = run_probe(provision.probe_script(hostile), env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    state = provision.parse_probe(result.stdout)
    assert state.user_home == str(tmp_path)
    assert state.files[str(tmp_path / odd)].content == "x\n" and str(tmp_path / f"{odd} missing") not in state.files
    assert state.directories[str(tmp_path / f"{odd} folder")] is not None
    assert not (tmp_path / "pwned").exists()


def test_the_file_writer_takes_a_hostile_path_as_it_is(tmp_path):
    target = tmp_path / HOSTILE / f"{HOSTILE}.conf"
    result = subprocess.run(["sh", "-c", shell.line(provision_plan.write_file_command(provision.ManagedFile(
        str(target), "a = 1\n", owner=owner_and_group()[0], group=owner_and_group()[1], keep_previous=True)))],
        input="a = 1\n", capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "a = 1\n" and [p.name for p in target.parent.iterdir()] == [target.name]
    assert not (tmp_path / "pwned").exists()


def run_writer(managed: provision.ManagedFile) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", shell.line(provision_plan.write_file_command(managed))], input=managed.content,
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
    result = run_writer(provision.ManagedFile(str(target), "new\n", check_candidate='grep -q valid "$1"'))
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
    me = replace(write.file, owner=owner_and_group()[0], group=owner_and_group()[1])
    result = run_writer(me)
    assert result.returncode == 0, result.stderr
    assert keys.read_text() == desired.files[str(keys)].content
    return keys, prove, drop


@pytest.mark.parametrize("before", [OLD_KEYS, None])
def test_a_refused_login_puts_back_the_authorized_keys_there_were(inventory, tmp_path, before):
    keys, prove, _ = write_authorized_keys(inventory, tmp_path, before)
    undo = subprocess.run(["sh", "-c", shell.line(prove.undo)], capture_output=True, text=True)
    assert undo.returncode == 0, undo.stderr
    if before is None:
        assert list(keys.parent.iterdir()) == []
    else:
        assert [p.name for p in keys.parent.iterdir()] == ["authorized_keys"]
        assert keys.read_text() == before
        assert (keys.stat().st_mode & 0o777, keys.stat().st_mtime) == (0o640, 1_000_000_000)


def test_a_proven_login_keeps_the_new_authorized_keys_alone(inventory, tmp_path):
    keys, _, drop = write_authorized_keys(inventory, tmp_path, OLD_KEYS)
    assert subprocess.run(drop.command).returncode == 0
    assert [p.name for p in keys.parent.iterdir()] == ["authorized_keys"]
    assert "op@laptop" in keys.read_text() and keys.stat().st_mode & 0o777 == 0o600
