"""The offsite repository as data: SFTP, S3 and REST repositories as provision installs them, offsite.sh
against a fake restic, and backup.prune-offsite from this machine; no server."""

import json
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from backup_sandbox import PROJECT, SECRET, SECRETS, fake_bin, local_conf, run_script, shop_inventory, write_records
from fabfile import config
from fabfile.commands import backup, provision, provision_plan
from fabfile.commands import offsite as offsite_commands
from fabfile.errors import ConfigError, SlipwayError

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBackupHostKey"


@pytest.fixture
def inventory(tmp_path):
    return shop_inventory(tmp_path)


def with_offsite(tmp_path, offsite):
    data = yaml.safe_load((tmp_path / "prod.yaml").read_text())
    data["backup"]["offsite"] = offsite
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump(data))
    return config.load(tmp_path, "prod")


SFTP = {"sftp": {"host": "backup.example.net", "port": 2222, "user": "restic", "path": "/srv/restic/shop",
                 "host_key": HOST_KEY}, "password_secret": "RESTIC_PASSWORD"}


def test_an_sftp_offsite_pins_the_host_key_and_keeps_the_password_in_a_0600_file(inventory, tmp_path):
    offsite = with_offsite(tmp_path, SFTP).inventory
    desired = provision.desired_state(offsite, PROJECT, "debian", "13", SECRET)
    assert {"restic", "openssh-client"} <= set(desired.packages)
    probe = provision.probe_script(offsite)
    asked = [name for flag, name in zip(probe, probe[1:]) if flag == "--package"]
    assert set(desired.packages) <= set(asked)  # else a converged host looks as if it missed them
    known = desired.files["/etc/slipway/shop/offsite_known_hosts"]
    assert known.content == f"[backup.example.net]:2222 {HOST_KEY}\n"
    secrets = desired.files["/etc/slipway/shop/backup.env"]
    assert (secrets.mode, secrets.owner, secrets.group, secrets.secret) == (0o600, "deploy", "deploy", True)
    assert secrets.content == "RESTIC_PASSWORD=correct horse battery\n"
    conf = backup.conf_text(offsite)
    assert "OFFSITE_REPOSITORY=sftp:restic@backup.example.net:/srv/restic/shop\n" in conf
    assert "OFFSITE_SSH=restic@backup.example.net\nOFFSITE_SSH_PORT=2222\n" in conf
    assert "correct horse" not in conf
    assert desired.offsite_key == "/etc/slipway/shop/offsite_ed25519"
    assert "slipway-shop-backup-check.timer" in desired.backup_timers
    service = desired.files["/etc/systemd/system/slipway-shop-backup-check.service"].content
    assert "ExecStart=sh /usr/local/lib/slipway/offsite.sh /etc/slipway/shop/backup.conf check\n" in service


def test_the_offsite_key_is_made_once_on_the_server_and_secrets_never_reach_a_diff(tmp_path, inventory):
    desired = provision.desired_state(with_offsite(tmp_path, SFTP).inventory, PROJECT, "debian", "13", SECRET)
    fresh = {step.name: step for step in provision_plan.plan(desired, provision.HostState(os_id="debian", os_version="13"))}
    assert fresh["offsite backup SSH key"].actions[0].command[3:] == [
        "slipway-offsite_key", "/etc/slipway/shop/offsite_ed25519", "deploy"]
    plan_text = "\n".join(step.diff for step in fresh.values())
    assert "/etc/slipway/shop/backup.env: new (it holds secrets: not shown)" in plan_text
    assert "correct horse" not in plan_text
    rotated = provision.HostState(os_id="debian", os_version="13", offsite_public_key="ssh-ed25519 AAAA server")
    rotated.files["/etc/slipway/shop/backup.env"] = provision.FileState(0o600, "deploy", "deploy", "RESTIC_PASSWORD=old one\n")
    steps = {step.name: step for step in provision_plan.plan(desired, rotated)}
    assert not steps["offsite backup SSH key"].needed
    diff = steps["file /etc/slipway/shop/backup.env"].diff
    assert diff == "/etc/slipway/shop/backup.env: content differs (it holds secrets: not shown)"


