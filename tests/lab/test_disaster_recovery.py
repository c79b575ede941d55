"""Disaster recovery: the server is lost, and a new one gets the app and its data (the database's, Redis's)
back from the offsite copy. Runs last: it destroys the session's target and leaves a new one in its place."""

import json
import time
from pathlib import Path

from conftest import connect, run_cli
from fabfile import config
from fabfile.remote import Remote
from test_backup import psql, records, snapshot, taken_id
from lab_site import Site, get, post


def test_a_lost_server_is_rebuilt_from_nothing_and_its_data_restored_from_offsite(as_deploy, provisioned, capsys):
    psql(as_deploy, "CREATE TABLE IF NOT EXISTS drill (id serial PRIMARY KEY, body text); "
                    "INSERT INTO drill (body) SELECT md5(n::text) FROM generate_series(1, 3000) n")
    before, beats = snapshot(as_deploy)
    # Redis's counter too: its dump is in the same backup.
    counted = post(Site.of(json.loads(run_cli("inv", "lab.status", "--json").stdout)), "/counter", {})[1]["counter"]
    backup_id = taken_id(run_cli("fab", "-H", "lab", "backup"))
    assert records(as_deploy)[backup_id]["offsite"]["snapshot"]

    lost = run_cli("inv", "lab.down")
    assert lost.returncode == 0, lost.stdout + lost.stderr
    began = time.monotonic()
    up = run_cli("inv", "lab.up")
    assert up.returncode == 0, up.stdout + up.stderr
    fresh_target = time.monotonic()
    for step in (("fab", "-H", "lab", "provision"), ("inv", "lab.trust-offsite-key"), ("fab", "-H", "lab", "deploy"),
                 ("fab", "-H", "lab", "backup.restore", "latest", "--from-offsite", "--yes")):
        result = run_cli(*step)
        assert result.returncode == 0, " ".join(step) + "\n" + result.stdout + result.stderr
    restored = time.monotonic()

    rebuilt = config.load(Path(provisioned["inventory"]).parent, "lab")
    remote = Remote(connect(rebuilt, rebuilt.inventory.server.deploy_user), "lab")
    try:
        assert snapshot(remote, beats)[0] == before
        assert records(remote)[backup_id]["fetched"]
    finally:
        remote.close()
    site = Site.of(json.loads(run_cli("inv", "lab.status", "--json").stdout))
    assert get(site, "/version")[0] == 200
    assert json.loads(get(site, "/counter")[1])["counter"] == counted
    with capsys.disabled():
        print(f"\n    disaster recovery: new target in {fresh_target - began:.0f}s; from the fresh target to the site "
              f"serving the restored data (provision, deploy, restore --from-offsite) {restored - fresh_target:.0f}s")
