"""Commands an on-call engineer needs to see a host at a glance."""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime

from ..config import Inventory
from ..errors import ConfigError
from . import backup as backups
from . import database as db_commands
from . import tls
from .facts import MARK, Fact, by_name, gather_command
from .layout import Layout, layout_of, web_services
from .lock import lock_status_command
from .shell import Argv, line, script

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


# `status`: everything in one round trip, as the deploy user (the certificate through sudo).
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
    return paths + ([backups.paths_of(inventory).folder] if inventory.database else [])


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
    sections.append(Fact("lock", line(lock_status_command(layout))))
    sections.append(Fact("audit", line(["tail", "-n", "200", layout.audit_log])))
    if inventory.database:
        sections.append(Fact("backups", line(backups.list_command(backups.paths_of(inventory)))))
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
            "name": name, "service": service, "release": release, "state": state,
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
    newest = backups.newest_good(backups.parse_records("\n".join(lines or [])))
    return {"newest_good": newest.id if newest else None,
            "age_hours": round(backups.age_hours(newest, now), 1) if newest else None,
            "max_age_hours": inventory.backup.max_age_hours}


def problems(report: dict, inventory: Inventory, docker_up: bool) -> list[str]:
    """Each thing that needs a human, in one line; none means `status` exits 0."""
    return [text for _, text in findings(report, inventory, docker_up)]


def findings(report: dict, inventory: Inventory, docker_up: bool) -> list[tuple[str, str]]:
    """(area, what needs a human) for everything in REPORT that does."""
    found: list[tuple[str, str]] = []
    layout = layout_of(inventory)
    if not docker_up:
        found.append(("docker", f"Docker is {report['docker']}: nothing runs or can be deployed until it answers "
                     "(sudo systemctl status docker)"))
    serving = report["serving"]
    if not serving:
        found.append(("containers", "no release serves: deploy one"))
    containers = report["containers"]
    by_name = {c["name"]: c for c in containers}
    if docker_up:
        infra = [layout.nginx_container] + ([layout.db_container] if inventory.database else [])
        for name in infra:
            container = by_name.get(name)
            if not container or container["state"] != "running":
                found.append(("containers", f"{name} is {container['state'] if container else 'missing'}"))
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
    for filesystem in report["host"]["filesystems"]:
        for key, what in (("used_percent", "space"), ("inodes_used_percent", "inodes")):
            if filesystem.get(key, 0) >= FULL_PERCENT:
                found.append(("disk", f"{filesystem['mount']} is {filesystem[key]}% full ({what})"))
    memory = report["host"]["memory_mb"]
    if memory["total"] and memory["available"] * 100 < memory["total"] * LOW_MEMORY_PERCENT:
        found.append(("memory", f"memory: {memory['available']} MB available of {memory['total']} MB"))
    lock = report["lock"]
    if lock["held"] and (lock.get("held_seconds") or 0) > STUCK_LOCK_SECONDS:
        found.append(("deploy lock", f"the deploy lock has been held by {lock['by']} (`{lock['command']}`) since "
                                     f"{lock['since']}: see lock.status"))
    certificate = report["certificate"]
    if certificate and certificate["present"] and \
            certificate["days_left"] < certificate["lifetime_days"] * CERTIFICATE_LEFT_SHARE:
        found.append(("certificate", f"the certificate expires in {certificate['days_left']} days and was not "
                                     "renewed: see tls.status"))
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


# `logs`
NO_CONTAINERS_EXIT = 3
SINCE_RULE = r"(\d+[smh])+|\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d)?(Z|[+-]\d\d:\d\d)?)?"


def log_services(inventory: Inventory, service: str) -> list[str]:
    """The services `logs SERVICE` means (every one for `all`); a name that is none is refused."""
    known = [*inventory.services, "nginx", *(["db"] if inventory.database else [])]
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
    return script("logs", layout.app, layout.infra_project, *layout.serving_lookup, int(follow), since, tail, grep,
                  NO_CONTAINERS_EXIT, *services, uses=("serving",))


# `doctor`: status's facts and three more, each area with a verdict and what to do.
OK, WARN, FAIL = "ok", "warn", "fail"
WARN_FULL_PERCENT = 80
WARN_MEMORY_PERCENT = 10
SSHD_HARDENING = {"permitrootlogin": "no", "passwordauthentication": "no", "kbdinteractiveauthentication": "no"}
FIXES = {
    "database access": "nothing more: they are gone (the app's audit log names the rotation that was cut off)",
    "docker": "sudo systemctl restart docker on the server (containers come back by themselves)",
    "containers": "fab -H NAME logs all; fab -H NAME restart all (RUNBOOK.md: 502 or 503 errors)",
    "disk": "RUNBOOK.md: Disk full",
    "memory": "lower services' memory_mb or give the host more memory; fab -H NAME status shows who uses it",
    "clock": "install and enable systemd-timesyncd (or chrony) on the server",
    "security updates": "unattended-upgrades installs them daily; sudo apt-get upgrade on the server does it now",
    "deploy lock": "fab -H NAME lock.status; lock.release --force if its holder is gone",
    "certificate": "fab -H NAME tls.status; fab -H NAME tls.renew",
    "backups": "fab -H NAME backup.list; fab -H NAME backup",
    "ssh hardening": "fab -H NAME provision puts slipway's sshd settings back; fab -H NAME verify checks them",
}


