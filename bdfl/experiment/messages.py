"""The typed messages between the orchestrator and its worker processes.

One command dataclass per thing a worker does (the orchestrator sends it through
:class:`bdfl.experiment.pool.WorkerPool`), one reply dataclass per command. Records that
end up as event lines (:mod:`bdfl.experiment.faults`) say how in ``event_args()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bdfl.errors import BDFLError
from bdfl.peer.engine import ClientFailure
from bdfl.peer.round_state import OverlayChange
from bdfl.peer.stages.submit import Fallback, FrontRun


@dataclass(frozen=True)
class Times:
    """Seconds a worker spent on one command, by kind (:class:`bdfl.experiment.pool.RoundTimes`)."""

    train: float = 0.0
    exchange: float = 0.0
    audit: float = 0.0
    chain: float = 0.0
    eval: float = 0.0


@dataclass(frozen=True)
class Traffic:
    """Update bytes a worker moved during one command (phase ``submit``, ``audit`` or
    ``aggregate``): body bytes its fetcher received over HTTP (every attempt), verified bodies
    fetched over HTTP, body bytes its endpoints served (to any worker) meanwhile, and the verified
    bodies (and their bytes) its fetcher read in process from its own peers' endpoints
    (``Fetcher.local_bytes`` / ``local_bodies``: no HTTP, so not in ``fetched`` / ``bodies``).
    Updates read = ``bodies + local_bodies``; update bytes read = ``fetched + local_bytes``."""

    phase: str = ""
    fetched: int = 0
    bodies: int = 0
    served: int = 0
    local_bytes: int = 0
    local_bodies: int = 0

    def plus(self, other: Traffic) -> Traffic:
        """The two counts added (this one's phase)."""
        return Traffic(self.phase, self.fetched + other.fetched, self.bodies + other.bodies, self.served + other.served,
                       self.local_bytes + other.local_bytes, self.local_bodies + other.local_bodies)


# -- commands ------------------------------------------------------------------------


@dataclass(frozen=True)
class Join:
    stake: int


@dataclass(frozen=True)
class TrainSubmit:
    """Train, publish and sign the submission: honest peers (``attackers`` False) or the
    attackers, which know the round's honest updates (``honest``: (hash, url, claimed samples),
    submitted on chain already) for omniscient attacks. ``active``: peer indices the chain counts
    as members."""

    round: int
    attackers: bool
    active: list[int]
    honest: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class SendOutbox:
    """Send the signed transactions (workers in turn, for a reproducible order)."""


@dataclass(frozen=True)
class AuditCommit:
    round: int
    attacker_addrs: list[str]


@dataclass(frozen=True)
class Reveal:
    round: int


@dataclass(frozen=True)
class Aggregate:
    round: int


@dataclass(frozen=True)
class StopPeer:
    index: int


@dataclass(frozen=True)
class RestartPeer:
    """Bring peer ``index`` back in chain round ``round`` (resync from ``round - 1``)."""

    index: int
    round: int


@dataclass(frozen=True)
class LeavePeer:
    index: int


@dataclass(frozen=True)
class EndpointFault:
    index: int
    kind: str | None
    delay: float = 0.0


@dataclass(frozen=True)
class Stop:
    """Stop the worker process."""


# -- replies and records ---------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    """A worker is up: how many peers it runs now, and (on a Ray cluster) where their endpoints listen."""

    peers: int
    endpoint_hosts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Joined:
    joined: int
    times: Times = Times()


@dataclass(frozen=True)
class Submitted:
    """One peer's published update; ``fit_metrics``: the numbers its client's ``fit`` returned
    with it (``train_loss``, ...; fit_metrics.csv)."""

    hash: str
    url: str
    bytes: int
    fit_metrics: dict[str, float] = field(default_factory=dict)
    samples: int = 0  # the sample count submitted with it (public, on chain)


@dataclass(frozen=True)
class TrainSubmitReply:
    peers: dict[int, Submitted]
    failed: list[ClientFailure]
    times: Times
    traffic: Traffic = Traffic()


@dataclass(frozen=True)
class SendReply:
    sent: int
    front_runs: list[FrontRun]
    times: Times
    fallbacks: list[Fallback] = field(default_factory=list)  # relayed submissions that did not land: sent directly


@dataclass(frozen=True)
class InputRejected:
    """A received update a peer did not use (unreachable, wrong hash, malformed, replay)."""

    peer: int
    source: str  # the submitter's address
    reason: str
    step: str  # audit / aggregate / resync

    def event_args(self) -> dict[str, Any]:
        return {"peer": self.peer, "from": self.source, "reason": self.reason, "step": self.step}


@dataclass(frozen=True)
class Abstained:
    """An assigned update an auditor could not fetch: no vote (not evidence against it)."""

    peer: int
    source: str
    index: int | None
    reason: str


@dataclass(frozen=True)
class AuditRejection:
    """The audit rule's reject verdict on one update and the tests that failed."""

    peer: int
    source: str
    failed: list[str]

    def event_args(self) -> dict[str, Any]:
        return {"peer": self.peer, "from": self.source, "failed": self.failed}


@dataclass(frozen=True)
class StartsCheck:
    """Trainers' starts rebuilt by this worker's auditors, and (simulation only) how many of
    the honest trainers hosted here started exactly where the auditors say."""

    rebuilt: int = 0
    honest_checked: int = 0
    honest_exact: int = 0
    past_moves: int = 0


@dataclass(frozen=True)
class AuditReply:
    votes: dict[int, tuple[list[int], list[bool]]]
    rejected: list[InputRejected]
    abstained: list[Abstained]
    audit_rejections: list[AuditRejection]
    failed: list[ClientFailure]
    starts: StartsCheck
    times: Times
    traffic: Traffic = Traffic()


@dataclass(frozen=True)
class RevealReply:
    revealed: int
    times: Times


@dataclass(frozen=True)
class PeerRound:
    """One peer's round after aggregation: its test-set figures and what it combined."""

    aggregated: int
    accuracy: float
    loss: float
    rejected: list[InputRejected]
    attack_success_rate: float | None = None
    used: list[dict[str, str]] | None = None  # with [[faults]]: {"from", "bytes_hash"} of each update combined


@dataclass(frozen=True)
class OverlayReport:
    """The overlay the peers built (``built``) or repaired after a round's close."""

    built: bool
    members: int
    added: list[str]
    removed: list[str]
    degree_min: int
    degree_max: int
    degrees: dict[str, int] | None  # by member, up to 64 members
    connected: bool
    digest: str

    @classmethod
    def of(cls, change: OverlayChange, addresses: list[str]) -> OverlayReport:
        """The report of ``change`` with addresses spelled as in ``addresses`` (checksummed)."""
        before, overlay = change.before, change.after
        old = set(before.members) if before is not None else set()
        checksum = {a.lower(): a for a in addresses}
        degrees = sorted(overlay.degrees().values())
        return cls(before is None, len(overlay), [checksum.get(a, a) for a in overlay.members if a not in old],
                   [checksum.get(a, a) for a in sorted(old - set(overlay.members))],
                   degrees[0] if degrees else 0, degrees[-1] if degrees else 0,
                   {checksum.get(m, m): d for m, d in sorted(overlay.degrees().items())} if len(overlay) <= 64 else None,
                   overlay.is_connected(), overlay.digest())

    def event_args(self) -> dict[str, Any]:
        return {"members": self.members, "added": self.added, "removed": self.removed, "degree_min": self.degree_min,
                "degree_max": self.degree_max, "degrees": self.degrees, "connected": self.connected, "digest": self.digest}


@dataclass(frozen=True)
class AggregateReply:
    peers: dict[int, PeerRound]
    overlay: OverlayReport | None  # every worker holds the same overlay
    times: Times
    traffic: Traffic = Traffic()


@dataclass(frozen=True)
class Restarted:
    peer: int
    membership: list[str]
    model_from: str
    saved_round: int | None
    source_round: int
    first_tier: int  # candidates offered first (the neighbours' approved updates)
    candidates: int  # all candidates offered (with the fallbacks)
    resynced_from: list[str]
    rejected: list[InputRejected]
    accuracy: float
    seconds: float


def gather_replies(replies: Iterable[tuple[str, Any]], what: str, fix: str | None = None) -> list[Any]:
    """The payloads of every worker's ``("ok", payload)`` reply, in worker order; one
    :class:`BDFLError` (with ``fix``) naming each worker whose reply was ``("error", why)``."""
    results, errors = [], []
    for i, (status, payload) in enumerate(replies):
        if status == "ok":
            results.append(payload)
        else:
            errors.append(f"worker {i}: {payload}")
    if errors:
        raise BDFLError(f"{what} failed in a worker process:\n" + "\n".join(errors), fix=fix)
    return results