def test_an_s3_offsite_takes_its_keys_from_secrets(tmp_path, inventory):
    s3 = {"s3": {"endpoint": "https://s3.example.net", "bucket": "shop-backups", "prefix": "prod",
                 "access_key_secret": "S3_ID", "secret_key_secret": "S3_KEY"}, "password_secret": "RESTIC_PASSWORD"}
    offsite = with_offsite(tmp_path, s3).inventory
    assert "OFFSITE_REPOSITORY=s3:https://s3.example.net/shop-backups/prod\n" in backup.conf_text(offsite)
    assert backup.secrets_text(offsite, SECRET) == \
        "RESTIC_PASSWORD=correct horse battery\nAWS_ACCESS_KEY_ID=AKID\nAWS_SECRET_ACCESS_KEY=s3cr3t\n"
    desired = provision.desired_state(offsite, PROJECT, "debian", "13", SECRET)
    assert desired.offsite_key is None and "/etc/slipway/shop/offsite_known_hosts" not in desired.files


def test_offsite_snapshots_are_tagged_with_the_inventory_name(tmp_path, inventory):
    offsite = with_offsite(tmp_path, SFTP).inventory
    assert "OFFSITE_TAG=inventory-prod\n" in backup.conf_text(offsite, "prod")
    assert "OFFSITE_TAG" not in backup.conf_text(offsite) and "OFFSITE_TAG" not in backup.conf_text(inventory, "prod")


# restic as offsite.sh uses it: every call logged; snapshots from a file; restore copies a snapshot's folder.
FAKE_RESTIC = r'''echo "$*" >> "$FAKE_LOG"
while [ "$1" = -o ] || [ "$1" = --cacert ]; do shift 2; done
case $1 in
snapshots) cat "$FAKE_SNAPSHOTS" ;;
restore) mkdir -p "$4/srv/shop/backups" && cp "$FAKE_REPOSITORY/$2"/* "$4/srv/shop/backups/" ;;
esac
echo "$RESTIC_REPOSITORY" >> "$FAKE_LOG.repository"
exit 0
'''


def snapshot(short, backup_id, *tags, time="2026-11-20T03:00:10Z"):
    return {"id": short * 8, "short_id": short * 8, "time": time, "hostname": "slipway-shop",
            "tags": ["slipway", f"backup-{backup_id}", *tags]}


@pytest.fixture
def repository(tmp_path, inventory):
    """An offsite repository shared with staging (another inventory, same app), holding snapshots from before
    inventory tags too; offsite.sh's conf for prod, and the calls restic got."""
    offsite = with_offsite(tmp_path, SFTP).inventory
    secrets = tmp_path / "backup.env"
    secrets.write_text("RESTIC_PASSWORD=x\n")
    conf, folder = local_conf(tmp_path, offsite, "prod", SECRETS_FILE=secrets)
    snapshots = [snapshot("a", "20261120-030000", "inventory-prod"),
                 snapshot("b", "20261125-030000", "inventory-staging", time="2026-11-25T03:00:10Z"),
                 snapshot("c", "20261122-030000", time="2026-11-22T03:00:10Z"),  # before inventory tags
                 snapshot("d", "20261120-030000", "inventory-staging", time="2026-11-26T03:00:10Z")]
    (tmp_path / "snapshots.json").write_text(json.dumps(snapshots))
    for snap in snapshots:
        stored = tmp_path / "repository" / snap["id"]
        stored.mkdir(parents=True)
        write_records(stored, [{"id": snap["tags"][1].removeprefix("backup-"), "outcome": "ok", "size": 10}])
    log = tmp_path / "restic.log"
    env = {"FAKE_LOG": str(log), "FAKE_SNAPSHOTS": str(tmp_path / "snapshots.json"),
           "FAKE_REPOSITORY": str(tmp_path / "repository")}
    bin_dir = fake_bin(tmp_path, restic=FAKE_RESTIC)

    def offsite_sh(*args, conf=conf):
        return run_script("offsite.sh", conf, *args, env=env, bin_dir=bin_dir)

    return offsite_sh, folder, log


