"""Accessories as Docker sees them: the container each runs as, the settings it was made with, and the
commands that start, upgrade, restart and remove it.

An accessory is one plain container per app (not a compose service): an upgrade stops the old one and
keeps it aside, renamed, until the new one is healthy, and brings that very container back when the new
one never is. Compose, which knows containers by their labels alone, would remove it first.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shlex
from dataclasses import dataclass

from ..config import Deployment, Inventory
from ..config.accessory import Accessory
from .layout import Layout, layout_of, mounts
from .shell import Argv, script

APP_LABEL = "slipway.accessory.app"
NAME_LABEL = "slipway.accessory.name"
# A short digest of each setting the container was made with (secrets included, never in clear).
SETTINGS_LABEL = "slipway.accessory.settings"
SETTING_NAMES = ("image", "command", "env", "secrets", "volumes", "ports", "healthcheck", "memory_mb", "cpus",
                 "stop_grace_seconds")
# The fields the state's accessories section prints per container, tab-separated.
FACT_FORMAT = "\t".join(("{{.Names}}", f'{{{{.Label "{NAME_LABEL}"}}}}', f'{{{{.Label "{SETTINGS_LABEL}"}}}}',
                         "{{.State}}", "{{.Image}}", "{{.ID}}", "{{.Status}}"))
UNHEALTHY_EXIT = 3


@dataclass(frozen=True)
class Running:
    """An accessory's container as the server has it."""

    name: str
    settings: dict[str, str]
    state: str  # Docker's: running, exited, created, restarting...
    image: str
    container_id: str
    status: str  # Docker's words: "Up 3 minutes (healthy)"

    def up(self, docker_checks_health: bool) -> bool:
        """Running, and healthy by Docker's own check when it has one (an HTTP check is slipway's, from the host)."""
        return self.state == "running" and ("(healthy)" in self.status or not docker_checks_health)


def parse_accessories(lines: list[str], layout: Layout) -> tuple[dict[str, Running], dict[str, Running]]:
    """The state's accessories section: the containers by accessory name, and those an upgrade keeps aside."""
    current, previous = {}, {}
    for text in lines:
        fields = text.split("\t")
        if len(fields) != 7:
            continue
        container, name, settings, state, image, container_id, status = fields
        try:
            digests = json.loads(settings)
        except ValueError:
            digests = {}
        found = Running(name, digests if isinstance(digests, dict) else {}, state, image, container_id, status)
        if container == layout.accessory_container(name):
            current[name] = found
        elif container == layout.accessory_previous(name):
            previous[name] = found
    return current, previous


def environment(deployment: Deployment, name: str) -> dict[str, str]:
    accessory = deployment.inventory.accessories[name]
    return {**accessory.env, **{key: deployment.secret(key) for key in accessory.secrets}}


def env_file(deployment: Deployment, name: str) -> str:
    """What `docker create --env-file` reads: KEY=VALUE lines, taken literally (the model refuses newlines)."""
    return "".join(f"{key}={value}\n" for key, value in environment(deployment, name).items())


def settings(deployment: Deployment, name: str, env_salt: str | None = None) -> dict[str, str]:
    """Each setting's digest: two containers made from the same inventory and secrets have the same ones.

    Defaults are left out (a slipway with a new default or a new setting finds nothing changed) and lists of
    things without an order are sorted. The environment holds secrets: its digest is salted and costly (scrypt),
    so the label gives no weak password away."""
    accessory = deployment.inventory.accessories[name]
    values = accessory.model_dump(mode="json", include=set(SETTING_NAMES), exclude_defaults=True)
    for unordered in ("ports", "secrets", "volumes"):
        values[unordered] = sorted(values.get(unordered, []))
    digests = {key: hashlib.sha256(json.dumps(values.get(key), sort_keys=True).encode()).hexdigest()[:12]
               for key in SETTING_NAMES if key != "env"}
    salt = env_salt or secrets.token_hex(8)
    environment_text = json.dumps(environment(deployment, name), sort_keys=True).encode()
    digests["env"] = hashlib.scrypt(environment_text, salt=salt.encode(), n=2 ** 14, r=8, p=1, dklen=12).hex()
    return {**digests, "env_salt": salt}


def differences(deployment: Deployment, name: str, running: Running) -> list[str]:
    """The settings of accessory NAME the inventory (and secrets) give otherwise than its container has (those
    its container records: one made by an older slipway is not blamed for a setting added since)."""
    wanted = settings(deployment, name, running.settings.get("env_salt", ""))
    return [key for key in SETTING_NAMES if key in running.settings and running.settings[key] != wanted[key]]


def create_args(deployment: Deployment, name: str) -> Argv:
    """`docker create`'s arguments for accessory NAME: on the app network as NAME, restarted unless stopped,
    health-checked, logs rotated, its limits; its environment read from its env file."""
    inventory = deployment.inventory
    accessory = inventory.accessories[name]
    layout = layout_of(inventory)
    docker = inventory.server.docker
    args = ["--name", layout.accessory_container(name), "--label", f"{APP_LABEL}={layout.app}",
            "--label", f"{NAME_LABEL}={name}",
            "--label", f"{SETTINGS_LABEL}={json.dumps(settings(deployment, name), separators=(',', ':'))}",
            "--network", layout.network, "--network-alias", name, "--restart", "unless-stopped",
            "--env-file", layout.accessory_env_file(name),
            "--log-driver", "json-file", "--log-opt", f"max-size={docker.log_max_size}",
            "--log-opt", f"max-file={docker.log_max_file}", "--stop-timeout", str(accessory.stop_grace_seconds)]
    for mount in mounts(accessory, layout):
        args += ["--volume", mount.compose_entry]
    for port in accessory.ports:
        args += ["--expose", str(port)]
    return [*args, *_limits_and_health(accessory), accessory.image, *(accessory.command or [])]


