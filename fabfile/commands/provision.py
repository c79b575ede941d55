"""Provision, as data: what a server must look like, how to read where it stands
in one round trip, and the steps between the two.

Nothing here talks to a server. `probe_script` is run once (as root) and
`parse_probe` reads its output; `plan` compares that with what the inventory
asks for and returns the steps that are needed, each a list of actions for
the runner in `cli/provision.py`.
"""

from __future__ import annotations

import base64
import difflib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..config import Inventory
from ..errors import SlipwayError
from ..render import render
from .shell import line as command_line, script, script_text

MARK = "@@slipway@@"
BASE_PACKAGES = ("ca-certificates", "curl", "sudo", "tzdata", "ufw", "unattended-upgrades", "certbot")
DISTRO_DOCKER_PACKAGES = {
    ("debian", "13"): ("docker.io", "docker-cli", "docker-compose"),
    ("ubuntu", "24.04"): ("docker.io", "docker-compose-v2"),
    ("ubuntu", "22.04"): ("docker.io", "docker-compose-v2"),
}
REPOSITORY_DOCKER_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-compose-plugin")
ALL_DOCKER_PACKAGES = sorted({p for ps in DISTRO_DOCKER_PACKAGES.values() for p in ps} | set(REPOSITORY_DOCKER_PACKAGES))
DOCKER_KEYRING = "/etc/apt/keyrings/docker.asc"
DOCKER_SOURCES = "/etc/apt/sources.list.d/docker.list"
SSHD_DROP_IN = "/etc/ssh/sshd_config.d/00-slipway-hardening.conf"
SWAP_FILE = "/swapfile"
RELOAD_SSHD = "systemctl try-reload-or-restart ssh.service"
PREVIOUS_SUFFIX = ".slipway-previous"
WEB_PORTS = (80, 443)
FIREWALL_BACKUP = "/var/lib/slipway/firewall-before"
# The previous firewall comes back on its own unless a fresh login is proven within this time.
FIREWALL_REVERT_SECONDS = 120
# Fresh cloud VMs run unattended-upgrades for minutes after boot; an earlier run's apt may still be going.
DPKG_LOCK_WAIT_SECONDS = 600
# Waiting for the lock, then downloading and installing Docker and the rest on a slow mirror.
APT_STEP_SECONDS = DPKG_LOCK_WAIT_SECONDS + 1200
SHELL_STEP_SECONDS = 120


# --- what is wanted -------------------------------------------------------

@dataclass(frozen=True)
class ManagedFile:
    path: str
    content: str
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    # Run on the new content (as {path}) before it replaces the live file.
    check_candidate: str | None = None
    # Run once the file is in place; on failure the previous file comes back.
    check_installed: str | None = None


@dataclass(frozen=True)
class Directory:
    path: str
    owner: str
    group: str
    mode: int


@dataclass(frozen=True)
class Desired:
    """Everything provision promises, derived from the inventory (and the OS for packages)."""

    packages: tuple[str, ...]
    docker_repository: str | None
    timezone: str
    deploy_user: str
    deploy_home: str
    files: dict[str, ManagedFile]
    directories: tuple[Directory, ...]
    firewall_ports: tuple[int, ...]
    swap_mb: int


def docker_packages(inventory: Inventory, os_id: str, os_version: str) -> tuple[str, ...]:
    docker = inventory.server.docker
    if docker.packages == "repository":
        return REPOSITORY_DOCKER_PACKAGES
    found = DISTRO_DOCKER_PACKAGES.get((os_id, os_version))
    if found:
        return found
    if (os_id, os_version) == ("debian", "12"):
        raise SlipwayError("Debian 12's own archive has only Compose v1; set server.docker.packages: repository "
                           "(with repository_url) to install docker-ce and the Compose v2 plugin")
    supported = ", ".join(f"{i} {v}" for i, v in DISTRO_DOCKER_PACKAGES)
    raise SlipwayError(f"{os_id} {os_version} is not a system slipway provisions with distribution Docker packages "
                       f"(supported: {supported}); set server.docker.packages: repository to use Docker's own")


