"""What a provisioned server must be. Fixtures come from `cli/verify.py`:
`host` (testinfra, logged in as the deploy user), `desired` (what provision
promises this server), `server` (the inventory's server section) and `login`
(tries a fresh SSH login)."""

import hashlib
import json

from fabfile.commands.provision import firewall_rules


def test_package_installed(host, package):
    assert host.package(package).is_installed, f"package {package} is not installed"


def test_docker_service_is_enabled_and_running(host):
    docker = host.service("docker")
    assert docker.is_enabled
    assert docker.is_running


def test_deploy_user_runs_docker_compose_v2_without_sudo(host, server):
    assert host.user().name == server.deploy_user
    version = host.run("docker compose version --short")
    assert version.rc == 0, version.stderr
    assert version.stdout.strip().lstrip("v").startswith("2.")
    assert host.run("docker info --format '{{.ServerVersion}}'").rc == 0


def test_docker_daemon_rotates_logs_and_live_restores(host, server):
    with host.sudo():
        daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert daemon["log-driver"] == "json-file"
    assert daemon["log-opts"] == {"max-size": server.docker.log_max_size, "max-file": str(server.docker.log_max_file)}
    assert daemon["live-restore"] is True
    effective = host.run("docker info --format '{{.LoggingDriver}} {{.LiveRestoreEnabled}}'").stdout.split()
    assert effective == ["json-file", "true"]


def test_deploy_user_and_groups(host, server, desired):
    user = host.user(server.deploy_user)
    assert user.exists
    assert "docker" in user.groups
    assert user.home == desired.deploy_home, "provision's authorized_keys are not in the home sshd reads"
    home = host.file(user.home)
    # sshd (StrictModes) takes no key from a home others may write to.
    assert home.is_directory and home.user == server.deploy_user and not home.mode & 0o022


def test_managed_file(host, managed_file):
    with host.sudo():
        on_server = host.file(managed_file.path)
        assert on_server.exists, f"{managed_file.path} is missing"
        if managed_file.secret:
            same = on_server.sha256sum == hashlib.sha256(managed_file.content.encode()).hexdigest()
            assert same, f"{managed_file.path} differs from what provision writes (it holds secrets: not shown)"
        else:
            assert on_server.content_string == managed_file.content
        assert (on_server.user, on_server.group, on_server.mode) == (managed_file.owner, managed_file.group, managed_file.mode)


def test_directory(host, directory):
    with host.sudo():
        on_server = host.file(directory.path)
        assert on_server.is_directory, f"{directory.path} is missing"
        assert (on_server.user, on_server.group, on_server.mode) == (directory.owner, directory.group, directory.mode)


def test_deploy_user_logs_in_with_its_key(login, server):
    assert login(server.deploy_user) == "ok"


def test_root_login_is_refused(login):
    assert login("root") == "refused"


def test_password_login_is_refused(auth_methods, server):
    for user in (server.deploy_user, "root"):
        assert auth_methods(user) == ["publickey"], f"sshd offers {user} {auth_methods(user)}"


def test_sshd_effective_configuration(host):
    with host.sudo():
        effective = dict(line.split(" ", 1) for line in host.check_output("sshd -T").splitlines() if " " in line)
    assert effective["permitrootlogin"] == "no"
    assert effective["passwordauthentication"] == "no"
    assert effective["kbdinteractiveauthentication"] == "no"
    assert effective["pubkeyauthentication"] == "yes"


def test_firewall_lets_in_only_ssh_and_web(host, desired):
    with host.sudo():
        active, default, rules = firewall_rules(host.check_output("ufw status verbose"))
    assert active
    assert default.startswith("Default: deny (incoming), allow (outgoing)")
    assert rules == {f"{port}/tcp ALLOW Anywhere" for port in desired.firewall_ports}


def test_unattended_upgrades_are_on(host):
    assert host.package("unattended-upgrades").is_installed
    assert 'APT::Periodic::Unattended-Upgrade "1";' in host.file("/etc/apt/apt.conf.d/20auto-upgrades").content_string


def test_certbot_is_installed(host):
    assert host.run("certbot --version").rc == 0


def test_timezone(host, desired):
    assert host.file("/etc/localtime").linked_to == f"/usr/share/zoneinfo/{desired.timezone}"
