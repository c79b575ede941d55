"""HTTPS from the lab's ACME CA (Let's Encrypt's Pebble) on the provisioned target: the certificate the
first deploy obtained, no second issuance, expansion, unattended renewal under load, and the failure paths.

Runs after test_deploy.py, whose first deploy on the fresh target obtained the certificate.
"""

import json
import re
import socket
import ssl
import subprocess
import time

import pytest
from lab_names import LAB
from lab_site import Site, get
from load import LoadLoop

# conftest.py's site: the demo app serving (deployed there when this file runs on its own).
pytestmark = pytest.mark.deploy_if_nothing_serves


def issued(lab_target) -> int:
    """How many certificates the lab's CA has issued since it started (its own log says)."""
    logs = subprocess.run(["docker", "logs", lab_target["acme"]["container"]], capture_output=True, text=True, timeout=30)
    return len(re.findall(r"Issued certificate serial", logs.stdout + logs.stderr))


def served_certificate(site: Site, domain: str | None = None, **versions) -> dict:
    """The certificate nginx presents for DOMAIN, verified against the CA's root only."""
    context = site.context(**versions)
    with socket.create_connection(("127.0.0.1", site.https_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=domain or site.domain) as tls:
            return tls.getpeercert()


def names(certificate: dict) -> set[str]:
    return {value for kind, value in certificate["subjectAltName"] if kind == "DNS"}


def issuer(certificate: dict) -> str:
    return dict(field for part in certificate["issuer"] for field in part)["commonName"]


def nginx_started_at(as_deploy) -> str:
    return as_deploy.run("docker inspect -f '{{.State.StartedAt}}' " + LAB.nginx_container).stdout.strip()


def negotiated_protocol(site: Site) -> str | None:
    """What ALPN settles on when the client offers HTTP/2 and HTTP/1.1, as browsers do."""
    context = site.context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", site.https_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=site.domain) as tls:
            return tls.selected_alpn_protocol()


def test_the_site_serves_https_with_a_certificate_from_the_acme_ca_for_every_domain(site, as_deploy):
    assert negotiated_protocol(site) == "h2"
    certificate = served_certificate(site)
    assert issuer(certificate).startswith("Pebble Intermediate CA")
    assert names(certificate) == {"demo.slipway.test"}
    status, body, headers = get(site, "/version")
    assert status == 200 and json.loads(body)["version"]
    assert headers["Strict-Transport-Security"] == "max-age=63072000"


def test_http_redirects_to_https_except_the_acme_challenge_path(site, as_deploy):
    status, _, headers = get(site, "/version?from=http", https=False)
    assert status == 301 and headers["Location"] == "https://demo.slipway.test/version?from=http"
    challenges = f"{LAB.acme_webroot}/.well-known/acme-challenge"
    as_deploy.run(f"mkdir -p {challenges} && echo token-body > {challenges}/lab-token")
    try:
        assert get(site, "/.well-known/acme-challenge/lab-token", https=False)[:2] == (200, "token-body\n")
    finally:
        as_deploy.run(f"rm -f {challenges}/lab-token")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls_1_0_and_1_1_are_refused_by_the_server(site, version):
    protocol = getattr(ssl.TLSVersion, version)
    context = site.context(minimum_version=protocol, maximum_version=protocol)
    # This client would speak them (security level 0); the refusal must come from the server.
    context.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", site.https_port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError) as refused:
            context.wrap_socket(raw, server_hostname=site.domain)
    assert "PROTOCOL_VERSION" in str(refused.value) or "UNSUPPORTED_PROTOCOL" in str(refused.value), refused.value
    for allowed in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        assert served_certificate(site, minimum_version=allowed, maximum_version=allowed)


def test_a_second_deploy_does_not_contact_the_ca(cli, lab_target, site):
    before, serial = issued(lab_target), served_certificate(site)["serialNumber"]
    deployed = cli("fab", "-H", "lab", "deploy")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert re.search(r"certificate on the server .* covers the domains", deployed.stdout)
    assert "ACME challenge" not in deployed.stdout
    assert issued(lab_target) == before and served_certificate(site)["serialNumber"] == serial


def test_a_domain_that_does_not_resolve_fails_in_one_line_and_the_site_keeps_serving(variant, lab_target, site,
                                                                                   as_deploy):
    fab = variant(lambda data: data["app"].update(domains=["demo.slipway.test", "nowhere.slipway.test"]))
    before, serial = issued(lab_target), served_certificate(site)["serialNumber"]
    with LoadLoop(site, clients=4) as load:
        result = fab("deploy")
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "nowhere.slipway.test does not resolve" in errors[0] and "the CA was not asked" in errors[0]
    assert "keeps serving HTTPS" in errors[0] and "the next deploy tries again" in errors[0]
    assert "is live" in result.stdout
    last = json.loads(as_deploy.run(f"tail -n 1 {LAB.audit_log}").stdout)
    assert last["event"] == "certificate failed" and "nowhere.slipway.test" in last["reason"]
    assert issued(lab_target) == before and served_certificate(site)["serialNumber"] == serial
    assert load.failed == 0 and load.total > 0, load.failures


def test_adding_a_domain_expands_the_certificate_and_the_canonical_host_gets_the_others(variant, cli, lab_target,
                                                                                       site):
    def two_names(data):
        data["app"]["domains"] = ["demo.slipway.test", "www.demo.slipway.test"]
        data["tls"]["canonical_host"] = "demo.slipway.test"

    fab = variant(two_names)
    if names(served_certificate(site)) != {"demo.slipway.test"}:
        # A rerun on a reused target: start from the lab inventory's one domain again.
        assert cli("fab", "-H", "lab", "deploy").returncode == 0
    before = issued(lab_target)
    result = fab("deploy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert issued(lab_target) == before + 1
    for domain in ("demo.slipway.test", "www.demo.slipway.test"):
        assert names(served_certificate(site, domain)) == {"demo.slipway.test", "www.demo.slipway.test"}
    status = json.loads(fab("tls.status", "--json").stdout)
    assert status["certificate"]["covers_domains"] and status["renewal_timer"] == "active"
    moved = get(site, "/version?x=1", domain="www.demo.slipway.test")
    assert moved[0] == 301 and moved[2]["Location"] == "https://demo.slipway.test/version?x=1"
    assert moved[2]["Strict-Transport-Security"] == "max-age=63072000"
    assert get(site, "/version")[0] == 200


def test_the_renewal_timers_unit_renews_a_due_certificate_under_load_with_no_nginx_restart(cli, as_deploy, site):
    before, started = served_certificate(site)["serialNumber"], nginx_started_at(as_deploy)
    # The lab's certificates last 6 days: asking for renewal 7 days ahead makes this one due now.
    as_deploy.run(f"sed -i '/^renew_before_expiry/d; 1i renew_before_expiry = 7 days' {LAB.renewal_conf}", root=True)
    try:
        with LoadLoop(site, clients=10, keep_alive=True) as load:
            time.sleep(1)
            as_deploy.run("systemctl start certbot.service", root=True, timeout=300)
            time.sleep(1)
    finally:
        as_deploy.run(f"sed -i '/^renew_before_expiry/d' {LAB.renewal_conf}", root=True)
    renewed = served_certificate(site)["serialNumber"]
    assert renewed != before and nginx_started_at(as_deploy) == started
    assert load.failed == 0 and load.total > 0, load.failures
    status = json.loads(cli("fab", "-H", "lab", "tls.status", "--json").stdout)
    assert status["last_check"]["ok"] and status["last_renewal"]["outcome"] == "renewed; nginx reloaded"
    assert status["last_renewal"]["serial"].lstrip("0") == renewed.lstrip("0") == status["certificate"]["serial"].lstrip("0")
    assert 0 < status["certificate"]["days_left"] <= 6


def test_a_renewal_whose_nginx_test_fails_never_reloads_nginx(cli, as_deploy, site):
    before = served_certificate(site)["serialNumber"]
    as_deploy.run(f"echo 'this is not nginx;' > {LAB.shared}/nginx/zz-broken.conf")
    try:
        renewed = cli("fab", "-H", "lab", "tls.renew", "--force")
        served = served_certificate(site)["serialNumber"]
        status = json.loads(cli("fab", "-H", "lab", "tls.status", "--json").stdout)
    finally:
        as_deploy.run(f"rm -f {LAB.shared}/nginx/zz-broken.conf")
    assert served == before, renewed.stdout + renewed.stderr
    assert status["last_renewal"]["outcome"].startswith("renewed, but nginx -t failed, so nginx was not reloaded")
    assert status["certificate"]["serial"].lstrip("0") != before.lstrip("0")
    assert get(site, "/version")[0] == 200


def test_rollback_never_goes_back_to_a_release_that_would_turn_https_off(variant, cli, site):
    plain = variant(lambda data: data["tls"].update(enabled=False))
    assert plain("deploy").returncode == 0
    assert get(site, "/version", https=False)[0] == 200
    again = cli("fab", "-H", "lab", "deploy")
    assert again.returncode == 0, again.stdout + again.stderr
    assert get(site, "/version", https=False)[0] == 301
    refused = cli("fab", "-H", "lab", "rollback")
    assert refused.returncode == 1
    (error,) = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert "would turn HTTPS off" in error and "deploy its version instead" in error
    assert get(site, "/version")[0] == 200


def test_a_failed_scheduled_renewal_is_recorded_and_shown_and_the_certificate_keeps_serving(cli, as_deploy, site,
                                                                                            lab_target):
    pebble, network = lab_target["acme"]["container"], lab_target["backup_host"]["network"]
    before = served_certificate(site)["serialNumber"]
    as_deploy.run(f"sed -i '/^renew_before_expiry/d; 1i renew_before_expiry = 7 days' {LAB.renewal_conf}", root=True)
    # The CA cut off the network (not restarted: Pebble would make a new root).
    subprocess.run(["docker", "network", "disconnect", network, pebble], check=True)
    try:
        as_deploy.run("systemctl start certbot.service", root=True, check=False, timeout=300)
    finally:
        subprocess.run(["docker", "network", "connect", "--ip", lab_target["acme"]["address"], "--alias", "pebble",
                        network, pebble], check=True)
        as_deploy.run(f"sed -i '/^renew_before_expiry/d' {LAB.renewal_conf}", root=True)
    shown = cli("fab", "-H", "lab", "tls.status")
    assert re.search(r"^last check   \S+ FAILED \(exit-code, exit 1\)$", shown.stdout, re.M), shown.stdout
    assert served_certificate(site)["serialNumber"] == before


def test_an_own_certificate_is_served_and_its_key_is_roots_alone(variant, as_deploy, site, tmp_path, cli):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from datetime import datetime, timedelta, timezone

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "demo.slipway.test")])
    now = datetime.now(timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
                   .not_valid_after(now + timedelta(days=30))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("demo.slipway.test")]), critical=False)
                   .sign(key, hashes.SHA256()))
    (tmp_path / "own.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "own.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    fab = variant(lambda data: data["tls"].update(certificate_file=str(tmp_path / "own.pem"),
                                                   key_file=str(tmp_path / "own.key")))
    try:
        result = fab("deploy")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "BEGIN PRIVATE KEY" not in result.stdout + result.stderr
        own = Site(site.http_port, site.https_port, site.domain, str(tmp_path / "own.pem"))
        assert int(served_certificate(own)["serialNumber"], 16) == certificate.serial_number
        server_key = f"{LAB.own_certificates}/privkey.pem"
        assert as_deploy.run(f"stat -c '%a %U' {server_key}", root=True).stdout.split() == ["600", "root"]
        assert as_deploy.run(f"test -r {server_key}", check=False).exited != 0
    finally:
        back = cli("fab", "-H", "lab", "deploy")
    assert back.returncode == 0, back.stdout + back.stderr
    assert issuer(served_certificate(site)).startswith("Pebble Intermediate CA")
