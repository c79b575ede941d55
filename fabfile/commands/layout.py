"""Where a deployment's things live on the server, what Docker objects are called,
and which image each service runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePosixPath

from ..config import Inventory, Service
from ..config.app import Container


# Two slots take turns: the serving release's web containers answer as the live slot's names, the
# next release's as the other's; nginx picks the slot per request (see templates/app/nginx.conf.j2).
SLOTS = ("blue", "green")
# The slot whose marker file exists serves; without it, the first slot does.
MARKED_SLOT = SLOTS[1]
SLOT_MARKER = f"{MARKED_SLOT}-serves"
# While this page is in the traffic folder, nginx answers the app's requests with it, as a 503.
MAINTENANCE_PAGE = "maintenance.html"
# certbot's own folder, where the nginx container sees it too.
LETSENCRYPT = "/etc/letsencrypt"
# Where the database container reads its password file.
DB_PASSWORD_MOUNT = "/run/slipway/db-password"
# Where nginx sees the traffic folder (the live config's folder is mounted as conf.d).
CONTAINER_TRAFFIC_DIR = "/etc/nginx/conf.d/traffic"


def other_slot(slot: str) -> str:
    return SLOTS[1 - SLOTS.index(slot)]


def new_release_id(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S")


class _Fields:
    """OBJECT's attributes as str.format_map's fields; a field in capitals is one of this module's constants."""

    def __init__(self, obj):
        self.obj = obj

    def __getitem__(self, name: str) -> str:
        return globals()[name] if name.isupper() else getattr(self.obj, name)


def path(template: str) -> property:
    """A path (or a name) made from TEMPLATE, whose {fields} are the object's other attributes (see _Fields)."""
    return property(lambda self: template.format_map(_Fields(self)))


