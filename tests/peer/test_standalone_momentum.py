"""``bdfl peer``'s returning peers rebuild their quasi-global momentum (docs/learning.md,
"Quasi-global momentum"; :meth:`bdfl.peer.standalone.StandalonePeer.resync` and
:meth:`~bdfl.peer.standalone.StandalonePeer.resume_saved_momentum`), on an overlay that is
not the complete graph (6 peers, expander of degree 2), so momentum is in effect.

Six :class:`~bdfl.peer.standalone.StandalonePeer` s (digits clients, their own round state,
overlay tracker and state folder) run rounds 0-3 on an in-memory chain
(:class:`bdfl.peer.view.MemoryChainView`, every update approved), their update bytes served
over HTTP by real endpoints; each round is ``bdfl peer``'s train and publish stages, then its
``finish_round``. Peer A stops right after aggregating round 3 (its state folder holds the
model, the overlay and the round); peer B, not A's neighbour, stops after round 2 and misses
round 3. Both start again in round 4 as ``bdfl peer`` does: state folder loaded
(``_setup_state``), then ``recover`` and ``resync`` (what ``run`` calls before its loop).

* with ``overlay.momentum`` 0.5, each returning peer's velocity (its model less the previous
  start it was given) equals its sources' (its overlay neighbours') reputation-weighted mean
  move of round 3, recomputed here from what those peers really did: the round-3 update bytes
  they published (the hashes on chain) less the model they really started round 3 from; B's
  model is the weighted mean of those updates, A keeps its saved one. Their first updates
  back (round 4) are accepted by every auditor of the committee (the four continuing peers,
  through ``bdfl peer``'s own ``audit``, which rebuilds the trainers' starts and earlier moves);
* with ``overlay.momentum`` 0 the same restarts rebuild no velocity (B still resyncs).

The harness's endpoints keep serving every peer's earlier updates (as a live peer's does; a
restarted process serves only its current round's again).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bdfl.chain.protocol import Outcome, Submission
from bdfl.config import from_dict
from bdfl.defense.audited import update_weight
from bdfl.learning.data import load_digits, make_peer_shards
from bdfl.learning.mixing import momentum_in_effect
from bdfl.learning.task import load_task
from bdfl.net.blobserver import BlobHost
from bdfl.net.fetch import Fetcher
from bdfl.net.serialization import MAX_UPDATE_BYTES, ModelSpec, decode_ndarrays
from bdfl.peer import stages
from bdfl.peer.engine import ClientFailure, PeerEngine
from bdfl.peer.node import Peer, peer_settings
from bdfl.peer.overlay_tracker import OverlayTracker
from bdfl.peer.round_state import ChainMemory, RoundState
from bdfl.peer.standalone import StandalonePeer
from bdfl.peer.state import PeerState
from bdfl.peer.view import MemoryChainView
from tests.peer.auditors import CHAIN, RM

N = 6
A = 0  # restarted right after aggregating round R - 1
ADDRS = [f"0x{i:040x}" for i in range(1, N + 1)]  # digits only: already checksummed
HP = {"local_epochs": 2, "batch_size": 16}
REPUTATION = {a: 0.4 + 0.1 * i for i, a in enumerate(ADDRS)}
# the returning peers' first round back (rounds 0 .. R - 1 closed before). From round 4 on (2 local
# epochs) a first update back without the rebuilt velocity is rejected by every auditor here
# (measured: 4-0 against, both peers; with R = 2 they were accepted either way), so the votes check
# the rebuild too
R = 4
VELOCITY_LINE = re.compile(rf"chain round {R - 1}: momentum velocity rebuilt from (\d+) approved move\(s\) of chain round {R - 1}")


def _cfg(momentum: float) -> Any:
    return from_dict({"peers": N, "protocol": {"committee_size": 4, "auditors_per_update": 3, "quorum": 2},
                      "overlay": {"topology": "expander", "degree": 2, "min_sources": 2, "momentum": momentum}})


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    task = load_task("clients.digits")
    ds = load_digits()
    shards = make_peer_shards(ds, N, scheme="iid", seed=0, min_size=20)
    start = task.initial_parameters(ds, seed=0, hparams=HP)
    with BlobHost() as host:
        endpoints = [host.add_endpoint("127.0.0.1", 0, max_blob_bytes=MAX_UPDATE_BYTES) for _ in ADDRS]
        with Fetcher(max_bytes=MAX_UPDATE_BYTES, timeout=5.0, retries=1, loop=host.loop_thread, allow_private=True) as fetcher:
            yield {"task": task, "shards": shards, "start": start, "endpoints": endpoints, "fetcher": fetcher}


def _peer(world: dict[str, Any], cfg: Any, i: int) -> Peer:
    """Peer ``i`` as a fresh process builds it: its client, the common initial model."""
    s = world["shards"][i]
    peer = Peer(index=i, address=ADDRS[i], client=world["task"].make_client(s.train, s.val, seed=i, hparams=HP),
                endpoint=world["endpoints"][i], settings=peer_settings(cfg, 0), seed=0)
    peer.domain = (CHAIN, RM)
    peer.params = [p.copy() for p in world["start"]]
    peer.spec = ModelSpec.of_ndarrays(peer.params)
    return peer


def _wire(sp: Any, world: dict[str, Any], cfg: Any, view: MemoryChainView, current_round: int) -> Any:
    """What ``StandalonePeer._setup_network`` and ``run`` set up, on the in-memory chain."""
    sp.view, sp.fetcher = view, world["fetcher"]
    sp.engine = PeerEngine(sp.peer, view=view, fetch=sp.fetcher.fetch_many, task="clients.digits", state=sp.round_state, cfg=cfg)  # type: ignore[arg-type]
    sp.stop = SimpleNamespace(is_set=lambda: False, wait=lambda s: None)
    sp.chain = SimpleNamespace(committee=view.committee, current_round=lambda: current_round,
                               stake_of=lambda: 90 * 10**18, claimable=lambda: 0)  # rounds.csv reads both
    sp._clocks, sp.rounds_done, sp.trained_round = {}, 0, None
    return sp


def _live(world: dict[str, Any], cfg: Any, view: MemoryChainView, i: int, folder: Path) -> Any:
    sp: Any = StandalonePeer.__new__(StandalonePeer)
    sp.cfg, sp.peer, sp.address = cfg, _peer(world, cfg, i), ADDRS[i]
    sp.tracker = OverlayTracker(cfg.overlay.topology, cfg.overlay.degree)
    sp.round_state = RoundState(ChainMemory(cfg, sp.tracker))
    sp.state = PeerState.open(folder, address=ADDRS[i], chain_id=CHAIN, round_manager=RM)
    return _wire(sp, world, cfg, view, 0)


def _restarted(world: dict[str, Any], cfg: Any, view: MemoryChainView, i: int, folder: Path, current_round: int) -> Any:
    """Peer ``i``'s process started again in ``current_round``: the state folder loaded by
    ``bdfl peer``'s own ``_setup_state`` (saved model, overlay, last aggregated round), then
    ``recover`` and ``resync`` as ``run`` calls them before its loop."""
    sp: Any = StandalonePeer.__new__(StandalonePeer)
    sp.cfg, sp.peer, sp.address = cfg, _peer(world, cfg, i), ADDRS[i]
    sp.args = SimpleNamespace(state_dir=str(folder), key_file=str(folder / "unused.key"))
    sp.chain_id, sp.deployment = CHAIN, SimpleNamespace(round_manager=RM)
    sp.chain = SimpleNamespace(current_round=lambda: current_round)  # _setup_state compares the saved round with it
    sp._setup_state()
    _wire(sp, world, cfg, view, current_round)
    sp.recover()
    sp.resync()
    return sp


def _train(sp: Any, rnd: int) -> dict[str, Any]:
    """``on_submit``'s stages: train (with the momentum in effect), publish. Returns the start it
    trained from, the update as published (decoded from its bytes), its hash and sample count."""
    start = [p.copy() for p in sp.peer.params]
    fit = stages.train.train(sp.engine, rnd)
    assert not isinstance(fit, ClientFailure), fit
    pub = stages.publish.publish(sp.engine, rnd)
    update = decode_ndarrays(pub.data, max_bytes=MAX_UPDATE_BYTES, spec=sp.peer.spec)
    return {"start": start, "update": update, "hash": pub.hash, "samples": sp.peer.num_examples}


def _submissions(view: MemoryChainView, rnd: int, done: dict[int, dict[str, Any]], outcome: Outcome) -> None:
    """Round ``rnd``'s submissions on chain (approved 4-0 when ``outcome`` is APPROVED)."""
    ok = outcome == Outcome.APPROVED
    view.subs[rnd] = [Submission(k, ADDRS[i], d["samples"], True, outcome, bytes.fromhex(d["hash"][2:]),
                                 0b1111 if ok else 0, 0b1111 if ok else 0, 4 if ok else 0, 0)
                      for k, (i, d) in enumerate(sorted(done.items()))]
    view.seeds[rnd] = bytes([rnd + 1]) * 32


