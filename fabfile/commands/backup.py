"""Backups, as data: where their parts live on the server, the files provision
installs for them, the command lines the tasks run, and how records read.

The scheduled run (a systemd timer) and `backup` run the same installed
script with the same configuration file, so the schedule never depends on
the operator's machine.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from datetime import datetime, timezone
from urllib.parse import quote

from ..config import Inventory
from .layout import layout_of
from .shell import SCRIPTS_DIR, Argv

INSTALL_DIR = "/usr/local/lib/slipway"
# The functions the installed scripts share (settings, the time, records): each sources it from beside itself.
# First in every list of installed scripts, so that provision writes it before the scripts that need it.
LIBRARY = "lib_installed.sh"
INSTALLED_SCRIPTS = (LIBRARY, "backup.sh", "retention.sh", "prune.sh", "verify_backup.sh", "restore.sh",
                     "count_rows.sql", "offsite.sh", "metrics.sh")
NO_SUCH_BACKUP_EXIT = 2
FAILED_VERIFICATION_EXIT = 3
# verify refused before restoring anything: Docker's data root has not the room for the restored copy.
NO_SPACE_EXIT = 5
# What verify finds room for on Docker's data root (where the throwaway database's volume lives, beside the
# running database): the restored size and a quarter more (WAL, index builds' sort files), plus 1 GB that stays
# free for the running database. The restored size is the database's size when the backup was taken; a record
# from before slipway recorded that counts as five times its dump (a -Fc dump of the benchmark's database is a
# third of it, and indexes are rebuilt on restore).
VERIFY_SPACE_PERCENT = 125
VERIFY_RESERVE_MB = 1024
VERIFY_DUMP_EXPANSION = 5
# The backup itself is good and in place on the server; its offsite copy failed.
OFFSITE_FAILED_EXIT = 4
# The restic packages every supported system has (0.12 on Ubuntu 22.04, 0.14 on Debian 12); ssh for SFTP.
OFFSITE_PACKAGES = ("restic", "openssh-client")
# How long a backup, verify or restore waits for another one to finish.
LOCK_WAIT_SECONDS = 600
VERIFY_READY_SECONDS = 120
GOOD = "ok"
# What restore and download mean by `latest` (the newest verified backup) and by this (the newest good one,
# verified or not); see choose. verify's `latest` is the newest good one (verify_backup.sh).
LATEST = "latest"
LATEST_UNVERIFIED = "latest-unverified"
# Where `backup.download` puts copies by default, in the project (.gitignore covers `.slipway/`).
DOWNLOADS_DIR = ".slipway/backups"


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

    @property
    def offsite_key(self) -> str:
        """The server's own SSH key for the backup host (made on the server; only its public half leaves)."""
        return f"/etc/slipway/{self.app}/offsite_ed25519"

    @property
    def offsite_known_hosts(self) -> str:
        return f"/etc/slipway/{self.app}/offsite_known_hosts"

    @property
    def offsite_ca(self) -> str:
        """The CA bundle a REST repository's certificate is checked with (a private CA's certificate: public)."""
        return f"/etc/slipway/{self.app}/offsite-ca.pem"

    @property
    def secrets(self) -> str:
        """The offsite repository's password and keys (a REST repository's URL with its credentials), and the
        ping URL: 0600, the deploy user's."""
        return f"/etc/slipway/{self.app}/backup.env"

    @property
    def offsite_host(self) -> str:
        """restic's --host for this app's snapshots: the same on a rebuilt server, so it finds them."""
        return f"slipway-{self.app}"


def paths_of(inventory: Inventory) -> BackupPaths:
    return BackupPaths(inventory.app.name, str(inventory.app.base_dir))


