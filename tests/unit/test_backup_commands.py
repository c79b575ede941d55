"""Backups as data: the retention policy, the installed files, the records; no server."""

import hashlib
import json
import os
import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from fabfile import config
from fabfile.commands import backup, provision, provision_plan, shell
from fabfile.errors import ConfigError, SlipwayError

PROJECT = Path(__file__).resolve().parents[2]
SECRETS = {"DB_PASSWORD": "x", "RESTIC_PASSWORD": "correct horse battery", "S3_ID": "AKID", "S3_KEY": "s3cr3t",
           "REST_PASSWORD": "p@ss/w:rd%", "REST_ADMIN": "adm1n may delete", "S3_ADMIN_ID": "AKADMIN",
           "S3_ADMIN_KEY": "s3cr3t-admin"}
SECRET = SECRETS.__getitem__
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBackupHostKey"


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


def fake_bin(tmp_path, **programs):
    """A folder of fake commands (NAME=shell text) to put first on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for name, text in programs.items():
        (folder / name).write_text("#!/bin/sh\n" + text)
        (folder / name).chmod(0o755)
    return folder


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
  esac ;;
run) exit 1 ;;
esac
exit 0
'''


def write_records(folder, records):
    """Records as backup.sh writes them (one line each); a good one with its dump and roles, checksums right."""
    for record in records:
        if record.get("outcome") == "ok":
            (folder / f"{record['id']}.dump").write_text("PGDMP old\n")
            (folder / f"{record['id']}.globals.sql").write_text("-- roles\n")
            record = {"sha256": hashlib.sha256(b"PGDMP old\n").hexdigest(),
                      "globals_sha256": hashlib.sha256(b"-- roles\n").hexdigest(), **record}
        (folder / f"{record['id']}.json").write_text(json.dumps(record) + "\n")


def run_script(name, *args, env=None, bin_dir=None):
    environment = {**os.environ, **(env or {})}
    if bin_dir:
        environment["PATH"] = f"{bin_dir}:{environment['PATH']}"
    return subprocess.run(["sh", str(shell.SCRIPTS_DIR / name), *map(str, args)], capture_output=True, text=True,
                          env=environment, timeout=60)


def local_conf(tmp_path, inventory, inventory_name=None, **overrides):
    """The inventory's backup.conf with BACKUPS_DIR (and OVERRIDES) pointing here: later lines win."""
    backups = tmp_path / "backups"
    backups.mkdir(exist_ok=True)
    conf = tmp_path / "backup.conf"
    settings = {"BACKUPS_DIR": backups, "LOCK_WAIT_SECONDS": 5, **overrides}
    conf.write_text(backup.conf_text(inventory, inventory_name)
                    + "".join(f"{key}={value}\n" for key, value in settings.items()))
    return conf, backups


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


