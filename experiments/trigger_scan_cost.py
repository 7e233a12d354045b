"""Cost of the audit's trigger scan (bdfl.learning.trigger_scan) per bundled image task.

    .venv/bin/python experiments/trigger_scan_cost.py

One auditor scans 18 candidates (its initial model plus small noise) and its own model,
one thread, with the settings the default experiment's rule scans with
(`audit.trigger_scan_settings`: 2x2 stamps, at most 8 offsets per axis, at most 128 of its
own inputs); the auditor holds one IID shard of the runner's default size
(digits: 20 peers; mnist5k: 100 peers, as experiments/configs/bench_mnist.toml).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bdfl.learning.audit import AuditRule, trigger_scan_settings  # noqa: E402
from bdfl.learning.data import make_peer_shards  # noqa: E402
from bdfl.learning.task import load_task  # noqa: E402
from bdfl.learning.trigger_scan import trigger_excess  # noqa: E402

TASKS = (("clients.digits", 20), ("clients.mnist", 100))


def main() -> int:
    torch.set_num_threads(1)
    rule = AuditRule(trigger_limit=0.9)  # the default experiment's (experiments/configs/default.toml)
    kw = trigger_scan_settings(rule)
    for spec, peers in TASKS:
        task = load_task(spec)
        ds = task.load_dataset(None)
        shard = make_peer_shards(ds, peers, scheme="iid", seed=0)[0]
        client = task.make_client(shard.train, shard.val, seed=0, hparams={})
        init = task.initial_parameters(ds, seed=0)
        cands = [[p + np.random.default_rng(i).normal(0, 0.01, p.shape).astype(p.dtype) for p in init]
                 for i in range(18)]
        trigger_excess(client, init, cands[:2], [True] * 2, **kw)  # warm-up
        t = time.perf_counter()
        trigger_excess(client, init, cands, [True] * len(cands), **kw)
        dt = time.perf_counter() - t
        inputs = client.audit_inputs()
        print(f"{spec}: {min(len(inputs), rule.trigger_inputs)} inputs of shape {tuple(inputs.shape[1:])}, "
              f"scan of 18 candidates + own model: {dt:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
