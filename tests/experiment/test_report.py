"""Plots and report.html, built from a synthetic results folder."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from bdfl.experiment.plots import PLOT_FILES, make_all_plots, plot_accuracy, plot_reputation
from bdfl.experiment.progress import summary_lines
from bdfl.experiment.report import build_report, plot_captions
from bdfl.experiment.results import ResultsWriter, format_value, read_rounds, read_summary
from tests.experiment.test_results import PEERS, PNG_MAGIC, ROUNDS, make_run


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert np.ptp(img[..., :3]) > 0  # not a blank canvas


def test_make_all_plots(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run")
    paths = make_all_plots(d)
    assert [p.name for p in paths] == list(PLOT_FILES.values())
    for p in paths:
        assert p.parent == d
        assert_png(p)


def test_plots_of_an_empty_run_are_valid(tmp_path: Path) -> None:
    ResultsWriter(tmp_path / "empty")  # headers only: a run that crashed before round 0 ended
    for p in make_all_plots(tmp_path / "empty"):
        assert p.read_bytes()[:8] == PNG_MAGIC


def test_plots_tolerate_missing_values(tmp_path: Path) -> None:
    rounds = [{"round": 0, "honest_accuracy": None, "honest_accuracy_std": None, "attacker_accuracy": None},
              {"round": 1, "honest_accuracy": 0.5, "honest_accuracy_std": 0.1, "attacker_accuracy": 0.2}]
    assert_png(plot_accuracy(rounds, tmp_path / "a.png"))
    metrics = [{"round": 0, "peer": 0, "attacker": 0, "reputation": 1.0},
               {"round": 1, "peer": 1, "attacker": 1, "reputation": None}]  # peer 1 absent in round 0
    assert_png(plot_reputation(metrics, tmp_path / "r.png"))


def test_report_is_self_contained_and_shows_the_summary(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run")
    path = build_report(d)
    assert path == d / "report.html"
    doc = path.read_text(encoding="utf-8")
    assert doc.startswith("<!DOCTYPE html>") and doc.rstrip().endswith("</html>")

    # every plot embedded as a data URI that decodes to a PNG; no external references
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', doc)
    assert len(uris) == len(PLOT_FILES)
    for u in uris:
        assert base64.b64decode(u)[:8] == PNG_MAGIC
    assert not re.search(r'(src|href)="(https?:|//|file:)', doc) and "<link" not in doc and "<script" not in doc
    for name in PLOT_FILES.values():
        assert_png(d / name)

    summary = read_summary(d)
    assert summary is not None
    for key in ("final_honest_accuracy", "attacker_mean_reputation_final", "honest_min_reputation_final",
                "honest_false_rejection_rate", "attacker_approval_rate", "gas_used_total"):
        assert f"<td>{format_value(summary[key])}</td>" in doc, key
    assert "<td>0.9150</td>" in doc and "<td>1,500,000</td>" in doc and "<td>0.0526</td>" in doc  # 1/19
    assert re.search(r"<code>separated_from_round</code></td><td>3</td>", doc)
    # config shown verbatim (escaped) in a <pre>; per-round table has a row per round
    assert '<pre>name = &quot;synthetic&quot;' in doc
    assert doc.count("<td>500,000</td>") == 1  # gas of round 4, in the per-round table only
    assert doc.count("<td>2.5000</td>") == ROUNDS + 2  # seconds_total per round; exchange total; mean per round
    assert "RoundFinalized" in doc and "UpdateSubmitted" in doc


def test_report_counts_the_runs_own_lines_apart_from_the_chains_events(tmp_path: Path) -> None:
    """The run's own lines (audit reasons, traffic) were listed under "On-chain events", first."""
    d = make_run(tmp_path / "run")
    with (d / "events.jsonl").open("a", encoding="utf-8") as f:
        for _ in range(3):
            f.write(json.dumps({"source": "run", "block": 99, "event": "AuditRejected", "round": 1}) + "\n")
    doc = build_report(d).read_text()
    chain, own = doc.split("<h2>On-chain events</h2>")[1].split("<h2>The run's own lines")
    assert "UpdateSubmitted" in chain and "AuditRejected" not in chain
    assert '<td class="k">AuditRejected</td><td>3</td>' in own and "UpdateSubmitted" not in own.split("<h2>")[0]


