"""The files of a release, its record, and how they are shown to people (secrets masked by key)."""

from __future__ import annotations

import difflib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..config import Deployment, Inventory
from ..render import render
from . import tls
from .addresses import group_name
from .upgrade import LAYOUT
from .layout import CONTAINER_TRAFFIC_DIR, DB_PASSWORD_MOUNT, MAINTENANCE_PAGE, SLOT_MARKER, SLOTS, image_refs, layout_of, mounts, web_services

MASK = "********"
# Compose fills it in from the release folder's .env (prepare.sh writes it before every start).
# What clients are told to wait while maintenance is on.
MAINTENANCE_RETRY_AFTER_SECONDS = 30
SLOT_VARIABLE = "${SLIPWAY_SLOT:?the release folder's .env names no slot}"
# What nginx.conf.j2 sets per request to the serving slot's name.
NGINX_SLOT_VARIABLE = "$slipway_slot"
# In the release folder; prepare.sh installs it as Layout.db_password_file, which the database container reads here.
DB_PASSWORD_FILE = "db-password"


@dataclass(frozen=True)
class ReleaseFile:
    path: str  # relative to the release folder
    content: str
    mode: int = 0o644
    # Keys whose values are secrets: shown as MASK wherever this file is shown, whatever the value.
    secret_keys: frozenset[str] = frozenset()
    # The whole file is one secret (shown as MASK).
    secret: bool = False

    def shown(self, text: str, keys: frozenset[str] | None = None) -> str:
        """TEXT (this file's content, new or on the server) as it may be shown, KEYS (default: this file's
        secret keys) masked."""
        if self.secret:
            return f"{MASK}\n" if text else ""
        return masked_env(text, self.secret_keys if keys is None else keys)

    def keys_secret_on_either_side(self, on_server: str) -> frozenset[str]:
        """This file's secret keys and those of its copy ON_SERVER, so a key that stopped being a secret
        never shows its old value. A copy that records no secret keys (rendered by a slipway before it
        recorded them) shows only the lines this file has too."""
        recorded = recorded_secret_keys(on_server)
        if recorded is None:
            same = set(self.content.splitlines())
            recorded = frozenset(line.partition("=")[0] for line in on_server.splitlines()
                                 if "=" in line and not line.startswith("#") and line not in same)
        return self.secret_keys | recorded


SECRET_KEYS_LINE = "# secret keys, masked wherever slipway shows this file:"


def recorded_secret_keys(text: str) -> frozenset[str] | None:
    for line in text.splitlines():
        if line.startswith(SECRET_KEYS_LINE):
            return frozenset(line[len(SECRET_KEYS_LINE):].split())
    return None


def env_value(value: str) -> str:
    """VALUE as a compose env file writes it so that compose reads back exactly VALUE.

    Single quotes keep `$`, `#` and backslashes literal, except that compose takes a backslash right
    before the closing quote as escaping it (a value `x\\` would swallow the next line). So a value with
    a backslash is double-quoted, with `\\`, `"` and `$` escaped (compose turns `\\$` into a literal `$`).
    The config model refuses values with a single quote or a newline.
    """
    if "\\" not in value:
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def env_file_value(text: str, key: str) -> str | None:
    """KEY's value in an env file slipway rendered (the inverse of env_value), or None when it has none."""
    for line in text.splitlines():
        name, equals, written = line.partition("=")
        if equals and name == key:
            if written[:1] == '"':
                return re.sub(r"\\(.)", r"\1", written[1:-1])
            return written[1:-1] if written[:1] == "'" else written
    return None


def compose_literal(value: str | list[str]) -> str | list[str]:
    """VALUE as compose.yaml writes it so that compose does not interpolate it: `$` doubled."""
    if isinstance(value, list):
        return [item.replace("$", "$$") for item in value]
    return value.replace("$", "$$")


def release_files(deployment: Deployment, project_dir: Path, release_id: str, version: str,
                  certificate_ready: bool) -> list[ReleaseFile]:
    """CERTIFICATE_READY: the server has a certificate nginx can serve (else HTTP only, ACME challenges answered)."""
    inventory = deployment.inventory
    layout = layout_of(inventory)
    refs = image_refs(inventory, version)
    common = {"app": inventory.app, "release_id": release_id, "version": version}
    service_mounts = {name: [m.compose_entry for m in mounts(service, layout)] for name, service in inventory.services.items()}
    named_volumes = sorted({m.source for service in inventory.services.values() for m in mounts(service, layout) if m.named})
    files = [ReleaseFile("compose.yaml", render(
        project_dir, "app/compose.yaml.j2", **common, services=inventory.services, database=inventory.database,
        nginx=inventory.nginx, images=refs, docker=inventory.server.docker, mounts=service_mounts,
        compose_literal=compose_literal,
        nginx_mounts=tls.nginx_mounts(inventory), slot_aliases={
            name: layout.slot_alias(SLOT_VARIABLE, name) for name in web_services(inventory)},
        named_volumes=named_volumes, database_volume=layout.volume(inventory.database.volume) if inventory.database else None,
        database_password_file=layout.db_password_file, database_password_mount=DB_PASSWORD_MOUNT))]
    for name, service in inventory.services.items():
        variables = {**service.env, **{key: deployment.secret(key) for key in service.secrets}}
        files.append(_env_file(project_dir, common, name, variables, frozenset(service.secrets)))
    if inventory.database:
        database = inventory.database
        files.append(_env_file(project_dir, common, "db", {
            "POSTGRES_USER": database.user, "POSTGRES_PASSWORD_FILE": DB_PASSWORD_MOUNT, "POSTGRES_DB": database.name},
            frozenset()))
        files.append(ReleaseFile(DB_PASSWORD_FILE, deployment.secret(database.password_secret), 0o600, secret=True))
    files.append(ReleaseFile("nginx.conf", nginx_conf(inventory, project_dir, certificate_ready)))
    return files


