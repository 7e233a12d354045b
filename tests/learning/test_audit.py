"""The auditor's accept/reject rule: unit tests on the decision logic and an end-to-end
check with real digits models under non-IID data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bdfl.attacks import AttackContext, make_attack
from bdfl.errors import BDFLError
from bdfl.learning.aggregation import weighted_average
from bdfl.learning.audit import AuditRule, audit_updates, judge
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
