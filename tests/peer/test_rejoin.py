"""bdfl.peer.rejoin: what a returning peer does (shared by `bdfl peer` and simulated restarts).

* resync_model: only updates whose bytes hash to the on-chain hash and decode strictly are
  used (weighted by reputation); wrong bytes, malformed bytes and failed fetches are
  rejected and recorded, and with nothing usable the model is left as it was;
* ensure_membership: the right transactions for every membership status.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bdfl.chain.protocol import Status
from bdfl.errors import BDFLError
from bdfl.net.serialization import encode_ndarrays, hash_hex, update_hash
from bdfl.peer.node import Candidate, Peer, PeerSettings
from bdfl.peer.rejoin import ensure_membership, resync_model


class _Client:
    def get_parameters(self, _config: dict[str, Any]) -> list[np.ndarray]:
        return [np.zeros((2, 3), dtype=np.float32), np.zeros(3, dtype=np.float32)]


def _peer() -> Peer:
    return Peer(index=0, address="0x" + "11" * 20, client=_Client(), endpoint=None, settings=PeerSettings())


def _model(value: float) -> list[np.ndarray]:
    return [np.full((2, 3), value, dtype=np.float32), np.full(3, value, dtype=np.float32)]


def _cand(peer: str, data: bytes, weight: float) -> Candidate:
    return Candidate(index=0, peer=peer, hash=hash_hex(update_hash(data)), url="http://x", weight=weight)


def test_resync_uses_only_verified_updates_weighted_by_reputation() -> None:
    peer = _peer()
    good_a, good_b = encode_ndarrays(_model(1.0)), encode_ndarrays(_model(4.0))
    corrupt = encode_ndarrays(_model(9.0))
    malformed = b"BDFL not an update"
    cands = [_cand("A", good_a, 0.75), _cand("B", good_b, 0.25), _cand("C", corrupt, 1.0),
             _cand("D", malformed, 1.0), _cand("E", encode_ndarrays(_model(7.0)), 1.0)]
    fetched: dict[str, Any] = {
        cands[0].hash: good_a,
        cands[1].hash: good_b,
        cands[2].hash: bytes([corrupt[0] ^ 0xFF]) + corrupt[1:],  # served bytes that do not match the hash
        cands[3].hash: malformed,
        cands[4].hash: BDFLError("fetch failed: timeout"),
    }
    used = resync_model(peer, 3, cands, fetched)
    assert used == ["A", "B"]
    for p in peer.params:  # 0.75 * 1 + 0.25 * 4
        assert np.allclose(p, 1.75) and p.dtype == np.float32
    reasons = {r.peer: r.reason for r in peer.rejections}
    assert reasons["C"] == "hash_mismatch" and "fetch failed" in reasons["E"] and set(reasons) == {"C", "D", "E"}
    assert all(r.round == 3 for r in peer.rejections)


def test_resync_without_a_usable_update_keeps_the_model() -> None:
    peer = _peer()
    before = [p.copy() for p in peer.params]
    data = encode_ndarrays(_model(2.0))
    assert resync_model(peer, 1, [_cand("A", data, 1.0)], {}) == []  # not fetched
    assert all(np.array_equal(a, b) for a, b in zip(peer.params, before))
    assert [r.peer for r in peer.rejections] == ["A"]


class _Chain:
    """Records membership calls; the status and stake are what the chain would answer."""

    def __init__(self, status: Status, stake: int = 0, endpoint: str = "http://old") -> None:
        self.address = "0x" + "22" * 20
        self.deployment = SimpleNamespace(params=SimpleNamespace(min_stake=100))
        self.status, self.stake, self.endpoint = status, stake, endpoint
        self.bonded_until = 5  # PeerRegistry.withdrawableFrom: the stake may be withdrawn in round 5
        self.calls: list[tuple[Any, ...]] = []

    def status_of(self) -> Status:
        return self.status

    def stake_of(self) -> int:
        return self.stake

    def endpoint_of(self, _peer: str) -> str:
        return self.endpoint

    def withdraw(self, wait: bool = True) -> None:
        self.calls.append(("withdraw",))

    def withdrawable_from(self) -> int:
        return self.bonded_until

    def current_round(self) -> int:
        return 5

    def approve_and_join(self, url: str, stake: int, wait: bool = True) -> None:
        self.calls.append(("join", url, stake))

    def reactivate(self, added: int, wait: bool = True) -> None:
        self.calls.append(("reactivate", added))

    def update_endpoint(self, url: str, wait: bool = True) -> None:
        self.calls.append(("update_endpoint", url))


@pytest.mark.parametrize(
    ("status", "stake", "endpoint", "done", "calls"),
    [
        (Status.NONE, 0, "", ["joined"], [("join", "http://new", 100)]),
        (Status.LEFT, 90, "http://old", ["withdrew", "joined"], [("withdraw",), ("join", "http://new", 100)]),
        (Status.INACTIVE, 90, "http://old", ["reactivated", "endpoint_updated"], [("reactivate", 10), ("update_endpoint", "http://new")]),
        (Status.INACTIVE, 100, "http://new", ["reactivated"], [("reactivate", 0)]),
        (Status.ACTIVE, 100, "http://old", ["endpoint_updated"], [("update_endpoint", "http://new")]),
        (Status.ACTIVE, 100, "http://new", [], []),
        (Status.EXITING, 100, "http://new", [], []),
    ],
)
def test_ensure_membership_for_every_status(status: Status, stake: int, endpoint: str, done: list[str], calls: list[tuple[Any, ...]]) -> None:
    chain = _Chain(status, stake, endpoint)
    checked: list[int] = []
    assert ensure_membership(chain, "http://new", before_join=checked.append) == done
    assert chain.calls == calls
    assert checked == ([100] if "joined" in done else [])


def test_ensure_membership_refuses_while_the_stake_is_still_bonded() -> None:
    chain = _Chain(Status.LEFT, 90)
    chain.bonded_until = 6
    with pytest.raises(BDFLError, match="bonded until round 6"):
        ensure_membership(chain, "http://new")
    assert chain.calls == []  # nothing sent: withdraw would revert StillBonded
