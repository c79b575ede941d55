"""Files provision installs, checked before a flow relies on them."""

from __future__ import annotations

import hashlib

from ..config import Deployment
from ..errors import SlipwayError
from ..remote import Remote


def require_installed(remote: Remote, deployment: Deployment, wanted: dict[str, str], root: bool = False) -> None:
    """Files provision installs (path -> text) are on the server as this slipway and inventory make them."""
    found = remote.run(["sha256sum", *wanted], root=root, check=False).stdout
    hashes = dict(reversed(line.split(None, 1)) for line in found.splitlines() if len(line.split(None, 1)) == 2)
    stale = [path for path, text in wanted.items() if hashes.get(path) != hashlib.sha256(text.encode()).hexdigest()]
    if stale:
        raise SlipwayError(f"{deployment.name}: {', '.join(stale)} on the server differ from what this slipway and "
                           f"inventory make (or are missing); run `fab -H {deployment.name} provision` first")