def conf_text(inventory: Inventory, inventory_name: str | None = None) -> str:
    """backup.conf: KEY=VALUE lines the scripts read with sed (never sourced: values stay data).

    INVENTORY_NAME (the inventory's file name, prod for inventories/prod.yaml) tags the offsite snapshots,
    so that inventories sharing a repository and an app name keep apart."""
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
        "VERIFY_SPACE_PERCENT": VERIFY_SPACE_PERCENT,
        "VERIFY_RESERVE_MB": VERIFY_RESERVE_MB,
        "VERIFY_DUMP_EXPANSION": VERIFY_DUMP_EXPANSION,
        "OFFSITE_FAILED_EXIT": OFFSITE_FAILED_EXIT,
        "SECRETS_FILE": paths.secrets,
        "APP": inventory.app.name,
        "METRICS_DIR": backup.metrics_dir,
        **offsite_settings(inventory, inventory_name),
    }
    header = f"# Managed by slipway provision for {inventory.app.name}; read by {INSTALL_DIR}/*.sh.\n"
    return header + "".join(f"{key}={value}\n" for key, value in settings.items())


def offsite_settings(inventory: Inventory, inventory_name: str | None = None) -> dict[str, object]:
    """backup.conf's offsite keys: none without an offsite repository."""
    offsite, paths = inventory.backup.offsite, paths_of(inventory)
    if not offsite:
        return {}
    settings: dict[str, object] = {"OFFSITE_REPOSITORY": repository(inventory), "OFFSITE_HOST": paths.offsite_host,
                                   "OFFSITE_CHECK_SUBSET": offsite.check_subset}
    if inventory_name:
        settings["OFFSITE_TAG"] = offsite_tag(inventory_name)
    if offsite.sftp:
        settings |= {"OFFSITE_SSH": f"{offsite.sftp.user}@{offsite.sftp.host}", "OFFSITE_SSH_PORT": offsite.sftp.port,
                     "OFFSITE_SSH_KEY": paths.offsite_key, "OFFSITE_KNOWN_HOSTS": paths.offsite_known_hosts}
    if offsite.rest and offsite.rest.ca_bundle:
        settings["OFFSITE_CACERT"] = paths.offsite_ca
    if offsite.append_only:
        # offsite.sh never forgets there: backup.prune-offsite does, from the operator's machine.
        settings["OFFSITE_APPEND_ONLY"] = "yes"
    return settings


def offsite_tag(inventory_name: str) -> str:
    """The restic tag of an inventory's snapshots (an inventory name is lowercase letters, digits, - and _)."""
    return f"inventory-{inventory_name}"


def repository(inventory: Inventory) -> str:
    """The repository as restic names it, without credentials (what backup.conf holds and output shows)."""
    offsite = inventory.backup.offsite
    if offsite.sftp:
        return f"sftp:{offsite.sftp.user}@{offsite.sftp.host}:{offsite.sftp.path}"
    if offsite.rest:
        return f"rest:{offsite.rest.url.rstrip('/')}/"
    return f"s3:{offsite.s3.endpoint}/{offsite.s3.bucket}/{offsite.s3.prefix}"


def rest_repository(url: str, user: str, password: str) -> str:
    """restic's location of a REST repository with its credentials (percent-encoded: a password may hold any
    character). restic 0.12 and 0.14 read them nowhere else (RESTIC_REST_USERNAME came with 0.16.1), so this
    goes into RESTIC_REPOSITORY in restic's environment, never onto a command line; restic shows it with the
    password as ***."""
    scheme, rest = url.rstrip("/").split("://", 1)
    return f"rest:{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}/"


def offsite_files(inventory: Inventory) -> dict[str, str]:
    """The offsite repository's files provision installs beside backup.conf (nothing secret): the SFTP
    backup host's pinned key, or the CA bundle a REST server's certificate is checked with."""
    offsite, paths = inventory.backup.offsite, paths_of(inventory)
    if offsite and offsite.sftp:
        return {paths.offsite_known_hosts: offsite_known_hosts_text(inventory)}
    if offsite and offsite.rest and offsite.rest.ca_bundle:
        return {paths.offsite_ca: offsite.rest.ca_bundle.read_text()}
    return {}


def offsite_known_hosts_text(inventory: Inventory) -> str:
    """The backup host's key, pinned from the inventory: never learnt on first connection."""
    sftp = inventory.backup.offsite.sftp
    name = sftp.host if sftp.port == 22 else f"[{sftp.host}]:{sftp.port}"
    return f"{name} {sftp.host_key}\n"


