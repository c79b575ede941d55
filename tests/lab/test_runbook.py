"""The on-call commands on the provisioned lab target, with the app serving (after test_backup.py left it so)."""

import fcntl
import json
import os
import re
import secrets
import shlex
import select
import signal
import struct
import subprocess
import termios
import time

import pytest
from fabfile.commands import database as db_commands
from fabfile.commands import shell
from lab_names import LAB
from lab_server import live_release, nginx_processes, restart_nginx, wait_until
from lab_site import get
from load import LoadLoop, strict_clients

# Every test here needs the provisioned target (conftest.py's site).
pytestmark = pytest.mark.usefixtures("site")


def audit_events(as_deploy) -> list[dict]:
    return [json.loads(line) for line in as_deploy.run(f"cat {LAB.audit_log}").stdout.splitlines()]


def test_maintenance_on_and_off_under_load_answers_200_or_503_never_a_connection_error(cli, as_deploy, site):
    processes = nginx_processes(as_deploy)
    with LoadLoop(site, clients=10) as fresh, strict_clients(site, clients=10) as kept:
        time.sleep(1)
        on = cli("fab", "-H", "lab", "maintenance.on", "--message", "Moving to <new> disks", "--until", "03:30 UTC")
        time.sleep(2)
        status, page, headers = get(site, "/version")
        health = get(site, "/health")[0]
        posted, posted_page, posted_headers = site.request("POST", "/items", body="{}")
        off = cli("fab", "-H", "lab", "maintenance.off")
        time.sleep(1)
    assert on.returncode == 0 and off.returncode == 0, on.stdout + on.stderr + off.stdout + off.stderr
    assert (status, headers["Retry-After"], health) == (503, "30", 200)
    # Every method gets the page: a POST once got nginx's 405.
    assert (posted, posted_headers["Retry-After"], posted_page) == (503, "30", page)
    assert "Moving to &lt;new&gt; disks" in page and "Expected back by 03:30 UTC." in page
    for load in (fresh, kept):
        assert set(load.outcomes) == {"200", "503"}, load.failures
        assert load.outcomes["503"] > 0 and load.outcomes["200"] > 0
    assert nginx_processes(as_deploy) == processes
    assert get(site, "/version")[0] == 200
    events = [event["event"] for event in audit_events(as_deploy)[-2:]]
    assert events == ["maintenance on", "maintenance off"]


def test_maintenance_survives_an_nginx_restart_and_a_deploy_and_lets_allowed_addresses_through(cli, as_deploy, site):
    get(site, "/version")
    # The address nginx sees for this machine's requests (Docker's proxy on the target).
    address = as_deploy.run(f"docker logs --tail 1 {LAB.nginx_container} 2>/dev/null").stdout.split()[0]
    assert cli("fab", "-H", "lab", "maintenance.on").returncode == 0
    try:
        restart_nginx(as_deploy, lambda: get(site, "/version"))
        assert get(site, "/version")[0] == 503
        deployed = cli("fab", "-H", "lab", "deploy", "--version", "v2")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert get(site, "/version")[0] == 503
        allowed = cli("fab", "-H", "lab", "maintenance.on", "--allow", address, "--allow", "203.0.113.7")
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        assert get(site, "/version")[:2] == (200, '{"version": "v2"}')
        assert cli("fab", "-H", "lab", "maintenance.on", "--allow", "203.0.113.7").returncode == 0
        assert get(site, "/version")[0] == 503
    finally:
        assert cli("fab", "-H", "lab", "maintenance.off").returncode == 0
    assert get(site, "/version")[:2] == (200, '{"version": "v2"}')


def test_a_bad_allowed_address_is_one_line_and_changes_nothing(cli, as_deploy):
    before = as_deploy.run(f"ls -A {LAB.traffic_dir}").stdout
    refused = cli("fab", "-H", "lab", "maintenance.on", "--allow", "10.0.0.300")
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("error: --allow: found '10.0.0.300'; expected a client IP address like "
                                      "203.0.113.7")
    assert refused.stdout == "" and as_deploy.run(f"ls -A {LAB.traffic_dir}").stdout == before


