"""The one validated model of a deployment: inventory YAML plus secrets .env.

`load` reads `inventories/NAME.yaml` and `inventories/NAME.env`, validates both
and returns a frozen `Deployment`, or raises `ConfigError` listing every
problem, each as `FILE: KEY.PATH: found X; expected Y`. Nothing here touches
the network, so bad input is refused before any SSH connection opens.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import re
import types
import typing
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import paramiko
import yaml
from cryptography.exceptions import UnsupportedAlgorithm
from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from .errors import ConfigError
from .fields import (ENV_KEY_RULE, NAME_RULE, AppDir, Calendar, Command, DatabaseName, DatabaseUser, DeployUser, EnvKey,
                     EnvValue, HealthPath, Hostname, Image, LocalFile, Name, Port, Route, Version, Volume, local_file,
                     matching)

# (key path below the model, the value found there, what was expected)
Problem = tuple[tuple[str | int, ...], Any, str]


def refuse(model: str, problems: list[Problem]) -> None:
    """Raise every problem a model validator found, each at its own key (a ValueError would name only the model)."""
    if problems:
        raise ValidationError.from_exception_data(model, [
            InitErrorDetails(type=PydanticCustomError("refused", "{expected}", {"expected": expected}), loc=loc, input=found)
            for loc, found, expected in problems])


def _repeats(values: list) -> list[int]:
    """The index of every value that an earlier one already had."""
    return [index for index, value in enumerate(values) if value in values[:index]]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Host(Section):
    address: Hostname = Field(description="the server's DNS name or IP address")
    port: Port = 22
    user: Name = "root"
    key_file: LocalFile | None = None
    known_hosts: LocalFile | None = None


class App(Section):
    name: Name = Field(description="the app's name, like shop")
    domains: list[Hostname] = Field(min_length=1, description="a list of the domain names the app answers on")
    base_dir: AppDir = Field(description="the app's directory on the server, like /srv/shop")
    version: Version = "latest"
    keep_releases: int = Field(5, ge=1, le=100)
    drain_seconds: int = Field(3, ge=0, le=300, description="how long old containers keep serving requests already sent to them")
    step_timeout_seconds: int = Field(300, ge=10, le=86400, description="the longest any one remote step may run before it is killed")
    ship_timeout_seconds: int = Field(1800, ge=10, le=86400, description="the longest shipping or pulling images may take")

    @model_validator(mode="after")
    def _domains_are_distinct(self) -> App:
        lowered = [domain.lower() for domain in self.domains]
        refuse("App", [(("domains", index), self.domains[index], "expected each domain once (DNS names ignore case)")
                       for index in _repeats(lowered)])
        return self


class HealthCheck(Section):
    path: HealthPath = Field(description="the URL path that answers 200 when the service is healthy, like /health")
    port: Port = Field(description="the container port the health path is served on")
    interval_seconds: int = Field(2, ge=1, le=300)
    timeout_seconds: int = Field(60, ge=1, le=3600)
    command: Command | None = Field(None, description="a command run inside the container that exits 0 when healthy; "
                                    "default: none; slipway probes the path over HTTP from the host, "
                                    "which needs nothing in the image")


class Service(Section):
    image: Image = Field(description="an image reference like registry.example.com/team/api")
    command: Command | None = None
    env: dict[EnvKey, EnvValue] = {}
    secrets: list[EnvKey] = []
    ports: list[Port] = []
    healthcheck: HealthCheck | None = None
    volumes: list[Volume] = []
    replicas: int = Field(1, ge=1, le=20)
    behind_nginx: bool = False
    route: Route = Field("/", description="the URL path prefix nginx sends to this service")
    release_command: Command | None = Field(None, description="a command run once in a new container of this service before traffic moves (migrations)")
    release_command_timeout_seconds: int = Field(600, ge=1, le=86400, description="how long the release command may run before it is killed")
    memory_mb: int | None = Field(None, ge=16, le=1048576)
    # Docker's smallest CPU quota is 0.01 CPUs.
    cpus: float | None = Field(None, ge=0.01, le=256)
    stop_grace_seconds: int = Field(30, ge=1, le=3600)

    @model_validator(mode="after")
    def _web_services_can_be_health_gated(self) -> Service:
        if self.behind_nginx and self.healthcheck is None:
            raise ValueError("expected a healthcheck (path and port) for a service behind nginx, so traffic only reaches healthy containers")
        if self.behind_nginx and not self.ports:
            raise ValueError("expected at least one port for a service behind nginx")
        return self

    @model_validator(mode="after")
    def _ports_and_mounts_are_distinct(self) -> Service:
        # Compose refuses a port listed twice and two volumes on one container path.
        targets = [volume.split(":")[1] for volume in self.volumes]
        refuse("Service", [(("ports", index), self.ports[index], "expected each port once")
                           for index in _repeats(self.ports)]
               + [(("volumes", index), self.volumes[index], f"expected one volume per container path; "
                   f"{targets[index]} is mounted already") for index in _repeats(targets)])
        return self


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


class AuthorizedKey(Section):
    """An OpenSSH public key, read from the file the inventory names."""

    source: Path
    line: str


def _read_public_key(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, (str, Path)):
        return value
    path = local_file(Path(value), info)
    fields = path.read_text().split()
    if len(fields) < 2 or not (fields[0].startswith("ssh-") or fields[0].startswith("ecdsa-") or fields[0].startswith("sk-")):
        raise ValueError(f"expected an OpenSSH public key file like id_ed25519.pub (read {path})")
    return {"source": path, "line": " ".join(fields[:3])}


def public_half(key_file: Path) -> tuple[str, str] | None:
    """(type, base64 body) of the private key KEY_FILE's public key, else of KEY_FILE.pub beside it (an encrypted
    key cannot be read without its passphrase, which is never asked for here); None when neither can be read."""
    try:
        key = paramiko.PKey.from_path(key_file)
        return key.get_name(), key.get_base64()
    except (paramiko.SSHException, paramiko.UnknownKeyType, UnsupportedAlgorithm, ValueError, TypeError, OSError):
        pass
    try:
        key_type, body = Path(f"{key_file}.pub").read_text().split()[:2]
        base64.b64decode(body, validate=True)
    except (OSError, ValueError):
        return None
    return key_type, body


def fingerprint(key_type: str, body: str) -> str:
    """The key as `ssh-keygen -l` shows it: TYPE SHA256:..."""
    digest = base64.b64encode(hashlib.sha256(base64.b64decode(body)).digest()).decode().rstrip("=")
    return f"{key_type} SHA256:{digest}"


TIMEZONE_RULE = r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*"


class Docker(Section):
    packages: Literal["distro", "repository"] = Field(
        "distro", description="distro (the distribution's docker.io) or repository (docker-ce from Docker's apt repository)")
    repository_url: Annotated[str, matching(r"https://\S+", "an https:// URL of Docker's apt repository for this OS")] | None = None
    log_max_size: Annotated[str, matching(r"[1-9][0-9]*[kmg]", "a size like 10m")] = "10m"
    log_max_file: int = Field(3, ge=1, le=100)
    containerd_image_store: bool | None = Field(
        None, description="true or false to choose Docker's image store; unset: the Docker version's default "
                          "(containerd from Docker 29 on new installs)")

    @model_validator(mode="after")
    def _repository_needs_its_url(self) -> Docker:
        if self.packages == "repository" and not self.repository_url:
            raise ValueError("expected repository_url (Docker's apt repository for this OS) when packages is repository")
        return self


# nginx publishes these on the server.
WEB_PORTS = (80, 443)


class Server(Section):
    deploy_user: DeployUser = "deploy"
    authorized_keys: list[Annotated[AuthorizedKey, BeforeValidator(_read_public_key)]] = Field(
        min_length=1, description="a list of public key files (like ~/.ssh/id_ed25519.pub) for the deploy user")
    ssh_port: Port = Field(22, description="the port sshd listens on, on the server (the firewall lets it in)")
    timezone: Annotated[str, matching(TIMEZONE_RULE, "a zone name like Etc/UTC or Europe/Berlin")] = "Etc/UTC"
    swap_mb: int = Field(0, ge=0, le=262144)
    docker: Docker = Docker()

    @model_validator(mode="after")
    def _ssh_keeps_off_the_web_ports(self) -> Server:
        if self.ssh_port in WEB_PORTS:
            refuse("Server", [(("ssh_port",), self.ssh_port, "expected a port other than 80 and 443 (nginx listens "
                                                              "on those)")])
        return self


class Nginx(Section):
    image: Image = "nginx:stable"
    rate_limit: int = Field(20, ge=1, le=100000, description="requests per second allowed from one client address")
    burst: int = Field(40, ge=0, le=100000)
    client_max_body_size: Annotated[str, matching(r"[0-9]+[kmg]?", "a size like 10m")] = "10m"


# Names no public CA issues for (RFC 2606, 6761, 6762 and the like): an app on them serves HTTP unless told otherwise.
PRIVATE_SUFFIXES = ("localhost", "local", "test", "example", "invalid", "internal", "lan", "home.arpa")
IPV4_RULE = r"[0-9]+(\.[0-9]+){3}"
ACME_DIRECTORIES = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
EMAIL_RULE = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"


def is_public_name(domain: str) -> bool:
    """A name a public ACME CA could issue for: a dotted DNS name, not an address or a reserved suffix."""
    lowered = domain.lower()
    return ("." in lowered and not re.fullmatch(IPV4_RULE, lowered)
            and not any(lowered == suffix or lowered.endswith("." + suffix) for suffix in PRIVATE_SUFFIXES))


class Hsts(Section):
    """Strict-Transport-Security: browsers use only HTTPS for the site for max_age_seconds."""

    enabled: bool = True
    max_age_seconds: int = Field(63072000, ge=0, le=63072000, description="how long browsers remember (2 years)")
    include_subdomains: bool = False
    preload: bool = Field(False, description="ask to be preloaded into browsers (hard to undo: off unless asked)")

    @model_validator(mode="after")
    def _preload_rules(self) -> Hsts:
        if self.preload and not (self.include_subdomains and self.max_age_seconds >= 31536000):
            raise ValueError("expected include_subdomains: true and max_age_seconds of at least 31536000 with "
                             "preload (the preload list accepts nothing less)")
        return self


class Tls(Section):
    """HTTPS for the app's domains: one certificate from an ACME CA (certbot on the server), or the user's own."""

    enabled: bool | None = Field(None, description="true or false; unset: on when every domain is a public DNS name")
    acme_directory: Annotated[str, matching(r"letsencrypt|staging|https://\S+", "letsencrypt, staging or an "
                                            "https:// ACME directory URL")] = "letsencrypt"
    ca_bundle: LocalFile | None = Field(None, description="a PEM file of the CA that signs the ACME server's own "
                                        "HTTPS certificate (a private CA's; public CAs need none)")
    email: Annotated[str, matching(EMAIL_RULE, "an email address for the CA's expiry notices")] | None = None
    hsts: Hsts = Hsts()
    canonical_host: Hostname | None = Field(None, description="the one domain the site is served on; the other "
                                            "domains answer with a 301 to it")
    certificate_file: LocalFile | None = Field(None, description="a PEM certificate chain of your own (instead of ACME)")
    key_file: LocalFile | None = Field(None, description="the PEM private key of certificate_file (kept secret)")

    @property
    def acme_url(self) -> str:
        return ACME_DIRECTORIES.get(self.acme_directory, self.acme_directory)

    @property
    def uses_acme(self) -> bool:
        return self.certificate_file is None

    @model_validator(mode="after")
    def _own_certificate_is_a_pair(self) -> Tls:
        if (self.certificate_file is None) != (self.key_file is None):
            raise ValueError("expected both certificate_file and key_file (your own certificate), or neither (ACME)")
        return self


class Images(Section):
    source: Literal["ship", "registry"] = Field(
        "ship", description="ship (docker save | docker load over SSH) or registry (docker pull on the server)")
    registry: Annotated[str, matching(r"[A-Za-z0-9.-]+(:[0-9]+)?", "a registry address like registry.example.com or 127.0.0.1:5000")] | None = None
    # HTTP basic auth ends the user name at the first colon.
    username: Annotated[str, matching(r"[!-9;-~]+", "a registry user name of visible characters, without spaces "
                                      "or colons")] | None = None
    password_secret: EnvKey | None = None

    @model_validator(mode="after")
    def _registry_needs_an_address(self) -> Images:
        if self.source == "registry" and not self.registry:
            raise ValueError("expected registry (host[:port]) when source is registry")
        if (self.username is None) != (self.password_secret is None):
            raise ValueError("expected both username and password_secret (for docker login), or neither")
        return self


DNS_LABEL_MAX = 63
# What the step that stops old containers keeps for starting the new workers after them.
WORKER_START_SECONDS = 30


class Inventory(Section):
    host: Host
    server: Server
    app: App
    services: dict[Name, Service] = Field(min_length=1)
    database: Database | None = None
    backup: Backup = Backup()
    nginx: Nginx = Nginx()
    images: Images = Images()
    tls: Tls = Tls()

    @property
    def tls_enabled(self) -> bool:
        if self.tls.enabled is not None:
            return self.tls.enabled
        return all(is_public_name(domain) for domain in self.app.domains)

    @model_validator(mode="after")
    def _tls_fits_the_domains(self) -> Inventory:
        tls = self.tls
        if tls.canonical_host is not None and tls.canonical_host not in self.app.domains:
            raise ValueError(f"expected tls.canonical_host to be one of app.domains ({', '.join(self.app.domains)}); "
                             f"found {tls.canonical_host!r}")
        if self.tls_enabled and tls.uses_acme:
            addresses = [domain for domain in self.app.domains if re.fullmatch(IPV4_RULE, domain)]
            if addresses:
                raise ValueError(f"expected DNS names in app.domains when tls certificates come from ACME (HTTP-01 "
                                 f"validates names), or tls.enabled: false; found {', '.join(addresses)}")
        return self

    @model_validator(mode="after")
    def _routes_are_distinct(self) -> Inventory:
        routes = [service.route for service in self.services.values() if service.behind_nginx]
        duplicates = sorted({route for route in routes if routes.count(route) > 1})
        if duplicates:
            raise ValueError(f"expected each service behind nginx to have its own route; {', '.join(duplicates)} is used twice")
        if "db" in self.services or "nginx" in self.services:
            raise ValueError("expected service names other than db and nginx (slipway runs those itself)")
        return self

    @model_validator(mode="after")
    def _app_folder_is_not_the_deploy_home(self) -> Inventory:
        home = f"/home/{self.server.deploy_user}"
        if str(self.app.base_dir) == home:
            refuse("Inventory", [(("app", "base_dir"), home, f"expected a folder of its own, like {home}/{self.app.name}, "
                                  f"not the home of server.deploy_user ({self.server.deploy_user}) itself")])
        return self

    @model_validator(mode="after")
    def _operator_key_is_authorized(self) -> Inventory:
        # Every task after provision logs in as the deploy user with host.key_file: without that key among
        # the deploy user's, provision would shut them all out.
        operator_key = public_half(self.host.key_file) if self.host.key_file else None
        keys = self.server.authorized_keys
        if operator_key and operator_key not in [tuple(key.line.split()[:2]) for key in keys]:
            refuse("Inventory", [(("server", "authorized_keys"), [key.source.name for key in keys], (
                f"expected the public half of host.key_file ({self.host.key_file}: {fingerprint(*operator_key)}) "
                f"among them: every task after provision logs in as {self.server.deploy_user} with that key"))])
        return self

    @model_validator(mode="after")
    def _network_names_are_labels_of_their_own(self) -> Inventory:
        from .commands.layout import SLOTS, Layout  # layout is built on this module's models

        app = self.app.name
        layout = Layout(app, str(self.app.base_dir))
        # The names slipway gives on the app network, which Docker's DNS answers to: slot aliases, the db's and
        # nginx's containers, and the containers of a release project (APP-<release id>, see new_release_id).
        slipway_names = re.compile(rf"{re.escape(app)}-(({'|'.join(SLOTS)})-.+|(db|nginx)-[0-9]+"
                                   r"|[0-9]{8}-[0-9]{6}(-.*)?)")
        problems: list[Problem] = []
        for name, service in self.services.items():
            longest = max((layout.slot_alias(slot, name) for slot in SLOTS), key=len)
            if service.behind_nginx and len(longest) > DNS_LABEL_MAX:
                problems.append((("services", name), name, (
                    f"expected a shorter name: nginx finds this service as {longest}, {len(longest)} characters, and "
                    f"a DNS label holds at most {DNS_LABEL_MAX} (app.name and the service name together at most "
                    f"{DNS_LABEL_MAX - len(longest) + len(app) + len(name)})")))
            if slipway_names.fullmatch(name):
                problems.append((("services", name), name, (
                    f"expected a name unlike those slipway gives on the app network ({app}-blue-*, {app}-green-*, "
                    f"{app}-db-N, {app}-nginx-N, {app}-<release id>-*), so no name there answers for two containers")))
        refuse("Inventory", problems)
        return self

    @model_validator(mode="after")
    def _old_containers_stop_within_the_step(self) -> Inventory:
        # The step after the switch waits app.drain_seconds, stops the old containers (each gets its
        # stop_grace_seconds) and only then starts the new workers: killed at app.step_timeout_seconds, it
        # would leave no worker running.
        app = self.app
        longest_grace = app.step_timeout_seconds - app.drain_seconds - WORKER_START_SECONDS
        refuse("Inventory", [
            (("services", name, "stop_grace_seconds"), service.stop_grace_seconds, (
                f"expected at most {longest_grace}: app.step_timeout_seconds ({app.step_timeout_seconds}) minus "
                f"app.drain_seconds ({app.drain_seconds}) minus {WORKER_START_SECONDS} s to start the new workers, "
                "or the step that stops the old containers is killed before the new workers start"))
            for name, service in self.services.items() if service.stop_grace_seconds > longest_grace])
        return self

    @model_validator(mode="after")
    def _volumes_keep_off_slipways_own(self) -> Inventory:
        base = self.app.base_dir
        problems: list[Problem] = []
        for name, service in self.services.items():
            for index, volume in enumerate(service.volumes):
                source = volume.split(":")[0]
                if self.database and source == self.database.volume:
                    problems.append((("services", name, "volumes", index), volume, (
                        f"expected a volume other than database.volume ({source}): it holds the database's files")))
                elif source.startswith("/") and (base == PurePosixPath(source) or base in PurePosixPath(source).parents):
                    problems.append((("services", name, "volumes", index), volume, (
                        f"expected a host folder outside app.base_dir ({base}), which holds slipway's releases, "
                        "state and secrets; ./folder is a folder of the app's own there (in shared/)")))
        refuse("Inventory", problems)
        return self


class Deployment(BaseModel):
    """An inventory with its secrets: what every task works from."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    inventory_file: Path
    secrets_file: Path
    inventory: Inventory
    secrets: dict[str, SecretStr]

    def secret(self, key: str) -> str:
        return self.secrets[key].get_secret_value()


