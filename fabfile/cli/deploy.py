"""`fab -H NAME deploy|rollback|releases`: zero-downtime releases behind nginx.

New containers start beside the old ones; nginx moves to them only once
every one is Docker-healthy and answers its health path; a release that
never gets healthy never gets traffic.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from datetime import datetime, timezone

from ..commands import database as db_commands
from ..commands import traffic
from ..commands.layout import Layout, image_refs, layout_of, new_release_id, web_services, workers
from ..commands import tls as tls_commands
from ..commands.release import (ReleaseFile, env_file_value, nginx_conf as render_nginx_conf, release_diff,
                               release_files, release_tarball, serves_https)
from ..commands.shell import shown
from ..commands.state import (SERVED, ServerState, dump_files_command, format_releases, parse_file_dump,
                              previous_healthy, releases_to_prune, unused_images)
from ..config import Deployment
from ..errors import ConfigError, RemoteCommandFailed, SlipwayError
from ..remote import Reporter
from . import backup as backup_tasks
from . import images as image_transfer
from . import tls as tls_tasks
from .common import load_deployment, operator_task, project_dir, session
from .locked import (Attempt, LockedRun, audit, deploy_lock, deployer, failing_cleanly, read_state, recover,
                     remove_leftovers)

VERSION_RULE = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"


def checkout_commit(c) -> str:
    """The deploying checkout's commit (with -dirty when it has uncommitted changes)."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", "-C", str(project_dir(c)), *args], capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""
    commit = git("rev-parse", "--short=12", "HEAD")
    return f"{commit}-dirty" if commit and git("status", "--porcelain") else (commit or "unknown")


def activate(run: LockedRun, reporter: Reporter, deployment: Deployment, state: ServerState, attempt: Attempt,
             release_tar: bytes | None, nginx_conf: str, db_mode: str, nginx_mode: str) -> None:
    """Bring the attempt's release up beside the serving one, gate it on health, then move traffic to it.

    A new release (RELEASE_TAR given) runs its release commands first; a rollback does not
    re-run an older release's migrations against a newer schema.
    """
    inventory = deployment.inventory
    layout = layout_of(inventory)
    web = web_services(inventory)
    release_id = attempt.release_id

    with reporter.step(f"{'upload release' if release_tar else 'reuse release'} {release_id}" +
                       (", db up" if inventory.database else "")) as step:
        prepare = traffic.prepare_command(layout, inventory, release_id, release_tar is not None, db_mode, nginx_mode,
                                          state.standby_slot)
        result = run(prepare, stdin=release_tar or b"", check=False)
        if result.exited in (traffic.DB_CHANGED_EXIT, traffic.DB_MAJOR_EXIT):
            raise SlipwayError(_database_refusal(deployment, state, result.exited, result.stdout.strip()))
        if result.exited == traffic.NGINX_CHANGED_EXIT:
            raise SlipwayError(
                f"{deployment.name}: nginx's own service differs from the running nginx's ({result.stdout.strip()}; "
                f"release: {inventory.nginx.image}; or its ports or mounts); it was left running as it is and "
                f"{state.serving or 'nothing'} still serves. Deploy with --restart-nginx to re-create it "
                "(open connections drop and new ones are refused for a few seconds)")
        if result.failed:
            raise RemoteCommandFailed(run.remote.label, shown(prepare), result.exited, result.stderr or result.stdout)
        step.changed = True
    for name, service in inventory.services.items() if release_tar else ():
        if service.release_command:
            with reporter.step(f"release command in a new {name} container") as step:
                limit = service.release_command_timeout_seconds
                run(traffic.release_command(layout, release_id, name, service.release_command, limit),
                    limit=limit + traffic.HEALTH_MARGIN_SECONDS)
                step.changed = True
    if web:
        replicas = sum(service.replicas for service in web.values())
        with reporter.step(f"start {', '.join(web)} ({replicas} new beside the old)") as step:
            run(traffic.start_services_command(layout, release_id, list(web)))
            step.changed = True
        checks = [(container, service.healthcheck.port, service.healthcheck.path)
                  for name, service in web.items()
                  for container in layout.containers(release_id, name, service.replicas)]
        timeout = max(service.healthcheck.timeout_seconds for service in web.values())
        with reporter.step("wait until every new container is healthy") as step:
            result = run(traffic.wait_healthy_command(checks, timeout), limit=timeout + traffic.HEALTH_MARGIN_SECONDS, check=False)
            step.detail = result.stdout.strip().partition(":")[2].strip()
            if result.exited == traffic.UNHEALTHY_EXIT:
                report = run(traffic.failure_report_command([c for c, _, _ in checks]), check=False).stdout
                raise SlipwayError(f"{deployment.name}: release {release_id} ({attempt.version}) never became healthy, "
                                   f"so it got no traffic; {state.serving or 'nothing'} still serves.\n{report.rstrip()}")
            if result.failed:
                raise SlipwayError(f"{deployment.name}: waiting for health failed (exit {result.exited}): "
                                   f"{(result.stderr or result.stdout).strip()}")

    with reporter.step(f"move traffic to {release_id} (slot {state.standby_slot})") as step:
        switch = traffic.switch_nginx_command(layout, release_id, nginx_mode == traffic.RESTART, state.standby_slot,
                                              _probe(inventory, nginx_conf) if web else ("", ""))
        result = run(switch, stdin=nginx_conf, check=False)
        if result.exited == traffic.MISROUTED_EXIT:
            raise SlipwayError(f"{deployment.name}: release {release_id} ({attempt.version}) was healthy, but "
                               f"{traffic.NGINX_HEALTH_PATH} did not answer through nginx once traffic moved to it "
                               f"({result.stderr.strip()}); {state.serving or 'nothing'} serves again")
        if result.failed:
            raise RemoteCommandFailed(run.remote.label, shown(switch), result.exited, result.stderr or result.stdout)
        attempt.switched = step.changed = True
        step.detail = result.stdout.strip() or "no nginx reload"
    old = sorted(rid for rid in state.projects if rid != release_id)
    with reporter.step("drain and stop old containers, start workers") as step:
        run(traffic.finish_command(layout, release_id, old, list(workers(inventory)), inventory.app.drain_seconds))
        step.changed, step.detail = True, f"retired {', '.join(old)}" if old else ""
    run(traffic.write_record_command(layout, release_id), stdin=attempt.record(SERVED))


