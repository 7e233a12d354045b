"""``colluding_auditor``: trains and publishes honestly, but votes dishonestly.

As an auditor it accepts every attacker's update and rejects every honest one,
whatever the audit rule says. The same behaviour can be added to *any* attack
with its ``collude=True`` parameter; this attack is collusion alone.
"""

from __future__ import annotations

from bdfl.attacks import Attack, boolean, register


@register
class ColludingAuditor(Attack):
    name = "colluding_auditor"
    summary = "honest updates; as an auditor accepts attackers and rejects honest peers"
    paper = "collusion in committee voting (cf. Sybil/collusion threat models, e.g. Fung et al. 2020)"
    COMMON_PARAMS = {"collude": boolean(True, "accept attackers' updates and reject honest ones")}