def load(inventory_dir: Path, name: str) -> Deployment:
    """Read and validate inventory NAME and its secrets; raise ConfigError with every problem."""
    if not re.fullmatch(NAME_RULE, name):
        raise ConfigError([f"inventory name {name!r}: expected a plain name like 'prod' (lowercase letters, digits, - and _)"])
    inventory_file = inventory_dir / f"{name}.yaml"
    secrets_file = inventory_dir / f"{name}.env"
    label = _display_path(inventory_file)

    raw = _read_yaml(inventory_file)
    secrets = _read_secrets(secrets_file) if secrets_file.exists() else None
    secrets_label = _display_path(secrets_file)
    try:
        inventory = Inventory.model_validate(raw, context={"inventory_dir": inventory_dir})
    except ValidationError as error:
        # The secrets file is checked against what the inventory names even when the inventory
        # itself is wrong, so one run shows every problem.
        problems = [f"{label}: {problem}" for problem in describe_validation_errors(error, raw)]
        problems += [f"{secrets_label}: {problem}"
                     for problem in missing_secrets(_raw_references(raw), secrets, label)]
        raise ConfigError(problems) from None

    problems = [f"{secrets_label}: {problem}" for problem in missing_secrets(referenced_secrets(inventory), secrets, label)]
    if problems:
        raise ConfigError(problems)
    return Deployment(
        name=name,
        inventory_file=inventory_file,
        secrets_file=secrets_file,
        inventory=inventory,
        secrets={key: SecretStr(value) for key, value in (secrets or {}).items()},
    )


