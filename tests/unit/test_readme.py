"""The README's promises that need no server."""

import re
from pathlib import Path

from fabfile import ns

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_task_table_lists_every_task_once_and_only_real_ones():
    table = README.split("## Tasks so far")[1].split("\n## ")[0]
    rows = [row.split(" | ")[0] for row in table.splitlines() if row.startswith("| `")]
    named = [name for row in rows for name in dict.fromkeys(re.findall(r"`(?:fab -H NAME |inv )?([a-z][a-z.-]*)[ `]", row))]
    # `backup` is how the README names backup's default task.
    tasks = {"backup" if name == "backup.take" else name for name in ns.task_names}
    assert sorted(named) == sorted(tasks)
