"""TLS as data: the nginx config before and after the certificate, the files certbot's renewals use,
and how a certificate's state reads."""

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fabfile.commands import provision, release, tls
from fabfile.commands.layout import layout_of
from test_deploy_commands import PROJECT, lab_inventory


def nginx(deployment, ready: bool) -> str:
    return release.nginx_conf(deployment.inventory, PROJECT, ready)


def server_blocks(conf: str) -> list[str]:
    return re.findall(r"^server \{\n.*?^\}", conf, re.S | re.M)


def with_tls(**settings):
    def edit(data):
        data["app"]["domains"] = ["demo.slipway.test", "www.demo.slipway.test"]
        data["tls"].update(settings)
    return edit


def test_before_the_certificate_the_site_serves_http_and_answers_acme_challenges(tmp_path):
    conf = nginx(lab_inventory(tmp_path), ready=False)
    (http,) = server_blocks(conf)
    assert "listen 80 default_server;" in http and "443" not in conf
    challenge = http[http.index("location ^~ /.well-known/acme-challenge/"):]
    assert challenge.split("}")[0].split("{")[1].split() == [
        "root", "/var/www/acme-challenge;", "default_type", "text/plain;", "try_files", "$uri", "=404;"]
    assert "proxy_pass http://demo-$slipway_slot-api;" in http and "Strict-Transport-Security" not in conf


def test_with_the_certificate_http_redirects_except_challenges_and_https_serves_the_intermediate_profile(tmp_path):
    conf = nginx(lab_inventory(tmp_path), ready=True)
    http, https = server_blocks(conf)
    assert "location ^~ /.well-known/acme-challenge/" in http
    assert "return 301 https://$host$request_uri;" in http and "proxy_pass" not in http
    assert "listen 443 ssl default_server;" in https and "http2 on;" in https
    assert "ssl_certificate /etc/letsencrypt/live/demo/fullchain.pem;" in https
    assert "ssl_certificate_key /etc/letsencrypt/live/demo/privkey.pem;" in https
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in https
    ciphers = re.search(r"ssl_ciphers (\S+);", https).group(1).split(":")
    assert ciphers and all(c.startswith("ECDHE-") and ("GCM" in c or "CHACHA20" in c) for c in ciphers)
    assert 'add_header Strict-Transport-Security "max-age=63072000" always;' in https
    assert "proxy_pass http://demo-$slipway_slot-api;" in https and "stapling" not in conf


def test_a_canonical_host_gets_the_site_and_the_other_names_a_301_to_it(tmp_path):
    deployment = lab_inventory(tmp_path, edit=with_tls(canonical_host="demo.slipway.test",
                                                         hsts={"include_subdomains": True, "preload": True}))
    http, https, other = server_blocks(nginx(deployment, ready=True))
    assert "return 301 https://demo.slipway.test$request_uri;" in http
    assert "server_name demo.slipway.test;" in https and "proxy_pass" in https
    assert "server_name www.demo.slipway.test;" in other and "return 301 https://demo.slipway.test$request_uri;" in other
    assert "proxy_pass" not in other
    assert '"max-age=63072000; includeSubDomains; preload"' in https


def test_tls_off_renders_the_plain_http_site(tmp_path):
    deployment = lab_inventory(tmp_path, edit=lambda data: data["tls"].update(enabled=False))
    conf = nginx(deployment, ready=True)
    assert len(server_blocks(conf)) == 1 and "acme-challenge" not in conf and "443" not in conf