def referenced_secrets(inventory: Inventory) -> list[tuple[str, str]]:
    """(key path in the inventory, secret name) for every secret the inventory uses."""
    references = [
        (f"services.{service_name}.secrets[{index}]", key)
        for service_name, service in inventory.services.items()
        for index, key in enumerate(service.secrets)
    ]
    if inventory.database:
        references.append(("database.password_secret", inventory.database.password_secret))
    if inventory.images.password_secret:
        references.append(("images.password_secret", inventory.images.password_secret))
    if inventory.backup.ping_url_secret:
        references.append(("backup.ping_url_secret", inventory.backup.ping_url_secret))
    offsite = inventory.backup.offsite
    if offsite:
        references.append(("backup.offsite.password_secret", offsite.password_secret))
        if offsite.s3:
            references.append(("backup.offsite.s3.access_key_secret", offsite.s3.access_key_secret))
            references.append(("backup.offsite.s3.secret_key_secret", offsite.s3.secret_key_secret))
        if offsite.rest:
            references.append(("backup.offsite.rest.password_secret", offsite.rest.password_secret))
    # The admin_* secrets are not among them: only backup.prune-offsite reads those (commands.backup.admin_secrets),
    # so a machine that only deploys need not hold credentials that can delete offsite copies.
    return references


