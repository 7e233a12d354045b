"""The auditor's accept/reject rule (the detectors composed): end-to-end checks with real
digits models under non-IID data, the parameter statistics, the rule's config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bdfl.attacks import AttackContext, make_attack
from bdfl.config import ConfigError, DefenseConfig, from_dict
from bdfl.defense.aggregate import weighted_average
from bdfl.defense.audit import AuditRule, audit_updates, candidate_statistics
from bdfl.errors import BDFLError
from bdfl.learning.data import load_digits, make_peer_shards
from bdfl.learning.task import fit_client, load_task


@pytest.fixture(scope="module")
def round_models():
    """One FedAvg round on digits, 10 peers, Dirichlet(0.5), after 3 warm-up rounds."""
    task = load_task("clients.digits")
    ds = load_digits()
    shards = make_peer_shards(ds, 10, scheme="dirichlet", alpha=0.5, seed=0, min_size=40)
    hp = {"local_epochs": 3, "batch_size": 10}
    clients = [task.make_client(s.train, s.val, seed=i, hparams=hp) for i, s in enumerate(shards)]
    w = task.initial_parameters(ds, seed=0)
    for r in range(3):
        fits = [fit_client(c, w, {"round": r}) for c in clients]
        w = weighted_average([f.parameters for f in fits], [f.num_examples for f in fits])
    fits = [fit_client(c, w, {"round": 3}).parameters for c in clients]
    # a label-flipping attacker trained on the first shard's data, flipped
    lf = make_attack("label_flip")
    X, y = lf.poison_data(*shards[0].train, np.random.default_rng(0), num_classes=10)
    flipped = fit_client(task.make_client((X, y), shards[0].val, seed=99, hparams=hp), w, {"round": 3}).parameters
    noise = make_attack("gaussian_noise", sigma=0.5).poison_update(
        AttackContext(round=3, trained=fits[0], reference=w, rng=np.random.default_rng(1))
    )
    return clients, w, fits, flipped, noise


def test_audit_end_to_end_non_iid(round_models) -> None:
    """Nine auditors, each with its own skewed validation split: honest models pass,
    the label-flipped and the noisy model are rejected by a clear majority."""
    clients, w, fits, flipped, noise = round_models
    honest_rejects = honest_votes = flipped_rejects = noise_rejects = 0
    gaps = []
    for a in range(1, 10):
        candidates = [fits[j] for j in range(10) if j != a] + [flipped, noise]
        verdicts = audit_updates(clients[a], fits[a], candidates, AuditRule())
        honest_rejects += sum(not v.accept for v in verdicts[:-2])
        honest_votes += len(verdicts) - 2
        flipped_rejects += not verdicts[-2].accept
        noise_rejects += not verdicts[-1].accept
        gaps.append(float(np.median([v.accuracy for v in verdicts[:-2]])) - verdicts[-2].accuracy)
    assert honest_rejects / honest_votes < 0.05
    assert flipped_rejects >= 6
    assert noise_rejects >= 6
    assert np.mean(gaps) > 0.4  # the flipped model is far below the honest median everywhere


def test_audit_rejects_malformed_candidates(round_models) -> None:
    clients, w, fits, _, _ = round_models
    nan = [a.copy() for a in fits[1]]
    nan[0][0, 0] = np.nan
    wrong_shape = [fits[1][0], fits[1][1][:3], fits[1][2], fits[1][3]]
    too_few = fits[1][:2]
    v = audit_updates(clients[0], fits[0], [nan, wrong_shape, too_few, fits[1], fits[2]])
    assert [x.accept for x in v[:3]] == [False, False, False]
    assert "NaN" in v[0].reason and "shape" in v[1].reason and "count" in v[2].reason


# -- parameter-space tests --------------------------------------------------------------


def _vec(*xs: float) -> list[np.ndarray]:
    return [np.array(xs, dtype=np.float32)]


def test_candidate_statistics_definitions() -> None:
    start = _vec(0.0, 0.0, 0.0, 0.0)
    trained = _vec(1.0, 0.0, 0.0, 0.0)  # own move (1, 0, 0, 0)
    cands = [
        _vec(1.0, 1.0, 0.0, 0.0),   # +1 in one coordinate: shift 1
        _vec(-1.0, 0.0, 0.0, 0.0),  # reversed move: cosine -1, distance 2
        _vec(0.0, 0.0, 0.0, 0.0),   # the start itself: no work
        _vec(2.0, 1.0, -1.0, 0.0),  # mixed signs: shift |1 + 1 - 1| / 3
    ]
    st = candidate_statistics(trained, cands, start)
    assert st[0].shift == pytest.approx(1.0) and st[0].own_cosine == pytest.approx(1 / np.sqrt(2))
    assert st[1].own_cosine == pytest.approx(-1.0) and st[1].distance == pytest.approx(2.0)
    assert st[2].update_ratio == 0.0 and st[2].own_cosine == 0.0
    assert st[3].shift == pytest.approx(1 / 3) and st[3].update_ratio == pytest.approx(np.sqrt(6))
    dists = [1.0, 2.0, 1.0, np.sqrt(3)]
    med = float(np.median(dists))
    assert [s.distance_ratio for s in st] == pytest.approx([d / med for d in dists])
    cos_med = float(np.median([s.cosine for s in st]))
    assert st[1].cosine_gap == pytest.approx(cos_med + 1.0)
    # without a start model: no cosine, no update ratio; too few candidates: no medians
    st = candidate_statistics(trained, cands[:2])
    assert math.isnan(st[0].cosine) and math.isnan(st[0].update_ratio) and math.isnan(st[0].distance_ratio)
    # invalid candidates get no statistics and do not enter the medians
    st = candidate_statistics(trained, [_vec(np.nan, 0, 0, 0), *cands], start)
    assert st[0] is None and st[2].distance_ratio == pytest.approx(2.0 / med)


@pytest.fixture(scope="module")
def decentralised_round():
    """Round 2 of decentralised training on digits (20 peers, Dirichlet 0.5, 5 local epochs,
    batch 10 - the runner's settings): every peer has its own model, averaged with 4 others."""
    task = load_task("clients.digits")
    ds = load_digits()
    n = 20
    shards = make_peer_shards(ds, n, scheme="dirichlet", alpha=0.5, seed=0, min_size=20)
    hp = {"local_epochs": 5, "batch_size": 10}
    clients = [task.make_client(s.train, s.val, seed=i, hparams=hp) for i, s in enumerate(shards)]
    init = task.initial_parameters(ds, seed=0)
    models = [init] * n
    for r in range(2):
        fits = [fit_client(c, m, {"round": r}).parameters for c, m in zip(clients, models)]
        models = [weighted_average([fits[(i + k) % n] for k in range(5)]) for i in range(n)]
    starts = models
    fits = [fit_client(c, m, {"round": 2}).parameters for c, m in zip(clients, starts)]
    return clients, starts, fits


def test_audit_detects_update_attacks_with_start_params(decentralised_round) -> None:
    """Each of 10 auditors judges 8 honest candidates plus one attack. ALIE (shift), a x10
    boosted update (magnitude) and a free-rider re-publishing the model it started from (no
    work; in round 0 every peer starts from that model) are rejected by nearly every auditor,
    and so are sign flipping and IPM (direction) when the auditor knows where each trainer
    started (rebuilt from the chain in a run); honest candidates pass (< 5 % of votes rejected)."""
    clients, starts, fits = decentralised_round
    honest_ids = list(range(6, 20))
    honest = [fits[i] for i in honest_ids]
    ctx = lambda i: AttackContext(round=2, trained=fits[i], reference=starts[i], honest_updates=honest,  # noqa: E731
                                  rng=np.random.default_rng(i), num_peers=20, num_attackers=6)
    attacks = {
        "sign_flip": make_attack("sign_flip").poison_update(ctx(0)),
        "ipm": make_attack("ipm").poison_update(ctx(1)),
        "alie": make_attack("alie").poison_update(ctx(2)),
        "scaling": make_attack("scaling").poison_update(ctx(4)),
    }
    expected = {"sign_flip": "direction", "ipm": "direction", "alie": "shift", "scaling": "distance",
                "free_rider": "no_work"}
    attacker_of = {"sign_flip": 0, "ipm": 1, "alie": 2, "scaling": 4}
    caught = {k: 0 for k in expected}
    honest_rejects = honest_votes = 0
    auditors = honest_ids[:10]
    for a in auditors:
        ids = [j for j in honest_ids if j != a][:8]
        others = [fits[j] for j in ids]
        for name in expected:
            bad = [p.copy() for p in starts[a]] if name == "free_rider" else attacks[name]
            # every trainer's start, as auditors rebuild it from the chain (a free-rider's: the model it re-sends)
            trainer_starts = [starts[j] for j in ids] + [starts[attacker_of.get(name, a)]]
            v = audit_updates(clients[a], fits[a], [*others, bad], AuditRule(), start_params=starts[a],
                              candidate_starts=trainer_starts)
            honest_rejects += sum(not x.accept for x in v[:-1])
            honest_votes += len(v) - 1
            caught[name] += expected[name] in v[-1].failed
    assert honest_rejects / honest_votes < 0.05, honest_rejects / honest_votes
    assert caught["alie"] >= 8 and caught["scaling"] >= 9 and caught["free_rider"] == 10, caught
    # measured (calibrated detectors, 9 candidates per audit): alie 8, scaling 10, free-rider 10, sign flip 10, IPM 10 of 10
    assert caught["sign_flip"] >= 8 and caught["ipm"] >= 8, caught
    # without the start model the direction and no-work tests are skipped
    v = audit_updates(clients[6], fits[6], [fits[j] for j in honest_ids[1:9]] + [[p.copy() for p in starts[6]]])
    assert "no_work" not in v[-1].failed and math.isnan(v[-1].stats.update_ratio)
    assert "direction" not in v[-1].failed and math.isnan(v[-1].stats.cosine)


def test_rebuilt_trainer_starts_expose_a_reversed_move() -> None:
    """Two trainers start far from the auditor; one of them sends its start minus its move
    (sign flipping). From the auditor's own start both moves are dominated by the 5-unit
    offset and look equally off (the honest one would be rejected too); from their own
    starts (``candidate_starts``) the honest move agrees with the others and the flip is reversed."""
    start = _vec(0.0, 0.0, 0.0, 0.0)
    trained = _vec(1.0, 0.2, 0.0, 0.0)
    far = _vec(0.0, 0.0, 5.0, 0.0)  # where the two trainers started
    honest = [_vec(1.0, 0.0, 0.0, 0.1), _vec(0.9, 0.1, 0.0, -0.1), _vec(1.1, -0.1, 0.1, 0.0)]
    flipper_honest = _vec(1.0, 0.1, 5.0, 0.0)
    flipper = _vec(-1.0, -0.1, 5.0, 0.0)
    cands = [*honest, flipper_honest, flipper]
    blind = candidate_statistics(trained, cands, start)
    assert blind[3].cosine_gap > 0.5 and blind[4].cosine_gap > 0.5  # indistinguishable: both far off
    rebuilt = candidate_statistics(trained, cands, start, candidate_starts=[None, None, None, far, far])
    assert rebuilt[3].cosine == pytest.approx(rebuilt[0].cosine, abs=0.05) and rebuilt[3].cosine > 0.9
    assert rebuilt[4].cosine < -0.9 and rebuilt[4].own_cosine < -0.9
    assert rebuilt[4].cosine_gap > 1.5 and rebuilt[4].own_cosine_gap > 1.5
    # a start with the wrong shape is ignored (the auditor's own start is used)
    odd = candidate_statistics(trained, cands, start, candidate_starts=[None, None, None, None, [np.zeros(3)]])
    assert odd[4].cosine == pytest.approx(blind[4].cosine)


def test_consensus_is_the_coordinate_median_of_the_moves() -> None:
    """The consensus move is the coordinate-wise median of the candidates' moves and the
    auditor's own, so a minority of moves elsewhere cannot steer it."""
    start = _vec(0.0, 0.0, 0.0)
    trained = _vec(0.0, 1.0, 0.0)  # the auditor's own move differs from the consensus
    cands = [_vec(1.0, 0.3, 0.0), _vec(1.0, -0.3, 0.0), _vec(1.0, 0.0, 0.3), _vec(1.0, 0.0, -0.3),
             _vec(0.0, 0.0, 1.0), _vec(0.0, 0.0, 1.3)]  # the consensus: (1, 0, 0)
    st = candidate_statistics(trained, cands, start)
    assert all(s.copy_of == -1 for s in st)  # no two as close as near-copies
    assert st[0].cosine == pytest.approx(1 / np.sqrt(1.09)) and st[5].cosine == pytest.approx(0.0)
    assert st[0].own_cosine == pytest.approx(0.3 / np.sqrt(1.09))
    assert st[5].median_cosine == pytest.approx(1 / np.sqrt(1.09)) and st[5].cosine_gap == pytest.approx(1 / np.sqrt(1.09))


def test_near_copies_count_once_in_the_consensus() -> None:
    """Copies of one model, exact or with a little noise, are one move in the consensus median:
    five copies of (0, 0, 1) among four other moves and the auditor's own do not make it theirs
    (counted each, they would: the median would be (0.5, 0, 0.65))."""
    start = _vec(0.0, 0.0, 0.0)
    trained = _vec(1.0, 0.1, 0.0)
    others = [_vec(1.0, 0.3, 0.0), _vec(1.0, -0.3, 0.0), _vec(1.0, 0.0, 0.3), _vec(1.0, 0.0, -0.3)]
    copies = [_vec(0.0, 0.0, 1.0), _vec(0.0, 0.0, 1.0), _vec(0.001, 0.0, 1.0), _vec(0.0, 0.002, 1.0), _vec(0.0, 0.0, 1.001)]
    st = candidate_statistics(trained, others + copies, start)
    assert [s.copy_of for s in st] == [-1] * 5 + [4] * 4
    assert min(s.cosine for s in st[:4]) > 0.9  # the consensus is the others' direction: (1, 0, 0)
    assert max(s.cosine for s in st[4:]) < 0.01


def test_consistency_test_compares_a_move_with_its_trainers_earlier_move() -> None:
    """history_cosine is the cosine of a candidate's move (from its rebuilt start) with its
    trainer's earlier move; below consistency_min_cosine it fails. Without the start of this
    round or without an earlier move there is no statistic and no failure."""
    start = _vec(0.0, 0.0, 0.0, 0.0)
    trained = _vec(1.0, 0.0, 0.0, 0.0)
    t_start = _vec(0.0, 0.0, 1.0, 0.0)
    earlier = _vec(0.0, 1.0, 0.0, 0.0)  # the trainers' move last round
    cands = [_vec(0.0, 1.0, 1.0, 0.0), _vec(0.0, -1.0, 1.0, 0.0), _vec(1.0, -1.0, 1.0, 0.0), _vec(0.0, -1.0, 1.0, 0.0)]
    starts = [t_start, t_start, t_start, None]
    st = candidate_statistics(trained, cands, start, candidate_starts=starts, candidate_past_moves=[earlier] * 4)
    assert st[0].history_cosine == pytest.approx(1.0)  # the same direction as last round
    assert st[1].history_cosine == pytest.approx(-1.0)  # reversed
    assert st[2].history_cosine == pytest.approx(-1 / np.sqrt(2))
    assert math.isnan(st[3].history_cosine)  # no rebuilt start: the move is not the trainer's own
    assert math.isnan(candidate_statistics(trained, cands, start, candidate_starts=starts)[0].history_cosine)
    # a malformed earlier move is ignored
    assert math.isnan(candidate_statistics(trained, cands, start, candidate_starts=starts,
                                           candidate_past_moves=[[np.zeros(2)]] * 4)[0].history_cosine)


def test_min_candidates_is_at_least_three() -> None:
    """A median of one candidate is that candidate (it set its own bar); of two, a bad one pulls it halfway."""
    with pytest.raises(ConfigError, match=r"min_candidates.*\[3, 1000\]"):
        from_dict({"defense": {"detectors": {"min_candidates": 1}}})
