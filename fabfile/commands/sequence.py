"""Several commands in one round trip (scripts/sequence.sh), each with its own stdin, stopping at the first
that fails; and what each printed."""

from __future__ import annotations

from dataclasses import dataclass

from .facts import MARK
from .shell import Argv, script


@dataclass(frozen=True)
class Part:
    argv: Argv
    stdin: bytes = b""


def sequence_command(parts: list[Part]) -> tuple[Argv, bytes]:
    """One command running PARTS in order, and the stdin that feeds each its own."""
    arguments: list[object] = []
    for part in parts:
        arguments += [len(part.argv), len(part.stdin), *part.argv]
    return script("sequence", MARK, *arguments), b"".join(part.stdin for part in parts)


@dataclass(frozen=True)
class Outcome:
    """What a sequence printed: OUTPUTS, one per part that ran (the failed one's last); FAILED, the index
    of the part that failed (None: all succeeded) and EXITED, its exit status."""

    outputs: list[str]
    failed: int | None
    exited: int
    stderr: str

    def output(self, index: int) -> str:
        return self.outputs[index] if index < len(self.outputs) else ""

    def succeeded(self, index: int) -> bool:
        return self.failed is None or index < self.failed


def read_outcome(stdout: str, stderr: str, exited: int, count: int) -> Outcome:
    outputs = []
    for number in range(1, count + 1):
        before, found, stdout = stdout.partition(f"\n{MARK} {number}\n")
        outputs.append(before)
        if not found:
            break
    else:
        return Outcome(outputs, None if exited == 0 else count, exited, stderr)
    return Outcome(outputs, len(outputs) - 1, exited, stderr)
