"""`status` as data: the sections one round trip prints, read into a report and the problems that need a human."""

import json
import os
import shlex
import subprocess
from datetime import datetime, timezone

import pytest

from fabfile.commands import runbook, shell
from fabfile.errors import ConfigError
from fabfile.commands.doctor import doctor_checks, format_doctor
from fabfile.commands.facts import MARK, Fact, gather_command, sections
from fabfile.commands.status import format_status, parse_status, status_command
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
            "/demo-nginx-1 demo nginx running - 2026-11-20T08:00:00Z 0 false -",
            "/demo-redis - redis running healthy 2026-11-20T08:00:01Z 0 false 3145728"],
        "disk": ["/dev/vda 263174212 68423296 181293240 28% /"],
        "inodes": ["/dev/vda 16777216 503316 16273900 3% /"],
        "host": ["MemTotal: 24684544 kB", "MemAvailable: 23799808 kB", "SwapTotal: 0 kB", "SwapFree: 0 kB",
                 "load 0.10 0.20 0.30", "cpus 2"],
        "lock": ["free"],
        "nginx config": ["current"],
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
    return "\n".join(f"{MARK} {name}\n" + "\n".join(lines) for name, lines in sections.items()) + "\n"


def report(tmp_path, **overrides) -> dict:
    return parse_status(output(**overrides), lab_inventory(tmp_path).inventory, NOW)


def test_a_healthy_host_reads_whole_and_needs_nobody(tmp_path):
    status = report(tmp_path)
    assert status["problems"] == []
    assert status["serving"] == {"release": RELEASE, "slot": "green", "version": "v2",
                                 "since": "2026-11-23T11:00:00+00:00", "deployer": "op@laptop"}
    api = status["containers"][0]
    assert (api["name"], api["release"], api["uptime_seconds"], api["memory_bytes"]) == (
        f"demo-{RELEASE}-api-1", RELEASE, 3594, 12582912)
    nginx, redis = status["containers"][-2:]
    assert (nginx["release"], nginx["memory_bytes"], nginx["accessory"]) == ("", None, False)
    assert (redis["name"], redis["service"], redis["accessory"], redis["health"]) == ("demo-redis", "redis", True,
                                                                                      "healthy")
    assert status["host"]["filesystems"] == [{"mount": "/", "used_percent": 28, "inodes_used_percent": 3,
                                              "free_mb": 177044}]
    assert status["last_deploys"] == [{"time": "2026-11-23T11:00:12+00:00", "event": "deploy succeeded",
                                       "release": RELEASE, "version": "v2", "by": "op@laptop"}]
    assert status["certificate"]["days_left"] == 2.5 and status["backup"]["age_hours"] == 2.0
    text = format_status(status, "lab")
    assert text.startswith(f"demo on lab: serving {RELEASE} (v2) in slot green") and text.endswith("problems     none")


def test_each_thing_that_needs_a_human_is_one_problem(tmp_path):
    containers = output().split(f"{MARK} containers\n")[1].split(f"\n{MARK}")[0].splitlines()
    broken = [containers[0].replace("healthy 2026", "unhealthy 2026"), containers[1],
              containers[2].replace(" 0 false", " 4 true"), containers[3].replace("running healthy", "exited -"),
              containers[5].replace("running healthy", "exited -")]
    status = report(tmp_path, containers=broken, disk=["/dev/vda 100 95 5 95% /"],
                    host=["MemTotal: 1000000 kB", "MemAvailable: 20000 kB", "load 9 9 9", "cpus 2"],
                    lock=[json.dumps({"pid": 7, "holder": {"by": "ghost@x", "command": "deploy v9",
                                                           "since": "2026-11-23T09:00:00+00:00"}})],
                    backups=[], **{"nginx config": ["stale /srv/demo/shared/nginx/app.conf"]},
                    certificate=[json.dumps({"domains": ["demo.slipway.test"], "serial": "01", "issuer": "x",
                                                         "not_before": int(NOW.timestamp()) - 86400 * 89,
                                                         "not_after": int(NOW.timestamp()) + 86400 * 1})])
    assert status["problems"] == [
        "demo-nginx-1 is missing",
        "demo-db-1 is exited",
        "accessory redis is exited: accessory.restart redis starts it again (see its logs first)",
        f"api: 1 of 2 containers of {RELEASE} running and healthy",
        f"demo-{RELEASE}-api-1 is unhealthy",
        f"demo-{RELEASE}-worker-1 restarted 4 times: it keeps crashing (see its logs)",
        f"demo-{RELEASE}-worker-1 was killed for lack of memory (OOM)",
        "/ is 95% full (space)",
        "memory: 19 MB available of 976 MB",
        "the deploy lock has been held by ghost@x (`deploy v9`) since 2026-11-23T09:00:00+00:00: see lock.status",
        "the certificate expires in 1.0 days and was not renewed: see tls.status",
        "nginx runs an older config than its files (the first deploy after an upgrade leaves it so): reload it at a "
        "quiet moment (idle keep-alive connections close): docker exec demo-nginx-1 nginx -s reload",
        "no good backup (backup.max_age_hours 26): see backup.list",
    ]


