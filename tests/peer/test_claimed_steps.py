"""An auditor hands the audit each candidate's claimed local steps (its on-chain sample count
over the task's batch size), so the no-work test credits small shards
(:mod:`bdfl.defense.detectors.no_work`)."""

from __future__ import annotations

import math

import numpy as np

from bdfl.attacks import make_attack
from bdfl.config import TaskConfig
from bdfl.defense.audit import observe_audits
from bdfl.net.serialization import Binding, encode_ndarrays, hash_hex, update_hash
from bdfl.peer.node import Candidate
from tests.peer.auditors import CHAIN, RM, digits_auditor

ADDR = [f"0x{i:040x}" for i in range(1, 7)]


def test_the_audit_sees_each_trainers_claimed_steps() -> None:
    peer, trained = digits_auditor(6, ADDR[0], domain=(CHAIN, RM))
    batch = TaskConfig().batch_size
    assert peer.settings.batch_size == batch
    claims = [9, 4 * batch, 0, None, 3 * batch + 1]  # None: not known (a candidate built without it)
    blobs = [encode_ndarrays(m, binding=Binding(CHAIN, RM, 3, a)) for m, a in zip(trained[1:6], ADDR[1:6])]
    cands = [Candidate(index=i, peer=a, hash=hash_hex(update_hash(b)), url="http://x", num_samples=n)
             for i, (a, b, n) in enumerate(zip(ADDR[1:6], blobs, claims))]
    seen = []
    with observe_audits(lambda ev, _verdicts: seen.append(ev.steps.copy())):
        peer.audit(3, cands, {c.hash: b for c, b in zip(cands, blobs)})
    assert len(seen) == 1
    want = [1.0, 4.0, math.nan, math.nan, 4.0]  # a claim of 0 samples is no claim
    np.testing.assert_array_equal(seen[0], np.array(want))


def test_a_free_rider_claiming_one_sample_is_still_rejected() -> None:
    """The attacker who knows the credit: it re-publishes its start (no work) and claims one
    sample, the fewest steps; a zero move fails whatever is claimed."""
    rider = make_attack("free_rider", source="reference", claim=1)
    peer, trained = digits_auditor(6, ADDR[0], domain=(CHAIN, RM))
    start = peer.reference
    # the free-rider's side: no training, the claim it states on chain
    free, _ = digits_auditor(6, ADDR[5], domain=(CHAIN, RM), attack=rider)
    assert free.train(3)["num_examples"] == 1 and free.num_examples == 1
    models = [*trained[1:5], start]
    blobs = [encode_ndarrays(m, binding=Binding(CHAIN, RM, 3, a)) for m, a in zip(models, ADDR[1:6])]
    claims = [60] * 4 + [1]
    cands = [Candidate(index=i, peer=a, hash=hash_hex(update_hash(b)), url="http://x", num_samples=n)
             for i, (a, b, n) in enumerate(zip(ADDR[1:6], blobs, claims))]
    _, votes = peer.audit(3, cands, {c.hash: b for c, b in zip(cands, blobs)})
    assert votes == [True] * 4 + [False]
    assert peer.last_audit_rejections[-1][0] == ADDR[5] and "no_work" in peer.last_audit_rejections[-1][1]
