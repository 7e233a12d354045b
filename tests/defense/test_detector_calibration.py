"""Calibration statistics: the good-side spread ignores a bad minority however far it lies."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.defense.detectors.calibration import good_side_spread, one_sided_bar, qn_scale


def test_the_good_side_spread_is_the_standard_deviation_of_gaussian_data() -> None:
    x = np.random.default_rng(0).standard_normal(20_000)
    assert good_side_spread(x, "low") == pytest.approx(1.0, abs=0.03)
    assert good_side_spread(x, "high") == pytest.approx(1.0, abs=0.03)


def test_a_bad_minority_does_not_widen_the_good_side_spread_but_widens_qn() -> None:
    rng = np.random.default_rng(1)
    honest = rng.standard_normal(14_000)
    bad = -8.0 + 3.0 * rng.standard_normal(6_000)  # 30 %, low side, scattered
    mix = np.concatenate([honest, bad])
    assert qn_scale(mix) > 1.5  # Qn: about 1.7 sigma of the honest values
    assert good_side_spread(mix, "low") < 1.4  # only the median's shift (0.57 sigma) shows
    bar, _ = one_sided_bar(mix, 3.0, "low")
    assert np.mean(bad < bar) > 0.85 and np.mean(honest < bar) < 0.005
    # the same minority on the good side is not ignored: it is not what an attacker does, and it widens the bar
    assert good_side_spread(-mix, "low") > 3.0


def test_fewer_than_two_values_give_nan() -> None:
    assert np.isnan(good_side_spread([1.0], "low"))


def test_a_cluster_of_copies_on_the_good_side_cannot_collapse_the_spread() -> None:
    """ALIE-like colluders: 30 % identical scores just above the median (the good side of a
    low-is-bad score) would make the one-sided MAD near 0 and fail honest tails."""
    rng = np.random.default_rng(2)
    honest = rng.standard_normal(14)
    mix = np.concatenate([honest, np.full(6, float(np.median(honest)) + 0.05)])
    spread = good_side_spread(mix, "low")
    assert spread > 0.5 * qn_scale(mix) - 1e-12 and spread > 0.4
    bar, _ = one_sided_bar(mix, 3.0, "low")
    assert not np.any(honest < bar)
