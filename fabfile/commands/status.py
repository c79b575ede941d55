"""`status`: the site at a glance in one round trip (as the deploy user, the certificate through sudo), read into
a report with the problems that need a human."""

from __future__ import annotations

import json
import re
from datetime import datetime

from ..config import Inventory
from . import backup as backups
from . import backup_records
from . import database as db_commands
from . import tls
from .facts import MARK, Fact, by_name, gather_command
from .layout import SLOTS, Layout, layout_of, web_services
from .lock import lock_status_command
from .shell import line, script

# What needs a human: a filesystem this full, this little memory left, a lock held this long.
FULL_PERCENT = 90
LOW_MEMORY_PERCENT = 5
STUCK_LOCK_SECONDS = 3600
# Docker restarted a container this often since slipway created it: it crashes.
CRASH_RESTARTS = 3
# A certificate with less than this share of its lifetime left was not renewed when it should have been
# (certbot renews at a third left): true for 90-day and 6-day certificates alike.
CERTIFICATE_LEFT_SHARE = 1 / 6
DEPLOY_EVENTS = ("deploy succeeded", "deploy failed", "rolled back", "rollback failed")


def status_filesystems(inventory: Inventory) -> list[str]:
    """Paths whose filesystems `status` watches: the root, Docker's images and volumes, the app, its backups."""
    paths = ["/", "/var/lib/docker", str(inventory.app.base_dir)]
    return paths + ([layout_of(inventory).backups] if inventory.database else [])


def health_paths(inventory: Inventory) -> str:
    """SERVICE|PORT|PATH for each web service: status probes those that Docker does not check."""
    return " ".join(f"{name}|{service.healthcheck.port}|{service.healthcheck.path}"
                    for name, service in web_services(inventory).items())


def status_command(inventory: Inventory) -> str:
    return gather_command(status_facts(inventory))


def status_facts(inventory: Inventory) -> list[Fact]:
    layout = layout_of(inventory)
    sections = [Fact(None, line(script(
        "status", MARK, layout.app, *layout.serving_lookup,
        layout.releases, layout.maintenance_page, health_paths(inventory), *status_filesystems(inventory),
        uses=("serving",))))]
    # Its own fact, so that it runs beside the containers' (each docker call takes tens of milliseconds).
    sections.append(Fact("docker", "timeout 5 docker version -f '{{.Server.Version}}' 2>&1 | tail -n 1"))
    sections.append(Fact("lock", line(lock_status_command(layout))))
    sections.append(Fact("nginx config", line(script("nginx_loaded", layout.nginx_container, layout.live_nginx_conf,
                                                        *map(layout.slot_conf, SLOTS)))))
    sections.append(Fact("audit", line(["tail", "-n", "200", layout.audit_log])))
    if inventory.database:
        sections.append(Fact("backups", line(backups.list_command(layout_of(inventory)))))
    if inventory.tls_enabled:
        sections.append(Fact("certificate", line(["sudo", "-n", *tls.state_argv(inventory)])))
    if inventory.database:
        sections.append(Fact("passwordless", line(db_commands.leftovers_command(inventory))))
    return sections


def _json(text: str | None) -> dict | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_status(output: str, inventory: Inventory, now: datetime) -> dict:
    """What `status` shows (and prints as JSON with --json), with the problems that need a human."""
    layout = layout_of(inventory)
    found = by_name(output)
    slot, _, release_id = (found.get("serving") or [" "])[0].partition(" ")
    record = _json((found.get("record") or [None])[0]) or {}
    docker = (found.get("docker") or [""])[0]
    docker_up = bool(re.fullmatch(r"\d+(\.\d+)*\S*", docker))
    host = dict(text.split(None, 1) for text in found.get("host", []) if " " in text)
    report = {
        "app": inventory.app.name,
        "serving": {"release": release_id, "slot": slot, "version": record.get("version"),
                    "since": record.get("time"), "deployer": record.get("deployer")} if release_id else None,
        "maintenance": _json((found.get("maintenance") or [None])[0]),
        "docker": docker if docker_up else f"not answering ({docker or 'no reply'})",
        "containers": _containers(found.get("containers", []), layout, now),
        "host": _host(found, host),
        "lock": _lock((found.get("lock") or ["free"])[0], now),
        "last_deploys": _deploys(found.get("audit", [])),
        "certificate": _certificate(found.get("certificate"), inventory, now),
        "backup": _backup(found.get("backups"), inventory, now),
        "database_access": _database_access(found.get("passwordless")),
        # Whether nginx runs its files' config: stale after an upgrade's first deploy, until it reloads.
        "nginx_config": {"state": (found.get("nginx config") or ["unknown"])[0].split()[0],
                         "container": layout.nginx_container},
    }
    report["problems"] = problems(report, inventory, docker_up)
    return report


