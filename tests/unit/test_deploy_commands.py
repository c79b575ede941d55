"""Deploy as data: release files, state parsing, release bookkeeping and the scripts, without a server."""

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from fabfile import config
from fabfile.flows import images
from fabfile.commands import layout as layouts
from fabfile.commands import archive, lock, release, shell, state, traffic
from fabfile.commands.layout import Layout

PROJECT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-$HOME-#not-a-comment"
HOSTILE = ["with space", "it's", 'dq"uote', "$(touch /tmp/slipway-pwned)", "`id`", "semi;colon", "new\nline", "*", "-n"]


def lab_inventory(tmp_path, secrets=f"DATABASE_PASSWORD='{SECRET}'\n", edit=None):
    (tmp_path / "id.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDuptqmDfSXBQUmUGJh op@laptop\n")
    (tmp_path / "pebble-api.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    lab = {"address": "127.0.0.1", "ssh_port": 2222, "user": "root", "key_file": str(tmp_path / "id"),
           "known_hosts": str(tmp_path / "id.pub"),
           "acme": {"directory": "https://pebble:14000/dir", "api_certificate": str(tmp_path / "pebble-api.pem")}}
    backup_host = {"address": "172.30.99.20", "user": "restic", "root": "/srv/restic",
                   "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBackupHost"}
    from lab.paths import render_template  # the lab inventory `inv lab.up` writes (lab/templates/)

    text = render_template("inventory.yaml.j2", lab=lab, backup_host=backup_host)
    secrets += "RESTIC_PASSWORD=offsite-password\nREDIS_PASSWORD=redis-password\n"
    data = yaml.safe_load(text)
    if edit:
        edit(data)
    (tmp_path / "id").write_text("private\n")
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "lab.env").write_text(secrets)
    return config.load(tmp_path, "lab")


@pytest.fixture
def deployment(tmp_path):
    return lab_inventory(tmp_path)


@pytest.fixture
def files(deployment):
    return {f.path: f for f in release.release_files(deployment, PROJECT, "20261122-140000", "v2", False)}


def test_release_id_is_sortable_utc_time():
    assert layouts.new_release_id(datetime(2026, 11, 22, 14, 0, 5, tzinfo=timezone.utc)) == "20261122-140005"


def test_app_images_take_the_version_unless_pinned(deployment):
    assert layouts.image_refs(deployment.inventory, "v2") == {
        "api": "slipway-demo/api:v2", "worker": "slipway-demo/api:v2",
        "db": "slipway-demo/postgres:17", "nginx": "slipway-demo/nginx:1"}
    assert layouts._tagged("registry.local:5000/team/api", "v3") == "registry.local:5000/team/api:v3"
    assert layouts._tagged("team/api@sha256:" + "a" * 64, "v3") == "team/api@sha256:" + "a" * 64


def test_compose_file_runs_app_services_unpublished_with_health_limits_and_log_rotation(files):
    compose = yaml.safe_load(files["compose.yaml"].content)
    api, worker, nginx, db = (compose["services"][name] for name in ("api", "worker", "nginx", "db"))
    assert nginx["ports"] == ["80:80", "443:443"]
    # Mounted from the first release on, so turning TLS on never re-creates nginx; live/ links into archive/.
    assert nginx["volumes"] == ["/srv/demo/shared/nginx:/etc/nginx/conf.d:ro", "/etc/letsencrypt:/etc/letsencrypt:ro",
                                "/srv/demo/shared/acme-challenge:/var/www/acme-challenge:ro",
                                "/etc/slipway/demo/tls:/etc/slipway/tls:ro"]
    assert "ports" not in api and "ports" not in worker and "ports" not in db
    assert api["image"] == "slipway-demo/api:v2" and api["deploy"]["replicas"] == 2
    assert api["deploy"]["resources"]["limits"]["memory"] == "256M"
    # No Docker health check by default: slipway probes the health path from the host, needing nothing in the image.
    assert "healthcheck" not in api
    assert api["labels"] == {"slipway.app": "demo", "slipway.release": "20261122-140000", "slipway.service": "api"}
    assert api["restart"] == "unless-stopped"
    assert api["stop_grace_period"] == "30s"
    assert api["logging"] == {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}
    assert worker["command"] == ["python3", "-m", "demo.worker"]
    assert compose["networks"]["app"] == {"name": "demo_app", "external": True}
    assert compose["volumes"]["demo_pgdata"] == {"external": True}