def test_without_an_inventory_name_the_snapshots_are_tagged_and_forgotten_as_before(repository, tmp_path, inventory):
    offsite_sh, folder, log = repository
    untagged, _ = local_conf(tmp_path, with_offsite(tmp_path, SFTP).inventory, SECRETS_FILE=tmp_path / "backup.env")
    write_records(folder, [{"id": "20261120-030000", "seq": 1, "outcome": "ok", "size": 10}])
    assert offsite_sh("upload", "20261120-030000", conf=untagged).returncode == 0
    calls = [line.split(" -s sftp ", 1)[-1] for line in log.read_text().splitlines()]
    assert "--tag inventory-" not in next(c for c in calls if c.startswith("backup "))
    assert next(c for c in calls if c.startswith("forget ")).startswith("forget --host slipway-shop --tag slipway --")


def test_an_upload_tags_the_inventory_and_offsite_retention_forgets_only_its_snapshots(repository):
    offsite_sh, folder, log = repository
    write_records(folder, [{"id": "20261120-030000", "seq": 1, "outcome": "ok", "size": 10}])
    uploaded = offsite_sh("upload", "20261120-030000")
    assert uploaded.returncode == 0, uploaded.stderr
    # staging's snapshot d of a backup with the same id is newer: the record names prod's own.
    assert uploaded.stdout == "a" * 8 + "\n"
    calls = [line.split(" -s sftp ", 1)[-1] for line in log.read_text().splitlines()]
    assert next(c for c in calls if c.startswith("backup ")).startswith(
        "backup --host slipway-shop --tag slipway --tag backup-20261120-030000 --tag inventory-prod ")
    assert next(c for c in calls if c.startswith("forget ")).startswith(
        "forget --host slipway-shop --tag slipway,inventory-prod --group-by host --keep-last 3 ")


def test_fetch_reads_the_inventorys_own_snapshots_then_old_untagged_ones_never_another_inventorys(repository):
    offsite_sh, folder, _ = repository
    latest = offsite_sh("fetch", "latest")
    assert (latest.returncode, latest.stdout) == (0, "20261120-030000\n"), latest.stderr
    fetched = json.loads((folder / "20261120-030000.json").read_text())
    assert fetched["fetched"]["snapshot"] == "a" * 8
    foreign = offsite_sh("fetch", "20261125-030000")
    assert foreign.returncode == 2
    assert foreign.stderr == ("no backup 20261125-030000 of slipway-shop (inventory-prod) in the offsite "
                              "repository\n")
    old = offsite_sh("fetch", "20261122-030000")
    assert (old.returncode, old.stdout) == (0, "20261122-030000\n"), old.stderr
    listed = json.loads(offsite_sh("snapshots").stdout)
    assert sorted(snap["id"][0] for snap in listed) == ["a", "c"]


def test_a_repository_from_before_inventory_tags_is_taken_over_with_no_flag(repository, tmp_path):
    offsite_sh, folder, _ = repository
    snapshots = json.loads((tmp_path / "snapshots.json").read_text())
    (tmp_path / "snapshots.json").write_text(json.dumps([s for s in snapshots if "inventory-prod" not in s["tags"]]))
    latest = offsite_sh("fetch", "latest")
    assert (latest.returncode, latest.stdout) == (0, "20261122-030000\n"), latest.stderr


@pytest.mark.parametrize("offsite, expected", [
    ({"password_secret": "RESTIC_PASSWORD"}, "backup.offsite: expected exactly one of sftp, s3 or rest"),
    ({**SFTP, "sftp": {**SFTP["sftp"], "host_key": "AAAA"}}, "backup.offsite.sftp.host_key: found 'AAAA'; expected the "
                                                               "backup host's public host key"),
    ({**SFTP, "password_secret": "NOT_THERE"}, "NOT_THERE: missing; expected a line NOT_THERE=... because"),
    ({**SFTP, "check_subset": "0%"}, "backup.offsite.check_subset: found '0%'; expected a percentage like 10%"),
])
def test_a_wrong_offsite_section_is_named_before_anything_runs(tmp_path, inventory, offsite, expected):
    with pytest.raises(ConfigError) as error:
        with_offsite(tmp_path, offsite)
    assert any(expected in problem for problem in error.value.problems), error.value.problems


# --- append-only offsite repositories: REST, and backup.prune-offsite from the operator's machine ---------

CA = "-----BEGIN CERTIFICATE-----\nMIIBlabCA\n-----END CERTIFICATE-----\n"