def _database_access(lines: list[str] | None) -> dict | None:
    """Password-less lines a password rotation writes: those of one that runs ("kept"), or left by one that
    was cut off and removed now ("removed")."""
    words = (lines or ["0"])[0].split()
    if len(words) != 2 or not words[1].isdigit():
        return None
    return {"passwordless_lines": int(words[1]), "removed": words[0] == "removed"}


def _containers(lines: list[str], layout: Layout, now: datetime) -> list[dict]:
    containers = []
    for text in lines:
        fields = text.split()
        if len(fields) != 9:
            continue
        name, project, service, state, health, started, restarts, oom, memory = fields
        name = name.lstrip("/")
        # The app's services run in one compose project per release; nginx and db in the app's own.
        release = project[len(layout.app) + 1:] if project.startswith(layout.app + "-") else ""
        started_at = _time(started)
        containers.append({
            "name": name, "service": service, "release": release, "accessory": project == "-", "state": state,
            "health": None if health == "-" else health,
            "uptime_seconds": int((now - started_at).total_seconds()) if started_at and state == "running" else None,
            "restarts": int(restarts) if restarts.isdigit() else 0, "oom_killed": oom == "true",
            "memory_bytes": int(memory) if memory.isdigit() else None})
    return sorted(containers, key=lambda c: c["name"])


