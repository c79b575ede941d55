"""Provision on a fresh lab target: hardened Docker host, idempotent, dry run, lock-out guard.

These run in file order on the session's fresh target (see tests/conftest.py).
"""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fabfile.errors import ConnectError
from lab_names import LAB

SSHD_DROP_IN = "/etc/ssh/sshd_config.d/00-slipway-hardening.conf"
PROJECT = Path(__file__).resolve().parents[2]


def summary(output):
    match = re.search(r"\[lab\] (\d+) ok, (\d+) (changed|would change), (\d+) failed in", output)
    assert match, output
    return int(match.group(1)), int(match.group(2)), int(match.group(4))


@pytest.fixture
def stranger_key(tmp_path):
    path = tmp_path / "stranger.pub"
    key = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    path.write_text(key + " stranger\n")
    return path


def own_template(tmp_path, monkeypatch, name, text):
    """A project of the user's own whose templates/server/NAME.j2 is TEXT (project templates win over slipway's)."""
    project = tmp_path / "project"
    (project / "templates" / "server").mkdir(parents=True, exist_ok=True)
    (project / "templates" / "server" / f"{name}.j2").write_text(text)
    monkeypatch.setenv("FABRIC_SLIPWAY_PROJECT_DIR", str(project))


def test_lockout_guard_keeps_root_login_when_deploy_cannot_sudo(variant, login, target_host, tmp_path, monkeypatch):
    # A sudoers template of the user's own passes `visudo -c` but grants the deploy user nothing: once root
    # login is off, nobody could run provision's root steps. (An inventory whose keys leave out the
    # operator's is refused before any connection: see the authorized_keys tests below.)
    if login("root") != "ok":
        pytest.skip("needs the fresh target: on a hardened one root cannot log in to undo the sudoers template")
    own_template(tmp_path, monkeypatch, "sudoers-deploy", "# nothing for {{ user }}\n")
    result = variant(lambda data: None)("provision")
    assert result.returncode == 1
    assert "refusing to change sshd: a new SSH login as deploy" in result.stderr
    assert "could not run `sudo -n true && docker compose version`" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert re.search(r"sshd: no root login, no passwords +failed", result.stdout)
    assert not target_host.file(SSHD_DROP_IN).exists
    assert login("root") == "ok"
    assert login("deploy") == "ok"


def test_provision_makes_a_hardened_docker_host(cli, login):
    result = cli("fab", "-H", "lab", "provision")
    assert result.returncode == 0, result.stdout + result.stderr
    ok, changed, failed = summary(result.stdout)
    assert failed == 0 and changed >= 2
    assert login("root") == "refused"
    assert login("deploy") == "ok"


