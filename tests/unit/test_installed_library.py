"""The installed scripts' shared library (fabfile/scripts/lib_installed.sh), run with sh as the server runs
it, and how it gets there: installed beside the scripts, before them, and checked like them."""

import json
import re
import shlex
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from backup_sandbox import SECRET, shop_inventory
from fabfile.commands import backup, provision, provision_plan, shell, tls

PROJECT = Path(__file__).resolve().parents[2]
LIBRARY = shell.SCRIPTS_DIR / backup.LIBRARY
INSTALLED_LIBRARY = f"{backup.INSTALL_DIR}/{backup.LIBRARY}"
FUNCTIONS = ("setting", "now_iso", "write_record", "update_record", "merge_into_record", "accessory", "accessories",
             "with_words", "copy_dump")
ISO_SECONDS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def with_library(tmp_path, body, env=None):
    """BODY run by sh after the library, as an installed script runs (set -eu, $conf set first)."""
    script = f"set -eu\nconf=$1\n. {shlex.quote(str(LIBRARY))}\n{body}\n"
    return subprocess.run(["sh", "-c", script, "test", str(tmp_path / "settings.conf")], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=30)


def test_the_library_holds_functions_only():
    text = LIBRARY.read_text()
    assert text.startswith("#!/bin/sh\n") and "\nset " not in text
    defined = re.findall(r"^([a-z_]+)\(\) \{", text, re.M)
    assert tuple(defined) == FUNCTIONS
    # Nothing runs when it is sourced: every line outside a function is a comment or blank.
    outside, depth = [], 0
    for line in text.splitlines():
        if re.match(r"^[a-z_]+\(\) \{.*\}$", line):
            continue
        if re.match(r"^[a-z_]+\(\) \{$", line):
            depth += 1
        elif line == "}":
            depth -= 1
        elif depth == 0 and line.strip() and not line.startswith("#"):
            outside.append(line)
    assert outside == []


def test_an_accessorys_words_reach_the_command_each_one_word_as_written(tmp_path):
    words = ["sh", "-c", "echo \"$X\" * $(touch pwned)\n", "two words", "", "'quoted'", "ends with newlines\n\n"]
    entries = [{"name": "cache", "backup": words}, {"name": "queue", "backup": ["other"]}]
    (tmp_path / "settings.conf").write_text(f"ACCESSORIES={json.dumps(entries)}\n")
    result = with_library(tmp_path, "accessories; with_words cache .backup python3 -c "
                                    "'import json, sys; print(json.dumps(sys.argv[1:]))'")
    assert result.returncode == 0, result.stderr
    *names, argv = result.stdout.splitlines()
    assert names == ["cache", "queue"]
    assert json.loads(argv) == words
    assert not (tmp_path / "pwned").exists()


def test_a_setting_is_the_last_line_for_its_key_verbatim_and_nothing_when_there_is_none(tmp_path):
    (tmp_path / "settings.conf").write_text(
        "# KEY=commented out\nKEY=first\nOTHER_KEY=other\nKEYS=plural\n"
        "KEY=last, with = and $(touch pwned) 'quotes' \"too\"\n KEY=indented is not a setting\nEMPTY=\n")
    result = with_library(tmp_path, "for key in KEY OTHER_KEY KEYS EMPTY MISSING; do "
                                    "printf '%s=[%s]\\n' \"$key\" \"$(setting \"$key\")\"; done")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "KEY=[last, with = and $(touch pwned) 'quotes' \"too\"]", "OTHER_KEY=[other]", "KEYS=[plural]",
        "EMPTY=[]", "MISSING=[]"]
    assert not (tmp_path / "pwned").exists()


def test_a_missing_settings_file_reads_as_empty_settings_and_sed_says_why(tmp_path):
    result = with_library(tmp_path, 'value=$(setting KEY)\necho "went on with [$value]"')
    # The pipeline's status is tail's: the script goes on with an empty value, as every copy before did.
    assert result.returncode == 0 and result.stdout == "went on with []\n"
    assert "settings.conf" in result.stderr


