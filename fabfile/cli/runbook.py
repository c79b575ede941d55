"""Tasks for looking at a host: `fab -H NAME facts`."""

from __future__ import annotations

from ..commands import runbook as commands
from ..remote import Reporter
from .common import load_deployment, operator_task, session


@operator_task
def facts(c):
    """Print the host's OS, kernel, CPUs, memory and Docker version (one SSH round trip)."""
    deployment = load_deployment(c)
    reporter = Reporter(deployment.name)
    with session(c, deployment, reporter) as remote:
        with reporter.step("gather facts"):
            result = remote.run(commands.facts_command())
    print(commands.format_facts(commands.parse_facts(result.stdout)))
