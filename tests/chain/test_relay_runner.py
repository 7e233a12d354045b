"""The relayer of ``bdfl run`` (``chain.submission = "relayed"``, issue 23) is not trusted.

Each adversary below plays the relayer of a whole round: one drops an entry, one alters an
entry's hash and another's signature, one delays its batch past the peers' deadline margin.
The peers run the runner's own checks (:func:`bdfl.peer.stages.submit.check_relayed`, and
:func:`~bdfl.peer.stages.submit.watch_relayed` of a peer waiting for its relayer) and submit
directly whatever did not land. In every case no peer's update is lost (each member has its
own hash on chain, the round closes with every update approved) and no peer is slashed or
loses reputation for the relayer's fault.
"""

from __future__ import annotations

from typing import Any, Sequence

import pytest

from bdfl.chain.protocol import Outcome, Phase, ProtocolClient, submit_batch_size
from bdfl.chain.relay import RelayBatch, Relayer, RelayRequest, has_submitted, recorded_hashes
from bdfl.chain.txsender import TxSender
from bdfl.config import ExperimentConfig, from_dict
from bdfl.errors import ConfigError
from bdfl.peer.stages.submit import Fallback, check_relayed, watch_relayed
from tests.chain.helpers import Env, update_hash

pytestmark = pytest.mark.chain

MARGIN = 30


class DroppingRelayer(Relayer):
    """Leaves the entries of ``victims`` out of its batches."""

    def __init__(self, client: ProtocolClient, victims: set[str]) -> None:
        super().__init__(client)
        self.victims = victims

    def send(self, round_: int, requests: Sequence[RelayRequest]) -> list[RelayBatch]:
        return super().send(round_, [r for r in requests if r.member not in self.victims])


class AlteringRelayer(Relayer):
    """Changes the hash of ``hash_of``'s entry and one byte of ``sig_of``'s signature."""

    def __init__(self, client: ProtocolClient, hash_of: str, sig_of: str) -> None:
        super().__init__(client)
        self.hash_of, self.sig_of = hash_of, sig_of

    def send(self, round_: int, requests: Sequence[RelayRequest]) -> list[RelayBatch]:
        out = []
        for r in requests:
            e = list(r.entry)
            if r.member == self.hash_of:
                e[0] = update_hash(round_, "the relayer's own", tag=9)
            if r.member == self.sig_of:
                e[4] = bytes([e[4][0] ^ 1]) + e[4][1:]
            out.append(RelayRequest(r.member, tuple(e)))  # type: ignore[arg-type]
        return super().send(round_, out)


class DelayingRelayer(Relayer):
    """Keeps every request and posts only when told (:meth:`flush`), e.g. past the margin."""

    def __init__(self, client: ProtocolClient) -> None:
        super().__init__(client)
        self.held: list[tuple[int, list[RelayRequest]]] = []

    def send(self, round_: int, requests: Sequence[RelayRequest]) -> list[RelayBatch]:
        self.held.append((round_, list(requests)))
        return []

    def flush(self) -> list[RelayBatch]:
        held, self.held = self.held, []
        return [b for r, reqs in held for b in Relayer.send(self, r, reqs)]


def _requests(env: Env, peers: Sequence[ProtocolClient], r: int) -> list[RelayRequest]:
    return [RelayRequest(c.address, c.sign_submission(r, update_hash(r, c.address), 10)) for c in peers]


def _relay_round(env: Env, peers: Sequence[ProtocolClient], r: int, relayer: Relayer) -> tuple[list[RelayBatch], list[Fallback]]:
    """The relayer sends every peer's signed submission of ``r``; then each peer's on-chain check
    (:func:`check_relayed`, as the runner's worker does): the batches and the peers that must fall back."""
    batches = relayer.send(r, _requests(env, peers, r))
    return batches, check_relayed(relayer, r, batches, {c.address: i for i, c in enumerate(peers)})


def _fall_back(env: Env, r: int, fallbacks: Sequence[Any]) -> None:
    """What the runner's worker does for each peer whose entry did not land: submit directly."""
    for f in fallbacks:
        env.by_addr[f.address].submit_update(r, update_hash(r, f.address), 10)


