"""The pyinfra deploy equivalent to slipway's provision, for benchmarks/provision.py.

It reads the same desired state slipway computes (a JSON file named by the
SLIPWAY_SPEC host data) and declares it with pyinfra's own operations.
"""

import json

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server, systemd

spec = json.loads(open(host.data.slipway_spec).read())

files.put(name="daemon.json", **spec["files"]["/etc/docker/daemon.json"])
apt.packages(name="packages", packages=spec["packages"])
files.link(name="timezone", path="/etc/localtime", target=spec["timezone_target"])
systemd.service(name="docker", service="docker.service", running=True, enabled=True)
server.user(name="deploy user", user=spec["user"], groups=["docker"], append=True, shell="/bin/bash", home=spec["home"])
for directory in spec["directories"]:
    files.directory(name=f"dir {directory['path']}", **directory)
for path, managed in spec["files"].items():
    if path != "/etc/docker/daemon.json":
        files.put(name=path, **managed)
host.get_fact(Command, "ufw status verbose")
