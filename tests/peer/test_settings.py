"""One set of defaults: a peer's settings built with no config are the default experiment's
(the audit rule and the aggregation rule of ``ExperimentConfig()``), the same for a
simulated peer and ``bdfl peer`` (:func:`bdfl.peer.node.peer_settings`)."""

from __future__ import annotations

from bdfl.config import ExperimentConfig, from_dict
from bdfl.defense.audit import AuditRule
from bdfl.peer.node import PeerSettings, peer_settings


def test_default_settings_are_the_default_experiments() -> None:
    cfg = ExperimentConfig()
    assert AuditRule() == AuditRule.from_defense(cfg.defense)
    assert PeerSettings() == peer_settings(cfg, 0)


def test_a_configured_rule_reaches_the_peer() -> None:
    cfg = from_dict({"defense": {"name": "krum"}})
    s = peer_settings(cfg, 3)
    assert s.defense == "krum" and s.defense_params != PeerSettings().defense_params