def status(cli) -> tuple[int, dict, str]:
    result = cli("fab", "-H", "lab", "status", "--json")
    assert "Traceback" not in result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def test_status_on_a_healthy_host_shows_everything_and_exits_0(cli, as_deploy):
    shown = cli("fab", "-H", "lab", "status")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert shown.stdout.rstrip().endswith("problems     none")
    code, report, _ = status(cli)
    serving = report["serving"]
    live = live_release(as_deploy)
    assert serving["release"] == live and serving["version"] in ("v1", "v2")
    api = [c for c in report["containers"] if c["release"] == live and c["service"] == "api"]
    assert len(api) == 2 and all(c["health"] == "healthy" and c["memory_bytes"] > 2**20 for c in api)
    assert {c["name"] for c in report["containers"]} >= {LAB.nginx_container, LAB.db_container}
    assert report["certificate"]["present"] and report["certificate"]["days_left"] > 0
    assert report["backup"]["newest_good"] and report["lock"] == {"held": False}
    assert report["last_deploys"][0]["event"] in ("deploy succeeded", "rolled back")
    assert {f["mount"] for f in report["host"]["filesystems"]} >= {"/"} and report["host"]["cpus"] >= 1


def doctor_and_logs(cli) -> tuple[int, dict, subprocess.CompletedProcess]:
    """`doctor --json` (its exit status and checks by area) and `logs all`, as on-call runs them on a broken
    host: each answers, and neither prints a traceback."""
    doctor = cli("fab", "-H", "lab", "doctor", "--json")
    logs = cli("fab", "-H", "lab", "logs", "all", "--tail", "20")
    for result in (doctor, logs):
        assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return doctor.returncode, {check["area"]: check for check in json.loads(doctor.stdout)}, logs


def start_db_command() -> str:
    """Start the stopped database container and wait until it takes connections."""
    db = LAB.db_container
    return f"docker start {db} && until docker exec {db} pg_isready -q; do sleep 0.5; done"


def stopping(which: str) -> tuple[str, str, str]:
    """For WHICH container (db or nginx): the command that stops it, the one that starts it again (the database
    taking connections), and the problem status names."""
    if which == "db":
        return f"docker stop {LAB.db_container}", start_db_command(), f"{LAB.db_container} is exited"
    nginx = LAB.nginx_container
    return f"docker stop {nginx}", f"docker start {nginx}", f"{nginx} is exited"


@pytest.mark.parametrize("which", ["db", "nginx"], ids=["db stopped", "nginx stopped"])
def test_status_names_a_stopped_container_and_exits_1(cli, as_deploy, which):
    break_it, mend, problem = stopping(which)
    as_deploy.run(break_it)
    try:
        code, report, _ = status(cli)
        doctor, checks, logs = doctor_and_logs(cli)
    finally:
        as_deploy.run(mend)
    assert code == 1 and problem in report["problems"], report["problems"]
    assert doctor == 1 and checks["containers"]["verdict"] == "fail" and problem in checks["containers"]["detail"]
    # A stopped container's log is still there to read.
    assert logs.returncode == 0 and f"\n{problem.split()[0]} | " in f"\n{logs.stdout}", logs.stdout + logs.stderr


def test_status_names_a_crash_looping_container(cli, as_deploy):
    worker = as_deploy.run("docker ps --filter label=slipway.service=worker --format '{{.Names}}'").stdout.split()[0]
    # The worker's process dies three times (a crash to Docker: `docker kill` would be a manual stop, which
    # its restart policy respects); Docker brings it back each time.
    for restarts in range(1, 4):
        as_deploy.run(f"kill -KILL $(docker inspect -f '{{{{.State.Pid}}}}' {worker}); "
                      # Running comes before its process ID: never `kill 0`.
                      f"until [ \"$(docker inspect -f '{{{{.RestartCount}}}} {{{{.State.Running}}}} "
                      f"{{{{ne .State.Pid 0}}}}' {worker})\" = '{restarts} true true' ]; do sleep 0.2; done",
                      root=True, timeout=60)
    try:
        code, report, _ = status(cli)
        doctor, checks, logs = doctor_and_logs(cli)
    finally:  # a new worker container starts its restart count from 0
        as_deploy.run(f"cd {LAB.current} && docker compose -p \"{LAB.app}-$(basename \"$(readlink -f .)\")\" "
                      "-f compose.yaml up -d --force-recreate --no-deps worker")
    assert code == 1 and f"{worker} restarted 3 times: it keeps crashing (see its logs)" in report["problems"]
    assert doctor == 1 and f"{worker} restarted 3 times" in checks["containers"]["detail"]
    assert logs.returncode == 0 and f"\n{worker} | " in f"\n{logs.stdout}"


