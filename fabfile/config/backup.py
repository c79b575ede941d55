"""The database, its backups on the server, and their encrypted copy offsite (SFTP, S3 or a REST server)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from ..fields import Calendar, DatabaseName, DatabaseUser, EnvKey, Hostname, Image, LocalFile, Name, Port, matching
from .section import Section


class Database(Section):
    image: Image = Field(description="a PostgreSQL image reference like postgres:16")
    name: DatabaseName = Field(description="the database name")
    user: DatabaseUser = Field(description="the database user")
    password_secret: EnvKey = Field(description="the name of the secret holding the database password")
    volume: Name = "pgdata"


HOST_KEY_RULE = r"(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}"
REMOTE_PATH_RULE = r"(/[A-Za-z0-9_][A-Za-z0-9._-]*)+"


class OffsiteSftp(Section):
    """A restic repository on another host, reached over SFTP with a key slipway makes on the server."""

    host: Hostname
    port: Port = 22
    user: Name = Field(description="the account on the backup host whose authorized_keys gets the server's key")
    path: Annotated[str, matching(REMOTE_PATH_RULE, "an absolute path like /srv/restic/shop")]
    host_key: Annotated[str, matching(HOST_KEY_RULE, "the backup host's public host key, like \"ssh-ed25519 AAAA...\" "
                                      "(from its /etc/ssh/ssh_host_ed25519_key.pub, read there, not over the network)")]
    admin_user: Name | None = Field(None, description="the account backup.prune-offsite logs in to from your "
                                    "machine, with your own SSH key; default: user")
    admin_key_file: LocalFile | None = Field(None, description="the SSH key backup.prune-offsite logs in with; "
                                             "default: your ssh's own keys and agent")


class OffsiteS3(Section):
    """A restic repository in an S3-compatible store."""

    endpoint: Annotated[str, matching(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?", "a URL like https://s3.example.com")]
    bucket: Annotated[str, matching(r"(?!.*\.\.)(?![0-9]+(\.[0-9]+){3}$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
                                    "an S3 bucket name (3 to 63 lowercase letters, digits, . and -; no .., not "
                                    "like an IP address)")]
    prefix: Annotated[str, matching(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*", "a folder in the bucket, like shop")]
    access_key_secret: EnvKey = Field(description="the secret holding the access key id")
    secret_key_secret: EnvKey = Field(description="the secret holding the secret access key")
    admin_access_key_secret: EnvKey | None = Field(None, description="the secret holding the access key id "
                                                   "backup.prune-offsite uses, on your machine (a key that may delete)")
    admin_secret_key_secret: EnvKey | None = Field(None, description="the secret holding that key's secret access key")

    @model_validator(mode="after")
    def _admin_key_is_a_pair(self) -> OffsiteS3:
        if (self.admin_access_key_secret is None) != (self.admin_secret_key_secret is None):
            raise ValueError("expected both admin_access_key_secret and admin_secret_key_secret (the key "
                             "backup.prune-offsite uses), or neither")
        return self


# An https:// URL without credentials (they come from the secrets file): host, port, the repository's path.
REST_URL_RULE = r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._-]+)*/?"
REST_USER_RULE = r"[A-Za-z0-9._-]+"


class OffsiteRest(Section):
    """A restic repository on a REST server (restic's rest-server), over HTTPS with a user of its htpasswd file."""

    url: Annotated[str, matching(REST_URL_RULE, "an https:// URL of the repository without credentials, like "
                                 "https://backup.example.com:8000/shop")]
    user: Annotated[str, matching(REST_USER_RULE, "a user name of the REST server's htpasswd file (letters, "
                                  "digits, ., _ and -)")]
    password_secret: EnvKey = Field(description="the secret holding that user's password (it goes to the server)")
    ca_bundle: LocalFile | None = Field(None, description="a PEM file of the CA that signs the REST server's "
                                        "certificate (a private CA's; public CAs need none)")
    admin_url: Annotated[str, matching(REST_URL_RULE, "an https:// URL of the same repository on a REST server "
                                       "that may delete, like https://127.0.0.1:8001/shop")] | None = Field(
        None, description="where backup.prune-offsite reaches the repository from your machine; default: url")
    admin_user: Annotated[str, matching(REST_USER_RULE, "a user name of that server's htpasswd file")] | None = Field(
        None, description="the user backup.prune-offsite logs in as; default: user")
    admin_password_secret: EnvKey | None = Field(None, description="the secret holding admin_user's password; only "
                                                 "backup.prune-offsite reads it, on your machine; default: "
                                                 "password_secret")


class Offsite(Section):
    """An encrypted copy of every good backup in a restic repository, with the same retention (applied by the
    server, or with append_only by backup.prune-offsite from the operator's machine)."""

    sftp: OffsiteSftp | None = None
    s3: OffsiteS3 | None = None
    rest: OffsiteRest | None = None
    append_only: bool = Field(False, description="true: the server only adds to the repository and never forgets; "
                                                 "backup.prune-offsite applies retention from your machine")
    password_secret: EnvKey = Field(description="the secret holding the restic repository's password (keep a copy "
                                                "away from the server: without it the copy cannot be read)")
    check_schedule: Calendar | None = Field("Sun *-*-* 05:00:00", description="when `restic check` reads part of "
                                            "the repository's data back; null: never on a schedule")
    check_subset: Annotated[str, matching(r"([1-9][0-9]?|100)%", "a percentage like 10%")] = "10%"

    @model_validator(mode="after")
    def _one_repository(self) -> Offsite:
        if [self.sftp, self.s3, self.rest].count(None) != 2:
            raise ValueError("expected exactly one of sftp, s3 or rest")
        return self

    @model_validator(mode="after")
    def _append_only_can_be_pruned(self) -> Offsite:
        # The server's own credentials cannot delete there: backup.prune-offsite needs others.
        rest = self.rest
        if self.append_only and rest and not (rest.admin_url or rest.admin_password_secret):
            raise ValueError("expected rest.admin_url or rest.admin_password_secret with append_only: true "
                             "(backup.prune-offsite cannot forget with the server's own append-only credentials)")
        if self.append_only and self.s3 and not self.s3.admin_access_key_secret:
            raise ValueError("expected s3.admin_access_key_secret and s3.admin_secret_key_secret with append_only: "
                             "true (the server's key must not delete; backup.prune-offsite uses one that may)")
        return self


class Backup(Section):
    """Backups of the database: taken on the server by a systemd timer, or by `backup`."""

    schedule: Calendar = "*-*-* 03:00:00"
    verify_schedule: Calendar | None = Field("Sun *-*-* 04:30:00", description="when the newest backup is restored "
                                             "into a throwaway database and checked; null: never on a schedule")
    keep_last: int = Field(3, ge=1, le=1000, description="how many of the newest good backups are always kept")
    keep_daily: int = Field(7, ge=0, le=1000)
    keep_weekly: int = Field(4, ge=0, le=1000)
    keep_monthly: int = Field(6, ge=0, le=1000)
    before_deploy: bool = Field(True, description="take a backup before a deploy that runs a release_command")
    max_age_hours: int = Field(26, ge=1, le=8760, description="`backup.list --check` fails when the newest good "
                                                               "backup is older than this")
    timeout_seconds: int = Field(3600, ge=60, le=86400, description="the longest one backup may take")
    offsite: Offsite | None = None
    ping_url_secret: EnvKey | None = Field(None, description="the secret holding a healthchecks.io-style ping URL "
                                           "(pinged at URL/start, URL on success, URL/EXIT-CODE on failure)")
    metrics_dir: Annotated[str, matching(REMOTE_PATH_RULE, "an absolute path like /var/lib/prometheus/node-exporter")] = \
        Field("/var/lib/prometheus/node-exporter", description="node_exporter's textfile folder: a .prom file of the "
              "backups is kept there when the folder exists")
