"""Several commands in one round trip: scripts/sequence.sh, run here with sh, and the deploy lock's first audit line."""

import json
import subprocess
from types import SimpleNamespace

import pytest

from fabfile.commands import lock, shell
from fabfile.commands.layout import Layout
from fabfile.commands.sequence import Part, read_outcome, sequence_command
from fabfile.errors import SlipwayError
from fabfile.flows.installed import check_part, require_checked


def run_here(parts: list[Part]):
    argv, stdin = sequence_command(parts)
    result = subprocess.run(argv, input=stdin, capture_output=True)
    return read_outcome(result.stdout.decode(), result.stderr.decode(), result.returncode, len(parts)), result


def test_each_command_reads_only_its_own_stdin_and_prints_under_its_own_number():
    parts = [Part(["cat"], b"first's input\n"), Part(["echo", "no input: $x 'quoted'"]),
             Part(["sh", "-c", 'wc -c; cat >/dev/null'], b"x" * 70000), Part(["cat"], b"last")]
    outcome, result = run_here(parts)
    assert result.returncode == 0 and outcome.failed is None
    assert outcome.outputs == ["first's input\n", "no input: $x 'quoted'\n", "70000\n", "last"]


def test_the_first_command_that_fails_ends_the_sequence_with_its_status():
    parts = [Part(["echo", "one"]), Part(["sh", "-c", "echo partial; echo why >&2; exit 7"]), Part(["touch", "never"])]
    outcome, result = run_here(parts)
    assert (result.returncode, outcome.failed, outcome.exited) == (7, 1, 7)
    assert outcome.outputs == ["one\n", "partial\n"] and outcome.stderr == "why\n"
    assert outcome.succeeded(0) and not outcome.succeeded(1) and outcome.output(2) == ""


def test_a_sequence_is_shown_as_its_commands_joined():
    argv, _ = sequence_command([Part(shell.script("recover", "/srv/a b")), Part(["docker", "ps"], b"in")])
    assert shell.shown(argv) == "slipway-recover '/srv/a b' && docker ps"


def test_the_lock_writes_the_runs_first_audit_line_once_held_and_not_when_busy(tmp_path):
    layout = Layout("demo", str(tmp_path))
    event = json.dumps({"event": "deploy started", "release": "r1"})
    held = subprocess.Popen(["sh", "-c", f"sleep 2 | {shell.line(lock.lock_command(layout, {'by': 'a'}, event))}"],
                            stdout=subprocess.PIPE, text=True)
    assert held.stdout.readline().strip() == "LOCKED"
    busy = subprocess.run(lock.lock_command(layout, {"by": "b"}, '{"event": "no"}'),
                          input="", capture_output=True, text=True)
    held.wait()
    assert busy.returncode == lock.LOCK_BUSY_EXIT
    assert [json.loads(line) for line in open(layout.audit_log)] == [json.loads(event)]


def test_an_installed_check_stops_a_sequence_and_names_each_file_that_differs_or_is_missing(tmp_path):
    (tmp_path / "same.sh").write_text("echo same\n")
    (tmp_path / "changed file.conf").write_text("A=1\n")
    wanted = {str(tmp_path / "same.sh"): "echo same\n", str(tmp_path / "changed file.conf"): "A=2\n",
              str(tmp_path / "missing.sh"): "x"}
    outcome, _ = run_here([check_part(wanted), Part(["touch", str(tmp_path / "never")])])
    assert outcome.failed == 0 and not (tmp_path / "never").exists()
    with pytest.raises(SlipwayError) as refused:
        require_checked(SimpleNamespace(name="prod"), outcome, 0)
    assert str(refused.value) == (f"prod: {tmp_path}/changed file.conf, {tmp_path}/missing.sh on the server differ "
                                  "from what this slipway and inventory make (or are missing); run `fab -H prod "
                                  "provision` first")
    del wanted[str(tmp_path / "changed file.conf")], wanted[str(tmp_path / "missing.sh")]
    outcome, _ = run_here([check_part(wanted), Part(["touch", str(tmp_path / "now")])])
    assert outcome.failed is None and (tmp_path / "now").exists()
