"""Accessories: long-lived services beside the app (Redis, a queue), outside releases, their data kept."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from ..fields import IMAGE_RULE, Command, HealthPath, Image, Port
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


class Accessory(Container):
    image: PinnedImage = Field(description="a pinned image reference like redis:7.2")
    ports: list[AccessoryPort] = []
    healthcheck: AccessoryHealthCheck = Field(description="how deploy and upgrade know it is ready")
