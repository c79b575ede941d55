"""The thin layer that runs built commands on a server and reports each step."""

from __future__ import annotations

import select
import shlex
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import BinaryIO, Iterator, TextIO

from fabric import Connection
from invoke.runners import Result

from .commands import shell
from .errors import RemoteCommandFailed, StepTimedOut

COMMAND_SHOWN_CHARS = 200
STREAM_CHUNK_BYTES = 1 << 20
# For reads and small edits; steps that may take long pass their own (inventory) limits.
DEFAULT_TIMEOUT_SECONDS = 120
# How often a wait for a remote command looks whether Ctrl-C was pressed.
INTERRUPT_POLL_SECONDS = 0.2

# Ctrl-C sets this (see tasking.py) instead of raising wherever the main thread happens to be:
# a KeyboardInterrupt raised inside paramiko can leave its transport's send lock held, and the
# cleanup that follows (on the same connection) then waits on it for ever.
INTERRUPTED = threading.Event()


def raise_if_interrupted() -> None:
    """Turn a pending Ctrl-C into KeyboardInterrupt here, outside paramiko (once per press)."""
    if INTERRUPTED.is_set():
        INTERRUPTED.clear()
        raise KeyboardInterrupt


class Remote:
    """One server, reached over one SSH connection; every failure names host, command and stderr."""

    def __init__(self, conn: Connection, label: str):
        self.conn = conn
        self.label = label
        # Commands sent over this connection: each costs one network round trip at least.
        self.round_trips = 0

    @property
    def user(self) -> str:
        return self.conn.user

    def run(self, command: str | list[str], *, root: bool = False, stdin: str | bytes | BinaryIO | None = None,
            check: bool = True, shown: str | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Result:
        """Run COMMAND (an argv list, or a shell line) on the server; STDIN feeds it, unseen.

        ROOT runs it through `sudo -n` when not logged in as root. SHOWN is what a
        failure reports as the command, when COMMAND wraps it. Past TIMEOUT seconds
        the channel is closed and StepTimedOut raised (steps that must also be
        killed on the server are wrapped in `timeout` by their builders).
        """
        if isinstance(command, list):
            argv = ["sudo", "-n", *command] if root and self.user != "root" else command
            line = shlex.join(argv)
        else:
            line = command if not root or self.user == "root" else f"sudo -n sh -c {shlex.quote(command)}"
        shown = shown or (shell.shown(command) if isinstance(command, list) else command)
        raise_if_interrupted()
        self.round_trips += 1
        result = self._run_collecting(line, stdin, timeout, shown)
        if check and result.failed:
            raise RemoteCommandFailed(self.label, _shorten(shown), result.exited, result.stderr or result.stdout)
        return result

    def open_channel(self, line: str):
        """Start LINE on its own SSH channel and hand the channel back (for commands held open)."""
        raise_if_interrupted()
        self.round_trips += 1
        return self._exec(line)

    def _exec(self, line: str):
        self.conn.open()
        channel = self.conn.client.get_transport().open_session()
        channel.exec_command(line)
        return channel

    def _run_collecting(self, line: str, stdin: str | bytes | BinaryIO | None, timeout: float, shown: str) -> Result:
        """Run LINE straight over an SSH channel, reading stdout and stderr at the same time
        (a remote side that fills one while we wait on the other never blocks) and feeding
        STDIN from its own thread. Invoke's stdin pump polls and costs more than half a
        second a call; file contents and image streams go this way, never on a command line.
        """
        channel = self._exec(line)
        stdout, stderr = bytearray(), bytearray()
        readers = [threading.Thread(target=_drain, args=(channel.recv, stdout), daemon=True),
                   threading.Thread(target=_drain, args=(channel.recv_stderr, stderr), daemon=True)]
        feeder = threading.Thread(target=_feed, args=(channel, stdin), daemon=True)
        for thread in (*readers, feeder):
            thread.start()
        deadline = time.monotonic() + timeout
        try:
            for thread in (*readers, feeder):
                while thread.is_alive() and time.monotonic() < deadline:
                    thread.join(min(INTERRUPT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
                    raise_if_interrupted()
            if any(thread.is_alive() for thread in readers):
                raise StepTimedOut(self.label, _shorten(shown), timeout, stderr.decode(errors="replace"))
            exited = channel.recv_exit_status()
        finally:
            channel.close()
        return Result(stdout=stdout.decode(errors="replace"), stderr=stderr.decode(errors="replace"),
                      exited=exited, command=line)

    def stream(self, command: list[str], out: BinaryIO, err: BinaryIO) -> int | None:
        """Run COMMAND, copying its output to OUT and ERR as it comes, until it ends (its exit status)
        or Ctrl-C (None): then the channel closes, and the remote side sees its stdin end."""
        channel = self._exec(shlex.join(command))
        self.round_trips += 1
        try:
            while not (channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready()):
                if INTERRUPTED.is_set():
                    INTERRUPTED.clear()
                    return None
                select.select([channel], [], [], INTERRUPT_POLL_SECONDS)
                for ready, receive, into in ((channel.recv_ready, channel.recv, out),
                                             (channel.recv_stderr_ready, channel.recv_stderr, err)):
                    while ready():
                        into.write(receive(STREAM_CHUNK_BYTES))
                        into.flush()
            return channel.recv_exit_status()
        finally:
            channel.close()

    def interactive(self, command: list[str]) -> int:
        """Run COMMAND in a terminal on the server, wired to this one (keys, Ctrl-C, window size: Fabric's
        pty support); its exit status."""
        self.round_trips += 1
        # Ctrl-C belongs to the program on the server: Invoke's own handling sends it there (as \x03), where
        # slipway's tasks would otherwise take it for stopping slipway.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            # slipway's connections read no stdin by default (ssh.connection): this one is the keyboard.
            return self.conn.run(shlex.join(command), pty=True, warn=True, hide=False, in_stream=sys.stdin).exited
        finally:
            signal.signal(signal.SIGINT, previous)

    def close(self) -> None:
        self.conn.close()


def _drain(receive, into: bytearray) -> None:
    while chunk := receive(STREAM_CHUNK_BYTES):
        into.extend(chunk)


def _feed(channel, stdin: str | bytes | BinaryIO | None) -> None:
    """Send STDIN, then end it; the remote side may stop reading early (its own error is reported)."""
    try:
        if isinstance(stdin, str):
            channel.sendall(stdin.encode())
        elif isinstance(stdin, bytes):
            channel.sendall(stdin)
        elif stdin is not None:
            while chunk := stdin.read(STREAM_CHUNK_BYTES):
                channel.sendall(chunk)
        channel.shutdown_write()
    except (OSError, EOFError):
        pass


def _shorten(command: str) -> str:
    flat = " ".join(command.split())
    return flat if len(flat) <= COMMAND_SHOWN_CHARS else flat[: COMMAND_SHOWN_CHARS - 3] + "..."


class Step:
    """What one step did: set `changed` when it altered the server."""

    def __init__(self) -> None:
        self.changed = False
        self.detail = ""


class Reporter:
    """Prints `[host] step ... ok|changed|failed 0.42s` lines and a closing summary."""

    def __init__(self, label: str, out: TextIO = sys.stdout, dry_run: bool = False):
        self.label = label
        self.out = out
        self.changed_word = "would change" if dry_run else "changed"
        self.counts = {"ok": 0, self.changed_word: 0, "failed": 0}
        self.started = time.monotonic()
        # The name of the last step that failed, for the error that ends the run.
        self.failed_step: str | None = None

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        step = Step()
        began = time.monotonic()
        try:
            yield step
        except BaseException:
            self.failed_step = name
            self._line(name, "failed", began, step.detail)
            raise
        self._line(name, self.changed_word if step.changed else "ok", began, step.detail)

    def _line(self, name: str, outcome: str, began: float, detail: str) -> None:
        self.counts[outcome] += 1
        suffix = f"  {detail}" if detail else ""
        print(f"[{self.label}] {name:<44} {outcome:<12} {time.monotonic() - began:6.2f}s{suffix}", file=self.out, flush=True)

    def summary(self) -> str:
        total = time.monotonic() - self.started
        return (f"[{self.label}] {self.counts['ok']} ok, {self.counts[self.changed_word]} {self.changed_word}, "
                f"{self.counts['failed']} failed in {total:.2f}s")