def test_status_names_a_nearly_full_filesystem(cli, as_deploy):
    folder = LAB.backups
    as_deploy.run(f"set -e; rm -rf /run/backups-copy; cp -a {folder} /run/backups-copy; "
                  f"mount -t tmpfs -o size=1m,mode=0750,uid=$(id -u deploy),gid=$(id -g deploy) slipway-full {folder}; "
                  f"head -c 980k /dev/zero > {folder}/filler", root=True)
    try:
        code, report, _ = status(cli)
        doctor, checks, logs = doctor_and_logs(cli)
    finally:
        as_deploy.run(f"umount {folder}; rm -rf /run/backups-copy", root=True)
    assert code == 1
    assert any(p.startswith(f"{folder} is 9") and p.endswith("% full (space)") for p in report["problems"]), report
    assert doctor == 1 and checks["disk"]["verdict"] == "fail" and f"{folder} is 9" in checks["disk"]["detail"]
    assert logs.returncode == 0


def test_status_with_dockers_daemon_stopped_says_so_and_exits_1(cli, as_deploy, site):
    as_deploy.run("systemctl stop docker.socket docker.service", root=True)
    try:
        code, report, _ = status(cli)
        doctor, checks, logs = doctor_and_logs(cli)
        run = cli("fab", "-H", "lab", "exec", "api", "true")
    finally:
        as_deploy.run("systemctl start docker.service && until docker info >/dev/null 2>&1; do sleep 0.5; done",
                      root=True)
    assert code == 1 and report["docker"].startswith("not answering")
    assert report["problems"][0].startswith("Docker is not answering") and report["serving"]["release"]
    assert doctor == 1 and checks["docker"]["verdict"] == "fail"
    assert logs.returncode == 1 and logs.stderr.strip().endswith(
        "Docker is not answering on the server (docker version failed): no logs to read"), logs.stderr
    assert run.returncode != 0 and "Traceback" not in run.stderr and "docker" in run.stderr.lower(), run.stderr
    for _ in range(60):  # containers come back with the daemon (live-restore keeps them running meanwhile)
        if status(cli)[0] == 0:
            break
        time.sleep(1)
    assert status(cli)[0] == 0
    # Docker's DNS, which nginx finds the serving slot by, answers in nginx's network namespace only some
    # seconds after the daemon does: the tests after this one need the site whole again.
    streak, deadline = 0, time.monotonic() + 60
    while streak < 10 and time.monotonic() < deadline:
        try:
            streak = streak + 1 if get(site, "/version")[0] == 200 else 0
        except OSError:
            streak = 0
        time.sleep(0.5)
    assert streak == 10


def test_status_of_an_unreachable_host_is_one_line(variant):
    fab = variant(lambda data: data["host"].update(port=1))
    result = fab("status")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [text for text in result.stderr.splitlines() if text.startswith("error:")]
    assert len(errors) == 1 and "cannot connect to deploy@[127.0.0.1]:1" in errors[0], result.stderr