def test_a_health_command_is_dockers_own_check_run_inside_the_container(tmp_path):
    probe = "python3 -c 'import urllib.request as u; u.urlopen(\"http://127.0.0.1:8000/health\")'"
    deployment = lab_inventory(tmp_path, edit=lambda data: data["services"]["api"]["healthcheck"].update(command=probe))
    compose = yaml.safe_load(release.release_files(deployment, PROJECT, "r1", "v1", False)[0].content)
    assert compose["services"]["api"]["healthcheck"]["test"] == [
        "CMD", "python3", "-c", 'import urllib.request as u; u.urlopen("http://127.0.0.1:8000/health")']


def test_volumes_are_the_same_for_every_release(tmp_path):
    def with_volumes(data):
        data["services"]["api"]["volumes"] = ["uploads:/data/uploads", "./media:/srv/media:ro", "/var/log/demo:/logs"]
    deployment = lab_inventory(tmp_path, edit=with_volumes)
    renders = [yaml.safe_load(next(f for f in release.release_files(deployment, PROJECT, rid, "v1", False)
                                   if f.path == "compose.yaml").content) for rid in ("r1", "r2")]
    assert renders[0]["services"]["api"]["volumes"] == renders[1]["services"]["api"]["volumes"] == [
        "demo_uploads:/data/uploads", "/srv/demo/shared/media:/srv/media:ro", "/var/log/demo:/logs"]
    assert renders[0]["volumes"] == {"demo_pgdata": {"external": True}, "demo_uploads": {"external": True}}
    assert release.shared_items(deployment.inventory) == [
        "volume:demo_uploads", "dir:/srv/demo/shared/media", "volume:demo_pgdata",
        "dir:/srv/demo/shared/acme-challenge"]


def test_stop_grace_is_the_services_own(tmp_path):
    deployment = lab_inventory(tmp_path, edit=lambda data: data["services"]["worker"].update(stop_grace_seconds=7))
    compose = yaml.safe_load(release.release_files(deployment, PROJECT, "r1", "v1", False)[0].content)
    assert compose["services"]["worker"]["stop_grace_period"] == "7s"
    # Old containers are stopped with the timeout compose gave each of them, never a fixed one.
    assert "-t" not in shell.script_text("finish").split("docker stop")[1].split("\n")[0]


def test_env_files_are_private_and_quote_values_literally(files):
    api_env = files["env/api.env"]
    assert api_env.mode == 0o600
    assert f"DATABASE_PASSWORD='{SECRET}'" in api_env.content.splitlines()
    assert api_env.secret_keys == {"DATABASE_PASSWORD", "REDIS_PASSWORD"}


def test_the_database_container_gets_its_password_from_a_file_so_a_new_password_never_re_creates_it(files):
    db_env = files["env/db.env"].content
    assert SECRET not in db_env and "POSTGRES_PASSWORD_FILE='/run/slipway/db-password'" in db_env.splitlines()
    password = files["db-password"]
    assert password.content == SECRET and password.mode == 0o600 and password.secret
    assert password.shown(password.content) == "********\n"
    compose = yaml.safe_load(files["compose.yaml"].content)
    assert "/srv/demo/shared/db/password:/run/slipway/db-password:ro" in compose["services"]["db"]["volumes"]


def test_nginx_config_names_no_release_and_finds_the_serving_slot_per_request(files, deployment):
    conf = files["nginx.conf"].content
    later = release.release_files(deployment, PROJECT, "20270101-000000", "v9", False)
    # Another release and version render the same config: a deploy has no reason to reload nginx.
    assert next(f.content for f in later if f.path == "nginx.conf") == conf
    assert "20261122-140000" not in conf and "\nupstream " not in conf
    assert ("    set $slipway_slot blue;\n    if (-f /etc/nginx/conf.d/traffic/green-serves) {\n"
            "        set $slipway_slot green;\n    }\n") in conf
    # The serving slot's upstream group, per request; never Docker's DNS, which a daemon restart silences.
    assert "\nresolver " not in conf
    health = conf[conf.index("location = /health"):conf.index("}", conf.index("location = /health"))]
    assert "limit_req" not in health and "proxy_pass http://demo-$slipway_slot-api/health;" in health
    assert "proxy_pass http://demo-$slipway_slot-api;" in conf
    assert "proxy_next_upstream error timeout http_502 http_503 http_504;" in conf
    assert "limit_req zone=demo_per_client burst=5000 nodelay;" in conf
    for header in ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
        assert f"add_header {header}" in conf
    assert "gzip on;" in conf


