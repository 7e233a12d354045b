"""One auditor's audit at a given model size, built from real training, timed step by step (issue 23).

    .venv/bin/python experiments/audit_bench.py --size 11m            # 18 candidates, the default rule
    .venv/bin/python experiments/audit_bench.py --size small --candidates 99 --scheme iid --degree 24 --repeats 25 --cpu
                                                                      # one auditor's audit at N = 100, CPU seconds
    py-spy record -o /tmp/audit.txt --format raw -- .venv/bin/python experiments/audit_bench.py --size 11m

The audit is the one a committee member runs from round 2 on (:func:`bdfl.defense.audit.audit_updates`
with rebuilt trainer starts and earlier moves): 19 peers on digits shards (Dirichlet 0.5, as
``bdfl run``) train one round from a common start, each averages its own and 4 neighbours' models
into its round-2 start, trains again; peer 18 audits the other 18 (its own start and trained
model as reference; each candidate's rebuilt start and its round-1 move). ``--attackers A`` turns
the first A candidates into sign flips (x4) so that some verdicts are rejections.

Prints the seconds of each measurement of the audit (evaluation, parameter statistics, merged
losses, trigger scan, per-class accuracies, the detectors) and the whole audit, best of
``--repeats``, and each candidate's verdict.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bdfl.defense import audit as A  # noqa: E402
from bdfl.defense.aggregate import weighted_average  # noqa: E402
from bdfl.learning.data import make_peer_shards  # noqa: E402
from bdfl.learning.task import EvalResult, load_task  # noqa: E402
from bdfl.types import NDArrays  # noqa: E402

SIZES = {"small": "clients.digits", "wide": "clients.digits_wide", "1m": "clients.digits_1m", "4m": "clients.digits_4m",
         "11m": "clients.digits_11m"}


@dataclass
class AuditCase:
    """One auditor's inputs: its client, reference (trained) and start models, the candidates and
    their trainers' starts and earlier moves (in the models' dtype, as :meth:`bdfl.peer.node.Peer.rebuild_past_moves`)."""

    client: Any
    reference: NDArrays
    start: NDArrays
    candidates: list[NDArrays]
    starts: list[NDArrays]
    past: list[NDArrays]


def build_case(module: str, *, candidates: int = 18, attackers: int = 0, seed: int = 0, degree: int = 4,
               scheme: str = "dirichlet") -> AuditCase:
    """Train ``candidates + 1`` peers two rounds from one start (see the module docstring;
    ``scheme="iid"``: IID shards, as the time-to-accuracy benchmark's N = 100 run)."""
    task = load_task(module)
    ds = task.module.load_dataset(None)
    n = candidates + 1
    split = {"alpha": 0.5} if scheme == "dirichlet" else {}
    shards = make_peer_shards(ds, n, scheme=scheme, seed=seed, **split)
    cfg = {"local_epochs": 1}

    def fit(i: int, params: NDArrays, rnd: int) -> NDArrays:
        c = task.module.make_client(shards[i].train, shards[i].val, seed=seed * 1000 + i)
        return c.fit([np.array(a) for a in params], {**cfg, "server_round": rnd})[0]

    s0 = task.module.make_client(shards[0].train, shards[0].val, seed=seed).get_parameters({})
    u1 = [fit(i, s0, 1) for i in range(n)]
    starts = [weighted_average([u1[(i + d) % n] for d in range(degree + 1)]) for i in range(n)]
    u2 = [fit(i, starts[i], 2) for i in range(n)]
    past = [[np.subtract(u, s) for u, s in zip(u1[i], s0)] for i in range(candidates)]  # as rebuilt (float32)
    cands = list(u2[:candidates])
    for i in range(min(attackers, candidates)):  # sign flip, boosted
        cands[i] = [(s - 4 * (u - s)).astype(u.dtype) for u, s in zip(u2[i], starts[i])]
    me = candidates
    client = task.module.make_client(shards[me].train, shards[me].val, seed=seed * 1000 + me)
    return AuditCase(client, u2[me], starts[me], cands, starts[:candidates], past)


def timed_audit(case: AuditCase, rule: A.AuditRule, clock: Any = time.perf_counter) -> tuple[dict[str, float], list[A.AuditVerdict]]:
    """:func:`bdfl.defense.audit.audit_updates`'s steps one by one, each timed with ``clock``."""
    t: dict[str, float] = {}
    t0 = clock()
    reference, results = A.evaluate_candidates(case.client, case.reference, case.candidates)
    t["evaluate"] = clock() - t0
    valid = [isinstance(r, EvalResult) for r in results]
    t0 = clock()
    stats = A.candidate_statistics(case.reference, case.candidates, case.start, valid=valid, min_candidates=rule.min_candidates,
                                   candidate_starts=case.starts, candidate_past_moves=case.past)
    t["statistics"] = clock() - t0
    t0 = clock()
    merged = A.merged_losses(case.client, case.reference, case.candidates, valid) if rule.enabled("merge") else None
    t["merged"] = clock() - t0
    t0 = clock()
    trigger = A.trigger_evidence(case.client, case.reference, case.candidates, valid, rule)
    t["trigger"] = clock() - t0
    t0 = clock()
    classes = A.class_evidence(case.client, case.candidates, valid, rule)
    t["classes"] = clock() - t0
    t0 = clock()
    verdicts = A.judge(rule, reference, results, stats, merged, trigger, classes)
    t["judge"] = clock() - t0
    t["total"] = sum(t.values())
    return t, verdicts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=list(SIZES), default="1m")
    ap.add_argument("--candidates", type=int, default=18)
    ap.add_argument("--attackers", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--scheme", choices=("dirichlet", "iid"), default="dirichlet", help="the peers' shards")
    ap.add_argument("--degree", type=int, default=4, help="neighbours averaged into each peer's round-2 start")
    ap.add_argument("--cpu", action="store_true", help="time with time.process_time (CPU seconds) instead of wall seconds")
    ap.add_argument("--only", choices=("statistics", "merged", "audit"), default="audit",
                    help="time only this step (statistics / merged) or the whole audit")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    case = build_case(SIZES[args.size], candidates=args.candidates, attackers=args.attackers, degree=args.degree,
                      scheme=args.scheme)
    clock = time.process_time if args.cpu else time.perf_counter
    print(f"[{args.size}] case built in {time.perf_counter() - t0:.1f} s", flush=True)
    rule = A.AuditRule()
    best: dict[str, float] = {}
    verdicts: list[A.AuditVerdict] = []
    for _ in range(args.repeats):
        if args.only == "statistics":
            t0 = time.perf_counter()
            A.candidate_statistics(case.reference, case.candidates, case.start, min_candidates=rule.min_candidates,
                                   candidate_starts=case.starts, candidate_past_moves=case.past)
            t = {"statistics": time.perf_counter() - t0}
        elif args.only == "merged":
            t0 = time.perf_counter()
            A.merged_losses(case.client, case.reference, case.candidates, [True] * len(case.candidates))
            t = {"merged": time.perf_counter() - t0}
        else:
            t, verdicts = timed_audit(case, rule, clock)
        best = {k: min(v, best.get(k, float("inf"))) for k, v in t.items()}
    print("  ".join(f"{k} {v:.4f} s" for k, v in best.items()), flush=True)
    for i, v in enumerate(verdicts):
        print(f"  candidate {i}: {'accept' if v.accept else 'reject ' + ','.join(v.failed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
