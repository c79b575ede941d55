"""Provision's plan: the steps from where a server stands to what the inventory asks for.

`plan` compares a `HostState` (from the probe) with the `Desired` state and
returns the steps that are needed, each a list of actions (shell commands,
file writes, proven logins) for the runner in `flows/provision.py`. Nothing
here talks to a server. Values (paths, the user, the time zone...) reach the
server only as argv elements: as one command's arguments, or a packaged
script's (`shell.script`).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field, replace

from ..errors import SlipwayError
from .provision import (AUTHORIZED_KEYS, DOCKER_SOURCES, PREVIOUS_SUFFIX, SSHD_DROP_IN, SWAP_FILE, Desired, Directory,
                        HostState, ManagedFile, firewall_rules)
from .shell import Argv, script, script_text

DOCKER_KEYRING = "/etc/apt/keyrings/docker.asc"
ZONEINFO = "/usr/share/zoneinfo"
RELOAD_SSHD = "systemctl try-reload-or-restart ssh.service"
FIREWALL_BACKUP = "/var/lib/slipway/firewall-before"
# The previous firewall comes back on its own unless a fresh login is proven within this time.
FIREWALL_REVERT_SECONDS = 120
# Fresh cloud VMs run unattended-upgrades for minutes after boot; an earlier run's apt may still be going.
DPKG_LOCK_WAIT_SECONDS = 600
# Waiting for the lock, then downloading and installing Docker and the rest on a slow mirror.
APT_STEP_SECONDS = DPKG_LOCK_WAIT_SECONDS + 1200
SHELL_STEP_SECONDS = 120
SYSTEMD_UNITS = "/etc/systemd/system/"


# --- the plan ----------------------------------------------------------------

@dataclass(frozen=True)
class Shell:
    """COMMAND run as root: an argv (one command, or a packaged script, with the values as its elements;
    an error shows a script as `slipway-NAME ARGS`), or a fixed shell line with no value in it."""

    command: Argv | str
    stdin: str | None = None
    timeout: int = SHELL_STEP_SECONDS


def apt_install(*packages: str) -> Shell:
    return Shell(script("apt_install", DPKG_LOCK_WAIT_SECONDS, *packages), timeout=APT_STEP_SECONDS)


@dataclass(frozen=True)
class Write:
    file: ManagedFile


@dataclass(frozen=True)
class ProveLogin:
    """Open a new SSH connection as USER (None: the user provision logged in as) and run COMMAND:
    nobody gets locked out on a guess. When it fails after a change, UNDO (run as root) puts
    back what WHAT was before."""

    user: str | None
    command: str
    what: str
    undo: Argv | None = None


@dataclass
class Step:
    name: str
    actions: list = field(default_factory=list)
    diff: str = ""
    # Restarts or reloads something a running app depends on: runs under the deploy lock.
    disruptive: bool = False

    @property
    def needed(self) -> bool:
        return bool(self.actions)


def plan(desired: Desired, state: HostState, switch_image_store: bool = False) -> list[Step]:
    """The provision steps in order; a step with no actions is already in place."""
    files = desired.files
    store_switch = _image_store_switch(files["/etc/docker/daemon.json"], state, switch_image_store)
    # Containers outlive a restart (live-restore), but one of the other store can no longer be seen or
    # managed: it would go on holding its ports and serving the old release. They are stopped first.
    stop_containers = ["docker ps -q | xargs -r docker stop"] if store_switch else []
    restart = "if systemctl is-active --quiet docker.service; then systemctl restart docker.service; fi"
    steps = [
        _docker_repository_step(desired, state),
        _disruptive(_file_step(files["/etc/docker/daemon.json"], state, then=[*stop_containers, restart])),
        _disruptive(_packages_step(desired, state)),
        _timezone_step(desired, state),
        _docker_service_step(state),
        _user_step(desired, state),
        *[_directory_step(d, state) for d in desired.directories[:1]],
        _authorized_keys_step(desired, state),
        _file_step(files[f"/etc/sudoers.d/slipway-{desired.deploy_user}"], state),
        *[_directory_step(d, state) for d in desired.directories[1:] if not d.path.startswith("/var/lib/slipway/")],
        _file_step(files["/etc/apt/apt.conf.d/20auto-upgrades"], state),
        *[_file_step(files[path], state) for path in desired.backup_files if not path.startswith(SYSTEMD_UNITS)],
        _offsite_key_step(desired, state),
        _backup_timers_step(desired, state),
        *[_directory_step(d, state) for d in desired.directories if d.path.startswith("/var/lib/slipway/")],
        # The installed scripts' shared library is a backup file and a TLS file: written once, with the first.
        *[_file_step(files[path], state) for path in desired.tls_files
          if not path.startswith(SYSTEMD_UNITS) and path not in desired.backup_files],
        *[_file_step(files[path], state, then=["systemctl daemon-reload", "systemctl enable --now certbot.timer"])
          for path in desired.tls_files if path.startswith(SYSTEMD_UNITS)],
        _firewall_step(desired, state),
        _swap_step(desired, state),
        _ssh_hardening_step(desired, state),
    ]
    return [step for step in steps if step is not None]


def _offsite_key_step(desired: Desired, state: HostState) -> Step | None:
    """The server's own key for the backup host: made here, so its private half never travels."""
    if not desired.offsite_key:
        return None
    step = Step("offsite backup SSH key")
    if not state.offsite_public_key:
        step.actions = [Shell(script("offsite_key", desired.offsite_key, desired.deploy_user))]
        step.diff = f"create {desired.offsite_key} (ed25519)"
    return step


