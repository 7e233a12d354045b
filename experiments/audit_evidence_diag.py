"""Why approved attacks are approved: per-audit evidence of a mirrored run (issue 22, engineer F).

Runs one attack in the chain-free mirror of `bdfl run` (:mod:`audit_rule_eval`: the same round
engine, audit rule and committee) and records every **honest** auditor's audit: the detectors'
measurements (:class:`bdfl.defense.detectors.Evidence`, through
:func:`bdfl.defense.audit.observe_audits`) and the candidates' raw moves and the auditor's own
move (captured from :func:`bdfl.defense.audit.candidate_statistics`'s inputs). It prints:

1. **What each detector saw against what is there.** Per measurement, the attackers' median
   ``z`` as the detector computed it (centre and spread from all candidates of the audit,
   attackers included) and in *honest units*: (value - median of the honest candidates of the
   same audit) / (1.4826 x their MAD), signed so that positive is the bad side.
2. **Whose direction the consensus is.** The cosine of each move with the coordinate-wise median
   of the candidates' and the auditor's moves (the audit's consensus, ``cosine``), with the
   auditor's own move, with the honest candidates' mean (an oracle no auditor has), and with an
   *own-anchored* consensus: the sum of the unit moves of the half of the candidates that agree
   most with the auditor's own move (iterated 3 times, the candidate itself left out).
3. **Offline re-judging** of the same audits (vote level, honest auditors): the default rule;
   the default rule with the own-anchored consensus in place of the coordinate median (for the
   direction and joint detectors); the default rule with the consistency test in angle units
   and without its zero clamp. Neither variant is in the library (docs/results/robustness.md,
   "Approved attacks: diagnosis").

Run (seconds each):
    .venv/bin/python experiments/audit_evidence_diag.py --task clients.seattle_weather --attack fang --seed 12
    .venv/bin/python experiments/audit_evidence_diag.py --task clients.digits --attack fang --seed 11 --attackers 0.45
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from eth_utils import keccak

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "experiments"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import audit_rule_eval as mirror  # noqa: E402
import bdfl.defense.audit as audit  # noqa: E402
import bdfl.defense.detectors.consistency as consistency  # noqa: E402
from bdfl.chain.protocol import Outcome  # noqa: E402
from bdfl.defense.detectors.base import enough  # noqa: E402
from bdfl.defense.detectors.calibration import one_sided_bar  # noqa: E402
from bdfl.peer import stages  # noqa: E402
from bdfl.peer.engine import ClientFailure  # noqa: E402

mirror.ATTACK_SETTINGS.setdefault("sign_flip_x4", ("sign_flip", {"scale": 4.0}))  # the sweep's (issue 22)
mirror.ATTACK_SETTINGS.setdefault("label_flip_default", ("label_flip", {}))  # the default experiment's

_captured: dict[str, Any] = {}
_statistics = audit.candidate_statistics


def _flat(params: Any) -> np.ndarray:
    return np.concatenate([np.asarray(a, np.float64).ravel() for a in params])


def _capturing_statistics(reference_params: Any, candidates: Any, start_params: Any = None, **kw: Any) -> Any:
    """:func:`bdfl.defense.audit.candidate_statistics`, keeping the moves it measures."""
    starts = kw.get("candidate_starts") or [None] * len(candidates)
    own = _flat(reference_params) - _flat(start_params) if start_params is not None else None
    moves = []
    for c, s in zip(candidates, starts):
        try:
            moves.append(_flat(c) - (_flat(s) if s is not None else _flat(start_params)))
        except Exception:  # an invalid candidate: not judged
            moves.append(None)
    _captured["raw"] = (own, moves)
    return _statistics(reference_params, candidates, start_params, **kw)


def capture(task: str | None, attack: str, seed: int, attackers: float, rounds: int | None) -> tuple[list[dict], list[dict]]:
    """(every honest auditor's audit, per-round outcomes) of one mirrored run."""
    args = argparse.Namespace(**{k: None for k in (
        "peers", "alpha", "val_fraction", "local_epochs", "batch_size", "lr", "committee", "auditors_per_update", "quorum",
        "reject_percent", "approve_percent", "degree", "min_sources", "max_reject_share", "dissent_limit", "replay_window",
        "consistency_window", "slash_after_rejections")})
    args.rounds, args.task, args.attackers, args.no_rebuilt_starts, args.unbound_updates = rounds, task, attackers, False, False
    torch.set_num_threads(1)
    cfg = mirror.experiment_config(attack, seed, args)
    m = mirror.Mirror(cfg, mirror.DEFAULT_RULE)
    honest = [i for i in range(cfg.peers) if i not in m.attackers]
    audits, per_round = [], []
    audit.candidate_statistics = _capturing_statistics
    try:
        for r in range(cfg.rounds):
            m.train_publish_submit(r)
            auditors, inputs, fetched, rebuilt = m.committee_audit_inputs(r)
            for e in auditors:
                x = inputs[e.address]
                seen: list = []
                _captured.clear()
                with audit.observe_audits(lambda ev, vs: seen.append((ev, vs))):
                    res = stages.audit.judge(e, x, fetched, m.attacker_addrs, rebuilt)
                if isinstance(res, ClientFailure):
                    continue
                fresh = x.fresh()
                if fresh and seen and e.address not in m.attacker_addrs and "raw" in _captured:
                    ev, verdicts = seen[0]
                    own, moves = _captured["raw"]
                    audits.append({"round": r + 1, "kinds": np.array([m.kind(c.peer) for c in fresh]), "ev": ev,
                                   "own": own, "moves": moves, "failed": [v.failed for v in verdicts]})
                stages.commit.commit(e, r, res.indices, res.accept, lambda ix, acc, salt, a=e.address, r=r: keccak(
                    repr((r, a, list(ix), list(acc))).encode() + salt))
            for e in auditors:
                v = stages.reveal.reveal(e, r)
                if v is not None:
                    m.chain.reveal(e.address, v.indices, v.accept)
            outcomes = dict(zip((s.peer for s in m.chain.view.subs[r]), m.chain.finalize()))
            m.aggregate(r)
            rep = [m.chain.reputation(a) for a in m.addresses]
            per_round.append({
                "round": r + 1, "honest_accuracy": float(np.mean([m.accuracy(i) for i in honest])),
                "attackers_approved": sum(outcomes.get(m.addresses[i]) == Outcome.APPROVED for i in m.attackers),
                "honest_rejected": sum(outcomes.get(m.addresses[i]) == Outcome.REJECTED for i in honest),
                "attacker_reputation": float(np.mean([rep[i] for i in m.attackers])) if m.attackers else math.nan,
                "min_honest_reputation": float(min(rep[i] for i in honest))})
    finally:
        audit.candidate_statistics = _statistics
    return audits, per_round


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=-1, keepdims=True), 1e-12)


