"""The flows' failure branches, driven by a transport that replays scripted outputs (tests/unit/scripted_remote.py).

What the server then does is proven in the lab; these prove what each flow sends when a step fails:
what is recorded, undone, audited and said.
"""

import base64
import io
import json
import re
import shlex
from pathlib import Path

import pytest

from fabfile.commands import database as db_commands
from fabfile.commands import traffic
from fabfile.commands.layout import layout_of
from fabfile.errors import SlipwayError
from fabfile.flows import database as database_flow
from fabfile.flows import deploy as deploy_flow
from fabfile.flows import restore as restore_flow
from fabfile.flows.locked import LockedRun, recover
from fabfile.flows.rollback import rollback
from fabfile.remote import Reporter
from scripted_remote import ScriptedRemote, Server
from test_deploy_commands import lab_inventory

PROJECT = Path(__file__).resolve().parents[2]
SERVING = "20261130-100000"
OLDER = "20261129-100000"


def registry_pulls(data):
    """The lab inventory with images pulled from a registry (shipping reads this machine's Docker), no TLS and no
    backup before migrations (the TLS and backup flows check their installed files: their own business), and no
    accessories (test_accessory_flows.py has theirs)."""
    data["images"] = {"source": "registry", "registry": "registry.test:5000"}
    del data["accessories"]
    data["tls"] = {"enabled": False}
    data["backup"]["before_deploy"] = False


@pytest.fixture
def deployment(tmp_path):
    return lab_inventory(tmp_path, edit=registry_pulls)


@pytest.fixture
def layout(deployment):
    return layout_of(deployment.inventory)


def scripted(layout, server: Server) -> ScriptedRemote:
    remote = ScriptedRemote("lab")
    remote.on(r"^slipway-state ", answer=lambda _: server.output(layout))
    remote.on(r"^slipway-pull ", answer=lambda shown: "".join(f"{ref} sha256:{index}\n" for index, ref
                                                              in enumerate(shown.split()[1:])))
    return remote


def reporter() -> Reporter:
    return Reporter("lab", out=io.StringIO())


def audits(remote: ScriptedRemote) -> list[str]:
    return [event["event"] for event in remote.audit_events()]


def last_record(remote: ScriptedRemote, layout, release_id: str) -> dict:
    return json.loads(remote.ran(f"^slipway-write_file {layout.release_dir(release_id)}/release.json ")[-1].stdin)


def deploy(remote, deployment) -> deploy_flow.Plan:
    plan = deploy_flow.plan(deployment, PROJECT, "v2", dry_run=False)
    deploy_flow.deploy(remote, reporter(), plan, restart_db=False, restart_nginx=False)
    return plan


def test_a_release_that_never_gets_healthy_is_recorded_failed_removed_and_the_old_one_keeps_serving(deployment, layout):
    remote = scripted(layout, Server(serving=SERVING).release(SERVING))
    remote.on(r"^slipway-wait_healthy ", stdout="unhealthy: demo-x-api-1", exited=traffic.UNHEALTHY_EXIT)
    remote.on(r"^slipway-failure_report ", stdout="demo-x-api-1 said: boom\n")
    with pytest.raises(SlipwayError) as raised:
        deploy(remote, deployment)
    release_id = json.loads(remote.ran(r"^slipway-append_audit ")[0].stdin)["release"]
    assert str(raised.value).startswith(f"lab: deploy failed at 'start api (2 new beside the old), wait until healthy': "
                                        f"{release_id} (v2) got no traffic; {SERVING} still serves.\n")
    assert "demo-x-api-1 said: boom" in str(raised.value)
    assert not remote.ran(r"^slipway-switch_nginx ")
    assert remote.ran(f"^slipway-discard demo-{release_id}$")
    record = last_record(remote, layout, release_id)
    assert record["outcome"] == "failed" and record["detail"].startswith("start api (2 new beside the old), wait until healthy: ")
    assert audits(remote) == ["deploy started", "deploy failed"]


