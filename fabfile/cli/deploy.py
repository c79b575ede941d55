"""`fab -H NAME deploy|rollback|releases`: zero-downtime releases behind nginx.

New containers start beside the old ones; nginx moves to them only once
every one is Docker-healthy and answers its health path; a release that
never gets healthy never gets traffic.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import socket
import subprocess
import tarfile
import tempfile
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from ..commands import deploy as commands
from ..config import Deployment
from ..errors import ConfigError, RemoteCommandFailed, SlipwayError
from ..remote import Remote, Reporter
from .common import load_deployment, operator_task, project_dir, session

VERSION_RULE = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"


def deployer() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def checkout_commit(c) -> str:
    """The deploying checkout's commit (with -dirty when it has uncommitted changes)."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", "-C", str(project_dir(c)), *args], capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""
    commit = git("rev-parse", "--short=12", "HEAD")
    return f"{commit}-dirty" if commit and git("status", "--porcelain") else (commit or "unknown")


def local_image_ids(refs: dict[str, str]) -> dict[str, str]:
    """Image ID of each reference on this machine; a missing one stops the deploy before any connection."""
    ids, missing = {}, []
    for ref in dict.fromkeys(refs.values()):
        result = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True)
        if result.returncode == 0:
            ids[ref] = result.stdout.strip()
        else:
            missing.append(ref)
    if missing:
        raise SlipwayError(f"image{'s' if len(missing) > 1 else ''} {', '.join(missing)} not found on this machine; "
                           "build or pull it, or set images.source: registry to pull on the server")
    return ids


class LockedRun:
    """Runs the steps of a locked deploy or rollback: each holds the run's steps lock while it runs."""

    def __init__(self, remote: Remote, layout: commands.Layout):
        self.remote = remote
        self.layout = layout
        self.label = remote.label

    def __call__(self, script: str, **kwargs):
        return self.remote.run(commands.in_run(self.layout, script), shown=script, **kwargs)


