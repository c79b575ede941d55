"""The database's backups through the scripts provision installed (the same ones its timers run): take, list,
verify, prune, download."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from ..commands import backup as backups
from ..commands import accessories as accessory_commands
from ..commands import backup_records
from ..commands.layout import layout_of
from ..commands.sequence import Part
from ..commands.shell import limited, shown
from ..config import Deployment
from ..errors import RemoteCommandFailed, SlipwayError
from ..remote import Remote, Reporter
from .installed import check_part, require_checked, require_installed
from .locked import run_parts


def check_installed(remote: Remote, deployment: Deployment, reporter: Reporter) -> None:
    """The server's backup scripts and configuration are the ones this slipway and inventory make."""
    with reporter.step("backup scripts and configuration in place"):
        require_installed(remote, deployment, installed_texts(deployment))


def installed_texts(deployment: Deployment) -> dict[str, str]:
    """What provision installs for backups: path -> text."""
    inventory = deployment.inventory
    layout = layout_of(inventory)
    wanted = {**backups.script_texts(), layout.backup_conf: backups.conf_text(inventory, deployment.name)}
    secrets = backups.secrets_text(inventory, deployment.secret)
    if secrets:
        wanted[layout.backup_secrets] = secrets
    return wanted | backups.offsite_files(inventory)


def take(remote: Remote, reporter: Reporter, deployment: Deployment, trigger: str, run=None,
         check_first: bool = False) -> dict:
    """One backup through the installed script (RUN: a locked run, when the deploy lock is held), and the
    metrics it leaves; CHECK_FIRST: the installed scripts checked in the same round trip.

    A backup whose offsite copy failed is still good on the server: the returned `offsite_error`
    says why, and the caller decides whether that fails its task."""
    backup = deployment.inventory.backup
    argv = limited(backup.timeout_seconds, backups.backup_argv(layout_of(deployment.inventory), trigger))
    # node_exporter's folder is root's; the scheduled run does the same from its service.
    metrics = Part(["sudo", "-n", *backups.metrics_argv(layout_of(deployment.inventory))])
    parts = [*([check_part(installed_texts(deployment))] if check_first else []), Part(argv), metrics]
    dumped = "".join(f", {name}'s backup command" for name in accessory_commands.backed_up(deployment.inventory))
    with reporter.step(f"{trigger} backup (pg_dump in the db container{dumped})") as step:
        runner = run or (lambda command, **kwargs: remote.run(command, timeout=backup.timeout_seconds + 60, **kwargs))
        extra = {"limit": backup.timeout_seconds + 60} if run else {}
        outcome = run_parts(runner, deployment.name, parts, check=False, **extra)
        if check_first:
            require_checked(deployment, outcome, 0)
        backed_up = len(parts) - 2
        result_failed = outcome.failed == backed_up
        if result_failed:
            remote.run(metrics.argv, check=False)
        if result_failed and outcome.exited != backups.OFFSITE_FAILED_EXIT:
            raise RemoteCommandFailed(deployment.name, shown(argv), outcome.exited,
                                      outcome.stderr or outcome.output(outcome.failed))
        backup_id, size, sha256, seconds = outcome.output(backed_up).split()[-4:]
        offsite_error = last_line(outcome.stderr) if result_failed else None
        step.changed, step.detail = True, f"{backup_id}, {backup_records.human_size(int(size))}"
        for line in (outcome.stderr or "").splitlines():
            if line.startswith("accessory ") and " skipped: " in line:
                step.detail += f"; {line}"
        if backup.offsite:
            step.detail += f"; offsite copy FAILED: {offsite_error}" if offsite_error else ", copied offsite"
            if backup.offsite.append_only and not offsite_error:
                step.detail += " (append-only: backup.prune-offsite applies retention there)"
    return {"id": backup_id, "size": int(size), "sha256": sha256, "seconds": int(seconds), "offsite_error": offsite_error}


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "?"


def records(remote: Remote, deployment: Deployment) -> list[backup_records.Record]:
    return backup_records.parse_records(remote.run(backups.list_command(layout_of(deployment.inventory))).stdout)


def chosen(found: list[backup_records.Record], backup_id: str, deployment: Deployment) -> backup_records.Record:
    """BACKUP_ID's record (see backup_records.choose for what latest and latest-unverified mean), its note printed."""
    choice = backup_records.choose(found, backup_id)
    if not choice.record:
        known = ", ".join([r.id for r in found if r.good][-5:]) or "none"
        raise SlipwayError(f"{deployment.name}: no good backup {backup_id} on the server (newest good: {known})")
    if choice.note:
        print(f"[{deployment.name}] {choice.note}")
    return choice.record


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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def take_now(remote: Remote, reporter: Reporter, deployment: Deployment) -> None:
    check_installed(remote, deployment, reporter)
    made = take(remote, reporter, deployment, "manual")
    print(reporter.summary())
    print(f"[{deployment.name}] backup {made['id']}: {backup_records.human_size(made['size'])}, "
          f"sha256 {made['sha256']}, {made['seconds']}s")
    if made["offsite_error"]:
        raise SlipwayError(f"{deployment.name}: backup {made['id']} is good on the server, but its offsite copy "
                           f"failed: {made['offsite_error']}")