def test_maintenance_answers_every_app_location_on_every_listener_but_not_health_or_acme(tmp_path):
    deployment = lab_inventory(tmp_path)
    for conf in (nginx(deployment, ready=False), nginx(deployment, ready=True)):
        app_block = next(block for block in server_blocks(conf) if "location /version" in block or "location / {\n        if" in block)
        assert 'if (-f /etc/nginx/conf.d/traffic/maintenance.html) {\n        set $slipway_maintenance on;' in app_block
        assert 'if (-f /etc/nginx/conf.d/traffic/allow/$remote_addr) {\n        set $slipway_maintenance "";' in app_block
        # To a URI, so nginx serves the page as a GET whatever the method (a POST got a 405 from a named location).
        assert "error_page 503 /.slipway-maintenance;" in app_block
        page = app_block[app_block.index("location = /.slipway-maintenance {\n        internal;"):]
        assert "add_header Retry-After 30 always;" in page and "try_files /maintenance.html =503;" in page
        locations = re.findall(r"^    location (.+?) \{\n(.*?)^    \}", app_block, re.S | re.M)
        gated = {route for route, body in locations if "if ($slipway_maintenance)" in body}
        ungated = {"= /health", "= /.slipway-maintenance", "^~ /.well-known/acme-challenge/"}
        assert gated == {route for route, _ in locations} - ungated and gated


def test_renewal_files_hand_every_value_to_the_scripts_as_settings(tmp_path):
    deployment = lab_inventory(tmp_path)
    inventory = deployment.inventory
    desired = provision.desired_state(inventory, PROJECT, "debian", "13", deployment.secret)
    paths = layout_of(inventory)
    assert set(desired.tls_files) == set(tls.installed_paths(inventory))
    conf = desired.files[paths.tls_conf].content
    assert "CERT_NAME=demo\n" in conf and "ACME_SERVER=https://pebble:14000/dir\n" in conf
    assert f"CA_BUNDLE={paths.acme_ca_bundle}\n" in conf and "NGINX_CONTAINER=demo-nginx-1\n" in conf
    assert desired.files[paths.acme_ca_bundle].content == (tmp_path / "pebble-api.pem").read_text()
    drop_in = desired.files[paths.certbot_drop_in].content
    assert f"Environment=REQUESTS_CA_BUNDLE={paths.acme_ca_bundle}\n" in drop_in
    assert f"ExecStopPost=/bin/sh /usr/local/lib/slipway/tls_renew_result.sh {paths.tls_conf}\n" in drop_in
    hook = desired.files[paths.tls_deploy_hook]
    assert hook.mode == 0o755 and hook.content.endswith(f"tls_renewed.sh {paths.tls_conf}\n")
    assert "openssl" in desired.packages


def test_certbot_is_asked_once_for_every_domain_under_the_apps_lineage(tmp_path):
    inventory = lab_inventory(tmp_path, edit=with_tls(email="ops@example.com")).inventory
    assert tls.issue_argv(inventory) == ["sh", "/usr/local/lib/slipway/tls_issue.sh", "/etc/slipway/demo/tls.conf",
                                         "ops@example.com", "demo.slipway.test", "www.demo.slipway.test"]
    script = Path(tls.SCRIPTS_DIR / "tls_issue.sh").read_text()
    for flag in ("--webroot", "--cert-name", "--keep-until-expiring", "--non-interactive"):
        assert flag in script


def test_a_certificate_covers_exactly_the_domains(tmp_path):
    now = datetime(2026, 11, 23, tzinfo=timezone.utc)
    text = json.dumps({"domains": ["demo.slipway.test"], "serial": "0A1B", "issuer": "CN=Pebble Intermediate CA 1f2e,O=x",
                       "not_before": int(now.timestamp()), "not_after": int((now + timedelta(days=6)).timestamp())})
    certificate = tls.parse_certificate(text)
    assert certificate.covers(["DEMO.slipway.test"])
    assert not certificate.covers(["demo.slipway.test", "www.demo.slipway.test"])
    assert tls.parse_certificate("{}") is None
    inventory = lab_inventory(tmp_path, edit=with_tls()).inventory
    record = {"checked": {"at": "2026-11-23T03:00:00Z", "ok": False, "result": "exit-code", "exit_status": "1"}}
    report = tls.status_report(inventory, certificate, record, "active\n", now + timedelta(days=1))
    assert report["certificate"] == {"domains": ["demo.slipway.test"], "covers_domains": False,
                                     "issuer": "Pebble Intermediate CA 1f2e", "serial": "0A1B",
                                     "not_after": "2026-11-29T00:00:00+00:00", "days_left": 5.0}
    shown = tls.format_status(report)
    assert "expires      2026-11-29T00:00:00+00:00 (5.0 days left)" in shown
    assert "(app.domains: demo.slipway.test, www.demo.slipway.test)" in shown
    assert "last check   2026-11-23T03:00:00Z FAILED (exit-code, exit 1)" in shown
    assert "timer        certbot.timer active" in shown


