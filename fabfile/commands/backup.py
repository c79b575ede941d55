"""Backups as provision installs them: where their parts live on the server, their configuration and
secrets files, the installed scripts and the systemd units that run them, and the command lines the tasks run.
Reading the records is backup_records; naming and reaching the offsite repository, offsite.

The scheduled run (a systemd timer) and `backup` run the same installed
script with the same configuration file, so the schedule never depends on
the operator's machine.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Callable

from ..config import Inventory
from .accessories import UNHEALTHY_EXIT, backup_entries
from .layout import Layout, layout_of
from .offsite import offsite_known_hosts_text, offsite_tag, repository, rest_repository
from .shell import SCRIPTS_DIR, Argv

INSTALL_DIR = "/usr/local/lib/slipway"
# The functions the installed scripts share (settings, the time, records): each sources it from beside itself.
# First in every list of installed scripts, so that provision writes it before the scripts that need it.
LIBRARY = "lib_installed.sh"
INSTALLED_SCRIPTS = (LIBRARY, "lib_healthy.sh", "backup.sh", "retention.sh", "prune.sh", "verify_backup.sh",
                     "restore.sh", "restore_accessory.sh", "count_rows.sql", "offsite.sh", "metrics.sh")
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
# Where `backup.download` puts copies by default, in the project (.gitignore covers `.slipway/`).
DOWNLOADS_DIR = ".slipway/backups"


def conf_text(inventory: Inventory, inventory_name: str | None = None) -> str:
    """backup.conf: KEY=VALUE lines the scripts read with sed (never sourced: values stay data).

    INVENTORY_NAME (the inventory's file name, prod for inventories/prod.yaml) tags the offsite snapshots,
    so that inventories sharing a repository and an app name keep apart."""
    layout, database, backup = layout_of(inventory), inventory.database, inventory.backup
    settings = {
        "BACKUPS_DIR": layout.backups,
        "DB_CONTAINER": layout.db_container,
        "DB_USER": database.user,
        "DB_NAME": database.name,
        "KEEP_LAST": backup.keep_last,
        "KEEP_DAILY": backup.keep_daily,
        "KEEP_WEEKLY": backup.keep_weekly,
        "KEEP_MONTHLY": backup.keep_monthly,
        "LOCK_WAIT_SECONDS": LOCK_WAIT_SECONDS,
        "VERIFY_CONTAINER": layout.verify_container,
        "VERIFY_READY_SECONDS": VERIFY_READY_SECONDS,
        "VERIFY_SPACE_PERCENT": VERIFY_SPACE_PERCENT,
        "VERIFY_RESERVE_MB": VERIFY_RESERVE_MB,
        "VERIFY_DUMP_EXPANSION": VERIFY_DUMP_EXPANSION,
        "OFFSITE_FAILED_EXIT": OFFSITE_FAILED_EXIT,
        "SECRETS_FILE": layout.backup_secrets,
        "APP": inventory.app.name,
        "METRICS_DIR": backup.metrics_dir,
        **offsite_settings(inventory, inventory_name),
        **accessory_settings(inventory),
    }
    header = f"# Managed by slipway provision for {inventory.app.name}; read by {INSTALL_DIR}/*.sh.\n"
    return header + "".join(f"{key}={value}\n" for key, value in settings.items())


def offsite_settings(inventory: Inventory, inventory_name: str | None = None) -> dict[str, object]:
    """backup.conf's offsite keys: none without an offsite repository."""
    offsite, layout = inventory.backup.offsite, layout_of(inventory)
    if not offsite:
        return {}
    settings: dict[str, object] = {"OFFSITE_REPOSITORY": repository(inventory), "OFFSITE_HOST": layout.offsite_host,
                                   "OFFSITE_CHECK_SUBSET": offsite.check_subset}
    if inventory_name:
        settings["OFFSITE_TAG"] = offsite_tag(inventory_name)
    if offsite.sftp:
        settings |= {"OFFSITE_SSH": f"{offsite.sftp.user}@{offsite.sftp.host}", "OFFSITE_SSH_PORT": offsite.sftp.port,
                     "OFFSITE_SSH_KEY": layout.offsite_key, "OFFSITE_KNOWN_HOSTS": layout.offsite_known_hosts}
    if offsite.rest and offsite.rest.ca_bundle:
        settings["OFFSITE_CACERT"] = layout.offsite_ca
    if offsite.append_only:
        # offsite.sh never forgets there: backup.prune-offsite does, from the operator's machine.
        settings["OFFSITE_APPEND_ONLY"] = "yes"
    return settings


def accessory_settings(inventory: Inventory) -> dict[str, object]:
    """backup.conf's accessory keys: none when no accessory has a backup (a server's conf stays as it was)."""
    entries = backup_entries(inventory)
    if not entries:
        return {}
    return {"ACCESSORIES": json.dumps(entries, separators=(",", ":")), "UNHEALTHY_EXIT": UNHEALTHY_EXIT}


def offsite_files(inventory: Inventory) -> dict[str, str]:
    """The offsite repository's files provision installs beside backup.conf (nothing secret): the SFTP
    backup host's pinned key, or the CA bundle a REST server's certificate is checked with."""
    offsite, layout = inventory.backup.offsite, layout_of(inventory)
    if offsite and offsite.sftp:
        return {layout.offsite_known_hosts: offsite_known_hosts_text(inventory)}
    if offsite and offsite.rest and offsite.rest.ca_bundle:
        return {layout.offsite_ca: offsite.rest.ca_bundle.read_text()}
    return {}


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


def offsite_argv(layout: Layout, action: str, *args: str) -> Argv:
    return ["sh", installed_script("offsite.sh"), layout.backup_conf, action, *args]


def metrics_argv(layout: Layout) -> Argv:
    return ["sh", installed_script("metrics.sh"), layout.backup_conf]


def installed_script(name: str) -> str:
    return f"{INSTALL_DIR}/{name}"


def script_texts() -> dict[str, str]:
    return {f"{INSTALL_DIR}/{name}": (SCRIPTS_DIR / name).read_text() for name in INSTALLED_SCRIPTS}


def backup_argv(layout: Layout, trigger: str) -> Argv:
    return ["sh", installed_script("backup.sh"), layout.backup_conf, trigger]


def verify_argv(layout: Layout, backup_id: str) -> Argv:
    return ["sh", installed_script("verify_backup.sh"), layout.backup_conf, backup_id]


def prune_argv(layout: Layout, dry_run: bool = False) -> Argv:
    return ["sh", installed_script("prune.sh"), layout.backup_conf, *(["--dry-run"] if dry_run else [])]


def restore_argv(layout: Layout, dump: str, globals_file: str) -> Argv:
    return ["sh", installed_script("restore.sh"), layout.backup_conf, dump, globals_file]


def restore_accessory_argv(layout: Layout, name: str, dump: str) -> Argv:
    return ["sh", installed_script("restore_accessory.sh"), layout.backup_conf, name, dump]


def unit_contexts(inventory: Inventory) -> dict[str, dict]:
    """Unit file path -> template context, for the backup timer and (when scheduled) the verify timer."""
    layout, backup = layout_of(inventory), inventory.backup
    user = inventory.server.deploy_user
    jobs = {"backup": (backup.schedule, backup_argv(layout, "scheduled"), backup.timeout_seconds)}
    if backup.verify_schedule:
        jobs["backup-verify"] = (backup.verify_schedule, verify_argv(layout, "latest"), backup.timeout_seconds)
    if backup.offsite and backup.offsite.check_schedule:
        jobs["backup-check"] = (backup.offsite.check_schedule, offsite_argv(layout, "check"), backup.timeout_seconds)
    contexts = {}
    for kind, (schedule, argv, seconds) in jobs.items():
        what = UNIT_PURPOSES[kind]
        # The metrics file is root's to write (node_exporter's folder is not the deploy user's): `+`.
        after = shlex.join(metrics_argv(layout)) if kind == "backup" else ""
        contexts[layout.backup_unit_file(kind, "service")] = {"template": "backup.service", "app": inventory.app.name, "kind": what,
                                                 "user": user, "command": shlex.join(argv), "timeout_seconds": seconds,
                                                 "as_root_after": after}
        contexts[layout.backup_unit_file(kind, "timer")] = {"template": "backup.timer", "app": inventory.app.name, "kind": what,
                                               "schedule": schedule}
    return contexts


UNIT_PURPOSES = {"backup": "backup", "backup-verify": "backup verification",
                 "backup-check": "offsite backup check (restic check --read-data-subset)"}


def timers(inventory: Inventory) -> list[str]:
    return [path.rsplit("/", 1)[1] for path in unit_contexts(inventory) if path.endswith(".timer")]


def list_command(layout: Layout) -> Argv:
    """Every record, one JSON document per line (records are written on one line)."""
    return ["sh", "-c", 'for f in "$1"/*.json; do [ -e "$f" ] && cat "$f"; done; true', "slipway-backups", layout.backups]


def download_folder(project: Path, inventory_name: str) -> Path:
    """backup.download's default folder: in the project, under .slipway/ (which .gitignore covers)."""
    return project / DOWNLOADS_DIR / inventory_name