def _raw_references(raw: dict) -> list[tuple[str, str]]:
    """referenced_secrets for an inventory that did not validate: every well-formed name it uses."""
    def section(key: str) -> dict:
        value = raw.get(key)
        return value if isinstance(value, dict) else {}

    references = []
    for service_name, service in section("services").items():
        names = service.get("secrets") if isinstance(service, dict) else None
        for index, key in enumerate(names if isinstance(names, list) else []):
            references.append((f"services.{service_name}.secrets[{index}]", key))
    references.append(("database.password_secret", section("database").get("password_secret")))
    references.append(("images.password_secret", section("images").get("password_secret")))
    references.append(("backup.ping_url_secret", section("backup").get("ping_url_secret")))
    offsite = section("backup").get("offsite")
    offsite = offsite if isinstance(offsite, dict) else {}
    s3 = offsite.get("s3") if isinstance(offsite.get("s3"), dict) else {}
    references.append(("backup.offsite.password_secret", offsite.get("password_secret")))
    references.append(("backup.offsite.s3.access_key_secret", s3.get("access_key_secret")))
    references.append(("backup.offsite.s3.secret_key_secret", s3.get("secret_key_secret")))
    rest = offsite.get("rest") if isinstance(offsite.get("rest"), dict) else {}
    references.append(("backup.offsite.rest.password_secret", rest.get("password_secret")))
    return [(path, key) for path, key in references if isinstance(key, str) and re.fullmatch(ENV_KEY_RULE, key)]