def test_now_is_utc_to_the_second_whatever_the_servers_zone(tmp_path):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    result = with_library(tmp_path, "now_iso", env={"PATH": "/usr/bin:/bin", "TZ": "Pacific/Kiritimati"})
    after = datetime.now(timezone.utc)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(ISO_SECONDS + "\n", result.stdout), result.stdout
    assert before <= datetime.strptime(result.stdout.strip(), "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc) <= after


def test_a_record_is_written_new_then_updated_through_a_rename_and_kept_when_jq_fails(tmp_path):
    record = tmp_path / "20261123-030000.json"
    result = with_library(tmp_path, f"""umask 077
write_record {shlex.quote(str(record))} -n --arg id '20261123-030000' '{{id: $id, outcome: "running"}}'
cp {shlex.quote(str(record))} new.json
update_record {shlex.quote(str(record))} --arg error "it's \\"broken\\" $(echo here)" \\
  '.outcome = "failed" | .error = $error'
cp {shlex.quote(str(record))} updated.json
update_record {shlex.quote(str(record))} '.[' 2>jq.err || echo "update failed: $?"
update_record {shlex.quote(str(tmp_path / "missing.json"))} '.x = 1' 2>>jq.err || echo "missing failed: $?"
""")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "new.json").read_text() == '{"id":"20261123-030000","outcome":"running"}\n'
    updated = '{"id":"20261123-030000","outcome":"failed","error":"it\'s \\"broken\\" here"}\n'
    assert (tmp_path / "updated.json").read_text() == updated
    # A filter jq refuses (or no record to update): the status says so and the record is as it was.
    assert re.fullmatch(r"update failed: [1-9]\d*\nmissing failed: [1-9]\d*\n", result.stdout), result.stdout
    assert record.read_text() == updated and not (tmp_path / "missing.json").exists()
    # The backup script's umask holds for its records.
    assert record.stat().st_mode & 0o777 == 0o600


def test_a_failed_record_update_stops_a_strict_script(tmp_path):
    (tmp_path / "r.json").write_text("{}\n")
    result = with_library(tmp_path, "update_record r.json '.[' 2>/dev/null\necho 'went on'")
    assert result.returncode != 0 and "went on" not in result.stdout


def test_a_merged_record_starts_from_nothing_keeps_what_it_had_and_is_readable_by_all(tmp_path):
    record = tmp_path / "tls.json"
    merge = (f"merge_into_record {shlex.quote(str(record))} --arg result \"$1\" "
             "'.checked = {at: $at, result: $result}'")
    script = f"umask 077\nrun() {{ {merge}; }}\nrun first\ncp {shlex.quote(str(record))} first.json\nrun second"
    result = with_library(tmp_path, script)
    assert result.returncode == 0, result.stderr
    first = json.loads((tmp_path / "first.json").read_text())
    assert set(first) == {"checked"} and first["checked"]["result"] == "first"
    assert re.fullmatch(ISO_SECONDS, first["checked"]["at"])
    record.write_text(json.dumps({"renewed": {"serial": "0A"}, "checked": {"result": "old"}}) + "\n")
    record.chmod(0o600)
    result = with_library(tmp_path, f"umask 077\n{merge.replace(chr(36) + '1', 'again')}")
    assert result.returncode == 0, result.stderr
    merged = json.loads(record.read_text())
    assert merged["renewed"] == {"serial": "0A"} and merged["checked"]["result"] == "again"
    assert record.read_text().count("\n") == 1
    assert record.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("tls.json")) == ["tls.json"]


def test_a_record_that_is_not_json_is_left_alone_and_the_script_stops(tmp_path):
    record = tmp_path / "tls.json"
    record.write_text("not json\n")
    result = with_library(tmp_path, f"merge_into_record {shlex.quote(str(record))} '.x = 1'\necho 'went on'")
    assert result.returncode != 0 and "went on" not in result.stdout
    assert record.read_text() == "not json\n"


