"""`fab -H NAME -- CMD`: Fabric's idiom for a command on the host, run over slipway's verified connection.

For a bare `-- CMD` Fabric loads no task collection and runs CMD through a
plain Connection to NAME, which knows neither the inventory nor its pinned
host key. `slipway-fab.pth` (installed beside slipway) hands such a `fab`
process this executor, which runs CMD as the deploy user instead.
"""

from __future__ import annotations

import sys

import fabric.main
from fabric import Executor
from invoke import Call, Collection
from invoke.exceptions import CollectionNotFound, Exit
from invoke.loader import FilesystemLoader

from ..tasking import app_session, operator_task


@operator_task
def run_command(c, command):
    """Run COMMAND (a shell command line) on the host as the deploy user; its output and exit status."""
    with app_session(c, out=sys.stderr) as (deployment, _, remote):
        exited = remote.stream(["sh", "-c", command], sys.stdout.buffer, sys.stderr.buffer)
    if exited != 0:
        raise Exit(code=130 if exited is None else exited)


class AdhocExecutor(Executor):
    """Fabric's executor, except that a bare `-- CMD` runs through `run_command` with the project's tasks and config."""

    def expand_calls(self, calls, apply_hosts=True):
        if calls or not self.core.remainder:
            return super().expand_calls(calls, apply_hosts)
        core = self.core[0].args
        if not core.hosts.value:
            raise Exit("error: fab -- CMD: name the inventory to run it on: fab -H NAME -- CMD", code=1)
        # What `fab TASK` would have loaded: the project's folder (inventories/, invoke.yaml) and its tasks' config.
        loader = FilesystemLoader(config=self.config, start=core["search-root"].value)
        try:
            module, parent = loader.load(core.collection.value)
        except CollectionNotFound as missing:
            raise Exit(f"error: fab -- CMD: no {missing.name} found here or above; run it from your slipway project",
                       code=1) from None
        self.config.set_project_location(parent)
        self.config.load_project()
        self.collection = Collection.from_module(module, loaded_from=parent)
        call = Call(run_command, args=(self.core.remainder,))
        return [self.parameterize(call, host) for host in self.normalize_hosts(core.hosts.value.split(","))]


def hook_into_fab() -> None:
    """Called by slipway-fab.pth when a `fab` process has a `--` remainder, before Fabric's program runs."""
    fabric.main.program.executor_class = AdhocExecutor
