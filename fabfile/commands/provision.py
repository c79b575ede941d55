"""Provision, as data: what a server must look like, and how to read where it
stands in one round trip (the steps between the two are in `provision_plan`).

Nothing here talks to a server. `probe_script` (the packaged probe.sh, every
value an argument) is run once (as root) and `parse_probe` reads its output.
"""

from __future__ import annotations

import base64
import io
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..config import Inventory
from . import backup as backups
from . import tls
from ..errors import SlipwayError
from ..render import render
from .facts import MARK, sections
from .layout import layout_of
from .shell import Argv, script

# jq: the backup scripts write their JSON records with it.
BASE_PACKAGES = ("ca-certificates", "curl", "sudo", "tzdata", "ufw", "unattended-upgrades", "certbot", "jq")
DISTRO_DOCKER_PACKAGES = {
    ("debian", "13"): ("docker.io", "docker-cli", "docker-compose"),
    ("ubuntu", "24.04"): ("docker.io", "docker-compose-v2"),
    ("ubuntu", "22.04"): ("docker.io", "docker-compose-v2"),
}
REPOSITORY_DOCKER_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-compose-plugin")
ALL_DOCKER_PACKAGES = sorted({p for ps in DISTRO_DOCKER_PACKAGES.values() for p in ps} | set(REPOSITORY_DOCKER_PACKAGES))
DOCKER_SOURCES = "/etc/apt/sources.list.d/docker.list"
SSHD_DROP_IN = "/etc/ssh/sshd_config.d/00-slipway-hardening.conf"
SWAP_FILE = "/swapfile"
# Provision's own in the deploy user's home, wherever the server has that home.
SSH_DIR = ".ssh"
AUTHORIZED_KEYS = f"{SSH_DIR}/authorized_keys"
# Beside a file provision replaced: the file it was, until a new login has proven the change.
PREVIOUS_SUFFIX = ".slipway-previous"
PREVIOUS_KEYS = AUTHORIZED_KEYS + PREVIOUS_SUFFIX
# systemd itself judges a timer's OnCalendar before the timer is installed.
TIMER_CHECK = "systemd-analyze calendar \"$(sed -n 's/^OnCalendar=//p' \"$1\")\" >/dev/null"
WEB_PORTS = (80, 443)


# --- what is wanted -------------------------------------------------------

@dataclass(frozen=True)
class ManagedFile:
    path: str
    # Never in a repr: a failed check (verify's pytest report) would print secrets.
    content: str = field(repr=False)
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    # Shell text (no values in it) run on the new content, given as $1, before it replaces the live file.
    check_candidate: str | None = None
    # Shell text run once the file is in place (given as $1); on failure the previous file comes back.
    check_installed: str | None = None
    # The file it replaces is kept beside it, for a step that proves the change with a new login afterwards.
    keep_previous: bool = False
    # Holds secrets: compared, never shown in a diff or a failed check.
    secret: bool = False


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
    # The backup scripts, their configuration and systemd units (empty without a database).
    backup_files: tuple[str, ...] = ()
    backup_timers: tuple[str, ...] = ()
    # The server's own SSH key for the offsite backup host, made on the server when missing.
    offsite_key: str | None = None
    # The ACME renewal's scripts, settings and hook; certbot.service's drop-in is reloaded into systemd.
    tls_files: tuple[str, ...] = ()


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


