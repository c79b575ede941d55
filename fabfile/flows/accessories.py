"""Accessories: started by deploy when missing and never changed by it; upgraded, restarted and removed only
when asked, each under the deploy lock and in the audit log."""

from __future__ import annotations

import time

from ..commands import accessories as commands
from ..commands.layout import layout_of
from ..commands.sequence import Part
from ..commands.shell import shown
from ..commands.state import ServerState
from ..commands.traffic import HEALTH_MARGIN_SECONDS, failure_report_command, wait_healthy_command
from ..config import Deployment
from ..errors import RemoteCommandFailed, SlipwayError
from ..remote import Remote, Reporter
from . import images
from .locked import audit, deploy_lock, read_state, recover, run_parts


def refusal(deployment: Deployment, state: ServerState) -> str | None:
    """Why a deploy may not go on: accessories whose containers were made with other settings than the inventory
    and secrets give them now (a deploy never changes one), or None."""
    inventory = deployment.inventory
    shadowed = [name for name in state.accessories if name not in inventory.accessories and name in inventory.services]
    if shadowed:
        return (f"{deployment.name}: accessory {shadowed[0]} still runs and answers as {shadowed[0]} on the app's "
                f"network, which service {shadowed[0]} would answer to as well; remove it first: "
                f"`fab -H {deployment.name} accessory.remove {shadowed[0]} --yes`; nothing was changed")
    # Where an upgrade was cut off, the container it kept aside is the one the next deploy would start.
    found = {name: state.accessories.get(name) or state.previous_accessories.get(name) for name in inventory.accessories}
    changed = {name: commands.differences(deployment, name, running) for name, running in found.items() if running}
    changed = {name: keys for name, keys in changed.items() if keys}
    if not changed:
        return None
    what = ", ".join(f"{name} ({', '.join(keys)})" for name, keys in changed.items())
    upgrades = " and ".join(f"`fab -H {deployment.name} accessory.upgrade {name}`" for name in changed)
    return (f"{deployment.name}: the inventory changes accessor{'ies' if len(changed) > 1 else 'y'} {what}, and a "
            f"deploy never changes a running accessory; run {upgrades} for that (its data stays); nothing was "
            f"changed and {state.serving or 'nothing'} still serves")


def missing(deployment: Deployment, state: ServerState) -> list[str]:
    """The inventory's accessories that are not up and healthy: deploy starts (or waits for) them."""
    inventory = deployment.inventory
    return [name for name in inventory.accessories if name not in state.accessories
            or not state.accessories[name].up(commands.docker_checks_health(inventory, name))]


def image_refs(deployment: Deployment, names: list[str]) -> dict[str, str]:
    """The images accessories NAMES run, keyed apart from the release's own (they are not in its record)."""
    return {f"accessory {name}": deployment.inventory.accessories[name].image for name in names}


def start(run, reporter: Reporter, deployment: Deployment, names: list[str]) -> None:
    """Accessories NAMES up (a missing one created, a stopped one started, a running one left as it is) and healthy,
    in one round trip; one that never gets healthy ends the run, with its last words."""
    inventory = deployment.inventory
    timeout = commands.health_timeout(inventory, names)
    with reporter.step(f"accessories {', '.join(names)} up and healthy") as step:
        parts = [Part(commands.start_command(deployment, name), commands.env_file(deployment, name).encode())
                 for name in names]
        parts.append(Part(wait_healthy_command([commands.health_check(inventory, name) for name in names],
                                               timeout)))
        started = run_parts(run, deployment.name, parts, check=False,
                            limit=run.step_limit + timeout + HEALTH_MARGIN_SECONDS)
        done = [f"{name} {started.output(index).strip()}" for index, name in enumerate(names)
                if started.succeeded(index)]
        step.changed = any(not note.endswith(" running") for note in done)
        step.detail = ", ".join(done)
        if started.failed is not None and started.failed < len(names):
            raise RemoteCommandFailed(deployment.name, shown(parts[started.failed].argv), started.exited,
                                      started.stderr or started.output(started.failed))
        if started.failed is not None:
            layout = layout_of(inventory)
            report = run(failure_report_command([layout.accessory_container(name) for name in names]),
                         check=False).stdout
            raise SlipwayError(f"{deployment.name}: accessor{'ies' if len(names) > 1 else 'y'} {', '.join(names)} "
                               f"did not get healthy ({started.output(len(names)).strip()}); the release got no "
                               f"traffic.\n{report.rstrip()}")


