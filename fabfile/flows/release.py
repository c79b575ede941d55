"""Serving a release: started beside the serving one, health-gated, traffic moved to it by nginx, the old one
drained and retired; the last releases kept. Deploy, rollback, restart and password rotation all end here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..commands import addresses, traffic, upgrade
from ..commands.layout import Layout, layout_of, new_release_id, web_services, workers
from ..commands.release import ReleaseFile, release_tarball, serves_https
from ..commands.sequence import Part
from ..commands.shell import shown
from ..commands.state import SERVED, ServerState, releases_to_prune, unused_images
from ..config import Deployment
from ..errors import RemoteCommandFailed, SlipwayError
from ..remote import Reporter
from . import accessories
from .locked import Attempt, LockedRun, audit_line, deployer, run_parts


@dataclass(frozen=True)
class Ending:
    """What the attempt's last round trip does besides retiring the old release: KEEP, the releases past
    `keep_releases` pruned; EVENT, the audit event (with DETAILS) appended."""

    keep: bool = False
    event: str = ""
    details: dict = field(default_factory=dict)


def activate(run: LockedRun, reporter: Reporter, deployment: Deployment, state: ServerState, attempt: Attempt,
             release_tar: bytes | None, nginx_conf: str, db_mode: str, nginx_mode: str,
             ending: Ending = Ending(), start_accessories: tuple[str, ...] = ()) -> None:
    """Bring the attempt's release up beside the serving one, gate it on health, then move traffic to it.

    A new release (RELEASE_TAR given) runs its release commands first; a rollback does not
    re-run an older release's migrations against a newer schema. START_ACCESSORIES come up before them.
    """
    activation = Activation(run, reporter, deployment, state, attempt)
    activation.prepare(release_tar, db_mode, nginx_mode)
    if start_accessories:
        accessories.start(run, reporter, deployment, list(start_accessories))
    if release_tar:
        activation.run_release_commands()
    web = web_services(deployment.inventory)
    if web:
        activation.start_healthy(web)
    activation.move_traffic(nginx_conf, nginx_mode == traffic.RESTART, bool(web))
    activation.retire_old(ending)


@dataclass
class Activation:
    """The steps that bring one attempt's release to serve, bound to the run, the server's state and the attempt."""

    run: LockedRun
    reporter: Reporter
    deployment: Deployment
    state: ServerState
    attempt: Attempt

    @property
    def layout(self) -> Layout:
        return layout_of(self.deployment.inventory)

    @property
    def still_serving(self) -> str:
        return self.state.serving or "nothing"

    def prepare(self, release_tar: bytes | None, db_mode: str, nginx_mode: str) -> None:
        """The release folder uploaded (or reused), the database and nginx up as the release wants them."""
        inventory, release_id = self.deployment.inventory, self.attempt.release_id
        with self.reporter.step(f"{'upload release' if release_tar else 'reuse release'} {release_id}" +
                                (", db up" if inventory.database else "")) as step:
            prepare = traffic.prepare_command(self.layout, inventory, release_id, release_tar is not None, db_mode,
                                              nginx_mode, self.state.standby_slot)
            result = self.run(prepare, stdin=release_tar or b"", check=False)
            if result.exited in (traffic.DB_CHANGED_EXIT, traffic.DB_MAJOR_EXIT):
                raise SlipwayError(_database_refusal(self.deployment, self.state, result.exited, result.stdout.strip()))
            if result.exited == traffic.NGINX_CHANGED_EXIT:
                raise SlipwayError(
                    f"{self.deployment.name}: nginx's own service differs from the running nginx's "
                    f"({result.stdout.strip()}; release: {inventory.nginx.image}; or its ports or mounts); it was left "
                    f"running as it is and {self.still_serving} still serves. Deploy with --restart-nginx to re-create "
                    "it (open connections drop and new ones are refused for a few seconds)")
            if result.exited == traffic.SUBNET_EXIT:
                raise SlipwayError(
                    f"{self.deployment.name}: app.subnet {inventory.app.subnet} cannot be the slot network here "
                    f"({result.stdout.strip()}); set app.subnet in {self.deployment.inventory_file} to a private "
                    f"network nothing on the server uses; {self.still_serving} still serves")
            if result.failed:
                raise RemoteCommandFailed(self.run.remote.label, shown(prepare), result.exited,
                                          result.stderr or result.stdout)
            step.changed = True

    def run_release_commands(self) -> None:
        for name, service in self.deployment.inventory.services.items():
            if service.release_command:
                with self.reporter.step(f"release command in a new {name} container") as step:
                    limit = service.release_command_timeout_seconds
                    self.run(traffic.release_command(self.layout, self.attempt.release_id, name,
                                                     service.release_command, limit),
                             limit=limit + traffic.HEALTH_MARGIN_SECONDS)
                    step.changed = True

    @property
    def serving_without_groups(self) -> bool:
        """The serving release was started by a slipway before fixed addresses: its containers have none yet."""
        return bool(self.state.serving) and self.state.serving_slot not in self.state.slots_with_groups

    def serving_replicas(self) -> dict[str, list[int]]:
        """The serving release's web containers as they run, by service: replica numbers."""
        return addresses.running_replicas(self.layout, self.state.serving, self.state.projects.get(self.state.serving, []),
                                          list(web_services(self.deployment.inventory)))

    def serving_slot_groups(self) -> str | None:
        """The groups the other slot's file needs before the switch, if it has none: those of the release it serves
        (started before fixed addresses), or, while nothing serves, the inventory's (so that the next deploy, of
        the same services, finds them as it would write them and reloads nothing)."""
        state, inventory = self.state, self.deployment.inventory
        if state.serving_slot in state.slots_with_groups:
            return None
        if state.serving:
            return addresses.slot_conf(inventory, state.serving_slot, self.serving_replicas())
        return addresses.slot_conf(inventory, state.serving_slot)

    def start_healthy(self, web: dict) -> None:
        """The web services' new containers started beside the old, each at its address in the standby slot, and
        every one healthy, or the attempt ends."""
        inventory, layout, release_id = self.deployment.inventory, self.layout, self.attempt.release_id
        slot = self.state.standby_slot
        given = addresses.slot_addresses(inventory, layout, slot, release_id)
        if self.serving_without_groups:
            given.update(addresses.slot_addresses(inventory, layout, self.state.serving_slot, self.state.serving,
                                                  self.serving_replicas()))
        checks = addresses.health_checks(inventory, layout, slot, release_id)
        replicas = sum(service.replicas for service in web.values())
        timeout = max(service.healthcheck.timeout_seconds for service in web.values())
        with self.reporter.step(f"start {', '.join(web)} ({replicas} new beside the old), wait until healthy") as step:
            parts = [Part(traffic.start_services_command(layout, release_id, list(web))),
                     Part(traffic.slot_addresses_command(layout, given)),
                     Part(traffic.wait_healthy_command(checks, timeout))]
            started = run_parts(self.run, self.deployment.name, parts, check=False,
                                limit=self.run.step_limit + timeout + traffic.HEALTH_MARGIN_SECONDS)
            step.changed = started.succeeded(0)
            if started.failed in (0, 1):
                raise RemoteCommandFailed(self.deployment.name, shown(parts[started.failed].argv), started.exited,
                                          started.stderr or started.output(started.failed))
            step.detail = started.output(2).strip().partition(":")[2].strip()
            if started.exited == traffic.UNHEALTHY_EXIT:
                report = self.run(traffic.failure_report_command([c for c, *_ in checks]), check=False).stdout
                raise SlipwayError(f"{self.deployment.name}: release {release_id} ({self.attempt.version}) never "
                                   f"became healthy, so it got no traffic; {self.still_serving} still serves.\n"
                                   f"{report.rstrip()}")
            if started.failed is not None:
                raise SlipwayError(f"{self.deployment.name}: waiting for health failed (exit {started.exited}): "
                                   f"{(started.stderr or started.output(2)).strip()}")

    def move_traffic(self, nginx_conf: str, restart_nginx: bool, probe: bool) -> None:
        """nginx sends the next request to the new slot, through the slot's groups written for this release;
        PROBE: /health through nginx proves it, else it moves back."""
        release_id, inventory, layout = self.attempt.release_id, self.deployment.inventory, self.layout
        slot = self.state.standby_slot
        with self.reporter.step(f"move traffic to {release_id} (slot {slot})") as step:
            parts = []
            serving_groups = self.serving_slot_groups()
            if serving_groups is not None:
                parts.append(Part(traffic.write_file_command(layout.slot_conf(self.state.serving_slot)),
                                  serving_groups.encode()))
            parts.append(Part(traffic.write_file_command(layout.slot_conf_upload(slot)),
                              addresses.slot_conf(inventory, slot).encode()))
            # nginx's config of an earlier layout finds both slots by Docker's DNS: reloading it now would close
            # idle keep-alive connections for the migration alone.
            switch = traffic.switch_nginx_command(layout, release_id, slot, restart_nginx,
                                                  _probe(inventory, nginx_conf) if probe else ("", ""),
                                                  reload=not self.serving_without_groups)
            parts.append(Part(switch, nginx_conf.encode()))
            result = run_parts(self.run, self.deployment.name, parts, check=False)
            switched = result.output(len(parts) - 1)
            if result.exited == traffic.MISROUTED_EXIT and result.failed == len(parts) - 1:
                raise SlipwayError(f"{self.deployment.name}: release {release_id} ({self.attempt.version}) was "
                                   f"healthy, but {traffic.NGINX_HEALTH_PATH} did not answer through nginx once "
                                   f"traffic moved to it ({result.stderr.strip()}); {self.still_serving} serves again")
            if result.failed is not None:
                raise RemoteCommandFailed(self.run.remote.label, shown(parts[result.failed].argv), result.exited,
                                          result.stderr or result.output(result.failed))
            self.attempt.switched = step.changed = True
            step.detail = switched.strip() or "no nginx reload"

    def retire_old(self, ending: Ending) -> None:
        """The old release's containers drained and stopped, the workers started, the attempt recorded as served;
        then what ENDING adds, all in one round trip."""
        inventory, layout, release_id = self.deployment.inventory, self.layout, self.attempt.release_id
        old = sorted(rid for rid in self.state.projects if rid != release_id)
        parts = [Part(traffic.finish_command(layout, release_id, old, list(workers(inventory)),
                                             inventory.app.drain_seconds)),
                 Part(traffic.write_record_command(layout, release_id), self.attempt.record(SERVED).encode()),
                 Part(traffic.write_file_command(layout.layout_record), upgrade.layout_record())]
        self.state.releases[release_id] = {**self.state.releases.get(release_id, {}), "id": release_id,
                                           "images": self.attempt.images, "outcome": SERVED}
        pruned = releases_to_prune(self.state, inventory.app.keep_releases, {release_id}) if ending.keep else []
        if pruned:
            parts.append(Part(traffic.prune_command(layout, pruned, unused_images(self.state, pruned))))
        if ending.event:
            parts.append(Part(traffic.append_audit_command(layout), audit_line(ending.event, **ending.details).encode()))
        kept = f", keep the last {inventory.app.keep_releases} that served" if ending.keep else ""
        with self.reporter.step(f"drain and stop old containers, start workers{kept}") as step:
            run_parts(self.run, self.deployment.name, parts)
            notes = [f"retired {', '.join(old)}"] if old else []
            notes += [f"pruned {', '.join(pruned)}"] if pruned else []
            step.changed, step.detail = True, "; ".join(notes)


