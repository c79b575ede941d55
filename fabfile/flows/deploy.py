"""A deploy: the release rendered here, its images shipped or pulled, started beside the serving one and
health-gated, traffic moved to it, the old one retired; a certificate obtained once the site serves."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from ..commands import tls as tls_commands
from ..commands import traffic, upgrade
from ..commands.layout import image_refs, layout_of, new_release_id
from ..commands.release import ReleaseFile, nginx_conf as render_nginx_conf, release_diff, release_files, \
    release_tarball, serves_https
from ..commands.state import ServerState, dump_files_command, parse_file_dump
from ..config import Deployment
from ..errors import SlipwayError
from ..remote import Remote, Reporter
from . import accessories, backups, images, tls
from .database import check_database_password
from .locked import Attempt, LockedRun, audit, audit_line, deploy_lock, deployer, failing_cleanly, read_state, \
    recover, remove_leftovers
from .release import Ending, activate


def checkout_commit(project: Path) -> str:
    """The deploying checkout's commit (with -dirty when it has uncommitted changes)."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", "-C", str(project), *args], capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""
    commit = git("rev-parse", "--short=12", "HEAD")
    return f"{commit}-dirty" if commit and git("status", "--porcelain") else (commit or "unknown")


@dataclass
class Plan:
    """A deploy of VERSION as far as this machine can make it before connecting: a template error changes nothing.

    A dry run renders later, under the serving release's id, so its diff shows only what really changes."""

    deployment: Deployment
    project: Path
    version: str
    started: datetime
    release_id: str
    refs: dict[str, str]
    local_ids: dict[str, str]
    commit: str
    files: list[ReleaseFile] | None
    https_conf: str | None


def plan(deployment: Deployment, project: Path, version: str, dry_run: bool) -> Plan:
    """Renders nginx's config with and without a certificate to serve, and reads the local images' ids."""
    inventory = deployment.inventory
    started = datetime.now(timezone.utc)
    release_id = new_release_id(started)
    files = None if dry_run else release_files(deployment, project, release_id, version, False)
    https_conf = render_nginx_conf(inventory, project, True) if inventory.tls_enabled and not dry_run else None
    refs = image_refs(inventory, version)
    local_ids = images.local_image_ids(refs) if inventory.images.source == "ship" else {}
    return Plan(deployment, project, version, started, release_id, refs, local_ids, checkout_commit(project), files,
                https_conf)


def dry_run(remote: Remote, reporter: Reporter, plan: Plan) -> None:
    """What a deploy would change: the rendered files' diff against the serving release (secrets masked), the images
    to ship; nothing on the server changes."""
    deployment = plan.deployment
    with reporter.step("read server state (one round trip)") as step:
        state = read_state(remote.run, layout_of(deployment.inventory), list(plan.refs.values()), deployment.name)
        step.detail = f"serving {state.serving or 'nothing yet'}"
    if deployment.inventory.accessories:
        with reporter.step("accessories (not applied)") as step:
            refusal = accessories.refusal(deployment, state)
            starting = accessories.missing(deployment, state)
            step.changed = bool(starting)
            step.detail = refusal or (f"would start {', '.join(starting)}" if starting else "all up as the inventory says")
    check_database_password(remote.run, reporter, deployment, locked=False)
    _show_dry_run(remote, reporter, plan, state)
    print(reporter.summary())


def deploy(remote: Remote, reporter: Reporter, plan: Plan, restart_db: bool, restart_nginx: bool) -> None:
    deployment, release_id, version = plan.deployment, plan.release_id, plan.version
    inventory = deployment.inventory
    layout = layout_of(inventory)
    accessory_images = accessories.image_refs(deployment, list(inventory.accessories))
    with deploy_lock(remote, layout, f"deploy {version}", inventory.app.step_timeout_seconds,
                     started=audit_line("deploy started", release=release_id, version=version)) as run:
        try:
            check_database_password(run, reporter, deployment)
            state = recover(run, reporter, layout, [*plan.refs.values(), *accessory_images.values()], deployment.name)
            refusal = accessories.refusal(deployment, state)
            if refusal:
                raise SlipwayError(refusal)
        except SlipwayError as refusal:
            audit(run, layout, "deploy failed", release=release_id, version=version, step=reporter.failed_step,
                  detail=str(refusal))
            raise
        remove_leftovers(run, reporter, layout, state)
        certificate = _certificate(remote, run, reporter, deployment)
        files = plan.files
        if plan.https_conf and (certificate is not None or not inventory.tls.uses_acme):
            files = [replace(f, content=plan.https_conf) if f.path == "nginx.conf" else f for f in files]
        modes = (traffic.RESTART if restart_db else traffic.KEEP, traffic.RESTART if restart_nginx else traffic.KEEP)
        safety = _serve(remote, run, reporter, plan, state, files, modes)
        tls_problem = None
        if tls_commands.uses_acme(inventory) and not (certificate and certificate.covers(inventory.app.domains)):
            tls_problem = tls.obtain(run, reporter, deployment, release_id, plan.https_conf)
            audit(run, layout, "certificate failed" if tls_problem else "certificate issued",
                  domains=inventory.app.domains, **({"reason": tls_problem} if tls_problem else {}))
    print(f"{reporter.summary()}, {remote.round_trips} SSH round trips")
    print(f"[{deployment.name}] {release_id} ({version}) is live")
    if safety:
        print(f"[{deployment.name}] the database before its release command is backup {safety}; to go back: "
              f"fab -H {deployment.name} rollback && fab -H {deployment.name} backup.restore {safety}")
    if tls_problem:
        serving = "HTTPS with the certificate it had" if certificate else "HTTP only"
        raise SlipwayError(f"{deployment.name}: no certificate for {', '.join(inventory.app.domains)}: {tls_problem}; "
                           f"the site keeps serving {serving}; the next deploy tries again")


