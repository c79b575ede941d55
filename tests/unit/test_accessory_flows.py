"""The accessories' flows over a scripted server: what a deploy does with them, and an upgrade's failure branch."""

import io
import json

import pytest

from fabfile.commands import accessories as commands
from fabfile.commands.layout import layout_of
from fabfile.errors import SlipwayError
from fabfile.flows import accessories as flow
from fabfile.remote import Reporter
from scripted_remote import ScriptedRemote, Server
from test_deploy_commands import lab_inventory
from test_flows import PROJECT, SERVING, audits, deploy_flow


def pulled_without_tls(data):
    data["images"] = {"source": "registry", "registry": "registry.test:5000"}
    data["tls"] = {"enabled": False}
    data["backup"]["before_deploy"] = False


@pytest.fixture
def deployment(tmp_path):
    return lab_inventory(tmp_path, edit=pulled_without_tls)


def fact_line(deployment, name="redis", status="Up 2 hours (healthy)", **changed) -> str:
    layout = layout_of(deployment.inventory)
    settings = {**commands.settings(deployment, name), **changed}
    return "\t".join([layout.accessory_container(name), name, json.dumps(settings), "running",
                      deployment.inventory.accessories[name].image, "0123456789ab", status])


def scripted(deployment, server: Server) -> ScriptedRemote:
    remote = ScriptedRemote("lab")
    remote.on(r"^slipway-state ", answer=lambda _: server.output(layout_of(deployment.inventory)))
    remote.on(r"^slipway-pull ", answer=lambda shown: "".join(f"{ref} sha256:{index}\n" for index, ref
                                                              in enumerate(shown.split()[1:])))
    return remote


def deploy(remote, deployment):
    plan = deploy_flow.plan(deployment, PROJECT, "v2", dry_run=False)
    deploy_flow.deploy(remote, Reporter("lab", out=io.StringIO()), plan, restart_db=False, restart_nginx=False)


def test_a_deploy_whose_inventory_changes_an_accessory_stops_before_it_pulls_uploads_or_starts_anything(deployment):
    remote = scripted(deployment, Server(serving=SERVING, accessories=[fact_line(deployment, image="old")])
                      .release(SERVING))
    with pytest.raises(SlipwayError) as raised:
        deploy(remote, deployment)
    assert str(raised.value) == (
        "lab: the inventory changes accessory redis (image), and a deploy never changes a running accessory; run "
        f"`fab -H lab accessory.upgrade redis` for that (its data stays); nothing was changed and {SERVING} still serves")
    assert not remote.ran(r"^slipway-(pull|prepare|accessory_start|write_file) ")
    assert audits(remote) == ["deploy started", "deploy failed"]


def test_a_missing_accessory_is_pulled_and_started_before_the_release_command_in_one_round_trip(deployment):
    remote = scripted(deployment, Server(serving=SERVING).release(SERVING))
    deploy(remote, deployment)
    pulled = remote.ran(r"^slipway-pull ")[0].shown
    assert "slipway-demo/redis:1" in pulled
    order = [call.shown.split()[0] for call in remote.calls]
    assert order.index("slipway-accessory_start") < order.index("slipway-release_command")
    started = remote.ran(r"^slipway-accessory_start ")[0]
    assert started.stdin == f"REDIS_PASSWORD={deployment.secret('REDIS_PASSWORD')}\n"
    assert deployment.secret("REDIS_PASSWORD") not in started.shown
    # Its health wait is the next part of the same sequence: the call right after it.
    assert remote.calls[remote.calls.index(started) + 1].shown == "slipway-wait_healthy 20 3 'demo-redis|||'"
    record = json.loads(remote.ran(r"^slipway-write_file .*/release.json ")[-1].stdin)
    assert set(record["images"]) == {"api", "worker", "db", "nginx"}


def test_a_deploy_leaves_a_healthy_accessory_alone_and_costs_no_round_trip_for_it(deployment):
    remote = scripted(deployment, Server(serving=SERVING, accessories=[fact_line(deployment)]).release(SERVING))
    deploy(remote, deployment)
    assert not remote.ran(r"^slipway-accessory_start ")
    assert "slipway-demo/redis:1" not in remote.ran(r"^slipway-pull ")[0].shown


def test_an_upgrade_that_never_gets_healthy_says_the_old_container_runs_again_and_audits_it(deployment):
    remote = scripted(deployment, Server(serving=SERVING, accessories=[fact_line(deployment, image="old")])
                      .release(SERVING))
    remote.on(r"^slipway-accessory_upgrade ", exited=commands.UNHEALTHY_EXIT,
              stdout="the new container never got healthy:\n  | boom\nthe old one runs again, healthy\n")
    with pytest.raises(SlipwayError) as raised:
        flow.upgrade(remote, Reporter("lab", out=io.StringIO()), deployment, "redis")
    assert str(raised.value).startswith("lab: redis on slipway-demo/redis:1 never got healthy, so "
                                        "slipway-demo/redis:1 (0123456789ab) runs again as it was.\n")
    assert "the old one runs again, healthy" in str(raised.value)
    assert audits(remote) == ["accessory upgrade started", "accessory upgrade failed"]
    order = [call.shown.split()[0] for call in remote.calls]
    assert order.index("slipway-pull") < order.index("slipway-accessory_upgrade")


def test_an_accessory_the_inventory_does_not_name_is_refused_in_one_line(deployment):
    with pytest.raises(SlipwayError, match=r"^lab: no accessory queue in .*lab.yaml \(accessories: redis\)$"):
        flow.upgrade(ScriptedRemote("lab"), Reporter("lab", out=io.StringIO()), deployment, "queue")


def test_restart_and_remove_take_the_deploy_lock_and_are_audited(deployment):
    remote = scripted(deployment, Server(serving=SERVING, accessories=[fact_line(deployment)]).release(SERVING))
    remote.on(r"^slipway-accessory_remove ", stdout="removed container demo-redis\nkept volume demo_redis-data\n")
    flow.restart(remote, Reporter("lab", out=io.StringIO()), deployment, "redis")
    flow.remove(remote, Reporter("lab", out=io.StringIO()), deployment, "redis", delete_data=False)
    assert len(remote.ran(r"^slipway-lock ")) == 2
    assert remote.ran(r"^docker restart --time 30 demo-redis$")
    assert audits(remote) == ["accessory restarted", "accessory removed"]
    assert remote.audit_events()[-1]["data"] == "kept"


def test_an_upgrade_of_an_accessory_already_as_the_inventory_says_replaces_nothing(deployment):
    remote = scripted(deployment, Server(serving=SERVING, accessories=[fact_line(deployment)]).release(SERVING))
    flow.upgrade(remote, Reporter("lab", out=io.StringIO()), deployment, "redis")
    assert not remote.ran(r"^slipway-(pull|accessory_upgrade) ")
    assert audits(remote) == []


def test_a_deploy_refuses_a_service_named_like_an_accessory_that_still_runs(deployment):
    leftover = "\t".join(["demo-worker", "worker", "{}", "running", "redis:7", "0123456789ab", "Up 1 hour"])
    remote = scripted(deployment, Server(serving=SERVING, accessories=[fact_line(deployment), leftover])
                      .release(SERVING))
    with pytest.raises(SlipwayError) as raised:
        deploy(remote, deployment)
    assert str(raised.value) == (
        "lab: accessory worker still runs and answers as worker on the app's network, which service worker would "
        "answer to as well; remove it first: `fab -H lab accessory.remove worker --yes`; nothing was changed")
    assert not remote.ran(r"^slipway-(pull|prepare|accessory_start|write_file) ")