def test_verify_refuses_in_one_line_before_restoring_when_dockers_data_root_lacks_the_room(tmp_path, inventory):
    conf, folder = local_conf(tmp_path, inventory)
    write_records(folder, [
        {"id": "20991231-030000", "seq": 1, "outcome": "ok", "size": 10, "database_size": 1000},
        {"id": "20261122-030000", "seq": 2, "outcome": "ok", "size": 10, "database_size": 10 ** 15},
        {"id": "20261123-030000", "seq": 3, "outcome": "ok", "size": 10, "verified": {"outcome": "failed"}},
        {"id": "20261120-030000", "outcome": "ok", "size": 10 ** 14},  # from before database sizes
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
        {"id": "20261120-030000", "seq": 1, "outcome": "ok", "size": 2000},
        {"id": "20261121-030000", "seq": 2, "outcome": "ok", "size": 3000, "verified": {"outcome": "ok"}},
        {"id": "20261122-030000", "seq": 3, "outcome": "ok", "size": 4000},
        {"id": "20261123-030000", "seq": 4, "outcome": "ok", "size": 5000},
    ]
    write_records(folder, records)
    (folder / ".incoming").mkdir()
    (folder / ".incoming" / "20261124-030000.dump").write_text("half")
    (folder / "20261124-030000.dump").write_text("a dump without a good record")
    (folder / ".lock").touch()
    before = sorted(p.name for p in folder.rglob("*"))
    # No temporary file anywhere: a full disk has no room for one.
    env = {"TMPDIR": str(tmp_path / "no-such-folder")}
    dry = run_script("prune.sh", conf, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert sorted(p.name for p in folder.rglob("*")) == before
    pruned = backup.parse_prune(dry.stdout)
    assert pruned.backups == [("20990101-030000", 1000), ("20261120-030000", 2000)]
    assert pruned.records == ["20990102-030000"]
    assert pruned.leftovers == [".incoming/20261124-030000.dump", "20261124-030000.dump"]
    assert pruned.kept == 3  # the newest two, and the newest verified one
    done = run_script("prune.sh", conf, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == dry.stdout
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(
        f"{i}.{kind}" for i in ("20261121-030000", "20261122-030000", "20261123-030000")
        for kind in ("dump", "globals.sql", "json"))
    assert list((folder / ".incoming").iterdir()) == []
    again = run_script("prune.sh", conf, env=env)
    assert again.stdout == "kept 3\n"


@pytest.fixture
def inventory(tmp_path):
    (tmp_path / "id.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDuptqmDfSXBQUmUGJh op@laptop\n")
    data = {
        "host": {"address": "203.0.113.7"},
        "server": {"authorized_keys": ["id.pub"]},
        "app": {"name": "shop", "domains": ["shop.example.com"], "base_dir": "/srv/shop"},
        "services": {"api": {"image": "shop/api"}},
        "database": {"image": "postgres:17", "name": "shop", "user": "shopper", "password_secret": "DB_PASSWORD"},
        "backup": {"schedule": "*-*-* 02:30:00", "keep_daily": 10},
    }
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "prod.env").write_text("".join(f"{key}={value}\n" for key, value in SECRETS.items()))
    return config.load(tmp_path, "prod").inventory


def with_offsite(tmp_path, offsite):
    data = yaml.safe_load((tmp_path / "prod.yaml").read_text())
    data["backup"]["offsite"] = offsite
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump(data))
    return config.load(tmp_path, "prod")


SFTP = {"sftp": {"host": "backup.example.net", "port": 2222, "user": "restic", "path": "/srv/restic/shop",
                 "host_key": HOST_KEY}, "password_secret": "RESTIC_PASSWORD"}


def test_an_sftp_offsite_pins_the_host_key_and_keeps_the_password_in_a_0600_file(inventory, tmp_path):
    offsite = with_offsite(tmp_path, SFTP).inventory
    desired = provision.desired_state(offsite, PROJECT, "debian", "13", SECRET)
    assert {"restic", "openssh-client"} <= set(desired.packages)
    asked = next(line for line in provision.probe_script(offsite).splitlines() if "dpkg-query" in line).split()
    assert set(desired.packages) <= set(asked)  # else a converged host looks as if it missed them
    known = desired.files["/etc/slipway/shop/offsite_known_hosts"]
    assert known.content == f"[backup.example.net]:2222 {HOST_KEY}\n"
    secrets = desired.files["/etc/slipway/shop/backup.env"]
    assert (secrets.mode, secrets.owner, secrets.group, secrets.secret) == (0o600, "deploy", "deploy", True)
    assert secrets.content == "RESTIC_PASSWORD=correct horse battery\n"
    conf = backup.conf_text(offsite)
    assert "OFFSITE_REPOSITORY=sftp:restic@backup.example.net:/srv/restic/shop\n" in conf
    assert "OFFSITE_SSH=restic@backup.example.net\nOFFSITE_SSH_PORT=2222\n" in conf
    assert "correct horse" not in conf
    assert desired.offsite_key == "/etc/slipway/shop/offsite_ed25519"
    assert "slipway-shop-backup-check.timer" in desired.backup_timers
    service = desired.files["/etc/systemd/system/slipway-shop-backup-check.service"].content
    assert "ExecStart=sh /usr/local/lib/slipway/offsite.sh /etc/slipway/shop/backup.conf check\n" in service


def test_the_offsite_key_is_made_once_on_the_server_and_secrets_never_reach_a_diff(tmp_path, inventory):
    desired = provision.desired_state(with_offsite(tmp_path, SFTP).inventory, PROJECT, "debian", "13", SECRET)
    fresh = {step.name: step for step in provision_plan.plan(desired, provision.HostState(os_id="debian", os_version="13"))}
    assert "ssh-keygen -q -t ed25519" in fresh["offsite backup SSH key"].actions[0].command
    plan_text = "\n".join(step.diff for step in fresh.values())
    assert "/etc/slipway/shop/backup.env: new (it holds secrets: not shown)" in plan_text
    assert "correct horse" not in plan_text
    rotated = provision.HostState(os_id="debian", os_version="13", offsite_public_key="ssh-ed25519 AAAA server")
    rotated.files["/etc/slipway/shop/backup.env"] = provision.FileState(0o600, "deploy", "deploy", "RESTIC_PASSWORD=old one\n")
    steps = {step.name: step for step in provision_plan.plan(desired, rotated)}
    assert not steps["offsite backup SSH key"].needed
    diff = steps["file /etc/slipway/shop/backup.env"].diff
    assert diff == "/etc/slipway/shop/backup.env: content differs (it holds secrets: not shown)"


def test_an_s3_offsite_takes_its_keys_from_secrets(tmp_path, inventory):
    s3 = {"s3": {"endpoint": "https://s3.example.net", "bucket": "shop-backups", "prefix": "prod",
                 "access_key_secret": "S3_ID", "secret_key_secret": "S3_KEY"}, "password_secret": "RESTIC_PASSWORD"}
    offsite = with_offsite(tmp_path, s3).inventory
    assert "OFFSITE_REPOSITORY=s3:https://s3.example.net/shop-backups/prod\n" in backup.conf_text(offsite)
    assert backup.secrets_text(offsite, SECRET) == \
        "RESTIC_PASSWORD=correct horse battery\nAWS_ACCESS_KEY_ID=AKID\nAWS_SECRET_ACCESS_KEY=s3cr3t\n"
    desired = provision.desired_state(offsite, PROJECT, "debian", "13", SECRET)
    assert desired.offsite_key is None and "/etc/slipway/shop/offsite_known_hosts" not in desired.files


def test_offsite_snapshots_are_tagged_with_the_inventory_name(tmp_path, inventory):
    offsite = with_offsite(tmp_path, SFTP).inventory
    assert "OFFSITE_TAG=inventory-prod\n" in backup.conf_text(offsite, "prod")
    assert "OFFSITE_TAG" not in backup.conf_text(offsite) and "OFFSITE_TAG" not in backup.conf_text(inventory, "prod")


# restic as offsite.sh uses it: every call logged; snapshots from a file; restore copies a snapshot's folder.
FAKE_RESTIC = r'''echo "$*" >> "$FAKE_LOG"
while [ "$1" = -o ] || [ "$1" = --cacert ]; do shift 2; done
case $1 in
snapshots) cat "$FAKE_SNAPSHOTS" ;;
restore) mkdir -p "$4/srv/shop/backups" && cp "$FAKE_REPOSITORY/$2"/* "$4/srv/shop/backups/" ;;
esac
echo "$RESTIC_REPOSITORY" >> "$FAKE_LOG.repository"
exit 0
'''


def snapshot(short, backup_id, *tags, time="2026-11-20T03:00:10Z"):
    return {"id": short * 8, "short_id": short * 8, "time": time, "hostname": "slipway-shop",
            "tags": ["slipway", f"backup-{backup_id}", *tags]}


@pytest.fixture
def repository(tmp_path, inventory):
    """An offsite repository shared with staging (another inventory, same app), holding snapshots from before
    inventory tags too; offsite.sh's conf for prod, and the calls restic got."""
    offsite = with_offsite(tmp_path, SFTP).inventory
    secrets = tmp_path / "backup.env"
    secrets.write_text("RESTIC_PASSWORD=x\n")
    conf, folder = local_conf(tmp_path, offsite, "prod", SECRETS_FILE=secrets)
    snapshots = [snapshot("a", "20261120-030000", "inventory-prod"),
                 snapshot("b", "20261125-030000", "inventory-staging", time="2026-11-25T03:00:10Z"),
                 snapshot("c", "20261122-030000", time="2026-11-22T03:00:10Z"),  # before inventory tags
                 snapshot("d", "20261120-030000", "inventory-staging", time="2026-11-26T03:00:10Z")]
    (tmp_path / "snapshots.json").write_text(json.dumps(snapshots))
    for snap in snapshots:
        stored = tmp_path / "repository" / snap["id"]
        stored.mkdir(parents=True)
        write_records(stored, [{"id": snap["tags"][1].removeprefix("backup-"), "outcome": "ok", "size": 10}])
    log = tmp_path / "restic.log"
    env = {"FAKE_LOG": str(log), "FAKE_SNAPSHOTS": str(tmp_path / "snapshots.json"),
           "FAKE_REPOSITORY": str(tmp_path / "repository")}
    bin_dir = fake_bin(tmp_path, restic=FAKE_RESTIC)

    def offsite_sh(*args, conf=conf):
        return run_script("offsite.sh", conf, *args, env=env, bin_dir=bin_dir)

    return offsite_sh, folder, log


def test_without_an_inventory_name_the_snapshots_are_tagged_and_forgotten_as_before(repository, tmp_path, inventory):
    offsite_sh, folder, log = repository
    untagged, _ = local_conf(tmp_path, with_offsite(tmp_path, SFTP).inventory, SECRETS_FILE=tmp_path / "backup.env")
    write_records(folder, [{"id": "20261120-030000", "seq": 1, "outcome": "ok", "size": 10}])
    assert offsite_sh("upload", "20261120-030000", conf=untagged).returncode == 0
    calls = [line.split(" -s sftp ", 1)[-1] for line in log.read_text().splitlines()]
    assert "--tag inventory-" not in next(c for c in calls if c.startswith("backup "))
    assert next(c for c in calls if c.startswith("forget ")).startswith("forget --host slipway-shop --tag slipway --")


def test_an_upload_tags_the_inventory_and_offsite_retention_forgets_only_its_snapshots(repository):
    offsite_sh, folder, log = repository
    write_records(folder, [{"id": "20261120-030000", "seq": 1, "outcome": "ok", "size": 10}])
    uploaded = offsite_sh("upload", "20261120-030000")
    assert uploaded.returncode == 0, uploaded.stderr
    # staging's snapshot d of a backup with the same id is newer: the record names prod's own.
    assert uploaded.stdout == "a" * 8 + "\n"
    calls = [line.split(" -s sftp ", 1)[-1] for line in log.read_text().splitlines()]
    assert next(c for c in calls if c.startswith("backup ")).startswith(
        "backup --host slipway-shop --tag slipway --tag backup-20261120-030000 --tag inventory-prod ")
    assert next(c for c in calls if c.startswith("forget ")).startswith(
        "forget --host slipway-shop --tag slipway,inventory-prod --group-by host --keep-last 3 ")


def test_fetch_reads_the_inventorys_own_snapshots_then_old_untagged_ones_never_another_inventorys(repository):
    offsite_sh, folder, _ = repository
    latest = offsite_sh("fetch", "latest")
    assert (latest.returncode, latest.stdout) == (0, "20261120-030000\n"), latest.stderr
    fetched = json.loads((folder / "20261120-030000.json").read_text())
    assert fetched["fetched"]["snapshot"] == "a" * 8
    foreign = offsite_sh("fetch", "20261125-030000")
    assert foreign.returncode == 2
    assert foreign.stderr == ("no backup 20261125-030000 of slipway-shop (inventory-prod) in the offsite "
                              "repository\n")
    old = offsite_sh("fetch", "20261122-030000")
    assert (old.returncode, old.stdout) == (0, "20261122-030000\n"), old.stderr
    listed = json.loads(offsite_sh("snapshots").stdout)
    assert sorted(snap["id"][0] for snap in listed) == ["a", "c"]


def test_a_repository_from_before_inventory_tags_is_taken_over_with_no_flag(repository, tmp_path):
    offsite_sh, folder, _ = repository
    snapshots = json.loads((tmp_path / "snapshots.json").read_text())
    (tmp_path / "snapshots.json").write_text(json.dumps([s for s in snapshots if "inventory-prod" not in s["tags"]]))
    latest = offsite_sh("fetch", "latest")
    assert (latest.returncode, latest.stdout) == (0, "20261122-030000\n"), latest.stderr


@pytest.mark.parametrize("offsite, expected", [
    ({"password_secret": "RESTIC_PASSWORD"}, "backup.offsite: expected exactly one of sftp, s3 or rest"),
    ({**SFTP, "sftp": {**SFTP["sftp"], "host_key": "AAAA"}}, "backup.offsite.sftp.host_key: found 'AAAA'; expected the "
                                                               "backup host's public host key"),
    ({**SFTP, "password_secret": "NOT_THERE"}, "NOT_THERE: missing; expected a line NOT_THERE=... because"),
    ({**SFTP, "check_subset": "0%"}, "backup.offsite.check_subset: found '0%'; expected a percentage like 10%"),
])
def test_a_wrong_offsite_section_is_named_before_anything_runs(tmp_path, inventory, offsite, expected):
    with pytest.raises(ConfigError) as error:
        with_offsite(tmp_path, offsite)
    assert any(expected in problem for problem in error.value.problems), error.value.problems


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
    assert backup.backup_argv(backup.paths_of(inventory), "scheduled") == \
        ["sh", "/usr/local/lib/slipway/backup.sh", "/etc/slipway/shop/backup.conf", "scheduled"]
    steps = {step.name: step for step in provision_plan.plan(desired, provision.HostState(os_id="debian", os_version="13"))}
    timers = steps["backup timers slipway-shop-backup.timer, slipway-shop-backup-verify.timer"]
    assert timers.actions[-1].command == ("systemctl daemon-reload && systemctl enable --now "
                                          "slipway-shop-backup.timer slipway-shop-backup-verify.timer")
    assert "file /usr/local/lib/slipway/backup.sh" in steps


def test_a_timer_is_checked_by_systemd_before_it_is_installed(inventory):
    desired = provision.desired_state(inventory, PROJECT, "debian", "13", SECRET)
    timer = desired.files["/etc/systemd/system/slipway-shop-backup.timer"]
    assert "systemd-analyze calendar" in provision_plan.write_file_command(timer)


def test_a_schedule_that_is_not_a_calendar_expression_is_refused(inventory, tmp_path):
    data = yaml.safe_load((tmp_path / "prod.yaml").read_text())
    data["backup"]["schedule"] = "every night; rm -rf /"
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        config.load(tmp_path, "prod")
    assert error.value.problems == [
        f"{tmp_path}/prod.yaml: backup.schedule: found 'every night; rm -rf /'; expected a systemd OnCalendar "
        'expression like "*-*-* 03:00:00" or daily']


def test_records_list_oldest_first_with_the_age_of_the_newest_good_one():
    lines = [
        json.dumps({"id": "20261122-030000", "trigger": "scheduled", "outcome": "ok", "size": 2_500_000,
                    "verified": {"outcome": "ok", "at": "2026-11-22T04:30:00Z"}}),
        "{half a record",
        json.dumps({"id": "20261123-030000", "trigger": "scheduled", "outcome": "failed", "error": "disk full"}),
        json.dumps({"id": "20261121-030000", "trigger": "manual", "outcome": "ok", "size": 900}),
    ]
    records = backup.parse_records("\n".join(lines))
    assert [r.id for r in records] == ["20261121-030000", "20261122-030000", "20261123-030000"]
    now = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
    assert backup.newest_good(records).id == "20261122-030000"
    assert backup.age_hours(backup.newest_good(records), now) == 30
    text = backup.format_records(records, now)
    assert "2.4 MB" in text and "failed: disk full" in text and "ok 2026-11-22T04:30:00Z" in text
    assert text.endswith("newest good backup: 20261122-030000, 30.0 hours old\n"
                         "newest verified backup: 20261122-030000, 30.0 hours old (what backup.restore latest puts back)")


def record_lines(*records):
    return "\n".join(json.dumps(record) for record in records)


# Oldest first by sequence; the two without one are from before sequence numbers (older, whatever their ids).
SEQUENCED = record_lines(
    {"id": "20261130-030000", "outcome": "ok", "size": 100},
    {"id": "20261101-030000", "seq": 2, "outcome": "ok", "size": 100, "verified": {"outcome": "ok", "at": "A"}},
    {"id": "20261102-030000", "seq": 3, "outcome": "ok", "size": 100,
     "verified": {"outcome": "failed", "at": "B", "detail": "row counts differ: public.items"}},
    {"id": "20261010-030000", "seq": 4, "outcome": "ok", "size": 100},  # the clock had stepped back
    {"id": "20261011-030000", "seq": 5, "outcome": "failed", "error": "disk full"},
    {"id": "20261125-030000", "outcome": "ok", "size": 100},
)


def test_records_go_by_sequence_number_and_the_list_shows_each_ones_verification():
    records = backup.parse_records(SEQUENCED)
    assert [r.id for r in records] == ["20261125-030000", "20261130-030000", "20261101-030000", "20261102-030000",
                                       "20261010-030000", "20261011-030000"]
    assert backup.newest_good(records).id == "20261010-030000"
    assert backup.newest_verified(records).id == "20261101-030000"
    text = backup.format_records(records, datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc))
    rows = {line.split()[1]: line for line in text.splitlines()[1:] if line[:1] in "-0123456789"}
    assert text.splitlines()[0].split() == ["SEQ", "ID", "TRIGGER", "SIZE", "VERIFIED", "OFFSITE", "OUTCOME"]
    assert rows["20261125-030000"].split()[0] == "-" and "not yet" in rows["20261125-030000"]
    assert " ok A " in rows["20261101-030000"]
    assert " FAILED B " in rows["20261102-030000"]
    assert rows["20261102-030000"].endswith("ok; verify failed: row counts differ: public.items")
    assert text.splitlines()[-1].startswith("newest verified backup: 20261101-030000, ")


