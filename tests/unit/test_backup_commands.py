"""Backups as data: the retention policy, the installed files, the records; no server."""

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from fabfile import config
from fabfile.commands import backup, provision, provision_plan, shell
from fabfile.errors import ConfigError

PROJECT = Path(__file__).resolve().parents[2]
SECRETS = {"DB_PASSWORD": "x", "RESTIC_PASSWORD": "correct horse battery", "S3_ID": "AKID", "S3_KEY": "s3cr3t"}
SECRET = SECRETS.__getitem__
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBackupHostKey"


def retention(ids, last=3, daily=7, weekly=4, monthly=6):
    """The ids retention.sh deletes (the script itself, run here: the server runs the same file)."""
    result = subprocess.run(["sh", str(shell.SCRIPTS_DIR / "retention.sh"), str(last), str(daily), str(weekly),
                             str(monthly)], input="\n".join(ids) + "\n", capture_output=True, text=True, check=True)
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


@pytest.mark.parametrize("offsite, expected", [
    ({"password_secret": "RESTIC_PASSWORD"}, "backup.offsite: expected exactly one of sftp or s3"),
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
    assert text.endswith("newest good backup: 20261122-030000, 30.0 hours old")


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
