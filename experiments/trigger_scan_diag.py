"""Why the trigger scan misses a backdoor: its scores, its bar, and each candidate's success on
the attack's real trigger, per audit, in the chain-free mirror (experiments/audit_rule_eval.py).

The scan (:mod:`bdfl.defense.detectors.trigger`) is wrapped, not changed: every audit's evidence
is kept with, for each candidate, the share of the auditor's inputs (not already the target)
that the attack's own trigger (``Attack.trigger``) sends to its target. A candidate is counted
as *backdoored* when that share is above 0.5. Reported per audit (first ``--show``), then
pooled: the honest and backdoored candidates' scores and the bar the detector used.

``--search N``: for the first N audits also a Neural-Cleanse-lite probe (Wang et al., S&P'19),
a feasibility check for an optimised trigger search, not a detector: for every candidate and
class, ``--steps`` Adam steps on a mask and a pattern over the auditor's scanned inputs
(cross-entropy to the class + ``--lam`` x mask L1); printed is each candidate's smallest mask
(L1, pixels) that sends >= 75 % of the inputs to a class, and that class.

Run:  .venv/bin/python experiments/trigger_scan_diag.py --attack backdoor_4x4 --seeds 11 --rounds 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import audit_rule_eval  # noqa: E402

from bdfl.attacks import make_attack  # noqa: E402
from bdfl.defense import audit as audit_module  # noqa: E402
from bdfl.defense.detectors import trigger as trigger_module  # noqa: E402

BACKDOORED = 0.5
#: the probe's mask reaches a class when this share of the inputs goes there
REACHED = 0.75


def smallest_masks(client: Any, params: Any, X: np.ndarray, steps: int, lam: float) -> np.ndarray:
    """Per class: L1 of the optimised mask that sends >= REACHED of ``X`` there (inf if none)."""
    client.set_parameters(list(params))
    model = client.model
    model.eval()
    x = torch.tensor(X, dtype=torch.float32)
    lo, hi = float(X.min()), float(X.max())
    out = []
    with torch.enable_grad():
        for c in range(int(model(x[:1]).shape[1])):
            m = torch.full(x.shape[-2:], -2.0, requires_grad=True)
            p = torch.zeros(x.shape[-2:], requires_grad=True)
            opt = torch.optim.Adam([m, p], lr=0.2)
            y = torch.full((len(x),), c)
            for _ in range(steps):
                M, P = torch.sigmoid(m), lo + (hi - lo) * torch.sigmoid(p)
                loss = torch.nn.functional.cross_entropy(model(x * (1 - M) + P * M), y) + lam * M.sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                M, P = torch.sigmoid(m), lo + (hi - lo) * torch.sigmoid(p)
                reached = (model(x * (1 - M) + P * M).argmax(1) == c).float().mean().item() >= REACHED
            out.append(M.sum().item() if reached else np.inf)
    model.zero_grad(set_to_none=True)
    return np.array(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--attack", default="backdoor_2x2", choices=[k for k, (n, _) in audit_rule_eval.ATTACK_SETTINGS.items()
                                                                  if n in ("backdoor", "dba")])
    p.add_argument("--seeds", nargs="+", type=int, default=[11])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--show", type=int, default=6, help="audits printed one by one")
    p.add_argument("--search", type=int, default=0, help="audits probed with the optimised trigger search")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--lam", type=float, default=0.05)
    p.add_argument("--task", default="", help="task.client (default: the mirror's, digits)")
    args = p.parse_args(argv)
    name, params = audit_rule_eval.ATTACK_SETTINGS[args.attack]
    attack = make_attack(name, **params)
    target = int(params.get("target_label", 0))
    records: dict[int, tuple[Any, list[float]]] = {}
    bars: dict[int, float] = {}
    scan, judge = trigger_module.scan, trigger_module.TriggerDetector.judge
    evidence = audit_module.trigger_evidence
    searched = [0]

    def traced_evidence(client, reference_params, candidates, valid, rule, seed=None):  # noqa: ANN001, ANN202
        ev = evidence(client, reference_params, candidates, valid, rule, seed)
        if ev is not None and searched[0] < args.search:
            searched[0] += 1
            X = last_inputs[0]
            own = smallest_masks(client, reference_params, X, args.steps, args.lam)
            print(f"search, audit {searched[0]}: own model's smallest mask {own.min():.1f} (class {own.argmin()})")
            for c, ok, success in zip(candidates, valid, records[id(ev)][1]):
                if ok:
                    n = smallest_masks(client, c, X, args.steps, args.lam)
                    print(f"  {'backdoored' if success > BACKDOORED else 'honest    '} smallest mask {n.min():5.1f} "
                          f"(class {n.argmin()}), to the target {n[target]:5.1f}")
        return ev

    last_inputs: list[np.ndarray] = [np.zeros(0)]

    def traced_scan(predict, X, own, candidates, valid, family):  # noqa: ANN001, ANN202
        ev = scan(predict, X, own, candidates, valid, family)
        X = np.asarray(X)
        last_inputs[0] = X
        success = []
        for c in candidates:
            clean, stamped = np.asarray(predict(c, X)), np.asarray(predict(c, attack.trigger(X)))
            success.append(float((stamped[clean != target] == target).mean()))
        if ev is not None:
            records[id(ev)] = (ev, success)
        return ev

    def traced_judge(self, ev):  # noqa: ANN001, ANN202
        out = judge(self, ev)
        if ev.trigger is not None and id(ev.trigger) not in bars:
            bars[id(ev.trigger)] = next((f.threshold for f in out if f is not None), float("nan"))
        return out

    trigger_module.scan = traced_scan
    trigger_module.TriggerDetector.judge = traced_judge
    audit_module.trigger_evidence = traced_evidence
    ns = audit_rule_eval.main(["--attacks", args.attack, "--seeds", *map(str, args.seeds), "--rounds", str(args.rounds),
                               *(["--task", args.task] if args.task else [])])
    honest, bad = [], []
    print(f"\n{args.attack}: audit | bar | max honest score | backdoored candidates' scores")
    for i, (key, (ev, success)) in enumerate(records.items()):
        scores = trigger_module.trigger_scores(ev, 3)[0]
        h = [s for s, a in zip(scores, success) if not np.isnan(s) and a <= BACKDOORED]
        b = [s for s, a in zip(scores, success) if not np.isnan(s) and a > BACKDOORED]
        honest += h
        bad += b
        if i < args.show:
            print(f"{i:3d} | {bars.get(key, float('nan')):.2f} | {max(h, default=float('nan')):.2f} | "
                  + " ".join(f"{s:.2f}" for s in sorted(b)))
    q = [0.5, 0.9, 0.98, 1.0]
    print(f"pooled over {len(records)} audits: honest (n {len(honest)}) q50/q90/q98/max "
          + " / ".join(f"{x:.2f}" for x in np.quantile(honest, q)) if honest else "no honest candidates")
    if bad:
        print(f"backdoored (n {len(bad)}) min/q10/q50 " + " / ".join(f"{x:.2f}" for x in np.quantile(bad, [0, 0.1, 0.5])))
    print(f"bars: min {min(bars.values()):.2f}, median {np.median(list(bars.values())):.2f}" if bars else "no bars")
    return int(ns or 0)


if __name__ == "__main__":
    raise SystemExit(main())
