"""Commands that build and run the lab: a Debian target host in Docker.

The flags are the ones ../shared/LAB.md records as working on our machines:
no --privileged (the machine withholds CAP_SYS_RESOURCE), the host's cgroup
namespace, and volumes under /var/lib/docker and /var/lib/containerd so the
inner engine gets overlay2 (overlayfs cannot stack on the container's own).
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path

GUEST_PORTS = {"ssh": 22, "http": 80, "https": 443}
# The lab's own network, away from 172.17-172.29 where the target's inner Docker puts its networks.
LAB_SUBNET = "172.30.99.0/24"
BACKUP_HOST_ADDRESS = "172.30.99.20"
PEBBLE_ADDRESS = "172.30.99.30"
# The names the target answers as on the lab network (Docker's DNS), so the lab's ACME CA reaches it by them.
TARGET_DOMAINS = ("demo.slipway.test", "www.demo.slipway.test")
PEBBLE_DIRECTORY = "https://pebble:14000/dir"
# Read inside the Pebble container: its API's certificate (made at build) and the root it signs with (made at start).
PEBBLE_API_CERTIFICATE = "cat /etc/pebble/api.pem"
PEBBLE_ROOT = "curl -fsS --cacert /etc/pebble/api.pem --retry 20 --retry-connrefused --retry-delay 1 https://pebble:15000/roots/0"
BACKUP_USER = "restic"
BACKUP_ROOT = "/srv/restic"
# The REST offsite repository (Debian's restic-rest-server): two instances over one data folder. The
# append-only one is the server's, on the lab network only; the one that may delete is the operator's
# (backup.prune-offsite), published on 127.0.0.1 only. Both serve TLS with the lab's own certificate.
REST_SERVER_ADDRESS = "172.30.99.40"
REST_APPEND_ONLY_PORT = 8000
REST_ADMIN_PORT = 8001
REST_USER = "demo"
REST_ADMIN_USER = "operator"
REST_CERTIFICATE = "cat /etc/rest-server/tls.pem"
# Both instances answer TLS (any HTTP status will do: without credentials it is 401).
REST_READY_CHECK = " && ".join(
    f"curl -s -o /dev/null --cacert /etc/rest-server/tls.pem https://127.0.0.1:{port}/"
    for port in (REST_APPEND_ONLY_PORT, REST_ADMIN_PORT))
# The lab secrets (lab/templates/secrets.env.j2) that hold each instance's password.
REST_PASSWORD_SECRET = "OFFSITE_REST_PASSWORD"
REST_ADMIN_PASSWORD_SECRET = "OFFSITE_REST_ADMIN_PASSWORD"
# Each instance (start.sh names its htpasswd file), its user and the secret of that user's password.
REST_INSTANCES = (("append", REST_USER, REST_PASSWORD_SECRET), ("admin", REST_ADMIN_USER, REST_ADMIN_PASSWORD_SECRET))
# What a fresh cloud VM has: dbus too, or `systemctl` works only for root.
BASE_PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "ca-certificates",
    "sudo", "python3", "curl", "procps",
]
# The packages debootstrap downloaded: a cloud image has cleaned them away, and every image built on the base
# would ship them to each new target.
IMPORT_EXCLUDES = ("./var/cache/apt/archives/*.deb",)


@dataclass(frozen=True)
class LabNames:
    """Every Docker object the lab owns is named from one prefix."""

    prefix: str
    suite: str

    @property
    def base_image(self) -> str:
        # The tag names what went into the root filesystem, so a changed package list or import builds anew.
        recipe = hashlib.sha256(" ".join([self.suite, *BASE_PACKAGES, *IMPORT_EXCLUDES]).encode()).hexdigest()[:12]
        return f"{self.prefix}/debian:{self.suite}-{recipe}"

    @property
    def target_image(self) -> str:
        return f"{self.prefix}/target:{self.suite}"

    @property
    def target(self) -> str:
        return f"{self.prefix}-target"

    @property
    def target_volume(self) -> str:
        return f"{self.target}-docker"

    @property
    def containerd_volume(self) -> str:
        return f"{self.target}-containerd"

    @property
    def network(self) -> str:
        return f"{self.prefix}-net"

    @property
    def backup_host(self) -> str:
        """A second host, the offsite backups' SFTP target."""
        return f"{self.prefix}-backup"

    @property
    def rest_server(self) -> str:
        """The REST offsite repository (restic's rest-server: append-only for the server, not for the operator)."""
        return f"{self.prefix}-rest"

    @property
    def rest_server_image(self) -> str:
        return f"{self.prefix}/rest-server:{self.suite}"

    @property
    def pebble(self) -> str:
        """The lab's ACME CA (Let's Encrypt's Pebble test server)."""
        return f"{self.prefix}-pebble"

    @property
    def pebble_image(self) -> str:
        return f"{self.prefix}/pebble:{self.suite}"

    @property
    def key_label(self) -> str:
        """Which lab key the target's root account was given (checkouts each make their own)."""
        return f"{self.prefix}.key"


