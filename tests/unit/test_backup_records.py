"""Backup records as backup.list reads them: their order, the backup `latest` names, the list shown; no
server."""

import json
import re
from datetime import datetime, timezone

from fabfile.commands import backup_records


def test_records_list_oldest_first_with_the_age_of_the_newest_good_one():
    lines = [
        json.dumps({"id": "20261122-030000", "trigger": "scheduled", "outcome": "ok", "size": 2_500_000,
                    "verified": {"outcome": "ok", "at": "2026-11-22T04:30:00Z"}}),
        "{half a record",
        json.dumps({"id": "20261123-030000", "trigger": "scheduled", "outcome": "failed", "error": "disk full"}),
        json.dumps({"id": "20261121-030000", "trigger": "manual", "outcome": "ok", "size": 900,
                    "accessories": {"redis": {"size": 1148}}}),
    ]
    records = backup_records.parse_records("\n".join(lines))
    assert [r.id for r in records] == ["20261121-030000", "20261122-030000", "20261123-030000"]
    now = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
    assert backup_records.newest_good(records).id == "20261122-030000"
    assert backup_records.age_hours(backup_records.newest_good(records), now) == 30
    text = backup_records.format_records(records, now)
    # SIZE: the bytes the backup's dumps take, its accessories' too.
    assert re.search(r"^-  +20261121-030000  manual  +2\.0 KB ", text, re.M), text
    assert "2.4 MB" in text and "failed: disk full" in text and "ok 2026-11-22T04:30:00Z" in text
    assert text.endswith("newest good backup: 20261122-030000, 30.0 hours old\n"
                         "newest verified backup: 20261122-030000, 30.0 hours old (what backup.restore latest puts back)")


def record_lines(*records):
    return "\n".join(json.dumps(record) for record in records)


# Oldest first by sequence; the two without one are from before sequence numbers (older, whatever their ids).
SEQUENCED = record_lines(
    {"id": "20261130-030000", "outcome": "ok", "size": 100},
    {"id": "20261101-030000", "seq": 2, "outcome": "ok", "size": 100, "verified": {"outcome": "ok", "at": "A"}},
    {"id": "20261102-030000", "seq": 3, "outcome": "ok", "size": 100,
     "verified": {"outcome": "failed", "at": "B", "detail": "row counts differ: public.items"}},
    {"id": "20261010-030000", "seq": 4, "outcome": "ok", "size": 100},  # the clock had stepped back
    {"id": "20261011-030000", "seq": 5, "outcome": "failed", "error": "disk full"},
    {"id": "20261125-030000", "outcome": "ok", "size": 100},
)


def test_records_go_by_sequence_number_and_the_list_shows_each_ones_verification():
    records = backup_records.parse_records(SEQUENCED)
    assert [r.id for r in records] == ["20261125-030000", "20261130-030000", "20261101-030000", "20261102-030000",
                                       "20261010-030000", "20261011-030000"]
    assert backup_records.newest_good(records).id == "20261010-030000"
    assert backup_records.newest_verified(records).id == "20261101-030000"
    text = backup_records.format_records(records, datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc))
    rows = {line.split()[1]: line for line in text.splitlines()[1:] if line[:1] in "-0123456789"}
    assert text.splitlines()[0].split() == ["SEQ", "ID", "TRIGGER", "SIZE", "VERIFIED", "OFFSITE", "OUTCOME"]
    assert rows["20261125-030000"].split()[0] == "-" and "not yet" in rows["20261125-030000"]
    assert " ok A " in rows["20261101-030000"]
    assert " FAILED B " in rows["20261102-030000"]
    assert rows["20261102-030000"].endswith("ok; verify failed: row counts differ: public.items")
    assert text.splitlines()[-1].startswith("newest verified backup: 20261101-030000, ")


def test_latest_is_the_newest_verified_backup_and_never_one_whose_verify_failed():
    records = backup_records.parse_records(SEQUENCED)
    latest = backup_records.choose(records, "latest")
    assert latest.record.id == "20261101-030000"
    assert latest.note == ("latest is 20261101-030000, the newest verified backup (verified A); 1 newer not verified "
                           "yet, the newest 20261010-030000 (name it, or latest-unverified, for that one)")
    assert backup_records.choose(records, "latest-unverified").record.id == "20261010-030000"
    named = backup_records.choose(records, "20261102-030000")
    assert named.record.id == "20261102-030000" and named.note.startswith("warning: backup 20261102-030000 FAILED")
    assert backup_records.choose(records, "20261011-030000").record is None  # a failed attempt restores nothing
    unverified = backup_records.parse_records(record_lines({"id": "20261101-030000", "seq": 1, "outcome": "ok"},
                                                   {"id": "20261102-030000", "seq": 2, "outcome": "ok"}))
    fallback = backup_records.choose(unverified, "latest")
    assert fallback.record.id == "20261102-030000"
    assert fallback.note == ("latest: no backup is verified yet, so it is the newest good one, 20261102-030000 "
                             "(not verified)")
    only_failed = backup_records.parse_records(record_lines({"id": "20261101-030000", "seq": 1, "outcome": "ok",
                                                     "verified": {"outcome": "failed"}}))
    assert backup_records.choose(only_failed, "latest").record is None
    assert backup_records.choose(only_failed, "latest-unverified").record is None
    assert backup_records.newest_good(only_failed) is None  # what status and backup.list --check count on
