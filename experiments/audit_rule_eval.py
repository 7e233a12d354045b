"""Measure the audit rule: honest false-rejection rate and attacker detection rate.

Setup (defaults mirror bdfl.config): 20 peers on scikit-learn digits, Dirichlet(alpha=0.5)
label skew, 20% of each peer's shard held out for validation, 30% attackers, 10 rounds of
FedAvg-like training. Every round all peers train from the current global model
(local_epochs=1, batch_size=16, lr=0.05); attackers poison; a random committee of 7
honest peers audits: every update gets 3 committee members (never its author), each
auditor runs the audit rule over all updates assigned to it (its own model after this
round's training as the reference), and an update is accepted with >= 2 accept votes
(the quorum). The global model becomes the sample-weighted mean of the accepted models.
Repeated over several seeds.

Reported per attack:
* vote FRR  — share of auditor votes on honest updates that reject;
* vote DR   — share of auditor votes on attackers' updates that reject;
* decision FRR / DR — the same for the quorum decision;
* final test accuracy of the global model.
The same evaluations are also judged by a few alternative rules (for docs/learning.md).

Run:  .venv/bin/python experiments/audit_rule_eval.py [--seeds 0 1 2] [--json out.json]
Takes well under 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bdfl.attacks import AttackContext, attacker_update, make_attack  # noqa: E402
from bdfl.learning.aggregation import weighted_average  # noqa: E402
from bdfl.learning.audit import AuditRule, evaluate_candidates, judge  # noqa: E402
from bdfl.learning.data import make_peer_shards  # noqa: E402
from bdfl.learning.task import evaluate_client, fit_client, load_task  # noqa: E402

# label -> (attack name, parameters)
ATTACK_SETTINGS = {
    "none": ("none", {}),
    "label_flip": ("label_flip", {"mode": "reverse"}),
    "sign_flip": ("sign_flip", {"scale": 1.0}),
    "sign_flip_x3": ("sign_flip", {"scale": 3.0}),
    "gaussian_noise": ("gaussian_noise", {"sigma": 0.5}),
    "alie": ("alie", {}),
    "ipm": ("ipm", {"epsilon": 0.5}),
    "scaling": ("scaling", {"boost": 10.0}),
}

RULES = {
    "default": AuditRule(),
    "accuracy only": AuditRule(metric="accuracy"),
    "loss only": AuditRule(metric="loss"),
    "own reference only": AuditRule(reference="own"),
    "median only": AuditRule(reference="median"),
    "margin 0.1": AuditRule(margin=0.1),
}


def run(attack_name: str, seed: int, args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    task = load_task("clients.digits")
    ds = task.load_dataset(None)
    hparams = {"local_epochs": args.local_epochs, "batch_size": args.batch_size, "lr": args.lr}
    shards = make_peer_shards(
        ds, args.peers, scheme="dirichlet", alpha=args.alpha, seed=seed, val_fraction=args.val_fraction, min_size=20
    )
    rng = np.random.default_rng(seed + 10_000)
    n_att = int(round(args.attackers * args.peers)) if attack_name != "none" else 0
    attackers = set(rng.choice(args.peers, size=n_att, replace=False).tolist())
    honest_ids = [i for i in range(args.peers) if i not in attackers]
    name, params = ATTACK_SETTINGS[attack_name]
    attack = make_attack(name, **params)
    clients = []
    for i, sh in enumerate(shards):
        X, y = sh.train
        if i in attackers and attack.poisons_data:
            X, y = attack.poison_data(X, y, np.random.default_rng([seed, i]), num_classes=ds.num_classes)
        clients.append(task.make_client((X, y), sh.val, seed=seed * 1000 + i, hparams=hparams))
    test_eval = task.evaluator(*ds.test, hparams=hparams)
    w = task.initial_parameters(ds, seed=seed, hparams=hparams)

    votes = {name: defaultdict(lambda: [0, 0]) for name in RULES}  # rule -> kind -> [rejects, total]
    committee_stats = defaultdict(lambda: [0, 0])
    train_time = 0.0
    for r in range(args.rounds):
        t0 = time.perf_counter()
        fits = [fit_client(c, w, {"round": r}) for c in clients]
        train_time += time.perf_counter() - t0
        honest_models = [fits[i].parameters for i in honest_ids]
        published = []
        for i, fr in enumerate(fits):
            if i in attackers:
                ctx = AttackContext(
                    round=r,
                    trained=fr.parameters,
                    reference=w,
                    honest_updates=honest_models,
                    rng=np.random.default_rng([seed, i, r]),
                    num_peers=args.peers,
                    num_attackers=n_att,
                )
                published.append(attacker_update(attack, ctx))
            else:
                published.append(fr.parameters)
        # committee of honest peers; each update gets `auditors_per_update` of them
        committee = rng.choice(honest_ids, size=min(args.committee, len(honest_ids)), replace=False).tolist()
        assigned: dict[int, list[int]] = {a: [] for a in committee}
        for j in range(args.peers):
            pool = [a for a in committee if a != j]
            for a in rng.choice(pool, size=min(args.auditors_per_update, len(pool)), replace=False):
                assigned[int(a)].append(j)
        yes: dict[int, int] = defaultdict(int)
        for a, js in assigned.items():
            if not js:
                continue
            ref_params = fits[a].parameters if args.reference == "trained" else w
            ref, results = evaluate_candidates(clients[a], ref_params, [published[j] for j in js])
            for name, rule in RULES.items():
                for j, v in zip(js, judge(rule, ref, results)):
                    kind = "attacker" if j in attackers else "honest"
                    votes[name][kind][0] += int(not v.accept)
                    votes[name][kind][1] += 1
                    if name == "default":
                        yes[j] += int(v.accept)
        accepted = []
        for j in range(args.peers):
            ok = yes[j] >= args.quorum
            kind = "attacker" if j in attackers else "honest"
            committee_stats[kind][0] += int(not ok)
            committee_stats[kind][1] += 1
            if ok:
                accepted.append(j)
        if accepted:
            w = weighted_average([published[j] for j in accepted], [fits[j].num_examples for j in accepted])
    final = evaluate_client(test_eval.client, w)

    def rate(c: list[int]) -> float | None:
        return c[0] / c[1] if c[1] else None

    return {
        "attack": attack_name,
        "seed": seed,
        "votes": {n: {k: list(v) for k, v in d.items()} for n, d in votes.items()},
        "committee": {k: list(v) for k, v in committee_stats.items()},
        "vote_frr": rate(votes["default"]["honest"]),
        "vote_dr": rate(votes["default"]["attacker"]),
        "final_accuracy": final.accuracy,
        "train_time_per_round_s": train_time / args.rounds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--attacks", nargs="+", default=list(ATTACK_SETTINGS), choices=list(ATTACK_SETTINGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--peers", type=int, default=20)
    p.add_argument("--attackers", type=float, default=0.3)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--committee", type=int, default=7, help="committee size (protocol.committee_size)")
    p.add_argument("--auditors-per-update", type=int, default=3, help="protocol.auditors_per_update")
    p.add_argument("--quorum", type=int, default=2, help="accept votes needed (protocol.quorum)")
    p.add_argument("--local-epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--reference", choices=["trained", "start"], default="trained",
                   help="auditor's reference: its own model after this round's training, or before it")
    p.add_argument("--json", type=Path, help="write all results here")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    runs = [run(a, s, args) for a in args.attacks for s in args.seeds]
    elapsed = time.perf_counter() - t0

    def pooled(runs_: list[dict], get) -> str:  # noqa: ANN001
        rej = sum(get(r)[0] for r in runs_ if get(r))
        tot = sum(get(r)[1] for r in runs_ if get(r))
        return f"{100 * rej / tot:5.1f}%" if tot else "   - "

    print(f"digits, {args.peers} peers, Dirichlet alpha={args.alpha}, {args.attackers:.0%} attackers, "
          f"{args.rounds} rounds, seeds {args.seeds}, reference={args.reference}, "
          f"local_epochs={args.local_epochs}, batch_size={args.batch_size}, lr={args.lr}, "
          f"val_fraction={args.val_fraction}")
    print(f"{'attack':15s} {'vote FRR':>9s} {'vote DR':>9s} {'dec. FRR':>10s} {'dec. DR':>9s} {'final acc':>10s}")
    for a in args.attacks:
        rs = [r for r in runs if r["attack"] == a]
        acc = np.mean([r["final_accuracy"] for r in rs])
        print(
            f"{a:15s} {pooled(rs, lambda r: r['votes']['default'].get('honest')):>9s} "
            f"{pooled(rs, lambda r: r['votes']['default'].get('attacker')):>9s} "
            f"{pooled(rs, lambda r: r['committee'].get('honest')):>10s} "
            f"{pooled(rs, lambda r: r['committee'].get('attacker')):>9s} {acc:10.3f}"
        )
    print("\nalternative rules on the same evaluations (vote FRR / vote DR):")
    print(f"{'rule':20s} " + " ".join(f"{a:>17s}" for a in args.attacks))
    for name in RULES:
        cells = []
        for a in args.attacks:
            rs = [r for r in runs if r["attack"] == a]
            cells.append(
                f"{pooled(rs, lambda r: r['votes'][name].get('honest'))}/"
                f"{pooled(rs, lambda r: r['votes'][name].get('attacker'))}"
            )
        print(f"{name:20s} " + " ".join(f"{c:>17s}" for c in cells))
    t_round = np.mean([r["train_time_per_round_s"] for r in runs])
    print(f"\nlocal training, all {args.peers} peers, one round (local_epochs={args.local_epochs}): "
          f"{1000 * t_round:.1f} ms; total run time {elapsed:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
