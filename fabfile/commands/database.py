"""What `db.rotate-password` runs: checks of the database's password, its access rules, the new password's verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import unicodedata

from ..config import Inventory
from .layout import layout_of
from .release import DB_PASSWORD_FILE, env_value
from .shell import Argv, script

WRONG_PASSWORD_EXIT = 3
SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)


def access_command(inventory: Inventory, mode: str, *args: object) -> Argv:
    database = inventory.database
    return script("db_access", layout_of(inventory).db_container, database.user, database.name, WRONG_PASSWORD_EXIT,
                  mode, *args, uses=("serving",))


def check_password_command(inventory: Inventory, clean: bool = False) -> Argv:
    """Exits 0 when the password on stdin opens the database as the app connects, else WRONG_PASSWORD_EXIT.
    CLEAN (under the deploy lock): first remove the password-less lines an interrupted rotation left."""
    return access_command(inventory, "check", int(clean))


def leftovers_command(inventory: Inventory) -> Argv:
    """For status and doctor: count the password-less lines and remove them when no run holds the deploy lock."""
    return access_command(inventory, "leftovers", layout_of(inventory).lock_file)


def untrust_when_the_run_ends_command(inventory: Inventory, release_id: str) -> Argv:
    """A watcher outside the SSH session (a transient systemd unit) that removes the password-less lines as
    soon as the deploy lock is free again: however the rotation ended, its client killed or cut off too."""
    layout = layout_of(inventory)
    return ["sudo", "-n", "systemd-run", "--quiet", "--collect", "--no-block",
            f"--unit=slipway-{inventory.app.name}-untrust-{release_id}", f"--uid={inventory.server.deploy_user}",
            "flock", layout.lock_file, *access_command(inventory, "untrust")]


def trust_serving_command(inventory: Inventory) -> Argv:
    layout = layout_of(inventory)
    return access_command(inventory, "trust", layout.app, *layout.serving_lookup)


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677), made here as psql's \\password does,
    so that the password itself never reaches the server, its process list or its logs.

    (PostgreSQL prepares a non-ASCII password with SASLprep; NFKC is that preparation for every
    password a person or a generator types.)"""
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", unicodedata.normalize("NFKC", password).encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    text = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{text(salt)}${text(stored_key)}:{text(server_key)}"


def set_password_sql(user: str, verifier: str) -> str:
    """USER (a config Name: letters, digits, - and _) gets VERIFIER (base64 and `$:`, no quote)."""
    return f"ALTER ROLE \"{user}\" PASSWORD '{verifier}';\n"


def env_with_secret(text: str, key: str, value: str) -> str:
    """An env file (as slipway renders them) with KEY's value replaced by VALUE; other lines as they were."""
    lines = []
    for line in text.splitlines(keepends=True):
        if line.partition("=")[0] == key:
            line = f"{key}={env_value(value)}\n"
        lines.append(line)
    return "".join(lines)


def rotated_files(serving_files: dict[str, str], key: str, password: str) -> dict[str, str]:
    """The serving release's env files that hold KEY, with PASSWORD instead, and the database's password file."""
    changed = {path: env_with_secret(text, key, password) for path, text in serving_files.items()
               if path.startswith("env/") and any(line.partition("=")[0] == key for line in text.splitlines())}
    return {**changed, DB_PASSWORD_FILE: password}
