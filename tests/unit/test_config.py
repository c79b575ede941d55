"""The inventory model: one precise line per problem, all at once, before any SSH."""

from pathlib import Path

import pytest
import yaml

from fabfile import config
from fabfile.errors import ConfigError

VALID = {
    "host": {"address": "app.example.com", "port": 22, "user": "root", "key_file": "id_test"},
    "server": {"authorized_keys": ["id_test.pub"]},
    "app": {"name": "shop", "domains": ["shop.example.com"], "base_dir": "/srv/shop"},
    "services": {
        "api": {
            "image": "registry.example.com/shop/api",
            "command": "gunicorn --bind 0.0.0.0:8000 shop.wsgi",
            "ports": [8000],
            "env": {"PORT": 8000, "DEBUG": False},
            "secrets": ["DATABASE_PASSWORD"],
            "healthcheck": {"path": "/health", "port": 8000},
            "behind_nginx": True,
        },
        "worker": {"image": "registry.example.com/shop/api", "command": ["shop-worker"]},
    },
    "database": {"image": "postgres:16", "name": "shop", "user": "shop", "password_secret": "DATABASE_PASSWORD"},
}
SECRETS = "DATABASE_PASSWORD=s3cret-value\n"


@pytest.fixture
def inventories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    directory = tmp_path / "inventories"
    directory.mkdir()
    (directory / "id_test").write_text("not read by validation\n")
    (directory / "id_test.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDuptqmDfSXBQUmUGJh operator@laptop\n")
    return directory


def write(directory: Path, data=VALID, secrets=SECRETS, name="prod"):
    text = data if isinstance(data, str) else yaml.safe_dump(data)
    (directory / f"{name}.yaml").write_text(text)
    if secrets is not None:
        (directory / f"{name}.env").write_text(secrets)


def problems(directory: Path, name="prod") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config.load(directory, name)
    return caught.value.problems


def changed(path: str, value):
    """VALID with the key at dotted PATH set to VALUE (or removed when VALUE is REMOVE)."""
    data = yaml.safe_load(yaml.safe_dump(VALID))
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is REMOVE:
        del node[last]
    else:
        node[last] = value
    return data


REMOVE = object()


def test_valid_inventory_loads_into_one_typed_model(inventories):
    write(inventories)
    deployment = config.load(inventories, "prod")
    api = deployment.inventory.services["api"]
    assert api.command == ["gunicorn", "--bind", "0.0.0.0:8000", "shop.wsgi"]
    assert api.env == {"PORT": "8000", "DEBUG": "false"}
    assert deployment.inventory.host.key_file == inventories / "id_test"
    assert deployment.secret("DATABASE_PASSWORD") == "s3cret-value"
    assert "s3cret-value" not in repr(deployment)


def test_shipped_example_inventory_and_secrets_are_valid(inventories):
    shipped = Path(__file__).resolve().parents[2] / "inventories"
    example = (shipped / "example.yaml").read_text().replace("~/.ssh/id_ed25519", "id_test")
    assert "id_test.pub" in example
    write(inventories, example, secrets=(shipped / "example.env").read_text(), name="example")
    deployment = config.load(inventories, "example")
    assert deployment.inventory.services["api"].replicas == 2


