"""`fab -H NAME backup[.list|.verify|.restore|.download|.prune|.prune-offsite]`: the database's backups.

Every task but prune-offsite runs the scripts provision installed on the
server, the same ones its systemd timers run; a server whose installed copy
differs from this slipway's is sent back to `provision` before anything runs.
prune-offsite runs restic here, on the operator's machine, with credentials
the server never holds.
"""

from __future__ import annotations

import hashlib
import json as jsonlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from invoke import Collection
from invoke.exceptions import Exit

from ..commands import backup as backups
from ..commands import traffic
from ..commands.layout import layout_of, web_services
from ..commands.shell import limited, shown
from ..config import Deployment
from ..errors import RemoteCommandFailed, SlipwayError
from ..remote import Remote, Reporter
from .common import ask, load_deployment, operator_task, project_dir, require_installed, session
from .locked import audit, deploy_lock, read_state
from .runbook import maintenance_record, turn_maintenance_off, turn_maintenance_on

# Once the maintenance page is up, a request that passed nginx's check just before is still on its
# way to the app: it gets this long to arrive (the app finishes what it has when it stops).
MAINTENANCE_SETTLE_SECONDS = 1


def _database_deployment(c) -> Deployment:
    deployment = load_deployment(c)
    if not deployment.inventory.database:
        raise SlipwayError(f"{deployment.inventory_file}: database: missing; backups are of the app's PostgreSQL "
                           "database, and this inventory has none")
    return deployment


def check_installed(remote: Remote, deployment: Deployment, reporter: Reporter) -> None:
    """The server's backup scripts and configuration are the ones this slipway and inventory make."""
    inventory = deployment.inventory
    paths = backups.paths_of(inventory)
    wanted = {**backups.script_texts(), paths.conf: backups.conf_text(inventory, deployment.name)}
    secrets = backups.secrets_text(inventory, deployment.secret)
    if secrets:
        wanted[paths.secrets] = secrets
    wanted |= backups.offsite_files(inventory)
    with reporter.step("backup scripts and configuration in place"):
        require_installed(remote, deployment, wanted)


def take(remote: Remote, reporter: Reporter, deployment: Deployment, trigger: str, run=None) -> dict:
    """One backup through the installed script (RUN: a locked run, when the deploy lock is held).

    A backup whose offsite copy failed is still good on the server: the returned `offsite_error`
    says why, and the caller decides whether that fails its task."""
    backup = deployment.inventory.backup
    argv = limited(backup.timeout_seconds, backups.backup_argv(backups.paths_of(deployment.inventory), trigger))
    with reporter.step(f"{trigger} backup (pg_dump in the db container)") as step:
        try:
            if run:
                result = run(argv, limit=backup.timeout_seconds + 60, check=False)
            else:
                result = remote.run(argv, timeout=backup.timeout_seconds + 60, check=False)
        finally:
            # node_exporter's folder is root's; the scheduled run does the same from its service.
            remote.run(backups.metrics_argv(backups.paths_of(deployment.inventory)), root=True, check=False)
        if result.failed and result.exited != backups.OFFSITE_FAILED_EXIT:
            raise RemoteCommandFailed(deployment.name, shown(argv), result.exited, result.stderr or result.stdout)
        backup_id, size, sha256, seconds = result.stdout.split()[-4:]
        offsite_error = _last_line(result.stderr) if result.failed else None
        step.changed, step.detail = True, f"{backup_id}, {backups.human_size(int(size))}"
        if backup.offsite:
            step.detail += f"; offsite copy FAILED: {offsite_error}" if offsite_error else ", copied offsite"
            if backup.offsite.append_only and not offsite_error:
                step.detail += " (append-only: backup.prune-offsite applies retention there)"
    return {"id": backup_id, "size": int(size), "sha256": sha256, "seconds": int(seconds), "offsite_error": offsite_error}


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "?"


