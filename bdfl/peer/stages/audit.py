"""Stage 4, audit (committee members): what to judge, the rebuilt starts, the verdicts.

:func:`audit_inputs` reads from the chain view what an auditor judges in round ``rnd``:
its assigned updates (on-chain hash, the submitter's endpoint), each trainer's start
recipe and latest earlier move (:mod:`bdfl.peer.sources`, kept in the round state), the
replay window's hashes. The driver fetches :func:`wanted` (``bdfl peer`` retries
unreachable endpoints; a worker fetches for all its auditors at once), :func:`rebuild`
turns the fetched models into starts and moves, :func:`judge` votes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bdfl.peer.decode_cache import KeptStarts
from bdfl.peer.engine import ClientFailure, PeerEngine
from bdfl.peer.node import Candidate, Peer
from bdfl.peer.republished import EarlierModels
from bdfl.peer.sources import PastMove, StartSource
from bdfl.types import NDArrays


@dataclass
class AuditInputs:
    """An auditor's round: its assigned candidates, the trainers' start recipes and earlier
    moves (only for candidates that are not replays), and the replay window's hashes."""

    round: int
    candidates: list[Candidate]
    recipes: dict[str, list[StartSource]] = field(default_factory=dict)
    past: dict[str, PastMove] = field(default_factory=dict)
    earlier: frozenset[str] = frozenset()
    urls: dict[str, str] = field(default_factory=dict)  # peer -> endpoint, for the recipes' models

    def fresh(self) -> list[Candidate]:
        """The candidates that are not replays (the ones to fetch)."""
        return [c for c in self.candidates if c.hash.lower() not in self.earlier]


@dataclass(frozen=True)
class AuditResult:
    """An auditor's votes and what it saw: updates not used (``rejections``: step, submitter,
    reason), assigned updates without a vote (``abstentions``: submitter, why), and the rule's
    negative verdicts (``verdicts``: submitter, failed tests)."""

    indices: list[int]
    accept: list[bool]
    rejections: list[tuple[str, str]]
    abstentions: list[tuple[str, str]]
    verdicts: list[tuple[str, tuple[str, ...]]]


def audit_inputs(engine: PeerEngine, rnd: int) -> AuditInputs:
    """What ``engine``'s peer judges in round ``rnd`` (empty when it holds no seat)."""
    view, memory = engine.view, engine.memory
    subs = view.submissions(rnd)
    cands = [Candidate(index=u, peer=subs[u].peer, hash="0x" + subs[u].update_hash.hex(), url=view.endpoint_of(subs[u].peer),
                       num_samples=subs[u].num_samples)
             for u in view.assignments(rnd, engine.address)]
    inputs = AuditInputs(rnd, cands, earlier=memory.earlier_hashes(rnd, view) if cands else frozenset())
    recipes = memory.recipes_for(rnd, view) if cands else {}
    for c in inputs.fresh():
        if c.peer not in recipes:
            continue
        inputs.recipes[c.peer] = list(recipes[c.peer])
        past = memory.moves.latest(c.peer, rnd)
        if past is not None:
            inputs.past[c.peer] = past
    peers = {c.peer for c in cands} | {s.peer for r in inputs.recipes.values() for s in r} | {s.peer for m in inputs.past.values() for s in m.start}
    inputs.urls = {p: view.endpoint_of(p) for p in sorted(peers)}
    return inputs


def wanted(inputs: AuditInputs) -> set[tuple[str, str]]:
    """The (url, hash) pairs an auditor fetches: its fresh candidates, the models of their
    start recipes, and their earlier moves with those moves' recipes."""
    out = {(c.url, c.hash) for c in inputs.fresh()}
    for recipe in inputs.recipes.values():
        out |= {(inputs.urls[s.peer], s.hash) for s in recipe}
    for trainer, m in inputs.past.items():
        out |= {(inputs.urls[trainer], m.hash)} | {(inputs.urls[s.peer], s.hash) for s in m.start}
    return out


