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
   and without its zero clamp; the default rule or a lone test of the own-anchored cosine at
   ``k`` 3 (:func:`anchored_direction_fails`). No variant is in the library
   (docs/results/robustness.md, "Approved attacks: diagnosis" and "Colluding label flipping at
   50 peers: diagnosis"). Section 2 also gives each cosine in honest units and the share of
   attacker votes beyond the honest 98th percentile: what an oracle-calibrated test could catch.
4. **Who decides** (:func:`vote_composition`): per update, whether the honest auditors' votes
   alone would have approved it, and per round the honest reject-vote shares by kind.

Run (seconds each):
    .venv/bin/python experiments/audit_evidence_diag.py --task clients.seattle_weather --attack fang --seed 12
    .venv/bin/python experiments/audit_evidence_diag.py --task clients.digits --attack fang --seed 11 --attackers 0.45
    .venv/bin/python experiments/audit_evidence_diag.py --attack label_flip_collude --seed 11 --peers 50
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
    pasts = [(_flat(p) if p is not None else None) for p in (kw.get("candidate_past_moves") or [None] * len(candidates))] \
        if _captured.get("keep_past") else [None] * len(candidates)
    _captured["raw"] = (own, moves, pasts)
    return _statistics(reference_params, candidates, start_params, **kw)


def capture(task: str | None, attack: str, seed: int, attackers: float, rounds: int | None,
            peers: int | None = None, keep_past: bool = False) -> tuple[list[dict], list[dict]]:
    """(every honest auditor's audit, per-round outcomes) of one mirrored run. Each audit: its round,
    the candidates' kinds and trainers (peer indices), the detectors' evidence, the own move, the
    candidates' moves (and, with ``keep_past``, their trainers' earlier moves) and the failed tests."""
    args = argparse.Namespace(**{k: None for k in (
        "alpha", "val_fraction", "local_epochs", "batch_size", "lr", "committee", "auditors_per_update", "quorum",
        "reject_percent", "approve_percent", "degree", "min_sources", "max_reject_share", "dissent_limit", "replay_window",
        "consistency_window", "slash_after_rejections")})
    args.peers, args.rounds, args.task, args.attackers, args.no_rebuilt_starts, args.unbound_updates = peers, rounds, task, attackers, False, False
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
                _captured["keep_past"] = keep_past
                with audit.observe_audits(lambda ev, vs: seen.append((ev, vs))):
                    res = stages.audit.judge(e, x, fetched, m.attacker_addrs, rebuilt)
                if isinstance(res, ClientFailure):
                    continue
                judged = mirror.judged_candidates(x, res)
                if judged and seen and e.address not in m.attacker_addrs and "raw" in _captured:
                    ev, verdicts = seen[0]
                    own, moves, pasts = _captured["raw"]
                    audits.append({"round": r + 1, "kinds": np.array([m.kind(c.peer) for c in judged]), "ev": ev,
                                   "own": own, "moves": moves, "past": pasts, "trainers": [m.index_of[c.peer] for c in judged],
                                   "failed": [v.failed for v in verdicts]})
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
                "honest_left_out": sum(outcomes.get(m.addresses[i]) in (Outcome.UNDECIDED, Outcome.PROBATION) for i in honest),
                "attackers_on_committee": sum(a in m.attacker_addrs for a in m.chain.view.committee(r)),
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
            zh, za = _honest_units(s, kinds)
            cols[label].setdefault("z_honest", []).extend(zh)
            cols[label].setdefault("z_attacker", []).extend(za)
    q = lambda v: f"{np.median(v):5.2f} [{np.quantile(v, .05):5.2f}, {np.quantile(v, .95):5.2f}]" if v else "  -"  # noqa: E731
    for label, d in cols.items():
        print(f"   {label:30s} {q(d.get('honest', []))} | {q(d.get('attacker', []))}")
    print("   the same cosines in honest units (bad side positive): attackers' median z; the honest 98th percentile; the share of\n"
          "   attacker votes beyond it (the most a test at 2 % honest reject votes, calibrated by an oracle, could catch)")
    for label, d in cols.items():
        zh, za = np.array(d.get("z_honest", [])), np.array(d.get("z_attacker", []))
        if len(zh) and len(za):
            bar = float(np.quantile(zh, 0.98))
            print(f"   {label:30s} {np.median(za):6.2f}  {bar:6.2f}  {np.mean(za > bar):5.2f}")


def _honest_units(values: np.ndarray, kinds: np.ndarray) -> tuple[list[float], list[float]]:
    """(honest, attackers') values of one audit in honest units, low values bad (positive z: bad side)."""
    h = values[kinds == "honest"]
    h = h[np.isfinite(h)]
    if len(h) < 3:
        return [], []
    med = float(np.median(h))
    mad = 1.4826 * float(np.median(np.abs(h - med)))
    if not mad > 0:
        return [], []
    z = (med - values) / mad
    return [float(x) for x in z[kinds == "honest"] if np.isfinite(x)], [float(x) for x in z[kinds == "attacker"] if np.isfinite(x)]


def update_votes(audits: list[dict]) -> dict[tuple[int, int], list]:
    """(round, trainer) -> [honest auditors' votes, of them rejecting, kind] over the recorded audits."""
    out: dict[tuple[int, int], list] = {}
    for a in audits:
        for i, t in enumerate(a["trainers"]):
            u = out.setdefault((a["round"], t), [0, 0, a["kinds"][i]])
            u[0] += 1
            u[1] += bool(a["failed"][i])
    return out


def vote_composition(audits: list[dict], per_round: list[dict]) -> dict[str, Any]:
    """Who decides: per update, the honest auditors' votes alone. An update is approved when its
    accepts exceed half of the revealed votes, so honest auditors alone would *not* approve it
    when at least half of their votes reject it. Returns, per kind, the updates judged by honest
    auditors, their reject votes of votes, the updates they alone would not approve and those with
    no honest reject at all; and per round the honest reject-vote shares by kind."""
    per_update = update_votes(audits)
    out: dict[str, Any] = {}
    for kind in ("honest", "attacker"):
        us = [u for u in per_update.values() if u[2] == kind]
        out[kind] = {"updates": len(us), "rejects": sum(u[1] for u in us), "votes": sum(u[0] for u in us),
                     "honest_majority_blocks": sum(2 * u[1] >= u[0] for u in us if u[0]),
                     "no_honest_reject": sum(u[1] == 0 for u in us)}
    rounds = []
    for row in per_round:
        r = row["round"]
        shares = {}
        for kind in ("honest", "attacker"):
            votes = [(bool(f), 1) for a in audits if a["round"] == r for f, k in zip(a["failed"], a["kinds"]) if k == kind]
            shares[kind] = (sum(v[0] for v in votes), len(votes))
        rounds.append({"round": r, **shares})
    out["rounds"] = rounds
    return out


def print_vote_composition(audits: list[dict], per_round: list[dict]) -> None:
    c = vote_composition(audits, per_round)
    print("4. who decides: honest auditors' votes per update (an update is approved when accepts exceed half of the revealed votes)")
    for kind in ("attacker", "honest"):
        d = c[kind]
        if d["updates"]:
            print(f"   {kind} updates {d['updates']}: honest reject votes {d['rejects']}/{d['votes']} ({100 * d['rejects'] / max(d['votes'], 1):.1f} %), "
                  f"honest votes alone would not approve {d['honest_majority_blocks']}, no honest reject {d['no_honest_reject']}")
    r = lambda x: f"{x[0]}/{x[1]}" if x[1] else "-"  # noqa: E731
    print("   per round, honest reject votes on attacker | honest updates: " + "; ".join(
        f"r{x['round']} {r(x['attacker'])} | {r(x['honest'])}" for x in c["rounds"]))


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


def anchored_direction_fails(ev: Any, k: float = 3.0) -> np.ndarray:
    """Variant (not in the library): a candidate fails when its cosine with the own-anchored
    consensus (``ev.cosine`` already replaced) lies more than ``k`` spreads (widened for the
    audit's candidates, as every detector's) below the candidates' centre, centre and spread with
    one reweighting step (:func:`bdfl.defense.detectors.calibration.reweighted_centre_spread`, as
    the joint test's); it rejects alone (no corroboration)."""
    from bdfl.defense.detectors.calibration import reweighted_centre_spread, small_sample_factor
    cos = ev.values("cosine")
    if int(np.isfinite(cos).sum()) < 3:
        return np.zeros(len(cos), bool)
    centre, spread = reweighted_centre_spread(cos, "low", 0.05)
    with np.errstate(invalid="ignore"):
        return cos < centre - k * small_sample_factor(int(np.sum(ev.valid))) * spread


def rejudged(audits: list[dict]) -> None:
    print("3. offline re-judging, honest auditors' votes to reject: honest | attackers")
    rule = mirror.DEFAULT_RULE
    lone = "+ anchored direction alone, k 3"
    counts = {v: {"honest": [0, 0], "attacker": [0, 0]} for v in ("default rule", "own-anchored consensus", "consistency in angle, no clamp", lone)}
    installed = consistency.ConsistencyDetector.judge
    try:
        for a in audits:
            ev = a["ev"]
            variants = {"default rule": (ev, _LIBRARY_CONSISTENCY), "consistency in angle, no clamp": (ev, _consistency_in_angle)}
            if a["own"] is not None and all(x is not None for x in a["moves"]):
                ev2 = copy.copy(ev)
                ev2.cosine = np.where(ev.valid, anchored_cosines(np.array(a["moves"]), a["own"]), math.nan)
                variants["own-anchored consensus"] = (ev2, _LIBRARY_CONSISTENCY)
            failed = {}
            for v, (e, judge) in variants.items():
                consistency.ConsistencyDetector.judge = judge
                failed[v] = audit.rejudge(rule, e)
            if "own-anchored consensus" in variants:  # the library rule, or the anchored cosine alone past its bar
                failed[lone] = [bool(f) or bool(x) for f, x in zip(failed["default rule"], anchored_direction_fails(variants["own-anchored consensus"][0]))]
            for v, fs in failed.items():
                for i, f in enumerate(fs):
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
    p.add_argument("--peers", type=int, help="peers (default: the library's, 20)")
    p.add_argument("--save", type=Path, help="pickle (audits, per-round outcomes) here, for offline analysis")
    p.add_argument("--past", action="store_true", help="also keep each candidate's trainer's earlier move (memory: 2x the moves)")
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
    audits, per_round = capture(a.task, a.attack, a.seed, a.attackers, a.rounds or None, a.peers, a.past)
    if a.save:
        import pickle
        a.save.write_bytes(pickle.dumps((audits, per_round)))
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
    print_vote_composition(audits, per_round)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
