"""Lab command lines, checked against the flags ../shared/LAB.md records as working."""

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from lab import commands as lab

NAMES = lab.LabNames(prefix="slipway-lab", suite="trixie")
LAB_TEMPLATES = Path(__file__).resolve().parents[2] / "lab" / "templates"


def test_target_runs_with_the_checked_flags_and_the_loopback_ports_it_keeps_when_restarted():
    argv = shlex.split(lab.run_target_command(NAMES, "SHA256:abc", {"ssh": 40022, "http": 40080, "https": 40443}))
    assert "--privileged" not in argv
    for flag in (["--cap-add", "ALL"], ["--cap-drop", "SYS_RESOURCE"], ["--security-opt", "systempaths=unconfined"],
                 ["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"], ["-v", "slipway-lab-target-docker:/var/lib/docker"],
                 ["--tmpfs", "/run"]):
        assert any(argv[i:i + 2] == flag for i in range(len(argv))), flag
    published = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-p"]
    assert published == ["127.0.0.1:40022:22", "127.0.0.1:40080:80", "127.0.0.1:40443:443"]
    assert argv[-2:] == ["slipway-lab/target:trixie", "/sbin/init"]
    assert "slipway-lab.key=SHA256:abc" in argv


def test_debootstrap_uses_its_default_mirror_unless_one_is_configured():
    assert lab.debootstrap_command("trixie", Path("/var/tmp/r")).endswith(" trixie /var/tmp/r")
    assert lab.debootstrap_command("trixie", Path("/var/tmp/r"), "http://mirror.internal/debian").endswith(
        " trixie /var/tmp/r http://mirror.internal/debian")


def test_parse_published_ports_keeps_loopback_bindings_by_role():
    output = "22/tcp -> 127.0.0.1:32770\n80/tcp -> 127.0.0.1:32769\n443/tcp -> 0.0.0.0:32768\n"
    assert lab.parse_published_ports(output) == {"ssh": 32770, "http": 32769}


def test_removal_takes_the_container_and_its_docker_volume():
    assert lab.remove_target_commands(NAMES) == [
        "docker rm --force --volumes slipway-lab-target",
        "docker volume rm --force slipway-lab-target-docker slipway-lab-target-containerd",
    ]


def test_the_acme_ca_has_a_fixed_address_and_the_target_answers_as_the_apps_domains():
    argv = shlex.split(lab.run_pebble_command(NAMES))
    assert argv[argv.index("--ip") + 1] == lab.PEBBLE_ADDRESS and argv[argv.index("--network-alias") + 1] == "pebble"
    assert argv[-1] == "slipway-lab/pebble:trixie"
    assert lab.connect_command(NAMES, "slipway-lab-target", lab.TARGET_DOMAINS) == (
        "docker network connect --alias demo.slipway.test --alias www.demo.slipway.test "
        "slipway-lab-net slipway-lab-target")


def test_the_rest_server_is_on_the_lab_network_with_only_its_admin_port_published_on_loopback():
    argv = shlex.split(lab.run_rest_server_command(NAMES, "SHA256:abc"))
    assert argv[argv.index("--network") + 1] == "slipway-lab-net"
    assert argv[argv.index("--ip") + 1] == lab.REST_SERVER_ADDRESS
    assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "-p"] == [f"127.0.0.1::{lab.REST_ADMIN_PORT}"]
    assert "slipway-lab.key=SHA256:abc" in argv and argv[-1] == "slipway-lab/rest-server:trixie"
    output = f"{lab.REST_ADMIN_PORT}/tcp -> 127.0.0.1:32790\n{lab.REST_ADMIN_PORT}/tcp -> [::1]:32790\n"
    assert lab.parse_published_ports(output, {"admin": lab.REST_ADMIN_PORT}) == {"admin": 32790}
    assert lab.remove_rest_server_command(NAMES) == "docker rm --force --volumes slipway-lab-rest"


def test_htpasswd_files_take_the_password_on_stdin_and_appear_whole():
    command = lab.write_htpasswd_command("append", lab.REST_USER)
    assert command == ("umask 077 && htpasswd -B -i -c /etc/rest-server/append.htpasswd.new demo "
                       "&& mv -f /etc/rest-server/append.htpasswd.new /etc/rest-server/append.htpasswd")
    assert lab.htpasswd_matches_command("admin", lab.REST_ADMIN_USER) == \
        "htpasswd -v -i /etc/rest-server/admin.htpasswd operator"
    start = (LAB_TEMPLATES / "rest-server" / "start.sh").read_text()
    assert "--listen :8000 --append-only --htpasswd-file \"$dir/append.htpasswd\"" in start
    assert "--listen :8001 --htpasswd-file \"$dir/admin.htpasswd\"" in start


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is installed by scripts/setup")
def test_the_lab_images_scripts_pass_shellcheck():
    scripts = sorted(LAB_TEMPLATES.rglob("*.sh"))
    assert scripts
    result = subprocess.run(["shellcheck", "-s", "sh", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
