"""The small commands an on-call engineer needs: a host's facts, the services' logs, one-off containers, psql."""

from __future__ import annotations

import re
import secrets

from ..config import Inventory
from ..errors import ConfigError
from . import accessories
from .facts import Fact, by_name, gather_command
from .layout import layout_of
from .shell import Argv, script

# `facts`: one round trip, a section per fact.
FACT_PROBES = {
    "os": '. /etc/os-release && echo "$PRETTY_NAME"',
    "os_id": '. /etc/os-release && echo "$ID"',
    "os_version": '. /etc/os-release && echo "$VERSION_ID"',
    "kernel": "uname -sr",
    "arch": "uname -m",
    "hostname": "hostname",
    "cpus": "nproc",
    "memory_mb": "awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo",
    "init": "cat /proc/1/comm",
    "systemd_state": "systemctl is-system-running 2>/dev/null",
    "docker": "docker version --format '{{.Server.Version}}' 2>/dev/null",
    "uptime_seconds": "cut -d. -f1 /proc/uptime",
}

FACT_LABELS = {
    "os": "OS",
    "kernel": "Kernel",
    "arch": "Architecture",
    "hostname": "Hostname",
    "cpus": "CPUs",
    "memory_mb": "Memory (MiB)",
    "init": "Init (PID 1)",
    "systemd_state": "systemd state",
    "docker": "Docker Engine",
    "uptime_seconds": "Uptime (s)",
}


def facts_command() -> str:
    return gather_command(Fact(key, probe) for key, probe in FACT_PROBES.items())


def parse_facts(stdout: str) -> dict[str, str]:
    found = by_name(stdout)
    return {key: (found.get(key) or [""])[0] for key in FACT_PROBES}


def format_facts(facts: dict[str, str]) -> str:
    width = max(len(label) for label in FACT_LABELS.values())
    return "\n".join(
        f"{label:<{width}}  {facts.get(key) or '-'}" for key, label in FACT_LABELS.items()
    )


# `logs`
NO_CONTAINERS_EXIT = 3
SINCE_RULE = r"(\d+[smh])+|\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d)?(Z|[+-]\d\d:\d\d)?)?"


def log_services(inventory: Inventory, service: str) -> list[str]:
    """The services `logs SERVICE` means (every one for `all`); a name that is none is refused."""
    known = [*inventory.services, "nginx", *(["db"] if inventory.database else []), *inventory.accessories]
    if service == "all":
        return known
    if service not in known:
        raise ConfigError([f"logs {service}: no such service; expected one of {', '.join(known)}, or all"])
    return [service]


def logs_command(inventory: Inventory, services: list[str], follow: bool, since: str, tail: str, grep: str) -> Argv:
    if since and not re.fullmatch(SINCE_RULE, since):
        raise ConfigError([f"--since: found {since!r}; expected a duration like 10m or 2h30m, or a time like "
                           "2026-11-23T03:00:00Z"])
    if not (tail == "all" or tail.isdigit()):
        raise ConfigError([f"--tail: found {tail!r}; expected a number of lines or all"])
    layout = layout_of(inventory)
    return script("logs", layout.app, layout.infra_project, f"{accessories.APP_LABEL}={layout.app}",
                  accessories.NAME_LABEL, *layout.serving_lookup, int(follow), since, tail, grep, NO_CONTAINERS_EXIT,
                  *services, uses=("serving",))


# `exec`, `shell`, `psql`
def one_off_command(inventory: Inventory, service: str, command: list[str], terminal: bool, name: str) -> Argv:
    """COMMAND in a new container NAME of SERVICE from the serving release's compose file (its image, env and
    mounts), removed when it ends or the operator goes; TERMINAL: attached to a terminal."""
    layout = layout_of(inventory)
    return script("one_off", layout.app, layout.releases, *layout.serving_lookup, name, int(terminal), service,
                  *command, uses=("serving",))


def accessory_exec_command(inventory: Inventory, name: str, command: list[str], terminal: bool) -> Argv:
    """COMMAND in accessory NAME's running container (its one copy of the data: no one-off container)."""
    return ["docker", "exec", "-it" if terminal else "-i", layout_of(inventory).accessory_container(name), *command]


def one_off_name(inventory: Inventory, service: str) -> str:
    """Unique, so that removing a run's container when its operator goes can never hit another's."""
    return f"{inventory.app.name}-{service}-run-{secrets.token_hex(4)}"


def psql_command(inventory: Inventory) -> Argv:
    database = inventory.database
    return ["docker", "exec", "-it", layout_of(inventory).db_container, "psql", "-U", database.user, "-d", database.name]
