"""`fab -H NAME provision [--dry-run]`: a fresh Debian/Ubuntu server becomes a hardened Docker host.

One probe round trip reads where the server stands; only the steps whose
state differs run. Every step prints ok / changed / failed and its time.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

from .. import ssh
from ..commands import provision as commands
from ..commands import provision_plan as planning
from ..commands.layout import layout_of
from ..errors import ConnectError, HostKeyError, LoginRefused, SlipwayError
from ..flows.locked import deploy_lock
from ..remote import Remote, Reporter
from ..tasking import load_deployment, operator_task, project_dir, session, trust_hint

SSHD_RESTART_GRACE_SECONDS = 10


@operator_task(help={
    "dry-run": "show what would change, with a diff of every managed file, and change nothing",
    "switch-image-store": "let a change of server.docker.containerd_image_store switch Docker's image store on a "
                          "server where the app is deployed (its containers stop until the next deploy)",
})
def provision(c, dry_run=False, switch_image_store=False):
    """Install Docker + Compose v2, create the deploy user, harden SSH, enable the firewall (idempotent)."""
    deployment = load_deployment(c)
    inventory = deployment.inventory
    reporter = Reporter(deployment.name, dry_run=dry_run)
    with session(c, deployment, reporter, as_root=True) as remote:
        with reporter.step("gather facts (one round trip)") as facts:
            state = commands.parse_probe(remote.run(commands.probe_script(inventory), root=True).stdout)
            facts.detail = f"{state.os_id} {state.os_version}"
        desired = commands.desired_state(inventory, project_dir(c), state.os_id, state.os_version, deployment.secret,
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
                with reporter.step(step.name) as report:
                    if not step.needed:
                        continue
                    report.changed = True
                    if dry_run:
                        report.detail = "\n" + _indent(step.diff) if step.diff else ""
                        continue
                    try:
                        notes = _apply(c, deployment, remote, step)
                        report.detail = "; ".join(notes)
                    except SlipwayError as error:
                        raise SlipwayError(f"provision step '{step.name}' failed; re-run provision once fixed, it goes on "
                                           f"from where the server is.\n{error}") from None
        offsite_key = remote.run(["cat", f"{desired.offsite_key}.pub"], root=True).stdout.strip() \
            if desired.offsite_key and not dry_run else ""
    print(reporter.summary())
    if offsite_key:
        sftp = inventory.backup.offsite.sftp
        print(f"[{deployment.name}] offsite backups log in to {sftp.user}@{sftp.host} with this key of the server's; "
              f"add it to that account's ~/.ssh/authorized_keys:\n{offsite_key}")


def _apply(c, deployment, remote: Remote, step: planning.Step) -> list[str]:
    """Carry out STEP; what its scripts said for the operator (stderr lines starting `note: `)."""
    notes = []
    for action in step.actions:
        if isinstance(action, planning.Shell):
            result = remote.run(action.command, root=True, stdin=action.stdin, timeout=action.timeout)
            notes += [line.removeprefix("note: ") for line in result.stderr.splitlines() if line.startswith("note: ")]
        elif isinstance(action, planning.Write):
            remote.run(planning.write_file_command(action.file), root=True, stdin=action.file.content)
        elif isinstance(action, planning.ProveLogin):
            _prove_login(c, deployment, remote, action)
    return notes


def _prove_login(c, deployment, remote: Remote, action: planning.ProveLogin) -> None:
    """A new SSH session, or no change (and ACTION's undo if the change was already made)."""
    host = deployment.inventory.host
    user = action.user or remote.user
    conn = ssh.connection(host, deployment.name, trust_hint(c), user=user)
    try:
        _open_while_sshd_restarts(conn, deployment.name, ssh.known_hosts_file(host), trust_hint(c))
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
