"""A locked run on the server: the deploy lock, steps under it with time limits, recovery
of interrupted runs, and the one way every failed attempt ends."""

from __future__ import annotations

import getpass
import json
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

from ..commands import lock as lock_commands
from ..commands import traffic
from ..commands.layout import Layout, layout_of
from ..commands.release import audit_event, release_record
from ..commands.sequence import Outcome, Part, read_outcome, sequence_command
from ..commands.shell import KILL_AFTER_SECONDS, Argv, line, shown
from ..commands.state import FAILED, SERVED, ServerState, parse_state, state_command
from ..commands.upgrade import LAYOUT, refuse_newer
from ..errors import RemoteCommandFailed, SlipwayError
from ..remote import Remote, Reporter

# Beyond a step's own limit: the kill, and the round trip that reports it.
CLIENT_MARGIN_SECONDS = KILL_AFTER_SECONDS + 20


def deployer() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


class LockedRun:
    """Runs the steps of a locked deploy, rollback or provision: each holds the run's steps
    lock while it runs and is killed on the server past its time limit."""

    def __init__(self, remote: Remote, layout: Layout, step_limit: int):
        self.remote = remote
        self.layout = layout
        self.step_limit = step_limit

    def __call__(self, argv: Argv, *, limit: int | None = None, root: bool = False, **kwargs):
        seconds = limit or self.step_limit
        return self.remote.run(lock_commands.in_run(self.layout, argv, seconds), shown=shown(argv), root=root,
                               timeout=seconds + CLIENT_MARGIN_SECONDS, **kwargs)

    def stop_in_flight(self) -> None:
        """Ctrl-C ends the client's wait, not the step on the server: stop it before cleaning up
        after it, so nothing it would still start outlives the cleanup."""
        self.remote.run(lock_commands.stop_steps_command(self.layout), root=True, check=False,
                        timeout=CLIENT_MARGIN_SECONDS + 10)