@operator_task(name="take")
def take_now(c):
    """Back up the database now: pg_dump -Fc in the db container, checksummed, with its row counts and roles."""
    deployment = _database_deployment(c)
    reporter = Reporter(deployment.name)
    with session(c, deployment, reporter, deploy_user_only=True) as remote:
        check_installed(remote, deployment, reporter)
        made = take(remote, reporter, deployment, "manual")
    print(reporter.summary())
    print(f"[{deployment.name}] backup {made['id']}: {backups.human_size(made['size'])}, sha256 {made['sha256']}, "
          f"{made['seconds']}s")
    if made["offsite_error"]:
        raise SlipwayError(f"{deployment.name}: backup {made['id']} is good on the server, but its offsite copy "
                           f"failed: {made['offsite_error']}")


def _records(remote: Remote, deployment: Deployment) -> list[backups.Record]:
    return backups.parse_records(remote.run(backups.list_command(backups.paths_of(deployment.inventory))).stdout)


@operator_task(name="list", help={"json": "print the records as JSON", "check": "exit 1 when the newest good backup "
                                  "is older than backup.max_age_hours (or there is none)"})
def list_backups(c, json=False, check=False):
    """Every backup attempt in sequence order: seq, id, trigger, size, verified, offsite, outcome; the newest good
    and newest verified ones."""
    deployment = _database_deployment(c)
    reporter = Reporter(deployment.name, out=sys.stderr)
    with session(c, deployment, reporter, deploy_user_only=True) as remote:
        records = _records(remote, deployment)
    now = datetime.now(timezone.utc)
    newest, verified = backups.newest_good(records), backups.newest_verified(records)
    age = backups.age_hours(newest, now) if newest else None
    if json:
        print(jsonlib.dumps({"backups": [r.data for r in records], "newest_good": newest.id if newest else None,
                             "newest_good_age_hours": round(age, 2) if age is not None else None,
                             "newest_verified": verified.id if verified else None}, indent=2))
    else:
        print(backups.format_records(records, now))
    limit = deployment.inventory.backup.max_age_hours
    if check and (age is None or age > limit):
        raise Exit(f"error: {deployment.name}: no good backup in the last {limit} hours (backup.max_age_hours)", code=1)


@operator_task(positional=["backup_id"], help={"backup_id": "the backup to verify, or latest (the newest good one)"})
def verify(c, backup_id):
    """Restore a backup into a throwaway PostgreSQL on the server and prove every table's row count (refused in
    one line when Docker's data root has not the room)."""
    deployment = _database_deployment(c)
    reporter = Reporter(deployment.name)
    paths = backups.paths_of(deployment.inventory)
    with session(c, deployment, reporter, deploy_user_only=True) as remote:
        check_installed(remote, deployment, reporter)
        with reporter.step(f"restore {backup_id} into {paths.verify_container}, compare row counts") as step:
            seconds = deployment.inventory.backup.timeout_seconds
            argv = limited(seconds, backups.verify_argv(paths, backup_id))
            result = remote.run(argv, timeout=seconds + 60, check=False)
            if result.exited in (backups.NO_SUCH_BACKUP_EXIT, backups.FAILED_VERIFICATION_EXIT, backups.NO_SPACE_EXIT):
                raise SlipwayError(f"{deployment.name}: {result.stderr.strip().splitlines()[-1]}")
            if result.failed:
                raise RemoteCommandFailed(deployment.name, shown(argv), result.exited, result.stderr or result.stdout)
            step.detail = result.stdout.strip()
    print(reporter.summary())
    print(f"[{deployment.name}] backup {result.stdout.strip()}")


@operator_task(positional=["backup_id"], help={"backup_id": "the backup to copy, latest (the newest verified one) "
                                                             "or latest-unverified",
                     "to": f"the local folder (default: {backups.DOWNLOADS_DIR}/NAME in the project)"})
