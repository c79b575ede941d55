"""Upgrading slipway: the version of the on-server layout each slipway lays out, recorded on the server, so
that every later slipway migrates a server from each earlier layout to its own and refuses one that a
newer slipway laid out.

A change of the layout on the server adds one entry to CHANGES (what a server gets on its next deploy, as
the dry run says it), the steps that bring an older server there, and one lab test from the layout before.
"""

from __future__ import annotations

from ..errors import SlipwayError

LAYOUT = 3
# A release's record names the layout it was made at from layout 3 on; one without was made at 2 or before.
UNRECORDED = 2
# The first layout whose releases' nginx config reaches the containers at fixed addresses, not by Docker's DNS.
FIXED_ADDRESSES = 3
CHANGES = {
    2: "the database reads its password from a file; a database container made before keeps its own settings "
       "(its image still compared) until a deploy with --restart-db",
    3: "nginx reaches the web containers at fixed addresses on the slot network, through each slot's upstream "
       "groups, instead of Docker's DNS; the serving release's containers join it first; the layout recorded",
}


def found_layout(record: str, db_reads_password_file: bool | None) -> int:
    """The server's layout: its record, or (slipway wrote none before layout 3) 1 when its database container
    has no password file, else 2."""
    if record.strip().isdigit():
        return int(record)
    return 1 if db_reads_password_file is False else 2


def migrations(found: int) -> list[str]:
    """What a server at layout FOUND gets on its next deploy, a line per layout."""
    return [f"layout {version - 1} -> {version}: {CHANGES[version]}" for version in range(found + 1, LAYOUT + 1)]


def refuse_newer(found: int, label: str) -> None:
    if found > LAYOUT:
        raise SlipwayError(f"{label}: this server was laid out by a newer slipway (layout {found}; this slipway's "
                           f"is {LAYOUT}): nothing was changed; upgrade slipway to work on it")


def layout_record() -> bytes:
    return f"{LAYOUT}\n".encode()