def test_a_stopped_docker_is_said_first_and_nothing_is_guessed_about_containers(tmp_path):
    status = report(tmp_path, docker=["Cannot connect to the Docker daemon at unix:///var/run/docker.sock."],
                    containers=[])
    assert status["docker"].startswith("not answering (Cannot connect")
    assert status["problems"] == [f"Docker is {status['docker']}: nothing runs or can be deployed until it answers "
                                  "(sudo systemctl status docker)"]


def test_the_status_line_gathers_every_section(tmp_path):
    words = shlex.split(status_command(lab_inventory(tmp_path).inventory))
    for section in ("-", "lock", "nginx config", "audit", "backups", "certificate", "passwordless"):
        assert section in words[words.index(MARK):]
    assert subprocess.run(["sh", "-n", "-c", words[2]]).returncode == 0


def test_facts_are_gathered_at_once_and_printed_in_order_even_when_one_fails(tmp_path):
    flag = shlex.quote(str(tmp_path / "made"))
    # The first fact sees what a later one makes only if they run at the same time.
    facts = [Fact("waits", f"for i in $(seq 50); do [ -e {flag} ] && echo saw && break; sleep 0.1; done"),
             Fact("broken", "echo partial; echo why >&2; exit 3"), Fact(None, f"echo '{MARK} own'; echo 2"),
             Fact("makes", f"touch {flag}; printf '%s\\n' \"a b\"")]
    printed = subprocess.run(["sh", "-c", gather_command(facts)], capture_output=True, text=True)
    assert printed.returncode == 0 and printed.stderr == ""
    assert sections(printed.stdout) == [("waits", ["saw"]), ("broken", ["partial"]), ("own", ["2"]), ("makes", ["a b"])]


FAKE_DOCKER = """#!/bin/sh
# Docker as logs.sh sees it: two api replicas of release r2 (green serves), nginx in the app's project.
case "$1" in
  ps) case "$*" in
        *project=demo-r2\\ *) printf 'api demo-r2-api-2\\napi demo-r2-api-1\\n' ;;
        *project=demo\\ *) printf 'nginx demo-nginx-1\\ndb demo-db-1\\n' ;;
        *accessory.app=demo*accessory.name=redis*) echo demo-redis ;;
      esac ;;
  logs) for last; do :; done
        case $last in
          demo-r2-api-1) printf '2026-11-23T10:00:01Z GET /a 200\\n2026-11-23T10:00:03Z GET /c 500\\n' ;;
          demo-r2-api-2) printf '2026-11-23T10:00:02Z GET /b 200\\n' ;;
          demo-nginx-1) printf '2026-11-23T10:00:00Z nginx started\\n' ;;
          demo-redis) printf '2026-11-23T09:59:59Z Ready to accept connections\\n' ;;
        esac ;;
esac
"""


def fake_server(tmp_path, docker: str, slots: dict[str, str], green_serves: bool = False):
    """The lab inventory with its app folder under TMP_PATH, whose SLOTS hold those releases, and the environment
    to run its scripts in, where `docker` is the script DOCKER."""
    base = tmp_path / "srv"
    traffic = base / "shared" / "nginx" / "traffic"
    traffic.mkdir(parents=True)
    for slot, release in slots.items():
        (traffic / slot).write_text(f"{release}\n")
    if green_serves:
        (traffic / "green-serves").write_text("")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "docker").write_text(docker)
    (tmp_path / "bin" / "docker").chmod(0o755)
    deployment = lab_inventory(tmp_path)
    inventory = deployment.inventory.model_copy(update={"app": deployment.inventory.app.model_copy(update={"base_dir": base})})
    return inventory, {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}


def run_logs(tmp_path, services, grep="", docker=FAKE_DOCKER):
    from fabfile.commands.layout import Layout
    inventory, env = fake_server(tmp_path, docker, {"green": "r2"}, green_serves=True)
    argv = runbook.logs_command(inventory, services, False, "10m", "100", grep)
    assert Layout("demo", str(tmp_path / "srv")).traffic_dir in argv
    return subprocess.run(argv, capture_output=True, text=True, env=env)