def _backup_timers_step(desired: Desired, state: HostState) -> Step | None:
    """The backup's systemd units, then the timers enabled and started (a new unit needs a daemon-reload)."""
    if not desired.backup_timers:
        return None
    step = Step(f"backup timers {', '.join(desired.backup_timers)}")
    units = [_file_step(desired.files[path], state) for path in desired.backup_files if path.startswith(SYSTEMD_UNITS)]
    changed = [unit for unit in units if unit.needed]
    if changed or state.timers_enabled != ["enabled"] * len(desired.backup_timers):
        step.actions = [action for unit in changed for action in unit.actions] + [
            Shell(script("enable_units", *desired.backup_timers))]
        step.diff = "\n".join(unit.diff for unit in changed)
    return step


def _image_store_switch(daemon: ManagedFile, state: HostState, switch: bool) -> bool:
    """Whether the new daemon.json changes the image store setting of the server's daemon.json.

    Docker keeps its classic and containerd image stores apart: switching hides every image and
    container of the app, so a server where it is deployed switches only when the operator says so."""
    current = state.files.get(daemon.path)
    now, wanted = _containerd_store_setting(current.content if current else ""), _containerd_store_setting(daemon.content)
    if state.app_deployed and now != wanted and not switch:
        raise SlipwayError(
            f"server.docker.containerd_image_store would change Docker's image store setting ({now} -> {wanted}) on a "
            "server where the app is deployed: Docker keeps the two stores apart, so every container is stopped and the "
            "site is down until the next deploy, which ships every image again. Nothing was changed; run provision "
            "--switch-image-store in a maintenance window to do it")
    return current is not None and now != wanted


def _containerd_store_setting(daemon_json: str) -> str:
    try:
        value = json.loads(daemon_json).get("features", {}).get("containerd-snapshotter")
    except (ValueError, AttributeError):
        value = None
    return "Docker's default" if value is None else json.dumps(value)


def _disruptive(step: Step) -> Step:
    step.disruptive = True
    return step


def _docker_repository_step(desired: Desired, state: HostState) -> Step | None:
    if desired.docker_repository is None:
        return None
    step = Step("docker apt repository")
    url = desired.docker_repository.rstrip("/")
    line = f"deb [arch={state.architecture} signed-by={DOCKER_KEYRING}] {url} {state.codename} stable\n"
    current = state.files.get(DOCKER_SOURCES)
    if current is None or current.content != line:
        step.actions = [
            apt_install("curl", "ca-certificates"),
            Shell(script("docker_keyring", url + "/gpg", DOCKER_KEYRING)),
            Write(ManagedFile(DOCKER_SOURCES, line)),
        ]
        step.diff = _unified(DOCKER_SOURCES, current.content if current else None, line)
    return step


