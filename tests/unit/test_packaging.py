"""A non-editable install carries the modules, templates and scripts and nothing of the lab, a user's project
folder overrides them, and setup compiles the modules; none of it hangs on what builds and runs left here."""

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

PROJECT_TASKS = '''
from invoke import task
from fabfile import ns, render
from fabfile.tasking import project_dir


@task
def where(c):
    folder = project_dir(c)
    print(folder)
    print(render.template_path(folder, "server/daemon.json.j2"))
    print(render.render(folder, "app/service.env.j2", service="api", variables={}))


ns.add_task(where)
'''


def not_source(folder, names):
    """What builds and runs leave in a checkout, and the operator's data: compiled modules anywhere; at the
    top, build/ and *.egg-info (pip builds in the source folder and would ship what an earlier build left in
    build/), the venv and the other dot folders, inventories and their secrets, downloaded backups."""
    left = {name for name in names if name == "__pycache__"}
    if Path(folder) == CHECKOUT:
        left |= {name for name in names if name.startswith(".") or name.endswith(".egg-info")
                 or name in ("build", "dist", "inventories", "backups")}
    return left


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    source = tmp_path_factory.mktemp("source") / "slipway"
    shutil.copytree(CHECKOUT, source, ignore=not_source)
    target = tmp_path_factory.mktemp("site")
    subprocess.run([str(BIN / "pip"), "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--target", str(target), str(source)], check=True, capture_output=True)
    return target


def test_a_plain_install_holds_every_module_template_and_script_and_nothing_of_the_lab(installed):
    assert sorted(p.name for p in installed.iterdir() if not p.name.endswith(".dist-info")) == ["fabfile", "slipway-fab.pth"]
    modules = {p.relative_to(installed) for p in (installed / "fabfile").rglob("*.py")}
    assert modules == {p.relative_to(CHECKOUT) for p in (CHECKOUT / "fabfile").rglob("*.py")}
    # The lab (lab/ beside tasks.py: its tasks, command builders and templates) is the checkout's own.
    assert [str(p.relative_to(installed)) for p in installed.rglob("*") if p.stem == "lab"] == []
    packaged = {p.relative_to(installed / "fabfile" / "templates") for p in (installed / "fabfile" / "templates").rglob("*") if p.is_file()}
    shipped = {p.relative_to(CHECKOUT / "templates") for p in (CHECKOUT / "templates").rglob("*") if p.is_file()}
    assert packaged == shipped
    scripts = {p.name for p in (installed / "fabfile" / "scripts").glob("*.sh")}
    assert scripts == {p.name for p in (CHECKOUT / "fabfile" / "scripts").glob("*.sh")}
    # Beside the packages, so that site-packages runs it: `fab -H NAME -- CMD` then goes through slipway.
    assert (installed / "slipway-fab.pth").read_text() == (CHECKOUT / "slipway-fab.pth").read_text()


def test_the_project_is_where_inv_found_tasks_and_its_templates_win(installed, tmp_path):
    project = tmp_path / "shop"
    (project / "templates" / "app").mkdir(parents=True)
    (project / "templates" / "app" / "service.env.j2").write_text("# shop's own env file for {{ service }}\n")
    (project / "tasks.py").write_text(PROJECT_TASKS)
    (project / "deep" / "down").mkdir(parents=True)
    result = subprocess.run([str(BIN / "inv"), "where"], cwd=project / "deep" / "down", capture_output=True, text=True,
                            env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    folder, builtin, rendered = result.stdout.split("\n", 2)
    assert folder == str(project)
    assert builtin == str(installed / "fabfile" / "templates" / "server" / "daemon.json.j2")
    assert rendered.strip() == "# shop's own env file for api"


def stale_modules(folder: Path) -> list[str]:
    """FOLDER's fabfile modules without an up-to-date compiled copy."""
    def cache(source):
        return Path(importlib.util.cache_from_source(str(source)))
    return [str(source.relative_to(folder)) for source in (folder / "fabfile").rglob("*.py")
            if not cache(source).exists() or cache(source).stat().st_mtime < source.stat().st_mtime]


def test_setup_compiles_slipways_modules_so_fab_never_compiles_them_at_start(tmp_path):
    """With PYTHONDONTWRITEBYTECODE set, Python would compile an editable install's modules on every run.

    setup's own compile step runs on a copy of the modules without their compiled files, so the test holds
    whether or not this checkout's were compiled (and it leaves them as they are)."""
    compile_step = re.search(r"^\.venv/bin/python (-m compileall .*\bfabfile\b.*)$", (CHECKOUT / "scripts" / "setup").read_text(), re.M)
    assert compile_step, "scripts/setup compiles fabfile with the venv's python"
    for folder in ("fabfile", "templates"):
        shutil.copytree(CHECKOUT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    assert stale_modules(tmp_path) != []
    subprocess.run(f"{shlex.quote(sys.executable)} {compile_step.group(1)}", shell=True, cwd=tmp_path, check=True)
    assert stale_modules(tmp_path) == []
    # `fab` starts by importing fabfile: Python's -v names every module it compiles instead of reading its cache.
    started = subprocess.run([sys.executable, "-v", "-c", "import fabfile"], cwd=tmp_path, capture_output=True, text=True,
                             env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert started.returncode == 0, started.stderr
    ours = str(tmp_path / "fabfile") + os.sep
    assert [path for path in re.findall(r"^# code object from (\S+\.py)$", started.stderr, re.M) if path.startswith(ours)] == []
    assert [path for path in re.findall(r"^# \S+\.pyc matches (\S+\.py)$", started.stderr, re.M) if path.startswith(ours)]


def test_fab_lists_its_tasks_without_loading_what_the_tasks_run():
    """`fab` imports every task module to build its task list; the inventory's model, Jinja2 and each
    capability's flows and commands load only when a task that needs them runs."""
    listed = subprocess.run([str(BIN / "fab"), "--list"], cwd=CHECKOUT, capture_output=True, text=True, check=True)
    assert {"deploy", "status", "backup.restore", "accessory.upgrade", "maintenance.on"} <= set(listed.stdout.split())
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, fabfile\n"
         "print(*(name for name, module in sys.modules.items() if type(module).__name__ == 'module'))"],
        cwd=CHECKOUT, capture_output=True, text=True, check=True).stdout.split()
    assert [name for name in loaded if name.split(".")[0] in ("pydantic", "jinja2", "dotenv")
            or name.startswith(("fabfile.config", "fabfile.flows.", "fabfile.render"))] == []
    assert [name for name in loaded if name.startswith("fabfile.commands.")] == ["fabfile.commands.shell"]


def test_backup_downloads_help_names_the_folder_it_downloads_to():
    from fabfile.cli import backup as backup_tasks
    from fabfile.commands import backup as backup_commands

    assert f"{backup_commands.DOWNLOADS_DIR}/NAME" in backup_tasks.download.help["to"]