def rest(tmp_path, **overrides):
    (tmp_path / "rest-ca.pem").write_text(CA)
    return {"rest": {"url": "https://backup.example.net:8000/shop", "user": "shop", "password_secret": "REST_PASSWORD",
                     "ca_bundle": "rest-ca.pem", "admin_url": "https://127.0.0.1:8001/shop", "admin_user": "operator",
                     "admin_password_secret": "REST_ADMIN", **overrides},
            "append_only": True, "password_secret": "RESTIC_PASSWORD"}


def test_a_rest_offsite_keeps_its_credentials_in_the_0600_file_and_never_the_admin_ones_on_the_server(
        tmp_path, inventory):
    offsite = with_offsite(tmp_path, rest(tmp_path)).inventory
    conf = backup.conf_text(offsite, "prod")
    assert "OFFSITE_REPOSITORY=rest:https://backup.example.net:8000/shop/\n" in conf
    assert "OFFSITE_CACERT=/etc/slipway/shop/offsite-ca.pem\nOFFSITE_APPEND_ONLY=yes\n" in conf
    desired = provision.desired_state(offsite, PROJECT, "debian", "13", SECRET, inventory_name="prod")
    secrets = desired.files["/etc/slipway/shop/backup.env"]
    assert (secrets.mode, secrets.owner, secrets.secret) == (0o600, "deploy", True)
    # Percent-encoded: restic 0.12 and 0.14 read REST credentials only from the location (in the environment).
    assert secrets.content == ("RESTIC_PASSWORD=correct horse battery\n"
                               "RESTIC_REPOSITORY=rest:https://shop:p%40ss%2Fw%3Ard%25@backup.example.net:8000/shop/\n")
    parts = urlsplit(secrets.content.split("RESTIC_REPOSITORY=rest:")[1].strip())
    assert (parts.username, unquote(parts.password), parts.hostname, parts.path) == \
        ("shop", "p@ss/w:rd%", "backup.example.net", "/shop/")
    ca = desired.files["/etc/slipway/shop/offsite-ca.pem"]
    assert (ca.content, ca.mode, ca.secret) == (CA, 0o644, False)
    assert "/etc/slipway/shop/offsite-ca.pem" in provision.managed_paths(offsite)[0]
    assert desired.offsite_key is None and "/etc/slipway/shop/offsite_known_hosts" not in desired.files
    assert not any("adm1n" in unquote(f.content) for f in desired.files.values())
    plan = provision_plan.plan(desired, provision.HostState(os_id="debian", os_version="13"))
    assert "p%40ss" not in "\n".join(step.diff for step in plan)
    assert not any("p@ss" in f.content or "p%40ss" in f.content for path, f in desired.files.items()
                   if path != "/etc/slipway/shop/backup.env")


def offsite_conf(tmp_path, offsite_inventory):
    """offsite.sh's conf for prod and the server's secrets file, as provision writes them, folders here."""
    secrets = tmp_path / "backup.env"
    secrets.write_text(backup.secrets_text(offsite_inventory, SECRET))
    return local_conf(tmp_path, offsite_inventory, "prod", SECRETS_FILE=secrets)


def test_an_append_only_upload_copies_but_never_forgets_and_its_record_says_so(tmp_path, inventory):
    offsite = with_offsite(tmp_path, rest(tmp_path)).inventory
    conf, folder = offsite_conf(tmp_path, offsite)
    write_records(folder, [{"id": "20261120-030000", "seq": 1, "outcome": "ok", "size": 10}])
    (tmp_path / "snapshots.json").write_text(json.dumps([snapshot("a", "20261120-030000", "inventory-prod")]))
    log = tmp_path / "restic.log"
    env = {"FAKE_LOG": str(log), "FAKE_SNAPSHOTS": str(tmp_path / "snapshots.json")}
    uploaded = run_script("offsite.sh", conf, "upload", "20261120-030000", env=env,
                          bin_dir=fake_bin(tmp_path, restic=FAKE_RESTIC))
    assert uploaded.returncode == 0, uploaded.stderr
    assert uploaded.stdout.splitlines()[0] == "a" * 8
    assert "retention not applied: the repository is append-only" in uploaded.stdout
    calls = log.read_text().splitlines()
    assert calls and all(call.startswith("--cacert /etc/slipway/shop/offsite-ca.pem ") for call in calls), calls
    assert not any(" forget " in f" {call} " for call in calls), calls
    assert "p@ss" not in log.read_text() and "p%40ss" not in log.read_text()
    # The credentials reach restic in its environment only.
    assert set(Path(f"{log}.repository").read_text().splitlines()) == {
        "rest:https://shop:p%40ss%2Fw%3Ard%25@backup.example.net:8000/shop/"}
    record = json.loads((folder / "20261120-030000.json").read_text())
    assert record["offsite"]["snapshot"] == "a" * 8
    assert record["offsite"]["retention"] == "append-only: backup.prune-offsite applies it"


