"""The auditor's accept/reject rule: unit tests on the decision logic and an end-to-end
check with real digits models under non-IID data."""

from __future__ import annotations

import dataclasses

import math
from dataclasses import replace

import numpy as np
import pytest

from bdfl.attacks import AttackContext, make_attack
from bdfl.errors import BDFLError
from bdfl.learning.aggregation import weighted_average
from bdfl.learning.audit import AuditRule, ParamStats, audit_updates, candidate_statistics, judge
from bdfl.learning.data import load_digits, make_peer_shards
from bdfl.learning.task import EvalResult, fit_client, load_task


def _r(acc: float, loss: float) -> EvalResult:
    return EvalResult(loss=loss, num_examples=10, accuracy=acc, metrics={"accuracy": acc})


def test_judge_own_or_median_is_lenient() -> None:
    ref = _r(0.95, 0.2)
    results = [_r(0.9, 0.3), _r(0.8, 0.5), _r(0.7, 0.6), _r(0.45, 0.9), _r(0.1, 2.0)]
    v = judge(AuditRule(margin=0.2, loss_margin=10.0), ref, results)
    # median accuracy 0.7; bar = min(0.95, 0.7) = 0.7; accept >= 0.5
    assert [x.accept for x in v] == [True, True, True, False, False]
    assert v[3].median_score == 0.7 and v[3].reference_score == 0.95
    assert "accuracy 0.450 < bar 0.700" in v[3].reason
    # only the own reference: much stricter
    v_own = judge(AuditRule(margin=0.2, loss_margin=10.0, reference="own"), ref, results)
    assert [x.accept for x in v_own] == [True, True, False, False, False]


def test_judge_own_reference_guards_a_poisoned_median() -> None:
    """When most candidates are bad the median is bad too; the own-model bar is used
    by 'median' alone but not by 'own_or_median' (it accepts within either bar)."""
    ref = _r(0.9, 0.3)
    results = [_r(0.1, 3.0), _r(0.1, 3.0), _r(0.12, 3.0), _r(0.9, 0.3)]
    lenient = judge(AuditRule(margin=0.1), ref, results)
    assert all(x.accept for x in lenient)  # documented trade-off: majority-bad sets pass
    strict = judge(AuditRule(margin=0.1, reference="own"), ref, results)
    assert [x.accept for x in strict] == [False, False, False, True]


def test_judge_loss_margin_is_additive() -> None:
    ref = _r(0.5, 2.3)
    results = [_r(0.5, 2.2), _r(0.5, 2.4), _r(0.5, 2.3), _r(0.5, 4.9), _r(0.5, 4.7)]
    v = judge(AuditRule(margin=0.5, loss_margin=2.5), ref, results)
    # loss bar = max(2.3, median 2.4) = 2.4 -> accept <= 4.9
    assert [x.accept for x in v] == [True, True, True, True, True]
    v = judge(AuditRule(margin=0.5, loss_margin=2.0), ref, results)
    assert [x.accept for x in v] == [True, True, True, False, False]
    assert "loss 4.900 > bar 2.400 + margin 2" in v[3].reason


def test_judge_min_candidates_falls_back_to_own() -> None:
    ref = _r(0.9, 0.3)
    v = judge(AuditRule(margin=0.1, min_candidates=3), ref, [_r(0.5, 0.3), _r(0.85, 0.3)])
    assert [x.accept for x in v] == [False, True]
    assert math.isnan(v[0].median_score)


def test_judge_invalid_candidates_count_as_worst() -> None:
    ref = _r(0.9, 0.3)
    v = judge(AuditRule(), ref, ["parameters contain NaN or Inf", _r(0.85, 0.3), _r(0.8, 0.3)])
    assert not v[0].accept and v[0].reason == "parameters contain NaN or Inf"
    assert v[1].accept and v[2].accept
    # most candidates invalid: median unusable, the own bar decides
    v = judge(AuditRule(margin=0.1), ref, ["bad", "bad", _r(0.5, 0.3)])
    assert [x.accept for x in v] == [False, False, False]


