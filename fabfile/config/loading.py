"""Reading an inventory and its secrets from their files into one validated `Deployment`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from ..errors import ConfigError
from ..fields import NAME_RULE
from .inventory import Inventory
from .secret_references import missing_secrets, raw_references, referenced_secrets
from .validation_messages import describe_validation_errors


class Deployment(BaseModel):
    """An inventory with its secrets: what every task works from."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    inventory_file: Path
    secrets_file: Path
    inventory: Inventory
    secrets: dict[str, SecretStr]

    def secret(self, key: str) -> str:
        return self.secrets[key].get_secret_value()


def load(inventory_dir: Path, name: str) -> Deployment:
    """Read and validate inventory NAME and its secrets; raise ConfigError with every problem."""
    if not re.fullmatch(NAME_RULE, name):
        raise ConfigError([f"inventory name {name!r}: expected a plain name like 'prod' (lowercase letters, digits, - and _)"])
    inventory_file = inventory_dir / f"{name}.yaml"
    secrets_file = inventory_dir / f"{name}.env"
    label = _display_path(inventory_file)

    raw = _read_yaml(inventory_file)
    secrets = _read_secrets(secrets_file) if secrets_file.exists() else None
    secrets_label = _display_path(secrets_file)
    try:
        inventory = Inventory.model_validate(raw, context={"inventory_dir": inventory_dir})
    except ValidationError as error:
        # The secrets file is checked against what the inventory names even when the inventory
        # itself is wrong, so one run shows every problem.
        problems = [f"{label}: {problem}" for problem in describe_validation_errors(error, raw)]
        problems += [f"{secrets_label}: {problem}"
                     for problem in missing_secrets(raw_references(raw), secrets, label)]
        raise ConfigError(problems) from None

    problems = [f"{secrets_label}: {problem}" for problem in missing_secrets(referenced_secrets(inventory), secrets, label)]
    if problems:
        raise ConfigError(problems)
    return Deployment(
        name=name,
        inventory_file=inventory_file,
        secrets_file=secrets_file,
        inventory=inventory,
        secrets={key: SecretStr(value) for key, value in (secrets or {}).items()},
    )


def _read_yaml(path: Path) -> Any:
    label = _display_path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError([f"{label}: not found; expected an inventory file (start from inventories/example.yaml)"]) from None
    except OSError as error:
        raise ConfigError([f"{label}: cannot be read ({error.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError([f"{label}{where}: not valid YAML ({problem})"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{label}: found {type(data).__name__}; expected a mapping with host, app and services"])
    return data


def _read_secrets(path: Path) -> dict[str, str]:
    # Literally: a `${X}` or `$X` inside a password is part of the password.
    return {key: value or "" for key, value in dotenv_values(path, interpolate=False).items()}


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
