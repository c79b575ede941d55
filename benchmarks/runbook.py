"""How fast the on-call commands answer, as whole commands (Python start-up included).

    .venv/bin/python benchmarks/runbook.py [--runs 7]

Needs a provisioned lab target with the app deployed. Prints, per command,
the median and the fastest of RUNS runs of `fab -H lab status` and
`fab -H lab logs all --tail 100`, next to what every `fab` command pays
before it does anything (`fab --version`: Python, Invoke, Fabric, paramiko)
and slipway's own import (the task list alone, then with the inventory's
model), each also as a multiple of `fab --version` (the
machine's speed varies from run to run; the ratio much less).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMMANDS = {
    "fab --version (start-up only)": [str(BIN / "fab"), "--version"],
    "python -c 'import fabfile'": [sys.executable, "-c", "import fabfile"],
    # What every task that reads an inventory pays: pydantic building the inventory's model.
    "python -c 'from fabfile.config import load'": [sys.executable, "-c", "from fabfile.config import load"],
    "fab -H lab status": [str(BIN / "fab"), "-H", "lab", "status"],
    "fab -H lab logs all --tail 100": [str(BIN / "fab"), "-H", "lab", "logs", "all", "--tail", "100"],
}


def timed(argv: list[str]) -> float:
    started = time.monotonic()
    result = subprocess.run(argv, cwd=PROJECT, capture_output=True)
    elapsed = time.monotonic() - started
    if result.returncode not in (0, 1):  # status exits 1 when something needs a human; still an answer
        sys.exit(f"{' '.join(argv)} failed:\n{result.stderr.decode(errors='replace')}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    start_up = None
    for name, argv in COMMANDS.items():
        timed(argv)  # warm the page cache
        times = [timed(argv) for _ in range(args.runs)]
        median = statistics.median(times)
        start_up = start_up or median
        print(f"{name:<46} median {median:5.2f} s   fastest {min(times):5.2f} s   {median / start_up:4.1f}x fab --version")


if __name__ == "__main__":
    main()
