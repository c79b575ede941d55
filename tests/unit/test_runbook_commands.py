"""Facts: one shell round trip built and parsed without a host."""

import subprocess

from fabfile.commands import runbook
from fabfile.commands.facts import MARK


def facts_output(**values) -> str:
    return "".join(f"{MARK} {key}\n{value}\n" for key, value in values.items())


def test_facts_command_runs_in_sh():
    command = runbook.facts_command()
    completed = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    facts = runbook.parse_facts(completed.stdout)
    assert facts["kernel"].startswith("Linux ")
    assert int(facts["cpus"]) >= 1
    assert facts["os_id"] and facts["os_id"] in facts["os"].lower()


def test_parse_facts_keeps_known_keys_and_values_with_equals_signs():
    facts = runbook.parse_facts("noise\n" + facts_output(os="Debian GNU/Linux 13 (trixie)", kernel="Linux 6.1",
                                                         bogus="1", hostname="a=b"))
    assert facts["os"] == "Debian GNU/Linux 13 (trixie)"
    assert facts["hostname"] == "a=b"
    assert facts["docker"] == ""
    assert "bogus" not in facts


def test_format_facts_shows_a_dash_for_missing_values():
    text = runbook.format_facts(runbook.parse_facts(facts_output(os="Debian")))
    assert "OS             Debian" in text.splitlines()
    assert "Docker Engine  -" in text.splitlines()
