"""Batched and paged reads of the protocol client agree with the one-call-per-item
reads and with web3's own event decoding (the orchestrator relies on the fast paths)."""

from __future__ import annotations

import pytest

from bdfl.chain import protocol
from bdfl.chain.connection import Chain
from bdfl.errors import BDFLError
from bdfl.chain.protocol import COMMIT_GAS, Outcome, Phase, reveal_gas_bound

from .helpers import Env


def test_fast_reads_agree_with_per_item_reads_and_web3_event_decoding(env: Env) -> None:
    peers = env.join(env.peers[:6])
    bad = {peers[-1].address}
    first = env.deployer.w3.eth.block_number + 1
    r = env.full_round(peers, bad=bad)
    dep = env.deployer

    # submissions: paged slices (including pages smaller than the count) == one call per index
    one_by_one = [dep.submission(r, i) for i in range(dep.submission_count(r))]
    assert dep.submissions(r) == one_by_one
    assert dep.submissions(r, page=4) == one_by_one and dep.submissions(r, page=1) == one_by_one
    assert dep.submissions(r + 5) == []  # a round with no submissions
    assert [s.outcome for s in one_by_one if s.peer in bad] == [Outcome.REJECTED]

    # approved updates: the one-call view == the paged path clients use above APPROVED_VIEW_MAX
    approved = dep.approved_updates(r)
    assert len(approved) == 5
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(protocol, "APPROVED_VIEW_MAX", 0)
        assert dep.approved_updates(r) == approved

    # assignments and endpoints: one batch == per-item calls
    committee = dep.committee(r)
    assert dep.assignments_of_many(r, committee) == {a: dep.assignments_of(r, a) for a in committee}
    addrs = [p.address for p in peers]
    assert dep.endpoints_of(addrs, page=4) == {a: dep.endpoint_of(a) for a in addrs}

    # events: the eth_abi decoder gives exactly what web3's process_log gives
    last = dep.w3.eth.block_number
    fast = dep.events(first, last)
    logs = dep.w3.eth.get_logs({"fromBlock": first, "toBlock": last, "address": [dep.registry.address, dep.rounds.address]})
    slow = []
    for log in logs:
        for contract in (dep.registry, dep.rounds):
            for ev in contract.events:
                try:
                    decoded = ev().process_log(log)
                except Exception:  # noqa: BLE001 - not this event
                    continue
                slow.append((decoded["event"], {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in decoded["args"].items()}))
                break
            else:
                continue
            break
    from bdfl.chain.protocol import _jsonable

    assert len(fast) == len(slow) > 20
    assert {e["event"] for e in fast} >= {"CommitteeDrawn", "UpdateSubmitted", "UpdateFinalized", "ReputationChanged"}
    assert [(e["event"], e["args"]) for e in fast] == [(n, {k: _jsonable(v) for k, v in a.items()}) for n, a in slow]
    # where each event is (the orchestrator orders events by block): as web3's logs say
    assert [(e["block"], e["tx"], e["log_index"]) for e in fast] == [
        (log["blockNumber"], "0x" + bytes(log["transactionHash"]).hex(), log["logIndex"]) for log in logs]
    # block ranges split at chunk boundaries (a round's blocks stay far under LOG_CHUNK) lose or repeat nothing
    assert last - first >= 3
    assert dep.events(first, last, chunk=1) == dep.events(first, last, chunk=2) == fast
    # a node that refuses the log query is named with its block range, not decoded as no events
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dep.w3.provider, "make_request", lambda method, params: {"jsonrpc": "2.0", "id": 1,
                                                                           "error": {"code": -32005, "message": "query returned more than 10000 results"}})
        with pytest.raises(BDFLError, match=rf"reading the events of blocks {first}\.\.{last} failed: .*10000 results"):
            dep.events(first, last)


def test_vote_gas_bounds_cover_what_commits_and_reveals_use(env: Env) -> None:
    peers = env.join(env.peers[:8])
    r = env.deployer.current_round()
    env.submit(peers, r)
    if env.deployer.round_info(r).phase == Phase.SUBMIT:
        env.jump()
        env.deployer.advance(r)
    votes = env.honest_votes(r)
    assert votes and max(len(v[0]) for v in votes.values()) >= 4
    for a, (idx, acc, salt) in votes.items():
        rc = env.by_addr[a].commit_votes(r, idx, acc, salt)  # default gas: COMMIT_GAS
        assert rc["status"] == 1 and rc["gasUsed"] <= COMMIT_GAS // 1.5
    if env.deployer.round_info(r).phase == Phase.COMMIT:
        env.jump()
        env.deployer.advance(r)
    for a, (idx, acc, salt) in votes.items():
        rc = env.by_addr[a].reveal_votes(r, idx, acc, salt)  # default gas: reveal_gas_bound
        assert rc["status"] == 1 and rc["gasUsed"] <= reveal_gas_bound(len(idx)) / 1.3, (len(idx), rc["gasUsed"])


def test_block_usage_read_raw_agrees_with_web3_blocks(env: Env) -> None:
    """The orchestrator's per-round (transactions, gas) read, raw JSON-RPC in pages, gives what
    web3's formatted blocks give, across page boundaries; a block the node lacks is named."""
    peers = env.join(env.peers[:4])
    first = env.deployer.w3.eth.block_number + 1
    env.full_round(peers)
    last = env.deployer.w3.eth.block_number
    blocks = [env.w3.eth.get_block(n) for n in range(first, last + 1)]
    expected = (sum(len(b["transactions"]) for b in blocks), sum(int(b["gasUsed"]) for b in blocks))
    chain = Chain(env.proto.rpc_url)
    assert last - first >= 3 and expected[0] > 0
    assert chain.block_usage(first, last) == expected
    assert chain.block_usage(first, last, page=2) == expected == chain.block_usage(first, last, page=1)
    assert chain.block_usage(last + 1, last) == (0, 0)
    with pytest.raises(BDFLError, match=rf"block {last + 1000} could not be read"):
        chain.block_usage(last + 1000, last + 1000)
