"""The backup scripts run on this machine for the unit tests: the shop inventory in a test's folder, its
backup.conf pointed there, records as backup.sh writes them, and fake commands first on PATH."""

import hashlib
import json
import os
import subprocess
from pathlib import Path

import yaml

from fabfile import config
from fabfile.commands import backup, shell

PROJECT = Path(__file__).resolve().parents[2]
SECRETS = {"DB_PASSWORD": "x", "RESTIC_PASSWORD": "correct horse battery", "S3_ID": "AKID", "S3_KEY": "s3cr3t",
           "REST_PASSWORD": "p@ss/w:rd%", "REST_ADMIN": "adm1n may delete", "S3_ADMIN_ID": "AKADMIN",
           "S3_ADMIN_KEY": "s3cr3t-admin"}
SECRET = SECRETS.__getitem__


# A Redis beside the shop whose data joins every backup.
CACHE = {"image": "redis:7.2", "command": "redis-server --save 60 1", "volumes": ["cache-data:/data"],
         "healthcheck": {"command": "redis-cli ping"},
         "backup": {"command": "sh -c 'exec redis-cli --rdb -'", "file": "/data/dump.rdb"}}


def shop_inventory(tmp_path, with_database=True, accessories=None):
    """The shop's inventory and its secrets written to TMP_PATH (prod.yaml, prod.env), loaded (WITH_DATABASE
    False: the app alone, with neither database nor backups; ACCESSORIES: its accessories)."""
    (tmp_path / "id.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDuptqmDfSXBQUmUGJh op@laptop\n")
    data = {
        "host": {"address": "203.0.113.7"},
        "server": {"authorized_keys": ["id.pub"]},
        "app": {"name": "shop", "domains": ["shop.example.com"], "base_dir": "/srv/shop"},
        "services": {"api": {"image": "shop/api"}},
        "database": {"image": "postgres:17", "name": "shop", "user": "shopper", "password_secret": "DB_PASSWORD"},
        "backup": {"schedule": "*-*-* 02:30:00", "keep_daily": 10},
    }
    if not with_database:
        del data["database"], data["backup"]
    if accessories:
        data["accessories"] = accessories
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "prod.env").write_text("".join(f"{key}={value}\n" for key, value in SECRETS.items()))
    return config.load(tmp_path, "prod").inventory


def fake_bin(tmp_path, **programs):
    """A folder of fake commands (NAME=shell text) to put first on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for name, text in programs.items():
        (folder / name).write_text("#!/bin/sh\n" + text)
        (folder / name).chmod(0o755)
    return folder


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

