"""A Remote whose transport replays scripted outputs, for driving a flow's failure branches without a server.

Everything above the transport is the real Remote (sudo wrapping, `check`, the error raised); only the
SSH channel is replaced. Every command is recorded as an operator reads it (`shown`: a packaged script
by its `slipway-NAME` and arguments), with what was fed to its stdin.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

from invoke.runners import Result

from fabfile.commands import shell
from fabfile.commands.facts import MARK
from fabfile.commands.layout import Layout
from fabfile.remote import Remote


SEQUENCE = "slipway-sequence"


@dataclass
class Rule:
    pattern: str
    stdout: str = ""
    stderr: str = ""
    exited: int = 0
    raises: BaseException | None = None
    once: bool = False
    # Called with the command as shown; what it returns is the output instead of STDOUT.
    answer: Callable[[str], str] | None = None


@dataclass
class Call:
    shown: str
    stdin: str


class ScriptedRemote(Remote):
    """Commands matching a rule's regex get its output (the first match wins; a `once` rule is used up);
    any other command succeeds with no output."""

    def __init__(self, label: str = "prod"):
        super().__init__(SimpleNamespace(user="deploy", close=lambda: None), label)
        self.rules: list[Rule] = []
        self.calls: list[Call] = []

    def on(self, pattern: str, stdout: str = "", **kwargs) -> ScriptedRemote:
        self.rules.append(Rule(pattern, stdout, **kwargs))
        return self

    def first(self, pattern: str, stdout: str = "", **kwargs) -> ScriptedRemote:
        """A rule that wins over those given before (for a later answer that differs from the first)."""
        self.rules.insert(0, Rule(pattern, stdout, **kwargs))
        return self

    def ran(self, pattern: str) -> list[Call]:
        return [call for call in self.calls if re.search(pattern, call.shown)]

    def _run_collecting(self, line, stdin, timeout, shown) -> Result:
        fed = stdin if isinstance(stdin, bytes) else (stdin or "").encode()
        argv = shlex.split(line)
        if SEQUENCE in argv:
            return self._sequence(line, argv[argv.index(SEQUENCE) + 2:], fed)
        stdout, stderr, exited = self._replay(shown, fed)
        return Result(stdout=stdout, stderr=stderr, exited=exited, command=line)

    def _sequence(self, line: str, arguments: list[str], fed: bytes) -> Result:
        """Each part of a sequence (scripts/sequence.sh) replayed as its own command, until one fails."""
        stdout, stderr = "", ""
        for number, (part, size) in enumerate(shell.sequence_parts(arguments), start=1):
            out, err, exited = self._replay(shell.shown(part), fed[:size])
            fed, stdout, stderr = fed[size:], stdout + out, stderr + err
            if exited:
                return Result(stdout=stdout, stderr=stderr, exited=exited, command=line)
            stdout += f"\n{MARK} {number}\n"
        return Result(stdout=stdout, stderr=stderr, exited=0, command=line)

    def _replay(self, shown: str, fed: bytes) -> tuple[str, str, int]:
        self.calls.append(Call(shown, fed.decode(errors="replace")))
        for rule in self.rules:
            if re.search(rule.pattern, shown):
                if rule.once:
                    self.rules.remove(rule)
                if rule.raises is not None:
                    raise rule.raises
                stdout = rule.answer(shown) if rule.answer else rule.stdout
                return stdout, rule.stderr, rule.exited
        return "", "", 0

    def _exec(self, line):
        """The deploy lock's channel: the lock is taken at once (recorded as lock.sh's own name and arguments)."""
        self.calls.append(Call(shell.shown(shlex.split(line)), ""))
        return LockChannel()

    def audit_events(self) -> list[dict]:
        """Every audit line written, in order: the lock's first (lock.sh's EVENT argument), then append_audit's."""
        events = [json.loads(shlex.split(call.shown)[-1]) for call in self.ran(r"^slipway-lock ")
                  if len(shlex.split(call.shown)) == 10]
        return events + [json.loads(call.stdin) for call in self.ran(r"^slipway-append_audit ")]


class LockChannel:
    def makefile(self, mode):
        return io.StringIO("LOCKED\n")

    def shutdown_write(self):
        pass

    def close(self):
        pass


@dataclass
class Server:
    """What state.sh would print for a server: releases (id -> outcome, version), the serving one and its slot."""

    serving: str = ""
    slot: str = "blue"
    releases: dict[str, dict] = field(default_factory=dict)
    db_running: bool = True
    # Release ids with containers (the serving one's are added).
    projects: list[str] = field(default_factory=list)
    # The serving slot has its nginx groups (a slipway before fixed addresses wrote none).
    groups: bool = True
    layout_record: str = ""
    # The accessories section's lines (see commands/accessories.py's FACT_FORMAT).
    accessories: list[str] = field(default_factory=list)

    def release(self, release_id: str, outcome: str = "active", version: str = "v1", **extra) -> Server:
        self.releases[release_id] = {"id": release_id, "outcome": outcome, "version": version,
                                     "time": f"{release_id[:4]}-{release_id[4:6]}-{release_id[6:8]}T00:00:00+00:00",
                                     "images": {"api": {"ref": f"demo/api:{version}", "id": f"sha256:{version}"}},
                                     "layout": 3, **extra}
        return self

    def output(self, layout: Layout) -> str:
        projects = sorted({*self.projects, *([self.serving] if self.serving else [])})
        sections = {
            "base": ["present"],
            "current": [f"{layout.releases}/{self.serving}"] if self.serving else [],
            "serving": [f"{self.slot} {self.serving}"] if self.serving else [],
            "releases": [json.dumps(record) for record in self.releases.values()],
            "projects": [f"{layout.app}-{rid} {layout.app}-{rid}-api-1" for rid in projects],
            "nginx": ["true"],
            "db": ["true" if self.db_running else "false"],
            "slot confs": [layout.slot_conf(self.slot)] if self.groups else [],
            "layout": [self.layout_record] if self.layout_record else [],
            "accessories": self.accessories,
        }
        return "".join(f"{MARK} {name}\n" + "".join(f"{line}\n" for line in lines) for name, lines in sections.items())
