"""The on-call commands on the provisioned lab target, with the app serving (after test_backup.py)."""

import json
import time

import pytest
from lab_site import Site, get
from load import LoadLoop, strict_clients


@pytest.fixture(scope="module", autouse=True)
def site(provisioned, cli):
    deployed = cli("fab", "-H", "lab", "deploy")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    return Site.of(provisioned)


def nginx_processes(as_deploy) -> str:
    return as_deploy.run("docker top demo-nginx-1 -o pid,lstart,args").stdout


def audit_events(as_deploy) -> list[dict]:
    return [json.loads(line) for line in as_deploy.run("cat /srv/demo/.slipway/audit.log").stdout.splitlines()]


def test_maintenance_on_and_off_under_load_answers_200_or_503_never_a_connection_error(cli, as_deploy, site):
    processes = nginx_processes(as_deploy)
    with LoadLoop(site, clients=10) as fresh, strict_clients(site, clients=10) as kept:
        time.sleep(1)
        on = cli("fab", "-H", "lab", "maintenance.on", "--message", "Moving to <new> disks", "--until", "03:30 UTC")
        time.sleep(2)
        status, page, headers = get(site, "/version")
        health = get(site, "/health")[0]
        off = cli("fab", "-H", "lab", "maintenance.off")
        time.sleep(1)
    assert on.returncode == 0 and off.returncode == 0, on.stdout + on.stderr + off.stdout + off.stderr
    assert (status, headers["Retry-After"], health) == (503, "30", 200)
    assert "Moving to &lt;new&gt; disks" in page and "Expected back by 03:30 UTC." in page
    for load in (fresh, kept):
        assert set(load.outcomes) == {"200", "503"}, load.failures
        assert load.outcomes["503"] > 0 and load.outcomes["200"] > 0
    assert nginx_processes(as_deploy) == processes
    assert get(site, "/version")[0] == 200
    events = [event["event"] for event in audit_events(as_deploy)[-2:]]
    assert events == ["maintenance on", "maintenance off"]


def test_maintenance_survives_an_nginx_restart_and_a_deploy_and_lets_allowed_addresses_through(cli, as_deploy, site):
    get(site, "/version")
    # The address nginx sees for this machine's requests (Docker's proxy on the target).
    address = as_deploy.run("docker logs --tail 1 demo-nginx-1 2>/dev/null").stdout.split()[0]
    assert cli("fab", "-H", "lab", "maintenance.on").returncode == 0
    try:
        as_deploy.run("docker restart demo-nginx-1")
        for _ in range(50):
            try:
                if get(site, "/version")[0] == 503:
                    break
            except OSError:  # still starting
                pass
            time.sleep(0.2)
        assert get(site, "/version")[0] == 503
        deployed = cli("fab", "-H", "lab", "deploy", "--version", "v2")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert get(site, "/version")[0] == 503
        allowed = cli("fab", "-H", "lab", "maintenance.on", "--allow", address, "--allow", "203.0.113.7")
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        assert get(site, "/version")[:2] == (200, '{"version": "v2"}')
        assert cli("fab", "-H", "lab", "maintenance.on", "--allow", "203.0.113.7").returncode == 0
        assert get(site, "/version")[0] == 503
    finally:
        assert cli("fab", "-H", "lab", "maintenance.off").returncode == 0
    assert get(site, "/version")[:2] == (200, '{"version": "v2"}')


def test_a_bad_allowed_address_is_one_line_and_changes_nothing(cli, as_deploy):
    before = as_deploy.run("ls -A /srv/demo/shared/nginx/traffic").stdout
    refused = cli("fab", "-H", "lab", "maintenance.on", "--allow", "10.0.0.300")
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("error: --allow: found '10.0.0.300'; expected a client IP address like "
                                      "203.0.113.7")
    assert refused.stdout == "" and as_deploy.run("ls -A /srv/demo/shared/nginx/traffic").stdout == before
