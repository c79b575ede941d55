"""Facts: one shell round trip built and parsed without a host."""

import subprocess

from fabfile.commands import runbook


def test_facts_command_is_one_line_of_key_value_probes_that_runs_in_sh():
    command = runbook.facts_command()
    assert "\n" not in command
    completed = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    facts = runbook.parse_facts(completed.stdout)
    assert facts["kernel"].startswith("Linux ")
    assert int(facts["cpus"]) >= 1


def test_parse_facts_keeps_known_keys_and_values_with_equals_signs():
    facts = runbook.parse_facts("os=Debian GNU/Linux 13 (trixie)\nkernel=Linux 6.1\nnoise\nbogus=1\nhostname=a=b\n")
    assert facts["os"] == "Debian GNU/Linux 13 (trixie)"
    assert facts["hostname"] == "a=b"
    assert facts["docker"] == ""
    assert "bogus" not in facts


def test_format_facts_shows_a_dash_for_missing_values():
    text = runbook.format_facts(runbook.parse_facts("os=Debian\n"))
    assert "OS             Debian" in text.splitlines()
    assert "Docker Engine  -" in text.splitlines()
