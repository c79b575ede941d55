"""The kinds of value an inventory is made of, each with its rule and the words an error uses for it.

They reach compose files, nginx configs and shell arguments on a server, so
each allows only what is safe where it ends up.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo


def _split_command(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return shlex.split(value)
    except ValueError:
        raise ValueError("expected a command line with balanced quotes, or a list of words") from None


def _some_command(words: list[str]) -> list[str]:
    # An empty one would not be left out quietly: Docker would run the image's own command instead.
    if not words:
        raise ValueError("expected a command: a string or a list of words, not an empty one")
    return words


def _scalar_to_text(value: Any) -> Any:
    """YAML turns `PORT: 8000` into an int and `DEBUG: yes` into a bool; env values are text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


# An app folder inside one of these would mix app files into the system's own (/var/lib/slipway: slipway's
# own state, root's).
SYSTEM_DIRS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin", "/sys",
               "/tmp", "/usr", "/var/lib/docker", "/var/lib/slipway")
# Provision takes the app folder over (the deploy user's, mode 750): these hold other things, so the app's
# folder may be below one of them but not one of them.
SHARED_DIRS = ("/home", "/media", "/mnt", "/opt", "/srv", "/var", "/var/backups", "/var/cache", "/var/lib",
               "/var/local", "/var/log", "/var/mail", "/var/opt", "/var/spool", "/var/tmp", "/var/www")
APP_DIR_RULE = re.compile(r"(/[A-Za-z0-9_][A-Za-z0-9._-]*)+")


def _app_dir(value: str) -> PurePosixPath:
    """An absolute, normalised folder of plain names that is not a system folder."""
    if not isinstance(value, str) or not APP_DIR_RULE.fullmatch(value) or any(
            part in (".", "..") for part in value.split("/")):
        raise ValueError("expected an absolute path of plain names (letters, digits, . _ -, no . or .. parts), like /srv/app")
    for system in SYSTEM_DIRS:
        if value == system or value.startswith(system + "/"):
            raise ValueError(f"expected a folder of its own, like /srv/app, not inside the system folder {system}")
    if value in SHARED_DIRS:
        raise ValueError(f"expected a folder of its own below {value}, like {value}/app, not {value} itself "
                         "(provision makes the app's folder the deploy user's, mode 750)")
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

# At most 63 characters: a DNS label, and a PostgreSQL identifier (it cuts longer ones to 63 bytes).
NAME_RULE = r"[a-z][a-z0-9_-]{0,62}"
Name = Annotated[str, matching(NAME_RULE, "a name of lowercase letters, digits, - and _, starting with a letter")]
# PostgreSQL's own databases; restore and verify work from postgres while they replace the app's.
POSTGRES_DATABASES = ("postgres", "template0", "template1")


def _app_database(value: str) -> str:
    if value in POSTGRES_DATABASES:
        raise ValueError(f"expected a database of the app's own, not one of PostgreSQL's ({', '.join(POSTGRES_DATABASES)})")
    return value


def _app_role(value: str) -> str:
    if value == "postgres" or value.startswith("pg_"):
        raise ValueError("expected a user of the app's own: not postgres (PostgreSQL's default superuser) and not "
                         "starting with pg_ (PostgreSQL reserves those)")
    return value


DatabaseName = Annotated[Name, AfterValidator(_app_database)]
DatabaseUser = Annotated[Name, AfterValidator(_app_role)]

# useradd's portable user name (shadow's rule without the trailing $ of machine accounts) and its length limit.
USER_NAME_RULE = r"[a-z_][a-z0-9_-]{0,31}"
# Accounts and groups Debian and Ubuntu make for themselves and for the packages slipway installs. useradd
# refuses a name whose group exists, and an existing system account would be given sudo, docker and the app.
SYSTEM_ACCOUNTS = frozenset((
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
    "backup", "list", "irc", "gnats", "nobody", "nogroup", "adm", "tty", "disk", "kmem", "dialout", "fax", "voice",
    "cdrom", "floppy", "tape", "sudo", "audio", "dip", "operator", "src", "shadow", "utmp", "video", "sasl",
    "plugdev", "staff", "users", "input", "kvm", "render", "sgx", "netdev", "crontab", "ssl-cert", "lpadmin",
    "sshd", "messagebus", "syslog", "uuidd", "tcpdump", "tss", "polkitd", "dnsmasq", "avahi", "ntp", "chrony",
    "landscape", "pollinate", "usbmux", "lxd", "fwupd-refresh", "statd", "postfix", "postdrop", "postgres", "docker",
))


def _own_account(value: str) -> str:
    # Debian names new system accounts _NAME (_apt, _chrony); systemd's are systemd-NAME.
    if value in SYSTEM_ACCOUNTS or value.startswith(("_", "systemd-")):
        raise ValueError(f"expected an account of its own, not the system account or group {value}")
    return value


DeployUser = Annotated[str, matching(USER_NAME_RULE, "a user name useradd takes: at most 32 lowercase letters, "
                                     "digits, - and _, starting with a letter or _"), AfterValidator(_own_account)]
