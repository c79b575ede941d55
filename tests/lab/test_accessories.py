"""Accessories on the provisioned lab target: the Redis the demo app keeps its counter in. A deploy never
changes one; an upgrade brings the new image first and the old container back when the new one fails; remove
keeps the data unless told. Runs after test_deploy.py (whose tests show that deploys, rollbacks and restarts
of the app leave the accessory alone) and ends with the accessory as the lab inventory has it."""

import json
import re

import pytest
from lab_names import LAB
from lab_site import get, post

pytestmark = [pytest.mark.usefixtures("site"), pytest.mark.deploy_if_nothing_serves]
REDIS = "redis"


def image_of(data, image):
    data["accessories"][REDIS]["image"] = image


def container(as_deploy):
    """The accessory's container: id, image, health."""
    return as_deploy.run(f"docker inspect -f '{{{{.Id}}}} {{{{.Config.Image}}}} {{{{.State.Health.Status}}}}' "
                         f"{LAB.accessory_container(REDIS)}").stdout.split()


def counter(site):
    status, body, _ = get(site, "/counter")
    assert status == 200, body
    return json.loads(body)["counter"]


def server_now(as_deploy) -> str:
    return as_deploy.run("date -u +%Y-%m-%dT%H:%M:%SZ").stdout.strip()


def docker_events(as_deploy, since: str) -> list[dict]:
    until = server_now(as_deploy)
    output = as_deploy.run(f"docker events --since {since} --until {until} --format '{{{{json .}}}}'").stdout
    return [json.loads(line) for line in output.splitlines()]


def test_a_deploy_that_changes_an_accessory_is_refused_in_one_line_and_changes_nothing(variant, as_deploy, site):
    # The image the next tests upgrade to is not on the server (a target this session did not make may have it).
    as_deploy.run("docker image rm slipway-demo/redis:2", check=False)
    before, releases = container(as_deploy), as_deploy.run(f"ls {LAB.releases}").stdout
    fab = variant(lambda data: image_of(data, "slipway-demo/redis:2"))
    dry_run = fab("deploy", "--dry-run")
    assert dry_run.returncode == 0, dry_run.stdout + dry_run.stderr
    assert "accessory.upgrade redis" in dry_run.stdout
    refused = fab("deploy")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert re.fullmatch(r"error: lab: the inventory changes accessory redis \(image\), and a deploy never changes a "
                        r"running accessory; run `fab -H lab accessory.upgrade redis` for that \(its data stays\); "
                        r"nothing was changed and \S+ still serves\n", refused.stderr), refused.stderr
    assert container(as_deploy) == before
    assert as_deploy.run(f"ls {LAB.releases}").stdout == releases
    assert "slipway-demo/redis:2" not in as_deploy.run("docker images --format '{{.Repository}}:{{.Tag}}'").stdout


def test_an_upgrade_brings_the_new_image_before_it_stops_the_old_container_and_keeps_the_data(variant, as_deploy,
                                                                                             site, capsys):
    written = post(site, "/counter", {})[1]["counter"]
    old_id, old_image, _ = container(as_deploy)
    since = server_now(as_deploy)
    upgraded = variant(lambda data: image_of(data, "slipway-demo/redis:2"))("accessory.upgrade", REDIS)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    new_id, new_image, health = container(as_deploy)
    assert (old_image, new_image, health) == ("slipway-demo/redis:1", "slipway-demo/redis:2", "healthy")
    assert new_id != old_id
    assert counter(site) == written
    events = docker_events(as_deploy, since)
    loaded = min(e["timeNano"] for e in events if e["Type"] == "image" and e["Action"] in ("load", "tag", "pull"))
    stopped = min(e["timeNano"] for e in events if e["Type"] == "container" and e["Action"] == "stop"
                  and e["Actor"]["ID"] == old_id)
    assert loaded < stopped
    gap = re.search(r"answered again after (\d+) ms", upgraded.stdout)
    assert gap, upgraded.stdout
    with capsys.disabled():
        print(f"\n    accessory.upgrade redis 1 -> 2: the image was on the server {(stopped - loaded) / 1e9:.1f} s "
              f"before the old container stopped; redis answered again {int(gap.group(1)) / 1000:.1f} s after")
    events = [json.loads(line) for line in as_deploy.run(f"cat {LAB.audit_log}").stdout.splitlines()]
    assert [e["event"] for e in events[-2:]] == ["accessory upgrade started", "accessory upgraded"]