def _close_round_and_check(env: Env, peers: Sequence[ProtocolClient], r: int, before: dict[str, tuple[int, int]]) -> None:
    """Every peer's own update is on chain; the round closes with all approved; no stake or reputation lost."""
    assert recorded_hashes(env.deployer, r) == {c.address: update_hash(r, c.address) for c in peers}
    assert env.deployer.phase() == Phase.COMMIT  # the last (direct or relayed) submission ended Submit
    votes = env.honest_votes(r)
    env.commit_all(r, votes)
    env.reveal_all(r, votes)
    env.deployer.finalize(r)
    assert all(s.outcome == Outcome.APPROVED for s in env.deployer.submissions(r))
    for c in peers:
        stake, rep = before[c.address]
        assert env.deployer.stake_of(c.address) == stake, c.address  # not slashed
        assert env.deployer.reputation_of(c.address) >= rep, c.address  # no absence or rejection penalty


def _before(env: Env, peers: Sequence[ProtocolClient]) -> dict[str, tuple[int, int]]:
    return {c.address: (env.deployer.stake_of(c.address), env.deployer.reputation_of(c.address)) for c in peers}


def test_honest_relayer_lands_every_entry_and_nobody_falls_back(env: Env) -> None:
    peers = env.join()
    r = env.deployer.current_round()
    before = _before(env, peers)
    relayer = Relayer(env.deployer)  # the deployer account: no member, as a worker's relayer
    batches, fallbacks = _relay_round(env, peers, r, relayer)
    assert len(batches) == 1
    assert fallbacks == []
    _close_round_and_check(env, peers, r, before)


def test_relayer_dropping_an_entry_the_peer_submits_directly(env: Env) -> None:
    peers = env.join()
    r = env.deployer.current_round()
    before = _before(env, peers)
    victim = peers[2].address
    relayer = DroppingRelayer(env.deployer, {victim})
    _batches, fallbacks = _relay_round(env, peers, r, relayer)
    assert [(f.peer, f.address, f.reason) for f in fallbacks] == [(2, victim, "not relayed")]
    assert env.deployer.phase() == Phase.SUBMIT  # the dropped member still has its turn
    _fall_back(env, r, fallbacks)
    _close_round_and_check(env, peers, r, before)


def test_relayer_altering_a_hash_or_a_signature_is_skipped_and_the_peers_fall_back(env: Env) -> None:
    peers = env.join()
    r = env.deployer.current_round()
    before = _before(env, peers)
    relayer = AlteringRelayer(env.deployer, hash_of=peers[1].address, sig_of=peers[4].address)
    _batches, fallbacks = _relay_round(env, peers, r, relayer)
    assert {f.address for f in fallbacks} == {peers[1].address, peers[4].address}
    # the contract skipped both (the altered entries recover some other address, or none)
    assert {f.reason for f in fallbacks} <= {"NotActiveMember", "ECDSAInvalidSignature", "ECDSAInvalidSignatureS"}, fallbacks
    # nothing was recorded in their name: not the relayer's hash, not the original
    recorded = recorded_hashes(env.deployer, r)
    assert peers[1].address not in recorded and peers[4].address not in recorded
    assert update_hash(r, "the relayer's own", tag=9) not in recorded.values()
    _fall_back(env, r, fallbacks)
    _close_round_and_check(env, peers, r, before)


def test_relayer_delaying_past_the_margin_the_peers_submit_directly_and_its_late_batch_is_skipped(env: Env) -> None:
    peers = env.join()
    r = env.deployer.current_round()
    before = _before(env, peers)
    relayer = DelayingRelayer(env.deployer)
    assert relayer.send(r, _requests(env, peers, r)) == []
    deadline = env.deployer.round_info(r).deadline
    # the first peer waits while the chain time is before the margin: it polls and nothing lands
    slept: list[float] = []

    def sleep_then_near_deadline(s: float) -> None:  # the wait passes: chain time reaches the margin
        slept.append(s)
        env.rpc("evm_setNextBlockTimestamp", [deadline - MARGIN])
        env.rpc("evm_mine")

    first = peers[0]
    assert watch_relayed(first, r, update_hash(r, first.address), 10, margin=MARGIN, sleep=sleep_then_near_deadline) == "direct"
    assert slept == [1.0]
    for c in peers[1:]:
        assert watch_relayed(c, r, update_hash(r, c.address), 10, margin=MARGIN, sleep=pytest.fail) == "direct"
    # the relayer finally posts: every entry is refused (all submitted; the Submit phase is over)
    late = relayer.flush()
    receipts = relayer.wait(late)
    for b, rc in zip(late, receipts, strict=True):
        if not isinstance(rc, Exception):
            assert set(relayer.skipped(b, rc)) == {q.member for q in b.requests}
    _close_round_and_check(env, peers, r, before)


