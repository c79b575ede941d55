"""Deploy, as data: the files of a release and the shell scripts that move traffic.

A release is a folder `releases/<id>/` (compose.yaml, env/*.env, nginx.conf,
release.json). db and nginx run in compose project APP; each release's
services run in project APP-<id>, so the new containers start beside the
old ones. nginx's live config (`shared/nginx/app.conf`) names the release
that serves; it only changes after the new containers pass their health
checks and `nginx -t`.
"""

from __future__ import annotations

import base64
import difflib
import io
import json
import shlex
import tarfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..config import Deployment, Inventory
from ..render import render

MARK = "@@slipway@@"
MASK = "********"
LOCK_BUSY_EXIT = 75
UNHEALTHY_EXIT = 3


# --- names -------------------------------------------------------------------

def new_release_id(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S")


@dataclass(frozen=True)
class Layout:
    """Where things live on the server, and what Docker objects are called."""

    app: str
    base: str

    @property
    def releases(self) -> str:
        return f"{self.base}/releases"

    def release_dir(self, release_id: str) -> str:
        return f"{self.releases}/{release_id}"

    @property
    def current(self) -> str:
        return f"{self.base}/current"

    @property
    def nginx_dir(self) -> str:
        return f"{self.base}/shared/nginx"

    @property
    def live_nginx_conf(self) -> str:
        return f"{self.nginx_dir}/app.conf"

    @property
    def state_dir(self) -> str:
        return f"{self.base}/.slipway"

    @property
    def audit_log(self) -> str:
        return f"{self.state_dir}/audit.log"

    @property
    def lock_file(self) -> str:
        return f"{self.state_dir}/deploy.lock"

    @property
    def lock_info(self) -> str:
        return f"{self.state_dir}/lock.json"

    @property
    def steps_lock(self) -> str:
        return f"{self.state_dir}/steps.lock"

    @property
    def network(self) -> str:
        return f"{self.app}_app"

    @property
    def infra_project(self) -> str:
        return self.app

    def release_project(self, release_id: str) -> str:
        return f"{self.app}-{release_id}"

    @property
    def nginx_container(self) -> str:
        return f"{self.app}-nginx-1"

    def containers(self, release_id: str, service: str, replicas: int) -> list[str]:
        return [f"{self.release_project(release_id)}-{service}-{index}" for index in range(1, replicas + 1)]

    def compose(self, project: str, release_id: str) -> str:
        return f"docker compose -p {shlex.quote(project)} -f {shlex.quote(self.release_dir(release_id) + '/compose.yaml')}"


def layout_of(inventory: Inventory) -> Layout:
    return Layout(inventory.app.name, str(inventory.app.base_dir))


def image_refs(inventory: Inventory, version: str) -> dict[str, str]:
    """Service name -> image reference; the app's own images are tagged with the version."""
    refs = {name: _tagged(service.image, version) for name, service in inventory.services.items()}
    if inventory.database:
        refs["db"] = inventory.database.image
    refs["nginx"] = inventory.nginx.image
    return refs


def _tagged(image: str, version: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in last else f"{image}:{version}"


def web_services(inventory: Inventory) -> dict:
    return {name: service for name, service in inventory.services.items() if service.behind_nginx}


def workers(inventory: Inventory) -> dict:
    return {name: service for name, service in inventory.services.items() if not service.behind_nginx}


# --- the files of a release ----------------------------------------------------

@dataclass(frozen=True)
class ReleaseFile:
    path: str  # relative to the release folder
    content: str
    mode: int = 0o644


def env_value(value: str) -> str:
    """A value for a compose env file: single-quoted, so `$` and `#` stay literal.

    The config model refuses values with a single quote or a newline.
    """
    return f"'{value}'"


def release_files(deployment: Deployment, project_dir: Path, release_id: str, version: str) -> list[ReleaseFile]:
    inventory = deployment.inventory
    layout = layout_of(inventory)
    refs = image_refs(inventory, version)
    common = {"app": inventory.app, "release_id": release_id, "version": version}
    files = [ReleaseFile("compose.yaml", render(
        project_dir, "app/compose.yaml.j2", **common, services=inventory.services, database=inventory.database,
        nginx=inventory.nginx, images=refs, docker=inventory.server.docker))]
    for name, service in inventory.services.items():
        variables = {**service.env, **{key: deployment.secret(key) for key in service.secrets}}
        files.append(_env_file(project_dir, common, name, variables))
    if inventory.database:
        database = inventory.database
        password = deployment.secret(database.password_secret)
        files.append(_env_file(project_dir, common, "db", {
            "POSTGRES_USER": database.user, "POSTGRES_PASSWORD": password, "POSTGRES_DB": database.name}))
    files.append(ReleaseFile("nginx.conf", nginx_conf(inventory, project_dir, layout, release_id)))
    return files


def _env_file(project_dir: Path, common: dict, service: str, variables: dict) -> ReleaseFile:
    quoted = {key: env_value(value) for key, value in variables.items()}
    content = render(project_dir, "app/service.env.j2", **common, service=service, variables=quoted)
    return ReleaseFile(f"env/{service}.env", content, 0o600)


def nginx_conf(inventory: Inventory, project_dir: Path, layout: Layout, release_id: str) -> str:
    web = web_services(inventory)
    upstreams = {
        name: [f"{container}:{service.ports[0]}" for container in layout.containers(release_id, name, service.replicas)]
        for name, service in web.items()
    }
    first = next(iter(web.items()), None)
    health = {"service": first[0], "path": first[1].healthcheck.path} if first else None
    return render(project_dir, "app/nginx.conf.j2", app=inventory.app, release_id=release_id, nginx=inventory.nginx,
                  upstreams=upstreams, web_services=web, health=health)


def release_record(release_id: str, version: str, images: dict[str, dict], commit: str, deployer: str,
                   started: datetime, outcome: str, detail: str = "") -> str:
    record = {"id": release_id, "version": version, "images": images, "commit": commit, "deployer": deployer,
              "time": started.astimezone(timezone.utc).isoformat(timespec="seconds"), "outcome": outcome}
    if detail:
        record["detail"] = detail
    return json.dumps(record, sort_keys=True) + "\n"


def release_tarball(files: list[ReleaseFile], extra: dict[str, str]) -> bytes:
    """The release folder as a tar stream (modes kept), so it crosses in one round trip."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        entries = [(f.path, f.content, f.mode) for f in files] + [(path, text, 0o644) for path, text in extra.items()]
        for path, text, mode in entries:
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def masked(text: str, secrets: tuple[str, ...]) -> str:
    for value in sorted(secrets, key=len, reverse=True):
        if value:
            text = text.replace(value, MASK)
    return text


def release_diff(files: list[ReleaseFile], on_server: dict[str, str], all_secrets: tuple[str, ...]) -> str:
    """Unified diff of the rendered release against the serving one, every secret masked on both sides."""
    chunks = []
    for release_file in files:
        before = on_server.get(release_file.path)
        chunks.extend(difflib.unified_diff(
            masked(before or "", all_secrets).splitlines(keepends=True),
            masked(release_file.content, all_secrets).splitlines(keepends=True),
            fromfile=f"{release_file.path} (serving)" if before is not None else "/dev/null",
            tofile=f"{release_file.path} (new)",
        ))
    return "".join(chunks)


# --- reading the server in one round trip ---------------------------------------

@dataclass
class ServerState:
    current: str = ""
    serving: str = ""
    releases: dict[str, dict] = field(default_factory=dict)
    image_ids: dict[str, str] = field(default_factory=dict)
    projects: dict[str, list[str]] = field(default_factory=dict)
    nginx_running: bool = False
    # Every prefix of every image's layer list on the server: a layer whose chain is here need not be shipped.
    layer_chains: set[tuple[str, ...]] = field(default_factory=set)


def state_script(layout: Layout, refs: list[str]) -> str:
    q = shlex.quote
    images = " ".join(q(ref) for ref in refs)
    return "\n".join([
        f"echo '{MARK} current'; readlink {q(layout.current)} || true",
        f"echo '{MARK} serving'; sed -n 's/^# slipway release: //p' {q(layout.live_nginx_conf)} 2>/dev/null || true",
        f"echo '{MARK} releases'; for f in {q(layout.releases)}/*/release.json; do [ -f \"$f\" ] && head -n 1 \"$f\"; done; true",
        f"echo '{MARK} images'; for ref in {images}; do printf '%s %s\\n' \"$ref\" \"$(docker image inspect -f '{{{{.Id}}}}' \"$ref\" 2>/dev/null || echo missing)\"; done",
        f"echo '{MARK} projects'; docker ps -a --filter label=slipway.app={q(layout.app)} "
        "--format '{{.Label \"com.docker.compose.project\"}} {{.Names}}'",
        f"echo '{MARK} nginx'; docker inspect -f '{{{{.State.Running}}}}' {q(layout.nginx_container)} 2>/dev/null || echo false",
        f"echo '{MARK} layers'; docker image ls -q | sort -u | xargs -r docker image inspect -f '{{{{json .RootFS.Layers}}}}'",
    ])


def parse_state(output: str, layout: Layout) -> ServerState:
    state = ServerState()
    section = ""
    for line in output.splitlines():
        if line.startswith(MARK + " "):
            section = line[len(MARK) + 1:]
            continue
        line = line.strip()
        if not line:
            continue
        if section == "current":
            state.current = line.rstrip("/").rsplit("/", 1)[-1]
        elif section == "serving":
            state.serving = line
        elif section == "releases":
            try:
                record = json.loads(line)
                state.releases[record["id"]] = record
            except (ValueError, KeyError):
                continue
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
        elif section == "layers":
            layers = json.loads(line)
            state.layer_chains.update(tuple(layers[:depth]) for depth in range(1, len(layers) + 1))
    return state


def layers_to_leave_out(manifest: list[dict], diff_ids: dict[str, list[str]], chains: set[tuple[str, ...]]) -> set[str]:
    """Layer files of a `docker save` archive the server already has (same layer chain).

    docker load looks a layer up by its chain before it reads the file, so
    those files can stay behind: only new layers cross the network.
    """
    present, needed = set(), set()
    for image in manifest:
        ids = diff_ids[image["Config"]]
        for depth, path in enumerate(image["Layers"], start=1):
            (present if tuple(ids[:depth]) in chains else needed).add(path)
    return present - needed


def previous_healthy(state: ServerState, before: str) -> str | None:
    """The newest release older than BEFORE that once served successfully."""
    candidates = sorted(rid for rid, record in state.releases.items() if rid < before and record.get("outcome") == "active")
    return candidates[-1] if candidates else None


# --- the scripts that move traffic ------------------------------------------------

def prepare_script(layout: Layout, release_id: str, has_database: bool, database_volume: str | None,
                   unpack: bool) -> str:
    """Unpack the release (tar on stdin, when UNPACK) beside the others; make sure network, volume and db are up."""
    q = shlex.quote
    incoming = q(f"{layout.releases}/.incoming-{release_id}")
    lines = ["set -e", f"mkdir -p {q(layout.nginx_dir)} {q(layout.state_dir)} {q(layout.releases)}"]
    if unpack:
        lines += [
            f"rm -rf {incoming} && mkdir -m 700 {incoming}",
            f"tar -x -C {incoming}",
            f"chmod 750 {incoming} && mv -T {incoming} {q(layout.release_dir(release_id))}",
        ]
    lines += [
        f"docker network inspect {q(layout.network)} >/dev/null 2>&1 || docker network create {q(layout.network)} >/dev/null",
    ]
    if has_database:
        volume = q(f"{layout.app}_{database_volume}")
        lines += [
            f"docker volume inspect {volume} >/dev/null 2>&1 || docker volume create {volume} >/dev/null",
            f"{layout.compose(layout.infra_project, release_id)} up -d --no-deps --wait --wait-timeout 120 db",
        ]
    return "\n".join(lines)


def release_command_script(layout: Layout, release_id: str, service: str, command: list[str]) -> str:
    return (f"{layout.compose(layout.release_project(release_id), release_id)} run --rm --no-deps -T "
            f"{shlex.quote(service)} {shlex.join(command)}")


def start_services_command(layout: Layout, release_id: str, services: list[str]) -> str:
    return f"{layout.compose(layout.release_project(release_id), release_id)} up -d --no-deps {' '.join(map(shlex.quote, services))}"


def wait_healthy_script(checks: list[tuple[str, int, str]], timeout_seconds: int) -> str:
    """Poll until every (container, port, path) is Docker-healthy and answers HTTP 2xx from the host.

    Exits UNHEALTHY_EXIT with one status line per container when the time is up,
    or at once when a container has stopped.
    """
    pairs = " ".join(shlex.quote(f"{c}|{port}|{path}") for c, port, path in checks)
    return f"""deadline=$(( $(date +%s) + {timeout_seconds} ))
while :; do
  ready=1; dead=0; report=""
  for check in {pairs}; do
    name=${{check%%|*}}; rest=${{check#*|}}; port=${{rest%%|*}}; path=${{rest#*|}}
    status=$(docker inspect -f '{{{{.State.Status}}}} {{{{if .State.Health}}}}{{{{.State.Health.Status}}}}{{{{else}}}}none{{{{end}}}}' "$name" 2>/dev/null || echo "missing -")
    probe=-
    case "$status" in
      "running healthy")
        ip=$(docker inspect -f '{{{{range .NetworkSettings.Networks}}}}{{{{.IPAddress}}}}{{{{end}}}}' "$name")
        if code=$(curl -s -o /dev/null -w '%{{http_code}}' --max-time 3 "http://$ip:$port$path"); then probe=$code; fi
        case "$probe" in 2??) ;; *) ready=0 ;; esac ;;
      exited*|dead*|missing*) ready=0; dead=1 ;;
      *) ready=0 ;;
    esac
    report="$report $name=$(echo $status | tr ' ' '/'),http=$probe"
  done
  if [ $ready = 1 ]; then echo "healthy:$report"; exit 0; fi
  if [ $dead = 1 ] || [ $(date +%s) -ge $deadline ]; then echo "unhealthy:$report"; exit {UNHEALTHY_EXIT}; fi
  sleep 1
