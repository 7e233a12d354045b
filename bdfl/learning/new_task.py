"""``bdfl new-task NAME``: a working task module and its test, from the templates in
``bdfl/learning/templates`` (a Flower ``NumPyClient`` in PyTorch on the digits data set,
plus the BDFL adapter; docs/tasks.md)."""

from __future__ import annotations

import keyword
from importlib import resources
from pathlib import Path

from bdfl.errors import BDFLError

__all__ = ["write_task"]


def _template(name: str) -> str:
    return resources.files("bdfl.learning").joinpath("templates", name).read_text()


def write_task(name: str, folder: str | Path = ".", *, force: bool = False) -> tuple[Path, Path]:
    """Write ``<folder>/<name>.py`` and ``<folder>/test_<name>.py``; returns both paths."""
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("test_"):
        raise BDFLError(f"task name {name!r} is not usable as a Python module name",
                        fix="use letters, digits and underscores, not starting with a digit or 'test_' (e.g. my_task)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    task_path, test_path = folder / f"{name}.py", folder / f"test_{name}.py"
    existing = [str(p) for p in (task_path, test_path) if p.exists()]
    if existing and not force:
        raise BDFLError(f"{' and '.join(existing)} already exist(s)", fix="choose another name or pass --force to overwrite")
    task_path.write_text(_template("task.py.tmpl").format(name=name))
    test_path.write_text(_template("test_task.py.tmpl").format(name=name))
    return task_path, test_path
