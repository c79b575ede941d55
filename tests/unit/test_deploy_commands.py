"""Deploy as data: release files, state parsing, release bookkeeping and the scripts, without a server."""

import io
import json
import shlex
import subprocess
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from fabfile import config
from fabfile.commands import deploy

PROJECT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-$HOME-#not-a-comment"


@pytest.fixture
def deployment(tmp_path):
    (tmp_path / "id.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDuptqmDfSXBQUmUGJh op@laptop\n")
    text = (PROJECT / "templates" / "lab" / "inventory.yaml.j2").read_text()
    for name, value in {"lab.address": "127.0.0.1", "lab.ssh_port": "2222", "lab.user": "root",
                        "lab.key_file": str(tmp_path / "id"), "lab.known_hosts": str(tmp_path / "id.pub")}.items():
        text = text.replace("{{ " + name + " }}", value)
    (tmp_path / "id").write_text("private\n")
    (tmp_path / "lab.yaml").write_text(text)
    (tmp_path / "lab.env").write_text(f"DATABASE_PASSWORD='{SECRET}'\n")
    return config.load(tmp_path, "lab")


@pytest.fixture
def files(deployment):
    return {f.path: f for f in deploy.release_files(deployment, PROJECT, "20261122-140000", "v2")}


def test_release_id_is_sortable_utc_time():
    assert deploy.new_release_id(datetime(2026, 11, 22, 14, 0, 5, tzinfo=timezone.utc)) == "20261122-140005"


def test_app_images_take_the_version_unless_pinned(deployment):
    assert deploy.image_refs(deployment.inventory, "v2") == {
        "api": "slipway-demo/api:v2", "worker": "slipway-demo/api:v2",
        "db": "slipway-demo/postgres:17", "nginx": "slipway-demo/nginx:1"}
    assert deploy._tagged("registry.local:5000/team/api", "v3") == "registry.local:5000/team/api:v3"
    assert deploy._tagged("team/api@sha256:" + "a" * 64, "v3") == "team/api@sha256:" + "a" * 64


def test_compose_file_runs_app_services_unpublished_with_health_limits_and_log_rotation(files):
    compose = yaml.safe_load(files["compose.yaml"].content)
    api, worker, nginx, db = (compose["services"][name] for name in ("api", "worker", "nginx", "db"))
    assert nginx["ports"] == ["80:80"]
    assert "ports" not in api and "ports" not in worker and "ports" not in db
    assert api["image"] == "slipway-demo/api:v2" and api["deploy"]["replicas"] == 2
    assert api["deploy"]["resources"]["limits"]["memory"] == "256M"
    assert api["healthcheck"]["test"] == ["CMD-SHELL", "curl -fsS -o /dev/null http://127.0.0.1:8000/health || exit 1"]
    assert api["labels"] == {"slipway.app": "demo", "slipway.release": "20261122-140000", "slipway.service": "api"}
    assert api["restart"] == "unless-stopped"
    assert api["logging"] == {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}
    assert worker["command"] == ["python3", "-m", "demo.worker"]
    assert compose["networks"]["app"] == {"name": "demo_app", "external": True}
    assert compose["volumes"] == {"demo_pgdata": {"external": True}}


def test_env_files_are_private_and_quote_values_literally(files):
    api_env = files["env/api.env"]
    assert api_env.mode == 0o600
    assert f"DATABASE_PASSWORD='{SECRET}'" in api_env.content.splitlines()
    assert "POSTGRES_PASSWORD='" in files["env/db.env"].content


def test_nginx_points_at_the_new_release_containers_only(files):
    conf = files["nginx.conf"].content
    assert conf.startswith("# slipway release: 20261122-140000\n")
    assert "server demo-20261122-140000-api-1:8000;\n    server demo-20261122-140000-api-2:8000;" in conf
    health = conf[conf.index("location = /health"):conf.index("}", conf.index("location = /health"))]
    assert "limit_req" not in health and "proxy_pass http://demo_api/health;" in health
    assert "limit_req zone=demo_per_client burst=5000 nodelay;" in conf
    for header in ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
        assert f"add_header {header}" in conf
    assert "gzip on;" in conf