def test_a_switch_that_failed_after_traffic_moved_is_trusted_to_the_server_and_the_release_kept(deployment, layout):
    server = Server(serving=SERVING).release(SERVING)
    remote = scripted(layout, server)

    def moved_then_failed(_):
        server.serving, server.slot = release_of(remote), "green"
        return ""

    remote.on(r"^slipway-switch_nginx ", answer=moved_then_failed, exited=1, stderr="nginx: reload timed out")
    with pytest.raises(SlipwayError) as raised:
        deploy(remote, deployment)
    release_id = release_of(remote)
    assert f"{release_id} (v2) serves, but its last steps did not finish" in str(raised.value)
    assert not remote.ran(f"^slipway-discard demo-{release_id}$")
    assert last_record(remote, layout, release_id)["outcome"] == "active"


def release_of(remote: ScriptedRemote) -> str:
    return remote.audit_events()[0]["release"]


def test_a_release_nginx_cannot_reach_moves_traffic_back_and_is_removed(deployment, layout):
    remote = scripted(layout, Server(serving=SERVING).release(SERVING))
    remote.on(r"^slipway-switch_nginx ", exited=traffic.MISROUTED_EXIT, stderr="HTTP 502")
    with pytest.raises(SlipwayError) as raised:
        deploy(remote, deployment)
    release_id = release_of(remote)
    assert f"/health did not answer through nginx once traffic moved to it (HTTP 502); {SERVING} serves again" \
        in str(raised.value)
    assert remote.ran(f"^slipway-discard demo-{release_id}$")
    assert last_record(remote, layout, release_id)["outcome"] == "failed"


