"""``bdfl report DIR``: rebuild summary.json, the plots and one self-contained report.html.

Everything is derived from the results folder's CSVs (plus config.toml and
events.jsonl), so a report can be rebuilt after a crash, on another machine, or
after changing this code. The HTML embeds its PNGs as base64 data URIs and has
no external references: it is a single file readable offline. All text is escaped.
The page fits a 1280 px wide window: tables use a small font, headers break after
underscores, long tables are split by topic, and every table sits in a container that
scrolls sideways rather than widening the page (tests/experiment/test_report_browser.py
checks this in headless Chromium).
"""

from __future__ import annotations

import base64
import html
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bdfl.defense import STRATEGIES
from bdfl.experiment.plots import attackers_out_from, make_all_plots
from bdfl.experiment.progress import baseline_of, summary_lines
from bdfl.experiment.results import (
    METRICS_COLUMNS,
    REPORT_FILE,
    REPORT_MD_FILE,
    ROUNDS_COLUMNS,
    SUMMARY_FIELDS,
    Run,
    atomic_write_text,
    format_value,
    load_run,
    rebuild_summary,
    write_summary,
)

#: Tables longer than this show their first and last MAX_TABLE_ROWS // 2 rows.
MAX_TABLE_ROWS = 1000

_CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } .sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.8em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.45em; text-align: right; }
th { background: #f3f3f3; font-weight: 600; vertical-align: bottom; } td.k, th.k { text-align: left; }
td.addr { font-family: ui-monospace, monospace; font-size: 0.9em; text-align: left; }
tr.attacker td { color: #b00; } tr.gap td { text-align: center; color: #777; font-style: italic; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
pre.verdict { font-size: 0.95em; background: #f4f8fc; border-color: #b8cde3; } summary { cursor: pointer; margin: 0.5em 0; }
.scroll, .wide { max-width: 100%; overflow-x: auto; margin: 0.5em 0 1.5em; } .scroll { max-height: 40em; overflow-y: auto; }
"""

#: rounds.csv shown as two tables (what happened; what it cost), each narrow enough for the page.
ROUND_TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Per round: outcomes", ("round", "honest_accuracy", "honest_accuracy_std", "attacker_accuracy", "approved", "rejected",
                             "honest_rejected", "attackers_approved", "attack_success_rate")),
    ("Per round: cost", ("round", "tx_count", "gas_used", *(c for c in ROUNDS_COLUMNS if c.startswith("seconds_")))),
)

def plot_captions(summary: Mapping[str, Any], rounds: Sequence[Mapping[str, Any]], attackers_out: int | None = None) -> dict[str, str]:
    """Each figure's caption, saying what that run's figure draws (an outside probe found fixed
    captions describing a dotted line a figure did not have, and silent on the curve it did)."""
    separated = summary.get("separated_from_round")
    sep = f"; dotted: round {separated}, from which every attacker stays below every honest peer" if separated is not None else ""
    attackers = bool(summary.get("attackers"))
    baseline = baseline_of(summary)
    asr = any(isinstance(r.get("attack_success_rate"), (int, float)) for r in rounds)
    accuracy = "Honest peers' mean test accuracy per round (band: ± std over honest peers)"
    if attackers:
        accuracy += "; attackers' mean dashed red, drawn under the honest line (every attacker's own model)"
        if attackers_out is not None:
            accuracy += (f"; from round {attackers_out} every attacker is out (slashed or left): thin dotted red, the "
                         "models they left, which nobody trains or aggregates")
    if asr:
        accuracy += ("; purple dotted: the backdoor's attack success rate (share of the test inputs carrying the trigger, "
                     "of other classes, that the honest peers' models put in the target class; high in the first rounds "
                     "when a barely trained model puts most inputs in one class)")
    reputation = "On-chain reputation of every peer per round (blue: honest, red: attackers; thick: group mean, the attackers' dashed)"
    if baseline:
        reputation += (f". Defense {baseline} aggregates without audit: nobody votes, so reputations fall only by the "
                       "missed-reveal penalty; compare reputations between bdfl runs only")
    return {
        "accuracy.png": accuracy + sep + ".",
        "reputation.png": reputation + ("" if baseline else sep) + ".",
        "tokens.png": "Tokens of every peer per round: wallet balance, stake, and rewards credited but not yet claimed "
                      "(thick: group mean, the attackers' dashed; axes from 0).",
        "gas.png": "Gas used (bars, millions) and transactions (line) per round.",
        "time.png": "Wall-clock seconds per round by phase (each command's slowest worker); grey: the rest of the round.",
    }


def run_title(run: Run) -> str:
    """The report's heading: the run's name and what it ran (every variant of one config file
    shared its name, so printed reports could not be told apart)."""
    attack = f"{run.attack} ({run.fraction:g} of peers)" if run.fraction and run.attack != "none" else "no attack"
    return f"BDFL run {run.name}: {attack}, defense {run.defense}"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _header(column: str) -> str:
    """A column name that may break after each underscore (narrow columns, whole words)."""
    return "_<wbr>".join(_e(part) for part in column.split("_"))


def _table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], *, row_class: Any = None) -> str:
    head = "".join(f"<th>{_header(c)}</th>" for c in columns)
    body: list[str] = []

    def tr(r: Mapping[str, Any]) -> str:
        cls = row_class(r) if row_class else ""
        cells = "".join(
            (f'<td class="addr">{_e(r[c])}</td>' if c == "address" else f'<td class="k">{_e(r[c])}</td>')
            if isinstance(r.get(c), str) else f"<td>{_e(format_value(r.get(c)))}</td>"
            for c in columns
        )
        return f'<tr class="{_e(cls)}">{cells}</tr>' if cls else f"<tr>{cells}</tr>"

    if len(rows) > MAX_TABLE_ROWS:
        half = MAX_TABLE_ROWS // 2
        body += [tr(r) for r in rows[:half]]
        body.append(f'<tr class="gap"><td colspan="{len(columns)}">… {len(rows) - 2 * half} rows omitted (see the CSV) …</td></tr>')
        body += [tr(r) for r in rows[-half:]]
    else:
        body += [tr(r) for r in rows]
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _summary_table(summary: Mapping[str, Any]) -> str:
    known = dict(SUMMARY_FIELDS)
    keys = [k for k, _ in SUMMARY_FIELDS if k in summary] + sorted(k for k in summary if k not in known)
    rows = []
    for k in keys:
        v = summary[k]
        shown = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else format_value(v)
        label = known.get(k, k)
        rows.append(f'<tr><td class="k">{_e(label)}</td><td class="k"><code>{_e(k)}</code></td><td>{_e(shown)}</td></tr>')
    return ('<div class="wide"><table><thead><tr><th class="k">figure</th><th class="k">key</th><th>value</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _img(path: Path, captions: Mapping[str, str]) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = captions.get(path.name, path.stem)
    return (f'<figure><img alt="{_e(path.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _event_rows(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """(event, count) rows, the most frequent first."""
    counts = Counter(str(ev.get("event", "?")) for ev in events)
    return [{"event": name, "count": n} for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def render_html(run: Run, summary: Mapping[str, Any], plots: Sequence[Path]) -> str:
    """The report page as one string (plots embedded)."""
    cfg = run.config
    attack = cfg.get("attack") or {}
    sub_bits = [
        f"attack: {run.attack}" + (f" ({run.fraction:g} of peers)" if run.fraction else ""),
        f"defense: {run.defense}",
        f"peers: {cfg.get('peers', summary.get('peers', '?'))}",
        f"rounds: {summary.get('rounds', '?')}" + (f" of {cfg['rounds']}" if "rounds" in cfg else ""),
        f"seed: {cfg.get('seed', '?')}",
    ]
    if attack.get("colluding_auditors"):
        sub_bits.append("colluding auditors")
    if "status" in summary:
        sub_bits.append(f"status: {summary['status']}")

    captions = plot_captions(summary, run.rounds, attackers_out_from(run.metrics))
    last = summary.get("last_round")
    final_peers = [m for m in run.metrics if m.get("round") == last] if last is not None else []
    peer_cols = [c for c in METRICS_COLUMNS if c != "round"]

    # the contracts' logs and the run's own lines ("source": "run": faults, audit reasons, traffic)
    # are counted apart: only the first are on chain
    chain_rows = _event_rows(ev for ev in run.events if ev.get("source") != "run")
    run_rows = _event_rows(ev for ev in run.events if ev.get("source") == "run")

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>BDFL report: {_e(run.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(run_title(run))}</h1>",
        f'<p class="sub">{_e(" · ".join(sub_bits))}</p>',
        f'<p class="sub">results folder: <code>{_e(run.dir.resolve())}</code></p>',
        "<h2>Summary</h2>",
        f'<pre class="verdict">{_e(chr(10).join(summary_lines(summary)))}</pre>',
        "<details><summary>every figure of summary.json</summary>",
        _summary_table(summary),
        "</details>",
        "<h2>Plots</h2>",
        *(_img(p, captions) for p in plots),
        f"<h2>Peers after the last round{'' if last is None else ' (round ' + _e(last) + ')'}</h2>",
        _table(peer_cols, final_peers, row_class=lambda r: "attacker" if r.get("attacker") else ""),
        *(x for title, cols in ROUND_TABLES for x in (f"<h2>{_e(title)}</h2>", _table(cols, run.rounds))),
        "<h2>On-chain events</h2>",
        _table(("event", "count"), chain_rows) if chain_rows else "<p>no events recorded</p>",
        "<h2>The run's own lines (off chain: faults, audit reasons, traffic)</h2>",
        _table(("event", "count"), run_rows) if run_rows else "<p>none recorded</p>",
        "<h2>Configuration (config.toml)</h2>",
        f"<pre>{_e(run.config_text) if run.config_text else '(no config.toml)'}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _md_cell(value: Any) -> str:
    text = value if isinstance(value, str) else format_value(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return out + ["| " + " | ".join(_md_cell(r.get(c)) for c in columns) + " |" for r in rows]


def render_markdown(run: Run, summary: Mapping[str, Any], plots: Sequence[Path]) -> str:
    """report.md: the report page's heading, verdict lines, figures (the PNGs beside it, linked),
    the peers after the last round and the config, for a repository or a notebook that shows
    markdown (report.html embeds everything instead)."""
    captions = plot_captions(summary, run.rounds, attackers_out_from(run.metrics))
    last = summary.get("last_round")
    final_peers = [m for m in run.metrics if m.get("round") == last] if last is not None else []
    lines = [f"# {run_title(run)}", "", "```", *summary_lines(summary), "```", ""]
    for p in plots:
        lines += [f"![{p.stem}]({p.name})", "", f"*{captions.get(p.name, p.stem)}*", ""]
    if final_peers:
        lines += [f"## Peers after the last round (round {last})", "",
                  *_md_table([c for c in METRICS_COLUMNS if c != "round"], final_peers), ""]
    lines += ["## Configuration (config.toml)", "", "```toml", run.config_text.rstrip() or "(no config.toml)", "```", ""]
    return "\n".join(lines)


def strategy_audited(run: Run) -> bool | None:
    """Whether the run's strategy is audited (summary key ``audited``), from its config's
    ``defense.name`` when a registered strategy has it; None otherwise (readers then take ``bdfl``
    alone as audited). A plugin's strategy is not imported for it: reading a results folder must
    not run the code its config names."""
    cls = STRATEGIES.get(run.defense)
    return None if cls is None else bool(cls.audited)


def build_report(dir: str | Path) -> Path:
    """Rebuild ``summary.json``, the PNG plots and ``report.html`` of a results folder; returns the HTML path."""
    run = load_run(dir, events=True)
    summary = rebuild_summary(run)
    if "audited" not in summary and "status" not in (run.summary or {}):  # the runner never wrote its summary
        audited = strategy_audited(run)
        if audited is not None:
            summary["audited"] = audited
    if summary != run.summary:
        write_summary(run.dir, summary)
    plots = make_all_plots(run.dir, metrics=run.metrics, rounds=run.rounds)
    out = run.dir / REPORT_FILE
    atomic_write_text(out, render_html(run, summary, plots))
    atomic_write_text(run.dir / REPORT_MD_FILE, render_markdown(run, summary, plots))
    return out