def _probe(inventory, nginx_conf: str) -> tuple[str, str]:
    """How the switch reaches the site through nginx: the scheme the config serves, and the name it answers to."""
    if serves_https(nginx_conf):
        return "https", inventory.tls.canonical_host or inventory.app.domains[0]
    return "http", inventory.app.domains[0]


def _version(value: str) -> str:
    if not re.fullmatch(VERSION_RULE, value):
        raise ConfigError([f"--version: found {value!r}; expected an image tag like v1 or 2024.05.1"])
    return value


@operator_task(help={
    "version": "image tag of the app's own images (default: app.version in the inventory)",
    "dry-run": "render everything and show a diff against the serving release (secrets masked); change nothing",
    "restart-db": "re-create the database container when this release changes its settings (same PostgreSQL "
                  "major version only; a short outage for the app)",
    "restart-nginx": "re-create nginx when this release changes its image, ports or mounts (a few seconds in "
                     "which connections fail)",
})
def deploy(c, version=None, dry_run=False, restart_db=False, restart_nginx=False):
    """Ship images, start the new release beside the old, health-gate it, move nginx to it, retire the old."""
    deployment = load_deployment(c)
    inventory = deployment.inventory
    version = _version(version or inventory.app.version)
    layout = layout_of(inventory)
    started = datetime.now(timezone.utc)
    release_id = new_release_id(started)
    # Rendered before any connection (nginx's config with and without a certificate to serve), so a
    # template error changes nothing; a dry run renders later, under the serving release's id, so its
    # diff shows only what really changes.
    files = None if dry_run else release_files(deployment, project_dir(c), release_id, version, False)
    https_conf = render_nginx_conf(inventory, project_dir(c), True) \
        if inventory.tls_enabled and not dry_run else None
    refs = image_refs(inventory, version)
    shipping = inventory.images.source == "ship"
    local_ids = image_transfer.local_image_ids(refs) if shipping else {}
    commit = checkout_commit(c)
    reporter = Reporter(deployment.name, dry_run=dry_run)

    with session(c, deployment, reporter, deploy_user_only=True) as remote:
        if dry_run:
            with reporter.step("read server state (one round trip)") as step:
                state = read_state(remote.run, layout, list(refs.values()), deployment.name)
                step.detail = f"serving {state.serving or 'nothing yet'}"
            _check_database_password(remote.run, reporter, deployment, locked=False)
            _show_dry_run(remote, reporter, deployment, project_dir(c), state, version, refs, local_ids)
            print(reporter.summary())
            return
        with deploy_lock(remote, layout, f"deploy {version}", inventory.app.step_timeout_seconds) as run:
            audit(run, layout, "deploy started", release=release_id, version=version)
            try:
                _check_database_password(run, reporter, deployment)
            except SlipwayError as refusal:
                audit(run, layout, "deploy failed", release=release_id, version=version, step=reporter.failed_step,
                      detail=str(refusal))
                raise
            state = recover(run, reporter, layout, list(refs.values()), deployment.name)
            remove_leftovers(run, reporter, layout, state)
            certificate = _certificate(remote, run, reporter, deployment)
            if https_conf and (certificate is not None or not inventory.tls.uses_acme):
                files = [replace(f, content=https_conf) if f.path == "nginx.conf" else f for f in files]
            attempt = Attempt("deploy", release_id, version, started, commit, deployer(), state.serving)
            with failing_cleanly(run, reporter, layout, attempt, deployment.name):
                if shipping:
                    image_ids = image_transfer.ship(run, reporter, deployment, refs, local_ids, state)
                else:
                    image_ids = image_transfer.pull(run, reporter, deployment, refs)
                attempt.images = {name: {"ref": ref, "id": image_ids[ref]} for name, ref in refs.items()}
                tar = release_tarball(files, {"release.json": attempt.record("pending")})
                nginx_conf = next(f.content for f in files if f.path == "nginx.conf")
                safety = _backup_before_migrations(remote, run, reporter, deployment, state)
                activate(run, reporter, deployment, state, attempt, tar, nginx_conf,
                         traffic.RESTART if restart_db else traffic.KEEP,
                         traffic.RESTART if restart_nginx else traffic.KEEP)
                state.releases[release_id] = {"id": release_id, "images": attempt.images, "outcome": SERVED}
                prune(run, reporter, deployment, state, release_id)
            audit(run, layout, "deploy succeeded", release=release_id, version=version)
            tls_problem = None
            if tls_commands.uses_acme(inventory) and not (certificate and certificate.covers(inventory.app.domains)):
                tls_problem = tls_tasks.obtain(run, reporter, deployment, release_id, https_conf)
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


