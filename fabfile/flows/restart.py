"""A restart: one worker in place, or the serving release started afresh beside itself, health-gated like a
deploy (no failed request)."""

from __future__ import annotations

from ..commands.layout import layout_of, workers
from ..config import Deployment
from ..errors import SlipwayError
from ..remote import Remote, Reporter
from .locked import audit, deploy_lock, failing_cleanly, recover, remove_leftovers
from .release import copy_attempt, copy_serving, serve_copy


def restart(remote: Remote, reporter: Reporter, deployment: Deployment, service: str) -> None:
    """SERVICE (a worker) restarted in place; any other, or all: the serving release started afresh."""
    inventory = deployment.inventory
    layout = layout_of(inventory)
    with deploy_lock(remote, layout, f"restart {service}", inventory.app.step_timeout_seconds) as run:
        state = recover(run, reporter, layout, [], deployment.name)
        if not state.serving:
            raise SlipwayError(f"{deployment.name}: no release serves, so there is nothing to restart; deploy first")
        if service in workers(inventory):
            with reporter.step(f"restart {service} in place (it takes no requests)") as step:
                run(layout.compose(state.serving, "restart", service))
                step.changed = True
            audit(run, layout, "restarted", release=state.serving, service=service)
            print(reporter.summary())
            return
        attempt = copy_attempt(deployment, state, "restart", restart_of=state.serving)
        audit(run, layout, "restart started", release=attempt.release_id, restart_of=state.serving)
        with failing_cleanly(run, reporter, layout, attempt, deployment.name):
            remove_leftovers(run, reporter, layout, state)
            copy_serving(run, reporter, layout, state, attempt)
            serve_copy(run, reporter, deployment, state, attempt, "restarted", release=attempt.release_id,
                       restart_of=attempt.restart_of)
    print(f"{reporter.summary()}, {remote.round_trips} SSH round trips")
    print(f"[{deployment.name}] {attempt.restart_of} ({attempt.version}) restarted as {attempt.release_id}")
