"""The common interface (Strategy.combine) and the registry (bdfl.defense)."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from bdfl.config import DefenseConfig
from bdfl.defense import STRATEGIES, defense_params, make_strategy, strategy_of
from bdfl.defense.aggregate import AggregationError
from bdfl.experiment.setup import defenses


def test_registry_names_every_strategy_once_with_the_default_first() -> None:
    assert list(STRATEGIES) == ["bdfl", "fedavg", "krum", "multikrum", "median", "trimmed_mean",
                                "geometric_median", "centered_clipping", "nnm_trimmed_mean"]
    assert defenses() == tuple(STRATEGIES)
    assert [n for n, s in STRATEGIES.items() if s.audited] == ["bdfl"]
    assert {n for n, s in STRATEGIES.items() if s.uses_weights} == {"bdfl", "fedavg"}
    for name, cls in STRATEGIES.items():
        assert cls.name == name and cls.summary


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_copies_own_without_others_and_rebuilds_from_its_params(name: str) -> None:
    own = [np.arange(3.0), np.ones((2, 2), np.float32)]
    s = strategy_of(DefenseConfig(name=name), 2)
    out = s.combine(own, [])
    assert np.array_equal(out[0], own[0]) and out[0] is not own[0]
    params = defense_params(DefenseConfig(name=name), 2)
    assert set(params) == {f.name for f in fields(s)} and make_strategy(name, **params) == s
    # three identical models: every rule returns that model
    out = s.combine(own, [own, own], [1.0, 1.0, 1.0] if s.uses_weights else None)
    assert all(np.allclose(a, b) for a, b in zip(out, own)) and out[1].dtype == np.float32


def test_combine_and_registry_errors() -> None:
    own = [np.zeros(2)]
    with pytest.raises(AggregationError, match="unknown defense 'avg'") as info:
        make_strategy("avg")
    assert "fedavg" in info.value.fix and "krum" in info.value.fix
    with pytest.raises(AggregationError, match="no parameter 'beta'") as info:
        make_strategy("krum", beta=0.1)
    assert "num_malicious" in info.value.fix
    with pytest.raises(AggregationError, match="own model first"):
        make_strategy("bdfl").combine(own, [own], [1.0])
    with pytest.raises(AggregationError, match="does not take weights"):
        make_strategy("median").combine(own, [own], [1.0, 1.0])
    with pytest.raises(AggregationError, match="shape"):
        make_strategy("median").combine(own, [[np.zeros(3)]])
