"""More workers than peers run one worker per peer, and the run says so (an outside probe's
``--workers 9 --peers 5`` ran 5 workers while config.toml kept ``workers = 9``, without a word)."""

from __future__ import annotations

from pathlib import Path

from bdfl.config import load_config
from bdfl.experiment import runner


def test_workers_beyond_the_peers_are_named_as_capped(tmp_path: Path) -> None:
    cfg = load_config(None, {"peers": 3, "rounds": 1, "workers": 4, "attack.name": "none", "attack.fraction": 0.0})
    log = (runner.run_experiment(cfg, quiet=True, out=tmp_path / "run") / "run.log").read_text()
    assert "starting 3 worker processes for 3 peers (0 attackers) (workers = 4 capped at one per peer)" in log


def test_the_starting_line_counts_workers_and_names_a_cap_only_when_there_is_one() -> None:
    """One worker was "1 worker processes" (the mutation probe); "capped" only when fewer
    workers started than configured."""
    from bdfl.experiment.orchestrator import starting_line

    assert starting_line(1, 1, False, 1, 0) == "starting 1 worker process for 1 peer (0 attackers)"
    assert starting_line(2, 2, False, 20, 6) == "starting 2 worker processes for 20 peers (6 attackers)"
    assert starting_line(1, 3, True, 1, 1) == "starting 1 Ray actor on the cluster for 1 peer (1 attacker) (workers = 3 capped at one per peer)"
    assert starting_line(4, 4, True, 100, 30) == "starting 4 Ray actors on the cluster for 100 peers (30 attackers)"
