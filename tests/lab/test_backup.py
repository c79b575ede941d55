"""Backups on the deployed lab target: the round trip, the timer, damage and failures.

Runs after test_deploy.py on the same target (see tests/conftest.py): the demo
app serves and its PostgreSQL holds data.
"""

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fabfile.commands import backup as backup_commands, backup_records
from lab_names import LAB
from lab_site import get, post
from load import LoadLoop

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

SNAPSHOT_SQL = ("SELECT string_agg(format('%s=%s', c.relname, (xpath('/row/s/text()', query_to_xml("
                "format('SELECT count(*) || '':'' || coalesce(md5(string_agg(t::text, '','' ORDER BY t::text)), '''') "
                "AS s FROM %I t', c.relname), false, true, '')))[1]), ' ' ORDER BY c.relname) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname = 'public' AND c.relname <> 'worker_beats'")


# conftest.py's site: the demo app serving (deployed there when this file runs on its own).
pytestmark = pytest.mark.deploy_if_nothing_serves


def psql(as_deploy, sql):
    return as_deploy.run(["docker", "exec", LAB.db_container, "psql", "-X", "-U", LAB.db_user, "-d", LAB.db_name,
                          "-tAc", sql]).stdout.strip()


def snapshot(as_deploy, beats_upto=None):
    """Every public table's row count and content checksum. The demo worker adds a row to worker_beats every
    few seconds, so that table is compared up to a given id: the rows it had before the backup."""
    beats_upto = beats_upto or int(psql(as_deploy, "SELECT coalesce(max(id), 0) FROM worker_beats"))
    beats = psql(as_deploy, "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '') "
                            f"FROM worker_beats t WHERE id <= {beats_upto}")
    return f"{psql(as_deploy, SNAPSHOT_SQL)} worker_beats<={beats_upto}={beats}", beats_upto


def backup(cli, *args):
    return cli("fab", "-H", "lab", "backup", *args)


def records(as_deploy):
    return {r["id"]: r for r in map(json.loads, as_deploy.run(f"cat {LAB.backups}/*.json").stdout.splitlines())}


def start_db(as_deploy):
    """Start the database a test stopped. runc in the lab's Docker-in-Docker once failed a start with
    "read init-p: connection reset by peer" (a CI run), which then failed every later test: try again once."""
    db = LAB.db_container
    start = f"docker start {db} >/dev/null && until docker exec {db} pg_isready -q; do sleep 0.5; done"
    if as_deploy.run(start, check=False).failed:
        as_deploy.run(f"sleep 2; {start}")


