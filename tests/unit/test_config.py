"""The inventory model: one precise line per problem, all at once, before any SSH."""

import shlex
import subprocess
from pathlib import Path

import paramiko
import pytest
import yaml

from fabfile import config
from fabfile.commands import provision
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
        "inventories/prod.yaml: surprise: unknown key; expected one of: accessories, app, backup, database, host, images, nginx, server, services, tls",
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


def with_service(name):
    """VALID with one more service NAME, a worker."""
    return changed(f"services.{name}", {"image": "registry.example.com/shop/api"})


# --- the database's names: PostgreSQL's rules --------------------------------------------------------

@pytest.mark.parametrize("key, value, expected", [
    ("database.name", "postgres", "expected a database of the app's own, not one of PostgreSQL's (postgres, "
                                  "template0, template1)"),
    ("database.name", "template0", "expected a database of the app's own"),
    ("database.name", "template1", "expected a database of the app's own"),
    ("database.user", "postgres", "expected a user of the app's own: not postgres (PostgreSQL's default superuser) "
                                  "and not starting with pg_ (PostgreSQL reserves those)"),
    ("database.user", "pg_shop", "expected a user of the app's own"),
])
def test_database_names_postgresql_keeps_for_itself_are_refused(inventories, key, value, expected):
    write(inventories, changed(key, value))
    (line,) = problems(inventories)
    assert line.startswith(f"inventories/prod.yaml: {key}: found {value!r}; {expected}")


@pytest.mark.parametrize("key", ["database.name", "database.user"])
def test_database_names_fit_a_postgresql_identifier(inventories, key):
    write(inventories, changed(key, "s" * 63))
    config.load(inventories, "prod")
    write(inventories, changed(key, "s" * 64))
    (line,) = problems(inventories)
    assert line.startswith(f"inventories/prod.yaml: {key}: found 'sss")


def test_database_names_may_look_like_postgresql_ones_when_they_are_not(inventories):
    data = changed("database.name", "postgres_app")
    data["database"]["user"] = "shop_pg"
    write(inventories, data)
    database = config.load(inventories, "prod").inventory.database
    assert (database.name, database.user) == ("postgres_app", "shop_pg")


# --- the deploy user: an account of its own that useradd takes ---------------------------------------

@pytest.mark.parametrize("user", ["root", "daemon", "www-data", "nobody", "sshd", "messagebus", "postgres", "docker",
                                  "sudo", "users", "systemd-network", "systemd-timesync", "_apt", "_chrony"])
def test_deploy_user_is_not_a_system_account(inventories, user):
    write(inventories, changed("server.deploy_user", user))
    assert problems(inventories) == [f"inventories/prod.yaml: server.deploy_user: found {user!r}; expected an "
                                     f"account of its own, not the system account or group {user}"]


@pytest.mark.parametrize("user", ["d" * 33, "Deploy", "1deploy", "de.ploy", "deploy$", "-deploy", ""])
def test_deploy_user_is_a_name_useradd_takes(inventories, user):
    write(inventories, changed("server.deploy_user", user))
    assert problems(inventories) == [
        f"inventories/prod.yaml: server.deploy_user: found {user!r}; expected a user name useradd takes: at most 32 "
        "lowercase letters, digits, - and _, starting with a letter or _"]


@pytest.mark.parametrize("user", ["deploy", "ubuntu", "admin", "debian", "ops-2", "d" * 32])
def test_ordinary_deploy_users_are_accepted(inventories, user):
    write(inventories, changed("server.deploy_user", user))
    assert config.load(inventories, "prod").inventory.server.deploy_user == user