def download(c, backup_id, to=None):
    """Copy a backup (dump, roles, record) to this machine, files 0600 in a 0700 folder; the dump's sha256 is
    checked here."""
    deployment = _database_deployment(c)
    reporter = Reporter(deployment.name)
    paths = backups.paths_of(deployment.inventory)
    project = project_dir(c)
    folder = Path(to).expanduser() if to else backups.download_folder(project, deployment.name)
    with session(c, deployment, reporter, deploy_user_only=True) as remote:
        record = _chosen(_records(remote, deployment), backup_id, deployment)
        private_folder(folder, within=None if to else project)
        with reporter.step(f"copy {record.id} to {folder}") as step:
            sftp = remote.conn.sftp()
            for remote_path in (paths.dump(record.id), paths.globals(record.id)):
                local = folder / Path(remote_path).name
                partial = local.with_name(local.name + ".partial")
                with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as stream:
                    sftp.getfo(remote_path, stream)
                partial.chmod(0o600)
                partial.replace(local)
            write_private(folder / f"{record.id}.json", jsonlib.dumps(record.data, sort_keys=True) + "\n")
            digest = _sha256(folder / f"{record.id}.dump")
            if digest != record.data.get("sha256"):
                raise SlipwayError(f"{deployment.name}: the copy of {record.id}.dump has sha256 {digest}, the record "
                                   f"says {record.data.get('sha256')}: do not use it")
            step.changed, step.detail = True, f"{backups.human_size(record.data['size'])}, sha256 checked"
    print(reporter.summary())
    print(f"[{deployment.name}] {folder / (record.id + '.dump')}")


@operator_task(help={"dry-run": "list what retention would delete; delete nothing"})
def prune(c, dry_run=False):
    """Apply retention now, without taking a backup: it only deletes, so it works on a full disk."""
    deployment = _database_deployment(c)
    reporter = Reporter(deployment.name)
    paths, seconds = backups.paths_of(deployment.inventory), deployment.inventory.backup.timeout_seconds
    with session(c, deployment, reporter, deploy_user_only=True) as remote:
        check_installed(remote, deployment, reporter)
        with reporter.step("retention over the backups on the server" + (" (dry run)" if dry_run else "")) as step:
            argv = limited(seconds, backups.prune_argv(paths, dry_run))
            result = remote.run(argv, timeout=seconds + 60, check=False)
            if result.failed:
                raise RemoteCommandFailed(deployment.name, shown(argv), result.exited, result.stderr or result.stdout)
            pruned = backups.parse_prune(result.stdout)
            freed = sum(size for _, size in pruned.backups)
            step.changed = not dry_run and bool(pruned.backups or pruned.records or pruned.leftovers)
            step.detail = f"{len(pruned.backups)} backups ({backups.human_size(freed)}), {pruned.kept} kept"
    print(reporter.summary())
    verb = "would delete" if dry_run else "deleted"
    for backup_id, size in pruned.backups:
        print(f"[{deployment.name}] {verb} backup {backup_id} ({backups.human_size(size)})")
    for backup_id in pruned.records:
        print(f"[{deployment.name}] {verb} the record of failed attempt {backup_id}")
    for name in pruned.leftovers:
        print(f"[{deployment.name}] {verb} {name}, left by an attempt that died")
    print(f"[{deployment.name}] {verb} {len(pruned.backups)} backups ({backups.human_size(freed)}); "
          f"{pruned.kept} backups kept")


@operator_task(name="prune-offsite", help={"dry-run": "list what retention would forget offsite; forget nothing"})
def prune_offsite(c, dry_run=False):
    """Apply the server's retention to this inventory's offsite snapshots, from this machine (restic here, with
    credentials that may delete; for an append-only repository, whose server never forgets)."""
    forget_offsite(_database_deployment(c), dry_run)


