"""Backups, as data: where their parts live on the server, the files provision
installs for them, the command lines the tasks run, and how records read.

The scheduled run (a systemd timer) and `backup` run the same installed
script with the same configuration file, so the schedule never depends on
the operator's machine.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone

from ..config import Inventory
from .layout import layout_of
from .shell import SCRIPTS_DIR, Argv

INSTALL_DIR = "/usr/local/lib/slipway"
INSTALLED_SCRIPTS = ("backup.sh", "retention.sh", "verify_backup.sh", "restore.sh", "count_rows.sql")
NO_SUCH_BACKUP_EXIT = 2
FAILED_VERIFICATION_EXIT = 3
# How long a backup, verify or restore waits for another one to finish.
LOCK_WAIT_SECONDS = 600
VERIFY_READY_SECONDS = 120
GOOD = "ok"


@dataclass(frozen=True)
class BackupPaths:
    app: str
    base: str

    @property
    def folder(self) -> str:
        return f"{self.base}/backups"

    @property
    def conf(self) -> str:
        return f"/etc/slipway/{self.app}/backup.conf"

    def unit_name(self, kind: str, suffix: str) -> str:
        """KIND backup or backup-verify; SUFFIX service or timer."""
        return f"slipway-{self.app}-{kind}.{suffix}"

    def unit(self, kind: str, suffix: str) -> str:
        return f"/etc/systemd/system/{self.unit_name(kind, suffix)}"

    @property
    def verify_container(self) -> str:
        return f"{self.app}-backup-verify"

    def dump(self, backup_id: str) -> str:
        return f"{self.folder}/{backup_id}.dump"

    def globals(self, backup_id: str) -> str:
        return f"{self.folder}/{backup_id}.globals.sql"

    @property
    def uploads(self) -> str:
        return f"{self.folder}/.uploads"


def paths_of(inventory: Inventory) -> BackupPaths:
    return BackupPaths(inventory.app.name, str(inventory.app.base_dir))


def conf_text(inventory: Inventory) -> str:
    """backup.conf: KEY=VALUE lines the scripts read with sed (never sourced: values stay data)."""
    layout, paths, database, backup = layout_of(inventory), paths_of(inventory), inventory.database, inventory.backup
    settings = {
        "BACKUPS_DIR": paths.folder,
        "DB_CONTAINER": layout.db_container,
        "DB_USER": database.user,
        "DB_NAME": database.name,
        "KEEP_LAST": backup.keep_last,
        "KEEP_DAILY": backup.keep_daily,
        "KEEP_WEEKLY": backup.keep_weekly,
        "KEEP_MONTHLY": backup.keep_monthly,
        "LOCK_WAIT_SECONDS": LOCK_WAIT_SECONDS,
        "VERIFY_CONTAINER": paths.verify_container,
        "VERIFY_READY_SECONDS": VERIFY_READY_SECONDS,
    }
    header = f"# Managed by slipway provision for {inventory.app.name}; read by {INSTALL_DIR}/*.sh.\n"
    return header + "".join(f"{key}={value}\n" for key, value in settings.items())


def installed_script(name: str) -> str:
    return f"{INSTALL_DIR}/{name}"


def script_texts() -> dict[str, str]:
    return {f"{INSTALL_DIR}/{name}": (SCRIPTS_DIR / name).read_text() for name in INSTALLED_SCRIPTS}


def backup_argv(paths: BackupPaths, trigger: str) -> Argv:
    return ["sh", installed_script("backup.sh"), paths.conf, trigger]


def verify_argv(paths: BackupPaths, backup_id: str) -> Argv:
    return ["sh", installed_script("verify_backup.sh"), paths.conf, backup_id]


def restore_argv(paths: BackupPaths, dump: str, globals_file: str) -> Argv:
    return ["sh", installed_script("restore.sh"), paths.conf, dump, globals_file]


def unit_contexts(inventory: Inventory) -> dict[str, dict]:
    """Unit file path -> template context, for the backup timer and (when scheduled) the verify timer."""
    paths, backup = paths_of(inventory), inventory.backup
    user = inventory.server.deploy_user
    jobs = {"backup": (backup.schedule, backup_argv(paths, "scheduled"), backup.timeout_seconds)}
    if backup.verify_schedule:
        jobs["backup-verify"] = (backup.verify_schedule, verify_argv(paths, "latest"), backup.timeout_seconds)
    contexts = {}
    for kind, (schedule, argv, seconds) in jobs.items():
        what = "backup" if kind == "backup" else "backup verification"
        contexts[paths.unit(kind, "service")] = {"template": "backup.service", "app": inventory.app.name, "kind": what,
                                                 "user": user, "command": shlex.join(argv), "timeout_seconds": seconds}
        contexts[paths.unit(kind, "timer")] = {"template": "backup.timer", "app": inventory.app.name, "kind": what,
                                               "schedule": schedule}
    return contexts


def timers(inventory: Inventory) -> list[str]:
    paths = paths_of(inventory)
    kinds = ["backup", "backup-verify"] if inventory.backup.verify_schedule else ["backup"]
    return [paths.unit_name(kind, "timer") for kind in kinds]


def list_command(paths: BackupPaths) -> Argv:
    """Every record, one JSON document per line (records are written on one line)."""
    return ["sh", "-c", 'for f in "$1"/*.json; do [ -e "$f" ] && cat "$f"; done; true', "slipway-backups", paths.folder]


@dataclass(frozen=True)
class Record:
    data: dict

    @property
    def id(self) -> str:
        return self.data.get("id", "?")

    @property
    def good(self) -> bool:
        return self.data.get("outcome") == GOOD

    @property
    def time(self) -> datetime | None:
        try:
            return datetime.strptime(self.id, "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
        except ValueError:
            return None


def parse_records(output: str) -> list[Record]:
    """Records, oldest first; a line that is not JSON (a record being replaced) is skipped."""
    records = []
    for line in output.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            records.append(Record(data))
    return sorted(records, key=lambda record: record.id)


def newest_good(records: list[Record]) -> Record | None:
    return next((record for record in reversed(records) if record.good), None)


def age_hours(record: Record, now: datetime) -> float:
    return (now - record.time).total_seconds() / 3600 if record.time else float("inf")


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def format_records(records: list[Record], now: datetime) -> str:
    rows = [("ID", "TRIGGER", "SIZE", "VERIFIED", "OFFSITE", "OUTCOME")]
    for record in records:
        data = record.data
        verified = data.get("verified") or {}
        rows.append((
            record.id,
            data.get("trigger", "?"),
            human_size(data["size"]) if "size" in data else "-",
            f"{verified.get('outcome')} {verified.get('at', '')}" if verified else "no",
            "yes" if data.get("offsite") else "no",
            data.get("outcome", "?") + (f": {data['error']}" if data.get("error") else ""),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in rows]
    newest = newest_good(records)
    lines.append(f"newest good backup: {newest.id}, {age_hours(newest, now):.1f} hours old" if newest
                 else "newest good backup: none")
    return "\n".join(lines)