def test_rule_validation() -> None:
    with pytest.raises(BDFLError, match="metric"):
        AuditRule(metric="f1")  # type: ignore[arg-type]
    with pytest.raises(BDFLError, match="margin"):
        AuditRule(margin=2.0)
    with pytest.raises(BDFLError, match="unknown field"):
        AuditRule.from_dict({"margn": 0.1})
    assert AuditRule.from_dict({"margin": 0.3}).margin == 0.3
    with pytest.raises(BDFLError, match="reports no finite 'accuracy'"):
        judge(AuditRule(), EvalResult(0.3, 5, math.nan, {}), [])
    # the loss metric works for clients that report no accuracy
    v = judge(AuditRule(metric="loss", loss_margin=0.5), EvalResult(0.3, 5, math.nan, {}),
              [EvalResult(0.4, 5, math.nan, {}), EvalResult(2.0, 5, math.nan, {})])
    assert [x.accept for x in v] == [True, False]


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
        gaps.append(verdicts[-2].median_score - verdicts[-2].score)
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
    st = candidate_statistics(trained, cands, start, direction_reference="own")
    assert st[0].shift == pytest.approx(1.0) and st[0].cosine == pytest.approx(1 / np.sqrt(2))
    assert st[1].cosine == pytest.approx(-1.0) and st[1].distance == pytest.approx(2.0)
    assert st[2].update_ratio == 0.0 and st[2].cosine == 0.0
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


def test_own_anchored_tests_stand_down_when_the_auditor_is_the_outlier() -> None:
    """An auditor whose own trained model went astray (here: +3 in every coordinate, a move
    10x the others') sees every candidate shifted to one side and barely moving: the shift
    and no-work tests would reject all of them. They stand down for that audit; an auditor
    with an ordinary model still rejects the one shifted candidate."""
    rng = np.random.default_rng(0)
    start = _vec(*np.zeros(40))
    honest = [_vec(*rng.normal(0, 0.3, 40)) for _ in range(8)]
    shifted = _vec(*(np.abs(rng.normal(0, 0.3, 40)) + 0.5))  # one side of everyone, in every coordinate
    cands = [*honest, shifted]
    ref = _r(0.9, 0.3)
    results = [_r(0.9, 0.3)] * len(cands)
    rule = AuditRule(norm_ratio=0, direction_margin=2, consistency_min_cosine=-1)
    astray = _vec(*np.full(40, 3.0))
    st = candidate_statistics(astray, cands, start)
    assert all("shift" in x.failed for x in judge(replace(rule, stand_down_share=1), ref, results, st))  # 1 = never
    v = judge(rule, ref, results, st)
    assert all(x.accept for x in v), [x.failed for x in v]
    ordinary = honest[0]
    v = judge(rule, ref, results, candidate_statistics(ordinary, cands, start))
    assert v[-1].failed == ("shift",) and sum(not x.accept for x in v) == 1
    with pytest.raises(BDFLError, match="stand_down_share"):
        AuditRule(stand_down_share=0.3)


