"""trainer_bookings: what each trainer was booked in a round, recovered from decoded events
(the sweep books accepted updates without events of their own)."""

from __future__ import annotations

from bdfl.chain.protocol import Outcome, trainer_bookings

R = 100  # the deployment's update reward


def _ev(name: str, **args: object) -> dict[str, object]:
    return {"event": name, "args": {"round": 1, **args}}


def test_a_cut_reward_is_the_update_stages_granted_amount() -> None:
    """Nibble bit 3 marks an approved update whose reward the budget or cap cut: its booking is
    the trainer's RewardCapped of the update stage (before the first AuditorSettled), not the full
    reward and not an auditor's later RewardCapped; other rounds' events are ignored."""
    events = [
        _ev("UpdateSubmitted", index=0, peer="0xA"), _ev("UpdateSubmitted", index=1, peer="0xB"),
        _ev("UpdateSubmitted", index=2, peer="0xC"), _ev("UpdateSubmitted", index=3, peer="0xD"),
        {"event": "UpdateSubmitted", "args": {"round": 2, "index": 4, "peer": "0xE"}},
        _ev("OutcomesRecorded", word=0, nibbles=(int(Outcome.APPROVED) | 8) | int(Outcome.APPROVED) << 4
            | int(Outcome.REJECTED) << 8 | int(Outcome.PROBATION) << 12),
        _ev("RewardCapped", peer="0xA", wanted=R, granted=3),
        _ev("AuditorSettled", auditor="0xB"),
        _ev("RewardCapped", peer="0xA", wanted=R, granted=7),  # as an auditor: not the trainer's cut
    ]
    got = [(b.index, b.peer, b.outcome, b.reward) for b in trainer_bookings(events, 1, R)]
    assert got == [(0, "0xA", Outcome.APPROVED, 3), (1, "0xB", Outcome.APPROVED, R),
                   (2, "0xC", Outcome.REJECTED, 0), (3, "0xD", Outcome.PROBATION, 0)]