def desired_state(inventory: Inventory, project_dir: Path, os_id: str, os_version: str) -> Desired:
    server = inventory.server
    user = server.deploy_user
    home = f"/home/{user}"
    base = inventory.app.base_dir

    def template(name: str, **context) -> str:
        return render(project_dir, f"server/{name}.j2", **context)

    files = [
        ManagedFile("/etc/docker/daemon.json", template("daemon.json", docker=server.docker),
                    check_candidate="if dockerd --help 2>&1 | grep -q -- --validate; then dockerd --validate --config-file {path} >/dev/null; fi"),
        ManagedFile(f"{home}/.ssh/authorized_keys", template("authorized_keys", keys=server.authorized_keys),
                    mode=0o600, owner=user, group=user),
        ManagedFile(f"/etc/sudoers.d/slipway-{user}", template("sudoers-deploy", user=user),
                    mode=0o440, check_candidate="visudo -cqf {path}"),
        ManagedFile("/etc/apt/apt.conf.d/20auto-upgrades", template("20auto-upgrades")),
        ManagedFile(SSHD_DROP_IN, template("sshd-hardening.conf"), check_installed="sshd -t"),
    ]
    directories = [Directory(f"{home}/.ssh", user, user, 0o700)] + [
        Directory(str(path), user, user, 0o750)
        for path in (base, base / "releases", base / "shared", base / "backups")
    ]
    return Desired(
        packages=BASE_PACKAGES + docker_packages(inventory, os_id, os_version),
        docker_repository=server.docker.repository_url if server.docker.packages == "repository" else None,
        timezone=server.timezone,
        deploy_user=user,
        deploy_home=home,
        files={f.path: f for f in files},
        directories=tuple(directories),
        firewall_ports=(server.ssh_port, *WEB_PORTS),
        swap_mb=server.swap_mb,
    )


def managed_paths(inventory: Inventory) -> tuple[list[str], list[str]]:
    """The files and folders the probe reads: known before the OS is, so one round trip does."""
    user = inventory.server.deploy_user
    home = f"/home/{user}"
    base = inventory.app.base_dir
    files = ["/etc/docker/daemon.json", f"{home}/.ssh/authorized_keys", f"/etc/sudoers.d/slipway-{user}",
             "/etc/apt/apt.conf.d/20auto-upgrades", SSHD_DROP_IN, DOCKER_SOURCES]
    directories = [f"{home}/.ssh"] + [str(p) for p in (base, base / "releases", base / "shared", base / "backups")]
    return files, directories


# --- where the server stands ----------------------------------------------

@dataclass
class FileState:
    mode: int
    owner: str
    group: str
    content: str


@dataclass
class DirectoryState:
    mode: int
    owner: str
    group: str


@dataclass
class HostState:
    os_id: str = ""
    os_version: str = ""
    codename: str = ""
    architecture: str = ""
    installed: set[str] = field(default_factory=set)
    files: dict[str, FileState | None] = field(default_factory=dict)
    directories: dict[str, DirectoryState | None] = field(default_factory=dict)
    user_home: str | None = None
    user_shell: str | None = None
    user_groups: set[str] = field(default_factory=set)
    docker_enabled: str = ""
    docker_active: str = ""
    timezone_link: str = ""
    firewall: str = ""
    sshd_ports: list[int] = field(default_factory=list)
    swap_file_bytes: int = 0
    swaps: dict[str, int] = field(default_factory=dict)
    # The app has been deployed: a deploy may run, so disruptive steps take the deploy lock.
    app_deployed: bool = False