def test_judge_parameter_tests_and_switches() -> None:
    ref = _r(0.9, 0.3)
    results = [_r(0.9, 0.3)] * 5
    ok = ParamStats(distance=1.0, shift=0.05, cosine=0.3, update_ratio=1.0, distance_ratio=1.0, cosine_gap=0.0)
    stats = [
        ok,
        ParamStats(9.0, 0.05, 0.3, 9.0, 9.0, 0.0),  # magnitude
        ParamStats(1.0, 0.05, -0.6, 1.0, 1.0, 0.9, 0.5, -0.6, 0.9),  # direction
        ParamStats(1.0, 0.9, 0.3, 1.0, 1.0, 0.0),  # coherent shift
        ParamStats(0.5, 0.0, 0.0, 0.0, 0.5, 0.3),  # no work
    ]
    v = judge(AuditRule(), ref, results, stats)
    assert [x.accept for x in v] == [True, False, False, False, False]
    assert [x.failed for x in v] == [(), ("magnitude",), ("direction",), ("shift",), ("no_work",)]
    assert "distance 9.00x the median > 4x" in v[1].reason and "coherent shift 0.90 > 0.4" in v[3].reason
    assert v[0].stats is ok and v[0].reason == "passed every test"
    off = AuditRule(norm_ratio=0, direction_margin=2, shift_limit=1, min_update=0)
    assert all(x.accept for x in judge(off, ref, results, stats))
    # NaN statistics (no start model, too few candidates) never reject
    nan = ParamStats(1.0, 0.0)
    assert judge(AuditRule(), ref, results[:1], [nan])[0].accept
    with pytest.raises(BDFLError, match="2 parameter statistics for 5 candidates"):
        judge(AuditRule(), ref, results, stats[:2])


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("norm_ratio", 0.5, "0 \\(off\\) or \\(1, 1000\\]"),
        ("norm_ratio", 1001.0, "audit_norm_ratio"),
        ("loss_margin", 0.0, "defense.audit_loss_margin.*\\(0, inf\\]"),
        ("norm_ratio", math.inf, "norm_ratio"),
        ("direction_margin", 2.5, "\\[0, 2\\]"),
        ("direction_margin", -0.1, "direction_margin"),
        ("shift_limit", 0.0, "\\(0, 1\\]"),
        ("shift_limit", 1.5, "shift_limit"),
        ("min_update", 1.0, "\\[0, 1\\)"),
        ("min_update", True, "min_update"),
        ("direction_reference", "mean", "median, own"),
        ("direction_min_agreement", 1.5, "\\[-1, 1\\]"),
        ("direction_own_margin", 3.0, "\\[-2, 2\\]"),
    ],
)
def test_rule_validation_of_parameter_tests(field: str, value: object, allowed: str) -> None:
    with pytest.raises(BDFLError, match=allowed):
        AuditRule(**{field: value})