def listing(remote: Remote, reporter: Reporter, deployment: Deployment) -> str:
    """One line per accessory: the inventory's and those running that it no longer names."""
    layout = layout_of(deployment.inventory)
    with reporter.step("read accessories"):
        state = read_state(remote.run, layout, [], deployment.name)
    names = list(dict.fromkeys([*deployment.inventory.accessories, *state.accessories]))
    if not names:
        return "no accessories"
    lines = [f"  {'name':<16} {'container':<14} {'image':<32} {'settings':<26} status"]
    for name in names:
        running = state.accessories.get(name)
        if name not in deployment.inventory.accessories:
            verdict = "not in the inventory"
        elif running is None:
            verdict = "-"
        else:
            changed = commands.differences(deployment, name, running)
            verdict = f"differ: {', '.join(changed)}" if changed else "as the inventory"
        status = running.status if running else "missing: the next deploy starts it"
        lines.append(f"  {name:<16} {running.container_id if running else '-':<14} "
                     f"{running.image if running else deployment.inventory.accessories[name].image:<32} "
                     f"{verdict:<26} {status}")
    return "\n".join(lines)


def _known(deployment: Deployment, name: str) -> None:
    if name not in deployment.inventory.accessories:
        names = ", ".join(deployment.inventory.accessories) or "none"
        raise SlipwayError(f"{deployment.name}: no accessory {name} in {deployment.inventory_file} "
                           f"(accessories: {names})")


def upgrade(remote: Remote, reporter: Reporter, deployment: Deployment, name: str) -> None:
    """Accessory NAME replaced by one with the inventory's settings: its image on the server first, then the old
    one stopped and kept aside until the new one is healthy; the old one back when it never is."""
    _known(deployment, name)
    inventory = deployment.inventory
    layout = layout_of(inventory)
    refs = image_refs(deployment, [name])
    local_ids = images.local_image_ids(refs) if inventory.images.source == "ship" else {}
    with deploy_lock(remote, layout, f"accessory.upgrade {name}", inventory.app.step_timeout_seconds) as run:
        state = recover(run, reporter, layout, list(refs.values()), deployment.name)
        before = state.accessories.get(name)
        if before and before.up(commands.docker_checks_health(inventory, name)) \
                and not commands.differences(deployment, name, before):
            with reporter.step(f"{name} already runs as the inventory says") as step:
                step.detail = f"{before.image} ({before.container_id}): nothing to replace"
            print(reporter.summary())
            return
        if inventory.images.source == "ship":
            images.ship(run, reporter, deployment, refs, local_ids, state)
        else:
            images.pull(run, reporter, deployment, refs)
        audit(run, layout, "accessory upgrade started", accessory=name, image=inventory.accessories[name].image)
        accessory = inventory.accessories[name]
        shown_before = f"{before.image} ({before.container_id})" if before else "nothing"
        with reporter.step(f"replace {name}: {shown_before} stopped, {accessory.image} started, "
                           "wait until healthy") as step:
            began = time.monotonic()
            upgrade_argv = commands.upgrade_command(deployment, name)
            # The old container's stop, the new one's health wait and, when it fails, the old one's again.
            limit = run.step_limit + accessory.stop_grace_seconds + 2 * accessory.healthcheck.timeout_seconds
            result = run(upgrade_argv, stdin=commands.env_file(deployment, name), check=False,
                         limit=limit + HEALTH_MARGIN_SECONDS)
            step.changed = True
            if result.failed:
                audit(run, layout, "accessory upgrade failed", accessory=name, image=accessory.image)
            if result.exited == commands.UNHEALTHY_EXIT:
                raise SlipwayError(f"{deployment.name}: {name} on {accessory.image} never got "
                                   f"healthy, so {shown_before} runs again as it was.\n{result.stdout.rstrip()}")
            if result.failed:
                raise RemoteCommandFailed(deployment.name, shown(upgrade_argv), result.exited,
                                          result.stderr or result.stdout)
            step.detail = f"{result.stdout.strip()} (the whole step {time.monotonic() - began:.1f} s)"
        audit(run, layout, "accessory upgraded", accessory=name, image=inventory.accessories[name].image)
    print(reporter.summary())