@contextmanager
def deploy_lock(remote: Remote, layout: Layout, command: str, step_limit: int, message: str = "",
                as_user: str | None = None, started: str = "") -> Iterator[LockedRun]:
    """Hold the deploy lock for the block (AS_USER: the holder runs as that user, through sudo). STARTED: the
    run's first audit line (see audit_line), written as the lock is taken."""
    holder = {"by": deployer(), "command": command, "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if message:
        holder["message"] = message
    argv = lock_commands.lock_command(layout, holder, started)
    if as_user and as_user != remote.user:
        argv = ["sudo", "-n", "-u", as_user, *argv]
    channel = remote.open_channel(line(argv))
    try:
        first = channel.makefile("r").readline().strip()
        if first != "LOCKED":
            exited = channel.recv_exit_status()
            if exited == lock_commands.LOCK_BUSY_EXIT:
                raise SlipwayError(f"{remote.label}: deploy lock is held by {lock_commands.describe_lock(_json(first))}; "
                                   "nothing was changed (see `lock.status`; `lock.release --force` if it is stale)")
            raise RemoteCommandFailed(remote.label, "take the deploy lock", exited, channel.makefile_stderr("r").read())
        yield LockedRun(remote, layout, step_limit)
    finally:
        channel.shutdown_write()
        channel.close()


def _json(text: str) -> dict:
    try:
        return json.loads(text)
    except ValueError:
        return {}


def lock_holder(remote: Remote, layout: Layout) -> dict | None:
    """Who holds the deploy lock (lock_status.sh's record), or None when it is free."""
    answer = remote.run(lock_commands.lock_status_command(layout)).stdout.strip()
    return None if answer == "free" else _json(answer)


def release_lock(remote: Remote, deployment, force: bool) -> None:
    """The deploy lock released: shown first, then, only with FORCE, its holder stopped and the lock taken away."""
    layout = layout_of(deployment.inventory)
    record = lock_holder(remote, layout)
    if record is None:
        print("unlocked: nothing to release")
        return
    print(f"locked by {lock_commands.describe_lock(record)}")
    if not force:
        raise SlipwayError(f"{deployment.name}: the lock belongs to a running command; pass --force to stop it and "
                           "take the lock away")
    remote.run(lock_commands.force_unlock_command(layout, record.get("pid", "")), root=True)
    audit(remote.run, layout, "lock forced", holder=record.get("holder", {}))
    print("lock released (forced)")


def audit_line(event: str, **details) -> str:
    """The audit log's line for EVENT, by this operator, now."""
    return audit_event(event, deployer(), datetime.now(timezone.utc), **details)


def audit(run, layout: Layout, event: str, **details) -> None:
    """Append one JSON line to the audit log (RUN: a Remote's or a LockedRun's run)."""
    run(traffic.append_audit_command(layout), stdin=audit_line(event, **details))


def run_parts(run, label: str, parts: list[Part], check: bool = True, **kwargs) -> Outcome:
    """PARTS in one round trip (RUN: a Remote's or a LockedRun's run); CHECK: the first that fails raises,
    named as the operator reads it."""
    argv, stdin = sequence_command(parts)
    result = run(argv, stdin=stdin, check=False, **kwargs)
    outcome = read_outcome(result.stdout, result.stderr, result.exited, len(parts))
    if check and outcome.failed is not None:
        failed = shown(parts[outcome.failed].argv) if outcome.failed < len(parts) else shown(argv)
        raise RemoteCommandFailed(label, failed, outcome.exited, outcome.stderr or outcome.output(outcome.failed))
    return outcome


def read_state(run, layout: Layout, refs: list[str], label: str) -> ServerState:
    """The server's state; a server slipway never provisioned stops everything here."""
    return provisioned_state(run(state_command(layout, refs)).stdout, layout, label)


def provisioned_state(output: str, layout: Layout, label: str) -> ServerState:
    state = parse_state(output, layout)
    if not state.provisioned:
        raise SlipwayError(f"{label}: {layout.releases} does not exist: this server was never provisioned for "
                           f"{layout.app}; run `fab -H {label} provision` first")
    refuse_newer(state.layout, label)
    return state


def recover(run: LockedRun, reporter: Reporter, layout: Layout, refs: list[str], label: str) -> ServerState:
    """Under the lock: finish what an interrupted run left, then read the server afresh."""
    with reporter.step("recover from interrupted runs, re-read state") as step:
        read = run_parts(run, label, [Part(traffic.recover_command(layout)), Part(state_command(layout, refs))])
        restored = read.output(0).startswith("restored")
        state = provisioned_state(read.output(1), layout, label)
        notes = ["put back the nginx config of an unfinished switch"] if restored else []
        for release_id, record in state.releases.items():
            if record.get("outcome") != "pending":
                continue
            # A pending release that serves took traffic before its run was cut off; one that
            # does not never will.
            record["outcome"] = SERVED if release_id == state.serving else FAILED
            if record["outcome"] == FAILED:
                record["detail"] = "interrupted before it took traffic"
            run(traffic.write_record_command(layout, release_id), stdin=json.dumps(record, sort_keys=True) + "\n")
            notes.append(f"{release_id} recorded as {record['outcome']}")
        if state.serving and state.current != state.serving:
            # A run cut off between the nginx switch and its last step left `current` behind.
            run(traffic.point_current_command(layout, state.serving))
            state.current = state.serving
            notes.append(f"current now points at the serving {state.serving}")
        step.changed, step.detail = bool(notes), "; ".join(notes)
    return state


def remove_leftovers(run: LockedRun, reporter: Reporter, layout: Layout, state: ServerState) -> None:
    """Containers of attempts that never took traffic (an interrupted or failed deploy) go first."""
    leftovers = sorted(rid for rid in state.projects if rid != state.serving)
    if not leftovers:
        return
    with reporter.step("remove leftovers of interrupted deploys") as step:
        for release_id in leftovers:
            run(traffic.discard_release_command(layout, release_id))
            del state.projects[release_id]
        step.changed, step.detail = True, ", ".join(leftovers)


@dataclass
class Attempt:
    """One deploy or rollback of a release, and what its record says."""

    kind: str  # "deploy", "rollback", "restart" or "password rotation"
    release_id: str
    version: str
    started: datetime
    commit: str
    by: str  # who deployed the release: a rollback keeps the original deployer
    serving_before: str
    images: dict[str, dict] | None = None
    switched: bool = False
    restart_of: str = ""
    # The layout the release's files were made for: a copy's or a rollback target's is its source's.
    layout: int = LAYOUT

    def record(self, outcome: str, detail: str = "") -> str:
        return release_record(self.release_id, self.version, self.images or {}, self.commit, self.by, self.started,
                              outcome, detail, self.restart_of, self.layout)

    @property
    def new_release(self) -> bool:
        """A release made by this attempt (not a rollback), recorded as failed if it never served."""
        return self.kind in ("deploy", "restart", "password rotation")


@contextmanager
def failing_cleanly(run: LockedRun, reporter: Reporter, layout: Layout, attempt: Attempt, label: str) -> Iterator[None]:
    """Every failure of a locked step ends the same way: one error line, the release recorded
    (a deploy that never took traffic as failed; a rollback's target keeps its record), its
    containers removed if they never took traffic, an audit event, the serving release untouched."""
    try:
        yield
    except BaseException as error:
        interrupted = isinstance(error, KeyboardInterrupt)
        if not isinstance(error, (SlipwayError, KeyboardInterrupt)):
            if not isinstance(error, Exception):
                raise
            error = SlipwayError(f"{label}: {type(error).__name__}: {error}")
        detail = "interrupted" if interrupted else str(error).splitlines()[0]
        step = reporter.failed_step or "?"
        if interrupted:
            # The stopped step may have been the switch: put back a half-done nginx config.
            run.stop_in_flight()
            run(traffic.recover_command(layout), check=False)
        # A switch that failed or was stopped may still have moved traffic: trust the server over
        # what the client last heard.
        serving = run(state_command(layout, []), check=False)
        if not serving.failed:
            attempt.switched = parse_state(serving.stdout, layout).serving == attempt.release_id
        if not attempt.switched:
            run(traffic.discard_release_command(layout, attempt.release_id), check=False)
        if attempt.new_release:
            # Once it passed its health checks and took traffic, it is a release that served.
            outcome = SERVED if attempt.switched else FAILED
            run(traffic.write_record_command(layout, attempt.release_id),
                stdin=attempt.record(outcome, f"{step}: {detail}"), check=False)
        audit(lambda argv, **kw: run(argv, check=False, **kw), layout, f"{attempt.kind} failed",
              release=attempt.release_id, version=attempt.version, step=step, detail=detail)
        if interrupted:
            raise
        if attempt.switched:
            outcome = f"{attempt.release_id} ({attempt.version}) serves, but its last steps did not finish"
        else:
            outcome = f"{attempt.release_id} ({attempt.version}) got no traffic; {attempt.serving_before or 'nothing'} still serves"
        raise SlipwayError(f"{label}: {attempt.kind} failed at '{step}': {outcome}.\n{error}") from None
