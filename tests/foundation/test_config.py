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
        ({"attack": {"name": "mimic", "knowledge": "partial"}}, "attack.knowledge", "omniscient, protocol"),
        ({"rounds": 0}, "rounds", "[1, 100000]"),
        ({"peers": 20_001}, "peers", "[2, 20000]"),
        ({"peers": 5, "overlay": {"degree": 4}, "protocol": {"committee_size": 6}}, "protocol.committee_size", "[2, 5]"),
        ({"chain": {"backend": "ganache"}}, "chain.backend", "anvil, hardhat, url"),
        ({"task": {"partition": "shards"}}, "task.partition", "iid, dirichlet"),
        ({"bogus": 1}, "bogus", None),
        ({"peers": "20"}, "peers", None),
        ({"peers": True}, "peers", None),
        ({"task": {"alpha": float("nan")}}, "task.alpha", None),
        ({"protocol": {"auditors_per_update": 3, "quorum": 4}}, "protocol.quorum", "[1, 3]"),
        ({"protocol": {"reject_percent": 40}}, "protocol.reject_percent", "[50, 99]"),
        ({"protocol": {"approve_percent": 100}}, "protocol.approve_percent", "[50, 99]"),
        ({"defense": {"bdfl": {"weighting": "samples"}}}, "defense.bdfl.weighting", "reputation, reputation_samples"),
        ({"defense": {"replay_window": -1}}, "defense.replay_window", "[0, 1000]"),
        ({"defense": {"consistency_window": 7}}, "defense.consistency_window", "[0, 6]"),
        ({"defense": {"detectors": {"consistency": {"k": 0}}}}, "defense.detectors.consistency.k", "(0, 100]"),
        ({"defense": {"detectors": {"min_candidates": 2}}}, "defense.detectors.min_candidates", "[3, 1000]"),
        ({"defense": {"detectors": {"trigger": {"patterns": 0}}}}, "defense.detectors.trigger.patterns", "[1, 256]"),
        ({"defense": {"detectors": {"trigger": {"inputs": 2.5}}}}, "defense.detectors.trigger.inputs", None),
        ({"defense": {"detectors": {"shift": {"enabled": 1}}}}, "defense.detectors.shift.enabled", None),
        ({"defense": {"detectors": {"merge": {"limit": 1}}}}, "defense.detectors.merge.limit", "enabled, k"),
        ({"defense": {"audit_trigger_limit": 0.9}}, "defense.audit_trigger_limit", "[defense.detectors.trigger] k = ..."),
        ({"defense": {"bdfl": {"max_reject_share": 1.5}}}, "defense.bdfl.max_reject_share", "[0, 1]"),
        ({"defense": {"bdfl": {"dissent_limit": -0.1}}}, "defense.bdfl.dissent_limit", "[0, 1]"),
        ({"defense": {"dissent_limit": 0.5}}, "defense.dissent_limit", "[defense.bdfl] dissent_limit"),
        ({"peers": 10, "overlay": {"degree": 4, "min_sources": 10}}, "overlay.min_sources", "[0, 9]"),
        # an expander of degree 1 is pairs, never connected (it failed in round 1's aggregation before)
        ({"peers": 13, "overlay": {"degree": 1}}, "overlay.degree", "[2, 1024] with overlay.topology = 'expander'"),
        # two peers under the audit: one auditor, one candidate, nothing to calibrate on (every honest update was rejected)
        ({"peers": 2}, "peers", ">= 3 with defense.name = 'bdfl'"),
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


def test_what_those_two_refusals_leave_allowed() -> None:
    assert from_dict({"peers": 13, "overlay": {"degree": 1, "topology": "ring"}}).overlay.degree == 1  # unused by a ring
    assert load_config(None, {"peers": 2, "defense.name": "fedavg", "attack.fraction": 0.0}).peers == 2  # a baseline needs no audit


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