def _check_database_password(run, reporter: Reporter, deployment: Deployment, locked: bool = True) -> None:
    """A password changed in the secrets file would reach the app but not PostgreSQL, which keeps the one
    it was created with: the release could never get healthy. Stop before anything changes. LOCKED: under
    the deploy lock, where password-less lines left by an interrupted rotation are removed first."""
    database = deployment.inventory.database
    if not database:
        return
    with reporter.step(f"{database.password_secret} opens the database") as step:
        if not _opens_the_database(run, step, deployment.inventory, deployment.secret(database.password_secret), locked):
            raise SlipwayError(
                f"{deployment.name}: {database.password_secret} in {deployment.secrets_file.name} does not open the "
                f"database (PostgreSQL keeps the password it was created with); nothing was changed. To change it: "
                f"fab -H {deployment.name} db.rotate-password (no failed request); to keep it, put the old value back")


def _opens_the_database(run, step, inventory, password: str, clean: bool) -> bool:
    """Whether PASSWORD opens the database as the app connects (or no database runs yet), said in STEP's detail.
    CLEAN: under the deploy lock, first remove password-less lines an interrupted rotation left."""
    opens = run(db_commands.check_password_command(inventory, clean=clean), stdin=f"{password}\n", check=False)
    step.detail = "yes" if opens.ok else "no database running yet"
    if "password-less lines" in opens.stderr:
        step.changed, step.detail = True, f"{step.detail}; removed the password-less lines of an interrupted rotation"
    return opens.exited != db_commands.WRONG_PASSWORD_EXIT


