"""Backups on the deployed lab target: the round trip, the timer, damage and failures.

Runs after test_deploy.py on the same target (see tests/conftest.py): the demo
app serves and its PostgreSQL holds data.
"""

import json
import re

import pytest
from load import LoadLoop

SNAPSHOT_SQL = ("SELECT string_agg(format('%s=%s', c.relname, (xpath('/row/s/text()', query_to_xml("
                "format('SELECT count(*) || '':'' || coalesce(md5(string_agg(t::text, '','' ORDER BY t::text)), '''') "
                "AS s FROM %I t', c.relname), false, true, '')))[1]), ' ' ORDER BY c.relname) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname = 'public'")


@pytest.fixture(scope="module")
def port(provisioned, cli):
    """The demo app serving (deployed here when this file runs on its own)."""
    result = cli("fab", "-H", "lab", "releases")
    if "*" not in result.stdout:
        deployed = cli("fab", "-H", "lab", "deploy")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    return provisioned["http_port"]


def psql(as_deploy, sql):
    return as_deploy.run(["docker", "exec", "demo-db-1", "psql", "-X", "-U", "demo", "-d", "demo", "-tAc", sql]).stdout.strip()


def snapshot(as_deploy):
    """Every public table's row count and content checksum."""
    return psql(as_deploy, SNAPSHOT_SQL)


def backup(cli, *args):
    return cli("fab", "-H", "lab", "backup", *args)


def records(as_deploy):
    return {r["id"]: r for r in map(json.loads, as_deploy.run("cat /srv/demo/backups/*.json").stdout.splitlines())}


def taken_id(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return re.search(r"backup (\d{8}-\d{6}):", result.stdout).group(1)


def test_backup_then_restore_brings_every_row_back_with_503_never_a_connection_error(cli, as_deploy, port, capsys):
    psql(as_deploy, "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text); "
                    "INSERT INTO notes (body) SELECT md5(n::text) FROM generate_series(1, 5000) n")
    before = snapshot(as_deploy)
    made = backup(cli)
    backup_id = taken_id(made)
    assert re.search(rf"backup {backup_id}: [0-9.]+ [KMG]?B, sha256 [0-9a-f]{{64}}, \d+s", made.stdout), made.stdout
    record = records(as_deploy)[backup_id]
    assert record["outcome"] == "ok" and record["trigger"] == "manual"
    assert record["tables"]["public.notes"] == int(psql(as_deploy, "SELECT count(*) FROM notes"))
    modes = as_deploy.run(f"stat -c '%a %U' /srv/demo/backups/{backup_id}.dump /srv/demo/backups/{backup_id}.globals.sql "
                          f"/srv/demo/backups/{backup_id}.json").stdout.split("\n")
    assert [m for m in modes if m] == ["600 deploy"] * 3
    assert as_deploy.run("ls -A /srv/demo/backups/.incoming").stdout == ""

    psql(as_deploy, "DROP TABLE notes; DELETE FROM items")
    assert snapshot(as_deploy) != before
    with LoadLoop(port, clients=10) as load:
        restored = cli("fab", "-H", "lab", "backup.restore", backup_id, "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert snapshot(as_deploy) == before
    assert set(load.outcomes) <= {"200", "503"}, load.failures
    assert load.outcomes["503"] > 0, load.outcomes
    safety = re.search(r"before is backup (\d{8}-\d{6})", restored.stdout).group(1)
    assert records(as_deploy)[safety]["trigger"] == "pre-restore"
    with capsys.disabled():
        print(f"\n    restore: {dict(load.outcomes)} (200 before and after, 503 while the database was replaced)")


def test_the_timer_has_the_inventorys_schedule_and_its_service_takes_a_scheduled_backup(as_deploy, lab_deployment):
    schedule = lab_deployment.inventory.backup.schedule
    shown = as_deploy.run("systemctl show -p TimersCalendar --value slipway-demo-backup.timer").stdout
    assert f"OnCalendar={schedule} " in shown
    assert "slipway-demo-backup.timer" in as_deploy.run("systemctl list-timers --all").stdout
    before = set(records(as_deploy))
    as_deploy.run("systemctl start slipway-demo-backup.service", root=True, timeout=600)
    new = [r for i, r in records(as_deploy).items() if i not in before]
    assert [(r["trigger"], r["outcome"]) for r in new] == [("scheduled", "ok")]


def test_verify_restores_into_a_throwaway_database_and_records_the_result(cli, as_deploy):
    result = cli("fab", "-H", "lab", "backup.verify")
    assert result.returncode == 0, result.stdout + result.stderr
    newest = max(i for i, r in records(as_deploy).items() if r["outcome"] == "ok")
    assert records(as_deploy)[newest]["verified"]["outcome"] == "ok"
    assert re.search(r"\d+ tables, \d+ rows match", result.stdout), result.stdout
    assert as_deploy.run("docker ps -aq --filter name=demo-backup-verify").stdout == ""


def test_a_dump_with_one_byte_flipped_is_flagged_by_verify_and_refused_by_restore(cli, as_deploy):
    backup_id = taken_id(backup(cli))
    dump = f"/srv/demo/backups/{backup_id}.dump"
    as_deploy.run(f"printf '\\377' | dd of={dump} bs=1 seek=100 conv=notrunc status=none")
    before = snapshot(as_deploy)
    verified = cli("fab", "-H", "lab", "backup.verify", backup_id)
    assert verified.returncode == 1
    assert f"backup {backup_id} FAILED verification: checksum mismatch" in verified.stderr, verified.stderr
    assert records(as_deploy)[backup_id]["verified"]["outcome"] == "failed"
    refused = cli("fab", "-H", "lab", "backup.restore", backup_id, "--yes")
    assert refused.returncode == 1 and "the dump is damaged; nothing was changed" in refused.stderr, refused.stderr
    assert snapshot(as_deploy) == before


def test_a_backup_of_a_stopped_database_fails_in_one_line_and_shows_in_the_list(cli, as_deploy):
    kept = {i for i, r in records(as_deploy).items() if r["outcome"] == "ok"}
    as_deploy.run("docker stop demo-db-1")
    try:
        failed = backup(cli)
    finally:
        as_deploy.run("docker start demo-db-1 && until docker exec demo-db-1 pg_isready -q; do sleep 0.5; done")
    assert failed.returncode == 1 and "failed" in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
    listed = cli("fab", "-H", "lab", "backup.list")
    assert re.search(r"manual .* failed: .*is not running", listed.stdout), listed.stdout
    assert {i for i, r in records(as_deploy).items() if r["outcome"] == "ok"} == kept
    assert as_deploy.run("ls /srv/demo/backups/ | grep -v '[.]json$' | sed 's/[.].*//' | sort -u").stdout.split() == sorted(kept)