def test_samples_per_peer_belongs_to_iid_sample() -> None:
    cfg = from_dict({"peers": 1000, "task": {"partition": "iid_sample", "samples_per_peer": 12}})
    assert cfg.task.partition == "iid_sample" and cfg.task.samples_per_peer == 12
    assert from_dict({}).task.samples_per_peer == 0  # unused by the other partitions
    for data, allowed in [
        ({"task": {"partition": "iid_sample"}}, "[2, 1000000]"),  # required with iid_sample
        ({"task": {"partition": "iid_sample", "samples_per_peer": 1}}, "[2, 1000000]"),
        ({"task": {"partition": "iid", "samples_per_peer": -1}}, "[0, 1000000]"),
        ({"task": {"samples_per_peer": 5}}, "not used by partition 'dirichlet'"),  # silently unused before
        ({"task": {"partition": "iid_sample", "samples_per_peer": 2.5}}, None),
    ]:
        with pytest.raises(ConfigError) as info:
            from_dict(data)
        assert info.value.field == "task.samples_per_peer", data
        if allowed:
            assert allowed in str(info.value)


def test_iid_sample_split_is_checked_before_the_run() -> None:
    from bdfl.experiment.setup import peer_data, preflight
    from bdfl.learning.task import load_task

    cfg = load_config(None, {"peers": 1000, "task.partition": "iid_sample", "task.samples_per_peer": 10})
    _dataset, shards = peer_data(load_task(cfg.task.client), cfg)  # digits: 1,438 samples, 1,000 peers
    assert len(shards) == 1000 and all(len(tr[1]) + len(va[1]) == 10 for tr, va in shards)
    with pytest.raises(ConfigError) as info:
        preflight(load_config(None, {"peers": 20, "task.partition": "iid_sample", "task.samples_per_peer": 5000}))
    assert info.value.field == "task.samples_per_peer" and "5000" in str(info.value)
    with pytest.raises(ConfigError) as info:  # a Dirichlet split that never gives every peer its minimum
        preflight(load_config(None, {"peers": 100, "task.partition": "dirichlet", "task.alpha": 0.01}))
    assert info.value.field == "task.alpha" and info.value.fix is not None
    assert "a larger task.alpha (now 0.01)" in info.value.fix and "min_size" not in str(info.value)


def test_a_bad_data_set_is_the_tasks_fault_not_the_splits(tmp_path) -> None:  # noqa: ANN001
    """A task whose load_dataset returns float labels stops before any process starts, under
    task.client with the data set's own message and fix (it was reported as a failed split)."""
    from bdfl.experiment.setup import preflight

    task = tmp_path / "float_labels_task.py"
    task.write_text("from bdfl.learning.data import Dataset, load_digits\n"
                    "from clients.digits import make_client  # noqa: F401\n"
                    "def load_dataset(data_dir=None):\n"
                    "    d = load_digits()\n"
                    "    return Dataset('f', d.X_train, d.y_train.astype(float), d.X_test, d.y_test, d.num_classes)\n")
    with pytest.raises(ConfigError) as info:
        preflight(load_config(None, {"task.client": str(task)}))
    assert info.value.field == "task.client"
    assert "load_dataset failed: data set 'f': y_train must hold integer class labels" in str(info.value)
    assert "astype(np.int64)" in str(info.value)


def test_min_stake_below_the_fixed_slash_is_refused_by_its_own_field() -> None:
    """[protocol] cannot set slash_amount (10 tokens in ProtocolParams), so a smaller min_stake
    is refused as protocol.min_stake, not as a slash_amount in base units the user never set."""
    with pytest.raises(ConfigError) as info:
        load_config(None, {"protocol.min_stake": 9, "protocol.entry_fee": 0})
    assert info.value.field == "protocol.min_stake" and info.value.allowed is not None and info.value.allowed.startswith("[10,")
    assert load_config(None, {"protocol.min_stake": 10, "protocol.entry_fee": 0}).protocol.min_stake == 10


def test_an_entry_fee_must_stay_below_the_minimum_stake() -> None:
    """ProtocolParams reverts entryFee >= minStake at deployment: refused here first, naming the field."""
    assert load_config(None, {"protocol.min_stake": 100, "protocol.entry_fee": 99}).protocol.entry_fee == 99
    with pytest.raises(ConfigError) as info:
        load_config(None, {"protocol.min_stake": 100, "protocol.entry_fee": 100})
    assert info.value.field == "protocol.entry_fee" and info.value.allowed == "[0, 99]"


