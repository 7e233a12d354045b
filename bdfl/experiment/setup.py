"""Deterministic experiment set-up shared by the orchestrator and its workers.

Everything here is a pure function of the configuration (and its seed), so every
worker process computes the same data split and the same attacker set, and a
re-run of ``config.toml`` reproduces them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from bdfl.attacks import ATTACKS, make_attack
from bdfl.chain.deploy import ProtocolParams
from bdfl.config import ExperimentConfig, group_size
from bdfl.defense import STRATEGIES, check_defense, strategy_class
from bdfl.defense.detectors import plugin_detector_class
from bdfl.errors import BDFLError, ConfigError
from bdfl.experiment.results import load_clean_reference
from bdfl.learning.data import task_shard_indices
from bdfl.learning.task import load_task
from bdfl.net.overlay import KINDS as TOPOLOGIES
from bdfl.plugins import PLUGIN_MODULE_PREFIX, TASK_MODULE_PREFIX, load_plugins, module_spec_of


#: Training samples an attack's data poisoning is tried on before a run starts (:func:`preflight`):
#: every class of the bundled tasks, and no copy of a large data set.
PREFLIGHT_SAMPLES = 2048


def defenses() -> tuple[str, ...]:
    """Every ``defense.name``: ``bdfl`` (audited), the baselines, then what plugins registered."""
    return tuple(STRATEGIES)


def audited(cfg: ExperimentConfig) -> bool:
    """Whether the run's strategy combines only updates approved on chain (``Strategy.audited``):
    ``bdfl``, or a plugin's strategy that says so. Then the committee audits every round."""
    return strategy_class(cfg.defense.name).audited


def _plugin_classes(cfg: ExperimentConfig) -> list[tuple[str, type]]:
    """(field, class) of every registered class the config names: attacks, the strategy, plugin detectors."""
    names = [(f"attack.groups[{i}].name", g.name) for i, g in enumerate(cfg.attack.groups)] or [("attack.name", cfg.attack.name)]
    out: list[tuple[str, type]] = [(f, ATTACKS[n]) for f, n in names if n in ATTACKS]
    if cfg.defense.name in STRATEGIES:
        out.append(("defense.name", STRATEGIES[cfg.defense.name]))
    out += [(f"defense.detectors.plugins.{n}", plugin_detector_class(n)) for n in cfg.defense.detectors.plugins]
    return out