def _serve(remote: Remote, run: LockedRun, reporter: Reporter, plan: Plan, state: ServerState,
           files: list[ReleaseFile], modes: tuple[str, str]) -> str | None:
    """The attempt: images on the server, a backup before migrations, the release activated, old ones pruned.
    Any failure ends it the one way (see failing_cleanly). The pre-deploy backup's id, if one was taken."""
    deployment = plan.deployment
    attempt = Attempt("deploy", plan.release_id, plan.version, plan.started, plan.commit, deployer(), state.serving)
    starting = accessories.missing(deployment, state)
    with failing_cleanly(run, reporter, layout_of(deployment.inventory), attempt, deployment.name):
        accessory_refs = accessories.image_refs(deployment, starting)
        refs = {**plan.refs, **accessory_refs}
        if deployment.inventory.images.source == "ship":
            local_ids = {**plan.local_ids, **images.local_image_ids(accessory_refs)}
            image_ids = images.ship(run, reporter, deployment, refs, local_ids, state)
        else:
            image_ids = images.pull(run, reporter, deployment, refs)
        attempt.images = {name: {"ref": ref, "id": image_ids[ref]} for name, ref in plan.refs.items()}
        tar = release_tarball(files, {"release.json": attempt.record("pending")})
        nginx_conf = next(f.content for f in files if f.path == "nginx.conf")
        safety = _backup_before_migrations(remote, run, reporter, deployment, state)
        succeeded = Ending(keep=True, event="deploy succeeded", details={"release": plan.release_id,
                                                                          "version": plan.version})
        activate(run, reporter, deployment, state, attempt, tar, nginx_conf, *modes, succeeded, tuple(starting))
    return safety

def _certificate(remote, run: LockedRun, reporter: Reporter, deployment: Deployment):
    """The certificate nginx can serve: the ACME one on the server (None before the first), or the user's own."""
    inventory = deployment.inventory
    if not inventory.tls_enabled:
        return None
    if inventory.tls.uses_acme:
        return tls.installed_certificate(run, reporter, deployment)
    tls.check_installed(remote, deployment, reporter)
    tls.install_own(run, reporter, deployment)
    return tls.read_certificate(run, reporter, deployment)


def _backup_before_migrations(remote, run: LockedRun, reporter: Reporter, deployment: Deployment,
                              state: ServerState) -> str | None:
    """A backup right before a release command changes the schema (backup.before_deploy), once a database exists."""
    inventory = deployment.inventory
    migrates = any(service.release_command for service in inventory.services.values())
    if not (inventory.database and inventory.backup.before_deploy and migrates and state.serving):
        return None
    if not state.db_running:
        # A first deploy after an image-store switch, or a database someone stopped: nothing to dump now.
        with reporter.step("pre-deploy backup") as step:
            step.detail = f"skipped: {layout_of(inventory).db_container} is not running, so there is nothing to back up"
        return None
    return backups.take(remote, reporter, deployment, "pre-deploy", run=run, check_first=True)["id"]


def _show_dry_run(remote: Remote, reporter: Reporter, plan: Plan, state: ServerState) -> None:
    deployment, project, version = plan.deployment, plan.project, plan.version
    layout = layout_of(deployment.inventory)
    names = release_files(deployment, project, "r", version, False)
    serving_dir = layout.release_dir(state.serving) if state.serving else None
    paths = [f"{serving_dir}/{f.path}" for f in names] if serving_dir else []
    dump = parse_file_dump(remote.run(dump_files_command(paths)).stdout) if paths else {}
    on_server = {path[len(serving_dir) + 1:]: text for path, text in dump.items()} if serving_dir else {}
    # HTTPS in the comparison exactly when the serving release serves it: the certificate is the server's.
    https = serves_https(on_server.get("nginx.conf", ""))
    files = release_files(deployment, project, state.serving or new_release_id(datetime.now(timezone.utc)), version, https)
    with reporter.step("render release (not applied)") as step:
        diff = release_diff(files, on_server)
        step.changed = bool(diff)
        step.detail = "\n" + "\n".join("    " + line for line in diff.rstrip("\n").splitlines()) if diff else ""
    if state.serving and state.layout < upgrade.LAYOUT:
        with reporter.step(f"upgrade the server's layout {state.layout} to {upgrade.LAYOUT} (not applied)") as step:
            step.changed = True
            step.detail = "\n" + "\n".join("    " + line for line in upgrade.migrations(state.layout))
    if plan.local_ids:
        missing = images.missing_on_server(plan.refs, plan.local_ids, state)
        with reporter.step("images to ship") as step:
            step.changed, step.detail = bool(missing), ", ".join(missing)


