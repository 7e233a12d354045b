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
  :mod:`bdfl.learning.mixing`), the velocity of the resynced start: the same kind of model one
  round earlier (the same tier's approved updates of the round before, verified alike) is
  taken as its previous start, so its first update back carries ``beta * (resync(r) -
  resync(r - 1))`` like every continuing peer's, instead of no velocity (which the audit,
  judging it against momentum-carrying moves, rejected: docs/learning.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from bdfl.chain.protocol import Status
from bdfl.errors import BDFLError
from bdfl.defense.aggregate import weighted_average

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
        peer.params = [p.copy() for p in weighted_average(models, weights)]
        peer.trained = None
        peer.reference = None
    return used


def resume_momentum(
    peer: Any,
    rnd: int,
    candidates: Sequence[Any],
    fetch_many: Callable[[list[tuple[str, str]]], Mapping[str, bytes | Exception]],
    *,
    resynced_from: Sequence[Any] | None = None,
) -> list[str]:
    """After :func:`resync_model` set ``peer.params`` from round ``rnd``'s updates: rebuild the
    start the peer would have had one round earlier from ``candidates``, the same tier's
    approved updates of round ``rnd - 1`` (:func:`bdfl.peer.stages.aggregate.velocity_plan`),
    each hash-checked against the chain and strictly decoded, averaged by their reputation
    weights, and hand it to :meth:`bdfl.peer.node.Peer.resume_momentum`: the peer's first
    update back then carries ``momentum * (resync(rnd) - resync(rnd - 1))``.

    ``resynced_from``: when ``peer.params`` is not that resync model but the peer's own model
    of round ``rnd`` (``bdfl peer`` restarted after it aggregated round ``rnd`` and saved the
    result, before it trained again: its previous start was not saved), the candidates the
    resync of round ``rnd`` would use; the velocity ``resync(rnd) - resync(rnd - 1)`` is then
    rebuilt from both rounds and the previous start taken as ``params`` less it.

    An update that does not verify is left out (not recorded as a rejection: nothing is used
    or voted on); when no update of a round verifies, nothing is set and the first round back
    carries no velocity. Returns the addresses whose updates of round ``rnd - 1`` were used."""

    now = list(resynced_from or [])
    wanted = sorted({(c.url, c.hash) for c in [*candidates, *now]})
    fetched = fetch_many(wanted) if wanted else {}
    before, used = _verified_average(peer, rnd - 1, candidates, fetched)
    if before is None:
        return []
    if resynced_from is None:
        peer.resume_momentum(rnd, before)
        return used
    current, _ = _verified_average(peer, rnd, now, fetched)
    if current is None:
        return []
    previous = []
    for p, c, b in zip(peer.params, current, before):
        p = np.asarray(p)
        if not np.issubdtype(p.dtype, np.floating):  # counters: no velocity (with_momentum leaves them as trained)
            previous.append(p)
            continue
        previous.append((p.astype(np.float64) - (np.asarray(c, dtype=np.float64) - np.asarray(b, dtype=np.float64))).astype(p.dtype))
    peer.resume_momentum(rnd, previous)
    return used


def _verified_average(peer: Any, rnd: int, candidates: Sequence[Any],
                      fetched: Mapping[str, bytes | Exception]) -> tuple[list[Any] | None, list[str]]:
    """The reputation-weighted average of ``candidates``' updates of round ``rnd`` whose fetched
    bytes verify (:meth:`bdfl.peer.node.Peer.checked_arrays`), and whose they were; (None, [])
    when none verifies."""
    models, weights, used = [], [], []
    for cand in candidates:
        params = peer.checked_arrays(rnd, cand, fetched.get(cand.hash, BDFLError("not fetched")))
        if params is not None:
            models.append(params)
            weights.append(max(float(cand.weight), 1e-6))
            used.append(cand.peer)
    return (weighted_average(models, weights), used) if models else (None, [])


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