done"""


def failure_report_script(containers: list[str]) -> str:
    """What an operator needs to see about containers that never became healthy."""
    parts = []
    for name in containers:
        q = shlex.quote(name)
        parts.append(
            f"echo \"--- {name}: last health checks\"; "
            f"docker inspect -f '{{{{if .State.Health}}}}{{{{range .State.Health.Log}}}}exit {{{{.ExitCode}}}}: {{{{.Output}}}}{{{{end}}}}{{{{end}}}}' {q} 2>&1 | tail -n 6; "
            f"echo \"--- {name}: last log lines\"; docker logs --tail 15 {q} 2>&1"
        )
    return "; ".join(parts)


def switch_nginx_script(layout: Layout, release_id: str, nginx_image: str, nginx_running: bool) -> str:
    """Install the new nginx config (stdin) only if `nginx -t` passes; reload, never restart.

    The previous config is kept beside it until the switch is done, and put
    back if the test fails. On the very first deploy nginx is started instead.
    """
    q = shlex.quote
    conf, previous = q(layout.live_nginx_conf), q(layout.live_nginx_conf + ".previous")
    nginx_dir = q(layout.nginx_dir)
    if nginx_running:
        test = f"docker exec {q(layout.nginx_container)} nginx -t -q"
        activate = f"docker exec {q(layout.nginx_container)} nginx -s reload"
    else:
        test = (f"docker run --rm --network {q(layout.network)} -v {nginx_dir}:/etc/nginx/conf.d:ro "
                f"{q(nginx_image)} nginx -t -q")
        activate = f"{layout.compose(layout.infra_project, release_id)} up -d --no-deps nginx"
    return "\n".join([
        "set -e",
        f"tmp=$(mktemp {nginx_dir}/.app.conf.XXXXXX)",
        'cat > "$tmp" && chmod 644 "$tmp"',
        f"if [ -e {conf} ]; then cp -p {conf} {previous}; else rm -f {previous}; fi",
        f'mv -f "$tmp" {conf}',
        f"if ! {test}; then",
        f"  if [ -e {previous} ]; then mv -f {previous} {conf}; else rm -f {conf}; fi",
        "  echo 'nginx -t rejected the new config; the previous one is back' >&2; exit 1",
        "fi",
        activate,
        f"rm -f {previous}",
    ])


def finish_script(layout: Layout, release_id: str, old_releases: list[str], worker_names: list[str],
                  drain_seconds: int) -> str:
    """After the switch: let old containers drain, swap workers, retire old projects, point `current`."""
    q = shlex.quote
    new_compose = layout.compose(layout.release_project(release_id), release_id)
    lines = ["set -e"]
    if old_releases and drain_seconds:
        lines.append(f"sleep {drain_seconds}")
    for old in old_releases:
        old_project = q(layout.release_project(old))
        # Old containers may outlive their release folder; stop them by label, not by compose file.
        lines.append(f"docker ps -aq --filter label=com.docker.compose.project={old_project} | xargs -r docker stop -t 30 >/dev/null")
    if worker_names:
        lines.append(f"{new_compose} up -d --no-deps {' '.join(map(q, worker_names))}")
    for old in old_releases:
        old_project = q(layout.release_project(old))
        lines.append(f"docker ps -aq --filter label=com.docker.compose.project={old_project} | xargs -r docker rm -f >/dev/null")
    lines.append(point_current_script(layout, release_id))
    return "\n".join(lines)


def point_current_script(layout: Layout, release_id: str) -> str:
    """Switch the `current` symlink atomically (a new link renamed over the old one)."""
    q = shlex.quote
    return f"ln -sfn releases/{q(release_id)} {q(layout.current)}.new && mv -T {q(layout.current)}.new {q(layout.current)}"


def discard_release_script(layout: Layout, release_id: str) -> str:
    """Remove a release's containers (it never took traffic)."""
    project = shlex.quote(layout.release_project(release_id))
    return f"docker ps -aq --filter label=com.docker.compose.project={project} | xargs -r docker rm -f >/dev/null"


