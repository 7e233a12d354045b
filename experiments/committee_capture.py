"""How often a colluding coalition holds enough committee seats to stall or reject honest updates.

Exact probabilities for the protocol's vote rule (``RoundManager._decide``) under a uniform
committee draw (every member at the same reputation and stake, as in round 1; later draws
are reputation-weighted, which helps the side whose updates are approved). A coalition of
``A`` of ``N`` members votes to reject every honest update it audits; honest auditors accept.

* seats: the coalition's seats ``a`` in a ``K``-seat committee ~ Hypergeometric(N, A, K);
* an honest update is audited by a window of ``m`` of the ``K`` seats (``Sortition.auditSeats``;
  the seat order is the draw order, so the coalition's auditors ``c`` of one update ~
  Hypergeometric(K, a, m) for a trainer not on the committee);
* with all ``m`` votes revealed, it is **approved** when ``100 (m - c) > m x approve%``,
  **rejected** when ``100 c > m x reject%``, else **undecided** (not aggregated, no one's
  reputation moves: votes on undecided updates are neutral).

Columns: P(the coalition holds a majority of the seats in a round), the expected share of honest
updates left undecided and rejected per round, P(a round in which at least half of the honest
updates are undecided), and the chance of at least one such round in ``R`` rounds (independent
draws at equal reputation). Run::

    .venv/bin/python experiments/committee_capture.py                     # the table in docs/protocol.md
    .venv/bin/python experiments/committee_capture.py --peers 50 --fraction 0.3 --committee 9 --auditors 8
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Capture", "capture", "hypergeom_pmf", "main", "update_outcome"]


def hypergeom_pmf(population: int, successes: int, draws: int) -> list[float]:
    """``P(X = x)`` for ``x = 0 .. draws`` when ``draws`` items are drawn without replacement
    from ``population`` items of which ``successes`` are marked."""
    if not 0 <= successes <= population or not 0 <= draws <= population:
        raise ValueError(f"hypergeometric({population}, {successes}, {draws}) is not defined")
    total = math.comb(population, draws)
    return [math.comb(successes, x) * math.comb(population - successes, draws - x) / total for x in range(draws + 1)]


def update_outcome(m: int, colluders: int, approve_percent: int = 50, reject_percent: int = 66,
                   quorum: int = 1) -> str:
    """``"approved"``, ``"rejected"`` or ``"undecided"``: an honest update with ``colluders`` of
    its ``m`` auditors rejecting and the rest accepting (``RoundManager._decide``)."""
    accepts, rejects = m - colluders, colluders
    if m < quorum:
        return "undecided"
    if 100 * accepts > m * approve_percent:
        return "approved"
    if 100 * rejects > m * reject_percent:
        return "rejected"
    return "undecided"


@dataclass(frozen=True)
class Capture:
    """One setting's probabilities (per round unless named otherwise)."""

    peers: int
    attackers: int
    committee: int
    auditors: int
    majority: float  # P(coalition holds more than half of the seats)
    undecided: float  # expected share of honest updates left undecided
    rejected: float  # expected share of honest updates rejected
    stall_round: float  # P(at least half of the honest updates are undecided or rejected)

    def over(self, rounds: int) -> float:
        """P(at least one stalled round in ``rounds`` independent draws)."""
        return 1 - (1 - self.stall_round) ** rounds


def capture(peers: int, attackers: int, committee: int, auditors: int, approve_percent: int = 50,
            reject_percent: int = 66, quorum: int = 1) -> Capture:
    """Exact probabilities for ``attackers`` colluders among ``peers`` members, a ``committee``-seat
    committee drawn uniformly and ``auditors`` (m) seats per update."""
    k = min(committee, peers)
    m = min(auditors, k)
    seats = hypergeom_pmf(peers, attackers, k)
    outcome = [update_outcome(m, c, approve_percent, reject_percent, quorum) for c in range(m + 1)]  # by colluding auditors
    majority = undecided = rejected = stall = 0.0
    for a, pa in enumerate(seats):
        if pa == 0.0:
            continue
        per_update = hypergeom_pmf(k, a, m)
        u = sum(p for c, p in enumerate(per_update) if outcome[c] == "undecided")
        r = sum(p for c, p in enumerate(per_update) if outcome[c] == "rejected")
        majority += pa * (2 * a > k)
        undecided += pa * u
        rejected += pa * r
        stall += pa * (u + r >= 0.5)
    return Capture(peers, attackers, k, m, majority, undecided, rejected, stall)


def table(rows: Iterable[Capture], rounds: int) -> str:
    head = ("| peers | colluders | K / m | P(majority of seats) | honest updates undecided | honest updates rejected "
            f"| P(round with half stalled) | P(such a round in {rounds} rounds) |\n|---:|---:|---|---:|---:|---:|---:|---:|")
    lines = [head]
    for c in rows:
        lines.append(f"| {c.peers} | {c.attackers} ({c.attackers / c.peers:.0%}) | {c.committee} / {c.auditors} | {c.majority:.3f} "
                     f"| {c.undecided:.1%} | {c.rejected:.2%} | {c.stall_round:.3f} | {c.over(rounds):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", type=int, nargs="*", default=[20, 50, 100])
    ap.add_argument("--fraction", type=float, nargs="*", default=[0.3, 0.45])
    ap.add_argument("--committee", type=int, nargs="*", default=[9, 15, 21])
    ap.add_argument("--auditors", type=int, default=None,
                    help="m, auditors per update (default: committee - 1, every seat but one, as the default experiment)")
    ap.add_argument("--approve-percent", type=int, default=50)
    ap.add_argument("--reject-percent", type=int, default=66)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args(argv)
    for name, value, lo, hi in (("--approve-percent", args.approve_percent, 0, 99), ("--reject-percent", args.reject_percent, 0, 99),
                                ("--rounds", args.rounds, 1, 10**6)):
        if not lo <= value <= hi:
            ap.error(f"{name} {value} is outside {lo}..{hi}")
    if any(not 0 <= f < 1 for f in args.fraction):
        ap.error("--fraction must be in [0, 1)")
    if any(n < 2 for n in args.peers) or any(k < 2 for k in args.committee):
        ap.error("--peers and --committee must be at least 2")
    rows = []
    for n in args.peers:
        for f in args.fraction:
            for k in args.committee:
                if k > n:
                    continue
                m = args.auditors if args.auditors is not None else k - 1
                if not 1 <= m < k:
                    ap.error(f"--auditors {m} is outside 1..committee-1 ({k - 1})")
                rows.append(capture(n, round(f * n), k, m, args.approve_percent, args.reject_percent))
    print(table(rows, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
