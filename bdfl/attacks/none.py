"""``none``: an honest peer (the baseline)."""

from __future__ import annotations

from bdfl.attacks import Attack, register


@register
class NoAttack(Attack):
    name = "none"
    summary = "honest behaviour (baseline)"
    paper = "-"
