"""Fault injection for simulated runs: the ``[[faults]]`` of the configuration, applied at
fixed points of each round (docs/faults.md).

The orchestrator calls one hook per point of a round; each hook applies the faults due there,
one command at a time and in configuration order, so the chain sees the same transactions
in the same order on every run (reproducibility). Every action becomes a line in
``events.jsonl`` (``"source": "run"``) and in ``run.log``.

Points of run round ``r`` (chain round ``rnd``):

* ``round_start`` — crashed peers whose downtime ended restart; ``join`` faults join;
  ``leave`` faults request to leave; ``crash_before_submit`` peers die (before training);
* ``after_submit`` — ``crash_after_submit`` peers die (their update is submitted; their
  endpoint is gone before the auditors fetch it);
* ``after_commit`` — ``crash_after_commit`` peers die (they committed, they will not reveal);
  endpoint faults that ran their course heal, endpoint faults of round ``r`` begin (after
  the audit, so the update the auditors approved is the one later served wrongly);
* ``after_aggregate`` — peers that left in this round stop.
"""

from __future__ import annotations

from typing import Any

from bdfl.config import CRASH_FAULTS, ENDPOINT_FAULTS, ExperimentConfig, FaultConfig
from bdfl.experiment.messages import EndpointFault, LeavePeer, RestartPeer, Restarted, StopPeer

_ENDPOINT_KIND = {"corrupt_endpoint": "corrupt", "slow_endpoint": "slow", "drop_endpoint": "drop"}


def _overlaps(cfg: ExperimentConfig, f: FaultConfig, start: int, end: int) -> bool:
    """Whether fault ``f`` concerns its peer in any round of ``start .. end``."""
    if f.kind in CRASH_FAULTS:
        last = f.round + f.rounds if f.rounds else cfg.rounds  # through its restart
    elif f.kind in ENDPOINT_FAULTS:
        last = f.round + f.rounds if f.rounds else cfg.rounds
    else:
        last = f.round
    return f.round <= end and last >= start


def late_joiners(cfg: ExperimentConfig) -> list[int]:
    """Peers whose first membership fault is a ``join``: they are not members at the start."""
    first: dict[int, tuple[int, str]] = {}
    for f in cfg.faults:
        if f.kind in ("join", "leave") and (f.peer not in first or f.round < first[f.peer][0]):
            first[f.peer] = (f.round, f.kind)
    return sorted(p for p, (_r, kind) in first.items() if kind == "join")


def keeps_state(cfg: ExperimentConfig) -> bool:
    """Whether workers persist their peers' models (only needed when a peer may crash)."""
    return any(f.kind in CRASH_FAULTS for f in cfg.faults)


