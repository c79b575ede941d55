"""Maintenance: the app's requests get a 503 page with Retry-After, switched by one file, with no nginx reload."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from ..commands import traffic
from ..commands.layout import Layout, layout_of
from ..commands.release import maintenance_page
from ..config import Deployment
from ..remote import Remote, Reporter
from .locked import audit, deploy_lock, deployer, read_state


def maintenance_record(run, layout: Layout) -> dict | None:
    """The maintenance in force (who, since, message, until, allowed addresses), or None."""
    result = run(traffic.maintenance_state_command(layout), check=False)
    if result.failed:
        return None
    try:
        return json.loads(result.stdout)
    except ValueError:
        return {}


def turn_maintenance_on(run, reporter: Reporter, deployment: Deployment, project: Path, message: str,
                        until: str = "", allow: tuple[str, ...] = ()) -> None:
    layout = layout_of(deployment.inventory)
    record = {"by": deployer(), "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "message": message, "until": until, "allow": list(allow)}
    page = maintenance_page(deployment.inventory, project, message, until)
    with reporter.step("maintenance on (503 with Retry-After; no nginx reload)") as step:
        run(traffic.maintenance_on_command(layout, record, list(allow)), stdin=page)
        step.changed = True
        step.detail = f"let through: {', '.join(allow)}" if allow else ""


def turn_maintenance_off(run, reporter: Reporter, deployment: Deployment) -> None:
    with reporter.step("maintenance off (no nginx reload)") as step:
        run(traffic.maintenance_off_command(layout_of(deployment.inventory)))
        step.changed = True


def on(remote: Remote, reporter: Reporter, deployment: Deployment, project: Path, message: str, until: str,
       allow: tuple[str, ...]) -> None:
    layout = layout_of(deployment.inventory)
    with deploy_lock(remote, layout, "maintenance on", deployment.inventory.app.step_timeout_seconds) as run:
        read_state(run, layout, [], deployment.name)
        turn_maintenance_on(run, reporter, deployment, project, message, until, allow)
        audit(run, layout, "maintenance on", message=message, until=until, allow=list(allow))
    print(reporter.summary())
    print(f"[{deployment.name}] maintenance is on; `fab -H {deployment.name} maintenance.off` ends it")


def off(remote: Remote, reporter: Reporter, deployment: Deployment) -> None:
    layout = layout_of(deployment.inventory)
    with deploy_lock(remote, layout, "maintenance off", deployment.inventory.app.step_timeout_seconds) as run:
        was = maintenance_record(run, layout)
        turn_maintenance_off(run, reporter, deployment)
        audit(run, layout, "maintenance off", **({"since": was.get("since")} if was else {}))
    print(reporter.summary())
    print(f"[{deployment.name}] maintenance is off" if was else f"[{deployment.name}] maintenance was not on")
