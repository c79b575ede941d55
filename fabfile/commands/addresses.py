"""Where nginx reaches the web containers: addresses slipway gives them on the app's slot network, and the nginx
upstream groups that name those addresses, one file per slot.

nginx never asks Docker's DNS: while the daemon restarts (an unattended docker.io or containerd update), its DNS
does not answer, but the containers (live-restore) and their addresses keep serving. A deploy writes only the
standby slot's file, so the serving slot's groups never change under the traffic they carry.

The network's first 16 addresses are Docker's to hand out (its gateway, nginx); the rest is split in two, one half
a slot. In its half, each web service (in inventory order) has MAX_REPLICAS addresses, one a replica.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..config import Inventory
from ..config.app import MAX_REPLICAS
from .layout import SLOTS, Layout, web_services

DYNAMIC_PREFIX = 28
# Once a server is marked failed, nginx sends it nothing for this long, then tries it again.
FAIL_SECONDS = 5


def dynamic_range(subnet: str) -> str:
    """The network's first addresses, which Docker hands out to what joins it without an address of its own."""
    network = ipaddress.IPv4Network(subnet)
    return str(ipaddress.IPv4Network((network.network_address, DYNAMIC_PREFIX)))


def slot_size(subnet: str) -> int:
    """Addresses each slot has: half of what is left past Docker's own and the broadcast address."""
    network = ipaddress.IPv4Network(subnet)
    return (network.num_addresses - 2 ** (32 - DYNAMIC_PREFIX) - 1) // 2


def services_per_slot(subnet: str) -> int:
    return slot_size(subnet) // MAX_REPLICAS


def address(subnet: str, slot: str, position: int, replica: int) -> str:
    """Replica REPLICA (from 1) of the web service at POSITION (from 0) in SLOT."""
    network = ipaddress.IPv4Network(subnet)
    offset = 2 ** (32 - DYNAMIC_PREFIX) + SLOTS.index(slot) * slot_size(subnet) + position * MAX_REPLICAS + replica - 1
    return str(network.network_address + offset)


def slot_addresses(inventory: Inventory, layout: Layout, slot: str, release_id: str,
                   replicas: dict[str, list[int]] | None = None) -> dict[str, str]:
    """Container name -> its address, for RELEASE_ID's web containers in SLOT: replicas 1 to the service's count,
    or those REPLICAS lists (the ones that run)."""
    subnet = inventory.app.subnet
    return {f"{layout.release_project(release_id)}-{name}-{number}": address(subnet, slot, position, number)
            for position, (name, service) in enumerate(web_services(inventory).items())
            for number in (replicas or {}).get(name, range(1, service.replicas + 1))}


def running_replicas(layout: Layout, release_id: str, containers: list[str], services: list[str]) -> dict[str, list[int]]:
    """Each of SERVICES' replica numbers among CONTAINERS, RELEASE_ID's (names as compose gives them)."""
    numbers: dict[str, list[int]] = {name: [] for name in services}
    for container in containers:
        for name in services:
            number = container.removeprefix(f"{layout.release_project(release_id)}-{name}-")
            if number != container and number.isdigit():
                numbers[name].append(int(number))
    return {name: sorted(found) for name, found in numbers.items()}


def group_name(app: str, slot: str, service: str) -> str:
    """What nginx.conf.j2's proxy_pass names (SLOT: nginx's slot variable there)."""
    return f"{app}-{slot}-{service}"


@dataclass(frozen=True)
class Group:
    name: str
    port: int
    addresses: tuple[str, ...]


def slot_groups(inventory: Inventory, slot: str, replicas: dict[str, list[int]] | None = None) -> list[Group]:
    """SLOT's upstream groups: each web service's first port at its replicas' addresses."""
    app, subnet = inventory.app.name, inventory.app.subnet
    return [Group(group_name(app, slot, name), service.ports[0],
                  tuple(address(subnet, slot, position, number)
                        for number in (replicas or {}).get(name, range(1, service.replicas + 1))))
            for position, (name, service) in enumerate(web_services(inventory).items())]


def slot_conf(inventory: Inventory, slot: str, replicas: dict[str, list[int]] | None = None) -> str:
    """The nginx file of SLOT's upstream groups (nginx includes every conf.d/*.conf)."""
    lines = [f"# Rendered by slipway for {inventory.app.name}: the {slot} slot's web containers, at the addresses "
             "slipway gave them on its slot network.",
             "# A deploy rewrites it only while the slot serves nothing; do not edit on the server."]
    for group in slot_groups(inventory, slot, replicas):
        lines.append(f"upstream {group.name} {{")
        # A service with no replica running in the slot keeps a group that answers 502, never another's address.
        servers = [f"server {ip}:{group.port} max_fails=1 fail_timeout={FAIL_SECONDS}s;" for ip in group.addresses]
        # nginx keeps a server's failures for as long as it runs: a slot that serves again (a deploy or rollback
        # later) would find every server still marked and answer 502 to whatever comes while the first request
        # probes one. The same containers as backups, never marked, take those requests.
        servers += [f"server {ip}:{group.port} backup max_fails=0;" for ip in group.addresses]
        lines += [f"    {line}" for line in servers or ["server 127.0.0.1:1 down;"]]
        lines.append("}")
    return "\n".join(lines) + "\n"


def health_checks(inventory: Inventory, layout: Layout, slot: str, release_id: str) -> list[tuple[str, str, int, str]]:
    """(container, address, port, path) for each of RELEASE_ID's web containers in SLOT: what wait_healthy polls."""
    addresses = slot_addresses(inventory, layout, slot, release_id)
    return [(container, addresses[container], service.healthcheck.port, service.healthcheck.path)
            for name, service in web_services(inventory).items()
            for container in layout.containers(release_id, name, service.replicas)]