@pytest.mark.parametrize("data, expected", [
    (changed("host.port", "ssh"),
     "inventories/prod.yaml: host.port: found 'ssh'; expected a valid integer, unable to parse string as an integer"),
    (changed("host.port", 70000),
     "inventories/prod.yaml: host.port: found 70000; expected less than or equal to 65535"),
    (changed("host", REMOVE),
     "inventories/prod.yaml: host: missing; expected a mapping with address"),
    (changed("host.address", "bad host!"),
     "inventories/prod.yaml: host.address: found 'bad host!'; expected a DNS name or IPv4 address"),
    (changed("services.api.image", REMOVE),
     "inventories/prod.yaml: services.api.image: missing; expected an image reference like registry.example.com/team/api"),
    (changed("services.api.healtcheck", {"path": "/health", "port": 8000}),
     "inventories/prod.yaml: services.api.healtcheck: unknown key (did you mean 'healthcheck'?); expected one of: "
     "behind_nginx, command, cpus, env, healthcheck, image, memory_mb, ports, release_command, "
     "release_command_timeout_seconds, replicas, route, secrets, stop_grace_seconds, volumes"),
    (changed("services.api.healthcheck", {"path": "health", "port": 8000}),
     "inventories/prod.yaml: services.api.healthcheck.path: found 'health'; expected a URL path starting with /, "
     "like /health (letters, digits, . _ ~ - /, an optional ?query)"),
    (changed("services.api.healthcheck", REMOVE),
     "inventories/prod.yaml: services.api: expected a healthcheck (path and port) for a service behind nginx, "
     "so traffic only reaches healthy containers"),
    (changed("app.base_dir", "srv/shop"),
     "inventories/prod.yaml: app.base_dir: found 'srv/shop'; expected an absolute path of plain names "
     "(letters, digits, . _ -, no . or .. parts), like /srv/app"),
    (changed("services.api.replicas", 0),
     "inventories/prod.yaml: services.api.replicas: found 0; expected greater than or equal to 1"),
    (changed("services.api.volumes", ["data"]),
     "inventories/prod.yaml: services.api.volumes[0]: found 'data'; expected NAME:/path (a named volume), "
     "./folder:/path (kept under shared/ on the server) or /host/path:/path, with an optional :ro"),
    (changed("app.domains", []),
     "inventories/prod.yaml: app.domains: found []; expected at least 1 item after validation, not 0"),
    (changed("services.api.env", {"PORT": [1, 2]}),
     "inventories/prod.yaml: services.api.env.PORT: found [1, 2]; expected a valid string"),
    (changed("services.api.env", {"GREETING": "it's"}),
     "inventories/prod.yaml: services.api.env.GREETING: found \"it's\"; expected a value without single quotes or "
     "newlines (compose env files cannot carry them)"),
    (changed("host.key_file", "missing_key"),
     "inventories/prod.yaml: host.key_file: found 'missing_key'; expected an existing file (looked at {dir}/missing_key)"),
    (changed("database.password_secret", "bad-name"),
     "inventories/prod.yaml: database.password_secret: found 'bad-name'; expected an environment variable name (letters, digits, _)"),
], ids=lambda value: "" if isinstance(value, dict) else value.split(": ")[1])
def test_each_malformed_inventory_gets_one_precise_line(inventories, data, expected):
    write(inventories, data)
    assert problems(inventories) == [expected.format(dir=inventories.resolve())]


def test_two_services_behind_nginx_need_their_own_routes(inventories):
    data = changed("services.admin", {"image": "shop/admin", "ports": [9000], "behind_nginx": True,
                                      "healthcheck": {"path": "/health", "port": 9000}})
    write(inventories, data)
    assert problems(inventories) == [
        "inventories/prod.yaml: expected each service behind nginx to have its own route; / is used twice"]


def test_registry_source_needs_an_address(inventories):
    write(inventories, changed("images", {"source": "registry"}))
    assert problems(inventories) == [
        "inventories/prod.yaml: images: expected registry (host[:port]) when source is registry"]


def test_secret_that_cannot_go_in_an_env_file_is_named_not_shown(inventories):
    write(inventories, secrets="DATABASE_PASSWORD=it's-secret\n")
    found = problems(inventories)
    assert found[0] == ("inventories/prod.env: DATABASE_PASSWORD: expected a value without single quotes or newlines "
                        "(compose env files cannot carry them)")
    assert not any("it's-secret" in line for line in found)


def test_every_problem_is_reported_at_once(inventories):
    data = changed("host.port", 0)
    data["app"]["base_dir"] = "relative"
    data["surprise"] = True
    write(inventories, data)
    assert problems(inventories) == [
        "inventories/prod.yaml: host.port: found 0; expected greater than or equal to 1",
        "inventories/prod.yaml: app.base_dir: found 'relative'; expected an absolute path of plain names "
        "(letters, digits, . _ -, no . or .. parts), like /srv/app",
        "inventories/prod.yaml: surprise: unknown key; expected one of: app, backup, database, host, images, nginx, server, services, tls",
    ]


def test_secret_referenced_but_not_in_the_secrets_file(inventories):
    write(inventories, secrets="OTHER=1\n")
    assert problems(inventories) == [
        "inventories/prod.env: DATABASE_PASSWORD: missing; expected a line DATABASE_PASSWORD=... because "
        "inventories/prod.yaml uses it at services.api.secrets[0]",
        "inventories/prod.env: DATABASE_PASSWORD: missing; expected a line DATABASE_PASSWORD=... because "
        "inventories/prod.yaml uses it at database.password_secret",
    ]


