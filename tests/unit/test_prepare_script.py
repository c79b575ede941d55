"""prepare.sh and its builder: every value a named flag's own argument, run here against a fake `docker`.

The fake docker answers as a server in a given state would and records each call, so the branches whose exit
codes and output the deploy flow reads (fabfile/flows/release.py `Activation.prepare`) run without a server.
"""

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from fabfile.commands import shell, traffic
from fabfile.commands.layout import layout_of
from fabfile.commands.release import DB_PASSWORD_FILE
from test_deploy_commands import HOSTILE, lab_inventory

RELEASE_ID = "20261201-120000"
# Each call on a line of its own, its arguments separated by the unit separator (a value may hold a newline).
FAKE_DOCKER = r"""#!/bin/sh
{ printf docker; for arg in "$@"; do printf '\037%s' "$arg"; done; printf '\036'; } >> "$DOCKER_LOG"
case "$*" in
  "inspect demo-nginx-1") [ -n "${NGINX_RUNNING-}" ] ;;
  "inspect demo-db-1") [ -n "${DB_RUNNING-}" ] ;;
  "inspect -f {{.Config.Image}} demo-nginx-1") echo slipway-demo/nginx:0 ;;
  "inspect -f {{.Config.Image}} demo-db-1") echo slipway-demo/postgres:16 ;;
  "inspect -f {{.State.Health.Status}} demo-db-1") echo healthy ;;
  "inspect -f {{range .Mounts}}{{println .Destination}}{{end}} demo-db-1")
    echo /var/lib/postgresql/data
    [ -n "${DB_OF_LAYOUT_1-}" ] || echo /run/slipway/db-password ;;
  "network inspect -f {{range .IPAM.Config}}{{.Subnet}}{{end}} demo_slots")
    [ -n "${NO_SLOT_NETWORK-}" ] && exit 1
    echo "${SLOT_SUBNET:-172.30.250.0/24}" ;;
  "network inspect -f {{range .Containers}}{{.Name}} {{end}} demo_slots") echo "${SLOT_MEMBERS-}" ;;
  *"--dry-run"*" nginx") [ -z "${NGINX_CHANGED-}" ] || echo " Container demo-nginx-1  Recreate" ;;
  *"--dry-run"*" db") [ -z "${DB_CHANGED-}" ] || echo " Container demo-db-1  Recreate" ;;
  *"--entrypoint postgres"*) echo "postgres (PostgreSQL) 17.2 (Debian 17.2-1.pgdg120+1)" ;;
  *"--entrypoint cat"*) echo "${DATA_MAJOR:-17}" ;;
  *) ;;
esac
"""
# The server's routes (ip -4 -o route show ...): ROUTES, printed whatever was asked.
FAKE_IP = r"""#!/bin/sh
{ printf ip; for arg in "$@"; do printf '\037%s' "$arg"; done; printf '\036'; } >> "$DOCKER_LOG"
[ -z "${ROUTES-}" ] || echo "$ROUTES"
"""


@pytest.fixture
def inventory(tmp_path):
    deployment = lab_inventory(tmp_path)
    inventory = deployment.inventory
    return inventory.model_copy(update={"app": inventory.app.model_copy(update={"base_dir": tmp_path / "srv"})})