def _time(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00")[:26] + ("+00:00" if text.endswith("Z") else ""))
    except ValueError:
        return None
    return value if value.year > 1 else None


def _host(found: dict, host: dict) -> dict:
    def kib(key: str) -> int:
        return int(host.get(key + ":", "0 kB").split()[0]) if host.get(key + ":", "").split() else 0
    filesystems = {}
    for kind in ("disk", "inodes"):
        for text in found.get(kind, []):
            fields = text.split()
            if len(fields) >= 6 and fields[4].endswith("%"):
                entry = filesystems.setdefault(fields[5], {"mount": fields[5]})
                entry["used_percent" if kind == "disk" else "inodes_used_percent"] = int(fields[4][:-1] or 0) \
                    if fields[4][:-1].isdigit() else 0
                if kind == "disk":
                    entry["free_mb"] = int(fields[3]) // 1024
    total, available = kib("MemTotal"), kib("MemAvailable")
    load = host.get("load", "").split()
    return {"filesystems": list(filesystems.values()),
            "memory_mb": {"total": total // 1024, "available": available // 1024,
                          "swap_total": kib("SwapTotal") // 1024, "swap_free": kib("SwapFree") // 1024},
            "load": [float(x) for x in load] if len(load) == 3 else [], "cpus": int(host.get("cpus", "0") or 0)}


def _lock(answer: str, now: datetime) -> dict:
    if answer == "free":
        return {"held": False}
    holder = (_json(answer) or {}).get("holder", {})
    since = _time(holder.get("since", ""))
    return {"held": True, "by": holder.get("by"), "command": holder.get("command"), "since": holder.get("since"),
            "held_seconds": int((now - since).total_seconds()) if since else None}


def _deploys(lines: list[str]) -> list[dict]:
    events = [event for event in map(_json, lines) if event and event.get("event") in DEPLOY_EVENTS]
    return [{key: event.get(key) for key in ("time", "event", "release", "version", "by")} for event in events[-5:]][::-1]


def _certificate(lines: list[str] | None, inventory: Inventory, now: datetime) -> dict | None:
    if not inventory.tls_enabled:
        return None
    certificate = tls.parse_certificate(lines[0]) if lines and _json(lines[0]) else None
    if not certificate:
        return {"present": False}
    lifetime = (certificate.not_after - certificate.not_before).total_seconds() / 86400
    return {"present": True, "days_left": round(certificate.days_left(now), 1), "lifetime_days": round(lifetime, 1),
            "not_after": certificate.not_after.isoformat(timespec="seconds"),
            "covers_domains": certificate.covers(inventory.app.domains)}


def _backup(lines: list[str] | None, inventory: Inventory, now: datetime) -> dict | None:
    if not inventory.database:
        return None
    newest = backup_records.newest_good(backup_records.parse_records("\n".join(lines or [])))
    return {"newest_good": newest.id if newest else None,
            "age_hours": round(backup_records.age_hours(newest, now), 1) if newest else None,
            "max_age_hours": inventory.backup.max_age_hours}


def problems(report: dict, inventory: Inventory, docker_up: bool) -> list[str]:
    """Each thing that needs a human, in one line; none means `status` exits 0."""
    return [text for _, text in findings(report, inventory, docker_up)]


def findings(report: dict, inventory: Inventory, docker_up: bool) -> list[tuple[str, str]]:
    """(area, what needs a human) for everything in REPORT that does."""
    found: list[tuple[str, str]] = []
    if not docker_up:
        found.append(("docker", f"Docker is {report['docker']}: nothing runs or can be deployed until it answers "
                     "(sudo systemctl status docker)"))
    if not report["serving"]:
        found.append(("containers", "no release serves: deploy one"))
    # Were Docker silent, every container would read as missing: its own finding says it all.
    if docker_up:
        found += _container_findings(report, inventory)
    return found + _host_findings(report["host"]) + _upkeep_findings(report)


def _container_findings(report: dict, inventory: Inventory) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    layout = layout_of(inventory)
    serving, containers = report["serving"], report["containers"]
    containers_by_name = {c["name"]: c for c in containers}
    infra = [layout.nginx_container] + ([layout.db_container] if inventory.database else [])
    for name in infra:
        container = containers_by_name.get(name)
        if not container or container["state"] != "running":
            found.append(("containers", f"{name} is {container['state'] if container else 'missing'}"))
    for container in containers:
        if container["accessory"] and container["service"] not in inventory.accessories \
                and container["name"] == layout.accessory_container(container["service"]):
            found.append(("containers", f"accessory {container['service']} runs but is not in the inventory: "
                                        f"accessory.remove {container['service']} --yes removes it"))
    for accessory in inventory.accessories:
        container = containers_by_name.get(layout.accessory_container(accessory))
        if not container or container["state"] != "running":
            found.append(("containers", f"accessory {accessory} is missing: the next deploy starts it" if not container
                          else f"accessory {accessory} is {container['state']}: accessory.restart {accessory} starts "
                               "it again (see its logs first)"))
    if serving:
        for service_name, service in web_services(inventory).items():
            ours = [c for c in containers if c["release"] == serving["release"] and c["service"] == service_name]
            running = [c for c in ours if c["state"] == "running" and c["health"] in (None, "healthy")]
            if len(running) < service.replicas:
                found.append(("containers", f"{service_name}: {len(running)} of {service.replicas} containers "
                                            f"of {serving['release']} running and healthy"))
    for container in containers:
        if container["state"] == "restarting" or container["health"] == "unhealthy":
            found.append(("containers", f"{container['name']} is "
                                        f"{'restarting' if container['state'] == 'restarting' else 'unhealthy'}"))
        if container["restarts"] >= CRASH_RESTARTS:
            found.append(("containers", f"{container['name']} restarted {container['restarts']} times: it "
                                        "keeps crashing (see its logs)"))
        if container["oom_killed"]:
            found.append(("memory", f"{container['name']} was killed for lack of memory (OOM)"))
    return found


def _host_findings(host: dict) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for filesystem in host["filesystems"]:
        for key, what in (("used_percent", "space"), ("inodes_used_percent", "inodes")):
            if filesystem.get(key, 0) >= FULL_PERCENT:
                found.append(("disk", f"{filesystem['mount']} is {filesystem[key]}% full ({what})"))
    memory = host["memory_mb"]
    if memory["total"] and memory["available"] * 100 < memory["total"] * LOW_MEMORY_PERCENT:
        found.append(("memory", f"memory: {memory['available']} MB available of {memory['total']} MB"))
    return found


def _upkeep_findings(report: dict) -> list[tuple[str, str]]:
    """What slipway's own upkeep left undone: a deploy lock never released, a certificate or backup gone stale."""
    found: list[tuple[str, str]] = []
    lock = report["lock"]
    if lock["held"] and (lock.get("held_seconds") or 0) > STUCK_LOCK_SECONDS:
        found.append(("deploy lock", f"the deploy lock has been held by {lock['by']} (`{lock['command']}`) since "
                                     f"{lock['since']}: see lock.status"))
    certificate = report["certificate"]
    if certificate and certificate["present"] and \
            certificate["days_left"] < certificate["lifetime_days"] * CERTIFICATE_LEFT_SHARE:
        found.append(("certificate", f"the certificate expires in {certificate['days_left']} days and was not "
                                     "renewed: see tls.status"))
    nginx = report["nginx_config"]
    if nginx["state"] == "stale":
        found.append(("nginx", "nginx runs an older config than its files (the first deploy after an upgrade "
                               "leaves it so): reload it at a quiet moment (idle keep-alive connections close): "
                               f"docker exec {nginx['container']} nginx -s reload"))
    backup = report["backup"]
    if backup and (backup["age_hours"] is None or backup["age_hours"] > backup["max_age_hours"]):
        age = "no good backup" if backup["age_hours"] is None else f"the newest good backup is {backup['age_hours']} hours old"
        found.append(("backups", f"{age} (backup.max_age_hours {backup['max_age_hours']}): see backup.list"))
    return found


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_status(report: dict, label: str) -> str:
    serving = report["serving"]
    lines = [f"{report['app']} on {label}: " + (
        f"serving {serving['release']} ({serving['version']}) in slot {serving['slot']}, since {serving['since']} "
        f"by {serving['deployer']}" if serving else "no release serves")]
    maintenance = report["maintenance"]
    lines.append("maintenance  " + (f"ON since {maintenance.get('since')} by {maintenance.get('by')}: "
                                    f"{maintenance.get('message')}" + (f" (until {maintenance['until']})"
                                                                       if maintenance.get("until") else "")
                                    if maintenance is not None else "off"))
    lines.append(f"docker       {report['docker']}")
    rows = [("CONTAINER", "SERVICE", "STATE", "HEALTH", "UP", "RESTARTS", "MEMORY")] + [
        (c["name"], c["service"], c["state"], c["health"] or "-", _duration(c["uptime_seconds"]), str(c["restarts"]),
         f"{c['memory_bytes'] // 2**20} MB" if c["memory_bytes"] is not None else "-") for c in report["containers"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    host = report["host"]
    for filesystem in host["filesystems"]:
        lines.append(f"disk         {filesystem['mount']}: {filesystem.get('used_percent', '?')}% used "
                     f"({filesystem.get('free_mb', 0) // 1024} GB free), inodes {filesystem.get('inodes_used_percent', '?')}%")
    memory = host["memory_mb"]
    lines.append(f"memory       {memory['available']} of {memory['total']} MB available; swap {memory['swap_free']} of "
                 f"{memory['swap_total']} MB free; load {' '.join(map(str, host['load']))} on {host['cpus']} CPUs")
    lock = report["lock"]
    lines.append("lock         " + (f"held by {lock['by']} running `{lock['command']}` since {lock['since']}"
                                    if lock["held"] else "free"))
    for index, event in enumerate(report["last_deploys"]):
        lines.append(("deploys      " if index == 0 else "             ") +
                     f"{event['time']} {event['event']}: {event['release']} ({event['version']}) by {event['by']}")
    certificate = report["certificate"]
    if certificate:
        lines.append("certificate  " + (f"{certificate['days_left']} days left (of {certificate['lifetime_days']}), "
                                        f"until {certificate['not_after']}"
                                        + ("" if certificate["covers_domains"] else "; does not cover app.domains")
                                        if certificate["present"] else "none yet"))
    backup = report["backup"]
    if backup:
        lines.append("backup       " + (f"newest good {backup['newest_good']}, {backup['age_hours']} hours old "
                                        f"(at most {backup['max_age_hours']})" if backup["newest_good"] else "none good yet"))
    access = report["database_access"]
    if access:
        lines.append(f"database     {access['passwordless_lines']} password-less lines " +
                     ("an interrupted password rotation left: removed" if access["removed"]
                      else "of the password rotation that holds the lock"))
    lines += [f"problem      {problem}" for problem in report["problems"]] or ["problems     none"]
    return "\n".join(lines)