def test_logs_show_every_replica_prefixed_filtered_and_in_time_order(cli, as_deploy, site):
    # nginx picks the first of the addresses Docker's DNS gave it in the last second, so requests through it
    # may all land on one replica: each replica is asked directly, turn by turn, to be sure both have lines.
    release = as_deploy.run(f"basename \"$(readlink -f {LAB.current})\"").stdout.strip()
    replicas = [LAB.container(release, "api", index) for index in (1, 2)]
    probe = f"logs-probe-{time.time_ns()}"
    for index in range(6):
        as_deploy.run(f"docker exec {replicas[index % 2]} curl -sS -o /dev/null 'http://127.0.0.1:8000/version?{probe}={index}'")
    get(site, f"/version?{probe}-edge=1")
    shown = cli("fab", "-H", "lab", "logs", "api", "--tail", "200", "--grep", f"{probe}=")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert [text.split(" | ")[0] for text in lines] == replicas * 3, shown.stdout
    assert [re.search(rf"GET /version\?{probe}=(\d)", text).group(1) for text in lines] == list("012345"), shown.stdout
    stamps = [text.split(" | ")[1].split()[0] for text in lines]
    assert stamps == sorted(stamps)
    nginx = cli("fab", "-H", "lab", "logs", "nginx", "--since", "5m", "--grep", f"{probe}-edge=1")
    assert nginx.returncode == 0 and nginx.stdout.startswith(f"{LAB.nginx_container} | "), nginx.stdout + nginx.stderr


