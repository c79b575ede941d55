"""Backup records, as backup.sh writes them (one JSON document a line) and backup.list reads them: their
order, the backup `latest` names, the list shown, and what prune.sh says it deleted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

GOOD = "ok"
# What restore and download mean by `latest` (the newest verified backup) and by this (the newest good one,
# verified or not); see choose. verify's `latest` is the newest good one (verify_backup.sh).
LATEST = "latest"
LATEST_UNVERIFIED = "latest-unverified"


@dataclass(frozen=True)
class Record:
    data: dict

    @property
    def id(self) -> str:
        return self.data.get("id", "?")

    @property
    def ok(self) -> bool:
        """The attempt finished: its dump, roles and record are in place."""
        return self.data.get("outcome") == GOOD

    @property
    def verification(self) -> str | None:
        """ok or failed: what backup.verify found; None: not verified."""
        verified = self.data.get("verified")
        return verified.get("outcome") if isinstance(verified, dict) else None

    @property
    def good(self) -> bool:
        """A backup to count on: finished, and its verify (if any) did not fail."""
        return self.ok and self.verification != "failed"

    @property
    def verified(self) -> bool:
        return self.ok and self.verification == GOOD

    @property
    def seq(self) -> int | None:
        """The backup's sequence number on its server; None for a record from before them."""
        value = self.data.get("seq")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def order(self) -> tuple:
        """Oldest first: by sequence number, records from before them first, in the order of their ids
        (an id is the server's clock, which can step back; prune.sh and verify_backup.sh sort the same way)."""
        return (1, self.seq, self.id) if self.seq is not None else (0, 0, self.id)

    @property
    def size(self) -> int:
        """The bytes its dumps take: the database's and the accessories'."""
        parts = self.data.get("accessories") or {}
        return self.data.get("size", 0) + sum(part.get("size", 0) for part in parts.values())

    @property
    def time(self) -> datetime | None:
        try:
            return datetime.strptime(self.id, "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
        except ValueError:
            return None


def parse_records(output: str) -> list[Record]:
    """Records, oldest first (see Record.order); a line that is not JSON (a record being replaced) is skipped."""
    records = []
    for line in output.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            records.append(Record(data))
    return sorted(records, key=lambda record: record.order)


def newest_good(records: list[Record]) -> Record | None:
    return next((record for record in reversed(records) if record.good), None)


def newest_verified(records: list[Record]) -> Record | None:
    return next((record for record in reversed(records) if record.verified), None)


@dataclass(frozen=True)
class Choice:
    record: Record | None
    note: str  # one line on why this backup, or a warning; "" when there is nothing to say


def choose(records: list[Record], wanted: str) -> Choice:
    """The backup WANTED names for restore and download (RECORDS oldest first).

    An id names that backup, if it finished (one whose verify failed too, with a warning). `latest` is the
    newest verified backup (the newest good one, with a line saying so, when none is verified yet) and
    `latest-unverified` the newest good one: neither is ever a backup whose verify failed. (verify_backup.sh
    resolves verify's own `latest` on the server, for its timer: the newest good backup.)"""
    newest = newest_good(records)
    if wanted == LATEST_UNVERIFIED:
        if not newest:
            return Choice(None, "")
        state = "verified" if newest.verified else "not verified yet"
        return Choice(newest, f"{wanted} is {newest.id}, the newest good backup ({state})")
    if wanted == LATEST:
        verified = newest_verified(records)
        if not verified:
            if not newest:
                return Choice(None, "")
            return Choice(newest, f"latest: no backup is verified yet, so it is the newest good one, {newest.id} "
                                  "(not verified)")
        newer = [r for r in records if r.good and r.order > verified.order]
        note = f"latest is {verified.id}, the newest verified backup (verified {verified.data['verified'].get('at', '?')})"
        if newer:
            note += (f"; {len(newer)} newer not verified yet, the newest {newer[-1].id} (name it, or "
                     f"{LATEST_UNVERIFIED}, for that one)")
        return Choice(verified, note)
    record = next((r for r in records if r.ok and r.id == wanted), None)
    if record and record.verification == "failed":
        detail = record.data["verified"].get("detail", "")
        return Choice(record, f"warning: backup {record.id} FAILED verification ({detail}); used because it was named")
    return Choice(record, "")


def age_hours(record: Record, now: datetime) -> float:
    return (now - record.time).total_seconds() / 3600 if record.time else float("inf")


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def offsite_state(offsite: dict | bool | None) -> str:
    if not offsite:
        return "no"
    if offsite.get("snapshot"):
        return f"yes ({offsite['snapshot']})"
    return "FAILED"


def verification_state(record: Record) -> str:
    """backup.list's VERIFIED column: ok or FAILED with when, `not yet`, or - for an attempt that did not finish."""
    if not record.ok:
        return "-"
    if record.verification is None:
        return "not yet"
    at = record.data["verified"].get("at", "")
    return f"{'ok' if record.verified else 'FAILED'} {at}".strip()


def format_records(records: list[Record], now: datetime) -> str:
    rows = [("SEQ", "ID", "TRIGGER", "SIZE", "VERIFIED", "OFFSITE", "OUTCOME")]
    for record in records:
        data = record.data
        verify_failed = record.ok and record.verification == "failed"
        rows.append((
            str(record.seq) if record.seq is not None else "-",
            record.id,
            data.get("trigger", "?"),
            human_size(record.size) if "size" in data else "-",
            verification_state(record),
            offsite_state(data.get("offsite")),
            data.get("outcome", "?") + (f": {data['error']}" if data.get("error") else "")
            + (f"; verify failed: {data['verified'].get('detail', '')}" if verify_failed else "")
            + (f"; offsite copy failed: {data['offsite']['error']}" if offsite_state(data.get("offsite")) == "FAILED" else ""),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in rows]
    newest = newest_good(records)
    lines.append(f"newest good backup: {newest.id}, {age_hours(newest, now):.1f} hours old" if newest
                 else "newest good backup: none")
    verified = newest_verified(records)
    if verified:
        lines.append(f"newest verified backup: {verified.id}, {age_hours(verified, now):.1f} hours old "
                     "(what backup.restore latest puts back)")
    else:
        lines.append("newest verified backup: none" + (f" (backup.restore latest puts back {newest.id}, not verified)"
                                                      if newest else ""))
    return "\n".join(lines)


@dataclass(frozen=True)
class Pruned:
    backups: list[tuple[str, int]]  # (id, dump size) of each backup deleted
    records: list[str]  # failed attempts' records deleted
    leftovers: list[str]  # what dead attempts left
    kept: int


def parse_prune(output: str) -> Pruned:
    """prune.sh's lines: `backup ID SIZE`, `record ID`, `leftover NAME`, `kept N`."""
    backups, records, leftovers, kept = [], [], [], 0
    for line in output.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "backup" and words[2].isdigit():
            backups.append((words[1], int(words[2])))
        elif len(words) == 2 and words[0] == "record":
            records.append(words[1])
        elif len(words) == 2 and words[0] == "leftover":
            leftovers.append(words[1])
        elif len(words) == 2 and words[0] == "kept" and words[1].isdigit():
            kept = int(words[1])
    return Pruned(backups, records, leftovers, kept)
