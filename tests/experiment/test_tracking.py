"""Live tracking: each round's figures reach TensorBoard event files as the round is written.

Read back with TensorBoard's own EventAccumulator. A real run's event files are checked in
tests/experiment/test_sweep.py::test_stale_sweep_reruns_real_runs (its runs are real).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bdfl.experiment.results import ResultsWriter, round_aggregates
from bdfl.experiment.tracking import TRACKING_DIR, LiveTracker, round_scalars
from tests.experiment.test_results import ROUNDS, synthetic_rows


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of a results folder's event files: tag -> [(step, value)]."""
    acc = EventAccumulator(str(run_dir / TRACKING_DIR), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_each_round_is_readable_as_soon_as_it_is_written(tmp_path: Path) -> None:
    d = tmp_path / "run"
    w = ResultsWriter(d, live=True)
    for r in range(ROUNDS):
        rows = synthetic_rows(r)
        w.append_metrics(rows)
        w.append_round({"round": r, **round_aggregates(rows), "gas_used": 100_000 * (r + 1), "seconds_total": 2.5})
        seen = scalars(d)  # while the run runs: no close needed
        assert [s for s, _ in seen["round/honest_accuracy"]] == list(range(r + 1))
    w.close()
    seen = scalars(d)
    # round 4 by hand (tests/experiment/test_results.py): honest accuracy 0.915, reputations
    # honest 1, 1, 1, 0.9, attackers 0.0, 0.1; unclaimed honest 50, attackers 20
    assert seen["round/honest_accuracy"][-1] == (4, pytest.approx(0.915))
    assert seen["round/gas_used"][-1] == (4, 500_000)
    assert seen["reputation/honest_min"][-1] == (4, pytest.approx(0.9))
    assert seen["reputation/attacker_max"][-1] == (4, pytest.approx(0.1))
    assert [v for _, v in seen["reputation/separated"]] == [0, 0, 0, 1, 1]
    assert seen["tokens/honest_unclaimed_mean"][-1] == (4, pytest.approx(50.0))
    assert seen["tokens/attacker_unclaimed_mean"][-1] == (4, pytest.approx(20.0))
    assert all(len(v) == ROUNDS for v in seen.values())


def test_off_by_default_and_tags_skip_missing_values(tmp_path: Path) -> None:
    ResultsWriter(tmp_path / "quiet").append_round({"round": 1, "honest_accuracy": 0.5})
    assert not (tmp_path / "quiet" / TRACKING_DIR).exists()
    tags = round_scalars({"round": 1, "honest_accuracy": None, "gas_used": 7}, [{"attacker": 0, "reputation": 1.0}])
    assert tags == {"round/gas_used": 7.0, "reputation/honest_min": 1.0, "reputation/honest_mean": 1.0}


def test_tracker_without_tensorboard_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    t = LiveTracker(tmp_path)
    t.log_round({"round": 1, "honest_accuracy": 0.5}, [])
    t.close()
    assert not (tmp_path / TRACKING_DIR).exists()
