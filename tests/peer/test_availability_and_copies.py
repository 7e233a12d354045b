"""Issue 19, findings 2 and 3 on the peer side.

* "Cannot fetch" is not "bad": an auditor that cannot fetch an assigned update (after its
  retries) abstains on it instead of voting reject, so a network attacker cannot get an
  honest update slashed; bytes that arrive and are bad are still rejected.
* Copied updates: the bytes bind to (chain id, contract, round, submitter), so a member that
  submits another member's hash (serving the bytes it fetched) fails the audit, as do bytes of
  another round or chain; aggregation counts each hash once.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from bdfl.chain.protocol import Outcome, Submission
from bdfl.config import ExperimentConfig
from bdfl.net.fetch import FetchError, HashMismatch
from bdfl.net.serialization import Binding, encode_ndarrays, hash_hex, update_hash
from bdfl.peer.node import Candidate, Peer, PeerSettings
from bdfl.peer.sources import StartSource, aggregation_rule, resync_sources
from tests.peer.auditors import CHAIN, RM, digits_auditor

ADDR = [f"0x{i:040x}" for i in range(1, 7)]  # auditor ADDR[0], trainers ADDR[1..5]


def _bound(model: list[np.ndarray], rnd: int, submitter: str, chain: int = CHAIN) -> bytes:
    return encode_ndarrays(model, binding=Binding(chain, RM, rnd, submitter))


def _cand(i: int, peer: str, data: bytes, weight: float = 1.0) -> Candidate:
    return Candidate(index=i, peer=peer, hash=hash_hex(update_hash(data)), url="http://x", weight=weight)


def test_an_auditor_that_cannot_fetch_abstains_instead_of_rejecting() -> None:
    """Before: every update that could not be fetched got a reject vote (its trainer slashed
    when a quorum of auditors was cut off by a network attacker)."""
    peer, trained = digits_auditor(6, ADDR[0], domain=(CHAIN, RM))
    blobs = [_bound(m, 3, a) for m, a in zip(trained[1:5], ADDR[1:5])]
    cands = [_cand(i, a, b) for i, (a, b) in enumerate(zip(ADDR[1:5], blobs))]
    fetched: dict[str, Any] = {c.hash: b for c, b in zip(cands, blobs)}
    fetched[cands[1].hash] = FetchError("timeout", "no answer")  # flooded / cut off
    fetched[cands[2].hash] = HashMismatch("http://x", b"\x00" * 32)  # tampered in transit
    indices, votes = peer.audit(3, cands, fetched)
    assert indices == [0, 3] and votes == [True, True]  # 1 and 2: no vote at all
    assert peer.last_abstentions == [(ADDR[2], "fetch failed: timeout"), (ADDR[3], "fetch failed: hash_mismatch")]
    # nothing fetched at all: no vote on anything (the contract leaves it Undecided: no quorum)
    indices, votes = peer.audit(3, cands, {})
    assert indices == [] and votes == []


def test_bytes_that_arrive_and_are_bad_are_still_rejected() -> None:
    """Garbage that arrives is voted down, not abstained on; the honest candidates beside it pass.
    Three honest ones, so the audit calibrates on them: with one, the bars are the auditor's own
    model's, and on a CPU with other float kernels (AVX2 only, 2026-12-07) the trigger scan alone
    rejected that single honest update, trained one epoch from a random start (a stamp sent 24 of
    32 inputs to one class: the small-committee limit of docs/learning.md, section 4)."""
    peer, trained = digits_auditor(6, ADDR[0], domain=(CHAIN, RM))
    goods = [_bound(trained[j], 3, ADDR[j]) for j in (1, 2, 3)]
    garbage = b"BDFLMB\x00\x01" + b"\xff" * 40  # committed on chain by its submitter, but not an update
    cands = [_cand(i, ADDR[i + 1], g) for i, g in enumerate(goods)] + [_cand(3, ADDR[4], garbage)]
    indices, votes = peer.audit(3, cands, {c.hash: b for c, b in zip(cands, [*goods, garbage])})
    assert indices == [0, 1, 2, 3] and votes == [True, True, True, False] and peer.last_abstentions == []


def test_a_copied_update_fails_the_audit() -> None:
    """Member ADDR[2] submits ADDR[1]'s hash and serves the bytes it fetched from ADDR[1]
    (exact copy; the contract also refuses a duplicate hash in a round), or re-publishes
    ADDR[1]'s update of an earlier round or another chain: the binding names someone else."""
    peer, trained = digits_auditor(6, ADDR[0], domain=(CHAIN, RM))
    original = _bound(trained[1], 3, ADDR[1])
    earlier = _bound(trained[3], 2, ADDR[2])  # its own, but of round 2
    other_chain = _bound(trained[4], 3, ADDR[2], chain=1)
    honest = _bound(trained[5], 3, ADDR[5])
    cands = [_cand(0, ADDR[1], original), _cand(1, ADDR[2], original), _cand(2, ADDR[2], earlier),
             _cand(3, ADDR[2], other_chain), _cand(4, ADDR[5], honest)]
    fetched = {c.hash: b for c, b in zip(cands, [original, original, earlier, other_chain, honest])}
    indices, votes = peer.audit(3, cands, fetched)
    assert indices == [0, 1, 2, 3, 4] and votes == [True, False, False, False, True]
    assert [r.reason for r in peer.rejections] == ["binding_mismatch"] * 3
    # an unbound update is refused by a peer that knows its chain (every honest peer binds)
    unbound = encode_ndarrays(trained[1])
    _, votes = peer.audit(3, [_cand(0, ADDR[1], unbound)], {hash_hex(update_hash(unbound)): unbound})
    assert votes == [False] and peer.rejections[-1].reason == "binding_mismatch"