def forget_offsite(deployment: Deployment, dry_run: bool) -> None:
    """restic on this machine: stale locks removed, the inventory's snapshots past retention forgotten (checked
    gone: an append-only server answers a delete with an error restic may only warn about), their data pruned."""
    inventory, name = deployment.inventory, deployment.name
    offsite = inventory.backup.offsite
    if not offsite:
        raise SlipwayError(f"{deployment.inventory_file}: backup.offsite: missing; backup.prune-offsite prunes the "
                           "offsite repository backups are copied to")
    restic = shutil.which("restic")
    if not restic:
        raise SlipwayError("restic is not installed on this machine: backup.prune-offsite runs it here, not on the "
                           "server (apt-get install restic; ./scripts/setup installs it)")
    for key_path, secret_name in backups.admin_secrets(inventory):
        if secret_name not in deployment.secrets or not deployment.secret(secret_name):
            raise SlipwayError(f"{deployment.secrets_file}: {secret_name}: missing or empty; expected a line "
                               f"{secret_name}=... because {deployment.inventory_file} uses it at {key_path} "
                               "(backup.prune-offsite reads it here; the server never gets it)")
    reporter = Reporter(name)
    seconds = inventory.backup.timeout_seconds
    whose = f"{backups.paths_of(inventory).offsite_host} ({backups.offsite_tag(name)})"
    with tempfile.TemporaryDirectory(prefix="slipway-offsite-") as work:
        known_hosts = Path(work) / "known_hosts"
        if offsite.sftp:
            known_hosts.write_text(backups.offsite_known_hosts_text(inventory))
        access = backups.admin_access(inventory, deployment.secret, str(known_hosts))

        def restic_run(args: list[str], what: str) -> str:
            try:
                result = subprocess.run([restic, *access.options, *args], env=access.env(dict(os.environ)),
                                        capture_output=True, text=True, timeout=seconds, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise SlipwayError(f"{name}: restic {what} did not finish in {seconds}s (backup.timeout_seconds) "
                                   f"against {access.where}") from None
            if result.returncode != 0:
                said = backups.without_credentials(_last_line(result.stderr or result.stdout))
                raise SlipwayError(f"{name}: restic {what} on this machine failed against {access.where}: {said}")
            return result.stdout

        with reporter.step("remove stale locks (restic unlock)"):
            restic_run(backups.OFFSITE_UNLOCK_ARGS, "unlock")
        backup = inventory.backup
        policy = (f"keep_last {backup.keep_last}, keep_daily {backup.keep_daily}, keep_weekly {backup.keep_weekly}, "
                  f"keep_monthly {backup.keep_monthly}")
        with reporter.step(f"forget {whose} past retention" + (" (dry run)" if dry_run else "")) as step:
            removed, kept = backups.parse_forget(restic_run(
                backups.offsite_forget_args(inventory, name, dry_run), "forget"))
            step.changed, step.detail = bool(removed) and not dry_run, f"{policy}: {len(removed)} of " \
                f"{len(removed) + len(kept)} snapshots"
        if removed and not dry_run:
            with reporter.step("forgotten snapshots are gone"):
                left = {s.id for s in backups.parse_snapshots(restic_run(
                    backups.offsite_snapshots_args(inventory, name), "snapshots"))}
                refused = [s for s in removed if s.id in left]
                if refused:
                    raise SlipwayError(f"{name}: {access.where} kept {len(refused)} of the {len(removed)} snapshots "
                                       "restic was told to forget: it is append-only for these credentials (give "
                                       "backup.offsite's admin_url or admin credentials that may delete)")
            with reporter.step("prune their data (restic prune)") as step:
                restic_run(backups.OFFSITE_PRUNE_ARGS, "prune")
                step.changed = True
    print(reporter.summary())
    verb = "would forget" if dry_run else "forgot"
    for snapshot in removed:
        print(f"[{name}] {verb} snapshot {snapshot.short_id} of backup {snapshot.backup_id} (taken {snapshot.time})")
    print(f"[{name}] {verb} {len(removed)} offsite snapshots of {whose} in {access.where}"
          + ("" if dry_run or not removed else ", and pruned their data") + f"; {len(kept)} kept")


def private_folder(folder: Path, within: Path | None = None) -> None:
    """FOLDER made if missing, mode 0700. With WITHIN (the project, for the default folder), every folder
    below WITHIN down to FOLDER is made 0700 too, whether it was there or not; a folder given with --to that
    exists keeps its mode (its files are 0600 all the same)."""
    if within is None:
        if not folder.is_dir():
            folder.mkdir(parents=True, mode=0o700)
            folder.chmod(0o700)
        return
    for path in [*(p for p in reversed(folder.parents) if within in p.parents), folder]:
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)