def test_latest_is_the_newest_verified_backup_and_never_one_whose_verify_failed():
    records = backup.parse_records(SEQUENCED)
    latest = backup.choose(records, "latest")
    assert latest.record.id == "20261101-030000"
    assert latest.note == ("latest is 20261101-030000, the newest verified backup (verified A); 1 newer not verified "
                           "yet, the newest 20261010-030000 (name it, or latest-unverified, for that one)")
    assert backup.choose(records, "latest-unverified").record.id == "20261010-030000"
    named = backup.choose(records, "20261102-030000")
    assert named.record.id == "20261102-030000" and named.note.startswith("warning: backup 20261102-030000 FAILED")
    assert backup.choose(records, "20261011-030000").record is None  # a failed attempt restores nothing
    unverified = backup.parse_records(record_lines({"id": "20261101-030000", "seq": 1, "outcome": "ok"},
                                                   {"id": "20261102-030000", "seq": 2, "outcome": "ok"}))
    fallback = backup.choose(unverified, "latest")
    assert fallback.record.id == "20261102-030000"
    assert fallback.note == ("latest: no backup is verified yet, so it is the newest good one, 20261102-030000 "
                             "(not verified)")
    only_failed = backup.parse_records(record_lines({"id": "20261101-030000", "seq": 1, "outcome": "ok",
                                                     "verified": {"outcome": "failed"}}))
    assert backup.choose(only_failed, "latest").record is None
    assert backup.choose(only_failed, "latest-unverified").record is None
    assert backup.newest_good(only_failed) is None  # what status and backup.list --check count on


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