def format_releases(state: ServerState) -> str:
    """One line a release, newest first; `*` marks the one nginx sends traffic to."""
    if not state.releases:
        return "no releases yet"
    lines = [f"  {'id':<16} {'version':<10} {'time':<26} {'deployer':<24} outcome"]
    for rid in sorted(state.releases, reverse=True):
        record = state.releases[rid]
        mark = "*" if rid == state.serving else " "
        lines.append(f"{mark} {rid:<16} {record.get('version', '?'):<10} {record.get('time', '?'):<26} "
                     f"{record.get('deployer', '?'):<24} {record.get('outcome', '?')}")
    return "\n".join(lines)


def write_file_script(path: str) -> str:
    """Replace PATH with stdin through a temporary file and a rename."""
    q = shlex.quote(path)
    return f"tmp=$(mktemp {q}.XXXXXX) && cat > \"$tmp\" && chmod 644 \"$tmp\" && mv -f \"$tmp\" {q}"


def append_audit_script(layout: Layout) -> str:
    return f"mkdir -p {shlex.quote(layout.state_dir)} && cat >> {shlex.quote(layout.audit_log)}"


def audit_event(event: str, deployer: str, now: datetime, **details) -> str:
    record = {"time": now.astimezone(timezone.utc).isoformat(timespec="seconds"), "event": event, "by": deployer, **details}
    return json.dumps(record, sort_keys=True) + "\n"