def write_private(path: Path, text: str) -> None:
    """PATH holds TEXT, mode 0600 from its first byte (written beside it, then renamed)."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as stream:
        stream.write(text)
    partial.replace(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _chosen(records: list[backups.Record], backup_id: str, deployment: Deployment) -> backups.Record:
    """BACKUP_ID's record (see backups.choose for what latest and latest-unverified mean), its note printed."""
    choice = backups.choose(records, backup_id)
    if not choice.record:
        known = ", ".join([r.id for r in records if r.good][-5:]) or "none"
        raise SlipwayError(f"{deployment.name}: no good backup {backup_id} on the server (newest good: {known})")
    if choice.note:
        print(f"[{deployment.name}] {choice.note}")
    return choice.record


def _fetch_from_offsite(remote: Remote, reporter: Reporter, deployment: Deployment, backup_id: str) -> str:
    """Bring BACKUP_ID (or the newest) back from the offsite repository into the backups folder; its id."""
    inventory = deployment.inventory
    if not inventory.backup.offsite:
        raise SlipwayError(f"{deployment.inventory_file}: backup.offsite: missing; --from-offsite needs the "
                           "offsite repository the backups were copied to")
    seconds = inventory.backup.timeout_seconds
    argv = limited(seconds, backups.offsite_argv(backups.paths_of(inventory), "fetch", backup_id))
    with reporter.step(f"fetch {backup_id} from the offsite repository (checksum checked)") as step:
        result = remote.run(argv, timeout=seconds + 60, check=False)
        if result.failed:
            raise SlipwayError(f"{deployment.name}: {_last_line(result.stderr or result.stdout)}")
        step.changed, step.detail = True, result.stdout.strip()
    return result.stdout.strip()


@operator_task(positional=["backup_id"], help={"backup_id": "the backup to put back, latest (the newest verified "
                                                             "one) or latest-unverified; with --file: file",
                     "file": "restore this local pg_dump -Fc file instead (from another server or a managed database)",
                     "from-offsite": "fetch the backup from the offsite repository first (a rebuilt server has "
                                     "no local backups)",
                     "yes": "do not ask: go ahead"})
def restore(c, backup_id, file=None, yes=False, from_offsite=False):
    """Put the database back from a backup: safety backup, maintenance page, all-or-nothing swap, health check."""
    deployment = _database_deployment(c)
    inventory = deployment.inventory
    layout, paths = layout_of(inventory), backups.paths_of(inventory)
    reporter = Reporter(deployment.name)
    local = Path(file).expanduser() if file else None
    if local and not local.is_file():
        raise SlipwayError(f"--file {file}: no such file")
    if local and backup_id != "file":
        raise SlipwayError(f"backup.restore {backup_id} --file {file}: restore either a backup on the server or "
                           "a local file; for the file, type `backup.restore file --file PATH`")
    if local and from_offsite:
        raise SlipwayError("backup.restore: --file and --from-offsite exclude each other")
    with session(c, deployment, reporter, deploy_user_only=True) as remote:
        check_installed(remote, deployment, reporter)
        if from_offsite:
            # The offsite copies' records are from before any verify: its latest is the newest backup there.
            wanted = backups.LATEST if backup_id == backups.LATEST_UNVERIFIED else backup_id
            backup_id = _fetch_from_offsite(remote, reporter, deployment, wanted)
        if local:
            source, globals_file, sha256 = f"{paths.uploads}/{local.name}", "", _sha256(local)
            what = f"{local} (sha256 {sha256[:12]}…)"
        else:
            record = _chosen(_records(remote, deployment), backup_id, deployment)
            source, globals_file, sha256 = paths.dump(record.id), paths.globals(record.id), record.data["sha256"]
            what = f"backup {record.id} ({record.data.get('trigger')}, {backups.human_size(record.data['size'])})"
        if not yes:
            _confirm(deployment, what)
        with deploy_lock(remote, layout, f"restore {what}", inventory.app.step_timeout_seconds) as run:
            state = read_state(run, layout, [], deployment.name)
            if not state.serving or not state.nginx_running:
                raise SlipwayError(f"{deployment.name}: no release serves yet; deploy first, then restore into its database")
            if local:
                with reporter.step(f"upload {local.name}") as step:
                    run(["mkdir", "-p", paths.uploads])
                    remote.conn.sftp().put(str(local), source)
                    step.changed = True
            with reporter.step("dump's sha256 matches its record"):
                found = run(["sha256sum", source]).stdout.split()[0]
                if found != sha256:
                    raise SlipwayError(f"{deployment.name}: refused: {source} has sha256 {found}, its record says "
                                       f"{sha256}: the dump is damaged; nothing was changed")
            audit(run, layout, "restore started", source=source)
            safety = _restore_in_maintenance(run, reporter, deployment, project_dir(c), state.serving, source,
                                             globals_file, lambda: take(remote, reporter, deployment, "pre-restore",
                                                                        run=run))
            audit(run, layout, "restored", source=source, safety_backup=safety["id"])
    print(reporter.summary())
    print(f"[{deployment.name}] restored from {what}; the database as it was before is backup {safety['id']}")