def secret_names(inventory: Inventory) -> dict[str, str]:
    """What the backup scripts need from secrets: their variable -> the secret's name."""
    backup, names = inventory.backup, {}
    if backup.offsite:
        names["RESTIC_PASSWORD"] = backup.offsite.password_secret
    if backup.offsite and backup.offsite.s3:
        names |= {"AWS_ACCESS_KEY_ID": backup.offsite.s3.access_key_secret,
                  "AWS_SECRET_ACCESS_KEY": backup.offsite.s3.secret_key_secret}
    if backup.ping_url_secret:
        names["PING_URL"] = backup.ping_url_secret
    return names


def secrets_text(inventory: Inventory, secret: Callable[[str], str]) -> str | None:
    """KEY=VALUE lines the scripts read with sed (never sourced); None when no secret is needed. A REST
    repository's URL with the server's credentials is RESTIC_REPOSITORY there (see rest_repository)."""
    values = {key: secret(name) for key, name in secret_names(inventory).items()}
    offsite = inventory.backup.offsite
    if offsite and offsite.rest:
        values["RESTIC_REPOSITORY"] = rest_repository(offsite.rest.url, offsite.rest.user,
                                                      secret(offsite.rest.password_secret))
    return "".join(f"{key}={value}\n" for key, value in values.items()) if values else None


def offsite_argv(paths: BackupPaths, action: str, *args: str) -> Argv:
    return ["sh", installed_script("offsite.sh"), paths.conf, action, *args]


def metrics_argv(paths: BackupPaths) -> Argv:
    return ["sh", installed_script("metrics.sh"), paths.conf]


def installed_script(name: str) -> str:
    return f"{INSTALL_DIR}/{name}"


def script_texts() -> dict[str, str]:
    return {f"{INSTALL_DIR}/{name}": (SCRIPTS_DIR / name).read_text() for name in INSTALLED_SCRIPTS}


def backup_argv(paths: BackupPaths, trigger: str) -> Argv:
    return ["sh", installed_script("backup.sh"), paths.conf, trigger]


def verify_argv(paths: BackupPaths, backup_id: str) -> Argv:
    return ["sh", installed_script("verify_backup.sh"), paths.conf, backup_id]


def prune_argv(paths: BackupPaths, dry_run: bool = False) -> Argv:
    return ["sh", installed_script("prune.sh"), paths.conf, *(["--dry-run"] if dry_run else [])]


def restore_argv(paths: BackupPaths, dump: str, globals_file: str) -> Argv:
    return ["sh", installed_script("restore.sh"), paths.conf, dump, globals_file]


def unit_contexts(inventory: Inventory) -> dict[str, dict]:
    """Unit file path -> template context, for the backup timer and (when scheduled) the verify timer."""
    paths, backup = paths_of(inventory), inventory.backup
    user = inventory.server.deploy_user
    jobs = {"backup": (backup.schedule, backup_argv(paths, "scheduled"), backup.timeout_seconds)}
    if backup.verify_schedule:
        jobs["backup-verify"] = (backup.verify_schedule, verify_argv(paths, "latest"), backup.timeout_seconds)
    if backup.offsite and backup.offsite.check_schedule:
        jobs["backup-check"] = (backup.offsite.check_schedule, offsite_argv(paths, "check"), backup.timeout_seconds)
    contexts = {}
    for kind, (schedule, argv, seconds) in jobs.items():
        what = UNIT_PURPOSES[kind]
        # The metrics file is root's to write (node_exporter's folder is not the deploy user's): `+`.
        after = shlex.join(metrics_argv(paths)) if kind == "backup" else ""
        contexts[paths.unit(kind, "service")] = {"template": "backup.service", "app": inventory.app.name, "kind": what,
                                                 "user": user, "command": shlex.join(argv), "timeout_seconds": seconds,
                                                 "as_root_after": after}
        contexts[paths.unit(kind, "timer")] = {"template": "backup.timer", "app": inventory.app.name, "kind": what,
                                               "schedule": schedule}
    return contexts


UNIT_PURPOSES = {"backup": "backup", "backup-verify": "backup verification",
                 "backup-check": "offsite backup check (restic check --read-data-subset)"}


def timers(inventory: Inventory) -> list[str]:
    return [path.rsplit("/", 1)[1] for path in unit_contexts(inventory) if path.endswith(".timer")]


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
            human_size(data["size"]) if "size" in data else "-",
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


# --- the offsite repository from the operator's machine: backup.prune-offsite -------------------------------