def test_clean_reference_is_checked_before_the_run_and_read_like_bdfl_report(tmp_path: Path) -> None:
    """A clean_reference that cannot be read stops the run up front (it is used only at the
    end); a summary.json or the results folder holding it is read by the run as by the report."""
    from bdfl.experiment.orchestrator import _clean_reference
    from bdfl.experiment.setup import preflight

    for bad in (tmp_path / "missing.json", tmp_path):  # no file; a folder without summary.json
        with pytest.raises(ConfigError) as info:
            preflight(load_config(None, {"clean_reference": str(bad)}))
        assert info.value.field == "clean_reference" and str(bad) in str(info.value)
    (tmp_path / "summary.json").write_text('{"final_honest_accuracy": 0.93}')
    for good in (tmp_path / "summary.json", tmp_path):
        cfg = load_config(None, {"clean_reference": str(good)})
        preflight(cfg)
        assert _clean_reference(cfg) == {"final_honest_accuracy": 0.93}


def test_faults_are_typed_validated_and_round_trip(tmp_path: Path) -> None:
    """[[faults]] entries: each field checked with the field's name and allowed values, the
    peers' timelines checked for overlaps and membership, and the table survives dump/load."""
    # from_dict takes settings as given (no scaling to the peer count): a committee and an
    # overlay degree (the default 8 > peers - 1) that fit 8 peers
    base = {"peers": 8, "rounds": 6, "overlay": {"degree": 4},
            "protocol": {"committee_size": 7, "auditors_per_update": 3, "quorum": 2}}
    good = [
        {"kind": "crash_before_submit", "round": 2, "peer": 1, "rounds": 3},
        {"kind": "crash_after_commit", "round": 3},  # peer -1: a committee member of that round
        {"kind": "slow_endpoint", "round": 2, "peer": 2, "rounds": 1, "delay": 2.5},
        {"kind": "leave", "round": 2, "peer": 4},
        {"kind": "join", "round": 4, "peer": 4},
        {"kind": "join", "round": 3, "peer": 5},  # first membership fault a join: joins late
        {"kind": "drop_endpoint", "round": 5, "peer": 5},  # rounds = 0: until the end
    ]
    cfg = from_dict({**base, "faults": good})
    assert [f.kind for f in cfg.faults] == [g["kind"] for g in good]
    assert cfg.faults[1].peer == -1 and cfg.faults[2].delay == 2.5 and cfg.faults[6].rounds == 0
    path = tmp_path / "c.toml"
    path.write_text(dump_toml(cfg))
    assert load_config(path) == cfg
    kinds = "crash_before_submit, crash_after_submit, crash_after_commit, corrupt_endpoint, slow_endpoint, drop_endpoint, leave, join"
    for faults, field, allowed in [
        ([{"kind": "explode", "round": 1, "peer": 0}], "faults[0].kind", kinds),
        ([{"round": 1, "peer": 0}], "faults[0].kind", kinds),
        ([{"kind": "leave", "round": 0, "peer": 0}], "faults[0].round", "[1, 6]"),
        ([{"kind": "leave", "round": 7, "peer": 0}], "faults[0].round", "[1, 6]"),
        ([{"kind": "leave", "round": 1, "peer": 8}], "faults[0].peer", "[0, 7]"),
        ([{"kind": "drop_endpoint", "round": 1}], "faults[0].peer", "[0, 7]"),  # -1 only for crash_after_commit
        ([{"kind": "crash_before_submit", "round": 1, "peer": 0, "rounds": -1}], "faults[0].rounds", "[0, 6]"),
        ([{"kind": "leave", "round": 2, "peer": 0, "rounds": 1}], "faults[0].rounds", "0"),
        ([{"kind": "slow_endpoint", "round": 2, "peer": 0, "delay": -1.0}], "faults[0].delay", "[0, 3600]"),
        ([{"kind": "drop_endpoint", "round": 2, "peer": 0, "delay": 1.0}], "faults[0].delay", "0"),
        ([{"kind": "leave", "round": 2, "peer": 0, "oops": 1}], "faults[0].oops", None),
        ([{"kind": "leave", "round": "2", "peer": 0}], "faults[0].round", None),
        ([{"kind": "join", "round": 2, "peer": 0}, {"kind": "join", "round": 4, "peer": 0}], "faults[1].kind", "leave"),
        ([{"kind": "leave", "round": 2, "peer": 0}, {"kind": "leave", "round": 4, "peer": 0}], "faults[1].kind", "join"),
        ([{"kind": "leave", "round": 2, "peer": 0}, {"kind": "corrupt_endpoint", "round": 4, "peer": 0}], "faults[1].peer", None),
        ([{"kind": "crash_before_submit", "round": 2, "peer": 0, "rounds": 2}, {"kind": "leave", "round": 3, "peer": 0}], "faults[0].round", None),
        ([{"kind": "crash_before_submit", "round": 2, "peer": 0, "rounds": 2}, {"kind": "slow_endpoint", "round": 3, "peer": 0}], "faults[1].round", None),
        ([{"kind": "join", "round": 2, "peer": i} for i in range(7)], "faults", ">= 2"),
    ]:
        with pytest.raises(ConfigError) as info:
            from_dict({**base, "faults": faults})
        assert info.value.field == field, (faults, str(info.value))
        if allowed:
            assert f"(allowed: {allowed})" in str(info.value), str(info.value)
    for bad, field in [({"faults": {"kind": "leave"}}, "faults"), ({"faults": [3]}, "faults[0]")]:
        with pytest.raises(ConfigError) as info:
            from_dict({**base, **bad})
        assert info.value.field == field
    with pytest.raises(ConfigError) as info:
        from_dict({**base, "defense": {"name": "median"}, "faults": [{"kind": "crash_after_commit", "round": 2}]})
    assert info.value.field == "faults[0].kind" and "bdfl" in str(info.value)
    for net, field in [({"fetch_timeout": 0}, "net.fetch_timeout"), ({"fetch_retries": 11}, "net.fetch_retries")]:
        with pytest.raises(ConfigError) as info:
            from_dict({**base, "net": net})
        assert info.value.field == field