def _packages_step(desired: Desired, state: HostState) -> Step:
    missing = [p for p in desired.packages if p not in state.installed]
    step = Step("packages")
    if missing:
        step.actions = [apt_install(*missing)]
        step.diff = "install: " + " ".join(missing)
    return step


def _timezone_step(desired: Desired, state: HostState) -> Step:
    target = f"{ZONEINFO}/{desired.timezone}"
    step = Step(f"timezone {desired.timezone}")
    if state.timezone_link != target:
        step.actions = [Shell(script("timezone", target, desired.timezone))]
        step.diff = f"/etc/localtime -> {state.timezone_link or '(none)'} becomes {target}"
    return step


def _docker_service_step(state: HostState) -> Step:
    step = Step("docker.service enabled and running")
    if state.docker_enabled != "enabled" or state.docker_active != "active":
        step.actions = [Shell(["systemctl", "enable", "--now", "docker.service"])]
        step.diff = f"docker.service is {state.docker_enabled or 'absent'}/{state.docker_active or 'absent'}"
    return step


def _user_step(desired: Desired, state: HostState) -> Step:
    user = desired.deploy_user
    step = Step(f"user {user} (docker group)")
    if state.user_home is None:
        step.actions = [Shell(["useradd", "--create-home", "--shell", "/bin/bash", "--groups", "docker", user])]
        step.diff = f"create user {desired.deploy_user} in group docker"
    elif "docker" not in state.user_groups:
        step.actions = [Shell(["usermod", "--append", "--groups", "docker", user])]
        step.diff = f"add {desired.deploy_user} to group docker"
    return step


def _directory_step(directory: Directory, state: HostState) -> Step:
    step = Step(f"directory {directory.path}")
    current = state.directories.get(directory.path)
    wanted = (directory.mode, directory.owner, directory.group)
    if current is None or (current.mode, current.owner, current.group) != wanted:
        step.actions = [Shell(["install", "-d", "-m", f"{directory.mode:o}", "-o", directory.owner, "-g", directory.group,
                               directory.path])]
        step.diff = f"{directory.path}: {_describe_attrs(current)} -> {_describe_attrs(directory)}"
    return step


def _authorized_keys_step(desired: Desired, state: HostState) -> Step:
    """The deploy user's keys, kept only once a new login as that user gets through them. Provision's own session
    (root, or the deploy user with sudo) stays open to put the previous file back when it does not."""
    managed = desired.files[f"{desired.deploy_home}/{AUTHORIZED_KEYS}"]
    previous = managed.path + PREVIOUS_SUFFIX
    # A previous file still there: a run stopped before its login proved the keys it wrote. That file is the
    # one to go back to, and the keys on the server still need their proof.
    unproven = state.files.get(previous) is not None
    step = _file_step(replace(managed, keep_previous=not unproven), state)
    if not (step.needed or unproven):
        return step
    if not step.needed:
        step.diff = f"{managed.path}: written by a run that stopped before a new login proved it"
    # Logging in is the proof: the deploy user's sudo is the next step's, and the sshd step proves it.
    prove = ProveLogin(desired.deploy_user, "true", "authorized_keys",
                       undo=script("restore_previous", managed.path, previous))
    step.actions = [*step.actions, prove, Shell(["rm", "-f", previous])]
    return step


def _file_step(managed: ManagedFile, state: HostState, then: list[str] | None = None) -> Step:
    step = Step(f"file {managed.path}")
    current = state.files.get(managed.path)
    attrs_differ = current is not None and (current.mode, current.owner, current.group) != (managed.mode, managed.owner, managed.group)
    if current is None or current.content != managed.content or attrs_differ:
        step.actions = [Write(managed)] + [Shell(command) for command in (then or [])]
        if managed.secret:
            step.diff = f"{managed.path}: {'new' if current is None else 'content differs'} (it holds secrets: not shown)"
        else:
            step.diff = _unified(managed.path, current.content if current else None, managed.content)
        if attrs_differ:
            step.diff += f"\n{managed.path}: {_describe_attrs(current)} -> {_describe_attrs(managed)}"
    return step


