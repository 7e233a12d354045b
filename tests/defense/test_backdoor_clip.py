"""bdfl.defense.backdoor_clip: the per-coordinate band and the norm bound on approved models, and
the ``bdfl`` strategy and config that select them."""

from __future__ import annotations

import numpy as np
import pytest

from bdfl.attacks import AttackContext, make_attack
from bdfl.config import BACKDOOR_CLIPS, AuditedConfig, DefenseConfig, ExperimentConfig, validate
from bdfl.defense import strategy_of
from bdfl.defense.aggregate import AggregationError, weighted_average
from bdfl.defense.audited import Audited
from bdfl.defense.backdoor_clip import CLIPS, band_clip, clip_models, norm_clip
from bdfl.errors import ConfigError


def _honest(rng: np.random.Generator, n: int, d: int = 200) -> list[list[np.ndarray]]:
    """``n`` models that moved a shared start in random (honest-looking) directions on the first
    half of the coordinates and left the second half (the 'trigger weights') where it was."""
    start = rng.normal(size=d).astype(np.float32)
    out = []
    for _ in range(n):
        m = start.copy()
        m[: d // 2] += rng.normal(scale=0.1, size=d // 2).astype(np.float32)
        out.append([m[:150].reshape(10, 15), m[150:]])
    return out


def test_band_clip_removes_what_only_a_minority_moved() -> None:
    rng = np.random.default_rng(0)
    honest = _honest(rng, 14)
    attackers = []
    for _ in range(6):  # 30 %: the same 'backdoor' move on coordinates honest training leaves alone
        m = [a.copy() for a in honest[0]]
        m[1][10:20] += 1.0
        attackers.append(m)
    models = [*honest, *attackers]
    plain = weighted_average(models)
    clipped = weighted_average(band_clip(models, 3.0))
    start_tail = honest[0][1][10:20]
    assert np.abs(plain[1][10:20] - start_tail).min() > 0.25  # the plain average carries 30 % of it
    assert np.allclose(clipped[1][10:20], start_tail, atol=1e-6)  # the band takes it out entirely
    # where honest models disagree the band is wide: honest-only rounds are barely changed
    honest_plain, honest_clipped = weighted_average(honest), weighted_average(band_clip(honest, 3.0))
    moved = np.abs(np.concatenate([a.ravel() for a in honest_plain]) - np.concatenate([a.ravel() for a in honest_clipped]))
    assert moved.max() < 0.02


def test_band_clip_keeps_shapes_dtypes_and_small_rounds() -> None:
    rng = np.random.default_rng(1)
    models = _honest(rng, 5)
    out = band_clip(models, 2.0)
    assert [[(a.shape, a.dtype) for a in m] for m in out] == [[(a.shape, a.dtype) for a in m] for m in models]
    two = models[:2]
    assert all(np.array_equal(a, b) for m, o in zip(two, band_clip(two, 0.1)) for a, b in zip(m, o))
    assert clip_models(models, "off", 3.0) is models


def test_band_clip_large_k_is_identity_and_small_k_is_the_median() -> None:
    rng = np.random.default_rng(2)
    models = [[rng.normal(size=(3, 4)).astype(np.float32)] for _ in range(7)]
    wide = band_clip(models, 100.0)
    spread = np.stack([m[0] for m in models])
    mad = np.median(np.abs(spread - np.median(spread, 0)), 0)
    assert (mad > 0).all()
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(models, wide))
    narrow = band_clip(models, 1e-9)
    assert all(np.allclose(m[0], np.median(spread, 0), atol=1e-6) for m in narrow)


