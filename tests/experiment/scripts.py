"""A script of ``experiments/`` loaded as a module, for the tests of that script."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@contextmanager
def experiment_script(name: str, module_name: str | None = None) -> Iterator[ModuleType]:
    """``experiments/<name>.py`` executed as module ``module_name`` (default ``name``), listed in
    ``sys.modules`` while in use (its dataclasses look their module up there) and removed after."""
    module_name = module_name or name
    spec = importlib.util.spec_from_file_location(module_name, EXPERIMENTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = mod
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(module_name, None)