def probe_script(inventory: Inventory) -> str:
    """One shell script (run as root) that prints every fact provision needs, section by section."""
    files, directories = managed_paths(inventory)
    user = shlex.quote(inventory.server.deploy_user)
    packages = " ".join(BASE_PACKAGES + tuple(ALL_DOCKER_PACKAGES))
    parts = [
        f'echo "{MARK} os"; . /etc/os-release; echo "$ID"; echo "$VERSION_ID"; echo "${{VERSION_CODENAME:-}}"; dpkg --print-architecture',
        f"echo '{MARK} packages'; dpkg-query -W -f='${{Package}} ${{db:Status-Abbrev}}\\n' {packages} 2>/dev/null || true",
        f"echo '{MARK} user'; getent passwd {user} | cut -d: -f6,7; id -nG {user} 2>/dev/null || true",
        f"echo '{MARK} docker'; systemctl is-enabled docker.service 2>/dev/null || true; systemctl is-active docker.service 2>/dev/null || true",
        f"echo '{MARK} timezone'; readlink /etc/localtime || true",
        f"echo '{MARK} firewall'; if command -v ufw >/dev/null; then ufw status verbose; fi",
        f"echo '{MARK} swaps'; swapon --show=NAME,SIZE --noheadings --bytes 2>/dev/null || true",
        f"echo '{MARK} swapfile'; stat -c %s {SWAP_FILE} 2>/dev/null || true",
        f"echo '{MARK} sshd_ports'; sshd -T 2>/dev/null | awk '$1 == \"port\" {{print $2}}'",
        f"echo '{MARK} app_state'; [ -d {shlex.quote(str(inventory.app.base_dir) + '/.slipway')} ] && echo present || true",
    ]
    for path in files:
        q = shlex.quote(path)
        parts.append(f"echo '{MARK} file {path}'; if [ -f {q} ]; then stat -c '%a %U %G' {q}; base64 -w0 {q}; echo; fi")
    for path in directories:
        q = shlex.quote(path)
        parts.append(f"echo '{MARK} dir {path}'; if [ -d {q} ]; then stat -c '%a %U %G' {q}; fi")
    return "\n".join(parts)


def parse_probe(output: str) -> HostState:
    state = HostState()
    for header, lines in _sections(output):
        kind, _, argument = header.partition(" ")
        if kind == "os":
            state.os_id, state.os_version, state.codename, state.architecture = (lines + ["", "", "", ""])[:4]
        elif kind == "packages":
            state.installed = {line.split()[0] for line in lines if len(line.split()) > 1 and line.split()[1].startswith("ii")}
        elif kind == "user" and lines and ":" in lines[0]:
            state.user_home, state.user_shell = lines[0].split(":", 1)
            state.user_groups = set(lines[1].split()) if len(lines) > 1 else set()
        elif kind == "docker":
            state.docker_enabled, state.docker_active = (lines + ["", ""])[:2]
        elif kind == "timezone":
            state.timezone_link = lines[0] if lines else ""
        elif kind == "firewall":
            state.firewall = "\n".join(lines)
        elif kind == "swaps":
            state.swaps = {line.split()[0]: int(line.split()[1]) for line in lines if len(line.split()) == 2}
        elif kind == "swapfile":
            state.swap_file_bytes = int(lines[0]) if lines and lines[0].isdigit() else 0
        elif kind == "sshd_ports":
            state.sshd_ports = [int(line) for line in lines if line.isdigit()]
        elif kind == "app_state":
            state.app_deployed = lines == ["present"]
        elif kind == "file":
            state.files[argument] = _file_state(lines)
        elif kind == "dir":
            state.directories[argument] = DirectoryState(*_stat(lines[0])) if lines else None
    return state


def _sections(output: str) -> list[tuple[str, list[str]]]:
    sections: list[tuple[str, list[str]]] = []
    for line in output.splitlines():
        if line.startswith(MARK + " "):
            sections.append((line[len(MARK) + 1:], []))
        elif sections and line.strip():
            sections[-1][1].append(line.strip())
    return sections


def _stat(line: str) -> tuple[int, str, str]:
    mode, owner, group = line.split()
    return int(mode, 8), owner, group


def _file_state(lines: list[str]) -> FileState | None:
    if not lines:
        return None
    mode, owner, group = _stat(lines[0])
    content = base64.b64decode(lines[1]).decode(errors="replace") if len(lines) > 1 else ""
    return FileState(mode, owner, group, content)


# --- firewall status --------------------------------------------------------