def _check_release_password(run, reporter: Reporter, deployment: Deployment, release_id: str, version: str) -> None:
    """A release from before a password rotation holds a password the database no longer takes: it could not
    log in, whether or not its health path notices. Refuse before anything changes."""
    inventory = deployment.inventory
    if not inventory.database:
        return
    key = inventory.database.password_secret
    folder = layout_of(inventory).release_dir(release_id)
    dumped = parse_file_dump(run(dump_files_command([f"{folder}/env/{name}.env" for name in inventory.services])).stdout)
    password = next((value for text in dumped.values() if (value := env_file_value(text, key)) is not None), None)
    if password is None:
        return
    with reporter.step(f"{release_id}'s {key} opens the database") as step:
        if not _opens_the_database(run, step, inventory, password, clean=True):
            raise SlipwayError(
                f"{deployment.name}: {release_id} ({version}) has a database password that no longer opens the "
                f"database (it was rotated since); it could not log in, so nothing was changed. Deploy its version "
                f"instead: fab -H {deployment.name} deploy --version {version}")


def _certificate(remote, run: LockedRun, reporter: Reporter, deployment: Deployment):
    """The certificate nginx can serve: the ACME one on the server (None before the first), or the user's own."""
    inventory = deployment.inventory
    if not inventory.tls_enabled:
        return None
    tls_tasks.check_installed(remote, deployment, reporter)
    if not inventory.tls.uses_acme:
        tls_tasks.install_own(run, reporter, deployment)
    return tls_tasks.read_certificate(run, reporter, deployment)


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
    backup_tasks.check_installed(remote, deployment, reporter)
    return backup_tasks.take(remote, reporter, deployment, "pre-deploy", run=run)["id"]


def _database_refusal(deployment: Deployment, state: ServerState, exited: int, detail: str) -> str:
    database = deployment.inventory.database
    layout = layout_of(deployment.inventory)
    serving = state.serving or "nothing"
    if exited == traffic.DB_CHANGED_EXIT:
        return (f"{deployment.name}: the database's own settings differ from the running one's ({detail}; or its "
                f"env, volume or checks); it was left running as it is and {serving} still serves. "
                "Deploy with --restart-db to re-create it with the new settings (the app loses its database "
                "for a few seconds; data stays in the volume)")
    return (f"{deployment.name}: {database.image} cannot run on the data in volume {layout.volume(database.volume)} "
            f"({detail.replace(';', ',')}: PostgreSQL reads only its own major version's files); nothing was "
            f"changed and {serving} still serves. Upgrade by dump and restore: with the old image still in "
            f"the inventory, `docker exec {layout.db_container} pg_dumpall -U {database.user} > all.sql`; then set "
            "the new image and a new `database.volume`, deploy with --restart-db, and load the dump with "
            f"`docker exec -i {layout.db_container} psql -U {database.user} -d postgres < all.sql`")


def prune(run: LockedRun, reporter: Reporter, deployment: Deployment, state: ServerState, serving: str) -> None:
    """Drop releases past `keep_releases` (never the serving one) and images only they used."""
    keep = deployment.inventory.app.keep_releases
    remove = releases_to_prune(state, keep, {serving})
    with reporter.step(f"keep the last {keep} releases that served") as step:
        if remove:
            run(traffic.prune_command(layout_of(deployment.inventory), remove, unused_images(state, remove)))
            step.changed, step.detail = True, f"pruned {', '.join(remove)}"