def test_diff_masks_secrets_on_both_sides(files):
    on_server = {"env/api.env": files["env/api.env"].content.replace(SECRET, "old-secret-value")}
    diff = deploy.release_diff([files["env/api.env"]], on_server, (SECRET, "old-secret-value"))
    assert SECRET not in diff and "old-secret-value" not in diff
    assert diff == ""  # only the secret changed, and it is masked on both sides


def test_release_tarball_keeps_modes(files):
    data = deploy.release_tarball(list(files.values()), {"release.json": "{}\n"})
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        modes = {member.name: member.mode for member in archive.getmembers()}
    assert modes["env/api.env"] == 0o600 and modes["compose.yaml"] == 0o644 and "release.json" in modes


LAYOUT = deploy.Layout("demo", "/srv/demo")


def record(rid, outcome, image="sha256:a"):
    return json.dumps({"id": rid, "version": "v", "outcome": outcome, "images": {"api": {"ref": "api:v", "id": image}}})


def test_state_is_parsed_from_one_round_trip():
    output = "\n".join([
        "@@slipway@@ current", "releases/20261122-120000",
        "@@slipway@@ serving", "20261122-130000",
        "@@slipway@@ releases", record("20261122-120000", "active"), record("20261122-130000", "active"), "{broken json",
        "@@slipway@@ images", "slipway-demo/api:v1 sha256:abc", "slipway-demo/api:v2 missing",
        "@@slipway@@ projects", "demo-20261122-130000 demo-20261122-130000-api-1", "other-x y",
        "@@slipway@@ nginx", "true",
    ])
    state = deploy.parse_state(output, LAYOUT)
    assert state.current == "20261122-120000" and state.serving == "20261122-130000"
    assert sorted(state.releases) == ["20261122-120000", "20261122-130000"]
    assert state.image_ids == {"slipway-demo/api:v1": "sha256:abc"}
    assert state.projects == {"20261122-130000": ["demo-20261122-130000-api-1"]}
    assert state.nginx_running


def test_rollback_target_is_the_newest_release_that_served_before():
    state = deploy.ServerState(releases={rid: json.loads(record(rid, outcome)) for rid, outcome in [
        ("a1", "active"), ("a2", "failed"), ("a3", "active"), ("a4", "failed")]})
    assert deploy.previous_healthy(state, "a4") == "a3"
    assert deploy.previous_healthy(state, "a3") == "a1"
    assert deploy.previous_healthy(state, "a1") is None


def test_pruning_keeps_the_newest_and_the_serving_release_and_their_images():
    state = deploy.ServerState(releases={
        "r1": json.loads(record("r1", "active", "sha256:old")),
        "r2": json.loads(record("r2", "active", "sha256:kept")),
        "r3": json.loads(record("r3", "active", "sha256:kept")),
        "r4": json.loads(record("r4", "active", "sha256:new")),
    })
    assert deploy.releases_to_prune(state, keep=2, protected={"r2"}) == ["r1"]
    assert deploy.unused_images(state, ["r1"]) == ["sha256:old"]
    assert deploy.unused_images(state, ["r2"]) == []


@pytest.mark.parametrize("script", [
    deploy.prepare_script(LAYOUT, "r1", True, "pgdata", unpack=True),
    deploy.wait_healthy_script([("demo-r1-api-1", 8000, "/health")], 30),
    deploy.switch_nginx_script(LAYOUT, "r1", "nginx:stable", nginx_running=True),
    deploy.switch_nginx_script(LAYOUT, "r1", "nginx:stable", nginx_running=False),
    deploy.finish_script(LAYOUT, "r2", ["r1"], ["worker"], 3),
    deploy.recover_script(LAYOUT),
    deploy.state_script(LAYOUT, ["a:v1"]),
    deploy.lock_script(LAYOUT, {"by": "me"}),
    deploy.failure_report_script(["demo-r1-api-1"]),
], ids=["prepare", "wait", "switch", "first-switch", "finish", "recover", "state", "lock", "report"])
def test_scripts_are_valid_shell(script):
    result = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_finish_drains_before_stopping_old_and_points_current_last():
    script = deploy.finish_script(LAYOUT, "r2", ["r1"], ["worker"], 3).splitlines()
    assert script[1] == "sleep 3"
    assert "com.docker.compose.project=demo-r1" in script[2] and "docker stop" in script[2]
    assert script[3].endswith("up -d --no-deps worker")
    assert script[-1] == "ln -sfn releases/r2 /srv/demo/current.new && mv -T /srv/demo/current.new /srv/demo/current"


