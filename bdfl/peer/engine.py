"""One peer's round engine, the same for ``bdfl peer`` and every simulated peer.

A round is a fixed sequence of stages, one module each in :mod:`bdfl.peer.stages`:
train -> publish -> submit -> audit -> commit -> reveal -> aggregate. :class:`PeerEngine`
holds what the stages need — the :class:`~bdfl.peer.node.Peer` (model, endpoint, the
strict checks of received bytes), a :class:`~bdfl.peer.view.ChainView`, a fetcher, the
task's name and the :class:`~bdfl.peer.round_state.RoundState` carried between rounds —
and nothing about *when* a stage runs: that is the driver's (``bdfl peer`` polls the chain,
:mod:`bdfl.experiment.worker` runs a stage when the orchestrator says so). Sending
transactions is the driver's too (a worker batches its peers' transactions in turn).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TypeVar

from bdfl.errors import BDFLError
from bdfl.peer.node import Peer
from bdfl.peer.round_state import RoundState
from bdfl.peer.view import ChainView

#: rounds in a row in which a peer's task client raised, after which the peer stops
MAX_CLIENT_FAILURES = 3

T = TypeVar("T")


class FetchMany(Protocol):
    """Fetch ``(url, 0x hash)`` pairs: hash -> bytes, or the exception that stopped the fetch
    (:meth:`bdfl.net.fetch.Fetcher.fetch_many`)."""

    def __call__(self, pairs: Sequence[tuple[str, str]], budget: float | None = None) -> Mapping[str, bytes | Exception]: ...


@dataclass(frozen=True)
class ClientFailure:
    """A call into the task's client that raised: that peer sits the round out (no update
    after ``fit``, no vote after ``audit``)."""

    peer: int
    address: str
    step: str
    task: str
    error: str
    traceback: str

    def event_args(self) -> dict[str, Any]:
        return asdict(self)


class PeerEngine:
    """One peer's round, stage by stage (module docstring)."""

    def __init__(self, peer: Peer, *, view: ChainView, fetch: FetchMany, task: str, state: RoundState, cfg: Any) -> None:
        self.peer = peer
        self.view = view
        self.fetch = fetch
        self.task = task
        self.state = state
        self.cfg = cfg

    @property
    def address(self) -> str:
        return self.peer.address

    @property
    def memory(self) -> Any:
        return self.state.memory

    def isolated(self, rnd: int, step: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | ClientFailure:
        """``fn(*args)``, a call into the task's client. An exception there (other than a
        :class:`~bdfl.errors.BDFLError`, e.g. a client-contract violation, which stops the
        peer) is this peer's failure for round ``rnd``: recorded and returned as a
        :class:`ClientFailure` (the driver logs it). After MAX_CLIENT_FAILURES rounds in a row with a failure the
        peer stops with one BDFLError: the same rule for ``bdfl peer`` and simulated peers."""
        try:
            out = fn(*args, **kwargs)
        except BDFLError:
            raise
        except Exception as exc:  # noqa: BLE001 - isolated to this peer and round
            failures = self.state.client_failures
            failures.add(rnd)
            for old in [r for r in failures if r <= rnd - MAX_CLIENT_FAILURES]:
                failures.discard(old)
            if all(r in failures for r in range(rnd - MAX_CLIENT_FAILURES + 1, rnd + 1)):
                raise BDFLError(f"task {self.task} {step} raised in {MAX_CLIENT_FAILURES} rounds in a row on peer {self.address} "
                                f"(last: {type(exc).__name__}: {exc})", fix="fix the task code; the tracebacks are in the log") from None
            return ClientFailure(self.peer.index, self.address, step, self.task, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        return out
