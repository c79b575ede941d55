"""Remote command lines as argument lists, quoted once at the edge (as Kamal builds them).

Logic longer than a line lives in a packaged shell file under fabfile/scripts/
and gets every value as a positional argument: values never become program text.
"""

from __future__ import annotations

import shlex
from functools import cache
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"
# Past a step's limit, `timeout` sends TERM to its whole process group, then KILL after this.
KILL_AFTER_SECONDS = 10

Argv = list[str]


@cache
def script_text(name: str) -> str:
    return (SCRIPTS_DIR / f"{name}.sh").read_text()


def script(name: str, *args: object, uses: tuple[str, ...] = ()) -> Argv:
    """Run the packaged script NAME with ARGS as $1, $2, ...; $0 names it in process lists.

    USES names the lib_*.sh files whose functions go before it."""
    text = "".join(script_text(f"lib_{lib}") for lib in uses) + script_text(name)
    return ["sh", "-c", text, f"slipway-{name}", *map(str, args)]


def limited(seconds: int, argv: Argv) -> Argv:
    """ARGV killed (with everything it started) once it has run SECONDS."""
    return ["timeout", "-k", str(KILL_AFTER_SECONDS), str(seconds), *argv]


def line(argv: Argv) -> str:
    return shlex.join(argv)


def shown(argv: Argv) -> str:
    """ARGV as an operator reads it in an error: a packaged script by its name and arguments, a sequence
    (see sequence.py) as its commands joined by &&."""
    if argv[:2] == ["sh", "-c"] and len(argv) > 3:
        if argv[3] == "slipway-sequence":
            return " && ".join(shown(part) for part, _ in sequence_parts(argv[5:]))
        return shlex.join(argv[3:])
    return shlex.join(argv)


def sequence_parts(arguments: list[str]) -> list[tuple[Argv, int]]:
    """What scripts/sequence.sh's arguments after MARK say: each command and how many stdin bytes it reads."""
    parts = []
    while len(arguments) >= 2:
        count, size = int(arguments[0]), int(arguments[1])
        parts.append((arguments[2:2 + count], size))
        arguments = arguments[2 + count:]
    return parts
