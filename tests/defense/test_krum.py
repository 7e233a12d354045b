"""Krum picks a member of the honest cluster; its score is the brute-force one."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.config import ConfigError, DefenseConfig, KrumConfig, from_dict
from bdfl.defense import strategy_of
from bdfl.defense.aggregate import AggregationError, krum, krum_scores
from bdfl.defense.krum import Krum
from tests.defense.helpers import model


def _index(chosen: list[np.ndarray], ms: list[list[np.ndarray]]) -> list[int]:
    return [k for k, m in enumerate(ms) if all(np.array_equal(x, y) for x, y in zip(chosen, m))]


def test_krum_picks_the_honest_cluster() -> None:
    rng = np.random.default_rng(2)
    honest = [model(rng, 0.0, 0.1) for _ in range(5)]
    outliers = [model(rng, 10.0, 0.1), model(rng, -8.0, 3.0)]
    ms = honest[:2] + outliers + honest[2:]
    matches = _index(krum(ms, num_malicious=2), ms)
    assert len(matches) == 1 and matches[0] not in (2, 3)
    # the chosen one has the smallest brute-force Krum score
    flat = [np.concatenate([a.ravel().astype(np.float64) for a in m]) for m in ms]
    k = len(ms) - 2 - 2
    brute = [sorted(float(np.sum((f - g) ** 2)) for j, g in enumerate(flat) if j != i)[:k] for i, f in enumerate(flat)]
    brute_scores = np.array([sum(s) for s in brute])
    assert np.allclose(krum_scores(ms, 2), brute_scores, rtol=1e-6)
    assert matches[0] == int(np.argmin(brute_scores))
    assert _index(Krum(num_malicious=2).combine(ms[0], ms[1:]), ms) == matches


def test_a_colluding_cluster_bigger_than_assumed_wins() -> None:
    """Krum's guarantee needs n >= 2f + 3: four attackers agreeing on one point among five
    honest peers get picked, which is why a baseline is no substitute for the audit."""
    rng = np.random.default_rng(3)
    honest = [model(rng, 0.0, 1.0) for _ in range(5)]
    evil = model(rng, 1.0, 0.0)  # one point, about as far from the honest ones as they are from each other
    ms = honest + [[a.copy() for a in evil] for _ in range(4)]
    assert _index(krum(ms, num_malicious=1), ms)[0] >= 5


def test_malicious_comes_from_its_own_table_or_the_attacker_count() -> None:
    assert strategy_of(DefenseConfig(name="krum"), 4) == Krum(num_malicious=4)  # -1: the attackers assumed
    assert strategy_of(DefenseConfig(name="krum", krum=KrumConfig(malicious=2)), 4) == Krum(num_malicious=2)
    assert strategy_of(DefenseConfig(name="krum"), 0) == Krum(num_malicious=0)  # bdfl peer knows none
    with pytest.raises(AggregationError, match="num_malicious"):
        Krum(num_malicious=-1)
    with pytest.raises(ConfigError) as info:
        from_dict({"peers": 10, "defense": {"krum": {"malicious": 11}}})
    assert info.value.field == "defense.krum.malicious" and "[-1, 10]" in str(info.value)
    with pytest.raises(ConfigError, match="defense.krum.malicious"):
        from_dict({"defense": {"krum_malicious": 2}})  # the old key names its successor
