"""Plugins: a user's own attack, strategy and detector, registered by a module the config lists
(bdfl.plugins, docs/extending.md), reach every process of a run and its config.toml."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bdfl.attacks import ATTACKS, Attack, register
from bdfl.config import DetectorConfig, load_config
from bdfl.defense import Strategy
from bdfl.defense import register as register_strategy
from bdfl.defense.aggregate import AggregationError
from bdfl.defense.detectors import Detector, build_detectors, run_detectors
from bdfl.defense.detectors import register as register_detector
from bdfl.errors import BDFLError, ConfigError
from bdfl.experiment.setup import audited, preflight

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "experiments" / "plugins" / "example_plugin.py"
USE = {"attack.name": "reverse_noise", "defense.name": "audited_trimmed", "defense.params": {"trim": 1},
       "defense.detectors.plugins": {"negative_cosine": {"k": 3.0}}}


def test_preflight_imports_the_plugins_and_checks_their_names(registries: None) -> None:
    with pytest.raises(ConfigError, match="attack.name.*unknown attack 'reverse_noise'"):
        preflight(load_config(None, USE))  # nothing imported the plugin
    cfg = preflight(load_config(None, {**USE, "plugins": [str(EXAMPLE)]}))
    assert cfg.plugins == (str(EXAMPLE),)  # a file the config lists: not added twice
    assert audited(cfg)  # the plugin's strategy says audited: the committee audits (not the name "bdfl")
    assert [d.name for d in build_detectors(cfg.defense.detectors)][-1] == "negative_cosine"
    with pytest.raises(ConfigError, match="defense.params.*no parameter 'trims'"):
        preflight(load_config(None, {**USE, "plugins": [str(EXAMPLE)], "defense.params": {"trims": 1}}))
    with pytest.raises(ConfigError, match=r"defense.params.*\[defense.krum\]"):
        preflight(load_config(None, {"defense.name": "krum", "defense.params": {"malicious": 1}}))
    with pytest.raises(ConfigError, match="defense.detectors.plugins.negative_cosin.*no detector 'negative_cosin'.*negative_cosine"):
        preflight(load_config(None, {**USE, "plugins": [str(EXAMPLE)],
                                     "defense.detectors.plugins": {"negative_cosin": {}}}))
    with pytest.raises(ConfigError, match="plugins.*plugin file .*missing.py does not exist"):
        preflight(load_config(None, {"plugins": ["missing.py"]}))


def test_a_relative_plugin_file_is_kept_by_its_absolute_path(registries: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """config.toml is rerun from any folder, and a sweep's points import the same file."""
    monkeypatch.chdir(ROOT)
    cfg = preflight(load_config(None, {**USE, "plugins": ["experiments/plugins/example_plugin.py"]}))
    assert cfg.plugins == (str(EXAMPLE),)


