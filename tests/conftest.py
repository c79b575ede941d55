"""Every test under tests/lab/ needs the lab target and is marked `lab`.

Lab tests share one target per session, so they run in stage order: the
fresh target first, then provision (which hardens it), then what needs a
provisioned host.

The checkout's own code beside the package (tasks.py, lab/) is importable in
every test.
"""

import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
# What only this checkout has, tasks.py (inv's collection) and lab/, is not installed: import it from here.
if str(CHECKOUT) not in sys.path:
    sys.path.insert(0, str(CHECKOUT))

LAB_TESTS = Path(__file__).parent / "lab"
# test_image_store.py moves the target to Docker's containerd image store; test_disaster_recovery.py and
# test_upgrade.py destroy the target and build a new one: they come last.
LAB_STAGES = ["test_target.py", "test_provision.py", "test_deploy.py", "test_accessories.py", "test_tls.py",
              "test_backup.py", "test_runbook.py", "test_image_store.py", "test_disaster_recovery.py", "test_upgrade.py", "test_restarts.py"]


def pytest_addoption(parser):
    parser.addoption("--lab-reuse", action="store_true",
                     help="reuse the running lab target instead of a fresh one (quicker reruns while developing)")


def pytest_collection_modifyitems(items):
    for item in items:
        if LAB_TESTS in Path(item.fspath).parents:
            item.add_marker(pytest.mark.lab)

    def stage(item):
        name = Path(item.fspath).name
        return LAB_STAGES.index(name) if name in LAB_STAGES else len(LAB_STAGES)

    items.sort(key=stage)
