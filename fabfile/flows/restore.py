"""Putting the database and the accessories' data back: from a backup on the server, one fetched from offsite, or
a local dump file (the database only); behind the maintenance page, with the app stopped, a safety backup and an
all-or-nothing swap."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..commands import accessories as accessory_commands
from ..commands import backup as backups
from ..commands import backup_records
from ..commands import traffic
from ..commands.layout import layout_of, web_services
from ..commands.shell import limited
from ..config import Deployment
from ..errors import SlipwayError
from ..remote import Remote, Reporter
from .backups import check_installed, chosen, file_sha256, last_line, records, take
from .locked import audit, deploy_lock, read_state
from .maintenance import maintenance_record, turn_maintenance_off, turn_maintenance_on

# Once the maintenance page is up, a request that passed nginx's check just before is still on its
# way to the app: it gets this long to arrive (the app finishes what it has when it stops).
MAINTENANCE_SETTLE_SECONDS = 1


def fetch_from_offsite(remote: Remote, reporter: Reporter, deployment: Deployment, backup_id: str) -> str:
    """Bring BACKUP_ID (or the newest) back from the offsite repository into the backups folder; its id."""
    inventory = deployment.inventory
    if not inventory.backup.offsite:
        raise SlipwayError(f"{deployment.inventory_file}: backup.offsite: missing; --from-offsite needs the "
                           "offsite repository the backups were copied to")
    seconds = inventory.backup.timeout_seconds
    argv = limited(seconds, backups.offsite_argv(layout_of(inventory), "fetch", backup_id))
    with reporter.step(f"fetch {backup_id} from the offsite repository (checksum checked)") as step:
        result = remote.run(argv, timeout=seconds + 60, check=False)
        if result.failed:
            raise SlipwayError(f"{deployment.name}: {last_line(result.stderr or result.stdout)}")
        step.changed, step.detail = True, result.stdout.strip()
    return result.stdout.strip()


def restore(remote: Remote, reporter: Reporter, deployment: Deployment, project: Path, backup_id: str,
            local: Path | None, from_offsite: bool, confirm: Callable[[str], None] | None) -> None:
    """BACKUP_ID (or the LOCAL dump file) put back; CONFIRM (unless None) is asked with what will be restored."""
    check_installed(remote, deployment, reporter)
    if from_offsite:
        # The offsite copies' records are from before any verify: its latest is the newest backup there.
        wanted = backup_records.LATEST if backup_id == backup_records.LATEST_UNVERIFIED else backup_id
        backup_id = fetch_from_offsite(remote, reporter, deployment, wanted)
    source = _source(remote, deployment, backup_id, local)
    if confirm:
        confirm(source.what)
    inventory = deployment.inventory
    layout = layout_of(inventory)
    with deploy_lock(remote, layout, f"restore {source.what}", inventory.app.step_timeout_seconds) as run:
        state = read_state(run, layout, [], deployment.name)
        if not state.serving or not state.nginx_running:
            raise SlipwayError(f"{deployment.name}: no release serves yet; deploy first, then restore into its database")
        missing = [name for name in source.accessories if name not in state.accessories]
        if missing:
            raise SlipwayError(f"{deployment.name}: accessory {', '.join(missing)} has no container to restore into; "
                               f"`fab -H {deployment.name} deploy` starts it, then restore; nothing was changed")
        if local:
            with reporter.step(f"upload {local.name}") as step:
                run(["mkdir", "-p", layout_of(inventory).backup_uploads])
                remote.conn.sftp().put(str(local), source.dump)
                step.changed = True
        wanted = {source.dump: source.sha256, **{path: sha256 for path, sha256 in source.accessories.values()}}
        with reporter.step("dumps' sha256 match their record" if source.accessories else "dump's sha256 matches its record"):
            sums = run(["sha256sum", *wanted]).stdout.split()
            for found, path in zip(sums[::2], sums[1::2]):
                if found != wanted[path]:
                    raise SlipwayError(f"{deployment.name}: refused: {path} has sha256 {found}, its record says "
                                       f"{wanted[path]}: the dump is damaged; nothing was changed")
        for note in source.notes:
            print(f"[{deployment.name}] {note}")
        audit(run, layout, "restore started", source=source.dump, **({"accessories": ",".join(source.accessories)}
                                                                     if source.accessories else {}))
        safety = _restore_in_maintenance(run, reporter, deployment, project, state.serving, source,
                                         lambda: take(remote, reporter, deployment, "pre-restore", run=run))
        audit(run, layout, "restored", source=source.dump, safety_backup=safety["id"])
    print(reporter.summary())
    what = (f"the database and {', '.join(source.accessories)} as they were before are" if source.accessories
            else "the database as it was before is")
    print(f"[{deployment.name}] restored from {source.what}; {what} backup {safety['id']}")


@dataclass
class Source:
    """What a restore reads: the dump on the server, its roles file (none for a local dump), its checksum; the
    accessories' dumps it puts back (name -> (path, sha256)); what it says of the accessories it leaves alone."""

    dump: str
    globals_file: str
    sha256: str
    what: str
    accessories: dict[str, tuple[str, str]]
    notes: list[str]


