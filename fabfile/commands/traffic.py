"""The steps that bring a release up beside the serving one and move traffic to it, as argv lists.

Each runs a packaged script from fabfile/scripts/ with its values as arguments.
"""

from __future__ import annotations

import json

from ..config import Inventory
from .addresses import dynamic_range
from .layout import DB_PASSWORD_MOUNT, MARKED_SLOT, SLOTS, Layout
from .release import DB_PASSWORD_FILE, shared_items
from .shell import Argv, script

UNHEALTHY_EXIT = 3
# Beyond the health checks' own timeout: Docker's first probes and the report.
HEALTH_MARGIN_SECONDS = 30
DB_CHANGED_EXIT = 4
DB_MAJOR_EXIT = 5
NGINX_CHANGED_EXIT = 6
MISROUTED_EXIT = 7
SUBNET_EXIT = 8
# The longest a config switch waits for the old config's workers to finish their requests before traffic moves.
OLD_WORKERS_SECONDS = 10
# The location nginx.conf.j2 gives the first web service's health path: monitors and the switch poll it.
NGINX_HEALTH_PATH = "/health"
# What a deploy may do to a database or an nginx that already runs.
KEEP = "keep"  # refuse a release whose settings for it differ from the running container's
RESTART = "restart"  # re-create it with the release's settings (a database: same PostgreSQL major only)
LEAVE = "leave"  # rollback: it stays as it is, whatever the release says


def prepare_command(layout: Layout, inventory: Inventory, release_id: str, unpack: bool, db_mode: str,
                    nginx_mode: str, slot: str) -> Argv:
    """Unpack the release (tar on stdin, when UNPACK) beside the others, into SLOT; network, volumes, folders;
    db up if missing.

    NGINX_MODE keep: refuse a release that would re-create the running nginx; restart or leave: go on.
    Every value is a named flag's own argument (prepare.sh's Usage); the --db-* flags only with a database."""
    flags = _flags(releases=layout.releases, release_id=release_id, slot=slot, traffic_dir=layout.traffic_dir,
                   network=layout.network, infra_project=layout.infra_project, nginx_container=layout.nginx_container,
                   nginx_mode=nginx_mode, nginx_changed_exit=NGINX_CHANGED_EXIT, slot_network=layout.slot_network,
                   subnet=inventory.app.subnet, ip_range=dynamic_range(inventory.app.subnet), subnet_exit=SUBNET_EXIT)
    if unpack:
        flags.append("--unpack")
    database = inventory.database
    if database:
        flags += _flags(db_project=layout.infra_project, db_mode=db_mode, db_container=layout.db_container,
                        db_image=database.image, db_volume=layout.volume(database.volume),
                        db_changed_exit=DB_CHANGED_EXIT, db_major_exit=DB_MAJOR_EXIT,
                        db_password_name=DB_PASSWORD_FILE, db_password_file=layout.db_password_file,
                        db_password_mount=DB_PASSWORD_MOUNT)
    return script("prepare", *flags, "--", *shared_items(inventory))


def _flags(**values: object) -> Argv:
    """`--NAME VALUE` for each NAME=VALUE, in order (underscores in NAME as dashes): each value one argument."""
    return [arg for name, value in values.items() for arg in (f"--{name.replace('_', '-')}", str(value))]


def copy_release_command(layout: Layout, source_id: str, release_id: str) -> Argv:
    """A new release folder holding SOURCE_ID's files and the record on stdin, put in place by one rename."""
    return ["sh", "-c", 'set -e; incoming="$1/.incoming-$3"; rm -rf "$incoming"; cp -a "$1/$2" "$incoming"; '
            'cat > "$incoming/release.json"; mv -T "$incoming" "$1/$3"', "slipway-copy-release",
            layout.releases, source_id, release_id]


def release_command_name(layout: Layout, release_id: str, service: str) -> str:
    return f"{layout.release_project(release_id)}-{service}-release"


def release_command(layout: Layout, release_id: str, service: str, command: list[str], limit: int) -> Argv:
    return script("release_command", limit, layout.release_project(release_id), layout.compose_file(release_id),
                  service, release_command_name(layout, release_id, service), *command)


def start_services_command(layout: Layout, release_id: str, services: list[str]) -> Argv:
    return ["docker", "compose", "-p", layout.release_project(release_id), "-f", layout.compose_file(release_id),
            "up", "-d", "--no-deps", *services]


def slot_addresses_command(layout: Layout, addresses: dict[str, str]) -> Argv:
    """Each container at its address (container name -> address) on the slot network."""
    return script("slot_addresses", layout.slot_network, *(f"{name}={ip}" for name, ip in addresses.items()))


def wait_healthy_command(checks: list[tuple[str, str, int, str]], timeout_seconds: int) -> Argv:
    """Until every (container, address, port, path) is healthy; exits UNHEALTHY_EXIT when time is up or one
    stopped."""
    return script("wait_healthy", timeout_seconds, UNHEALTHY_EXIT, *("|".join(map(str, check)) for check in checks),
                  uses=("healthy",))