def _confirm(deployment: Deployment, what: str) -> None:
    app = deployment.inventory.app.name
    print(f"[{deployment.name}] restore will: put {app} in maintenance (503); stop its services; take a safety "
          f"backup; replace database {deployment.inventory.database.name} with {what}; start the services and "
          "check their health; end maintenance.")
    if not sys.stdin.isatty():
        raise SlipwayError(f"{deployment.name}: restore needs --yes when nobody is at the terminal to confirm")
    if ask(f"Type the app name ({app}) to go on: ").strip() != app:
        raise SlipwayError(f"{deployment.name}: not confirmed; nothing was changed")


def _restore_in_maintenance(run, reporter: Reporter, deployment: Deployment, project: Path, serving: str,
                            source: str, globals_file: str, take_safety_backup) -> dict:
    """Maintenance page on, app stopped, safety backup taken, database swapped; app and traffic back whatever
    happened. The safety backup comes after the app stopped, so no write it acknowledged is missing from it."""
    inventory = deployment.inventory
    layout, paths = layout_of(inventory), backups.paths_of(inventory)
    release_project, compose = layout.release_project(serving), layout.compose_file(serving)
    # Maintenance an operator turned on before stays on afterwards.
    already_on = maintenance_record(run, layout) is not None
    if not already_on:
        turn_maintenance_on(run, reporter, deployment, project, "The database is being restored.")
    time.sleep(MAINTENANCE_SETTLE_SECONDS)
    failure = None
    try:
        with reporter.step(f"stop {', '.join(inventory.services)}") as step:
            run(["docker", "compose", "-p", release_project, "-f", compose, "stop", *inventory.services])
            step.changed = True
        safety = take_safety_backup()
        with reporter.step("restore into a new database, swap it in") as step:
            limit = inventory.backup.timeout_seconds
            run(backups.restore_argv(paths, source, globals_file), limit=limit)
            step.changed = True
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


def _bring_back(run, reporter: Reporter, deployment: Deployment, serving: str, end_maintenance: bool) -> None:
    """The serving release's services started and healthy, then (END_MAINTENANCE) maintenance off."""
    inventory = deployment.inventory
    layout = layout_of(inventory)
    with reporter.step(f"start {', '.join(inventory.services)}, wait until healthy") as step:
        run(["docker", "compose", "-p", layout.release_project(serving), "-f", layout.compose_file(serving), "start",
             *inventory.services])
        web = web_services(inventory)
        checks = [(container, service.healthcheck.port, service.healthcheck.path)
                  for name, service in web.items() for container in layout.containers(serving, name, service.replicas)]
        if checks:
            timeout = max(service.healthcheck.timeout_seconds for service in web.values())
            run(traffic.wait_healthy_command(checks, timeout), limit=timeout + traffic.HEALTH_MARGIN_SECONDS)
        step.changed = True
    if end_maintenance:
        turn_maintenance_off(run, reporter, deployment)


namespace = Collection("backup")
for _task in (take_now, list_backups, verify, download, restore, prune, prune_offsite):
    namespace.add_task(_task, default=_task is take_now)
