"""Fixtures for the protocol tests: one deployment per test module on the session devnet,
and a per-test ``env`` that snapshots the chain and reverts it afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.chain.helpers import Env, Proto, setup_proto, snapshot_env


@pytest.fixture(scope="module")
def proto(devnet: Any, artifacts: Any) -> Proto:
    """Contracts deployed with TEST_PARAMS, 8 funded peers with unlimited allowance."""
    return setup_proto(devnet, artifacts)


@pytest.fixture()
def env(proto: Proto) -> Iterator[Env]:
    """Fresh clients on a chain snapshot; every change is reverted after the test."""
    with snapshot_env(proto) as env:
        yield env
