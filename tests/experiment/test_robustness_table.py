"""experiments/robustness_table.py on a synthetic sweep folder: the separation round, the
drop against the clean run, FRR, the backdoor's success rate and the target lines."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.experiment.scripts import experiment_script


@pytest.fixture(scope="module")
def table():  # noqa: ANN201
    with experiment_script("robustness_table") as mod:
        yield mod


def _metrics(reps: list[tuple[list[float], list[float]]], honest_rejected: int = 0) -> list[dict[str, str]]:
    """Rows per round: (attacker reputations, honest reputations); the first
    ``honest_rejected`` honest rows are rejected, everything else approved."""
    rows = []
    for r, (att, hon) in enumerate(reps, start=1):
        for x in att:
            rows.append({"round": str(r), "attacker": "1", "reputation": str(x), "approved": "0"})
        for x in hon:
            ok = "0" if honest_rejected > 0 else "1"
            honest_rejected -= 1
            rows.append({"round": str(r), "attacker": "0", "reputation": str(x), "approved": ok})
    return rows


def _run(sweep: Path, attack: str, defense: str, seed: int, acc: float, metrics: list[dict[str, str]],
         fraction: float = 0.3, asr: float | None = None, status: str = "completed") -> None:
    d = sweep / "runs" / f"{attack}-{defense}-{seed}-{fraction}"
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({"status": status, "final_honest_accuracy": acc, "attack_success_rate_final": asr}))
    (d / "config.toml").write_text(f'seed = {seed}\nrounds = {len(metrics) and max(int(m["round"]) for m in metrics)}\npeers = 4\n'
                                   f'[attack]\nname = "{attack}"\nfraction = {fraction}\n[defense]\nname = "{defense}"\n')
    with open(d / "metrics.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["round", "attacker", "reputation", "approved"])
        w.writeheader()
        w.writerows(metrics)


def test_separation_round_is_the_start_of_the_final_separated_stretch(table) -> None:  # noqa: ANN001
    reps = [([0.5], [0.5, 0.5]), ([0.2], [0.6, 0.5]), ([0.7], [0.6, 0.6]), ([0.1], [0.6, 0.6]), ([0.0], [0.7, 0.6])]
    assert table.separation_round(_metrics(reps)) == 4  # separated in round 2, lost in 3, for good from 4
    assert table.separation_round(_metrics([([0.5], [0.4, 0.6])] * 3)) is None


def test_table_from_a_synthetic_sweep(table, tmp_path: Path) -> None:  # noqa: ANN001
    sweep = tmp_path / "sweep"
    good = [([0.5], [0.5, 0.5]), ([0.1], [0.6, 0.6]), ([0.0], [0.7, 0.7])]  # separated from round 2
    late = [([0.5], [0.5, 0.5])] * 5 + [([0.1], [0.6, 0.6])]  # from round 6
    for seed in (0, 1, 2):
        _run(sweep, "none", "bdfl", seed, 0.90 + seed / 100, _metrics([([], [0.5, 0.5])] * 3), asr=0.01)
        _run(sweep, "label_flip", "bdfl", seed, 0.89 + seed / 100, _metrics(good))  # 1 point below clean
        _run(sweep, "backdoor", "bdfl", seed, 0.80 + seed / 100, _metrics(late, honest_rejected=1), asr=0.5)
        _run(sweep, "label_flip", "median", seed, 0.70, _metrics(good))
    _run(sweep, "sign_flip", "bdfl", 0, 0.5, _metrics(good), status="failed")  # unfinished: left out
    assert table.main([str(sweep), "--results-dir", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "robustness.md").read_text()
    lf = next(line for line in md.splitlines() if line.startswith("| label_flip |"))
    cells = [c.strip() for c in lf.strip("|").split("|")]
    assert cells[1] == "0.900 ± 0.008" and cells[4] == "0.700 ± 0.000"  # bdfl, median
    assert cells[6] == "-1.0 pts" and cells[7] == "2" and cells[8] == "0.0% (0/18)"
    bd = next(line for line in md.splitlines() if line.startswith("| backdoor |") and "pts" in line)
    bcells = [c.strip() for c in bd.strip("|").split("|")]
    assert bcells[6] == "-10.0 pts" and bcells[7] == "6" and bcells[8] == "8.3% (3/36)"
    assert "| backdoor | 50.0% |" in md and "| no attack (trigger alone) | 1.0% |" in md
    assert "final honest accuracy within 2 points of the clean run: holds for 1 of 2; not for backdoor" in md
    assert "from round 5 on (every seed): holds for 1 of 2; not for backdoor" in md
    assert "falsely rejected < 5 %: holds for 1 of 2; not for backdoor" in md
    assert "sign_flip" not in md  # its only run failed


def test_per_seed_table(table, tmp_path: Path) -> None:  # noqa: ANN001
    sweep = tmp_path / "sweep"
    good = [([0.5], [0.5, 0.5]), ([0.1], [0.6, 0.6]), ([0.0], [0.7, 0.7])]  # separated from round 2
    never = [([0.5], [0.5, 0.4])] * 3
    _run(sweep, "none", "bdfl", 3, 0.93, _metrics([([], [0.5, 0.5])] * 3))
    _run(sweep, "none", "bdfl", 4, 0.92, _metrics([([], [0.5, 0.5])] * 3))
    _run(sweep, "backdoor", "bdfl", 3, 0.92, _metrics(good), asr=0.5)
    _run(sweep, "backdoor", "bdfl", 4, 0.90, _metrics(never, honest_rejected=1), asr=0.96)
    _run(sweep, "backdoor", "median", 3, 0.70, _metrics(good))  # not BDFL: left out
    assert table.main([str(sweep), "--results-dir", str(tmp_path / "out"), "--per-seed", "more",
                       "--source", "sweep_x.toml"]) == 0
    md = (tmp_path / "out" / "more.md").read_text()
    assert "2 completed BDFL runs with attackers, seeds 3, 4, of `bdfl sweep sweep_x.toml`" in md
    assert "| backdoor | 3 | 0.920 | -1.0 pts | 2 | 0/6 | 0/3 | 50% |" in md
    assert "| backdoor | 4 | 0.900 | -2.0 pts | never | 1/6 | 0/3 | 96% |" in md
    assert "* backdoor: separated by round 5 in 1 of 2 seeds" in md
    assert not (tmp_path / "out" / "robustness.md").exists()
