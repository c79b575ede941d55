"""The lab's other hosts on its network: the SFTP backup host, the REST offsite server (append-only and admin
instances) and Pebble, the ACME CA; each made for this checkout's lab key, started, and checked ready."""

from __future__ import annotations

import io
import time

from invoke import Context

from fabfile.errors import LocalCommandFailed
from fabfile.tasking import run_local

from . import commands
from .containers import ensure_container, wait_for_ssh
from .paths import pebble_file, rest_ca_file
from .secrets_file import ensure_lab_secrets

REST_READY_TIMEOUT_SECONDS = 30


def ensure_backup_host(c: Context, lab: commands.LabNames, fingerprint: str) -> tuple[bool, str]:
    """The lab network, the backup host on it (made for this lab key), and the target joined to it."""
    done = []
    if c.run(commands.network_members_command(lab), hide=True, warn=True, in_stream=False).failed:
        run_local(c, commands.create_network_command(lab))
        done.append(f"created {lab.network}")
    # One made for another lab key holds another checkout's repository (another password): start from nothing.
    state, started = ensure_container(c, lab, lab.backup_host, commands.run_backup_host_command(lab, fingerprint),
                                      fingerprint, commands.remove_backup_host_commands(lab))
    done += started
    if state != "running":
        wait_for_ssh(c, lab.backup_host)
        run_local(c, commands.exec_command(lab.backup_host, commands.PREPARE_BACKUP_ACCOUNT))
    return bool(done), ", ".join(done) or "running"


def ensure_rest_server(c: Context, lab: commands.LabNames, fingerprint: str) -> tuple[bool, str]:
    """The REST server on the lab network (made for this lab key), its htpasswd files holding the lab
    secrets file's passwords (written and checked through stdin), both its instances answering, and its
    certificate on disk."""
    state, done = ensure_container(c, lab, lab.rest_server, commands.run_rest_server_command(lab, fingerprint),
                                   fingerprint, [commands.remove_rest_server_command(lab)])
    secrets_values = ensure_lab_secrets(c)
    rewritten = []
    for which, user, secret_name in commands.REST_INSTANCES:
        password = secrets_values[secret_name] + "\n"
        matches = commands.exec_command(lab.rest_server, commands.htpasswd_matches_command(which, user),
                                        interactive=True)
        if state is not None and c.run(matches, hide=True, warn=True, in_stream=io.StringIO(password)).ok:
            continue
        run_local(c, commands.exec_command(lab.rest_server, commands.write_htpasswd_command(which, user),
                                           interactive=True), in_stream=io.StringIO(password))
        rewritten.append(which)
    if rewritten and state is not None:
        # The lab's secrets changed under a running server: it reads the new files when it starts.
        run_local(c, f"docker restart {lab.rest_server}")
        done.append(f"{' and '.join(rewritten)} htpasswd rewritten")
    deadline = time.monotonic() + REST_READY_TIMEOUT_SECONDS
    while c.run(commands.exec_command(lab.rest_server, commands.REST_READY_CHECK), hide=True, warn=True,
                in_stream=False).failed:
        if time.monotonic() > deadline:
            raise LocalCommandFailed(f"{lab.rest_server}: rest-server not answering after "
                                     f"{REST_READY_TIMEOUT_SECONDS}s (docker logs {lab.rest_server})")
        time.sleep(0.5)
    certificate = run_local(c, commands.exec_command(lab.rest_server, commands.REST_CERTIFICATE)).stdout
    path = rest_ca_file(c)
    if not path.exists() or path.read_text() != certificate:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(certificate)
        done.append(f"{path.name} written")
    return bool(done), ", ".join(done) or "running"


def ensure_pebble(c: Context, lab: commands.LabNames) -> tuple[bool, str]:
    """Pebble on the lab network, the target on it under the app's domains, and Pebble's certificates on disk."""
    _, done = ensure_container(c, lab, lab.pebble, commands.run_pebble_command(lab), None, [])
    aliases = set(run_local(c, commands.aliases_command(lab, lab.target)).stdout.split())
    if not aliases.issuperset(commands.TARGET_DOMAINS):
        if lab.target in run_local(c, commands.network_members_command(lab)).stdout.split():
            run_local(c, commands.disconnect_command(lab, lab.target))
        run_local(c, commands.connect_command(lab, lab.target, commands.TARGET_DOMAINS))
        done.append(f"{lab.target} joined")
    # Pebble makes a new root at every start: what clients trust is read again each time.
    wanted = {pebble_file(c, "api"): run_local(c, commands.exec_command(lab.pebble, commands.PEBBLE_API_CERTIFICATE)).stdout,
              pebble_file(c, "root"): run_local(c, commands.exec_command(lab.pebble, commands.PEBBLE_ROOT)).stdout}
    for path, text in wanted.items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            done.append(f"{path.name} written")
    return bool(done), ", ".join(done) or "running"