def anchored_cosines(moves: np.ndarray, own: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Each move's cosine with the own-anchored consensus (module docstring, 2)."""
    U, o, m = _unit(moves), _unit(own), len(moves)
    half, ref = math.ceil(m / 2), o
    for _ in range(iterations):
        top = np.argsort(-(U @ _unit(ref)))[:half]
        ref = U[top].sum(0) + o
    return np.array([U[i] @ _unit(U[[j for j in top if j != i]].sum(0) + o) for i in range(m)])


#: measurement -> (Evidence field, transform, bad side, the detector whose z is reported)
MEASUREMENTS = {
    "distance to own model (log)": ("distance", np.log, "high", "distance"),
    "cosine with consensus": ("cosine", None, "low", "direction"),
    "cosine with own move": ("own_cosine", None, "low", None),
    "move length / own (log)": ("update_ratio", np.log, "high", None),
    "cosine with own earlier move": ("history_cosine", None, "low", "consistency"),
    "coherent shift": ("shift", None, "high", "shift"),
    "accuracy": ("accuracy", None, "low", "accuracy"),
    "loss (log)": ("loss", np.log, "high", "loss"),
    "merged loss (log)": ("merged_loss", np.log, "high", "merge"),
}


def honest_units(audits: list[dict]) -> None:
    print("1. attackers' median z (bad side positive): as the detector computed it | in honest units "
          "[10 %-90 % of attackers' honest-unit z]")
    for label, (name, fn, bad, det) in MEASUREMENTS.items():
        seen, real = [], []
        for a in audits:
            v = np.asarray(getattr(a["ev"], name), float)
            v = fn(v) if fn is not None else v
            h, att = v[a["kinds"] == "honest"], v[a["kinds"] == "attacker"]
            h = h[np.isfinite(h)]
            if len(h) < 3 or not len(att):
                continue
            med = float(np.median(h))
            mad = 1.4826 * float(np.median(np.abs(h - med)))
            sign = 1 if bad == "high" else -1
            real += [sign * (x - med) / mad for x in att if np.isfinite(x) and mad > 0]
            if det is not None:
                for i in np.flatnonzero(a["kinds"] == "attacker"):
                    f = next((f for f in audit_findings(a, i) if f.name == det), None)
                    if f is not None and math.isfinite(f.z):
                        seen.append(f.z)
        if real:
            s = f"{np.median(seen):6.2f}" if seen else "     -"
            print(f"   {label:30s} {s} | {np.median(real):6.2f} [{np.quantile(real, .1):6.2f}, {np.quantile(real, .9):6.2f}]")


def audit_findings(a: dict, i: int) -> list:
    if "findings" not in a:
        from bdfl.defense.detectors import build_detectors, run_detectors
        a["findings"] = run_detectors(build_detectors(mirror.DEFAULT_RULE.detectors), a["ev"])
    return a["findings"][i]


def consensus(audits: list[dict]) -> None:
    print("2. cosine of the move with ...: honest median [5 %, 95 %] | attackers median [5 %, 95 %]")
    cols: dict[str, dict[str, list[float]]] = {}
    for a in audits:
        ok = [x is not None for x in a["moves"]]
        if a["own"] is None or sum(ok) < 3:
            continue
        M = np.array([x for x in a["moves"] if x is not None])
        kinds = a["kinds"][ok]
        H = M[kinds == "honest"]
        cm = np.median(np.vstack([M, a["own"]]), axis=0)
        for label, s in (("consensus (coordinate median)", _unit(M) @ _unit(cm)), ("own move", _unit(M) @ _unit(a["own"])),
                         ("honest mean (oracle)", _unit(M) @ _unit(H.mean(0))), ("own-anchored consensus", anchored_cosines(M, a["own"]))):
            for k in ("honest", "attacker"):
                cols.setdefault(label, {}).setdefault(k, []).extend(s[kinds == k])
    q = lambda v: f"{np.median(v):5.2f} [{np.quantile(v, .05):5.2f}, {np.quantile(v, .95):5.2f}]" if v else "  -"  # noqa: E731
    for label, d in cols.items():
        print(f"   {label:30s} {q(d.get('honest', []))} | {q(d.get('attacker', []))}")


_LIBRARY_CONSISTENCY = consistency.ConsistencyDetector.judge


def _consistency_in_angle(self: Any, ev: Any) -> list:
    """The consistency test in angle units, without its zero clamp (variant, not the library's)."""
    cos = ev.values("history_cosine")
    if not enough(cos, self.min_candidates):
        return [None] * len(ev.valid)
    k = self.k_for(ev)
    th = np.arccos(np.clip(cos, -1, 1))
    bar, spread = one_sided_bar(th, k, "high", 0.1)
    med = float(np.nanmedian(th))
    return [None if math.isnan(c) else self.finding(c, math.cos(min(bar, math.pi)), math.acos(max(-1, min(1, c))) > bar, "",
                                                    (math.acos(max(-1, min(1, c))) - med) / spread, k) for c in ev.history_cosine]


def rejudged(audits: list[dict]) -> None:
    print("3. offline re-judging, honest auditors' votes to reject: honest | attackers")
    rule = mirror.DEFAULT_RULE
    counts = {v: {"honest": [0, 0], "attacker": [0, 0]} for v in ("default rule", "own-anchored consensus", "consistency in angle, no clamp")}
    installed = consistency.ConsistencyDetector.judge
    try:
        for a in audits:
            ev = a["ev"]
            variants = {"default rule": (ev, _LIBRARY_CONSISTENCY), "consistency in angle, no clamp": (ev, _consistency_in_angle)}
            if a["own"] is not None and all(x is not None for x in a["moves"]):
                ev2 = copy.copy(ev)
                ev2.cosine = np.where(ev.valid, anchored_cosines(np.array(a["moves"]), a["own"]), math.nan)
                variants["own-anchored consensus"] = (ev2, _LIBRARY_CONSISTENCY)
            for v, (e, judge) in variants.items():
                consistency.ConsistencyDetector.judge = judge
                for i, f in enumerate(audit.rejudge(rule, e)):
                    if ev.valid[i]:
                        counts[v][a["kinds"][i]][0] += bool(f)
                        counts[v][a["kinds"][i]][1] += 1
    finally:
        consistency.ConsistencyDetector.judge = installed
    r = lambda c: f"{c[0]}/{c[1]} ({100 * c[0] / c[1]:.1f} %)" if c[1] else "-"  # noqa: E731
    for v, c in counts.items():
        print(f"   {v:32s} {r(c['honest']):>18s} | {r(c['attacker']):>18s}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", help="task.client (default: the library's, digits)")
    p.add_argument("--attack", default="fang", choices=list(mirror.ATTACK_SETTINGS))
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--attackers", type=float, default=0.3)
    p.add_argument("--rounds", type=int, default=6, help="0: the library's (15)")
    p.add_argument("--vote-consistency-in-angle", action="store_true",
                   help="auditors vote with the consistency test in angle units, without its zero clamp (a variant)")
    p.add_argument("--fang-fixed-draw", action="store_true",
                   help="Fang draws the same uniform numbers every round (an attacker that knows the consistency test)")
    a = p.parse_args(argv)
    if a.vote_consistency_in_angle:
        consistency.ConsistencyDetector.judge = _consistency_in_angle
    if a.fang_fixed_draw:
        import bdfl.attacks.fang as fang
        draw = fang.fang_trimmed_move
        fang.fang_trimmed_move = lambda moves, rng, b=2.0: draw(moves, np.random.default_rng(0), b)
    audits, per_round = capture(a.task, a.attack, a.seed, a.attackers, a.rounds or None)
    print(f"{a.task or 'digits'}, {a.attack}, seed {a.seed}, {a.attackers:.0%} attackers: {len(audits)} honest audits")
    for row in per_round:
        print("   " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    below = [row["attacker_reputation"] < row["min_honest_reputation"] for row in per_round]
    sep = next((t + 1 for t in range(len(below)) if all(below[t:])), None)
    print(f"   total: attacker updates approved {sum(r['attackers_approved'] for r in per_round)}, honest updates rejected "
          f"{sum(r['honest_rejected'] for r in per_round)}, separated from round {sep}")
    if any((x["kinds"] == "attacker").any() for x in audits):
        honest_units(audits)
        consensus(audits)
    rejudged(audits)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