def hold(script, stdin_open_seconds):
    return subprocess.Popen(["sh", "-c", f"sleep {stdin_open_seconds} | sh -c {shlex.quote(script)}"],
                            stdout=subprocess.PIPE, text=True)


def test_lock_admits_one_holder_and_names_it_to_the_next(tmp_path):
    layout = deploy.Layout("demo", str(tmp_path))
    first = hold(deploy.lock_script(layout, {"by": "alice@laptop", "command": "deploy v2", "since": "t0"}), 2)
    assert first.stdout.readline().strip() == "LOCKED"
    second = subprocess.run(["sh", "-c", deploy.lock_script(layout, {"by": "bob"})], input="", capture_output=True, text=True)
    assert second.returncode == deploy.LOCK_BUSY_EXIT
    holder = json.loads(second.stdout)
    assert deploy.describe_lock(holder).startswith("alice@laptop running `deploy v2` since t0 (pid ")
    first.wait(timeout=10)
    assert not (tmp_path / ".slipway" / "lock.json").exists()


def test_a_detached_holder_lets_the_next_run_in_once_its_steps_finish(tmp_path):
    layout = deploy.Layout("demo", str(tmp_path))
    first = hold(deploy.lock_script(layout, {"by": "alice"}), 0.5)
    assert first.stdout.readline().strip() == "LOCKED"
    step = subprocess.Popen(["sh", "-c", deploy.in_run(layout, "sleep 2")])
    time.sleep(1)  # alice's connection is gone (stdin closed) but her step still runs
    started = time.monotonic()
    second = subprocess.run(["sh", "-c", deploy.lock_script(layout, {"by": "bob"})], input="", capture_output=True, text=True)
    assert second.returncode == 0 and second.stdout.startswith("LOCKED")
    assert time.monotonic() - started > 0.5
    step.wait(timeout=10)
    first.wait(timeout=10)


def test_releases_listing_marks_the_serving_one():
    state = deploy.ServerState(serving="r2", releases={
        "r1": {"id": "r1", "version": "v1", "time": "t1", "deployer": "a@b", "outcome": "active"},
        "r2": {"id": "r2", "version": "v2", "time": "t2", "deployer": "a@b", "outcome": "active"},
    })
    lines = deploy.format_releases(state).splitlines()
    assert lines[1].startswith("* r2") and lines[2].startswith("  r1")


def test_only_layers_the_server_lacks_are_shipped():
    manifest = [
        {"Config": "v2.json", "Layers": ["base/layer.tar", "deps/layer.tar", "app-v2/layer.tar"]},
        {"Config": "pg.json", "Layers": ["base/layer.tar", "postgres/layer.tar"]},
    ]
    diff_ids = {"v2.json": ["sha256:base", "sha256:deps", "sha256:app2"], "pg.json": ["sha256:base", "sha256:pg"]}
    # The server runs v1: same base and deps, another app layer; no postgres yet.
    chains = deploy.parse_state('@@slipway@@ layers\n["sha256:base", "sha256:deps", "sha256:app1"]\n', LAYOUT).layer_chains
    assert deploy.layers_to_leave_out(manifest, diff_ids, chains) == {"base/layer.tar", "deps/layer.tar"}
    # A layer identical in content but on another chain is not the same layer to docker.
    assert deploy.layers_to_leave_out([{"Config": "x", "Layers": ["deps/layer.tar"]}], {"x": ["sha256:deps"]}, chains) == set()
