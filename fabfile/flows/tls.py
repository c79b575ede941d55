"""Certificates: the user's own installed, one obtained from the ACME CA (then nginx moved to HTTPS), renewal."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from ..commands import tls as tls_commands
from ..commands import traffic
from ..commands.layout import layout_of
from ..commands.sequence import Part
from ..commands.shell import shown
from ..config import Deployment
from ..errors import RemoteCommandFailed, SlipwayError
from ..remote import Remote, Reporter
from .installed import check_part, require_checked, require_installed
from .locked import run_parts

ISSUE_LIMIT_SECONDS = 300


def check_installed(remote: Remote, deployment: Deployment, reporter: Reporter) -> None:
    """The server's TLS scripts and settings are the ones this slipway and inventory make."""
    inventory = deployment.inventory
    wanted = tls_commands.installed_texts(inventory)
    with reporter.step("TLS scripts and certbot settings in place"):
        # Root's: the deploy hook's folder under /etc/letsencrypt is not readable by others.
        require_installed(remote, deployment, wanted, root=True)


def read_certificate(run, reporter: Reporter, deployment: Deployment) -> tls_commands.Certificate | None:
    inventory = deployment.inventory
    with reporter.step("certificate on the server") as step:
        certificate = tls_commands.parse_certificate(run(tls_commands.state_argv(inventory), root=True).stdout)
        step.detail = describe(certificate, inventory.app.domains) if certificate else "none yet"
    return certificate


def installed_certificate(run, reporter: Reporter, deployment: Deployment) -> tls_commands.Certificate | None:
    """check_installed and read_certificate in one round trip."""
    inventory = deployment.inventory
    wanted = tls_commands.installed_texts(inventory)
    with reporter.step("TLS scripts in place, certificate on the server") as step:
        read = run_parts(run, deployment.name, [check_part(wanted), Part(tls_commands.state_argv(inventory))],
                         root=True, check=False)
        require_checked(deployment, read, 0)
        if read.failed is not None:
            raise RemoteCommandFailed(deployment.name, shown(tls_commands.state_argv(inventory)), read.exited,
                                      read.stderr)
        certificate = tls_commands.parse_certificate(read.output(1))
        step.detail = describe(certificate, inventory.app.domains) if certificate else "no certificate yet"
    return certificate


def describe(certificate: tls_commands.Certificate, domains: list[str]) -> str:
    days = certificate.days_left(datetime.now(timezone.utc))
    covers = "covers the domains" if certificate.covers(domains) else \
        f"for {', '.join(certificate.domains)}, not exactly the domains"
    return f"{covers}; {tls_commands.issuer_name(certificate.issuer)}, serial {certificate.serial}, {days:.1f} days left"


def install_own(run, reporter: Reporter, deployment: Deployment) -> None:
    """The user's own certificate and key, put where nginx reads them (the key root's only, 0600)."""
    inventory = deployment.inventory
    paths = layout_of(inventory)
    wanted = {f"{paths.own_certificates}/fullchain.pem": (inventory.tls.certificate_file.read_text(), 0o644),
              f"{paths.own_certificates}/privkey.pem": (inventory.tls.key_file.read_text(), 0o600)}
    with reporter.step("your certificate and key on the server") as step:
        found = run(tls_commands.own_certificate_hashes_command(paths), root=True).stdout
        hashes = {name.strip(): digest for digest, name in (line.split(None, 1) for line in found.splitlines())}
        for path, (text, mode) in wanted.items():
            if hashes.get(path.rsplit("/", 1)[1]) != hashlib.sha256(text.encode()).hexdigest():
                run(traffic.write_file_command(path, mode), stdin=text, root=True)
                step.changed = True


def obtain(run, reporter: Reporter, deployment: Deployment, release_id: str, tls_conf: str) -> str | None:
    """Check the domains reach this server, get one certificate for all of them, and move nginx to HTTPS.

    Returns why it failed (the site keeps serving as before), or None. Nothing is retried: a CA
    counts failed validations, and the next deploy tries again."""
    inventory = deployment.inventory
    layout = layout_of(inventory)
    domains = ", ".join(inventory.app.domains)
    with reporter.step(f"{domains} reach this server's ACME challenge path") as step:
        result = run(tls_commands.preflight_argv(inventory), check=False)
        if result.exited == tls_commands.PREFLIGHT_FAILED_EXIT:
            step.detail = "no"
            return "; ".join(result.stdout.split("\n")).strip("; ") + " (the CA was not asked)"
        if result.failed:
            raise RemoteCommandFailed(run.remote.label, shown(tls_commands.preflight_argv(inventory)), result.exited,
                                      result.stderr or result.stdout)
    with reporter.step(f"certificate for {domains} from {inventory.tls.acme_url}") as step:
        result = run(tls_commands.issue_argv(inventory), root=True, limit=ISSUE_LIMIT_SECONDS, check=False)
        if result.failed:
            step.detail = "refused"
            return f"the CA did not issue a certificate: {certbot_reason(result.stderr or result.stdout)}"
        step.changed = True
    with reporter.step(f"switch nginx to HTTPS for {release_id} (nginx -t, reload)") as step:
        run(traffic.write_file_command(f"{layout.release_dir(release_id)}/nginx.conf"), stdin=tls_conf)
        run(traffic.switch_nginx_command(layout, release_id), stdin=tls_conf)
        step.changed = True
    return None


def certbot_reason(output: str) -> str:
    """certbot's own account of a failure: its Detail/Error lines, or the last line it printed."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    details = [line for line in lines if line.startswith(("Detail:", "Error:", "Type:", "Domain:"))]
    picked = details or lines[-1:]
    return " ".join(picked)[:400] or "no output"


def renew(remote: Remote, reporter: Reporter, deployment: Deployment, force: bool) -> None:
    """certbot renew (FORCE: even when not due); nginx reloads only if `nginx -t` passes."""
    inventory = deployment.inventory
    check_installed(remote, deployment, reporter)
    before = read_certificate(remote.run, reporter, deployment)
    with reporter.step("certbot renew" + (" --force-renewal" if force else "")) as step:
        argv = tls_commands.renew_argv(inventory, force)
        result = remote.run(argv, root=True, check=False, timeout=ISSUE_LIMIT_SECONDS)
        if result.failed:
            raise SlipwayError(f"{deployment.name}: renewal failed: {certbot_reason(result.stderr or result.stdout)}; "
                               "the current certificate still serves")
        after = tls_commands.parse_certificate(remote.run(tls_commands.state_argv(inventory), root=True).stdout)
        step.changed = bool(after and (not before or after.serial != before.serial))
    print(reporter.summary())
    if step.changed:
        print(f"[{deployment.name}] renewed: serial {after.serial}, {after.days_left(datetime.now(timezone.utc)):.1f} days left")
    else:
        print(f"[{deployment.name}] not due for renewal yet (certbot decides; --force to renew anyway)")


def status(remote: Remote, deployment: Deployment) -> dict:
    """The certificate, the last renewal check and renewal, and the timer, in one round trip."""
    inventory = deployment.inventory
    output = remote.run(tls_commands.status_argv(inventory), root=True).stdout
    certificate_text, record_text, timer = (output.splitlines() + ["", "", ""])[:3]
    record = json.loads(record_text or "{}")
    return tls_commands.status_report(inventory, tls_commands.parse_certificate(certificate_text), record, timer,
                                      datetime.now(timezone.utc))
