"""A non-editable install carries the templates and scripts, and a user's project folder overrides them."""

import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

PROJECT_TASKS = '''
from invoke import task
from fabfile import ns, render
from fabfile.cli.common import project_dir


@task
def where(c):
    folder = project_dir(c)
    print(folder)
    print(render.template_path(folder, "server/daemon.json.j2"))
    print(render.render(folder, "app/service.env.j2", service="api", variables={}))


ns.add_task(where)
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run([str(BIN / "pip"), "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--target", str(target), str(CHECKOUT)], check=True, capture_output=True)
    return target


def test_a_plain_install_holds_every_template_and_script(installed):
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


def test_setup_compiled_slipways_modules_so_fab_never_compiles_them_at_start():
    """With PYTHONDONTWRITEBYTECODE set, Python would compile an editable install's modules on every run."""
    import importlib.util
    stale = [str(source.relative_to(CHECKOUT)) for source in (CHECKOUT / "fabfile").rglob("*.py")
             if not Path(importlib.util.cache_from_source(str(source))).exists()
             or Path(importlib.util.cache_from_source(str(source))).stat().st_mtime < source.stat().st_mtime]
    assert stale == [], "run ./scripts/setup"
