"""Plugins: a user's own attack, strategy and detector, registered by a module the config lists
(bdfl.plugins, docs/extending.md), reach every process of a run and its config.toml."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from bdfl.attacks import ATTACKS, Attack, register
from bdfl.config import load_config
from bdfl.defense import STRATEGIES, Strategy
from bdfl.defense import register as register_strategy
from bdfl.defense.detectors import REGISTRY, build_detectors
from bdfl.defense.detectors import register as register_detector
from bdfl.errors import ConfigError
from bdfl.experiment.setup import audited, preflight

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "experiments" / "plugins" / "example_plugin.py"
USE = {"attack.name": "reverse_noise", "defense.name": "audited_trimmed", "defense.params": {"trim": 1},
       "defense.detectors.plugins": {"negative_cosine": {"k": 3.0}}}


@pytest.fixture
def registries() -> Iterator[None]:
    """Registrations made by a test are undone after it (the built-in registries stay exact), and
    the modules that made them forgotten, so that the next test's import registers again."""
    saved = [(reg, dict(reg)) for reg in (ATTACKS, STRATEGIES, REGISTRY)]
    modules = set(sys.modules)
    yield
    for reg, content in saved:
        reg.clear()
        reg.update(content)
    for name in set(sys.modules) - modules:
        if name.startswith("bdfl_plugin_") or name == "mylab_attacks":
            del sys.modules[name]


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
    class Nameless(Strategy):
        def aggregate(self, updates, weights=None):  # type: ignore[no-untyped-def]
            return updates[0]

    with pytest.raises(TypeError, match="not a Strategy subclass with a name"):
        register_strategy(Nameless)
    with pytest.raises(TypeError, match="not a Detector subclass"):
        register_detector(Nameless)  # a strategy is not a detector

    class MySignFlip(Attack):
        name = "sign_flip"  # a built-in's name

    with pytest.raises(ValueError, match="attack name 'sign_flip' registered twice"):
        register(MySignFlip)
    assert register(ATTACKS["sign_flip"]) is ATTACKS["sign_flip"]  # the same class again: a module imported twice