def test_logs_follow_streams_until_ctrl_c_and_leaves_nothing_running(cli, as_deploy, site):
    following = subprocess.Popen([str(cli.__globals__["BIN"] / "fab"), "-H", "lab", "logs", "api", "--follow",
                                  "--tail", "0", "--grep", "followed="], cwd=cli.__globals__["PROJECT"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        get(site, "/version?followed=1")
        line = following.stdout.readline()
        replica = re.escape(LAB.app) + r"-\d{8}-\d{6}-api-[12] \| "
        assert "GET /version?followed=1" in line and re.match(replica, line), line
        following.send_signal(signal.SIGINT)
        assert following.wait(timeout=10) == 0
    finally:
        following.kill()
    assert "Traceback" not in following.stderr.read()
    wait_until(lambda: as_deploy.run("pgrep -fa '[d]ocker logs' || true").stdout == "", 10,
               "every `docker logs` on the server to end", interval=0.5)
    assert as_deploy.run("pgrep -fa '[d]ocker logs' || true").stdout == ""


def test_restart_starts_the_serving_release_afresh_with_no_failed_request(cli, as_deploy, site):
    before, processes = live_release(as_deploy), nginx_processes(as_deploy)
    version = json.loads(get(site, "/version")[1])["version"]
    with strict_clients(site) as load:
        restarted = cli("fab", "-H", "lab", "restart", "all")
        time.sleep(1)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert load.failed == 0 and load.total > 100, load.failures
    now = live_release(as_deploy)
    assert now != before and f"{before} ({version}) restarted as {now}" in restarted.stdout
    record = json.loads(as_deploy.run(f"cat {LAB.release_dir(now)}/release.json").stdout)
    assert (record["restart_of"], record["version"], record["outcome"]) == (before, version, "active")
    assert "release command" not in restarted.stdout and nginx_processes(as_deploy) == processes
    assert re.search(rf"^\* {now} .* active \(restart of {before}\)$", cli("fab", "-H", "lab", "releases").stdout, re.M)
    assert audit_events(as_deploy)[-1]["event"] == "restarted"


def test_restart_of_a_worker_is_in_place_and_a_bad_name_is_one_line(cli, as_deploy):
    worker = as_deploy.run("docker ps --filter label=slipway.service=worker --format '{{.Names}}'").stdout.strip()
    started = as_deploy.run(f"docker inspect -f '{{{{.State.StartedAt}}}}' {worker}").stdout
    restarted = cli("fab", "-H", "lab", "restart", "worker")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert as_deploy.run(f"docker inspect -f '{{{{.State.StartedAt}}}}' {worker}").stdout != started
    refused = cli("fab", "-H", "lab", "restart", "web")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "error: restart web: no such service; expected one of api, worker, or all"


def test_doctor_gives_each_area_a_verdict_and_fails_on_a_stopped_database(cli, as_deploy):
    healthy = cli("fab", "-H", "lab", "doctor", "--json")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    checks = {check["area"]: check for check in json.loads(healthy.stdout)}
    assert set(checks) == {"docker", "containers", "disk", "memory", "clock", "security updates", "deploy lock",
                           "certificate", "backups", "database access", "ssh hardening"}
    assert checks["ssh hardening"]["verdict"] == checks["docker"]["verdict"] == checks["containers"]["verdict"] == "ok"
    as_deploy.run(f"docker stop {LAB.db_container}")
    try:
        broken = cli("fab", "-H", "lab", "doctor")
    finally:
        as_deploy.run(start_db_command())
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert re.search(rf"^FAIL  containers +{re.escape(LAB.db_container)} is exited(;.*)?\n +fix: fab -H lab logs all",
                     broken.stdout, re.M), \
        broken.stdout


KILL = "kill"  # a step's action: SIGKILL fab, as when the operator's laptop dies


FIRST_KEYS_AFTER_SECONDS = 1


def in_terminal(cli, args, steps, rows=40, cols=123, timeout=90) -> tuple[int, str, list[float]]:
    """`fab -H lab ARGS` in a terminal of ROWS x COLS, driven by STEPS, (pattern, action) pairs taken in turn:
    once PATTERN shows up in what fab printed since the previous step, ACTION runs: bytes are typed, a
    (rows, cols) pair resizes the terminal, KILL ends fab. Returns fab's exit status, what it printed, and
    when each step ran."""
    master, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    # A session of its own whose controlling terminal this is, as in a terminal window.
    process = subprocess.Popen([str(cli.__globals__["BIN"] / "fab"), "-H", "lab", *args], cwd=cli.__globals__["PROJECT"],
                               stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True,
                               preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(terminal)
    seen, since, times, deadline = b"", 0, [], time.monotonic() + timeout
    pending = list(steps)
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:  # the terminal's other side closed: fab ended
                    break
            if pending and (found := re.search(pending[0][0], seen[since:])):
                since += found.end()
                action = pending.pop(0)[1]
                if not times:
                    # The program's first prompt can come before docker has finished attaching the terminal
                    # and given it its size: keys typed within those milliseconds are lost or see a 0 x 0
                    # window. A person takes longer than this to start typing.
                    time.sleep(FIRST_KEYS_AFTER_SECONDS)
                times.append(time.monotonic())
                if action == KILL:
                    process.kill()
                    break
                if isinstance(action, tuple):
                    # The kernel tells fab (SIGWINCH), and fab the server.
                    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", *action, 0, 0))
                else:
                    os.write(master, action)
            if process.poll() is not None and not select.select([master], [], [], 0.2)[0]:
                break
        try:
            return process.wait(timeout=10), seen.decode(errors="replace"), times
        except subprocess.TimeoutExpired:  # still running: what it printed says where it stood
            return None, seen.decode(errors="replace"), times
    finally:
        process.kill()
        os.close(master)


def one_off_containers(as_deploy) -> str:
    return as_deploy.run("docker ps -aq --filter label=com.docker.compose.oneoff=True").stdout.strip()


def test_exec_runs_in_a_one_off_container_with_the_releases_env_and_passes_the_exit_status_back(cli, as_deploy, site):
    version = json.loads(get(site, "/version")[1])["version"]
    shown = cli("fab", "-H", "lab", "exec", "api", "sh -c 'echo version=$APP_VERSION; exit 7'")
    assert shown.returncode == 7 and f"version={version}" in shown.stdout, shown.stdout + shown.stderr
    assert one_off_containers(as_deploy) == ""
    refused = cli("fab", "-H", "lab", "exec", "web", "true")
    assert refused.stderr.strip() == "error: exec web: no such service or accessory; expected one of api, worker, redis"


def test_shell_and_psql_are_real_terminals(cli):
    prompt = rb"[#$] $"
    code, seen, times = in_terminal(cli, ["shell", "api"], [
        (prompt, b"stty size; sleep 60\r"), (rb"40 123\r+\n", b"\x03"), (prompt, (50, 100)),
        (rb"", b"sleep 1; stty size; exit 5\r")])
    assert code == 5 and len(times) == 4, seen
    # Ctrl-C stopped the sleep in the container at once, and the new window size reached it.
    assert times[2] - times[1] < 10 and re.search(r"\b50 100\r+\n", seen), seen
    code, seen, _ = in_terminal(cli, ["psql"], [(rb"=# $", b"select 40 + 2 as answer;\r\\q\r")])
    assert code == 0 and re.search(r"answer\s+-+\s+42\s", seen), seen


def test_a_command_after_a_double_dash_runs_on_the_host_as_the_deploy_user_and_passes_its_exit_status_back(cli, variant):
    shown = cli("fab", "-H", "lab", "--", f"id -un; test -w {LAB.base} && echo can-write-the-app; exit 3")
    assert shown.returncode == 3 and shown.stdout.split() == ["deploy", "can-write-the-app"], shown.stdout + shown.stderr
    assert "Traceback" not in shown.stderr
    # The inventory's connection, not ~/.ssh/config's idea of a host called "lab".
    unreachable = variant(lambda data: data["host"].update(port=1))("--", "true")
    assert unreachable.returncode == 1 and unreachable.stderr.strip().endswith(
        "error: lab: cannot connect to deploy@[127.0.0.1]:1: [Errno None] Unable to connect to port 1 on 127.0.0.1"), unreachable.stderr
    no_host = cli("fab", "--", "true")
    assert no_host.returncode == 1 and no_host.stderr.strip() == "error: fab -- CMD: name the inventory to run it on: fab -H NAME -- CMD"


def test_a_one_off_whose_operator_is_killed_is_removed_with_a_terminal_or_without(cli, as_deploy):
    process = subprocess.Popen([str(cli.__globals__["BIN"] / "fab"), "-H", "lab", "exec", "api", "sleep 300"],
                               cwd=cli.__globals__["PROJECT"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not one_off_containers(as_deploy) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert one_off_containers(as_deploy), "exec's container never started"
    process.kill()
    process.wait()
    code, seen, _ = in_terminal(cli, ["shell", "api"], [(rb"[#$] $", KILL)])
    assert code == -signal.SIGKILL, seen
    deadline = time.monotonic() + 30
    while one_off_containers(as_deploy) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert one_off_containers(as_deploy) == ""


def opens_the_database(as_deploy, password: str) -> bool:
    """PASSWORD logs in as the app does: over the app network, with a password."""
    address = as_deploy.run("docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "
                            + LAB.db_container).stdout.strip()
    return as_deploy.run(f"docker exec -e PGPASSWORD={shlex.quote(password)} {LAB.db_container} psql -X -h {address} "
                         f"-U {LAB.db_user} -d {LAB.db_name} -Atc 'SELECT 1'", check=False).ok


def passwordless_lines(as_deploy) -> int:
    hba_file = f"$(psql -U {LAB.db_user} -Atc \"SHOW hba_file\")"
    return int(as_deploy.run(f"docker exec {LAB.db_container} sh -c 'grep -c slipway \"{hba_file}\"'",
                             check=False).stdout.strip())


def test_a_new_database_password_is_refused_by_deploy_and_rotated_with_no_failed_request(cli, variant, as_deploy, site,
                                                                                          lab_deployment):
    old, new = lab_deployment.secret("DATABASE_PASSWORD"), f"rotated-{secrets.token_hex(8)}"
    serving = live_release(as_deploy)

    def never_healthy(data):
        data["services"]["api"]["healthcheck"].update(path="/nope", timeout_seconds=5)
    failed = variant(never_healthy, extra_secrets={"DATABASE_PASSWORD": new})("db.rotate-password")
    assert failed.returncode == 1 and "password rotation failed at 'start api (2 new beside the old), wait until healthy'" in failed.stderr
    assert "put the old password back" in failed.stdout and "Traceback" not in failed.stderr
    assert opens_the_database(as_deploy, old) and not opens_the_database(as_deploy, new)
    assert live_release(as_deploy) == serving and passwordless_lines(as_deploy) == 0
    assert audit_events(as_deploy)[-1]["event"] == "password rotation failed"

    fab = variant(lambda data: None, extra_secrets={"DATABASE_PASSWORD": new})
    refused, dry_run = fab("deploy"), fab("deploy", "--dry-run")
    assert refused.returncode == 1 and "DATABASE_PASSWORD in lab.env does not open the database" in refused.stderr
    assert dry_run.returncode == 1 and "DATABASE_PASSWORD in lab.env does not open the database" in dry_run.stderr
    assert "db.rotate-password" in refused.stderr and live_release(as_deploy) == serving
    assert audit_events(as_deploy)[-1]["event"] == "deploy failed"

    with strict_clients(site, clients=20, path="/items") as load:
        time.sleep(1)
        rotated = fab("db.rotate-password")
        time.sleep(1)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert load.failures == [] and load.outcomes["200"] > 100, load.outcomes
    assert opens_the_database(as_deploy, new) and not opens_the_database(as_deploy, old)
    assert passwordless_lines(as_deploy) == 0 and live_release(as_deploy) != serving
    assert new not in rotated.stdout + rotated.stderr and old not in rotated.stdout + rotated.stderr
    assert fab("db.rotate-password").stdout.strip().endswith("nothing to rotate")
    # Neither password reached PostgreSQL's log; a database made anew later gets the new one, from a file
    # only the deploy user's folder leads to.
    db_log = as_deploy.run(f"docker logs {LAB.db_container} 2>&1").stdout
    assert new not in db_log and old not in db_log
    assert as_deploy.run(f"stat -c '%a %U' {LAB.shared}/db {LAB.shared}/db/password").stdout == "700 deploy\n644 deploy\n"
    assert as_deploy.run(f"cat {LAB.shared}/db/password").stdout == new
    assert get(site, "/items")[0] == 200

    back = cli("fab", "-H", "lab", "db.rotate-password")
    assert back.returncode == 0, back.stdout + back.stderr
    assert opens_the_database(as_deploy, old) and get(site, "/items")[0] == 200


def test_a_rollback_to_a_release_from_before_a_rotation_is_refused_with_nothing_changed(cli, variant, as_deploy, site):
    fab = variant(lambda data: None, extra_secrets={"DATABASE_PASSWORD": f"rotated-{secrets.token_hex(8)}"})
    rotated = fab("db.rotate-password")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    serving = live_release(as_deploy)
    try:
        refused = fab("rollback")
        assert refused.returncode == 1
        assert "has a database password that no longer opens the database" in refused.stderr
        assert "fab -H lab deploy --version" in refused.stderr and "Traceback" not in refused.stderr
        assert live_release(as_deploy) == serving and get(site, "/items")[0] == 200
    finally:
        back = cli("fab", "-H", "lab", "db.rotate-password")
        assert back.returncode == 0, back.stdout + back.stderr


def test_password_less_lines_go_when_a_rotation_is_killed_and_a_deploy_removes_any_left(cli, variant, as_deploy, site,
                                                                                          lab_deployment, tmp_path):
    variant(lambda data: None, extra_secrets={"DATABASE_PASSWORD": f"rotated-{secrets.token_hex(8)}"})
    argv = [str(cli.__globals__["BIN"] / "fab"), "-H", "lab", "db.rotate-password"]
    process = subprocess.Popen(argv, cwd=cli.__globals__["PROJECT"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=dict(os.environ, FABRIC_SLIPWAY_INVENTORY_DIR=str(tmp_path / "inventories")))
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "without a password" in line:
            process.kill()  # the SSH connection dies with the process; no finally of slipway's runs
            break
    process.wait(timeout=60)
    assert any("without a password" in line for line in seen), "".join(seen)
    deadline = time.monotonic() + 90
    while passwordless_lines(as_deploy) and time.monotonic() < deadline:
        time.sleep(1)
    assert passwordless_lines(as_deploy) == 0
    # Back to the lab's own password, whichever step the kill met.
    back = cli("fab", "-H", "lab", "db.rotate-password")
    assert back.returncode == 0, back.stdout + back.stderr

    # Lines left some other way (a watcher that never ran): the next deploy finds and removes them.
    as_deploy.run(shell.line(db_commands.trust_serving_command(lab_deployment.inventory)))
    assert passwordless_lines(as_deploy) > 0
    deployed = cli("fab", "-H", "lab", "deploy")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "removed the password-less lines of an interrupted rotation" in deployed.stdout
    assert passwordless_lines(as_deploy) == 0 and get(site, "/items")[0] == 200
    # And status, and doctor, with the lock free.
    for task in ("status", "doctor"):
        as_deploy.run(shell.line(db_commands.trust_serving_command(lab_deployment.inventory)))
        seen = cli("fab", "-H", "lab", task)
        assert "password-less lines an interrupted password rotation left" in seen.stdout, seen.stdout
        assert passwordless_lines(as_deploy) == 0