def test_empty_secret_is_refused_without_showing_other_values(inventories):
    write(inventories, secrets="DATABASE_PASSWORD=\nSESSION=hunter2\n")
    found = problems(inventories)
    assert found[0] == ("inventories/prod.env: DATABASE_PASSWORD: found an empty value; expected a non-empty secret "
                        "(used at services.api.secrets[0])")
    assert not any("hunter2" in line for line in found)


def test_missing_secrets_file_names_the_keys_it_must_define(inventories):
    write(inventories, secrets=None)
    assert problems(inventories) == [
        "inventories/prod.env: not found; expected it to define DATABASE_PASSWORD (copy inventories/example.env)"
    ]


def test_yaml_syntax_error_points_at_line_and_column(inventories):
    write(inventories, "host:\n  address: [unclosed\napp: {}\n")
    (line,) = problems(inventories)
    assert line == ("inventories/prod.yaml:3:4: not valid YAML (expected ',' or ']', but got ':')")


def test_inventory_that_is_not_a_mapping(inventories):
    write(inventories, "- just\n- a list\n")
    assert problems(inventories) == [
        "inventories/prod.yaml: found list; expected a mapping with host, app and services"
    ]


def test_missing_inventory_file(inventories):
    assert problems(inventories, "staging") == [
        "inventories/staging.yaml: not found; expected an inventory file (start from inventories/example.yaml)"
    ]


def test_inventory_name_must_be_a_plain_name(inventories):
    assert problems(inventories, "../etc/passwd") == [
        "inventory name '../etc/passwd': expected a plain name like 'prod' (lowercase letters, digits, - and _)"
    ]


@pytest.mark.parametrize("base_dir", ["/", "/srv/../etc", "/srv/./shop", "/srv/$(reboot)", "/srv/shop/", "//srv",
                                      "/srv/my shop", "/etc", "/etc/shop", "/usr/local/shop", "/var/lib/docker/x"])
def test_app_folder_must_be_a_plain_folder_of_its_own(inventories, base_dir):
    write(inventories, changed("app.base_dir", base_dir))
    (line,) = problems(inventories)
    assert line.startswith(f"inventories/prod.yaml: app.base_dir: found {base_dir!r}; expected ")


@pytest.mark.parametrize("base_dir", ["/srv/shop", "/opt/shop-2", "/home/deploy/apps/shop", "/var/www/shop.example"])
def test_ordinary_app_folders_are_accepted(inventories, base_dir):
    write(inventories, changed("app.base_dir", base_dir))
    assert str(config.load(inventories, "prod").inventory.app.base_dir) == base_dir


@pytest.mark.parametrize("key, value", [
    ("services.api.healthcheck", {"path": "/health'; reboot; '", "port": 8000}),
    ("services.api.healthcheck", {"path": "/health$(id)", "port": 8000}),
    ("services.api.healthcheck", {"path": "/health {", "port": 8000}),
    ("services.api.route", "/api; return 200"),
    ("services.api.route", "/api/ {"),
    ("services.api.route", "/api?x=1"),
])
def test_paths_that_reach_shell_yaml_or_nginx_are_plain(inventories, key, value):
    write(inventories, changed(key, value))
    (line,) = problems(inventories)
    assert line.startswith(f"inventories/prod.yaml: {key}")
    assert "expected a URL path" in line


def test_a_health_path_may_carry_a_simple_query(inventories):
    write(inventories, changed("services.api.healthcheck", {"path": "/health?deep=1&db=yes", "port": 8000}))
    assert config.load(inventories, "prod").inventory.services["api"].healthcheck.path == "/health?deep=1&db=yes"


@pytest.mark.parametrize("volume", ["uploads:/data", "./media:/srv/media", "/var/log/app:/logs:ro", "pg.data:/x"])
def test_volume_forms(inventories, volume):
    write(inventories, changed("services.api.volumes", [volume]))
    assert config.load(inventories, "prod").inventory.services["api"].volumes == [volume]


@pytest.mark.parametrize("volume", ["../up:/data", "./a/../../b:/x", "uploads:relative", "$(x):/data", "a:/b:rw:z"])
def test_volumes_that_escape_or_inject_are_refused(inventories, volume):
    write(inventories, changed("services.api.volumes", [volume]))
    (line,) = problems(inventories)
    assert line.startswith("inventories/prod.yaml: services.api.volumes[0]: found ")


