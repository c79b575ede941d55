"""Accessories: long-lived services beside the app (Redis, a queue), outside releases, their data kept."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from ..fields import IMAGE_RULE, Command, HealthPath, Image, Port, matching
from .app import Container
from .section import Section


def _pinned(value: str) -> str:
    found = IMAGE_RULE.fullmatch(value)
    tag = value[len(found["name"]):].partition("@")[0].lstrip(":") if found else ""
    if "@sha256:" not in value and tag in ("", "latest"):
        raise ValueError("expected a pinned image like redis:7.2 (a tag other than latest, or a digest): an "
                         "accessory changes only when accessory.upgrade is asked to")
    return value


def _unpublished(value: Any) -> Any:
    if isinstance(value, str) and ":" in value:
        raise ValueError("expected a container port like 6379: an accessory is reached on the app's network as "
                         "NAME:PORT and never published on the server")
    return value


PinnedImage = Annotated[Image, AfterValidator(_pinned)]
AccessoryPort = Annotated[Port, BeforeValidator(_unpublished)]


class AccessoryHealthCheck(Section):
    """A command run inside the container (exit 0: healthy), or a path answering HTTP 2xx on a port."""

    command: Command | None = None
    path: HealthPath | None = None
    port: Port | None = None
    interval_seconds: int = Field(2, ge=1, le=300)
    timeout_seconds: int = Field(60, ge=1, le=3600)

    @model_validator(mode="after")
    def _one_kind(self) -> AccessoryHealthCheck:
        if (self.command is None) == (self.path is None) or (self.path is None) != (self.port is None):
            raise ValueError("expected either command (run inside the container, healthy on exit 0) or path and port "
                             "(answering HTTP 2xx)")
        return self


# A path inside the container: it reaches `docker cp`, never a shell.
ContainerFile = Annotated[str, matching(r"(/[A-Za-z0-9_][A-Za-z0-9._-]*)+", "an absolute path inside the "
                                        "container, like /data/dump.rdb")]


class AccessoryBackup(Section):
    """How the accessory's data joins every backup: a command run in its container that writes a dump to stdout,
    and how a restore puts the dump back."""

    command: Command = Field(description="run in the container; writes the dump to stdout")
    restore: Literal["files"] | Command = Field("files", description="files: the container is stopped, the dump "
                                                "copied to `file`, the container started; or a command run in the "
                                                "container that reads the dump on stdin")
    file: ContainerFile | None = Field(None, description="with restore: files, where the dump goes in the container "
                                       "(on its volume), like /data/dump.rdb")

    @model_validator(mode="after")
    def _files_go_somewhere(self) -> AccessoryBackup:
        if self.restore == "files" and self.file is None:
            raise ValueError("expected file (where the dump goes in the container, like /data/dump.rdb) with "
                             "restore: files, or restore: a command that reads the dump on stdin")
        return self


class Accessory(Container):
    image: PinnedImage = Field(description="a pinned image reference like redis:7.2")
    ports: list[AccessoryPort] = []
    healthcheck: AccessoryHealthCheck = Field(description="how deploy and upgrade know it is ready")
    backup: AccessoryBackup | None = Field(None, description="its data dumped with every backup of the database")