def prune_script(layout: Layout, remove: list[str], image_ids: list[str]) -> str:
    q = shlex.quote
    lines = [f"rm -rf {q(layout.release_dir(rid))}" for rid in remove]
    if image_ids:
        lines.append(f"docker image rm {' '.join(map(q, image_ids))} >/dev/null 2>&1 || true")
    return "\n".join(lines) or "true"


def releases_to_prune(state: ServerState, keep: int, protected: set[str]) -> list[str]:
    ordered = sorted(state.releases)
    removable = [rid for rid in ordered[:-keep] if rid not in protected] if len(ordered) > keep else []
    return removable


def unused_images(state: ServerState, pruned: list[str]) -> list[str]:
    kept_ids = {image["id"] for rid, record in state.releases.items() if rid not in pruned
                for image in record.get("images", {}).values()}
    pruned_ids = {image["id"] for rid in pruned for image in state.releases[rid].get("images", {}).values()}
    return sorted(pruned_ids - kept_ids)


def tag_images_script(images: dict[str, dict]) -> str:
    """Point each tag back at the image ID the release recorded (a rollback never pulls or builds)."""
    return "\n".join(f"docker tag {shlex.quote(image['id'])} {shlex.quote(image['ref'])}" for image in images.values()) or "true"


def file_dump_script(paths: list[str]) -> str:
    """Print each file base64-encoded under a marker: the serving release's files for a dry-run diff."""
    return "\n".join(
        f"echo '{MARK} {path}'; if [ -f {shlex.quote(path)} ]; then base64 -w0 {shlex.quote(path)}; echo; fi" for path in paths)


