"""Rounds to a target accuracy under decentralised averaging vs FedAvg, learning only (issue 23).

    .venv/bin/python experiments/mixing_levers.py --peers 100 --rounds 40 --lever degree=4 --lever degree=8 ...

A fast, chain-free model of what ``bdfl run`` learns, to compare levers that change how many
rounds BDFL needs (the chain, the audit and the timing are not simulated: those are measured
by ``experiments/time_to_accuracy.py``). Everything that decides the learning is BDFL's:
the task's client code (``clients.digits``), ``bdfl.experiment.setup.peer_data``'s partition,
peer ``i``'s seed ``seed * 100003 + i``, the common initial model, ``server_round`` in the fit
config, the overlay (``bdfl.net.overlay.build_overlay``, a fixed seed instead of the chain's
round seed) and the aggregation rule of :meth:`bdfl.peer.node.Peer.aggregate` with every
update approved and equal reputations: a peer's next model is the average of its own trained
model and its overlay neighbours' (weight 1 each). What the real run adds: the audit rejects a
few honest updates (34 of 3,746 in the N = 100 baseline), reputations differ a little.

A lever is ``key=value`` pairs joined by ``,``:

* ``degree=D`` (expander degree; ``full`` topology when D >= N - 1), ``topology=ring|expander|full``;
* ``self=A``: the own model's weight in the average is A and the neighbours share 1 - A
  equally (``uniform`` = 1/(d+1) each, BDFL's rule today; ``mh`` = Metropolis-Hastings,
  which equals ``uniform`` on a regular graph);
* ``lr``, ``local_epochs``, ``batch_size``, ``momentum`` (client hyper-parameters; the same
  values are used on the FedAvg side of the lever: fairness);
* ``redraw=1``: a new overlay every round (seeded by the round), instead of one for the run;
* ``drop=P``: each round every update is unusable for everyone else with probability P (the
  audit's unanimity filter ``defense.max_reject_share = 0`` dropping updates one auditor
  falsely rejected; its own model stays in each peer's average), with the overlay's top-up
  rule (``Overlay.aggregation_sources``) and ``min_sources=K`` (default 2, BDFL's);
* ``seed=S``: the run's seed (partition, client seeds, initial model; FedAvg's side too);
* ``fedavg=1``: the global weighted average (Flower's FedAvg) instead of the overlay;
* ``committee=K`` (with ``aps=M``, default K - 1): each round K peers drawn at random sit on
  the committee, each usable update is assigned to M of them (never to its own trainer), and
  a committee member also averages the usable updates it audited (``defense.bdfl.audited_sources``).

For each lever both systems run ``--rounds`` rounds; the target is ``--fraction`` x FedAvg's
accuracy in round ``--ref-rounds`` (default 20, as in time_to_accuracy.py). Printed: the
rounds each needs, the ratio, and the mixing matrix's second eigenvalue modulus (the
per-round contraction of the disagreement between peers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bdfl.config import load_config  # noqa: E402
from bdfl.experiment.setup import peer_data  # noqa: E402
from bdfl.learning.task import load_task, task_hparams  # noqa: E402
from bdfl.net.overlay import build_overlay  # noqa: E402

CONFIG = HERE / "configs" / "default.toml"
BASE = {
    "task.client": "clients.digits", "task.partition": "iid", "task.local_epochs": 5, "task.batch_size": 16,
    "task.learning_rate": 0.05, "attack.name": "none", "attack.fraction": 0.0, "seed": 0,
}
PROGRESS = False  # --progress: each round's accuracy on stderr
HPARAM_KEYS = {"lr": ("task.learning_rate", float), "local_epochs": ("task.local_epochs", int), "batch_size": ("task.batch_size", int)}


def parse_lever(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, text.split(",")):
        k, sep, v = part.partition("=")
        if not sep:
            raise SystemExit(f"lever part {part!r} is not key=value")
        out[k.strip()] = v.strip()
    return out


def mixing_matrix(n: int, lever: dict[str, str], seed: bytes) -> tuple[np.ndarray, float]:
    """Row-stochastic W (row i: what peer i weighs) and its second eigenvalue modulus."""
    if lever.get("fedavg") == "1":
        return np.full((n, n), 1.0 / n), 0.0
    topo = lever.get("topology", "expander")
    d = int(lever.get("degree", 4))
    if topo == "expander" and d >= n - 1:
        topo = "full"
    members = [f"0x{i:040x}" for i in range(n)]
    ov = build_overlay(topo, members, seed, degree=d)
    idx = {m.lower(): i for i, m in enumerate(members)}
    a = np.zeros((n, n))
    for x, y in ov.edges():
        a[idx[x.lower()], idx[y.lower()]] = a[idx[y.lower()], idx[x.lower()]] = 1.0
    deg = a.sum(1)
    rule = lever.get("self", "uniform")
    w = np.zeros((n, n))
    if rule == "uniform":
        w = (a + np.eye(n)) / (deg + 1)[:, None]
    elif rule == "mh":
        for i in range(n):
            for j in np.nonzero(a[i])[0]:
                w[i, j] = 1.0 / (1.0 + max(deg[i], deg[j]))
            w[i, i] = 1.0 - w[i].sum()
    else:
        alpha = float(rule)
        w = alpha * np.eye(n) + (1 - alpha) * a / deg[:, None]
    ev = np.sort(np.abs(np.linalg.eigvals(w)))
    return w, float(ev[-2])


def run(n: int, rounds: int, lever: dict[str, str]) -> dict[str, Any]:
    sets = dict(BASE, peers=n, rounds=rounds)
    for k, (key, cast) in HPARAM_KEYS.items():
        if k in lever:
            sets[key] = cast(lever[k])
    if "seed" in lever:  # another seed: the partition, the clients' seeds and the initial model
        sets["seed"] = int(lever["seed"])
    if "partition" in lever:
        sets["task.partition"] = lever["partition"]
    if "samples" in lever:
        sets["task.samples_per_peer"] = int(lever["samples"])
    cfg = load_config(str(CONFIG), sets)
    task = load_task(cfg.task.client)
    dataset, shards = peer_data(task, cfg)
    hp = task_hparams(cfg.task)
    if "momentum" in lever:
        hp["momentum"] = float(lever["momentum"])
    clients = [task.make_client(tr, (dataset.X_test, dataset.y_test), seed=cfg.seed * 100_003 + i, hparams=hp)
               for i, (tr, _va) in enumerate(shards)]
    init = task.initial_parameters(dataset, seed=cfg.seed, hparams=hp)
    shapes = [p.shape for p in init]
    sizes = [p.size for p in init]
    flat0 = np.concatenate([p.ravel() for p in init]).astype(np.float64)
    params = np.tile(flat0, (n, 1))
    w, lam2 = mixing_matrix(n, lever, b"\x00" * 32)
    fedavg = lever.get("fedavg") == "1"
    examples = np.array([len(tr[1]) for tr, _ in shards], dtype=float)
    if fedavg:
        w = np.tile(examples / examples.sum(), (n, 1))

    def unflat(v: np.ndarray) -> list[np.ndarray]:
        out, o = [], 0
        for s, k in zip(shapes, sizes):
            out.append(v[o:o + k].reshape(s).astype(init[len(out)].dtype))
            o += k
        return out

    redraw = lever.get("redraw") == "1" and not fedavg
    drop = float(lever.get("drop", 0.0)) if not fedavg else 0.0
    rng = np.random.default_rng(12345)
    min_sources = int(lever.get("min_sources", 2))
    members = [f"0x{i:040x}" for i in range(n)]
    idx = {m.lower(): i for i, m in enumerate(members)}
    committee = int(lever.get("committee", 0)) if not fedavg else 0
    aps = int(lever.get("aps", max(1, committee - 1)))
    ov = build_overlay("expander", members, b"\x00" * 32, degree=min(int(lever.get("degree", 4)), n - 1)) if drop > 0 or committee else None
    acc = []
    mean_acc = []
    qgm = float(lever.get("qgm", 0.0)) if not fedavg else 0.0  # momentum carried in the published update
    hb = float(lever.get("hb", 0.0)) if not fedavg else 0.0  # momentum added to the aggregate (own start)
    if lever.get("hops") == "2" and not fedavg:  # two-hop sources: the support of W^2, uniform weights
        a2 = ((w @ w) > 0).astype(float)
        w = a2 / a2.sum(1, keepdims=True)
    prev_start = params.copy()
    for r in range(1, rounds + 1):
        if redraw:  # a fresh overlay each round, from that round's seed
            w, _ = mixing_matrix(n, lever, r.to_bytes(32, "big"))
        trained = np.empty_like(params)
        for i, c in enumerate(clients):
            got, _k, _m = c.fit(unflat(params[i]), {"server_round": r})
            trained[i] = np.concatenate([np.asarray(p).ravel() for p in got])
        start = params
        if qgm:
            trained = trained + qgm * (start - prev_start)
        wr = w
        if drop > 0 or committee:  # updates kept out of every aggregation this round (a peer always keeps its own)
            usable = [members[j] for j in range(n) if rng.random() >= drop] if drop > 0 else list(members)
            wr = np.eye(n)
            for i in range(n):
                for src in ov.aggregation_sources(members[i], usable, min_sources):
                    wr[i, idx[src]] = 1.0
            if committee:  # each committee member also weighs the usable updates it audited
                seats = rng.choice(n, size=committee, replace=False)
                for src in usable:
                    j = idx[src]
                    pool = [s for s in seats if s != j]
                    for s in rng.choice(pool, size=min(aps, len(pool)), replace=False):
                        wr[s, j] = 1.0
            wr = wr / wr.sum(1, keepdims=True)
        params = wr @ trained
        if hb:
            params = params + hb * (start - prev_start)
        prev_start = start
        if lever.get("meanacc") == "1":
            mean_acc.append(float(clients[0].evaluate(unflat(params.mean(0)), {})[2]["accuracy"]))
        if fedavg:
            res = clients[0].evaluate(unflat(params[0]), {})
            acc.append(float(res[2]["accuracy"]))
        else:
            acc.append(float(np.mean([clients[i].evaluate(unflat(params[i]), {})[2]["accuracy"] for i in range(n)])))
        if PROGRESS:
            extra = f" mean-model {mean_acc[-1]:.4f}" if mean_acc else ""
            print(f"  round {r}: {acc[-1]:.4f}{extra}", file=sys.stderr, flush=True)
    return {"accuracy": acc, "lambda2": lam2, "mean_model_accuracy": mean_acc}


def first_crossing(curve: list[float], target: float) -> int | None:
    return next((i for i, a in enumerate(curve, start=1) if a >= target), None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--ref-rounds", type=int, default=20)
    ap.add_argument("--fraction", type=float, default=0.95)
    ap.add_argument("--lever", action="append", default=[], help="key=value[,key=value...]; repeat")
    ap.add_argument("--json", help="append one JSON line per lever here")
    ap.add_argument("--progress", action="store_true", help="each round's accuracy on stderr")
    args = ap.parse_args(argv)
    global PROGRESS
    PROGRESS = args.progress
    print("| lever | FedAvg rounds | BDFL-mix rounds | ratio | lambda2 | target | mix acc r10/r20/last |", flush=True)
    print("|---|---:|---:|---:|---:|---:|---|", flush=True)
    ref_cache: dict[str, list[float]] = {}
    for text in args.lever or ["degree=4"]:
        lever = parse_lever(text)
        t0 = time.perf_counter()
        hkey = json.dumps({k: v for k, v in lever.items() if k in ("lr", "local_epochs", "batch_size", "momentum", "partition", "samples", "seed")}, sort_keys=True)
        if hkey not in ref_cache:
            ref_cache[hkey] = run(args.peers, args.ref_rounds, {**lever, "fedavg": "1"})["accuracy"]
        ref = ref_cache[hkey]
        target = args.fraction * ref[-1]
        mix = run(args.peers, args.rounds, lever)
        fr, br = first_crossing(ref, target), first_crossing(mix["accuracy"], target)
        a = mix["accuracy"]
        print(f"| {text} | {fr} | {br} | {br / fr if br and fr else float('nan'):.2f} | {mix['lambda2']:.3f} | {target:.4f} | "
              f"{a[min(9, len(a) - 1)]:.3f}/{a[min(19, len(a) - 1)]:.3f}/{a[-1]:.3f} | ({time.perf_counter() - t0:.0f} s)", flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps({"lever": text, "peers": args.peers, "fedavg": ref, "mix": a, "mean_model": mix["mean_model_accuracy"], "lambda2": mix["lambda2"],
                                     "target": target, "fedavg_round": fr, "mix_round": br}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
