"""The app and its services: domains, releases, containers, health checks, and where their images come from."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..fields import (AppDir, Command, EnvKey, EnvValue, HealthPath, Hostname, Image, Name, Port, PrivateNetwork,
                      Route, Version, Volume, matching)
from .section import Section, refuse, repeated_indexes


class App(Section):
    name: Name = Field(description="the app's name, like shop")
    domains: list[Hostname] = Field(min_length=1, description="a list of the domain names the app answers on")
    base_dir: AppDir = Field(description="the app's directory on the server, like /srv/shop")
    version: Version = "latest"
    keep_releases: int = Field(5, ge=1, le=100)
    drain_seconds: int = Field(3, ge=0, le=300, description="how long old containers keep serving requests already sent to them")
    step_timeout_seconds: int = Field(300, ge=10, le=86400, description="the longest any one remote step may run before it is killed")
    ship_timeout_seconds: int = Field(1800, ge=10, le=86400, description="the longest shipping or pulling images may take")
    subnet: PrivateNetwork = Field(
        "172.30.250.0/24", description="the private IPv4 network (like 172.30.250.0/24) where nginx reaches the web "
                                       "containers at addresses slipway gives them; no other network on the server "
                                       "may overlap it")

    @model_validator(mode="after")
    def _domains_are_distinct(self) -> App:
        lowered = [domain.lower() for domain in self.domains]
        refuse("App", [(("domains", index), self.domains[index], "expected each domain once (DNS names ignore case)")
                       for index in repeated_indexes(lowered)])
        return self


class HealthCheck(Section):
    path: HealthPath = Field(description="the URL path that answers 200 when the service is healthy, like /health")
    port: Port = Field(description="the container port the health path is served on")
    interval_seconds: int = Field(2, ge=1, le=300)
    timeout_seconds: int = Field(60, ge=1, le=3600)
    command: Command | None = Field(None, description="a command run inside the container that exits 0 when healthy; "
                                    "default: none; slipway probes the path over HTTP from the host, "
                                    "which needs nothing in the image")


# Each web service has this many addresses in each slot (see commands/addresses.py).
MAX_REPLICAS = 20


class Container(Section):
    """What every container slipway runs for the app takes: a service's of each release, or an accessory's."""

    command: Command | None = None
    env: dict[EnvKey, EnvValue] = {}
    secrets: list[EnvKey] = []
    ports: list[Port] = []
    volumes: list[Volume] = []
    memory_mb: int | None = Field(None, ge=16, le=1048576)
    # Docker's smallest CPU quota is 0.01 CPUs.
    cpus: float | None = Field(None, ge=0.01, le=256)
    stop_grace_seconds: int = Field(30, ge=1, le=3600)

    @model_validator(mode="after")
    def _ports_and_mounts_are_distinct(self) -> Container:
        # Compose and Docker refuse a port listed twice and two volumes on one container path.
        targets = [volume.split(":")[1] for volume in self.volumes]
        refuse(type(self).__name__, [(("ports", index), self.ports[index], "expected each port once")
                                     for index in repeated_indexes(self.ports)]
               + [(("volumes", index), self.volumes[index], f"expected one volume per container path; "
                   f"{targets[index]} is mounted already") for index in repeated_indexes(targets)])
        return self


class Service(Container):
    image: Image = Field(description="an image reference like registry.example.com/team/api")
    healthcheck: HealthCheck | None = None
    replicas: int = Field(1, ge=1, le=MAX_REPLICAS)
    behind_nginx: bool = False
    route: Route = Field("/", description="the URL path prefix nginx sends to this service")
    release_command: Command | None = Field(None, description="a command run once in a new container of this service before traffic moves (migrations)")
    release_command_timeout_seconds: int = Field(600, ge=1, le=86400, description="how long the release command may run before it is killed")

    @model_validator(mode="after")
    def _web_services_can_be_health_gated(self) -> Service:
        if self.behind_nginx and self.healthcheck is None:
            raise ValueError("expected a healthcheck (path and port) for a service behind nginx, so traffic only reaches healthy containers")
        if self.behind_nginx and not self.ports:
            raise ValueError("expected at least one port for a service behind nginx")
        return self


class Images(Section):
    source: Literal["ship", "registry"] = Field(
        "ship", description="ship (docker save | docker load over SSH) or registry (docker pull on the server)")
    registry: Annotated[str, matching(r"[A-Za-z0-9.-]+(:[0-9]+)?", "a registry address like registry.example.com or 127.0.0.1:5000")] | None = None
    # HTTP basic auth ends the user name at the first colon.
    username: Annotated[str, matching(r"[!-9;-~]+", "a registry user name of visible characters, without spaces "
                                      "or colons")] | None = None
    password_secret: EnvKey | None = None

    @model_validator(mode="after")
    def _registry_needs_an_address(self) -> Images:
        if self.source == "registry" and not self.registry:
            raise ValueError("expected registry (host[:port]) when source is registry")
        if (self.username is None) != (self.password_secret is None):
            raise ValueError("expected both username and password_secret (for docker login), or neither")
        return self
