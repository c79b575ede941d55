"""`inv lab.up|down|status|trust-offsite-key`: a real Debian target host in Docker, built offline.

The base image comes from debootstrap (only Debian's archive is reachable, no
image registry); the target boots systemd and sshd like a fresh cloud VM, and
its SSH, HTTP and HTTPS ports are published on free loopback ports.
`lab.up` writes inventories/lab.yaml so that `fab -H lab ...` works at once.
Only the checkout's tasks.py adds these tasks (see lab/__init__.py).
"""

from __future__ import annotations

from json import dumps as to_json

from invoke import Collection

from fabfile.remote import Reporter
from fabfile.tasking import operator_task, run_local

from . import commands
from .paths import names
from .target import ensure_target, target_status, trust_offsite_key


@operator_task(name="trust-offsite-key")
def trust_offsite(c):
    """Authorize the provisioned target's offsite backup key on the lab's backup host (the operator's step)."""
    reporter = Reporter("lab")
    trust_offsite_key(c, reporter)
    print(reporter.summary())


@operator_task
def up(c, fresh=False):
    """Start the lab target (build images when missing); --fresh recreates it from nothing."""
    reporter = Reporter("lab")
    status = ensure_target(c, fresh=fresh, reporter=reporter)
    print(reporter.summary())
    print(f"lab target up: ssh root@127.0.0.1 -p {status['ssh_port']} -i {status['key_file']}; "
          f"http://127.0.0.1:{status['http_port']}/ ; try: fab -H lab facts")


@operator_task(help={"all": "the backup hosts (and the offsite copies on them) and the ACME CA too"})
def down(c, all=False):
    """Remove the lab target and its Docker volume (images and, without --all, the backup hosts and CA are kept)."""
    reporter = Reporter("lab")
    lab = names(c)
    others = commands.remove_backup_host_commands(lab) + [commands.remove_rest_server_command(lab),
                                                          commands.remove_pebble_command(lab)]
    for command in commands.remove_target_commands(lab) + (others if all else []):
        with reporter.step(command):
            run_local(c, command)
    print(reporter.summary())


@operator_task(name="status")
def show_status(c, json=False):
    """Show the lab target: container state, published ports, key files (--json for scripts)."""
    status = target_status(c)
    if json:
        print(to_json(status))
    else:
        for key, value in status.items():
            print(f"{key:<12} {value if value is not None else '-'}")


namespace = Collection("lab", up, down, show_status, trust_offsite)
# Added to a root collection that has a `slipway` of its own, these defaults must be merged into the
# root's (tasks.py does): Invoke gives a task the root's top-level keys over its sub-collection's.
namespace.configure({
    "slipway": {
        "lab": {
            "prefix": "slipway-lab",
            "suite": "trixie",
            # Empty: debootstrap's own default mirror.
            "mirror": "",
            "state_dir": ".lab",
        },
    },
})