def doctor_command(inventory: Inventory) -> str:
    return gather_command([
        *status_facts(inventory),
        Fact("clock", "timedatectl show -p NTPSynchronized --value"),
        Fact("updates", "apt-get -s -o Debug::NoLocking=1 upgrade | grep -c '^Inst .*[Ss]ecurity'"),
        Fact("sshd", "sudo -n sshd -T | grep -Ei '^(" + "|".join(SSHD_HARDENING) + ") '"),
    ])


def doctor_checks(output: str, inventory: Inventory, now: datetime, label: str) -> list[dict]:
    """A check per area: its verdict, what was found and (unless ok) what to do, for inventory LABEL."""
    report = parse_status(output, inventory, now)
    found = by_name(output)
    docker_up = not report["docker"].startswith("not answering")
    failed: dict[str, list[str]] = {}
    for area, text in findings(report, inventory, docker_up):
        failed.setdefault(area, []).append(text)
    host, checks = report["host"], []

    def check(area: str, ok_detail: str, warning: str = "") -> None:
        verdict, detail = (FAIL, "; ".join(failed[area])) if area in failed else \
            (WARN, warning) if warning else (OK, ok_detail)
        checks.append({"area": area, "verdict": verdict, "detail": detail,
                       **({"fix": FIXES[area].replace("NAME", label)} if verdict != OK else {})})

    check("docker", f"Docker {report['docker']} answers")
    running = [c for c in report["containers"] if c["state"] == "running"]
    check("containers", f"{len(running)} running, none unhealthy, restarting or crashing")
    fullest = max(host["filesystems"], key=lambda f: max(f.get("used_percent", 0), f.get("inodes_used_percent", 0)),
                  default=None)
    usage = max(fullest.get("used_percent", 0), fullest.get("inodes_used_percent", 0)) if fullest else 0
    check("disk", f"fullest: {fullest['mount']} at {usage}%" if fullest else "no filesystem read",
          f"{fullest['mount']} is {usage}% full" if fullest and usage >= WARN_FULL_PERCENT else "")
    memory = host["memory_mb"]
    swap_used = memory["swap_total"] - memory["swap_free"]
    low = memory["total"] and memory["available"] * 100 < memory["total"] * WARN_MEMORY_PERCENT
    check("memory", f"{memory['available']} of {memory['total']} MB available, swap {swap_used} MB used",
          f"{memory['available']} of {memory['total']} MB available" if low else
          f"{swap_used} of {memory['swap_total']} MB of swap in use" if swap_used * 2 > memory["swap_total"] > 0 else "")
    synchronized = (found.get("clock") or [""])[0]
    check("clock", "synchronized (NTP)",
          "" if synchronized == "yes" else "not synchronized (NTP)" if synchronized == "no" else "sync unknown")
    pending = (found.get("updates") or ["0"])[0]
    check("security updates", "none pending", f"{pending} pending" if pending.isdigit() and int(pending) else "")
    lock = report["lock"]
    check("deploy lock", f"held by {lock['by']} running `{lock['command']}`" if lock["held"] else "free")
    certificate = report["certificate"]
    if certificate:
        renewal_due = certificate["present"] and certificate["days_left"] < certificate["lifetime_days"] / 3 - 1
        check("certificate", f"{certificate['days_left']} days left" if certificate["present"] else "none yet",
              f"{certificate['days_left']} days left: certbot should have renewed it" if renewal_due else "")
    backup = report["backup"]
    if backup:
        old = backup["age_hours"] is not None and backup["age_hours"] * 2 > backup["max_age_hours"]
        check("backups", f"newest good one {backup['age_hours']} hours old",
              f"the newest good backup is {backup['age_hours']} hours old" if old else "")
    access = report["database_access"]
    if inventory.database:
        check("database access", "no password-less lines",
              f"removed {access['passwordless_lines']} password-less lines an interrupted password rotation left"
              if access and access["removed"] else "")
    sshd = dict(text.lower().split(None, 1) for text in found.get("sshd", []) if " " in text)
    weak = [f"{key} {sshd.get(key, '?')}" for key, wanted in SSHD_HARDENING.items() if sshd.get(key) != wanted]
    if sshd and weak:
        failed["ssh hardening"] = [f"sshd allows more than slipway set: {', '.join(weak)}"]
    check("ssh hardening", "root and password logins refused", "" if sshd else "sshd's settings unread (sudo)")
    return checks


def format_doctor(checks: list[dict]) -> str:
    width = max(len(c["area"]) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c['verdict'].upper():<5} {c['area']:<{width}}  {c['detail']}")
        if "fix" in c:
            lines.append(f"{'':<5} {'':<{width}}  fix: {c['fix']}")
    return "\n".join(lines)


# `exec`, `shell`, `psql`
def one_off_command(inventory: Inventory, service: str, command: list[str], terminal: bool, name: str) -> Argv:
    """COMMAND in a new container NAME of SERVICE from the serving release's compose file (its image, env and
    mounts), removed when it ends or the operator goes; TERMINAL: attached to a terminal."""
    layout = layout_of(inventory)
    return script("one_off", layout.app, layout.releases, *layout.serving_lookup, name, int(terminal), service,
                  *command, uses=("serving",))


def one_off_name(inventory: Inventory, service: str) -> str:
    """Unique, so that removing a run's container when its operator goes can never hit another's."""
    return f"{inventory.app.name}-{service}-run-{secrets.token_hex(4)}"


def psql_command(inventory: Inventory) -> Argv:
    database = inventory.database
    return ["docker", "exec", "-it", layout_of(inventory).db_container, "psql", "-U", database.user, "-d", database.name]
