"""What a peer does when it comes back (after a crash, a leave, or joining late).

Shared by ``bdfl peer`` (:mod:`bdfl.peer.standalone`) and the simulation's fault injection
(:mod:`bdfl.experiment.worker`), so a simulated restart follows the same rules as a real one:

* :func:`ensure_membership` — become an active member serving at this endpoint again:
  ``withdraw`` + ``join`` after a completed leave, ``join`` when not a member, ``reactivate``
  (topping the stake up to the minimum) after being marked inactive for missed rounds, and
  ``updateEndpoint`` when the registered endpoint differs;
* :func:`resync_model` — a current model from the neighbours: the reputation-weighted average
  of their latest *approved* updates, each hash-checked against the chain and strictly decoded
  (:meth:`bdfl.peer.node.Peer.decode_verified`) before use. A peer that was away for several
  rounds thus starts from where the federation is, not from its own stale model;
  :func:`resync_from_tiers` tries further candidates when none of the first verifies;
* :func:`resume_momentum` — with quasi-global momentum (``overlay.momentum``,
  :mod:`bdfl.learning.mixing`), the velocity of the resynced start: its sources' weighted
  mean approved move (update less the start it was judged from, verified alike), so its first
  update back carries a velocity like every continuing peer's, instead of none (which the
  audit, judging it against momentum-carrying moves, rejected: docs/learning.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from bdfl.chain.protocol import Status
from bdfl.errors import BDFLError
from bdfl.defense.aggregate import AggregationError, merge_copies, weighted_average

# How many closed rounds a resync looks at, newest first, when the latest has no usable
# update (nothing approved): the peers' blob servers still serve updates that old.
RESYNC_LOOKBACK = 3


def ensure_membership(
    chain: Any,
    url: str,
    *,
    stake: int | None = None,
    before_join: Callable[[int], None] | None = None,
    wait: bool = True,
) -> list[str]:
    """Make ``chain``'s account an active member whose registered endpoint is ``url``.

    ``stake`` (token base units) is what a join stakes and the least a reactivation adds
    (default: the deployment's minimum stake for a join, the shortfall below it for a
    reactivation). ``before_join(stake)`` is called before a join (e.g. to check funds and
    give a clear error). Returns the actions taken, in order, from ``withdrew``, ``joined``,
    ``reactivated``, ``endpoint_updated``; empty if nothing had to change.
    """

    done: list[str] = []
    min_stake = int(chain.deployment.params.min_stake)
    status = chain.status_of()
    if status == Status.LEFT:  # the stake of a completed leave must be withdrawn before a new join
        bonded_until, now = chain.withdrawable_from(), chain.current_round()
        if now < bonded_until:  # unbonding (docs/protocol.md, "Identity costs")
            raise BDFLError(
                f"account {chain.address} left the federation; its stake stays bonded until round {bonded_until} (now {now})",
                fix=f"start the peer again from round {bonded_until} on",
            )
        chain.withdraw(wait=wait)
        done.append("withdrew")
        status = Status.NONE
    if status == Status.NONE:
        amount = min_stake if not stake else int(stake)
        if before_join is not None:
            before_join(amount)
        chain.approve_and_join(url, amount, wait=wait)
        done.append("joined")
        return done
    if status == Status.INACTIVE:
        added = max(0, min_stake - int(chain.stake_of()))
        if stake:
            added = max(added, int(stake))
        chain.reactivate(added, wait=wait)
        done.append("reactivated")
    elif status not in (Status.ACTIVE, Status.EXITING):
        raise BDFLError(f"account {chain.address} has membership status {status.name}; cannot rejoin")
    if chain.endpoint_of(chain.address) != url:
        chain.update_endpoint(url, wait=wait)
        done.append("endpoint_updated")
    return done


def resync_model(
    peer: Any,
    rnd: int,
    candidates: Sequence[Any],
    fetched: Mapping[str, bytes | Exception],
) -> list[str]:
    """Set ``peer.params`` to the weighted average of the verified ``candidates`` (neighbours'
    approved updates of round ``rnd``, :class:`~bdfl.peer.node.Candidate` with on-chain hash and
    reputation weight). Unverifiable ones are rejected and recorded in ``peer.rejections``.
    Returns the addresses whose updates were used; with none, ``peer.params`` is unchanged."""

    models, weights, used = [], [], []
    for cand in candidates:
        params = peer.decode_verified(rnd, cand, fetched.get(cand.hash, BDFLError("not fetched")))
        if params is not None:
            models.append(params)
            weights.append(max(float(cand.weight), 1e-6))
            used.append(cand.peer)
    if models:
        peer.params = [p.copy() for p in weighted_average(*merge_copies(models, weights))]  # as bdfl.defense.audited
        peer.trained = None
        peer.reference = None
    return used


def resume_momentum(
    peer: Any,
    rnd: int,
    tiers: Sequence[Sequence[tuple[Any, Sequence[Any]]]],
    fetch_many: Callable[[list[tuple[str, str]]], Mapping[str, bytes | Exception]],
) -> list[str]:
    """Give a returning peer the velocity of its start for its first round back: after
    :func:`resync_model` set ``peer.params`` to the weighted average of its sources' approved
    updates of round ``rnd`` (or, for ``bdfl peer`` restarted after it aggregated round ``rnd``
    and saved the result, its own model, whose previous start was not saved).

    ``tiers`` (:func:`bdfl.peer.stages.aggregate.velocity_plan`): the resync's sources, then
    other approved updates of round ``rnd`` (tried only when the first tier yields no move),
    each as its update of round ``rnd`` (a candidate with its weight) and its start recipe of
    that round, the models of round ``rnd - 1`` it started from. Every model is fetched, hash-checked
    against the chain and strictly decoded; each source whose update and own update of the
    round before verify has the move ``update - start`` (start: the weighted average of the
    recipe's models that verify, as auditors rebuild it; an approved update that cannot be
    fetched, say its trainer crashed, was aggregated by nobody), and the velocity is their
    weighted mean move. A continuing peer's start moves by its
    sources' weighted mean move (plus how far its start was from theirs), so this is the same
    quasi-global direction; with ``params`` the resync model, ``params`` less it is the weighted
    mean of the sources' starts. That previous start is handed to
    :meth:`bdfl.peer.node.Peer.resume_momentum`, so the first update back carries
    ``momentum * velocity`` like every continuing peer's. Nothing that fails to verify is used
    (and nothing is recorded as a rejection: nothing is used or voted on); with no source
    verified, nothing is set and the first round back carries no velocity, as before this
    rebuild. Integer arrays (counters) get no velocity. Returns the sources used."""

    for moves in tiers:
        used = _resume_from(peer, rnd, moves, fetch_many) if moves else []
        if used:
            return used
    return []


def _resume_from(peer: Any, rnd: int, moves: Sequence[tuple[Any, Sequence[Any]]],
                 fetch_many: Callable[[list[tuple[str, str]]], Mapping[str, bytes | Exception]]) -> list[str]:
    """:func:`resume_momentum` from one tier of moves; [] (nothing set) when none verifies."""
    fetched = fetch_many(sorted({(c.url, c.hash) for cand, recipe in moves for c in (cand, *recipe)}))

    def arrays(r: int, cand: Any) -> Any:
        return peer.checked_arrays(r, cand, fetched.get(cand.hash, BDFLError("not fetched")))

    floats = [np.issubdtype(np.asarray(p).dtype, np.floating) for p in peer.params]
    moved: list[Any] | None = None  # sum w_j (update_j - start_j), float64, one source at a time
    total, used = 0.0, []
    for cand, recipe in moves:
        update = arrays(rnd, cand)
        models = [arrays(rnd - 1, src) for src in recipe] if update is not None and recipe else []
        if not models or models[0] is None:  # no update, or not its own update of the round before
            continue
        try:  # the models that verify: an approved update nobody could fetch was aggregated by nobody
            start = weighted_average([m for m in models if m is not None],
                                     [float(src.weight) for src, m in zip(recipe, models) if m is not None])
        except AggregationError:
            continue
        w = max(float(cand.weight), 1e-6)
        if moved is None:
            moved = [np.zeros(np.shape(p), dtype=np.float64) if f else None for p, f in zip(peer.params, floats)]
        for m, u, s0 in zip(moved, update, start):
            if m is not None:
                m += w * (u.astype(np.float64) - s0.astype(np.float64))
        total += w
        used.append(cand.peer)
    if moved is None:
        return []
    previous = [p if m is None else (np.asarray(p, dtype=np.float64) - m / total).astype(np.asarray(p).dtype)
                for p, m in zip(peer.params, moved)]
    peer.resume_momentum(rnd, previous)
    return used


def resync_from_tiers(
    peer: Any,
    rnd: int,
    tiers: Sequence[Sequence[Any]],
    fetch_many: Callable[[list[tuple[str, str]]], Mapping[str, bytes | Exception]],
) -> tuple[list[str], int]:
    """:func:`resync_model` from the first tier of candidates that yields a verified update
    (e.g. the neighbours' approved updates, then fallbacks), fetching each tier only when the
    ones before it gave nothing. Returns (the addresses used, the tier's index; -1 if none)."""
    for i, cands in enumerate(tiers):
        fetched = fetch_many(sorted({(c.url, c.hash) for c in cands})) if cands else {}
        used = resync_model(peer, rnd, cands, fetched)
        if used:
            return used, i
    return [], -1

