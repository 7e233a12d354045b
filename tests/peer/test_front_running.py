"""Issue 19, finding 3 (copied updates), the front-running variant, on an anvil devnet.

The contract refuses a hash already submitted in the round (``DuplicateHash``). A copier that
reads a victim's pending ``submitUpdate`` (the mempool) and submits the same hash first makes
the victim's own submission revert: before, the victim lost the round (and was counted
absent). Now the victim's peer re-encodes its update with a fresh binding nonce, publishes it
and submits the new hash once more; the auditors approve it and reject the copier's submission
(its bytes are bound to the victim: ``binding_mismatch``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bdfl.chain.accounts import load_key_file
from bdfl.chain.deploy import Deployment
from bdfl.chain.devnet import batch_mining
from bdfl.chain.protocol import Outcome, Phase, ProtocolClient, draw_gas_bound, new_salt
from bdfl.chain.txsender import DuplicateHashError, TxSender
from bdfl.cli import build_parser
from bdfl.config import from_dict
from bdfl.experiment.worker import Hosted, Worker
from bdfl.learning.data import load_digits, make_peer_shards
from bdfl.learning.task import load_task
from bdfl.net.blobserver import BlobHost
from bdfl.net.fetch import Fetcher
from bdfl.net.serialization import (
    MAX_UPDATE_BYTES,
    Binding,
    decode_ndarrays,
    encode_ndarrays,
    hash_hex,
    read_binding,
    update_hash,
)
from bdfl.peer import stages
from bdfl.peer.engine import PeerEngine
from bdfl.peer.node import Candidate, Peer, PeerSettings
from bdfl.peer.round_state import ChainMemory, RoundState
from bdfl.peer.standalone import StandalonePeer
from tests.chain.helpers import JUMP, TEST_PARAMS, setup_proto
from tests.peer.test_standalone import setup_federation

N = 5  # victim 0, copier 1, honest members 2..4


@pytest.fixture()
def host() -> Iterator[BlobHost]:
    with BlobHost() as h:
        yield h


def _peers(proto: Any, host: BlobHost) -> tuple[list[Peer], list[ProtocolClient]]:
    task = load_task("clients.digits")
    ds = load_digits()
    shards = make_peer_shards(ds, N, scheme="iid", seed=0, min_size=20)
    hp = {"local_epochs": 1, "batch_size": 16}
    start = task.initial_parameters(ds, seed=0, hparams=hp)
    cid, dep = proto.deployment.chain_id, proto.deployment
    peers, clients = [], []
    for i, (k, s) in enumerate(zip(proto.keys, shards)):
        ep = host.add_endpoint("127.0.0.1", 0, max_blob_bytes=MAX_UPDATE_BYTES)
        peer = Peer(index=i, address=k.address, client=task.make_client(s.train, s.val, seed=i, hparams=hp),
                    endpoint=ep, settings=PeerSettings())
        peer.domain = (cid, dep.round_manager)
        peer.params = [p.copy() for p in start]
        chain = ProtocolClient(proto.w3, dep, k, TxSender(proto.w3, k, chain_id=cid))
        chain.join(ep.url)
        peers.append(peer)
        clients.append(chain)
    return peers, clients


def _engine(peer: Peer) -> PeerEngine:
    """A round engine around ``peer`` (the submit stage needs nothing else)."""
    cfg = from_dict({})
    return PeerEngine(peer, view=None, fetch=None, task="t", state=RoundState(ChainMemory(cfg)), cfg=cfg)  # type: ignore[arg-type]


def _past_phase(proto: Any, chain: ProtocolClient, rnd: int, phase: Phase) -> None:
    """End ``phase`` at its deadline unless every seat already moved the round on."""
    if chain.round_info(rnd).phase == phase:
        proto.rpc("evm_increaseTime", [JUMP])
        proto.rpc("evm_mine")
        chain.advance(rnd)


def test_binding_nonce_is_strict_and_old_bytes_still_decode() -> None:
    b = Binding(1, "0x" + "ab" * 20, 3, "0x" + "cd" * 20)
    arrays = [np.arange(4, dtype=np.float32)]
    plain, fresh = encode_ndarrays(arrays, binding=b), encode_ndarrays(arrays, binding=b.with_fresh_nonce())
    assert b"nonce" not in plain  # unchanged layout without a nonce
    got = read_binding(fresh, max_bytes=1 << 20)
    assert got is not None and got.subject == b.subject and len(got.nonce or "") == 66 and got.matches(b)
    for data in (plain, fresh):  # any nonce (or none) matches the expected subject
        assert np.array_equal(decode_ndarrays(data, max_bytes=1 << 20, binding=b)[0], arrays[0])
    with pytest.raises(ValueError):
        Binding(1, b.contract, 3, b.submitter, nonce="0x" + "AB" * 32)  # uppercase: not canonical
    assert fresh != encode_ndarrays(arrays, binding=b.with_fresh_nonce())  # a fresh nonce each time


def test_front_run_victim_recovers_and_copier_is_rejected(devnet: Any, artifacts: Any, host: BlobHost) -> None:
    proto = setup_proto(devnet, artifacts, TEST_PARAMS, n=N)
    peers, chains = _peers(proto, host)
    victim, copier = peers[0], peers[1]
    rnd = chains[0].current_round()
    for p in peers:
        p.train(rnd)
    data0 = victim.make_update(rnd)
    h0 = victim.publish(rnd, data0)
    # the copier saw the victim's pending transaction: same hash first, and serves the victim's bytes
    copier.endpoint.publish(data0)
    chains[1].submit_update(rnd, bytes.fromhex(h0[2:]), 10)
    with pytest.raises(DuplicateHashError):  # the typed revert the peer reacts to
        chains[0].submit_update(rnd, bytes.fromhex(h0[2:]), 10)

    front = stages.submit.recover_front_run(_engine(victim), rnd)  # what both drivers do on DuplicateHash
    chains[0].submit_update(rnd, bytes.fromhex(front.new_hash[2:]), victim.num_examples)
    h, rebound = front.new_hash, front.data
    assert front.old_hash == h0
    assert h != h0 and rebound is not None and victim.published[rnd] == h
    got = read_binding(rebound, max_bytes=MAX_UPDATE_BYTES)
    assert got is not None and got.nonce is not None and got.subject == victim.binding_for(rnd, victim.address).subject
    for p, c in zip(peers[2:], chains[2:]):
        c.submit_update(rnd, bytes.fromhex(p.publish(rnd, p.make_update(rnd))[2:]), p.num_examples)

    if chains[0].round_info(rnd).phase == Phase.SUBMIT:
        chains[0].advance(rnd)
    subs = chains[0].submissions(rnd)
    by_peer = {s.peer: s for s in subs}
    assert "0x" + by_peer[victim.address].update_hash.hex() == h  # the victim is in the round
    endpoints = chains[0].endpoints_of([s.peer for s in subs])
    # every honest committee member audits (the copier casts no vote)
    honest = {p.address: (p, c) for p, c in zip(peers, chains) if p is not copier}
    votes: dict[str, tuple[list[int], list[bool], bytes]] = {}
    reasons: list[tuple[str, str]] = []
    with Fetcher(max_bytes=MAX_UPDATE_BYTES, timeout=5.0, retries=1) as fetcher:
        for a in chains[0].committee(rnd):
            if a not in honest:
                continue
            peer, chain = honest[a]
            cands = [Candidate(index=i, peer=subs[i].peer, hash="0x" + subs[i].update_hash.hex(), url=endpoints[subs[i].peer])
                     for i in chain.assignments_of(rnd, a)]
            fetched = fetcher.fetch_many([(c.url, c.hash) for c in cands])
            before = len(peer.rejections)
            idx, accept = peer.audit(rnd, cands, fetched)
            reasons += [(r.peer, r.reason) for r in peer.rejections[before:]]
            salt = new_salt()
            chain.commit_votes(rnd, idx, accept, salt)
            votes[a] = (idx, accept, salt)
    assert (copier.address, "binding_mismatch") in reasons
    assert all(frm == copier.address for frm, _ in reasons)  # nothing else was refused
    _past_phase(proto, chains[0], rnd, Phase.COMMIT)
    for a, (idx, accept, salt) in votes.items():
        honest[a][1].reveal_votes(rnd, idx, accept, salt)
    _past_phase(proto, chains[0], rnd, Phase.REVEAL)
    chains[0].finalize(rnd)
    final = {s.peer: s for s in chains[0].submissions(rnd)}
    assert final[victim.address].outcome == Outcome.APPROVED
    assert final[copier.address].outcome == Outcome.REJECTED


def test_same_block_front_run_is_recovered_by_the_simulation_worker(devnet: Any, artifacts: Any, host: BlobHost) -> None:
    """The copier's transaction lands in the same block just before the victim's (what a
    front-runner paying a higher tip gets): the victim's revert is only seen in its receipt
    (replayed after the block to decode it); the worker's receipt check re-encodes and submits."""
    proto = setup_proto(devnet, artifacts, TEST_PARAMS, n=N)
    peers, chains = _peers(proto, host)
    victim = peers[0]
    rnd = chains[0].current_round()
    victim.train(rnd)
    h0 = victim.publish(rnd, victim.make_update(rnd))
    gas = 300_000 + draw_gas_bound(TEST_PARAMS.committee_size)
    with batch_mining(proto.w3):  # one block, copier first
        chains[1].submit_update(rnd, bytes.fromhex(h0[2:]), 10, wait=False, gas=gas)
        tx = chains[0].submit_update(rnd, bytes.fromhex(h0[2:]), victim.num_examples, wait=False, gas=gas)
    w = SimpleNamespace(submit_gas=gas, _front_runs=[])
    Worker._wait(w, [(Hosted(_engine(victim), chains[0]), tx)])  # type: ignore[arg-type]  # raised "transaction failed" before
    assert [x.old_hash for x in w._front_runs] == [h0]
    new = w._front_runs[0].new_hash
    subs = {s.peer: "0x" + s.update_hash.hex() for s in chains[0].submissions(rnd)}
    assert new != h0 and subs[victim.address] == new and subs[peers[1].address] == h0
    assert victim.published[rnd] == new


