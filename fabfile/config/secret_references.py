"""Which secrets an inventory uses, and what the secrets file lacks of them."""

from __future__ import annotations

import re

from ..fields import ENV_KEY_RULE
from .inventory import Inventory


def referenced_secrets(inventory: Inventory) -> list[tuple[str, str]]:
    """(key path in the inventory, secret name) for every secret the inventory uses."""
    references = [
        (f"services.{service_name}.secrets[{index}]", key)
        for service_name, service in inventory.services.items()
        for index, key in enumerate(service.secrets)
    ] + [
        (f"accessories.{name}.secrets[{index}]", key)
        for name, accessory in inventory.accessories.items()
        for index, key in enumerate(accessory.secrets)
    ]
    if inventory.database:
        references.append(("database.password_secret", inventory.database.password_secret))
    if inventory.images.password_secret:
        references.append(("images.password_secret", inventory.images.password_secret))
    if inventory.backup.ping_url_secret:
        references.append(("backup.ping_url_secret", inventory.backup.ping_url_secret))
    offsite = inventory.backup.offsite
    if offsite:
        references.append(("backup.offsite.password_secret", offsite.password_secret))
        if offsite.s3:
            references.append(("backup.offsite.s3.access_key_secret", offsite.s3.access_key_secret))
            references.append(("backup.offsite.s3.secret_key_secret", offsite.s3.secret_key_secret))
        if offsite.rest:
            references.append(("backup.offsite.rest.password_secret", offsite.rest.password_secret))
    # The admin_* secrets are not among them: only backup.prune-offsite reads those (commands.offsite.admin_secrets),
    # so a machine that only deploys need not hold credentials that can delete offsite copies.
    return references


def raw_references(raw: dict) -> list[tuple[str, str]]:
    """referenced_secrets for an inventory that did not validate: every well-formed name it uses."""
    def section(key: str) -> dict:
        value = raw.get(key)
        return value if isinstance(value, dict) else {}

    references = []
    for kind in ("services", "accessories"):
        for service_name, service in section(kind).items():
            names = service.get("secrets") if isinstance(service, dict) else None
            for index, key in enumerate(names if isinstance(names, list) else []):
                references.append((f"{kind}.{service_name}.secrets[{index}]", key))
    references.append(("database.password_secret", section("database").get("password_secret")))
    references.append(("images.password_secret", section("images").get("password_secret")))
    references.append(("backup.ping_url_secret", section("backup").get("ping_url_secret")))
    offsite = section("backup").get("offsite")
    offsite = offsite if isinstance(offsite, dict) else {}
    s3 = offsite.get("s3") if isinstance(offsite.get("s3"), dict) else {}
    references.append(("backup.offsite.password_secret", offsite.get("password_secret")))
    references.append(("backup.offsite.s3.access_key_secret", s3.get("access_key_secret")))
    references.append(("backup.offsite.s3.secret_key_secret", s3.get("secret_key_secret")))
    rest = offsite.get("rest") if isinstance(offsite.get("rest"), dict) else {}
    references.append(("backup.offsite.rest.password_secret", rest.get("password_secret")))
    return [(path, key) for path, key in references if isinstance(key, str) and re.fullmatch(ENV_KEY_RULE, key)]


def missing_secrets(references: list[tuple[str, str]], secrets: dict[str, str] | None, inventory_label: str) -> list[str]:
    if secrets is None:
        if not references:
            return []
        return [f"not found; expected it to define {', '.join(sorted({key for _, key in references}))} (copy inventories/example.env)"]
    problems = []
    for key_path, key in references:
        if key not in secrets:
            problems.append(f"{key}: missing; expected a line {key}=... because {inventory_label} uses it at {key_path}")
        elif not secrets[key]:
            problems.append(f"{key}: found an empty value; expected a non-empty secret (used at {key_path})")
        elif "'" in secrets[key] or "\n" in secrets[key]:
            problems.append(f"{key}: expected a value without single quotes or newlines (compose env files cannot carry them)")
    return problems