def _weighted_mean(arrays: dict[int, list[np.ndarray]], weight: dict[int, float]) -> list[np.ndarray]:
    total = sum(weight[j] for j in arrays)
    return [sum(weight[j] * np.asarray(arrays[j][k], dtype=np.float64) for j in arrays) / total
            for k in range(len(next(iter(arrays.values()))))]


def _run(world: dict[str, Any], cfg: Any, tmp: Path, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """Rounds 0 .. R - 1 with peer B down in round R - 1, then A and B restarted in round R."""
    view = MemoryChainView(endpoints={a: e.url for a, e in zip(ADDRS, world["endpoints"])}, reputation=dict(REPUTATION))
    live = {i: _live(world, cfg, view, i, tmp / f"peer{i}") for i in range(N)}
    rounds: dict[int, dict[int, dict[str, Any]]] = {}
    b = -1
    for rnd in range(R):
        if rnd == R - 1:
            overlay = live[A].tracker.overlay
            assert overlay is not None and not overlay.complete
            assert momentum_in_effect(cfg.overlay.momentum, overlay) == cfg.overlay.momentum
            b = next(i for i in range(N) if i != A and ADDRS[i] not in overlay.neighbours(ADDRS[A]))
            down = live.pop(b)  # stops after aggregating round R - 2: misses round R - 1
            assert down.state.last_aggregated == R - 2
        rounds[rnd] = {i: _train(sp, rnd) for i, sp in live.items()}
        _submissions(view, rnd, rounds[rnd], Outcome.APPROVED)
        for sp in live.values():
            sp.finish_round(rnd)
    assert live[A].tracker.overlay is overlay  # unchanged since
    saved_a = [p.copy() for p in live[A].peer.params]
    del live[A]  # stops right after aggregating round R - 1 (its model saved)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bdfl.peer.standalone"):
        back = {i: _restarted(world, cfg, view, i, tmp / f"peer{i}", R) for i in (A, b)}
    return {"view": view, "live": live, "back": back, "b": b, "rounds": rounds, "saved_a": saved_a, "overlay": overlay,
            "logs": caplog.text}


def _expected(run: dict[str, Any], i: int, cfg: Any) -> tuple[list[int], dict[int, float], list[np.ndarray], list[np.ndarray]]:
    """Peer ``i``'s sources after round R - 1 (its overlay neighbours: all submitted and approved),
    their weights (on-chain reputation, the configured weighting), the weighted mean of their
    round R - 1 updates and of their real moves then (update less the start they trained from)."""
    r1 = run["rounds"][R - 1]
    sources = sorted(ADDRS.index(a) for a in run["overlay"].neighbours(ADDRS[i]))
    assert len(sources) >= cfg.overlay.min_sources and all(j in r1 for j in sources), (sources, sorted(r1))
    weight = {j: update_weight(REPUTATION[ADDRS[j]], r1[j]["samples"], cfg.defense.bdfl.weighting) for j in sources}
    updates = {j: r1[j]["update"] for j in sources}
    moves = {j: [np.asarray(u, dtype=np.float64) - np.asarray(s, dtype=np.float64) for u, s in zip(r1[j]["update"], r1[j]["start"])]
             for j in sources}
    return sources, weight, _weighted_mean(updates, weight), _weighted_mean(moves, weight)


def _floats(arrays: list[np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.float64) for a in arrays if np.issubdtype(np.asarray(a).dtype, np.floating)]


def test_returning_bdfl_peers_rebuild_the_velocity_and_are_approved(world: dict[str, Any], tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    cfg = _cfg(0.5)
    run = _run(world, cfg, tmp_path, caplog)
    back, b, view = run["back"], run["b"], run["view"]
    a_sp, b_sp = back[A], back[b]
    # A resumed its saved model (restart after aggregating: resume_saved_momentum); B resynced
    assert a_sp.resumed_model and a_sp.state.last_aggregated == R - 1
    assert [p.tobytes() for p in a_sp.peer.params] == [p.tobytes() for p in run["saved_a"]]
    assert b_sp.state.last_aggregated == R - 1  # resynced from round R - 1 (and saved)
    for i, sp in ((A, a_sp), (b, b_sp)):
        sources, _w, mean_update, mean_move = _expected(run, i, cfg)
        peer = sp.peer
        assert peer.last_start is not None and peer.last_start[0] == R - 1, i
        assert peer.last_aggregate is not None and peer.last_aggregate[0] == R - 1 and peer.last_aggregate[1] is peer.params
        if i == b:  # the resync model: the weighted mean of its sources' round R - 1 updates
            for got, want in zip(_floats(peer.params), _floats(mean_update)):
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        velocity = [np.asarray(p, dtype=np.float64) - np.asarray(s, dtype=np.float64)
                    for p, s in zip(_floats(peer.params), _floats(peer.last_start[1]))]
        want = _floats(mean_move)
        assert sum(float(np.abs(v).sum()) for v in want) > 1e-3  # the sources moved: a real velocity
        for got, exp in zip(velocity, want):  # float32 arrays: a relative error of float32 rounding
            np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-6 * float(np.abs(exp).max()) + 1e-7)
    # logged, with the number of moves used
    lines = VELOCITY_LINE.findall(run["logs"])
    assert sorted(int(n) for n in lines) == sorted(len(_expected(run, i, cfg)[0]) for i in (A, b)), run["logs"]

    # round R: everyone trains (the returning peers' first updates carry momentum x velocity);
    # the four continuing peers are the committee, each auditing every other update
    live = run["live"]
    everyone = {**live, **back}
    r2 = {i: _train(sp, R) for i, sp in sorted(everyone.items())}
    _submissions(view, R, r2, Outcome.PENDING)
    order = sorted(r2)
    view.committees[R] = [ADDRS[i] for i in sorted(live)]
    view.assigned[R] = {ADDRS[i]: [k for k, j in enumerate(order) if j != i] for i in sorted(live)}
    votes = {}
    for i in sorted(live):
        res = live[i].audit(R, SimpleNamespace(deadline=1e12))
        assert not isinstance(res, ClientFailure), res
        assert list(res.indices) == view.assigned[R][ADDRS[i]]
        votes[i] = dict(zip(res.indices, res.accept))
    for i in (A, b):
        k = order.index(i)
        got = {auditor: v[k] for auditor, v in votes.items()}
        assert all(got.values()), f"peer {i}'s first update back was rejected: {got}"


def test_no_velocity_is_rebuilt_with_momentum_off(world: dict[str, Any], tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    cfg = _cfg(0.0)
    run = _run(world, cfg, tmp_path, caplog)
    back, b = run["back"], run["b"]
    assert back[A].resumed_model and back[A].state.last_aggregated == R - 1 and back[b].state.last_aggregated == R - 1
    assert [p.tobytes() for p in back[A].peer.params] == [p.tobytes() for p in run["saved_a"]]
    _s, _w, mean_update, _m = _expected(run, b, cfg)
    for got, want in zip(_floats(back[b].peer.params), _floats(mean_update)):  # B still resynced
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for sp in back.values():
        assert sp.peer.last_start is None and sp.peer.last_aggregate is None
    assert "resynced the model from" in run["logs"]
    assert not VELOCITY_LINE.search(run["logs"]), run["logs"]
