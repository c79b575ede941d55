"""Deploy, rollback, lock and audit on the provisioned lab target, under load.

These run after test_provision.py on the same target (see tests/conftest.py),
in file order: each starts from the release the one before it left serving.
"""

import json
import re
import shlex
import signal
import subprocess
import time

import pytest
from load import LoadLoop, strict_clients
from fabfile.remote import Remote
from lab_names import LAB
from lab_server import live_release, nginx_processes, restart_nginx, serving_command, wait_until
from conftest import PROJECT, connect, run_cli
from lab_site import get, post

# Every test here needs the provisioned target (conftest.py's site); the first deploys the app on it.
pytestmark = pytest.mark.usefixtures("site")


@pytest.fixture
def deploy(cli):
    return lambda *args: cli("fab", "-H", "lab", "deploy", *args)


def serving_version(site):
    return json.loads(get(site, "/version")[1])["version"]


def release_record(as_deploy, release_id):
    return json.loads(as_deploy.run(f"cat {LAB.release_dir(release_id)}/release.json").stdout)


@pytest.fixture(scope="module")
def nginx_before_v2(lab_deployment):
    """nginx's processes when the first test of this module that asks for them starts: the deploy of v2
    records them before it deploys, and the rollback after it checks them (run on its own, the rollback
    records them itself, before it rolls back)."""
    remote = Remote(connect(lab_deployment, lab_deployment.inventory.server.deploy_user), "lab")
    try:
        return nginx_processes(remote)
    finally:
        remote.close()


@pytest.fixture(scope="module")
def accessory_kept(lab_deployment, site):
    """A check that the Redis accessory's container, and a counter the app wrote there when the first test of this
    module that asks started, are as they were: no deploy, rollback or restart of the app touches them."""
    remote = Remote(connect(lab_deployment, lab_deployment.inventory.server.deploy_user), "lab")
    container = remote.run(f"docker inspect -f '{{{{.Id}}}}' {LAB.accessory_container('redis')}").stdout.strip()
    remote.close()
    status, written = post(site, "/counter", {})
    assert status == 200, written

    def check(as_deploy):
        assert as_deploy.run(f"docker inspect -f '{{{{.Id}}}}' {LAB.accessory_container('redis')}").stdout.strip() \
            == container
        assert json.loads(get(site, "/counter")[1]) == written

    return check


def report(capsys, text):
    with capsys.disabled():
        print(f"\n    {text}")


def test_first_deploy_serves_v1_through_nginx_and_stores_data(deploy, site, as_deploy, lab_deployment):
    result = deploy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\(v1\) is live", result.stdout)
    secret = lab_deployment.secret("DATABASE_PASSWORD")
    assert secret not in result.stdout + result.stderr

    status, body, headers = get(site, "/version")
    assert (status, json.loads(body)) == (200, {"version": "v1"})
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    assert post(site, "/items", {"name": "written-through-nginx"})[0] == 201
    rows = as_deploy.run(f"docker exec {LAB.db_container} psql -U {LAB.db_user} -d {LAB.db_name} "
                         "-tAc 'SELECT name, version FROM items'").stdout
    assert "written-through-nginx|v1" in rows.splitlines()

    release = live_release(as_deploy)
    assert as_deploy.run(f"readlink {LAB.current}").stdout.strip() == f"releases/{release}"
    assert as_deploy.run(f"stat -c '%a %U' {LAB.release_dir(release)}/env/api.env").stdout.strip() == "600 deploy"
    record = release_record(as_deploy, release)
    assert record["outcome"] == "active" and record["version"] == "v1"
    assert record["images"]["api"]["id"].startswith("sha256:")
    published = as_deploy.run("docker ps --format '{{.Names}} {{.Ports}}'").stdout.splitlines()
    assert [line.split()[0] for line in published if "->" in line] == [LAB.nginx_container]


def test_dry_run_shows_the_change_with_secrets_masked_and_changes_nothing(deploy, as_deploy, lab_deployment):
    releases_before = as_deploy.run(f"ls {LAB.releases}").stdout
    result = deploy("--version", "v2", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "-    image: slipway-demo/api:v1\n    +    image: slipway-demo/api:v2" in result.stdout
    assert "images to ship" in result.stdout and "slipway-demo/api:v2" in result.stdout
    assert lab_deployment.secret("DATABASE_PASSWORD") not in result.stdout + result.stderr
    assert re.search(r"\d+ ok, \d+ would change, 0 failed", result.stdout)
    assert as_deploy.run(f"ls {LAB.releases}").stdout == releases_before


def test_v2_under_load_fails_no_request_while_plain_compose_recreate_does(deploy, site, as_deploy, capsys, cli,
                                                                           nginx_before_v2, accessory_kept):
    with strict_clients(site) as slipway_load:
        result = deploy("--version", "v2")
        time.sleep(1)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"move traffic to \S+ \(slot \w+\) +changed .* no nginx reload$", result.stdout, re.M), result.stdout
    assert serving_version(site) == "v2"

    release = live_release(as_deploy)
    with LoadLoop(site) as compose_load:
        as_deploy.run(f"cd {LAB.release_dir(release)} && docker compose -p {LAB.release_project(release)} "
                      "-f compose.yaml up -d --force-recreate --no-deps api")
        time.sleep(2)
    # Re-created by hand, the containers lost the addresses nginx reaches them at: the next test starts from a
    # serving site, as an operator gets one back (RUNBOOK, "502 or 503 errors").
    restarted = cli("fab", "-H", "lab", "restart", "api")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    report(capsys, f"slipway deploy v1 -> v2, 20 keep-alive clients that never retry: {slipway_load.failed} failed "
                   f"of {slipway_load.total} requests; plain `docker compose up -d --force-recreate`: "
                   f"{compose_load.failed} failed of {compose_load.total}")
    assert slipway_load.failed == 0, slipway_load.failures
    assert slipway_load.total > 200
    assert compose_load.failed > 0
    assert serving_version(site) == "v2"
    accessory_kept(as_deploy)


