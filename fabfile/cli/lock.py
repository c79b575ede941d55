"""`lock.status` and `lock.release`: the deploy lock on the server."""

from __future__ import annotations

import json

from invoke import Collection

from ..commands.layout import layout_of
from ..commands.lock import describe_lock, force_unlock_command, lock_status_command
from ..errors import SlipwayError
from ..flows.locked import audit
from ..remote import Reporter
from ..tasking import load_deployment, operator_task, session


@operator_task(name="status")
def status(c):
    """Show who holds the deploy lock, since when, and for what command."""
    deployment = load_deployment(c)
    layout = layout_of(deployment.inventory)
    with session(c, deployment, Reporter(deployment.name), deploy_user_only=True) as remote:
        answer = remote.run(lock_status_command(layout)).stdout.strip()
    print("unlocked" if answer == "free" else f"locked by {describe_lock(_record(answer))}")


@operator_task(name="release", help={"force": "stop the process holding the lock (after showing who it is)"})
def release(c, force=False):
    """Release the deploy lock: a running deploy holds it until it ends, so only --force takes it away."""
    deployment = load_deployment(c)
    layout = layout_of(deployment.inventory)
    with session(c, deployment, Reporter(deployment.name), deploy_user_only=True) as remote:
        answer = remote.run(lock_status_command(layout)).stdout.strip()
        if answer == "free":
            print("unlocked: nothing to release")
            return
        record = _record(answer)
        print(f"locked by {describe_lock(record)}")
        if not force:
            raise SlipwayError(f"{deployment.name}: the lock belongs to a running command; pass --force to stop it and take the lock away")
        remote.run(force_unlock_command(layout, record.get("pid", "")), root=True)
        audit(remote.run, layout, "lock forced", holder=record.get("holder", {}))
    print("lock released (forced)")


def _record(text: str) -> dict:
    try:
        return json.loads(text)
    except ValueError:
        return {}


namespace = Collection("lock", status, release)