def test_report_md_links_the_figures_beside_it_and_shows_the_verdict(tmp_path: Path) -> None:
    """report.md: the summary lines, each PNG linked by its name (the files exist beside it), the
    peers after the last round (one row each) and the config."""
    d = make_run(tmp_path / "run")
    build_report(d)
    md = (d / "report.md").read_text(encoding="utf-8")
    summary = read_summary(d)
    assert md.startswith("# BDFL run synthetic: label_flip")
    assert all(line in md for line in summary_lines(summary))
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links and all((d / name).is_file() and name.endswith(".png") for name in links)
    assert set(links) == {p.name for p in d.glob("*.png")}
    peers = md.split("## Peers after the last round", 1)[1].split("##", 1)[0]
    assert sum(1 for line in peers.splitlines() if line.startswith("| ") and "0x" in line) == PEERS
    assert 'name = "synthetic"' in md


def test_report_escapes_text(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>&"
    d = make_run(tmp_path / "run", name="x<b>y", attack="a&b")
    cfg = (d / "config.toml").read_text() + f'\n[extra]\nnote = "{evil}"\n'
    (d / "config.toml").write_text(cfg)
    doc = build_report(d).read_text()
    assert "<script>" not in doc and "<b>" not in doc
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;" in doc
    assert "x&lt;b&gt;y" in doc and "a&amp;b" in doc


def test_report_rebuilds_a_missing_summary_and_keeps_runner_keys(tmp_path: Path) -> None:
    d = make_run(tmp_path / "run", summary=False)  # crashed before the summary was written
    assert read_summary(d) is None
    build_report(d)
    s = read_summary(d)
    assert s is not None and s["final_honest_accuracy"] == pytest.approx(0.915) and s["separated_from_round"] == 3
    # killed before its summary: said so, with the rounds it finished (as a Ctrl-C'd run's summary does)
    assert s["status"] == "interrupted" and s["rounds_completed"] == len(read_rounds(d))
    assert s["audited"] is True  # the config's strategy (bdfl) says so, as the runner's summary would

    # keys only the runner knows survive a rebuild; stale computed values are corrected
    s.update({"status": "completed", "seconds_wall": 12.0, "final_honest_accuracy": 0.1})
    (d / "summary.json").write_text(json.dumps(s))
    doc = build_report(d).read_text()
    s2 = read_summary(d)
    assert s2["status"] == "completed" and s2["seconds_wall"] == 12.0
    assert s2["final_honest_accuracy"] == pytest.approx(0.915)
    assert "status: completed" in doc


def test_report_keeps_the_runs_summary_when_rows_were_lost(tmp_path: Path) -> None:
    """A metrics.csv cut short after the run (one peer's row left of the last round) made `bdfl
    report` rewrite a completed run's summary with 1 peer and that peer's accuracy."""
    d = make_run(tmp_path / "run")
    s = read_summary(d)
    s["status"] = "completed"
    (d / "summary.json").write_text(json.dumps(s))
    lines = (d / "metrics.csv").read_text().splitlines(keepends=True)
    last = lines[-1].split(",")[0]
    keep = [ln for ln in lines if not ln.startswith(last + ",")] + [next(ln for ln in lines if ln.startswith(last + ","))]
    (d / "metrics.csv").write_text("".join(keep))
    build_report(d)
    assert read_summary(d) == s


def test_report_keeps_the_runs_summary_when_a_middle_round_was_lost(tmp_path: Path) -> None:
    """An outside probe deleted a round from the middle of the CSVs: the summary was rebuilt from
    the other rounds and still said "completed". A gap is a lost row too: the run's own summary stays."""
    d = make_run(tmp_path / "run")
    s = read_summary(d)
    s["status"] = "completed"
    (d / "summary.json").write_text(json.dumps(s))
    lines = (d / "metrics.csv").read_text().splitlines(keepends=True)
    (d / "metrics.csv").write_text("".join(ln for ln in lines if not ln.startswith("2,")))
    build_report(d)
    assert read_summary(d) == s


def test_report_uses_the_clean_reference(tmp_path: Path) -> None:
    clean = make_run(tmp_path / "clean", attack="none", fraction=0.0, acc_shift=0.02)
    ref_acc = read_summary(clean)["final_honest_accuracy"]
    assert ref_acc == pytest.approx(0.935)
    d = make_run(tmp_path / "run", clean_reference=str(clean / "summary.json"))
    doc = build_report(d).read_text()
    s = read_summary(d)
    assert s["clean_reference_accuracy"] == pytest.approx(0.935)
    assert s["accuracy_drop"] == pytest.approx(0.02)
    assert f"<td>{format_value(s['accuracy_drop'])}</td>" in doc


def test_report_of_a_run_that_failed_before_its_first_round(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No rows were ever written: no "a file cut or edited?" alarm; and a file is not called missing."""
    import logging

    from bdfl.errors import BDFLError

    d = tmp_path / "failed"
    ResultsWriter(d)
    (d / "summary.json").write_text(json.dumps({"status": "failed", "peers": 20, "last_round": None, "error": "boom"}))
    with caplog.at_level(logging.WARNING):
        build_report(d)
    assert "cut or edited" not in caplog.text
    assert read_summary(d)["status"] == "failed"
    with pytest.raises(BDFLError, match="is a file, not a folder"):
        build_report(d / "summary.json")


def test_report_heading_verdict_and_captions_say_what_this_run_is(tmp_path: Path) -> None:
    """An outside probe's reports were all headed "BDFL run: default" (the config's name), opened on a
    56-row table, and their captions described lines the figures did not draw. Now the heading names
    the attack and the defense, the terminal's summary comes first (the full table folded below it),
    and a caption mentions the separation line only when there is one."""
    d = make_run(tmp_path / "run", name="default", attack="sign_flip", fraction=0.4, defense="bdfl")
    doc = build_report(d).read_text(encoding="utf-8")
    assert "<h1>BDFL run default: sign_flip (0.4 of peers), defense bdfl</h1>" in doc
    assert doc.index('<pre class="verdict">') < doc.index("<details>") < doc.index("<code>separated_from_round</code>")
    assert "attackers below every honest peer:" in doc and "from round 3" in doc
    assert "dotted: round 3, from which every attacker stays below every honest peer" in doc
    clean = build_report(make_run(tmp_path / "clean", name="default", attack="none", fraction=0.0)).read_text(encoding="utf-8")
    assert "<h1>BDFL run default: no attack, defense bdfl</h1>" in clean
    never = plot_captions({"attackers": 6, "separated_from_round": None}, read_rounds(d))
    assert "dotted" not in never["accuracy.png"] + never["reputation.png"]  # no separation line drawn, none described
    backdoor = plot_captions({"attackers": 6}, [{"round": 1, "attack_success_rate": 0.95}])
    assert "purple dotted: the backdoor's attack success rate" in backdoor["accuracy.png"]


def test_a_rebuilt_summary_says_whether_the_strategy_audits(tmp_path: Path) -> None:
    """A run killed before its summary: `audited` comes from the config's strategy (a baseline's
    rows may carry verdicts, as the synthetic ones do: they do not make it audited). A strategy
    no registered class has (a plugin's) leaves the key out, and the config's plugins are not
    imported: reading a results folder runs none of the code it names."""
    median = make_run(tmp_path / "median", defense="median", summary=False)
    build_report(median)
    assert read_summary(median)["audited"] is False
    marker = tmp_path / "imported"
    plugin = tmp_path / "plugin_of_the_run.py"
    plugin.write_text(f"open({str(marker)!r}, 'w').close()\n")
    d = make_run(tmp_path / "plugin_run", defense="audited_trimmed", summary=False)
    (d / "config.toml").write_text(f"plugins = {json.dumps([str(plugin)])}\n" + (d / "config.toml").read_text())
    build_report(d)
    assert "audited" not in read_summary(d) and not marker.exists()


def test_under_a_baseline_the_audit_figures_are_said_to_be_void(tmp_path: Path) -> None:
    """Under a baseline nobody audits: no separation, false rejection or approval figure means
    anything, and reputations fall only by the missed-reveal penalty. Said in the terminal's lines,
    the verdict and the reputation caption (the probe read "not by the last round" under median as
    the median failing)."""
    d = make_run(tmp_path / "median", defense="median")
    doc = build_report(d).read_text(encoding="utf-8")
    summary = read_summary(d)
    assert summary is not None and summary["defense"] == "median"
    lines = summary_lines(summary)
    for label in ("attackers below every honest peer:", "honest updates falsely rejected:", "attackers' updates approved:"):
        assert any(line.startswith(label) and line.endswith("n/a: defense median audits nothing") for line in lines), (label, lines)
    assert "Defense median aggregates without audit" in doc and "n/a: defense median audits nothing" in doc
    assert "n/a" not in "\n".join(summary_lines({**summary, "defense": "bdfl", "audited": True}))
