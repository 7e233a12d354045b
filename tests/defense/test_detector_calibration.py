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


def test_the_good_side_spread_is_at_least_half_the_qn_spread() -> None:
    """Six distinct values packed just on the good side of the median, the rest spread on the bad
    side: the one-sided MAD alone is smaller than QN_SHARE x Qn, which is the floor used."""
    from bdfl.defense.detectors.calibration import MAD_TO_SIGMA, QN_SHARE

    v = np.array([1.0 - 1e-3 * i for i in range(6)] + [1.5, 2.0, 2.6, 3.1, 3.9])
    one_sided = MAD_TO_SIGMA * float(np.median(1.0 - v[v <= 1.0]))
    assert one_sided < QN_SHARE * qn_scale(v)
    assert good_side_spread(v, "high") == pytest.approx(QN_SHARE * qn_scale(v), rel=1e-12)


def test_small_sample_factor_is_the_prediction_bound_its_docstring_gives() -> None:
    """t_{0.99, m-1} / z_{0.99} x sqrt(1 + 1/m): 3.46 at m = 3, 1.14 at 18, 1 below 2, towards 1
    as m grows (independent numbers, not the function as its own oracle)."""
    from bdfl.defense.detectors.calibration import small_sample_factor

    assert small_sample_factor(3) == pytest.approx(6.965 / 2.326 * np.sqrt(4 / 3), rel=2e-3)
    assert small_sample_factor(18) == pytest.approx(2.567 / 2.326 * np.sqrt(19 / 18), rel=5e-3)  # t interpolated
    assert small_sample_factor(1) == 1.0 and 1.0 < small_sample_factor(1000) < 1.01


def test_qn_on_many_values_goes_row_by_row_to_the_same_distances() -> None:
    """Above ``_DENSE_MAX`` values the pairwise distances are built row by row (no n x n matrix): the same
    values in the same order as the vectorised definition, so Qn is unchanged."""
    from bdfl.defense.detectors import calibration

    x = np.random.default_rng(5).standard_normal(700) * np.r_[np.ones(600), 1e6 * np.ones(100)]
    assert x.size > calibration._DENSE_MAX
    dense = np.abs(x[:, None] - x[None, :])[np.triu_indices(x.size, 1)]
    assert np.array_equal(calibration._pairwise_distances(x), dense)