def test_a_class_no_worker_can_import_is_refused_before_the_run(registries: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered from ``python -c`` or a notebook: a worker process would not know the name (it
    failed in the worker after the devnet started); refused by preflight, naming the fix."""
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))  # no __file__: interactive

    class Interactive(Attack):
        name = "interactive_attack"

    Interactive.__module__ = "__main__"
    register(Interactive)
    with pytest.raises(ConfigError, match="attack.name.*interactive session") as exc:
        preflight(load_config(None, {"attack.name": "interactive_attack"}))
    assert "plugins" in str(exc.value)


def test_a_module_the_caller_imported_is_added_to_the_plugins(registries: None, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``import mylab_attacks`` in a script, then run: the workers import it too, and config.toml says so."""
    (tmp_path / "mylab_attacks.py").write_text(
        "from bdfl.attacks import Attack, register\n\n@register\nclass Mine(Attack):\n    name = 'mylab_mine'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("mylab_attacks")
    cfg = preflight(load_config(None, {"attack.name": "mylab_mine"}))
    assert cfg.plugins == ("mylab_attacks",)


def test_a_run_uses_every_plugin_in_its_workers_and_reproduces_from_config_toml(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--peers", "6", "--rounds", "2", "--set", "task.local_epochs=1", "--attackers", "0.34",
            "--plugin", str(EXAMPLE), "--attack", "reverse_noise", "--defense", "audited_trimmed",
            "--set", "defense.params.trim=1", "--set", "defense.detectors.plugins.negative_cosine.k=3"]
    proc = subprocess.run([sys.executable, "-m", "bdfl", "run", *args, "--out", str(out), "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["defense"] == "audited_trimmed" and summary["audited"] is True and summary["attack"] == "reverse_noise"
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "VotesRevealed" for e in events)  # audited: the committee voted
    failed = [f for e in events if e["event"] == "AuditRejected" for f in e["args"]["failed"]]
    assert "negative_cosine" in failed  # the plugin's detector voted in the workers
    config = (out / "config.toml").read_text()
    assert str(EXAMPLE) in config and 'name = "reverse_noise"' in config
    again = subprocess.run([sys.executable, "-m", "bdfl", "run", "--config", str(out / "config.toml"), "--out",
                            str(tmp_path / "again"), "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "again" / "metrics.csv").read_text() == (out / "metrics.csv").read_text()


def test_a_registry_refuses_what_it_cannot_name_and_a_taken_name(registries: None) -> None:
    @dataclass(frozen=True)
    class Nameless(Strategy):
        def aggregate(self, updates, weights=None):  # type: ignore[no-untyped-def]
            return updates[0]

    with pytest.raises(TypeError, match="not a Strategy subclass with a name"):
        register_strategy(Nameless)
    with pytest.raises(TypeError, match="not a Detector subclass"):
        register_detector(Nameless)  # a strategy is not a detector

    class NotADataclass(Strategy):  # its parameter would not reach the peers (a probe: scale 5 ran as 1)
        name = "not_a_dataclass"

        def __init__(self, scale: float = 1.0) -> None:
            object.__setattr__(self, "scale", scale)

        def aggregate(self, updates, weights=None):  # type: ignore[no-untyped-def]
            return updates[0]

    with pytest.raises(TypeError, match="must be a frozen dataclass itself"):
        register_strategy(NotADataclass)

    class Unnamed(Attack):  # Attack's own name is "base"
        pass

    with pytest.raises(TypeError, match="with a name of its own"):
        register(Unnamed)

    class Family(Detector):
        name = "odd_family"
        evidence_family = "nonsense"

        def judge(self, ev):  # type: ignore[no-untyped-def]
            return [None] * len(ev.valid)

    with pytest.raises(TypeError, match="evidence family 'nonsense'"):
        register_detector(Family)

    class MySignFlip(Attack):
        name = "sign_flip"  # a built-in's name

    with pytest.raises(ValueError, match="attack name 'sign_flip' registered twice"):
        register(MySignFlip)
    assert register(ATTACKS["sign_flip"]) is ATTACKS["sign_flip"]  # the same class again: a module imported twice


SCRIPT = """
import sys
from bdfl.attacks import Attack, register
from bdfl.config import load_config
from bdfl.experiment.setup import preflight
from bdfl.plugins import load_plugins


@register
class ScriptAttack(Attack):
    name = "script_attack"


if __name__ == "__main__":
    cfg = preflight(load_config(None, {"attack.name": "script_attack"}))
    print(cfg.plugins[0] == __file__)
    load_plugins(cfg.plugins)  # what a spawned worker does after importing this script as __mp_main__
    print("imported again without 'registered twice'")
"""


def test_a_script_that_registers_is_recorded_as_a_plugin(tmp_path: Path) -> None:
    """A class defined in the running script: the run worked (spawned workers re-import the script)
    but config.toml listed no plugin, so its rerun, and a Ray actor, did not know the name."""
    script = tmp_path / "my_experiment.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["True", "imported again without 'registered twice'"]


def test_a_plugins_parameters_are_checked_before_the_run(registries: None) -> None:
    """NaN from TOML and a value of the wrong type passed validation and failed after the devnet
    started (a raw ValueError, a NumPy traceback)."""
    with pytest.raises(ConfigError, match="defense.params.trim': expected a finite number, got nan"):
        load_config(None, {**USE, "defense.params": {"trim": float("nan")}})
    with pytest.raises(ConfigError, match="defense.params.trim': expected an integer, got 'abc'"):
        preflight(load_config(None, {**USE, "plugins": [str(EXAMPLE)], "defense.params": {"trim": "abc"}}))


@dataclass(frozen=True)
class _Broken(Strategy):
    name = "broken"
    mode: str = "dtype"

    def aggregate(self, updates, weights=None):  # type: ignore[no-untyped-def]
        own = updates[0]
        if self.mode == "dtype":
            return [a.astype(np.float16) for a in own]
        if self.mode == "nan":
            return [np.full_like(a, np.nan) for a in own]
        return tuple(a.tolist() for a in own)


@pytest.mark.parametrize(("mode", "said"), [
    ("dtype", "defense 'broken' returned array 0 with shape (2, 2) and dtype float16, the model's is (2, 2) float32"),
    ("nan", "defense 'broken' returned NaN or inf from finite models"),
    ("list", "defense 'broken' returned tuple of 1 entries instead of a list of 1 NumPy arrays"),
])
def test_a_strategys_result_is_held_to_the_model(mode: str, said: str) -> None:
    """A plugin strategy's wrong dtype was blamed on the task's next fit; NaN ran on to "completed"."""
    own = [np.ones((2, 2), dtype=np.float32)]
    with pytest.raises(AggregationError, match=re.escape(said)):
        _Broken(mode=mode).combine(own, [[np.zeros((2, 2), dtype=np.float32)]])


class _Raising(Detector):
    name = "raising"

    def judge(self, ev):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("oops")


class _Short(Detector):
    name = "short"

    def judge(self, ev):  # type: ignore[no-untyped-def]
        return []


def test_a_detector_that_raises_or_miscounts_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """It was blamed on the task's evaluate, or judged some candidates silently."""
    ev = types.SimpleNamespace(valid=[True, True, True])
    with pytest.raises(BDFLError, match="detector 'raising' raised ZeroDivisionError: oops"):
        run_detectors([_Raising(DetectorConfig())], ev)  # type: ignore[arg-type]
    with pytest.raises(BDFLError, match="detector 'short' returned 0 entries for 3 candidates"):
        run_detectors([_Short(DetectorConfig())], ev)  # type: ignore[arg-type]


def test_a_built_in_detector_that_raises_is_not_blamed_on_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """A built-in detector's error told the user to "fix the detector's judge (docs/extending.md)", code
    they never wrote (an outside probe: a percentage accuracy made ``accuracy`` raise)."""
    from bdfl.defense.detectors.loss import LossDetector

    def broken(self, ev):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
        raise ValueError("math domain error")

    monkeypatch.setattr(LossDetector, "judge", broken)
    with pytest.raises(BDFLError) as err:
        run_detectors([LossDetector(DetectorConfig())], types.SimpleNamespace(valid=[True]))  # type: ignore[arg-type]
    assert str(err.value).startswith("built-in detector 'loss' raised ValueError: math domain error")
    assert err.value.fix is not None and "report it" in err.value.fix and "extending.md" not in err.value.fix
    with pytest.raises(BDFLError) as err:
        run_detectors([_Raising(DetectorConfig())], types.SimpleNamespace(valid=[True]))  # type: ignore[arg-type]
    assert str(err.value).startswith("detector 'raising'") and "extending.md" in (err.value.fix or "")
