"""Fixtures shared by the experiment tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from bdfl.attacks import ATTACKS
from bdfl.defense import STRATEGIES
from bdfl.defense.detectors import REGISTRY


@pytest.fixture
def registries() -> Iterator[None]:
    """Registrations made by a test are undone after it (the built-in registries stay exact), and
    the modules that made them forgotten, so that the next test's import registers again."""
    saved = [(reg, dict(reg)) for reg in (ATTACKS, STRATEGIES, REGISTRY)]
    modules = set(sys.modules)
    yield
    for reg, content in saved:
        reg.clear()
        reg.update(content)
    for name in set(sys.modules) - modules:
        if name.startswith("bdfl_plugin_") or name == "mylab_attacks":
            del sys.modules[name]
