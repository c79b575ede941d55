"""Templates: the project's templates/ first, then slipway's own.

A user overrides any template by putting a file of the same name in the
project's templates/. StrictUndefined makes a missing variable an error
instead of an empty string in a config file on a server.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

from .lazy import lazy_module

# Loaded by the first render: `status` and the other readers of the server render nothing.
jinja2 = lazy_module("jinja2")

_PACKAGE = Path(__file__).resolve().parent
# Installed, the templates are package data beside the code; in a checkout
# (editable install included) they sit at its top.
BUILTIN_TEMPLATES = next(path for path in (_PACKAGE / "templates", _PACKAGE.parent / "templates") if path.is_dir())


def template_dirs(project_dir: Path) -> list[Path]:
    project_templates = (project_dir / "templates").resolve()
    return [project_templates] if project_templates == BUILTIN_TEMPLATES else [project_templates, BUILTIN_TEMPLATES]


def template_path(project_dir: Path, name: str) -> Path:
    """The file or folder NAME resolves to, the project's own copy winning."""
    for directory in template_dirs(project_dir):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"no template {name} in {', '.join(map(str, template_dirs(project_dir)))}")


def render(project_dir: Path, name: str, **context: Any) -> str:
    return _environment(project_dir.resolve()).get_template(name).render(**context)


@functools.cache
def _environment(project_dir: Path) -> jinja2.Environment:
    """One environment per project: it compiles each template once (a deploy renders the env file template
    once per service, nginx's twice), and again once its file is edited or the project gains its own."""

    def load(name: str) -> tuple[str, str, Callable[[], bool]] | None:
        try:
            path = template_path(project_dir, name)
        except FileNotFoundError:
            return None
        read = _version(path)

        def unchanged() -> bool:
            try:
                return template_path(project_dir, name) == path and _version(path) == read
            except FileNotFoundError:
                return False

        return path.read_text(encoding="utf-8"), str(path), unchanged

    return jinja2.Environment(
        loader=jinja2.FunctionLoader(load),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def _version(path: Path) -> tuple[int, int]:
    found = path.stat()
    return found.st_mtime_ns, found.st_size
