"""Importing user code: task modules and plugins.

A **plugin** is a module (a dotted path on ``sys.path``, or a ``.py`` file) that registers
its own attacks, aggregation strategies or audit detectors when imported
(:func:`bdfl.attacks.register`, :func:`bdfl.defense.register`,
:func:`bdfl.defense.detectors.register`; docs/extending.md). A config lists them
(``plugins = [...]``, ``bdfl run --plugin``) and every process of a run imports them before
it reads a name (the parent's preflight, each worker, each Ray actor, ``bdfl peer``), so a
registration is never seen by one process and missed by another. This module sits at the
bottom layer: it imports nothing of BDFL's but its errors.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from bdfl.errors import BDFLError, ConfigError

__all__ = ["PLUGIN_MODULE_PREFIX", "TASK_MODULE_PREFIX", "PluginError", "code_digests", "import_spec", "load_plugins", "module_spec_of", "register_class"]


#: Module-name prefixes of the ``.py`` files imported by path: plugins, and task modules
#: (:mod:`bdfl.learning.task`); a class from such a module came from a file the config lists.
PLUGIN_MODULE_PREFIX = "bdfl_plugin_"
TASK_MODULE_PREFIX = "bdfl_task_"


class PluginError(BDFLError):
    """A plugin module cannot be imported."""


def _file_module_name(path: Path, prefix: str) -> str:
    """The name a ``.py`` file is imported under: unique per resolved path, so two files with one
    stem do not collide and a file named like an installed package does not shadow it."""
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    return f"{prefix}{path.stem}_{digest}"


def _example(what: str) -> str:
    """An importable example of ``what``: a task's module or a plugin's."""
    return "'clients.digits'" if "task" in what else "'experiments.plugins.example_plugin'"


def import_spec(spec: str, *, what: str = "plugin", prefix: str = PLUGIN_MODULE_PREFIX,
                error: type[BDFLError] = PluginError) -> ModuleType:
    """Import ``spec``: a dotted module path, or a path to a ``.py`` file (imported under a name
    unique to its resolved path, once per process). ``what`` names it in messages ("task
    module", "plugin"); failures raise ``error`` with the cause and a fix."""
    if spec.endswith(".py"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise error(f"{what} file {path} does not exist")
        mod_name = _file_module_name(path, prefix)
        if mod_name in sys.modules:
            return sys.modules[mod_name]
        file_spec = importlib.util.spec_from_file_location(mod_name, path)
        if file_spec is None or file_spec.loader is None:
            raise error(f"cannot import {what} file {path}")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[mod_name] = module
        try:
            file_spec.loader.exec_module(module)
        except BDFLError:
            sys.modules.pop(mod_name, None)
            raise
        except ModuleNotFoundError as exc:
            sys.modules.pop(mod_name, None)
            raise error(f"{what} file {path} imports '{exc.name}', which is not installed",
                        fix=f"install the package that provides '{exc.name}'") from None
        except Exception as exc:
            sys.modules.pop(mod_name, None)
            raise error(f"importing {what} file {path} failed: {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and (spec == exc.name or spec.startswith(exc.name + ".")):
            raise error(f"{what} '{spec}' not found",
                        fix=f"give an importable module path such as {_example(what)} (run from the project root or "
                        "install the package), or a path to a .py file") from None
        raise error(f"{what} '{spec}' imports '{exc.name}', which is not installed",
                    fix=f"install the package that provides '{exc.name}'") from None
    except BDFLError:
        raise
    except Exception as exc:
        raise error(f"importing {what} '{spec}' failed: {type(exc).__name__}: {exc}") from exc


def load_plugins(specs: Iterable[str]) -> list[ModuleType]:
    """Import every plugin of ``specs`` (a config's ``plugins``; in order, each once per process).
    A plugin that cannot be imported is a ConfigError on ``plugins``, the same wherever the
    config is read (``bdfl run``'s preflight, a worker, ``bdfl deploy``, ``bdfl peer``)."""
    try:
        return [import_spec(s.strip()) for s in specs]
    except BDFLError as exc:
        raise ConfigError("plugins", exc.message, fix=exc.fix) from None


def module_spec_of(module_name: str) -> str | None:
    """What another process imports to get the classes of module ``module_name``: its dotted
    name; the file of the main script of a process started from one (imported as a plugin: a
    rerun of the run's config.toml and a Ray actor do not run that script; its run must sit under
    ``if __name__ == "__main__":``, as spawned workers require anyway); None when nothing can (a
    class defined in an interactive session, ``python -c`` or a notebook)."""
    if module_name in ("__main__", "__mp_main__"):
        path = getattr(sys.modules.get(module_name), "__file__", None)
        return str(Path(path).resolve()) if path and str(path).endswith(".py") and Path(path).is_file() else None
    return module_name


def _source(cls: type) -> tuple[str, str] | None:
    """(resolved source file, qualified name) of a class, None when it has no file."""
    try:
        return str(Path(inspect.getfile(cls)).resolve()), cls.__qualname__
    except (TypeError, OSError):
        return None


def register_class(registry: dict[str, Any], cls: Any, base: type, kind: str) -> Any:
    """Add ``cls`` (a subclass of ``base`` with a ``name`` of its own) to ``registry`` under its
    name: the one rule of the attack, strategy and detector registries. The same class again is a
    no-op, and so is the same class of the same file loaded under a second module name (a script
    a spawned worker imports as ``__mp_main__`` and as a plugin; a module given dotted and as a
    file); another class under a taken name is refused."""
    name = getattr(cls, "name", None)
    if not (isinstance(cls, type) and issubclass(cls, base)) or not isinstance(name, str) or not name \
            or name == getattr(base, "name", None):
        raise TypeError(f"register: {cls!r} is not a {base.__name__} subclass with a name of its own")
    old = registry.get(name)
    if old is not None and old is not cls and (_source(old) is None or _source(old) != _source(cls)):
        raise ValueError(f"{kind} name '{name}' registered twice")
    registry[name] = cls
    return cls


def _source_file(spec: str) -> Path | None:
    if spec.endswith(".py"):
        return Path(spec).expanduser()
    try:
        found = importlib.util.find_spec(spec)
    except (ImportError, ValueError):
        return None
    return Path(found.origin) if found is not None and found.origin and found.origin.endswith(".py") else None


def code_digests(specs: Iterable[str]) -> dict[str, str]:
    """spec -> SHA-256 (first 16 hex digits) of the source file each user module (a plugin, a task)
    is imported from: a run records them (config.toml ``[versions.code]``) and a sweep reuses a
    run only while they are unchanged (an edited plugin's points were "kept"; an outside probe).
    The module's own file only, not what it imports; "" where there is no file to read."""
    out = {}
    for spec in specs:
        path = _source_file(spec)
        try:
            out[spec] = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path is not None else ""
        except OSError:
            out[spec] = ""
    return out
