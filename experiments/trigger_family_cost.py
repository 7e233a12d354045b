"""Cost of the audit's trigger family on a task (issue 22: a round of the MNIST default with
it stays within 2x the round without it).

Builds the runner's peers for ``--task`` (``bdfl.experiment.setup.peer_data``, the config's
defaults: 20 peers, Dirichlet 0.5), trains each once from the initial model (a round's local
training), then lets one auditor judge ``--candidates`` of the trained models with the default
rule, with and without the trigger detector, and reports the seconds of each part and

    ratio = (training of one peer + its audit with trigger) / (training + audit without),

the per-peer round work of a committee member (the worst case: a peer that does not audit only
trains). Chain and transfer time, the same in both, are left out, so the ratio is an upper
bound on a whole round's. Timings on a shared machine are noisy: the script repeats the audits
``--repeat`` times and takes the fastest.

Run:  .venv/bin/python experiments/trigger_family_cost.py --task clients.mnist
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdfl.config import from_dict  # noqa: E402
from bdfl.defense.audit import AuditRule, audit_updates  # noqa: E402
from bdfl.experiment.setup import peer_data  # noqa: E402
from bdfl.learning.task import fit_client, load_task, task_hparams  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="clients.mnist")
    p.add_argument("--peers", type=int, default=20)
    p.add_argument("--candidates", type=int, default=18, help="updates one auditor judges (committee 9/8: ~18 of 20)")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = from_dict({"seed": args.seed, "peers": args.peers, "task": {"client": args.task}, "attack": {"fraction": 0.0, "name": "none"}})
    task = load_task(cfg.task.client)
    ds, shards = peer_data(task, cfg)
    hp = task_hparams(cfg.task)
    clients = [task.make_client(tr, va, seed=i, hparams=hp) for i, (tr, va) in enumerate(shards)]
    init = task.initial_parameters(ds, seed=args.seed)
    t = time.perf_counter()
    fits = [fit_client(c, init, {"round": 0}).parameters for c in clients]
    train = (time.perf_counter() - t) / len(clients)
    cands = fits[1:1 + args.candidates]
    times = {}
    for label, rule in (("without trigger", AuditRule().with_detector("trigger", enabled=False)), ("with trigger", AuditRule())):
        best = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            audit_updates(clients[0], fits[0], cands, rule, start_params=init)
            best = min(best, time.perf_counter() - t)
        times[label] = best
    tr = AuditRule().detectors.trigger
    print(f"{args.task}: {args.peers} peers, one auditor judging {len(cands)} candidates; trigger family "
          f"{tr.patterns} stamps x {tr.inputs} inputs")
    print(f"local training per peer        {train:8.2f} s")
    for label, s in times.items():
        print(f"audit {label:<24} {s:8.2f} s")
    ratio = (train + times["with trigger"]) / (train + times["without trigger"])
    print(f"round work of an auditor, with / without trigger: {ratio:.2f}x "
          f"(audit alone: {times['with trigger'] / times['without trigger']:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
