"""slipway: run a production docker-compose app on one server.

`fab` loads this package; `tasks.py` hands the same collection to `inv`.
"""

from invoke import Collection

from .cli import backup, database, deploy, hostkeys, lab, lock, provision, runbook, tls, verify

ns = Collection(
    runbook.status, runbook.logs, runbook.doctor, runbook.exec_, runbook.shell, runbook.psql, runbook.facts,
    hostkeys.trust, provision.provision, verify.verify,
    deploy.deploy, deploy.rollback, deploy.restart, deploy.releases,
    lab.namespace, lock.namespace, backup.namespace, tls.namespace, database.namespace, runbook.maintenance,
)
ns.configure({
    "slipway": {
        # Where inventories/ and templates/ live. Unset: the folder where
        # `fab` found fabfile/ or `inv` found tasks.py.
        "project_dir": None,
        "inventory_dir": "inventories",
        # The inventory `inv TASK` (and `fab TASK` without -H) works on.
        "inventory": None,
        "lab": {
            "prefix": "slipway-lab",
            "suite": "trixie",
            # Empty: debootstrap's own default mirror.
            "mirror": "",
            "state_dir": ".lab",
        },
    },
})