def test_an_offsite_failure_never_shows_a_urls_credentials(tmp_path, inventory):
    offsite = with_offsite(tmp_path, rest(tmp_path)).inventory
    conf, folder = offsite_conf(tmp_path, offsite)
    write_records(folder, [{"id": "20261120-030000", "seq": 1, "outcome": "ok", "size": 10}])
    # Not what restic prints (it masks the location's password itself), but whatever prints it is masked.
    failing = 'echo "Fatal: Post \\"https://shop:p%40ss%2Fw%3Ard%25@backup.example.net:8000/shop/\\": refused" >&2; exit 1\n'
    result = run_script("offsite.sh", conf, "upload", "20261120-030000", bin_dir=fake_bin(tmp_path, restic=failing))
    assert result.returncode == 1
    assert result.stderr.startswith("offsite upload of 20261120-030000 (opening the repository) failed: Fatal: Post "
                                    '"https://***@backup.example.net:8000/shop/": refused'), result.stderr
    record = (folder / "20261120-030000.json").read_text()
    assert "p%40ss" not in record + result.stderr and "https://***@backup" in record
    assert offsite_commands.without_credentials("Get https://u:p@h/x and sftp:restic@h:/p") == \
        "Get https://***@h/x and sftp:restic@h:/p"


# restic on the operator's machine: each call logged, the environment it got too; forget and snapshots answer
# from files.
FAKE_OPERATOR_RESTIC = r'''echo "$*" >> "$FAKE_LOG"
env | grep -E '^RESTIC_' | sort >> "$FAKE_LOG.env"
while [ "$1" = -o ] || [ "$1" = --cacert ]; do shift 2; done
case $1 in
unlock) echo "successfully removed locks" ;;
forget) cat "$FAKE_FORGET" ;;
snapshots) cat "$FAKE_LEFT" ;;
prune) echo "done" ;;
esac
exit 0
'''


def restic_snapshot(short, backup_id, time):
    # As restic 0.14's --json writes them (trimmed).
    return {"time": time, "tree": "47" * 32, "paths": ["/srv/shop/backups/x.dump"], "hostname": "slipway-shop",
            "username": "deploy", "tags": ["slipway", f"backup-{backup_id}", "inventory-prod"], "id": short * 64,
            "short_id": short * 8}


@pytest.fixture
def operator_restic(tmp_path, monkeypatch):
    """A fake restic first on this machine's PATH; the files its forget and snapshots answer from."""
    bin_dir = fake_bin(tmp_path, restic=FAKE_OPERATOR_RESTIC)
    log = tmp_path / "operator.log"
    kept = restic_snapshot("c", "20261122-030000", "2026-11-22T03:00:11.5+00:00")
    removed = [restic_snapshot("a", "20261120-030000", "2026-11-20T03:00:11.123456789+00:00"),
               restic_snapshot("b", "20261121-030000", "2026-11-21T03:00:11Z")]
    (tmp_path / "forget.json").write_text(json.dumps([{"tags": None, "host": "slipway-shop", "paths": None,
                                                       "keep": [kept], "remove": removed, "reasons": []}]) + "\n")
    (tmp_path / "left.json").write_text(json.dumps([kept]) + "\n")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_FORGET", str(tmp_path / "forget.json"))
    monkeypatch.setenv("FAKE_LEFT", str(tmp_path / "left.json"))
    # The operator's own restic settings are not what prune-offsite uses.
    monkeypatch.setenv("RESTIC_PASSWORD_FILE", "/nonexistent")
    monkeypatch.setenv("RESTIC_REPOSITORY", "/somewhere/else")
    return log


