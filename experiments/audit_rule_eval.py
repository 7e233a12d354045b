"""Measure the audit rule in a fast, chain-free mirror of `bdfl run`.

What is mirrored (defaults = experiments/configs/default.toml): digits, 20 peers with the
runner's own data split (`bdfl.experiment.setup.peer_data`: Dirichlet alpha = 0.5, 20 %
of each shard for validation), the runner's attacker set, client seeds and poisoning
seeds, one common initial model, local training with local_epochs = 5, batch_size = 10,
lr = 0.05. Decentralised: every peer keeps its own model. Each round

1. every active peer trains from its own model (free-riders skip it); attackers train on
   their poisoned shard (`bdfl.attacks.attacker_client`: `on_off` trains clean in off
   rounds), then poison their update knowing this round's honest models (ALIE, IPM);
2. a committee of K = 7 is drawn with probability proportional to reputation among the
   eligible peers (reputation >= 0.3), every update gets m = 3 consecutive seats (never
   its author's), and each auditor runs the rule under test over all updates assigned to
   it with its own models (trained, and start of round), its validation split and each
   trainer's start of the round and its latest not-rejected move of the last
   ``--consistency-window`` rounds (what `bdfl run`'s auditors rebuild from the chain;
   ``--no-rebuilt-starts``: the auditor's own start instead, and no earlier moves);
   attacking auditors vote through `attack.vote` (honest verdict, or collusion); an update
   whose bytes equal one submitted in the last ``--replay-window`` rounds is rejected
   without being judged (the replay check of `bdfl.peer.node.Peer.audit`);
3. the tally and bookkeeping follow RoundManager: >= 2 revealed votes and a strict
   majority decide (Approved / Probation below the threshold / Rejected / Undecided);
   reputation +0.02 per approved update, -0.2 per rejected one, +0.002 / -0.02 per vote
   with / against the outcome, clamped to [0, 1]; 10 tokens slashed per rejection, a
   peer with no stake left is removed (ProtocolParams defaults);
4. every peer averages its own trained model with the approved, eligible updates of its
   neighbours on the expander overlay (degree 4, `OverlayTracker`), topped up to
   ``--min-sources`` with the nearest approved updates further out
   (`Overlay.aggregation_sources`), weighted by reputation — what the runner's peers do;
   with ``--max-reject-share`` only updates whose votes were clear enough
   (`defense.bdfl.max_reject_share`), leaving out with ``--dissent-limit`` the votes of auditors
   that went against the outcome on more than that share of the round's updates
   (`defense.bdfl.dissent_limit`, `bdfl.learning.votes`).

The rule "default" is the default experiment's: the library's `AuditRule()` (every
calibrated detector of `bdfl.defense.detectors`, the trigger family on). ``--task`` mirrors
another task module (clients.mnist, clients.seattle_weather) with the same rule.
The defaults are the committee of the earlier measurements (7/3/2, every approved update
aggregated); the default experiment's settings are
``--committee 9 --auditors-per-update 8 --quorum 5 --max-reject-share 0 --dissent-limit 0.5``.
``--votes-csv`` writes every honest auditor's statistics per vote (``--probe``: also its
loss at its model plus / minus each candidate's move), for offline analysis.

Not mirrored: the chain's randomness (committee draws and the overlay seed differ from a
real run's), transaction timing. So the numbers are statistically, not bit-for-bit,
those of `bdfl run`; README / docs/learning.md give real runs next to them.

Reported per attack (pooled over seeds):
* vote FRR / DR — share of votes of honest auditors that reject honest / attacking updates;
* dec. FRR / DR — share of decided (approved or rejected) honest / attacking updates rejected;
* sep. — first round (1-based, like rounds.csv) from which the attackers' mean
  reputation stays below the lowest honest reputation until the end (worst seed);
* final acc — mean test accuracy of the honest peers' own models after the last round.
The same evaluations are also judged by alternative rules (vote-level only; decisions
and the trajectory follow the rule named by --rule).

Run:  .venv/bin/python experiments/audit_rule_eval.py [--attacks ...] [--seeds 0 1 2]
      [--rounds 30] [--attackers 0.3] [--json out.json]
About 8-12 s per attack and seed for 30 rounds on one core.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections import defaultdict
from typing import Any
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bdfl.attacks import AttackContext, VoteContext, attacker_client, attacker_update, make_attack  # noqa: E402
from bdfl.config import from_dict  # noqa: E402
from bdfl.experiment.setup import attacker_indices, peer_data  # noqa: E402
from bdfl.defense.aggregate import weighted_average  # noqa: E402
from bdfl.defense.audited import clear_approval  # noqa: E402
from bdfl.learning.votes import SeatVotes, counted_votes, dissenting_seats  # noqa: E402
from bdfl.config import DETECTORS  # noqa: E402
from bdfl.defense.audit import (  # noqa: E402
    AuditRule,
    AuditVerdict,
    candidate_statistics,
    evaluate_candidates,
    judge,
    merged_losses,
    trigger_evidence,
)
from bdfl.learning.task import EvalResult, evaluate_client, fit_client, load_task  # noqa: E402
from bdfl.peer.overlay_tracker import OverlayTracker  # noqa: E402

# label -> (attack name, parameters)
ATTACK_SETTINGS = {
    "none": ("none", {}),
    "label_flip": ("label_flip", {"mode": "reverse"}),
    "sign_flip": ("sign_flip", {"scale": 1.0}),
    "sign_flip_x3": ("sign_flip", {"scale": 3.0}),
    "gaussian_noise": ("gaussian_noise", {"sigma": 0.5}),
    "gaussian_0.05": ("gaussian_noise", {"sigma": 0.05}),  # issue 22: small noise
    "alie": ("alie", {}),
    "ipm": ("ipm", {"epsilon": 0.5}),
    "scaling": ("scaling", {"boost": 10.0}),
    "backdoor": ("backdoor", {}),
    "free_rider": ("free_rider", {}),
    "on_off": ("on_off", {"inner": "label_flip", "on_after": 3, "period": 4, "on_rounds": 2}),
    "on_off_sign": ("on_off", {}),  # the runner's defaults: sign flip for good from round 6 (1-based)
    "colluding": ("label_flip", {"collude": True}),
    "colluding_auditor": ("colluding_auditor", {}),  # honest updates, dishonest votes
}
DEFAULT_ATTACKS = ["none", "label_flip", "sign_flip", "gaussian_noise", "alie", "ipm", "scaling", "free_rider",
                   "backdoor", "on_off"]

# the default experiment's rule: the library's defaults
DEFAULT_RULE = AuditRule()


def _every_k(rule: AuditRule, delta: float) -> AuditRule:
    for n in DETECTORS:
        rule = rule.with_detector(n, k=getattr(rule.detectors, n).k + delta)
    return rule


RULES = {
    "default": DEFAULT_RULE,
    "quality detectors only": AuditRule.only("accuracy", "loss"),
    "parameter detectors only": AuditRule.only("distance", "direction", "shift", "no_work", "consistency"),
    **{f"without {n}": DEFAULT_RULE.with_detector(n, enabled=False) for n in DETECTORS},
    "every k - 1": _every_k(DEFAULT_RULE, -1.0),
    "every k + 1": _every_k(DEFAULT_RULE, +1.0),
}

# ProtocolParams defaults (bdfl.chain.deploy; docs/protocol.md), as floats / whole tokens
REP_INITIAL, REP_THRESHOLD = 0.5, 0.3
REP_GAIN_UPDATE, REP_LOSS_UPDATE, REP_GAIN_VOTE, REP_LOSS_VOTE = 0.02, 0.2, 0.002, 0.02
MIN_STAKE, SLASH = 100, 10


def _draw_committee(rep: np.ndarray, active: set[int], k: int, rng: np.random.Generator) -> list[int]:
    """Reputation-weighted rejection sampling like PeerRegistry.drawCommittee (16 k attempts)."""
    n = len(rep)
    chosen: list[int] = []
    for _ in range(16 * k):
        if len(chosen) >= k:
            break
        c = int(rng.integers(n))
        if c in active and rep[c] >= REP_THRESHOLD - 1e-12 and c not in chosen and rng.random() < rep[c]:
            chosen.append(c)
    return chosen


def _seats(u: int, author_seat: int | None, k: int, m: int, rng: np.random.Generator) -> list[int]:
    """m consecutive seats from a random start; the author's own seat is replaced by the next one."""
    h = int(rng.integers(k))
    seats = [(h + j) % k for j in range(min(m, k))]
    if author_seat is not None and author_seat in seats:
        seats.remove(author_seat)
        if k > m:
            seats.append((h + m) % k)
    return seats


