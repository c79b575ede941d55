"""The whole inventory, with the rules that tie its sections together."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from pydantic import Field, model_validator

from ..fields import Name
from .accessory import Accessory
from .app import MAX_REPLICAS, App, Images, Service
from .backup import Backup, Database
from .section import Problem, Section, refuse
from .server import Host, Server, fingerprint, public_half
from .web import IPV4_RULE, Nginx, Tls, is_public_name


DNS_LABEL_MAX = 63
# What the step that stops old containers keeps for starting the new workers after them.
WORKER_START_SECONDS = 30


class Inventory(Section):
    host: Host
    server: Server
    app: App
    services: dict[Name, Service] = Field(min_length=1)
    accessories: dict[Name, Accessory] = {}
    database: Database | None = None
    backup: Backup = Backup()
    nginx: Nginx = Nginx()
    images: Images = Images()
    tls: Tls = Tls()

    @property
    def tls_enabled(self) -> bool:
        if self.tls.enabled is not None:
            return self.tls.enabled
        return all(is_public_name(domain) for domain in self.app.domains)

    @model_validator(mode="after")
    def _tls_fits_the_domains(self) -> Inventory:
        tls = self.tls
        if tls.canonical_host is not None and tls.canonical_host not in self.app.domains:
            raise ValueError(f"expected tls.canonical_host to be one of app.domains ({', '.join(self.app.domains)}); "
                             f"found {tls.canonical_host!r}")
        if self.tls_enabled and tls.uses_acme:
            addresses = [domain for domain in self.app.domains if re.fullmatch(IPV4_RULE, domain)]
            if addresses:
                raise ValueError(f"expected DNS names in app.domains when tls certificates come from ACME (HTTP-01 "
                                 f"validates names), or tls.enabled: false; found {', '.join(addresses)}")
        return self

    @model_validator(mode="after")
    def _routes_are_distinct(self) -> Inventory:
        routes = [service.route for service in self.services.values() if service.behind_nginx]
        duplicates = sorted({route for route in routes if routes.count(route) > 1})
        if duplicates:
            raise ValueError(f"expected each service behind nginx to have its own route; {', '.join(duplicates)} is used twice")
        if "db" in self.services or "nginx" in self.services:
            raise ValueError("expected service names other than db and nginx (slipway runs those itself)")
        refuse("Inventory", [(("accessories", name), name, (
            "expected an accessory name other than the services' (" + ", ".join(self.services) + "), db and nginx: "
            "the app's network answers each name for one container")) for name in self.accessories
            if name in self.services or name in ("db", "nginx")])
        return self

    @model_validator(mode="after")
    def _app_folder_is_not_the_deploy_home(self) -> Inventory:
        home = f"/home/{self.server.deploy_user}"
        if str(self.app.base_dir) == home:
            refuse("Inventory", [(("app", "base_dir"), home, f"expected a folder of its own, like {home}/{self.app.name}, "
                                  f"not the home of server.deploy_user ({self.server.deploy_user}) itself")])
        return self

    @model_validator(mode="after")
    def _operator_key_is_authorized(self) -> Inventory:
        # Every task after provision logs in as the deploy user with host.key_file: without that key among
        # the deploy user's, provision would shut them all out.
        operator_key = public_half(self.host.key_file) if self.host.key_file else None
        keys = self.server.authorized_keys
        if operator_key and operator_key not in [tuple(key.line.split()[:2]) for key in keys]:
            refuse("Inventory", [(("server", "authorized_keys"), [key.source.name for key in keys], (
                f"expected the public half of host.key_file ({self.host.key_file}: {fingerprint(*operator_key)}) "
                f"among them: every task after provision logs in as {self.server.deploy_user} with that key"))])
        return self

    @model_validator(mode="after")
    def _network_names_are_labels_of_their_own(self) -> Inventory:
        from ..commands.layout import SLOTS, Layout  # layout is built on this package's models

        app = self.app.name
        layout = Layout(app, str(self.app.base_dir))
        # The names slipway gives on the app network, which Docker's DNS answers to: slot aliases, the db's and
        # nginx's containers, and the containers of a release project (APP-<release id>, see new_release_id).
        slipway_names = re.compile(rf"{re.escape(app)}-(({'|'.join(SLOTS)})-.+|(db|nginx)-[0-9]+"
                                   r"|[0-9]{8}-[0-9]{6}(-.*)?)")
        problems: list[Problem] = []
        for name in self.accessories:
            container = layout.accessory_container(name)
            if len(container) > DNS_LABEL_MAX:
                problems.append((("accessories", name), name, (
                    f"expected a shorter name: its container is {container}, {len(container)} characters, and "
                    f"Docker's DNS answers to at most {DNS_LABEL_MAX}")))
            if name.endswith("-previous"):
                problems.append((("accessories", name), name, (
                    "expected a name not ending in -previous: an upgrade keeps an accessory's old container aside "
                    f"as {app}-NAME-previous")))
            if slipway_names.fullmatch(name):
                problems.append((("accessories", name), name, (
                    f"expected a name unlike those slipway gives on the app network ({app}-blue-*, {app}-green-*, "
                    f"{app}-db-N, {app}-nginx-N, {app}-<release id>-*), so no name there answers for two containers")))
        for name, service in self.services.items():
            longest = max((layout.slot_alias(slot, name) for slot in SLOTS), key=len)
            if service.behind_nginx and len(longest) > DNS_LABEL_MAX:
                problems.append((("services", name), name, (
                    f"expected a shorter name: Docker's DNS names this service's containers {longest} (nginx "
                    f"configs of an earlier layout look them up), {len(longest)} characters, and "
                    f"a DNS label holds at most {DNS_LABEL_MAX} (app.name and the service name together at most "
                    f"{DNS_LABEL_MAX - len(longest) + len(app) + len(name)})")))
            if slipway_names.fullmatch(name):
                problems.append((("services", name), name, (
                    f"expected a name unlike those slipway gives on the app network ({app}-blue-*, {app}-green-*, "
                    f"{app}-db-N, {app}-nginx-N, {app}-<release id>-*), so no name there answers for two containers")))
        refuse("Inventory", problems)
        return self

    @model_validator(mode="after")
    def _accessory_data_has_one_writer(self) -> Inventory:
        # Two containers writing one volume (a Redis and a service, say) corrupt it: a service may only read it.
        writable = {volume.split(":")[0]: name for name, service in self.services.items()
                    for volume in service.volumes if not volume.endswith(":ro")}
        refuse("Inventory", [
            (("accessories", name, "volumes", index), volume, (
                f"expected a volume of the accessory's own: services.{writable[volume.split(':')[0]]} mounts "
                f"{volume.split(':')[0]} too (add :ro there, or here, so only one of them writes)"))
            for name, accessory in self.accessories.items() for index, volume in enumerate(accessory.volumes)
            if not volume.endswith(":ro") and volume.split(":")[0] in writable])
        return self

    @model_validator(mode="after")
    def _web_services_fit_the_subnet(self) -> Inventory:
        from ..commands.addresses import services_per_slot  # built on this package's models

        web = [name for name, service in self.services.items() if service.behind_nginx]
        room = services_per_slot(self.app.subnet)
        if len(web) > room:
            refuse("Inventory", [(("app", "subnet"), self.app.subnet, (
                f"expected a network with room for {len(web)} services behind nginx ({MAX_REPLICAS} addresses each "
                f"in each of 2 slots); this one has room for {room}: use a shorter prefix, like /24"))])
        return self

    @model_validator(mode="after")
    def _old_containers_stop_within_the_step(self) -> Inventory:
        # The step after the switch waits app.drain_seconds, stops the old containers (each gets its
        # stop_grace_seconds) and only then starts the new workers: killed at app.step_timeout_seconds, it
        # would leave no worker running.
        app = self.app
        longest_grace = app.step_timeout_seconds - app.drain_seconds - WORKER_START_SECONDS
        refuse("Inventory", [
            (("services", name, "stop_grace_seconds"), service.stop_grace_seconds, (
                f"expected at most {longest_grace}: app.step_timeout_seconds ({app.step_timeout_seconds}) minus "
                f"app.drain_seconds ({app.drain_seconds}) minus {WORKER_START_SECONDS} s to start the new workers, "
                "or the step that stops the old containers is killed before the new workers start"))
            for name, service in self.services.items() if service.stop_grace_seconds > longest_grace])
        return self

    @model_validator(mode="after")
    def _volumes_keep_off_slipways_own(self) -> Inventory:
        base = self.app.base_dir
        problems: list[Problem] = []
        users = [("services", name, service) for name, service in self.services.items()] + [
            ("accessories", name, accessory) for name, accessory in self.accessories.items()]
        for section, name, service in users:
            for index, volume in enumerate(service.volumes):
                source = volume.split(":")[0]
                if self.database and source == self.database.volume:
                    problems.append(((section, name, "volumes", index), volume, (
                        f"expected a volume other than database.volume ({source}): it holds the database's files")))
                elif source.startswith("/") and (base == PurePosixPath(source) or base in PurePosixPath(source).parents):
                    problems.append(((section, name, "volumes", index), volume, (
                        f"expected a host folder outside app.base_dir ({base}), which holds slipway's releases, "
                        "state and secrets; ./folder is a folder of the app's own there (in shared/)")))
        refuse("Inventory", problems)
        return self
