"""Accessories as data: the inventory's rules for them, the container each becomes, the digests a deploy compares,
and the scripts that start, upgrade and remove them (run here against a Docker that records what it is told)."""

import json

import pytest
import yaml
from pydantic import SecretStr

from fabfile.commands import accessories
from fabfile.commands.layout import layout_of
from test_config import VALID, problems, write
from test_deploy_commands import lab_inventory, run_here

REDIS = {"image": "redis:7.2", "command": "redis-server --appendonly yes", "volumes": ["redis-data:/data"],
         "secrets": ["REDIS_PASSWORD"], "ports": [6379], "healthcheck": {"command": "redis-cli ping"},
         "memory_mb": 256}


def with_accessory(name="redis", **changes):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    data["accessories"] = {name: {**REDIS, **changes}}
    return data


@pytest.mark.parametrize("data, expected", [
    (with_accessory("api"), "accessories.api: found 'api'; expected an accessory name other than the services' "
                            "(api, worker), db and nginx: the app's network answers each name for one container"),
    (with_accessory("db"), "accessories.db: found 'db'; expected an accessory name other than the services' "
                           "(api, worker), db and nginx: the app's network answers each name for one container"),
    (with_accessory(ports=["6379:6379"]), "accessories.redis.ports[0]: found '6379:6379'; expected a container port "
                                          "like 6379: an accessory is reached on the app's network as NAME:PORT and "
                                          "never published on the server"),
    (with_accessory(image="redis:latest"), "accessories.redis.image: found 'redis:latest'; expected a pinned image like "
                                           "redis:7.2 (a tag other than latest, or a digest): an accessory changes "
                                           "only when accessory.upgrade is asked to"),
    (with_accessory(image="redis"), "accessories.redis.image: found 'redis'; expected a pinned image like redis:7.2 (a "
                                    "tag other than latest, or a digest): an accessory changes only when "
                                    "accessory.upgrade is asked to"),
    (with_accessory(healthcheck={"command": "redis-cli ping", "path": "/", "port": 8080}),
     "accessories.redis.healthcheck: expected either command (run inside the container, healthy on exit 0) or path "
     "and port (answering HTTP 2xx)"),
    (with_accessory(healthcheck={"path": "/health"}),
     "accessories.redis.healthcheck: expected either command (run inside the container, healthy on exit 0) or path "
     "and port (answering HTTP 2xx)"),
    (with_accessory(backup={"command": "redis-cli --rdb -"}),
     "accessories.redis.backup: expected file (where the dump goes in the container, like /data/dump.rdb) with "
     "restore: files, or restore: a command that reads the dump on stdin"),
    (with_accessory(backup={"command": "redis-cli --rdb -", "file": "data/dump.rdb"}),
     "accessories.redis.backup.file: found 'data/dump.rdb'; expected an absolute path inside the container, like "
     "/data/dump.rdb"),
], ids=lambda value: "" if isinstance(value, dict) else value.split(": ")[0])
def test_each_wrong_accessory_gets_one_precise_line_before_any_connection(inventories, data, expected):
    write(inventories, data, secrets="DATABASE_PASSWORD=x\nREDIS_PASSWORD=y\n")
    assert problems(inventories) == [f"inventories/prod.yaml: {expected}"]


def test_an_accessory_name_leaves_room_for_the_container_an_upgrade_keeps_aside(inventories):
    write(inventories, with_accessory("redis-previous"), secrets="DATABASE_PASSWORD=x\nREDIS_PASSWORD=y\n")
    assert problems(inventories) == [
        "inventories/prod.yaml: accessories.redis-previous: found 'redis-previous'; expected a name not ending in "
        "-previous: an upgrade keeps an accessory's old container aside as shop-NAME-previous"]


def test_an_accessory_shares_a_volume_with_a_service_only_when_one_of_them_only_reads_it(inventories):
    data = with_accessory()
    data["services"]["worker"]["volumes"] = ["redis-data:/var/lib/redis"]
    write(inventories, data, secrets="DATABASE_PASSWORD=x\nREDIS_PASSWORD=y\n")
    assert problems(inventories) == [
        "inventories/prod.yaml: accessories.redis.volumes[0]: found 'redis-data:/data'; expected a volume of the "
        "accessory's own: services.worker mounts redis-data too (add :ro there, or here, so only one of them writes)"]
    data["services"]["worker"]["volumes"] = ["redis-data:/var/lib/redis:ro"]
    write(inventories, data, secrets="DATABASE_PASSWORD=x\nREDIS_PASSWORD=y\n")
    assert problems_or_none(inventories) is None