def desired_state(inventory: Inventory, project_dir: Path, os_id: str, os_version: str,
                  secret: Callable[[str], str], home: str | None = None, inventory_name: str | None = None) -> Desired:
    """SECRET: a secret's value by name (the offsite repository's password goes to the server). HOME: the
    deploy user's home on the server (its passwd entry's); None: the user is still to be made, and useradd
    makes it /home/NAME. INVENTORY_NAME tags the offsite snapshots (backups.conf_text)."""
    server = inventory.server
    user = server.deploy_user
    home = home or f"/home/{user}"
    base = inventory.app.base_dir

    def template(name: str, **context) -> str:
        return render(project_dir, f"server/{name}.j2", **context)

    files = [
        ManagedFile("/etc/docker/daemon.json", template("daemon.json", docker=server.docker),
                    check_candidate="if dockerd --help 2>&1 | grep -q -- --validate; then "
                                    "dockerd --validate --config-file \"$1\" >/dev/null; fi"),
        ManagedFile(f"{home}/{AUTHORIZED_KEYS}", template("authorized_keys", keys=server.authorized_keys),
                    mode=0o600, owner=user, group=user),
        ManagedFile(f"/etc/sudoers.d/slipway-{user}", template("sudoers-deploy", user=user),
                    mode=0o440, check_candidate='visudo -cqf "$1"'),
        ManagedFile("/etc/apt/apt.conf.d/20auto-upgrades", template("20auto-upgrades")),
        ManagedFile(SSHD_DROP_IN, template("sshd-hardening.conf"), check_installed="sshd -t"),
    ]
    backup_files = _backup_files(inventory, template, secret, inventory_name) if inventory.database else []
    tls_files = _tls_files(inventory, template) if inventory.tls_enabled else []
    offsite = inventory.backup.offsite if inventory.database else None
    directories = [Directory(f"{home}/{SSH_DIR}", user, user, 0o700)] + [
        Directory(str(path), user, user, 0o750)
        for path in (base, base / "releases", base / "shared", base / "backups")
    ] + ([Directory(layout_of(inventory).tls_record_dir, "root", "root", 0o755)] if tls_files else [])
    return Desired(
        packages=tuple(dict.fromkeys(BASE_PACKAGES + docker_packages(inventory, os_id, os_version)
                                     + (backups.OFFSITE_PACKAGES if offsite else ()) + (tls.PACKAGES if tls_files else ()))),
        docker_repository=server.docker.repository_url if server.docker.packages == "repository" else None,
        timezone=server.timezone,
        deploy_user=user,
        deploy_home=home,
        files={f.path: f for f in files + backup_files + tls_files},
        directories=tuple(directories),
        firewall_ports=(server.ssh_port, *WEB_PORTS),
        swap_mb=server.swap_mb,
        backup_files=tuple(f.path for f in backup_files),
        backup_timers=tuple(backups.timers(inventory)) if inventory.database else (),
        offsite_key=layout_of(inventory).offsite_key if offsite and offsite.sftp else None,
        tls_files=tuple(f.path for f in tls_files),
    )


def _tls_files(inventory: Inventory, template) -> list[ManagedFile]:
    """The TLS scripts; for ACME, what certbot's renewals need to reload nginx safely and record how they went."""
    paths = layout_of(inventory)
    executable = {*tls.script_texts(), paths.tls_deploy_hook}
    files = [ManagedFile(path, text, mode=0o755 if path in executable else 0o644)
             for path, text in tls.installed_texts(inventory).items()]
    if not inventory.tls.uses_acme:
        return files
    files.append(ManagedFile(paths.certbot_drop_in, template(
        "certbot-drop-in.conf", app=inventory.app.name, conf=paths.tls_conf, record_script=tls.installed_script(
            "tls_renew_result.sh"), ca_bundle=paths.acme_ca_bundle if inventory.tls.ca_bundle else None)))
    return files


def _backup_files(inventory: Inventory, template, secret: Callable[[str], str],
                  inventory_name: str | None) -> list[ManagedFile]:
    user, paths = inventory.server.deploy_user, layout_of(inventory)
    scripts = [ManagedFile(path, text, mode=0o755) for path, text in backups.script_texts().items()]
    conf_files = [ManagedFile(paths.backup_conf, backups.conf_text(inventory, inventory_name), mode=0o640, group=user)]
    secrets = backups.secrets_text(inventory, secret)
    if secrets:
        conf_files.append(ManagedFile(paths.backup_secrets, secrets, mode=0o600, owner=user, group=user, secret=True))
    # The SFTP backup host's pinned key, or the CA a REST server's certificate is checked with (both public).
    conf_files += [ManagedFile(path, text) for path, text in backups.offsite_files(inventory).items()]
    units = [
        ManagedFile(path, template(context["template"], **context),
                    check_candidate=TIMER_CHECK if path.endswith(".timer") else None)
        for path, context in backups.unit_contexts(inventory).items()
    ]
    return scripts + conf_files + units


