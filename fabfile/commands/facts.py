"""Reading the server in one round trip: facts, each a shell line and the section its output goes under.

Every reader of the server (provision's probe, the deploy state, status, doctor, `facts`, file dumps)
prints its sections under MARK lines, and `sections` is the one parser of what they print.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .shell import line, script

MARK = "@@slipway@@"


@dataclass(frozen=True)
class Fact:
    """One shell line and the section its output is read from; NAME None: the line prints its own sections
    (a packaged script given MARK). Its stderr is dropped: a fact that fails leaves its section empty."""

    name: str | None
    command: str


def gather_command(facts: Iterable[Fact]) -> str:
    """One shell line printing every fact under its section (scripts/gather.sh: the facts run at once)."""
    return line(script("gather", MARK, *(word for fact in facts for word in (fact.name or "-", fact.command))))


def sections(output: str) -> list[tuple[str, list[str]]]:
    """OUTPUT's sections in order: each MARK line's header and the non-empty lines under it, stripped."""
    found: list[tuple[str, list[str]]] = []
    for text in output.splitlines():
        if text.startswith(MARK + " "):
            found.append((text[len(MARK) + 1:].strip(), []))
        elif found and text.strip():
            found[-1][1].append(text.strip())
    return found


def by_name(output: str) -> dict[str, list[str]]:
    """OUTPUT's sections by header (a header printed twice has the lines of both)."""
    named: dict[str, list[str]] = {}
    for header, lines in sections(output):
        named.setdefault(header, []).extend(lines)
    return named