def debootstrap_command(suite: str, rootfs: Path, mirror: str = "") -> str:
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", suite, str(rootfs)]
    if mirror:
        argv.append(mirror)
    return shlex.join(argv)


def import_command(rootfs: Path, image: str) -> str:
    excludes = [f"--exclude={pattern}" for pattern in IMPORT_EXCLUDES]
    return (f"{shlex.join(['tar', '-C', str(rootfs), *excludes, '-c', '.'])} | "
            f"docker import -c 'CMD [\"/sbin/init\"]' - {shlex.quote(image)}")


def image_exists_command(image: str) -> str:
    return shlex.join(["docker", "image", "inspect", "--format", "{{.Id}}", image])


def build_command(image: str, context: Path, build_args: dict[str, str]) -> str:
    args = [arg for key, value in build_args.items() for arg in ("--build-arg", f"{key}={value}")]
    return shlex.join(["docker", "build", "--quiet", *args, "-t", image, str(context)])


@dataclass(frozen=True)
class DemoImage:
    """An image of the example stack, built from the lab's Debian base (no registry needed)."""

    ref: str
    context: str  # under examples/
    build_args: tuple[tuple[str, str], ...] = ()


DEMO_IMAGES = (
    DemoImage("slipway-demo/api:v1", "demo/api", (("VERSION", "v1"),)),
    DemoImage("slipway-demo/api:v2", "demo/api", (("VERSION", "v2"),)),
    DemoImage("slipway-demo/api:broken", "demo/api", (("VERSION", "broken"), ("BROKEN", "1"))),
    DemoImage("slipway-demo/api:bare", "demo/api", (("VERSION", "bare"), ("BARE", "1"))),
    DemoImage("slipway-demo/postgres:17", "demo/postgres"),
    DemoImage("slipway-demo/redis:1", "demo/redis", (("VERSION", "1"),)),
    DemoImage("slipway-demo/redis:2", "demo/redis", (("VERSION", "2"),)),
    DemoImage("slipway-demo/redis:broken", "demo/redis", (("VERSION", "broken"), ("BROKEN", "1"))),
    DemoImage("slipway-demo/nginx:1", "nginx"),
)


# What systemd as PID 1 needs here (see LAB.md: no --privileged on our machines).
SYSTEMD_FLAGS = [
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
]


def run_target_command(names: LabNames, key_fingerprint: str, host_ports: dict[str, int]) -> str:
    """HOST_PORTS: the loopback port each of GUEST_PORTS is published on, named at creation, so that a restarted
    target (a rebooted server) keeps its addresses; left to Docker, a restart picks new ones."""
    argv = [
        "docker", "run", "--detach", "--name", names.target, "--hostname", "target",
        "--label", f"{names.key_label}={key_fingerprint}", *SYSTEMD_FLAGS,
        "--security-opt", "systempaths=unconfined",
        "-v", f"{names.target_volume}:/var/lib/docker",
        # The same for containerd's snapshots, used by Docker's containerd image store.
        "-v", f"{names.containerd_volume}:/var/lib/containerd",
    ]
    for name, guest_port in GUEST_PORTS.items():
        argv += ["-p", f"127.0.0.1:{host_ports[name]}:{guest_port}"]
    argv += [names.target_image, "/sbin/init"]
    return shlex.join(argv)


def run_backup_host_command(names: LabNames, key_fingerprint: str) -> str:
    """The backup host: the target's image (systemd, sshd, its own host keys), on the lab network only."""
    return shlex.join(["docker", "run", "--detach", "--name", names.backup_host, "--hostname", "backup",
                       "--label", f"{names.key_label}={key_fingerprint}", *SYSTEMD_FLAGS,
                       "--network", names.network, "--ip", BACKUP_HOST_ADDRESS, names.target_image, "/sbin/init"])


def run_rest_server_command(names: LabNames, key_fingerprint: str) -> str:
    """The REST server on the lab network; only its admin port is published, on loopback (Docker picks the port)."""
    return shlex.join(["docker", "run", "--detach", "--name", names.rest_server, "--hostname", "rest",
                       "--label", f"{names.key_label}={key_fingerprint}", "--network", names.network,
                       "--ip", REST_SERVER_ADDRESS, "--network-alias", "backup-rest",
                       "-p", f"127.0.0.1::{REST_ADMIN_PORT}", names.rest_server_image])


def write_htpasswd_command(which: str, user: str) -> str:
    """WHICH (append or admin) instance's htpasswd file with USER, the password read on stdin (bcrypt), put in
    place whole: the instances start once both files are there."""
    path = shlex.quote(f"/etc/rest-server/{which}.htpasswd")
    return f"umask 077 && htpasswd -B -i -c {path}.new {shlex.quote(user)} && mv -f {path}.new {path}"


def htpasswd_matches_command(which: str, user: str) -> str:
    """Exits 0 when WHICH instance's htpasswd file has USER with the password read on stdin."""
    return f"htpasswd -v -i {shlex.quote(f'/etc/rest-server/{which}.htpasswd')} {shlex.quote(user)}"


