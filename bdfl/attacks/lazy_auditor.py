"""``lazy_auditor``: trains honestly, but does not do the audit work it is paid for.

A committee member that skips the audit (saving its cost) still wants its reward and no
penalty for dissent. Two behaviours (``mode``), as in the lazy-validator threat model of
proof-of-stake validation and of committee-audited FL (e.g. Bittensor's "weight copying"):

* ``"majority"`` — copy the majority: votes are sealed (commit-reveal), so it cannot see the
  others' votes and votes what the majority of auditors decides on most updates: accept.
  It agrees with the outcome on every honest update, so dissent tests do not catch it,
  and it approves every attack.
* ``"abstain"`` — casts no vote at all (like an auditor that could not fetch the update:
  :meth:`bdfl.peer.node.Peer.audit` leaves the update out of its vote vector).

Its own updates are honest. Plugs into the auditor path like :mod:`bdfl.attacks.colluding_auditor`:
through :meth:`vote` and the :meth:`Attack.abstains` hook.
"""

from __future__ import annotations

from bdfl.attacks import Attack, AttackContext, VoteContext, choice, register


@register
class LazyAuditor(Attack):
    name = "lazy_auditor"
    summary = "honest updates; as an auditor skips the audit and accepts everything (majority) or abstains"
    paper = "lazy validators / weight copying (e.g. Bittensor Yuma consensus, opentensor 2023)"
    PARAMS = {"mode": choice("majority", "abstain", default="majority",
                             doc="majority: accept every update unaudited; abstain: cast no vote")}

    def vote(self, ctx: VoteContext | AttackContext, candidate_is_attacker: bool, honest_verdict: bool) -> bool:
        if self.colludes:
            return super().vote(ctx, candidate_is_attacker, honest_verdict)
        return True  # "majority": the verdict most updates get, no audit needed

    def abstains(self, round: int) -> bool:  # noqa: A002
        return self.mode == "abstain" and self.active(round)
