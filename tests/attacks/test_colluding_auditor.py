"""The colluding auditor's votes, and its adaptive variant that keeps its dissent under a
peer's ``defense.bdfl.dissent_limit`` (``veto_share``)."""

from __future__ import annotations

import pytest

from bdfl.attacks import AttackError, VoteContext, make_attack

# one round's assignments: 12 honest candidates and 6 attackers', interleaved
ROUND = [i % 3 == 2 for i in range(18)]  # True = the candidate is an attacker


def _votes(attack, rnd: int, honest_verdict: bool = True) -> list[bool]:  # noqa: ANN001
    return [attack.vote(VoteContext(round=rnd, candidate=i), is_att, honest_verdict) for i, is_att in enumerate(ROUND)]


def test_default_rejects_every_honest_update_and_accepts_every_attacker() -> None:
    votes = _votes(make_attack("colluding_auditor"), 0)
    assert votes == ROUND


def test_veto_share_keeps_the_rounds_rejections_within_the_share() -> None:
    a = make_attack("colluding_auditor", veto_share=0.45)
    votes = _votes(a, 0)
    rejects = [not v for v in votes]
    assert all(v for v, is_att in zip(votes, ROUND) if is_att)  # attackers always accepted
    for k in range(1, len(votes) + 1):  # never above the share, at any point of the round
        assert sum(rejects[:k]) <= 0.45 * k
    assert sum(rejects) >= int(0.45 * len(votes)) - 1  # and about as many vetoes as the share allows
    assert _votes(a, 1) == votes  # a new round, a new budget


def test_veto_share_zero_never_vetoes_and_collude_false_votes_honestly() -> None:
    assert all(_votes(make_attack("colluding_auditor", veto_share=0.0), 0))
    honest = make_attack("colluding_auditor", collude=False, veto_share=0.3)
    assert _votes(honest, 0, honest_verdict=False) == [False] * len(ROUND)


def test_veto_share_is_validated() -> None:
    with pytest.raises(AttackError, match="veto_share"):
        make_attack("colluding_auditor", veto_share=1.5)
