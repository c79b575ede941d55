"""The README's promises that need no server."""

import re
from pathlib import Path

from fabfile import ns
from tasks import ns as inv_ns

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_task_table_lists_every_task_once_and_only_real_ones():
    table = README.split("## Tasks so far")[1].split("\n## ")[0]
    # `fab -H NAME -- CMD` is Fabric's own idiom, not a task.
    rows = [row.split(" | ")[0] for row in table.splitlines() if row.startswith("| `") and not row.startswith("| `fab -H NAME -- ")]
    assert "| `fab -H NAME -- CMD` |" in table

    def named(prefix):
        return [name for row in rows if row.startswith(f"| `{prefix}")
                for name in dict.fromkeys(re.findall(r"`(?:fab -H NAME |inv )?([a-z][a-z.-]*)[ `]", row))]

    # `backup` is how the README names backup's default task.
    tasks = {"backup" if name == "backup.take" else name for name in ns.task_names}
    assert sorted(named("fab -H NAME ")) == sorted(tasks)
    # The rows written `inv ...` are the checkout's own tasks (the lab's): tasks.py has them, `fab` does not.
    assert sorted(named("inv ")) == sorted(set(inv_ns.task_names) - set(ns.task_names))
    assert len(rows) == len([row for row in rows if row.startswith(("| `fab -H NAME ", "| `inv "))])


RUNBOOK = (Path(__file__).resolve().parents[2] / "RUNBOOK.md").read_text()


def test_every_command_the_runbook_names_is_a_real_task_with_real_flags():
    commands = re.findall(r"`(fab -H prod [^`]+)`", RUNBOOK) + re.findall(r"^(fab -H prod .+)$", RUNBOOK, re.M)
    assert len(commands) > 30
    for command in commands:
        words = command.split()[3:]
        if words[0] == "--":  # Fabric's idiom for a command on the host
            continue
        name = {"backup": "backup.take"}.get(words[0], words[0])
        assert name in ns.task_names, command
        task = ns[name]
        flags = {f"--{arg.name.replace('_', '-')}" for arg in task.get_arguments()}
        if task.positional:  # Invoke cannot leave a positional argument out
            assert len(words) > 1 and not words[1].startswith("--"), f"{command}: {name} needs {task.positional}"
        for word in words[1:]:
            if word.startswith("--"):
                assert word in flags, f"{command}: {word} is not an option of {name} ({', '.join(sorted(flags))})"