def _show_dry_run(remote, reporter, deployment, project, state, version, refs, local_ids) -> None:
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
    if local_ids:
        missing = image_transfer.missing_on_server(refs, local_ids, state)
        with reporter.step("images to ship") as step:
            step.changed, step.detail = bool(missing), ", ".join(missing)


@operator_task(help={"to": "release id to go back to (default: the newest healthy release before the serving one)"})
def rollback(c, to=None):
    """Re-activate an earlier release with the same health-gated switch, using images already on the server."""
    deployment = load_deployment(c)
    inventory = deployment.inventory
    layout = layout_of(inventory)
    reporter = Reporter(deployment.name)
    with session(c, deployment, reporter, deploy_user_only=True) as remote, \
            deploy_lock(remote, layout, f"rollback {to or ''}".strip(), inventory.app.step_timeout_seconds) as run:
        state = recover(run, reporter, layout, [], deployment.name)
        target = to or previous_healthy(state, state.serving or "99999999-999999")
        if not target or target not in state.releases:
            known = ", ".join(sorted(state.releases)) or "none"
            raise SlipwayError(f"{deployment.name}: no release {'to roll back to' if not to else to!r} on the server (releases: {known})")
        if target == state.serving:
            raise SlipwayError(f"{deployment.name}: {target} is already serving")
        record = state.releases[target]
        if record.get("outcome") != SERVED:
            raise SlipwayError(f"{deployment.name}: {target} never served (outcome {record.get('outcome', '?')}); "
                               "roll back only to a release that did")
        attempt = Attempt("rollback", target, record["version"], datetime.fromisoformat(record["time"]),
                          record.get("commit", "unknown"), record.get("deployer", "?"), state.serving,
                          images=record["images"])
        nginx_conf = run(["cat", f"{layout.release_dir(target)}/nginx.conf"]).stdout
        slotted = run(["grep", "-q", "SLIPWAY_SLOT", layout.compose_file(target)], check=False).ok
        if web_services(inventory) and not slotted:
            raise SlipwayError(f"{deployment.name}: {target} was deployed by a slipway that moved traffic by nginx "
                               "reloads, and its containers have no slot name for nginx to find them by; deploy "
                               f"its version instead: fab -H {deployment.name} deploy --version {record['version']}")
        live_conf = run(["cat", layout.live_nginx_conf], check=False).stdout
        if serves_https(live_conf) and not serves_https(nginx_conf):
            raise SlipwayError(f"{deployment.name}: {target} was deployed before the site had its certificate; "
                               "rolling back to it would turn HTTPS off (browsers that saw HSTS could not reach "
                               f"the site); deploy its version instead: fab -H {deployment.name} deploy "
                               f"--version {record['version']}")
        _check_release_password(run, reporter, deployment, target, record["version"])
        audit(run, layout, "rollback started", release=target, version=record["version"], serving=state.serving)
        with failing_cleanly(run, reporter, layout, attempt, deployment.name):
            remove_leftovers(run, reporter, layout, state)
            with reporter.step(f"images of {target} on the server (no pull, no build)"):
                run(traffic.tag_images_command(record["images"]))
            activate(run, reporter, deployment, state, attempt, None, nginx_conf, traffic.LEAVE, traffic.LEAVE)
        audit(run, layout, "rolled back", release=target, version=record["version"], previous=state.serving)
    print(f"{reporter.summary()}, {remote.round_trips} SSH round trips")
    print(f"[{deployment.name}] rolled back to {target} ({record['version']})")