# --- append-only offsite repositories: REST, and backup.prune-offsite from the operator's machine ---------

CA = "-----BEGIN CERTIFICATE-----\nMIIBlabCA\n-----END CERTIFICATE-----\n"


def rest(tmp_path, **overrides):
    (tmp_path / "rest-ca.pem").write_text(CA)
    return {"rest": {"url": "https://backup.example.net:8000/shop", "user": "shop", "password_secret": "REST_PASSWORD",
                     "ca_bundle": "rest-ca.pem", "admin_url": "https://127.0.0.1:8001/shop", "admin_user": "operator",
                     "admin_password_secret": "REST_ADMIN", **overrides},
            "append_only": True, "password_secret": "RESTIC_PASSWORD"}


def test_a_rest_offsite_keeps_its_credentials_in_the_0600_file_and_never_the_admin_ones_on_the_server(
        tmp_path, inventory):
    offsite = with_offsite(tmp_path, rest(tmp_path)).inventory
    conf = backup.conf_text(offsite, "prod")
    assert "OFFSITE_REPOSITORY=rest:https://backup.example.net:8000/shop/\n" in conf
    assert "OFFSITE_CACERT=/etc/slipway/shop/offsite-ca.pem\nOFFSITE_APPEND_ONLY=yes\n" in conf
    desired = provision.desired_state(offsite, PROJECT, "debian", "13", SECRET, inventory_name="prod")
    secrets = desired.files["/etc/slipway/shop/backup.env"]
    assert (secrets.mode, secrets.owner, secrets.secret) == (0o600, "deploy", True)
    # Percent-encoded: restic 0.12 and 0.14 read REST credentials only from the location (in the environment).
    assert secrets.content == ("RESTIC_PASSWORD=correct horse battery\n"
                               "RESTIC_REPOSITORY=rest:https://shop:p%40ss%2Fw%3Ard%25@backup.example.net:8000/shop/\n")
    parts = urlsplit(secrets.content.split("RESTIC_REPOSITORY=rest:")[1].strip())
    assert (parts.username, unquote(parts.password), parts.hostname, parts.path) == \
        ("shop", "p@ss/w:rd%", "backup.example.net", "/shop/")
    ca = desired.files["/etc/slipway/shop/offsite-ca.pem"]
    assert (ca.content, ca.mode, ca.secret) == (CA, 0o644, False)
    assert "/etc/slipway/shop/offsite-ca.pem" in provision.managed_paths(offsite)[0]
    assert desired.offsite_key is None and "/etc/slipway/shop/offsite_known_hosts" not in desired.files
    assert not any("adm1n" in unquote(f.content) for f in desired.files.values())
    plan = provision_plan.plan(desired, provision.HostState(os_id="debian", os_version="13"))
    assert "p%40ss" not in "\n".join(step.diff for step in plan)
    assert not any("p@ss" in f.content or "p%40ss" in f.content for path, f in desired.files.items()
                   if path != "/etc/slipway/shop/backup.env")