def test_an_upgrade_to_an_image_that_never_gets_healthy_leaves_the_old_container_running(variant, as_deploy, site):
    before = container(as_deploy)
    written = counter(site)
    def broken(data):
        image_of(data, "slipway-demo/redis:broken")
        # Never healthy: the run waits this long for it before it brings the old container back.
        data["accessories"][REDIS]["healthcheck"]["timeout_seconds"] = 8

    failed = variant(broken)("accessory.upgrade", REDIS)
    assert failed.returncode == 1
    assert f"never got healthy, so {before[1]}" in failed.stderr and "runs again as it was" in failed.stderr
    assert "the old one runs again, healthy" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert container(as_deploy) == before
    assert counter(site) == written
    leftovers = as_deploy.run(f"docker ps -aq --filter label=slipway.accessory.name={REDIS}").stdout.split()
    assert len(leftovers) == 1


def test_the_inventorys_accessory_is_upgraded_back_listed_and_restarted(cli, as_deploy, site):
    written = counter(site)
    back = cli("fab", "-H", "lab", "accessory.upgrade", REDIS)
    assert back.returncode == 0, back.stdout + back.stderr
    listing = cli("fab", "-H", "lab", "accessory.list")
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"^  redis +\w{12} +slipway-demo/redis:1 +as the inventory +Up .*\(healthy\)$", listing.stdout,
                     re.M), listing.stdout
    before = container(as_deploy)
    restarted = cli("fab", "-H", "lab", "accessory.restart", REDIS)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert container(as_deploy) == before
    assert counter(site) == written


def test_the_on_call_commands_cover_the_accessory_by_name(cli, as_deploy, site):
    written = counter(site)
    status = cli("fab", "-H", "lab", "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    redis = next(c for c in json.loads(status.stdout)["containers"] if c["name"] == LAB.accessory_container(REDIS))
    assert (redis["accessory"], redis["state"], redis["health"]) == (True, "running", "healthy")
    logs = cli("fab", "-H", "lab", "logs", REDIS, "--tail", "50")
    assert logs.returncode == 0 and f"{LAB.accessory_container(REDIS)} | " in logs.stdout, logs.stdout + logs.stderr
    asked = cli("fab", "-H", "lab", "exec", REDIS, """sh -c 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli get counter'""")
    assert (asked.returncode, asked.stdout.strip()) == (0, str(written)), asked.stderr

    as_deploy.run(f"docker stop {LAB.accessory_container(REDIS)}")
    stopped = cli("fab", "-H", "lab", "status")
    assert stopped.returncode == 1
    assert "problem      accessory redis is exited: accessory.restart redis starts it again" in stopped.stdout
    assert cli("fab", "-H", "lab", "accessory.restart", REDIS).returncode == 0
    assert cli("fab", "-H", "lab", "status").returncode == 0
    assert counter(site) == written


def test_remove_keeps_the_data_unless_told_and_the_next_deploy_starts_the_accessory_again(cli, as_deploy, site):
    volume = LAB.volume("redis-data")
    kept = cli("fab", "-H", "lab", "accessory.remove", REDIS, "--yes")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert f"kept volume {volume}" in kept.stdout
    last = json.loads(as_deploy.run(f"tail -n 1 {LAB.audit_log}").stdout)
    assert (last["event"], last["accessory"], last["data"]) == ("accessory removed", REDIS, "kept")
    assert as_deploy.run(f"docker container inspect {LAB.accessory_container(REDIS)}", check=False).failed
    assert as_deploy.run(f"docker volume inspect {volume}", check=False).ok
    removed = cli("fab", "-H", "lab", "accessory.remove", REDIS, "--yes", "--delete-data")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert f"removed volume {volume}" in removed.stdout
    assert as_deploy.run(f"docker volume inspect {volume}", check=False).failed

    deployed = cli("fab", "-H", "lab", "deploy")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    # Its pre-deploy backup has no Redis to dump yet, and says so.
    assert re.search(r"pre-deploy backup .* changed .*; accessory redis skipped: it has no container "
                     rf"{LAB.accessory_container(REDIS)} \(the next deploy starts it\)", deployed.stdout), deployed.stdout
    assert re.search(r"accessories redis up and healthy +changed .* redis created", deployed.stdout), deployed.stdout
    assert container(as_deploy)[1:] == ["slipway-demo/redis:1", "healthy"]
    assert counter(site) == 0