def parse_file_dump(output: str) -> dict[str, str]:
    files: dict[str, str] = {}
    current = None
    for line in output.splitlines():
        if line.startswith(MARK + " "):
            current = line[len(MARK) + 1:]
        elif current and line.strip():
            files[current] = base64.b64decode(line.strip()).decode(errors="replace")
    return files


# --- the deploy lock ------------------------------------------------------------------

def lock_script(layout: Layout, holder: dict, wait_for_detached_seconds: int = 90) -> str:
    """Hold the deploy lock for as long as this command's stdin stays open.

    flock is atomic and dies with its holder: when slipway exits, is stopped
    with Ctrl-C or loses its SSH connection, stdin closes. The holder then
    marks itself detached and waits for the run's steps still in flight (each
    holds steps.lock shared, see `in_run`) before it lets go, so a step that
    outlives its SSH session never overlaps the next run. A new run waits for
    a detached holder instead of being refused.
    """
    q = shlex.quote
    info = q(json.dumps(holder, sort_keys=True))
    lock_info = q(layout.lock_info)
    return "\n".join([
        f"mkdir -p {q(layout.state_dir)}",
        f"exec 9>>{q(layout.lock_file)}",
        "if ! flock -n 9; then",
        f"  if grep -q '\"detached\": true' {lock_info} 2>/dev/null && flock -w {wait_for_detached_seconds} 9; then :; else",
        f"    cat {lock_info} 2>/dev/null || echo '{{}}'; exit {LOCK_BUSY_EXIT}",
        "  fi",
        "fi",
        f"printf '{{\"pid\": %s, \"holder\": %s}}\\n' \"$$\" {info} > {lock_info}",
        "echo LOCKED",
        "cat >/dev/null 9>&-",
        f"printf '{{\"pid\": %s, \"holder\": %s, \"detached\": true}}\\n' \"$$\" {info} > {lock_info}",
        f"flock -x {q(layout.steps_lock)} true",
        f"rm -f {lock_info}",
    ])


