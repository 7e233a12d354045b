"""Configuration: typed, validated, every bad value named with its allowed range."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bdfl.config import ExperimentConfig, dump_toml, from_dict, load_config
from bdfl.errors import BDFLError, ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_default_config_file_loads() -> None:
    cfg = load_config(ROOT / "experiments" / "configs" / "default.toml")
    assert cfg.peers == 20 and cfg.attack.name == "label_flip" and cfg.num_attackers == 6


def test_every_shipped_config_loads() -> None:
    for path in sorted((ROOT / "experiments" / "configs").glob("*.toml")):
        if path.name.startswith("sweep_"):
            continue
        assert isinstance(load_config(path), ExperimentConfig), path


@pytest.mark.parametrize(
    ("data", "field", "allowed"),
    [
        ({"attack": {"name": "label_flip", "fraction": 1.0}}, "attack.fraction", "[0, 1)"),
        ({"attack": {"name": "label_flip", "fraction": -0.1}}, "attack.fraction", "[0, 1)"),
        ({"rounds": 0}, "rounds", "[1, 100000]"),
        ({"peers": 5, "protocol": {"committee_size": 6}}, "protocol.committee_size", "[2, 5]"),
        ({"chain": {"backend": "ganache"}}, "chain.backend", "anvil, hardhat, url"),
        ({"task": {"partition": "shards"}}, "task.partition", "iid, dirichlet"),
        ({"bogus": 1}, "bogus", None),
        ({"peers": "20"}, "peers", None),
        ({"peers": True}, "peers", None),
        ({"task": {"alpha": float("nan")}}, "task.alpha", None),
        ({"protocol": {"auditors_per_update": 3, "quorum": 4}}, "protocol.quorum", "[1, 3]"),
    ],
)
def test_bad_values_name_the_field(data: dict, field: str, allowed: str | None) -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    assert info.value.field == field
    assert info.value.exit_code == 2
    assert f"'{field}'" in str(info.value)
    if allowed:
        assert allowed in str(info.value)


def test_overrides_apply_dotted_keys() -> None:
    cfg = load_config(None, {"peers": 8, "attack.name": "sign_flip", "attack.fraction": 0.25})
    assert cfg.peers == 8 and cfg.attack.name == "sign_flip" and cfg.num_attackers == 2


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("peers = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_dump_round_trips(tmp_path: Path) -> None:
    cfg = load_config(ROOT / "experiments" / "configs" / "default.toml", {"seed": 7})
    text = dump_toml(cfg)
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert load_config(path) == cfg


_values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.text(max_size=8), st.lists(st.integers(), max_size=2))
_keys = st.sampled_from(["peers", "rounds", "seed", "name", "workers", "task", "attack", "chain", "protocol", "zzz"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, st.one_of(_values, st.dictionaries(st.sampled_from(["alpha", "fraction", "name", "backend", "quorum", "x"]), _values, max_size=3)), max_size=4))
def test_config_loader_fuzz_only_raises_config_errors(data: dict) -> None:
    """Arbitrary TOML-like tables: either a valid config or a ConfigError, never a crash."""
    try:
        cfg = from_dict({k: v for k, v in data.items() if v is not None})
    except BDFLError as exc:
        assert isinstance(exc, ConfigError)
    else:
        assert isinstance(cfg, ExperimentConfig)
