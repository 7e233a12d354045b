"""What-if (issue 22): judge a move's length against the local steps its trainer's shard implies, so
that an honest small shard's short move is not a free-rider's.

Superseded in the library by a one-sided bound (``b5e5eb4``, :mod:`bdfl.defense.detectors.no_work`:
a candidate claiming fewer steps than the audit's median is credited median / its steps, no fitted
exponent); this script keeps the two-sided power it measured first, judged without that credit.

At seeds 46 and 49 of the default experiment the honest peer with the smallest shard (15 and 9
training samples; the median 54 / 56) fails the ``no_work`` test three rounds in a row and is slashed
once in a clean run (docs/results/robustness.md). The test compares each candidate's move length
with the other candidates'; a shard of 9 samples takes 1 batch an epoch where the median takes 6.

This script mirrors runs (:func:`audit_evidence_diag.capture`: the chain-free mirror of ``bdfl
run``, every honest auditor's audit recorded) and re-judges every audit's ``no_work`` finding with
each candidate's ``update_ratio`` divided by ``steps ** exponent``, ``steps = local_epochs x
ceil(n / batch_size)`` of its trainer's shard ``n``. The test scores a move against the median of
the audit, so the auditor's own steps cancel. In the library ``n`` would be the sample count the
trainer states on chain (self-reported, capped): a trainer that understates it excuses a shorter
move, not a zero one. It prints, per attack and seed, the fitted slope of log move length on log
steps over honest candidates (centred per audit) and the ``no_work`` failures among honest and
attacker candidates, before and after.

Run (seconds each):
    .venv/bin/python experiments/no_work_steps_whatif.py --seeds 46 49 0 --attacks none free_rider --exponents 0.25 0.5 1
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "experiments"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import audit_evidence_diag as diag  # noqa: E402
import audit_rule_eval as mirror  # noqa: E402
from bdfl.defense.detectors import build_detectors  # noqa: E402
from bdfl.experiment.setup import peer_data  # noqa: E402
from bdfl.learning.task import load_task  # noqa: E402


def shard_steps(attack: str, seed: int, attackers: float) -> np.ndarray:
    """Local SGD steps a round of each peer's shard takes in the mirrored run's config."""
    args = argparse.Namespace(**{k: None for k in (
        "peers", "rounds", "task", "alpha", "val_fraction", "local_epochs", "batch_size", "lr", "committee",
        "auditors_per_update", "quorum", "reject_percent", "approve_percent", "degree", "min_sources",
        "max_reject_share", "dissent_limit", "replay_window", "consistency_window", "slash_after_rejections")})
    args.attackers, args.no_rebuilt_starts, args.unbound_updates = attackers, False, False
    cfg = mirror.experiment_config(attack, seed, args)
    _, shards = peer_data(load_task(cfg.task.client), cfg)
    n = np.array([len(tr[1]) for tr, _ in shards], dtype=np.float64)
    return cfg.task.local_epochs * np.ceil(n / cfg.task.batch_size)


def no_work_failures(audits: list[dict], steps: np.ndarray, exponent: float) -> dict[str, list[int]]:
    """``{"honest": [failed, judged], "attacker": [failed, judged]}`` of ``no_work`` over ``audits``,
    with each candidate's move length divided by its trainer's ``steps ** exponent`` (0: the library)."""
    detector = next(d for d in build_detectors(mirror.DEFAULT_RULE.detectors) if d.name == "no_work")
    out = {"honest": [0, 0], "attacker": [0, 0]}
    for au in audits:
        ev = copy.copy(au["ev"])
        ev.steps = np.full(len(ev.valid), np.nan)  # the test without the library's one-sided credit (b5e5eb4)
        ev.update_ratio = np.asarray(ev.update_ratio, dtype=np.float64) / steps[np.asarray(au["trainers"])] ** exponent
        for finding, kind in zip(detector.judge(ev), au["kinds"]):
            if finding is not None:
                row = out["honest" if kind == "honest" else "attacker"]
                row[0] += int(finding.failed)
                row[1] += 1
    return out


def length_slope(audits: list[dict], steps: np.ndarray) -> float:
    """Slope of log move length on log steps over the honest candidates, each audit centred on its medians."""
    xs, ys = [], []
    for au in audits:
        r = np.asarray(au["ev"].update_ratio, dtype=np.float64)
        honest = np.array([k == "honest" for k in au["kinds"]]) & np.isfinite(r) & (r > 0)
        if honest.sum() >= 3:
            ls, lr = np.log(steps[np.asarray(au["trainers"])[honest]]), np.log(r[honest])
            xs.extend(ls - np.median(ls))
            ys.extend(lr - np.median(lr))
    return float(np.polyfit(xs, ys, 1)[0]) if len(xs) >= 2 and np.ptp(xs) > 0 else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[46, 49, 0])
    p.add_argument("--attacks", nargs="+", default=["none", "free_rider"], choices=list(mirror.ATTACK_SETTINGS))
    p.add_argument("--exponents", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    p.add_argument("--attackers", type=float, default=0.3)
    p.add_argument("--rounds", type=int, default=0, help="0: the library's (15)")
    a = p.parse_args(argv)
    print("attack, seed: slope of log move length on log steps | no_work failures honest / attacker candidates, "
          "library -> each exponent")
    for attack in a.attacks:
        for seed in a.seeds:
            audits, _ = diag.capture(None, attack, seed, a.attackers, a.rounds or None)
            steps = shard_steps(attack, seed, a.attackers)
            cells = []
            for e in (0.0, *a.exponents):
                f = no_work_failures(audits, steps, e)
                cells.append(f"{'library' if e == 0 else e}: {f['honest'][0]}/{f['honest'][1]}, {f['attacker'][0]}/{f['attacker'][1]}")
            print(f"{attack}, seed {seed}: slope {length_slope(audits, steps):.2f} | " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
