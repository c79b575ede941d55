"""Where the lab keeps its files and names: its templates, its state folder (key, known hosts, CA files)
and the lab inventory."""

from __future__ import annotations

from pathlib import Path

from invoke import Context

from fabfile import render
from fabfile.tasking import project_dir

from . import commands

LAB_INVENTORY = "lab"
# The images' build contexts and the lab inventory's templates: the lab's own, beside this module.
TEMPLATES = Path(__file__).resolve().parent / "templates"


def render_template(name: str, **context) -> str:
    """A template of TEMPLATES, rendered the way slipway renders its own (StrictUndefined, same whitespace)."""
    # render.render reads a project's templates/ folder first: the lab is that project.
    return render.render(TEMPLATES.parent, name, **context)


def names(c: Context) -> commands.LabNames:
    return commands.LabNames(prefix=c.config.slipway.lab.prefix, suite=c.config.slipway.lab.suite)


def state_dir(c: Context) -> Path:
    return project_dir(c) / c.config.slipway.lab.state_dir


def key_file(c: Context) -> Path:
    return state_dir(c) / "id_ed25519"


def known_hosts_file(c: Context) -> Path:
    return state_dir(c) / "known_hosts"


def inventory_files(c: Context) -> tuple[Path, Path]:
    directory = project_dir(c) / c.config.slipway.inventory_dir
    return directory / f"{LAB_INVENTORY}.yaml", directory / f"{LAB_INVENTORY}.env"


def rest_ca_file(c: Context) -> Path:
    """The REST server's own certificate: what restic checks it with (the REST inventory's ca_bundle)."""
    return state_dir(c) / "rest-ca.pem"


def pebble_file(c: Context, which: str) -> Path:
    """WHICH api: the certificate of Pebble's own API (the lab inventory's tls.ca_bundle); root: the root
    the certificates it issues chain to (what a client of the lab's site trusts)."""
    return state_dir(c) / f"pebble-{which}.pem"