def test_bdfl_peer_recovers_from_a_front_run(devnet: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``bdfl peer`` (in process): a copier submits the peer's hash just before it; the peer
    re-encodes, serves and submits the new hash, and its state file keeps the new bytes."""
    fed = setup_federation(devnet.rpc_url, tmp_path, n=2)
    args = build_parser().parse_args([
        "peer", "--rpc-url", fed["rpc_url"], "--key-file", fed["keys"][0], "--listen", "127.0.0.1:0",
        "--deployment", fed["deployment"], "--client", "clients.digits", "--data-shard", "0/1",
        "--config", fed["config"], "--rounds", "1", "--state-dir", str(tmp_path / "state"),
    ])
    sp = StandalonePeer(args)
    try:
        # what StandalonePeer.run sets up before its loop (run itself would go on to finish the round)
        sp.rounds_limit, sp.rounds_done, sp.trained_round, sp.first_submit_done = 1, 0, None, False
        sp._clocks, sp._not_before, sp._said = {}, {}, set()
        sp.ensure_member()
        copier = ProtocolClient(sp.chain.w3, Deployment.load(fed["deployment"]), load_key_file(fed["keys"][1]))
        copier.approve_and_join("http://127.0.0.1:9/")
        honest_submit = sp.chain.submit_update
        copied: list[str] = []

        def front_run(rnd: int, h: bytes, n: int, **kw: Any) -> Any:
            if not copied:  # the copier read the pending transaction: same hash, higher tip
                copier.submit_update(rnd, h, 10)
                copied.append("0x" + h.hex())
            return honest_submit(rnd, h, n, **kw)

        monkeypatch.setattr(sp.chain, "submit_update", front_run)
        rnd = sp.chain.current_round()
        sp.on_submit(rnd, sp.chain.round_info(rnd))
        st = sp.state.rounds[rnd]
        assert copied and st.get("front_run") == copied[0] and st.get("submitted") is True
        assert st["hash"] != copied[0] and st["hash"] in sp.endpoint.published()
        assert hash_hex(update_hash(sp.state.load_blob(rnd) or b"")) == st["hash"]
        subs = {s.peer: "0x" + s.update_hash.hex() for s in sp.chain.submissions(rnd)}
        assert subs == {sp.address: st["hash"], copier.address: copied[0]}
    finally:
        sp.close()
