"""The typed messages between the orchestrator and its workers (bdfl.experiment.messages):
every command has a worker method, and the replies travel through a pipe (pickle) intact."""

from __future__ import annotations

import inspect
import pickle

import pytest

from bdfl.experiment import messages
from bdfl.experiment.messages import AggregateReply, AuditReply, InputRejected, OverlayReport, PeerRound, StartsCheck, Times, Traffic
from bdfl.experiment.pool import RoundTimes
from bdfl.experiment.worker import Worker
from bdfl.net.overlay import build_overlay
from bdfl.peer.round_state import OverlayChange

COMMANDS = {messages.Join, messages.TrainSubmit, messages.SendOutbox, messages.AuditCommit, messages.Reveal, messages.Aggregate,
            messages.StopPeer, messages.RestartPeer, messages.LeavePeer, messages.EndpointFault}


def test_every_command_runs_a_worker_method_taking_it() -> None:
    assert set(Worker.HANDLERS) == COMMANDS
    for cmd, name in Worker.HANDLERS.items():
        params = list(inspect.signature(getattr(Worker, name)).parameters)
        assert len(params) == 2, (cmd.__name__, name, params)  # self and the command


def test_an_aggregate_reply_with_an_overlay_report_survives_the_pipe() -> None:
    addrs = [f"0x{i:040X}".replace("0X", "0x") for i in range(1, 9)]
    change = OverlayChange(None, build_overlay("expander", [a.lower() for a in addrs], b"\x01" * 32, degree=4))
    report = OverlayReport.of(change, addrs)
    assert report.built and report.members == 8 and report.added == sorted(addrs, key=str.lower) and report.connected
    reply = AggregateReply({3: PeerRound(2, 0.5, 1.0, [InputRejected(3, addrs[1], "hash_mismatch", "aggregate")])}, report, Times(train=1.0))
    back = pickle.loads(pickle.dumps(reply))
    assert back == reply
    assert back.peers[3].rejected[0].event_args() == {"peer": 3, "from": addrs[1], "reason": "hash_mismatch", "step": "aggregate"}
    assert list(report.event_args()) == ["members", "added", "removed", "degree_min", "degree_max", "degrees", "connected", "digest"]


def test_round_times_take_the_slowest_workers_phases_but_sum_the_bytes_by_phase() -> None:
    """Workers run a command in parallel: its seconds are the slowest worker's (all its phases), its bytes every worker's."""
    def audit(seconds: float, fetched: int, served: int) -> AuditReply:
        return AuditReply({}, [], [], [], [], StartsCheck(), Times(audit=seconds), Traffic("audit", fetched, 2, served))

    times = RoundTimes()
    times.add([audit(1.0, 100, 40), audit(3.0, 50, 110)])
    times.add([AggregateReply({}, None, Times(train=1.0), Traffic("aggregate", 7, 1, 7)), AggregateReply({}, None, Times(train=2.0))])
    assert times.total.audit == 3.0 and times.total.train == 2.0
    assert times.traffic == {"audit": Traffic("audit", 150, 4, 150), "aggregate": Traffic("aggregate", 7, 1, 7)}
    back = pickle.loads(pickle.dumps(audit(1.0, 5, 6)))
    assert back.traffic == Traffic("audit", 5, 2, 6)
    # one worker trains longest, another exchanges longest: the command took its slowest worker's
    # time, and the phases are that worker's (each phase's maximum apart would sum to 1.5 s)
    path = RoundTimes()
    path.add([AggregateReply({}, None, Times(train=1.0, exchange=0.1)), AggregateReply({}, None, Times(train=0.4, exchange=0.5))])
    assert (path.total.train, path.total.exchange) == (1.0, 0.1)
    path.add([AggregateReply({}, None, Times(chain=0.2)), AggregateReply({}, None, Times(chain=0.3))], in_turn=True)
    assert path.total.chain == 0.5
    # reads in process from a worker's own peers add up apart from the HTTP counts
    both = Traffic("audit", 10, 1, 10, 300, 3).plus(Traffic("audit", 20, 2, 0, 100, 1))
    assert both == Traffic("audit", 30, 3, 10, 400, 4) and (both.local_bytes, both.local_bodies) == (400, 4)


def test_a_failed_command_names_each_worker_and_carries_the_pools_fix() -> None:
    from bdfl.errors import BDFLError
    from bdfl.experiment.messages import gather_replies

    assert gather_replies([("ok", 1), ("ok", 2)], "Aggregate") == [1, 2]
    with pytest.raises(BDFLError, match="Aggregate failed in a worker process:\nworker 1: worker 1 died") as err:
        gather_replies([("ok", 1), ("error", "worker 1 died")], "Aggregate", fix="start the cluster again")
    assert err.value.fix == "start the cluster again"