def test_a_partial_detector_table_keeps_that_detectors_own_defaults() -> None:
    """[defense.detectors.shift] enabled = false must not reset shift's k (3) to the generic
    detector default (4): fields a table leaves out keep the enclosing field's defaults."""
    defaults = ExperimentConfig().defense.detectors
    assert defaults.shift.k != defaults.loss.k  # the premise: shift has its own default k
    cfg = from_dict({"defense": {"detectors": {"shift": {"enabled": False}, "trigger": {"patterns": 8}}}})
    assert cfg.defense.detectors.shift.enabled is False
    assert cfg.defense.detectors.shift.k == defaults.shift.k
    assert cfg.defense.detectors.trigger.patterns == 8
    assert (cfg.defense.detectors.trigger.k, cfg.defense.detectors.trigger.inputs) == (defaults.trigger.k, defaults.trigger.inputs)


def test_a_grid_points_error_names_its_field_once(tmp_path) -> None:  # noqa: ANN001
    """A sweep's bad point: one 'config field' prefix, then the point, then the cause (the
    inner error's prefix used to be repeated inside the message)."""
    from bdfl.experiment.sweep import expand

    grid = tmp_path / "g.toml"
    grid.write_text('name = "x"\n[grid]\nseed = [1]\n"defense.name" = ["nope"]\n')
    with pytest.raises(ConfigError) as info:
        expand(grid)
    text = str(info.value)
    assert text.count("config field") == 1 and info.value.field == "defense.name"
    assert "in grid point {'seed': 1, 'defense.name': 'nope'}: unknown defense 'nope'" in text


@pytest.mark.parametrize("peers", [3, 7, 9, 1000])
def test_a_fraction_that_rounds_down_to_no_attacker_says_both_ways_out(peers: int) -> None:
    """`bdfl run --peers 3` met the library's default 0.3 attackers (0 of 3) with a refusal that
    named no way out (an outside probe); the fix names --attack none and a fraction that gives
    one attacker, and that fraction does."""
    with pytest.raises(ConfigError) as info:
        load_config(None, {"peers": peers, "attack.fraction": 0.9 / peers})
    fix = info.value.fix or ""
    assert "--attack none" in fix
    fraction = float(fix.split("--attackers ")[1].split()[0])
    assert load_config(None, {"peers": peers, "attack.fraction": fraction}).num_attackers == 1


def test_a_chain_that_is_a_url_of_another_scheme_is_called_one() -> None:
    """`--chain ftp://x` was "unknown backend 'ftp://x' (allowed: anvil, hardhat, url)": the user
    did pass a URL (an outside probe)."""
    with pytest.raises(ConfigError, match=r"'ftp://x' is not an http\(s\) URL \(allowed: http\(s\)://HOST:PORT, anvil or hardhat\)"):
        load_config(None, {"chain.backend": "ftp://x"})
    with pytest.raises(ConfigError, match="unknown backend 'ganache'"):
        load_config(None, {"chain.backend": "ganache"})
