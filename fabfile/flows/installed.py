"""Files provision installs, checked before a flow relies on them."""

from __future__ import annotations

import hashlib

from ..commands.sequence import Part
from ..config import Deployment
from ..errors import SlipwayError
from ..remote import Remote


def hashes_part(wanted: dict[str, str]) -> Part:
    """The files' SHA-256 sums; one missing is left out, and the command still succeeds."""
    return Part(["sh", "-c", 'sha256sum "$@" 2>/dev/null; true', "sha256sum", *wanted])


def require_installed(remote: Remote, deployment: Deployment, wanted: dict[str, str], root: bool = False) -> None:
    """Files provision installs (path -> text) are on the server as this slipway and inventory make them."""
    require_hashes(deployment, wanted, remote.run(hashes_part(wanted).argv, root=root).stdout)


def require_hashes(deployment: Deployment, wanted: dict[str, str], found: str) -> None:
    """FOUND, what hashes_part printed, names every file of WANTED as this slipway and inventory make it."""
    hashes = dict(reversed(line.split(None, 1)) for line in found.splitlines() if len(line.split(None, 1)) == 2)
    stale = [path for path, text in wanted.items() if hashes.get(path) != hashlib.sha256(text.encode()).hexdigest()]
    if stale:
        raise SlipwayError(f"{deployment.name}: {', '.join(stale)} on the server differ from what this slipway and "
                           f"inventory make (or are missing); run `fab -H {deployment.name} provision` first")
