"""The lab is this checkout's own tooling: `inv` here has its tasks; `fab`, and slipway's package, do not."""

import subprocess
import sys
from pathlib import Path

import fabfile
import tasks
from lab import paths as lab

CHECKOUT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LAB_TASKS = ["lab.down", "lab.status", "lab.trust-offsite-key", "lab.up"]


def test_fabs_collection_has_no_lab_and_the_checkouts_inv_collection_adds_it_to_every_slipway_task():
    assert "lab" not in fabfile.ns.collections and not [name for name in fabfile.ns.task_names if name.startswith("lab")]
    assert "lab" not in fabfile.ns.configuration()["slipway"]
    assert sorted(name for name in tasks.ns.task_names if name.startswith("lab.")) == LAB_TASKS
    assert set(fabfile.ns.task_names) < set(tasks.ns.task_names)
    # The same task objects: tasks.py hands `inv` slipway's tasks as `fab` has them.
    assert all(tasks.ns[name] is fabfile.ns[name] for name in fabfile.ns.task_names)


def test_a_lab_task_run_by_inv_gets_the_lab_settings_beside_slipways_own():
    # What Invoke's executor loads for the task it runs.
    for task in LAB_TASKS:
        settings = tasks.ns.configuration(task)["slipway"]
        assert settings["lab"] == {"prefix": "slipway-lab", "suite": "trixie", "mirror": "", "state_dir": ".lab"}
        assert settings["inventory_dir"] == "inventories" and "project_dir" in settings


def test_fab_in_the_checkout_lists_no_lab_task_and_inv_lists_them_all():
    listed = {}
    for program in ("fab", "inv"):
        result = subprocess.run([str(BIN / program), "--list"], cwd=CHECKOUT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        # A task's line starts with two spaces; its help's continuation lines with more.
        listed[program] = [line.split()[0] for line in result.stdout.splitlines()
                           if line.startswith("  ") and not line.startswith("   ")]
    assert "deploy" in listed["fab"] and not [name for name in listed["fab"] if name.startswith("lab")]
    assert [name for name in listed["inv"] if name.startswith("lab.")] == LAB_TASKS
    assert set(listed["fab"]) < set(listed["inv"])


def test_the_lab_renders_its_own_templates_strictly():
    secrets = lab.render_template("secrets.env.j2", password=lambda length: "p" * length)
    assert f"DATABASE_PASSWORD={'p' * 24}\n" in secrets
    assert (lab.TEMPLATES / "target" / "Dockerfile").is_file()
    assert lab.TEMPLATES == CHECKOUT / "lab" / "templates"