def taken_id(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return re.search(r"backup (\d{8}-\d{6}):", result.stdout).group(1)


def test_backup_then_restore_brings_every_row_back_with_503_never_a_connection_error(cli, as_deploy, site, capsys):
    psql(as_deploy, "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text); "
                    "INSERT INTO notes (body) SELECT md5(n::text) FROM generate_series(1, 5000) n")
    before, beats = snapshot(as_deploy)
    made = backup(cli)
    backup_id = taken_id(made)
    assert re.search(rf"backup {backup_id}: [0-9.]+ [KMG]?B, sha256 [0-9a-f]{{64}}, \d+s", made.stdout), made.stdout
    record = records(as_deploy)[backup_id]
    assert record["outcome"] == "ok" and record["trigger"] == "manual"
    # The lab's PostgreSQL is 17: zstd, which pg_dump names in the dump's header too.
    assert record["compression"] == "zstd" and record["postgres_version"].startswith("17.")
    assert "zstd" in as_deploy.run(f"docker exec -i {LAB.db_container} pg_restore -l < {LAB.backups}/{backup_id}.dump "
                                   "| grep -i compression").stdout
    assert record["tables"]["public.notes"] == int(psql(as_deploy, "SELECT count(*) FROM notes"))
    modes = as_deploy.run(f"stat -c '%a %U' {LAB.backups}/{backup_id}.dump {LAB.backups}/{backup_id}.globals.sql "
                          f"{LAB.backups}/{backup_id}.json").stdout.split("\n")
    assert [m for m in modes if m] == ["600 deploy"] * 3
    assert as_deploy.run(f"ls -A {LAB.backups}/.incoming").stdout == ""

    psql(as_deploy, "DROP TABLE notes; DELETE FROM items")
    assert snapshot(as_deploy, beats)[0] != before
    with LoadLoop(site, clients=10) as load:
        restored = cli("fab", "-H", "lab", "backup.restore", backup_id, "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert snapshot(as_deploy, beats)[0] == before
    assert set(load.outcomes) <= {"200", "503"}, load.failures
    assert load.outcomes["503"] > 0, load.outcomes
    safety = re.search(r"before (?:is|are) backup (\d{8}-\d{6})", restored.stdout).group(1)
    assert records(as_deploy)[safety]["trigger"] == "pre-restore"
    with capsys.disabled():
        print(f"\n    restore: {dict(load.outcomes)} (200 before and after, 503 while the database was replaced)")


def redis_counter(site):
    status, body, _ = get(site, "/counter")
    assert status == 200, body
    return json.loads(body)["counter"]


def test_redis_joins_every_backup_and_restore_latest_puts_it_back_with_the_database(cli, as_deploy, site, capsys):
    """The issue's round trip: a backup, then a change to the Redis value and to the database, then `backup.restore
    latest --yes` (the backup, once verified, is the newest verified one): both come back to the backup's values,
    in the same Redis container, behind the maintenance page."""
    counted = post(site, "/counter", {})[1]["counter"]
    psql(as_deploy, "CREATE TABLE IF NOT EXISTS redis_notes (id serial PRIMARY KEY, body text); "
                    "INSERT INTO redis_notes (body) VALUES ('with the counter')")
    before, beats = snapshot(as_deploy)
    made = backup(cli)
    backup_id = taken_id(made)
    assert "pg_dump in the db container, redis's backup command" in made.stdout
    part = records(as_deploy)[backup_id]["accessories"]["redis"]
    path = f"{LAB.backups}/{part['file']}"
    assert part["file"] == f"{backup_id}.accessory-redis"
    assert as_deploy.run(f"stat -c '%a %U %s' {path}").stdout.split() == ["600", "deploy", str(part["size"])]
    assert as_deploy.run(f"sha256sum {path}").stdout.split()[0] == part["sha256"]
    # An RDB file, as redis-server writes them.
    assert as_deploy.run(f"head -c 5 {path}").stdout == "REDIS"

    verified = cli("fab", "-H", "lab", "backup.verify", backup_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "accessory redis loaded and healthy" in verified.stdout
    assert as_deploy.run(f"docker ps -aq --filter name={LAB.verify_container}").stdout == ""

    assert post(site, "/counter", {})[1]["counter"] == counted + 1
    psql(as_deploy, "DELETE FROM redis_notes")
    kept_container = as_deploy.run(f"docker inspect -f '{{{{.Id}}}}' {LAB.accessory_container('redis')}").stdout
    with LoadLoop(site, clients=10) as load:
        restored = cli("fab", "-H", "lab", "backup.restore", "latest", "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert f"latest is {backup_id}, the newest verified backup" in restored.stdout
    assert re.search(r"restore accessory redis, wait until healthy +changed", restored.stdout), restored.stdout
    assert redis_counter(site) == counted
    assert snapshot(as_deploy, beats)[0] == before
    assert as_deploy.run(f"docker inspect -f '{{{{.Id}}}}' {LAB.accessory_container('redis')}").stdout == kept_container
    # Until Redis writes its next snapshot, the file it loaded is the copy, readable by its own user.
    assert as_deploy.run(f"docker exec {LAB.accessory_container('redis')} stat -c %a /data/dump.rdb").stdout.strip() \
        == "644"
    assert set(load.outcomes) <= {"200", "503"}, load.failures
    # The safety backup holds what the restore replaced, Redis's value included.
    safety = re.search(r"the database and redis as they were before are backup (\d{8}-\d{6})", restored.stdout).group(1)
    assert records(as_deploy)[safety]["accessories"]["redis"]["size"] > 0
    with capsys.disabled():
        print(f"\n    restore with redis: {dict(load.outcomes)}")


def test_a_redis_dump_redis_cannot_load_fails_verify_though_its_checksum_matches(cli, as_deploy):
    backup_id = taken_id(backup(cli))
    part = f"{LAB.backups}/{backup_id}.accessory-redis"
    # Damaged before it was written, as a bad disk or a broken dump command would: the record's checksum matches.
    as_deploy.run(f"printf 'REDIS0011 not a snapshot' > {part}")
    digest = as_deploy.run(f"sha256sum {part}").stdout.split()[0]
    edit_record(as_deploy, backup_id, f'.accessories.redis.sha256 = "{digest}"')
    verified = cli("fab", "-H", "lab", "backup.verify", backup_id)
    assert verified.returncode == 1, verified.stdout
    assert f"backup {backup_id} FAILED verification: accessory redis: never healthy with its dump loaded" \
        in verified.stderr, verified.stderr
    assert records(as_deploy)[backup_id]["verified"]["outcome"] == "failed"
    assert as_deploy.run(f"docker ps -aq --filter name={LAB.verify_container}").stdout == ""


def test_a_backup_while_redis_is_stopped_fails_in_one_line_naming_it_and_keeps_no_part(cli, as_deploy):
    kept = {i for i, r in records(as_deploy).items() if r["outcome"] == "ok"}
    redis = LAB.accessory_container("redis")
    as_deploy.run(f"docker stop {redis}")
    try:
        failed = backup(cli)
    finally:
        as_deploy.run(f"docker start {redis} && until docker inspect -f '{{{{.State.Health.Status}}}}' {redis} "
                      "| grep -qx healthy; do sleep 0.5; done", timeout=60)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert f"accessory redis: its backup command in {redis} failed: " in failed.stderr, failed.stderr
    assert "is not running" in failed.stderr
    assert {i for i, r in records(as_deploy).items() if r["outcome"] == "ok"} == kept
    assert as_deploy.run(f"ls {LAB.backups}/ | grep -v '[.]json$' | sed 's/[.].*//' | sort -u").stdout.split() == sorted(kept)


def test_a_restore_of_a_database_with_a_63_character_name_replaces_it_and_drops_nothing_else(as_deploy, tmp_path):
    """PostgreSQL cuts names at 63 bytes: a temporary name made by appending to the live one was the live one."""
    name = "d" * 63
    admin = ["docker", "exec", "-i", LAB.db_container, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", LAB.db_user]
    work = as_deploy.run("mktemp -d").stdout.strip()
    try:
        as_deploy.run([*admin, "-d", "postgres", "-c", f'CREATE DATABASE "{name}"'])
        as_deploy.run([*admin, "-d", name, "-c", "CREATE TABLE t (v text); INSERT INTO t VALUES ('in the dump')"])
        as_deploy.run(f"docker exec {LAB.db_container} pg_dump -Fc -U {LAB.db_user} -d {name} > {work}/dump")
        as_deploy.run([*admin, "-d", name, "-c", "UPDATE t SET v = 'live'"])
        as_deploy.run(f"printf '%s\\n' BACKUPS_DIR={work} DB_CONTAINER={LAB.db_container} DB_USER={LAB.db_user} "
                      f"DB_NAME={name} LOCK_WAIT_SECONDS=5 > {work}/conf")
        # The script provision installed, with its library beside it, on a configuration of this test's own.
        restore = backup_commands.installed_script("restore.sh")
        restored = as_deploy.run(["sh", restore, f"{work}/conf", f"{work}/dump", ""], check=False)
        assert restored.ok, restored.stderr
        assert as_deploy.run([*admin, "-d", name, "-tAc", "SELECT v FROM t"]).stdout.strip() == "in the dump"
        databases = as_deploy.run([*admin, "-d", "postgres", "-tAc", "SELECT datname FROM pg_database"]).stdout.split()
        assert sorted(databases) == sorted(["postgres", "template0", "template1", LAB.db_name, name])
    finally:
        as_deploy.run([*admin, "-d", "postgres", "-c", f'DROP DATABASE IF EXISTS "{name}"'], check=False)
        as_deploy.run(["rm", "-rf", work])


def dumped_item_names(as_deploy, backup_id):
    data = as_deploy.run(f"docker exec -i {LAB.db_container} pg_restore -a -t items -f - "
                         f"< {LAB.backups}/{backup_id}.dump").stdout
    return {line.split("\t")[1] for line in data.splitlines() if "\t" in line}


def test_the_safety_backup_holds_every_write_the_app_acknowledged_before_the_restore(cli, as_deploy, site):
    """Taken while the app still wrote, it lost the writes of the seconds before maintenance."""
    backup_id = taken_id(backup(cli))
    acknowledged, stop = [], threading.Event()

    def writer():
        count = 0
        while not stop.is_set() and count < 5000:
            count += 1
            try:
                status = site.request("POST", "/items", body=json.dumps({"name": f"before-restore-{count}"}),
                                      headers={"Content-Type": "application/json"})[0]
            except OSError:
                continue
            if status == 503:
                return
            if status == 201:
                acknowledged.append(f"before-restore-{count}")

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(1)
    restored = cli("fab", "-H", "lab", "backup.restore", backup_id, "--yes")
    stop.set()
    thread.join(timeout=30)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    safety = re.search(r"before (?:is|are) backup (\d{8}-\d{6})", restored.stdout).group(1)
    assert acknowledged, "the writer got no write through before maintenance"
    missing = set(acknowledged) - dumped_item_names(as_deploy, safety)
    assert not missing, sorted(missing)


def test_the_timer_has_the_inventorys_schedule_and_its_service_takes_a_scheduled_backup(as_deploy, lab_deployment):
    schedule = lab_deployment.inventory.backup.schedule
    timer = LAB.backup_unit("backup", "timer")
    shown = as_deploy.run(f"systemctl show -p TimersCalendar --value {timer}").stdout
    assert f"OnCalendar={schedule} " in shown
    assert timer in as_deploy.run("systemctl list-timers --all").stdout
    before = set(records(as_deploy))
    as_deploy.run(f"systemctl start {LAB.backup_unit()}", root=True, timeout=600)
    new = [r for i, r in records(as_deploy).items() if i not in before]
    assert [(r["trigger"], r["outcome"]) for r in new] == [("scheduled", "ok")]


def test_verify_restores_into_a_throwaway_database_and_records_the_result(cli, as_deploy):
    result = cli("fab", "-H", "lab", "backup.verify", "latest")
    assert result.returncode == 0, result.stdout + result.stderr
    newest = max(i for i, r in records(as_deploy).items() if r["outcome"] == "ok")
    assert records(as_deploy)[newest]["verified"]["outcome"] == "ok"
    assert re.search(r"\d+ tables, \d+ rows match", result.stdout), result.stdout
    assert as_deploy.run(f"docker ps -aq --filter name={LAB.verify_container}").stdout == ""


def test_a_dump_with_one_byte_flipped_is_flagged_by_verify_and_refused_by_restore(cli, as_deploy):
    backup_id = taken_id(backup(cli))
    dump = f"{LAB.backups}/{backup_id}.dump"
    as_deploy.run(f"printf '\\377' | dd of={dump} bs=1 seek=100 conv=notrunc status=none")
    before, beats = snapshot(as_deploy)
    verified = cli("fab", "-H", "lab", "backup.verify", backup_id)
    assert verified.returncode == 1
    assert f"backup {backup_id} FAILED verification: checksum mismatch" in verified.stderr, verified.stderr
    assert records(as_deploy)[backup_id]["verified"]["outcome"] == "failed"
    refused = cli("fab", "-H", "lab", "backup.restore", backup_id, "--yes")
    assert refused.returncode == 1 and "the dump is damaged; nothing was changed" in refused.stderr, refused.stderr
    assert snapshot(as_deploy, beats)[0] == before


def edit_record(as_deploy, backup_id, jq_filter):
    """Rewrite backup BACKUP_ID's record on the server through jq (as backup.sh writes records: one line)."""
    as_deploy.run(["sh", "-c", 'jq -c "$2" "$1" > "$1.tmp" && mv "$1.tmp" "$1"', "-",
                   f"{LAB.backups}/{backup_id}.json", jq_filter])


def test_each_backup_takes_the_next_sequence_number_and_records_the_databases_size(cli, as_deploy):
    counted = int(as_deploy.run(f"cat {LAB.backups}/.sequence").stdout)
    backup_id = taken_id(backup(cli))
    record = records(as_deploy)[backup_id]
    assert record["seq"] == counted + 1 == int(as_deploy.run(f"cat {LAB.backups}/.sequence").stdout)
    size_now = int(psql(as_deploy, "SELECT pg_database_size(current_database())"))
    assert abs(record["database_size"] - size_now) < size_now / 5, (record["database_size"], size_now)
    assert re.search(rf"^{record['seq']} +{backup_id} ", cli("fab", "-H", "lab", "backup.list").stdout, re.M)


def test_latest_is_the_newest_verified_backup_and_never_one_whose_verify_failed(cli, as_deploy, tmp_path):
    verified = taken_id(backup(cli))
    assert cli("fab", "-H", "lab", "backup.verify", verified).returncode == 0
    newer = taken_id(backup(cli))

    def downloaded(wanted):
        into = tmp_path / f"{wanted}-{len(list(tmp_path.iterdir()))}"
        result = cli("fab", "-H", "lab", "backup.download", wanted, "--to", str(into))
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout, [p.name for p in into.glob("*.dump")]

    out, files = downloaded("latest")
    assert files == [f"{verified}.dump"]
    assert (f"latest is {verified}, the newest verified backup" in out
            and f"1 newer not verified yet, the newest {newer}" in out), out
    assert downloaded("latest-unverified")[1] == [f"{newer}.dump"]

    as_deploy.run(f"printf '\\377' | dd of={LAB.backups}/{newer}.dump bs=1 seek=100 conv=notrunc status=none")
    failed = cli("fab", "-H", "lab", "backup.verify", newer)
    assert failed.returncode == 1 and "FAILED verification" in failed.stderr, failed.stderr
    listed = cli("fab", "-H", "lab", "backup.list").stdout
    assert re.search(rf"^\d+ +{newer} .* FAILED \S+ .*ok; verify failed: checksum mismatch", listed, re.M), listed
    assert f"newest verified backup: {verified}, " in listed
    try:
        # The newest good backup is the verified one again (the newer one failed): latest-unverified takes it.
        assert downloaded("latest-unverified")[1] == [f"{verified}.dump"]
        restored = cli("fab", "-H", "lab", "backup.restore", "latest", "--yes")
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert f"restored from backup {verified} (" in restored.stdout
    finally:
        as_deploy.run(f"rm -f {LAB.backups}/{newer}.*")


def test_verify_refuses_in_one_line_before_restoring_when_dockers_data_root_lacks_the_room(cli, as_deploy):
    backup_id = taken_id(backup(cli))
    original = as_deploy.run(f"cat {LAB.backups}/{backup_id}.json").stdout
    since = as_deploy.run("date +%s").stdout.strip()
    try:
        edit_record(as_deploy, backup_id, ".database_size = 1000000000000000")
        refused = cli("fab", "-H", "lab", "backup.verify", backup_id)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in refused.stderr, refused.stderr
        # The lab's Redis dump counts too: its throwaway copy lands on the same root.
        assert re.search(rf"refused to verify {backup_id}: it restores to about 909\.5 TB \(the database's size when "
                         r"it was backed up, and its accessories' dumps\), so verify needs 1\.1 PB free on "
                         r"/var/lib/docker(/volumes)? .*; nothing was restored$", errors[0]), errors[0]
        # From before database sizes: five times the dump.
        edit_record(as_deploy, backup_id, "del(.database_size) | .size = 100000000000000")
        old = cli("fab", "-H", "lab", "backup.verify", backup_id)
        five_times = "(5 times its dump: the record has no database size, and its accessories' dumps)"
        assert old.returncode == 1 and five_times in old.stderr, old.stderr
        assert "verified" not in records(as_deploy)[backup_id] or records(as_deploy)[backup_id]["verified"] is None
        created = as_deploy.run(f"docker events --since {since} --until $(date +%s) --filter type=container "
                                "--filter event=create --format '{{.Actor.Attributes.name}}'").stdout.split()
        assert LAB.verify_container not in created
    finally:
        as_deploy.run(["sh", "-c", 'printf "%s" "$2" > "$1"', "-", f"{LAB.backups}/{backup_id}.json", original])


def test_a_backup_of_a_stopped_database_fails_in_one_line_and_shows_in_the_list(cli, as_deploy):
    kept = {i for i, r in records(as_deploy).items() if r["outcome"] == "ok"}
    as_deploy.run(f"docker stop {LAB.db_container}")
    try:
        failed = backup(cli)
    finally:
        start_db(as_deploy)
    assert failed.returncode == 1 and "failed" in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
    listed = cli("fab", "-H", "lab", "backup.list")
    assert re.search(r"manual .* failed: .*is not running", listed.stdout), listed.stdout
    assert {i for i, r in records(as_deploy).items() if r["outcome"] == "ok"} == kept
    assert as_deploy.run(f"ls {LAB.backups}/ | grep -v '[.]json$' | sed 's/[.].*//' | sort -u").stdout.split() == sorted(kept)


def test_a_deploy_that_runs_a_release_command_backs_up_first_and_says_how_to_go_back(cli, as_deploy):
    deployed = cli("fab", "-H", "lab", "deploy")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    backup_id = re.search(r"before its release command is backup (\d{8}-\d{6}); to go back: "
                          r"fab -H lab rollback && fab -H lab backup.restore \1", deployed.stdout).group(1)
    assert records(as_deploy)[backup_id]["trigger"] == "pre-deploy"
    assert deployed.stdout.index("pre-deploy backup") < deployed.stdout.index("release command in a new")


def test_after_the_clock_stepped_back_retention_keeps_the_newest_backup_by_sequence(cli, as_deploy):
    """Seven backups taken while the clock was decades ahead (seq 0: before every other) fill every day, week and
    month slot by their ids; the next real backup's id sorts before them all, its sequence number after."""
    folder = LAB.backups
    ahead = [f"2099{month:02d}15-030000" for month in range(1, 8)]
    as_deploy.run(f"cd {folder} && for id in {' '.join(ahead)}; do printf x > $id.dump; printf x > $id.globals.sql; "
                  'printf \'{"id": "%s", "seq": 0, "outcome": "ok", "trigger": "scheduled", "size": 1}\\n\' $id '
                  "> $id.json; done")
    try:
        new = taken_id(backup(cli))
        assert records(as_deploy)[new]["outcome"] == "ok"
        assert as_deploy.run(f"test -s {folder}/{new}.dump", check=False).exited == 0, "the newest backup was pruned"
        assert ahead[0] not in records(as_deploy), "the oldest by sequence goes first"
    finally:
        as_deploy.run(f"cd {folder} && rm -f {' '.join(f'{i}.dump {i}.globals.sql {i}.json' for i in ahead)}")


def test_retention_on_real_files_keeps_the_expected_month_and_only_after_a_good_backup(cli, as_deploy, lab_deployment):
    """Sixty nights of backups (records and files as backup.sh writes them), then one real backup prunes them."""
    folder = LAB.backups
    as_deploy.run(f"cd {folder} && for id in $(ls *.json | sed 's/[.]json$//'); do rm -f $id.*; done")
    nights = [f"2026{month:02d}{day:02d}-030000" for month, days in ((9, 30), (10, 31)) for day in range(1, days + 1)]
    nights.append("20261101-030000")
    failed_night = "20260915-040000"
    as_deploy.run(f"cd {folder} && for id in {' '.join(nights)}; do "
                  "printf x > $id.dump; printf x > $id.globals.sql; "
                  'printf \'{"id": "%s", "outcome": "ok", "trigger": "scheduled"}\\n\' $id > $id.json; done; '
                  f'printf \'{{"id": "{failed_night}", "outcome": "failed"}}\\n\' > {failed_night}.json')
    as_deploy.run(["docker", "stop", LAB.db_container])
    try:
        assert backup(cli).returncode == 1
        assert len(records(as_deploy)) == len(nights) + 2, "a failed backup must not prune anything"
    finally:
        start_db(as_deploy)
    new = taken_id(backup(cli))
    policy = lab_deployment.inventory.backup
    assert (policy.keep_last, policy.keep_daily, policy.keep_weekly, policy.keep_monthly) == (3, 7, 4, 6)
    kept = sorted(i for i, r in records(as_deploy).items() if r["outcome"] == "ok")
    # The new one (newest of its day, ISO week and month) and the 6 other newest days (2 of them also the
    # last 3); ISO weeks 44 (Sunday 1 Nov, kept already), 43 and 42 by their Sundays; months October (kept
    # already) and September (30th). Written with a test clock after November 2026.
    assert new > "20261101-030000"
    expected_days = ["20261101-030000", "20261031-030000", "20261030-030000", "20261029-030000",
                     "20261028-030000", "20261027-030000"]
    assert kept == sorted([new, *expected_days, "20261025-030000", "20261018-030000", "20260930-030000"])
    files = set(as_deploy.run(f"ls {folder}").stdout.split())
    found = records(as_deploy)
    assert files == {f"{i}.{kind}" for i in kept for kind in ("dump", "globals.sql", "json")} | {
        f"{i}.accessory-{name}" for i in kept for name in found[i].get("accessories", {})} | {
        f"{i}.json" for i, r in found.items() if r["outcome"] != "ok"}
    assert found[new]["accessories"]["redis"], "the real backup holds Redis's dump"
    assert failed_night not in records(as_deploy), "a failed attempt older than every kept backup is gone"


@pytest.fixture
def bulk(as_deploy):
    """A table big enough that a dump takes seconds and needs megabytes."""
    psql(as_deploy, "CREATE TABLE bulk AS SELECT n, md5(n::text) || md5((n * 7)::text) AS body "
                    "FROM generate_series(1, 1500000) n")
    yield
    psql(as_deploy, "DROP TABLE IF EXISTS bulk")


def good_backups(as_deploy):
    """Good backup id -> sha256 of its dump as it is on disk now."""
    good = [i for i, r in records(as_deploy).items() if r["outcome"] == "ok"]
    sums = as_deploy.run(["sh", "-c", 'cd "$1" && shift && sha256sum "$@"', "-", LAB.backups,
                          *(f"{i}.dump" for i in good)]).stdout
    return {name[:-len(".dump")]: digest for digest, name in (line.split() for line in sums.splitlines())}


def assert_failed_cleanly(result, as_deploy, cli, before, reason):
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "failed:" in result.stderr, result.stderr
    assert good_backups(as_deploy) == before, "every older backup is kept as it was"
    assert as_deploy.run(f"ls -A {LAB.backups}/.incoming").stdout == ""
    listed = cli("fab", "-H", "lab", "backup.list").stdout
    assert re.search(rf"manual .* failed: .*{reason}", listed), listed


def test_a_full_backups_filesystem_fails_the_backup_and_keeps_every_older_one(cli, as_deploy, bulk):
    folder = LAB.backups
    before = good_backups(as_deploy)
    # A small filesystem on the backups folder holding what is there now, with 256 KB to spare.
    as_deploy.run(f"set -e; rm -rf /run/backups-copy; cp -a {folder} /run/backups-copy; "
                  f"used=$(du -sk {folder} | cut -f1); "
                  f"mount -t tmpfs -o size=$((used + 256))k,mode=0750,uid=$(id -u deploy),gid=$(id -g deploy) "
                  f"slipway-full {folder}; cp -a /run/backups-copy/. {folder}/", root=True)
    try:
        result = backup(cli)
        assert_failed_cleanly(result, as_deploy, cli, before, "No space left on device")
    finally:
        as_deploy.run(f"umount {folder}; rm -rf /run/backups-copy", root=True)


def test_prune_applies_retention_on_a_full_backups_filesystem_without_taking_a_backup(cli, as_deploy, lab_deployment):
    folder = LAB.backups
    nights = [f"2025{month:02d}{day:02d}-030000" for month, days in ((9, 30), (10, 31)) for day in range(1, days + 1)]
    # A small filesystem on the backups folder: what is there now, sixty old nights from before sequence
    # numbers, and a filler (root's) that takes every byte left.
    as_deploy.run(f"set -e; rm -rf /run/backups-copy; cp -a {folder} /run/backups-copy; "
                  f"used=$(du -sk {folder} | cut -f1); "
                  f"mount -t tmpfs -o size=$((used + 2048))k,mode=0750,uid=$(id -u deploy),gid=$(id -g deploy) "
                  f"slipway-full {folder}; cp -a /run/backups-copy/. {folder}/", root=True)
    try:
        as_deploy.run(f"cd {folder} && for id in {' '.join(nights)}; do printf x > $id.dump; "
                      'printf x > $id.globals.sql; printf \'{"id": "%s", "outcome": "ok", "size": 1}\\n\' $id > $id.json; '
                      "done")
        as_deploy.run(f"dd if=/dev/zero of={folder}/.filler bs=64k status=none || true", root=True)
        assert as_deploy.run(f"df -P -k {folder} | awk 'NR == 2 {{ print $4 }}'").stdout.strip() == "0"
        before = records(as_deploy)
        policy = lab_deployment.inventory.backup
        ordered = backup_records.parse_records("\n".join(json.dumps(r) for r in before.values()))
        lines = [f"{r.id} {'verified' if r.verified else 'failed' if r.verification == 'failed' else 'unverified'}"
                 for r in ordered if r.ok]
        expected = subprocess.run(["sh", str(PROJECT / "fabfile" / "scripts" / "retention.sh"), str(policy.keep_last),
                                   str(policy.keep_daily), str(policy.keep_weekly), str(policy.keep_monthly)],
                                  input="\n".join(lines) + "\n", capture_output=True, text=True, check=True).stdout.split()
        assert set(nights) & set(expected), "the old nights are past the policy"

        dry = cli("fab", "-H", "lab", "backup.prune", "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert re.findall(r"would delete backup (\d{8}-\d{6}) ", dry.stdout) == expected
        assert records(as_deploy) == before
        pruned = cli("fab", "-H", "lab", "backup.prune")
        assert pruned.returncode == 0, pruned.stdout + pruned.stderr
        assert re.findall(r"\] deleted backup (\d{8}-\d{6}) ", pruned.stdout) == expected
        assert f"deleted {len(expected)} backups" in pruned.stdout
        after = records(as_deploy)
        assert set(after) == set(before) - set(expected), "no backup was taken, only the pruned ones went"
        files = set(as_deploy.run(f"ls {folder}").stdout.split())
        assert not {f"{i}.dump" for i in expected} & files
    finally:
        as_deploy.run(f"umount {folder}; rm -rf /run/backups-copy", root=True)


def test_a_dump_killed_midway_leaves_no_partial_file_and_says_so(cli, as_deploy, bulk):
    before = good_backups(as_deploy)
    running = subprocess.Popen([str(BIN / "fab"), "-H", "lab", "backup"], cwd=PROJECT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    killed = as_deploy.run("timeout 120 sh -c 'until pgrep -x pg_dump >/dev/null; do sleep 0.05; done; "
                           "sleep 0.5; pkill -9 -x pg_dump && echo killed'", root=True, timeout=130).stdout
    assert killed.strip() == "killed"
    out, err = running.communicate(timeout=300)
    result = subprocess.CompletedProcess(running.args, running.returncode, out, err)
    assert_failed_cleanly(result, as_deploy, cli, before, "")


def test_a_downloaded_backup_is_checked_here_and_restores_with_file(cli, as_deploy, tmp_path):
    before, beats = snapshot(as_deploy)
    backup_id = taken_id(backup(cli))
    downloaded = cli("fab", "-H", "lab", "backup.download", backup_id, "--to", str(tmp_path))
    assert downloaded.returncode == 0, downloaded.stdout + downloaded.stderr
    assert "sha256 checked" in downloaded.stdout
    dump = tmp_path / f"{backup_id}.dump"
    assert oct(dump.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / f"{backup_id}.accessory-redis").stat().st_mode & 0o777) == "0o600"
    assert json.loads((tmp_path / f"{backup_id}.json").read_text())["id"] == backup_id
    psql(as_deploy, "DROP TABLE notes")
    restored = cli("fab", "-H", "lab", "backup.restore", "file", "--file", str(dump), "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert snapshot(as_deploy, beats)[0] == before
    assert "accessories left as they are (a dump file holds the database only): redis" in restored.stdout
    assert "restore accessory" not in restored.stdout


def test_a_download_goes_by_default_into_a_private_folder_git_ignores(cli, as_deploy):
    backup_id = taken_id(backup(cli))
    folder = PROJECT / ".slipway" / "backups" / "lab"
    try:
        downloaded = cli("fab", "-H", "lab", "backup.download", backup_id)
        assert downloaded.returncode == 0, downloaded.stdout + downloaded.stderr
        assert downloaded.stdout.rstrip().endswith(str(folder / f"{backup_id}.dump"))
        for path in (PROJECT / ".slipway", PROJECT / ".slipway" / "backups", folder):
            assert oct(path.stat().st_mode & 0o777) == "0o700", path
        for kind in ("dump", "globals.sql", "json"):
            path = folder / f"{backup_id}.{kind}"
            assert oct(path.stat().st_mode & 0o777) == "0o600", path
            ignored = subprocess.run(["git", "-C", str(PROJECT), "check-ignore", "-q", str(path)])
            assert ignored.returncode == 0, f"git would add {path}"
    finally:
        for kind in ("dump", "globals.sql", "json"):
            (folder / f"{backup_id}.{kind}").unlink(missing_ok=True)


def test_a_restore_that_fails_leaves_the_database_as_it_was_and_the_app_serving(cli, as_deploy, site, tmp_path):
    before, beats = snapshot(as_deploy)
    not_a_dump = tmp_path / "not-a-dump.dump"
    not_a_dump.write_bytes(b"PGDMP" + b"\0" * 4096)
    failed = cli("fab", "-H", "lab", "backup.restore", "file", "--file", str(not_a_dump), "--yes")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "pg_restore failed, the database is as it was" in failed.stderr and "Traceback" not in failed.stderr
    assert snapshot(as_deploy, beats)[0] == before
    assert "maintenance off" in failed.stdout
    with LoadLoop(site, clients=2, max_seconds=2) as load:
        pass
    assert set(load.outcomes) == {"200"}, load.failures


def test_a_server_whose_installed_backup_files_differ_is_sent_to_provision_first(cli, as_deploy):
    as_deploy.run(f"echo KEEP_LAST=1 >> {LAB.backup_conf}", root=True)
    try:
        refused = backup(cli)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"{LAB.backup_conf} on the server differ" in refused.stderr
        assert "run `fab -H lab provision` first" in refused.stderr
    finally:
        assert cli("fab", "-H", "lab", "provision").returncode == 0
    assert taken_id(backup(cli))


def test_the_verify_container_has_no_network(as_deploy):
    verifying = subprocess.Popen([str(BIN / "fab"), "-H", "lab", "backup.verify", "latest"], cwd=PROJECT,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    network = as_deploy.run("timeout 120 sh -c 'until docker inspect -f {{.HostConfig.NetworkMode}} "
                            f"{LAB.verify_container} 2>/dev/null; do sleep 0.1; done'", timeout=130).stdout.strip()
    output = verifying.communicate(timeout=300)[0]
    assert verifying.returncode == 0, output
    assert network == "none"


def test_a_scheduled_backup_that_fails_fails_its_systemd_service(as_deploy):
    as_deploy.run(f"docker stop {LAB.db_container}")
    try:
        started = as_deploy.run(f"systemctl start {LAB.backup_unit()}", root=True, check=False, timeout=600)
    finally:
        start_db(as_deploy)
    assert started.exited != 0
    assert as_deploy.run(f"systemctl show -p Result --value {LAB.backup_unit()}").stdout.strip() == "exit-code"
    newest = records(as_deploy)[max(records(as_deploy))]
    assert (newest["trigger"], newest["outcome"]) == ("scheduled", "failed")
    as_deploy.run(f"systemctl reset-failed {LAB.backup_unit()}", root=True)


def on_backup_host(lab_target, command):
    return subprocess.run(["docker", "exec", lab_target["backup_host"]["container"], "sh", "-c", command],
                          capture_output=True, text=True, timeout=60)


def test_a_good_backup_is_copied_offsite_encrypted_and_listed(cli, as_deploy, lab_target):
    backup_id = taken_id(backup(cli))
    offsite = records(as_deploy)[backup_id]["offsite"]
    assert re.fullmatch(r"[0-9a-f]{8}", offsite["snapshot"]), offsite
    assert re.search(rf"^\S+ +{backup_id} .* yes \({offsite['snapshot']}\) ", cli("fab", "-H", "lab", "backup.list").stdout, re.M)
    repository = LAB.inventory.backup.offsite.sftp.path
    assert on_backup_host(lab_target, f"test -f {repository}/config").returncode == 0
    # pg_dump's custom format starts with PGDMP; the table's text is in the dump, readable, unless encrypted.
    assert on_backup_host(lab_target, f"grep -rl -e PGDMP -e CREATE {repository}").stdout == ""
    snapshots = json.loads(as_deploy.run(f"sh /usr/local/lib/slipway/offsite.sh {LAB.backup_conf} snapshots").stdout)
    assert any(f"backup-{backup_id}" in snap["tags"] for snap in snapshots)
    assert len(snapshots) <= len([r for r in records(as_deploy).values() if r["outcome"] == "ok"]) + 1


def test_an_unreachable_offsite_host_fails_the_backup_in_one_line_and_keeps_it_locally(cli, as_deploy, lab_target):
    network, target = lab_target["backup_host"]["network"], lab_target["container"]
    subprocess.run(["docker", "network", "disconnect", network, target], check=True)
    try:
        failed = backup(cli)
    finally:
        aliases = [arg for domain in lab_target["domains"] for arg in ("--alias", domain)]
        subprocess.run(["docker", "network", "connect", *aliases, network, target], check=True)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is good on the server, but its offsite copy failed" in errors[0], failed.stderr
    assert "Traceback" not in failed.stderr
    backup_id = re.search(r"backup (\d{8}-\d{6}) is good", errors[0]).group(1)
    record = records(as_deploy)[backup_id]
    assert record["outcome"] == "ok" and "error" in record["offsite"]
    assert as_deploy.run(f"test -s {LAB.backups}/{backup_id}.dump", check=False).exited == 0
    assert re.search(rf"^\S+ +{backup_id} .* FAILED .*offsite copy failed", cli("fab", "-H", "lab", "backup.list").stdout, re.M)


def test_a_backup_gone_from_the_server_comes_back_from_offsite(cli, as_deploy):
    psql(as_deploy, "CREATE TABLE IF NOT EXISTS offsite_notes (id serial PRIMARY KEY, body text); "
                    "INSERT INTO offsite_notes (body) SELECT md5(n::text) FROM generate_series(1, 2000) n")
    before, beats = snapshot(as_deploy)
    backup_id = taken_id(backup(cli))
    as_deploy.run(f"rm {LAB.backups}/{backup_id}.*")
    psql(as_deploy, "DROP TABLE offsite_notes")
    restored = cli("fab", "-H", "lab", "backup.restore", backup_id, "--from-offsite", "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert f"fetch {backup_id} from the offsite repository" in restored.stdout
    assert snapshot(as_deploy, beats)[0] == before
    assert records(as_deploy)[backup_id]["fetched"]["snapshot"]
    part = records(as_deploy)[backup_id]["accessories"]["redis"]
    assert as_deploy.run(f"sha256sum {LAB.backups}/{part['file']}").stdout.split()[0] == part["sha256"]
    assert "restore accessory redis" in restored.stdout
    missing = cli("fab", "-H", "lab", "backup.restore", "20200101-000000", "--from-offsite", "--yes")
    assert missing.returncode == 1
    assert f"no backup 20200101-000000 of {LAB.offsite_host} (inventory-lab) in the offsite repository" in missing.stderr


def test_the_offsite_check_runs_on_its_timer_and_records_its_result(as_deploy, lab_deployment):
    offsite = lab_deployment.inventory.backup.offsite
    shown = as_deploy.run(f"systemctl show -p TimersCalendar --value {LAB.backup_unit('backup-check', 'timer')}").stdout
    assert f"OnCalendar={offsite.check_schedule} " in shown
    as_deploy.run(f"systemctl start {LAB.backup_unit('backup-check')}", root=True, timeout=600)
    result = json.loads(as_deploy.run(f"cat {LAB.backups}/.offsite-check.json").stdout)
    assert result["outcome"] == "ok" and result["how"] == f"restic check --read-data-subset {offsite.check_subset}"


def test_backups_ping_the_monitor_at_start_success_and_failure_without_showing_its_url(cli, as_deploy, lab_target,
                                                                                       variant):
    address = lab_target["backup_host"]["address"]
    on_backup_host(lab_target, "pkill -f 'http.server 8099'; rm -f /tmp/pings.log")
    subprocess.run(["docker", "exec", "-d", lab_target["backup_host"]["container"], "sh", "-c",
                    f"python3 -m http.server 8099 --bind {address} >/tmp/pings.log 2>&1"], check=True)
    fab = variant(lambda data: data["backup"].update(ping_url_secret="PING_URL"),
                  {"PING_URL": f"http://{address}:8099/ping/tok3n"})
    try:
        provisioned = fab("provision")
        assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
        assert "tok3n" not in provisioned.stdout + provisioned.stderr
        assert taken_id(fab("backup"))
        as_deploy.run(f"docker stop {LAB.db_container}")
        try:
            assert fab("backup").returncode == 1
        finally:
            start_db(as_deploy)
        pings = re.findall(r'"GET (/ping/tok3n\S*) HTTP', on_backup_host(lab_target, "cat /tmp/pings.log").stdout)
        assert pings == ["/ping/tok3n/start", "/ping/tok3n", "/ping/tok3n/start", "/ping/tok3n/1"], pings
    finally:
        on_backup_host(lab_target, "pkill -f 'http.server 8099'")
        back = cli("fab", "-H", "lab", "provision")
        assert back.returncode == 0, back.stdout + back.stderr


def test_node_exporter_metrics_follow_every_backup_when_its_folder_exists(cli, as_deploy):
    as_deploy.run(f"mkdir -p {LAB.metrics_dir}", root=True)
    as_deploy.run(f"systemctl start {LAB.backup_unit()}", root=True, timeout=600)
    newest = records(as_deploy)[max(records(as_deploy))]
    labels = f'{{app="{LAB.app}"}}'
    metrics = as_deploy.run(f"cat {LAB.metrics_file}").stdout
    assert f'slipway_backup_last_size_bytes{labels} {newest["size"]}\n' in metrics
    assert f'slipway_backup_last_run_ok{labels} 1\n' in metrics
    assert as_deploy.run(f"stat -c %a {LAB.metrics_file}").stdout.strip() == "644"
    as_deploy.run(f"docker stop {LAB.db_container}")
    try:
        assert backup(cli).returncode == 1
    finally:
        start_db(as_deploy)
    metrics = as_deploy.run(f"cat {LAB.metrics_file}").stdout
    assert f'slipway_backup_last_run_ok{labels} 0\n' in metrics


def test_the_offsite_password_stays_in_its_0600_file_out_of_output_and_process_lists(cli, as_deploy, lab_deployment):
    password = lab_deployment.secret(lab_deployment.inventory.backup.offsite.password_secret)
    assert as_deploy.run(f"stat -c '%a %U' {LAB.backup_secrets}").stdout.strip() == "600 deploy"
    as_deploy.run("sh -c 'while :; do ps -eo args; sleep 0.05; done' > /tmp/slipway-ps.log 2>&1 & "
                  "echo $! > /tmp/slipway-ps.pid")
    outputs = [cli("fab", "-H", "lab", "backup"), cli("fab", "-H", "lab", "provision", "--dry-run"),
               cli("fab", "-H", "lab", "backup.list")]
    as_deploy.run("kill $(cat /tmp/slipway-ps.pid)")
    assert all(result.returncode == 0 for result in outputs), [r.stdout + r.stderr for r in outputs]
    seen = as_deploy.run("cat /tmp/slipway-ps.log").stdout
    assert "restic" in seen, "the sampler never saw restic run"
    assert password not in seen
    assert all(password not in result.stdout + result.stderr for result in outputs)


def test_verify_names_a_changed_secrets_file_without_showing_either_value(variant, lab_deployment):
    password = lab_deployment.secret(lab_deployment.inventory.backup.offsite.password_secret)
    fab = variant(lambda data: None, {"RESTIC_PASSWORD": "rotated-value-never-shown"})
    verified = fab("verify")
    assert verified.returncode == 1
    shown = verified.stdout + verified.stderr
    assert f"{LAB.backup_secrets} differs from what provision writes (it holds secrets: not shown)" in shown, shown
    assert password not in shown and "rotated-value-never-shown" not in shown


def test_offsite_retention_applies_the_servers_policy_to_the_snapshots(as_deploy, lab_deployment):
    backup = lab_deployment.inventory.backup
    snapshots = json.loads(as_deploy.run(f"sh /usr/local/lib/slipway/offsite.sh {LAB.backup_conf} snapshots").stdout)
    # This inventory's: snapshots from before they carried it are never forgotten by retention.
    ids = sorted(tag.removeprefix("backup-") for snap in snapshots if "inventory-lab" in snap["tags"]
                 for tag in snap["tags"] if tag.startswith("backup-"))
    assert len(ids) == len(set(ids)) >= 1
    # What is left is what the server's own policy keeps of it; restic keeps the oldest snapshot of a
    # period that is not yet full as well (newer versions do), so applying ours again deletes that one at most.
    again = subprocess.run(["sh", str(PROJECT / "fabfile" / "scripts" / "retention.sh"), str(backup.keep_last),
                            str(backup.keep_daily), str(backup.keep_weekly), str(backup.keep_monthly)],
                           input="\n".join(ids) + "\n", capture_output=True, text=True, check=True)
    assert again.stdout.split() in ([], [ids[0]]), (ids, again.stdout)
    days = {backup_id[:8] for backup_id in ids}
    assert len(ids) <= backup.keep_last + len(days), ids


OTHER_UPLOAD = r'''set -e
work=$1 kind=$2 id=$3 source=$4 conf=$5 backups=$6
mkdir -p "$work/$kind"
cp "$backups/$source.dump" "$work/$kind/$id.dump"
cp "$backups/$source.globals.sql" "$work/$kind/$id.globals.sql"
for part in "$backups/$source".accessory-*; do
  if [ -e "$part" ]; then cp "$part" "$work/$kind/$id.${part##*.}"; fi
done
jq -c --arg id "$id" '.id = $id | if .accessories then .accessories |= with_entries(.value.file = "\($id).accessory-\(.key)") else . end' \
  "$backups/$source.json" > "$work/$kind/$id.json"
grep -v -e '^BACKUPS_DIR=' -e '^OFFSITE_TAG=' -e '^KEEP_' "$conf" > "$work/$kind.conf"
printf 'BACKUPS_DIR=%s\nKEEP_LAST=1000\nKEEP_DAILY=0\nKEEP_WEEKLY=0\nKEEP_MONTHLY=0\n' "$work/$kind" >> "$work/$kind.conf"
if [ "$kind" = staging ]; then echo OFFSITE_TAG=inventory-staging >> "$work/$kind.conf"; fi
sh /usr/local/lib/slipway/offsite.sh "$work/$kind.conf" upload "$id" >/dev/null
'''

# restic on the lab's repository the way offsite.sh reaches it, to forget the snapshots of backups $2...
FORGET_SNAPSHOTS = r'''set -e
conf=$1; shift
setting() { sed -n "s/^$1=//p" "$conf" | tail -n 1; }
RESTIC_REPOSITORY=$(setting OFFSITE_REPOSITORY)
RESTIC_PASSWORD=$(sed -n 's/^RESTIC_PASSWORD=//p' "$(setting SECRETS_FILE)" | tail -n 1)
export RESTIC_REPOSITORY RESTIC_PASSWORD
r() {
  restic -o "sftp.command=ssh -i $(setting OFFSITE_SSH_KEY) -p $(setting OFFSITE_SSH_PORT) -o IdentitiesOnly=yes \
-o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$(setting OFFSITE_KNOWN_HOSTS) \
-o GlobalKnownHostsFile=/dev/null $(setting OFFSITE_SSH) -s sftp" "$@"
}
for id in "$@"; do
  for snapshot in $(r snapshots --json --host "$(setting OFFSITE_HOST)" --tag "backup-$id" | jq -r '.[].id'); do
    r forget "$snapshot" --prune >/dev/null
  done
done
'''


def test_offsite_snapshots_carry_the_inventory_and_another_inventorys_are_neither_fetched_nor_forgotten(cli, as_deploy):
    conf, offsite = LAB.backup_conf, ["sh", "/usr/local/lib/slipway/offsite.sh"]
    backup_id = taken_id(backup(cli))
    own = json.loads(as_deploy.run([*offsite, conf, "snapshots"]).stdout)
    assert any({"slipway", "inventory-lab", f"backup-{backup_id}"} <= set(snap["tags"]) for snap in own), own
    # Copies of that backup under other ids, uploaded to the same repository and host as staging's (another
    # inventory of the app) and as one from before inventory tags; their retention keeps every snapshot.
    others = {"staging": "20000101-000001", "untagged": "20000101-000002"}
    work = as_deploy.run("mktemp -d").stdout.strip()
    try:
        for kind, other in others.items():
            as_deploy.run(["sh", "-c", OTHER_UPLOAD, "-", work, kind, other, backup_id, conf, LAB.backups], timeout=300)

        def readable(conf_file=conf):
            return [set(snap["tags"]) for snap in json.loads(as_deploy.run([*offsite, conf_file, "snapshots"]).stdout)]

        assert any(f"backup-{others['untagged']}" in tags for tags in readable())
        assert not any(f"backup-{others['staging']}" in tags for tags in readable())
        foreign = as_deploy.run([*offsite, conf, "fetch", others["staging"]], check=False)
        assert foreign.exited == 2, foreign.stdout + foreign.stderr
        assert (f"no backup {others['staging']} of {LAB.offsite_host} (inventory-lab) in the offsite repository"
                in foreign.stderr)
        untagged = as_deploy.run([*offsite, conf, "fetch", others["untagged"]], check=False)
        assert (untagged.exited, untagged.stdout.strip()) == (0, others["untagged"]), untagged.stderr
        as_deploy.run(f"rm -f {LAB.backups}/{others['untagged']}.*")
        # The next backup's offsite retention leaves staging's and the untagged snapshot alone.
        taken_id(backup(cli))
        assert any(f"backup-{others['untagged']}" in tags for tags in readable())
        assert any(f"backup-{others['staging']}" in tags for tags in readable(f"{work}/staging.conf"))
    finally:
        as_deploy.run(f"rm -rf {work} {LAB.backups}/{others['untagged']}.*")
        as_deploy.run(["sh", "-c", FORGET_SNAPSHOTS, "-", conf, *others.values()], timeout=300)


# --- an append-only REST offsite repository: the server only adds; the operator prunes from here -----------

# restic on the target as offsite.sh runs it there: the server's own credentials (RESTIC_REPOSITORY in its 0600
# secrets file), the lab CA; restic's arguments follow the conf.
SERVER_RESTIC = r'''set -e
conf=$1; shift
setting() { sed -n "s/^$1=//p" "$conf" | tail -n 1; }
secret() { sed -n "s/^$1=//p" "$(setting SECRETS_FILE)" | tail -n 1; }
RESTIC_REPOSITORY=$(secret RESTIC_REPOSITORY)
RESTIC_PASSWORD=$(secret RESTIC_PASSWORD)
export RESTIC_REPOSITORY RESTIC_PASSWORD
exec restic --cacert "$(setting OFFSITE_CACERT)" "$@"
'''


def rest_offsite(lab_target, repository):
    """An edit of the lab inventory: its offsite copies go to REPOSITORY on the lab's REST server, append-only for
    the server (its own user on the append-only instance), the operator's instance for backup.prune-offsite."""
    rest = lab_target["rest_server"]

    def edit(data):
        data["backup"]["offsite"] = {
            "rest": {"url": f"{rest['url']}/{repository}", "user": rest["user"],
                     "password_secret": rest["password_secret"], "ca_bundle": rest["ca_bundle"],
                     "admin_url": f"{rest['admin_url']}/{repository}", "admin_user": rest["admin_user"],
                     "admin_password_secret": rest["admin_password_secret"]},
            "append_only": True, "password_secret": "RESTIC_PASSWORD"}
    return edit


def backup_ids(snapshots):
    return sorted(tag.removeprefix("backup-") for snap in snapshots for tag in snap["tags"] if tag.startswith("backup-"))


def test_an_append_only_rest_offsite_keeps_every_copy_from_the_server_and_the_operator_prunes_it_from_here(
        cli, as_deploy, lab_target, lab_deployment, variant):
    rest = lab_target["rest_server"]
    assert rest["admin_url"], "the lab's REST server publishes its admin instance on 127.0.0.1"
    passwords = [lab_deployment.secret(rest["password_secret"]), lab_deployment.secret(rest["admin_password_secret"])]
    # A repository of its own each run: retention then goes over this run's snapshots only.
    fab = variant(rest_offsite(lab_target, f"{LAB.app}-{time.strftime('%Y%m%d%H%M%S')}"))
    conf, offsite = LAB.backup_conf, ["sh", "/usr/local/lib/slipway/offsite.sh"]
    outputs = []
    try:
        outputs.append(fab("provision"))
        assert outputs[-1].returncode == 0, outputs[-1].stdout + outputs[-1].stderr
        assert "OFFSITE_APPEND_ONLY=yes" in as_deploy.run(["cat", conf]).stdout
        server_files = as_deploy.run(f"cat {LAB.backup_secrets} {conf}").stdout
        assert passwords[0] in server_files and passwords[1] not in server_files

        as_deploy.run("sh -c 'while :; do ps -eo args; sleep 0.05; done' > /tmp/slipway-ps.log 2>&1 & "
                      "echo $! > /tmp/slipway-ps.pid")
        ids = []
        try:
            for _ in range(5):
                outputs.append(fab("backup"))
                ids.append(taken_id(outputs[-1]))
                assert "append-only: backup.prune-offsite applies retention there" in outputs[-1].stdout
        finally:
            as_deploy.run("kill $(cat /tmp/slipway-ps.pid)")
        seen = as_deploy.run("cat /tmp/slipway-ps.log").stdout
        assert "restic" in seen and not any(password in seen for password in passwords)
        # The server's own retention went on (it keeps the newest few here); only the copies stay offsite.
        kept = records(as_deploy)
        for backup_id in (backup_id for backup_id in ids if backup_id in kept):
            copied = kept[backup_id]["offsite"]
            assert re.fullmatch(r"[0-9a-f]{8}", copied["snapshot"]), copied
            assert copied["retention"] == "append-only: backup.prune-offsite applies it"
        snapshots = json.loads(as_deploy.run([*offsite, conf, "snapshots"]).stdout)
        assert backup_ids(snapshots) == ids, "the server forgot none of its copies"

        # Whoever holds the server (its deploy user, its secrets file) cannot delete a copy.
        victim = next(snap for snap in snapshots if f"backup-{ids[0]}" in snap["tags"])
        refused = as_deploy.run(["sh", "-c", SERVER_RESTIC, "-", conf, "forget", victim["id"]], check=False,
                                timeout=300)
        # restic 0.18 reports the refused delete and may still exit 0: what counts is the copy still there.
        assert refused.exited != 0 or "unable to remove" in refused.stderr, refused.stdout + refused.stderr
        assert victim["id"] in {snap["id"] for snap in json.loads(as_deploy.run([*offsite, conf, "snapshots"]).stdout)}

        # From the operator's machine: the server's retention (as retention.sh applies it on the server; restic
        # from 0.17 on also keeps the oldest snapshot of a period not yet full).
        backup = lab_deployment.inventory.backup
        expected = subprocess.run(["sh", str(PROJECT / "fabfile" / "scripts" / "retention.sh"), str(backup.keep_last),
                                   str(backup.keep_daily), str(backup.keep_weekly), str(backup.keep_monthly)],
                                  input="\n".join(ids) + "\n", capture_output=True, text=True, check=True).stdout.split()
        assert expected, ids
        outputs.append(fab("backup.prune-offsite", "--dry-run"))
        dry = outputs[-1]
        assert dry.returncode == 0, dry.stdout + dry.stderr
        would = re.findall(r"would forget snapshot \S+ of backup (\S+) ", dry.stdout)
        assert would in (expected, expected[1:]), (would, expected, dry.stdout)
        assert backup_ids(json.loads(as_deploy.run([*offsite, conf, "snapshots"]).stdout)) == ids
        outputs.append(fab("backup.prune-offsite"))
        pruned = outputs[-1]
        assert pruned.returncode == 0, pruned.stdout + pruned.stderr
        forgot = re.findall(r"forgot snapshot \S+ of backup (\S+) ", pruned.stdout)
        assert forgot == would and "and pruned their data" in pruned.stdout, pruned.stdout
        left = backup_ids(json.loads(as_deploy.run([*offsite, conf, "snapshots"]).stdout))
        assert left == [backup_id for backup_id in ids if backup_id not in forgot]

        # A backup gone from the server comes back from the REST repository.
        psql(as_deploy, "CREATE TABLE IF NOT EXISTS rest_notes (id serial PRIMARY KEY, body text); "
                        "INSERT INTO rest_notes (body) SELECT md5(n::text) FROM generate_series(1, 1000) n")
        outputs.append(fab("backup"))
        newest = taken_id(outputs[-1])
        as_deploy.run(f"rm {LAB.backups}/{newest}.*")
        psql(as_deploy, "DROP TABLE rest_notes")
        outputs.append(fab("backup.restore", newest, "--from-offsite", "--yes"))
        restored = outputs[-1]
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert f"fetch {newest} from the offsite repository" in restored.stdout
        assert psql(as_deploy, "SELECT count(*) FROM rest_notes") == "1000"
        assert records(as_deploy)[newest]["fetched"]["snapshot"]
        assert not any(password in result.stdout + result.stderr for result in outputs for password in passwords)
    finally:
        psql(as_deploy, "DROP TABLE IF EXISTS rest_notes")
        back = cli("fab", "-H", "lab", "provision")
        assert back.returncode == 0, back.stdout + back.stderr
