"""Attack registry, parameter validation, the base class and the runner helpers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bdfl.attacks import (
    ATTACKS,
    Attack,
    AttackContext,
    AttackError,
    VoteContext,
    attacker_update,
    attacker_vote,
    describe_attacks,
    make_attack,
)
from bdfl.errors import BDFLError

EXPECTED = {
    "none", "label_flip", "sign_flip", "gaussian_noise", "scaling", "model_replacement", "alie",
    "ipm", "backdoor", "free_rider", "on_off", "colluding_auditor",
    "min_max", "min_sum", "fang", "mimic", "alie_opt", "ipm_opt", "dissensus", "lazy_auditor",
    "adaptive", "dba", "edge_case", "band_backdoor",
}


def test_registry_has_every_attack() -> None:
    assert set(ATTACKS) == EXPECTED
    for name, cls in ATTACKS.items():
        assert cls.name == name and cls.summary and cls.paper
        attack = make_attack(name)  # defaults are valid
        assert isinstance(attack, Attack) and not attack.colludes or name == "colluding_auditor"
    text = describe_attacks()
    assert all(name in text for name in EXPECTED)


def test_unknown_attack_lists_names() -> None:
    with pytest.raises(AttackError, match="unknown attack 'flip'") as info:
        make_attack("flip")
    assert "label_flip" in info.value.fix and "sign_flip" in info.value.fix
    assert isinstance(info.value, BDFLError)


@pytest.mark.parametrize(
    "name,params,needle",
    [
        ("gaussian_noise", {"sigma": -1}, "'sigma' = -1 is invalid; allowed: a number in (0, inf)"),
        ("gaussian_noise", {"mode": "loud"}, "'mode' = 'loud' is invalid; allowed: one of 'additive', 'random'"),
        ("label_flip", {"fraction": 1.5}, "'fraction' = 1.5 is invalid; allowed: a number in (0, 1]"),
        ("backdoor", {"target_label": -2}, "'target_label' = -2 is invalid; allowed: an integer >= 0"),
        ("sign_flip", {"scale": True}, "'scale' = True is invalid"),
        ("on_off", {"on_after": 1.5}, "'on_after' = 1.5 is invalid; allowed: an integer >= 0"),
    ],
)
def test_bad_parameter_names_param_and_range(name: str, params: dict, needle: str) -> None:
    with pytest.raises(AttackError) as info:
        make_attack(name, **params)
    assert needle in str(info.value)


def test_unknown_parameter_lists_allowed() -> None:
    with pytest.raises(AttackError, match="attack 'sign_flip' has no parameter 'sigma'") as info:
        make_attack("sign_flip", sigma=1.0)
    assert "scale" in info.value.fix and "collude" in info.value.fix


def test_cross_parameter_checks() -> None:
    with pytest.raises(AttackError, match="needs parameters 'source' and 'target'"):
        make_attack("label_flip", mode="targeted", source=1)
    with pytest.raises(AttackError, match="unknown inner attack 'nope'"):
        make_attack("on_off", inner="nope")
    with pytest.raises(AttackError, match="cannot be on_off itself"):
        make_attack("on_off", inner="on_off")
    with pytest.raises(AttackError, match="on_rounds"):
        make_attack("on_off", period=2, on_rounds=3)


def test_collude_flag_on_any_attack_and_alias() -> None:
    for name in EXPECTED:
        assert make_attack(name, collude=True).colludes
    a = make_attack("label_flip", colluding_auditors=True)
    assert a.colludes and a.params["collude"] is True
    with pytest.raises(AttackError, match="different values"):
        make_attack("label_flip", colluding_auditors=True, collude=False)


def test_base_hooks_are_honest() -> None:
    a = make_attack("none")
    X, y = np.ones((3, 1, 2, 2)), np.array([0, 1, 2])
    assert a.poison_data(X, y, np.random.default_rng(0)) == (X, y)
    ctx = AttackContext(round=0, trained=[np.ones(2)], reference=[np.zeros(2)])
    assert a.poison_update(ctx) is ctx.trained
    assert a.vote(VoteContext(0), True, False) is False and a.vote(VoteContext(0), False, True) is True
    assert a.active(0) and not a.poisons_data and not a.poisons_update and a.trains
    assert make_attack("label_flip").poisons_data and make_attack("sign_flip").poisons_update


def test_runner_helpers_apply_the_active_gate() -> None:
    a = make_attack("on_off", inner="sign_flip", on_after=2, collude=True)
    trained, ref = [np.array([1.0, 2.0])], [np.zeros(2)]
    off = AttackContext(round=1, trained=trained, reference=ref)
    on = AttackContext(round=2, trained=trained, reference=ref)
    assert attacker_update(a, off) is trained
    assert np.allclose(attacker_update(a, on)[0], [-1.0, -2.0])
    assert attacker_vote(a, VoteContext(1), candidate_is_attacker=False, honest_verdict=True) is True
    assert attacker_vote(a, VoteContext(2), candidate_is_attacker=False, honest_verdict=True) is False
    # vote() gates itself too, and accepts an AttackContext (anything with .round)
    assert a.vote(off, False, True) is True and a.vote(on, False, True) is False


def test_layering_no_chain_net_or_peer_imports() -> None:
    code = (
        "import sys, bdfl.learning, bdfl.attacks, bdfl.learning.task, bdfl.defense.audit;"
        "bad=[m for m in sys.modules if m.split('.')[0]=='web3' or m.startswith(('bdfl.chain','bdfl.net','bdfl.peer','bdfl.experiment'))];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_inputs_of_other_shapes_are_named_and_integers_round_as_aggregation_does() -> None:
    """Used as a library (an outside probe): honest_updates of another shape reached ALIE and IPM
    as raw NumPy broadcast errors; an integer array was truncated (-0.6 -> 0) where aggregation
    rounds it (-1)."""
    import numpy as np
    import pytest

    from bdfl.attacks import AttackContext, AttackError, attacker_update, make_attack

    trained, reference = [np.zeros((4, 3), np.float32)], [np.ones((4, 3), np.float32)]
    wrong = [[np.zeros(3, np.float32)]] * 3
    for name in ("alie", "ipm"):
        with pytest.raises(AttackError, match=r"honest_updates\[0\] has array shapes \[\(3,\)\], the attacker's model \[\(4, 3\)\]"):
            attacker_update(make_attack(name), AttackContext(round=0, trained=trained, reference=reference, honest_updates=wrong))
    ints = [np.array([1, -1, 2], dtype=np.int64)]
    out = attacker_update(make_attack("sign_flip", scale=0.6), AttackContext(round=0, trained=ints, reference=[np.zeros(3, np.int64)]))
    assert out[0].tolist() == [-1, 1, -1] and out[0].dtype == np.int64  # -0.6, 0.6, -1.2 rounded


def test_on_off_names_the_inner_field_at_fault_and_refuses_an_inner_that_never_attacks() -> None:
    """An outside probe (2026-12-07): a bad inner parameter was reported as attack.params.scale
    (on_off has no such field), and inner = "none" ran "attackers" that were honest peers."""
    from bdfl.config import ConfigError, load_config
    from bdfl.experiment.setup import preflight

    cases = {("inner_params", "scale"): "attack.params.inner_params.scale", ("inner", None): "attack.params.inner"}
    for (key, sub), field in cases.items():
        params = {"inner": "sign_flip", "inner_params": {"scale": -1.0}} if sub else {"inner": "none"}
        with pytest.raises(ConfigError) as info:
            preflight(load_config(None, {"attack.name": "on_off", "attack.params": params}))
        assert info.value.field == field, key
    with pytest.raises(ConfigError) as info:
        preflight(load_config(None, {"attack.name": "on_off", "attack.params": {"inner": "none"}}))
    assert "never attacks" in str(info.value) and "none" not in (info.value.fix or "").split(", ")
    # an optional parameter says how to give None: by leaving it out (TOML and --set cannot write it)
    with pytest.raises(ConfigError) as info:
        preflight(load_config(None, {"attack.name": "alie", "attack.params": {"z": "abc"}}))
    assert info.value.field == "attack.params.z" and "or left out (None)" in str(info.value)
