"""Quasi-global momentum (bdfl.learning.mixing; docs/learning.md "Quasi-global momentum"):
the arithmetic, when it is in effect (never on the complete graph), a peer's rounds with it
(the velocity of its own start, only when that start is the aggregate that followed the
previous round), the train stage's choice from the config and the overlay, and validation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bdfl.config import load_config
from bdfl.errors import ConfigError
from bdfl.learning.mixing import momentum_in_effect, with_momentum
from bdfl.net.overlay import build_overlay
from bdfl.peer import stages
from bdfl.peer.engine import PeerEngine
from bdfl.peer.node import Peer, PeerSettings
from bdfl.peer.round_state import ChainMemory, RoundState

MEMBERS20 = [f"0x{i:040x}" for i in range(1, 21)]
MEMBERS100 = [f"0x{i:040x}" for i in range(1, 101)]
SEED = b"\x07" * 32


class StepClient:
    """fit adds 1 to every float array and leaves integer arrays as given."""

    def __init__(self) -> None:
        self.init = [np.zeros(3, dtype=np.float32), np.array([5], dtype=np.int64)]

    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
        return [a.copy() for a in self.init]

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        return [p + 1 if p.dtype.kind == "f" else p.copy() for p in parameters], 10, {}

    def evaluate(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[float, int, dict[str, Any]]:
        return 0.0, 1, {}


def make_peer() -> Peer:
    return Peer(index=0, address="0x" + "11" * 20, client=StepClient(), endpoint=None, settings=PeerSettings())


def round_trip(peer: Peer, rnd: int, momentum: float) -> np.ndarray:
    """Train round ``rnd`` with ``momentum`` and aggregate with no other update (own model only)."""
    peer.train(rnd, momentum=momentum)
    trained = peer.trained[0].copy()
    peer.aggregate(rnd, [], {})
    return trained


def test_with_momentum_adds_the_start_velocity_to_float_arrays_only() -> None:
    trained = [np.array([1.0, 2.0], dtype=np.float32), np.array([3], dtype=np.int64)]
    start = [np.array([0.5, 1.0], dtype=np.float32), np.array([9], dtype=np.int64)]
    prev = [np.array([0.0, 2.0], dtype=np.float32), np.array([1], dtype=np.int64)]
    copies = [[a.copy() for a in x] for x in (trained, start, prev)]
    out = with_momentum(trained, start, prev, 0.5)
    assert out[0].dtype == np.float32 and np.allclose(out[0], [1.25, 1.5])
    assert out[1].dtype == np.int64 and out[1].tolist() == [3]  # a counter is not extrapolated
    for x, c in zip((trained, start, prev), copies):  # inputs not modified
        assert all(np.array_equal(a, b) for a, b in zip(x, c))
    with pytest.raises(ValueError, match="shapes"):
        with_momentum([np.zeros(2)], [np.zeros(3)], [np.zeros(3)], 0.5)
    with pytest.raises(ValueError, match="counts"):
        with_momentum([np.zeros(2)], [np.zeros(2), np.zeros(1)], [np.zeros(2)], 0.5)


def test_complete_overlay_reports_complete() -> None:
    assert build_overlay("expander", MEMBERS20, SEED, degree=24).complete  # n <= degree + 1
    assert build_overlay("full", MEMBERS20, SEED).complete
    assert not build_overlay("expander", MEMBERS100, SEED, degree=24).complete
    assert not build_overlay("ring", MEMBERS20, SEED).complete


def test_momentum_is_never_in_effect_on_the_complete_graph() -> None:
    complete = build_overlay("expander", MEMBERS20, SEED, degree=24)
    sparse = build_overlay("expander", MEMBERS100, SEED, degree=24)
    assert momentum_in_effect(0.5, complete) == 0.0
    assert momentum_in_effect(0.5, sparse) == 0.5
    assert momentum_in_effect(0.5, None) == 0.5  # round 0: no overlay yet, remember the start
    assert momentum_in_effect(0.0, sparse) == 0.0


def test_peer_adds_the_velocity_of_its_own_start_from_the_second_round() -> None:
    peer = make_peer()
    # round 0: start 0, no earlier start: trained = 1
    assert np.allclose(round_trip(peer, 0, 0.5), 1.0)
    # round 1: start 1 (the aggregate), previous start 0: 1 + 1 + 0.5 * (1 - 0) = 2.5
    assert np.allclose(round_trip(peer, 1, 0.5), 2.5)
    # round 2: start 2.5, previous 1: 2.5 + 1 + 0.5 * 1.5 = 4.25
    assert np.allclose(round_trip(peer, 2, 0.5), 4.25)
    assert peer.trained[1].tolist() == [5]
    assert peer.reference[0].dtype == np.float32 and peer.trained[0].dtype == np.float32


def test_without_momentum_the_trained_model_is_the_fit() -> None:
    a, b = make_peer(), make_peer()
    for rnd in range(3):
        ta, tb = round_trip(a, rnd, 0.0), round_trip(b, rnd, 0.5)
    assert np.allclose(ta, 3.0) and not np.allclose(tb, 3.0)
    assert a.last_start is None  # nothing held when momentum is off


def test_no_velocity_after_a_restart_or_a_missed_round() -> None:
    peer = make_peer()
    round_trip(peer, 0, 0.5)
    round_trip(peer, 1, 0.5)
    peer.params = [np.full(3, 10.0, dtype=np.float32), np.array([5], dtype=np.int64)]  # a rejoin sets its model
    assert np.allclose(round_trip(peer, 2, 0.5), 11.0)  # its start is not an aggregate of round 1
    assert np.allclose(round_trip(peer, 3, 0.5), 11.0 + 1 + 0.5 * (11.0 - 10.0))  # and resumes after
    # round 5 without round 4: the previous start is two rounds old
    assert np.allclose(round_trip(peer, 5, 0.5), 12.5 + 1)


def test_momentum_switched_off_mid_run_drops_the_velocity() -> None:
    peer = make_peer()
    round_trip(peer, 0, 0.5)
    assert np.allclose(round_trip(peer, 1, 0.0), 2.0)  # the overlay turned complete: plain fit
    assert np.allclose(round_trip(peer, 2, 0.5), 3.0)  # no remembered start of round 1: nothing added


def engine_for(peers: int, momentum: float, overlay_members: list[str] | None) -> PeerEngine:
    cfg = load_config(None, {"peers": peers, "overlay.momentum": momentum})
    memory = ChainMemory(cfg)
    if overlay_members is not None:
        memory.tracker.update(overlay_members, SEED)
    return PeerEngine(make_peer(), view=None, fetch=None, task="t", state=RoundState(memory), cfg=cfg)  # type: ignore[arg-type]


# complete (20 members, degree 24): 1 + 1 + 1 = 3; sparse: round 1 2.5, round 2 2.5 + 1 + 0.5 * 1.5 = 4.25
# (at round 0 no overlay is known yet, so the start is kept for round 1)
@pytest.mark.parametrize(("members", "expected"), [(MEMBERS20, 3.0), (MEMBERS100, 4.25)])
def test_train_stage_applies_momentum_only_off_the_complete_graph(members: list[str], expected: float) -> None:
    engine = engine_for(len(members), 0.5, None)
    stages.train.train(engine, 0)
    engine.peer.aggregate(0, [], {})
    engine.memory.tracker.update(members, SEED)
    for rnd in (1, 2):
        stages.train.train(engine, rnd)
        trained = engine.peer.trained[0].copy()
        engine.peer.aggregate(rnd, [], {})
    assert np.allclose(trained, expected)


def test_default_momentum_and_its_validation() -> None:
    # on by default since returning peers rebuild their velocity (bdfl.peer.rejoin.resume_momentum,
    # tests/peer/test_momentum_resume.py; the churn scenarios: tests/e2e/test_faults.py)
    assert load_config(None, {}).overlay.momentum == 0.5
    assert load_config(None, {"overlay.momentum": 0.0}).overlay.momentum == 0.0
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="overlay.momentum"):
            load_config(None, {"overlay.momentum": bad})
    with pytest.raises(ConfigError):
        load_config(None, {"overlay.momentum": "high"})


def test_policy_carries_the_momentum() -> None:
    from bdfl.policy import policy_hash, policy_of

    a, b = load_config(None, {}), load_config(None, {"overlay.momentum": 0.0})
    assert policy_of(a)["overlay"]["momentum"] == 0.5
    assert policy_hash(policy_of(a)) != policy_hash(policy_of(b))