def remove_rest_server_command(names: LabNames) -> str:
    return shlex.join(["docker", "rm", "--force", "--volumes", names.rest_server])


def run_pebble_command(names: LabNames) -> str:
    return shlex.join(["docker", "run", "--detach", "--name", names.pebble, "--hostname", "pebble",
                       "--network", names.network, "--ip", PEBBLE_ADDRESS, "--network-alias", "pebble",
                       names.pebble_image])


def create_network_command(names: LabNames) -> str:
    return shlex.join(["docker", "network", "create", "--subnet", LAB_SUBNET, names.network])


def network_members_command(names: LabNames) -> str:
    return shlex.join(["docker", "network", "inspect", "--format",
                       "{{range .Containers}}{{.Name}} {{end}}", names.network])


def connect_command(names: LabNames, container: str, aliases: tuple[str, ...] = ()) -> str:
    return shlex.join(["docker", "network", "connect", *(arg for alias in aliases for arg in ("--alias", alias)),
                       names.network, container])


def disconnect_command(names: LabNames, container: str) -> str:
    return shlex.join(["docker", "network", "disconnect", names.network, container])


def aliases_command(names: LabNames, container: str) -> str:
    """Prints the container's names on the lab network (nothing when it is not on it)."""
    template = f'{{{{with index .NetworkSettings.Networks "{names.network}"}}}}{{{{join .Aliases " "}}}}{{{{end}}}}'
    return shlex.join(["docker", "container", "inspect", "--format", template, container])


def state_command(names: LabNames, container: str = "") -> str:
    """Prints `STATUS KEY-FINGERPRINT` of the target (or CONTAINER); fails when there is none."""
    template = f'{{{{.State.Status}}}} {{{{index .Config.Labels "{names.key_label}"}}}}'
    return shlex.join(["docker", "container", "inspect", "--format", template, container or names.target])


def remove_target_commands(names: LabNames) -> list[str]:
    return [
        shlex.join(["docker", "rm", "--force", "--volumes", names.target]),
        shlex.join(["docker", "volume", "rm", "--force", names.target_volume, names.containerd_volume]),
    ]


def remove_backup_host_commands(names: LabNames) -> list[str]:
    return [shlex.join(["docker", "rm", "--force", "--volumes", names.backup_host])]


def remove_pebble_command(names: LabNames) -> str:
    return shlex.join(["docker", "rm", "--force", names.pebble])


def port_command(container: str) -> str:
    return shlex.join(["docker", "port", container])


def address_command(container: str) -> str:
    return shlex.join(["docker", "container", "inspect", "--format",
                       "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container])


def parse_published_ports(output: str, guest_ports: dict[str, int] = GUEST_PORTS) -> dict[str, int]:
    """`22/tcp -> 127.0.0.1:32770` lines to {"ssh": 32770, ...} (GUEST_PORTS: role -> port in the container),
    loopback bindings only."""
    by_guest_port = {}
    for line in output.splitlines():
        guest, arrow, published = line.partition(" -> ")
        if not arrow:
            continue
        address, _, port = published.rpartition(":")
        if address == "127.0.0.1":
            by_guest_port[int(guest.split("/")[0])] = int(port)
    return {name: by_guest_port[port] for name, port in guest_ports.items() if port in by_guest_port}


def exec_command(container: str, shell_command: str, interactive: bool = False) -> str:
    argv = ["docker", "exec"] + (["-i"] if interactive else []) + [container, "sh", "-c", shell_command]
    return shlex.join(argv)


SSH_READY_CHECK = "systemctl is-active --quiet ssh.service && test -s /etc/ssh/ssh_host_ed25519_key.pub"
SSH_LISTENERS = "ss -ltnp 'sport = :22'"
READ_HOST_KEY = "cat /etc/ssh/ssh_host_ed25519_key.pub"
# The account restic's SFTP logs in to; `*` (no password), not `!` (locked), so sshd accepts its keys.
PREPARE_BACKUP_ACCOUNT = (
    f"id {BACKUP_USER} >/dev/null 2>&1 || useradd -m -s /bin/sh {BACKUP_USER}; usermod -p '*' {BACKUP_USER}; "
    f"install -d -o {BACKUP_USER} -g {BACKUP_USER} -m 700 {BACKUP_ROOT} /home/{BACKUP_USER}/.ssh"
)
# Reads a public key on stdin; the backup account may use it for SFTP only (`restrict`: no shell tricks).
AUTHORIZE_BACKUP_KEY = (
    f'key=$(cat); keys=/home/{BACKUP_USER}/.ssh/authorized_keys; touch "$keys"; '
    f'grep -qxF "restrict $key" "$keys" || echo "restrict $key" >> "$keys"; '
    f'chown {BACKUP_USER}:{BACKUP_USER} "$keys"; chmod 600 "$keys"'
)
# What cloud-init does for a new VM: the operator's key becomes root's.
AUTHORIZE_ROOT_KEY = "umask 077 && mkdir -p /root/.ssh && cat > /root/.ssh/authorized_keys"

