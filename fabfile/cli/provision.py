"""`fab -H NAME provision [--dry-run]`: a fresh Debian/Ubuntu server becomes a hardened Docker host."""

from __future__ import annotations

from ..lazy import lazy_module
from ..remote import Reporter
from ..tasking import load_deployment, operator_task, project_dir, session, trust_hint

provision_flow = lazy_module("..flows.provision", __package__)


@operator_task(help={
    "dry-run": "show what would change, with a diff of every managed file, and change nothing",
    "switch-image-store": "let a change of server.docker.containerd_image_store switch Docker's image store on a "
                          "server where the app is deployed (its containers stop until the next deploy)",
})
def provision(c, dry_run=False, switch_image_store=False):
    """Install Docker + Compose v2, create the deploy user, harden SSH, enable the firewall (idempotent)."""
    deployment = load_deployment(c)
    reporter = Reporter(deployment.name, dry_run=dry_run)
    with session(c, deployment, reporter, as_root=True) as remote:
        provision_flow.provision(remote, reporter, deployment, project_dir(c), trust_hint(c), dry_run,
                                 switch_image_store)