def code_of(text):
    """A script without its comment lines."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_only_the_library_defines_the_shared_functions_and_every_script_that_calls_them_sources_it():
    installed = set(backup.INSTALLED_SCRIPTS) | set(tls.INSTALLED_SCRIPTS)
    calls = re.compile(r"(^|[\s($;|&{])(" + "|".join(FUNCTIONS) + r")(\s|\)|$)", re.M)
    users = set()
    for path in sorted(shell.SCRIPTS_DIR.glob("*.sh")):
        if path == LIBRARY:
            continue
        text = path.read_text()
        assert not re.search(r"^\s*(" + "|".join(FUNCTIONS) + r")\(\)", text, re.M), path.name
        assert "date -u +%Y-%m-%dT%H:%M:%SZ" not in text, path.name
        sources = re.search(r'^\. "(\$here|\$\(dirname "\$0"\))/lib_installed\.sh"$', text, re.M)
        if calls.search(code_of(text)):
            users.add(path.name)
            assert sources, f"{path.name} calls the library's functions without sourcing it"
        if sources:
            # Only a script installed beside the library may source it: one sent over SSH has nothing beside it.
            assert path.name in installed, path.name
            assert sources.group(1) == '$(dirname "$0")' or 'here=$(dirname "$0")' in text[:sources.start()]
            assert "# shellcheck source=SCRIPTDIR/lib_installed.sh\n" + sources.group(0) in text, path.name
        # Whichever list installs a script installs the library too (a server may have TLS and no database).
        for names in (backup.INSTALLED_SCRIPTS, tls.INSTALLED_SCRIPTS):
            if sources and path.name in names:
                assert names[0] == backup.LIBRARY
    assert {"backup.sh", "offsite.sh", "verify_backup.sh", "metrics.sh", "prune.sh", "restore.sh", "tls_issue.sh",
            "tls_renew.sh", "tls_renewed.sh", "tls_renew_result.sh"} <= users
    assert "tls_state.sh" not in users and "tls_preflight.sh" not in users


@pytest.mark.parametrize("with_database", [True, False], ids=["backups and TLS", "TLS only"])
def test_provision_installs_the_library_once_before_the_scripts_and_the_tasks_check_it(tmp_path, with_database):
    inventory = shop_inventory(tmp_path, with_database)
    assert inventory.tls_enabled and bool(inventory.database) == with_database
    desired = provision.desired_state(inventory, PROJECT, "debian", "13", SECRET)
    library = desired.files[INSTALLED_LIBRARY]
    assert library.content == LIBRARY.read_text()
    assert (library.mode, library.owner, library.group) == (0o755, "root", "root")
    names = [step.name for step in provision_plan.plan(desired, provision.HostState(os_id="debian", os_version="13"))
             if step.needed]
    assert names.count(f"file {INSTALLED_LIBRARY}") == 1
    scripts = [i for i, name in enumerate(names) if re.fullmatch(rf"file {backup.INSTALL_DIR}/\w+\.sh", name)]
    assert scripts[0] == names.index(f"file {INSTALLED_LIBRARY}") and len(scripts) > 1
    # The probe reads it once.
    files, _ = provision.managed_paths(inventory)
    assert files.count(INSTALLED_LIBRARY) == 1 and len(files) == len(set(files))
    # What the TLS tasks (and the backup tasks, with a database) compare with the server before they run: a server
    # provisioned before the library existed has none, so they ask for provision.
    assert tls.installed_texts(inventory)[INSTALLED_LIBRARY] == LIBRARY.read_text()
    assert backup.script_texts()[INSTALLED_LIBRARY] == LIBRARY.read_text()


def test_an_installed_script_finds_the_library_beside_itself_wherever_it_is_run_from(tmp_path):
    """tls_renew_result.sh as certbot.service's ExecStopPost runs it: sh, its full path, from another folder."""
    state = tmp_path / "state"
    state.mkdir()
    conf = tmp_path / "tls.conf"
    conf.write_text(f"RECORD={tmp_path}/old.json\nRECORD={state}/tls.json\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run(["sh", str(shell.SCRIPTS_DIR / "tls_renew_result.sh"), str(conf)], cwd=elsewhere,
                         capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin", "SERVICE_RESULT": "exit-code", "EXIT_STATUS": "1"})
    assert run.returncode == 0, run.stderr
    record = json.loads((state / "tls.json").read_text())
    assert record["checked"] == {"at": record["checked"]["at"], "ok": False, "result": "exit-code",
                                 "exit_status": "1"}
    assert re.fullmatch(ISO_SECONDS, record["checked"]["at"]) and not (tmp_path / "old.json").exists()
