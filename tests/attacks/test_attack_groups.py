"""Several attack kinds in one run: ``[[attack.groups]]`` validated up front, attackers
assigned to groups by seed (deterministic), each built with its group's attack."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bdfl.config import dump_toml, from_dict, load_config
from bdfl.errors import ConfigError
from bdfl.experiment.results import Run
from bdfl.experiment.setup import attacker_groups, attacker_indices, make_attack_for, preflight

GROUPS = """
peers = 20
seed = 3
[[attack.groups]]
name = "min_max"
fraction = 0.15
[[attack.groups]]
name = "sign_flip"
fraction = 0.1
params = { scale = 2.0 }
[[attack.groups]]
name = "lazy_auditor"
fraction = 0.05
params = { mode = "abstain" }
"""


def _cfg(text: str = GROUPS, **top: object):
    data = tomllib.loads(text)
    data.update(top)
    return from_dict(data)


def test_groups_split_the_seeded_attackers_deterministically() -> None:
    cfg = _cfg()
    assert cfg.num_attackers == 3 + 2 + 1
    groups = attacker_groups(cfg)
    assert sorted(groups) == attacker_indices(cfg)
    assert sorted(groups.values()) == [0, 0, 0, 1, 1, 2]
    assert attacker_groups(_cfg()) == groups  # same seed, same assignment
    assert any(attacker_groups(_cfg(seed=s)) != groups for s in range(4, 8))  # the seed decides
    kinds = {i: make_attack_for(cfg, i) for i in groups}
    assert {i: a.name for i, a in kinds.items()} == {i: ("min_max", "sign_flip", "lazy_auditor")[g] for i, g in groups.items()}
    assert all(a.scale == 2.0 for a in kinds.values() if a.name == "sign_flip")
    assert all(a.abstains(0) for a in kinds.values() if a.name == "lazy_auditor")
    preflight(cfg)  # names and params resolve
    # the resolved config (results folders' config.toml) reads back the same
    assert from_dict(tomllib.loads(dump_toml(cfg))).attack.groups == cfg.attack.groups


def test_single_attack_unchanged() -> None:
    cfg = load_config(None, {"peers": 20, "seed": 3})
    assert cfg.attack.groups == () and attacker_groups(cfg) == {}
    assert cfg.num_attackers == 6 and make_attack_for(cfg, attacker_indices(cfg)[0]).name == "label_flip"


@pytest.mark.parametrize("text,field", [
    ('[[attack.groups]]\nfraction = 0.2', "attack.groups[0].name"),
    ('[[attack.groups]]\nname = "none"\nfraction = 0.2', "attack.groups[0].name"),
    ('[[attack.groups]]\nname = "alie"\nfraction = 0.01', "attack.groups[0].fraction"),
    ('[[attack.groups]]\nname = "alie"\nfraction = 0.6\n[[attack.groups]]\nname = "ipm"\nfraction = 0.45', "attack.groups"),
    ('[attack]\nparams = { z = 1.0 }\n[[attack.groups]]\nname = "alie"\nfraction = 0.2', "attack.params"),
    ('[[attack.groups]]\nname = "alie"\nfraction = 0.2\ncolour = 1', "attack.groups[0].colour"),
])
def test_bad_groups_name_the_field(text: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        _cfg("peers = 20\n" + text)
    assert field in str(info.value)


@pytest.mark.parametrize("text,field", [
    ('[[attack.groups]]\nname = "minmax"\nfraction = 0.2', "attack.groups[0].name"),
    ('[[attack.groups]]\nname = "min_max"\nfraction = 0.2\nparams = { perturbation = "huge" }', "attack.groups[0].params.perturbation"),
])
def test_preflight_checks_group_attacks(text: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        preflight(_cfg("peers = 20\n" + text))
    assert field in str(info.value)


def test_a_bad_attack_parameter_is_named_and_the_valid_ones_listed() -> None:
    """An outside probe: the field was 'attack.params' and an unknown parameter's list of valid ones was lost."""
    with pytest.raises(ConfigError) as info:
        preflight(_cfg('peers = 20\n[attack]\nname = "scaling"\nfraction = 0.2\nparams = { scale = 2.0 }'))
    assert info.value.field == "attack.params.scale" and info.value.fix and "parameters of 'scaling'" in info.value.fix
    with pytest.raises(ConfigError) as info:
        preflight(_cfg('peers = 20\n[attack]\nname = "sign_flip"\nfraction = 0.2\nparams = { scale = "big" }'))
    assert info.value.field == "attack.params.scale"


@pytest.mark.parametrize("text,field,says", [
    ('[[attack.groups]]\nname = "backdoor"\nfraction = 0.2\nparams = { target_label = 10 }', "attack.groups[0].params", "num_classes 10"),
    ('[attack]\nname = "backdoor"\nfraction = 0.2\nparams = { trigger_size = 9 }', "attack.params", "exceeds the image"),
    ('[attack]\nname = "label_flip"\nfraction = 0.2\nparams = { mode = "permutation", mapping = [0, 2, 1] }', "attack.params", "need 10"),
    ('[task]\nclient = "clients.seattle_weather"\n[attack]\nname = "backdoor"\nfraction = 0.2', "attack.params", "image inputs"),
])
def test_preflight_tries_the_attacks_data_poisoning_on_the_task(text: str, field: str, says: str) -> None:
    """Parameters that fit no data of the task stop the run before any process starts (exit 2,
    the field named), not in the first attacker's worker after the devnet started."""
    with pytest.raises(ConfigError) as info:
        preflight(_cfg("peers = 20\n" + text))
    assert field in str(info.value) and says in str(info.value)
    preflight(_cfg('peers = 20\n[attack]\nname = "backdoor"\nfraction = 0.2\nparams = { target_label = 9 }'))  # fits: passes


def test_results_label_a_run_with_groups_by_its_kinds() -> None:
    cfg = _cfg().to_dict()
    run = Run(dir=Path("x"), config_text="", config=cfg, metrics=[], rounds=[], summary=None)
    assert run.attack == "min_max+sign_flip+lazy_auditor" and run.fraction == pytest.approx(0.3)
    single = Run(dir=Path("x"), config_text="", config=load_config(None, {}).to_dict(), metrics=[], rounds=[], summary=None)
    assert single.attack == "label_flip" and single.fraction == pytest.approx(0.3)
