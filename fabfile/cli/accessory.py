"""`fab -H NAME accessory.list|upgrade|restart|remove`: the long-lived services beside the app."""

from __future__ import annotations

from invoke import Collection

from ..errors import SlipwayError
from ..lazy import lazy_module
from ..tasking import app_session, load_deployment, operator_task

accessories = lazy_module("..flows.accessories", __package__)


@operator_task(name="list")
def list_accessories(c):
    """Each accessory: its container, image, whether it runs as the inventory says, and its health."""
    with app_session(c) as (deployment, reporter, remote):
        print(accessories.listing(remote, reporter, deployment))


@operator_task(positional=["name"], help={"name": "the accessory, as the inventory names it"})
def upgrade(c, name):
    """Replace the accessory's container by one with the inventory's settings: the new image reaches the server
    first; the old container stops, and comes back if the new one never gets healthy. Its data stays."""
    with app_session(c) as (deployment, reporter, remote):
        accessories.upgrade(remote, reporter, deployment, name)


@operator_task(positional=["name"], help={"name": "the accessory, as the inventory names it"})
def restart(c, name):
    """Restart the accessory's container as it is (same settings and data) and wait until it is healthy."""
    with app_session(c) as (deployment, reporter, remote):
        accessories.restart(remote, reporter, deployment, name)


@operator_task(positional=["name"], help={"name": "the accessory", "yes": "go ahead (required)",
                                          "delete-data": "remove its named volumes too (its data is gone for good)"})
def remove(c, name, yes=False, delete_data=False):
    """Remove the accessory's container; its volumes stay (and are named) unless --delete-data."""
    deployment = load_deployment(c)
    if not yes:
        raise SlipwayError(f"{deployment.name}: accessory.remove {name} stops it for good: pass --yes to go ahead")
    with app_session(c, deployment) as (_, reporter, remote):
        accessories.remove(remote, reporter, deployment, name, delete_data)


namespace = Collection("accessory", list_accessories, upgrade, restart, remove)
