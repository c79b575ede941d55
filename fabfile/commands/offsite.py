"""The offsite restic repository: how restic names it (SFTP, S3 or a REST server), its snapshots' host and
tag, the backup host's pinned key; and, from the operator's machine (backup.prune-offsite), access with the
rights to delete there, the arguments of forget and snapshots, and what restic prints back."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote

from ..config import Inventory


def snapshot_host(app: str) -> str:
    """restic's --host for APP's snapshots: the same on a rebuilt server, so it finds them."""
    return f"slipway-{app}"


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


def offsite_known_hosts_text(inventory: Inventory) -> str:
    """The backup host's key, pinned from the inventory: never learnt on first connection."""
    sftp = inventory.backup.offsite.sftp
    name = sftp.host if sftp.port == 22 else f"[{sftp.host}]:{sftp.port}"
    return f"{name} {sftp.host_key}\n"


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
    return ["--host", snapshot_host(inventory.app.name), "--tag", f"slipway,{offsite_tag(inventory_name)}"]


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