def test_logs_of_every_replica_come_prefixed_and_in_time_order(tmp_path):
    result = run_logs(tmp_path, ["api", "nginx"])
    assert result.stdout.splitlines() == [
        "demo-nginx-1 | 2026-11-23T10:00:00Z nginx started",
        "demo-r2-api-1 | 2026-11-23T10:00:01Z GET /a 200",
        "demo-r2-api-2 | 2026-11-23T10:00:02Z GET /b 200",
        "demo-r2-api-1 | 2026-11-23T10:00:03Z GET /c 500"]


def test_an_accessorys_logs_come_from_its_container_by_its_name_or_with_all(tmp_path):
    assert run_logs(tmp_path, ["redis"]).stdout == "demo-redis | 2026-11-23T09:59:59Z Ready to accept connections\n"
    inventory = lab_inventory(tmp_path).inventory
    assert runbook.log_services(inventory, "all")[-1] == "redis"
    with pytest.raises(ConfigError, match="expected one of api, worker, nginx, db, redis, or all"):
        runbook.log_services(inventory, "queue")


def test_logs_grep_keeps_the_lines_holding_the_text_and_no_match_is_an_exit_code(tmp_path):
    assert run_logs(tmp_path, ["api"], grep=" 500").stdout == "demo-r2-api-1 | 2026-11-23T10:00:03Z GET /c 500\n"


def test_logs_of_a_service_with_no_container_exit_with_their_own_code(tmp_path):
    result = run_logs(tmp_path, ["worker"])
    assert result.returncode == runbook.NO_CONTAINERS_EXIT and "no containers of r2 for worker" in result.stderr


def test_logs_with_docker_not_answering_say_so(tmp_path):
    result = run_logs(tmp_path, ["api"], docker="#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    assert result.returncode == 1
    assert result.stderr == "Docker is not answering on the server (docker version failed): no logs to read\n"


def test_bad_logs_arguments_are_one_line_each(tmp_path):
    inventory = lab_inventory(tmp_path).inventory
    with pytest.raises(ConfigError, match=r"--since: found 'yesterday'; expected a duration like 10m"):
        runbook.logs_command(inventory, ["api"], False, "yesterday", "100", "")
    with pytest.raises(ConfigError, match=r"--tail: found '-5'; expected a number of lines or all"):
        runbook.logs_command(inventory, ["api"], False, "", "-5", "")
    with pytest.raises(ConfigError, match=r"logs web: no such service; expected one of api, worker, nginx, db, redis, or all"):
        runbook.log_services(inventory, "web")


def doctor(tmp_path, **overrides) -> dict:
    checks = doctor_checks(output(**overrides), lab_inventory(tmp_path).inventory, NOW, "prod")
    return {check["area"]: check for check in checks}


def test_doctor_on_a_healthy_host_says_ok_everywhere_it_can(tmp_path):
    checks = doctor(tmp_path, clock=["yes"], updates=["0"],
                    sshd=["permitrootlogin no", "passwordauthentication no", "kbdinteractiveauthentication no"])
    assert {area: check["verdict"] for area, check in checks.items()} == {
        "docker": "ok", "containers": "ok", "disk": "ok", "memory": "ok", "clock": "ok", "security updates": "ok",
        "deploy lock": "ok", "certificate": "ok", "backups": "ok", "database access": "ok", "ssh hardening": "ok"}
    assert checks["disk"]["detail"] == "fullest: / at 28%" and "fix" not in checks["disk"]


def test_doctor_counts_the_accessory_among_the_containers_and_fails_when_it_is_gone(tmp_path):
    assert doctor(tmp_path)["containers"]["detail"].startswith("6 running")
    containers = output().split(f"{MARK} containers\n")[1].split(f"\n{MARK}")[0].splitlines()[:-1]
    gone = doctor(tmp_path, containers=containers)["containers"]
    assert (gone["verdict"], gone["detail"]) == ("fail", "accessory redis is missing: the next deploy starts it")


def test_an_accessory_the_inventory_no_longer_names_is_a_problem_until_removed(tmp_path):
    containers = output().split(f"{MARK} containers\n")[1].split(f"\n{MARK}")[0].splitlines()
    leftover = "/demo-queue - queue running - 2026-11-20T08:00:01Z 0 false 3145728"
    assert report(tmp_path, containers=[*containers, leftover])["problems"] == [
        "accessory queue runs but is not in the inventory: accessory.remove queue --yes removes it"]


def test_password_less_lines_an_interrupted_rotation_left_are_named_once_removed(tmp_path):
    removed = report(tmp_path, passwordless=["removed 3"])
    assert removed["database_access"] == {"passwordless_lines": 3, "removed": True} and removed["problems"] == []
    assert "database     3 password-less lines an interrupted password rotation left: removed" in format_status(
        removed, "prod")
    assert doctor(tmp_path, passwordless=["removed 3"])["database access"]["verdict"] == "warn"
    # A rotation holding the lock has its lines: nothing to remove, nothing to warn of.
    assert doctor(tmp_path, passwordless=["kept 3"])["database access"]["verdict"] == "ok"
    assert report(tmp_path, passwordless=["0"])["database_access"] is None


def test_doctor_warns_before_it_fails_and_says_what_to_do(tmp_path):
    checks = doctor(tmp_path, clock=["no"], updates=["4"], disk=["/dev/vda 100 85 15 85% /"],
                    sshd=["permitrootlogin yes", "passwordauthentication no", "kbdinteractiveauthentication no"])
    assert (checks["disk"]["verdict"], checks["disk"]["detail"]) == ("warn", "/ is 85% full")
    assert (checks["clock"]["verdict"], checks["security updates"]["detail"]) == ("warn", "4 pending")
    assert checks["ssh hardening"] == {
        "area": "ssh hardening", "verdict": "fail",
        "detail": "sshd allows more than slipway set: permitrootlogin yes",
        "fix": "fab -H prod provision puts slipway's sshd settings back; fab -H prod verify checks them"}
    text = format_doctor(list(checks.values()))
    assert "FAIL  ssh hardening     sshd allows more than slipway set: permitrootlogin yes\n" in text


FAKE_COMPOSE = """#!/bin/sh
# Docker as one_off.sh sees it: says what it was asked and exits with the command's last word.
echo "docker $*"
for last; do :; done
exit "$last"
"""


def run_one_off(tmp_path, serving: bool, terminal=False):
    inventory, env = fake_server(tmp_path, FAKE_COMPOSE, {"blue": "r7"} if serving else {})
    argv = runbook.one_off_command(inventory, "api", ["sh", "-c", "exit 5", "5"], terminal, "demo-api-run-1a2b3c4d")
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)