def firewall_rules(status: str) -> tuple[bool, str, set[str]]:
    """(active, default policy line, allowed IPv4 rules like '22/tcp') from `ufw status verbose`."""
    active = "Status: active" in status
    default = next((line for line in status.splitlines() if line.startswith("Default:")), "")
    rules = set()
    in_rules = False
    for line in status.splitlines():
        if line.startswith("--"):
            in_rules = True
            continue
        if in_rules and line.strip():
            match = re.match(r"^(\S+)(?: \(v6\))?\s+(ALLOW|DENY|REJECT|LIMIT)( IN)?\s+(.+?)\s*$", line)
            if match:
                rules.add(f"{match.group(1)} {match.group(2)} {match.group(4).replace(' (v6)', '')}")
    return active, default, rules


# --- the plan ----------------------------------------------------------------

@dataclass(frozen=True)
class Shell:
    command: str
    stdin: str | None = None
    timeout: int = SHELL_STEP_SECONDS


def apt_install(*packages: str) -> Shell:
    return Shell(command_line(script("apt_install", DPKG_LOCK_WAIT_SECONDS, *packages)), timeout=APT_STEP_SECONDS)


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
    undo: str | None = None


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


def plan(desired: Desired, state: HostState) -> list[Step]:
    """The provision steps in order; a step with no actions is already in place."""
    files = desired.files
    steps = [
        _docker_repository_step(desired, state),
        _disruptive(_file_step(files["/etc/docker/daemon.json"], state,
                               then=["if systemctl is-active --quiet docker.service; then systemctl restart docker.service; fi"])),
        _disruptive(_packages_step(desired, state)),
        _timezone_step(desired, state),
        _docker_service_step(state),
        _user_step(desired, state),
        *[_directory_step(d, state) for d in desired.directories[:1]],
        _file_step(files[f"{desired.deploy_home}/.ssh/authorized_keys"], state),
        _file_step(files[f"/etc/sudoers.d/slipway-{desired.deploy_user}"], state),
        *[_directory_step(d, state) for d in desired.directories[1:]],
        _file_step(files["/etc/apt/apt.conf.d/20auto-upgrades"], state),
        _firewall_step(desired, state),
        _swap_step(desired, state),
        _ssh_hardening_step(desired, state),
    ]
    return [step for step in steps if step is not None]


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
            Shell(f"install -m 0755 -d /etc/apt/keyrings && curl -fsSL {shlex.quote(url + '/gpg')} -o {DOCKER_KEYRING} "
                  f"&& chmod a+r {DOCKER_KEYRING}"),
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
    target = f"/usr/share/zoneinfo/{desired.timezone}"
    step = Step(f"timezone {desired.timezone}")
    if state.timezone_link != target:
        zone = shlex.quote(target)
        step.actions = [Shell(
            f"test -f {zone} || {{ echo 'no such time zone: {desired.timezone}' >&2; exit 1; }}; "
            f"ln -sfn {zone} /etc/localtime && echo {shlex.quote(desired.timezone)} > /etc/timezone"
        )]
        step.diff = f"/etc/localtime -> {state.timezone_link or '(none)'} becomes {target}"
    return step


def _docker_service_step(state: HostState) -> Step:
    step = Step("docker.service enabled and running")
    if state.docker_enabled != "enabled" or state.docker_active != "active":
        step.actions = [Shell("systemctl enable --now docker.service")]
        step.diff = f"docker.service is {state.docker_enabled or 'absent'}/{state.docker_active or 'absent'}"
    return step


def _user_step(desired: Desired, state: HostState) -> Step:
    user = shlex.quote(desired.deploy_user)
    step = Step(f"user {desired.deploy_user} (docker group)")
    if state.user_home is None:
        step.actions = [Shell(f"useradd --create-home --shell /bin/bash --groups docker {user}")]
        step.diff = f"create user {desired.deploy_user} in group docker"
    elif "docker" not in state.user_groups:
        step.actions = [Shell(f"usermod --append --groups docker {user}")]
        step.diff = f"add {desired.deploy_user} to group docker"
    return step


