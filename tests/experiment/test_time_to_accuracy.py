"""experiments/time_to_accuracy.py: the target and crossing arithmetic (pure functions, no runs)."""

from __future__ import annotations

import pytest

from tests.experiment.scripts import experiment_script


@pytest.fixture(scope="module")
def tta():  # noqa: ANN201
    with experiment_script("time_to_accuracy") as mod:
        yield mod


def test_target_is_the_fraction_of_the_reference_final_round(tta) -> None:  # noqa: ANN001
    assert tta.target_accuracy([0.5, 0.9, 0.8], 0.95) == pytest.approx(0.76)
    with pytest.raises(ValueError):
        tta.target_accuracy([0.5, None])


def test_first_crossing_is_the_first_round_at_or_above_the_target(tta) -> None:  # noqa: ANN001
    curve = [0.3, None, 0.7, 0.69, 0.8]
    assert tta.first_crossing(curve, 0.7) == 3  # equal counts, 1-based, a later dip does not matter
    assert tta.first_crossing(curve, 0.75) == 5
    assert tta.first_crossing(curve, 0.81) is None
    assert tta.first_crossing([float("nan"), 0.9], 0.5) == 2


def test_seconds_to_target_sum_the_rounds_up_to_the_crossing(tta) -> None:  # noqa: ANN001
    rs = [7.0, 1.0, 2.0, 3.0]
    assert tta.seconds_to_round(rs, 3) == pytest.approx(10.0)
    assert tta.seconds_to_round(rs, None) is None
    with pytest.raises(ValueError):
        tta.seconds_to_round(rs, 5)
    # round 1 at the mean pace of rounds 2..4 (2 s): 2 + 1 + 2
    assert tta.steady_seconds_to_round(rs, 3) == pytest.approx(5.0)


def test_summary_ratios_compare_bdfl_with_flower(tta) -> None:  # noqa: ANN001
    flower = {"accuracy": [0.5, 0.8, 1.0], "round_seconds": [10.0, 4.0, 4.0]}
    bdfl = {"accuracy": [0.6, 0.7, 0.96, 0.99], "round_seconds": [2.0, 1.0, 1.0, 1.0]}
    s = tta.summarise(bdfl, flower, 0.95)
    assert s["target"] == pytest.approx(0.95)
    assert (s["bdfl"]["round"], s["flower"]["round"]) == (3, 3)
    assert s["time_ratio"] == pytest.approx(4.0 / 18.0)
    assert s["rounds_ratio"] == pytest.approx(1.0)
    assert s["per_round_ratio"] == pytest.approx(1.0 / 4.0)
    s2 = tta.summarise({**bdfl, "accuracy": [0.1, 0.2, 0.3, 0.4]}, flower, 0.95)
    assert s2["bdfl"]["round"] is None and s2["time_ratio"] is None and s2["rounds_ratio"] is None


def test_a_given_target_replaces_the_fraction_of_flowers_last_round(tta) -> None:  # noqa: ANN001
    flower = {"accuracy": [0.5, 0.8, 1.0], "round_seconds": [10.0, 4.0, 4.0]}
    bdfl = {"accuracy": [0.6, 0.7, 0.96, 0.99], "round_seconds": [2.0, 1.0, 1.0, 1.0]}
    s = tta.summarise(bdfl, flower, 0.95, target=0.55)
    assert s["target"] == pytest.approx(0.55) and s["target_given"]
    assert (s["bdfl"]["round"], s["flower"]["round"]) == (1, 2)  # 0.95 x 1.0 would give (3, 3)
    assert s["rounds_ratio"] == pytest.approx(0.5)
    assert s["time_ratio"] == pytest.approx(2.0 / 14.0)