def test_broken_release_never_gets_traffic(deploy, site, as_deploy, cli, accessory_kept):
    with strict_clients(site) as load:
        result = deploy("--version", "broken")
    assert result.returncode == 1
    assert load.failed == 0, load.failures
    assert set(load.bodies) == {'{"version": "v2"}'}
    assert "never became healthy, so it got no traffic" in result.stderr
    assert "last health checks" in result.stderr and "503" in result.stderr
    assert "Traceback (most recent call last)" not in result.stderr.split("last log lines")[0]
    assert serving_version(site) == "v2"
    assert as_deploy.run("docker ps -q --filter label=slipway.release --filter ancestor=slipway-demo/api:broken").stdout == ""

    listing = cli("fab", "-H", "lab", "releases").stdout
    assert re.search(r"^  \S+ +broken .* failed$", listing, re.M)
    assert re.search(r"^\* \S+ +v2 .* active( \(restart of \S+\))?$", listing, re.M)
    events = [json.loads(line) for line in as_deploy.run(f"cat {LAB.audit_log}").stdout.splitlines()]
    assert events[-1]["event"] == "deploy failed" and events[-1]["version"] == "broken"
    accessory_kept(as_deploy)


def test_rollback_returns_to_v1_without_pulling_or_building(cli, site, as_deploy, capsys, nginx_before_v2,
                                                             accessory_kept):
    images_before = as_deploy.run("docker images -q --no-trunc | sort").stdout
    with strict_clients(site) as load:
        started = time.monotonic()
        result = cli("fab", "-H", "lab", "rollback")
        took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert load.failed == 0, load.failures
    assert serving_version(site) == "v1"
    assert "ship images" not in result.stdout and "pull images" not in result.stdout
    assert as_deploy.run("docker images -q --no-trunc | sort").stdout == images_before
    v1 = release_record(as_deploy, live_release(as_deploy))
    running = as_deploy.run("docker ps --filter label=slipway.service=api --format '{{.Image}}' | sort -u").stdout.split()
    assert running == [v1["images"]["api"]["ref"]]
    assert as_deploy.run(f"docker image inspect -f '{{{{.Id}}}}' {running[0]}").stdout.strip() == v1["images"]["api"]["id"]
    # Deploy v2, a broken deploy, this rollback: nginx was never reloaded or restarted.
    assert nginx_processes(as_deploy) == nginx_before_v2
    report(capsys, f"rollback to v1 took {took:.1f}s with {load.total} requests from 20 keep-alive clients that "
                   f"never retry, {load.failed} failed")
    accessory_kept(as_deploy)


