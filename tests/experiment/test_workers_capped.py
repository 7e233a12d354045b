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
