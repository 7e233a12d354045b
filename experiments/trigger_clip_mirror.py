"""A fast in-memory mirror of aggregation-side backdoor mitigations (issue 22, engineer B).

No chain, no audit, no overlay: every round each of ``--peers`` peers (Dirichlet(0.5) shards as
``bdfl run`` builds them; a seeded 30 % of them poison their shard with ``--attack``) trains from
the common model, and the models are combined by each ``--rules`` entry (``off`` = the plain
average, as BDFL's aggregation of approved updates when every backdoored update is approved,
which is what the runs measured: 91-100 % approved; ``band:K``, ``norm:K``: the clips of
:mod:`bdfl.defense.backdoor_clip`; ``median``). Prints, per rule, the final test accuracy and
the attack success rate (ASR) of the common model. A screen for a rule before the full runs
(``experiments/robustness_table.py``), not a replacement: the runs also have the audit, the
reputation weights and the overlay.

Run:  .venv/bin/python experiments/trigger_clip_mirror.py --attack backdoor_4x4 --rules off band:3 median
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdfl.attacks import make_attack  # noqa: E402
from bdfl.config import from_dict  # noqa: E402
from bdfl.defense.aggregate import coordinate_median, weighted_average  # noqa: E402
from bdfl.defense.backdoor_clip import clip_models  # noqa: E402
from bdfl.experiment.setup import peer_data  # noqa: E402
from bdfl.learning.task import fit_client, load_task, task_base_config, task_hparams  # noqa: E402

GRID = Path(__file__).resolve().parent / "configs" / "sweep_robustness_22.toml"


def grid_attack(label: str) -> tuple[str, dict]:
    """(name, params) of a labelled attack of the issue-22 grid."""
    for a in tomllib.loads(GRID.read_text())["grid"]["attack"]:
        if a["label"] == label:
            return a["name"], dict(a.get("params", {}))
    raise SystemExit(f"no attack labelled {label!r} in {GRID.name}")


def cosine_report(start: list, models: list, bad: set) -> str:
    """Mean pairwise cosine of the moves from ``start``: honest-honest, attacker-attacker, across."""
    D = np.stack([np.concatenate([(np.asarray(a, np.float64) - s).ravel() for a, s in zip(m, start)]) for m in models])
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    C = D @ D.T
    idx = np.arange(len(models))
    a = np.array([i in bad for i in idx])
    off = ~np.eye(len(models), dtype=bool)
    mx = np.where(off, C, -1).max(axis=1)
    hist = " ".join(f"{'A' if a[i] else 'h'}{mx[i]:.2f}" for i in np.argsort(-mx))
    return (f"max-cos {hist}\n    cos hh {C[np.ix_(~a, ~a)][off[np.ix_(~a, ~a)]].mean():.2f} aa {C[np.ix_(a, a)][off[np.ix_(a, a)]].mean():.2f} "
            f"ha {C[np.ix_(~a, a)].mean():.2f}")


def combine(rule: str, models: list) -> list:
    if rule == "off":
        return weighted_average(models)
    if rule == "median":
        return coordinate_median(models)
    kind, _, k = rule.partition(":")
    return weighted_average(clip_models(models, kind, float(k)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="clients.digits")
    p.add_argument("--attack", default="backdoor_4x4", help="a label of sweep_robustness_22.toml's backdoor family")
    p.add_argument("--rules", nargs="+", default=["off", "band:3"])
    p.add_argument("--peers", type=int, default=20)
    p.add_argument("--fraction", type=float, default=0.3)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seeds", type=int, nargs="+", default=[11])
    p.add_argument("--cosines", action="store_true", help="print the moves' mean pairwise cosines each round")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    name, params = grid_attack(args.attack)
    for seed in args.seeds:
        cfg = from_dict({"seed": seed, "peers": args.peers, "task": {"client": args.task, "partition": "dirichlet", "alpha": 0.5},
                         "attack": {"fraction": 0.0, "name": "none"}})
        task = load_task(cfg.task.client)
        ds, shards = peer_data(task, cfg)
        hp = task_hparams(cfg.task)
        base = task_base_config(cfg.task, ds.num_classes)
        rng = np.random.default_rng(seed)
        bad = set(rng.choice(args.peers, size=int(round(args.fraction * args.peers)), replace=False).tolist())
        attack = make_attack(name, **params)
        clients = []
        for i, ((X, y), va) in enumerate(shards):
            if i in bad and hasattr(attack, "poison_data"):
                X, y = attack.poison_data(X, y, np.random.default_rng(seed * 1000 + i), num_classes=ds.num_classes)
            clients.append(task.make_client((X, y), va, seed=i, hparams=hp, config=base))
        X_trig, y_trig = attack.triggered_test_set(ds.X_test, ds.y_test)
        acc_eval = task.evaluator(ds.X_test, ds.y_test, hparams=hp, config=base)
        asr_eval = task.evaluator(X_trig, y_trig, hparams=hp, config=base)
        init = task.initial_parameters(ds, seed=seed, hparams=hp, config=base)
        for rule in args.rules:
            t = time.perf_counter()
            model = init
            trace = []
            for rnd in range(args.rounds):
                models = [fit_client(c, model, {"round": rnd}).parameters for c in clients]
                if args.cosines:
                    print(f"  round {rnd}: {cosine_report(model, models, bad)}")
                model = combine(rule, models)
                trace.append(asr_eval(model).accuracy)
            acc = acc_eval(model).accuracy
            print(f"seed {seed} {args.attack:<18} {rule:<10} accuracy {acc:.3f}  ASR {trace[-1]:6.1%}  "
                  f"(ASR by round {' '.join(f'{a:.0%}' for a in trace)}; {time.perf_counter() - t:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
