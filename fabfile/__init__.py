"""slipway: run a production docker-compose app on one server.

`fab` loads this package's `ns`; a project's `tasks.py` hands `inv` a
`collection()` of the same tasks, to which it may add its own (this
checkout's adds the lab's) without changing what `fab` lists.
"""

from invoke import Collection

from .cli import accessory, backup, database, deploy, hostkeys, lock, provision, runbook, tls, verify


def collection() -> Collection:
    """A new collection of every slipway task, with slipway's configuration defaults."""
    tasks = Collection(
        runbook.status, runbook.logs, runbook.doctor, runbook.exec_, runbook.shell, runbook.psql, runbook.facts,
        hostkeys.trust, provision.provision, verify.verify,
        deploy.deploy, deploy.rollback, deploy.restart, deploy.releases,
        lock.namespace, backup.namespace, tls.namespace, database.namespace, accessory.namespace,
        runbook.maintenance,
    )
    tasks.configure({
        "slipway": {
            # Where inventories/ and templates/ live. Unset: the folder where
            # `fab` found fabfile/ or `inv` found tasks.py.
            "project_dir": None,
            "inventory_dir": "inventories",
            # The inventory `inv TASK` (and `fab TASK` without -H) works on.
            "inventory": None,
        },
    })
    return tasks


ns = collection()