def test_web_containers_answer_as_their_slots_name_and_workers_as_none(files):
    compose = yaml.safe_load(files["compose.yaml"].content)
    assert compose["services"]["api"]["networks"] == {
        "app": {"aliases": ["demo-${SLIPWAY_SLOT:?the release folder's .env names no slot}-api"]}}
    assert compose["services"]["worker"]["networks"] == ["app"]
    assert LAYOUT.slot_alias("green", "api") == "demo-green-api"


def serving_seen(tmp_path, files: dict[str, str]) -> tuple[str, str]:
    """What state.sh reports as the serving slot and release for a server holding FILES (docker absent)."""
    base = tmp_path / "srv"
    for name, text in files.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text(text)
    (tmp_path / "bin").mkdir(exist_ok=True)
    (tmp_path / "bin" / "docker").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "docker").chmod(0o755)
    layout = Layout("demo", str(base))
    output = subprocess.run(state.state_command(layout, []), capture_output=True, text=True,
                            env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}).stdout
    parsed = state.parse_state(output, layout)
    return parsed.serving_slot, parsed.serving


@pytest.mark.parametrize("files, seen", [
    ({}, ("blue", "")),
    ({"shared/nginx/traffic/green": "r2\n"}, ("blue", "")),
    ({"shared/nginx/traffic/blue": "r1\n", "shared/nginx/traffic/green": "r2\n"}, ("blue", "r1")),
    ({"shared/nginx/traffic/blue": "r1\n", "shared/nginx/traffic/green": "r2\n",
      "shared/nginx/traffic/green-serves": ""}, ("green", "r2")),
    ({"shared/nginx/app.conf": "# slipway release: r0\nupstream demo_api {\n"}, ("blue", "r0")),
], ids=["nothing yet", "a first deploy cut off before its switch", "blue serves", "green serves",
        "a release an older slipway deployed"])
def test_the_serving_release_is_the_one_in_the_slot_the_marker_picks(tmp_path, files, seen):
    assert serving_seen(tmp_path, files) == seen


def test_diff_masks_every_secret_key_on_both_sides_without_knowing_old_values(tmp_path):
    serving = lab_inventory(tmp_path / "old" if (tmp_path / "old").mkdir() is None else None,
                            secrets="DATABASE_PASSWORD=old-rotated-away\n")
    new = lab_inventory(tmp_path / "new" if (tmp_path / "new").mkdir() is None else None,
                        secrets="DATABASE_PASSWORD=brand-new-value\n")
    on_server = {f.path: f.content for f in release.release_files(serving, PROJECT, "r1", "v1", False)}
    rendered = release.release_files(new, PROJECT, "r1", "v1", False)
    diff = release.release_diff(rendered, on_server)
    assert "old-rotated-away" not in diff and "brand-new-value" not in diff
    assert diff == ""  # only secrets changed, and they are masked by key on both sides
    bumped = release.release_files(new, PROJECT, "r1", "v2", False)
    diff = release.release_diff(bumped, on_server)
    assert "-    image: slipway-demo/api:v1\n+    image: slipway-demo/api:v2" in diff
    assert "old-rotated-away" not in diff and "brand-new-value" not in diff


def test_release_tarball_keeps_modes(files):
    data = release.release_tarball(list(files.values()), {"release.json": "{}\n"})
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        modes = {member.name: member.mode for member in archive.getmembers()}
    assert modes["env/api.env"] == 0o600 and modes["compose.yaml"] == 0o644 and "release.json" in modes


LAYOUT = Layout("demo", "/srv/demo")


def record(rid, outcome, image="sha256:a"):
    return json.dumps({"id": rid, "version": "v", "outcome": outcome, "images": {"api": {"ref": "api:v", "id": image}}})


