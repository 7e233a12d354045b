"""``bdfl new-task NAME``: a working task module and its test, from the templates in
``bdfl/learning/templates`` (a Flower ``NumPyClient`` in PyTorch on the digits data set,
plus the BDFL adapter; docs/tasks.md)."""

from __future__ import annotations

import importlib.util
import keyword
import sys
from importlib import resources
from pathlib import Path

from bdfl.errors import BDFLError

__all__ = ["write_task"]


def _template(name: str) -> str:
    return resources.files("bdfl.learning").joinpath("templates", name).read_text()


def _installed_module(name: str, folder: Path) -> str | None:
    """Where the importable top-level module ``name`` lives, unless it is the task's own file in
    ``folder`` (a rewrite with --force); None when nothing of that name is importable."""
    if name in sys.builtin_module_names or name in sys.stdlib_module_names:
        return "the standard library"
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    origin = Path(spec.origin) if spec.origin and spec.origin not in ("built-in", "frozen") else None
    if origin is not None and origin.resolve() == (folder / f"{name}.py").resolve():
        return None
    return str(origin or spec.name)


def write_task(name: str, folder: str | Path = ".", *, force: bool = False) -> tuple[Path, Path]:
    """Write ``<folder>/<name>.py`` and ``<folder>/test_<name>.py``; returns both paths."""
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("test_"):
        raise BDFLError(f"task name {name!r} is not usable as a Python module name",
                        fix="use letters, digits and underscores, not starting with a digit or 'test_' (e.g. my_task)")
    folder = Path(folder)
    shadowed = _installed_module(name, folder)
    if shadowed:
        # a task file named like an installed module hides it from every test run in its folder
        # (pytest puts the folder first on sys.path: `import torch` in torch.py imports itself)
        raise BDFLError(f"task name {name!r} is the name of an installed module ({shadowed}): a task file of that name "
                        "would hide it from the task's own imports and from every test in its folder",
                        fix=f"choose another name (e.g. my_{name})")
    folder.mkdir(parents=True, exist_ok=True)
    task_path, test_path = folder / f"{name}.py", folder / f"test_{name}.py"
    existing = [str(p) for p in (task_path, test_path) if p.exists()]
    if existing and not force:
        raise BDFLError(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}",
                        fix="choose another name or pass --force to overwrite")
    task_path.write_text(_template("task.py.tmpl").format(name=name))
    test_path.write_text(_template("test_task.py.tmpl").format(name=name))
    return task_path, test_path