def _probe(inventory, nginx_conf: str) -> tuple[str, str]:
    """How the switch reaches the site through nginx: the scheme the config serves, and the name it answers to."""
    if serves_https(nginx_conf):
        return "https", inventory.tls.canonical_host or inventory.app.domains[0]
    return "http", inventory.app.domains[0]


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


def copy_attempt(deployment: Deployment, state: ServerState, kind: str, **fields) -> Attempt:
    """An attempt to serve the serving release again as a new release: its version, commit and images."""
    started = datetime.now(timezone.utc)
    release_id = new_release_id(started)
    if release_id <= state.serving:
        raise SlipwayError(f"{deployment.name}: {state.serving} started less than a second ago; try again")
    serving = state.releases[state.serving]
    return Attempt(kind, release_id, serving["version"], started, serving.get("commit", "unknown"), deployer(),
                   state.serving, images=serving["images"], layout=serving.get("layout", upgrade.UNRECORDED),
                   **fields)


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


def serve_copy(run: LockedRun, reporter: Reporter, deployment: Deployment, state: ServerState, attempt: Attempt,
               event: str = "", **details) -> None:
    """Start the copied release beside the serving one, health-gate it and move traffic to it (nginx's config as
    it is), then keep the last releases and record the audit EVENT, if given."""
    nginx_conf = run(["cat", layout_of(deployment.inventory).live_nginx_conf]).stdout
    activate(run, reporter, deployment, state, attempt, None, nginx_conf, traffic.LEAVE, traffic.LEAVE,
             Ending(keep=True, event=event, details=details))
