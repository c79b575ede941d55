"""`doctor`: status's facts and three more, each area with a verdict and what to do."""

from __future__ import annotations

from datetime import datetime

from ..config import Inventory
from .facts import Fact, by_name, gather_command
from .status import findings, parse_status, status_facts

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
# (area, what is said when all is well, a warning or ""): an area status found a problem in fails instead.
Observation = tuple[str, str, str]


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
    sshd = dict(text.lower().split(None, 1) for text in found.get("sshd", []) if " " in text)
    if weakness := _sshd_weakness(sshd):
        failed["ssh hardening"] = [weakness]
    observations = [
        *_runtime_observations(report), *_system_observations(found), *_upkeep_observations(report, inventory),
        ("ssh hardening", "root and password logins refused", "" if sshd else "sshd's settings unread (sudo)"),
    ]
    return [_check(area, ok_detail, warning, failed.get(area), label) for area, ok_detail, warning in observations]


def _check(area: str, ok_detail: str, warning: str, failures: list[str] | None, label: str) -> dict:
    verdict, detail = (FAIL, "; ".join(failures)) if failures else (WARN, warning) if warning else (OK, ok_detail)
    return {"area": area, "verdict": verdict, "detail": detail,
            **({"fix": FIXES[area].replace("NAME", label)} if verdict != OK else {})}


def _runtime_observations(report: dict) -> list[Observation]:
    running = [c for c in report["containers"] if c["state"] == "running"]
    return [("docker", f"Docker {report['docker']} answers", ""),
            ("containers", f"{len(running)} running, none unhealthy, restarting or crashing", ""),
            _disk_observation(report["host"]["filesystems"]), _memory_observation(report["host"]["memory_mb"])]


def _usage(filesystem: dict) -> int:
    return max(filesystem.get("used_percent", 0), filesystem.get("inodes_used_percent", 0))


def _disk_observation(filesystems: list[dict]) -> Observation:
    fullest = max(filesystems, key=_usage, default=None)
    usage = _usage(fullest) if fullest else 0
    return ("disk", f"fullest: {fullest['mount']} at {usage}%" if fullest else "no filesystem read",
            f"{fullest['mount']} is {usage}% full" if fullest and usage >= WARN_FULL_PERCENT else "")


def _memory_observation(memory: dict) -> Observation:
    swap_used = memory["swap_total"] - memory["swap_free"]
    low = memory["total"] and memory["available"] * 100 < memory["total"] * WARN_MEMORY_PERCENT
    swapping = swap_used * 2 > memory["swap_total"] > 0
    return ("memory", f"{memory['available']} of {memory['total']} MB available, swap {swap_used} MB used",
            f"{memory['available']} of {memory['total']} MB available" if low else
            f"{swap_used} of {memory['swap_total']} MB of swap in use" if swapping else "")


def _system_observations(found: dict) -> list[Observation]:
    synchronized = (found.get("clock") or [""])[0]
    pending = (found.get("updates") or ["0"])[0]
    return [("clock", "synchronized (NTP)",
             "" if synchronized == "yes" else "not synchronized (NTP)" if synchronized == "no" else "sync unknown"),
            ("security updates", "none pending", f"{pending} pending" if pending.isdigit() and int(pending) else "")]


def _upkeep_observations(report: dict, inventory: Inventory) -> list[Observation]:
    lock = report["lock"]
    held = f"held by {lock['by']} running `{lock['command']}`" if lock["held"] else "free"
    observations = [("deploy lock", held, "")]
    certificate = report["certificate"]
    if certificate:
        left = f"{certificate['days_left']} days left" if certificate["present"] else "none yet"
        renewal_due = certificate["present"] and certificate["days_left"] < certificate["lifetime_days"] / 3 - 1
        observations.append(("certificate", left, f"{left}: certbot should have renewed it" if renewal_due else ""))
    backup = report["backup"]
    if backup:
        old = backup["age_hours"] is not None and backup["age_hours"] * 2 > backup["max_age_hours"]
        observations.append(("backups", f"newest good one {backup['age_hours']} hours old",
                             f"the newest good backup is {backup['age_hours']} hours old" if old else ""))
    access = report["database_access"]
    if inventory.database:
        observations.append(("database access", "no password-less lines",
                             f"removed {access['passwordless_lines']} password-less lines an interrupted password "
                             "rotation left" if access and access["removed"] else ""))
    return observations


def _sshd_weakness(sshd: dict[str, str]) -> str:
    """What sshd allows beyond slipway's hardening, or "" (also when its settings could not be read)."""
    weak = [f"{key} {sshd.get(key, '?')}" for key, wanted in SSHD_HARDENING.items() if sshd.get(key) != wanted]
    return f"sshd allows more than slipway set: {', '.join(weak)}" if sshd and weak else ""


def format_doctor(checks: list[dict]) -> str:
    width = max(len(c["area"]) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c['verdict'].upper():<5} {c['area']:<{width}}  {c['detail']}")
        if "fix" in c:
            lines.append(f"{'':<5} {'':<{width}}  fix: {c['fix']}")
    return "\n".join(lines)