def test_watch_sees_a_relayed_entry_land_within_the_margin_and_sends_nothing(env: Env) -> None:
    peers = env.join()
    r = env.deployer.current_round()
    relayer = DelayingRelayer(env.deployer)
    relayer.send(r, _requests(env, peers[:1], r))
    nonce = peers[0].w3.eth.get_transaction_count(peers[0].address)

    def sleep_while_relayer_posts(_s: float) -> None:
        relayer.wait(relayer.flush())

    assert watch_relayed(peers[0], r, update_hash(r, peers[0].address), 10, margin=MARGIN, sleep=sleep_while_relayer_posts) == "relayed"
    assert has_submitted(env.deployer, r, peers[0].address)
    assert peers[0].w3.eth.get_transaction_count(peers[0].address) == nonce  # the peer sent no transaction


def test_a_batch_the_node_dropped_falls_back_and_leaves_no_nonce_gap(env: Env) -> None:
    """A relayer's batch that the node accepted and then dropped unmined (anvil 1.7 did at
    N = 10,000): its members fall back, and the relayer's next transaction is still mined
    (no nonce gap behind the dropped one)."""
    peers = env.join()
    r = env.deployer.current_round()
    before = _before(env, peers)
    cid = env.dep.chain_id
    relayer = Relayer(ProtocolClient(env.w3, env.dep, env.proto.deployer,
                                     TxSender(env.w3, env.proto.deployer, chain_id=cid, receipt_timeout=3.0)))
    requests = _requests(env, peers, r)
    env.rpc("evm_setAutomine", [False])
    try:  # two batches in the pool; the node drops the second before mining
        batches = relayer.send(r, requests[:4]) + relayer.send(r, requests[4:])
        env.rpc("anvil_dropTransaction", ["0x" + bytes(batches[1].tx_hash).hex()])
        env.rpc("evm_mine")
    finally:
        env.rpc("evm_setAutomine", [True])
    fallbacks = check_relayed(relayer, r, batches, {c.address: i for i, c in enumerate(peers)})
    assert sorted(f.peer for f in fallbacks) == list(range(4, len(peers)))
    assert {f.reason for f in fallbacks} == {"not relayed"}
    # the relayer's next transaction gets the dropped one's nonce and is mined
    relayer.client.sender.wait(relayer.client.sender.send_transaction({"to": relayer.address}))
    _fall_back(env, r, fallbacks)
    _close_round_and_check(env, peers, r, before)


def test_relayer_batches_stay_under_the_transaction_cap(env: Env) -> None:
    relayer = Relayer(env.deployer)
    reqs = [RelayRequest(f"0x{i:040x}", (b"", 0, b"", b"", b"", b"")) for i in range(2 * submit_batch_size(env.params.committee_size) + 1)]
    sizes = [len(b) for b in relayer.batches(reqs)]
    most = submit_batch_size(env.params.committee_size)
    assert sizes == [most, most, 1]
    assert [q.member for b in relayer.batches(reqs) for q in b] == [q.member for q in reqs]  # order kept


def test_config_submission_mode_is_validated() -> None:
    assert ExperimentConfig().chain.submission in ("direct", "relayed")
    assert from_dict({"chain": {"submission": "relayed"}}).chain.submission == "relayed"
    with pytest.raises(ConfigError, match="chain.submission") as exc:
        from_dict({"chain": {"submission": "via-carrier-pigeon"}})
    assert "direct, relayed" in str(exc.value)