def missing_secrets(references: list[tuple[str, str]], secrets: dict[str, str] | None, inventory_label: str) -> list[str]:
    if secrets is None:
        if not references:
            return []
        return [f"not found; expected it to define {', '.join(sorted({key for _, key in references}))} (copy inventories/example.env)"]
    problems = []
    for key_path, key in references:
        if key not in secrets:
            problems.append(f"{key}: missing; expected a line {key}=... because {inventory_label} uses it at {key_path}")
        elif not secrets[key]:
            problems.append(f"{key}: found an empty value; expected a non-empty secret (used at {key_path})")
        elif "'" in secrets[key] or "\n" in secrets[key]:
            problems.append(f"{key}: expected a value without single quotes or newlines (compose env files cannot carry them)")
    return problems


def describe_validation_errors(error: ValidationError, raw: Any) -> list[str]:
    """Turn pydantic's errors into `KEY.PATH: found X; expected Y` lines."""
    lines = []
    for item in error.errors(include_url=False):
        location = item["loc"]
        path = format_key_path(location)
        kind = item["type"]
        if kind == "missing":
            lines.append(f"{path}: missing; expected {_describe_expected(location)}")
        elif kind == "extra_forbidden":
            allowed = allowed_keys(location[:-1])
            hint = difflib.get_close_matches(str(location[-1]), allowed, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            lines.append(f"{path}: unknown key{suggestion}; expected one of: {', '.join(allowed)}")
        else:
            expected = _phrase_expectation(item["msg"])
            prefix = f"{path}: " if path else ""
            if isinstance(item["input"], dict) and kind == "value_error":
                lines.append(f"{prefix}{expected}")
            else:
                lines.append(f"{prefix}found {_show(item['input'])}; {expected}")
    return lines


def format_key_path(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def allowed_keys(location: tuple[int | str, ...]) -> list[str]:
    model = _model_at(location)
    return sorted(model.model_fields) if model else []


def _model_at(location: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validates the mapping at this key path, if any."""
    annotation: Any = Inventory
    for part in location:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
        elif typing.get_origin(annotation) in (dict, list):
            annotation = typing.get_args(annotation)[-1]
        else:
            return None
    annotation = _unwrap(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] and Annotated[...] down to the type that validates."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            annotation = members[0]
        else:
            return annotation


def _describe_expected(location: tuple[int | str, ...]) -> str:
    model = _model_at(location)
    if model:
        required = [name for name, field in model.model_fields.items() if field.is_required()]
        return f"a mapping with {', '.join(required)}" if required else "a mapping"
    parent = _model_at(location[:-1])
    field = parent.model_fields.get(str(location[-1])) if parent else None
    if field is not None and field.description:
        return field.description
    return "a value"


_PYDANTIC_PHRASES = (
    ("Input should be ", "expected "),
    ("Value error, ", ""),
    ("List should have at least ", "expected at least "),
    ("Dictionary should have at least ", "expected at least "),
)


def _phrase_expectation(message: str) -> str:
    for prefix, replacement in _PYDANTIC_PHRASES:
        if message.startswith(prefix):
            message = replacement + message[len(prefix):]
            break
    if not message.startswith("expected"):
        message = "expected " + message[0].lower() + message[1:]
    return message


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_yaml(path: Path) -> Any:
    label = _display_path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError([f"{label}: not found; expected an inventory file (start from inventories/example.yaml)"]) from None
    except OSError as error:
        raise ConfigError([f"{label}: cannot be read ({error.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError([f"{label}{where}: not valid YAML ({problem})"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{label}: found {type(data).__name__}; expected a mapping with host, app and services"])
    return data


def _read_secrets(path: Path) -> dict[str, str]:
    # Literally: a `${X}` or `$X` inside a password is part of the password.
    return {key: value or "" for key, value in dotenv_values(path, interpolate=False).items()}


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