def _firewall_step(desired: Desired, state: HostState) -> Step:
    step = Step(f"firewall allows only {', '.join(f'{p}/tcp' for p in desired.firewall_ports)}", disruptive=True)
    active, default, rules = firewall_rules(state.firewall)
    wanted = {f"{port}/tcp ALLOW Anywhere" for port in desired.firewall_ports}
    wanted_default = default.startswith("Default: deny (incoming), allow (outgoing)")
    if active and wanted_default and rules == wanted:
        return step
    ssh_port = desired.firewall_ports[0]
    if state.sshd_ports and ssh_port not in state.sshd_ports:
        raise SlipwayError(f"server.ssh_port is {ssh_port} but sshd listens on {', '.join(map(str, state.sshd_ports))}: "
                           "a firewall letting in only that port would shut SSH out; nothing was changed (set "
                           "server.ssh_port to the port sshd listens on)")
    # Rules go in before the firewall is enabled, the SSH port first, and a dead man's switch
    # brings the old firewall back unless a fresh login gets through the new one.
    enable = script("firewall_enable", ssh_port, FIREWALL_REVERT_SECONDS, FIREWALL_BACKUP, int(bool(rules - wanted)),
                    *desired.firewall_ports)
    step.actions = [
        Shell(enable, stdin=script_text("firewall_restore")),
        ProveLogin(None, "true", "firewall", undo=script("firewall_restore", FIREWALL_BACKUP)),
        Shell(script("firewall_confirm", FIREWALL_BACKUP)),
    ]
    shown = ", ".join(sorted(rules)) or "none"
    step.diff = f"ufw is {'active' if active else 'inactive'}; rules now: {shown}; wanted: {', '.join(sorted(wanted))}"
    return step


def _swap_step(desired: Desired, state: HostState) -> Step | None:
    if desired.swap_mb == 0:
        return None
    step = Step(f"swap file {SWAP_FILE} of {desired.swap_mb} MiB")
    # swapon reports one page less than the file holds (the header): the file's size is what counts.
    if SWAP_FILE in state.swaps and state.swap_file_bytes == desired.swap_mb * 1024 * 1024:
        return step
    step.actions = [Shell(script("swap_file", SWAP_FILE, f"{desired.swap_mb}M"))]
    step.diff = f"{SWAP_FILE}: {state.swaps.get(SWAP_FILE, 0) // (1024 * 1024)} MiB -> {desired.swap_mb} MiB"
    return step


def deploy_login_check() -> str:
    """What a new SSH session as the deploy user must manage before root login may go."""
    return "sudo -n true && docker compose version"


def _ssh_hardening_step(desired: Desired, state: HostState) -> Step:
    step = _file_step(desired.files[SSHD_DROP_IN], state)
    step.name = "sshd: no root login, no passwords"
    step.disruptive = True
    if step.needed:
        before = ProveLogin(desired.deploy_user, deploy_login_check(), "sshd")
        after = ProveLogin(desired.deploy_user, deploy_login_check(), "sshd", undo=restore_sshd_command())
        managed = desired.files[SSHD_DROP_IN]
        step.actions = [before, *step.actions, Shell(RELOAD_SSHD), after,
                        Shell(["rm", "-f", managed.path + PREVIOUS_SUFFIX])]
    return step


def write_file_command(managed: ManagedFile) -> Argv:
    """Replace a file atomically from stdin: temp file beside it, owner and mode, checks, rename (install_file.sh)."""
    options = []
    if managed.check_installed or managed.keep_previous:
        options += ["--previous", managed.path + PREVIOUS_SUFFIX]
    if managed.check_candidate:
        options += ["--candidate-check", managed.check_candidate]
    if managed.check_installed:
        options += ["--installed-check", managed.check_installed]
    return script("install_file", *options, managed.path, managed.owner, managed.group, f"{managed.mode:o}")


def restore_sshd_command() -> Argv:
    """Put back the sshd drop-in that was there before this run, and reload."""
    return script("restore_sshd", SSHD_DROP_IN, SSHD_DROP_IN + PREVIOUS_SUFFIX)


def _unified(path: str, before: str | None, after: str) -> str:
    return "".join(difflib.unified_diff(
        (before or "").splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"{path} (server)" if before is not None else "/dev/null", tofile=f"{path} (slipway)",
    ))


def _describe_attrs(item) -> str:
    if item is None:
        return "absent"
    return f"{item.mode:o} {item.owner}:{item.group}"
