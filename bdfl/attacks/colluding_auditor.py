"""``colluding_auditor``: trains and publishes honestly, but votes dishonestly.

As an auditor it accepts every attacker's update and rejects every honest one,
whatever the audit rule says. The same behaviour can be added to *any* attack
with its ``collude=True`` parameter; this attack is collusion alone.

``veto_share`` < 1 makes it adaptive: within each round it rejects honest updates only
while its rejections stay at most that share of its votes, so its dissent from the
outcomes stays under a peer's ``defense.bdfl.dissent_limit`` and its vetoes keep counting
(:mod:`bdfl.learning.votes`). Where it does not veto it accepts.
"""

from __future__ import annotations

from typing import Any

from bdfl.attacks import Attack, AttackContext, VoteContext, boolean, number, register


@register
class ColludingAuditor(Attack):
    name = "colluding_auditor"
    summary = "honest updates; as an auditor accepts attackers and rejects honest peers"
    paper = "collusion in committee voting (cf. Sybil/collusion threat models, e.g. Fung et al. 2020)"
    PARAMS = {
        "veto_share": number(0.0, 1.0, default=1.0,
                             doc="reject at most this share of its votes in a round (adaptive: stay under "
                                 "defense.bdfl.dissent_limit); 1 = reject every honest update"),
    }
    COMMON_PARAMS = {"collude": boolean(True, "accept attackers' updates and reject honest ones")}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._tally: dict[int, tuple[int, int]] = {}  # round -> (votes, rejections) cast so far

    def vote(self, ctx: VoteContext | AttackContext, candidate_is_attacker: bool, honest_verdict: bool) -> bool:
        if self.veto_share >= 1 or not (self.colludes and self.active(ctx.round)):
            return super().vote(ctx, candidate_is_attacker, honest_verdict)
        votes, rejects = self._tally.get(ctx.round, (0, 0))
        # veto an honest update only while the round's rejections stay within veto_share
        accept = candidate_is_attacker or rejects + 1 > self.veto_share * (votes + 1)
        self._tally = {r: t for r, t in self._tally.items() if r >= ctx.round - 1}
        self._tally[ctx.round] = (votes + 1, rejects + (not accept))
        return accept
