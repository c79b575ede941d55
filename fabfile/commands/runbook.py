"""Commands an on-call engineer needs to see a host at a glance."""

from __future__ import annotations

# One shell round trip gathers every fact; each line is `key=value`.
FACT_PROBES = {
    "os": '. /etc/os-release && printf %s "$PRETTY_NAME"',
    "os_id": '. /etc/os-release && printf %s "$ID"',
    "os_version": '. /etc/os-release && printf %s "$VERSION_ID"',
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
    return "; ".join(f"echo \"{key}=$({probe})\"" for key, probe in FACT_PROBES.items())


def parse_facts(stdout: str) -> dict[str, str]:
    facts = {key: "" for key in FACT_PROBES}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in facts:
            facts[key] = value.strip()
    return facts


def format_facts(facts: dict[str, str]) -> str:
    width = max(len(label) for label in FACT_LABELS.values())
    return "\n".join(
        f"{label:<{width}}  {facts.get(key) or '-'}" for key, label in FACT_LABELS.items()
    )
