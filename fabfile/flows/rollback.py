"""A rollback: an earlier release that served, started again from the images and files still on the server, with
the same health-gated switch as a deploy; refused before anything changes when it could not serve as it did."""

from __future__ import annotations

from datetime import datetime

from ..commands import traffic, upgrade
from ..commands.layout import layout_of, web_services
from ..commands.release import serves_https
from ..commands.state import SERVED, ServerState, previous_healthy
from ..config import Deployment
from ..errors import SlipwayError
from ..remote import Remote, Reporter
from .database import check_release_password
from .locked import Attempt, LockedRun, audit, deploy_lock, failing_cleanly, recover, remove_leftovers
from .release import Ending, activate


def rollback(remote: Remote, reporter: Reporter, deployment: Deployment, to: str | None) -> None:
    """Back to release TO, or the newest healthy release before the serving one."""
    inventory = deployment.inventory
    layout = layout_of(inventory)
    with deploy_lock(remote, layout, f"rollback {to or ''}".strip(), inventory.app.step_timeout_seconds) as run:
        state = recover(run, reporter, layout, [], deployment.name)
        target = _target(deployment, state, to)
        record = state.releases[target]
        attempt = Attempt("rollback", target, record["version"], datetime.fromisoformat(record["time"]),
                          record.get("commit", "unknown"), record.get("deployer", "?"), state.serving,
                          images=record["images"], layout=record.get("layout", upgrade.UNRECORDED))
        nginx_conf = run(["cat", f"{layout.release_dir(target)}/nginx.conf"]).stdout
        _check_it_can_serve(run, deployment, attempt, nginx_conf)
        check_release_password(run, reporter, deployment, target, record["version"])
        audit(run, layout, "rollback started", release=target, version=record["version"], serving=state.serving)
        with failing_cleanly(run, reporter, layout, attempt, deployment.name):
            remove_leftovers(run, reporter, layout, state)
            with reporter.step(f"images of {target} on the server (no pull, no build)"):
                run(traffic.tag_images_command(record["images"]))
            rolled_back = Ending(event="rolled back", details={"release": target, "version": record["version"],
                                                               "previous": state.serving})
            activate(run, reporter, deployment, state, attempt, None, nginx_conf, traffic.LEAVE, traffic.LEAVE,
                     rolled_back)
    print(f"{reporter.summary()}, {remote.round_trips} SSH round trips")
    print(f"[{deployment.name}] rolled back to {target} ({record['version']})")


def _target(deployment: Deployment, state: ServerState, to: str | None) -> str:
    """TO (or the newest healthy release before the serving one), if it is on the server and once served."""
    target = to or previous_healthy(state, state.serving or "99999999-999999")
    if not target or target not in state.releases:
        known = ", ".join(sorted(state.releases)) or "none"
        raise SlipwayError(f"{deployment.name}: no release {'to roll back to' if not to else to!r} on the server (releases: {known})")
    if target == state.serving:
        raise SlipwayError(f"{deployment.name}: {target} is already serving")
    outcome = state.releases[target].get("outcome")
    if outcome != SERVED:
        raise SlipwayError(f"{deployment.name}: {target} never served (outcome {outcome or '?'}); "
                           "roll back only to a release that did")
    return target


def _check_it_can_serve(run: LockedRun, deployment: Deployment, attempt: Attempt, nginx_conf: str) -> None:
    """The target's containers can be found by nginx without Docker's DNS, and its nginx config keeps HTTPS on if
    the site serves it."""
    layout = layout_of(deployment.inventory)
    target, version = attempt.release_id, attempt.version
    if web_services(deployment.inventory) and attempt.layout < upgrade.FIXED_ADDRESSES:
        raise SlipwayError(f"{deployment.name}: {target} was deployed by a slipway whose nginx config asks Docker's "
                           "DNS for the containers (requests get a 502 while Docker restarts); deploy its "
                           f"version instead: fab -H {deployment.name} deploy --version {version}")
    live_conf = run(["cat", layout.live_nginx_conf], check=False).stdout
    if serves_https(live_conf) and not serves_https(nginx_conf):
        raise SlipwayError(f"{deployment.name}: {target} was deployed before the site had its certificate; "
                           "rolling back to it would turn HTTPS off (browsers that saw HSTS could not reach "
                           f"the site); deploy its version instead: fab -H {deployment.name} deploy "
                           f"--version {version}")
