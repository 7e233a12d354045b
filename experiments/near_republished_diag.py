"""How near each judged candidate lies to the earlier rounds' models its auditor decoded (issue 22,
the replay check's near test, :mod:`bdfl.peer.republished`), in the in-memory mirror of
``experiments/audit_rule_eval.py`` (library defaults, 6 rounds unless ``--rounds``).

For every honest auditor's view of every fresh candidate whose trainer's start was rebuilt: the
distance to the nearest earlier model of another trainer over the candidate's move from that
start (the share the check compares with ``NEAR_REPUBLISHED``, here exact, not sketched and
without the own-work exemption), and the same for the trainer's own earlier models. Then the
``republished`` refusals of honest auditors, by the judged trainer's kind. Reproduce::

    .venv/bin/python experiments/near_republished_diag.py --attack none --attackers 0 --seed 11 [--task clients.seattle_weather] [--peers 50]
    .venv/bin/python experiments/near_republished_diag.py --attack free_rider_disguised_0.01 --seed 11
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import audit_rule_eval as mirror  # noqa: E402

from bdfl.peer import republished, stages  # noqa: E402
from bdfl.peer.engine import ClientFailure  # noqa: E402
from bdfl.peer.node import Peer  # noqa: E402

_earlier: dict[str, np.ndarray] = {}  # hash -> flat model, this round's
_judged: dict[str, np.ndarray] = {}  # candidate peer -> flat model, this audit's


def _flat(params: Any) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(a, dtype=np.float64)) for a in params])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--attack", default="none", choices=list(mirror.ATTACK_SETTINGS))
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--attackers", type=float, default=0.3)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--task", default=None)
    p.add_argument("--peers", type=int, default=None)
    a = p.parse_args(argv)
    args = argparse.Namespace(**{k: None for k in (
        "alpha", "val_fraction", "local_epochs", "batch_size", "lr", "committee", "auditors_per_update", "quorum",
        "reject_percent", "approve_percent", "degree", "min_sources", "max_reject_share", "dissent_limit", "replay_window",
        "consistency_window", "slash_after_rejections")})
    args.peers, args.rounds, args.task, args.attackers = a.peers, a.rounds, a.task, a.attackers
    args.no_rebuilt_starts, args.unbound_updates = False, False
    torch.set_num_threads(1)

    add, decode = republished.EarlierModels.add, Peer.decode_verified

    def keeping_add(self: Any, h: str, params: Any, author: str | None = None) -> None:
        _earlier[h.lower()] = _flat(params)
        add(self, h, params, author)

    def keeping_decode(self: Any, rnd: int, cand: Any, data: Any) -> Any:
        out = decode(self, rnd, cand, data)
        if out is not None:
            _judged[cand.peer] = _flat(out)
        return out

    republished.EarlierModels.add, Peer.decode_verified = keeping_add, keeping_decode
    cfg = mirror.experiment_config(a.attack, a.seed, args)
    m = mirror.Mirror(cfg, mirror.DEFAULT_RULE)
    author: dict[str, str] = {}
    shares: dict[str, list[tuple[float, float]]] = {"honest": [], "attacker": []}
    refused = {"honest": [0, 0], "attacker": [0, 0]}
    for r in range(cfg.rounds):
        m.train_publish_submit(r)
        author.update({"0x" + s.update_hash.hex(): s.peer for subs in m.chain.view.subs.values() for s in subs})
        _earlier.clear()
        auditors, inputs, fetched, rebuilt = m.committee_audit_inputs(r)
        starts = {t: _flat(v) for t, v in rebuilt.starts.items()}
        for e in auditors:
            if e.address in m.attacker_addrs:
                continue
            _judged.clear()
            res = stages.audit.judge(e, inputs[e.address], fetched, m.attacker_addrs, rebuilt)
            if isinstance(res, ClientFailure):
                continue
            for who, why in res.rejections:
                if why == "republished":
                    refused[m.kind(who)][0] += 1
            for c in inputs[e.address].fresh():
                refused[m.kind(c.peer)][1] += 1
                if c.peer not in _judged or c.peer not in starts:
                    continue
                x, move = _judged[c.peer], float(np.linalg.norm(_judged[c.peer] - starts[c.peer]))
                other = [np.linalg.norm(x - v) for h, v in _earlier.items() if author.get(h) != c.peer]
                own = [np.linalg.norm(x - v) for h, v in _earlier.items() if author.get(h) == c.peer]
                if move > 0:
                    shares[m.kind(c.peer)].append((min(other, default=math.inf) / move, min(own, default=math.inf) / move))
        m.audit(r, {"default": mirror.DEFAULT_RULE}, lambda *_a, **_k: None)  # the round's votes, commit, reveal
        m.chain.finalize()
        m.aggregate(r)
    print(f"{a.attack} seed {a.seed} task {cfg.task.client} peers {cfg.peers} rounds {cfg.rounds}")
    for kind, rows in shares.items():
        if not rows:
            continue
        v = np.array(rows)
        for j, name in ((0, "nearest other trainer's earlier model / move"), (1, "nearest own earlier model / move")):
            q = v[np.isfinite(v[:, j]), j]
            if len(q):
                lo, p5, med = np.percentile(q, [0, 5, 50])
                print(f"  {kind:8s} {name}: min {lo:.3f}, 5th percentile {p5:.3f}, median {med:.3f} (n {len(q)})")
        print(f"  {kind:8s} refused as republished by honest auditors: {refused[kind][0]} of {refused[kind][1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
