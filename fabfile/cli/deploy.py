"""`fab -H NAME deploy|rollback|releases`: zero-downtime releases behind nginx.

New containers start beside the old ones; nginx moves to them only once
every one is Docker-healthy and answers its health path; a release that
never gets healthy never gets traffic.
"""

from __future__ import annotations

import re

from ..errors import ConfigError
from ..lazy import lazy_module
from ..tasking import app_session, load_deployment, operator_task, project_dir

layout = lazy_module("..commands.layout", __package__)
state = lazy_module("..commands.state", __package__)
deploy_flow = lazy_module("..flows.deploy", __package__)
locked = lazy_module("..flows.locked", __package__)
restart_flow = lazy_module("..flows.restart", __package__)
rollback_flow = lazy_module("..flows.rollback", __package__)

VERSION_RULE = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"


def _version(value: str) -> str:
    if not re.fullmatch(VERSION_RULE, value):
        raise ConfigError([f"--version: found {value!r}; expected an image tag like v1 or 2024.05.1"])
    return value


@operator_task(help={
    "version": "image tag of the app's own images (default: app.version in the inventory)",
    "dry-run": "render everything and show a diff against the serving release (secrets masked); change nothing",
    "restart-db": "re-create the database container when this release changes its settings (same PostgreSQL "
                  "major version only; a short outage for the app)",
    "restart-nginx": "re-create nginx when this release changes its image, ports or mounts (a few seconds in "
                     "which connections fail)",
})
def deploy(c, version=None, dry_run=False, restart_db=False, restart_nginx=False):
    """Ship images, start the new release beside the old, health-gate it, move nginx to it, retire the old."""
    deployment = load_deployment(c)
    plan = deploy_flow.plan(deployment, project_dir(c), _version(version or deployment.inventory.app.version), dry_run)
    with app_session(c, deployment, dry_run=dry_run) as (_, reporter, remote):
        if dry_run:
            deploy_flow.dry_run(remote, reporter, plan)
        else:
            deploy_flow.deploy(remote, reporter, plan, restart_db, restart_nginx)


@operator_task(help={"to": "release id to go back to (default: the newest healthy release before the serving one)"})
def rollback(c, to=None):
    """Re-activate an earlier release with the same health-gated switch, using images already on the server."""
    with app_session(c) as (deployment, reporter, remote):
        rollback_flow.rollback(remote, reporter, deployment, to)


@operator_task(positional=["service"], help={
    "service": "an app service, or all. A worker restarts in place; all, or a service behind nginx, by "
               "starting the serving release afresh beside itself, health-gated, like a deploy",
})
def restart(c, service):
    """Restart the app: the serving release started afresh (health-gated, no failed requests), or one worker in place."""
    deployment = load_deployment(c)
    if service != "all" and service not in deployment.inventory.services:
        raise ConfigError([f"restart {service}: no such service; expected one of "
                           f"{', '.join(deployment.inventory.services)}, or all"])
    with app_session(c, deployment) as (_, reporter, remote):
        restart_flow.restart(remote, reporter, deployment, service)


@operator_task
def releases(c):
    """List releases on the server: id, version, time, deployer, outcome, and which one serves."""
    with app_session(c) as (deployment, _, remote):
        found = locked.read_state(remote.run, layout.layout_of(deployment.inventory), [], deployment.name)
    print(state.format_releases(found))