def test_an_own_certificate_is_served_from_its_root_only_folder_and_needs_no_certbot_files(tmp_path):
    (tmp_path / "fullchain.pem").write_text("chain\n")
    (tmp_path / "privkey.pem").write_text("key\n")
    deployment = lab_inventory(tmp_path, edit=with_tls(certificate_file=str(tmp_path / "fullchain.pem"),
                                                         key_file=str(tmp_path / "privkey.pem")))
    inventory = deployment.inventory
    https = server_blocks(nginx(deployment, ready=True))[1]
    assert "ssl_certificate /etc/slipway/tls/fullchain.pem;" in https
    assert "ssl_certificate_key /etc/slipway/tls/privkey.pem;" in https
    assert "acme-challenge" not in nginx(deployment, ready=True)
    desired = provision.desired_state(inventory, PROJECT, "debian", "13", deployment.secret)
    assert set(desired.tls_files) == {f"/usr/local/lib/slipway/{name}" for name in tls.INSTALLED_SCRIPTS}
    assert tls.state_argv(inventory)[-1] == "/etc/slipway/demo/tls/fullchain.pem"


def test_preflight_names_each_domain_that_would_fail_validation_in_one_line(tmp_path):
    """The real script on this machine: `localhost` with nothing on port 80, then with another server there."""
    import socket
    import subprocess
    import threading
    from http.server import HTTPServer, SimpleHTTPRequestHandler

    argv = tls.preflight_argv(lab_inventory(tmp_path).inventory)
    run = lambda *domains: subprocess.run([*argv[:4], str(tmp_path / "webroot"), argv[5], *domains],
                                          capture_output=True, text=True, timeout=60)
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 80)) == 0:
            import pytest
            pytest.skip("something already listens on port 80 here")
    result = run("nowhere.invalid", "localhost")
    assert result.returncode == tls.PREFLIGHT_FAILED_EXIT
    lines = result.stdout.splitlines()
    assert lines[0].startswith("nowhere.invalid does not resolve")
    assert lines[1].startswith("localhost (127.0.0.1) is unreachable on port 80 from the server")
    (tmp_path / "elsewhere").mkdir()
    handler = lambda *a: SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "elsewhere"))
    server = HTTPServer(("127.0.0.1", 80), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = run("localhost")
    finally:
        server.shutdown()
    assert result.stdout.startswith("localhost (127.0.0.1) answers on port 80, but not with this server's challenge file")
    assert not list((tmp_path / "webroot" / ".well-known" / "acme-challenge").iterdir())


def test_a_certificates_state_is_its_dns_names_serial_issuer_and_validity_read_in_one_pass(tmp_path):
    import subprocess

    def certificate(name, *extra):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", str(tmp_path / "key"),
                        "-out", str(tmp_path / name), "-days", "30", "-subj", "/CN=a.example/O=Org, Inc", *extra],
                       check=True, capture_output=True)
        return tmp_path / name

    def state(path):
        run = subprocess.run(["sh", str(tls.SCRIPTS_DIR / "tls_state.sh"), str(path)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    named = state(certificate("named", "-addext", "subjectAltName=DNS:a.example,IP:10.0.0.1,DNS:www.a.example"))
    assert named["domains"] == ["a.example", "www.a.example"]
    assert named["issuer"] == "O=Org\\, Inc,CN=a.example" and re.fullmatch(r"[0-9A-F]+", named["serial"])
    assert timedelta(days=30) == timedelta(seconds=named["not_after"] - named["not_before"])
    assert abs(named["not_before"] - datetime.now(timezone.utc).timestamp()) < 300
    assert state(certificate("unnamed"))["domains"] == []
    assert state(tmp_path / "missing") == {}
