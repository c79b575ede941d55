"""TLS, as data: where certificates live on the server and in the nginx container,
the files provision installs for ACME renewals, the command lines deploy and the
tls tasks run, and how a certificate's state reads.

certbot runs on the host (it keeps the account, the lineage and its renewal
settings in /etc/letsencrypt); nginx runs in a container that mounts the whole
/etc/letsencrypt read-only, because `live/` holds symlinks into `archive/`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from ..config import Inventory
from .backup import INSTALL_DIR, LIBRARY
from .layout import LETSENCRYPT, Layout, layout_of
from .shell import SCRIPTS_DIR, Argv

INSTALLED_SCRIPTS = (LIBRARY, "tls_state.sh", "tls_issue.sh", "tls_renew.sh", "tls_renewed.sh", "tls_renew_result.sh")
PACKAGES = ("certbot", "openssl")
PREFLIGHT_FAILED_EXIT = 3
# Where the nginx container sees the host's folders (the same in every release's compose file).
CONTAINER_WEBROOT = "/var/www/acme-challenge"
CONTAINER_OWN_CERTIFICATES = "/etc/slipway/tls"
# The Mozilla "intermediate" profile without DHE: TLS 1.2 with ECDHE AEAD suites, and TLS 1.3.
PROTOCOLS = "TLSv1.2 TLSv1.3"
CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
))


def uses_acme(inventory: Inventory) -> bool:
    return inventory.tls_enabled and inventory.tls.uses_acme


def certificate_files(inventory: Inventory) -> tuple[str, str]:
    """(chain, key) as the nginx container sees them."""
    if inventory.tls.uses_acme:
        live = layout_of(inventory).tls_live
        return f"{live}/fullchain.pem", f"{live}/privkey.pem"
    return f"{CONTAINER_OWN_CERTIFICATES}/fullchain.pem", f"{CONTAINER_OWN_CERTIFICATES}/privkey.pem"


def host_certificate(inventory: Inventory) -> str:
    """The certificate (leaf first) whose names and dates slipway reads on the host."""
    layout = layout_of(inventory)
    return f"{layout.tls_live}/cert.pem" if inventory.tls.uses_acme else f"{layout.own_certificates}/fullchain.pem"


def nginx_mounts(inventory: Inventory) -> list[str]:
    """The nginx container's TLS mounts: always there, so turning TLS on never re-creates nginx."""
    layout = layout_of(inventory)
    return [f"{LETSENCRYPT}:{LETSENCRYPT}:ro", f"{layout.acme_webroot}:{CONTAINER_WEBROOT}:ro",
            f"{layout.own_certificates}:{CONTAINER_OWN_CERTIFICATES}:ro"]


def hsts_header(inventory: Inventory) -> str | None:
    hsts = inventory.tls.hsts
    if not hsts.enabled:
        return None
    return f"max-age={hsts.max_age_seconds}" + ("; includeSubDomains" if hsts.include_subdomains else "") + \
        ("; preload" if hsts.preload else "")


def nginx_context(inventory: Inventory, certificate_ready: bool) -> dict | None:
    """What the nginx template needs for HTTPS, or None while there is no certificate to serve."""
    if not (inventory.tls_enabled and certificate_ready):
        return None
    chain, key = certificate_files(inventory)
    canonical = inventory.tls.canonical_host
    return {
        "certificate": chain, "key": key, "protocols": PROTOCOLS, "ciphers": CIPHERS,
        "hsts": hsts_header(inventory), "canonical": canonical,
        "other_names": [domain for domain in inventory.app.domains if domain != canonical] if canonical else [],
    }


def conf_text(inventory: Inventory) -> str:
    """tls.conf: KEY=VALUE lines the scripts read with sed (never sourced)."""
    layout, tls = layout_of(inventory), inventory.tls
    settings = {
        "CERT_NAME": inventory.app.name,
        "LINEAGE": layout.tls_live,
        "WEBROOT": layout.acme_webroot,
        "ACME_SERVER": tls.acme_url,
        "CA_BUNDLE": layout.acme_ca_bundle if tls.ca_bundle else "",
        "NGINX_CONTAINER": layout.nginx_container,
        "RECORD": layout.tls_record,
    }
    header = f"# Managed by slipway provision for {inventory.app.name}; read by {INSTALL_DIR}/tls_*.sh.\n"
    return header + "".join(f"{key}={value}\n" for key, value in settings.items())


def installed_script(name: str) -> str:
    return f"{INSTALL_DIR}/{name}"


def script_texts() -> dict[str, str]:
    return {installed_script(name): (SCRIPTS_DIR / name).read_text() for name in INSTALLED_SCRIPTS}


def installed_texts(inventory: Inventory) -> dict[str, str]:
    """The files provision installs for TLS, but systemd's drop-in: the scripts, and for ACME the
    settings, the CA bundle and certbot's deploy hook."""
    texts = script_texts()
    if inventory.tls.uses_acme:
        layout = layout_of(inventory)
        texts[layout.tls_conf] = conf_text(inventory)
        texts[layout.tls_deploy_hook] = deploy_hook_text(inventory)
        if inventory.tls.ca_bundle:
            texts[layout.acme_ca_bundle] = inventory.tls.ca_bundle.read_text()
    return texts


def installed_paths(inventory: Inventory) -> list[str]:
    """Every file provision installs for TLS (the probe reads them before the OS is known)."""
    return [*installed_texts(inventory), *([layout_of(inventory).certbot_drop_in] if inventory.tls.uses_acme else [])]