def managed_paths(inventory: Inventory) -> tuple[list[str], list[str]]:
    """The files and folders outside the deploy user's home the probe reads: known before the OS is, so one
    round trip does."""
    user = inventory.server.deploy_user
    base = inventory.app.base_dir
    files = ["/etc/docker/daemon.json", f"/etc/sudoers.d/slipway-{user}",
             "/etc/apt/apt.conf.d/20auto-upgrades", SSHD_DROP_IN, DOCKER_SOURCES]
    if inventory.database:
        paths = layout_of(inventory)
        files += [*backups.script_texts(), paths.backup_conf, *backups.unit_contexts(inventory)]
        files += [paths.backup_secrets] if backups.secret_names(inventory) else []
        files += list(backups.offsite_files(inventory))
    if inventory.tls_enabled:
        files += tls.installed_paths(inventory)
    directories = [str(p) for p in (base, base / "releases", base / "shared", base / "backups")]
    if inventory.tls_enabled:
        directories.append(layout_of(inventory).tls_record_dir)
    # Once each: the backup scripts and the TLS scripts share their library.
    return list(dict.fromkeys(files)), directories


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
    # The managed files and folders the server has (one it lacks is not in them).
    files: dict[str, FileState] = field(default_factory=dict)
    directories: dict[str, DirectoryState] = field(default_factory=dict)
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
    # `systemctl is-enabled` of each backup timer, in order.
    timers_enabled: list[str] = field(default_factory=list)
    offsite_public_key: str = ""
    layout_record: str = ""


def probe_script(inventory: Inventory) -> Argv:
    """The packaged probe (run as root), printing every fact provision needs section by section under
    facts.MARK lines; every value (user, paths, packages, timers) one of its arguments."""
    files, directories = managed_paths(inventory)
    packages = dict.fromkeys(BASE_PACKAGES + tuple(ALL_DOCKER_PACKAGES) + backups.OFFSITE_PACKAGES + tls.PACKAGES)
    # The home ones are read in the home its passwd entry names (a user still to be made has no files in it yet).
    listed = [*(("--package", name) for name in packages),
              *(("--timer", timer) for timer in (backups.timers(inventory) if inventory.database else ())),
              ("--home-file", AUTHORIZED_KEYS), ("--home-file", PREVIOUS_KEYS), ("--home-dir", SSH_DIR),
              *(("--file", path) for path in files), *(("--dir", path) for path in directories)]
    return script("probe", MARK, inventory.server.deploy_user, SWAP_FILE, layout_of(inventory).offsite_key,
                  f"{inventory.app.base_dir}/.slipway", *[word for pair in listed for word in pair])


def deploy_home_command(inventory: Inventory) -> Argv:
    """Print the deploy user's home (nothing when there is no such user)."""
    return script("deploy_home", inventory.server.deploy_user)


def parse_probe(output: str) -> HostState:
    state = HostState()
    for header, lines in sections(output):
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
        elif kind == "timers":
            state.timers_enabled = lines
        elif kind == "offsite_key":
            state.offsite_public_key = lines[0] if lines else ""
        elif kind == "app_state":
            state.app_deployed = lines == ["present"]
        elif kind == "layout":
            state.layout_record = lines[0] if lines else ""
        elif kind == "paths" and lines:
            _read_paths(state, lines[0])
    return state


def _read_paths(state: HostState, archive: str) -> None:
    """The managed files and folders there are, from the probe's tar (a path that is missing is not in it)."""
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(archive)), mode="r:gz") as members:
        for member in members:
            path = "/" + member.name.strip("/")
            # An owner with no name is its number, as `ls` shows it.
            owner, group = member.uname or str(member.uid), member.gname or str(member.gid)
            if member.isdir():
                state.directories[path] = DirectoryState(member.mode & 0o7777, owner, group)
            elif member.isfile():
                content = members.extractfile(member).read().decode(errors="replace")
                state.files[path] = FileState(member.mode & 0o7777, owner, group, content)


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
