"""Issue 22 (engineer P): how far each peer's local fit drifts, per client setting, offline.

No chain, no audit: the peers' shards of a run (``--task``, 20 peers, ``--seed``, Dirichlet(0.5)
as in the run's config) and the bundled client's training loop (clients/common.py) with the
run's ``[task]`` settings (5 local epochs, batch 10, lr 0.05), changing only ``mu`` (FedProx's
proximal weight) and the SGD momentum. Two questions:

* ``late``: from one near-converged common model (centralised SGD on all peers' training data
  for ``--epochs`` epochs), how many of the peers' fits go astray (test accuracy below 0.5)?
* ``early``: from the common initial model, how fast does plain FedAvg over every peer learn
  (``--rounds`` rounds)? A proximal weight that pins the model to its start shows here.

    .venv/bin/python experiments/drift_probe.py late  --settings 0:0.9,0.1:0.9,1:0.9,0:0
    .venv/bin/python experiments/drift_probe.py early --settings 0:0.9,0.1:0.9,1:0.9,0:0 --rounds 3

``--settings``: comma-separated ``mu:momentum`` pairs. Results: docs/results/robustness.md,
"Client drift (issue 22)".
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bdfl.config import load_config
from bdfl.experiment.setup import peer_data
from bdfl.learning.task import load_task
from clients.common import (
    COMMON_HPARAMS,
    evaluate_model,
    get_parameters,
    make_optimizer,
    seeded_init,
    set_parameters,
    to_tensors,
    train_epochs,
)


def _fit(model_fn, start, shard, *, mu: float, momentum: float, seed: int, cfg) -> list[np.ndarray]:  # noqa: ANN001
    model = model_fn()
    set_parameters(model, start)
    opt = make_optimizer(model, {**COMMON_HPARAMS, "momentum": momentum}, cfg.task.learning_rate)
    X, y = to_tensors(shard)
    train_epochs(model, X, y, epochs=cfg.task.local_epochs, batch_size=cfg.task.batch_size, optimizer=opt,
                 generator=torch.Generator().manual_seed(seed), proximal_mu=mu)
    return get_parameters(model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("late", "early"))
    ap.add_argument("--task", default="clients.mnist")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--settings", default="0:0.9,0.1:0.9,1:0.9,0:0", help="mu:momentum pairs")
    ap.add_argument("--epochs", type=int, default=4, help="late: centralised epochs for the common model")
    ap.add_argument("--rounds", type=int, default=3, help="early: FedAvg rounds")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(None, {"task.client": args.task, "peers": 20, "seed": args.seed, "attack.name": "none",
                             "attack.fraction": 0.0})
    task = load_task(args.task)
    dataset, shards = peer_data(task, cfg)
    train = [tr for tr, _va in shards]
    X_test, y_test = to_tensors((dataset.X_test, dataset.y_test))

    def model_fn() -> torch.nn.Module:
        return task.module.build_model(dict(getattr(task.module, "DEFAULT_HPARAMS", {})))

    def acc(params: list[np.ndarray]) -> float:
        model = model_fn()
        set_parameters(model, params)
        return evaluate_model(model, X_test, y_test)[1]

    initial = get_parameters(seeded_init(model_fn(), args.seed))
    settings = [(float(mu), float(mom)) for mu, mom in (s.split(":") for s in args.settings.split(","))]
    if args.mode == "late":
        model = model_fn()
        set_parameters(model, initial)
        opt = make_optimizer(model, COMMON_HPARAMS, cfg.task.learning_rate)
        X, y = to_tensors((np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])))
        gen = torch.Generator().manual_seed(0)
        for _ in range(args.epochs):
            train_epochs(model, X, y, epochs=1, batch_size=32, optimizer=opt, generator=gen)
        common = get_parameters(model)
        print(f"{args.task}, seed {args.seed}: common model test accuracy {acc(common):.3f}")
        flat0 = np.concatenate([p.ravel() for p in common])
        for mu, mom in settings:
            t0 = time.perf_counter()
            fits = [_fit(model_fn, common, sh, mu=mu, momentum=mom, seed=100 + i, cfg=cfg) for i, sh in enumerate(train)]
            accs = np.array([acc(f) for f in fits])
            dist = [float(np.linalg.norm(np.concatenate([p.ravel() for p in f]) - flat0)) for f in fits]
            print(f"mu={mu:g} momentum={mom:g}: astray (test acc < 0.5) {int((accs < 0.5).sum())}/{len(fits)}, "
                  f"test acc median {np.median(accs):.3f} min {accs.min():.3f}, ||w - w_start|| median "
                  f"{np.median(dist):.2f} max {max(dist):.3g} ({time.perf_counter() - t0:.0f} s)", flush=True)
    else:
        sizes = np.array([len(y) for _, y in train], dtype=float)
        for mu, mom in settings:
            w, line = initial, []
            for r in range(args.rounds):
                fits = [_fit(model_fn, w, sh, mu=mu, momentum=mom, seed=1000 * r + i, cfg=cfg) for i, sh in enumerate(train)]
                w = [sum(n * f[k] for n, f in zip(sizes, fits)) / sizes.sum() for k in range(len(w))]
                line.append(f"{acc(w):.3f}")
            print(f"mu={mu:g} momentum={mom:g}: FedAvg test accuracy by round {', '.join(line)}", flush=True)


if __name__ == "__main__":
    main()
