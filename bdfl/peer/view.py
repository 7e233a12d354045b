"""What a peer's round engine reads from the chain: the :class:`ChainView` interface.

Two implementations: :class:`ProtocolView` reads a deployed RoundManager through a
:class:`~bdfl.chain.protocol.ProtocolClient` (``bdfl peer`` holds one; a simulation worker
holds one that all its peers share, so each round is read once per worker), and
:class:`MemoryChainView`, a chain held in memory (tests, the chain-free mirror
``experiments/audit_rule_eval.py``). The engine (:mod:`bdfl.peer.engine`) sees only the
interface.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bdfl.chain.protocol import Status, Submission

#: on-chain reputation is fixed point with this scale (1.0 = REP_SCALE)
REP_SCALE = 10**18


@dataclass(frozen=True)
class ClosedRound:
    """A closed round as a peer needs it to aggregate: its submissions with their outcomes,
    the round seed (the overlay's), and the members' reputation in [0, 1] and which of them
    are active, as read after the round's close."""

    round: int
    submissions: list[Submission]
    seed: bytes
    reputation: dict[str, float]
    active: list[str]
    approved_count: int = 0


class ChainView(Protocol):
    """The reads of the round engine. ``refresh()`` drops what may have changed since the
    last read (a driver calls it once per phase it acts in); closed rounds stay cached."""

    def refresh(self) -> None: ...

    def submissions(self, rnd: int) -> list[Submission]: ...

    def closed(self, rnd: int) -> ClosedRound: ...

    def committee(self, rnd: int) -> list[str]: ...

    def assignments(self, rnd: int, member: str) -> list[int]: ...

    def endpoint_of(self, peer: str) -> str: ...

    def forget_endpoint(self, peer: str) -> None: ...


class ProtocolView:
    """:class:`ChainView` over a :class:`~bdfl.chain.protocol.ProtocolClient` (reads only).

    ``members``: the addresses whose endpoints are read in one batch (a simulation's peers);
    None reads the registry's member list. Reads are cached until :meth:`refresh`; a closed
    round's submissions and seed are kept for ``keep`` rounds. ``keep_endpoints``: endpoints
    stay cached across refreshes until :meth:`forget_endpoint` (a simulation, whose driver
    knows when a peer comes back at a new endpoint); otherwise they are read again too."""

    def __init__(self, client: Any, members: Sequence[str] | None = None, keep: int = 16, keep_endpoints: bool = False) -> None:
        self.client = client
        self.members = list(members) if members is not None else None
        self.keep = keep
        self.keep_endpoints = keep_endpoints
        self._closed_subs: dict[int, tuple[list[Submission], bytes, int]] = {}
        self._endpoints: dict[str, str] = {}
        self.refresh()

    def refresh(self) -> None:
        self._subs: dict[int, list[Submission]] = {}
        self._committee: dict[int, list[str]] = {}
        self._assignments: dict[int, dict[str, list[int]]] = {}
        if not self.keep_endpoints:
            self._endpoints = {}
        self._states: tuple[dict[str, float], list[str]] | None = None

    def submissions(self, rnd: int) -> list[Submission]:
        if rnd not in self._subs:
            self._subs[rnd] = self.client.submissions(rnd)
        return self._subs[rnd]

    def _member_states(self) -> tuple[dict[str, float], list[str]]:
        if self._states is None:
            members = self.members if self.members is not None else self.client.members()
            states = self.client.peer_states(members) if members else []
            rep = {info.address: info.reputation / REP_SCALE for info, _s, _c in states}
            active = sorted(info.address for info, _s, _c in states if info.status == Status.ACTIVE)
            self._states = (rep, active)
        return self._states

    def closed(self, rnd: int) -> ClosedRound:
        if rnd not in self._closed_subs:
            info = self.client.round_info(rnd)
            self._closed_subs[rnd] = (self.client.submissions(rnd), info.seed, info.approved_count)
            for old in [r for r in self._closed_subs if r < rnd - self.keep]:
                del self._closed_subs[old]
        subs, seed, approved = self._closed_subs[rnd]
        rep, active = self._member_states()
        return ClosedRound(rnd, subs, seed, rep, active, approved)

    def committee(self, rnd: int) -> list[str]:
        if rnd not in self._committee:
            self._committee[rnd] = self.client.committee(rnd)
        return self._committee[rnd]

    def assignments(self, rnd: int, member: str) -> list[int]:
        if rnd not in self._assignments:
            committee = self.committee(rnd)
            self._assignments[rnd] = self.client.assignments_of_many(rnd, committee) if committee else {}
        return list(self._assignments[rnd].get(member, []))

    def endpoint_of(self, peer: str) -> str:
        if peer not in self._endpoints:
            if self.members is not None and peer in self.members:
                self._endpoints.update(self.client.endpoints_of(self.members))
            else:
                self._endpoints[peer] = self.client.endpoint_of(peer)
        return self._endpoints[peer]

    def forget_endpoint(self, peer: str) -> None:
        self._endpoints.pop(peer, None)


@dataclass
class MemoryChainView:
    """A chain held in memory (:class:`ChainView`): rounds of submissions, committees and
    assignments a test or the chain-free mirror writes directly."""

    endpoints: dict[str, str] = field(default_factory=dict)
    reputation: dict[str, float] = field(default_factory=dict)
    subs: dict[int, list[Submission]] = field(default_factory=dict)
    seeds: dict[int, bytes] = field(default_factory=dict)
    committees: dict[int, list[str]] = field(default_factory=dict)
    assigned: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    inactive: set[str] = field(default_factory=set)

    def refresh(self) -> None:
        pass

    def submissions(self, rnd: int) -> list[Submission]:
        return list(self.subs.get(rnd, []))

    def closed(self, rnd: int) -> ClosedRound:
        subs = self.submissions(rnd)
        active = sorted(a for a in self.reputation if a not in self.inactive)
        approved = sum(int(s.outcome.name == "APPROVED") for s in subs)
        return ClosedRound(rnd, subs, self.seeds.get(rnd, bytes(32)), dict(self.reputation), active, approved)

    def committee(self, rnd: int) -> list[str]:
        return list(self.committees.get(rnd, []))

    def assignments(self, rnd: int, member: str) -> list[int]:
        return list(self.assigned.get(rnd, {}).get(member, []))

    def endpoint_of(self, peer: str) -> str:
        return self.endpoints.get(peer, "")

    def forget_endpoint(self, peer: str) -> None:
        pass

    def add_members(self, peers: Iterable[str], reputation: float = 0.5) -> None:
        for p in peers:
            self.reputation.setdefault(p, reputation)
