"""SSH connections that verify the server's host key.

Fabric 3 adds unknown host keys silently. slipway instead checks the key
against the inventory's known-hosts file (or ~/.ssh/known_hosts) and refuses
an unknown or changed key; `trust` is the one place a new key is accepted.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import paramiko
from fabric import Config, Connection

from .errors import ConnectError, HostKeyError, LoginRefused

if TYPE_CHECKING:
    from .config import Host

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")

# paramiko logs handshake failures with tracebacks from its transport thread;
# slipway reports them itself, as one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False
CONNECT_TIMEOUT_SECONDS = 15


def known_hosts_file(host: Host) -> Path:
    return host.known_hosts or DEFAULT_KNOWN_HOSTS.expanduser()


def known_hosts_name(address: str, port: int) -> str:
    """The name OpenSSH and paramiko file a host's key under."""
    return address if port == 22 else f"[{address}]:{port}"


def recorded_keys(path: Path, address: str, port: int) -> dict[str, paramiko.PKey]:
    """Key type -> key recorded for this host in a known-hosts file (hashed names included)."""
    if not path.exists():
        return {}
    host_keys = paramiko.HostKeys(str(path))
    return dict(host_keys.lookup(known_hosts_name(address, port)) or {})


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    def __init__(self, label: str, known_hosts: Path, trust_hint: str):
        self.label = label
        self.known_hosts = known_hosts
        self.trust_hint = trust_hint

    def missing_host_key(self, client, hostname, key):
        raise HostKeyError(
            f"{self.label}: host key {key.get_name()} {key.fingerprint} for {hostname} is not in {self.known_hosts}; "
            f"refusing to connect. If that fingerprint is the server's, run: {self.trust_hint}"
        )


def connection(host: Host, label: str, trust_hint: str, user: str | None = None) -> Connection:
    """An unopened Fabric connection that will only talk to the recorded host key."""
    key = host.key_file
    connect_kwargs = {"allow_agent": key is None, "look_for_keys": key is None}
    if key is not None:
        connect_kwargs["key_filename"] = str(key)
    conn = Connection(
        host.address,
        user=user or host.user,
        port=host.port,
        # The inventory is the whole truth about the host: ~/.ssh/config does not rewrite it.
        config=Config(overrides={"load_ssh_configs": False, "run": {"in_stream": False}}),
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        connect_kwargs=connect_kwargs,
    )
    known_hosts = known_hosts_file(host)
    conn.client.set_missing_host_key_policy(_RefuseUnknownHost(label, known_hosts, trust_hint))
    if known_hosts.exists():
        conn.client.load_system_host_keys(str(known_hosts))
    return conn


def open_connection(conn: Connection, label: str, known_hosts: Path, trust_hint: str) -> Connection:
    """Open the SSH session, turning paramiko's failures into one readable line."""
    where = f"{conn.user}@{known_hosts_name(conn.host, conn.port)}"
    try:
        conn.open()
    except paramiko.BadHostKeyException as error:
        raise HostKeyError(
            f"{label}: host key for {known_hosts_name(conn.host, conn.port)} has CHANGED: {known_hosts} records "
            f"{error.expected_key.get_name()} {error.expected_key.fingerprint}, the server presented "
            f"{error.key.get_name()} {error.key.fingerprint}; refusing to connect. This is what a man-in-the-middle "
            f"looks like; if the server was really rebuilt, check its new key out of band and run: {trust_hint} --replace"
        ) from None
    except paramiko.AuthenticationException:
        raise LoginRefused(f"{label}: {where} refused the SSH login with key {conn.connect_kwargs.get('key_filename', '(agent/default keys)')}") from None
    except (socket.timeout, TimeoutError):
        raise ConnectError(f"{label}: {where} did not answer within {CONNECT_TIMEOUT_SECONDS}s") from None
    except (paramiko.SSHException, OSError) as error:
        raise ConnectError(f"{label}: cannot connect to {where}: {error}") from None
    return conn


@contextmanager
def _handshake(address: str, port: int) -> Iterator[paramiko.Transport]:
    """An SSH transport past key exchange, not logged in: enough to read the host key and auth methods."""
    try:
        sock = socket.create_connection((address, port), timeout=CONNECT_TIMEOUT_SECONDS)
    except OSError as error:
        raise ConnectError(f"cannot reach {known_hosts_name(address, port)}: {error}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=CONNECT_TIMEOUT_SECONDS)
        yield transport
    except paramiko.SSHException as error:
        raise ConnectError(f"{known_hosts_name(address, port)} did not complete an SSH handshake: {error}") from None
    finally:
        transport.close()


def scan_host_key(address: str, port: int) -> paramiko.PKey:
    """The host key the server presents, read without logging in."""
    with _handshake(address, port) as transport:
        return transport.get_remote_server_key()


def allowed_auth_methods(address: str, port: int, user: str, expected_key: paramiko.PKey | None = None) -> list[str]:
    """The login methods sshd offers USER (asked with the `none` method, as OpenSSH clients do)."""
    with _handshake(address, port) as transport:
        if expected_key is not None and transport.get_remote_server_key() != expected_key:
            raise HostKeyError(f"{known_hosts_name(address, port)} presented an unexpected host key")
        try:
            transport.auth_none(user)
        except paramiko.BadAuthenticationType as error:
            return list(error.allowed_types)
        return ["none"]


def known_hosts_with(text: str, name: str, key: paramiko.PKey) -> str:
    """Known-hosts TEXT with every entry for NAME replaced by KEY; other lines untouched."""
    kept = [line for line in text.splitlines() if not _entry_names(line, name)]
    kept.append(f"{name} {key.get_name()} {key.get_base64()}")
    return "\n".join(kept) + "\n"


def _entry_names(line: str, name: str) -> bool:
    fields = line.split()
    if not fields or line.lstrip().startswith("#"):
        return False
    hosts = fields[1 if fields[0].startswith("@") else 0].split(",")
    return any(
        host == name or (host.startswith("|1|") and paramiko.HostKeys.hash_host(name, host) == host)
        for host in hosts
    )


def record_host_key(path: Path, address: str, port: int, key: paramiko.PKey) -> None:
    """Record KEY as the only key of this host in PATH, written atomically."""
    current = path.read_text() if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(path, known_hosts_with(current, known_hosts_name(address, port), key))


def write_private_file(path: Path, text: str) -> None:
    """Write TEXT to PATH (mode 0600) through a temporary file and a rename."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