ENV_KEY_RULE = r"[A-Za-z_][A-Za-z0-9_]*"
EnvKey = Annotated[str, matching(ENV_KEY_RULE, "an environment variable name (letters, digits, _)")]
EnvValue = Annotated[str, BeforeValidator(_scalar_to_text), matching(
    r"[^'\n]*", "a value without single quotes or newlines (compose env files cannot carry them)"), matching(
    r"[^\x00-\x08\x0b-\x1f\x7f]*", "a value without control characters (a tab is fine)")]
Command = Annotated[list[str], BeforeValidator(_split_command), AfterValidator(_some_command)]
AppDir = Annotated[PurePosixPath, BeforeValidator(_app_dir)]
LocalFile = Annotated[Path, AfterValidator(local_file)]
Port = Annotated[int, Field(ge=1, le=65535)]


# RFC 1918's: never loopback, link-local or anyone's public addresses.
PRIVATE_NETWORKS = tuple(ipaddress.IPv4Network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def _private_network(value: Any) -> Any:
    """An IPv4 network in a private range, written as its own address and prefix (host bits zero)."""
    if not isinstance(value, str):
        return value
    try:
        network = ipaddress.IPv4Network(value)
    except ValueError:
        raise ValueError("expected an IPv4 network like 172.30.250.0/24 (its first address and a prefix length)") from None
    # 16: the widest Docker takes for one network; 26: the narrowest with a web service's addresses in both slots.
    if not any(network.subnet_of(private) for private in PRIVATE_NETWORKS) or not 16 <= network.prefixlen <= 26:
        raise ValueError("expected a private IPv4 network (10/8, 172.16/12 or 192.168/16) from /16 to /26, "
                         "like 172.30.250.0/24")
    return str(network)


PrivateNetwork = Annotated[str, BeforeValidator(_private_network)]


def _numbers_are_an_address(value: str) -> str:
    # Resolvers read a name whose last label is a number as an IPv4 address (10.1 too): it must be a real one.
    if value.rsplit(".", 1)[-1].isdigit():
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError("expected a DNS name or IPv4 address") from None
    return value


Hostname = Annotated[str, matching(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
    "a DNS name or IPv4 address",
), AfterValidator(_numbers_are_an_address)]
# Docker's reference grammar (distribution/reference), names in lowercase: [registry[:port]/]path[:tag][@digest].
IMAGE_PATH = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*"
IMAGE_REGISTRY = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]+)?"
IMAGE_RULE = re.compile(rf"(?P<name>({IMAGE_REGISTRY}/)?{IMAGE_PATH}(/{IMAGE_PATH})*)"
                        r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?")
IMAGE_NAME_MAX = 255


def _image(value: str) -> str:
    found = IMAGE_RULE.fullmatch(value)
    if not found or len(found["name"]) > IMAGE_NAME_MAX:
        raise ValueError("expected an image reference like registry.example.com/team/api (lowercase) or postgres:16, "
                         f"its name at most {IMAGE_NAME_MAX} characters")
    return value


Image = Annotated[str, AfterValidator(_image)]
Version = Annotated[str, matching(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", "an image tag like v1 or 2024.05.1")]
# These reach a compose file, an nginx `location` and an HTTP probe: plain URL characters only.
HealthPath = Annotated[str, matching(
    r"/[A-Za-z0-9._~/-]*(\?[A-Za-z0-9._~=&-]*)?", "a URL path starting with /, like /health (letters, digits, . _ ~ - /, an optional ?query)")]
Route = Annotated[str, matching(r"/[A-Za-z0-9._~/-]*", "a URL path prefix starting with /, like / or /api/ (letters, digits, . _ ~ - /)")]
VOLUME_RULE = (r"([A-Za-z0-9][A-Za-z0-9_.-]*|\./[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*|(/[A-Za-z0-9_.-]+)+)"
               r":(/[A-Za-z0-9_.-]+)+(:ro)?")
# slipway's own folders in shared/ (commands/layout.py, commands/tls.py): the database password, nginx's live
# config and traffic files, the ACME webroot, the accessories' environments. A service mounting one could read or
# change them.
SLIPWAY_SHARED = ("db", "nginx", "acme-challenge", "accessories")


def _volume(value: str) -> str:
    if not (isinstance(value, str) and re.fullmatch(VOLUME_RULE, value)):
        raise ValueError("expected NAME:/path (a named volume), ./folder:/path (kept under shared/ on the server) "
                         "or /host/path:/path, with an optional :ro")
    source, target = value.split(":")[:2]
    # What follows the . of ./ or the / of /; a named volume has no parts.
    source_parts = source.split("/")[1:]
    if {".", ".."} & set(source_parts + target.split("/")):
        raise ValueError("expected paths without . or .. parts (they would mount another folder, or /)")
    if source.startswith("./") and source_parts[0] in SLIPWAY_SHARED:
        raise ValueError(f"expected a folder other than ./{source_parts[0]} ({', '.join(SLIPWAY_SHARED)} in shared/ "
                         "are slipway's own)")
    return value


Volume = Annotated[str, AfterValidator(_volume)]