def test_prune_offsite_forgets_by_the_servers_retention_from_this_machine_with_the_admin_credentials(
        tmp_path, inventory, operator_restic, capsys):
    from fabfile.flows.offsite import forget_offsite

    deployment = with_offsite(tmp_path, rest(tmp_path))
    forget_offsite(deployment, dry_run=True)
    out = capsys.readouterr().out
    calls = operator_restic.read_text().splitlines()
    ca = str(tmp_path / "rest-ca.pem")
    assert calls == [f"--cacert {ca} unlock",
                     f"--cacert {ca} forget --json --dry-run --host slipway-shop --tag slipway,inventory-prod "
                     "--group-by host --keep-last 3 --keep-daily 10 --keep-weekly 4 --keep-monthly 6"]
    assert "[prod] would forget snapshot aaaaaaaa of backup 20261120-030000 (taken 2026-11-20T03:00:11)\n" in out
    assert "[prod] would forget snapshot bbbbbbbb of backup 20261121-030000 (taken 2026-11-21T03:00:11)\n" in out
    assert out.endswith("[prod] would forget 2 offsite snapshots of slipway-shop (inventory-prod) in "
                        "rest:https://127.0.0.1:8001/shop/ as operator; 1 kept\n"), out
    environment = set(Path(f"{operator_restic}.env").read_text().splitlines())
    assert environment == {"RESTIC_PASSWORD=correct horse battery",
                           "RESTIC_REPOSITORY=rest:https://operator:adm1n%20may%20delete@127.0.0.1:8001/shop/"}
    assert "adm1n" not in out and "adm1n" not in operator_restic.read_text()

    operator_restic.write_text("")
    forget_offsite(deployment, dry_run=False)
    out = capsys.readouterr().out
    assert [call.split()[2] for call in operator_restic.read_text().splitlines()] == \
        ["unlock", "forget", "snapshots", "prune"]
    assert "--dry-run" not in operator_restic.read_text()
    assert "[prod] forgot snapshot aaaaaaaa of backup 20261120-030000" in out
    assert out.endswith("[prod] forgot 2 offsite snapshots of slipway-shop (inventory-prod) in "
                        "rest:https://127.0.0.1:8001/shop/ as operator, and pruned their data; 1 kept\n"), out


def test_prune_offsite_fails_in_one_line_when_the_repository_kept_what_it_was_told_to_forget(
        tmp_path, inventory, operator_restic):
    from fabfile.flows.offsite import forget_offsite

    # An append-only server refuses the deletes; restic (0.18) may only warn about that and exit 0.
    snapshots = json.loads((tmp_path / "forget.json").read_text())[0]
    (tmp_path / "left.json").write_text(json.dumps(snapshots["keep"] + snapshots["remove"]) + "\n")
    with pytest.raises(SlipwayError) as error:
        forget_offsite(with_offsite(tmp_path, rest(tmp_path, admin_url=None)), dry_run=False)
    assert str(error.value) == ("prod: rest:https://backup.example.net:8000/shop/ as operator kept 2 of the 2 "
                                "snapshots restic was told to forget: it is append-only for these credentials (give "
                                "backup.offsite's admin_url or admin credentials that may delete)")
    assert "prune" not in operator_restic.read_text().split()


def test_prune_offsite_names_what_it_lacks_on_this_machine_in_one_line(tmp_path, inventory, monkeypatch):
    from fabfile.flows.offsite import forget_offsite

    deployment = with_offsite(tmp_path, rest(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SlipwayError) as error:
        forget_offsite(deployment, dry_run=True)
    assert str(error.value) == ("restic is not installed on this machine: backup.prune-offsite runs it here, not on "
                                "the server (apt-get install restic; ./scripts/setup installs it)")
    monkeypatch.setenv("PATH", str(fake_bin(tmp_path, restic=FAKE_OPERATOR_RESTIC)))
    (tmp_path / "prod.env").write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items() if k != "REST_ADMIN"))
    with pytest.raises(SlipwayError) as error:
        forget_offsite(config.load(tmp_path, "prod"), dry_run=True)
    assert str(error.value) == (f"{tmp_path}/prod.env: REST_ADMIN: missing or empty; expected a line REST_ADMIN=... "
                                f"because {tmp_path}/prod.yaml uses it at backup.offsite.rest.admin_password_secret "
                                "(backup.prune-offsite reads it here; the server never gets it)")
    with pytest.raises(SlipwayError) as error:
        forget_offsite(config.load(tmp_path, "prod").model_copy(update={"inventory": inventory}), dry_run=True)
    assert str(error.value).endswith("backup.offsite: missing; backup.prune-offsite prunes the offsite repository "
                                     "backups are copied to")


