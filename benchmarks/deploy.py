"""Where the time of a deploy goes, for images already on the server.

    .venv/bin/python benchmarks/deploy.py [--runs 4]

Needs a provisioned lab target (`inv lab.up && fab -H lab provision`). It
deploys v1 and v2 once each to ship them, then alternates between them and
prints, per run and as a median: the whole command's wall time, the time
spent waiting for health checks, the configured drain, the time the server
spends in Docker (the other remote steps), and slipway's own overhead (all
the rest: Python start-up, config, rendering, SSH, reporting), with the
number of SSH round trips.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
FAB = Path(sys.executable).parent / "fab"
STEP = re.compile(r"^\[lab\] (?P<name>.+?) +(?:ok|changed|failed) +(?P<seconds>\d+\.\d+)s")
HEALTH_STEP = "wait until every new container is healthy"
FINISH_STEP = "drain and stop old containers, start workers"


def deploy(version: str) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run([str(FAB), "-H", "lab", "deploy", "--version", version], cwd=PROJECT,
                            capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"deploy {version} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, result.stdout


def breakdown(elapsed: float, output: str, drain: float) -> dict[str, float]:
    steps = {m["name"]: float(m["seconds"]) for m in map(STEP.match, output.splitlines()) if m}
    health = steps.get(HEALTH_STEP, 0.0)
    remote = sum(seconds for name, seconds in steps.items() if not name.startswith("connect"))
    docker = remote - health - drain
    trips = int(re.search(r"(\d+) SSH round trips", output).group(1))
    return {"total": elapsed, "health wait": health, "drain": drain, "docker on server": docker,
            "slipway overhead": elapsed - remote, "round trips": trips}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    sys.path.insert(0, str(PROJECT))
    from fabfile import config

    drain = float(config.load(PROJECT / "inventories", "lab").inventory.app.drain_seconds)
    for version in ("v1", "v2"):
        deploy(version)  # ships the image once; what follows measures already-shipped deploys
    rows = []
    for run in range(args.runs):
        version = "v1" if run % 2 == 0 else "v2"
        rows.append(breakdown(*deploy(version), drain))
        print(f"run {run + 1} ({version}): " + ", ".join(f"{k} {v:.2f}s" if k != "round trips" else f"{k} {v}"
                                                         for k, v in rows[-1].items()))
    print(f"\nmedian of {args.runs} deploys of an already-shipped image:")
    for key in rows[0]:
        value = statistics.median(row[key] for row in rows)
        print(f"  {key:<18} {value:.0f}" if key == "round trips" else f"  {key:<18} {value:6.2f}s")


if __name__ == "__main__":
    main()