@dataclass(frozen=True)
class Layout:
    """Where one app's things live on the server, and what its Docker objects are called: one table, so that
    no two capabilities name the same place differently."""

    app: str
    base: str

    # Releases, and what every release shares.
    releases = path("{base}/releases")
    current = path("{base}/current")
    shared = path("{base}/shared")
    # The password a new database is created with (PostgreSQL keeps its own afterwards): a file, so that
    # the database container's settings do not change when the password does.
    db_password_file = path("{shared}/db/password")
    # nginx's live config; which slot serves (a marker file) and which release each slot holds (a file per slot).
    live_nginx_conf = path("{shared}/nginx/app.conf")
    traffic_dir = path("{shared}/nginx/traffic")
    slot_marker = path("{traffic_dir}/{SLOT_MARKER}")
    maintenance_page = path("{traffic_dir}/{MAINTENANCE_PAGE}")
    # The accessories' environment files, one per accessory.
    accessories_dir = path("{shared}/accessories")
    # The runs' own state: lock, audit log, what was shipped.
    state_dir = path("{base}/.slipway")
    audit_log = path("{state_dir}/audit.log")
    lock_file = path("{state_dir}/deploy.lock")
    lock_info = path("{state_dir}/lock.json")
    steps_lock = path("{state_dir}/steps.lock")
    shipped_images = path("{state_dir}/shipped-images")
    # The layout version the last deploy laid out (see upgrade.py).
    layout_record = path("{state_dir}/layout")
    # Docker's names.
    network = path("{app}_app")
    # Where nginx reaches the web containers at the addresses slipway gives them (see addresses.py).
    slot_network = path("{app}_slots")
    infra_project = path("{app}")
    nginx_container = path("{app}-nginx-1")
    db_container = path("{app}-db-1")
    # Settings only root reads (and the deploy user, where said).
    settings = path("/etc/slipway/{app}")
    # Backups: dumps and records, their settings, the throwaway database that verifies one.
    backups = path("{base}/backups")
    backup_uploads = path("{backups}/.uploads")
    backup_conf = path("{settings}/backup.conf")
    # The offsite repository's password and keys (a REST repository's URL with its credentials), and the
    # ping URL: 0600, the deploy user's.
    backup_secrets = path("{settings}/backup.env")
    verify_container = path("{app}-backup-verify")
    # The server's own SSH key for the backup host (made on the server; only its public half leaves), the
    # host's key, and the CA bundle a REST repository's certificate is checked with (public).
    offsite_key = path("{settings}/offsite_ed25519")
    offsite_known_hosts = path("{settings}/offsite_known_hosts")
    offsite_ca = path("{settings}/offsite-ca.pem")
    # restic's --host for the app's snapshots: the same on a rebuilt server, so it finds them.
    offsite_host = path("slipway-{app}")
    # TLS: certbot's webroot (the deploy user's, served by nginx read-only), the certificate's lineage, a
    # certificate and key of the user's own (root's only: 0700 folder, 0600 key), the settings and CA bundle
    # the installed scripts read, the last renewal check and renewal, and what certbot runs.
    acme_webroot = path("{shared}/acme-challenge")
    tls_live = path("{LETSENCRYPT}/live/{app}")
    own_certificates = path("{settings}/tls")
    tls_conf = path("{settings}/tls.conf")
    acme_ca_bundle = path("{settings}/acme-ca.pem")
    tls_record_dir = path("/var/lib/slipway/{app}")
    tls_record = path("{tls_record_dir}/tls.json")
    tls_deploy_hook = path("{LETSENCRYPT}/renewal-hooks/deploy/slipway-{app}")
    certbot_drop_in = path("/etc/systemd/system/certbot.service.d/slipway-{app}.conf")

    def release_dir(self, release_id: str) -> str:
        return f"{self.releases}/{release_id}"

    def compose_file(self, release_id: str) -> str:
        return f"{self.release_dir(release_id)}/compose.yaml"

    @property
    def serving_lookup(self) -> tuple[str, str, str, str]:
        """What lib_serving.sh's serving_release takes to tell the serving slot and release."""
        return self.traffic_dir, self.slot_marker, MARKED_SLOT, other_slot(MARKED_SLOT)

    def slot_conf(self, slot: str) -> str:
        """SLOT's nginx upstream groups (see addresses.py), beside the live config."""
        return f"{self.shared}/nginx/slot-{slot}.conf"

    def slot_conf_upload(self, slot: str) -> str:
        """Where a new version of SLOT's groups waits for the switch (no .conf: nginx does not read it)."""
        return f"{self.shared}/nginx/.slot-{slot}.next"

    def slot_alias(self, slot: str, service: str) -> str:
        """The DNS name (Docker's, on the app network) of SERVICE's containers in SLOT."""
        return f"{self.app}-{slot}-{service}"

    def accessory_container(self, name: str) -> str:
        """Accessory NAME's one container: on the app network, other containers reach it as NAME."""
        return f"{self.app}-{name}"

    def accessory_previous(self, name: str) -> str:
        """What an upgrade calls the container it replaces, stopped, until the new one is healthy."""
        return f"{self.accessory_container(name)}-previous"

    def accessory_env_file(self, name: str) -> str:
        """The environment accessory NAME's container was created with (mode 0600)."""
        return f"{self.accessories_dir}/{name}.env"

    def release_project(self, release_id: str) -> str:
        return f"{self.app}-{release_id}"

    def compose(self, release_id: str, *args: str) -> list[str]:
        """`docker compose ARGS` on release RELEASE_ID's own project and compose file."""
        return ["docker", "compose", "-p", self.release_project(release_id), "-f", self.compose_file(release_id), *args]

    def containers(self, release_id: str, service: str, replicas: int) -> list[str]:
        return [f"{self.release_project(release_id)}-{service}-{index}" for index in range(1, replicas + 1)]

    def volume(self, name: str) -> str:
        """A named volume's Docker name: one per app, shared by every release."""
        return f"{self.app}_{name}"

    def backup_dump(self, backup_id: str) -> str:
        return f"{self.backups}/{backup_id}.dump"

    def backup_globals(self, backup_id: str) -> str:
        return f"{self.backups}/{backup_id}.globals.sql"

    def backup_accessory(self, backup_id: str, name: str) -> str:
        """Accessory NAME's dump in backup BACKUP_ID (not *.dump: that is the database's)."""
        return f"{self.backups}/{backup_id}.accessory-{name}"

    def backup_unit_name(self, kind: str, suffix: str) -> str:
        """KIND backup or backup-verify; SUFFIX service or timer."""
        return f"slipway-{self.app}-{kind}.{suffix}"

    def backup_unit_file(self, kind: str, suffix: str) -> str:
        return f"/etc/systemd/system/{self.backup_unit_name(kind, suffix)}"


def layout_of(inventory: Inventory) -> Layout:
    return Layout(inventory.app.name, str(inventory.app.base_dir))


@dataclass(frozen=True)
class Mount:
    """One entry of a service's `volumes`, as it must appear in every release's compose file."""

    source: str  # a Docker volume name or an absolute folder on the server
    target: str
    named: bool
    read_only: bool

    @property
    def compose_entry(self) -> str:
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


def mounts(service: Container, layout: Layout) -> list[Mount]:
    """A service's volumes with sources that are the same for every release: named volumes
    belong to the app (not to a release's compose project) and ./folders live under shared/."""
    found = []
    for entry in service.volumes:
        source, target, *flags = entry.split(":")
        read_only = flags == ["ro"]
        if source.startswith("./"):
            found.append(Mount(str(PurePosixPath(layout.shared) / source[2:]), target, False, read_only))
        elif source.startswith("/"):
            found.append(Mount(source, target, False, read_only))
        else:
            found.append(Mount(layout.volume(source), target, True, read_only))
    return found


def image_refs(inventory: Inventory, version: str) -> dict[str, str]:
    """Service name -> image reference; the app's own images are tagged with the version."""
    refs = {name: _tagged(service.image, version) for name, service in inventory.services.items()}
    if inventory.database:
        refs["db"] = inventory.database.image
    refs["nginx"] = inventory.nginx.image
    return refs


def _tagged(image: str, version: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in last else f"{image}:{version}"


def web_services(inventory: Inventory) -> dict[str, Service]:
    return {name: service for name, service in inventory.services.items() if service.behind_nginx}


def workers(inventory: Inventory) -> dict[str, Service]:
    return {name: service for name, service in inventory.services.items() if not service.behind_nginx}