# What of the operator's own environment restic would read instead of (or beside) what slipway hands it.
RESTIC_ENVIRONMENT = ("RESTIC_REPOSITORY", "RESTIC_REPOSITORY_FILE", "RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE",
                      "RESTIC_PASSWORD_COMMAND", "RESTIC_KEY_HINT", "RESTIC_REST_USERNAME", "RESTIC_REST_PASSWORD",
                      "RESTIC_CACERT", "RESTIC_HOST", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                      "AWS_SESSION_TOKEN")


def admin_secrets(inventory: Inventory) -> list[tuple[str, str]]:
    """(key path in the inventory, secret name) of every secret backup.prune-offsite reads, on the operator's
    machine only: the repository's password and the credentials that may delete there (config.load does not ask
    for the admin_* ones, so a machine that only deploys need not hold them)."""
    offsite = inventory.backup.offsite
    where = "backup.offsite"
    names = [(f"{where}.password_secret", offsite.password_secret)]
    if offsite.rest and offsite.rest.admin_password_secret:
        names.append((f"{where}.rest.admin_password_secret", offsite.rest.admin_password_secret))
    elif offsite.rest:
        names.append((f"{where}.rest.password_secret", offsite.rest.password_secret))
    if offsite.s3 and offsite.s3.admin_access_key_secret:
        names += [(f"{where}.s3.admin_access_key_secret", offsite.s3.admin_access_key_secret),
                  (f"{where}.s3.admin_secret_key_secret", offsite.s3.admin_secret_key_secret)]
    elif offsite.s3:
        names += [(f"{where}.s3.access_key_secret", offsite.s3.access_key_secret),
                  (f"{where}.s3.secret_key_secret", offsite.s3.secret_key_secret)]
    return names


@dataclass(frozen=True)
class AdminAccess:
    """restic on the operator's machine, reaching the offsite repository with rights to delete there."""

    where: str  # the repository as shown: no credentials
    options: tuple[str, ...]  # restic's global options: no secret among them
    environment: dict[str, str] = field(repr=False)  # RESTIC_REPOSITORY, RESTIC_PASSWORD, AWS_*: secrets

    def env(self, inherited: dict[str, str]) -> dict[str, str]:
        """restic's environment: INHERITED (the operator's) without any restic or S3 credentials of its own."""
        return {**{k: v for k, v in inherited.items() if k not in RESTIC_ENVIRONMENT}, **self.environment}


def admin_access(inventory: Inventory, secret: Callable[[str], str], known_hosts: str) -> AdminAccess:
    """How the operator's restic reaches the repository with prune rights: a REST server's admin_url as
    admin_user (default: the server's url and user), S3 with the admin key, SFTP as admin_user with the
    operator's own SSH key and the backup host's key pinned in KNOWN_HOSTS (a file the caller wrote with
    offsite_known_hosts_text; unused for the other kinds)."""
    offsite = inventory.backup.offsite
    environment = {"RESTIC_PASSWORD": secret(offsite.password_secret)}
    if offsite.rest:
        rest = offsite.rest
        url, user = rest.admin_url or rest.url, rest.admin_user or rest.user
        environment["RESTIC_REPOSITORY"] = rest_repository(url, user, secret(rest.admin_password_secret
                                                                              or rest.password_secret))
        options = ("--cacert", str(rest.ca_bundle)) if rest.ca_bundle else ()
        return AdminAccess(f"rest:{url.rstrip('/')}/ as {user}", options, environment)
    if offsite.s3:
        s3 = offsite.s3
        where = repository(inventory)
        environment |= {"RESTIC_REPOSITORY": where,
                        "AWS_ACCESS_KEY_ID": secret(s3.admin_access_key_secret or s3.access_key_secret),
                        "AWS_SECRET_ACCESS_KEY": secret(s3.admin_secret_key_secret or s3.secret_key_secret)}
        return AdminAccess(where, (), environment)
    sftp = offsite.sftp
    user = sftp.admin_user or sftp.user
    key = ["-i", shlex.quote(str(sftp.admin_key_file)), "-o", "IdentitiesOnly=yes"] if sftp.admin_key_file else []
    # restic splits sftp.command itself (quotes understood, no shell).
    command = ["ssh", "-p", str(sftp.port), *key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
               "-o", f"UserKnownHostsFile={shlex.quote(known_hosts)}", "-o", "GlobalKnownHostsFile=/dev/null",
               "-o", "ConnectTimeout=10", f"{user}@{sftp.host}", "-s", "sftp"]
    where = f"sftp:{user}@{sftp.host}:{sftp.path}"
    environment["RESTIC_REPOSITORY"] = where
    return AdminAccess(where, ("-o", f"sftp.command={' '.join(command)}"), environment)