def _source(remote: Remote, deployment: Deployment, backup_id: str, local: Path | None) -> Source:
    inventory = deployment.inventory
    paths = layout_of(inventory)
    backed_up = accessory_commands.backed_up(inventory)
    if local:
        digest = file_sha256(local)
        notes = [f"accessories left as they are (a dump file holds the database only): {', '.join(backed_up)}"]
        return Source(f"{paths.backup_uploads}/{local.name}", "", digest, f"{local} (sha256 {digest[:12]}…)", {},
                      notes if backed_up else [])
    record = chosen(records(remote, deployment), backup_id, deployment)
    parts = record.data.get("accessories") or {}
    accessories = {name: (paths.backup_accessory(record.id, name), parts[name]["sha256"])
                   for name in backed_up if name in parts}
    notes = [f"accessory {name} left as it is: backup {record.id} holds no dump of it"
             for name in backed_up if name not in parts]
    notes += [f"accessory {name}'s dump in backup {record.id} not restored: it has no backup in the inventory now"
              for name in parts if name not in backed_up]
    return Source(paths.backup_dump(record.id), paths.backup_globals(record.id), record.data["sha256"],
                  f"backup {record.id} ({record.data.get('trigger')}, "
                  f"{backup_records.human_size(record.data['size'])})", accessories, notes)

def _restore_in_maintenance(run, reporter: Reporter, deployment: Deployment, project: Path, serving: str,
                            source: Source, take_safety_backup) -> dict:
    """Maintenance page on, app stopped, safety backup taken, accessories put back, database swapped; app and
    traffic back whatever happened. The safety backup comes after the app stopped, so no write it acknowledged is
    missing from it. All or nothing: when an accessory or the database fails, the accessories already put back
    get the safety backup's data again (the database is left as it was by restore.sh itself)."""
    inventory = deployment.inventory
    layout, paths = layout_of(inventory), layout_of(inventory)
    # Maintenance an operator turned on before stays on afterwards.
    already_on = maintenance_record(run, layout) is not None
    if not already_on:
        turn_maintenance_on(run, reporter, deployment, project, "The database is being restored.")
    time.sleep(MAINTENANCE_SETTLE_SECONDS)
    failure = None
    try:
        with reporter.step(f"stop {', '.join(inventory.services)}") as step:
            run(layout.compose(serving, "stop", *inventory.services))
            step.changed = True
        safety = take_safety_backup()
        touched = []
        try:
            for name, (dump, _) in source.accessories.items():
                touched.append(name)
                _restore_accessory(run, reporter, deployment, name, dump)
            with reporter.step("restore into a new database, swap it in") as step:
                limit = inventory.backup.timeout_seconds
                run(backups.restore_argv(paths, source.dump, source.globals_file), limit=limit)
                step.changed = True
        except BaseException:
            for name in touched:
                _restore_accessory(run, reporter, deployment, name, paths.backup_accessory(safety["id"], name),
                                   f" as it was (safety backup {safety['id']})")
            raise
    except BaseException as error:
        failure = error
    try:
        _bring_back(run, reporter, deployment, serving, end_maintenance=not already_on)
    except Exception as error:
        if failure is None:
            raise
        cause = (str(failure).splitlines() or [type(failure).__name__])[0]
        raise SlipwayError(f"{deployment.name}: the restore failed ({cause}) and bringing {serving} back failed "
                           f"too: {error}") from None
    if failure is not None:
        raise failure
    return safety


def _restore_accessory(run, reporter: Reporter, deployment: Deployment, name: str, dump: str, what: str = "") -> None:
    inventory = deployment.inventory
    with reporter.step(f"restore accessory {name}{what}, wait until healthy") as step:
        limit = inventory.backup.timeout_seconds + inventory.accessories[name].healthcheck.timeout_seconds
        run(backups.restore_accessory_argv(layout_of(inventory), name, dump), limit=limit)
        step.changed = True


def _bring_back(run, reporter: Reporter, deployment: Deployment, serving: str, end_maintenance: bool) -> None:
    """The serving release's services started and healthy, then (END_MAINTENANCE) maintenance off."""
    inventory = deployment.inventory
    layout = layout_of(inventory)
    with reporter.step(f"start {', '.join(inventory.services)}, wait until healthy") as step:
        run(layout.compose(serving, "start", *inventory.services))
        web = web_services(inventory)
        # Healthy wherever the container answers: these are the containers nginx reached before the restore.
        checks = [(container, "", service.healthcheck.port, service.healthcheck.path)
                  for name, service in web.items() for container in layout.containers(serving, name, service.replicas)]
        if checks:
            timeout = max(service.healthcheck.timeout_seconds for service in web.values())
            run(traffic.wait_healthy_command(checks, timeout), limit=timeout + traffic.HEALTH_MARGIN_SECONDS)
        step.changed = True
    if end_maintenance:
        turn_maintenance_off(run, reporter, deployment)
