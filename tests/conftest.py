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

from tests.chain import forge_background

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


# ---------------------------------------------------------------- forge build in idle time
_FORGE_BUILD: dict[str, forge_background.BackgroundBuild | None] = {}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The forge tests run last, so the build started at collection (tests/chain/forge_background.py)
    has the whole session to finish beside the other tests."""
    items.sort(key=lambda item: item.nodeid.startswith(forge_background.FORGE_TEST_FILE))


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.nodeid.startswith(forge_background.FORGE_TEST_FILE) for item in session.items):
        _FORGE_BUILD["build"] = forge_background.start(ROOT)


def pytest_sessionfinish() -> None:
    build = _FORGE_BUILD.get("build")
    if build is not None:
        build.stop()


@pytest.fixture(scope="session")
def forge_background_build() -> forge_background.BackgroundBuild | None:
    """The build started at collection, or None (the forge tests then build in the foreground)."""
    return _FORGE_BUILD.get("build")