def offsite_conf(tmp_path, offsite_inventory):
    """offsite.sh's conf for prod and the server's secrets file, as provision writes them, folders here."""
    secrets = tmp_path / "backup.env"
    secrets.write_text(backup.secrets_text(offsite_inventory, SECRET))
    return local_conf(tmp_path, offsite_inventory, "prod", SECRETS_FILE=secrets)


def test_an_append_only_upload_copies_but_never_forgets_and_its_record_says_so(tmp_path, inventory):
    offsite = with_offsite(tmp_path, rest(tmp_path)).inventory
    conf, folder = offsite_conf(tmp_path, offsite)
    write_records(folder, [{"id": "20261120-030000", "seq": 1, "outcome": "ok", "size": 10}])
    (tmp_path / "snapshots.json").write_text(json.dumps([snapshot("a", "20261120-030000", "inventory-prod")]))
    log = tmp_path / "restic.log"
    env = {"FAKE_LOG": str(log), "FAKE_SNAPSHOTS": str(tmp_path / "snapshots.json")}
    uploaded = run_script("offsite.sh", conf, "upload", "20261120-030000", env=env,
                          bin_dir=fake_bin(tmp_path, restic=FAKE_RESTIC))
    assert uploaded.returncode == 0, uploaded.stderr
    assert uploaded.stdout.splitlines()[0] == "a" * 8
    assert "retention not applied: the repository is append-only" in uploaded.stdout
    calls = log.read_text().splitlines()
    assert calls and all(call.startswith("--cacert /etc/slipway/shop/offsite-ca.pem ") for call in calls), calls
    assert not any(" forget " in f" {call} " for call in calls), calls
    assert "p@ss" not in log.read_text() and "p%40ss" not in log.read_text()
    # The credentials reach restic in its environment only.
    assert set(Path(f"{log}.repository").read_text().splitlines()) == {
        "rest:https://shop:p%40ss%2Fw%3Ard%25@backup.example.net:8000/shop/"}
    record = json.loads((folder / "20261120-030000.json").read_text())
    assert record["offsite"]["snapshot"] == "a" * 8
    assert record["offsite"]["retention"] == "append-only: backup.prune-offsite applies it"


