"""Adversary: an attacker who sees an honest submission pending grinds hashes onto its probe
sequence in the duplicate-hash table (``RoundManager._claimHash``: slot ``h mod 2^bits``, linear
probing, ``MAX_PROBES`` slots, then a fresh overflow slot), so that the honest hash lands in the
overflow and costs more gas than its estimate, made before the grind, showed. The client's gas
limit (``ProtocolClient.submit_gas``: estimate + ``DUP_TABLE_GAS_HEADROOM``) still carries it,
and the check stays exact: a copy of the honest hash, now in the overflow, is refused."""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import keccak

from bdfl.chain.protocol import DUP_MAX_PROBES, DUP_TABLE_GAS_HEADROOM, ROUNDS_KEPT
from tests.chain.helpers import Env, Proto, reverts, setup_proto, update_hash

pytestmark = pytest.mark.chain

#: one honest submitter, DUP_MAX_PROBES grinders, two who submit after it (so that the honest
#: submission does not draw the committee, whose own headroom would hide the table's)
N = 1 + DUP_MAX_PROBES + 2


@pytest.fixture(scope="module")
def proto(devnet: Any, artifacts: Any) -> Proto:
    return setup_proto(devnet, artifacts, n=N)  # tests/chain/conftest.py's env snapshots it


def _table_bits(members: int) -> int:
    """``RoundManager._tableBits``."""
    bits = 4
    while (1 << bits) < 2 * members and bits < 32:
        bits += 1
    return bits


def _hash_at(slot: int, tag: bytes) -> bytes:
    """A hash whose home slot in the table is ``slot`` (the low 32 bits; the rest random)."""
    return keccak(tag)[:28] + slot.to_bytes(4, "big")


def test_a_grinder_cannot_push_an_honest_submission_out_of_gas(env: Env) -> None:
    assert int(env.rounds.functions.MAX_PROBES().call()) == DUP_MAX_PROBES
    peers = env.join()
    for _ in range(ROUNDS_KEPT):  # steady state: the round's ring and table slots were used before
        env.full_round(peers)
    r = env.deployer.current_round()
    mask = (1 << _table_bits(len(peers))) - 1
    honest, grinders, late = peers[0], peers[1: 1 + DUP_MAX_PROBES], peers[1 + DUP_MAX_PROBES:]
    # h's home slot holds an entry of the last round (free now): the estimate sees a cheap rewrite
    home = int.from_bytes(update_hash(r - 1, late[0].address), "big") & mask
    h = _hash_at(home, b"honest")
    call = env.rounds.functions.submitUpdate(r, h, 10, *honest.beacon_args(r))
    estimate = int(call.estimate_gas({"from": honest.address}))  # before the grind: a rewrite
    limit = honest.submit_gas(r, h, 10)  # what the client sends with
    assert limit >= estimate + DUP_TABLE_GAS_HEADROOM
    for i, g in enumerate(grinders):  # they take every slot of h's probe sequence
        g.submit_update(r, _hash_at((home + i) & mask, b"grind %d" % i), 10)
    after = int(call.estimate_gas({"from": honest.address}))  # now MAX_PROBES reads + the overflow
    receipt = honest.submit_update(r, h, 10, gas=limit)
    assert receipt["status"] == 1
    used = int(receipt["gasUsed"])
    # the grind made the honest submission dearer than estimated, by no more than the headroom
    assert estimate + 10_000 < after and used <= after
    assert after - estimate <= DUP_TABLE_GAS_HEADROOM, (estimate, after, used)
    assert env.deployer.submissions(r)[-1].update_hash == h
    with reverts("DuplicateHash"):  # exact in the overflow too
        late[0].submit_update(r, h, 10)
    late[1].submit_update(r, _hash_at((home + 3) & mask, b"late"), 10)  # a fresh hash on the same slots: accepted
    assert len(env.deployer.submissions(r)) == 1 + DUP_MAX_PROBES + 1