def ssh_keygen(path: Path, passphrase: str = "") -> str:
    """A new ed25519 key pair at PATH and PATH.pub; its fingerprint as `ssh-keygen -l` shows it."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "someone@laptop", "-f", str(path)],
                   check=True)
    return subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], capture_output=True, text=True, check=True).stdout.split()[1]


def with_operator_key(key_file, authorized_keys):
    data = changed("host.key_file", key_file)
    data["server"]["authorized_keys"] = authorized_keys
    return data


def test_the_operators_key_must_be_among_the_deploy_users_keys(inventories):
    operator = ssh_keygen(inventories / "operator")
    ssh_keygen(inventories / "colleague")
    write(inventories, with_operator_key("operator", ["colleague.pub"]))
    assert problems(inventories) == [
        f"inventories/prod.yaml: server.authorized_keys: found ['colleague.pub']; expected the public half of "
        f"host.key_file ({inventories / 'operator'}: ssh-ed25519 {operator}) among them: every task after provision "
        "logs in as deploy with that key"]


def rsa_key(path: Path) -> str:
    key = paramiko.RSAKey.generate(2048)
    key.write_private_key_file(str(path))
    return f"{key.get_name()} {key.get_base64()}"


def ed25519_key(path: Path) -> str:
    ssh_keygen(path)
    return " ".join((path.parent / f"{path.name}.pub").read_text().split()[:2])


@pytest.mark.parametrize("make_key", [ed25519_key, rsa_key])
def test_the_operators_key_is_derived_from_the_private_key_and_matched_without_its_comment(inventories, make_key):
    public = make_key(inventories / "operator")
    # No operator.pub beside the key: its public half comes from the key itself.
    (inventories / "operator.pub").unlink(missing_ok=True)
    (inventories / "team.pub").write_text(f"{public} deploy@ci\n")
    ssh_keygen(inventories / "colleague")
    write(inventories, with_operator_key("operator", ["colleague.pub"]))
    assert problems(inventories)[0].startswith("inventories/prod.yaml: server.authorized_keys: found ['colleague.pub']")
    write(inventories, with_operator_key("operator", ["colleague.pub", "team.pub"]))
    assert config.load(inventories, "prod").inventory.host.key_file == inventories / "operator"


def test_an_encrypted_operator_key_is_matched_through_its_pub_file(inventories):
    operator = ssh_keygen(inventories / "operator", passphrase="correct horse")
    ssh_keygen(inventories / "colleague")
    write(inventories, with_operator_key("operator", ["colleague.pub"]))
    assert f"host.key_file ({inventories / 'operator'}: ssh-ed25519 {operator})" in problems(inventories)[0]
    write(inventories, with_operator_key("operator", ["operator.pub"]))
    assert config.load(inventories, "prod")


def test_an_operator_key_that_cannot_be_read_is_not_checked(inventories):
    ssh_keygen(inventories / "operator", passphrase="correct horse")
    (inventories / "operator.pub").unlink()
    ssh_keygen(inventories / "colleague")
    write(inventories, with_operator_key("operator", ["colleague.pub"]))
    assert config.load(inventories, "prod")
    # Without host.key_file, the SSH agent's keys are used: nothing here knows which.
    write(inventories, with_operator_key(REMOVE, ["colleague.pub"]))
    assert config.load(inventories, "prod").inventory.host.key_file is None


def test_provision_puts_the_deploy_users_ssh_files_in_its_real_home(inventories):
    write(inventories)
    inventory = config.load(inventories, "prod").inventory
    project = Path(__file__).resolve().parents[2]
    desired = provision.desired_state(inventory, project, "debian", "13", {}.__getitem__, home="/var/lib/deploy")
    assert desired.deploy_home == "/var/lib/deploy"
    assert desired.files["/var/lib/deploy/.ssh/authorized_keys"].owner == "deploy"
    assert desired.directories[0] == provision.Directory("/var/lib/deploy/.ssh", "deploy", "deploy", 0o700)
    assert not any(path.startswith("/home/") for path in desired.files)
    # A user provision is still to make gets its home where useradd puts it.
    assert provision.desired_state(inventory, project, "debian", "13", {}.__getitem__).deploy_home == "/home/deploy"


def test_the_probe_reads_the_ssh_files_in_the_home_the_passwd_entry_names(inventories, tmp_path):
    write(inventories)
    probe = provision.probe_script(config.load(inventories, "prod").inventory)
    assert not any("/home/" in word for word in probe)
    home = tmp_path / "srv home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA op@laptop\n")
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "getent").write_text(f"#!/bin/sh\n[ \"$2\" = deploy ] && echo 'deploy:x:1000:1000::{home}:/bin/bash'\n")
    (shims / "getent").chmod(0o755)
    # The probe as the server runs it (one line for the login shell); /usr/sbin's sshd and ufw stay off PATH.
    run = ["sh", "-c", shlex.join(probe)]
    result = subprocess.run(run, capture_output=True, text=True, env={"PATH": f"{shims}:/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    state = provision.parse_probe(result.stdout)
    assert state.files[f"{home}/.ssh/authorized_keys"].content == "ssh-ed25519 AAAA op@laptop\n"
    assert state.directories[f"{home}/.ssh"] is not None
    (shims / "getent").write_text("#!/bin/sh\nexit 2\n")
    without = subprocess.run(run, capture_output=True, text=True, env={"PATH": f"{shims}:/usr/bin:/bin"}).stdout
    assert not any(path.startswith(str(home)) for path in provision.parse_probe(without).files)


# --- the app's folder: one of its own ----------------------------------------------------------------

@pytest.mark.parametrize("base_dir", ["/var", "/home", "/opt", "/srv", "/mnt", "/media", "/var/log", "/var/lib",
                                      "/var/cache", "/var/backups", "/var/spool", "/var/tmp", "/var/mail", "/var/www"])
def test_app_folder_is_not_a_folder_that_holds_other_things(inventories, base_dir):
    write(inventories, changed("app.base_dir", base_dir))
    assert problems(inventories) == [
        f"inventories/prod.yaml: app.base_dir: found {base_dir!r}; expected a folder of its own below {base_dir}, "
        f"like {base_dir}/app, not {base_dir} itself (provision makes the app's folder the deploy user's, mode 750)"]


@pytest.mark.parametrize("base_dir", ["/var/lib/slipway", "/var/lib/slipway/shop"])
def test_app_folder_is_not_in_slipways_own_state(inventories, base_dir):
    write(inventories, changed("app.base_dir", base_dir))
    assert problems(inventories) == [
        f"inventories/prod.yaml: app.base_dir: found {base_dir!r}; expected a folder of its own, like /srv/app, not "
        "inside the system folder /var/lib/slipway"]


@pytest.mark.parametrize("user", ["deploy", "admin"])
def test_app_folder_is_not_the_deploy_users_home(inventories, user):
    data = changed("app.base_dir", f"/home/{user}")
    data["server"]["deploy_user"] = user
    write(inventories, data)
    assert problems(inventories) == [
        f"inventories/prod.yaml: app.base_dir: found '/home/{user}'; expected a folder of its own, like "
        f"/home/{user}/shop, not the home of server.deploy_user ({user}) itself"]


@pytest.mark.parametrize("base_dir", ["/srv/shop", "/opt/shop", "/var/www/shop", "/home/deploy/shop",
                                      "/var/lib/shop", "/mnt/data/shop"])
def test_a_folder_below_a_shared_one_is_the_apps_own(inventories, base_dir):
    write(inventories, changed("app.base_dir", base_dir))
    assert str(config.load(inventories, "prod").inventory.app.base_dir) == base_dir


# --- names on the app network: DNS labels, each answering for one thing ----------------------------------

def test_a_web_services_slot_alias_fits_a_dns_label(inventories):
    # APP-green-api: an app name of 53 characters makes it 63, one more 64.
    write(inventories, changed("app.name", "s" * 53))
    config.load(inventories, "prod")
    write(inventories, changed("app.name", "s" * 54))
    assert problems(inventories) == [
        f"inventories/prod.yaml: services.api: found 'api'; expected a shorter name: Docker's DNS names this "
        f"service's containers {'s' * 54}-green-api (nginx configs of an earlier layout look them up), 64 "
        "characters, and a DNS label holds at most 63 (app.name and the service name together at most 56)"]


def test_a_worker_gets_no_slot_alias_so_its_name_may_be_long(inventories):
    write(inventories, with_service("w" * 60))
    assert "w" * 60 in config.load(inventories, "prod").inventory.services


@pytest.mark.parametrize("name", ["shop-blue-api", "shop-green-api", "shop-green-admin", "shop-db-1", "shop-nginx-1",
                                  "shop-20260101-120000", "shop-20260101-120000-api-1"])
def test_a_service_is_not_named_like_what_slipway_names_on_the_network(inventories, name):
    write(inventories, with_service(name))
    assert problems(inventories) == [
        f"inventories/prod.yaml: services.{name}: found {name!r}; expected a name unlike those slipway gives on the "
        "app network (shop-blue-*, shop-green-*, shop-db-N, shop-nginx-N, shop-<release id>-*), so no name there "
        "answers for two containers"]


@pytest.mark.parametrize("name", ["shop-api", "shop", "blue-api", "shop-db", "shop-2026"])
def test_service_names_that_only_start_like_the_app_are_fine(inventories, name):
    write(inventories, with_service(name))
    assert name in config.load(inventories, "prod").inventory.services


# --- stopping old containers fits in the step that does it ------------------------------------------

def test_stop_grace_leaves_the_stop_step_time_to_start_the_new_workers(inventories):
    write(inventories, changed("services.worker.stop_grace_seconds", 267))
    config.load(inventories, "prod")
    write(inventories, changed("services.worker.stop_grace_seconds", 268))
    assert problems(inventories) == [
        "inventories/prod.yaml: services.worker.stop_grace_seconds: found 268; expected at most 267: "
        "app.step_timeout_seconds (300) minus app.drain_seconds (3) minus 30 s to start the new workers, or the "
        "step that stops the old containers is killed before the new workers start"]


def test_a_short_step_timeout_names_every_service_whose_grace_does_not_fit(inventories):
    data = changed("app.step_timeout_seconds", 60)
    data["app"]["drain_seconds"] = 10
    write(inventories, data)
    assert [line.split(": found")[0] for line in problems(inventories)] == [
        "inventories/prod.yaml: services.api.stop_grace_seconds",
        "inventories/prod.yaml: services.worker.stop_grace_seconds"]
    assert "expected at most 20: app.step_timeout_seconds (60) minus app.drain_seconds (10)" in problems(inventories)[0]


# --- what else the server and its tools would refuse ---------------------------------------------------

@pytest.mark.parametrize("key, value, expected", [
    ("host.address", "999.1.1.1", "found '999.1.1.1'; expected a DNS name or IPv4 address"),
    ("host.address", "10.1", "found '10.1'; expected a DNS name or IPv4 address"),
    ("host.address", "010.0.0.1", "found '010.0.0.1'; expected a DNS name or IPv4 address"),
    ("app.domains", ["shop.example.com", "Shop.Example.com"],
     "found 'Shop.Example.com'; expected each domain once (DNS names ignore case)"),
    ("app.domains", ["a" * 64 + ".example.com"], "expected a DNS name or IPv4 address"),
    ("server.ssh_port", 443, "found 443; expected a port other than 80 and 443 (nginx listens on those)"),
    ("server.ssh_port", 80, "found 80; expected a port other than 80 and 443"),
    ("server.docker", {"log_max_size": "0m"}, "found '0m'; expected a size like 10m"),
    ("services.api.ports", [8000, 8000], "found 8000; expected each port once"),
    ("services.api.volumes", ["uploads:/data", "media:/data"],
     "found 'media:/data'; expected one volume per container path; /data is mounted already"),
    ("services.api.volumes", ["uploads:/.."],
     "found 'uploads:/..'; expected paths without . or .. parts (they would mount another folder, or /)"),
    ("services.api.volumes", ["./.:/data"], "expected paths without . or .. parts"),
    ("services.api.volumes", ["/srv/./x:/data"], "expected paths without . or .. parts"),
    ("services.api.volumes", ["./nginx/traffic:/data"],
     "found './nginx/traffic:/data'; expected a folder other than ./nginx (db, nginx, acme-challenge, accessories in shared/ are "
     "slipway's own)"),
    ("services.api.volumes", ["./db:/data"], "expected a folder other than ./db"),
    ("services.api.volumes", ["pgdata:/data"],
     "found 'pgdata:/data'; expected a volume other than database.volume (pgdata): it holds the database's files"),
    ("services.api.volumes", ["/srv/shop/shared/db:/data"],
     "found '/srv/shop/shared/db:/data'; expected a host folder outside app.base_dir (/srv/shop), which holds "
     "slipway's releases, state and secrets; ./folder is a folder of the app's own there (in shared/)"),
    ("services.api.volumes", ["/srv/shop:/data:ro"], "expected a host folder outside app.base_dir (/srv/shop)"),
    ("services.api.command", "", "found ''; expected a command: a string or a list of words, not an empty one"),
    ("services.api.command", [], "found []; expected a command: a string or a list of words, not an empty one"),
    ("services.api.release_command", "  ", "expected a command: a string or a list of words, not an empty one"),
    ("services.api.command", "gunicorn 'shop.wsgi",
     "found \"gunicorn 'shop.wsgi\"; expected a command line with balanced quotes, or a list of words"),
    ("services.api.cpus", 0.001, "found 0.001; expected greater than or equal to 0.01"),
    ("services.api.env", {"TOKEN": "a\rb"}, "found 'a\\rb'; expected a value without control characters (a tab is fine)"),
    ("services.api.env", {"TOKEN": "a\x00b"}, "expected a value without control characters"),
    ("images", {"username": "ci bot", "password_secret": "DATABASE_PASSWORD"},
     "found 'ci bot'; expected a registry user name of visible characters, without spaces or colons"),
    ("images", {"username": "ci:bot", "password_secret": "DATABASE_PASSWORD"}, "without spaces or colons"),
    ("images", {"username": "ci\nbot", "password_secret": "DATABASE_PASSWORD"}, "without spaces or colons"),
    ("images", {"username": "ci"}, "images: expected both username and password_secret (for docker login), or neither"),
    ("images", {"password_secret": "DATABASE_PASSWORD"}, "images: expected both username and password_secret"),
])
def test_values_the_server_would_refuse_are_refused_first(inventories, key, value, expected):
    write(inventories, changed(key, value))
    (line,) = problems(inventories)
    assert line.startswith(f"inventories/prod.yaml: {key.split('.')[0]}")
    assert expected in line


@pytest.mark.parametrize("image", ["shop/api:", "shop//api", "Shop/api", "shop/api:v1:v2", "-shop/api", "shop-/api",
                                   "shop..api", "shop/api/", "shop/api@sha256:abc", "registry:port/api",
                                   "a" * 256 + ":v1"])
def test_image_references_follow_dockers_grammar(inventories, image):
    write(inventories, changed("services.api.image", image))
    (line,) = problems(inventories)
    assert line.startswith("inventories/prod.yaml: services.api.image: found ")
    assert line.endswith("; expected an image reference like registry.example.com/team/api (lowercase) or "
                         "postgres:16, its name at most 255 characters")


@pytest.mark.parametrize("image", ["registry.example.com/shop/api", "postgres:16", "localhost:5000/api",
                                   "127.0.0.1:5000/team/api:V1.2_rc", "ghcr.io/o/r__x/a-b--c.d:1",
                                   "shop/api@sha256:" + "0" * 64, "a" * 255 + ":v1"])
def test_image_references_docker_takes(inventories, image):
    write(inventories, changed("services.api.image", image))
    assert config.load(inventories, "prod").inventory.services["api"].image == image


@pytest.mark.parametrize("bucket", ["shop..backups", "192.168.1.10", "ab"])
def test_s3_buckets_follow_s3s_naming_rules(inventories, bucket):
    data = changed("backup", {"offsite": {"password_secret": "DATABASE_PASSWORD", "s3": {
        "endpoint": "https://s3.example.net", "bucket": bucket, "prefix": "prod",
        "access_key_secret": "DATABASE_PASSWORD", "secret_key_secret": "DATABASE_PASSWORD"}}})
    write(inventories, data)
    (line,) = problems(inventories)
    assert line.startswith(f"inventories/prod.yaml: backup.offsite.s3.bucket: found {bucket!r}; expected an S3 bucket name")


def test_values_right_at_the_servers_limits_are_accepted(inventories):
    data = changed("host.address", "203.0.113.7")
    data["app"]["domains"] = ["shop.example.com", "www.shop.example.com", "10.0.0.5"]
    data["tls"] = {"enabled": False}
    data["server"].update(ssh_port=2222, timezone="America/Argentina/Buenos_Aires")
    data["services"]["api"].update(cpus=0.01, ports=[8000, 8001], volumes=["./media:/srv/media", "uploads:/data",
                                                                           "/srv/shop-media:/media"],
                                   env={"TABS": "a\tb"})
    data["images"] = {"source": "registry", "registry": "registry.example.com", "username": "robot$ci+shop",
                      "password_secret": "DATABASE_PASSWORD"}
    write(inventories, data)
    inventory = config.load(inventories, "prod").inventory
    assert inventory.images.username == "robot$ci+shop" and inventory.services["api"].env == {"TABS": "a\tb"}


def test_problems_a_model_finds_across_its_keys_are_each_named_at_their_own_key(inventories):
    data = changed("services.api.ports", [8000, 8000])
    data["services"]["api"]["volumes"] = ["a:/x", "b:/x"]
    data["server"]["ssh_port"] = 80
    write(inventories, data)
    assert [line.split(": found")[0] for line in problems(inventories)] == [
        "inventories/prod.yaml: server.ssh_port",
        "inventories/prod.yaml: services.api.ports[1]",
        "inventories/prod.yaml: services.api.volumes[1]"]


def rest_offsite(**rest):
    """VALID with an append-only REST offsite repository (REST keys overridden by REST)."""
    return changed("backup", {"offsite": {"password_secret": "DATABASE_PASSWORD", "append_only": True, "rest": {
        "url": "https://backup.example.net:8000/shop", "user": "shop", "password_secret": "REST_PASSWORD",
        "admin_url": "https://127.0.0.1:8001/shop", "admin_password_secret": "REST_ADMIN_PASSWORD", **rest}}})


def test_a_rest_offsite_needs_its_servers_password_but_not_the_admin_one_to_load(inventories):
    # Only backup.prune-offsite reads the admin password, on the operator's machine: a secrets file that
    # deploys (CI's) need not hold it.
    write(inventories, rest_offsite(), secrets=SECRETS + "REST_PASSWORD=x\n")
    rest = config.load(inventories, "prod").inventory.backup.offsite.rest
    assert (rest.url, rest.admin_url, rest.admin_password_secret) == (
        "https://backup.example.net:8000/shop", "https://127.0.0.1:8001/shop", "REST_ADMIN_PASSWORD")
    write(inventories, rest_offsite())
    (line,) = problems(inventories)
    assert line.startswith("inventories/prod.env: REST_PASSWORD: missing; expected a line REST_PASSWORD=... because "
                           "inventories/prod.yaml uses it at backup.offsite.rest.password_secret")


@pytest.mark.parametrize("url", ["https://shop:secret@backup.example.net/shop", "http://backup.example.net:8000/shop",
                                 "rest:https://backup.example.net/shop", "https://backup.example.net/shop?x=1"])
def test_a_rest_url_is_https_without_credentials(inventories, url):
    write(inventories, rest_offsite(url=url), secrets=SECRETS + "REST_PASSWORD=x\n")
    (line,) = problems(inventories)
    assert line.startswith(f"inventories/prod.yaml: backup.offsite.rest.url: found {url!r}; expected an https:// "
                           "URL of the repository without credentials"), line


def test_an_append_only_repository_needs_credentials_that_may_delete_for_prune_offsite(inventories):
    data = rest_offsite(admin_url=None, admin_password_secret=None)
    write(inventories, data, secrets=SECRETS + "REST_PASSWORD=x\n")
    (line,) = problems(inventories)
    assert line == ("inventories/prod.yaml: backup.offsite: expected rest.admin_url or rest.admin_password_secret "
                    "with append_only: true (backup.prune-offsite cannot forget with the server's own append-only "
                    "credentials)")
    data["backup"]["offsite"]["append_only"] = False
    write(inventories, data, secrets=SECRETS + "REST_PASSWORD=x\n")
    assert config.load(inventories, "prod").inventory.backup.offsite.append_only is False
    s3 = changed("backup", {"offsite": {"password_secret": "DATABASE_PASSWORD", "append_only": True, "s3": {
        "endpoint": "https://s3.example.net", "bucket": "shop-backups", "prefix": "prod",
        "access_key_secret": "DATABASE_PASSWORD", "secret_key_secret": "DATABASE_PASSWORD"}}})
    write(inventories, s3)
    (line,) = problems(inventories)
    assert line.startswith("inventories/prod.yaml: backup.offsite: expected s3.admin_access_key_secret and "
                           "s3.admin_secret_key_secret with append_only: true"), line
    s3["backup"]["offsite"]["s3"]["admin_access_key_secret"] = "S3_ADMIN_ID"
    write(inventories, s3)
    assert any("backup.offsite.s3: expected both admin_access_key_secret and admin_secret_key_secret"
               in line for line in problems(inventories)), problems(inventories)


def test_one_offsite_repository_of_the_three_kinds(inventories):
    data = rest_offsite()
    data["backup"]["offsite"]["s3"] = {"endpoint": "https://s3.example.net", "bucket": "shop-backups",
                                       "prefix": "prod", "access_key_secret": "DATABASE_PASSWORD",
                                       "secret_key_secret": "DATABASE_PASSWORD"}
    write(inventories, data, secrets=SECRETS + "REST_PASSWORD=x\n")
    assert "inventories/prod.yaml: backup.offsite: expected exactly one of sftp, s3 or rest" in problems(inventories)
