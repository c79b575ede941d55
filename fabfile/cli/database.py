"""`fab -H NAME db.rotate-password`: the database's password changed to the one in the secrets file, with no
failed request."""

from __future__ import annotations

from invoke import Collection

from ..errors import ConfigError
from ..lazy import lazy_module
from ..tasking import app_session, load_deployment, operator_task

database = lazy_module("..flows.database", __package__)


@operator_task(name="rotate-password")
def rotate_password(c):
    """Change the database's password to the one now in the secrets file, and start the serving release afresh
    with it (health-gated, traffic moved like a deploy: no failed request)."""
    deployment = load_deployment(c)
    if not deployment.inventory.database:
        raise ConfigError([f"{deployment.inventory_file}: database: missing; this app has no database"])
    with app_session(c, deployment) as (_, reporter, remote):
        database.rotate_password(remote, reporter, deployment)


namespace = Collection("db")
namespace.add_task(rotate_password)
