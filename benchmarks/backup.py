"""How fast a backup, a restore and a verify are, on a few hundred MB of data.

    .venv/bin/python benchmarks/backup.py [--megabytes 300] [--runs 3]

Needs the deployed lab (`./scripts/demo`). It fills a table `bench_rows` in
the demo database up to about --megabytes, then measures on the server:
a raw `pg_dump -Fc > /dev/null` in the db container (the issue's floor), the same
with slipway's compression (zstd from PostgreSQL 16: its own overhead), slipway's
own backup script without its offsite copy (dump, checksum, row counts in
the same snapshot, fsync, rename), the offsite copy of that backup, and
then `backup.verify` and `backup.restore` as an operator runs them (the
restore's own step: restore into a new database and swap). It prints each
time as a median and the dump throughput of slipway as a ratio to the raw
dump (the goal is 0.9 or more). The table is dropped at the end.
"""

from __future__ import annotations

import argparse
import re
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(PROJECT))

from fabfile import config, ssh  # noqa: E402
from fabfile.commands import backup as backups  # noqa: E402
from fabfile.commands.layout import layout_of  # noqa: E402
from fabfile.remote import Remote  # noqa: E402

FILL_SQL = """DROP TABLE IF EXISTS bench_rows;
CREATE TABLE bench_rows (id bigint PRIMARY KEY, a text, b text, at timestamptz);
INSERT INTO bench_rows SELECT g, md5(g::text), md5((g * 7)::text), now() - g * interval '1 second'
  FROM generate_series(1, :rows) g;
"""
STEP = re.compile(r"^\[lab\] (?P<name>.+?) +(?:ok|changed|failed) +(?P<seconds>\d+\.\d+)s")


def timed(remote: Remote, command: str) -> tuple[float, str]:
    """COMMAND's wall time measured on the server (no SSH in it), and its output."""
    result = remote.run(f"start=$(date +%s%N); {command}; echo; echo elapsed_ms $(( ($(date +%s%N) - start) / 1000000 ))",
                        timeout=3600)
    lines = result.stdout.strip().splitlines()
    return int(lines[-1].split()[1]) / 1000, "\n".join(lines[:-1])


def fab(*args: str) -> dict[str, float]:
    result = subprocess.run([str(BIN / "fab"), "-H", "lab", *args], cwd=PROJECT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"fab {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return {m["name"]: float(m["seconds"]) for m in map(STEP.match, result.stdout.splitlines()) if m}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    deployment = config.load(PROJECT / "inventories", "lab")
    inventory = deployment.inventory
    paths = layout_of(inventory)
    db, user, name = f"{inventory.app.name}-db-1", inventory.database.user, inventory.database.name
    conn = ssh.open_connection(ssh.connection(inventory.host, "lab", "inv lab.up", user=inventory.server.deploy_user),
                               "lab", ssh.known_hosts_file(inventory.host), "inv lab.up")
    remote = Remote(conn, "lab")
    psql = f"docker exec -i {db} psql -X -q -U {user} -d {name} -v ON_ERROR_STOP=1"
    try:
        rows = args.megabytes * 1024 * 1024 // 110  # about 110 bytes a row on disk
        remote.run(f"{psql} -v rows={rows}", stdin=FILL_SQL, timeout=3600)
        size = remote.run(f"{psql} -tAc \"SELECT pg_size_pretty(pg_database_size('{name}'))\"").stdout.strip()
        print(f"database {name}: {size}")

        local_conf = "/tmp/slipway-bench-backup.conf"
        remote.run(f"grep -v '^OFFSITE_REPOSITORY=' {paths.backup_conf} > {local_conf}")
        raw, raw_same, ours, offsite = [], [], [], []
        for _ in range(args.runs):
            raw.append(timed(remote, f"docker exec {db} pg_dump -Fc -U {user} -d {name} > /dev/null")[0])
            # The same compression as slipway's (zstd from PostgreSQL 16): what its own overhead is measured against.
            raw_same.append(timed(remote, f"docker exec {db} sh -c 'if [ \"$(pg_dump --version | sed -n \"s/.* \\([0-9]*\\)\\..*/\\1/p\")\" -ge 16 ]; "
                                          f"then exec pg_dump -Fc --compress=zstd -U {user} -d {name}; "
                                          f"else exec pg_dump -Fc -U {user} -d {name}; fi' > /dev/null")[0])
            seconds, output = timed(remote, shlex.join(["sh", backups.installed_script("backup.sh"), local_conf, "manual"]))
            ours.append(seconds)
            backup_id = output.split()[-4]
            if inventory.backup.offsite:
                offsite.append(timed(remote, shlex.join(backups.offsite_argv(paths, "upload", backup_id)))[0])
        dump_size = int(output.split()[-3])
        verify = fab("backup.verify", backup_id)
        restore = fab("backup.restore", backup_id, "--yes")
        raw_median, ours_median = statistics.median(raw), statistics.median(ours)
        same_median = statistics.median(raw_same)
        print(f"dump {dump_size / 1e6:.0f} MB, medians of {args.runs} runs:")
        print(f"  raw pg_dump -Fc > /dev/null  {raw_median:6.1f}s   (-Fc's default gzip)")
        print(f"  raw, slipway's compression   {same_median:6.1f}s   (zstd from PostgreSQL 16)")
        print(f"  slipway backup (local)       {ours_median:6.1f}s   throughput ratio {raw_median / ours_median:.2f} to raw -Fc "
              f"(goal >= 0.9); {same_median / ours_median:.2f} to the same compression (slipway's own overhead)")
        if offsite:
            print(f"  offsite copy (restic, SFTP)  {statistics.median(offsite):6.1f}s")
        print(f"  backup.verify                {sum(verify.values()):6.1f}s   (restore into a throwaway container, row counts)")
        print(f"  backup.restore               {restore.get('restore into a new database, swap it in', 0.0):6.1f}s   "
              f"(restore and swap; the whole command with its safety backup: {sum(restore.values()):.1f}s)")
    finally:
        remote.run(f"{psql} -c 'DROP TABLE IF EXISTS bench_rows'", check=False)
        remote.close()


if __name__ == "__main__":
    main()