def test_make_update_binds_its_bytes_and_they_decode_unchanged() -> None:
    peer, trained = digits_auditor(6, ADDR[0], domain=(CHAIN, RM))
    peer.trained = trained[0]
    data = peer.make_update(7)
    from bdfl.net.serialization import read_binding

    assert read_binding(data, max_bytes=1 << 26) == Binding(CHAIN, RM, 7, ADDR[0])
    other = Peer(index=1, address=ADDR[1], client=peer.client, endpoint=None, settings=PeerSettings())
    other.domain = (CHAIN, RM)
    got = other.decode_verified(7, _cand(0, ADDR[0], data), data)
    assert got is not None and all(np.array_equal(a, b) for a, b in zip(got, trained[0]))


def test_rebuilt_starts_and_aggregation_decode_bound_weights_unchanged() -> None:
    peer, trained = digits_auditor(6, ADDR[0], domain=(CHAIN, RM))
    blobs = {a: _bound(m, 3, a) for a, m in zip(ADDR[1:4], trained[1:4])}
    h = {a: hash_hex(update_hash(b)) for a, b in blobs.items()}
    recipe = [StartSource(ADDR[1], h[ADDR[1]], 1.0), StartSource(ADDR[2], h[ADDR[2]], 3.0)]
    fetched = {h[a]: b for a, b in blobs.items()}
    start = peer.rebuild_starts({ADDR[1]: recipe}, fetched, 3)[ADDR[1]]
    want = [(np.asarray(x, np.float64) + 3 * np.asarray(y, np.float64)) / 4 for x, y in zip(trained[1], trained[2])]
    assert all(np.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(start, want))
    # a recipe naming the wrong submitter for a hash cannot be rebuilt
    assert peer.rebuild_starts({ADDR[1]: [StartSource(ADDR[3], h[ADDR[1]], 1.0)]}, fetched, 3) == {}
    # bytes bound to another round than the recipe's cannot be used either
    assert peer.rebuild_starts({ADDR[1]: recipe}, fetched, 4) == {}