def in_run(layout: Layout, script: str) -> str:
    """SCRIPT as a step of the locked run: it holds steps.lock shared while it runs (see lock_script)."""
    return f"flock -s {shlex.quote(layout.steps_lock)} sh -c {shlex.quote(script)}"


def recover_script(layout: Layout) -> str:
    """Finish what an interrupted run left half-done: a config kept as `.previous` means the
    switch never completed, so the previous config (whose containers still run) goes back."""
    q = shlex.quote
    conf, previous = q(layout.live_nginx_conf), q(layout.live_nginx_conf + ".previous")
    nginx = q(layout.nginx_container)
    return "\n".join([
        f"if [ -e {previous} ]; then",
        f"  mv -f {previous} {conf}",
        f"  if [ \"$(docker inspect -f '{{{{.State.Running}}}}' {nginx} 2>/dev/null)\" = true ]; then",
        f"    docker exec {nginx} nginx -t -q && docker exec {nginx} nginx -s reload 2>/dev/null",
        "  fi",
        "  echo 'restored the nginx config an interrupted switch left behind'",
        "fi",
    ])


def lock_status_script(layout: Layout) -> str:
    q = shlex.quote
    return (f"mkdir -p {q(layout.state_dir)}; exec 9>>{q(layout.lock_file)}; "
            f"if flock -n 9; then rm -f {q(layout.lock_info)}; echo free; else cat {q(layout.lock_info)} 2>/dev/null || echo '{{}}'; fi")


def force_unlock_script(layout: Layout, pid: int) -> str:
    return f"kill {int(pid)} 2>/dev/null || true; rm -f {shlex.quote(layout.lock_info)}"


def describe_lock(record: dict) -> str:
    holder = record.get("holder") or {}
    if not holder:
        return "an unknown holder"
    message = f": {holder['message']}" if holder.get("message") else ""
    return (f"{holder.get('by', '?')} running `{holder.get('command', '?')}` since {holder.get('since', '?')}"
            f" (pid {record.get('pid', '?')}){message}")
