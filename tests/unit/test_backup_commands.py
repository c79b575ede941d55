"""Backups as data: the retention policy, the installed scripts and files, their timers; no server."""

import hashlib
import json
import re
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from backup_sandbox import CACHE, PROJECT, SECRET, fake_bin, local_conf, run_script, shop_inventory, write_records
from fabfile import config
from fabfile.commands import backup, backup_records, provision, provision_plan, shell
from fabfile.commands.layout import layout_of
from fabfile.errors import ConfigError


@pytest.fixture
def inventory(tmp_path):
    return shop_inventory(tmp_path)


def retention(backups, last=3, daily=7, weekly=4, monthly=6):
    """The ids retention.sh deletes (the script itself, run here: the server runs the same file). BACKUPS: oldest
    first by sequence number, each an id (unverified) or (id, verified|unverified|failed)."""
    lines = [" ".join(b) if isinstance(b, tuple) else b for b in backups]
    result = subprocess.run(["sh", str(shell.SCRIPTS_DIR / "retention.sh"), str(last), str(daily), str(weekly),
                             str(monthly)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    return result.stdout.split()


def daily_ids(first, days, hour=3):
    start = datetime(*first, hour, 0, tzinfo=timezone.utc)
    return [(start + timedelta(days=n)).strftime("%Y%m%d-%H%M%S") for n in range(days)]


def test_a_simulated_month_of_daily_backups_keeps_days_weeks_and_months():
    # 2026-10-01 .. 2026-11-30: 61 nightly backups.
    ids = daily_ids((2026, 10, 1), 61)
    deleted = set(retention(ids, last=2, daily=7, weekly=4, monthly=3))
    kept = sorted(set(ids) - deleted)
    assert kept == [
        "20261031-030000",  # October's newest (monthly)
        "20261115-030000", "20261122-030000",  # newest of ISO weeks 46 and 47 (Sundays)
        *[f"202611{day}-030000" for day in range(24, 31)],  # the last 7 days; week 48's Sunday and week 49
    ]


def test_retention_keeps_the_newest_of_a_day_and_always_the_newest_backup():
    ids = ["20261123-030000", "20261123-120000", "20261123-180000"]
    assert retention(ids, last=1, daily=1, weekly=0, monthly=0) == ["20261123-030000", "20261123-120000"]
    assert retention(ids[:1], last=1, daily=0, weekly=0, monthly=0) == []


def test_retention_ignores_what_is_not_a_backup_id():
    assert retention(["20261123-030000", "../../etc", "", "20261123-03000"], last=1, daily=0, weekly=0, monthly=0) == []


def test_retention_goes_by_sequence_so_a_clock_that_stepped_back_never_costs_the_newest_backup():
    # The server's clock stepped back three weeks before the last backup: its id sorts oldest, its sequence newest.
    in_sequence = ["20261120-030000", "20261121-030000", "20261122-030000", "20261101-030000"]
    assert retention(in_sequence, last=1, daily=1, weekly=0, monthly=0) == in_sequence[:3]


def test_a_backup_whose_verify_failed_fills_no_place_and_is_never_the_only_one_kept():
    backups = [("20261121-030000", "unverified"), ("20261122-030000", "verified"), ("20261123-030000", "failed")]
    # The failed one is the newest (kept while it is among the newest KEEP_LAST), but a good one is kept beside it.
    assert retention(backups, last=1, daily=0, weekly=0, monthly=0) == ["20261121-030000"]
    # It takes no day's place either: that goes to the newest good backup of the day.
    same_day = [("20261123-010000", "unverified"), ("20261123-020000", "unverified"), ("20261123-030000", "failed"),
                ("20261124-030000", "unverified")]
    assert retention(same_day, last=1, daily=2, weekly=0, monthly=0) == ["20261123-010000", "20261123-030000"]
    # Past the newest KEEP_LAST, it goes.
    older = [("20261120-030000", "failed"), "20261121-030000", "20261122-030000", "20261123-030000"]
    assert retention(older, last=2, daily=0, weekly=0, monthly=0) == ["20261120-030000", "20261121-030000"]


def test_the_newest_verified_backup_is_never_pruned():
    backups = [("20261101-030000", "verified"), ("20261102-030000", "verified"), "20261110-030000", "20261111-030000"]
    assert retention(backups, last=1, daily=1, weekly=0, monthly=0) == ["20261101-030000", "20261110-030000"]


# docker as backup.sh and verify_backup.sh use it: psql answers the snapshot query (with the database's size) and
# the row counts; pg_dump and pg_dumpall print a little; info names the data root; run fails (nothing to start).
FAKE_DOCKER = r'''echo "$*" >> "$FAKE_LOG"
case $1 in
info) echo "$FAKE_DOCKER_ROOT" ;;
exec)
  shift; [ "$1" = -i ] && shift; shift
  case $1 in
  psql) while IFS= read -r line; do
          case $line in
          *pg_export_snapshot*) echo "00000003-00000002-1|17.4|$FAKE_DATABASE_SIZE" ;;
          *json_object_agg*) echo '{"public.items": 3}' ;;
          esac
        done ;;
  pg_dump) printf 'PGDMP a fake dump\n' ;;
  pg_dumpall) printf -- '-- roles\n' ;;
  sh) if [ -n "${FAKE_ACCESSORY_DOWN:-}" ]; then echo "Error response from daemon: container is not running" >&2; exit 1; fi
      [ -n "${FAKE_ACCESSORY_EMPTY:-}" ] || printf 'REDIS0011 a fake snapshot' ;;
  esac ;;
run) exit 1 ;;
container) [ -z "${FAKE_ACCESSORY_MISSING:-}" ] || exit 1 ;;
esac
exit 0
'''


def test_a_backup_after_the_clock_stepped_back_gets_the_next_sequence_number_and_is_the_one_kept(tmp_path, inventory):
    conf, folder = local_conf(tmp_path, inventory, KEEP_LAST=1, KEEP_DAILY=1, KEEP_WEEKLY=0, KEEP_MONTHLY=0)
    # Two backups taken while the clock was decades ahead, and one fetched from offsite with a higher number
    # than the counter (fetching does not move it).
    write_records(folder, [{"id": "20991231-010000", "seq": 3, "outcome": "ok", "size": 10},
                           {"id": "20991231-020000", "seq": 5, "outcome": "ok", "size": 10},
                           {"id": "20200101-000000", "seq": 9, "outcome": "ok", "size": 10, "fetched": {}}])
    (folder / ".sequence").write_text("7\n")
    bin_dir = fake_bin(tmp_path, docker=FAKE_DOCKER)
    result = run_script("backup.sh", conf, "manual", bin_dir=bin_dir,
                        env={"FAKE_LOG": tmp_path / "docker.log", "FAKE_DATABASE_SIZE": "4242424"})
    assert result.returncode == 0, result.stderr
    new_id = result.stdout.split()[-4]
    record = json.loads((folder / f"{new_id}.json").read_text())
    assert (record["seq"], record["outcome"], record["database_size"]) == (10, "ok", 4242424)
    assert (folder / ".sequence").read_text() == "10\n"
    # Retention kept the new backup (the newest by sequence, though its id sorts before 2099), and only it.
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == \
        sorted(f"{new_id}.{kind}" for kind in ("dump", "globals.sql", "json"))


def test_an_accessorys_dump_joins_the_backup_with_its_checksum_and_a_failed_one_fails_the_whole_backup(tmp_path):
    inventory = shop_inventory(tmp_path, accessories={"cache": CACHE})
    conf, folder = local_conf(tmp_path, inventory)
    bin_dir, log = fake_bin(tmp_path, docker=FAKE_DOCKER), tmp_path / "docker.log"
    made = run_script("backup.sh", conf, "manual", bin_dir=bin_dir, env={"FAKE_LOG": log, "FAKE_DATABASE_SIZE": "1"})
    assert made.returncode == 0, made.stderr
    backup_id = made.stdout.split()[-4]
    part = folder / f"{backup_id}.accessory-cache"
    assert part.read_bytes() == b"REDIS0011 a fake snapshot" and oct(part.stat().st_mode & 0o777) == "0o600"
    record = json.loads((folder / f"{backup_id}.json").read_text())
    assert record["accessories"]["cache"] == {"file": part.name, "sha256": hashlib.sha256(part.read_bytes()).hexdigest(),
                                              "size": part.stat().st_size, "seconds": 0}
    # The words of the backup command, as the inventory has them, in the accessory's own container.
    assert "exec shop-cache sh -c exec redis-cli --rdb -\n" in log.read_text()

    failed = run_script("backup.sh", conf, "manual", bin_dir=bin_dir,
                        env={"FAKE_LOG": log, "FAKE_DATABASE_SIZE": "1", "FAKE_ACCESSORY_DOWN": "1"})
    assert failed.returncode == 1
    assert failed.stderr.strip().endswith("accessory cache: its backup command in shop-cache failed: Error response "
                                          "from daemon: container is not running")
    failed_id = next(r["id"] for r in map(json.loads, (p.read_text() for p in folder.glob("*.json")))
                     if r["outcome"] == "failed")
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(failed_id)) == [f"{failed_id}.json"]
    assert list((folder / ".incoming").iterdir()) == []
    empty = run_script("backup.sh", conf, "manual", bin_dir=bin_dir,
                       env={"FAKE_LOG": log, "FAKE_DATABASE_SIZE": "1", "FAKE_ACCESSORY_EMPTY": "1"})
    assert empty.returncode == 1
    assert empty.stderr.strip().endswith("accessory cache: its backup command in shop-cache failed: it wrote nothing")
    # Removed, or not started yet: the backup of the rest is good, and says what it skipped.
    skipped = run_script("backup.sh", conf, "manual", bin_dir=bin_dir,
                         env={"FAKE_LOG": log, "FAKE_DATABASE_SIZE": "1", "FAKE_ACCESSORY_MISSING": "1"})
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stderr == "accessory cache skipped: it has no container shop-cache (the next deploy starts it)\n"
    record = json.loads((folder / f"{skipped.stdout.split()[-4]}.json").read_text())
    assert (record["outcome"], record["accessories_skipped"], "accessories" in record) == ("ok", ["cache"], False)


# docker as restore_accessory.sh uses it: what it is told, and what it reads on stdin, go to FAKE_LOG; cp reads its tar;
# the container is healthy once started.
FAKE_ACCESSORY_DOCKER = r'''echo "$*" >> "$FAKE_LOG"
case $1 in
exec) printf 'stdin: %s\n' "$(cat)" >> "$FAKE_LOG" ;;
cp) tar -tvf - >> "$FAKE_LOG" ;;
inspect) echo running/healthy ;;
esac
exit 0
'''


@pytest.mark.parametrize("restore", ["files", "load-all --from-stdin"])
def test_an_accessory_is_restored_as_its_backup_says_and_waited_for(tmp_path, restore):
    inventory = shop_inventory(tmp_path, accessories={"cache": {**CACHE, "backup": {**CACHE["backup"], "restore": restore}}})
    conf, folder = local_conf(tmp_path, inventory)
    (folder / "20261120-030000.accessory-cache").write_text("REDIS0011 the backup's")
    (folder / "20261120-030000.accessory-cache").chmod(0o600)
    log = tmp_path / "docker.log"
    restored = run_script("restore_accessory.sh", conf, "cache", folder / "20261120-030000.accessory-cache",
                          bin_dir=fake_bin(tmp_path, docker=FAKE_ACCESSORY_DOCKER), env={"FAKE_LOG": log})
    assert (restored.returncode, restored.stdout) == (0, "restored accessory cache\n"), restored.stderr
    told = log.read_text().splitlines()
    if restore == "files":
        assert told[0] == "stop --time 30 shop-cache"  # its stop_grace_seconds
        # Through a tar of a hard link named as the file, mode 0644, into the file's folder.
        assert told[1] == "cp - shop-cache:/data" and told[2].startswith("-rw-r--r-- ") and told[2].endswith(" dump.rdb")
        assert told[3] == "start shop-cache"
    else:
        assert told[:2] == ["exec -i shop-cache load-all --from-stdin", "stdin: REDIS0011 the backup's"]
        assert "stop" not in " ".join(told)
    assert told[-1].startswith("inspect -f ") and told[-1].endswith(" shop-cache")
    assert not (folder / ".incoming").exists() or list((folder / ".incoming").iterdir()) == []


def test_the_configuration_lists_the_accessories_with_a_backup_only_when_there_are_some(tmp_path, inventory):
    assert "ACCESSORIES=" not in backup.conf_text(inventory)
    loaded = {**CACHE, "backup": {"command": "dump-all", "restore": "load-all --from-stdin"}}
    with_cache = shop_inventory(tmp_path, accessories={"cache": CACHE, "queue": {**CACHE, "backup": None},
                                                       "search": loaded})
    entries = json.loads(next(line for line in backup.conf_text(with_cache).splitlines()
                              if line.startswith("ACCESSORIES="))[len("ACCESSORIES="):])
    assert [entry["name"] for entry in entries] == ["cache", "search"]
    cache, search = entries
    assert (search["backup"], search["restore"], search["file"]) == (["dump-all"], ["load-all", "--from-stdin"], "")
    assert (cache["container"], cache["backup"], cache["restore"], cache["file"]) == (
        "shop-cache", ["sh", "-c", "exec redis-cli --rdb -"], [], "/data/dump.rdb")
    # The throwaway copy verify loads the dump into: no network (its check runs inside), a fresh volume where the
    # accessory writes, its environment and health check.
    scratch = cache["scratch"]
    assert scratch[:4] == ["--network", "none", "--env-file", "/srv/shop/shared/accessories/cache.env"]
    assert scratch[4:6] == ["--volume", "/data"] and "--health-cmd" in scratch and "--label" not in scratch


def test_verify_refuses_in_one_line_before_restoring_when_dockers_data_root_lacks_the_room(tmp_path, inventory):
    conf, folder = local_conf(tmp_path, inventory)
    write_records(folder, [
        {"id": "20991231-030000", "seq": 1, "outcome": "ok", "size": 10, "database_size": 1000},
        {"id": "20261122-030000", "seq": 2, "outcome": "ok", "size": 10, "database_size": 10 ** 15},
        {"id": "20261123-030000", "seq": 3, "outcome": "ok", "size": 10, "verified": {"outcome": "failed"}},
        {"id": "20261120-030000", "outcome": "ok", "size": 10 ** 14},  # from before database sizes
        {"id": "20261119-030000", "outcome": "ok", "size": 10, "database_size": 1000,
         "accessories": {"cache": {"file": "20261119-030000.accessory-cache", "size": 10 ** 15}}},
    ])
    log = tmp_path / "docker.log"
    bin_dir = fake_bin(tmp_path, docker=FAKE_DOCKER)
    env = {"FAKE_LOG": str(log), "FAKE_DOCKER_ROOT": str(tmp_path)}
    # latest: the newest by sequence (not by id) whose verify has not failed.
    refused = run_script("verify_backup.sh", conf, "latest", env=env, bin_dir=bin_dir)
    assert refused.returncode == backup.NO_SPACE_EXIT, refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    assert re.fullmatch(
        r"refused to verify 20261122-030000: it restores to about 909\.5 TB \(the database's size when it was "
        r"backed up\), so verify needs 1\.1 PB free on (\S+) \(Docker's data root, beside the running database; 125% "
        r"of that and 1024 MB to spare\), which has [0-9.]+ [KMGT]?B; nothing was restored\n", refused.stderr)
    assert log.read_text().split("\n")[0] == "info -f {{.DockerRootDir}}" and " run " not in log.read_text()
    assert "verified" not in json.loads((folder / "20261122-030000.json").read_text())
    old = run_script("verify_backup.sh", conf, "20261120-030000", env=env, bin_dir=bin_dir)
    assert old.returncode == backup.NO_SPACE_EXIT
    assert "it restores to about 454.7 TB (5 times its dump: the record has no database size)" in old.stderr
    # The accessories' throwaway containers hold their dumps there too.
    with_cache = run_script("verify_backup.sh", conf, "20261119-030000", env=env, bin_dir=bin_dir)
    assert with_cache.returncode == backup.NO_SPACE_EXIT
    assert "it restores to about 909.5 TB (the database's size when it was backed up, and its accessories' dumps)" \
        in with_cache.stderr
    # Room enough (no spare gigabyte asked here): verify goes on to start the throwaway database.
    small_conf, _ = local_conf(tmp_path, inventory, VERIFY_RESERVE_MB=0)
    started = run_script("verify_backup.sh", small_conf, "20991231-030000", env=env, bin_dir=bin_dir)
    assert started.returncode not in (0, backup.NO_SPACE_EXIT) and "\nrun -d --rm --name shop-backup-verify" in log.read_text()


def test_prune_applies_retention_by_sequence_now_deleting_only(tmp_path, inventory):
    conf, folder = local_conf(tmp_path, inventory, KEEP_LAST=2, KEEP_DAILY=0, KEEP_WEEKLY=0, KEEP_MONTHLY=0)
    records = [
        # From before sequence numbers: older than any numbered one, whatever their ids say.
        {"id": "20990101-030000", "outcome": "ok", "size": 1000},
        {"id": "20990102-030000", "outcome": "failed", "error": "disk full"},
        {"id": "20261120-030000", "seq": 1, "outcome": "ok", "size": 2000,
         "accessories": {"cache": {"file": "20261120-030000.accessory-cache", "size": 500}}},
        {"id": "20261121-030000", "seq": 2, "outcome": "ok", "size": 3000, "verified": {"outcome": "ok"}},
        {"id": "20261122-030000", "seq": 3, "outcome": "ok", "size": 4000},
        {"id": "20261123-030000", "seq": 4, "outcome": "ok", "size": 5000},
    ]
    write_records(folder, records)
    (folder / ".incoming").mkdir()
    (folder / ".incoming" / "20261124-030000.dump").write_text("half")
    (folder / "20261124-030000.dump").write_text("a dump without a good record")
    for backup_id in ("20261120-030000", "20261122-030000", "20261124-030000"):
        (folder / f"{backup_id}.accessory-cache").write_text("an accessory's dump")
    (folder / ".lock").touch()
    before = sorted(p.name for p in folder.rglob("*"))
    # No temporary file anywhere: a full disk has no room for one.
    env = {"TMPDIR": str(tmp_path / "no-such-folder")}
    dry = run_script("prune.sh", conf, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert sorted(p.name for p in folder.rglob("*")) == before
    pruned = backup_records.parse_prune(dry.stdout)
    assert pruned.backups == [("20990101-030000", 1000), ("20261120-030000", 2500)]
    assert pruned.records == ["20990102-030000"]
    assert pruned.leftovers == [".incoming/20261124-030000.dump", "20261124-030000.dump",
                                "20261124-030000.accessory-cache"]
    assert pruned.kept == 3  # the newest two, and the newest verified one
    done = run_script("prune.sh", conf, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == dry.stdout
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(
        [f"{i}.{kind}" for i in ("20261121-030000", "20261122-030000", "20261123-030000")
         for kind in ("dump", "globals.sql", "json")] + ["20261122-030000.accessory-cache"])
    assert list((folder / ".incoming").iterdir()) == []
    again = run_script("prune.sh", conf, env=env)
    assert again.stdout == "kept 3\n"


def test_the_configuration_file_carries_the_inventorys_settings(inventory):
    text = backup.conf_text(inventory)
    assert "BACKUPS_DIR=/srv/shop/backups\n" in text and "DB_CONTAINER=shop-db-1\n" in text
    assert "DB_USER=shopper\nDB_NAME=shop\n" in text and "KEEP_DAILY=10\n" in text and "KEEP_LAST=3\n" in text


def test_provision_installs_scripts_configuration_and_timers(inventory):
    desired = provision.desired_state(inventory, PROJECT, "debian", "13", SECRET)
    assert desired.backup_timers == ("slipway-shop-backup.timer", "slipway-shop-backup-verify.timer")
    conf = desired.files["/etc/slipway/shop/backup.conf"]
    assert (conf.mode, conf.owner, conf.group) == (0o640, "root", "deploy")
    timer = desired.files["/etc/systemd/system/slipway-shop-backup.timer"].content
    assert "OnCalendar=*-*-* 02:30:00\nPersistent=true\n" in timer
    service = desired.files["/etc/systemd/system/slipway-shop-backup.service"].content
    assert "User=deploy\n" in service
    assert "ExecStart=sh /usr/local/lib/slipway/backup.sh /etc/slipway/shop/backup.conf scheduled\n" in service
    assert backup.backup_argv(layout_of(inventory), "scheduled") == \
        ["sh", "/usr/local/lib/slipway/backup.sh", "/etc/slipway/shop/backup.conf", "scheduled"]
    steps = {step.name: step for step in provision_plan.plan(desired, provision.HostState(os_id="debian", os_version="13"))}
    timers = steps["backup timers slipway-shop-backup.timer, slipway-shop-backup-verify.timer"]
    assert timers.actions[-1].command[3:] == ["slipway-enable_units", "slipway-shop-backup.timer",
                                              "slipway-shop-backup-verify.timer"]
    assert "file /usr/local/lib/slipway/backup.sh" in steps


def test_a_timer_is_checked_by_systemd_before_it_is_installed(inventory):
    desired = provision.desired_state(inventory, PROJECT, "debian", "13", SECRET)
    timer = desired.files["/etc/systemd/system/slipway-shop-backup.timer"]
    assert "systemd-analyze calendar" in shell.line(provision_plan.write_file_command(timer))


def test_a_schedule_that_is_not_a_calendar_expression_is_refused(inventory, tmp_path):
    data = yaml.safe_load((tmp_path / "prod.yaml").read_text())
    data["backup"]["schedule"] = "every night; rm -rf /"
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        config.load(tmp_path, "prod")
    assert error.value.problems == [
        f"{tmp_path}/prod.yaml: backup.schedule: found 'every night; rm -rf /'; expected a systemd OnCalendar "
        'expression like "*-*-* 03:00:00" or daily']


def test_metrics_come_from_the_records_and_say_when_the_last_run_failed(tmp_path):
    backups, metrics = tmp_path / "backups", tmp_path / "node-exporter"
    backups.mkdir()
    conf = tmp_path / "backup.conf"
    conf.write_text(f"BACKUPS_DIR={backups}\nMETRICS_DIR={metrics}\nAPP=shop\n")
    run = ["sh", str(shell.SCRIPTS_DIR / "metrics.sh"), str(conf)]
    subprocess.run(run, check=True)
    assert not metrics.exists()  # no node_exporter folder: nothing is written
    metrics.mkdir()
    records = [
        {"id": "20261122-030000", "outcome": "ok", "ended": "2026-11-22T03:00:10Z", "size": 2048, "seconds": 10,
         "offsite": {"at": "2026-11-22T03:00:12Z", "snapshot": "0123abcd"}},
        {"id": "20261123-030000", "outcome": "failed", "error": "db-1 is not running"},
    ]
    for record in records:
        (backups / f"{record['id']}.json").write_text(json.dumps(record) + "\n")
    subprocess.run(run, check=True)
    values = dict(line.rsplit(" ", 1) for line in (metrics / "slipway_backup_shop.prom").read_text().splitlines()
                  if not line.startswith("#"))
    stamp = str(int(datetime(2026, 11, 22, 3, 0, 10, tzinfo=timezone.utc).timestamp()))
    assert values == {
        'slipway_backup_last_success_timestamp_seconds{app="shop"}': stamp,
        'slipway_backup_last_size_bytes{app="shop"}': "2048",
        'slipway_backup_last_duration_seconds{app="shop"}': "10",
        'slipway_backup_last_run_ok{app="shop"}': "0",
        'slipway_backup_good_count{app="shop"}': "1",
        'slipway_backup_offsite_last_success_timestamp_seconds{app="shop"}': str(int(stamp) + 2),
    }
    assert [p.name for p in metrics.iterdir()] == ["slipway_backup_shop.prom"]


def test_the_scheduled_backup_writes_its_metrics_as_root_after_every_run(inventory):
    service = provision.desired_state(inventory, PROJECT, "debian", "13", SECRET).files[
        "/etc/systemd/system/slipway-shop-backup.service"].content
    assert "ExecStopPost=+sh /usr/local/lib/slipway/metrics.sh /etc/slipway/shop/backup.conf\n" in service


def test_downloads_go_to_a_private_folder_that_git_ignores(tmp_path):
    from fabfile.flows.backups import private_folder, write_private

    folder = backup.download_folder(PROJECT, "prod")
    assert folder == PROJECT / ".slipway" / "backups" / "prod"
    assert ".slipway/" in (PROJECT / ".gitignore").read_text().splitlines(), "git must ignore the copies"
    project = tmp_path / "project"
    project.mkdir()
    (project / ".slipway").mkdir(mode=0o755)  # there already, too open
    private_folder(backup.download_folder(project, "prod"), within=project)
    for path in (project / ".slipway", project / ".slipway" / "backups", project / ".slipway" / "backups" / "prod"):
        assert oct(path.stat().st_mode & 0o777) == "0o700", path
    record = project / ".slipway" / "backups" / "prod" / "20261123-030000.json"
    write_private(record, "{}\n")
    assert oct(record.stat().st_mode & 0o777) == "0o600" and record.read_text() == "{}\n"
    elsewhere = tmp_path / "chosen" / "here"
    private_folder(elsewhere)
    assert oct(elsewhere.stat().st_mode & 0o777) == "0o700"