def _directory_step(directory: Directory, state: HostState) -> Step:
    step = Step(f"directory {directory.path}")
    current = state.directories.get(directory.path)
    wanted = (directory.mode, directory.owner, directory.group)
    if current is None or (current.mode, current.owner, current.group) != wanted:
        path = shlex.quote(directory.path)
        step.actions = [Shell(f"install -d -m {directory.mode:o} -o {directory.owner} -g {directory.group} {path}")]
        step.diff = f"{directory.path}: {_describe_attrs(current)} -> {_describe_attrs(directory)}"
    return step


def _file_step(managed: ManagedFile, state: HostState, then: list[str] | None = None) -> Step:
    step = Step(f"file {managed.path}")
    current = state.files.get(managed.path)
    attrs_differ = current is not None and (current.mode, current.owner, current.group) != (managed.mode, managed.owner, managed.group)
    if current is None or current.content != managed.content or attrs_differ:
        step.actions = [Write(managed)] + [Shell(command) for command in (then or [])]
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
        Shell(command_line(enable), stdin=script_text("firewall_restore")),
        ProveLogin(None, "true", "firewall", undo=command_line(script("firewall_restore", FIREWALL_BACKUP))),
        Shell(command_line(script("firewall_confirm", FIREWALL_BACKUP))),
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
    size = f"{desired.swap_mb}M"
    step.actions = [Shell(
        f"set -e; if swapon --show=NAME --noheadings | grep -qx {SWAP_FILE}; then swapoff {SWAP_FILE}; fi; "
        f"rm -f {SWAP_FILE}; fallocate -l {size} {SWAP_FILE}; chmod 600 {SWAP_FILE}; mkswap {SWAP_FILE} >/dev/null; "
        f"swapon {SWAP_FILE}; grep -q '^{SWAP_FILE} ' /etc/fstab || echo '{SWAP_FILE} none swap sw 0 0' >> /etc/fstab"
    )]
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
                        Shell(f"rm -f {shlex.quote(managed.path + PREVIOUS_SUFFIX)}")]
    return step


def write_file_command(managed: ManagedFile) -> str:
    """Replace a file atomically from stdin: temp file beside it, owner and mode, checks, rename."""
    path = shlex.quote(managed.path)
    directory = shlex.quote(str(PurePosixPath(managed.path).parent))
    lines = [
        "set -e",
        f"mkdir -p {directory}",
        f"tmp=$(mktemp {directory}/.slipway.XXXXXX)",
        "trap 'rm -f \"$tmp\"' EXIT",
        'cat > "$tmp"',
        f'chown {managed.owner}:{managed.group} "$tmp"',
        f'chmod {managed.mode:o} "$tmp"',
    ]
    if managed.check_candidate:
        lines.append(managed.check_candidate.format(path='"$tmp"'))
    if managed.check_installed:
        previous = shlex.quote(managed.path + PREVIOUS_SUFFIX)
        lines += [
            f"if [ -e {path} ]; then cp -p {path} {previous}; else rm -f {previous}; fi",
            f'mv -f "$tmp" {path}',
            f"if ! {managed.check_installed}; then "
            f"if [ -e {previous} ]; then mv -f {previous} {path}; else rm -f {path}; fi; "
            f"echo 'rejected by: {managed.check_installed}; previous file restored' >&2; exit 1; fi",
        ]
    else:
        lines.append(f'mv -f "$tmp" {path}')
    return "\n".join(lines)


def restore_sshd_command() -> str:
    """Put back the sshd drop-in that was there before this run, and reload."""
    path = shlex.quote(SSHD_DROP_IN)
    previous = shlex.quote(SSHD_DROP_IN + PREVIOUS_SUFFIX)
    return f"if [ -e {previous} ]; then mv -f {previous} {path}; else rm -f {path}; fi; {RELOAD_SSHD}"


def _unified(path: str, before: str | None, after: str) -> str:
    return "".join(difflib.unified_diff(
        (before or "").splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"{path} (server)" if before is not None else "/dev/null", tofile=f"{path} (slipway)",
    ))


def _describe_attrs(item) -> str:
    if item is None:
        return "absent"
    return f"{item.mode:o} {item.owner}:{item.group}"