def test_an_offsite_failure_never_shows_a_urls_credentials(tmp_path, inventory):
    offsite = with_offsite(tmp_path, rest(tmp_path)).inventory
    conf, folder = offsite_conf(tmp_path, offsite)
    write_records(folder, [{"id": "20261120-030000", "seq": 1, "outcome": "ok", "size": 10}])
    # Not what restic prints (it masks the location's password itself), but whatever prints it is masked.
    failing = 'echo "Fatal: Post \\"https://shop:p%40ss%2Fw%3Ard%25@backup.example.net:8000/shop/\\": refused" >&2; exit 1\n'
    result = run_script("offsite.sh", conf, "upload", "20261120-030000", bin_dir=fake_bin(tmp_path, restic=failing))
    assert result.returncode == 1
    assert result.stderr.startswith("offsite upload of 20261120-030000 (opening the repository) failed: Fatal: Post "
                                    '"https://***@backup.example.net:8000/shop/": refused'), result.stderr
    record = (folder / "20261120-030000.json").read_text()
    assert "p%40ss" not in record + result.stderr and "https://***@backup" in record
    assert backup.without_credentials("Get https://u:p@h/x and sftp:restic@h:/p") == \
        "Get https://***@h/x and sftp:restic@h:/p"


# restic on the operator's machine: each call logged, the environment it got too; forget and snapshots answer
# from files.
FAKE_OPERATOR_RESTIC = r'''echo "$*" >> "$FAKE_LOG"
env | grep -E '^RESTIC_' | sort >> "$FAKE_LOG.env"
while [ "$1" = -o ] || [ "$1" = --cacert ]; do shift 2; done
case $1 in
unlock) echo "successfully removed locks" ;;
forget) cat "$FAKE_FORGET" ;;
snapshots) cat "$FAKE_LEFT" ;;
prune) echo "done" ;;
esac
exit 0
'''