class FaultInjector:
    """Applies a run's ``[[faults]]``; holds which peers are down and the round's event lines."""

    def __init__(self, orch: Any) -> None:
        self.o = orch
        self.cfg: ExperimentConfig = orch.cfg
        self.faults: list[tuple[int, FaultConfig]] = list(enumerate(self.cfg.faults))
        self.down: set[int] = set(late_joiners(self.cfg))
        self.events: list[dict[str, Any]] = []
        self.crash_peer: dict[int, int] = {}  # fault number -> the peer it crashed (resolves peer = -1)

    # -- helpers --------------------------------------------------------------------
    def _due(self, r: int, *kinds: str) -> list[tuple[int, FaultConfig]]:
        return [(n, f) for n, f in self.faults if f.round == r and f.kind in kinds]

    def emit(self, name: str, r: int, rnd: int, text: str, **args: Any) -> None:
        """One event line (merged into events.jsonl by block) and one run.log line."""
        block = self.o.chain.block_number()
        self.events.append({"block": block, "source": "run", "event": name, "round": r, "chain_round": rnd, "args": args})
        if text:
            self.o.note(f"round {r}: {text}")

    def take_events(self) -> list[dict[str, Any]]:
        out, self.events = self.events, []
        return out

    def _address(self, peer: int) -> str:
        return str(self.o.addresses[peer])

    def _stop(self, peer: int, r: int, rnd: int, reason: str) -> None:
        self.o.pool.call(StopPeer(peer))
        self.down.add(peer)
        self.emit("PeerStopped", r, rnd, f"peer {peer} stopped ({reason})", peer=peer, address=self._address(peer), reason=reason)

    def _crash(self, n: int, f: FaultConfig, peer: int, r: int, rnd: int, **extra: Any) -> None:
        restart = f.round + f.rounds if f.rounds else None
        self.crash_peer[n] = peer
        until = f"restarts in round {restart}" if restart else "does not restart"
        self.emit("FaultInjected", r, rnd, f"fault {f.kind}: peer {peer} killed ({until})",
                  kind=f.kind, peer=peer, address=self._address(peer), rounds=f.rounds, restart_round=restart, **extra)
        self._stop(peer, r, rnd, f.kind)

    def _start_peer(self, peer: int, r: int, rnd: int, reason: str) -> None:
        """Bring ``peer`` (back) up: membership on chain, a current model from its neighbours."""
        res = [x for x in self.o.pool.call(RestartPeer(peer, rnd)) if x is not None]
        if not res:
            return
        info: Restarted = res[0]
        self.down.discard(peer)
        for rej in info.rejected:
            self.emit("InputRejected", r, rnd, f"peer {peer} could not use the update of {rej.source} while resyncing: {rej.reason}", **rej.event_args())
        # run round = chain round + 1 (a run starts at chain round 0)
        source_round = info.source_round
        source = {
            "neighbours": f"{len(info.resynced_from)} of {info.first_tier} approved update(s) "
                          f"of round {source_round + 1}, hash-checked",
            "fallback": f"{len(info.resynced_from)} fallback approved update(s) of round {source_round + 1} "
                        f"(no neighbour update could be verified), hash-checked",
            "saved": f"its saved model (after round {(info.saved_round or 0) + 1})",
            "initial": "the initial model",
        }[info.model_from]
        self.emit("PeerRestarted", r, rnd,
                  f"peer {peer} {'joined' if reason == 'join' else 'restarted'}: membership {', '.join(info.membership) or 'unchanged'}; "
                  f"model from {source} (test accuracy {info.accuracy:.3f})",
                  peer=peer, address=self._address(peer), reason=reason, membership=info.membership,
                  model_from=info.model_from, source_round=source_round + 1, resynced_from=info.resynced_from,
                  candidates=info.candidates, accuracy=info.accuracy)

    # -- the hooks --------------------------------------------------------------------
    def round_start(self, r: int, rnd: int) -> None:
        for n, f in self.faults:  # downtime over: restart (a crashed peer with rounds = 0 stays down)
            peer = self.crash_peer.get(n)
            if f.kind in CRASH_FAULTS and f.rounds and f.round + f.rounds == r and peer is not None:
                self._start_peer(peer, r, rnd, "restart")
        for _n, f in self._due(r, "join"):
            self.emit("FaultInjected", r, rnd, f"fault join: peer {f.peer} joins", kind="join", peer=f.peer, address=self._address(f.peer))
            self._start_peer(f.peer, r, rnd, "join")
        for _n, f in self._due(r, "leave"):
            self.o.pool.call(LeavePeer(f.peer))
            self.emit("FaultInjected", r, rnd, f"fault leave: peer {f.peer} requested to leave (a member until this round is finalized)",
                      kind="leave", peer=f.peer, address=self._address(f.peer))
        for n, f in self._due(r, "crash_before_submit"):
            self._crash(n, f, f.peer, r, rnd)

    def after_submit(self, r: int, rnd: int) -> None:
        for n, f in self._due(r, "crash_after_submit"):
            self._crash(n, f, f.peer, r, rnd)

    def after_commit(self, r: int, rnd: int) -> None:
        for n, f in self._due(r, "crash_after_commit"):
            committee = [self.o.addresses.index(a) for a in self.o.keeper.committee(rnd) if a in self.o.addresses]
            peer = f.peer
            if peer < 0:  # a committee member of this round: the first seat that is up and faces no other fault
                end = f.round + f.rounds if f.rounds else self.cfg.rounds
                busy = {g.peer for m, g in self.faults if m != n and g.peer >= 0 and _overlaps(self.cfg, g, r, end)}
                peer = next((i for i in committee if i not in self.down and i not in busy), -1)
                if peer < 0:
                    self.emit("FaultSkipped", r, rnd, "fault crash_after_commit: no committee member free to crash", kind=f.kind)
                    continue
            self._crash(n, f, peer, r, rnd, in_committee=peer in committee)
        for _n, f in self.faults:
            if f.kind in ENDPOINT_FAULTS and f.rounds and f.round + f.rounds == r:
                self.o.pool.call(EndpointFault(f.peer, None))
                self.emit("FaultCleared", r, rnd, f"fault {f.kind}: peer {f.peer}'s endpoint behaves again",
                          kind=f.kind, peer=f.peer, address=self._address(f.peer))
        for _n, f in self._due(r, *ENDPOINT_FAULTS):
            kind = _ENDPOINT_KIND[f.kind]
            delay = f.delay or 1.5 * self.cfg.net.fetch_timeout
            self.o.pool.call(EndpointFault(f.peer, kind, delay if kind == "slow" else 0.0))
            extra = {"delay": delay} if kind == "slow" else {}
            until = f"through the audit of round {f.round + f.rounds}" if f.rounds else "until the end"
            self.emit("FaultInjected", r, rnd, f"fault {f.kind}: peer {f.peer}'s endpoint misbehaves ({kind}) {until}",
                      kind=f.kind, peer=f.peer, address=self._address(f.peer), rounds=f.rounds, **extra)

    def after_aggregate(self, r: int, rnd: int) -> None:
        for _n, f in self._due(r, "leave"):
            self._stop(f.peer, r, rnd, "left")