def test_restarting_the_app_fails_no_request_and_leaves_the_accessory_alone(cli, site, as_deploy, accessory_kept):
    serving = live_release(as_deploy)
    with strict_clients(site) as load:
        result = cli("fab", "-H", "lab", "restart", "all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert load.failed == 0, load.failures
    assert live_release(as_deploy) != serving
    accessory_kept(as_deploy)


def test_a_restarted_nginx_serves_the_release_recorded_as_serving(site, as_deploy):
    serving = live_release(as_deploy)
    restart_nginx(as_deploy, lambda: get(site, "/version"))
    assert serving_version(site) == release_record(as_deploy, serving)["version"] == "v1"


def test_a_refused_upstream_connection_is_retried_on_the_other_container(site, as_deploy):
    serving = live_release(as_deploy)
    pid = as_deploy.run(f"docker inspect -f '{{{{.State.Pid}}}}' {LAB.container(serving, 'api')}").stdout.strip()
    refuse = f"nsenter -t {pid} -n iptables -{{}} INPUT -p tcp --dport 8000 -j REJECT --reject-with tcp-reset"
    as_deploy.run(refuse.format("I"), root=True)
    try:
        with strict_clients(site, clients=4, max_requests=400) as load:
            wait_until(lambda: load.total >= 400 or load.failed, 180, "400 requests, or a failed one", interval=0.1)
    finally:
        as_deploy.run(refuse.format("D"), root=True)
    assert load.failed == 0 and load.total >= 400, load.failures
    refused = as_deploy.run(f"docker logs --since 1m {LAB.nginx_container} 2>&1 "
                            "| grep -c 'connect() failed (111' || true").stdout
    assert int(refused) > 0, "no request ever met the refusing container: nothing was tested"


def test_a_slot_whose_servers_nginx_marked_failed_answers_every_request_when_it_serves_again(site, as_deploy, cli):
    """nginx keeps a server's failures as long as it runs: the slot's servers marked while it served (here both
    replicas refuse), traffic leaves it, and a release starting there later finds the marks still set."""
    serving = live_release(as_deploy)
    for replica in (1, 2):
        pid = as_deploy.run(f"docker inspect -f '{{{{.State.Pid}}}}' {LAB.container(serving, 'api', replica)}").stdout
        as_deploy.run(f"nsenter -t {pid.strip()} -n iptables -I INPUT -p tcp --dport 8000 -j REJECT "
                      "--reject-with tcp-reset", root=True)
    with LoadLoop(site, clients=4, max_requests=400) as marking:
        wait_until(lambda: marking.failed >= 20, 60, "nginx to meet the refusing servers")
    # The restart moves traffic to the other slot (its containers refuse nothing) and removes these.
    away = cli("fab", "-H", "lab", "restart", "api")
    assert away.returncode == 0, away.stdout + away.stderr
    # More clients than elsewhere: the 502s came to requests that met nginx while its first ones probed.
    with strict_clients(site, clients=40) as load:
        back = cli("fab", "-H", "lab", "restart", "api")
        time.sleep(1)
    assert back.returncode == 0, back.stdout + back.stderr
    assert load.failed == 0, load.failures
    assert serving_version(site) == release_record(as_deploy, serving)["version"]


def wait_for_lock_holder(as_deploy, holder):
    """Wait until HOLDER holds the deploy lock: its record is written once it has the lock."""
    wait_until(lambda: as_deploy.run(f"grep -qF {shlex.quote(holder)} {LAB.lock_info}", check=False).ok, 30,
               f"{holder} to hold the deploy lock")


def wait_for_free_lock(as_deploy):
    """Wait until the deploy lock is free (a holder lets go once its stdin closes and its steps are done)."""
    wait_until(lambda: as_deploy.run(f"flock -n {LAB.lock_file} true", check=False).ok, 30, "the deploy lock to be free")


def test_two_deploys_at_once_exactly_one_runs(cli, site):
    argv = [str(cli.__globals__["BIN"] / "fab"), "-H", "lab", "deploy", "--version", "v2"]
    first = subprocess.Popen(argv, cwd=cli.__globals__["PROJECT"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(argv, cwd=cli.__globals__["PROJECT"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outcomes = [(process.wait(timeout=300), *process.communicate()) for process in (first, second)]
    assert sorted(code for code, _, _ in outcomes) == [0, 1]
    refused = next(stderr for code, _, stderr in outcomes if code == 1)
    assert re.search(r"deploy lock is held by \S+@\S+ running `deploy v2` since \S+ \(pid \d+\)", refused)
    assert serving_version(site) == "v2"


def test_stale_lock_is_shown_refused_and_released_only_with_force(cli, as_deploy, site):
    from fabfile.commands.lock import lock_command
    from fabfile.commands.shell import line
    hung = line(lock_command(LAB.layout, {"by": "ghost@elsewhere", "command": "deploy v9", "since": "earlier"}))
    # A holder that never lets go, as a hung slipway would.
    as_deploy.run(f"setsid sh -c {shlex.quote(f'sleep 3600 | {hung}')} >/dev/null 2>&1 < /dev/null &")
    wait_for_lock_holder(as_deploy, "ghost@elsewhere")

    status = cli("fab", "-H", "lab", "lock.status")
    assert re.search(r"^locked by ghost@elsewhere running `deploy v9` since earlier \(pid \d+\)$", status.stdout, re.M)
    refused = cli("fab", "-H", "lab", "deploy", "--version", "v2")
    assert refused.returncode == 1 and "deploy lock is held by ghost@elsewhere" in refused.stderr
    gentle = cli("fab", "-H", "lab", "lock.release")
    assert gentle.returncode == 1 and "pass --force" in gentle.stderr
    assert "locked by ghost@elsewhere" in gentle.stdout

    forced = cli("fab", "-H", "lab", "lock.release", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "locked by ghost@elsewhere" in forced.stdout and "lock released (forced)" in forced.stdout
    assert cli("fab", "-H", "lab", "lock.status").stdout.strip().endswith("unlocked")
    last = json.loads(as_deploy.run(f"tail -n 1 {LAB.audit_log}").stdout)
    assert last["event"] == "lock forced" and last["holder"]["by"] == "ghost@elsewhere"
    as_deploy.run("pkill -f '^sleep 3600$' || true")


@pytest.mark.parametrize("kill_after", ["release command", "move traffic"])
def test_lost_connection_mid_deploy_keeps_the_site_up_and_the_next_deploy_works(kill_after, cli, site, as_deploy):
    version = "v1" if serving_version(site) == "v2" else "v2"
    argv = [str(cli.__globals__["BIN"] / "fab"), "-H", "lab", "deploy", "--version", version]
    with strict_clients(site, clients=10) as load:
        interrupted = subprocess.Popen(argv, cwd=cli.__globals__["PROJECT"], stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
        seen = []
        for line in interrupted.stdout:
            seen.append(line)
            if kill_after in line:
                interrupted.kill()  # the SSH connection dies with the process
                break
        interrupted.wait(timeout=60)
        assert any(kill_after in line for line in seen), "".join(seen)
        time.sleep(1)
        assert get(site, "/version")[0] == 200
        result = cli("fab", "-H", "lab", "deploy", "--version", version)
        time.sleep(1)
    assert result.returncode == 0, result.stdout + result.stderr
    assert load.failed == 0, load.failures
    assert serving_version(site) == version
    projects = as_deploy.run(f"docker ps -a --filter label=slipway.app={LAB.app} --format "
                             "'{{.Label \"com.docker.compose.project\"}}' | sort -u").stdout.split()
    assert projects == [LAB.release_project(live_release(as_deploy))]
    assert as_deploy.run(f"readlink {LAB.current}").stdout.strip() == f"releases/{live_release(as_deploy)}"


def test_ctrl_c_mid_deploy_undoes_the_attempt_and_frees_the_lock(cli, site, as_deploy):
    serving = live_release(as_deploy)
    version = "v1" if serving_version(site) == "v2" else "v2"
    argv = [str(cli.__globals__["BIN"] / "fab"), "-H", "lab", "deploy", "--version", version]
    with strict_clients(site, clients=10) as load:
        deploying = subprocess.Popen(argv, cwd=cli.__globals__["PROJECT"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        for line in deploying.stdout:
            if "release command" in line:
                deploying.send_signal(signal.SIGINT)
                break
        output = deploying.stdout.read()
        assert deploying.wait(timeout=60) == 130
    assert "interrupted" in output and "Traceback" not in output
    assert load.failed == 0, load.failures
    assert live_release(as_deploy) == serving
    assert cli("fab", "-H", "lab", "lock.status").stdout.strip().endswith("unlocked")
    projects = as_deploy.run(f"docker ps -a --filter label=slipway.app={LAB.app} --format "
                             "'{{.Label \"com.docker.compose.project\"}}' | sort -u").stdout.split()
    assert projects == [LAB.release_project(serving)]
    assert re.search(r"^  \S+ +" + version + r" .* failed$", cli("fab", "-H", "lab", "releases").stdout, re.M)


def test_an_operator_lost_without_a_trace_frees_the_lock_within_a_minute(cli, site, as_deploy, lab_target):
    """Every packet of the operator's SSH connections dropped both ways, then the client gone for good:
    no FIN or RST ever reaches the server; sshd's keep-alives end the session and the lock goes."""
    target = lab_target["container"]
    in_target = ["docker", "exec", target]
    ssh_rules = [["INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP"], ["OUTPUT", "-p", "tcp", "--sport", "22", "-j", "DROP"]]
    lock_free = [*in_target, "runuser", "-u", "deploy", "--", "flock", "-n", LAB.lock_file, "true"]
    serving = live_release(as_deploy)
    version = "v1" if serving_version(site) == "v2" else "v2"
    deploying = subprocess.Popen([str(cli.__globals__["BIN"] / "fab"), "-H", "lab", "deploy", "--version", version],
                                 cwd=cli.__globals__["PROJECT"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in deploying.stdout:
            if "release command" in line:
                break
        for rule in ssh_rules:
            subprocess.run([*in_target, "iptables", "-I", *rule], check=True)
        cut = time.monotonic()
        deploying.kill()
        deploying.wait(timeout=30)
        assert subprocess.run(lock_free).returncode == 1, "the lock was already free: nothing was held"
        while subprocess.run(lock_free).returncode != 0:
            assert time.monotonic() - cut < 120, "the deploy lock was still held 2 minutes after the operator vanished"
            time.sleep(2)
        freed_after = time.monotonic() - cut
    finally:
        for rule in ssh_rules:
            subprocess.run([*in_target, "iptables", "-D", *rule])
    print(f"lock freed {freed_after:.0f} s after the operator vanished")
    assert freed_after < 90
    # Cut before the switch: the release that served goes on serving. (as_deploy's own connection
    # went down with the partition.)
    served = subprocess.run([*in_target, "sh", "-c", serving_command()], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert get(site, "/version")[0] == 200 and served == serving
    result = cli("fab", "-H", "lab", "deploy", "--version", version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert serving_version(site) == version


REGISTRY = "127.0.0.1:5000"
REGISTRY_PASSWORD = "lab-registry-password-7f3a"


def test_images_pulled_from_a_private_registry_with_a_login_from_secrets(variant, as_deploy, site, cli):
    # A real registry (Debian's docker-registry, htpasswd auth) on the server, holding the images.
    as_deploy.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-registry apache2-utils "
                  ">/dev/null", root=True)
    as_deploy.run("htpasswd -Bi -c /etc/docker/registry/htpasswd slipway 2>/dev/null && systemctl restart docker-registry",
                  root=True, stdin=REGISTRY_PASSWORD + "\n")
    refs = ["slipway-demo/api:v1", "slipway-demo/postgres:17", "slipway-demo/nginx:1"]
    as_deploy.run(f"for i in 1 2 3 4 5; do curl -s -o /dev/null http://{REGISTRY}/v2/ && break; sleep 1; done; "
                  f"docker login -u slipway --password-stdin {REGISTRY} >/dev/null", stdin=REGISTRY_PASSWORD)
    for ref in refs:
        as_deploy.run(f"docker tag {ref} {REGISTRY}/{ref} && docker push -q {REGISTRY}/{ref} >/dev/null && docker rmi {REGISTRY}/{ref} >/dev/null")
    as_deploy.run(f"docker logout {REGISTRY} >/dev/null")

    def from_registry(data):
        data["images"] = {"source": "registry", "registry": REGISTRY, "username": "slipway", "password_secret": "REGISTRY_PASSWORD"}
        for service in data["services"].values():
            service["image"] = f"{REGISTRY}/{service['image']}"
        data["database"]["image"] = f"{REGISTRY}/{data['database']['image']}"
        data["nginx"]["image"] = f"{REGISTRY}/{data['nginx']['image']}"

    fab = variant(from_registry, {"REGISTRY_PASSWORD": REGISTRY_PASSWORD})
    try:
        # nginx's image reference changes too: it is re-created only when the operator asks.
        refused = fab("deploy", "--version", "v1", "--restart-db")
        assert refused.returncode == 1
        assert len([line for line in refused.stderr.splitlines() if line.startswith("error:")]) == 1, refused.stderr
        assert "nginx's own service differs" in refused.stderr and "--restart-nginx" in refused.stderr, refused.stderr
        with LoadLoop(site) as load:
            # The database's image reference changes too: only an explicit --restart-db re-creates it.
            result = fab("deploy", "--version", "v1", "--restart-db", "--restart-nginx")
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"pull images from 127\.0\.0\.1:5000 +changed", result.stdout)
        assert re.search(r"move traffic to .* changed .*nginx re-created", result.stdout), result.stdout
        assert "ship images" not in result.stdout
        assert REGISTRY_PASSWORD not in result.stdout + result.stderr
        # What the README promises for --restart-nginx: connection errors for a few seconds, never an HTTP error.
        assert all(not failure[0].isdigit() for failure in load.failures), load.failures
        assert not load.failure_times or max(load.failure_times) - min(load.failure_times) < 5, load.failures
        assert serving_version(site) == "v1"
        running = as_deploy.run("docker ps --filter label=slipway.service=api --format '{{.Image}}' | sort -u").stdout.split()
        assert running == [f"{REGISTRY}/slipway-demo/api:v1"]
        # No credentials left behind on the server.
        assert REGISTRY not in as_deploy.run("cat ~/.docker/config.json 2>/dev/null || true").stdout
    finally:  # the lab's own images again, whatever happened: later tests deploy from them
        back = cli("fab", "-H", "lab", "deploy", "--version", "v1", "--restart-db", "--restart-nginx")
        assert back.returncode == 0, back.stdout + back.stderr


def test_only_the_last_releases_that_served_are_kept_and_failed_ones_never_push_them_out(as_deploy, lab_deployment, variant):
    keep = lab_deployment.inventory.app.keep_releases
    records = [json.loads(line) for line in as_deploy.run(f"cat {LAB.releases}/*/release.json").stdout.splitlines()]
    served = [r for r in records if r["outcome"] == "active"]
    assert len(served) <= keep and len(records) - len(served) <= keep
    assert live_release(as_deploy) in {r["id"] for r in records}
    # Failed attempts (their own releases pile up) never prune a rollback target.
    targets_before = sorted(r["id"] for r in served)
    # A shorter health wait: the broken release never gets healthy, and how long it is given does not matter here.
    fab = variant(lambda data: data["services"]["api"]["healthcheck"].update(timeout_seconds=5))
    for _ in range(2):
        assert fab("deploy", "--version", "broken").returncode == 1
    records = [json.loads(line) for line in as_deploy.run(f"cat {LAB.releases}/*/release.json").stdout.splitlines()]
    assert sorted(r["id"] for r in records if r["outcome"] == "active") == targets_before


def test_a_rotated_secret_never_shows_in_dry_run_or_deploy_output(variant, as_deploy, site):
    def with_session_key(data):
        data["services"]["api"]["secrets"].append("SESSION_KEY")
    old, new = "old-session-key-4b1d", "new-session-key-9c2e"
    first = variant(with_session_key, {"SESSION_KEY": old})
    deployed = first("deploy", "--version", "v2")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    rotated = variant(with_session_key, {"SESSION_KEY": new})
    dry = rotated("deploy", "--version", "v2", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    real = rotated("deploy", "--version", "v2")
    assert real.returncode == 0, real.stdout + real.stderr
    for output in (deployed.stdout + deployed.stderr, dry.stdout + dry.stderr, real.stdout + real.stderr):
        assert old not in output and new not in output
    # Only the secret changed: masked by key on both sides, the dry run has nothing to show.
    assert re.search(r"\d+ ok, 0 would change, 0 failed", dry.stdout), dry.stdout
    assert f"SESSION_KEY='{new}'" in as_deploy.run(f"cat {LAB.release_dir(live_release(as_deploy))}/env/api.env").stdout


def test_a_secret_that_leaves_secrets_keeps_its_old_value_masked_in_the_dry_run(variant):
    def with_api_key(data):
        data["services"]["api"]["secrets"].append("API_KEY")
    old = "api-key-that-was-secret-31f0"
    deployed = variant(with_api_key, {"API_KEY": old})("deploy", "--version", "v2")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    now_plain = variant(lambda data: data["services"]["api"]["env"].update(API_KEY="plain-now"))
    dry = now_plain("deploy", "--version", "v2", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert old not in dry.stdout + dry.stderr
    assert "API_KEY=********" in dry.stdout


# Each reaches the container exactly as written: `x\` once swallowed the line after it.
TRICKY_ENV = {"ENDS_IN_BACKSLASH": "x\\", "AFTER_IT": "still-here", "DOLLARS": "$HOME ${PATH} $$ #not-a-comment",
              "QUOTES_AND_ESCAPES": 'say "hi" \\n \\$HOME \\\\'}


def test_values_and_commands_reach_the_container_verbatim_through_compose(variant, as_deploy, site):
    def tricky(data):
        data["services"]["worker"]["env"].update(TRICKY_ENV)
        data["services"]["worker"]["command"] = ["sh", "-c", 'echo "$HOSTNAME $(id -u)" >/tmp/seen; exec python3 -m demo.worker']
    deployed = variant(tricky)("deploy", "--version", "v1")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    worker = LAB.container(live_release(as_deploy), "worker")
    config = json.loads(as_deploy.run(f"docker inspect -f '{{{{json .Config}}}}' {worker}").stdout)
    env = dict(item.split("=", 1) for item in config["Env"])
    assert {key: env.get(key) for key in TRICKY_ENV} == TRICKY_ENV
    assert config["Cmd"] == ["sh", "-c", 'echo "$HOSTNAME $(id -u)" >/tmp/seen; exec python3 -m demo.worker']
    # The container's shell expanded them, not compose from the deploy user's environment.
    hostname, uid = as_deploy.run(f"docker exec {worker} cat /tmp/seen").stdout.split()
    assert hostname == config["Hostname"] and uid == "65534"


def test_a_healthy_release_nginx_cannot_reach_gets_its_traffic_moved_back(variant, as_deploy, site, tmp_path):
    """Healthy containers that nginx's config does not reach (here an overridden template's typo in a group's
    name): the check through nginx after the switch moves traffic and the config back before the old containers
    stop."""
    serving = live_release(as_deploy)
    builtin = (PROJECT / "templates" / "app" / "nginx.conf.j2").read_text()
    typo = builtin.replace("proxy_pass http://{{ groups[health.service] }}{{ health.path }};",
                           "proxy_pass http://{{ groups[health.service] }}-typo{{ health.path }};")
    assert typo != builtin
    (tmp_path / "project" / "templates" / "app").mkdir(parents=True)
    (tmp_path / "project" / "templates" / "app" / "nginx.conf.j2").write_text(typo)
    variant(lambda data: None)
    result = run_cli("fab", "-H", "lab", "deploy", "--version", "v2", env_extra={
        "FABRIC_SLIPWAY_INVENTORY_DIR": str(tmp_path / "inventories"),
        "FABRIC_SLIPWAY_PROJECT_DIR": str(tmp_path / "project")})
    assert result.returncode == 1
    assert "was healthy, but /health did not answer through nginx once traffic moved to it" in result.stderr
    assert "traffic is back on the slot that served, with the config it had" in result.stderr
    assert "Traceback" not in result.stderr
    assert live_release(as_deploy) == serving and get(site, "/version")[0] == 200 and get(site, "/health")[0] == 200
    assert "-typo" not in as_deploy.run(f"cat {LAB.live_nginx_conf}").stdout
    projects = as_deploy.run(f"docker ps -a --filter label=slipway.app={LAB.app} --format "
                             "'{{.Label \"com.docker.compose.project\"}}' | sort -u").stdout.split()
    assert projects == [LAB.release_project(serving)]


def test_a_hung_release_command_is_killed_at_its_limit_and_frees_the_lock(variant, as_deploy, site, cli):
    serving = live_release(as_deploy)

    def hanging_migration(data):
        data["services"]["api"]["release_command"] = "sleep 3600"
        data["services"]["api"]["release_command_timeout_seconds"] = 5
    fab = variant(hanging_migration)
    started = time.monotonic()
    with LoadLoop(site) as load:
        result = fab("deploy", "--version", "v1")
    took = time.monotonic() - started
    assert result.returncode == 1
    assert "release command in a new api container" in result.stderr and "ran past 5s" in result.stderr
    assert "Traceback" not in result.stderr
    assert took < 60
    assert load.failed == 0, load.failures
    assert live_release(as_deploy) == serving
    assert as_deploy.run("docker ps -aq --filter name=release").stdout.strip() == ""
    assert as_deploy.run("ps -eo args | grep -c '^sleep 3600$' || true").stdout.strip() == "0"
    assert cli("fab", "-H", "lab", "lock.status").stdout.strip().endswith("unlocked")
    last = json.loads(as_deploy.run(f"tail -n 1 {LAB.audit_log}").stdout)
    assert last["event"] == "deploy failed" and last["step"] == "release command in a new api container"


def test_a_failed_pull_ends_cleanly_recorded_and_audited(variant, as_deploy, site):
    serving = live_release(as_deploy)

    def from_absent_registry(data):
        data["images"] = {"source": "registry", "registry": "127.0.0.1:5999"}
        data["services"]["api"]["image"] = "127.0.0.1:5999/nowhere/api"
    result = variant(from_absent_registry)("deploy", "--version", "v1")
    assert result.returncode == 1
    assert "deploy failed at 'pull images from 127.0.0.1:5999'" in result.stderr
    assert "still serves" in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert live_release(as_deploy) == serving
    records = [json.loads(line) for line in as_deploy.run(f"cat {LAB.releases}/*/release.json").stdout.splitlines()]
    newest = max(records, key=lambda r: r["id"])
    assert newest["outcome"] == "failed" and newest["detail"].startswith("pull images from 127.0.0.1:5999: ")
    last = json.loads(as_deploy.run(f"tail -n 1 {LAB.audit_log}").stdout)
    assert last["event"] == "deploy failed" and last["step"] == "pull images from 127.0.0.1:5999"


def test_named_volumes_and_shared_folders_persist_across_deploy_and_rollback(variant, as_deploy, site):
    def with_volumes(data):
        data["services"]["api"]["volumes"] = ["uploads:/data/uploads", "./media:/data/media"]
    fab = variant(with_volumes)
    assert fab("deploy", "--version", "v1").returncode == 0
    first = live_release(as_deploy)
    as_deploy.run(f"docker exec -u 0 {LAB.container(first, 'api')} "
                  "sh -c 'echo kept > /data/uploads/a && echo kept > /data/media/b'")
    assert fab("deploy", "--version", "v2").returncode == 0
    second = live_release(as_deploy)
    assert second != first
    check = "cat /data/uploads/a /data/media/b"
    assert as_deploy.run(f"docker exec {LAB.container(second, 'api')} {check}").stdout.split() == ["kept", "kept"]
    rolled = fab("rollback")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert live_release(as_deploy) == first
    assert as_deploy.run(f"docker exec {LAB.container(first, 'api')} {check}").stdout.split() == ["kept", "kept"]
    assert as_deploy.run(f"cat {LAB.shared}/media/b").stdout.strip() == "kept"


def test_rollback_keeps_the_original_deployer(as_deploy, cli):
    records = {r["id"]: r for r in (json.loads(line) for line in
                                    as_deploy.run(f"cat {LAB.releases}/*/release.json").stdout.splitlines())}
    serving = records[live_release(as_deploy)]
    assert serving["deployer"] and serving["outcome"] == "active"
    events = [json.loads(line) for line in as_deploy.run(f"cat {LAB.audit_log}").stdout.splitlines()]
    assert events[-1]["event"] == "rolled back"
    started = next(e for e in reversed(events) if e["event"] == "deploy started" and e["release"] == serving["id"])
    assert serving["deployer"] == started["by"]
    # Its time is still when it was first deployed, not when it was rolled back to.
    assert serving["time"] <= started["time"]


def test_a_health_command_gates_traffic_in_place_of_curl(variant, as_deploy, site):
    def probe(command):
        return lambda data: data["services"]["api"]["healthcheck"].update(command=command, timeout_seconds=8)
    before = live_release(as_deploy)
    failing = variant(probe("false"))("deploy", "--version", "v2")
    assert failing.returncode == 1 and "never became healthy" in failing.stderr
    assert live_release(as_deploy) == before
    python_probe = "python3 -c 'import urllib.request as u; u.urlopen(\"http://127.0.0.1:8000/health\")'"
    passing = variant(probe(python_probe))("deploy", "--version", "v2")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    serving = live_release(as_deploy)
    test = json.loads(as_deploy.run(f"docker inspect -f '{{{{json .Config.Healthcheck.Test}}}}' "
                                    f"{LAB.container(serving, 'api')}").stdout)
    assert test[:3] == ["CMD", "python3", "-c"]
    assert serving_version(site) == "v2"


def test_an_image_with_neither_curl_nor_a_shell_is_health_gated_from_outside(cli, deploy, as_deploy, site):
    """Like most official Go, Rust and distroless images: the default health check needs nothing inside."""
    with strict_clients(site, clients=10) as load:
        deployed = deploy("--version", "bare")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert load.failed == 0, load.failures
    assert serving_version(site) == "bare"
    api = LAB.container(live_release(as_deploy), "api")
    for missing in ("sh", "curl"):
        assert as_deploy.run(f"docker exec {api} {missing} --version", check=False).failed
    assert as_deploy.run(f"docker inspect -f '{{{{.State.Health}}}}' {api}").stdout.strip() == "<nil>"
    status = cli("fab", "-H", "lab", "status", "--json")
    containers = {c["name"]: c for c in json.loads(status.stdout)["containers"]}
    assert containers[api]["health"] == "healthy", status.stdout
    # A container that runs but stops answering is seen from outside too: status names it.
    pid = as_deploy.run(f"docker inspect -f '{{{{.State.Pid}}}}' {api}").stdout.strip()
    as_deploy.run(["kill", "-STOP", pid], root=True)
    try:
        paused = cli("fab", "-H", "lab", "status")
    finally:
        as_deploy.run(["kill", "-CONT", pid], root=True)
    assert paused.returncode == 1 and f"{api} is unhealthy" in paused.stdout + paused.stderr
    back = deploy("--version", "v2")
    assert back.returncode == 0, back.stdout + back.stderr


def db_container(as_deploy):
    return as_deploy.run("docker inspect -f '{{.Id}} {{.Config.Image}}' " + LAB.db_container).stdout.split()


def items(as_deploy):
    return as_deploy.run(f"docker exec {LAB.db_container} psql -U {LAB.db_user} -d {LAB.db_name} "
                         "-tAc 'SELECT count(*) FROM items'").stdout.strip()


def test_the_database_is_recreated_only_when_its_settings_change_and_the_operator_asks(variant, as_deploy, site):
    subprocess.run(["docker", "tag", "slipway-demo/postgres:17", "slipway-demo/postgres:17-again"], check=True)
    before, rows = db_container(as_deploy), items(as_deploy)
    serving = live_release(as_deploy)
    fab = variant(lambda data: data["database"].update(image="slipway-demo/postgres:17-again"))
    refused = fab("deploy", "--version", "v2")
    assert refused.returncode == 1
    assert "the database's own settings differ from the running one's" in refused.stderr
    assert "--restart-db" in refused.stderr and "Traceback" not in refused.stderr
    assert db_container(as_deploy) == before and live_release(as_deploy) == serving
    assert get(site, "/health")[0] == 200

    restarted = fab("deploy", "--version", "v2", "--restart-db")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    recreated = db_container(as_deploy)
    assert recreated[0] != before[0] and recreated[1] == "slipway-demo/postgres:17-again"
    assert items(as_deploy) == rows
    # Nothing changed since: a plain deploy leaves the database alone.
    again = fab("deploy", "--version", "v1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert db_container(as_deploy) == recreated

    rolled = fab("rollback", "--to", serving)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    # The release rolled back to names the old image; the database stays as it is.
    assert db_container(as_deploy) == recreated
    assert "slipway-demo/postgres:17\n" in as_deploy.run(f"grep -A1 '^  db:' {LAB.release_dir(serving)}/compose.yaml").stdout


def test_a_major_postgresql_change_is_refused_with_the_way_to_upgrade(variant, as_deploy, site, cli):
    fake = ('FROM slipway-demo/postgres:17\nUSER root\nRUN mkdir /opt/fake && printf \'#!/bin/sh\\necho '
            '"postgres (PostgreSQL) 18.1"\\n\' > /opt/fake/postgres && chmod 755 /opt/fake/postgres\nENV PATH=/opt/fake:$PATH\n')
    subprocess.run(["docker", "build", "-q", "-t", "slipway-demo/postgres:18-fake", "-"], input=fake, text=True,
                   check=True, capture_output=True)
    before = db_container(as_deploy)
    fab = variant(lambda data: data["database"].update(image="slipway-demo/postgres:18-fake"))
    refused = fab("deploy", "--version", "v2", "--restart-db")
    assert refused.returncode == 1
    assert f"cannot run on the data in volume {LAB.volume('pgdata')} (image: 18, data: 17" in refused.stderr
    assert "pg_dumpall" in refused.stderr and "Traceback" not in refused.stderr
    assert db_container(as_deploy) == before
    assert get(site, "/health")[0] == 200
    back = cli("fab", "-H", "lab", "deploy", "--restart-db")
    assert back.returncode == 0, back.stdout + back.stderr
    assert db_container(as_deploy)[1] == "slipway-demo/postgres:17"


def test_deploy_to_a_server_never_provisioned_stops_at_once_naming_provision(variant):
    result = variant(lambda data: data["server"].update(deploy_user="nobody-here"))("deploy", "--version", "v1")
    assert result.returncode == 1
    assert "run `fab -H lab provision` first" in result.stderr
    assert "ship images" not in result.stdout and "Traceback" not in result.stderr


def test_provision_takes_the_deploy_lock_before_anything_a_deploy_depends_on(cli, as_deploy):
    from fabfile.commands.lock import lock_command
    from fabfile.commands.shell import line
    as_deploy.run("ufw allow 5432/tcp >/dev/null", root=True)  # drift: the firewall step must run
    held = line(lock_command(LAB.layout, {"by": "ci@deployer", "command": "deploy v7", "since": "now"}))
    as_deploy.run(f"setsid sh -c {shlex.quote(f'sleep 3600 | {held}')} >/dev/null 2>&1 < /dev/null &")
    wait_for_lock_holder(as_deploy, "ci@deployer")
    try:
        refused = cli("fab", "-H", "lab", "provision")
        assert refused.returncode == 1
        assert "deploy lock is held by ci@deployer running `deploy v7`" in refused.stderr
        assert "5432/tcp" in as_deploy.run("ufw status", root=True).stdout
    finally:
        as_deploy.run("pkill -f '^sleep 3600$' || true")
    wait_for_free_lock(as_deploy)
    done = cli("fab", "-H", "lab", "provision")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5432/tcp" not in as_deploy.run("ufw status", root=True).stdout
    assert cli("fab", "-H", "lab", "lock.status").stdout.strip().endswith("unlocked")