def test_norm_clip_bounds_a_boosted_model_only() -> None:
    rng = np.random.default_rng(3)
    models = _honest(rng, 9)
    boosted = [a.copy() for a in models[0]]
    boosted[0] += 5.0  # model replacement: a far larger move than anyone else's
    out = norm_clip([*models, boosted], 2.0)
    centre = [np.median(np.stack([m[i] for m in [*models, boosted]]), 0) for i in range(2)]
    dist = [np.sqrt(sum(((a - c) ** 2).sum() for a, c in zip(m, centre))) for m in out]
    assert dist[-1] <= 2.0 * np.median(dist[:-1] + [dist[-1]]) * 1.05 + 1e-6
    assert dist[-1] < 0.2 * np.sqrt(sum(((a - c) ** 2).sum() for a, c in zip(boosted, centre)))
    assert sum(np.array_equal(a[0], b[0]) for a, b in zip(models, out[:-1])) >= 4  # most untouched


def test_bad_inputs_are_refused() -> None:
    models = [[np.zeros(3, dtype=np.float32)] for _ in range(3)]
    for k in (0.0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(AggregationError):
            band_clip(models, k)  # type: ignore[arg-type]
    with pytest.raises(AggregationError):
        clip_models(models, "median", 3.0)
    with pytest.raises(AggregationError):
        Audited(clip="bogus")


def test_strategy_and_config_select_the_clip() -> None:
    assert CLIPS == BACKDOOR_CLIPS
    assert strategy_of(DefenseConfig()) == Audited(clip="off", clip_k=1.0)
    d = DefenseConfig(bdfl=AuditedConfig(clip="band", clip_k=2.5))
    strat = strategy_of(d)
    assert strat == Audited(clip="band", clip_k=2.5)
    rng = np.random.default_rng(4)
    models = _honest(rng, 6)
    models[-1][1][5] += 3.0
    w = [1.0] * 6
    assert np.allclose(strat.combine(models[0], models[1:], w)[1], weighted_average(band_clip(models, 2.5), w)[1])
    for bad in ({"clip": "bogus"}, {"clip_k": 0.0}, {"clip_k": 1000.0}):
        cfg = ExperimentConfig(defense=DefenseConfig(bdfl=AuditedConfig(**bad)))  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="defense.bdfl.clip"):
            validate(cfg)


def test_an_attacker_that_knows_the_band_moves_only_where_honest_models_disagree() -> None:
    """Adversary: band_backdoor (bdfl.attacks.band_backdoor) boosts its backdoor and places it
    just inside the band it predicts (it knows the honest models and k). The clip leaves its
    models as they are, and still: coordinates honest training left alone stay at the honest
    value, and elsewhere the average moves by at most the attackers' share x the band."""

    rng = np.random.default_rng(5)
    honest = _honest(rng, 14)
    start = [a.copy() for a in honest[0]]
    start[0] = np.median(np.stack([h[0] for h in honest]), 0)  # a plausible start for the first layer
    trained = [a.copy() for a in start]
    trained[0] += 0.05
    trained[1][10:20] += 1.0  # the backdoor on weights honest models did not move
    attack = make_attack("band_backdoor", clip_k=3.0, boost=10.0)
    sent = attack.poison_update(AttackContext(round=1, trained=trained, reference=start, honest_updates=honest,
                                              num_peers=20, num_attackers=6))
    models = [*honest, *[sent] * 6]
    clipped = band_clip(models, 3.0)
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(clipped[-1], sent))  # already at the band's edge
    honest_avg = weighted_average(honest)
    avg = weighted_average(clipped)
    assert np.allclose(avg[1][10:20], honest[0][1][10:20], atol=1e-6)  # no backdoor where honest models agree
    spread = np.median(np.abs(np.stack([h[0] for h in honest]) - np.median(np.stack([h[0] for h in honest]), 0)), 0)
    # 6 of 20 at most a band (widened by themselves) away: a bounded, not a boosted, move
    assert np.abs(avg[0] - honest_avg[0]).max() < 0.3 * 3.0 * 1.4826 * 3 * spread.max() + 1e-6
    # without the clip the same update would have carried the boosted backdoor into the average
    assert np.abs(weighted_average([*honest, *[attack.poison_update(AttackContext(
        round=1, trained=trained, reference=start, num_peers=20, num_attackers=6))] * 6])[1][10:20]
        - honest[0][1][10:20]).min() > 2.0