def problems_or_none(inventories):
    from fabfile import config
    from fabfile.errors import ConfigError
    try:
        config.load(inventories, "prod")
    except ConfigError as error:
        return error.problems
    return None


def test_an_accessorys_secret_must_be_in_the_secrets_file(inventories):
    write(inventories, with_accessory(), secrets="DATABASE_PASSWORD=x\n")
    assert problems(inventories) == [
        "inventories/prod.env: REDIS_PASSWORD: missing; expected a line REDIS_PASSWORD=... because "
        "inventories/prod.yaml uses it at accessories.redis.secrets[0]"]


@pytest.fixture
def deployment(tmp_path):
    return lab_inventory(tmp_path)


def test_the_container_is_on_the_app_network_by_its_name_never_published_and_its_secrets_off_the_command_line(
        deployment):
    args = accessories.create_args(deployment, "redis")
    joined = " ".join(args)
    assert args[:2] == ["--name", "demo-redis"]
    assert ["--network", "demo_app", "--network-alias", "redis"] == args[args.index("--network"):][:4]
    assert "--publish" not in args and "-p" not in args
    assert ["--restart", "unless-stopped"] == args[args.index("--restart"):][:2]
    assert ["--env-file", layout_of(deployment.inventory).accessory_env_file("redis")] == \
        args[args.index("--env-file"):][:2]
    assert "--volume demo_redis-data:/data" in joined and "--memory 128m" in joined and "--log-opt max-size=10m" in joined
    assert deployment.secret("REDIS_PASSWORD") not in joined
    assert args[args.index("slipway-demo/redis:1") - 2:][:2] == ["--health-start-period", "20s"]
    assert accessories.env_file(deployment, "redis") == f"REDIS_PASSWORD={deployment.secret('REDIS_PASSWORD')}\n"


def running_as(deployment, name="redis", **settings_changes) -> accessories.Running:
    digests = {**accessories.settings(deployment, name), **settings_changes}
    return accessories.Running(name, digests, "running", "slipway-demo/redis:1", "abc", "Up 1 minute (healthy)")


def test_a_deploy_finds_which_settings_changed_and_a_rotated_secret_is_one_of_them(deployment):
    assert accessories.differences(deployment, "redis", running_as(deployment)) == []
    assert accessories.differences(deployment, "redis", running_as(deployment, image="0")) == ["image"]
    rotated = deployment.model_copy(update={"secrets": {**deployment.secrets, "REDIS_PASSWORD": SecretStr("rotated")}})
    assert accessories.differences(rotated, "redis", running_as(deployment)) == ["env"]
    digests = json.dumps(accessories.settings(deployment, "redis"))
    assert deployment.secret("REDIS_PASSWORD") not in digests


def test_the_digests_ignore_defaults_and_order_and_an_older_label_is_not_blamed_for_settings_added_since(tmp_path,
                                                                                                     deployment):
    def reordered(data):
        redis = data["accessories"]["redis"]
        redis["stop_grace_seconds"] = 30  # the default, written out
        redis["ports"] = list(reversed(redis["ports"])) + [6380]
        redis["ports"].remove(6380)

    (tmp_path / "same").mkdir()
    same = lab_inventory(tmp_path / "same", edit=reordered)
    assert accessories.differences(same, "redis", running_as(deployment)) == []
    older = {key: value for key, value in accessories.settings(deployment, "redis").items() if key != "cpus"}
    assert accessories.differences(deployment, "redis", accessories.Running(
        "redis", older, "running", "slipway-demo/redis:1", "abc", "Up")) == []


def test_the_state_line_of_an_accessory_and_of_the_container_an_upgrade_keeps_aside_are_told_apart(deployment):
    layout = layout_of(deployment.inventory)
    line = "\t".join(["demo-redis", "redis", json.dumps({"image": "x"}), "running", "redis:7", "0123456789ab",
                      "Up 2 hours (healthy)"])
    aside = line.replace("demo-redis", "demo-redis-previous", 1).replace("running", "exited")
    current, previous = accessories.parse_accessories([line, aside, "garbage"], layout)
    assert current["redis"].up(docker_checks_health=True) and current["redis"].settings == {"image": "x"}
    assert previous["redis"].state == "exited" and not previous["redis"].up(docker_checks_health=False)
    unchecked = accessories.Running("redis", {}, "running", "redis:7", "0123456789ab", "Up 2 hours")
    assert unchecked.up(docker_checks_health=False) and not unchecked.up(docker_checks_health=True)