class Rebuilt(NamedTuple):
    """What an auditor rebuilds from earlier rounds' models (:func:`rebuild`): the trainers'
    starts, their earlier moves, and digests of every model decoded for them (the replay check
    by content, :mod:`bdfl.peer.republished`)."""

    starts: dict[str, NDArrays]
    moves: dict[str, NDArrays]
    earlier: EarlierModels

    @classmethod
    def empty(cls) -> Rebuilt:
        return cls({}, {}, EarlierModels())


def rebuild(peer: Peer, rnd: int, recipes: Mapping[str, list[StartSource]], past: Mapping[str, PastMove],
            fetched: Mapping[str, bytes | Exception], kept: KeptStarts | None = None) -> Rebuilt:
    """The trainers' starts of round ``rnd`` (from round ``rnd - 1``'s updates) and their
    earlier moves, from the fetched, hash-checked models (:meth:`bdfl.peer.node.Peer.rebuild_starts`,
    :meth:`~bdfl.peer.node.Peer.rebuild_past_moves`), with the digests of those models. ``kept``: the starts an earlier round's
    rebuild kept: an earlier move's start is taken from it when it was rebuilt from the very same
    recipe (:class:`bdfl.peer.decode_cache.KeptStarts`); then it holds this round's starts."""
    taken: dict[str, NDArrays] = {}
    if kept is not None:
        for trainer, m in past.items():
            got = kept.take(trainer, m.round, m.start)
            if got is not None:
                taken[trainer] = got
        kept.clear()  # what was not taken is not needed: freed before this round's starts are built
    earlier = EarlierModels(seed=peer.sketch_seed)
    moves = peer.rebuild_past_moves(past, fetched, taken, earlier) if past else {}
    taken.clear()
    starts = peer.rebuild_starts(recipes, fetched, rnd - 1, earlier) if recipes else {}
    return Rebuilt(starts, moves, earlier)


def prepare(peer: Peer, inputs: Iterable[AuditInputs], fetched: Mapping[str, bytes | Exception], rebuilt: Rebuilt) -> int:
    """Search, in one batch, how near each candidate that ``inputs``' auditors will judge lies
    to another trainer's earlier model (:meth:`bdfl.peer.republished.EarlierModels.prepare`), for
    :func:`judge` to find memoised: a worker calls it once for all its auditors. Only what the
    audit would search is searched (fresh, fetched, decodable, not an exact earlier model, with a
    rebuilt start); a candidate it misses is still searched alone when judged. Decodes go
    through ``peer``'s decode cache, which the judges then hit. Returns how many were searched."""
    starts, _, earlier = rebuilt

    def pending() -> Iterator[tuple[str, NDArrays, NDArrays, str]]:
        seen: set[str] = set()
        for inp in inputs:
            for c in inp.fresh():
                if c.hash in seen or c.peer not in starts:
                    continue
                seen.add(c.hash)
                params = peer.checked_arrays(inp.round, c, fetched.get(c.hash))
                if params is not None and not earlier.holds(params):
                    yield c.hash, params, starts[c.peer], c.peer

    return earlier.prepare(pending())


def judge(engine: PeerEngine, inputs: AuditInputs, fetched: Mapping[str, bytes | Exception],
          attacker_peers: frozenset[str] = frozenset(), rebuilt: Rebuilt | None = None,
          ) -> AuditResult | ClientFailure:
    """Vote on the assigned updates (:meth:`bdfl.peer.node.Peer.audit`) under the
    client-failure rule; ``rebuilt``: starts, moves and earlier models already rebuilt (a worker
    rebuilds them once for all its auditors), else rebuilt here."""
    peer = engine.peer
    starts, moves, earlier = rebuilt if rebuilt is not None else rebuild(peer, inputs.round, inputs.recipes, inputs.past, fetched)
    before = len(peer.rejections)
    judged: Any = engine.isolated(inputs.round, "audit", peer.audit, inputs.round, inputs.candidates,
                                  fetched if isinstance(fetched, dict) else dict(fetched), attacker_peers,  # read only: not copied per auditor
                                  earlier_hashes=inputs.earlier, starts=starts, past_moves=moves, earlier_models=earlier)
    if isinstance(judged, ClientFailure):
        return judged
    indices, accept = judged
    return AuditResult(indices, accept, [(r.peer, r.reason) for r in peer.rejections[before:]], list(peer.last_abstentions),
                       list(peer.last_audit_rejections))
