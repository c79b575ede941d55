"""The lab's containers and images as the local Docker sees them: built, made for this lab key, answering SSH."""

from __future__ import annotations

import base64
import io
import os
import socket
import tempfile
import time
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from invoke import Context

from fabfile import ssh
from fabfile.errors import LocalCommandFailed, SlipwayError
from fabfile.tasking import run_local

from . import commands

SSH_READY_TIMEOUT_SECONDS = 90
SSH_BANNER_TIMEOUT_SECONDS = 30


def image_id(c: Context, image: str) -> str | None:
    result = c.run(commands.image_exists_command(image), hide=True, warn=True, in_stream=False)
    return result.stdout.strip() if result.ok else None


def container_state(c: Context, lab: commands.LabNames, container: str = "") -> tuple[str | None, str]:
    """(state, key fingerprint label) of the target (or CONTAINER), (None, "") when there is none."""
    result = c.run(commands.state_command(lab, container), hide=True, warn=True, in_stream=False)
    if result.failed:
        return None, ""
    state, _, made_for = result.stdout.strip().partition(" ")
    return state, made_for


def ensure_container(c: Context, lab: commands.LabNames, container: str, create: str, fingerprint: str | None,
                     remove: list[str]) -> tuple[str | None, list[str]]:
    """CONTAINER running; with FINGERPRINT, made for this lab key (one made for another is removed first: what it
    holds belongs to another checkout's lab). Its state before (None: created now) and what was done."""
    state, made_for = container_state(c, lab, container)
    if state is not None and fingerprint is not None and made_for != fingerprint:
        for command in remove:
            run_local(c, command)
        state = None
    if state is None:
        run_local(c, create)
        return state, ["created"]
    if state != "running":
        run_local(c, f"docker start {container}")
        return state, ["started"]
    return state, []


def public_key(line: str) -> paramiko.PKey:
    """A key from an OpenSSH `TYPE BASE64 [COMMENT]` line."""
    key_type, key_base64 = line.split()[:2]
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(key_base64))


def build_base_image(c: Context, lab: commands.LabNames) -> None:
    if os.geteuid() != 0:
        raise SlipwayError(f"building {lab.base_image} runs debootstrap, which needs root; run lab.up as root")
    with tempfile.TemporaryDirectory(prefix="slipway-rootfs-", dir="/var/tmp") as workdir:
        rootfs = Path(workdir) / "rootfs"
        run_local(c, commands.debootstrap_command(lab.suite, rootfs, c.config.slipway.lab.mirror))
        run_local(c, commands.import_command(rootfs, lab.base_image))


def ensure_key(path: Path) -> bool:
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = private_key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    ssh.write_private_file(path, pem)
    Path(f"{path}.pub").write_text(f"{public.decode()} slipway-lab\n")
    return True


def create_target(c: Context, lab: commands.LabNames, fingerprint: str, public_key: str) -> None:
    run_local(c, commands.run_target_command(lab, fingerprint, free_loopback_ports(commands.GUEST_PORTS)))
    wait_for_ssh(c, lab.target)
    run_local(c, commands.exec_command(lab.target, commands.AUTHORIZE_ROOT_KEY, interactive=True),
              in_stream=io.StringIO(public_key))


def free_loopback_ports(names) -> dict[str, int]:
    """A loopback port no one listens on for each of NAMES (the kernel's pick, held until all are picked)."""
    sockets = []
    try:
        for _ in names:
            sockets.append(socket.socket())
            sockets[-1].bind(("127.0.0.1", 0))
        return {name: held.getsockname()[1] for name, held in zip(names, sockets)}
    finally:
        for held in sockets:
            held.close()


def ssh_port(c: Context, container: str) -> int | None:
    return commands.parse_published_ports(run_local(c, commands.port_command(container)).stdout).get("ssh")


def answers_ssh(c: Context, container: str) -> bool:
    """Whether an SSH banner comes back through the published port within SSH_BANNER_TIMEOUT_SECONDS."""
    port = ssh_port(c, container)
    deadline = time.monotonic() + SSH_BANNER_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
                if probe.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


def unreachable_ssh_report(c: Context, container: str) -> str:
    """One line: the dead port, and what the container's address and listening sockets were."""
    inside = c.run(commands.exec_command(container, commands.SSH_LISTENERS), hide=True, warn=True, in_stream=False)
    address = c.run(commands.address_command(container), hide=True, warn=True, in_stream=False)
    listening = " | ".join(" ".join(line.split()) for line in (inside.stdout or inside.stderr).splitlines())
    direct = "?"
    for ip in address.stdout.split():
        try:
            with socket.create_connection((ip, 22), timeout=5) as probe:
                direct = f"{ip}:22 answers {probe.recv(64)[:20]!r}"
        except OSError as error:
            direct = f"{ip}:22 fails too ({error})"
    return (f"{container}: sshd runs inside, but 127.0.0.1:{ssh_port(c, container)} gave no SSH banner in "
            f"{SSH_BANNER_TIMEOUT_SECONDS}s, even from a re-created container; directly, {direct}; "
            f"listening inside: {listening or '?'}")


def wait_for_ssh(c: Context, container: str) -> None:
    deadline = time.monotonic() + SSH_READY_TIMEOUT_SECONDS
    check = commands.exec_command(container, commands.SSH_READY_CHECK)
    while c.run(check, hide=True, warn=True, in_stream=False).failed:
        if time.monotonic() > deadline:
            raise LocalCommandFailed(f"{container}: sshd not running after {SSH_READY_TIMEOUT_SECONDS}s (docker logs {container})")
        time.sleep(0.5)
