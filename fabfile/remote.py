"""The thin layer that runs built commands on a server and reports each step."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

from fabric import Connection
from invoke.runners import Result

from .errors import RemoteCommandFailed

COMMAND_SHOWN_CHARS = 200


class Remote:
    """One server, reached over one SSH connection; every failure names host, command and stderr."""

    def __init__(self, conn: Connection, label: str):
        self.conn = conn
        self.label = label

    def run(self, command: str, *, check: bool = True) -> Result:
        result = self.conn.run(command, hide=True, warn=True, in_stream=False)
        if check and result.failed:
            raise RemoteCommandFailed(self.label, _shorten(command), result.exited, result.stderr or result.stdout)
        return result

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

    def __init__(self, label: str, out: TextIO = sys.stdout):
        self.label = label
        self.out = out
        self.counts = {"ok": 0, "changed": 0, "failed": 0}
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
        self._line(name, "changed" if step.changed else "ok", began, step.detail)

    def _line(self, name: str, outcome: str, began: float, detail: str) -> None:
        self.counts[outcome] += 1
        suffix = f"  {detail}" if detail else ""
        print(f"[{self.label}] {name:<40} {outcome:<7} {time.monotonic() - began:6.2f}s{suffix}", file=self.out, flush=True)

    def summary(self) -> str:
        total = time.monotonic() - self.started
        return (f"[{self.label}] {self.counts['ok']} ok, {self.counts['changed']} changed, "
                f"{self.counts['failed']} failed in {total:.2f}s")