def test_ctrl_c_mid_step_stops_the_step_on_the_server_puts_nginx_back_and_records_the_attempt(deployment, layout):
    remote = scripted(layout, Server(serving=SERVING).release(SERVING))
    remote.on(r"^slipway-wait_healthy ", raises=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        deploy(remote, deployment)
    shown = [call.shown for call in remote.calls]
    stopped = shown.index(next(s for s in shown if s.startswith("slipway-stop_steps ")))
    assert shown[stopped + 1].startswith("slipway-recover ")
    release_id = release_of(remote)
    assert remote.ran(f"^slipway-discard demo-{release_id}$")
    assert last_record(remote, layout, release_id)["detail"] == "start api (2 new beside the old), wait until healthy: interrupted"
    assert audits(remote)[-1] == "deploy failed"


def test_a_password_the_database_refuses_stops_the_deploy_before_recovery_or_any_change(deployment, layout):
    remote = scripted(layout, Server(serving=SERVING).release(SERVING))
    remote.on(r"^slipway-db_access ", exited=db_commands.WRONG_PASSWORD_EXIT)
    with pytest.raises(SlipwayError, match="DATABASE_PASSWORD in lab.env does not open the database"):
        deploy(remote, deployment)
    assert not remote.ran(r"^slipway-(recover|pull|prepare) ")
    assert audits(remote) == ["deploy started", "deploy failed"]


def test_recovery_records_what_an_interrupted_run_left_and_points_current_at_the_serving_release(layout):
    server = Server(serving=SERVING).release(OLDER).release(SERVING, outcome="pending") \
        .release("20261130-110000", outcome="pending")
    remote = scripted(layout, server)
    remote.first(r"^slipway-state ", once=True, answer=lambda _: server.output(layout).replace(
        f"{layout.releases}/{SERVING}", f"{layout.releases}/{OLDER}"))
    remote.on(r"^slipway-recover ", stdout="restored\n")
    state = recover(LockedRun(remote, layout, 60), reporter(), layout, [], "prod")
    assert last_record(remote, layout, SERVING)["outcome"] == "active"
    interrupted = last_record(remote, layout, "20261130-110000")
    assert interrupted["outcome"] == "failed" and interrupted["detail"] == "interrupted before it took traffic"
    assert remote.ran(f"^slipway-current {SERVING} {layout.current}$")
    assert state.current == SERVING


def test_rollback_to_a_release_that_never_served_changes_nothing(deployment, layout):
    remote = scripted(layout, Server(serving=SERVING).release(OLDER, outcome="failed").release(SERVING))
    with pytest.raises(SlipwayError, match=f"{OLDER} never served \\(outcome failed\\)"):
        rollback(remote, reporter(), deployment, OLDER)
    assert not remote.ran(r"^slipway-(prepare|switch_nginx|append_audit|discard) ")


def test_rollback_to_a_release_an_earlier_slipway_made_is_refused_naming_its_version(deployment, layout):
    """Its nginx config would send nginx back to Docker's DNS, which fails requests while Docker restarts."""
    older = Server(serving=SERVING).release(OLDER).release(SERVING)
    del older.releases[OLDER]["layout"]
    remote = scripted(layout, older)
    with pytest.raises(SlipwayError) as raised:
        rollback(remote, reporter(), deployment, OLDER)
    assert str(raised.value) == (f"lab: {OLDER} was deployed by a slipway whose nginx config asks Docker's DNS for "
                                 "the containers (requests get a 502 while Docker restarts); deploy its version "
                                 "instead: fab -H lab deploy --version v1")
    assert not remote.ran(r"^slipway-(prepare|switch_nginx|append_audit|discard) ")


def test_rollback_to_a_release_whose_password_was_rotated_since_is_refused_before_anything_changes(deployment, layout):
    remote = scripted(layout, Server(serving=SERVING).release(OLDER).release(SERVING))
    remote.on(r"^slipway-dump_files ", answer=lambda shown: dumped_env(shown, "DATABASE_PASSWORD=old-one\n"))
    remote.on(r"^slipway-db_access ", exited=db_commands.WRONG_PASSWORD_EXIT)
    with pytest.raises(SlipwayError, match=f"{OLDER} \\(v1\\) has a database password that no longer opens"):
        rollback(remote, reporter(), deployment, OLDER)
    assert not remote.ran(r"^slipway-(prepare|switch_nginx|append_audit|discard) ")


def dumped_env(shown: str, text: str) -> str:
    """dump_files.sh's answer: each asked-for path, then its contents in base64."""
    mark = shown.split()[1]
    return "".join(f"{mark} {path}\n{base64.b64encode(text.encode()).decode()}\n" for path in shown.split()[2:])


def rotation(deployment, layout, failing: str) -> ScriptedRemote:
    remote = scripted(layout, Server(serving=SERVING).release(SERVING))
    remote.on(r"^slipway-dump_files ", answer=lambda shown: dumped_env(shown, "DATABASE_PASSWORD=old-one\n"))
    remote.on(r"^slipway-db_access \S+ \S+ \S+ \S+ verifier", stdout="SCRAM-SHA-256$old-verifier\n")
    remote.on(r"^slipway-db_access \S+ \S+ \S+ \S+ check", exited=db_commands.WRONG_PASSWORD_EXIT)
    remote.on(failing, exited=1, stderr="it broke")
    return remote


def test_a_rotation_whose_new_release_never_serves_puts_the_old_password_back_and_ends_password_less_access(
        deployment, layout):
    remote = rotation(deployment, layout, r"^slipway-wait_healthy ")
    with pytest.raises(SlipwayError, match=re.escape("password rotation failed at 'start api (2 new beside the old), wait until healthy'")):
        database_flow.rotate_password(remote, reporter(), deployment)
    sets = [call.stdin for call in remote.ran(r"^slipway-db_access \S+ \S+ \S+ \S+ set")]
    assert len(sets) == 2 and "old-verifier" in sets[1] and "old-verifier" not in sets[0]
    shown = [call.shown for call in remote.calls]
    assert shown.index(remote.ran(r"^slipway-db_access \S+ \S+ \S+ \S+ untrust")[-1].shown) > \
        shown.index(remote.ran(r"^slipway-db_access \S+ \S+ \S+ \S+ set")[-1].shown)


def test_a_rotation_that_fails_before_the_password_changed_leaves_the_password_alone(deployment, layout):
    remote = rotation(deployment, layout, r"^slipway-copy-release ")
    with pytest.raises(SlipwayError):
        database_flow.rotate_password(remote, reporter(), deployment)
    assert not remote.ran(r"^slipway-db_access \S+ \S+ \S+ \S+ set")
    assert remote.ran(r"^slipway-db_access \S+ \S+ \S+ \S+ untrust")


@pytest.fixture(autouse=True)
def no_settling(monkeypatch):
    monkeypatch.setattr(restore_flow, "MAINTENANCE_SETTLE_SECONDS", 0)


def in_maintenance(deployment, layout, remote, already_on: bool = False, accessories: dict | None = None):
    accessories = accessories or {}
    if already_on:
        remote.on(r"^slipway-maintenance-state ", stdout='{"by": "op"}')
    else:
        remote.on(r"^slipway-maintenance-state ", exited=1)
    return lambda: restore_flow._restore_in_maintenance(
        LockedRun(remote, layout, 60), reporter(), deployment, PROJECT, SERVING,
        restore_flow.Source("/srv/demo/backups/x.dump", "", "0" * 64, "x", accessories, []), lambda: {"id": "safety"})


def test_a_restore_whose_swap_fails_brings_the_app_back_and_ends_maintenance(deployment, layout):
    remote = scripted(layout, Server(serving=SERVING))
    remote.on(r"^sh /usr/local/lib/slipway/restore\.sh ", exited=1, stderr="pg_restore: error: out of space")
    with pytest.raises(Exception, match="out of space"):
        in_maintenance(deployment, layout, remote)()
    order = [call.shown.split()[0] if not call.shown.startswith("docker") else call.shown.split()[6]
             for call in remote.calls if call.shown.startswith(("slipway-maintenance ", "sh ", "docker compose"))]
    assert order == ["slipway-maintenance", "stop", "sh", "start", "slipway-maintenance"]
    assert remote.ran(r"^slipway-maintenance \S+ off$")


def test_maintenance_an_operator_turned_on_before_a_failed_restore_stays_on(deployment, layout):
    remote = scripted(layout, Server(serving=SERVING))
    remote.on(r"^sh /usr/local/lib/slipway/restore\.sh ", exited=1, stderr="pg_restore: error")
    with pytest.raises(Exception):
        in_maintenance(deployment, layout, remote, already_on=True)()
    assert not remote.ran(r"^slipway-maintenance ")
    assert remote.ran(r"^docker compose .* start ")


RESTORE_ACCESSORY = r"^sh /usr/local/lib/slipway/restore_accessory\.sh "


def restores(remote, layout):
    """What the restore ran, in order: an accessory's restore (NAME DUMP's file name), the database's, the start."""
    ran = []
    for call in remote.calls:
        words = call.shown.split()
        if re.match(RESTORE_ACCESSORY, call.shown):
            ran.append(f"{words[-2]} {words[-1].rsplit('/', 1)[1]}")
        elif call.shown.startswith("sh /usr/local/lib/slipway/restore.sh "):
            ran.append("database")
        elif call.shown.startswith("docker compose") and words[6] == "start":
            ran.append("start")
    return ran


@pytest.fixture
def with_redis(tmp_path):
    """The lab inventory with its Redis accessory, whose data joins every backup."""
    def edit(data):
        redis = data["accessories"]
        registry_pulls(data)
        data["accessories"] = redis
    return lab_inventory(tmp_path, edit=edit)


def test_a_restore_whose_database_fails_gives_the_accessories_the_safety_backups_data_again(with_redis, layout):
    remote = scripted(layout, Server(serving=SERVING))
    remote.on(r"^sh /usr/local/lib/slipway/restore\.sh ", exited=4, stderr="pg_restore failed, the database is as it was")
    chosen = {"redis": (layout.backup_accessory("20261201-030000", "redis"), "0" * 64)}
    with pytest.raises(Exception, match="the database is as it was"):
        in_maintenance(with_redis, layout, remote, accessories=chosen)()
    assert restores(remote, layout) == ["redis 20261201-030000.accessory-redis", "database",
                                        "redis safety.accessory-redis", "start"]


def test_a_restore_whose_accessory_fails_never_touches_the_database_and_puts_the_accessory_back(with_redis, layout):
    remote = scripted(layout, Server(serving=SERVING))
    remote.on(RESTORE_ACCESSORY + r".* /srv/demo/backups/20261201-030000\.", exited=1,
              stderr="accessory redis is not healthy after the restore: unhealthy: demo-redis=exited/-")
    chosen = {"redis": (layout.backup_accessory("20261201-030000", "redis"), "0" * 64)}
    with pytest.raises(Exception, match="not healthy after the restore"):
        in_maintenance(with_redis, layout, remote, accessories=chosen)()
    assert restores(remote, layout) == ["redis 20261201-030000.accessory-redis", "redis safety.accessory-redis",
                                        "start"]
    assert remote.ran(r"^slipway-maintenance \S+ off$")


def test_a_restore_into_an_accessory_without_a_container_is_refused_before_anything_changes(with_redis, layout):
    remote = scripted(layout, Server(serving=SERVING))
    record = {"id": "20261201-030000", "seq": 1, "outcome": "ok", "size": 10, "sha256": "0" * 64, "trigger": "manual",
              "accessories": {"redis": {"file": "20261201-030000.accessory-redis", "sha256": "1" * 64, "size": 5}}}
    remote.on(r"^slipway-backups ", stdout=json.dumps(record) + "\n")
    with pytest.raises(SlipwayError) as raised:
        restore_flow.restore(remote, reporter(), with_redis, PROJECT, "20261201-030000", None, False, None)
    assert str(raised.value) == ("lab: accessory redis has no container to restore into; `fab -H lab deploy` starts it, "
                                 "then restore; nothing was changed")
    assert not remote.ran(r"^slipway-maintenance |restore(_accessory)?\.sh|backup\.sh|^docker compose")


def test_a_restore_that_fails_and_cannot_bring_the_app_back_says_both(deployment, layout):
    remote = scripted(layout, Server(serving=SERVING))
    remote.on(r"^sh /usr/local/lib/slipway/restore\.sh ", exited=1, stderr="pg_restore: error: out of space")
    remote.on(r"^docker compose .* start ", exited=1, stderr="no such container")
    with pytest.raises(SlipwayError) as raised:
        in_maintenance(deployment, layout, remote)()
    message = str(raised.value)
    assert message.startswith("lab: the restore failed (lab: command failed (exit 1): sh /usr/local/lib/slipway/restore.sh") \
        and f"and bringing {SERVING} back failed too: " in message and "no such container" in message


def test_a_release_started_by_a_slipway_before_fixed_addresses_gets_its_address_and_groups_first(deployment, layout):
    """Taken over: the serving release's running containers join the slot network at the serving slot's addresses
    and that slot's groups are written, before nginx's new config (which names groups only) is reloaded."""
    remote = scripted(layout, Server(serving=SERVING, groups=False).release(SERVING))
    deploy(remote, deployment)
    release_id = release_of(remote)
    given = shlex.split(remote.ran(r"^slipway-slot_addresses ")[0].shown)
    assert given[-3:] == [f"demo-{release_id}-api-1=172.30.250.135", f"demo-{release_id}-api-2=172.30.250.136",
                          f"demo-{SERVING}-api-1=172.30.250.16"]
    serving_groups = remote.ran(f"^slipway-write_file {layout.slot_conf('blue')} ")[0].stdin
    assert "upstream demo-blue-api {\n    server 172.30.250.16:8000 max_fails=1 fail_timeout=5s;\n" \
           "    server 172.30.250.16:8000 backup max_fails=0;\n}" in serving_groups
    assert remote.calls.index(remote.ran(f"^slipway-write_file {layout.slot_conf('blue')} ")[0]) < \
        remote.calls.index(remote.ran(r"^slipway-switch_nginx ")[0])
    # nginx's running config finds both slots by Docker's DNS: no reload for the migration alone.
    assert shlex.split(remote.ran(r"^slipway-switch_nginx ")[0].shown)[-1] == "0"


def test_a_release_started_by_this_slipway_keeps_the_serving_slots_groups_as_they_are(deployment, layout):
    remote = scripted(layout, Server(serving=SERVING).release(SERVING))
    deploy(remote, deployment)
    release_id = release_of(remote)
    assert shlex.split(remote.ran(r"^slipway-slot_addresses ")[0].shown)[-2:] == [f"demo-{release_id}-api-1=172.30.250.135",
                                                                     f"demo-{release_id}-api-2=172.30.250.136"]
    assert not remote.ran(f"^slipway-write_file {layout.slot_conf('blue')} ")
    assert remote.ran(f"^slipway-write_file {layout.slot_conf_upload('green')} ")
    assert shlex.split(remote.ran(r"^slipway-switch_nginx ")[0].shown)[-1] == "1"


def test_a_server_a_newer_slipway_laid_out_is_refused_in_one_line_before_anything_changes(deployment, layout):
    remote = scripted(layout, Server(serving=SERVING, layout_record="4").release(SERVING))
    with pytest.raises(SlipwayError) as raised:
        deploy(remote, deployment)
    assert str(raised.value) == ("lab: this server was laid out by a newer slipway (layout 4; this slipway's is 3): "
                                 "nothing was changed; upgrade slipway to work on it")
    assert not remote.ran(r"^slipway-(prepare|switch_nginx|write_file|pull|discard) ")


def test_a_deploy_records_the_layout_it_laid_out_with_the_release(deployment, layout):
    remote = scripted(layout, Server(serving=SERVING).release(SERVING))
    deploy(remote, deployment)
    [record] = remote.ran(f"^slipway-write_file {layout.layout_record} ")
    assert record.stdin == "3\n"


def test_a_first_deploy_writes_both_slots_groups_so_the_next_one_of_the_same_services_reloads_nothing(deployment,
                                                                                                     layout):
    remote = scripted(layout, Server(groups=False))
    deploy(remote, deployment)
    blue = remote.ran(f"^slipway-write_file {layout.slot_conf('blue')} ")[0].stdin
    green = remote.ran(f"^slipway-write_file {layout.slot_conf_upload('green')} ")[0].stdin
    assert "server 172.30.250.16:8000" in blue and "server 172.30.250.135:8000" in green


def test_a_subnet_in_use_on_the_server_stops_the_deploy_naming_the_inventory_key(deployment, layout):
    remote = scripted(layout, Server(serving=SERVING).release(SERVING))
    remote.on(r"^slipway-prepare ", stdout="this server routes 172.30.0.0/16 via 10.0.0.1 there\n",
              exited=traffic.SUBNET_EXIT)
    with pytest.raises(SlipwayError) as raised:
        deploy(remote, deployment)
    assert (f"app.subnet 172.30.250.0/24 cannot be the slot network here (this server routes 172.30.0.0/16 via "
            f"10.0.0.1 there); set app.subnet in {deployment.inventory_file} to a private network nothing on the "
            f"server uses; {SERVING} still serves") in str(raised.value)
    assert not remote.ran(r"^slipway-switch_nginx ")
