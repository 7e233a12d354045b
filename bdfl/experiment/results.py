"""The results folder of one run: crash-safe writers, tolerant readers, the summary.

A run leaves one folder::

    config.toml    fully resolved configuration (written by the runner)
    metrics.csv    one row per (round, peer)            -- METRICS_COLUMNS
    rounds.csv     one row per round                    -- ROUNDS_COLUMNS
    fit_metrics.csv  what the clients' fit returned, one row per (round, peer, metric) -- FIT_METRICS_COLUMNS
    events.jsonl   decoded on-chain events and the run's own event lines, one JSON object per line
    summary.json   derived figures (compute_summary), written atomically
    *.png + *.svg, report.html, tensorboard/ (live per-round scalars)

Every file, column and key is defined in docs/results-format.md (a test checks it).

Writers append whole lines with one ``write`` call and ``flush`` + ``fsync`` each
time, so a crash or Ctrl-C loses at most the line being written; readers drop a
truncated last line. The row of a round in ``rounds.csv`` is the round's commit
marker: the runner appends a round's metrics first and its ``rounds.csv`` row last,
and :func:`compute_summary` ignores metrics of rounds that have no ``rounds.csv``
row (when ``rounds.csv`` has any). Readers keep the *last* row for a duplicated
``(round, peer)`` / ``round``, so a resumed run may simply re-write a round.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import numbers
import os
import subprocess
import sys
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from bdfl.errors import BDFLError

log = logging.getLogger(__name__)

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.csv"
ROUNDS_FILE = "rounds.csv"
FIT_METRICS_FILE = "fit_metrics.csv"
EVENTS_FILE = "events.jsonl"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
REPORT_MD_FILE = "report.md"

#: Files whose presence means "this folder holds a run".
RUN_FILES = (CONFIG_FILE, METRICS_FILE, ROUNDS_FILE, EVENTS_FILE, SUMMARY_FILE)

METRICS_COLUMNS: tuple[str, ...] = (
    "round", "peer", "address", "attacker", "committee", "submitted", "approved",
    "accuracy", "loss", "reputation", "balance", "stake", "unclaimed",
)

#: fit_metrics.csv: one row per number a client's ``fit`` returned in its metrics (``train_loss``, ...),
#: per (round, peer); long format, since each task names its own metrics.
FIT_METRICS_COLUMNS: tuple[str, ...] = ("round", "peer", "metric", "value")

#: A metrics.csv column renamed since: old name -> new name (readers map old files onto it).
RENAMED_METRICS: dict[str, str] = {"tokens": "unclaimed"}

ROUNDS_COLUMNS: tuple[str, ...] = (
    "round", "honest_accuracy", "honest_accuracy_std", "attacker_accuracy",
    "approved", "rejected", "honest_rejected", "attackers_approved", "attack_success_rate",
    "tx_count", "gas_used",
    "seconds_train", "seconds_exchange", "seconds_audit", "seconds_chain", "seconds_eval", "seconds_total",
)

# seconds_eval: evaluating every peer's model on the global test set for the accuracy
# curves -- measurement, not protocol work, so kept apart from train / exchange / audit / chain
SECONDS_COLUMNS: tuple[str, ...] = ("seconds_train", "seconds_exchange", "seconds_audit", "seconds_chain", "seconds_eval")

# Column types for the readers; columns not listed are read as str.
_INT, _FLOAT, _STR = "int", "float", "str"
METRICS_TYPES: dict[str, str] = {
    "round": _INT, "peer": _INT, "address": _STR, "attacker": _INT, "committee": _INT,
    "submitted": _INT, "approved": _INT, "accuracy": _FLOAT, "loss": _FLOAT,
    "reputation": _FLOAT, "balance": _FLOAT, "stake": _FLOAT, "unclaimed": _FLOAT,
    "tokens": _FLOAT,  # the old name of "unclaimed" (results written before the split)
}
ROUNDS_TYPES: dict[str, str] = {
    "round": _INT, "honest_accuracy": _FLOAT, "honest_accuracy_std": _FLOAT, "attacker_accuracy": _FLOAT,
    "approved": _INT, "rejected": _INT, "honest_rejected": _INT, "attackers_approved": _INT,
    "attack_success_rate": _FLOAT, "tx_count": _INT, "gas_used": _INT,
    "seconds_train": _FLOAT, "seconds_exchange": _FLOAT, "seconds_audit": _FLOAT,
    "seconds_chain": _FLOAT, "seconds_eval": _FLOAT, "seconds_total": _FLOAT,
}

#: Summary keys in display order, with a human label (report, compare, sweep tables).
SUMMARY_FIELDS: tuple[tuple[str, str], ...] = (
    ("rounds", "rounds completed"),
    ("peers", "peers"),
    ("attackers", "attackers"),
    ("defense", "defense (a baseline aggregates without audit: no reputation, approval or rejection figures)"),
    ("final_honest_accuracy", "final honest accuracy (last round, mean over honest peers)"),
    ("final_honest_accuracy_std", "final honest accuracy (std over honest peers)"),
    ("honest_accuracy_last3", "honest accuracy, mean of the last 3 rounds (all of a shorter run's)"),
    ("final_attacker_accuracy", "final attacker accuracy"),
    ("clean_reference_accuracy", "clean reference accuracy"),
    ("accuracy_drop", "accuracy drop vs clean"),
    ("attack_success_rate_final", "final attack success rate"),
    ("attack_success_rate_peak", "highest attack success rate of any round"),
    ("attack_success_peak_round", "round of the highest attack success rate"),
    ("attacker_mean_reputation_final", "attackers' mean reputation (final)"),
    ("attacker_max_reputation_final", "attackers' max reputation (final)"),
    ("honest_min_reputation_final", "honest min reputation (final)"),
    ("honest_mean_reputation_final", "honest mean reputation (final)"),
    ("separated_from_round", "separated from round (every attacker < every honest peer from then on)"),
    ("first_separated_round", "first round with every attacker < every honest peer"),
    ("separated_final", "attackers separated (last round)"),
    ("mean_separated_from_round", "separated from round (attackers' mean < every honest peer from then on)"),
    ("honest_false_rejection_rate", "honest false-rejection rate"),
    ("honest_audited", "honest updates audited"),
    ("attacker_approval_rate", "attacker approval rate"),
    ("attacker_audited", "attacker updates audited"),
    ("honest_undecided_total", "honest updates neither approved nor rejected (undecided or on probation: not aggregated)"),
    ("attacker_undecided_total", "attacker updates neither approved nor rejected"),
    ("honest_balance_mean_final", "honest mean wallet balance (final, tokens)"),
    ("attacker_balance_mean_final", "attackers' mean wallet balance (final, tokens)"),
    ("honest_stake_mean_final", "honest mean stake (final, tokens)"),
    ("attacker_stake_mean_final", "attackers' mean stake (final, tokens)"),
    ("honest_unclaimed_mean_final", "honest mean unclaimed rewards (final, tokens)"),
    ("attacker_unclaimed_mean_final", "attackers' mean unclaimed rewards (final, tokens)"),
    ("tx_count_total", "transactions"),
    ("gas_used_total", "gas used"),
    ("gas_per_round_mean", "gas per round (mean)"),
    ("seconds_train_total", "seconds training"),
    ("seconds_exchange_total", "seconds exchanging"),
    ("seconds_audit_total", "seconds auditing"),
    ("seconds_chain_total", "seconds on chain"),
    ("seconds_eval_total", "seconds evaluating (test set)"),
    ("seconds_total", "seconds total"),
    ("seconds_per_round_mean", "seconds per round (mean)"),
)
SUMMARY_KEYS: tuple[str, ...] = tuple(k for k, _ in SUMMARY_FIELDS)


# -- low-level helpers ------------------------------------------------------------

def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file + rename (never half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _append_durable(path: Path, text: str) -> None:
    if not text:
        return
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _cell(value: Any) -> str:
    """One CSV cell: None/NaN -> empty, bool -> 1/0, numbers as shortest round-trip text."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return ""
        return repr(v)
    return str(value)