def test_state_is_parsed_from_one_round_trip():
    output = "\n".join([
        "@@slipway@@ base", "present",
        "@@slipway@@ current", "releases/20261122-120000",
        "@@slipway@@ serving", "green 20261122-130000",
        "@@slipway@@ releases", record("20261122-120000", "active"), record("20261122-130000", "active"), "{broken json",
        "@@slipway@@ images", "slipway-demo/api:v1 sha256:abc", "slipway-demo/api:v2 missing",
        "@@slipway@@ projects", "demo-20261122-130000 demo-20261122-130000-api-1", "other-x y",
        "@@slipway@@ nginx", "true",
        "@@slipway@@ db", "false",
    ])
    parsed = state.parse_state(output, LAYOUT)
    assert parsed.provisioned
    assert parsed.current == "20261122-120000" and parsed.serving == "20261122-130000"
    assert (parsed.serving_slot, parsed.standby_slot) == ("green", "blue")
    assert sorted(parsed.releases) == ["20261122-120000", "20261122-130000"]
    assert parsed.image_ids == {"slipway-demo/api:v1": "sha256:abc"}
    assert parsed.projects == {"20261122-130000": ["demo-20261122-130000-api-1"]}
    assert parsed.nginx_running
    assert not state.parse_state("@@slipway@@ base\n@@slipway@@ current\n", LAYOUT).provisioned


def test_rollback_target_is_the_newest_release_that_served_before():
    parsed = state.ServerState(releases={rid: json.loads(record(rid, outcome)) for rid, outcome in [
        ("a1", "active"), ("a2", "failed"), ("a3", "active"), ("a4", "failed")]})
    assert state.previous_healthy(parsed, "a4") == "a3"
    assert state.previous_healthy(parsed, "a3") == "a1"
    assert state.previous_healthy(parsed, "a1") is None


def test_pruning_keeps_the_newest_and_the_serving_release_and_their_images():
    parsed = state.ServerState(releases={
        "r1": json.loads(record("r1", "active", "sha256:old")),
        "r2": json.loads(record("r2", "active", "sha256:kept")),
        "r3": json.loads(record("r3", "active", "sha256:kept")),
        "r4": json.loads(record("r4", "active", "sha256:new")),
    })
    assert state.releases_to_prune(parsed, keep=2, protected={"r2"}) == ["r1"]
    assert state.unused_images(parsed, ["r1"]) == ["sha256:old"]
    assert state.unused_images(parsed, ["r2"]) == []


def test_failed_attempts_never_push_rollback_targets_out():
    releases = {f"r{i}": json.loads(record(f"r{i}", "active")) for i in range(1, 4)}
    releases |= {f"f{i}": json.loads(record(f"f{i}", "failed")) for i in range(1, 9)}
    parsed = state.ServerState(releases=releases)
    pruned = state.releases_to_prune(parsed, keep=2, protected={"r3"})
    assert {"r2", "r3"}.isdisjoint(pruned) and "r1" in pruned
    # Failed ones are kept only as extras, the newest `keep` of them.
    assert sorted(rid for rid in releases if rid.startswith("f") and rid not in pruned) == ["f7", "f8"]