def restic_snapshot(short, backup_id, time):
    # As restic 0.14's --json writes them (trimmed).
    return {"time": time, "tree": "47" * 32, "paths": ["/srv/shop/backups/x.dump"], "hostname": "slipway-shop",
            "username": "deploy", "tags": ["slipway", f"backup-{backup_id}", "inventory-prod"], "id": short * 64,
            "short_id": short * 8}


@pytest.fixture
def operator_restic(tmp_path, monkeypatch):
    """A fake restic first on this machine's PATH; the files its forget and snapshots answer from."""
    bin_dir = fake_bin(tmp_path, restic=FAKE_OPERATOR_RESTIC)
    log = tmp_path / "operator.log"
    kept = restic_snapshot("c", "20261122-030000", "2026-11-22T03:00:11.5+00:00")
    removed = [restic_snapshot("a", "20261120-030000", "2026-11-20T03:00:11.123456789+00:00"),
               restic_snapshot("b", "20261121-030000", "2026-11-21T03:00:11Z")]
    (tmp_path / "forget.json").write_text(json.dumps([{"tags": None, "host": "slipway-shop", "paths": None,
                                                       "keep": [kept], "remove": removed, "reasons": []}]) + "\n")
    (tmp_path / "left.json").write_text(json.dumps([kept]) + "\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_FORGET", str(tmp_path / "forget.json"))
    monkeypatch.setenv("FAKE_LEFT", str(tmp_path / "left.json"))
    # The operator's own restic settings are not what prune-offsite uses.
    monkeypatch.setenv("RESTIC_PASSWORD_FILE", "/nonexistent")
    monkeypatch.setenv("RESTIC_REPOSITORY", "/somewhere/else")
    return log


def test_prune_offsite_forgets_by_the_servers_retention_from_this_machine_with_the_admin_credentials(
        tmp_path, inventory, operator_restic, capsys):
    from fabfile.flows.offsite import forget_offsite

    deployment = with_offsite(tmp_path, rest(tmp_path))
    forget_offsite(deployment, dry_run=True)
    out = capsys.readouterr().out
    calls = operator_restic.read_text().splitlines()
    ca = str(tmp_path / "rest-ca.pem")
    assert calls == [f"--cacert {ca} unlock",
                     f"--cacert {ca} forget --json --dry-run --host slipway-shop --tag slipway,inventory-prod "
                     "--group-by host --keep-last 3 --keep-daily 10 --keep-weekly 4 --keep-monthly 6"]
    assert "[prod] would forget snapshot aaaaaaaa of backup 20261120-030000 (taken 2026-11-20T03:00:11)\n" in out
    assert "[prod] would forget snapshot bbbbbbbb of backup 20261121-030000 (taken 2026-11-21T03:00:11)\n" in out
    assert out.endswith("[prod] would forget 2 offsite snapshots of slipway-shop (inventory-prod) in "
                        "rest:https://127.0.0.1:8001/shop/ as operator; 1 kept\n"), out
    environment = set(Path(f"{operator_restic}.env").read_text().splitlines())
    assert environment == {"RESTIC_PASSWORD=correct horse battery",
                           "RESTIC_REPOSITORY=rest:https://operator:adm1n%20may%20delete@127.0.0.1:8001/shop/"}
    assert "adm1n" not in out and "adm1n" not in operator_restic.read_text()

    operator_restic.write_text("")
    forget_offsite(deployment, dry_run=False)
    out = capsys.readouterr().out
    assert [call.split()[2] for call in operator_restic.read_text().splitlines()] == \
        ["unlock", "forget", "snapshots", "prune"]
    assert "--dry-run" not in operator_restic.read_text()
    assert "[prod] forgot snapshot aaaaaaaa of backup 20261120-030000" in out
    assert out.endswith("[prod] forgot 2 offsite snapshots of slipway-shop (inventory-prod) in "
                        "rest:https://127.0.0.1:8001/shop/ as operator, and pruned their data; 1 kept\n"), out


def test_prune_offsite_fails_in_one_line_when_the_repository_kept_what_it_was_told_to_forget(
        tmp_path, inventory, operator_restic):
    from fabfile.flows.offsite import forget_offsite

    # An append-only server refuses the deletes; restic (0.18) may only warn about that and exit 0.
    snapshots = json.loads((tmp_path / "forget.json").read_text())[0]
    (tmp_path / "left.json").write_text(json.dumps(snapshots["keep"] + snapshots["remove"]) + "\n")
    with pytest.raises(SlipwayError) as error:
        forget_offsite(with_offsite(tmp_path, rest(tmp_path, admin_url=None)), dry_run=False)
    assert str(error.value) == ("prod: rest:https://backup.example.net:8000/shop/ as operator kept 2 of the 2 "
                                "snapshots restic was told to forget: it is append-only for these credentials (give "
                                "backup.offsite's admin_url or admin credentials that may delete)")
    assert "prune" not in operator_restic.read_text().split()


