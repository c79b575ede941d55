"""`fab -H NAME backup[.list|.verify|.restore|.download|.prune|.prune-offsite]`: the database's backups.

Every task but prune-offsite runs the scripts provision installed on the
server, the same ones its systemd timers run; a server whose installed copy
differs from this slipway's is sent back to `provision` before anything runs.
prune-offsite runs restic here, on the operator's machine, with credentials
the server never holds.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection
from invoke.exceptions import Exit

from ..errors import SlipwayError
from ..lazy import lazy_module
from ..tasking import app_session, ask, load_deployment, operator_task, project_dir

if TYPE_CHECKING:
    from ..config import Deployment

backups = lazy_module("..commands.backup", __package__)
backup_flows = lazy_module("..flows.backups", __package__)
offsite = lazy_module("..flows.offsite", __package__)
restore_flow = lazy_module("..flows.restore", __package__)


def _database_deployment(c) -> Deployment:
    deployment = load_deployment(c)
    if not deployment.inventory.database:
        raise SlipwayError(f"{deployment.inventory_file}: database: missing; backups are of the app's PostgreSQL "
                           "database, and this inventory has none")
    return deployment


@operator_task(name="take")
def take_now(c):
    """Back up the database now: pg_dump -Fc in the db container, checksummed, with its row counts and roles."""
    deployment = _database_deployment(c)
    with app_session(c, deployment) as (_, reporter, remote):
        backup_flows.take_now(remote, reporter, deployment)


@operator_task(name="list", help={"json": "print the records as JSON", "check": "exit 1 when the newest good backup "
                                  "is older than backup.max_age_hours (or there is none)"})
def list_backups(c, json=False, check=False):
    """Every backup attempt in sequence order: seq, id, trigger, size, verified, offsite, outcome; the newest good
    and newest verified ones."""
    deployment = _database_deployment(c)
    with app_session(c, deployment, out=sys.stderr) as (_, _, remote):
        age = backup_flows.list_backups(remote, deployment, json)
    limit = deployment.inventory.backup.max_age_hours
    if check and (age is None or age > limit):
        raise Exit(f"error: {deployment.name}: no good backup in the last {limit} hours (backup.max_age_hours)", code=1)


@operator_task(positional=["backup_id"], help={"backup_id": "the backup to verify, or latest (the newest good one)"})
def verify(c, backup_id):
    """Restore a backup into a throwaway PostgreSQL on the server and prove every table's row count (refused in
    one line when Docker's data root has not the room)."""
    deployment = _database_deployment(c)
    with app_session(c, deployment) as (_, reporter, remote):
        backup_flows.verify(remote, reporter, deployment, backup_id)


@operator_task(positional=["backup_id"], help={"backup_id": "the backup to copy, latest (the newest verified one) "
                                                             "or latest-unverified",
                     "to": "the local folder (default: .slipway/backups/NAME in the project)"})
def download(c, backup_id, to=None):
    """Copy a backup (dump, roles, record) to this machine, files 0600 in a 0700 folder; the dump's sha256 is
    checked here."""
    deployment = _database_deployment(c)
    project = project_dir(c)
    folder = Path(to).expanduser() if to else backups.download_folder(project, deployment.name)
    with app_session(c, deployment) as (_, reporter, remote):
        backup_flows.download(remote, reporter, deployment, backup_id, folder, within=None if to else project)


@operator_task(help={"dry-run": "list what retention would delete; delete nothing"})
def prune(c, dry_run=False):
    """Apply retention now, without taking a backup: it only deletes, so it works on a full disk."""
    deployment = _database_deployment(c)
    with app_session(c, deployment) as (_, reporter, remote):
        backup_flows.prune(remote, reporter, deployment, dry_run)


@operator_task(name="prune-offsite", help={"dry-run": "list what retention would forget offsite; forget nothing"})
def prune_offsite(c, dry_run=False):
    """Apply the server's retention to this inventory's offsite snapshots, from this machine (restic here, with
    credentials that may delete; for an append-only repository, whose server never forgets)."""
    offsite.forget_offsite(_database_deployment(c), dry_run)


@operator_task(positional=["backup_id"], help={"backup_id": "the backup to put back, latest (the newest verified "
                                                             "one) or latest-unverified; with --file: file",
                     "file": "restore this local pg_dump -Fc file instead (from another server or a managed database)",
                     "from-offsite": "fetch the backup from the offsite repository first (a rebuilt server has "
                                     "no local backups)",
                     "yes": "do not ask: go ahead"})
def restore(c, backup_id, file=None, yes=False, from_offsite=False):
    """Put the database back from a backup: safety backup, maintenance page, all-or-nothing swap, health check."""
    deployment = _database_deployment(c)
    local = Path(file).expanduser() if file else None
    if local and not local.is_file():
        raise SlipwayError(f"--file {file}: no such file")
    if local and backup_id != "file":
        raise SlipwayError(f"backup.restore {backup_id} --file {file}: restore either a backup on the server or "
                           "a local file; for the file, type `backup.restore file --file PATH`")
    if local and from_offsite:
        raise SlipwayError("backup.restore: --file and --from-offsite exclude each other")
    with app_session(c, deployment) as (_, reporter, remote):
        restore_flow.restore(remote, reporter, deployment, project_dir(c), backup_id, local, from_offsite,
                             None if yes else lambda what: _confirm(deployment, what))


def _confirm(deployment: Deployment, what: str) -> None:
    app = deployment.inventory.app.name
    print(f"[{deployment.name}] restore will: put {app} in maintenance (503); stop its services; take a safety "
          f"backup; replace database {deployment.inventory.database.name} with {what}; start the services and "
          "check their health; end maintenance.")
    if not sys.stdin.isatty():
        raise SlipwayError(f"{deployment.name}: restore needs --yes when nobody is at the terminal to confirm")
    if ask(f"Type the app name ({app}) to go on: ").strip() != app:
        raise SlipwayError(f"{deployment.name}: not confirmed; nothing was changed")


namespace = Collection("backup")
for _task in (take_now, list_backups, verify, download, restore, prune, prune_offsite):
    namespace.add_task(_task, default=_task is take_now)
