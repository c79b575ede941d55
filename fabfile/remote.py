"""The thin layer that runs built commands on a server and reports each step."""

from __future__ import annotations

import shlex
import sys
import time
from contextlib import contextmanager
from typing import BinaryIO, Iterator, TextIO

from fabric import Connection
from invoke.runners import Result

from .errors import RemoteCommandFailed

COMMAND_SHOWN_CHARS = 200
STREAM_CHUNK_BYTES = 1 << 20


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

    def run(self, command: str, *, root: bool = False, stdin: str | bytes | BinaryIO | None = None,
            check: bool = True, shown: str | None = None) -> Result:
        """Run COMMAND (through `sudo -n` when ROOT and not logged in as root); STDIN feeds it, unseen.

        SHOWN is what a failure reports as the command, when COMMAND wraps it.
        """
        line = command if not root or self.user == "root" else f"sudo -n sh -c {shlex.quote(command)}"
        self.round_trips += 1
        if stdin is None:
            result = self.conn.run(line, hide=True, warn=True, in_stream=False)
        else:
            result = self._run_fed(line, stdin)
        if check and result.failed:
            raise RemoteCommandFailed(self.label, _shorten(shown or command), result.exited, result.stderr or result.stdout)
        return result

    def open_channel(self, line: str):
        """Start LINE on its own SSH channel and hand the channel back (for commands held open)."""
        self.round_trips += 1
        return self._exec(line)

    def _exec(self, line: str):
        self.conn.open()
        channel = self.conn.client.get_transport().open_session()
        channel.exec_command(line)
        return channel

    def _run_fed(self, line: str, stdin: str | bytes | BinaryIO) -> Result:
        """Run LINE with STDIN on its standard input, straight over the SSH channel.

        Invoke's stdin pump polls and costs more than half a second a call;
        file contents and image streams go this way, never on a command line.
        """
        channel = self._exec(line)
        try:
            if isinstance(stdin, str):
                channel.sendall(stdin.encode())
            elif isinstance(stdin, bytes):
                channel.sendall(stdin)
            else:
                while chunk := stdin.read(STREAM_CHUNK_BYTES):
                    channel.sendall(chunk)
            channel.shutdown_write()
            stdout = channel.makefile("rb").read().decode(errors="replace")
            stderr = channel.makefile_stderr("rb").read().decode(errors="replace")
            exited = channel.recv_exit_status()
        finally:
            channel.close()
        return Result(stdout=stdout, stderr=stderr, exited=exited, command=line)

    def close(self) -> None:
        self.conn.close()


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

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        step = Step()
        began = time.monotonic()
        try:
            yield step
        except BaseException:
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