def release_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in (("compose.yaml", b"services: {}\n"), (DB_PASSWORD_FILE, b"pw\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def run_prepare(tmp_path, argv, stdin=b"", **server):
    """ARGV run here as the server would run it, with the fake docker in a server state SERVER describes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("docker", FAKE_DOCKER), ("ip", FAKE_IP)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "docker.log"
    log.unlink(missing_ok=True)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "DOCKER_LOG": str(log), **{k: "1" if v is True else v
                                                                          for k, v in server.items()}}
    result = subprocess.run(["sh", "-c", shell.line(argv)], input=stdin, capture_output=True, env=env)
    calls = [call.split("\x1f")[1:] for call in log.read_text().split("\x1e")[:-1]] if log.exists() else []
    return result, calls


def flag_values(argv) -> tuple[dict[str, str | bool], list[str]]:
    """The flags prepare_command passed (valued ones as --NAME VALUE, --unpack alone) and the operands after --."""
    assert argv[:4] == ["sh", "-c", shell.script_text("prepare"), "slipway-prepare"]
    args, flags = argv[4:], {}
    while args[0] != "--":
        if args[0] == "--unpack":
            flags[args.pop(0)] = True
            continue
        flag, value, *args = args
        assert flag.startswith("--") and flag not in flags, flag
        flags[flag] = value
    return flags, args[1:]


def test_prepare_names_every_value(inventory):
    layout = layout_of(inventory)
    flags, mounts = flag_values(traffic.prepare_command(layout, inventory, RELEASE_ID, True, traffic.KEEP,
                                                        traffic.RESTART, "green"))
    assert flags == {
        "--releases": layout.releases, "--release-id": RELEASE_ID, "--slot": "green",
        "--traffic-dir": layout.traffic_dir, "--network": "demo_app", "--infra-project": "demo",
        "--nginx-container": "demo-nginx-1", "--nginx-mode": "restart",
        "--nginx-changed-exit": str(traffic.NGINX_CHANGED_EXIT), "--unpack": True,
        "--slot-network": "demo_slots", "--subnet": "172.30.250.0/24", "--ip-range": "172.30.250.0/28",
        "--subnet-exit": str(traffic.SUBNET_EXIT),
        "--db-project": "demo", "--db-mode": "keep", "--db-container": "demo-db-1",
        "--db-image": inventory.database.image, "--db-volume": "demo_pgdata",
        "--db-changed-exit": str(traffic.DB_CHANGED_EXIT), "--db-major-exit": str(traffic.DB_MAJOR_EXIT),
        "--db-password-name": DB_PASSWORD_FILE, "--db-password-file": layout.db_password_file,
        "--db-password-mount": "/run/slipway/db-password"}
    assert mounts == ["volume:demo_pgdata", f"dir:{layout.shared}/acme-challenge"]
    # An error names the script by its flags, readable as they were passed.
    assert shell.shown(traffic.prepare_command(layout, inventory, RELEASE_ID, False, traffic.LEAVE, traffic.LEAVE,
                                               "blue")).startswith(
        f"slipway-prepare --releases {layout.releases} --release-id {RELEASE_ID} --slot blue ")


def test_prepare_without_a_database_or_a_tar_passes_no_db_flags_and_no_unpack(inventory):
    inventory = inventory.model_copy(update={"database": None})
    flags, _ = flag_values(traffic.prepare_command(layout_of(inventory), inventory, RELEASE_ID, False,
                                                   traffic.KEEP, traffic.KEEP, "blue"))
    assert "--unpack" not in flags and not [flag for flag in flags if flag.startswith("--db-")]


@pytest.mark.parametrize("value", [*HOSTILE, "--unpack", "--", "--bogus"])
def test_prepare_hands_hostile_values_over_verbatim(tmp_path, inventory, value):
    """Each value one argument of the script (its text the packaged file, whatever the values), taken as
    a value even when it looks like a flag."""
    inventory = inventory.model_copy(update={"database": inventory.database.model_copy(update={"image": value})})
    layout = layout_of(inventory)
    name = value.replace("/", "_")  # the release ID and the slot name files: config validates them
    argv = traffic.prepare_command(layout, inventory, name, True, value, value, name)
    flags, _ = flag_values(argv)
    assert [flags[flag] for flag in ("--release-id", "--slot", "--nginx-mode", "--db-mode", "--db-image")] == \
        [name, name, value, value, value]
    # The database runs, its settings differ and the mode is neither restart nor leave: the image is reported.
    result, calls = run_prepare(tmp_path, argv, release_tar(), DB_RUNNING=True, DB_CHANGED=True)
    assert (result.returncode, result.stderr) == (traffic.DB_CHANGED_EXIT, b"")
    assert result.stdout.decode() == f"running: slipway-demo/postgres:16; release: {value}\n"
    release_dir = Path(layout.releases) / name
    assert (release_dir / "compose.yaml").read_text() == "services: {}\n"
    assert (release_dir / ".env").read_text() == f"SLIPWAY_SLOT={name}\n"
    assert (Path(layout.traffic_dir) / name).read_text() == f"{name}\n"
    assert ["compose", "--progress", "plain", "--dry-run", "-p", "demo", "-f", f"{release_dir}/compose.yaml",
            "up", "-d", "--no-deps", "db"] in calls
    assert not Path("/tmp/slipway-pwned").exists()


@pytest.mark.parametrize("change, message", [
    (lambda args: ["--bogus", "x", *args], "unknown flag --bogus"),
    (lambda args: ["--releases"], "--releases needs a value"),
    (lambda args: args[:args.index("--slot")] + args[args.index("--slot") + 2:], "--slot is missing"),
    (lambda args: args[:args.index("--db-image")] + args[args.index("--db-image") + 2:], "--db-image is missing"),
    (lambda args: [arg for arg in args if arg != "--"], "volume:demo_pgdata: the mounts come after --"),
])
def test_prepare_refuses_unknown_and_missing_flags_before_touching_anything(tmp_path, inventory, change, message):
    layout = layout_of(inventory)
    argv = traffic.prepare_command(layout, inventory, RELEASE_ID, True, traffic.KEEP, traffic.KEEP, "green")
    result, calls = run_prepare(tmp_path, [*argv[:4], *change(argv[4:])], release_tar())
    assert (result.returncode, result.stdout, result.stderr.decode()) == (2, b"", f"prepare.sh: {message}\n")
    assert calls == [] and not (tmp_path / "srv").exists()


def test_prepare_refuses_a_release_that_would_recreate_the_running_nginx(tmp_path, inventory):
    layout = layout_of(inventory)
    argv = traffic.prepare_command(layout, inventory, RELEASE_ID, True, traffic.KEEP, traffic.KEEP, "green")
    result, calls = run_prepare(tmp_path, argv, release_tar(), NGINX_RUNNING=True, NGINX_CHANGED=True)
    assert (result.returncode, result.stdout) == (traffic.NGINX_CHANGED_EXIT, b"running: slipway-demo/nginx:0\n")
    # Nothing made for the release beyond its folder and slot: no network, volume or database.
    assert calls[-1] == ["inspect", "-f", "{{.Config.Image}}", "demo-nginx-1"]
    assert (Path(layout.traffic_dir) / "green").read_text() == f"{RELEASE_ID}\n"
    restarted, _ = run_prepare(tmp_path, traffic.prepare_command(layout, inventory, RELEASE_ID, False, traffic.KEEP,
                                                                 traffic.RESTART, "green"),
                               NGINX_RUNNING=True, NGINX_CHANGED=True)
    assert restarted.returncode == 0, restarted.stderr


def test_prepare_restart_refuses_another_postgresql_major_and_installs_the_password(tmp_path, inventory):
    layout = layout_of(inventory)
    argv = traffic.prepare_command(layout, inventory, RELEASE_ID, True, traffic.RESTART, traffic.KEEP, "green")
    result, calls = run_prepare(tmp_path, argv, release_tar(), DB_RUNNING=True, DB_CHANGED=True, DATA_MAJOR="16")
    assert (result.returncode, result.stdout) == (traffic.DB_MAJOR_EXIT, b"image: 17; data: 16\n")
    assert Path(layout.db_password_file).read_text() == "pw\n"
    assert ["run", "--rm", "--entrypoint", "cat", "-v", "demo_pgdata:/pgdata:ro", inventory.database.image,
            "/pgdata/PG_VERSION"] in calls


def test_prepare_without_a_database_makes_the_mounts_and_stops(tmp_path, inventory):
    inventory = inventory.model_copy(update={"database": None})
    layout = layout_of(inventory)
    argv = traffic.prepare_command(layout, inventory, RELEASE_ID, True, traffic.KEEP, traffic.KEEP, "green")
    result, calls = run_prepare(tmp_path, argv, release_tar(), DB_RUNNING=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert not [call for call in calls if "db" in call or "demo-db-1" in call]
    assert (Path(layout.shared) / "acme-challenge").is_dir() and not Path(layout.db_password_file).exists()


def test_prepare_makes_the_slot_network_with_its_subnet_and_puts_nginx_on_it(tmp_path, inventory):
    layout = layout_of(inventory)
    argv = traffic.prepare_command(layout, inventory, RELEASE_ID, True, traffic.KEEP, traffic.KEEP, "green")
    result, calls = run_prepare(tmp_path, argv, release_tar(), NO_SLOT_NETWORK=True, NGINX_RUNNING=True)
    assert result.returncode == 0, result.stderr
    assert ["network", "create", "--subnet", "172.30.250.0/24", "--ip-range", "172.30.250.0/28", "demo_slots"] in calls
    assert ["network", "connect", "demo_slots", "demo-nginx-1"] in calls
    # Once made and joined, the next release changes nothing there.
    reuse = traffic.prepare_command(layout, inventory, RELEASE_ID, False, traffic.KEEP, traffic.KEEP, "green")
    again, calls = run_prepare(tmp_path, reuse, NGINX_RUNNING=True, SLOT_MEMBERS="demo-nginx-1 ")
    assert again.returncode == 0, again.stderr
    assert not [call for call in calls if call[:2] in (["network", "create"], ["network", "connect"])]


@pytest.mark.parametrize("server, detail", [
    ({"SLOT_SUBNET": "172.30.251.0/24"}, "network demo_slots has subnet 172.30.251.0/24"),
    ({"NO_SLOT_NETWORK": True, "ROUTES": "172.30.0.0/16 via 10.0.0.1 dev eth1"},
     "this server routes 172.30.0.0/16 via 10.0.0.1 there"),
])
def test_prepare_refuses_a_subnet_in_use_before_the_database_or_nginx_change(tmp_path, inventory, server, detail):
    layout = layout_of(inventory)
    argv = traffic.prepare_command(layout, inventory, RELEASE_ID, True, traffic.KEEP, traffic.KEEP, "green")
    result, calls = run_prepare(tmp_path, argv, release_tar(), NGINX_RUNNING=True, **server)
    assert (result.returncode, result.stdout.decode()) == (traffic.SUBNET_EXIT, f"{detail}\n")
    assert not [call for call in calls if call[:2] in (["network", "create"], ["network", "connect"])
                or "db" in call]


def test_a_database_made_before_the_password_file_is_kept_as_it_is_while_its_image_is_the_releases(tmp_path,
                                                                                                 inventory):
    layout = layout_of(inventory)
    same = inventory.model_copy(update={"database": inventory.database.model_copy(
        update={"image": "slipway-demo/postgres:16"})})
    argv = traffic.prepare_command(layout, same, RELEASE_ID, True, traffic.KEEP, traffic.KEEP, "green")
    running = {"DB_RUNNING": True, "DB_CHANGED": True, "DB_OF_LAYOUT_1": True}
    kept, calls = run_prepare(tmp_path, argv, release_tar(), **running)
    assert kept.returncode == 0, kept.stderr
    assert ["start", "demo-db-1"] in calls and not [call for call in calls if "up" in call and "db" in call
                                                     and "--dry-run" not in call]
    # Another image is still a change the operator has to ask for.
    other = inventory.model_copy(update={"database": inventory.database.model_copy(update={"image": "postgres:17"})})
    argv = traffic.prepare_command(layout, other, "20261201-120001", True, traffic.KEEP, traffic.KEEP, "green")
    refused, _ = run_prepare(tmp_path, argv, release_tar(), **running)
    assert (refused.returncode, refused.stdout) == (traffic.DB_CHANGED_EXIT,
                                                    b"running: slipway-demo/postgres:16; release: postgres:17\n")
