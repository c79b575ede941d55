"""The web containers' fixed addresses on the slot network and the nginx groups that name them: pure rules."""

import ipaddress

import pytest
import yaml

from fabfile import config
from fabfile.commands import addresses
from fabfile.commands.layout import SLOTS, layout_of
from test_config import VALID, problems, write


def with_web_services(count: int, subnet: str | None = None, replicas: int = 20) -> dict:
    data = yaml.safe_load(yaml.safe_dump(VALID))
    api = data["services"]["api"]
    data["services"] = {f"web{index}": {**api, "route": f"/{index}/", "replicas": replicas} for index in range(count)}
    if subnet:
        data["app"]["subnet"] = subnet
    return data


@pytest.mark.parametrize("subnet", ["172.30.250.0/24", "192.168.7.0/26", "10.40.0.0/16"])
def test_every_replica_of_every_web_service_in_each_slot_has_an_address_of_its_own_past_dockers(inventories,
                                                                                              subnet):
    room = addresses.services_per_slot(subnet)
    write(inventories, with_web_services(min(room, 6), subnet))
    inventory = config.load(inventories, "prod").inventory
    layout = layout_of(inventory)
    given = [ip for slot in SLOTS for ip in addresses.slot_addresses(inventory, layout, slot, "20261201-000000").values()]
    network, dynamic = ipaddress.IPv4Network(subnet), ipaddress.IPv4Network(addresses.dynamic_range(subnet))
    assert len(given) == len(set(given)) == 2 * 20 * min(room, 6)
    assert all(ipaddress.IPv4Address(ip) in network and ipaddress.IPv4Address(ip) not in dynamic
               and ipaddress.IPv4Address(ip) != network.broadcast_address for ip in given)


def test_a_network_too_small_for_the_web_services_is_refused_naming_how_many_fit(inventories):
    write(inventories, with_web_services(2, "192.168.7.0/26", replicas=1))
    assert problems(inventories) == [
        "inventories/prod.yaml: app.subnet: found '192.168.7.0/26'; expected a network with room for 2 services "
        "behind nginx (20 addresses each in each of 2 slots); this one has room for 1: use a shorter prefix, like /24"]


@pytest.mark.parametrize("subnet", ["8.8.8.0/24", "127.0.0.0/24", "172.30.250.1/24", "10.0.0.0/8", "10.0.0.0/27",
                                    "fd00::/64", "shop"])
def test_a_subnet_must_be_a_private_ipv4_network_docker_can_make(inventories, subnet):
    write(inventories, with_web_services(1, subnet))
    [problem] = problems(inventories)
    assert problem.startswith(f"inventories/prod.yaml: app.subnet: found {subnet!r}; expected ")


def test_a_slots_groups_name_each_replicas_address_and_a_service_without_one_answers_502(inventories):
    write(inventories, with_web_services(2, replicas=2))
    inventory = config.load(inventories, "prod").inventory
    conf = addresses.slot_conf(inventory, "green")
    assert "upstream shop-green-web0 {\n    server 172.30.250.135:8000 max_fails=1 fail_timeout=5s;\n" \
           "    server 172.30.250.136:8000 max_fails=1 fail_timeout=5s;\n" \
           "    server 172.30.250.135:8000 backup max_fails=0;\n    server 172.30.250.136:8000 backup max_fails=0;\n" \
           "}\n" in conf
    assert "upstream shop-green-web1 {\n    server 172.30.250.155:8000" in conf
    # The replicas that run (a release started before fixed addresses), not the inventory's count.
    running = addresses.slot_conf(inventory, "blue", {"web0": [2], "web1": []})
    assert "upstream shop-blue-web0 {\n    server 172.30.250.17:8000 max_fails=1 fail_timeout=5s;\n" \
           "    server 172.30.250.17:8000 backup max_fails=0;\n}\n" in running
    assert "upstream shop-blue-web1 {\n    server 127.0.0.1:1 down;\n}\n" in running


def test_running_replicas_are_read_from_compose_container_names(inventories):
    write(inventories, with_web_services(2))
    layout = layout_of(config.load(inventories, "prod").inventory)
    containers = ["shop-20261201-000000-web0-2", "shop-20261201-000000-web0-1", "shop-20261201-000000-worker-1",
                  "shop-20261201-000000-web1-x"]
    assert addresses.running_replicas(layout, "20261201-000000", containers, ["web0", "web1"]) == \
        {"web0": [1, 2], "web1": []}


def test_health_is_polled_at_the_address_nginx_uses(inventories):
    write(inventories, with_web_services(1, replicas=2))
    inventory = config.load(inventories, "prod").inventory
    assert addresses.health_checks(inventory, layout_of(inventory), "blue", "20261201-000000") == [
        ("shop-20261201-000000-web0-1", "172.30.250.16", 8000, "/health"),
        ("shop-20261201-000000-web0-2", "172.30.250.17", 8000, "/health")]