FAKE_DOCKER = """#!/bin/sh
# A Docker that keeps its containers as files in $STATE (NAME: its state; NAME.health: its health, healthy
# unless made from an image named broken) and logs every call as its verb and the container it is about.
for last; do :; done
case $1 in
  create) for arg; do [ "${named:-}" = 1 ] && last=$arg && named=0; [ "$arg" = --name ] && named=1; done ;;
esac
echo "$1 $last" >> "$STATE/calls"
case $1 in
  container) [ -f "$STATE/$3" ] ;;
  inspect) [ -f "$STATE/$4" ] || exit 1
           case $3 in
             *State.Running*) [ "$(cat "$STATE/$4")" = running ] && echo true || echo false ;;
             *) echo "$(cat "$STATE/$4")/$(cat "$STATE/$4.health")" ;;
           esac ;;
  create) case "$*" in *broken*) health=unhealthy ;; *) health=healthy ;; esac
          while [ $# -gt 0 ]; do [ "$1" = --name ] && name=$2; shift; done
          echo created > "$STATE/$name"; echo "$health" > "$STATE/$name.health" ;;
  start) echo running > "$STATE/$2" ;;
  stop) echo exited > "$STATE/$2" ;;
  rename) mv "$STATE/$2" "$STATE/$3"; mv "$STATE/$2.health" "$STATE/$3.health" 2>/dev/null || true ;;
  rm) shift; [ "$1" = -f ] && shift; [ -f "$STATE/$1" ] || exit 1; rm -f "$STATE/$1" "$STATE/$1.health" ;;
  update|logs) ;;
esac
"""


@pytest.fixture
def docker(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "docker").write_text(FAKE_DOCKER)
    (tmp_path / "bin" / "docker").chmod(0o755)
    (tmp_path / "state").mkdir()
    return tmp_path


def start(deployment, docker, env_dir):
    argv = accessories.start_command(deployment, "redis")
    argv[argv.index(layout_of(deployment.inventory).accessory_env_file("redis"))] = str(env_dir / "redis.env")
    return run_here(argv, input="REDIS_PASSWORD=p\n",
                    env={"PATH": f"{docker / 'bin'}:/usr/bin:/bin", "STATE": str(docker / "state")})


def upgrade(deployment, docker, env_dir, image="slipway-demo/redis:2", timeout=2):
    def new_image(data):
        data["accessories"]["redis"]["image"] = image
        data["accessories"]["redis"]["healthcheck"]["timeout_seconds"] = timeout

    (env_dir.parent / "next").mkdir(exist_ok=True)
    argv = accessories.upgrade_command(lab_inventory(env_dir.parent / "next", edit=new_image), "redis")
    argv[argv.index(layout_of(deployment.inventory).accessory_env_file("redis"))] = str(env_dir / "redis.env")
    return run_here(argv, input="REDIS_PASSWORD=new\n",
                    env={"PATH": f"{docker / 'bin'}:/usr/bin:/bin", "STATE": str(docker / "state")})


def running_redis(docker, env_dir, health="healthy"):
    (docker / "state" / "demo-redis").write_text("running\n")
    (docker / "state" / "demo-redis.health").write_text(f"{health}\n")
    env_dir.mkdir(exist_ok=True)
    (env_dir / "redis.env").write_text("REDIS_PASSWORD=old\n")


def calls(docker):
    return [line for line in (docker / "state" / "calls").read_text().splitlines()
            if not line.startswith(("container ", "inspect "))]


