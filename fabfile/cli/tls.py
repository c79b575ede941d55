"""HTTPS: the certificate a deploy obtains or installs, and `tls.status` / `tls.renew`.

A deploy serves the app over HTTP (with the ACME challenge path) until the
server has a certificate for exactly the app's domains; then it obtains one
with certbot's webroot method, once, and moves nginx to HTTPS. Later deploys
read the certificate and never contact the CA unless the domains changed.
"""

from __future__ import annotations

import json as jsonlib
import sys

from invoke import Collection

from ..errors import SlipwayError
from ..lazy import lazy_module
from ..tasking import app_session, load_deployment, operator_task

tls_commands = lazy_module("..commands.tls", __package__)
certificates = lazy_module("..flows.tls", __package__)


@operator_task(help={"json": "print the status as one JSON object"})
def status(c, json=False):
    """The certificate's domains, issuer, serial and days left; the last renewal check and renewal; the timer."""
    # Step lines go to stderr: stdout is the status alone (JSON with --json).
    with app_session(c, out=sys.stderr) as (deployment, _, remote):
        report = certificates.status(remote, deployment)
    print(jsonlib.dumps(report, sort_keys=True) if json else tls_commands.format_status(report))


@operator_task(help={"force": "renew even when the certificate is not due yet (counts against the CA's limits)"})
def renew(c, force=False):
    """Renew the app's certificate now if it is due (--force: even if not); nginx reloads only if `nginx -t` passes."""
    deployment = load_deployment(c)
    if not tls_commands.uses_acme(deployment.inventory):
        raise SlipwayError(f"{deployment.name}: the certificate does not come from ACME here (tls is off or it is your "
                           "own), so there is nothing to renew")
    with app_session(c, deployment) as (_, reporter, remote):
        certificates.renew(remote, reporter, deployment, force)


namespace = Collection("tls", status, renew)