def test_rule_from_defense_config() -> None:
    from bdfl.config import DefenseConfig

    rule = AuditRule.from_defense(DefenseConfig())
    # the config's defaults (the default experiment) differ from AuditRule()'s only where the
    # default experiment tightened the rule: audit_margin 0.4, the trigger scan on (0.9)
    assert rule == dataclasses.replace(AuditRule(), margin=0.4, trigger_limit=0.9)
    rule = AuditRule.from_defense(DefenseConfig(audit_margin=0.3, audit_shift_limit=0.5))
    assert rule.margin == 0.3 and rule.shift_limit == 0.5 and rule.norm_ratio == AuditRule().norm_ratio


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
    expected = {"sign_flip": "direction", "ipm": "direction", "alie": "shift", "scaling": "magnitude",
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
    assert caught["alie"] >= 9 and caught["scaling"] >= 9 and caught["free_rider"] == 10, caught
    # measured: 10 of 10 each, honest 3 % of votes
    assert caught["sign_flip"] >= 9 and caught["ipm"] >= 9, caught
    # without the start model the direction and no-work tests are skipped
    v = audit_updates(clients[6], fits[6], [fits[j] for j in honest_ids[1:9]] + [[p.copy() for p in starts[6]]])
    assert "no_work" not in v[-1].failed and math.isnan(v[-1].stats.update_ratio)
    assert "direction" not in v[-1].failed and math.isnan(v[-1].stats.cosine)


def test_consensus_direction_needs_agreement_and_a_deviation_from_the_own_move() -> None:
    """With the consensus reference a candidate fails the direction test only when the
    candidates agree (median cosine >= direction_min_agreement) and it also deviates from the
    auditor's own move by more than direction_own_margin."""
    ref = _r(0.9, 0.3)
    rule = AuditRule(direction_margin=0.2, direction_min_agreement=0.3, direction_own_margin=0.1)

    def st(gap: float, median: float, own_gap: float) -> ParamStats:
        return ParamStats(1.0, 0.0, median - gap, 1.0, 1.0, gap, median, 0.5 - own_gap, own_gap)

    cases = [st(0.5, 0.6, 0.4), st(0.5, 0.1, 0.4), st(0.5, 0.6, 0.05), st(0.1, 0.6, 0.4)]
    v = judge(rule, ref, [ref] * 4, cases)
    assert [x.accept for x in v] == [False, True, True, True]
    assert "consensus move" in v[0].reason and "with own move 0.40 below" in v[0].reason
    # the own-move check switched off (-2): agreement alone decides; "own" ignores the consensus fields
    assert [x.accept for x in judge(AuditRule(direction_own_margin=-2), ref, [ref] * 4, cases)] == [False, True, False, True]
    own = AuditRule(direction_reference="own", direction_margin=0.2)
    assert [x.accept for x in judge(own, ref, [ref] * 4, cases)] == [False, False, False, True]


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
    auditor's own, so a minority of identical moves cannot steer it."""
    start = _vec(0.0, 0.0, 0.0)
    trained = _vec(0.0, 1.0, 0.0)  # the auditor's own move differs from the consensus
    cands = [_vec(1.0, 0.0, 0.0)] * 4 + [_vec(0.0, 0.0, 1.0)] * 2
    st = candidate_statistics(trained, cands, start)
    assert st[0].cosine == pytest.approx(1.0) and st[5].cosine == pytest.approx(0.0)
    assert st[0].own_cosine == pytest.approx(0.0)
    assert st[5].median_cosine == pytest.approx(1.0) and st[5].cosine_gap == pytest.approx(1.0)


def test_merge_test() -> None:
    ref = _r(0.9, 0.3)
    results = [_r(0.9, 0.3)] * 6
    merged = [0.30, 0.35, 0.40, 0.45, 1.20, math.inf]  # finite median 0.40 -> bar 0.40 * 1.5 + 0.5 = 1.10
    v = judge(AuditRule(), ref, results, None, merged)
    assert [x.accept for x in v] == [True, True, True, True, False, False]
    assert v[4].failed == ("merge",) and v[4].merged_loss_median == pytest.approx(0.40)
    assert "loss merged with own model 1.200 > median 0.400 x 1.5 + 0.5" in v[4].reason
    assert all(x.accept for x in judge(AuditRule(merge_loss_margin=0), ref, results, None, merged))
    # too few finite merged losses: no median, no merge test
    assert all(x.accept for x in judge(AuditRule(), ref, results[:2], None, [0.1, 9.0]))
    with pytest.raises(BDFLError, match="merge_loss_margin"):
        AuditRule(merge_loss_margin=-1)


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
    ref = _r(0.9, 0.3)
    only = AuditRule(norm_ratio=0, direction_margin=2, shift_limit=1, min_update=0, consistency_min_cosine=-0.3)
    v = judge(only, ref, [ref] * 4, st)
    assert [x.accept for x in v] == [True, False, False, True]
    assert v[1].failed == ("consistency",) and "earlier move -1.00 < -0.3" in v[1].reason
    assert all(x.accept for x in judge(replace(only, consistency_min_cosine=-1), ref, [ref] * 4, st))  # -1 = off
    with pytest.raises(BDFLError, match="consistency_min_cosine"):
        AuditRule(consistency_min_cosine=-1.5)


def test_rule_and_config_validate_each_setting_in_one_place() -> None:
    """Every AuditRule field that a [defense] table also has (audit_<field>) is refused by the
    rule exactly when the config refuses it, with the same message (bdfl.config.DEFENSE_RANGES)."""
    from bdfl.config import DEFENSE_RANGES, ConfigError, from_dict

    checked = 0
    for name in AuditRule.__dataclass_fields__:
        key = f"audit_{name}"
        if key not in DEFENSE_RANGES:
            continue
        lo, hi, _lo_open, _hi_open = DEFENSE_RANGES[key]
        for bad in ([lo - 1] if lo is not None else []) + ([hi + 1] if hi is not None else []):
            with pytest.raises(ConfigError) as from_config:
                from_dict({"defense": {key: bad}})
            with pytest.raises(ConfigError) as from_rule:
                AuditRule(**{name: bad})
            assert str(from_rule.value) == str(from_config.value) and from_config.value.field == f"defense.{key}"
            checked += 1
        ok = (lo if lo is not None else 0) + (0.5 if isinstance(lo, float) else 1)
        AuditRule(**{name: ok})  # inside the range: accepted by the rule too
    assert checked >= 15
