"""`status` as data: the sections one round trip prints, read into a report and the problems that need a human."""

import json
import subprocess
from datetime import datetime, timezone

from fabfile.commands import runbook
from fabfile.commands.runbook import STATUS_MARK
from test_deploy_commands import lab_inventory

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
RELEASE = "20261123-110000"


def output(**overrides) -> str:
    sections = {
        "serving": [f"green {RELEASE}"],
        "record": [json.dumps({"id": RELEASE, "version": "v2", "time": "2026-11-23T11:00:00+00:00", "deployer": "op@laptop"})],
        "maintenance": [],
        "docker": ["26.1.5+dfsg1"],
        "containers": [
            f"/demo-{RELEASE}-api-1 demo-{RELEASE} api running healthy 2026-11-23T11:00:05.123456789Z 0 false 12582912",
            f"/demo-{RELEASE}-api-2 demo-{RELEASE} api running healthy 2026-11-23T11:00:05Z 0 false 11534336",
            f"/demo-{RELEASE}-worker-1 demo-{RELEASE} worker running - 2026-11-23T11:00:09Z 0 false 8388608",
            "/demo-db-1 demo db running healthy 2026-11-20T08:00:00Z 0 false 60817408",
            "/demo-nginx-1 demo nginx running - 2026-11-20T08:00:00Z 0 false -"],
        "disk": ["/dev/vda 263174212 68423296 181293240 28% /"],
        "inodes": ["/dev/vda 16777216 503316 16273900 3% /"],
        "host": ["MemTotal: 24684544 kB", "MemAvailable: 23799808 kB", "SwapTotal: 0 kB", "SwapFree: 0 kB",
                 "load 0.10 0.20 0.30", "cpus 2"],
        "lock": ["free"],
        "audit": [json.dumps({"time": "2026-11-23T11:00:12+00:00", "event": "deploy succeeded", "release": RELEASE,
                              "version": "v2", "by": "op@laptop"}),
                  json.dumps({"time": "2026-11-23T11:20:00+00:00", "event": "maintenance on", "by": "op@laptop"})],
        "backups": [json.dumps({"id": "20261123-100000", "time": "2026-11-23T10:00:00+00:00", "outcome": "ok",
                                "size": 1, "sha256": "x"})],
        "certificate": [json.dumps({"domains": ["demo.slipway.test"], "serial": "01", "issuer": "CN=Pebble",
                                    "not_before": int(datetime(2026, 11, 20, tzinfo=timezone.utc).timestamp()),
                                    "not_after": int(datetime(2026, 11, 26, tzinfo=timezone.utc).timestamp())})],
    }
    sections.update(overrides)
    return "\n".join(f"{STATUS_MARK} {name}\n" + "\n".join(lines) for name, lines in sections.items()) + "\n"


def report(tmp_path, **overrides) -> dict:
    return runbook.parse_status(output(**overrides), lab_inventory(tmp_path).inventory, NOW)


def test_a_healthy_host_reads_whole_and_needs_nobody(tmp_path):
    status = report(tmp_path)
    assert status["problems"] == []
    assert status["serving"] == {"release": RELEASE, "slot": "green", "version": "v2",
                                 "since": "2026-11-23T11:00:00+00:00", "deployer": "op@laptop"}
    api = status["containers"][0]
    assert (api["name"], api["release"], api["uptime_seconds"], api["memory_bytes"]) == (
        f"demo-{RELEASE}-api-1", RELEASE, 3594, 12582912)
    assert status["containers"][-1]["release"] == "" and status["containers"][-1]["memory_bytes"] is None
    assert status["host"]["filesystems"] == [{"mount": "/", "used_percent": 28, "inodes_used_percent": 3,
                                              "free_mb": 177044}]
    assert status["last_deploys"] == [{"time": "2026-11-23T11:00:12+00:00", "event": "deploy succeeded",
                                       "release": RELEASE, "version": "v2", "by": "op@laptop"}]
    assert status["certificate"]["days_left"] == 2.5 and status["backup"]["age_hours"] == 2.0
    text = runbook.format_status(status, "lab")
    assert text.startswith(f"demo on lab: serving {RELEASE} (v2) in slot green") and text.endswith("problems     none")


def test_each_thing_that_needs_a_human_is_one_problem(tmp_path):
    containers = output().split(f"{STATUS_MARK} containers\n")[1].split(f"\n{STATUS_MARK}")[0].splitlines()
    broken = [containers[0].replace("healthy 2026", "unhealthy 2026"), containers[1],
              containers[2].replace(" 0 false", " 4 true"), containers[3].replace("running healthy", "exited -")]
    status = report(tmp_path, containers=broken, disk=["/dev/vda 100 95 5 95% /"],
                    host=["MemTotal: 1000000 kB", "MemAvailable: 20000 kB", "load 9 9 9", "cpus 2"],
                    lock=[json.dumps({"pid": 7, "holder": {"by": "ghost@x", "command": "deploy v9",
                                                           "since": "2026-11-23T09:00:00+00:00"}})],
                    backups=[], certificate=[json.dumps({"domains": ["demo.slipway.test"], "serial": "01", "issuer": "x",
                                                         "not_before": int(NOW.timestamp()) - 86400 * 89,
                                                         "not_after": int(NOW.timestamp()) + 86400 * 1})])
    assert status["problems"] == [
        "demo-nginx-1 is missing",
        "demo-db-1 is exited",
        f"api: 1 of 2 containers of {RELEASE} running and healthy",
        f"demo-{RELEASE}-api-1 is unhealthy",
        f"demo-{RELEASE}-worker-1 restarted 4 times: it keeps crashing (see its logs)",
        f"demo-{RELEASE}-worker-1 was killed for lack of memory (OOM)",
        "/ is 95% full (space)",
        "memory: 19 MB available of 976 MB",
        "the deploy lock has been held by ghost@x (`deploy v9`) since 2026-11-23T09:00:00+00:00: see lock.status",
        "the certificate expires in 1.0 days and was not renewed: see tls.status",
        "no good backup (backup.max_age_hours 26): see backup.list",
    ]


def test_a_stopped_docker_is_said_first_and_nothing_is_guessed_about_containers(tmp_path):
    status = report(tmp_path, docker=["Cannot connect to the Docker daemon at unix:///var/run/docker.sock."],
                    containers=[])
    assert status["docker"].startswith("not answering (Cannot connect")
    assert status["problems"] == [f"Docker is {status['docker']}: nothing runs or can be deployed until it answers "
                                  "(sudo systemctl status docker)"]


def test_the_status_line_runs_every_section_even_when_one_fails(tmp_path):
    command = runbook.status_command(lab_inventory(tmp_path).inventory)
    for section in ("lock", "audit", "backups", "certificate"):
        assert f"echo {STATUS_MARK} {section};" in command
    assert subprocess.run(["sh", "-n", "-c", command]).returncode == 0
