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
    (tmp_path / "prod.env").write_text("DB_PASSWORD=x\n")
    return config.load(tmp_path, "prod").inventory


def test_the_configuration_file_carries_the_inventorys_settings(inventory):
    text = backup.conf_text(inventory)
    assert "BACKUPS_DIR=/srv/shop/backups\n" in text and "DB_CONTAINER=shop-db-1\n" in text
    assert "DB_USER=shopper\nDB_NAME=shop\n" in text and "KEEP_DAILY=10\n" in text and "KEEP_LAST=3\n" in text


def test_provision_installs_scripts_configuration_and_timers(inventory):
    desired = provision.desired_state(inventory, PROJECT, "debian", "13")
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
    desired = provision.desired_state(inventory, PROJECT, "debian", "13")
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
