"""Where a deployment stands on the server, read in one round trip, and what follows from it:
the rollback target, which releases to keep, which image layers need not cross the network."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from .accessories import APP_LABEL, FACT_FORMAT, Running, parse_accessories
from .facts import MARK, sections
from .layout import DB_PASSWORD_MOUNT, SLOTS, Layout, other_slot
from .shell import Argv, script
from .upgrade import found_layout

SERVED = "active"
FAILED = "failed"


@dataclass
class ServerState:
    provisioned: bool = False
    current: str = ""
    serving: str = ""
    serving_slot: str = SLOTS[0]
    releases: dict[str, dict] = field(default_factory=dict)
    image_ids: dict[str, str] = field(default_factory=dict)
    projects: dict[str, list[str]] = field(default_factory=dict)
    nginx_running: bool = False
    db_running: bool = False
    # Every prefix of every image's layer list on the server: a layer whose chain is here need not be shipped.
    layer_chains: set[tuple[str, ...]] = field(default_factory=set)
    # Docker's containerd image store: images load as OCI layouts and their IDs are manifest digests.
    containerd_store: bool = False
    # Local image ID -> the server's IDs for it, for every image slipway shipped.
    shipped: dict[str, set[str]] = field(default_factory=dict)
    # The slots whose nginx groups are on the server (a slipway before fixed addresses wrote none).
    slots_with_groups: set[str] = field(default_factory=set)
    layout_record: str = ""
    # Whether the database container reads its password from the file (None: no database container).
    db_reads_password_file: bool | None = None
    # Accessories' containers by name, and those an unfinished upgrade keeps aside.
    accessories: dict[str, Running] = field(default_factory=dict)
    previous_accessories: dict[str, Running] = field(default_factory=dict)

    @property
    def layout(self) -> int:
        return found_layout(self.layout_record, self.db_reads_password_file)

    @property
    def standby_slot(self) -> str:
        """Where the next release goes: the slot that does not serve."""
        return other_slot(self.serving_slot)

    @property
    def layers(self) -> set[str]:
        return {chain[-1] for chain in self.layer_chains}


def state_command(layout: Layout, refs: list[str]) -> Argv:
    return script("state", MARK, layout.base, layout.app, layout.nginx_container, layout.db_container,
                  layout.shipped_images, *layout.serving_lookup, *map(layout.slot_conf, SLOTS), layout.layout_record,
                  DB_PASSWORD_MOUNT, f"{APP_LABEL}={layout.app}", FACT_FORMAT, *refs, uses=("serving",))


def parse_state(output: str, layout: Layout) -> ServerState:
    state = ServerState()
    for section, lines in sections(output):
        if section == "accessories":
            state.accessories, state.previous_accessories = parse_accessories(lines, layout)
        for text in lines:
            _read_state_line(state, layout, section, text)
    return state


def _read_state_line(state: ServerState, layout: Layout, section: str, line: str) -> None:
    if section == "base":
        state.provisioned = line == "present"
    elif section == "current":
        state.current = line.rstrip("/").rsplit("/", 1)[-1]
    elif section == "serving":
        state.serving_slot, _, state.serving = line.partition(" ")
    elif section == "releases":
        try:
            record = json.loads(line)
            state.releases[record["id"]] = record
        except (ValueError, KeyError):
            return
    elif section == "images":
        ref, _, image_id = line.rpartition(" ")
        if image_id != "missing":
            state.image_ids[ref] = image_id
    elif section == "projects":
        project, _, container = line.partition(" ")
        prefix = layout.app + "-"
        if project.startswith(prefix):
            state.projects.setdefault(project[len(prefix):], []).append(container)
    elif section == "nginx":
        state.nginx_running = line == "true"
    elif section == "db":
        state.db_running = line == "true"
    elif section == "store":
        state.containerd_store = line == "containerd"
    elif section == "shipped":
        local_id, _, server_id = line.partition(" ")
        state.shipped.setdefault(local_id, set()).add(server_id)
    elif section == "slot confs":
        state.slots_with_groups.update(slot for slot in SLOTS if layout.slot_conf(slot) == line)
    elif section == "layout":
        state.layout_record = line
    elif section == "db password file":
        state.db_reads_password_file = line == "mounted"
    elif section == "layers":
        layers = json.loads(line)
        state.layer_chains.update(tuple(layers[:depth]) for depth in range(1, len(layers) + 1))


def previous_healthy(state: ServerState, before: str) -> str | None:
    """The newest release older than BEFORE that once served successfully, other than BEFORE
    restarted (a restart is the same release started afresh: going back to it changes nothing)."""
    def origin(rid: str) -> str:
        while state.releases.get(rid, {}).get("restart_of") in state.releases:
            rid = state.releases[rid]["restart_of"]
        return rid
    candidates = sorted(rid for rid, record in state.releases.items() if rid < before
                        and record.get("outcome") == SERVED and origin(rid) != origin(before))
    return candidates[-1] if candidates else None


def releases_to_prune(state: ServerState, keep: int, protected: set[str]) -> list[str]:
    """Keep the newest KEEP releases that served (rollback targets) and, as extras, at most KEEP
    newest releases that did not; failed attempts never push a rollback target out."""
    served = sorted((rid for rid, record in state.releases.items() if record.get("outcome") == SERVED), reverse=True)
    others = sorted((rid for rid, record in state.releases.items() if record.get("outcome") != SERVED), reverse=True)
    kept = set(served[:keep]) | set(others[:keep]) | protected
    return sorted(rid for rid in state.releases if rid not in kept)


def unused_images(state: ServerState, pruned: list[str]) -> list[str]:
    kept_ids = {image["id"] for rid, record in state.releases.items() if rid not in pruned
                for image in record.get("images", {}).values()}
    pruned_ids = {image["id"] for rid in pruned for image in state.releases[rid].get("images", {}).values()}
    return sorted(pruned_ids - kept_ids)


def format_releases(state: ServerState) -> str:
    """One line a release, newest first; `*` marks the one nginx sends traffic to."""
    if not state.releases:
        return "no releases yet"
    lines = [f"  {'id':<16} {'version':<10} {'time':<26} {'deployer':<24} outcome"]
    for rid in sorted(state.releases, reverse=True):
        record = state.releases[rid]
        mark = "*" if rid == state.serving else " "
        restart = f" (restart of {record['restart_of']})" if record.get("restart_of") else ""
        lines.append(f"{mark} {rid:<16} {record.get('version', '?'):<10} {record.get('time', '?'):<26} "
                     f"{record.get('deployer', '?'):<24} {record.get('outcome', '?')}{restart}")
    return "\n".join(lines)


def dump_files_command(paths: list[str]) -> Argv:
    return script("dump_files", MARK, *paths)


def parse_file_dump(output: str) -> dict[str, str]:
    return {path: base64.b64decode("".join(lines)).decode(errors="replace") for path, lines in sections(output)
            if lines}
