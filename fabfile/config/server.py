"""The server and how slipway reaches it: the SSH login (host), the deploy user's keys, Docker's setup."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from pydantic import BeforeValidator, Field, ValidationInfo, model_validator

from ..fields import DeployUser, Hostname, LocalFile, Name, Port, local_file, matching
from .section import Section, refuse


class Host(Section):
    address: Hostname = Field(description="the server's DNS name or IP address")
    port: Port = 22
    user: Name = "root"
    key_file: LocalFile | None = None
    known_hosts: LocalFile | None = None


class AuthorizedKey(Section):
    """An OpenSSH public key, read from the file the inventory names."""

    source: Path
    line: str


def _read_public_key(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, (str, Path)):
        return value
    path = local_file(Path(value), info)
    fields = path.read_text().split()
    if len(fields) < 2 or not (fields[0].startswith("ssh-") or fields[0].startswith("ecdsa-") or fields[0].startswith("sk-")):
        raise ValueError(f"expected an OpenSSH public key file like id_ed25519.pub (read {path})")
    return {"source": path, "line": " ".join(fields[:3])}


def public_half(key_file: Path) -> tuple[str, str] | None:
    """(type, base64 body) of the private key KEY_FILE's public key, else of KEY_FILE.pub beside it (an encrypted
    key cannot be read without its passphrase, which is never asked for here); None when neither can be read."""
    try:
        key = paramiko.PKey.from_path(key_file)
        return key.get_name(), key.get_base64()
    except (paramiko.SSHException, paramiko.UnknownKeyType, UnsupportedAlgorithm, ValueError, TypeError, OSError):
        pass
    try:
        key_type, body = Path(f"{key_file}.pub").read_text().split()[:2]
        base64.b64decode(body, validate=True)
    except (OSError, ValueError):
        return None
    return key_type, body


def fingerprint(key_type: str, body: str) -> str:
    """The key as `ssh-keygen -l` shows it: TYPE SHA256:..."""
    digest = base64.b64encode(hashlib.sha256(base64.b64decode(body)).digest()).decode().rstrip("=")
    return f"{key_type} SHA256:{digest}"


TIMEZONE_RULE = r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*"


class Docker(Section):
    packages: Literal["distro", "repository"] = Field(
        "distro", description="distro (the distribution's docker.io) or repository (docker-ce from Docker's apt repository)")
    repository_url: Annotated[str, matching(r"https://\S+", "an https:// URL of Docker's apt repository for this OS")] | None = None
    log_max_size: Annotated[str, matching(r"[1-9][0-9]*[kmg]", "a size like 10m")] = "10m"
    log_max_file: int = Field(3, ge=1, le=100)
    containerd_image_store: bool | None = Field(
        None, description="true or false to choose Docker's image store; unset: the Docker version's default "
                          "(containerd from Docker 29 on new installs)")

    @model_validator(mode="after")
    def _repository_needs_its_url(self) -> Docker:
        if self.packages == "repository" and not self.repository_url:
            raise ValueError("expected repository_url (Docker's apt repository for this OS) when packages is repository")
        return self


# nginx publishes these on the server.
WEB_PORTS = (80, 443)


class Server(Section):
    deploy_user: DeployUser = "deploy"
    authorized_keys: list[Annotated[AuthorizedKey, BeforeValidator(_read_public_key)]] = Field(
        min_length=1, description="a list of public key files (like ~/.ssh/id_ed25519.pub) for the deploy user")
    ssh_port: Port = Field(22, description="the port sshd listens on, on the server (the firewall lets it in)")
    timezone: Annotated[str, matching(TIMEZONE_RULE, "a zone name like Etc/UTC or Europe/Berlin")] = "Etc/UTC"
    swap_mb: int = Field(0, ge=0, le=262144)
    docker: Docker = Docker()

    @model_validator(mode="after")
    def _ssh_keeps_off_the_web_ports(self) -> Server:
        if self.ssh_port in WEB_PORTS:
            refuse("Server", [(("ssh_port",), self.ssh_port, "expected a port other than 80 and 443 (nginx listens "
                                                              "on those)")])
        return self