def with_plugins(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` with ``plugins`` completed by every module that defines a class the config names
    (an attack, strategy or detector registered by code the caller imported, e.g. a script's
    ``import mylab.attacks``), ``.py`` files by absolute path: the run's workers (spawned
    processes, Ray actors) import exactly these, and ``config.toml`` records them, so the run reproduces from it. A class defined where
    no other process can import it (``python -c``, a notebook) is refused here, before any
    process starts, not in a worker after the devnet started."""
    # a .py plugin by its absolute path: the workers, a rerun of config.toml from another folder and
    # a sweep's points all import the same file
    plugins = [str(Path(p).resolve()) if p.endswith(".py") and Path(p).is_file() else p for p in cfg.plugins]
    for field_name, cls in _plugin_classes(cfg):
        module = cls.__module__
        if module.startswith(("bdfl.", PLUGIN_MODULE_PREFIX, TASK_MODULE_PREFIX)):
            continue  # built in, or loaded from a file the config already lists (plugins, task.client)
        spec = module_spec_of(module)
        if spec is None:
            raise ConfigError(field_name, f"{cls.__name__} is defined in an interactive session (python -c, a notebook): "
                              "the run's worker processes cannot import it",
                              fix="define it in a module or .py file and list that in plugins (bdfl run --plugin MODULE; "
                                  "docs/extending.md)")
        if spec and spec not in plugins:
            plugins.append(spec)
    return cfg if plugins == list(cfg.plugins) else dataclasses.replace(cfg, plugins=tuple(plugins))


def preflight(cfg: ExperimentConfig) -> ExperimentConfig:
    """Import the config's plugins and check every name that refers to a registry in an upper
    layer; raise ConfigError. Returns the config to run: ``plugins`` completed (:func:`with_plugins`)."""
    load_plugins(cfg.plugins)
    kinds = [(f"attack.groups[{i}].", g.name, g.params) for i, g in enumerate(cfg.attack.groups)]
    attacks = []  # (field prefix, attack) of each kind, for the data-poisoning try below
    for prefix, name, params in kinds or [("attack.", cfg.attack.name, cfg.attack.params)]:
        if name not in ATTACKS:
            raise ConfigError(prefix + "name", f"unknown attack {name!r}", ", ".join(sorted(ATTACKS)))
        try:
            attacks.append((prefix, make_attack(name, **params)))
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - the attack's own validation message (and fix)
            param = getattr(exc, "param", None)
            raise ConfigError(prefix + "params" + (f".{param}" if param else ""), str(getattr(exc, "message", exc)),
                              fix=getattr(exc, "fix", None)) from None
    strategy = check_defense(cfg.defense, cfg.num_attackers)
    if strategy.audited and cfg.peers < 3:
        raise ConfigError("peers", f"{cfg.peers} peers cannot run an audited defense: an audit needs other candidates to compare with",
                          f">= 3 with defense.name = {cfg.defense.name!r}")
    if cfg.overlay.topology not in TOPOLOGIES:
        raise ConfigError("overlay.topology", f"unknown topology {cfg.overlay.topology!r}", ", ".join(TOPOLOGIES))
    try:
        task = load_task(cfg.task.client)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError("task.client", str(getattr(exc, "message", exc))) from None
    protocol_params(cfg)
    if cfg.task.data_dir and not Path(cfg.task.data_dir).exists():
        raise ConfigError("task.data_dir", f"{cfg.task.data_dir} does not exist")
    if cfg.clean_reference:  # read at the end of the run: a bad path must not cost a whole run's drop
        try:
            load_clean_reference(cfg.clean_reference)
        except BDFLError as exc:
            raise ConfigError("clean_reference", exc.message, "a summary.json, or the results folder holding one") from None
    # The split itself: a data set too small for the peer count (or a Dirichlet alpha that
    # leaves peers empty) must stop the run here, not inside a worker after the devnet started.
    try:  # the task's own data first: a bad data set is the task's fault, not the split's
        dataset = task.load_dataset(cfg.task.data_dir or None)
    except Exception as exc:  # noqa: BLE001 - its message (and fix) name the cause
        raise ConfigError("task.data_dir" if cfg.task.data_dir else "task.client",
                          f"{cfg.task.client}'s load_dataset failed: {exc}") from None
    # An attack whose parameters fit no data of this task (a target label past the classes, a
    # trigger larger than the image, a pixel trigger on feature rows) fails on the training set's
    # first samples here, as it would in the first attacker's worker after the devnet started.
    for prefix, attack in attacks if cfg.num_attackers else []:
        if not attack.poisons_data:
            continue
        try:
            attack.poison_data(np.asarray(dataset.X_train[:PREFLIGHT_SAMPLES]), np.asarray(dataset.y_train[:PREFLIGHT_SAMPLES]),
                               np.random.default_rng(0), num_classes=dataset.num_classes)
        except Exception as exc:  # noqa: BLE001 - the attack's own message names the value
            raise ConfigError(prefix + "params", f"{cfg.task.client}: {getattr(exc, 'message', exc)}") from None
    try:
        task_shard_indices(dataset.y_train, cfg.task, cfg.peers, cfg.seed)
    except Exception as exc:  # noqa: BLE001 - the partitioner's own message names the numbers
        text = str(getattr(exc, "message", exc))
        field = {"dirichlet": "task.alpha", "iid_sample": "task.samples_per_peer"}.get(cfg.task.partition, "peers")
        # the partitioner's own fix names its min_size, which no config field sets
        fix = (f"a larger task.alpha (now {cfg.task.alpha}), fewer peers, or another seed (the split is drawn from it)"
               if field == "task.alpha" else "fewer peers, or a larger data set")
        raise ConfigError(field, f"cannot split {cfg.task.client}'s data over {cfg.peers} peers: {text}", fix=fix) from None
    return with_plugins(cfg)


def attacker_indices(cfg: ExperimentConfig) -> list[int]:
    """Which peers attack: a seeded sample of ``floor(fraction * peers)`` indices."""
    rng = np.random.default_rng([cfg.seed, 7])
    return sorted(int(i) for i in rng.choice(cfg.peers, size=cfg.num_attackers, replace=False))


def attacker_groups(cfg: ExperimentConfig) -> dict[int, int]:
    """With ``[[attack.groups]]``: attacker index -> its group (position in ``attack.groups``).
    The attackers (:func:`attacker_indices`) in a seeded order, each group taking its
    ``floor(fraction x peers)`` in turn; {} without groups."""
    if not cfg.attack.groups:
        return {}
    order = np.random.default_rng([cfg.seed, 8]).permutation(attacker_indices(cfg))
    out: dict[int, int] = {}
    for g, group in enumerate(cfg.attack.groups):
        for i in order[len(out): len(out) + group_size(group.fraction, cfg.peers)]:
            out[int(i)] = g
    return out


def frozen_clock(cfg: ExperimentConfig) -> bool:
    """A simulation devnet: anvil started here with a frozen clock (no interval mining).
    Its randomness is reproducible, and workers mine each phase's transactions in batches."""
    return cfg.chain.backend == "anvil" and not cfg.chain.block_time


def make_attack_for(cfg: ExperimentConfig, index: int) -> Any:
    """Attacker ``index``'s attack: its group's (``[[attack.groups]]``) or the one ``[attack]``."""
    name, params = cfg.attack.name, dict(cfg.attack.params)
    if cfg.attack.groups:
        group = cfg.attack.groups[attacker_groups(cfg)[index]]
        name, params = group.name, dict(group.params)
    if cfg.attack.colluding_auditors:
        params["colluding_auditors"] = True
    attack = make_attack(name, **params)
    know_policy = getattr(attack, "know_policy", None)
    if callable(know_policy):  # the audit policy is public: the adaptive attacker copies the deployed one
        know_policy(cfg.defense)
    know_rank = getattr(attack, "know_rank", None)
    ranks = attacker_indices(cfg)
    if callable(know_rank) and index in ranks:  # DBA: attacker k stamps part k of the global trigger
        know_rank(ranks.index(index))
    return attack


def peer_data(task: Any, cfg: ExperimentConfig) -> tuple[Any, list[tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]]]:
    """The data set and each peer's (train, val) shard, seeded."""

    dataset = task.load_dataset(cfg.task.data_dir or None)
    y = dataset.y_train
    split = task_shard_indices(y, cfg.task, cfg.peers, cfg.seed)
    return dataset, [((dataset.X_train[tr], y[tr]), (dataset.X_train[va], y[va])) for tr, va in split]


def protocol_params(cfg: ExperimentConfig) -> Any:
    """The contracts' constructor parameters from the [protocol] table (defaults for the rest)."""
    return ProtocolParams.from_config(cfg.protocol)


#: Digits of every simulated endpoint's port. Endpoint URLs are published on chain (join
#: calldata and storage), so their *length* reaches gas; with a constant length, any free
#: port gives the same gas, and two runs (even with the same seed) can share a machine.
PORT_DIGITS = 5


def bind_endpoint(host: Any, port: int = 0, *, bind_host: str = "127.0.0.1", attempts: int = 64, **kwargs: Any) -> Any:
    """Listen on ``port`` if it is given and free, else on any free port of :data:`PORT_DIGITS`
    digits (bind first, then read the port back: no probe-then-bind race with other runs).

    ``host`` is a :class:`bdfl.net.blobserver.BlobHost`; ``kwargs`` go to its ``add_endpoint``.
    The URL's value never reaches a result: the committee draw does not depend on it, and its
    length is constant."""

    if port:
        try:
            return host.add_endpoint(bind_host, port, **kwargs)
        except BDFLError:
            pass  # taken since (e.g. a restart after another process took it): any free port
    rejected = []
    try:
        for _ in range(attempts):
            endpoint = host.add_endpoint(bind_host, 0, **kwargs)
            if len(str(endpoint.port)) == PORT_DIGITS:
                return endpoint
            rejected.append(endpoint)  # held until the end, so the system hands out another
    finally:
        for endpoint in rejected:
            endpoint.close()
    raise BDFLError(f"no free {PORT_DIGITS}-digit port after {attempts} tries",
                    fix="check the ephemeral port range: sysctl net.ipv4.ip_local_port_range (e.g. 32768 60999)")
