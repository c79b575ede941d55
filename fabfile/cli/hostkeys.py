"""`fab -H NAME trust`: the one explicit way to accept a server's SSH host key."""

from __future__ import annotations

import sys

from .. import ssh
from ..errors import HostKeyError
from ..tasking import ask, load_deployment, operator_task


@operator_task(help={
    "fingerprint": "the SHA256:... fingerprint you got out of band; the key is recorded only if it matches",
    "yes": "record the key without asking (prefer --fingerprint)",
    "replace": "replace a different key already recorded for this host (after a rebuild)",
})
def trust(c, fingerprint=None, yes=False, replace=False):
    """Show the server's SSH host key fingerprint and record it in the inventory's known-hosts file."""
    deployment = load_deployment(c)
    host = deployment.inventory.host
    known_hosts = ssh.known_hosts_file(host)
    name = ssh.known_hosts_name(host.address, host.port)
    key = ssh.scan_host_key(host.address, host.port)
    print(f"{name} presents {key.get_name()} {key.fingerprint}")

    recorded = ssh.recorded_keys(known_hosts, host.address, host.port)
    if recorded.get(key.get_name()) == key:
        print(f"already trusted in {known_hosts}; nothing to do")
        return
    if recorded and not replace:
        shown = ", ".join(f"{k.get_name()} {k.fingerprint}" for k in recorded.values())
        raise HostKeyError(f"{known_hosts} already records {name} as {shown}; pass --replace only if you know the server was rebuilt")
    if fingerprint is not None:
        if fingerprint != key.fingerprint:
            raise HostKeyError(f"{name} presents {key.fingerprint}, not the expected {fingerprint}; nothing recorded")
    elif not yes:
        if not sys.stdin.isatty():
            raise HostKeyError("no terminal to confirm on: pass --fingerprint SHA256:... (checked out of band) or --yes")
        if ask("Trust this host key? [y/N] ").strip().lower() not in ("y", "yes"):
            raise HostKeyError("host key not trusted; nothing recorded")
    ssh.record_host_key(known_hosts, host.address, host.port, key)
    print(f"recorded {name} in {known_hosts}")