def offsite_filter(inventory: Inventory, inventory_name: str) -> list[str]:
    """The inventory's own snapshots, as offsite.sh's retention picks them (never those from before inventory
    tags, nor another inventory's)."""
    return ["--host", paths_of(inventory).offsite_host, "--tag", f"slipway,{offsite_tag(inventory_name)}"]


def offsite_forget_args(inventory: Inventory, inventory_name: str, dry_run: bool) -> list[str]:
    """restic forget with the server's retention, as offsite.sh applies it when the repository is not
    append-only; --json lists what is kept and removed. Pruning is its own step (offsite_prune_args)."""
    backup = inventory.backup
    return ["forget", "--json", *(["--dry-run"] if dry_run else []), *offsite_filter(inventory, inventory_name),
            "--group-by", "host", "--keep-last", str(backup.keep_last), "--keep-daily", str(backup.keep_daily),
            "--keep-weekly", str(backup.keep_weekly), "--keep-monthly", str(backup.keep_monthly)]


def offsite_snapshots_args(inventory: Inventory, inventory_name: str) -> list[str]:
    return ["snapshots", "--json", *offsite_filter(inventory, inventory_name)]


# Stale locks only (older than 30 minutes, or of a process gone on this machine): a server whose key cannot
# delete leaves its locks behind, and an exclusive lock (forget, prune) is refused while any lock is there.
OFFSITE_UNLOCK_ARGS = ["unlock"]
OFFSITE_PRUNE_ARGS = ["prune"]


@dataclass(frozen=True)
class OffsiteSnapshot:
    id: str
    short_id: str
    backup_id: str  # from its backup-ID tag; "?" without one
    time: str  # as restic gives it, to the second

    @classmethod
    def of(cls, data: dict) -> OffsiteSnapshot:
        tags = data.get("tags") or []
        backup_id = next((tag.removeprefix("backup-") for tag in tags if tag.startswith("backup-")), "?")
        snapshot_id = str(data.get("id", "?"))
        return cls(snapshot_id, str(data.get("short_id") or snapshot_id[:8]), backup_id,
                   str(data.get("time", "?"))[:19])


def _json_lines(output: str) -> list:
    """Every JSON array restic printed on a line of its own (other lines skipped)."""
    found = []
    for line in output.splitlines():
        if line.lstrip().startswith("["):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            found += value if isinstance(value, list) else []
    return found


def parse_forget(output: str) -> tuple[list[OffsiteSnapshot], list[OffsiteSnapshot]]:
    """(removed, kept) from `restic forget --json`, oldest first; nothing printed: no snapshot matched."""
    removed, kept = [], []
    for group in _json_lines(output):
        if isinstance(group, dict):
            removed += [OffsiteSnapshot.of(item) for item in group.get("remove") or [] if isinstance(item, dict)]
            kept += [OffsiteSnapshot.of(item) for item in group.get("keep") or [] if isinstance(item, dict)]
    return sorted(removed, key=lambda s: s.time), sorted(kept, key=lambda s: s.time)


def parse_snapshots(output: str) -> list[OffsiteSnapshot]:
    return sorted((OffsiteSnapshot.of(item) for item in _json_lines(output) if isinstance(item, dict)),
                  key=lambda s: s.time)


def without_credentials(text: str) -> str:
    """TEXT with a URL's user and password (scheme://user:password@) masked: restic masks the password of
    the repository's location itself; this is for anything else it prints."""
    return re.sub(r"://[^/@\s]*@", "://***@", text)


def download_folder(project: Path, inventory_name: str) -> Path:
    """backup.download's default folder: in the project, under .slipway/ (which .gitignore covers)."""
    return project / DOWNLOADS_DIR / inventory_name
