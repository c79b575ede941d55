"""The kinds of value an inventory is made of, each with its rule and the words an error uses for it.

They reach compose files, nginx configs and shell arguments on a server, so
each allows only what is safe where it ends up.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo


def _split_command(value: Any) -> Any:
    return shlex.split(value) if isinstance(value, str) else value


def _scalar_to_text(value: Any) -> Any:
    """YAML turns `PORT: 8000` into an int and `DEBUG: yes` into a bool; env values are text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


# An app folder inside one of these would mix app files into the system's own.
SYSTEM_DIRS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin", "/sys",
               "/tmp", "/usr", "/var/lib/docker")
APP_DIR_RULE = re.compile(r"(/[A-Za-z0-9_][A-Za-z0-9._-]*)+")


def _app_dir(value: str) -> PurePosixPath:
    """An absolute, normalised folder of plain names that is not a system folder."""
    if not isinstance(value, str) or not APP_DIR_RULE.fullmatch(value) or any(
            part in (".", "..") for part in value.split("/")):
        raise ValueError("expected an absolute path of plain names (letters, digits, . _ -, no . or .. parts), like /srv/app")
    for system in SYSTEM_DIRS:
        if value == system or value.startswith(system + "/"):
            raise ValueError(f"expected a folder of its own, like /srv/app, not inside the system folder {system}")
    return PurePosixPath(value)


def local_file(value: Path, info: ValidationInfo) -> Path:
    """Resolve a path on the operator's machine against the inventory's folder."""
    path = value.expanduser()
    if not path.is_absolute():
        path = info.context["inventory_dir"] / path
    if not path.is_file():
        raise ValueError(f"expected an existing file (looked at {path})")
    return path


def matching(pattern: str, what: str) -> AfterValidator:
    """Check text against PATTERN, saying WHAT was expected in words rather than as a regex."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"expected {what}")
        return value

    return AfterValidator(check)


# systemd's OnCalendar: a shorthand (daily, weekly, ...) or [weekdays] date time, like "Sun *-*-* 04:30:00".
# The server's `systemd-analyze calendar` has the last word when provision installs the timer.
CALENDAR_RULE = (r"(minutely|hourly|daily|weekly|monthly|quarterly|semiannually|yearly|annually)"
                 r"|((Mon|Tue|Wed|Thu|Fri|Sat|Sun)([.,-]{1,2}(Mon|Tue|Wed|Thu|Fri|Sat|Sun))* )?"
                 r"[0-9*][0-9*,./~-]*( [0-9*][0-9*,./:]*)?( UTC)?")
Calendar = Annotated[str, matching(CALENDAR_RULE, 'a systemd OnCalendar expression like "*-*-* 03:00:00" or daily')]

NAME_RULE = r"[a-z][a-z0-9_-]{0,62}"
Name = Annotated[str, matching(NAME_RULE, "a name of lowercase letters, digits, - and _, starting with a letter")]
ENV_KEY_RULE = r"[A-Za-z_][A-Za-z0-9_]*"
EnvKey = Annotated[str, matching(ENV_KEY_RULE, "an environment variable name (letters, digits, _)")]
EnvValue = Annotated[str, BeforeValidator(_scalar_to_text), matching(
    r"[^'\n]*", "a value without single quotes or newlines (compose env files cannot carry them)")]
Command = Annotated[list[str], BeforeValidator(_split_command)]
AppDir = Annotated[PurePosixPath, BeforeValidator(_app_dir)]
LocalFile = Annotated[Path, AfterValidator(local_file)]
Port = Annotated[int, Field(ge=1, le=65535)]
Hostname = Annotated[str, matching(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
    "a DNS name or IPv4 address",
)]
Image = Annotated[str, matching(
    r"[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?",
    "an image reference like registry.example.com/team/api (lowercase)",
)]
Version = Annotated[str, matching(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", "an image tag like v1 or 2024.05.1")]
# These reach a compose file, an nginx `location` and an HTTP probe: plain URL characters only.
HealthPath = Annotated[str, matching(
    r"/[A-Za-z0-9._~/-]*(\?[A-Za-z0-9._~=&-]*)?", "a URL path starting with /, like /health (letters, digits, . _ ~ - /, an optional ?query)")]
Route = Annotated[str, matching(r"/[A-Za-z0-9._~/-]*", "a URL path prefix starting with /, like / or /api/ (letters, digits, . _ ~ - /)")]
VOLUME_RULE = (r"([A-Za-z0-9][A-Za-z0-9_.-]*|\./[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*|(/[A-Za-z0-9_.-]+)+)"
               r":(/[A-Za-z0-9_.-]+)+(:ro)?")


def _volume(value: str) -> str:
    if isinstance(value, str) and re.fullmatch(VOLUME_RULE, value) and ".." not in value.split(":")[0].split("/"):
        return value
    raise ValueError("expected NAME:/path (a named volume), ./folder:/path (kept under shared/ on the server) "
                     "or /host/path:/path, with an optional :ro")


Volume = Annotated[str, AfterValidator(_volume)]