def test_verify_passes_on_the_provisioned_host(cli):
    result = cli("fab", "-H", "lab", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified: every promise of provision holds" in result.stdout
    # Every package, file and folder is a test of its own: far more than a handful must have run.
    assert int(re.search(r"\b(\d+) passed\b", result.stdout).group(1)) >= 40, result.stdout


def test_deploy_user_runs_compose_v2_over_a_new_connection(as_deploy):
    assert as_deploy.user == "deploy"
    assert as_deploy.run("docker compose version --short").stdout.strip().startswith("2.")
    assert as_deploy.run("id -nG").stdout.split().count("docker") == 1


def fingerprint(as_deploy):
    """What a no-op must leave alone: managed files, packages, docker and sshd processes, firewall."""
    return as_deploy.run(
        "stat -c '%n %Y %a %U' /etc/docker/daemon.json /etc/ssh/sshd_config.d/00-slipway-hardening.conf "
        f"/etc/sudoers.d/slipway-deploy /home/deploy/.ssh/authorized_keys {LAB.base} /etc/localtime; "
        "stat -c '%Y' /var/lib/dpkg/status; systemctl show -p MainPID -p ActiveEnterTimestamp docker.service ssh.service; "
        "ufw status verbose", root=True).stdout


def test_second_run_changes_nothing(cli, as_deploy):
    before = fingerprint(as_deploy)
    result = cli("fab", "-H", "lab", "provision")
    assert result.returncode == 0, result.stderr
    assert summary(result.stdout)[1:] == (0, 0)
    assert "connect [127.0.0.1]" in result.stdout and "as deploy" in result.stdout
    assert fingerprint(as_deploy) == before


def test_dry_run_on_a_provisioned_host_has_nothing_to_change(cli):
    result = cli("fab", "-H", "lab", "provision", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert summary(result.stdout)[1:] == (0, 0)


def test_deleted_daemon_json_is_shown_by_dry_run_and_restored(cli, as_deploy):
    wanted = as_deploy.run("cat /etc/docker/daemon.json", root=True).stdout
    as_deploy.run("rm /etc/docker/daemon.json", root=True)

    dry = cli("fab", "-H", "lab", "provision", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert summary(dry.stdout)[1:] == (1, 0)
    assert "--- /dev/null\n    +++ /etc/docker/daemon.json (slipway)" in dry.stdout
    assert '    +  "live-restore": true' in dry.stdout
    assert as_deploy.run("test -e /etc/docker/daemon.json", root=True, check=False).failed

    real = cli("fab", "-H", "lab", "provision")
    assert real.returncode == 0, real.stderr
    assert summary(real.stdout)[1:] == (1, 0)
    assert as_deploy.run("cat /etc/docker/daemon.json", root=True).stdout == wanted
    assert as_deploy.run("docker info --format '{{.LiveRestoreEnabled}}'").stdout.strip() == "true"


def test_failed_step_names_itself_the_command_and_stderr(variant):
    fab = variant(lambda data: data["server"].update(timezone="Mars/Olympus_Mons"))
    result = fab("provision")
    assert result.returncode == 1
    assert "provision step 'timezone Mars/Olympus_Mons' failed" in result.stderr
    assert "command failed (exit 1): slipway-timezone /usr/share/zoneinfo/Mars/Olympus_Mons Mars/Olympus_Mons" in result.stderr
    assert "| no such time zone: Mars/Olympus_Mons" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_inventory_is_refused_before_any_connection(variant):
    fab = variant(lambda data: data["server"].update(ssh_port="twenty-two"))
    result = fab("provision")
    assert result.returncode == 1
    assert re.fullmatch(r"error: /\S+/inventories/lab\.yaml: server\.ssh_port: found 'twenty-two'; "
                        r"expected a valid integer, unable to parse string as an integer", result.stderr.strip())
    assert "connect" not in result.stdout


def test_a_deploy_user_whose_home_is_elsewhere_gets_its_files_there(variant, as_deploy, login, cli):
    """A user made before slipway (like a cloud image's), its home outside /home: its real home is used."""
    as_deploy.run("useradd --create-home --home-dir /var/lib/ops --shell /bin/bash ops && "
                  "install -d -o ops -g ops -m 700 /var/lib/ops/.ssh && "
                  "install -o ops -g ops -m 600 /home/deploy/.ssh/authorized_keys /var/lib/ops/.ssh/authorized_keys && "
                  "echo 'ops ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/slipway-ops", root=True)
    try:
        fab = variant(lambda data: data["server"].update(deploy_user="ops"))
        provisioned = fab("provision")
        assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
        assert as_deploy.run("stat -c '%a %U' /var/lib/ops/.ssh /var/lib/ops/.ssh/authorized_keys",
                             root=True).stdout.split("\n")[:2] == ["700 ops", "600 ops"]
        assert as_deploy.run("test -e /home/ops", check=False).failed
        assert login("ops") == "ok"
        verified = fab("verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        again = fab("provision")
        assert summary(again.stdout)[1:] == (0, 0), again.stdout
    finally:
        back = cli("fab", "-H", "lab", "provision")
        as_deploy.run("userdel --remove ops; rm -f /etc/sudoers.d/slipway-ops", root=True, check=False)
    assert back.returncode == 0, back.stdout + back.stderr
    assert login("deploy") == "ok"


AUTHORIZED_KEYS = "/home/deploy/.ssh/authorized_keys"


def deploy_keys(as_deploy):
    """The deploy user's authorized_keys (mode, owner, time, content) and whatever else is beside it."""
    return as_deploy.run(f"stat -c '%a %U:%G %Y' {AUTHORIZED_KEYS}; cat {AUTHORIZED_KEYS}; ls -A /home/deploy/.ssh",
                         root=True).stdout


def test_authorized_keys_without_the_operators_key_are_refused_before_any_connection(variant, stranger_key,
                                                                                       as_deploy, login):
    before = deploy_keys(as_deploy)
    result = variant(lambda data: data["server"].update(authorized_keys=[str(stranger_key)]))("provision")
    assert result.returncode == 1
    assert re.fullmatch(r"error: /\S+/inventories/lab\.yaml: server\.authorized_keys: found \['stranger\.pub'\]; "
                        r"expected the public half of host\.key_file \(/\S+/id_ed25519: ssh-ed25519 SHA256:\S+\) "
                        r"among them: every task after provision logs in as deploy with that key", result.stderr.strip())
    assert "connect" not in result.stdout
    assert deploy_keys(as_deploy) == before
    assert login("deploy") == "ok"


def test_authorized_keys_that_shut_out_the_operator_are_put_back(variant, as_deploy, login, tmp_path, monkeypatch):
    # A template of the user's own passes every check made before the change, but limits each key to an
    # address the operator's connection does not come from: sshd refuses the key once the file is in place.
    own_template(tmp_path, monkeypatch, "authorized_keys",
                 '{% for key in keys %}\nfrom="203.0.113.1" {{ key.line }}\n{% endfor %}\n')
    before = deploy_keys(as_deploy)
    result = variant(lambda data: None)("provision")
    assert result.returncode == 1
    assert "error: provision step 'file /home/deploy/.ssh/authorized_keys' failed" in result.stderr
    assert "after the authorized_keys change a new SSH login as deploy failed" in result.stderr
    assert "refused the SSH login with key" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert re.search(r"file /home/deploy/\.ssh/authorized_keys +failed", result.stdout)
    assert deploy_keys(as_deploy) == before
    assert login("deploy") == "ok"


def firewall(as_deploy):
    return as_deploy.run("ufw status verbose", root=True).stdout


def test_firewall_is_refused_when_sshd_does_not_listen_on_ssh_port(variant, as_deploy, login):
    before = firewall(as_deploy)
    result = variant(lambda data: data["server"].update(ssh_port=2222))("provision")
    assert result.returncode == 1
    assert "server.ssh_port is 2222 but sshd listens on 22" in result.stderr and "nothing was changed" in result.stderr
    assert "firewall allows only" not in result.stdout
    assert firewall(as_deploy) == before
    assert login("deploy") == "ok"


EXTRA_PORT = "/etc/ssh/sshd_config.d/10-lab-extra-port.conf"


def test_firewall_that_shuts_out_a_fresh_login_is_rolled_back(variant, as_deploy, login):
    # sshd also listens on 2222, so server.ssh_port 2222 passes the check, but the operator's
    # connections arrive on 22: once ufw lets in only 2222, a fresh login fails.
    as_deploy.run(f"printf 'Port 22\\nPort 2222\\n' > {EXTRA_PORT} && systemctl reload ssh.service", root=True)
    try:
        before = firewall(as_deploy)
        result = variant(lambda data: data["server"].update(ssh_port=2222))("provision")
        assert result.returncode == 1
        assert "after the firewall change a new SSH login as deploy failed" in result.stderr
        assert "previous firewall configuration was restored" in result.stderr
        assert "Traceback" not in result.stderr
        assert firewall(as_deploy) == before
        assert login("deploy") == "ok"
        timers = as_deploy.run("systemctl list-timers --all --no-legend", root=True).stdout
        assert "slipway-firewall-revert" not in timers
    finally:
        as_deploy.run(f"rm -f {EXTRA_PORT} && systemctl reload ssh.service", root=True)
        logged_in_after_sshd_reload(login)


def logged_in_after_sshd_reload(login):
    """sshd re-executes itself on reload, dropping a connection made in that instant: the next test's
    first login waits until a fresh one gets through."""
    deadline = time.monotonic() + 10
    while True:
        try:
            assert login("deploy") == "ok"
            return
        except ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_sshd_change_that_locks_the_deploy_user_out_is_restored(variant, as_deploy, login, tmp_path, monkeypatch):
    # A user's own template (project templates/ win over slipway's) with a line that passes
    # `sshd -t` but refuses the deploy user once sshd reloads.
    shipped = (PROJECT / "templates" / "server" / "sshd-hardening.conf.j2").read_text()
    own_template(tmp_path, monkeypatch, "sshd-hardening.conf", shipped + "AllowUsers nobody\n")
    before = as_deploy.run(f"cat {SSHD_DROP_IN}", root=True).stdout
    result = variant(lambda data: None)("provision")
    assert result.returncode == 1
    assert "after the sshd change a new SSH login as deploy failed" in result.stderr
    assert as_deploy.run(f"cat {SSHD_DROP_IN}", root=True).stdout == before
    assert login("deploy") == "ok"


def test_verify_fails_on_a_drifted_host_naming_the_check(cli, as_deploy):
    as_deploy.run(f"echo '# edited by hand' >> {SSHD_DROP_IN}", root=True)
    try:
        result = cli("fab", "-H", "lab", "verify")
        assert result.returncode == 1
        assert "test_managed_file[/etc/ssh/sshd_config.d/00-slipway-hardening.conf]" in result.stdout
        assert "does not keep every promise of provision" in result.stderr
    finally:
        assert cli("fab", "-H", "lab", "provision").returncode == 0
    assert cli("fab", "-H", "lab", "verify").returncode == 0


def without_certbot(as_deploy):
    """certbot and the packages only it needs gone: provision's package step has real work to do again."""
    as_deploy.run("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q certbot >/dev/null && "
                  "DEBIAN_FRONTEND=noninteractive apt-get autoremove -y -q >/dev/null", root=True, timeout=300)


def packages_sound(as_deploy):
    audit = as_deploy.run("dpkg --audit; ls -A /var/lib/dpkg/updates", root=True).stdout.strip()
    status = as_deploy.run("dpkg-query -W -f='${db:Status-Abbrev}' certbot", check=False).stdout.strip()
    return audit == "" and status == "ii"


def provision_in_background():
    return subprocess.Popen([str(Path(sys.executable).parent / "fab"), "-H", "lab", "provision"], cwd=PROJECT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_provision_killed_while_apt_runs_is_finished_by_the_next_run(cli, as_deploy):
    without_certbot(as_deploy)
    run = provision_in_background()
    try:
        # Once dpkg is unpacking, the operator's client vanishes; apt on the server may go on.
        as_deploy.run("timeout 300 sh -c 'until pgrep -x dpkg >/dev/null; do sleep 0.05; done'", root=True, timeout=310)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    again = cli("fab", "-H", "lab", "provision")
    assert again.returncode == 0, again.stdout + again.stderr
    assert packages_sound(as_deploy)


def test_provision_after_dpkg_was_killed_halfway_repairs_it_and_completes(cli, as_deploy):
    without_certbot(as_deploy)
    run = provision_in_background()
    # Killed while some package is unpacked but not configured, or half installed: the state dpkg records
    # before it finishes a package.
    halfway = "dpkg-query -W --showformat=\\${db:Status-Abbrev}\\\\n | grep -q ^.[UHF]"
    killed = as_deploy.run(f"timeout 300 sh -c 'until pgrep -x dpkg >/dev/null && {halfway}; do sleep 0.02; done; "
                           "pkill -9 -x dpkg; pkill -9 -x apt-get; dpkg --audit || true; "
                           "ls -A /var/lib/dpkg/updates'", root=True, timeout=310).stdout
    cut = run.communicate(timeout=300)[0]
    assert run.returncode == 1, cut
    assert "provision step 'packages' failed" in cut
    assert killed.strip(), "dpkg was killed with nothing left half done; the test did not cut where it meant to"
    again = cli("fab", "-H", "lab", "provision")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "finishing an interrupted dpkg run" in again.stdout + again.stderr
    assert packages_sound(as_deploy)


def test_provision_waits_for_another_apt_naming_it(cli, as_deploy):
    without_certbot(as_deploy)
    # Another apt (unattended-upgrades after boot, say) holds the dpkg lock for a while.
    other = "apt-get -q -o DPkg::Pre-Invoke::='sleep 10' install -y --reinstall tzdata"
    as_deploy.run(f"DEBIAN_FRONTEND=noninteractive setsid sh -c \"{other}\" >/dev/null 2>&1 < /dev/null &", root=True)
    as_deploy.run("timeout 120 sh -c 'until pgrep -x sleep >/dev/null; do sleep 0.1; done'", root=True, timeout=130)
    result = cli("fab", "-H", "lab", "provision")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"waiting for the dpkg lock, held by: \d+ \(apt-get -q -o DPkg::Pre-Invoke", result.stdout + result.stderr)
    assert packages_sound(as_deploy)
