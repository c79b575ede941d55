"""Retention applied to an append-only offsite repository from the operator's machine (restic here, with
credentials the server never holds)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..commands import offsite
from ..commands.layout import layout_of
from ..config import Deployment
from ..errors import SlipwayError
from ..remote import Reporter
from .backups import last_line


def forget_offsite(deployment: Deployment, dry_run: bool) -> None:
    """restic on this machine: stale locks removed, the inventory's snapshots past retention forgotten (checked
    gone: an append-only server answers a delete with an error restic may only warn about), their data pruned."""
    inventory, name = deployment.inventory, deployment.name
    restic = _restic_here(deployment)
    reporter = Reporter(name)
    whose = f"{layout_of(inventory).offsite_host} ({offsite.offsite_tag(name)})"
    with tempfile.TemporaryDirectory(prefix="slipway-offsite-") as work:
        known_hosts = Path(work) / "known_hosts"
        if inventory.backup.offsite.sftp:
            known_hosts.write_text(offsite.offsite_known_hosts_text(inventory))
        repository = Repository(restic, deployment, offsite.admin_access(inventory, deployment.secret, str(known_hosts)))
        with reporter.step("remove stale locks (restic unlock)"):
            repository.run(offsite.OFFSITE_UNLOCK_ARGS, "unlock")
        backup = inventory.backup
        policy = (f"keep_last {backup.keep_last}, keep_daily {backup.keep_daily}, keep_weekly {backup.keep_weekly}, "
                  f"keep_monthly {backup.keep_monthly}")
        with reporter.step(f"forget {whose} past retention" + (" (dry run)" if dry_run else "")) as step:
            removed, kept = offsite.parse_forget(repository.run(
                offsite.offsite_forget_args(inventory, name, dry_run), "forget"))
            step.changed, step.detail = bool(removed) and not dry_run, f"{policy}: {len(removed)} of " \
                f"{len(removed) + len(kept)} snapshots"
        if removed and not dry_run:
            repository.check_forgotten(reporter, removed)
            with reporter.step("prune their data (restic prune)") as step:
                repository.run(offsite.OFFSITE_PRUNE_ARGS, "prune")
                step.changed = True
    print(reporter.summary())
    verb = "would forget" if dry_run else "forgot"
    for snapshot in removed:
        print(f"[{name}] {verb} snapshot {snapshot.short_id} of backup {snapshot.backup_id} (taken {snapshot.time})")
    print(f"[{name}] {verb} {len(removed)} offsite snapshots of {whose} in {repository.access.where}"
          + ("" if dry_run or not removed else ", and pruned their data") + f"; {len(kept)} kept")


def _restic_here(deployment: Deployment) -> str:
    """restic's path on this machine, once the inventory has an offsite repository and the secrets its admin access."""
    inventory = deployment.inventory
    if not inventory.backup.offsite:
        raise SlipwayError(f"{deployment.inventory_file}: backup.offsite: missing; backup.prune-offsite prunes the "
                           "offsite repository backups are copied to")
    restic = shutil.which("restic")
    if not restic:
        raise SlipwayError("restic is not installed on this machine: backup.prune-offsite runs it here, not on the "
                           "server (apt-get install restic; ./scripts/setup installs it)")
    for key_path, secret_name in offsite.admin_secrets(inventory):
        if secret_name not in deployment.secrets or not deployment.secret(secret_name):
            raise SlipwayError(f"{deployment.secrets_file}: {secret_name}: missing or empty; expected a line "
                               f"{secret_name}=... because {deployment.inventory_file} uses it at {key_path} "
                               "(backup.prune-offsite reads it here; the server never gets it)")
    return restic


class Repository:
    """The offsite repository as restic on this machine reaches it with the admin access."""

    def __init__(self, restic: str, deployment: Deployment, access):
        self.restic, self.deployment, self.access = restic, deployment, access

    def run(self, args: list[str], what: str) -> str:
        name, seconds = self.deployment.name, self.deployment.inventory.backup.timeout_seconds
        try:
            result = subprocess.run([self.restic, *self.access.options, *args], env=self.access.env(dict(os.environ)),
                                    capture_output=True, text=True, timeout=seconds, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise SlipwayError(f"{name}: restic {what} did not finish in {seconds}s (backup.timeout_seconds) "
                               f"against {self.access.where}") from None
        if result.returncode != 0:
            said = offsite.without_credentials(last_line(result.stderr or result.stdout))
            raise SlipwayError(f"{name}: restic {what} on this machine failed against {self.access.where}: {said}")
        return result.stdout

    def check_forgotten(self, reporter: Reporter, removed: list) -> None:
        """An append-only server answers a delete with an error restic may only warn about: look."""
        inventory, name = self.deployment.inventory, self.deployment.name
        with reporter.step("forgotten snapshots are gone"):
            left = {s.id for s in offsite.parse_snapshots(self.run(
                offsite.offsite_snapshots_args(inventory, name), "snapshots"))}
            refused = [s for s in removed if s.id in left]
            if refused:
                raise SlipwayError(f"{name}: {self.access.where} kept {len(refused)} of the {len(removed)} snapshots "
                                   "restic was told to forget: it is append-only for these credentials (give "
                                   "backup.offsite's admin_url or admin credentials that may delete)")
