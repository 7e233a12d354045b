"""docs/results-format.md defines every column, summary key, event type and tracking tag
the code writes: a new one without a definition fails here."""

from __future__ import annotations

import re
from pathlib import Path

from bdfl.experiment.results import FIT_METRICS_COLUMNS, METRICS_COLUMNS, ROUNDS_COLUMNS, compute_summary, read_metrics, read_rounds
from bdfl.experiment.tracking import round_scalars
from tests.experiment.test_results import make_run

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "results-format.md").read_text(encoding="utf-8")


def _defined(name: str) -> bool:
    """``name`` appears as a code span in a table row (a definition, not a passing mention)."""
    return any(line.startswith("|") and f"`{name}`" in line for line in DOC.splitlines())


def _section(title: str) -> str:
    start = DOC.index(title)
    nxt = DOC.find("\n#", start + len(title))
    return DOC[start: nxt if nxt > 0 else len(DOC)]


def test_every_csv_column_is_defined() -> None:
    metrics, rounds = _section("### metrics.csv"), _section("### rounds.csv")
    assert [c for c in METRICS_COLUMNS if f"| `{c}` |" not in metrics] == []
    assert [c for c in ROUNDS_COLUMNS if f"| `{c}` |" not in rounds] == []
    fit = _section("### fit_metrics.csv")
    assert [c for c in FIT_METRICS_COLUMNS if f"| `{c}` |" not in fit] == []


def test_every_summary_key_is_defined(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run")
    keys = set(compute_summary(read_metrics(d), read_rounds(d), {"final_honest_accuracy": 0.9}))
    # keys the orchestrator adds at shutdown (read from its source, so a new one is seen)
    src = (ROOT / "bdfl" / "experiment" / "orchestrator.py").read_text()
    for block in re.findall(r"summary\.update\(\{(.*?)\}\)", src, re.S):
        keys |= set(re.findall(r'"(\w+)":', block))
    keys |= set(re.findall(r'summary\["(\w+)"\]\s*=', src))
    keys |= set(re.findall(r'"(setup_\w+)":', src))
    section = _section("### summary.json")
    missing = sorted(k for k in keys if f"`{k}`" not in section)
    assert missing == []
    assert {"status", "seconds_wall", "separated_from_round", "honest_accuracy_last3"} <= keys
    assert "`clean_reference`" in section


def test_every_event_type_is_defined() -> None:
    chain = set()
    for sol in (ROOT / "contracts").glob("*.sol"):
        chain |= set(re.findall(r"^\s*event (\w+)\(", sol.read_text(), re.M))
    own = set()
    for py in (ROOT / "bdfl").rglob("*.py"):
        own |= set(re.findall(r'\bemit\(\s*"(\w+)"', py.read_text()))
    assert chain and own
    section = _section("### events.jsonl")
    assert sorted(e for e in chain | own if f"`{e}`" not in section) == []


def test_every_tracking_tag_is_defined() -> None:
    tags = round_scalars({"round": 1, "honest_accuracy": 0.5},
                         [{"attacker": a, "reputation": 0.5, "balance": 1.0, "stake": 1.0, "unclaimed": 1.0} for a in (0, 1)])
    section = _section("### TensorBoard")
    for tag in tags:
        if tag.startswith("round/"):
            assert "`round/<column>`" in section
        elif tag.startswith("tokens/"):
            assert "`tokens/{honest,attacker}_{balance,stake,unclaimed}_mean`" in section
        else:
            assert f"`{tag}`" in section, tag
    assert _defined("round/<column>")