def restart(remote: Remote, reporter: Reporter, deployment: Deployment, name: str) -> None:
    """Accessory NAME's container restarted as it is (same settings, same data), then healthy."""
    _known(deployment, name)
    inventory = deployment.inventory
    layout = layout_of(inventory)
    with deploy_lock(remote, layout, f"accessory.restart {name}", inventory.app.step_timeout_seconds) as run:
        state = recover(run, reporter, layout, [], deployment.name)
        if name not in state.accessories:
            raise SlipwayError(f"{deployment.name}: accessory {name} has no container yet; deploy starts it")
        timeout = commands.health_timeout(inventory, [name])
        with reporter.step(f"restart {name}, wait until healthy") as step:
            outcome = run_parts(run, deployment.name, [
                Part(commands.restart_command(layout, inventory.accessories[name], name)),
                Part(wait_healthy_command([commands.health_check(inventory, name)], timeout))],
                check=False, limit=run.step_limit + timeout + HEALTH_MARGIN_SECONDS)
            step.changed = outcome.succeeded(0)
            if outcome.failed is not None:
                raise SlipwayError(f"{deployment.name}: {name} did not come back healthy: "
                                   f"{(outcome.output(outcome.failed) or outcome.stderr).strip()}")
            step.detail = outcome.output(1).strip()
        audit(run, layout, "accessory restarted", accessory=name)
    print(reporter.summary())


def remove(remote: Remote, reporter: Reporter, deployment: Deployment, name: str, delete_data: bool) -> None:
    """Accessory NAME's container gone; its volumes kept unless DELETE_DATA, and the output says which."""
    inventory = deployment.inventory
    layout = layout_of(inventory)
    with deploy_lock(remote, layout, f"accessory.remove {name}", inventory.app.step_timeout_seconds) as run:
        state = recover(run, reporter, layout, [], deployment.name)
        volumes = commands.own_volumes(inventory, name)
        if name not in state.accessories and name not in state.previous_accessories and not volumes:
            raise SlipwayError(f"{deployment.name}: no accessory {name} on the server or in "
                               f"{deployment.inventory_file}; nothing was changed")
        with reporter.step(f"remove {name}" + (" and its data" if delete_data else ", keep its data")) as step:
            output = run(commands.remove_command(layout, name, volumes, delete_data)).stdout
            step.changed = "removed" in output
            step.detail = "; ".join(output.strip().splitlines()) or "nothing was there"
        audit(run, layout, "accessory removed", accessory=name, data="deleted" if delete_data else "kept")
    print(reporter.summary())
    kept = [line.split()[-1] for line in output.splitlines() if line.startswith("kept volume ")]
    if kept:
        print(f"[{deployment.name}] kept volume{'s' if len(kept) > 1 else ''} {', '.join(kept)}: "
              f"`fab -H {deployment.name} accessory.remove {name} --yes --delete-data` removes "
              f"{'them' if len(kept) > 1 else 'it'}")
    if name in inventory.accessories:
        print(f"[{deployment.name}] {name} is still in {deployment.inventory_file}: the next deploy starts it again")