def _csv_lines(rows: Iterable[Sequence[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerows(rows)
    return buf.getvalue()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return "0x" + bytes(obj).hex()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _json_clean(obj: Any) -> Any:
    """Replace NaN/inf by None and NumPy scalars by Python ones, so the JSON is strict."""
    if isinstance(obj, Mapping):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _repair_tail(path: Path) -> None:
    """Cut a truncated last line (no trailing newline) off a file we are about to append to."""
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        # find the last newline
        block = 4096
        pos = size
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            pos = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())


# -- writer -----------------------------------------------------------------------

class ResultsWriter:
    """Appends a run's rows to its results folder; every call is durable on return.

    ``ResultsWriter(out_dir)`` creates ``out_dir`` (and parents) and writes the CSV
    headers. It refuses a folder that already holds a run (any of :data:`RUN_FILES`)
    unless ``resume=True``, in which case it appends to the existing files (after
    checking their headers and cutting a truncated last line). Other files in the
    folder are left alone. With ``live=True`` each round's row (and that round's
    metrics) also goes to TensorBoard event files as it is written
    (:class:`bdfl.experiment.tracking.LiveTracker`, ``<out_dir>/tensorboard/``).
    """

    def __init__(self, out_dir: str | Path, *, resume: bool = False, live: bool = False) -> None:
        self.dir = Path(out_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise BDFLError(f"results folder {self.dir} exists and is not a folder", fix="choose another --out")
        existing = [name for name in RUN_FILES if (self.dir / name).exists()] if self.dir.is_dir() else []
        if existing and not resume:
            raise BDFLError(
                f"results folder {self.dir} already holds a run ({', '.join(existing)})",
                fix=f"choose another results folder (--out), or delete {self.dir} to overwrite it",
            )
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BDFLError(f"cannot create results folder {self.dir}: {exc.strerror or exc}",
                            fix="choose a writable --out folder") from None
        self.metrics_path = self.dir / METRICS_FILE
        self.rounds_path = self.dir / ROUNDS_FILE
        self.fit_metrics_path = self.dir / FIT_METRICS_FILE
        self.events_path = self.dir / EVENTS_FILE
        self.config_path = self.dir / CONFIG_FILE
        self.summary_path = self.dir / SUMMARY_FILE
        self._init_csv(self.metrics_path, METRICS_COLUMNS)
        self._init_csv(self.rounds_path, ROUNDS_COLUMNS)
        self._init_csv(self.fit_metrics_path, FIT_METRICS_COLUMNS)
        self._tracker: Any = None
        self._round_metrics: dict[Any, list[Mapping[str, Any]]] = {}
        if live:
            from bdfl.experiment.tracking import LiveTracker  # lazy: tensorboard, for live runs only

            self._tracker = LiveTracker(self.dir)
        if self.events_path.exists():
            _repair_tail(self.events_path)
        else:
            self.events_path.touch()
        _fsync_dir(self.dir)

    @staticmethod
    def _init_csv(path: Path, columns: tuple[str, ...]) -> None:
        if path.exists() and path.stat().st_size > 0:
            _repair_tail(path)
            with open(path, encoding="utf-8", newline="") as f:
                header = f.readline().rstrip("\r\n")
            if header and tuple(next(csv.reader([header]))) != columns:
                raise BDFLError(
                    f"{path} has columns {header!r}, not the ones this version writes",
                    fix="resume only runs written by the same BDFL version, or choose another --out",
                )
            if header:
                return
        _append_durable(path, _csv_lines([columns]))

    @property
    def completed_round(self) -> int | None:
        """The last round with a ``rounds.csv`` row (a resumed run continues after it)."""
        rows = read_rounds(self.dir)
        return rows[-1]["round"] if rows else None

    def write_config(self, toml_text: str) -> Path:
        atomic_write_text(self.config_path, toml_text)
        return self.config_path

    @staticmethod
    def _row_cells(row: Mapping[str, Any], columns: tuple[str, ...], what: str) -> list[str]:
        unknown = sorted(set(row) - set(columns))
        if unknown:
            raise ValueError(f"{what}: unknown column(s) {', '.join(unknown)}; allowed: {', '.join(columns)}")
        return [_cell(row.get(c)) for c in columns]

    def append_metrics(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append (round, peer) rows; missing keys are written empty, unknown keys raise ValueError."""
        rows = list(rows)
        lines = [self._row_cells(r, METRICS_COLUMNS, METRICS_FILE) for r in rows]
        _append_durable(self.metrics_path, _csv_lines(lines))
        if self._tracker is not None:
            for r in rows:
                self._round_metrics.setdefault(r.get("round"), []).append(r)

    def append_fit_metrics(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append (round, peer, metric, value) rows, before the round's ``rounds.csv`` row."""
        lines = [self._row_cells(r, FIT_METRICS_COLUMNS, FIT_METRICS_FILE) for r in rows]
        if lines:
            _append_durable(self.fit_metrics_path, _csv_lines(lines))

    def append_round(self, row: Mapping[str, Any]) -> None:
        """Append one round's row (write it *after* that round's metrics: it marks the round complete)."""
        _append_durable(self.rounds_path, _csv_lines([self._row_cells(row, ROUNDS_COLUMNS, ROUNDS_FILE)]))
        if self._tracker is not None and row.get("round") is not None:
            self._tracker.log_round(row, self._round_metrics.pop(row["round"], []))

    def append_events(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Append decoded events as JSON lines (bytes become 0x-hex, NumPy scalars plain numbers)."""
        text = "".join(
            json.dumps(_json_clean(dict(e)), default=_json_default, separators=(",", ":"), sort_keys=False) + "\n"
            for e in events
        )
        _append_durable(self.events_path, text)

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        write_summary(self.dir, summary)
        return self.summary_path

    def close(self) -> None:
        """Close the live-tracking files (the CSVs need no closing: every append is complete)."""
        if self._tracker is not None:
            self._tracker.close()


def write_summary(out_dir: str | Path, summary: Mapping[str, Any]) -> Path:
    """Atomically (re)write ``summary.json`` (NaN/inf become null)."""
    path = Path(out_dir) / SUMMARY_FILE
    text = json.dumps(_json_clean(dict(summary)), default=_json_default, indent=2, allow_nan=False) + "\n"
    atomic_write_text(path, text)
    return path


# -- readers ----------------------------------------------------------------------

def _parse(text: str, typ: str) -> Any:
    if text == "":
        return None
    if typ == _STR:
        return text
    try:
        if typ == _INT:
            try:
                return int(text)
            except ValueError:
                f = float(text)
                return int(f) if f.is_integer() else f
        return float(text)
    except ValueError:
        return text


def _complete_lines(path: Path) -> list[str]:
    """The file's complete lines; a last line without its newline (a crash mid-write) is dropped."""
    data = path.read_bytes()
    if not data:
        return []
    cut = data.rfind(b"\n")
    text = data[: cut + 1].decode("utf-8", errors="replace")
    return text.splitlines()


def _read_csv(dir: str | Path, filename: str, types: dict[str, str], key: tuple[str, ...]) -> list[dict[str, Any]]:
    path = Path(dir) / filename
    if not path.is_file():
        raise BDFLError(f"no {filename} in {dir}", fix="point at a results folder written by `bdfl run`")
    lines = _complete_lines(path)
    if not lines:
        return []
    reader = csv.reader(lines)
    header = next(reader)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    order: list[tuple[Any, ...]] = []
    for lineno, cells in enumerate(reader, start=2):
        if not cells:
            continue
        if len(cells) != len(header):
            raise BDFLError(f"{path}:{lineno}: {len(cells)} fields, expected {len(header)}",
                            fix="the file was edited or corrupted; restore it or delete that line")
        row = {h: _parse(c, types.get(h, _STR)) for h, c in zip(header, cells)}
        for c in types:
            row.setdefault(c, None)
        k = tuple(row.get(c) for c in key)
        if k not in rows:
            order.append(k)
        rows[k] = row  # a re-written (resumed) row replaces the earlier one
    out = [rows[k] for k in order]
    out.sort(key=lambda r: tuple((v is None, v if v is not None else 0) for v in (r.get(c) for c in key)))
    return out


def read_metrics(dir: str | Path) -> list[dict[str, Any]]:
    """``metrics.csv`` as dicts (ints/floats parsed, empty -> None), sorted by (round, peer).

    A folder written before a column was renamed (:data:`RENAMED_METRICS`, e.g. ``tokens``
    -> ``unclaimed``) reads with the new name too."""
    rows = _read_csv(dir, METRICS_FILE, METRICS_TYPES, ("round", "peer"))
    for row in rows:
        for old, new in RENAMED_METRICS.items():
            if row.get(new) is None and row.get(old) is not None:
                row[new] = row[old]
        row.pop("tokens", None)
    return rows


def read_rounds(dir: str | Path) -> list[dict[str, Any]]:
    """``rounds.csv`` as dicts (ints/floats parsed, empty -> None), sorted by round."""
    return _read_csv(dir, ROUNDS_FILE, ROUNDS_TYPES, ("round",))


def read_events(dir: str | Path) -> list[dict[str, Any]]:
    """``events.jsonl`` as dicts; a missing file is empty, a truncated last line is dropped."""
    path = Path(dir) / EVENTS_FILE
    if not path.is_file():
        return []
    out = []
    lines = _complete_lines(path)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            raise BDFLError(f"{path}:{lineno}: not a JSON object",
                            fix="the file was edited or corrupted; restore it or delete that line") from None
    return out


def read_summary(dir: str | Path) -> dict[str, Any] | None:
    """``summary.json`` or None when absent."""
    path = Path(dir) / SUMMARY_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BDFLError(f"{path} is not valid JSON: {exc}", fix=f"delete it and run `bdfl report {dir}` to rebuild it") from None


def read_config(dir: str | Path) -> tuple[str, dict[str, Any]]:
    """(``config.toml`` text, parsed dict); ("", {}) when absent or unparsable."""
    path = Path(dir) / CONFIG_FILE
    if not path.is_file():
        return "", {}
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return text, {}


def load_clean_reference(path: str | Path) -> dict[str, Any]:
    """A clean reference: a ``summary.json`` file or a results folder holding one."""
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY_FILE
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BDFLError(f"cannot read clean reference {p}: {exc.strerror or exc}",
                        fix="set clean_reference to the summary.json of a run without attackers") from None
    except json.JSONDecodeError as exc:
        raise BDFLError(f"clean reference {p} is not valid JSON: {exc}",
                        fix="set clean_reference to the summary.json of a run without attackers") from None
    if not isinstance(data, dict):
        raise BDFLError(f"clean reference {p} is not a JSON object",
                        fix="set clean_reference to the summary.json of a run without attackers")
    return data


def attack_name(config: Mapping[str, Any]) -> str:
    """The attack of a run's configuration (a config.toml's tables): the ``[[attack.groups]]``'
    names joined by "+", else ``attack.name`` ("none" when it has none)."""
    attack = config.get("attack") or {}
    if attack.get("groups"):  # several attack kinds ([[attack.groups]])
        return "+".join(str(g.get("name")) for g in attack["groups"])
    return str(attack.get("name") or "none")


@dataclass
class Run:
    """Everything in one results folder, parsed."""

    dir: Path
    config_text: str
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    rounds: list[dict[str, Any]]
    summary: dict[str, Any] | None  # summary.json as written, None if absent
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.dir.name)

    @property
    def attack(self) -> str:
        return attack_name(self.config)

    @property
    def fraction(self) -> float | None:
        attack = self.config.get("attack") or {}
        if attack.get("groups"):
            return float(sum(g.get("fraction", 0) for g in attack["groups"]))
        v = attack.get("fraction")
        return float(v) if isinstance(v, (int, float)) else None

    @property
    def defense(self) -> str:
        return str((self.config.get("defense") or {}).get("name") or "bdfl")

    @property
    def seed(self) -> int | None:
        v = self.config.get("seed")
        return v if isinstance(v, int) else None


def load_run(dir: str | Path, *, events: bool = False) -> Run:
    """Read a results folder (config, metrics, rounds, summary; events when asked)."""
    d = Path(dir)
    if not d.is_dir():
        what = "is a file, not a folder" if d.exists() else "does not exist"
        raise BDFLError(f"results folder {d} {what}", fix="pass a folder written by `bdfl run`")
    text, cfg = read_config(d)
    return Run(
        dir=d,
        config_text=text,
        config=cfg,
        metrics=read_metrics(d),
        rounds=read_rounds(d),
        summary=read_summary(d),
        events=read_events(d) if events else [],
    )


# -- derived figures --------------------------------------------------------------

def _vals(rows: Iterable[Mapping[str, Any]], key: str) -> list[float]:
    out = []
    for r in rows:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(float(v)):
            out.append(float(v))
    return out


def _mean(xs: Sequence[float]) -> float | None:
    return float(np.mean(xs)) if len(xs) else None


def _std(xs: Sequence[float]) -> float | None:
    if not len(xs):
        return None
    # population std over peers; equal values give 0 exactly (np.std's rounded mean gave 1.1e-16)
    a = np.asarray(xs, dtype=np.float64)
    return 0.0 if bool(np.all(a == a[0])) else float(np.std(a))


def honest_attack_success(rates: Mapping[int, float | None], attackers: Iterable[int]) -> float | None:
    """A backdoor's success in a round (rounds.csv ``attack_success_rate``): the mean over the
    honest peers' models of ``rates`` (peer -> share of triggered test images put in the target
    class, None where not measured); None when no honest model was measured. The attackers' own
    models, trained on the trigger, would count their own success."""
    out = set(attackers)
    measured = [float(v) for i, v in rates.items() if i not in out and v is not None]
    return sum(measured) / len(measured) if measured else None


def round_aggregates(rows: Sequence[Mapping[str, Any]], audited: bool = True) -> dict[str, Any]:
    """The ``rounds.csv`` figures derivable from one round's metrics rows.

    honest_accuracy / attacker_accuracy: mean accuracy of honest / attacking peers;
    honest_accuracy_std: population std (ddof=0) over honest peers; approved /
    rejected: audited submissions approved / rejected; honest_rejected: honest ones
    rejected; attackers_approved: attackers' ones approved (those four None when the run
    is not ``audited``: a baseline approves and rejects nothing, which is not "0 of them").
    The runner adds round, attack_success_rate, tx_count, gas_used and the seconds_* columns.
    """
    honest = [r for r in rows if not r.get("attacker")]
    attackers = [r for r in rows if r.get("attacker")]
    verdicts = [r for r in rows if r.get("approved") in (0, 1) and r.get("approved") is not None]
    hacc = _vals(honest, "accuracy")
    return {
        "honest_accuracy": _mean(hacc),
        "honest_accuracy_std": _std(hacc),
        "attacker_accuracy": _mean(_vals(attackers, "accuracy")),
        **({"approved": sum(1 for r in verdicts if r["approved"] == 1),
            "rejected": sum(1 for r in verdicts if r["approved"] == 0),
            "honest_rejected": sum(1 for r in verdicts if r["approved"] == 0 and not r.get("attacker")),
            "attackers_approved": sum(1 for r in verdicts if r["approved"] == 1 and r.get("attacker"))}
           if audited else dict.fromkeys(("approved", "rejected", "honest_rejected", "attackers_approved"))),
    }


def separation_by_round(metrics: Sequence[Mapping[str, Any]], *, attackers: str = "every") -> dict[int, bool]:
    """Round -> whether the attackers' reputation is strictly below every honest peer's:
    every attacker's (``attackers="every"``) or the attackers' mean (``"mean"``, the
    robustness tables, docs/results/robustness.md). Rounds with no attacker or no honest reputation are left out."""
    by_round: dict[int, list[Mapping[str, Any]]] = {}
    for m in metrics:
        if m.get("round") is not None:
            by_round.setdefault(m["round"], []).append(m)
    out: dict[int, bool] = {}
    for r in sorted(by_round):
        h = _vals([m for m in by_round[r] if not m.get("attacker")], "reputation")
        a = _vals([m for m in by_round[r] if m.get("attacker")], "reputation")
        if h and a:
            out[r] = (max(a) if attackers == "every" else float(np.mean(a))) < min(h)
    return out


def separated_from(separated: Mapping[int, bool]) -> int | None:
    """The first round from which every later round is separated (None if the last is not)."""
    first = None
    for r in sorted(separated):
        if separated[r]:
            first = r if first is None else first
        else:
            first = None
    return first


def compute_summary(
    metrics: Sequence[Mapping[str, Any]],
    rounds: Sequence[Mapping[str, Any]],
    clean_reference: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The figures of ``summary.json``, from the parsed CSVs alone (see :data:`SUMMARY_FIELDS`).

    "final" means the last completed round (the last ``rounds.csv`` row; metrics of
    later, incomplete rounds are ignored). Rates are over all rounds' audited
    submissions (``approved`` 0 or 1); a rate with nothing to count is None.
    A round is *separated* when every attacker's reputation is strictly below every
    honest peer's. ``separated_from_round`` is the first round from which every later
    round is separated too (None: the last round is not separated, or no attackers);
    ``first_separated_round`` the first separated round, even if separation was lost
    again later. ``honest_accuracy_last3`` is the mean of the last (up to) 3 rounds'
    honest mean accuracies. Every key is defined in docs/results-format.md.
    ``clean_reference`` is the summary of the same run without attackers; it gives
    ``accuracy_drop = clean final honest accuracy - this final honest accuracy``.
    """
    rounds = sorted(rounds, key=lambda r: r["round"])
    complete = {r["round"] for r in rounds}
    if complete:
        metrics = [m for m in metrics if m.get("round") in complete]
    by_round: dict[int, list[Mapping[str, Any]]] = {}
    for m in metrics:
        by_round.setdefault(m["round"], []).append(m)
    round_ids = sorted(set(by_round) | complete)
    last_round = round_ids[-1] if round_ids else None

    peers: dict[Any, bool] = {}
    for m in metrics:
        peers[m["peer"]] = peers.get(m["peer"], False) or bool(m.get("attacker"))

    s: dict[str, Any] = {
        "rounds": len(round_ids),
        "last_round": last_round,
        "peers": len(peers),
        "attackers": sum(peers.values()),
    }

    last_metrics = by_round[max(by_round)] if by_round else []
    last_round_row = rounds[-1] if rounds else {}
    honest_last = [m for m in last_metrics if not m.get("attacker")]
    attack_last = [m for m in last_metrics if m.get("attacker")]

    hacc = _vals(honest_last, "accuracy")
    s["final_honest_accuracy"] = _mean(hacc) if hacc else last_round_row.get("honest_accuracy")
    s["final_honest_accuracy_std"] = _std(hacc) if hacc else last_round_row.get("honest_accuracy_std")
    last3 = [by_round[r] for r in sorted(by_round)[-3:]]
    last3_means = [_mean(_vals([m for m in rows_ if not m.get("attacker")], "accuracy")) for rows_ in last3]
    last3_vals = [v for v in last3_means if v is not None]
    if not last3_vals:  # no per-peer accuracies: the rounds.csv rows give the means
        last3_vals = _vals(rounds[-3:], "honest_accuracy")
    s["honest_accuracy_last3"] = _mean(last3_vals)
    aacc = _vals(attack_last, "accuracy")
    s["final_attacker_accuracy"] = _mean(aacc) if aacc else last_round_row.get("attacker_accuracy")

    ref = None
    if clean_reference is not None:
        ref = clean_reference.get("final_honest_accuracy")
        if not isinstance(ref, (int, float)) or isinstance(ref, bool):
            raise BDFLError("the clean reference has no final_honest_accuracy",
                            fix="set clean_reference to the summary.json of a run without attackers")
        ref = float(ref)
    s["clean_reference_accuracy"] = ref
    fha = s["final_honest_accuracy"]
    s["accuracy_drop"] = (ref - fha) if (ref is not None and fha is not None) else None
    s["attack_success_rate_final"] = last_round_row.get("attack_success_rate")
    # a backdoor that fades by the last round (model replacement: 54 % in round 4, 7 % at the end) still happened
    success = [(r["attack_success_rate"], r["round"]) for r in rounds if isinstance(r.get("attack_success_rate"), (int, float))]
    peak = max(success, key=lambda x: (x[0], -x[1])) if success else None
    s["attack_success_rate_peak"] = peak[0] if peak else None
    s["attack_success_peak_round"] = peak[1] if peak else None

    # reputation: detection
    hrep, arep = _vals(honest_last, "reputation"), _vals(attack_last, "reputation")
    s["attacker_mean_reputation_final"] = _mean(arep)
    s["attacker_max_reputation_final"] = max(arep) if arep else None
    s["honest_min_reputation_final"] = min(hrep) if hrep else None
    s["honest_mean_reputation_final"] = _mean(hrep)
    sep = separation_by_round(metrics)
    s["separated_from_round"] = separated_from(sep)
    s["first_separated_round"] = next((r for r in sorted(sep) if sep[r]), None)
    s["separated_final"] = sep[max(sep)] if sep else None
    s["mean_separated_from_round"] = separated_from(separation_by_round(metrics, attackers="mean"))

    # audit outcomes over all rounds
    audited = [m for m in metrics if m.get("approved") in (0, 1) and m.get("approved") is not None]
    h_aud = [m for m in audited if not m.get("attacker")]
    a_aud = [m for m in audited if m.get("attacker")]
    h_rej = sum(1 for m in h_aud if m["approved"] == 0)
    a_app = sum(1 for m in a_aud if m["approved"] == 1)
    s["honest_false_rejection_rate"] = h_rej / len(h_aud) if h_aud else None
    s["honest_audited"] = len(h_aud)
    s["honest_rejected_total"] = h_rej
    s["attacker_approval_rate"] = a_app / len(a_aud) if a_aud else None
    s["attacker_audited"] = len(a_aud)
    s["attackers_approved_total"] = a_app
    # submitted, audited, and neither verdict (undecided or on probation): not aggregated either, and not in the rates
    # above; None when nothing was decided (a baseline defense: no audit)
    neither = [m for m in metrics if m.get("submitted") == 1 and m.get("approved") is None] if audited else None
    s["honest_undecided_total"] = None if neither is None else sum(1 for m in neither if not m.get("attacker"))
    s["attacker_undecided_total"] = None if neither is None else sum(1 for m in neither if m.get("attacker"))

    for col in ("balance", "stake", "unclaimed"):
        s[f"honest_{col}_mean_final"] = _mean(_vals(honest_last, col))
        s[f"attacker_{col}_mean_final"] = _mean(_vals(attack_last, col))

    # chain and time totals
    n = len(rounds)
    s["tx_count_total"] = int(sum(_vals(rounds, "tx_count")))
    gas = _vals(rounds, "gas_used")
    s["gas_used_total"] = int(sum(gas))
    s["gas_per_round_mean"] = _mean(gas)
    for c in SECONDS_COLUMNS:
        s[f"{c}_total"] = float(sum(_vals(rounds, c)))
    tot = _vals(rounds, "seconds_total")
    s["seconds_total"] = float(sum(tot))
    s["seconds_per_round_mean"] = _mean(tot) if n else None
    return s


def resolve_clean_reference(run: Run, previous: Mapping[str, Any] | None) -> dict[str, Any] | None:
    ref = run.config.get("clean_reference")
    if isinstance(ref, str) and ref:
        for cand in (Path(ref), run.dir / ref, run.dir.parent / ref):
            if cand.exists():
                try:
                    return load_clean_reference(cand)
                except BDFLError:
                    break
    if previous and isinstance(previous.get("clean_reference_accuracy"), (int, float)):
        return {"final_honest_accuracy": previous["clean_reference_accuracy"]}
    return None


def rebuild_summary(run: Run) -> dict[str, Any]:
    """The run's summary recomputed from its CSVs, keeping keys only the runner knows (status, ...)."""
    previous = run.summary or {}
    clean = resolve_clean_reference(run, previous)
    try:
        computed = compute_summary(run.metrics, run.rounds, clean)
    except BDFLError:
        computed = compute_summary(run.metrics, run.rounds, None)
    per_round = Counter(row["round"] for row in run.metrics if row.get("round") is not None)
    cut = bool(per_round) and per_round[max(per_round)] < max(per_round.values())
    # a round missing between others (an outside probe deleted one from the CSVs: the summary was
    # rebuilt from the rest, "completed", with no trace of it)
    cut = cut or (bool(per_round) and len(per_round) < max(per_round) - min(per_round) + 1)
    # a run that failed before its first round wrote no rows: none can have been lost since
    if previous.get("status") in ("completed", "degraded", "failed") and previous.get("last_round") is not None and (cut or any(
            isinstance(previous.get(k), int) and (computed.get(k) or 0) < previous[k] for k in ("peers", "last_round"))):
        # the runner's summary came from complete files: a last round with fewer rows than the
        # others, or fewer peers or rounds, means rows were lost since (a file cut or edited), and
        # figures from what is left would replace true ones
        log.warning("%s: metrics.csv holds fewer rows than when the run wrote summary.json (a file cut or edited?): "
                    "the run's own summary is kept", run.dir)
        return dict(previous)
    out = {**previous, **computed}
    out.setdefault("defense", run.defense)
    out.setdefault("attack", run.attack if run.fraction else "none")  # as the runner writes it
    if "status" not in previous:  # the runner never wrote its summary: the run was killed before it could
        out["status"] = "interrupted"
        out.setdefault("rounds_completed", len(run.rounds))
    return out


def format_value(value: Any) -> str:
    """How tables (HTML, markdown) show a value: ints with thousands separators, floats to 4 decimals."""
    if value is None:
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return "—"
        if abs(v) >= 10_000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:,.1f}"
        return f"{v:.4f}"
    return str(value)


def package_versions() -> dict[str, str]:
    """The versions a results folder's config.toml records ([versions]), with the code's commit
    (:func:`source_commit`)."""
    out = {}
    for name in ("bdfl", "torch", "numpy", "web3", "flwr", "eth-account", "py-solc-x"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["python"] = sys.version.split()[0]
    out["bdfl_commit"] = source_commit()
    return out


#: The package folder whose ``COMMIT`` file ``git archive`` fills in (export-subst, .gitattributes).
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def source_commit(package_dir: Path = PACKAGE_DIR) -> str:
    """The commit of the code that runs: the one ``git archive`` wrote into ``bdfl/COMMIT``
    when this is an export; else, in a git checkout, ``HEAD`` with ``+modified`` when tracked
    files under ``bdfl/``, ``clients/`` or ``contracts/`` differ from it; else ``unknown``.
    Why: a measurement is only reproducible with the code it ran, and runs are often made from
    exports (no ``.git``) so that work in progress in a shared tree cannot leak into them."""
    try:
        stamped = (package_dir / "COMMIT").read_text().strip()
    except OSError:
        stamped = ""
    if len(stamped) == 40 and all(c in "0123456789abcdef" for c in stamped):
        return stamped
    root = package_dir.parent
    if not (root / ".git").exists():  # an installed or exported copy: no checkout to ask
        return "unknown"

    def git(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None

    head = git("rev-parse", "--verify", "HEAD")
    if head is None or head.returncode != 0:
        return "unknown"
    diff = git("diff", "--quiet", "HEAD", "--", "bdfl", "clients", "contracts")
    return head.stdout.strip() + ("+modified" if diff is None or diff.returncode != 0 else "")
