"""Provision: one probe round trip reads where the server stands; only the steps whose state differs run,
each printing ok / changed / failed and its time."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

from .. import ssh
from ..commands import provision as commands
from ..commands import provision_plan as planning
from ..commands.layout import layout_of
from ..commands.upgrade import found_layout, refuse_newer
from ..config import Deployment
from ..errors import ConnectError, HostKeyError, LoginRefused, SlipwayError
from ..remote import Remote, Reporter
from .locked import deploy_lock

SSHD_RESTART_GRACE_SECONDS = 10


def provision(remote: Remote, reporter: Reporter, deployment: Deployment, project: Path, trust_hint: str,
              dry_run: bool, switch_image_store: bool) -> None:
    """The server made what the inventory asks for (connected as root or through sudo); TRUST_HINT: the command
    that trusts the host's key, for a login proven afresh."""
    inventory = deployment.inventory
    with reporter.step("gather facts (one round trip)") as facts:
        state = commands.parse_probe(remote.run(commands.probe_script(inventory), root=True).stdout)
        facts.detail = f"{state.os_id} {state.os_version}"
    refuse_newer(found_layout(state.layout_record, None), deployment.name)
    desired = commands.desired_state(inventory, project, state.os_id, state.os_version, deployment.secret,
                                     home=state.user_home, inventory_name=deployment.name)
    steps = planning.plan(desired, state, switch_image_store)
    disruptive = [step.name for step in steps if step.needed and step.disruptive]
    # A deploy must not meet a docker restart or an sshd reload halfway: take its lock (as the
    # deploy user, who owns it) whenever the app may be running.
    locked = (deploy_lock(remote, layout_of(inventory), "provision", inventory.app.step_timeout_seconds,
                          message=f"provision: {', '.join(disruptive)}", as_user=inventory.server.deploy_user)
              if disruptive and state.app_deployed and not dry_run else nullcontext())
    with locked:
        for step in steps:
            _carry_out(remote, reporter, deployment, step, trust_hint, dry_run)
    # The probe read a key that was there; one made by this run is read now.
    offsite_key = (state.offsite_public_key or remote.run(["cat", f"{desired.offsite_key}.pub"], root=True).stdout.strip()) \
        if desired.offsite_key and not dry_run else ""
    print(reporter.summary())
    if offsite_key:
        sftp = inventory.backup.offsite.sftp
        print(f"[{deployment.name}] offsite backups log in to {sftp.user}@{sftp.host} with this key of the server's; "
              f"add it to that account's ~/.ssh/authorized_keys:\n{offsite_key}")


def _carry_out(remote: Remote, reporter: Reporter, deployment: Deployment, step: planning.Step, trust_hint: str,
               dry_run: bool) -> None:
    """One step, reported: skipped when the server already is as it asks, its diff shown in a dry run."""
    with reporter.step(step.name) as report:
        if not step.needed:
            return
        report.changed = True
        if dry_run:
            report.detail = "\n" + _indent(step.diff) if step.diff else ""
            return
        try:
            report.detail = "; ".join(_apply(deployment, remote, step, trust_hint))
        except SlipwayError as error:
            raise SlipwayError(f"provision step '{step.name}' failed; re-run provision once fixed, it goes on "
                               f"from where the server is.\n{error}") from None


def _apply(deployment, remote: Remote, step: planning.Step, trust_hint: str) -> list[str]:
    """Carry out STEP; what its scripts said for the operator (stderr lines starting `note: `)."""
    notes = []
    for action in step.actions:
        if isinstance(action, planning.Shell):
            result = remote.run(action.command, root=True, stdin=action.stdin, timeout=action.timeout)
            notes += [line.removeprefix("note: ") for line in result.stderr.splitlines() if line.startswith("note: ")]
        elif isinstance(action, planning.Write):
            remote.run(planning.write_file_command(action.file), root=True, stdin=action.file.content)
        elif isinstance(action, planning.ProveLogin):
            _prove_login(deployment, remote, action, trust_hint)
    return notes


def _prove_login(deployment, remote: Remote, action: planning.ProveLogin, trust_hint: str) -> None:
    """A new SSH session, or no change (and ACTION's undo if the change was already made)."""
    host = deployment.inventory.host
    user = action.user or remote.user
    conn = ssh.connection(host, deployment.name, trust_hint, user=user)
    try:
        _open_while_sshd_restarts(conn, deployment.name, ssh.known_hosts_file(host), trust_hint)
        Remote(conn, deployment.name).run(action.command)
    except SlipwayError as error:
        if action.undo:
            remote.run(action.undo, root=True)
            raise SlipwayError(f"{deployment.name}: after the {action.what} change a new SSH login as {user} failed, so "
                               f"the previous {action.what} configuration was restored; {remote.user} can still log in.\n"
                               f"{error}") from None
        raise SlipwayError(f"{deployment.name}: refusing to change {action.what}: a new SSH login as {user} with "
                           f"{host.key_file} could not run `{action.command}`; {action.what} is unchanged and "
                           f"{remote.user} can still log in.\n{error}") from None
    finally:
        conn.close()


def _open_while_sshd_restarts(conn, label, known_hosts, hint) -> None:
    """sshd re-executes itself on reload: a connection in that instant is dropped, so try again briefly."""
    deadline = time.monotonic() + SSHD_RESTART_GRACE_SECONDS
    while True:
        try:
            ssh.open_connection(conn, label, known_hosts, hint)
            return
        except (LoginRefused, HostKeyError):
            raise
        except ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip("\n").splitlines())
