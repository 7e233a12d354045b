"""Shared fixtures: compiled artifacts, one anvil devnet per session, snapshots per test.

Tests that need the chain get a clean state cheaply: ``chain_snapshot`` takes an
``evm_snapshot`` before the test and reverts to it afterwards.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import background_builds

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("BDFL_ROOT", str(ROOT))

# A shell without job control starts background commands with SIGINT ignored, and an
# ignored signal stays ignored across exec: the Ctrl-C tests' child processes (bdfl run,
# bdfl devnet) would never see their SIGINT. Give the session the normal disposition so
# the children start with it, however pytest was launched.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def artifacts(project_root: Path) -> dict[str, Any]:
    from bdfl.chain.compiler import build

    return build(project_root)


@pytest.fixture(scope="session")
def devnet(project_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from bdfl.chain.devnet import start_devnet

    log = tmp_path_factory.mktemp("devnet") / "anvil.log"
    with start_devnet("anvil", accounts=10, log_path=log, root=project_root) as d:
        yield d


@pytest.fixture(scope="session")
def w3(devnet: Any) -> Any:
    return devnet.w3()


@pytest.fixture()
def chain_snapshot(devnet: Any) -> Iterator[None]:
    """Revert every chain change the test makes."""
    from bdfl.chain.devnet import rpc_call

    snap = rpc_call(devnet.rpc_url, "evm_snapshot")
    yield
    rpc_call(devnet.rpc_url, "evm_revert", [snap])


# ---------------------------------------------------------------- slow builds in idle time
_BUILDS: dict[str, background_builds.BackgroundBuild | None] = {}


def _awaits_build(item: pytest.Item) -> bool:
    return any(item.nodeid.startswith(prefix) for prefix in background_builds.BUILDS)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that await a background build (tests/background_builds.py) run last, so the builds
    started at collection have the whole session to finish beside the other tests."""
    items.sort(key=_awaits_build)


def pytest_collection_finish(session: pytest.Session) -> None:
    for prefix, (name, argv_of) in background_builds.BUILDS.items():
        if any(item.nodeid.startswith(prefix) for item in session.items):
            _BUILDS[name] = background_builds.start(ROOT, name, argv_of)


def pytest_sessionfinish() -> None:
    for build in _BUILDS.values():
        if build is not None:
            build.stop()


@pytest.fixture(scope="session")
def background_build() -> Any:
    """``background_build(name)``: the build started at collection, or None (its test then
    builds in the foreground)."""
    return _BUILDS.get
