"""What the lab inventory calls things on the target: the app's folders, its containers, its backups' files.

Lab tests take these names from here, never as literals (`/srv/demo`, `demo-db-1`): they come from the lab
inventory (inventories/lab.yaml, which `inv lab.up` writes) through slipway's own layout code, the way
the tasks themselves find them.

`LAB` reads the inventory the first time a name is asked for, never at import: collecting the tests needs
no lab, and by the time a test runs, the session's lab target (conftest.py's lab_target) has written it.
Only names and paths are read from it, which a rewritten inventory (a new target's ports) leaves as they were.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import invoke

from fabfile import config
from fabfile.commands.layout import LETSENCRYPT, Layout, layout_of
from fabfile.config import Inventory
from lab import paths as lab_paths
from tasks import ns

PROJECT = Path(__file__).resolve().parents[2]


def checkout_context() -> invoke.Context:
    """A context as `inv` makes one in the checkout (tasks.py's collection: slipway's settings and the lab's)."""
    settings = invoke.Config(project_location=str(PROJECT))
    settings.load_collection(ns.configuration())
    return invoke.Context(settings)


class LabNames:
    """The lab inventory's names and paths on the target, read from it on first use."""

    @cached_property
    def inventory(self) -> Inventory:
        inventory_file, _ = lab_paths.inventory_files(checkout_context())
        return config.load(inventory_file.parent, lab_paths.LAB_INVENTORY).inventory

    @cached_property
    def layout(self) -> Layout:
        return layout_of(self.inventory)

    def __getattr__(self, name: str):
        """A name the layout defines, as it defines it (LAB.base, LAB.release_dir(id), LAB.nginx_container,
        LAB.verify_container, LAB.backup_conf, LAB.acme_webroot ...)."""
        if name.startswith("_") or name in ("inventory", "layout"):
            raise AttributeError(name)  # not one of the layout's: one of ours failed while it was made
        if hasattr(self.layout, name):
            return getattr(self.layout, name)
        raise AttributeError(f"the lab has no name {name!r}")

    # Names of the lab's own -------------------------------------------------------------------------------

    def container(self, release_id: str, service: str, index: int = 1) -> str:
        """Replica INDEX of a release's SERVICE (demo-RELEASE-api-1)."""
        return self.layout.containers(release_id, service, index)[-1]

    @property
    def db_user(self) -> str:
        return self.inventory.database.user

    @property
    def db_name(self) -> str:
        return self.inventory.database.name

    # Backups -----------------------------------------------------------------------------------------------

    def backup_unit(self, kind: str = "backup", suffix: str = "service") -> str:
        """A systemd unit's name: KIND backup or backup-check (...), SUFFIX service or timer."""
        return self.layout.backup_unit_name(kind, suffix)

    @property
    def metrics_dir(self) -> str:
        return self.inventory.backup.metrics_dir

    @property
    def metrics_file(self) -> str:
        """The backups' node_exporter textfile (metrics.sh writes it)."""
        return f"{self.metrics_dir}/slipway_backup_{self.app}.prom"

    # TLS ---------------------------------------------------------------------------------------------------

    @property
    def renewal_conf(self) -> str:
        """certbot's renewal settings of the app's certificate (its lineage is named after the app)."""
        return f"{LETSENCRYPT}/renewal/{self.app}.conf"


LAB = LabNames()
