"""`lock.status` and `lock.release`: the deploy lock on the server."""

from __future__ import annotations

from invoke import Collection

from ..lazy import lazy_module
from ..tasking import app_session, operator_task

layout = lazy_module("..commands.layout", __package__)
lock = lazy_module("..commands.lock", __package__)
locked = lazy_module("..flows.locked", __package__)


@operator_task(name="status")
def status(c):
    """Show who holds the deploy lock, since when, and for what command."""
    with app_session(c) as (deployment, _, remote):
        record = locked.lock_holder(remote, layout.layout_of(deployment.inventory))
    print("unlocked" if record is None else f"locked by {lock.describe_lock(record)}")


@operator_task(name="release", help={"force": "stop the process holding the lock (after showing who it is)"})
def release(c, force=False):
    """Release the deploy lock: a running deploy holds it until it ends, so only --force takes it away."""
    with app_session(c) as (deployment, _, remote):
        locked.release_lock(remote, deployment, force)


namespace = Collection("lock", status, release)