def test_aggregation_counts_each_hash_once() -> None:
    """Finding 3: approvedUpdates listed a copied hash twice, and it was weighed twice."""
    peer, trained = digits_auditor(6, ADDR[0], domain=(CHAIN, RM))
    blob = _bound(trained[1], 3, ADDR[1])
    other = _bound(trained[2], 3, ADDR[2])
    cands = [_cand(0, ADDR[1], blob), _cand(1, ADDR[3], blob), _cand(2, ADDR[2], other)]
    fetched = {c.hash: b for c, b in zip(cands, [blob, blob, other])}
    info = peer.aggregate(3, cands, fetched)
    assert info["aggregated"] == 2
    # the aggregation rule keeps the first submission of each hash
    subs = [Submission(i, a, 50, True, Outcome.APPROVED, hx, 0b111, 0b111, 3, 0)
            for i, (a, hx) in enumerate([(ADDR[1], b"\x01" * 32), (ADDR[3], b"\x01" * 32), (ADDR[2], b"\x02" * 32)])]
    cfg = ExperimentConfig()
    rule = aggregation_rule(cfg, subs, {a: 0.5 for a in ADDR})
    assert rule.usable == {ADDR[1]: "0x" + "01" * 32, ADDR[2]: "0x" + "02" * 32}
    base = aggregation_rule(SimpleNamespace(defense=SimpleNamespace(name="fedavg"), overlay=cfg.overlay), subs, {})
    assert sorted(base.usable.values()) == ["0x" + "01" * 32, "0x" + "02" * 32]


def test_bdfl_peer_takes_allow_private_endpoints() -> None:
    """The operator's switch for a federation on a private network (off devnets, non-public
    endpoint addresses are refused otherwise: bdfl.net.fetch.private_allowed)."""
    from bdfl.cli import build_parser
    from bdfl.net.fetch import private_allowed

    base = ["peer", "--rpc-url", "http://127.0.0.1:8545", "--key-file", "k", "--deployment", "d.json"]
    assert build_parser().parse_args(base).allow_private_endpoints is False
    assert build_parser().parse_args([*base, "--allow-private-endpoints"]).allow_private_endpoints is True
    assert not private_allowed(11155111, False) and private_allowed(11155111, True) and private_allowed(31337, False)


def test_aggregation_weighs_the_own_model_by_the_callers_own_weight() -> None:
    """bdfl's average: the peer's own model with the caller's ``own_weight`` (its reputation),
    each approved update with its candidate weight: 0.25 x own + 0.75 x other."""
    peer, trained = digits_auditor(6, ADDR[0], domain=(CHAIN, RM))
    peer.trained = [a.copy() for a in trained[0]]
    blob = _bound(trained[1], 3, ADDR[1])
    cand = _cand(0, ADDR[1], blob, weight=0.75)
    assert peer.aggregate(3, [cand], {cand.hash: blob}, own_weight=0.25)["aggregated"] == 1
    want = [0.25 * np.asarray(a, np.float64) + 0.75 * np.asarray(b, np.float64) for a, b in zip(trained[0], trained[1])]
    assert all(np.allclose(got, w, rtol=0, atol=1e-5) for got, w in zip(peer.params, want))


def test_a_probation_update_is_never_aggregated_even_when_its_auditors_accept_it() -> None:
    """Only updates approved on chain are aggregated: a newcomer's update on probation (accepted by
    every auditor, outcome Probation) is not usable, nor an undecided or rejected one."""
    subs = [Submission(0, ADDR[1], 50, True, Outcome.APPROVED, b"\x01" * 32, 0b111, 0b111, 3, 0),
            Submission(1, ADDR[2], 50, False, Outcome.PROBATION, b"\x02" * 32, 0b111, 0b111, 3, 0),
            Submission(2, ADDR[3], 50, True, Outcome.UNDECIDED, b"\x03" * 32, 0b011, 0b001, 1, 1),
            Submission(3, ADDR[4], 50, True, Outcome.REJECTED, b"\x04" * 32, 0b111, 0b000, 0, 3)]
    rule = aggregation_rule(ExperimentConfig(), subs, {a: 0.5 for a in ADDR})
    assert rule.usable == {ADDR[1]: "0x" + "01" * 32}


def test_a_returning_peer_is_never_offered_its_own_update() -> None:
    """resync_sources: neither tier holds the returning peer's own update (the second tier is the
    next usable updates by weight; a mutation probe made it include the peer's own)."""
    subs = [Submission(i, a, 50, True, Outcome.APPROVED, bytes([i + 1]) * 32, 0b111, 0b111, 3, 0)
            for i, a in enumerate(ADDR[1:5])]
    rule = aggregation_rule(ExperimentConfig(), subs, {a: 0.5 for a in ADDR})
    first, rest = resync_sources(rule, None, ADDR[1], degree=8)
    assert first == [] and ADDR[1] not in rest and set(rest) == set(ADDR[2:5])