def test_an_upgrade_stops_the_old_container_keeps_it_aside_until_the_new_one_is_healthy_then_removes_it(
        deployment, docker):
    env_dir = docker / "accessories"
    running_redis(docker, env_dir)
    result = upgrade(deployment, docker, env_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("answered again after ") and result.stdout.endswith(" ms\n")
    assert calls(docker) == ["update demo-redis", "stop demo-redis", "rename demo-redis-previous", "create demo-redis",
                             "start demo-redis", "rm demo-redis-previous"]
    assert (env_dir / "redis.env").read_text() == "REDIS_PASSWORD=new\n"
    assert sorted(path.name for path in env_dir.iterdir()) == ["redis.env"]


def test_an_upgrade_whose_new_container_never_gets_healthy_starts_the_very_old_one_again(deployment, docker):
    env_dir = docker / "accessories"
    running_redis(docker, env_dir)
    result = upgrade(deployment, docker, env_dir, image="slipway-demo/redis:broken", timeout=1)
    assert result.returncode == accessories.UNHEALTHY_EXIT
    assert result.stdout.startswith("the new container never got healthy:\n")
    assert result.stdout.endswith("the old one runs again, healthy\n")
    assert calls(docker)[-4:] == ["rm demo-redis", "rename demo-redis", "update demo-redis", "start demo-redis"]
    assert (docker / "state" / "demo-redis").read_text() == "running\n"
    assert not (docker / "state" / "demo-redis-previous").exists()
    assert (env_dir / "redis.env").read_text() == "REDIS_PASSWORD=old\n"


@pytest.mark.parametrize("left, kept", [("healthy", "the new one"), ("unhealthy", "the old one")])
def test_an_upgrade_after_one_cut_off_replaces_what_serves(deployment, docker, left, kept):
    env_dir = docker / "accessories"
    running_redis(docker, env_dir, health=left)
    (docker / "state" / "demo-redis-previous").write_text("exited\n")
    (docker / "state" / "demo-redis-previous.health").write_text("healthy\n")
    result = upgrade(deployment, docker, env_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    first = calls(docker)[:2]
    if kept == "the new one":
        assert first == ["rm demo-redis-previous", "update demo-redis"]
    else:
        assert first == ["rm demo-redis", "rename demo-redis"]
    assert not (docker / "state" / "demo-redis-previous").exists()


def test_start_creates_a_missing_accessory_with_its_env_file_private_and_leaves_a_running_one_alone(deployment, docker):
    env_dir = docker / "accessories"
    first = start(deployment, docker, env_dir)
    assert (first.returncode, first.stdout) == (0, "created\n"), first.stderr
    assert (env_dir / "redis.env").read_text() == "REDIS_PASSWORD=p\n"
    assert oct((env_dir / "redis.env").stat().st_mode & 0o777) == "0o600"
    calls = (docker / "state" / "calls").read_text()
    again = start(deployment, docker, env_dir)
    assert (again.returncode, again.stdout) == (0, "running\n")
    assert (docker / "state" / "calls").read_text().count("create ") == calls.count("create ") == 1
    (docker / "state" / "demo-redis").write_text("exited\n")
    assert start(deployment, docker, env_dir).stdout == "started\n"
    assert sorted(path.name for path in env_dir.iterdir()) == ["redis.env"]


def test_start_puts_back_the_container_an_interrupted_upgrade_kept_aside(deployment, docker):
    (docker / "state" / "demo-redis-previous").write_text("exited\n")
    result = start(deployment, docker, docker / "accessories")
    assert (result.returncode, result.stdout) == (0, "restored\n"), result.stderr
    assert (docker / "state" / "demo-redis").read_text() == "running\n"
    assert "create " not in (docker / "state" / "calls").read_text()


def test_remove_may_delete_only_the_volumes_the_accessory_alone_writes(deployment, tmp_path):
    layout = layout_of(deployment.inventory)
    argv = accessories.remove_command(layout, "redis", accessories.own_volumes(deployment.inventory, "redis"), False)
    assert argv[-5:] == ["demo-redis", "demo-redis-previous", layout.accessory_env_file("redis"), "0",
                         "demo_redis-data"]
    assert accessories.remove_command(layout, "redis", [], True)[-1] == "1"

    def read_by_the_worker(data):
        data["services"]["worker"]["volumes"] = ["redis-data:/redis:ro"]

    (tmp_path / "shared").mkdir()
    shared = lab_inventory(tmp_path / "shared", edit=read_by_the_worker)
    assert accessories.own_volumes(shared.inventory, "redis") == []


def test_exec_and_shell_run_in_the_accessorys_own_container(deployment):
    from fabfile.commands import runbook
    inventory = deployment.inventory
    assert runbook.accessory_exec_command(inventory, "redis", ["redis-cli", "info"], False) == [
        "docker", "exec", "-i", "demo-redis", "redis-cli", "info"]
    assert runbook.accessory_exec_command(inventory, "redis", ["sh"], True)[:3] == ["docker", "exec", "-it"]