@contextmanager
def deploy_lock(remote: Remote, layout: commands.Layout, command: str, message: str = "") -> Iterator[LockedRun]:
    holder = {"by": deployer(), "command": command, "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if message:
        holder["message"] = message
    channel = remote.open_channel(commands.lock_script(layout, holder))
    try:
        first = channel.makefile("r").readline().strip()
        if first != "LOCKED":
            exited = channel.recv_exit_status()
            if exited == commands.LOCK_BUSY_EXIT:
                raise SlipwayError(f"{remote.label}: deploy lock is held by {commands.describe_lock(_json(first))}; "
                                   "nothing was changed (see `lock.status`; `lock.release --force` if it is stale)")
            raise RemoteCommandFailed(remote.label, "take the deploy lock", exited, channel.makefile_stderr("r").read())
        yield LockedRun(remote, layout)
    finally:
        channel.shutdown_write()
        channel.close()


def _json(text: str) -> dict:
    try:
        return json.loads(text)
    except ValueError:
        return {}


def audit(run, layout: commands.Layout, event: str, **details) -> None:
    """Append one JSON line to the audit log (RUN: a Remote's or a LockedRun's run)."""
    run(commands.append_audit_script(layout), stdin=commands.audit_event(event, deployer(), datetime.now(timezone.utc), **details))


def recover(run: LockedRun, reporter: Reporter, layout: commands.Layout, refs: list[str]) -> commands.ServerState:
    """Under the lock: finish what an interrupted run left, then read the server afresh."""
    with reporter.step("recover from interrupted runs, re-read state") as step:
        output = run(commands.recover_script(layout) + "\n" + commands.state_script(layout, refs)).stdout
        state = commands.parse_state(output, layout)
        if output.startswith("restored"):
            step.changed, step.detail = True, "put back the nginx config of an unfinished switch"
        serving = state.releases.get(state.serving)
        if serving and serving.get("outcome") == "pending":
            # It took traffic before its run was cut off: it is a release that served.
            serving["outcome"] = "active"
            run(commands.write_file_script(f"{layout.release_dir(state.serving)}/release.json"),
                stdin=json.dumps(serving, sort_keys=True) + "\n")
            step.changed, step.detail = True, f"{state.serving} serves: recorded as active"
        if state.serving and state.current != state.serving:
            # A run cut off between the nginx switch and its last step left `current` behind.
            run(commands.point_current_script(layout, state.serving))
            state.current = state.serving
            step.changed, step.detail = True, f"current now points at the serving {state.serving}"
    return state


def read_state(remote: Remote, reporter: Reporter, layout: commands.Layout, refs: list[str]) -> commands.ServerState:
    with reporter.step("read server state (one round trip)") as step:
        state = commands.parse_state(remote.run(commands.state_script(layout, refs)).stdout, layout)
        step.detail = f"serving {state.serving or 'nothing yet'}"
    return state


def remove_leftovers(run: LockedRun, reporter: Reporter, layout: commands.Layout, state: commands.ServerState) -> None:
    """Containers of attempts that never took traffic (an interrupted or failed deploy) go first."""
    leftovers = sorted(rid for rid in state.projects if rid != state.serving)
    if not leftovers:
        return
    with reporter.step("remove leftovers of interrupted deploys") as step:
        for release_id in leftovers:
            run(commands.discard_release_script(layout, release_id))
            del state.projects[release_id]
        step.changed, step.detail = True, ", ".join(leftovers)


def activate(run: LockedRun, reporter: Reporter, deployment: Deployment, state: commands.ServerState,
             release_id: str, version: str, images: dict[str, dict], started: datetime, commit: str,
             release_tar: bytes | None, nginx_conf: str) -> None:
    """Bring RELEASE_ID up beside the serving release, gate it on health, then move traffic to it.

    A new release (RELEASE_TAR given) runs its release commands first; a rollback does not
    re-run an older release's migrations against a newer schema.
    """
    inventory = deployment.inventory
    layout = commands.layout_of(inventory)
    web = commands.web_services(inventory)
    workers = commands.workers(inventory)
    database = inventory.database

    def record(outcome: str, detail: str = "") -> None:
        run(commands.write_file_script(f"{layout.release_dir(release_id)}/release.json"),
                   stdin=commands.release_record(release_id, version, images, commit, deployer(), started, outcome, detail))

    with reporter.step(f"{'upload release' if release_tar else 'reuse release'} {release_id}" +
                       (", db up" if database else "")) as step:
        run(commands.prepare_script(layout, release_id, database is not None, database.volume if database else None,
                                           unpack=release_tar is not None), stdin=release_tar or b"")
        step.changed = True
    try:
        for name, service in inventory.services.items() if release_tar else ():
            if service.release_command:
                with reporter.step(f"release command in a new {name} container") as step:
                    run(commands.release_command_script(layout, release_id, name, service.release_command))
                    step.changed = True
        if web:
            replicas = sum(service.replicas for service in web.values())
            with reporter.step(f"start {', '.join(web)} ({replicas} new beside the old)") as step:
                run(commands.start_services_command(layout, release_id, list(web)))
                step.changed = True
            checks = [(container, service.healthcheck.port, service.healthcheck.path)
                      for name, service in web.items()
                      for container in layout.containers(release_id, name, service.replicas)]
            timeout = max(service.healthcheck.timeout_seconds for service in web.values())
            with reporter.step("wait until every new container is healthy") as step:
                result = run(commands.wait_healthy_script(checks, timeout), check=False)
                step.detail = result.stdout.strip().partition(":")[2].strip()
                if result.exited == commands.UNHEALTHY_EXIT:
                    report = run(commands.failure_report_script([c for c, _, _ in checks]), check=False).stdout
                    raise SlipwayError(f"{deployment.name}: release {release_id} ({version}) never became healthy, so it "
                                     f"got no traffic; {state.serving or 'nothing'} still serves.\n{report.rstrip()}")
                if result.failed:
                    raise RemoteCommandFailed(deployment.name, "wait for health", result.exited, result.stderr)
    except (SlipwayError, KeyboardInterrupt) as error:
        with reporter.step(f"remove release {release_id}'s containers") as step:
            run(commands.discard_release_script(layout, release_id), check=False)
            step.changed = True
        detail = str(error).splitlines()[0] if isinstance(error, SlipwayError) else "interrupted"
        record("failed", detail)
        audit(run, layout, "deploy failed", release=release_id, version=version, detail=detail)
        raise

    with reporter.step(f"switch nginx to {release_id} (nginx -t, reload)") as step:
        run(commands.switch_nginx_script(layout, release_id, images["nginx"]["ref"], state.nginx_running),
                   stdin=nginx_conf)
        step.changed = True
    old = sorted(rid for rid in state.projects if rid != release_id)
    with reporter.step("drain and stop old containers, start workers") as step:
        run(commands.finish_script(layout, release_id, old, list(workers), inventory.app.drain_seconds))
        step.changed, step.detail = True, f"retired {', '.join(old)}" if old else ""
    record("active")


def _version(value: str) -> str:
    if not re.fullmatch(VERSION_RULE, value):
        raise ConfigError([f"--version: found {value!r}; expected an image tag like v1 or 2024.05.1"])
    return value


@operator_task(help={
    "version": "image tag of the app's own images (default: app.version in the inventory)",
    "dry-run": "render everything and show a diff against the serving release (secrets masked); change nothing",
})
def deploy(c, version=None, dry_run=False):
    """Ship images, start the new release beside the old, health-gate it, move nginx to it, retire the old."""
    deployment = load_deployment(c)
    inventory = deployment.inventory
    version = _version(version or inventory.app.version)
    layout = commands.layout_of(inventory)
    started = datetime.now(timezone.utc)
    release_id = commands.new_release_id(started)
    # Rendered before any connection, so a template error changes nothing; a dry run renders later,
    # under the serving release's id, so its diff shows only what really changes.
    files = None if dry_run else commands.release_files(deployment, project_dir(c), release_id, version)
    refs = commands.image_refs(inventory, version)
    shipping = inventory.images.source == "ship"
    local_ids = local_image_ids(refs) if shipping else {}
    commit = checkout_commit(c)
    reporter = Reporter(deployment.name, dry_run=dry_run)

    with session(c, deployment, reporter) as remote:
        if dry_run:
            state = read_state(remote, reporter, layout, list(refs.values()))
            compared = commands.release_files(deployment, project_dir(c), state.serving or release_id, version)
            _show_dry_run(remote, reporter, deployment, layout, state, compared, refs, local_ids)
            print(reporter.summary())
            return
        with deploy_lock(remote, layout, f"deploy {version}") as run:
            audit(run, layout, "deploy started", release=release_id, version=version)
            state = recover(run, reporter, layout, list(refs.values()))
            remove_leftovers(run, reporter, layout, state)
            image_ids = _ship(run, reporter, refs, local_ids, state) if shipping else _pull(run, reporter, deployment, refs)
            images = {name: {"ref": ref, "id": image_ids[ref]} for name, ref in refs.items()}
            release_json = commands.release_record(release_id, version, images, commit, deployer(), started, "pending")
            tar = commands.release_tarball(files, {"release.json": release_json})
            nginx_conf = next(f.content for f in files if f.path == "nginx.conf")
            activate(run, reporter, deployment, state, release_id, version, images, started, commit, tar, nginx_conf)
            audit(run, layout, "deploy succeeded", release=release_id, version=version)
            state.releases[release_id] = {"id": release_id, "images": images, "outcome": "active"}
            _prune(run, reporter, deployment, layout, state, release_id)
    print(f"{reporter.summary()}, {remote.round_trips} SSH round trips")
    print(f"[{deployment.name}] {release_id} ({version}) is live")


def _ship(run: LockedRun, reporter: Reporter, refs: dict[str, str], local_ids: dict[str, str],
          state: commands.ServerState) -> dict[str, str]:
    """docker save | docker load over SSH for the images the server lacks, leaving out layers it has."""
    wanted = [ref for ref in dict.fromkeys(refs.values()) if state.image_ids.get(ref) != local_ids[ref]]
    with reporter.step(f"ship images ({len(wanted)} of {len(set(refs.values()))} missing)") as step:
        if wanted:
            sent, total = _stream_images(run, wanted, state.layer_chains)
            step.changed = True
            step.detail = f"{', '.join(wanted)}: sent {sent / 1e6:.1f} MB of {total / 1e6:.1f} MB (layers the server has stay here)"
    return local_ids


def _stream_images(run: LockedRun, refs: list[str], chains: set[tuple[str, ...]]) -> tuple[int, int]:
    with tempfile.TemporaryDirectory(prefix="slipway-ship-") as workdir:
        archive_path = Path(workdir) / "images.tar"
        saved = subprocess.run(["docker", "save", "-o", str(archive_path), *refs], capture_output=True, text=True)
        if saved.returncode != 0:
            raise SlipwayError(f"docker save {' '.join(refs)} failed: {saved.stderr.strip()}")
        with tarfile.open(archive_path) as archive:
            manifest = json.load(archive.extractfile("manifest.json"))
            diff_ids = {image["Config"]: json.load(archive.extractfile(image["Config"]))["rootfs"]["diff_ids"]
                        for image in manifest}
            left_out = commands.layers_to_leave_out(manifest, diff_ids, chains)
            members = [member for member in archive.getmembers() if member.name not in left_out]
            read_end, write_end = os.pipe()
            writer = threading.Thread(target=_write_archive, args=(archive, members, write_end), daemon=True)
            writer.start()
            with os.fdopen(read_end, "rb") as stream:
                run("docker load -q", stdin=stream)
            writer.join()
        return sum(m.size for m in members), archive_path.stat().st_size


def _write_archive(archive: tarfile.TarFile, members: list[tarfile.TarInfo], descriptor: int) -> None:
    try:
        with os.fdopen(descriptor, "wb") as pipe, tarfile.open(fileobj=pipe, mode="w|") as out:
            for member in members:
                out.addfile(member, archive.extractfile(member) if member.isfile() else None)
    except BrokenPipeError:
        pass  # docker load stopped reading: its own error is what gets reported


def _pull(run: LockedRun, reporter: Reporter, deployment: Deployment, refs: dict[str, str]) -> dict[str, str]:
    """docker pull on the server; the login (password on stdin) is undone afterwards, leaving no credentials behind."""
    images = deployment.inventory.images
    registry = shlex.quote(images.registry)
    with reporter.step(f"pull images from {images.registry}") as step:
        login = images.username and images.password_secret
        if login:
            run(f"docker login --username {shlex.quote(images.username)} --password-stdin {registry} >/dev/null",
                stdin=deployment.secret(images.password_secret))
        try:
            pulls = "\n".join(f"docker pull -q {shlex.quote(ref)} >/dev/null && echo {shlex.quote(ref)} "
                              f"$(docker image inspect -f '{{{{.Id}}}}' {shlex.quote(ref)})"
                              for ref in dict.fromkeys(refs.values()))
            output = run("set -e\n" + pulls).stdout
        finally:
            if login:
                run(f"docker logout {registry} >/dev/null", check=False)
        step.changed, step.detail = True, ", ".join(dict.fromkeys(refs.values()))
    return dict(line.rsplit(" ", 1) for line in output.splitlines() if line.strip())


def _prune(run: LockedRun, reporter: Reporter, deployment: Deployment, layout: commands.Layout,
           state: commands.ServerState, serving: str) -> None:
    """Drop releases past `keep_releases` (never the serving one) and images only they used."""
    remove = commands.releases_to_prune(state, deployment.inventory.app.keep_releases, {serving})
    with reporter.step(f"keep the last {deployment.inventory.app.keep_releases} releases") as step:
        if remove:
            run(commands.prune_script(layout, remove, commands.unused_images(state, remove)))
            step.changed, step.detail = True, f"pruned {', '.join(remove)}"


def _show_dry_run(remote, reporter, deployment, layout, state, files, refs, local_ids) -> None:
    serving_dir = layout.release_dir(state.serving) if state.serving else None
    paths = [f"{serving_dir}/{f.path}" for f in files] if serving_dir else []
    dump = commands.parse_file_dump(remote.run(commands.file_dump_script(paths)).stdout) if paths else {}
    on_server = {path[len(serving_dir) + 1:]: text for path, text in dump.items()} if serving_dir else {}
    secrets = tuple(value.get_secret_value() for value in deployment.secrets.values())
    with reporter.step("render release (not applied)") as step:
        diff = commands.release_diff(files, on_server, secrets)
        step.changed = bool(diff)
        step.detail = "\n" + "\n".join("    " + line for line in diff.rstrip("\n").splitlines()) if diff else ""
    if local_ids:
        missing = [ref for ref in dict.fromkeys(refs.values()) if state.image_ids.get(ref) != local_ids[ref]]
        with reporter.step("images to ship") as step:
            step.changed, step.detail = bool(missing), ", ".join(missing)


@operator_task(help={"to": "release id to go back to (default: the newest healthy release before the serving one)"})
def rollback(c, to=None):
    """Re-activate an earlier release with the same health-gated switch, using images already on the server."""
    deployment = load_deployment(c)
    inventory = deployment.inventory
    layout = commands.layout_of(inventory)
    reporter = Reporter(deployment.name)
    with session(c, deployment, reporter) as remote, deploy_lock(remote, layout, f"rollback {to or ''}".strip()) as run:
        state = recover(run, reporter, layout, [])
        target = to or commands.previous_healthy(state, state.serving or "99999999-999999")
        if not target or target not in state.releases:
            known = ", ".join(sorted(state.releases)) or "none"
            raise SlipwayError(f"{deployment.name}: no release {'to roll back to' if not to else to!r} on the server (releases: {known})")
        if target == state.serving:
            raise SlipwayError(f"{deployment.name}: {target} is already serving")
        record = state.releases[target]
        audit(run, layout, "rollback started", release=target, version=record["version"], serving=state.serving)
        remove_leftovers(run, reporter, layout, state)
        with reporter.step(f"images of {target} on the server (no pull, no build)"):
            run(commands.tag_images_script(record["images"]))
        nginx_conf = run(f"cat {layout.release_dir(target)}/nginx.conf").stdout
        started = datetime.fromisoformat(record["time"])
        activate(run, reporter, deployment, state, target, record["version"], record["images"], started,
                 record.get("commit", "unknown"), None, nginx_conf)
        audit(run, layout, "rolled back", release=target, version=record["version"], previous=state.serving)
    print(f"{reporter.summary()}, {remote.round_trips} SSH round trips")
    print(f"[{deployment.name}] rolled back to {target} ({record['version']})")


@operator_task
def releases(c):
    """List releases on the server: id, version, time, deployer, outcome, and which one serves."""
    deployment = load_deployment(c)
    layout = commands.layout_of(deployment.inventory)
    reporter = Reporter(deployment.name)
    with session(c, deployment, reporter) as remote:
        state = commands.parse_state(remote.run(commands.state_script(layout, [])).stdout, layout)
    print(commands.format_releases(state))
