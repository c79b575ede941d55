"""What an on-call engineer types: `fab -H NAME status`, `logs`, `doctor`, `exec`, `shell`, `psql`, `facts`,
`maintenance.on|off`."""

from __future__ import annotations

import ipaddress
import json as jsonlib
import shlex
import sys
from datetime import datetime, timezone

from invoke import Collection
from invoke.exceptions import Exit

from ..errors import ConfigError
from ..lazy import lazy_module
from ..remote import Reporter
from ..tasking import app_session, load_deployment, operator_task, project_dir, session

commands = lazy_module("..commands.runbook", __package__)
doctor_commands = lazy_module("..commands.doctor", __package__)
status_commands = lazy_module("..commands.status", __package__)
maintenance_flow = lazy_module("..flows.maintenance", __package__)


@operator_task
def facts(c):
    """Print the host's OS, kernel, CPUs, memory and Docker version (one SSH round trip)."""
    deployment = load_deployment(c)
    reporter = Reporter(deployment.name)
    with session(c, deployment, reporter) as remote:
        with reporter.step("gather facts"):
            result = remote.run(commands.facts_command())
    print(commands.format_facts(commands.parse_facts(result.stdout)))


@operator_task(help={"json": "print the status as JSON (for scripts and monitoring)"})
def status(c, json=False):
    """The site at a glance: serving release, containers, host, lock, deploys, certificate, backups (one round trip).

    Exits 1 when something needs a human, so it doubles as a monitoring check."""
    # Step lines go to stderr: stdout is the status alone (JSON with --json).
    with app_session(c, out=sys.stderr) as (deployment, _, remote):
        output = remote.run(status_commands.status_command(deployment.inventory), check=False).stdout
    report = status_commands.parse_status(output, deployment.inventory, datetime.now(timezone.utc))
    print(jsonlib.dumps(report, indent=2, sort_keys=True) if json
          else status_commands.format_status(report, deployment.name))
    if report["problems"]:
        raise Exit(code=1)


@operator_task(positional=["service"], help={
    "service": "an app service, nginx, db, or all (Invoke's positional arguments cannot be left out)",
    "follow": "keep printing new lines until Ctrl-C",
    "since": "only lines since then: a duration like 10m or 2h, or a time like 2026-11-23T03:00:00Z",
    "tail": "the last N lines of each container (or all)",
    "grep": "only lines holding this text",
})
def logs(c, service, follow=False, since="", tail="100", grep=""):
    """The serving release's containers' logs (every replica, prefixed), nginx's and the database's."""
    deployment = load_deployment(c)
    inventory = deployment.inventory
    argv = commands.logs_command(inventory, commands.log_services(inventory, service), follow, since, str(tail), grep)
    with app_session(c, deployment, out=sys.stderr) as (_, _, remote):
        exited = remote.stream(argv, sys.stdout.buffer, sys.stderr.buffer)
    if exited not in (0, None):
        raise Exit(code=1)


@operator_task(help={"json": "print the checks as JSON"})
def doctor(c, json=False):
    """Check the host (disk, memory, Docker, containers, clock, updates, lock, certificate, backups, sshd): a
    verdict each and what to do. Exits 1 on any fail."""
    with app_session(c, out=sys.stderr) as (deployment, _, remote):
        output = remote.run(doctor_commands.doctor_command(deployment.inventory), check=False, timeout=120).stdout
    checks = doctor_commands.doctor_checks(output, deployment.inventory, datetime.now(timezone.utc), deployment.name)
    print(jsonlib.dumps(checks, indent=2) if json else doctor_commands.format_doctor(checks))
    if any(check["verdict"] == doctor_commands.FAIL for check in checks):
        raise Exit(code=1)


def _one_off(c, task: str, service: str, command: list[str], terminal: bool) -> None:
    deployment = load_deployment(c)
    inventory = deployment.inventory
    if service in inventory.accessories:
        argv = commands.accessory_exec_command(inventory, service, command, terminal)
    elif service in inventory.services:
        argv = commands.one_off_command(inventory, service, command, terminal, commands.one_off_name(inventory, service))
    else:
        raise ConfigError([f"{task} {service}: no such service or accessory; expected one of "
                           f"{', '.join([*inventory.services, *inventory.accessories])}"])
    with app_session(c, deployment, out=sys.stderr) as (_, _, remote):
        exited = remote.interactive(argv) if terminal else remote.stream(argv, sys.stdout.buffer, sys.stderr.buffer)
    if exited != 0:
        raise Exit(code=130 if exited is None else exited)


@operator_task(name="exec", positional=["service", "command"], help={
    "service": "the app service whose image, env and mounts the command gets, or an accessory (run in its container)",
    "command": "the command and its arguments, quoted as one (run without a shell: say sh -c '...' for one)",
})
def exec_(c, service, command):
    """Run a command in a one-off container of the serving release (like a release command), or in an accessory's
    container; its exit status."""
    _one_off(c, "exec", service, shlex.split(command), terminal=False)


@operator_task(positional=["service"], help={"service": "the app service, or the accessory, to open a shell in"})
def shell(c, service):
    """A shell (sh) in a one-off container of SERVICE of the serving release (an accessory: in its container), in a
    real terminal."""
    _one_off(c, "shell", service, ["sh"], terminal=True)


@operator_task
def psql(c):
    """psql on the app's database, in a real terminal."""
    deployment = load_deployment(c)
    if not deployment.inventory.database:
        raise ConfigError([f"{deployment.inventory_file}: database: missing; this app has no database"])
    with app_session(c, deployment, out=sys.stderr) as (_, _, remote):
        exited = remote.interactive(commands.psql_command(deployment.inventory))
    if exited != 0:
        raise Exit(code=exited)


def _addresses(allow) -> tuple[str, ...]:
    addresses = []
    for value in allow or ():
        try:
            addresses.append(str(ipaddress.ip_address(value)))
        except ValueError:
            raise ConfigError([f"--allow: found {value!r}; expected a client IP address like 203.0.113.7"]) from None
    return tuple(addresses)


@operator_task(iterable=["allow"], help={
    "message": "what the page says (default: a short apology)",
    "until": "when the site is expected back, shown on the page and in status (free text, like 03:30 UTC)",
    "allow": "a client address whose requests still reach the app (repeat for more)",
})
def on(c, message="We are doing some maintenance and will be back shortly.", until="", allow=None):
    """Maintenance on: the app's requests get a 503 page with Retry-After (health and ACME paths still answer)."""
    deployment = load_deployment(c)
    addresses = _addresses(allow)
    with app_session(c, deployment) as (_, reporter, remote):
        maintenance_flow.on(remote, reporter, deployment, project_dir(c), message, until, addresses)


@operator_task
def off(c):
    """Maintenance off: the serving release answers again."""
    with app_session(c) as (deployment, reporter, remote):
        maintenance_flow.off(remote, reporter, deployment)


maintenance = Collection("maintenance")
maintenance.add_task(on)
maintenance.add_task(off)
