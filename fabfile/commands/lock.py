"""The deploy lock: held on the server by a process whose stdin is slipway's SSH channel."""

from __future__ import annotations

import json

from .layout import Layout
from .shell import KILL_AFTER_SECONDS, Argv, limited, script

LOCK_BUSY_EXIT = 75
# How long a new run waits for a holder whose operator is gone to finish its in-flight steps.
DETACHED_WAIT_SECONDS = 90
# How long it waits when the lock is held but no live holder is on record (one is starting or ending).
SETTLE_WAIT_SECONDS = 10


def lock_command(layout: Layout, holder: dict, started_event: str = "") -> Argv:
    """Hold the lock for as long as this command's stdin stays open (see scripts/lock.sh); STARTED_EVENT, an
    audit line, is appended once it is held."""
    audit = [layout.audit_log, started_event.rstrip("\n")] if started_event else []
    return script("lock", layout.lock_file, layout.lock_info, layout.steps_lock, json.dumps(holder, sort_keys=True),
                  DETACHED_WAIT_SECONDS, SETTLE_WAIT_SECONDS, LOCK_BUSY_EXIT, *audit)


def in_run(layout: Layout, argv: Argv, limit: int) -> Argv:
    """ARGV as a step of the locked run: it holds steps.lock shared while it runs, and is killed
    (with all it started) past LIMIT seconds, so the lock is never held by a hung step."""
    return ["flock", "-s", layout.steps_lock, *limited(limit, argv)]


def stop_steps_command(layout: Layout) -> Argv:
    """Stop the run's steps still in flight (after Ctrl-C) and wait until none holds steps.lock."""
    return script("stop_steps", layout.steps_lock, KILL_AFTER_SECONDS + 5)


def lock_status_command(layout: Layout) -> Argv:
    return script("lock_status", layout.lock_file, layout.lock_info)


def force_unlock_command(layout: Layout, pid: object) -> Argv:
    return script("force_unlock", layout.lock_file, layout.lock_info, pid)


def describe_lock(record: dict) -> str:
    holder = record.get("holder") or {}
    if not holder:
        return "an unknown holder"
    message = f": {holder['message']}" if holder.get("message") else ""
    ending = "; its operator is gone and it ends once its last step does" if record.get("detached") else ""
    return (f"{holder.get('by', '?')} running `{holder.get('command', '?')}` since {holder.get('since', '?')}"
            f" (pid {record.get('pid', '?')}){message}{ending}")