def failure_report_command(containers: list[str]) -> Argv:
    return script("failure_report", *containers)


def switch_nginx_command(layout: Layout, release_id: str, slot: str | None = None, recreate: bool = False,
                         probe: tuple[str, str] = ("", ""), reload: bool = True) -> Argv:
    """Move traffic to SLOT (None: leave it where it is), and install the config on stdin and SLOT's groups
    (uploaded to layout.slot_conf_upload) when either changed, only if `nginx -t` passes, with a reload; create
    nginx when it is not running (RECREATE: re-create it too when its service in RELEASE_ID's compose file
    changed). Prints what happened to nginx, if anything.
    PROBE (scheme, host): once traffic moved, the health path must answer through nginx, or traffic moves
    back and the command exits MISROUTED_EXIT. RELOAD false: a changed config waits for nginx's next reload."""
    mark = "" if slot is None else str(int(slot == MARKED_SLOT))
    slot_files = ("", "") if slot is None else (layout.slot_conf_upload(slot), layout.slot_conf(slot))
    return script("switch_nginx", layout.live_nginx_conf, layout.nginx_container, layout.infra_project,
                  layout.compose_file(release_id), int(recreate), layout.slot_marker, mark, *probe,
                  NGINX_HEALTH_PATH, MISROUTED_EXIT, *slot_files, layout.slot_network, OLD_WORKERS_SECONDS,
                  int(reload))


def maintenance_on_command(layout: Layout, record: dict, allow: list[str]) -> Argv:
    """Maintenance on: the page (stdin) answers the app's requests as a 503, except from ALLOW's addresses."""
    return script("maintenance", layout.traffic_dir, "on", json.dumps(record, sort_keys=True), *allow)


def maintenance_state_command(layout: Layout) -> Argv:
    """The maintenance record, printed only while the page is up (exit 1 when it is not)."""
    return ["sh", "-c", '[ -f "$1" ] && cat "$2"', "slipway-maintenance-state", layout.maintenance_page,
            f"{layout.traffic_dir}/maintenance.json"]


def maintenance_off_command(layout: Layout) -> Argv:
    return script("maintenance", layout.traffic_dir, "off")


def finish_command(layout: Layout, release_id: str, old_releases: list[str], worker_names: list[str],
                   drain_seconds: int) -> Argv:
    """After the switch: drain and stop old containers, start workers, point `current`."""
    return script("finish", drain_seconds, layout.release_project(release_id), layout.compose_file(release_id),
                  layout.current, release_id, *(f"worker:{name}" for name in worker_names),
                  *(f"old:{layout.release_project(old)}" for old in old_releases))


def point_current_command(layout: Layout, release_id: str) -> Argv:
    """Switch the `current` symlink atomically (a new link renamed over the old one)."""
    return ["sh", "-c", 'ln -sfn "releases/$1" "$2.new" && mv -T "$2.new" "$2"', "slipway-current",
            release_id, layout.current]


def discard_release_command(layout: Layout, release_id: str) -> Argv:
    """Remove a release's containers (it never took traffic)."""
    return ["sh", "-c", 'docker ps -aq --filter "label=com.docker.compose.project=$1" | xargs -r docker rm -f >/dev/null',
            "slipway-discard", layout.release_project(release_id)]


def recover_command(layout: Layout) -> Argv:
    return script("recover", layout.live_nginx_conf, layout.nginx_container, *map(layout.slot_conf, SLOTS))


def write_file_command(path: str, mode: int = 0o644) -> Argv:
    return script("write_file", path, f"{mode:o}")


def write_record_command(layout: Layout, release_id: str) -> Argv:
    """Replace a release's record (stdin); its folder is made when a failure came before the upload."""
    return write_file_command(f"{layout.release_dir(release_id)}/release.json")


def append_audit_command(layout: Layout) -> Argv:
    return script("append_audit", layout.audit_log)


def prune_command(layout: Layout, remove: list[str], image_ids: list[str]) -> Argv:
    """Remove release folders and the images only they used (an image still in use stays)."""
    return ["sh", "-c", 'n=$1; shift; for dir in $(seq "$n"); do rm -rf "$1"; shift; done; '
            '[ $# -eq 0 ] || docker image rm "$@" >/dev/null 2>&1 || true',
            "slipway-prune", str(len(remove)), *(layout.release_dir(rid) for rid in remove), *image_ids]


def tag_images_command(images: dict[str, dict]) -> Argv:
    """Point each tag back at the image ID the release recorded (a rollback never pulls or builds)."""
    pairs = [value for image in images.values() for value in (image["id"], image["ref"])]
    return ["sh", "-c", 'set -e; while [ $# -gt 0 ]; do docker tag "$1" "$2"; shift 2; done', "slipway-tag", *pairs]


def pull_command(refs: list[str]) -> Argv:
    return script("pull", *refs)
