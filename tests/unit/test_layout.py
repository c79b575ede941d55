"""The layout the README describes: tasks call flows, flows call commands, and nothing calls back up."""

import ast
from pathlib import Path

import pytest

FABFILE = Path(__file__).resolve().parents[2] / "fabfile"


def imported_modules(path: Path) -> set[str]:
    """The fabfile modules PATH imports, as dotted names under fabfile (relative imports resolved)."""
    package = ["fabfile", *path.relative_to(FABFILE).parent.parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found |= {module} if node.module else {f"{module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("fabfile")}


def modules_in(folder: str) -> list[Path]:
    return sorted(path for path in (FABFILE / folder).glob("*.py") if path.name != "__init__.py")


@pytest.mark.parametrize("task_module", modules_in("cli"), ids=lambda path: path.stem)
def test_no_task_module_imports_another(task_module):
    assert not {name for name in imported_modules(task_module) if name.startswith("fabfile.cli")}


@pytest.mark.parametrize("module", modules_in("flows") + modules_in("commands"), ids=lambda path: path.stem)
def test_flows_and_commands_never_import_the_tasks(module):
    imported = imported_modules(module)
    assert not {name for name in imported if name.startswith(("fabfile.cli", "fabfile.tasking"))}
    if module.parent.name == "commands":
        assert not {name for name in imported if name.startswith(("fabfile.flows", "fabfile.remote"))}


SOURCES = sorted([*FABFILE.rglob("*.py"), *(FABFILE.parent / "lab").rglob("*.py")])
MODULE_LINES, FUNCTION_LINES = 400, 50


@pytest.mark.parametrize("module", SOURCES, ids=lambda path: str(path.relative_to(FABFILE.parent)))
def test_modules_and_functions_stay_small_enough_to_read_whole(module):
    text = module.read_text()
    assert len(text.splitlines()) <= MODULE_LINES
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > FUNCTION_LINES]
    assert not long


def test_every_reader_of_the_server_marks_its_sections_the_one_way_facts_does():
    """facts.MARK is the one section marker: no other module or script spells one of its own."""
    spelled = [path for path in [*FABFILE.rglob("*.py"), *FABFILE.rglob("*.sh")]
               if "@@" in path.read_text() and path != FABFILE / "commands" / "facts.py"]
    assert spelled == []