def _layer_move(params, start) -> list[np.ndarray]:  # noqa: ANN001
    """``params - start``, array by array, in float64."""
    return [np.asarray(c, np.float64) - np.asarray(s0, np.float64) for c, s0 in zip(params, start)]


def _move(params, start) -> np.ndarray:  # noqa: ANN001
    """The same, flattened into one vector."""
    return np.concatenate([m.ravel() for m in _layer_move(params, start)])


# the verdict on an update whose bytes were submitted in an earlier round (Peer.audit's replay check)
REPLAYED = AuditVerdict(False, "replayed", failed=("replayed",))


def _digest(params) -> bytes:  # noqa: ANN001
    """What the chain's update hash identifies: the exact parameter bytes."""
    h = hashlib.sha256()
    for p in params:
        h.update(np.ascontiguousarray(p).tobytes())
    return h.digest()


def _eval_loss(client, params) -> float:  # noqa: ANN001
    return float(evaluate_client(client, params).loss)


def run(attack_label: str, seed: int, args: argparse.Namespace, rules: dict[str, AuditRule] | None = None,
        vote_rows: list[dict] | None = None) -> dict:
    rules = rules or RULES
    torch.set_num_threads(1)
    name, params = ATTACK_SETTINGS[attack_label]
    fraction = args.attackers if name != "none" else 0.0
    cfg = from_dict({
        "seed": seed, "peers": args.peers, "rounds": args.rounds,
        "task": {"client": args.task, "alpha": args.alpha, "val_fraction": args.val_fraction, "local_epochs": args.local_epochs,
                 "batch_size": args.batch_size, "learning_rate": args.lr},
        "attack": {"name": name, "fraction": fraction, "params": params},
    })
    task = load_task(cfg.task.client)
    ds, shards = peer_data(task, cfg)
    hp = {"local_epochs": args.local_epochs, "batch_size": args.batch_size, "lr": args.lr}
    attackers = set(attacker_indices(cfg))
    n = args.peers
    attacks = {i: make_attack(name, **params) for i in attackers}
    clients = []
    for i in range(n):
        train, val = shards[i]
        make = lambda tr, val=val, i=i: task.make_client(tr, val, seed=seed * 100_003 + i, hparams=hp)  # noqa: E731
        if i in attackers:
            clients.append(attacker_client(attacks[i], make, train, np.random.default_rng([seed, i, 1]),
                                           num_classes=ds.num_classes))
        else:
            clients.append(make(train))
    test = task.evaluator(*ds.test, hparams=hp)
    init = task.initial_parameters(ds, seed=seed, hparams=hp)
    models = {i: [p.copy() for p in init] for i in range(n)}
    rep = np.full(n, REP_INITIAL)
    stake = np.full(n, MIN_STAKE)
    active = set(range(n))
    peer_rng = {i: np.random.default_rng([seed, i]) for i in range(n)}
    received: dict[int, list] = {i: [] for i in range(n)}
    addresses = [f"0x{i + 1:040x}" for i in range(n)]
    index_of = {a: i for i, a in enumerate(addresses)}
    tracker = OverlayTracker("expander", args.degree, None)
    rng = np.random.default_rng([seed, 424242])
    primary = rules[args.rule]

    votes = {rn: defaultdict(lambda: [0, 0]) for rn in rules}  # rule -> kind -> [rejects, total]
    decisions = defaultdict(lambda: [0, 0])  # kind -> [rejected, decided]
    failed_tests = {"honest": defaultdict(int), "attacker": defaultdict(int)}  # tests failing in rejecting votes
    per_round = []
    prev_move: dict[int, np.ndarray] = {}  # each peer's previous published move (flat, for --votes-csv)
    ref_move: dict[int, list] = {}  # each peer's move in its latest round that was not rejected, within the window
    ref_round: dict[int, int] = {}
    earlier: list[set[bytes]] = []  # digests of the updates of the last --replay-window rounds
    t_train = 0.0
    for r in range(args.rounds):
        t0 = time.perf_counter()
        trained, num = {}, {}
        for i in sorted(active):
            a = attacks.get(i)
            if a is not None and not a.trains and a.active(r):
                trained[i], num[i] = [p.copy() for p in models[i]], 0
            else:
                fr = fit_client(clients[i], models[i], {"round": r, "local_epochs": args.local_epochs})
                trained[i], num[i] = fr.parameters, fr.num_examples
        t_train += time.perf_counter() - t0
        honest_models = [trained[i] for i in sorted(active) if i not in attackers]
        published = {}
        for i in sorted(active):
            if i in attackers:
                ctx = AttackContext(round=r, trained=trained[i], reference=models[i], honest_updates=honest_models,
                                    received=received[i], rng=peer_rng[i], num_peers=n, num_attackers=len(attackers))
                published[i] = [np.asarray(p, dtype=t.dtype) for p, t in zip(attacker_update(attacks[i], ctx), trained[i])]
            else:
                published[i] = trained[i]
        digest = {i: _digest(published[i]) for i in published}
        replayed_seen = set().union(*earlier[-args.replay_window:]) if args.replay_window else set()
        eligible_at_submit = {i: rep[i] >= REP_THRESHOLD - 1e-12 for i in active}
        committee = _draw_committee(rep, active, args.committee, rng)
        k = len(committee)
        assigned: dict[int, list[int]] = {a: [] for a in committee}
        for u in sorted(active):
            if not k:
                break
            own_seat = committee.index(u) if u in committee else None
            for s in _seats(u, own_seat, k, args.auditors_per_update, rng):
                assigned[committee[s]].append(u)
        ballots: dict[int, list[tuple[int, bool]]] = defaultdict(list)
        for a, us in assigned.items():
            if not us:
                continue
            # a replay is rejected unjudged and never enters the rule's medians (Peer.audit)
            replayed = [u for u in us if digest[u] in replayed_seen]
            us = [u for u in us if digest[u] not in replayed_seen]
            cands = [published[u] for u in us]
            ref, results = evaluate_candidates(clients[a], trained[a], cands)
            valid = [isinstance(x, EvalResult) for x in results]
            # where each trainer started (bdfl run rebuilds it from the chain; here it is known)
            starts = None if args.no_rebuilt_starts else [models[u] for u in us]
            by_key: dict[tuple[int, str], list] = {}
            # each trainer's latest not-rejected earlier move (bdfl run rebuilds it from the chain)
            past = None if args.no_rebuilt_starts else [ref_move.get(u) for u in us]

            def stats_for(rule: AuditRule) -> list:
                key = (rule.min_candidates, "")
                if key not in by_key:
                    by_key[key] = candidate_statistics(trained[a], cands, models[a], valid=valid, min_candidates=key[0],
                                                       candidate_starts=starts, candidate_past_moves=past)
                return by_key[key]

            if vote_rows is not None and a not in attackers:
                st = stats_for(primary)
                for j, (u, x, res) in enumerate(zip(us, st, results)):
                    if x is None or not isinstance(res, EvalResult):
                        continue
                    row_ = {"seed": seed, "round": r + 1, "auditor": a, "candidate": u,
                            "kind": "attacker" if u in attackers else "honest",
                            "on": int(u in attackers and attacks[u].active(r)),
                            "acc": res.accuracy, "loss": res.loss, "own_acc": ref.accuracy, "own_loss": ref.loss,
                            **{f: getattr(x, f) for f in ("distance_ratio", "shift", "cosine", "cosine_gap", "median_cosine",
                                                          "own_cosine", "own_cosine_gap", "update_ratio")}}
                    if u in prev_move:
                        mv = _move(cands[j], models[u])
                        pm = prev_move[u]
                        den = float(np.linalg.norm(mv) * np.linalg.norm(pm))
                        row_["prev_cosine"] = float(mv @ pm) / den if den > 0 else math.nan
                    row_["history_cosine"] = x.history_cosine
                    if args.probe and starts is not None:
                        move = _layer_move(cands[j], starts[j])
                        plus = [(np.asarray(t0, np.float64) + m).astype(t0.dtype) for t0, m in zip(trained[a], move)]
                        minus = [(np.asarray(t0, np.float64) - m).astype(t0.dtype) for t0, m in zip(trained[a], move)]
                        row_["probe_plus"] = _eval_loss(clients[a], plus)
                        row_["probe_minus"] = _eval_loss(clients[a], minus)
                    vote_rows.append(row_)

            merged = merged_losses(clients[a], trained[a], cands, valid) if any(
                rule.enabled("merge") for rule in rules.values()) else None
            scans: dict[tuple, Any] = {}  # one trigger family per distinct setting
            for rn, rule in rules.items():
                st = stats_for(rule)
                scan_key = (rule.detectors.trigger.patterns, rule.detectors.trigger.inputs) if rule.enabled("trigger") else ()
                if scan_key not in scans:
                    scans[scan_key] = trigger_evidence(clients[a], trained[a], cands, valid, rule) if scan_key else None
                verdicts = judge(rule, ref, results, st, merged if rule.enabled("merge") else None, scans[scan_key])
                for u, v in [*zip(us, verdicts), *((u, REPLAYED) for u in replayed)]:
                    if a not in attackers:
                        kind = "attacker" if u in attackers else "honest"
                        votes[rn][kind][0] += int(not v.accept)
                        votes[rn][kind][1] += 1
                        if rn == args.rule:
                            for name_ in v.failed:
                                failed_tests[kind][name_] += 1
                    if rn == args.rule:
                        vote = bool(v.accept)
                        if a in attackers:
                            vote = bool(attacks[a].vote(VoteContext(round=r, candidate=u), u in attackers, vote))
                        ballots[u].append((a, vote))
        outcome = {}
        for u in sorted(active):
            bs = ballots.get(u, [])
            yes = sum(v for _, v in bs)
            if len(bs) >= args.quorum and 100 * yes > len(bs) * args.approve_percent:
                outcome[u] = "approved" if eligible_at_submit[u] else "probation"
            elif len(bs) >= args.quorum and 100 * (len(bs) - yes) > len(bs) * args.reject_percent:
                outcome[u] = "rejected"
            else:
                outcome[u] = "undecided"
        for u, o in outcome.items():
            if o in ("approved", "probation"):
                rep[u] += REP_GAIN_UPDATE
            elif o == "rejected":
                rep[u] -= REP_LOSS_UPDATE
                stake[u] -= min(SLASH, stake[u])
            if o in ("approved", "rejected"):
                kind = "attacker" if u in attackers else "honest"
                decisions[kind][0] += int(o == "rejected")
                decisions[kind][1] += 1
            if o != "undecided":
                for a, v in ballots.get(u, []):
                    rep[a] += REP_GAIN_VOTE if v == (o != "rejected") else -REP_LOSS_VOTE
            rep[u] = min(1.0, max(0.0, rep[u]))
        np.clip(rep, 0.0, 1.0, out=rep)
        # defense.bdfl.max_reject_share: an approved update enters aggregation only when at most
        # this share of its revealed votes rejected it (bdfl.defense.audited.clear_approval),
        # not counting auditors that dissented from too many outcomes (defense.bdfl.dissent_limit);
        # an auditor's "seat" bit here is its peer index
        majority = {"approved": True, "probation": True, "rejected": False}
        masks = {u: (sum(1 << a for a, _ in bs), sum(1 << a for a, v in bs if v)) for u, bs in ballots.items() if u in outcome}
        excluded = dissenting_seats([SeatVotes(*masks[u], majority.get(outcome[u])) for u in masks], args.dissent_limit)
        approved = {u for u, o in outcome.items() if o == "approved" and clear_approval(
            *counted_votes(*masks[u], excluded), args.max_reject_share)}
        overlay = tracker.update([addresses[i] for i in sorted(active)], r.to_bytes(32, "big"))
        new_models = {}
        for i in sorted(active):
            others = [index_of[x] for x in overlay.aggregation_sources(addresses[i], [addresses[j] for j in approved],
                                                                           args.min_sources)]
            if others:
                new_models[i] = weighted_average([trained[i]] + [published[j] for j in others],
                                                 [max(rep[i], 1e-6)] + [rep[j] for j in others])
            else:
                new_models[i] = [p.copy() for p in trained[i]]
            received[i] = [published[j] for j in others]
        for i in sorted(active):
            prev_move[i] = _move(published[i], models[i])
            if r > 0 and outcome.get(i) != "rejected":  # like bdfl.peer.sources.MoveHistory (round 0: no recipe)
                ref_move[i] = _layer_move(published[i], models[i])
                ref_round[i] = r
            if i in ref_round and r + 1 - ref_round[i] > args.consistency_window:
                ref_move.pop(i, None)  # older than the window for the next round
        models.update(new_models)
        earlier.append(set(digest.values()))
        active -= {i for i in list(active) if stake[i] <= 0}
        honest = [i for i in range(n) if i not in attackers]
        row = {
            "round": r + 1,
            "attacker_reputation": float(np.mean([rep[i] for i in attackers])) if attackers else math.nan,
            "min_honest_reputation": float(min(rep[i] for i in honest)),
            "honest_rejected": sum(outcome.get(i) == "rejected" for i in honest),
            "attackers_rejected": sum(outcome.get(i) == "rejected" for i in attackers),
            "attackers_approved": sum(outcome.get(i) == "approved" for i in attackers),
            "rejected": sorted(u for u, o in outcome.items() if o == "rejected"),
        }
        if r + 1 == args.rounds or (args.eval_every and (r + 1) % args.eval_every == 0):
            row["honest_accuracy"] = float(np.mean([evaluate_client(test.client, models[i]).accuracy for i in honest]))
        per_round.append(row)

    sep = None
    if attackers:
        below = [row["attacker_reputation"] < row["min_honest_reputation"] for row in per_round]
        for t in range(len(below)):
            if all(below[t:]):
                sep = t + 1
                break

    def rate(c: list[int]) -> float | None:
        return c[0] / c[1] if c[1] else None

    return {
        "attack": attack_label,
        "seed": seed,
        "votes": {rn: {kd: list(v) for kd, v in d.items()} for rn, d in votes.items()},
        "committee": {kd: list(v) for kd, v in decisions.items()},
        "failed_tests": {kd: dict(v) for kd, v in failed_tests.items()},
        "vote_frr": rate(votes[args.rule]["honest"]),
        "vote_dr": rate(votes[args.rule]["attacker"]),
        "decision_frr": rate(decisions["honest"]),
        "decision_dr": rate(decisions["attacker"]),
        "separation_round": sep,
        "final_accuracy": per_round[-1].get("honest_accuracy"),
        "rounds": per_round,
        "train_time_per_round_s": t_train / args.rounds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--attacks", nargs="+", default=DEFAULT_ATTACKS, choices=list(ATTACK_SETTINGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--peers", type=int, default=20)
    p.add_argument("--attackers", type=float, default=0.3, help="fraction of attacking peers")
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--committee", type=int, default=7, help="protocol.committee_size")
    p.add_argument("--auditors-per-update", type=int, default=3, help="protocol.auditors_per_update")
    p.add_argument("--quorum", type=int, default=2, help="protocol.quorum")
    p.add_argument("--reject-percent", type=int, default=66, help="protocol.reject_percent")
    p.add_argument("--approve-percent", type=int, default=50, help="protocol.approve_percent")
    p.add_argument("--max-reject-share", type=float, default=1.0,
                   help="defense.bdfl.max_reject_share: aggregate an approved update only when at most this share of its votes rejected it")
    p.add_argument("--dissent-limit", type=float, default=1.0,
                   help="defense.bdfl.dissent_limit: for that filter, leave out auditors that voted against more than this share of the outcomes")
    p.add_argument("--degree", type=int, default=4, help="overlay.degree (expander)")
    p.add_argument("--local-epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--rule", choices=list(RULES), default="default", help="the rule whose votes decide")
    p.add_argument("--rule-json", default="", help='the rule\'s [defense.detectors] table, e.g. \'{"shift": {"k": 2.5}}\'')
    p.add_argument("--task", default="clients.digits", help="task.client (clients.digits, clients.mnist, clients.seattle_weather)")
    p.add_argument("--no-rebuilt-starts", action="store_true",
                   help="measure each candidate's move from the auditor's own start (defense.rebuild_starts = false)")
    p.add_argument("--eval-every", type=int, default=0, help="also record honest accuracy every N rounds")
    p.add_argument("--json", type=Path, help="write all results here")
    p.add_argument("--consistency-window", type=int, default=5, help="defense.consistency_window (0 = off)")
    p.add_argument("--replay-window", type=int, default=3, help="defense.replay_window (0 = off)")
    p.add_argument("--min-sources", type=int, default=2, help="overlay.min_sources")
    p.add_argument("--votes-csv", type=Path, help="write every honest auditor's vote statistics (rule --rule) here")
    p.add_argument("--probe", action="store_true", help="with --votes-csv: also the auditor's loss at its trained "
                   "model plus / minus each candidate's move (two more evaluations per vote)")
    args = p.parse_args(argv)
    rules = dict(RULES)
    if args.rule_json:
        rules[args.rule] = AuditRule.from_dict(json.loads(args.rule_json))

    t0 = time.perf_counter()
    runs = []
    vote_rows: list[dict] | None = [] if args.votes_csv else None
    for a in args.attacks:
        for s in args.seeds:
            start = len(vote_rows) if vote_rows is not None else 0
            runs.append(run(a, s, args, rules, vote_rows))
            if vote_rows is not None:
                for row_ in vote_rows[start:]:
                    row_["attack"] = a
    elapsed = time.perf_counter() - t0

    def pooled(runs_: list[dict], get) -> str:  # noqa: ANN001
        rej = sum(get(r)[0] for r in runs_ if get(r))
        tot = sum(get(r)[1] for r in runs_ if get(r))
        return f"{100 * rej / tot:5.1f}%" if tot else "   - "

    print(f"{args.task}, {args.peers} peers, Dirichlet alpha={args.alpha}, {args.attackers:.0%} attackers, "
          f"{args.rounds} rounds, seeds {args.seeds}, decisions by rule {args.rule!r}, "
          f"local_epochs={args.local_epochs}, batch_size={args.batch_size}, lr={args.lr}, "
          f"val_fraction={args.val_fraction}, committee {args.committee}/{args.auditors_per_update}/{args.quorum}, "
          f"{'own starts' if args.no_rebuilt_starts else 'rebuilt trainer starts'}, "
          f"expander degree {args.degree}")
    print(f"{'attack':15s} {'vote FRR':>9s} {'vote DR':>9s} {'dec. FRR':>10s} {'dec. DR':>9s} {'sep.':>5s} {'final acc':>10s}")
    for a in args.attacks:
        rs = [r for r in runs if r["attack"] == a]
        seps = [r["separation_round"] for r in rs]
        sep = "-" if a == "none" else ("never" if any(s is None for s in seps) else str(max(seps)))
        accs = [r["final_accuracy"] for r in rs if r["final_accuracy"] is not None]
        acc = f"{np.mean(accs):10.3f}" if accs else f"{'-':>10s}"
        print(
            f"{a:15s} {pooled(rs, lambda r: r['votes'][args.rule].get('honest')):>9s} "
            f"{pooled(rs, lambda r: r['votes'][args.rule].get('attacker')):>9s} "
            f"{pooled(rs, lambda r: r['committee'].get('honest')):>10s} "
            f"{pooled(rs, lambda r: r['committee'].get('attacker')):>9s} {sep:>5s} {acc}"
        )
    print("\nall rules on the same evaluations (vote FRR / vote DR, honest auditors):")
    print(f"{'rule':30s} " + " ".join(f"{a:>15s}" for a in args.attacks))
    for rn in rules:
        cells = []
        for a in args.attacks:
            rs = [r for r in runs if r["attack"] == a]
            cells.append(f"{pooled(rs, lambda r: r['votes'][rn].get('honest')).strip()}/"
                         f"{pooled(rs, lambda r: r['votes'][rn].get('attacker')).strip()}")
        print(f"{rn:30s} " + " ".join(f"{c:>15s}" for c in cells))
    t_round = np.mean([r["train_time_per_round_s"] for r in runs])
    print(f"\nlocal training, all {args.peers} peers, one round (local_epochs={args.local_epochs}): "
          f"{1000 * t_round:.1f} ms; total run time {elapsed:.1f} s")
    if vote_rows:
        import csv

        with args.votes_csv.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row_ in vote_rows for k in row_)))
            w.writeheader()
            w.writerows(vote_rows)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