def test_prune_offsite_reaches_s3_with_the_admin_key_and_sftp_as_the_operator_with_the_host_key_pinned(
        tmp_path, inventory):
    s3 = {"s3": {"endpoint": "https://s3.example.net", "bucket": "shop-backups", "prefix": "prod",
                 "access_key_secret": "S3_ID", "secret_key_secret": "S3_KEY", "admin_access_key_secret": "S3_ADMIN_ID",
                 "admin_secret_key_secret": "S3_ADMIN_KEY"}, "append_only": True, "password_secret": "RESTIC_PASSWORD"}
    access = offsite_commands.admin_access(with_offsite(tmp_path, s3).inventory, SECRET, "/unused")
    assert (access.where, access.options) == ("s3:https://s3.example.net/shop-backups/prod", ())
    assert access.environment == {"RESTIC_PASSWORD": "correct horse battery",
                                  "RESTIC_REPOSITORY": "s3:https://s3.example.net/shop-backups/prod",
                                  "AWS_ACCESS_KEY_ID": "AKADMIN", "AWS_SECRET_ACCESS_KEY": "s3cr3t-admin"}
    # The server's own key never signs in here; nor does the operator's own AWS setting.
    assert "s3cr3t-admin" not in repr(access)
    assert access.env({"AWS_SESSION_TOKEN": "t", "HOME": "/root"})["HOME"] == "/root"
    assert "AWS_SESSION_TOKEN" not in access.env({"AWS_SESSION_TOKEN": "t"})
    sftp_offsite = with_offsite(tmp_path, {**SFTP, "append_only": True}).inventory
    access = offsite_commands.admin_access(sftp_offsite, SECRET, "/tmp/x/known_hosts")
    assert access.where == "sftp:restic@backup.example.net:/srv/restic/shop"
    assert access.options == ("-o", "sftp.command=ssh -p 2222 -o BatchMode=yes -o StrictHostKeyChecking=yes "
                              "-o UserKnownHostsFile=/tmp/x/known_hosts -o GlobalKnownHostsFile=/dev/null "
                              "-o ConnectTimeout=10 restic@backup.example.net -s sftp")
    (tmp_path / "operator_key").write_text("key")
    own = with_offsite(tmp_path, {**SFTP, "sftp": {**SFTP["sftp"], "admin_user": "keeper",
                                                   "admin_key_file": "operator_key"}}).inventory
    command = offsite_commands.admin_access(own, SECRET, "/tmp/x/known_hosts").options[1]
    assert f"-i {tmp_path}/operator_key -o IdentitiesOnly=yes" in command and " keeper@backup.example.net " in command
    assert offsite_commands.admin_secrets(own) == [("backup.offsite.password_secret", "RESTIC_PASSWORD")]


def test_forget_output_of_restic_reads_as_what_was_removed_and_kept():
    removed, kept = offsite_commands.parse_forget('Applying Policy: keep 1 latest snapshots\n' + json.dumps([
        {"host": "slipway-shop", "keep": [restic_snapshot("c", "20261122-030000", "2026-11-22T03:00:11Z")],
         "remove": [restic_snapshot("b", "20261121-030000", "2026-11-21T03:00:11Z"),
                    {"id": "d" * 64, "time": "2026-11-19T03:00:11Z", "tags": ["slipway"]}]},
        {"host": "slipway-shop", "keep": [], "remove": None}]) + "\n")
    assert [(s.short_id, s.backup_id, s.time) for s in removed] == [
        ("dddddddd", "?", "2026-11-19T03:00:11"), ("bbbbbbbb", "20261121-030000", "2026-11-21T03:00:11")]
    assert [s.backup_id for s in kept] == ["20261122-030000"]
    assert offsite_commands.parse_forget("") == ([], [])
