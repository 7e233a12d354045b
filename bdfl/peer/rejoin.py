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
  :func:`resync_from_tiers` tries further candidates when none of the first verifies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

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