def _env_file(project_dir: Path, common: dict, service: str, variables: dict, secret_keys: frozenset[str]) -> ReleaseFile:
    quoted = {key: env_value(value) for key, value in variables.items()}
    content = render(project_dir, "app/service.env.j2", **common, service=service, variables=quoted)
    # Written here, not in the template, so that an overridden template still records them.
    content += f"{SECRET_KEYS_LINE} {' '.join(sorted(secret_keys))}\n"
    return ReleaseFile(f"env/{service}.env", content, 0o600, secret_keys)


def nginx_conf(inventory: Inventory, project_dir: Path, certificate_ready: bool) -> str:
    """The same for every release while nginx's own settings stay: traffic moves by slot, not by config."""
    web = web_services(inventory)
    first = next(iter(web.items()), None)
    app = inventory.app.name
    health = {"service": first[0], "path": first[1].healthcheck.path} if first else None
    return render(project_dir, "app/nginx.conf.j2", app=inventory.app, nginx=inventory.nginx, web_services=web,
                  groups={name: group_name(app, NGINX_SLOT_VARIABLE, name) for name in web},
                  health=health, slots=SLOTS, traffic_dir=CONTAINER_TRAFFIC_DIR,
                  slot_marker=SLOT_MARKER, maintenance_page=MAINTENANCE_PAGE,
                  retry_after_seconds=MAINTENANCE_RETRY_AFTER_SECONDS, acme_webroot=_acme_webroot(inventory),
                  tls=tls.nginx_context(inventory, certificate_ready))


def maintenance_page(inventory: Inventory, project_dir: Path, message: str, until: str) -> str:
    return render(project_dir, "app/maintenance.html.j2", app=inventory.app, message=message, until=until)


def serves_https(conf: str) -> bool:
    return any(line.strip().startswith("listen 443 ssl") for line in conf.splitlines())


def _acme_webroot(inventory: Inventory) -> str | None:
    return tls.CONTAINER_WEBROOT if tls.uses_acme(inventory) else None


def shared_items(inventory: Inventory) -> list[str]:
    """What prepare.sh makes sure exists for the release's mounts: `volume:NAME` and `dir:PATH`."""
    layout = layout_of(inventory)
    items = []
    for service in inventory.services.values():
        for mount in mounts(service, layout):
            item = f"volume:{mount.source}" if mount.named else f"dir:{mount.source}"
            if mount.named or mount.source.startswith(layout.shared + "/"):
                items.append(item)
    if inventory.database:
        items.append(f"volume:{layout.volume(inventory.database.volume)}")
    # The deploy user's, before nginx mounts it (Docker would make a missing one root's).
    items.append(f"dir:{layout_of(inventory).acme_webroot}")
    return list(dict.fromkeys(items))


def release_record(release_id: str, version: str, images: dict[str, dict], commit: str, deployer: str,
                   started: datetime, outcome: str, detail: str = "", restart_of: str = "",
                   layout: int = LAYOUT) -> str:
    """RESTART_OF: the release this one started afresh (same files and images). LAYOUT: the layout its files
    were made for (see upgrade.py)."""
    record = {"id": release_id, "version": version, "images": images, "commit": commit, "deployer": deployer,
              "time": started.astimezone(timezone.utc).isoformat(timespec="seconds"), "outcome": outcome,
              "layout": layout}
    if detail:
        record["detail"] = detail
    if restart_of:
        record["restart_of"] = restart_of
    return json.dumps(record, sort_keys=True) + "\n"


def release_tarball(files: list[ReleaseFile], extra: dict[str, str]) -> bytes:
    """The release folder as a tar stream (modes kept), so it crosses in one round trip."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        entries = [(f.path, f.content, f.mode) for f in files] + [(path, text, 0o644) for path, text in extra.items()]
        for path, text, mode in entries:
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def masked_env(text: str, secret_keys: frozenset[str]) -> str:
    """An env file with the value of every secret key replaced by MASK: old, new or rotated alike."""
    lines = []
    for line in text.splitlines(keepends=True):
        key, equals, _ = line.partition("=")
        if equals and key.strip() in secret_keys:
            line = f"{key}={MASK}\n"
        lines.append(line)
    return "".join(lines)


def release_diff(files: list[ReleaseFile], on_server: dict[str, str]) -> str:
    """Unified diff of the rendered release against the serving one, secret keys masked on both sides."""
    chunks = []
    for release_file in files:
        before = on_server.get(release_file.path)
        keys = release_file.keys_secret_on_either_side(before or "")
        chunks.extend(difflib.unified_diff(
            release_file.shown(before or "", keys).splitlines(keepends=True),
            release_file.shown(release_file.content, keys).splitlines(keepends=True),
            fromfile=f"{release_file.path} (serving)" if before is not None else "/dev/null",
            tofile=f"{release_file.path} (new)",
        ))
    return "".join(chunks)


def audit_event(event: str, by: str, now: datetime, **details) -> str:
    record = {"time": now.astimezone(timezone.utc).isoformat(timespec="seconds"), "event": event, "by": by, **details}
    return json.dumps(record, sort_keys=True) + "\n"
