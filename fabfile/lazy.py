"""Modules a task loads when it runs, not when `fab` builds its task list.

`fab` imports every task module to list the tasks, and every command pays for what they import: the
inventory's model (pydantic), Jinja2, each capability's flows and commands are a fifth of a second that
`fab --list`, or `status`, which needs few of them, would pay for all. A module named here is a module
object at once and runs on its first attribute lookup (importlib's LazyLoader).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str, package: str | None = None) -> ModuleType:
    """The module NAME (relative to PACKAGE, as in an import), loaded at its first use."""
    absolute = importlib.util.resolve_name(name, package)
    if absolute in sys.modules:
        return sys.modules[absolute]
    spec = importlib.util.find_spec(absolute)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[absolute] = module
    spec.loader.exec_module(module)
    parent, _, child = absolute.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module
