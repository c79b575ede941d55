"""The lab's secrets file: passwords made once and kept, a secret the lab newly needs added."""

from __future__ import annotations

import io
import secrets
from pathlib import Path

from dotenv import dotenv_values
from invoke import Context

from fabfile import ssh

from .paths import inventory_files, render_template


def ensure_lab_secrets(c: Context) -> dict[str, str]:
    """The lab's secrets file written now (the REST server's htpasswd files are made from it before the lab
    files are), and its values."""
    _, secrets_file = inventory_files(c)
    text = lab_secrets(c, secrets_file)
    if not secrets_file.exists() or secrets_file.read_text() != text:
        secrets_file.parent.mkdir(parents=True, exist_ok=True)
        ssh.write_private_file(secrets_file, text)
    return {key: value or "" for key, value in dotenv_values(stream=io.StringIO(text)).items()}


def lab_secrets(c: Context, secrets_file: Path) -> str:
    """The lab's secrets file: values made once are kept; a secret the lab newly needs is added."""
    made = render_template("secrets.env.j2", password=secrets.token_urlsafe)
    if not secrets_file.exists():
        return made
    text = secrets_file.read_text()
    kept = dotenv_values(secrets_file)
    added = [line for line in made.splitlines(keepends=True) if "=" in line and not line.startswith("#")
             and line.split("=", 1)[0] not in kept]
    return text + "".join(added)
