"""The strongest known attacks (issue 22): Min-Max, Min-Sum, Fang, Mimic, optimised ALIE/IPM,
dissensus, lazy auditors. Pure functions on small arrays; each test checks the property the
paper's attack is built on, and that it beats a weaker choice where the paper claims so."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.attacks import AttackContext, VoteContext, attacker_update, make_attack
from bdfl.attacks._search import agr_search, damage, line_search
from bdfl.attacks.fang import fang_krum_model, fang_trimmed_move
from bdfl.attacks.min_max import min_max_model, pairwise_sq
from bdfl.attacks.min_sum import min_sum_model
from bdfl.attacks.mimic import mimic_index
from bdfl.defense.aggregate import krum, trimmed_mean

D = 12


def _benign(k: int = 8, seed: int = 0, shift: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return shift + 0.3 * rng.standard_normal((k, D))


def _models(rows: np.ndarray) -> list[list[np.ndarray]]:
    """Rows as two-array models (shapes (4,) and (2, 4)) in float32."""
    return [[r[:4].astype(np.float32), r[4:].reshape(2, 4).astype(np.float32)] for r in rows]


def _ctx(benign: np.ndarray, f: int = 3, ref: np.ndarray | None = None, **kw) -> AttackContext:
    ref = np.zeros(D) if ref is None else ref
    m = _models(benign)
    kw.setdefault("rng", np.random.default_rng(1))
    return AttackContext(round=0, trained=m[0], reference=_models(ref[None, :])[0], honest_updates=m,
                         num_peers=len(benign) + f, num_attackers=f, **kw)


def _flat(model: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in model])


def test_agr_search_finds_the_largest_passing_gamma() -> None:
    gamma = agr_search(np.zeros(1), np.ones(1), lambda m: abs(m[0]) <= 3.7)
    assert gamma == pytest.approx(3.7, abs=1e-4)
    assert agr_search(np.zeros(1), np.ones(1), lambda m: False) == 0.0


def test_line_search_is_byzfls_forward_search() -> None:
    # expansion 0 -> 10 -> 30 (better), 70 (worse); contraction only steps forward (as ByzFL)
    assert line_search(lambda t: -(t - 30.0) ** 2) == 30.0
    seen: list[float] = []
    line_search(lambda t: seen.append(t) or -abs(t - 37.0), evals=6)
    assert seen == pytest.approx([0.0, 10.0, 30.0, 70.0, 30.0 + 32.0, 30.0 + 25.6])


@pytest.mark.parametrize("kind", ["std", "unit", "sign"])
def test_min_max_sits_on_the_benign_spread(kind: str) -> None:
    benign = _benign()
    out = _flat(attacker_update(make_attack("min_max", perturbation=kind), _ctx(benign)))
    bound = np.sqrt(pairwise_sq(benign).max())
    far = np.linalg.norm(benign - out, axis=1).max()
    assert far <= bound + 1e-3 and far >= 0.98 * bound  # as far as it may go, not further
    assert np.linalg.norm(out - benign.mean(0)) > 0.1  # it did move


def test_min_sum_keeps_its_sum_within_a_benign_models_and_is_tighter_than_min_max() -> None:
    benign = _benign(seed=2)
    p = benign.std(axis=0, ddof=1)
    ms, mm = min_sum_model(benign, p), min_max_model(benign, p)
    bound = pairwise_sq(benign).sum(axis=1).max()
    assert np.sum((benign - ms) ** 2) <= bound * (1 + 1e-6)
    assert np.sum((benign - ms) ** 2) >= 0.97 * bound
    mean = benign.mean(0)
    assert np.linalg.norm(ms - mean) < np.linalg.norm(mm - mean)


def test_fang_trimmed_mean_pushes_every_coordinate_against_the_honest_direction() -> None:
    benign = _benign(k=10, seed=3, shift=0.0) + np.linspace(-1, 1, D)  # both signs of moves
    moves = fang_trimmed_move(benign, np.random.default_rng(0))
    s = np.sign(benign.mean(0))
    beyond = np.where(s > 0, moves <= benign.min(0) + 1e-12, moves >= benign.max(0) - 1e-12)
    assert beyond.all()
    # with f of 13 such attackers the trimmed mean moves against the honest direction in every coordinate
    rng = np.random.default_rng(5)
    crafted = [fang_trimmed_move(benign, rng) for _ in range(3)]
    agg = trimmed_mean([[r] for r in [*benign, *crafted]], 3 / 13)[0]
    honest = trimmed_mean([[r] for r in benign], 3 / 13)[0]
    assert np.all(s * (agg - honest) < 0)


def test_fang_krum_is_selected_by_krum_and_moves_against_the_honest_direction() -> None:
    benign = _benign(k=9, seed=4)
    ref = np.full(D, 0.8)  # this round's start: the benign models moved +0.2 from it (and spread)
    crafted = fang_krum_model(benign, ref, f=3)
    stack = [[r] for r in [*benign, crafted, crafted, crafted]]
    assert np.allclose(krum(stack, 3)[0], crafted)
    assert np.dot(crafted - ref, benign.mean(0) - ref) < 0
    assert np.linalg.norm(crafted - ref) > 0.1  # not just the start: lambda found > 0
    out = _flat(attacker_update(make_attack("fang", target="krum"), _ctx(benign, ref=ref)))
    assert np.allclose(out, crafted, atol=1e-5)


def test_mimic_copies_the_honest_model_at_the_edge_of_the_main_spread() -> None:
    benign = _benign(k=7, seed=5)
    benign[4] += 3.0 * np.eye(D)[0]  # the honest model farthest out along the main direction
    assert mimic_index(benign) == 4
    out = _flat(attacker_update(make_attack("mimic"), _ctx(benign)))
    assert np.allclose(out, benign[4], atol=1e-6)
    # the variant that knows copies count once: its own small noise, so no two attackers agree
    a = _flat(attacker_update(make_attack("mimic", jitter=0.01), _ctx(benign)))
    b = _flat(attacker_update(make_attack("mimic", jitter=0.01), _ctx(benign, rng=np.random.default_rng(2))))
    spread = benign.std(axis=0)
    assert not np.array_equal(a, b) and not np.array_equal(a, benign[4])
    assert np.all(np.abs(a - benign[4]) < 0.06 * spread + 1e-9)  # still the copied model, within 6 sigma of 1 %


@pytest.mark.parametrize("name", ["alie_opt", "ipm_opt"])
@pytest.mark.parametrize("against", ["median", "trimmed_mean", "geometric_median"])
def test_optimised_attacks_do_at_least_the_damage_of_the_fixed_factor(name: str, against: str) -> None:
    benign = _benign(k=10, seed=6)
    ctx = _ctx(benign, f=3)
    opt = _flat(attacker_update(make_attack(name, against=against), ctx))
    fixed = _flat(attacker_update(make_attack("alie" if name == "alie_opt" else "ipm"), ctx))
    assert damage(against, benign, opt, 3) >= damage(against, benign, fixed, 3) - 1e-9
    assert damage(against, benign, opt, 3) > 0.05


def test_dissensus_moves_the_outlier_further_out() -> None:
    benign = _benign(k=6, seed=7)
    c = benign.mean(0)
    j = int(np.argmax(np.linalg.norm(benign - c, axis=1)))
    out = _flat(attacker_update(make_attack("dissensus", eps=1.0), _ctx(benign)))
    assert np.allclose(out - benign[j], benign[j] - c, atol=1e-5)
    # a neighbour averaging with it ends farther from the consensus than with an honest copy
    k = (j + 1) % 6
    assert np.linalg.norm((benign[k] + out) / 2 - c) > np.linalg.norm((benign[k] + benign[j]) / 2 - c)
    # without honest models and received ones it sends its own model
    lone = AttackContext(round=0, trained=_models(benign[:1])[0], reference=_models(benign[:1])[0])
    assert np.allclose(_flat(attacker_update(make_attack("dissensus"), lone)), benign[0])


def test_lazy_auditors_accept_everything_or_abstain() -> None:
    lazy = make_attack("lazy_auditor")
    assert all(lazy.vote(VoteContext(round=0), a, v) for a in (True, False) for v in (True, False))
    assert not lazy.abstains(0) and not lazy.poisons_update and not lazy.poisons_data
    quiet = make_attack("lazy_auditor", mode="abstain")
    assert quiet.abstains(0)
    wrapped = make_attack("on_off", inner="lazy_auditor", inner_params={"mode": "abstain"}, on_after=2)
    assert not wrapped.abstains(1) and wrapped.abstains(2)


def test_attacks_work_without_omniscience() -> None:
    benign = _benign(k=3, seed=8)
    m = _models(benign)
    ctx = AttackContext(round=0, trained=m[0], reference=_models(np.zeros((1, D)))[0], received=m[1:])
    for name in ("min_max", "min_sum", "fang", "mimic", "alie_opt", "ipm_opt", "dissensus"):
        out = attacker_update(make_attack(name), ctx)
        assert [a.shape for a in out] == [a.shape for a in m[0]] and all(np.isfinite(a).all() for a in out)