@pytest.mark.parametrize("terminal, tty_flag", [(False, " -T"), (True, "")])
def test_a_one_off_runs_in_the_serving_releases_project_under_its_own_name_and_passes_the_status_back(
        tmp_path, terminal, tty_flag):
    result = run_one_off(tmp_path, serving=True, terminal=terminal)
    assert result.returncode == 5, result.stderr
    assert result.stdout.splitlines()[0] == (
        f"docker compose -p demo-r7 -f {tmp_path}/srv/releases/r7/compose.yaml run --rm --no-deps{tty_flag} "
        "--name demo-api-run-1a2b3c4d api sh -c exit 5 5")


def test_a_one_off_without_a_serving_release_is_one_line(tmp_path):
    result = run_one_off(tmp_path, serving=False)
    assert result.returncode == 1 and result.stderr == "error: no release serves yet; deploy first\n"


def test_one_off_names_differ_from_run_to_run(tmp_path):
    inventory = lab_inventory(tmp_path).inventory
    names = {runbook.one_off_name(inventory, "api") for _ in range(20)}
    assert len(names) == 20 and all(name.startswith("demo-api-run-") for name in names)


@pytest.mark.parametrize("worker_age, changed_ago, expected", [
    (100, 200, "current"), (100, 100, "current"), (100, 50, "stale {conf}"), (None, 50, "")])
def test_nginx_config_is_stale_when_a_file_changed_after_its_youngest_worker_started(tmp_path, worker_age,
                                                                                     changed_ago, expected):
    """nginx reads its files at start and reload only: a file newer than its workers is not what it runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    top = "PID ELAPSED COMMAND\n1 900 nginx: master process nginx -g daemon off;\n" + (
        f"7 {worker_age} nginx: worker process\n8 {worker_age + 5} nginx: worker process\n" if worker_age else "")
    (bin_dir / "docker").write_text(f"#!/bin/sh\nprintf '{top}'\n")
    (bin_dir / "docker").chmod(0o755)
    conf, other = tmp_path / "app.conf", tmp_path / "slot-blue.conf"
    conf.write_text("x")
    now = int(datetime.now().timestamp())
    os.utime(conf, (now - changed_ago, now - changed_ago))
    argv = shell.script("nginx_loaded", "demo-nginx-1", str(conf), str(other))
    result = subprocess.run(["sh", "-c", shell.line(argv)], capture_output=True, text=True,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert result.stdout.strip() == expected.format(conf=conf)