def deploy_hook_text(inventory: Inventory) -> str:
    """certbot runs every file in renewal-hooks/deploy with no arguments: this one hands over the app's conf."""
    layout = layout_of(inventory)
    return ("#!/bin/sh\n# Managed by slipway provision: after a renewal, test nginx's config and reload it.\n"
            f"exec sh {installed_script('tls_renewed.sh')} {layout.tls_conf}\n")


def own_certificate_hashes_command(layout: Layout) -> Argv:
    """sha256sum of the user's own certificate and key where nginx reads them (their folder made root's)."""
    return ["sh", "-c", 'install -d -m 700 "$1" && cd "$1" && sha256sum fullchain.pem privkey.pem || true',
            "slipway-own-certificate", layout.own_certificates]


def state_argv(inventory: Inventory) -> Argv:
    return ["sh", installed_script("tls_state.sh"), host_certificate(inventory)]


def issue_argv(inventory: Inventory) -> Argv:
    return ["sh", installed_script("tls_issue.sh"), layout_of(inventory).tls_conf, inventory.tls.email or "",
            *inventory.app.domains]


def renew_argv(inventory: Inventory, force: bool) -> Argv:
    return ["sh", installed_script("tls_renew.sh"), layout_of(inventory).tls_conf, str(int(force))]


def preflight_argv(inventory: Inventory) -> Argv:
    return ["sh", "-c", (SCRIPTS_DIR / "tls_preflight.sh").read_text(), "slipway-tls-preflight",
            layout_of(inventory).acme_webroot, str(PREFLIGHT_FAILED_EXIT), *inventory.app.domains]


def status_argv(inventory: Inventory) -> Argv:
    """As root, in one round trip: the certificate, the renewal record, and whether certbot's timer runs."""
    layout = layout_of(inventory)
    return ["sh", "-c", 'sh "$1" "$2"; cat "$3" 2>/dev/null || echo "{}"; systemctl is-active certbot.timer || true',
            "slipway-tls-status", installed_script("tls_state.sh"), host_certificate(inventory), layout.tls_record]


@dataclass(frozen=True)
class Certificate:
    domains: tuple[str, ...]
    serial: str
    issuer: str
    not_before: datetime
    not_after: datetime

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400

    def covers(self, domains: list[str]) -> bool:
        """Exactly these names: one more or one fewer means the certificate must change."""
        return {d.lower() for d in self.domains} == {d.lower() for d in domains}


def parse_certificate(text: str) -> Certificate | None:
    data = json.loads(text or "{}")
    if not data:
        return None
    return Certificate(tuple(data["domains"]), data["serial"], data["issuer"],
                       datetime.fromtimestamp(data["not_before"], timezone.utc),
                       datetime.fromtimestamp(data["not_after"], timezone.utc))


def issuer_name(issuer: str) -> str:
    """The CN of an RFC 2253 issuer, or the whole of it."""
    for part in issuer.split(","):
        key, _, value = part.partition("=")
        if key.strip() == "CN":
            return value.strip()
    return issuer


def status_report(inventory: Inventory, certificate: Certificate | None, record: dict, timer: str,
                  now: datetime) -> dict:
    """What `tls.status` shows (and prints as JSON with --json)."""
    report = {
        "enabled": inventory.tls_enabled,
        "source": "acme" if inventory.tls.uses_acme else "own",
        "acme_directory": inventory.tls.acme_url if inventory.tls.uses_acme else None,
        "domains": list(inventory.app.domains),
        "certificate": None,
        "renewal_timer": timer.strip() or "unknown",
        "last_check": record.get("checked"),
        "last_renewal": record.get("renewed"),
    }
    if certificate:
        report["certificate"] = {
            "domains": list(certificate.domains), "covers_domains": certificate.covers(inventory.app.domains),
            "issuer": issuer_name(certificate.issuer), "serial": certificate.serial,
            "not_after": certificate.not_after.isoformat(timespec="seconds"),
            "days_left": round(certificate.days_left(now), 1),
        }
    return report


def format_status(report: dict) -> str:
    certificate = report["certificate"]
    lines = [f"tls          {'on' if report['enabled'] else 'off'} ({report['source']}"
             + (f", {report['acme_directory']})" if report["acme_directory"] else ")")]
    if certificate:
        covers = "" if certificate["covers_domains"] else f"  (app.domains: {', '.join(report['domains'])})"
        lines += [f"domains      {', '.join(certificate['domains'])}{covers}",
                  f"issuer       {certificate['issuer']}",
                  f"serial       {certificate['serial']}",
                  f"expires      {certificate['not_after']} ({certificate['days_left']} days left)"]
    else:
        lines.append(f"certificate  none yet (domains: {', '.join(report['domains'])}); the next deploy obtains one")
    check, renewal = report["last_check"], report["last_renewal"]
    if report["source"] == "acme":
        lines.append(f"timer        certbot.timer {report['renewal_timer']}")
        lines.append("last check   " + (f"{check['at']} {'ok' if check['ok'] else 'FAILED'} ({check['result']}"
                                        f"{', exit ' + check['exit_status'] if check['exit_status'] else ''})"
                                        if check else "never"))
        lines.append("last renewal " + (f"{renewal['at']} serial {renewal['serial']}: {renewal['outcome']}"
                                        if renewal else "never"))
    return "\n".join(lines)