def list_backups(remote: Remote, deployment: Deployment, as_json: bool) -> float | None:
    """Print every record (AS_JSON: as one JSON object); the newest good backup's age in hours, None if none."""
    found = records(remote, deployment)
    now = datetime.now(timezone.utc)
    newest, verified = backup_records.newest_good(found), backup_records.newest_verified(found)
    age = backup_records.age_hours(newest, now) if newest else None
    if as_json:
        print(json.dumps({"backups": [r.data for r in found], "newest_good": newest.id if newest else None,
                          "newest_good_age_hours": round(age, 2) if age is not None else None,
                          "newest_verified": verified.id if verified else None}, indent=2))
    else:
        print(backup_records.format_records(found, now))
    return age


def verify(remote: Remote, reporter: Reporter, deployment: Deployment, backup_id: str) -> None:
    paths = layout_of(deployment.inventory)
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


def download(remote: Remote, reporter: Reporter, deployment: Deployment, backup_id: str, folder: Path,
             within: Path | None) -> None:
    """BACKUP_ID's dumps (the database's, the accessories'), roles and record copied into FOLDER (made 0700 down
    from WITHIN), each dump's sha256 checked."""
    paths = layout_of(deployment.inventory)
    record = chosen(records(remote, deployment), backup_id, deployment)
    private_folder(folder, within=within)
    parts = record.data.get("accessories") or {}
    # Each dump with the sha256 its record gives it; the roles file has none to check against here.
    dumps = {paths.backup_dump(record.id): record.data.get("sha256"),
             **{paths.backup_accessory(record.id, name): part.get("sha256") for name, part in parts.items()}}
    with reporter.step(f"copy {record.id} to {folder}") as step:
        sftp = remote.conn.sftp()
        for remote_path in [*dumps, paths.backup_globals(record.id)]:
            local = folder / Path(remote_path).name
            partial = local.with_name(local.name + ".partial")
            with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as stream:
                sftp.getfo(remote_path, stream)
            partial.chmod(0o600)
            partial.replace(local)
        write_private(folder / f"{record.id}.json", json.dumps(record.data, sort_keys=True) + "\n")
        for remote_path, wanted in dumps.items():
            name = Path(remote_path).name
            digest = file_sha256(folder / name)
            if digest != wanted:
                raise SlipwayError(f"{deployment.name}: the copy of {name} has sha256 {digest}, the record says "
                                   f"{wanted}: do not use it")
        step.changed, step.detail = True, f"{backup_records.human_size(record.size)}, sha256 checked"
    print(reporter.summary())
    print(f"[{deployment.name}] {folder / (record.id + '.dump')}")


def prune(remote: Remote, reporter: Reporter, deployment: Deployment, dry_run: bool) -> None:
    """Retention now, without a backup: it only deletes, so it works on a full disk."""
    paths, seconds = layout_of(deployment.inventory), deployment.inventory.backup.timeout_seconds
    check_installed(remote, deployment, reporter)
    with reporter.step("retention over the backups on the server" + (" (dry run)" if dry_run else "")) as step:
        argv = limited(seconds, backups.prune_argv(paths, dry_run))
        result = remote.run(argv, timeout=seconds + 60, check=False)
        if result.failed:
            raise RemoteCommandFailed(deployment.name, shown(argv), result.exited, result.stderr or result.stdout)
        pruned = backup_records.parse_prune(result.stdout)
        freed = sum(size for _, size in pruned.backups)
        step.changed = not dry_run and bool(pruned.backups or pruned.records or pruned.leftovers)
        step.detail = f"{len(pruned.backups)} backups ({backup_records.human_size(freed)}), {pruned.kept} kept"
    print(reporter.summary())
    verb = "would delete" if dry_run else "deleted"
    for backup_id, size in pruned.backups:
        print(f"[{deployment.name}] {verb} backup {backup_id} ({backup_records.human_size(size)})")
    for backup_id in pruned.records:
        print(f"[{deployment.name}] {verb} the record of failed attempt {backup_id}")
    for name in pruned.leftovers:
        print(f"[{deployment.name}] {verb} {name}, left by an attempt that died")
    print(f"[{deployment.name}] {verb} {len(pruned.backups)} backups ({backup_records.human_size(freed)}); "
          f"{pruned.kept} backups kept")