def test_prune_offsite_names_what_it_lacks_on_this_machine_in_one_line(tmp_path, inventory, monkeypatch):
    from fabfile.flows.offsite import forget_offsite

    deployment = with_offsite(tmp_path, rest(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SlipwayError) as error:
        forget_offsite(deployment, dry_run=True)
    assert str(error.value) == ("restic is not installed on this machine: backup.prune-offsite runs it here, not on "
                                "the server (apt-get install restic; ./scripts/setup installs it)")
    monkeypatch.setenv("PATH", str(fake_bin(tmp_path, restic=FAKE_OPERATOR_RESTIC)))
    (tmp_path / "prod.env").write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items() if k != "REST_ADMIN"))
    with pytest.raises(SlipwayError) as error:
        forget_offsite(config.load(tmp_path, "prod"), dry_run=True)
    assert str(error.value) == (f"{tmp_path}/prod.env: REST_ADMIN: missing or empty; expected a line REST_ADMIN=... "
                                f"because {tmp_path}/prod.yaml uses it at backup.offsite.rest.admin_password_secret "
                                "(backup.prune-offsite reads it here; the server never gets it)")
    with pytest.raises(SlipwayError) as error:
        forget_offsite(config.load(tmp_path, "prod").model_copy(update={"inventory": inventory}), dry_run=True)
    assert str(error.value).endswith("backup.offsite: missing; backup.prune-offsite prunes the offsite repository "
                                     "backups are copied to")


def test_prune_offsite_reaches_s3_with_the_admin_key_and_sftp_as_the_operator_with_the_host_key_pinned(
        tmp_path, inventory):
    s3 = {"s3": {"endpoint": "https://s3.example.net", "bucket": "shop-backups", "prefix": "prod",
                 "access_key_secret": "S3_ID", "secret_key_secret": "S3_KEY", "admin_access_key_secret": "S3_ADMIN_ID",
                 "admin_secret_key_secret": "S3_ADMIN_KEY"}, "append_only": True, "password_secret": "RESTIC_PASSWORD"}
    access = backup.admin_access(with_offsite(tmp_path, s3).inventory, SECRET, "/unused")
    assert (access.where, access.options) == ("s3:https://s3.example.net/shop-backups/prod", ())
    assert access.environment == {"RESTIC_PASSWORD": "correct horse battery",
                                  "RESTIC_REPOSITORY": "s3:https://s3.example.net/shop-backups/prod",
                                  "AWS_ACCESS_KEY_ID": "AKADMIN", "AWS_SECRET_ACCESS_KEY": "s3cr3t-admin"}
    # The server's own key never signs in here; nor does the operator's own AWS setting.
    assert "s3cr3t-admin" not in repr(access)
    assert access.env({"AWS_SESSION_TOKEN": "t", "HOME": "/root"})["HOME"] == "/root"
    assert "AWS_SESSION_TOKEN" not in access.env({"AWS_SESSION_TOKEN": "t"})
    sftp_offsite = with_offsite(tmp_path, {**SFTP, "append_only": True}).inventory
    access = backup.admin_access(sftp_offsite, SECRET, "/tmp/x/known_hosts")
    assert access.where == "sftp:restic@backup.example.net:/srv/restic/shop"
    assert access.options == ("-o", "sftp.command=ssh -p 2222 -o BatchMode=yes -o StrictHostKeyChecking=yes "
                              "-o UserKnownHostsFile=/tmp/x/known_hosts -o GlobalKnownHostsFile=/dev/null "
                              "-o ConnectTimeout=10 restic@backup.example.net -s sftp")
    (tmp_path / "operator_key").write_text("key")
    own = with_offsite(tmp_path, {**SFTP, "sftp": {**SFTP["sftp"], "admin_user": "keeper",
                                                   "admin_key_file": "operator_key"}}).inventory
    command = backup.admin_access(own, SECRET, "/tmp/x/known_hosts").options[1]
    assert f"-i {tmp_path}/operator_key -o IdentitiesOnly=yes" in command and " keeper@backup.example.net " in command
    assert backup.admin_secrets(own) == [("backup.offsite.password_secret", "RESTIC_PASSWORD")]


def test_forget_output_of_restic_reads_as_what_was_removed_and_kept():
    removed, kept = backup.parse_forget('Applying Policy: keep 1 latest snapshots\n' + json.dumps([
        {"host": "slipway-shop", "keep": [restic_snapshot("c", "20261122-030000", "2026-11-22T03:00:11Z")],
         "remove": [restic_snapshot("b", "20261121-030000", "2026-11-21T03:00:11Z"),
                    {"id": "d" * 64, "time": "2026-11-19T03:00:11Z", "tags": ["slipway"]}]},
        {"host": "slipway-shop", "keep": [], "remove": None}]) + "\n")
    assert [(s.short_id, s.backup_id, s.time) for s in removed] == [
        ("dddddddd", "?", "2026-11-19T03:00:11"), ("bbbbbbbb", "20261121-030000", "2026-11-21T03:00:11")]
    assert [s.backup_id for s in kept] == ["20261122-030000"]
    assert backup.parse_forget("") == ([], [])