SCRIPTS = sorted(shell.SCRIPTS_DIR.glob("*.sh"))


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is installed by scripts/setup")
def test_every_remote_script_passes_shellcheck():
    assert SCRIPTS, "no scripts found"
    result = subprocess.run(["shellcheck", "-s", "sh", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_every_remote_script_starts_strict_and_documents_its_usage():
    for path in SCRIPTS:
        text = path.read_text()
        assert text.startswith("#!/bin/sh\n"), path.name
        if path.name.startswith("lib_"):  # functions only, put before the scripts that use them
            assert "\nset " not in text and "$1" not in text.split("() {")[0], path.name
            continue
        assert "# Usage: " in text and ("set -eu" in text or "set -u" in text), path.name


def run_here(argv, **kwargs):
    """An argv built for the server, run on this machine exactly as the server would get it."""
    return subprocess.run(["sh", "-c", shell.line(argv)], capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_arrive_verbatim(tmp_path, value):
    folder = tmp_path / value.replace("/", "_").replace("\n", "_")  # server paths are validated: no newlines
    folder.mkdir()
    target = folder / "file"
    written = run_here(traffic.write_file_command(str(target), 0o600), input=value)
    assert written.returncode == 0, written.stderr
    assert target.read_text() == value and (target.stat().st_mode & 0o777) == 0o600
    dumped = run_here(state.dump_files_command([str(target)]))
    assert state.parse_file_dump(dumped.stdout) == {str(target): value}
    tagged = traffic.tag_images_command({"api": {"id": value, "ref": value}})
    assert tagged[-2:] == [value, value]
    assert not Path("/tmp/slipway-pwned").exists()


def test_in_run_kills_a_step_past_its_limit_and_frees_the_steps_lock(tmp_path):
    layout = Layout("demo", str(tmp_path))
    (tmp_path / ".slipway").mkdir()
    started = time.monotonic()
    result = run_here(lock.in_run(layout, ["sh", "-c", "sleep 30 & sleep 30; wait"], 1))
    assert result.returncode == 124
    assert time.monotonic() - started < 5
    # Nothing holds steps.lock any more: an exclusive lock is granted at once.
    assert subprocess.run(["flock", "-x", "-w", "1", layout.steps_lock, "true"]).returncode == 0


def hold(layout, holder, stdin_open_seconds):
    argv = lock.lock_command(layout, holder)
    return subprocess.Popen(["sh", "-c", f"sleep {stdin_open_seconds} | {shell.line(argv)}"],
                            stdout=subprocess.PIPE, text=True)


def take(layout, holder):
    return subprocess.run(["sh", "-c", shell.line(lock.lock_command(layout, holder))], input="", capture_output=True,
                          text=True)


def test_lock_admits_one_holder_and_names_it_to_the_next(tmp_path):
    layout = Layout("demo", str(tmp_path))
    first = hold(layout, {"by": "alice@laptop", "command": "deploy v2", "since": "t0", "message": "it's \"urgent\""}, 2)
    assert first.stdout.readline().strip() == "LOCKED"
    second = take(layout, {"by": "bob"})
    assert second.returncode == lock.LOCK_BUSY_EXIT
    holder = json.loads(second.stdout)
    assert lock.describe_lock(holder).startswith("alice@laptop running `deploy v2` since t0 (pid ")
    assert holder["holder"]["message"] == "it's \"urgent\""
    first.wait(timeout=10)
    assert not (tmp_path / ".slipway" / "lock.json").exists()


def test_a_detached_holder_lets_the_next_run_in_once_its_steps_finish(tmp_path):
    layout = Layout("demo", str(tmp_path))
    first = hold(layout, {"by": "alice"}, 0.5)
    assert first.stdout.readline().strip() == "LOCKED"
    step = subprocess.Popen(["sh", "-c", shell.line(lock.in_run(layout, ["sleep", "2"], 60))])
    time.sleep(1)  # alice's connection is gone (stdin closed) but her step still runs
    started = time.monotonic()
    second = take(layout, {"by": "bob"})
    assert second.returncode == 0 and second.stdout.startswith("LOCKED")
    assert time.monotonic() - started > 0.5
    step.wait(timeout=10)
    first.wait(timeout=10)


def test_stopping_the_steps_in_flight_ends_each_step_and_what_it_started(tmp_path):
    layout = Layout("demo", str(tmp_path))
    (tmp_path / ".slipway").mkdir()
    marker = tmp_path / "child-still-ran"
    step = subprocess.Popen(["sh", "-c", shell.line(lock.in_run(layout, ["sh", "-c", f"sleep 30; touch {marker}"], 60))])
    time.sleep(0.5)
    started = time.monotonic()
    stopped = run_here(lock.stop_steps_command(layout))
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped timeout" in stopped.stdout
    assert time.monotonic() - started < 5
    assert step.wait(timeout=5) != 0
    assert subprocess.run(["pgrep", "-f", f"touch {marker}"]).returncode == 1
    assert not marker.exists()


def test_stopping_steps_when_none_runs_returns_at_once(tmp_path):
    layout = Layout("demo", str(tmp_path))
    (tmp_path / ".slipway").mkdir()
    stopped = run_here(lock.stop_steps_command(layout))
    assert stopped.returncode == 0 and stopped.stdout == ""


def test_a_detached_holder_is_described_as_ending():
    record = {"pid": 7, "holder": {"by": "alice", "command": "deploy v2", "since": "t0"}, "detached": True}
    assert lock.describe_lock(record).endswith("its operator is gone and it ends once its last step does")


def test_lock_status_never_takes_a_held_lock_and_reports_the_holder(tmp_path):
    layout = Layout("demo", str(tmp_path))
    assert run_here(lock.lock_status_command(layout)).stdout.strip() == "free"
    first = hold(layout, {"by": "alice"}, 3)
    assert first.stdout.readline().strip() == "LOCKED"
    status = run_here(lock.lock_status_command(layout))
    assert json.loads(status.stdout)["holder"] == {"by": "alice"}
    first.wait(timeout=10)


def test_a_new_run_waits_out_a_holder_that_is_starting_instead_of_naming_an_unknown_holder(tmp_path):
    layout = Layout("demo", str(tmp_path))
    (tmp_path / ".slipway").mkdir()
    # Someone holds the flock for a moment with no holder record (lock.status looking, or a holder starting).
    brief = subprocess.Popen(["flock", "-x", layout.lock_file, "sleep", "1.5"])
    time.sleep(0.3)
    second = take(layout, {"by": "bob"})
    assert second.returncode == 0 and second.stdout.startswith("LOCKED"), second.stdout
    brief.wait(timeout=10)


def test_force_unlock_signals_only_the_real_holder(tmp_path):
    layout = Layout("demo", str(tmp_path))
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        for pid in ("", "0", "-1", "1; reboot", str(bystander.pid)):
            result = run_here(lock.force_unlock_command(layout, pid))
            assert result.returncode == 3, (pid, result.stderr)
            assert "nothing was signalled" in result.stderr
        assert bystander.poll() is None
    finally:
        bystander.kill()
    first = hold(layout, {"by": "ghost"}, 30)
    assert first.stdout.readline().strip() == "LOCKED"
    pid = json.loads((tmp_path / ".slipway" / "lock.json").read_text())["pid"]
    assert run_here(lock.force_unlock_command(layout, pid)).returncode == 0
    assert take(layout, {"by": "bob"}).returncode == 0
    first.kill()


def test_finish_drains_stops_old_starts_workers_and_points_current_last():
    argv = traffic.finish_command(LAYOUT, "r2", ["r1"], ["worker"], 3)
    assert argv[4:] == ["3", "demo-r2", "/srv/demo/releases/r2/compose.yaml", "/srv/demo/current", "r2",
                        "worker:worker", "old:demo-r1"]
    text = shell.script_text("finish")
    assert text.index('sleep "$drain"') < text.index("docker stop") < text.index("up -d --no-deps") < text.index("ln -sfn")


def test_releases_listing_marks_the_serving_one():
    parsed = state.ServerState(serving="r2", releases={
        "r1": {"id": "r1", "version": "v1", "time": "t1", "deployer": "a@b", "outcome": "active"},
        "r2": {"id": "r2", "version": "v2", "time": "t2", "deployer": "a@b", "outcome": "active"},
    })
    lines = state.format_releases(parsed).splitlines()
    assert lines[1].startswith("* r2") and lines[2].startswith("  r1")


def test_only_layers_the_server_lacks_are_shipped():
    manifest = [
        {"Config": "v2.json", "Layers": ["base/layer.tar", "deps/layer.tar", "app-v2/layer.tar"]},
        {"Config": "pg.json", "Layers": ["base/layer.tar", "postgres/layer.tar"]},
    ]
    diff_ids = {"v2.json": ["sha256:base", "sha256:deps", "sha256:app2"], "pg.json": ["sha256:base", "sha256:pg"]}
    # The server runs v1: same base and deps, another app layer; no postgres yet.
    chains = state.parse_state('@@slipway@@ layers\n["sha256:base", "sha256:deps", "sha256:app1"]\n', LAYOUT).layer_chains
    assert archive.layers_to_leave_out(manifest, diff_ids, chains) == {"base/layer.tar", "deps/layer.tar"}
    # A layer identical in content but on another chain is not the same layer to docker.
    assert archive.layers_to_leave_out([{"Config": "x", "Layers": ["deps/layer.tar"]}], {"x": ["sha256:deps"]}, chains) == set()


def test_the_containerd_store_gets_an_oci_layout_whose_manifest_digest_is_the_server_image_id():
    config = b'{"rootfs": {"diff_ids": ["sha256:aa", "sha256:bb"]}}'
    files = archive.oci_layout([("slipway-demo/api:v2", config, [("sha256:aa", 10), ("sha256:bb", 20)]),
                                ("nginx:1", config, [("sha256:aa", 10), ("sha256:bb", 20)])])
    index = json.loads(files["index.json"])
    names = [entry["annotations"]["io.containerd.image.name"] for entry in index["manifests"]]
    assert names == ["docker.io/slipway-demo/api:v2", "docker.io/library/nginx:1"]
    entry = index["manifests"][0]
    manifest = files[archive.blob_path(entry["digest"])]
    assert entry["digest"] == "sha256:" + hashlib.sha256(manifest).hexdigest() and entry["size"] == len(manifest)
    assert [layer["digest"] for layer in json.loads(manifest)["layers"]] == ["sha256:aa", "sha256:bb"]
    assert files[archive.blob_path(json.loads(manifest)["config"]["digest"])] == config
    # Layer blobs are the caller's, and only those the server lacks.
    assert not any(name.endswith(("/aa", "/bb")) for name in files)
    # The same image always makes the same manifest, so its digest identifies it on the server.
    assert archive.oci_layout([("slipway-demo/api:v2", config, [("sha256:aa", 10), ("sha256:bb", 20)])])[
        archive.blob_path(entry["digest"])] == manifest


def test_an_image_is_on_the_server_by_its_own_id_or_the_one_it_got_when_shipped():
    output = "\n".join(["@@slipway@@ images", "api:v1 sha256:manifest1", "db:17 sha256:config-db", "nginx:1 missing",
                        "@@slipway@@ store", "containerd",
                        "@@slipway@@ shipped", "sha256:config-api1 sha256:manifest1", "sha256:config-api1 sha256:config-api1"])
    parsed = state.parse_state(output, LAYOUT)
    assert parsed.containerd_store and parsed.shipped["sha256:config-api1"] == {"sha256:manifest1", "sha256:config-api1"}
    refs = {"api": "api:v1", "db": "db:17", "nginx": "nginx:1"}
    local = {"api:v1": "sha256:config-api1", "db:17": "sha256:config-db", "nginx:1": "sha256:config-nginx"}
    assert images.missing_on_server(refs, local, parsed) == ["nginx:1"]
    assert images.missing_on_server(refs, {**local, "api:v1": "sha256:config-api2"}, parsed) == ["api:v1", "nginx:1"]


def test_maintenance_files_go_up_allow_list_first_and_come_down_page_first(tmp_path):
    layout = Layout("demo", str(tmp_path))
    traffic_dir = Path(layout.traffic_dir)

    def run(argv, stdin=""):
        subprocess.run(argv, input=stdin, text=True, check=True)

    run(traffic.maintenance_on_command(layout, {"message": "m"}, ["203.0.113.7", "2001:db8::1"]), "<p>page</p>")
    assert (traffic_dir / "maintenance.html").read_text() == "<p>page</p>"
    assert json.loads((traffic_dir / "maintenance.json").read_text()) == {"message": "m"}
    assert sorted(p.name for p in (traffic_dir / "allow").iterdir()) == ["2001:db8::1", "203.0.113.7"]
    run(traffic.maintenance_on_command(layout, {"message": "n"}, ["198.51.100.2"]), "<p>new</p>")
    assert [p.name for p in (traffic_dir / "allow").iterdir()] == ["198.51.100.2"]
    assert (traffic_dir / "maintenance.html").read_text() == "<p>new</p>"
    run(traffic.maintenance_off_command(layout))
    assert list(traffic_dir.iterdir()) == []
    script = shell.script_text("maintenance")
    assert script.index('rm -f "$page"') < script.index('rm -rf "$allow"')
    assert script.index(': > "$allow/$address"') < script.index('mv -f "$page.new" "$page"')


def test_the_maintenance_page_escapes_what_the_operator_typed(deployment):
    page = release.maintenance_page(deployment.inventory, PROJECT, "<script>x</script> & co", "03:30 UTC")
    assert "&lt;script&gt;x&lt;/script&gt; &amp; co" in page and "Expected back by 03:30 UTC." in page


def test_rollback_skips_restarts_of_the_serving_release():
    def served(rid, restart_of=None):
        return {"id": rid, "outcome": "active", **({"restart_of": restart_of} if restart_of else {})}
    parsed = state.ServerState(releases={"a1": served("a1"), "a2": served("a2"), "a3": served("a3", "a2"),
                                         "a4": served("a4", "a3")})
    # a4 restarted a3, which restarted a2: all three are a2 started afresh; going back means a1.
    assert state.previous_healthy(parsed, "a4") == "a1"
    assert state.previous_healthy(parsed, "a2") == "a1"


def test_a_restart_copies_the_release_folder_and_puts_it_in_place_with_its_own_record(tmp_path):
    layout = Layout("demo", str(tmp_path))
    source = Path(layout.release_dir("r1"))
    (source / "env").mkdir(parents=True)
    (source / "env" / "api.env").write_text("KEY='v'\n")
    (source / "env" / "api.env").chmod(0o600)
    (source / "release.json").write_text('{"id": "r1"}\n')
    subprocess.run(traffic.copy_release_command(layout, "r1", "r2"), input='{"id": "r2"}\n', text=True, check=True)
    copy = Path(layout.release_dir("r2"))
    assert (copy / "release.json").read_text() == '{"id": "r2"}\n'
    assert (copy / "env" / "api.env").stat().st_mode & 0o777 == 0o600
    assert (source / "release.json").read_text() == '{"id": "r1"}\n'
    assert sorted(p.name for p in Path(layout.releases).iterdir()) == ["r1", "r2"]


def test_dollar_signs_in_commands_reach_the_container_as_written(tmp_path):
    def with_shell_commands(data):
        data["services"]["worker"]["command"] = ["sh", "-c", 'exec python3 -m demo.worker --workers "$WORKERS" $(id -u)']
        data["services"]["api"]["healthcheck"]["command"] = ["sh", "-c", "test -n \"$HOSTNAME\""]
    deployment = lab_inventory(tmp_path, edit=with_shell_commands)
    compose = yaml.safe_load(release.release_files(deployment, PROJECT, "r1", "v1", False)[0].content)
    # Compose reads `$$` as one literal `$`: what it hands Docker is what the inventory says.
    assert compose["services"]["worker"]["command"] == [
        "sh", "-c", 'exec python3 -m demo.worker --workers "$$WORKERS" $$(id -u)']
    assert compose["services"]["api"]["healthcheck"]["test"] == ["CMD", "sh", "-c", 'test -n "$$HOSTNAME"']


@pytest.mark.parametrize("value, written", [
    ("plain", "'plain'"),
    ("$HOME ${PATH} #no-comment", "'$HOME ${PATH} #no-comment'"),
    ("x\\", '"x\\\\"'),
    ('a\\b "q" $HOME', '"a\\\\b \\"q\\" \\$HOME"'),
])
def test_env_values_are_quoted_so_compose_reads_them_back_verbatim(value, written):
    assert release.env_value(value) == written


def test_a_key_that_stops_being_secret_never_shows_its_old_value_in_a_dry_run(tmp_path):
    def with_session_key(data):
        data["services"]["api"]["secrets"].append("SESSION_KEY")
    old = lab_inventory(tmp_path, secrets=f"DATABASE_PASSWORD='{SECRET}'\nSESSION_KEY=old-secret-4b1d\n",
                        edit=with_session_key)
    on_server = {f.path: f.content for f in release.release_files(old, PROJECT, "r1", "v1", False)}
    plain = lab_inventory(tmp_path, edit=lambda data: data["services"]["api"]["env"].update(SESSION_KEY="now-plain"))
    diff = release.release_diff(release.release_files(plain, PROJECT, "r1", "v1", False), on_server)
    assert "old-secret-4b1d" not in diff and SECRET not in diff
    assert "-SESSION_KEY=********" in diff and "+SESSION_KEY=********" in diff


def test_a_release_that_recorded_no_secret_keys_shows_only_lines_that_stay_the_same(deployment):
    api_env = next(f for f in release.release_files(deployment, PROJECT, "r1", "v1", False) if f.path == "env/api.env")
    legacy = "DATABASE_NAME='demo'\nDATABASE_USER='demo'\nFORMER_SECRET='was-secret-77'\n"
    diff = release.release_diff([api_env], {"env/api.env": legacy})
    assert "was-secret-77" not in diff and "-FORMER_SECRET=********" in diff
    assert "DATABASE_NAME='demo'" in diff


@pytest.mark.parametrize("value", ["plain", "x\\", 'a\\b "q" $HOME ${X} \\$', "#hash", ""])
def test_a_value_read_back_from_an_env_file_is_the_one_written(value):
    text = f"# comment\nOTHER='1'\nKEY={release.env_value(value)}\n"
    assert release.env_file_value(text, "KEY") == value
    assert release.env_file_value(text, "MISSING") is None
