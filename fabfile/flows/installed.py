"""Files provision installs, checked before a flow relies on them."""

from __future__ import annotations

import hashlib

from ..commands.sequence import Outcome, Part
from ..config import Deployment
from ..errors import SlipwayError
from ..remote import Remote

FAILED_MARK = ": FAILED"


def check_part(wanted: dict[str, str]) -> Part:
    """Succeeds only if every file of WANTED (path -> text) is on the server as that text; else prints
    `PATH: FAILED` for each file that differs or is missing (so, in a sequence, nothing after it runs)."""
    sums = "".join(f"{hashlib.sha256(text.encode()).hexdigest()}  {path}\n" for path, text in wanted.items())
    return Part(["sha256sum", "--check", "--quiet", "--strict"], sums.encode())


def require_installed(remote: Remote, deployment: Deployment, wanted: dict[str, str], root: bool = False) -> None:
    """Files provision installs (path -> text) are on the server as this slipway and inventory make them."""
    part = check_part(wanted)
    checked = remote.run(part.argv, stdin=part.stdin, root=root, check=False)
    if checked.failed:
        raise stale(deployment, checked.stdout)


def require_checked(deployment: Deployment, outcome: Outcome, index: int) -> None:
    """A sequence's check_part at INDEX passed."""
    if outcome.failed == index:
        raise stale(deployment, outcome.output(index))


def stale(deployment: Deployment, printed: str) -> SlipwayError:
    """The error for what check_part PRINTED."""
    paths = [line.rsplit(FAILED_MARK, 1)[0] for line in printed.splitlines() if FAILED_MARK in line] or ["some files"]
    return SlipwayError(f"{deployment.name}: {', '.join(paths)} on the server differ from what this slipway and "
                        f"inventory make (or are missing); run `fab -H {deployment.name} provision` first")