def test_secrets_are_read_literally(inventories):
    write(inventories, secrets="HOME_DIR=/root\nDATABASE_PASSWORD=pa${HOME_DIR}ss$USER\n")
    assert config.load(inventories, "prod").secret("DATABASE_PASSWORD") == "pa${HOME_DIR}ss$USER"


def test_secrets_problems_come_with_inventory_problems(inventories):
    write(inventories, changed("host.port", 0), secrets="OTHER=1\n")
    assert problems(inventories) == [
        "inventories/prod.yaml: host.port: found 0; expected greater than or equal to 1",
        "inventories/prod.env: DATABASE_PASSWORD: missing; expected a line DATABASE_PASSWORD=... because "
        "inventories/prod.yaml uses it at services.api.secrets[0]",
        "inventories/prod.env: DATABASE_PASSWORD: missing; expected a line DATABASE_PASSWORD=... because "
        "inventories/prod.yaml uses it at database.password_secret",
    ]


@pytest.mark.parametrize("domains, enabled", [
    (["shop.example.com", "www.shop.example.com"], True),
    (["shop.test"], False),
    (["localhost"], False),
    (["shop.internal", "shop.example.com"], False),
    (["10.0.0.5"], False),
])
def test_tls_is_on_by_default_only_for_public_names(inventories, domains, enabled):
    write(inventories, changed("app.domains", domains))
    assert config.load(inventories, "prod").inventory.tls_enabled is enabled


def test_tls_settings_load_with_their_defaults(inventories):
    (inventories / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    data = changed("app.domains", ["shop.example.com", "www.shop.example.com"])
    data["tls"] = {"acme_directory": "staging", "ca_bundle": "ca.pem", "canonical_host": "shop.example.com"}
    write(inventories, data)
    tls = config.load(inventories, "prod").inventory.tls
    assert tls.acme_url == "https://acme-staging-v02.api.letsencrypt.org/directory"
    assert tls.ca_bundle == inventories / "ca.pem"
    assert (tls.hsts.enabled, tls.hsts.max_age_seconds, tls.hsts.preload) == (True, 63072000, False)
    assert tls.uses_acme and tls.email is None


@pytest.mark.parametrize("tls, expected", [
    ({"acme_dir": "staging"},
     "inventories/prod.yaml: tls.acme_dir: unknown key (did you mean 'acme_directory'?); expected one of: "
     "acme_directory, ca_bundle, canonical_host, certificate_file, email, enabled, hsts, key_file"),
    ({"ca_bundle": "pebble.pem"},
     "inventories/prod.yaml: tls.ca_bundle: found 'pebble.pem'; expected an existing file (looked at {dir}/pebble.pem)"),
    ({"canonical_host": "www.shop.example.com"},
     "inventories/prod.yaml: expected tls.canonical_host to be one of app.domains (shop.example.com); "
     "found 'www.shop.example.com'"),
    ({"acme_directory": "http://ca.example.com/dir"},
     "inventories/prod.yaml: tls.acme_directory: found 'http://ca.example.com/dir'; expected letsencrypt, staging "
     "or an https:// ACME directory URL"),
    ({"hsts": {"preload": True}},
     "inventories/prod.yaml: tls.hsts: expected include_subdomains: true and max_age_seconds of at least 31536000 "
     "with preload (the preload list accepts nothing less)"),
    ({"certificate_file": "id_test.pub"},
     "inventories/prod.yaml: tls: expected both certificate_file and key_file (your own certificate), or neither (ACME)"),
    ({"email": "ops"},
     "inventories/prod.yaml: tls.email: found 'ops'; expected an email address for the CA's expiry notices"),
], ids=lambda value: "" if isinstance(value, dict) else value.split(": ")[1])
def test_each_bad_tls_setting_gets_one_precise_line(inventories, tls, expected):
    data = changed("tls", tls)
    write(inventories, data)
    assert problems(inventories) == [expected.format(dir=inventories.resolve())]


def test_acme_certificates_need_names_not_addresses(inventories):
    data = changed("app.domains", ["203.0.113.7"])
    data["tls"] = {"enabled": True}
    write(inventories, data)
    assert problems(inventories) == [
        "inventories/prod.yaml: expected DNS names in app.domains when tls certificates come from ACME (HTTP-01 "
        "validates names), or tls.enabled: false; found 203.0.113.7"]