@operator_task(positional=["service"], help={
    "service": "an app service, or all. A worker restarts in place; all, or a service behind nginx, by "
               "starting the serving release afresh beside itself, health-gated, like a deploy",
})
def restart(c, service):
    """Restart the app: the serving release started afresh (health-gated, no failed requests), or one worker in place."""
    deployment = load_deployment(c)
    inventory = deployment.inventory
    if service != "all" and service not in inventory.services:
        raise ConfigError([f"restart {service}: no such service; expected one of {', '.join(inventory.services)}, "
                           "or all"])
    layout = layout_of(inventory)
    reporter = Reporter(deployment.name)
    with session(c, deployment, reporter, deploy_user_only=True) as remote, \
            deploy_lock(remote, layout, f"restart {service}", inventory.app.step_timeout_seconds) as run:
        state = recover(run, reporter, layout, [], deployment.name)
        if not state.serving:
            raise SlipwayError(f"{deployment.name}: no release serves, so there is nothing to restart; deploy first")
        if service in workers(inventory):
            with reporter.step(f"restart {service} in place (it takes no requests)") as step:
                run(["docker", "compose", "-p", layout.release_project(state.serving), "-f",
                     layout.compose_file(state.serving), "restart", service])
                step.changed = True
            audit(run, layout, "restarted", release=state.serving, service=service)
            print(reporter.summary())
            return
        attempt = copy_attempt(deployment, state, "restart", restart_of=state.serving)
        audit(run, layout, "restart started", release=attempt.release_id, restart_of=state.serving)
        with failing_cleanly(run, reporter, layout, attempt, deployment.name):
            remove_leftovers(run, reporter, layout, state)
            copy_serving(run, reporter, layout, state, attempt)
            serve_copy(run, reporter, deployment, state, attempt)
        audit(run, layout, "restarted", release=attempt.release_id, restart_of=attempt.restart_of)
    print(f"{reporter.summary()}, {remote.round_trips} SSH round trips")
    print(f"[{deployment.name}] {attempt.restart_of} ({attempt.version}) restarted as {attempt.release_id}")


def copy_attempt(deployment: Deployment, state: ServerState, kind: str, **fields) -> Attempt:
    """An attempt to serve the serving release again as a new release: its version, commit and images."""
    started = datetime.now(timezone.utc)
    release_id = new_release_id(started)
    if release_id <= state.serving:
        raise SlipwayError(f"{deployment.name}: {state.serving} started less than a second ago; try again")
    serving = state.releases[state.serving]
    return Attempt(kind, release_id, serving["version"], started, serving.get("commit", "unknown"), deployer(),
                   state.serving, images=serving["images"], **fields)


def copy_serving(run: LockedRun, reporter: Reporter, layout: Layout, state: ServerState, attempt: Attempt,
                 replaced: dict[str, str] | None = None) -> None:
    """The attempt's release folder: a copy of the serving one's, with REPLACED files (path: secret content)
    written over; the serving release's images tagged as its own."""
    detail = ", with its new " + ", ".join(replaced) if replaced else ""
    with reporter.step(f"{attempt.release_id}: {state.serving}'s files, images and settings{detail}") as step:
        run(traffic.copy_release_command(layout, state.serving, attempt.release_id), stdin=attempt.record("pending"))
        if replaced:
            files = [ReleaseFile(path, text, 0o600, secret=True) for path, text in replaced.items()]
            run(["tar", "-x", "-C", layout.release_dir(attempt.release_id)], stdin=release_tarball(files, {}))
        run(traffic.tag_images_command(attempt.images))
        step.changed = True


def serve_copy(run: LockedRun, reporter: Reporter, deployment: Deployment, state: ServerState, attempt: Attempt) -> None:
    """Start the copied release beside the serving one, health-gate it and move traffic to it (nginx's config as
    it is), then keep the last releases."""
    nginx_conf = run(["cat", layout_of(deployment.inventory).live_nginx_conf]).stdout
    activate(run, reporter, deployment, state, attempt, None, nginx_conf, traffic.LEAVE, traffic.LEAVE)
    state.releases[attempt.release_id] = {"id": attempt.release_id, "images": attempt.images, "outcome": SERVED}
    prune(run, reporter, deployment, state, attempt.release_id)


@operator_task
def releases(c):
    """List releases on the server: id, version, time, deployer, outcome, and which one serves."""
    deployment = load_deployment(c)
    layout = layout_of(deployment.inventory)
    reporter = Reporter(deployment.name)
    with session(c, deployment, reporter, deploy_user_only=True) as remote:
        state = read_state(remote.run, layout, [], deployment.name)
    print(format_releases(state))