def _limits_and_health(accessory: Accessory) -> Argv:
    args = []
    if accessory.memory_mb:
        args += ["--memory", f"{accessory.memory_mb}m"]
    if accessory.cpus:
        args += ["--cpus", str(accessory.cpus)]
    check = accessory.healthcheck
    if check.command:
        # Docker's CLI takes a health command as one line for the container's /bin/sh.
        args += ["--health-cmd", shlex.join(check.command), "--health-interval", f"{check.interval_seconds}s",
                 "--health-timeout", "5s", "--health-retries", "3", "--health-start-period", f"{check.timeout_seconds}s"]
    return args


def scratch_args(inventory: Inventory, name: str) -> Argv:
    """`docker create`'s options for a throwaway copy of accessory NAME that backup.verify loads a dump into: its
    environment, limits and health check; fresh anonymous volumes where it writes (its read-only mounts, its
    configuration, as they are); no labels, so nothing counts it as the accessory; no network, unless its health
    check is HTTP from the host (then the app network, without the accessory's name)."""
    accessory, layout = inventory.accessories[name], layout_of(inventory)
    network = "none" if accessory.healthcheck.command else layout.network
    args = ["--network", network, "--env-file", layout.accessory_env_file(name)]
    for mount in mounts(accessory, layout):
        args += ["--volume", mount.compose_entry if mount.read_only else mount.target]
    return [*args, *_limits_and_health(accessory)]


def backup_entries(inventory: Inventory) -> list[dict]:
    """backup.conf's ACCESSORIES: what backup.sh, verify_backup.sh and restore_accessory.sh need of each accessory
    with a backup (command lines as lists of words: the scripts never split or evaluate them)."""
    layout = layout_of(inventory)
    entries = []
    for name, accessory in inventory.accessories.items():
        if not accessory.backup:
            continue
        check = accessory.healthcheck
        restore = accessory.backup.restore
        entries.append({"name": name, "container": layout.accessory_container(name), "image": accessory.image,
                        "command": accessory.command or [], "backup": accessory.backup.command,
                        "restore": [] if restore == "files" else restore, "file": accessory.backup.file or "",
                        "stop_seconds": accessory.stop_grace_seconds, "scratch": scratch_args(inventory, name),
                        "health_port": str(check.port or ""), "health_path": check.path or "",
                        "health_seconds": check.timeout_seconds})
    return entries


def backed_up(inventory: Inventory) -> list[str]:
    return [name for name, accessory in inventory.accessories.items() if accessory.backup]


def folders(inventory: Inventory, name: str) -> str:
    """The host folders accessory NAME mounts, one a line, made (the deploy user's) before Docker would make them
    root's."""
    return "\n".join(mount.source for mount in mounts(inventory.accessories[name], layout_of(inventory))
                     if not mount.named)


def health_check(inventory: Inventory, name: str) -> tuple[str, str, str, str]:
    """wait_healthy's (container, address, port, path) for accessory NAME: its address on the app network (empty:
    the first), no port for a command Docker runs."""
    check = inventory.accessories[name].healthcheck
    return layout_of(inventory).accessory_container(name), "", str(check.port or ""), check.path or ""


def health_timeout(inventory: Inventory, names: list[str]) -> int:
    return max(inventory.accessories[name].healthcheck.timeout_seconds for name in names)


def start_command(deployment: Deployment, name: str) -> Argv:
    """Accessory NAME up as it is, or created when missing (its env file on stdin); see accessory_start.sh."""
    layout = layout_of(deployment.inventory)
    return script("accessory_start", layout.accessory_container(name), layout.accessory_previous(name),
                  layout.accessory_env_file(name), folders(deployment.inventory, name),
                  *create_args(deployment, name), uses=("accessory",))


def upgrade_command(deployment: Deployment, name: str) -> Argv:
    """Accessory NAME replaced by one with the inventory's settings (env file on stdin), the old one brought back
    if the new one never gets healthy; see accessory_upgrade.sh."""
    inventory = deployment.inventory
    layout = layout_of(inventory)
    return script("accessory_upgrade", layout.accessory_container(name), layout.accessory_previous(name),
                  layout.accessory_env_file(name), health_timeout(inventory, [name]), UNHEALTHY_EXIT,
                  "|".join(health_check(inventory, name)), folders(inventory, name), *create_args(deployment, name),
                  uses=("healthy", "accessory"))


def docker_checks_health(inventory: Inventory, name: str) -> bool:
    return inventory.accessories[name].healthcheck.command is not None


def restart_command(layout: Layout, accessory: Accessory, name: str) -> Argv:
    return ["docker", "restart", "--time", str(accessory.stop_grace_seconds), layout.accessory_container(name)]


def remove_command(layout: Layout, name: str, volumes: list[str], delete_data: bool) -> Argv:
    """Accessory NAME's containers and env file removed; its named VOLUMES (and those it mounts) too with
    DELETE_DATA, else kept; see accessory_remove.sh."""
    return script("accessory_remove", layout.accessory_container(name), layout.accessory_previous(name),
                  layout.accessory_env_file(name), int(delete_data), *volumes)


def own_volumes(inventory: Inventory, name: str) -> list[str]:
    """The named volumes accessory NAME writes and no service mounts: what --delete-data may remove."""
    if name not in inventory.accessories:
        return []
    layout = layout_of(inventory)
    services = {mount.source for service in inventory.services.values() for mount in mounts(service, layout)}
    return [mount.source for mount in mounts(inventory.accessories[name], layout)
            if mount.named and not mount.read_only and mount.source not in services]
