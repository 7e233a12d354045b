"""Typed, validated experiment configuration.

A configuration is a TOML file (see ``experiments/configs/``) plus command-line
overrides. :func:`load_config` returns an :class:`ExperimentConfig` in which every
value has been type- and range-checked: a bad value raises :class:`ConfigError`
naming the field and the allowed range *before* any process starts. Names that
refer to registries in upper layers (attacks, defenses, topologies, task modules)
are checked by ``bdfl.experiment.preflight``, also before anything starts.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from bdfl.errors import BDFLError, ConfigError

# The aggregation weightings (bdfl.defense.audited.WEIGHTINGS), repeated here so that
# validating a config does not import the learning layer (torch, flwr);
# tests/defense/test_audited.py checks that the two lists agree.
WEIGHTINGS = ("reputation", "reputation_samples")
# The backdoor clips (bdfl.defense.backdoor_clip.CLIPS), repeated for the same reason.
BACKDOOR_CLIPS = ("off", "band", "norm")

CHAIN_BACKENDS = ("anvil", "hardhat", "url")
#: overlay.degree's largest value: a target degree (an overlay of fewer members is the complete graph)
MAX_OVERLAY_DEGREE = 1024
#: How simulated peers put their update hashes on chain (docs/protocol.md, "Relayed submissions").
SUBMISSION_MODES = ("direct", "relayed")


@dataclass(frozen=True)
class TaskConfig:
    """What is learned: the client module (a Flower NumPyClient task) and its data."""

    client: str = "clients.digits"
    data_dir: str = ""
    partition: str = "dirichlet"
    alpha: float = 0.5
    # partition = "iid_sample" only (a scale-benchmark scheme, overlapping draws:
    # bdfl.learning.data.partition_iid_sample): samples each peer draws; 0 = unused
    samples_per_peer: int = 0
    val_fraction: float = 0.2
    local_epochs: int = 5
    batch_size: int = 10
    learning_rate: float = 0.05
    # FedProx's proximal weight mu (Li et al., MLSys 2020): local training minimises
    # loss + mu/2 * ||w - w_start||^2; every fit config carries it as "proximal_mu" (the key
    # Flower's FedProx strategy sends) and "proximal-mu" (its Message API key); 0 = plain
    # local training. Default 0.1: on MNIST plain training (0) let skewed honest peers drift
    # until they were slashed to zero stake; 0.1 costs about a tenth of the local loss at a
    # well-behaved fit's displacement (docs/learning.md, "Client drift")
    proximal_mu: float = 0.1
    # a fit that returns another dtype than the initial parameters: false = stop the run with
    # one error (the client contract, docs/tasks.md); true = cast to the initial dtype
    cast_dtypes: bool = False


@dataclass(frozen=True)
class AttackGroupConfig:
    """One group of attackers (an ``[[attack.groups]]`` table): attack ``name`` with ``params``
    on ``floor(fraction x peers)`` peers."""

    name: str = ""
    fraction: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AttackConfig:
    """Who attacks and how: a registered attack applied to ``fraction`` of the peers."""

    name: str = "label_flip"
    fraction: float = 0.3
    colluding_auditors: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    # what attacks that use the round's honest updates (ALIE, IPM, Min-Max, Min-Sum, Fang, Mimic,
    # dissensus, adaptive) know: "omniscient" (the papers' worst case: this round's honest updates,
    # read past the endpoints' Submit-phase seal through the simulator's side channel) or
    # "protocol" (only what the protocol serves a member: earlier rounds' updates, as received)
    knowledge: str = "omniscient"
    # several attack kinds in one run, one per group (bdfl.experiment.setup.attacker_groups:
    # seeded); when given, name, fraction and params above are not used
    groups: tuple[AttackGroupConfig, ...] = ()


#: ``attack.knowledge`` values (AttackConfig).
ATTACK_KNOWLEDGE = ("omniscient", "protocol")


# -- each defense strategy's own table: [defense.<name>] (bdfl.defense.<name>) --------------

@dataclass(frozen=True)
class AuditedConfig:
    """``[defense.bdfl]``: the audited strategy (bdfl.defense.audited): which of the updates
    approved on chain a peer aggregates, and how it weighs them."""

    # weigh approved updates by on-chain reputation ("reputation") or by reputation x the
    # submission's on-chain sample count, capped at protocol.max_samples ("reputation_samples")
    weighting: str = "reputation"
    # aggregate an approved update only when at most this share of its revealed votes
    # rejected it (bdfl.defense.audited.clear_approval); 1 = every approved update
    max_reject_share: float = 0.0
    # for that filter, leave out the votes of committee seats that voted against the
    # on-chain outcome on more than this share of the round's decided updates they judged
    # (colluding auditors vetoing honest updates: bdfl.learning.votes); 1 = count every vote
    dissent_limit: float = 0.5
    # backdoor mitigation on the approved models before the average (bdfl.defense.backdoor_clip):
    # "band" clips each coordinate to the models' median +- clip_k x 1.4826 x MAD (what only a
    # minority moved goes back to the majority's value), "norm" each model's distance from the
    # coordinate median to clip_k x the median distance, "off" none (docs/results/robustness.md,
    # "Backdoor (engineer B)")
    clip: str = "off"
    clip_k: float = 1.0


@dataclass(frozen=True)
class KrumConfig:
    """``[defense.krum]``: Krum's f."""

    malicious: int = -1  # attackers assumed; -1: the run's attacker count (bdfl peer: 0)


@dataclass(frozen=True)
class MultiKrumConfig:
    """``[defense.multikrum]``: f, and how many of the best Krum scores are averaged."""

    malicious: int = -1  # as [defense.krum]
    keep: int = 0  # 0: n - malicious (at least 1)


@dataclass(frozen=True)
class TrimmedMeanConfig:
    """``[defense.trimmed_mean]``: the share cut at each end of each coordinate."""

    beta: float = 0.2


@dataclass(frozen=True)
class GeometricMedianConfig:
    """``[defense.geometric_median]``: the smoothed Weiszfeld iterations."""

    max_iter: int = 100
    tol: float = 1e-7  # stop when a step moves less than this (relative)


@dataclass(frozen=True)
class CenteredClippingConfig:
    """``[defense.centered_clipping]``: bucketing and the clipping around the own model."""

    bucket_size: int = 2  # models averaged per bucket (1 = no bucketing)
    iterations: int = 3
    tau: float = 0.0  # clipping radius; 0: the models' median distance from the own model


@dataclass(frozen=True)
class NNMTrimmedMeanConfig:
    """``[defense.nnm_trimmed_mean]``: f for the mixing and the trimming."""

    malicious: int = -1  # as [defense.krum]


# -- the audit's detectors: [defense.detectors] and [defense.detectors.<name>] -----------------

@dataclass(frozen=True)
class DetectorConfig:
    """``[defense.detectors.<name>]``: one audit detector (bdfl.defense.detectors.<module>).

    Its threshold is ``centre -/+ k x spread``: the centre a median (of the candidates, or the
    auditor's own score), the spread the larger of the candidates' robust spread (Qn) and the
    sampling error of the auditor's own data, ``k`` widened for few candidates (a prediction
    bound); ``k`` in those spreads is the detector's only setting (docs/learning.md section 4:
    how the defaults were chosen)."""

    enabled: bool = True
    k: float = 4.0


@dataclass(frozen=True)
class TriggerDetectorConfig(DetectorConfig):
    """``[defense.detectors.trigger]``: also the size of the per-audit random trigger family
    (stamps drawn, auditor inputs stamped); its cost is ``patterns x inputs`` predictions
    per candidate."""

    patterns: int = 16
    inputs: int = 32


@dataclass(frozen=True)
class DetectorsConfig:
    """``[defense.detectors]``: the audit's detectors, each with its own table. The median-based
    thresholds need ``min_candidates`` evaluable candidates in an audit (at least 3: the median of
    one candidate is that candidate, so it set its own bar; of two, a bad one pulls it halfway).
    The direction test's top-half consensus needs twice as many in its half
    (:func:`bdfl.defense.audit.top_half_cosines`)."""

    min_candidates: int = 3
    distance: DetectorConfig = field(default_factory=DetectorConfig)
    direction: DetectorConfig = field(default_factory=lambda: DetectorConfig(k=4.0))
    shift: DetectorConfig = field(default_factory=lambda: DetectorConfig(k=3.0))
    no_work: DetectorConfig = field(default_factory=DetectorConfig)
    consistency: DetectorConfig = field(default_factory=DetectorConfig)
    merge: DetectorConfig = field(default_factory=DetectorConfig)
    trigger: TriggerDetectorConfig = field(default_factory=lambda: TriggerDetectorConfig(k=3.0))
    accuracy: DetectorConfig = field(default_factory=DetectorConfig)
    loss: DetectorConfig = field(default_factory=DetectorConfig)
    balanced_accuracy: DetectorConfig = field(default_factory=DetectorConfig)
    # the mean z over three parameter-space measurements (bdfl.defense.detectors.joint; issue 22)
    joint: DetectorConfig = field(default_factory=lambda: DetectorConfig(k=3.0))
    # how far beyond its own bar (z / bar) a detector failing alone must lie to reject: a lone
    # failure needs the evidence of two independent ones at their bars, sqrt(2) for Gaussian tails
    # (bdfl.defense.detectors.calibration.EQUAL_EVIDENCE; 1: any failure rejects; issue 22,
    # docs/results/robustness.md "False rejections")
    corroboration: float = math.sqrt(2)
    # detectors a plugin registered (bdfl.defense.detectors.register; docs/extending.md), each run
    # when named here with its own table: [defense.detectors.plugins.<name>] enabled, k
    plugins: dict[str, Any] = field(default_factory=dict)


#: Keys of a plugin detector's table (``[defense.detectors.plugins.<name>]``) and their defaults.
PLUGIN_DETECTOR_KEYS = {"enabled": True, "k": DetectorConfig.k}


#: The detectors of :class:`DetectorsConfig`, by table name.
DETECTORS = ("distance", "direction", "shift", "no_work", "consistency", "merge", "trigger", "accuracy", "loss",
             "balanced_accuracy", "joint")


@dataclass(frozen=True)
class DefenseConfig:
    """How a peer aggregates: ``bdfl`` (on-chain approved only) or a baseline without audit."""

    name: str = "bdfl"
    # The audit rule (bdfl.defense.audit.AuditRule, docs/learning.md section 4): an update is
    # rejected when two enabled detectors fail it, the joint one does, or one alone by
    # detectors.corroboration x the bar unlimited candidates would set (a bar widened for few
    # candidates counts towards it: bdfl.defense.audit.audit_corroboration). Each threshold is calibrated in
    # every audit from the candidates' spread and the auditor's own data
    # ([defense.detectors.<name>]: enabled, k; bdfl.defense.detectors)
    detectors: DetectorsConfig = field(default_factory=DetectorsConfig)
    # bdfl: which approved updates a peer aggregates and their weights ([defense.bdfl])
    bdfl: AuditedConfig = field(default_factory=AuditedConfig)
    # bdfl: auditors reject an update whose hash was submitted in one of the last
    # replay_window rounds (a replayed model, e.g. a free-rider's copy); 0 = off
    replay_window: int = 3
    # bdfl: auditors rebuild each trainer's start of the round from the previous round's
    # on-chain updates (bdfl.peer.sources.start_recipes) and judge its move from there;
    # false: from the auditor's own start (models differ by more than one update)
    rebuild_starts: bool = True
    # bdfl (with rebuild_starts): how many rounds back auditors look for a trainer's latest
    # not-rejected move (the consistency test, bdfl.peer.sources.MoveHistory); 0 = off. At most
    # 6: a peer's blob server keeps its last 8 updates, and that move needs the round before it
    consistency_window: int = 5
    # the parameters of a strategy a plugin registered (its dataclass fields; the built-in
    # strategies take theirs from their own tables below)
    params: dict[str, Any] = field(default_factory=dict)
    # the baselines' own tables (bdfl.defense: one strategy per module)
    krum: KrumConfig = field(default_factory=KrumConfig)
    multikrum: MultiKrumConfig = field(default_factory=MultiKrumConfig)
    trimmed_mean: TrimmedMeanConfig = field(default_factory=TrimmedMeanConfig)
    geometric_median: GeometricMedianConfig = field(default_factory=GeometricMedianConfig)
    centered_clipping: CenteredClippingConfig = field(default_factory=CenteredClippingConfig)
    nnm_trimmed_mean: NNMTrimmedMeanConfig = field(default_factory=NNMTrimmedMeanConfig)


@dataclass(frozen=True)
class OverlayConfig:
    topology: str = "expander"
    # A target: an overlay of n <= degree + 1 members is the complete graph (each peer's n - 1
    # others), so any degree validates at any peer count. 24 (was 19, 8, 4): a peer averages 25
    # models. Digits, N = 100, IID, default policy: 17 rounds to 95 % of FedAvg's 20-round
    # accuracy (19 at degree 19, 21 at 8), the same CPU per round (one fetch and one decode per
    # worker); a real peer downloads 24 updates a round: set it lower for large models
    # (docs/results/time-to-accuracy.md). At the default 20 peers: the complete graph, as at 19.
    degree: int = 24
    edge_probability: float = 0.2  # Erdős–Rényi only
    # bdfl: a peer with fewer than min_sources approved neighbour updates tops up with the
    # nearest approved updates further out (Overlay.aggregation_sources); 0 = neighbours only.
    # Without it an honest peer surrounded by rejected attackers aggregates nothing and drifts.
    min_sources: int = 2
    # Quasi-global momentum (bdfl.learning.mixing, docs/learning.md "Quasi-global momentum"):
    # a peer publishes trained + momentum x (its start - its previous start); 0 = off. Only
    # on an overlay that is not the complete graph (so not at the default 20 peers). 0.5: a
    # displacement of a start (one that passed the audit included) then adds up to at most
    # 1 / (1 - 0.5) = 2x itself over the following rounds (0.9: 10x). Measured with
    # experiments/mixing_levers.py (digits, degree 24, rounds to 95 % of FedAvg's round-20
    # accuracy): N = 100 17 -> 10 rounds (FedAvg 14), N = 1000 16 -> 10 (FedAvg 11); larger
    # values were faster still in that model (0.9: 8 at N = 100), 0.3 slower (13 / 12)
    # (docs/results/topology.md).
    # A peer back from a restart, a rejoin or a late join rebuilds its velocity: its sources'
    # mean approved move of the last closed round, each verified against the chain
    # (bdfl.peer.rejoin.resume_momentum); without it the audit, judging its momentum-free
    # move against momentum-carrying ones, rejected three honest returning peers in
    # tests/e2e/test_faults.py (8 peers, degree 3). 0 = off.
    momentum: float = 0.5


@dataclass(frozen=True)
class ProtocolConfig:
    """On-chain parameters (mapped onto the contracts' constructor Params)."""

    # 9 at the default experiment's 20 peers; `load_config` (every CLI run and sweep) grows it with
    # the peer count when neither the config file nor the command line sets it: 9 seats per 20
    # members, at most 2 * auditors_per_update + 1 (17) (scale_to_peers; COMMITTEE_SHARE says why).
    committee_size: int = 9
    auditors_per_update: int = 8
    quorum: int = 5
    # Accepts must exceed this percentage of the revealed votes to approve (50 = simple
    # majority); above 50 an update the committee is split on is not aggregated.
    approve_percent: int = 50
    # Rejections must exceed this percentage of the revealed votes (50 = simple majority);
    # 66 = two thirds, so a colluding minority of auditors cannot reject honest updates.
    reject_percent: int = 66
    min_stake: int = 100
    submit_seconds: int = 600
    commit_seconds: int = 600
    reveal_seconds: int = 600
    max_missed_rounds: int = 3
    # Identity economics (docs/protocol.md, "Identity costs"): tokens of a fresh address's
    # first join that are burned, rounds a newcomer joining after round 0 is on probation (no
    # committee seat, not aggregated), rounds a departed member's stake stays bonded.
    entry_fee: int = 10
    probation_rounds: int = 3
    unbonding_rounds: int = 1


@dataclass(frozen=True)
class ChainConfig:
    backend: str = "anvil"
    rpc_url: str = ""
    block_time: float = 0.0  # 0: mine on every transaction
    # "relayed": each simulation worker posts its peers' signed submissions in submitBatch
    # transactions from its own account, and every peer whose entry did not land submits
    # directly itself; "direct": each peer sends its own submitUpdate (docs/protocol.md).
    # Default relayed, measured (docs/results/gas.md): the same metrics round for round, the
    # default experiment 38 -> 23 tx and 4.91 -> 4.53 M gas per round, 114k -> 88k gas per peer at N = 1000
    submission: str = "relayed"


@dataclass(frozen=True)
class NetConfig:
    """How the simulated peers fetch each other's updates over HTTP (bdfl.net.fetch.Fetcher)."""

    fetch_timeout: float = 10.0  # seconds per attempt
    fetch_retries: int = 2  # further attempts after a timeout, refused connection, 5xx or 429


#: What a ``[[faults]]`` entry can inject (docs/faults.md).
FAULT_KINDS = (
    "crash_before_submit", "crash_after_submit", "crash_after_commit",
    "corrupt_endpoint", "slow_endpoint", "drop_endpoint",
    "leave", "join",
)
CRASH_FAULTS = FAULT_KINDS[:3]
ENDPOINT_FAULTS = FAULT_KINDS[3:6]
MEMBERSHIP_FAULTS = FAULT_KINDS[6:]


@dataclass(frozen=True)
class FaultConfig:
    """One injected fault (a ``[[faults]]`` table); semantics in docs/faults.md."""

    kind: str = ""
    round: int = 0  # 1-based round of the run in which it happens
    peer: int = -1  # peer index; -1 (crash_after_commit only): a committee member of that round
    rounds: int = 0  # crash: rounds until the restart; endpoint: rounds it lasts; 0 = until the end
    delay: float = 0.0  # slow_endpoint: seconds before each answer (0: 1.5 x net.fetch_timeout)


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: everything needed to reproduce it.

    The defaults (here and in every table above) are the measured default experiment
    (README Quickstart, docs/results/default-experiment.md; ``experiments/configs/default.toml`` only names it):
    digits, 20 peers, 15 rounds, 30 % label-flipping attackers, the BDFL defense with
    committee 9 / 8 auditors per update / quorum 5 and two-thirds rejections.
    """

    name: str = "default"
    seed: int = 0
    peers: int = 20
    rounds: int = 15
    workers: int = 2
    cluster: str = ""  # "": local worker processes; "auto" | "HOST:PORT" | "ray://HOST:PORT": Ray actors (docs/cluster.md)
    out: str = ""
    clean_reference: str = ""  # a summary.json of the same run without attackers, for the accuracy drop
    task: TaskConfig = field(default_factory=TaskConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    defense: DefenseConfig = field(default_factory=DefenseConfig)
    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    net: NetConfig = field(default_factory=NetConfig)
    faults: tuple[FaultConfig, ...] = ()
    # modules (dotted paths or .py files) every process of the run imports first: they register
    # attacks, strategies and detectors of their own (bdfl.plugins, docs/extending.md)
    plugins: tuple[str, ...] = ()

    @property
    def num_attackers(self) -> int:
        if self.attack.groups:
            return sum(group_size(g.fraction, self.peers) for g in self.attack.groups)
        return group_size(self.attack.fraction, self.peers)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def group_size(fraction: float, peers: int) -> int:
    """Attackers of a fraction of the peers: ``floor(fraction x peers)``."""
    return int(math.floor(fraction * peers + 1e-9))


# -- parsing -------------------------------------------------------------------

def _coerce(path: str, value: Any, typ: Any) -> Any:
    """Check one value against its annotated type, converting int->float where harmless."""
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"expected an integer, got {value!r}")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"expected a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ConfigError(path, f"expected a finite number, got {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {value!r}")
        return value
    if getattr(typ, "__origin__", None) is tuple and typ.__args__[0] is str:
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(path, f"expected a list of strings, got {value!r}")
        return tuple(value)
    if getattr(typ, "__origin__", None) is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a table, got {value!r}")
        return dict(value)
    raise TypeError(f"unsupported config type {typ} at {path}")


def check_value(path: str, value: Any, typ: Any) -> Any:
    """One value against a type annotation (bool, int, float, str, a dict, a tuple of str), as
    every config field is checked; ConfigError naming ``path`` (for a plugin's parameters)."""
    return _coerce(path, value, typ)


def _check_finite(path: str, value: Any) -> None:
    """Every number in ``value`` (a free-form table: a plugin's parameters) is finite: a NaN or inf
    from TOML (``nan``, ``inf``) passed validation and crashed after the devnet started."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(path, f"expected a finite number, got {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(f"{path}.{k}", v)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(f"{path}[{i}]", v)


def _build(cls: type, data: dict[str, Any], prefix: str, base: Any = None) -> Any:
    """``cls`` from the table ``data``; fields it leaves out keep ``base``'s values (the
    enclosing field's own default, e.g. shift's k = 3) or else the class defaults."""
    if not isinstance(data, dict):
        raise ConfigError(prefix.rstrip("."), f"expected a table, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    for old in unknown:
        if cls is DefenseConfig and old in RENAMED_DEFENSE_KEYS:
            new = RENAMED_DEFENSE_KEYS[old]
            table, key = new.rsplit(".", 1)
            raise ConfigError(prefix + old, f"renamed to {new}", f"[{table}] {key} = ...")
    if unknown:
        raise ConfigError(prefix + unknown[0], "unknown field", ", ".join(sorted(names)))
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        typ = hints[f.name]
        if dataclasses.is_dataclass(typ):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
            kwargs[f.name] = _build(typ, data[f.name], f"{prefix}{f.name}.", default)
        elif getattr(typ, "__origin__", None) is tuple and dataclasses.is_dataclass(typ.__args__[0]):
            items = data[f.name]  # an array of tables ([[faults]])
            if not isinstance(items, (list, tuple)):
                raise ConfigError(prefix + f.name, f"expected an array of tables ([[{f.name}]]), got {items!r}")
            kwargs[f.name] = tuple(_build(typ.__args__[0], item, f"{prefix}{f.name}[{i}].") for i, item in enumerate(items))
        else:
            kwargs[f.name] = _coerce(prefix + f.name, data[f.name], typ)
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def _bound_text(x: float) -> str:
    """A range's end as written: an integer in full (a seed's 4294967295, not 4.29497e+09)."""
    return str(x) if isinstance(x, int) else f"{x:g}"


def _range(path: str, value: float, lo: float | None, hi: float | None, *, lo_open: bool = False, hi_open: bool = False) -> None:
    ok = True
    if lo is not None:
        ok &= value > lo if lo_open else value >= lo
    if hi is not None:
        ok &= value < hi if hi_open else value <= hi
    if not ok:
        left = ("(" if lo_open else "[") + ("-inf" if lo is None else _bound_text(lo))
        right = "inf)" if hi is None else _bound_text(hi) + (")" if hi_open else "]")  # infinite values are never allowed
        raise ConfigError(path, f"value {value!r} is out of range", f"{left}, {right}")


# -- the defense settings: one place for their ranges ---------------------------

#: Allowed range of each numeric ``[defense]`` setting: (low, high, low open, high open),
#: None = unbounded; dotted names are in a sub-table (``detectors.accuracy.k``). :func:`validate`
#: and :class:`bdfl.defense.audit.AuditRule` both check through :func:`check_defense_setting`.
DEFENSE_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    # the audit's detectors ([defense.detectors.<name>]); "enabled" is a bool
    "detectors.min_candidates": (3, 1000, False, False),
    "detectors.corroboration": (1.0, 100.0, False, False),
    **{f"detectors.{d}.k": (0.0, 100.0, True, False) for d in DETECTORS},
    "detectors.trigger.patterns": (1, 256, False, False),
    "detectors.trigger.inputs": (1, 4096, False, False),
    "replay_window": (0, 1000, False, False),
    "consistency_window": (0, 6, False, False),
    # the strategies' own tables ([defense.<name>]); "malicious", "keep" and "bucket_size"
    # are also bounded by the peer count (validate)
    "bdfl.max_reject_share": (0.0, 1.0, False, False),
    "bdfl.dissent_limit": (0.0, 1.0, False, False),
    "bdfl.clip_k": (0.0, 100.0, True, False),
    "krum.malicious": (-1, None, False, False),
    "multikrum.malicious": (-1, None, False, False),
    "multikrum.keep": (0, None, False, False),
    "trimmed_mean.beta": (0.0, 0.5, False, True),
    "geometric_median.max_iter": (1, 100_000, False, False),
    "geometric_median.tol": (0.0, 1.0, True, True),
    "centered_clipping.bucket_size": (1, None, False, False),
    "centered_clipping.iterations": (1, 1000, False, False),
    "centered_clipping.tau": (0.0, None, False, False),
    "nnm_trimmed_mean.malicious": (-1, None, False, False),
}
#: Settings of a strategy's table bounded by the peer count as well.
PEER_BOUNDED = ("krum.malicious", "multikrum.malicious", "multikrum.keep", "centered_clipping.bucket_size",
                "nnm_trimmed_mean.malicious")
#: Old ``[defense]`` keys -> the setting that replaced them (a config naming one is refused,
#: naming the new key).
RENAMED_DEFENSE_KEYS = {"trimmed_beta": "defense.trimmed_mean.beta", "krum_malicious": "defense.krum.malicious",
                        **{k: f"defense.bdfl.{k}" for k in ("weighting", "max_reject_share", "dissent_limit")},
                        # the audit's fixed thresholds, replaced by calibrated detectors (one k each)
                        **{f"audit_{old}": f"defense.detectors.{new}.k" for old, new in (
                            ("margin", "accuracy"), ("loss_margin", "loss"), ("norm_ratio", "distance"),
                            ("direction_margin", "direction"), ("direction_reference", "direction"),
                            ("direction_min_agreement", "direction"), ("direction_own_margin", "direction"),
                            ("shift_limit", "shift"), ("min_update", "no_work"), ("stand_down_share", "shift"),
                            ("consistency_min_cosine", "consistency"), ("merge_loss_margin", "merge"),
                            ("merge_loss_ratio", "merge"), ("trigger_limit", "trigger"),
                            ("trigger_size", "trigger"), ("trigger_spread", "trigger"))}}
#: ``[defense]`` settings with a fixed set of values.
DEFENSE_CHOICES: dict[str, tuple[str, ...]] = {
    "bdfl.weighting": WEIGHTINGS,
    "bdfl.clip": BACKDOOR_CLIPS,
}
#: Every ``[defense]`` setting :func:`check_defense_setting` checks (all but ``name``, the
#: registry's, and ``rebuild_starts``, a bool); dotted names are in a strategy's own table.
DEFENSE_SETTINGS = frozenset(DEFENSE_RANGES) | frozenset(DEFENSE_CHOICES)


def defense_value(defense: DefenseConfig, name: str) -> Any:
    """A ``[defense]`` setting by name; dotted for a strategy's table (``"krum.malicious"``)."""
    value: Any = defense
    for part in name.split("."):
        value = getattr(value, part)
    return value


def check_defense_setting(name: str, value: Any) -> None:
    """Check one ``[defense]`` setting (a name in :data:`DEFENSE_RANGES` or
    :data:`DEFENSE_CHOICES`); a bad value raises ConfigError naming ``defense.<name>`` and
    the allowed values."""
    path = f"defense.{name}"
    if name in DEFENSE_CHOICES:
        if value not in DEFENSE_CHOICES[name]:
            raise ConfigError(path, f"unknown value {value!r}", ", ".join(DEFENSE_CHOICES[name]))
        return
    integer = isinstance(defense_value(DefenseConfig(), name), int)
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ConfigError(path, f"expected {'an integer' if integer else 'a number'}, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(path, f"expected a finite number, got {value!r}")
    lo, hi, lo_open, hi_open = DEFENSE_RANGES[name]
    _range(path, value, lo, hi, lo_open=lo_open, hi_open=hi_open)


def _check_cluster(address: str) -> None:
    """``cluster``: empty (local processes), ``auto`` (the Ray cluster this host belongs to), a Ray
    head's ``HOST:PORT`` or a Ray Client ``ray://HOST:PORT`` (docs/cluster.md)."""
    if address in ("", "auto"):
        return
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not (sep and host and port.isdigit() and 1 <= int(port) <= 65535) or any(c in host for c in "/@?# "):
        raise ConfigError("cluster", f"{address!r} is not a Ray cluster address",
                          '"" (local processes), "auto", "HOST:PORT" (e.g. 10.0.0.5:6379) or "ray://HOST:PORT"')


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Range and consistency checks that need no upper-layer registry."""
    _range("peers", cfg.peers, 2, 20_000)  # 10,000 measured on one machine (docs/results/scale.md)
    if cfg.defense.name == "bdfl" and cfg.peers < 3:
        # two peers: each update is judged by one auditor against nothing to compare it with
        # (no spread to calibrate on), and every honest update was rejected (measured)
        raise ConfigError("peers", f"{cfg.peers} peers cannot run the bdfl defense: an audit needs other candidates to compare with",
                          ">= 3 with defense.name = 'bdfl' (2 with a baseline)")
    _range("rounds", cfg.rounds, 1, 100_000)
    _range("workers", cfg.workers, 1, 64)
    _check_cluster(cfg.cluster)
    _range("seed", cfg.seed, 0, 2**32 - 1)
    if not cfg.name or any(c in cfg.name for c in "/\\\0"):
        raise ConfigError("name", f"{cfg.name!r} is not usable in a folder name", "non-empty, no slashes")
    t = cfg.task
    if t.partition not in ("iid", "dirichlet", "iid_sample"):
        raise ConfigError("task.partition", f"unknown partition {t.partition!r}", "iid, dirichlet, iid_sample")
    _range("task.alpha", t.alpha, 0.0, None, lo_open=True)
    if t.partition == "iid_sample":
        _range("task.samples_per_peer", t.samples_per_peer, 2, 1_000_000)
    else:
        _range("task.samples_per_peer", t.samples_per_peer, 0, 1_000_000)
        if t.samples_per_peer:  # a value the run would silently not use
            raise ConfigError("task.samples_per_peer", f"{t.samples_per_peer} is not used by partition {t.partition!r}",
                              fix="leave it out (0), or set task.partition = \"iid_sample\", the scheme it belongs to")
    _range("task.val_fraction", t.val_fraction, 0.0, 0.9, lo_open=True)
    _range("task.local_epochs", t.local_epochs, 1, 1000)
    _range("task.batch_size", t.batch_size, 1, 100_000)
    _range("task.learning_rate", t.learning_rate, 0.0, 10.0, lo_open=True)
    _range("task.proximal_mu", t.proximal_mu, 0.0, 100.0)
    a = cfg.attack
    _range("attack.fraction", a.fraction, 0.0, 1.0, hi_open=True)
    if a.name == "none" and a.fraction > 0:
        raise ConfigError("attack.fraction", "attackers without an attack: set attack.name or fraction = 0")
    if a.name != "none" and not a.groups and cfg.num_attackers == 0 and a.fraction > 0:
        raise ConfigError("attack.fraction", f"{a.fraction} of {cfg.peers} peers rounds down to 0 attackers", f">= {1 / cfg.peers:.3g}",
                          fix=f"for a run without attackers: --attack none (attack.name = \"none\", fraction = 0); for one "
                              f"attacker: --attackers {math.ceil(1000 / cfg.peers) / 1000:g}")
    if a.knowledge not in ATTACK_KNOWLEDGE:
        raise ConfigError("attack.knowledge", f"unknown value {a.knowledge!r}", ", ".join(ATTACK_KNOWLEDGE))
    _validate_attack_groups(cfg)
    d = cfg.defense
    for f in fields(DefenseConfig):  # in declaration order: the first bad field is reported
        if f.name in DEFENSE_SETTINGS:
            check_defense_setting(f.name, getattr(d, f.name))
    for name in (*DEFENSE_CHOICES, *DEFENSE_RANGES):
        if "." in name:  # a sub-table: [defense.<strategy>], [defense.detectors.<name>]
            check_defense_setting(name, defense_value(d, name))
            if name in PEER_BOUNDED:
                _range(f"defense.{name}", defense_value(d, name), DEFENSE_RANGES[name][0], cfg.peers)
    _validate_plugin_detectors(d.detectors.plugins)
    _check_finite("defense.params", d.params)
    _check_finite("attack.params", a.params)
    for i, spec in enumerate(cfg.plugins):
        if not spec.strip():
            raise ConfigError(f"plugins[{i}]", "empty", "a module path such as 'mylab.attacks', or a .py file")
    o = cfg.overlay
    _range("overlay.degree", o.degree, 1, MAX_OVERLAY_DEGREE)  # a target: min(degree, members - 1) in effect
    if o.topology == "expander" and o.degree < 2 and cfg.peers > 2:
        raise ConfigError("overlay.degree", "an expander of degree 1 is a set of pairs, never connected",
                          f"[2, {MAX_OVERLAY_DEGREE}] with overlay.topology = 'expander'")
    _range("overlay.min_sources", o.min_sources, 0, max(2, cfg.peers - 1))
    _range("overlay.momentum", o.momentum, 0.0, 1.0, hi_open=True)  # 1 or more: the velocity never decays
    _range("overlay.edge_probability", o.edge_probability, 0.0, 1.0, lo_open=True)
    p = cfg.protocol
    _range("protocol.committee_size", p.committee_size, 2, min(MAX_COMMITTEE, cfg.peers))
    _range("protocol.auditors_per_update", p.auditors_per_update, 1, max(1, p.committee_size - 1))
    _range("protocol.quorum", p.quorum, 1, p.auditors_per_update)
    _range("protocol.approve_percent", p.approve_percent, 50, 99)
    _range("protocol.reject_percent", p.reject_percent, 50, 99)
    _range("protocol.min_stake", p.min_stake, 10, 10**30)  # >= the fixed slash of 10 tokens (ProtocolParams.slash_amount)
    for phase in ("submit_seconds", "commit_seconds", "reveal_seconds"):
        _range(f"protocol.{phase}", getattr(p, phase), 1, 86_400)
    _range("protocol.max_missed_rounds", p.max_missed_rounds, 1, 1000)
    _range("protocol.entry_fee", p.entry_fee, 0, p.min_stake - 1)
    _range("protocol.probation_rounds", p.probation_rounds, 0, 1000)
    _range("protocol.unbonding_rounds", p.unbonding_rounds, 0, 1000)
    c = cfg.chain
    if c.backend not in CHAIN_BACKENDS:
        looks_like_url = "://" in c.backend  # --chain ftp://x: a URL that is not http(s), not a backend's name
        raise ConfigError("chain.backend", f"{c.backend!r} is not an http(s) URL" if looks_like_url else f"unknown backend {c.backend!r}",
                          "http(s)://HOST:PORT, anvil or hardhat" if looks_like_url else ", ".join(CHAIN_BACKENDS))
    if c.backend == "url" and not c.rpc_url.startswith(("http://", "https://")):
        raise ConfigError("chain.rpc_url", f"{c.rpc_url!r} is not an http(s) URL", "http://HOST:PORT")
    _range("chain.block_time", c.block_time, 0.0, 60.0)
    if c.submission not in SUBMISSION_MODES:
        raise ConfigError("chain.submission", f"unknown submission mode {c.submission!r}", ", ".join(SUBMISSION_MODES))
    _range("net.fetch_timeout", cfg.net.fetch_timeout, 0.0, 600.0, lo_open=True)
    _range("net.fetch_retries", cfg.net.fetch_retries, 0, 10)
    _validate_faults(cfg)
    return cfg


def _validate_plugin_detectors(tables: dict[str, Any]) -> None:
    """``[defense.detectors.plugins.<name>]``: each a table of ``enabled`` (bool) and ``k`` (in
    (0, 100], like the built-in detectors'); whether ``<name>`` is registered is preflight's."""
    for name, table in tables.items():
        path = f"defense.detectors.plugins.{name}"
        if name in DETECTORS:
            raise ConfigError(path, f"'{name}' is a built-in detector", fix=f"set it in [defense.detectors.{name}]")
        if not isinstance(table, dict):
            raise ConfigError(path, f"expected a table (enabled, k), got {table!r}")
        unknown = sorted(set(table) - set(PLUGIN_DETECTOR_KEYS))
        if unknown:
            raise ConfigError(f"{path}.{unknown[0]}", "unknown field", ", ".join(PLUGIN_DETECTOR_KEYS))
        _coerce(f"{path}.enabled", table.get("enabled", True), bool)
        k = _coerce(f"{path}.k", table.get("k", DetectorConfig.k), float)
        _range(f"{path}.k", k, 0.0, 100.0, lo_open=True)


def _validate_attack_groups(cfg: ExperimentConfig) -> None:
    """Each ``[[attack.groups]]`` entry names an attack (checked against the registry by
    preflight) on at least one peer; together they leave at least one honest peer."""
    a = cfg.attack
    if a.groups and a.params:
        raise ConfigError("attack.params", "not used with [[attack.groups]]: give each group its params")
    for i, g in enumerate(a.groups):
        path = f"attack.groups[{i}]"
        if not g.name or g.name == "none":
            raise ConfigError(f"{path}.name", "missing" if not g.name else "a group needs an attack, not 'none'", "a registered attack")
        _range(f"{path}.fraction", g.fraction, 0.0, 1.0, lo_open=True, hi_open=True)
        if group_size(g.fraction, cfg.peers) == 0:
            raise ConfigError(f"{path}.fraction", f"{g.fraction} of {cfg.peers} peers rounds down to 0 attackers", f">= {1 / cfg.peers:.3g}")
    if a.groups and cfg.num_attackers >= cfg.peers:
        raise ConfigError("attack.groups", f"the groups' {cfg.num_attackers} attackers leave no honest peer of {cfg.peers}",
                          "fractions summing to less than 1")


def _validate_faults(cfg: ExperimentConfig) -> None:
    """Each ``[[faults]]`` entry on its own, then per peer: faults must not overlap in time, and
    a crash or endpoint fault needs the peer to be a member (not left, not yet joined)."""
    windows: dict[int, list[tuple[int, int, str]]] = {}
    membership: dict[int, list[tuple[int, str, str]]] = {}
    for i, f in enumerate(cfg.faults):
        path = f"faults[{i}]"
        if f.kind not in FAULT_KINDS:
            raise ConfigError(f"{path}.kind", f"unknown fault {f.kind!r}" if f.kind else "missing", ", ".join(FAULT_KINDS))
        _range(f"{path}.round", f.round, 1, cfg.rounds)
        if f.peer == -1 and f.kind == "crash_after_commit":
            pass  # resolved at run time to a committee member of that round
        else:
            _range(f"{path}.peer", f.peer, 0, cfg.peers - 1)
        if f.kind in MEMBERSHIP_FAULTS:
            if f.rounds != 0:
                raise ConfigError(f"{path}.rounds", f"{f.kind} takes no duration (a later join / leave undoes it)", "0")
        else:
            _range(f"{path}.rounds", f.rounds, 0, cfg.rounds)
        if f.kind == "slow_endpoint":
            _range(f"{path}.delay", f.delay, 0.0, 3600.0)
        elif f.delay != 0:
            raise ConfigError(f"{path}.delay", f"only slow_endpoint takes a delay, not {f.kind}", "0")
        if f.kind == "crash_after_commit" and cfg.defense.name != "bdfl":
            raise ConfigError(f"{path}.kind", f"crash_after_commit needs the audit of defense 'bdfl', not {cfg.defense.name!r}",
                              ", ".join(k for k in FAULT_KINDS if k != "crash_after_commit"))
        if f.kind in MEMBERSHIP_FAULTS:
            membership.setdefault(f.peer, []).append((f.round, f.kind, path))
        elif f.peer >= 0:
            # rounds the fault occupies: a crash until its restart, an endpoint fault through the
            # audit of round + rounds (docs/faults.md)
            end = cfg.rounds if f.rounds == 0 else f.round + f.rounds - (1 if f.kind in CRASH_FAULTS else 0)
            windows.setdefault(f.peer, []).append((f.round, min(end, cfg.rounds), path))
    initial = cfg.peers
    for peer, events in membership.items():
        events.sort()
        member = events[0][1] != "join"  # a peer whose first membership fault is a join starts outside
        initial -= not member
        changes = {r: k for r, k, _p in events}
        for r, kind, path in events:
            if sum(1 for e in events if e[0] == r) > 1:
                raise ConfigError(f"{path}.round", f"peer {peer} has two membership faults in round {r}")
            if kind == "leave" and not member:
                raise ConfigError(f"{path}.kind", f"peer {peer} is not a member in round {r} (it left or has not joined yet)", "join")
            if kind == "join" and member:
                raise ConfigError(f"{path}.kind", f"peer {peer} is already a member in round {r} (leave first)", "leave")
            member = kind == "join"
        def member_at(r: int, events: list[tuple[int, str, str]] = events) -> bool:
            inside = events[0][1] != "join"
            for when, kind, _p in events:  # a join counts from its round, a leave after its round
                if (kind == "join" and when <= r) or (kind == "leave" and when < r):
                    inside = kind == "join"
            return inside

        for start, end, path in windows.get(peer, []):
            for r in range(start, end + 1):
                if r in changes:
                    raise ConfigError(f"{path}.round", f"peer {peer} joins or leaves (round {r}) during this fault (rounds {start}..{end})")
                if not member_at(r):
                    raise ConfigError(f"{path}.peer", f"peer {peer} is not a member in round {r}, when this fault applies")
    for peer, ws in windows.items():
        ws.sort()
        for (s1, e1, _p1), (s2, _e2, p2) in zip(ws, ws[1:]):
            if s2 <= e1:
                raise ConfigError(f"{p2}.round", f"overlaps another fault of peer {peer} (rounds {s1}..{e1})")
    if initial < 2:
        raise ConfigError("faults", f"only {initial} peer(s) are members from the start (the others join later)", ">= 2")


#: Top-level tables a results folder's config.toml carries for the record, not as settings.
METADATA_KEYS = ("versions",)


def from_dict(data: dict[str, Any]) -> ExperimentConfig:
    settings = {k: v for k, v in data.items() if k not in METADATA_KEYS}
    return validate(_build(ExperimentConfig, settings, ""))


def read_toml(path: str | Path, field: str) -> dict[str, Any]:
    """A TOML file as a dict; a missing or malformed file is a ConfigError on ``field``."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text())
    except OSError as exc:
        raise ConfigError(field, f"cannot read {p}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(field, f"{p} is not valid TOML: {exc}") from None


#: ``[attack]`` keys that ``[[attack.groups]]`` replaces (``params`` next to groups is refused).
UNUSED_WITH_GROUPS = ("name", "fraction", "params")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                notes: list[str] | None = None,
                task_defaults: Callable[[str], Mapping[str, Any]] | None = None) -> ExperimentConfig:
    """Read a TOML file (optional), apply dotted-key overrides, take the task module's own
    training defaults for what neither sets (``task_defaults``: :func:`bdfl.learning.task.task_defaults`,
    passed by the callers above this layer; :func:`apply_task_defaults`), scale the derived settings
    down to the peer count (:func:`scale_to_peers`); what changed is appended to ``notes``;
    validate."""
    data: dict[str, Any] = read_toml(path, "--config") if path else {}
    attack = data.get("attack")
    if notes is not None and isinstance(attack, dict) and attack.get("groups"):
        unused = [f"{k} {attack[k]!r}" for k in UNUSED_WITH_GROUPS if k in attack and attack[k] != {}]
        if unused:
            notes.append(f"[attack] {', '.join(unused)} not used: [[attack.groups]] names each group's attack and fraction")
    for key, value in (overrides or {}).items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(key, "cannot override inside a non-table value")
        node[parts[-1]] = value
    given = set(data["task"]) if isinstance(data.get("task"), dict) else set()
    taken = apply_task_defaults(data, task_defaults) if task_defaults is not None else ""
    if notes is not None and taken:
        notes.append(taken)
    changed = scale_to_peers(data, explicit=set(overrides or {}))
    if notes is not None and changed:
        notes.append(changed)
    try:
        return from_dict(data)
    except ConfigError as exc:
        from_task = isinstance(data.get("task"), dict) and exc.field.startswith("task.") and \
            exc.field.removeprefix("task.") in set(data["task"]) - given
        if not from_task:
            raise
        raise ConfigError(exc.field, f"{exc.detail}; the value is the task module's own (its TASK_DEFAULTS)",
                          fix=f"correct TASK_DEFAULTS in {data['task'].get('client', TaskConfig.client)}, or set {exc.field}") from None


#: ``[task]`` settings a task module may give its own default for (``TASK_DEFAULTS``): how its
#: client trains. A Flower quickstart client trains with Adam, at which the library's 0.05 (its SGD
#: clients' rate) does not learn (0.103 vs 0.830 at 0.01, docs/tasks.md).
TASK_DEFAULT_FIELDS = ("learning_rate", "local_epochs", "batch_size", "proximal_mu")


def apply_task_defaults(data: dict[str, Any], task_defaults: Callable[[str], Mapping[str, Any]]) -> str:
    """Set, in ``data``, each of the task module's ``TASK_DEFAULTS`` that neither the config file
    nor the command line sets; what was taken, as a note ("" when nothing). A key outside
    :data:`TASK_DEFAULT_FIELDS` is refused, naming the module; values are validated with the rest."""
    task = data.get("task", {})
    spec = task.get("client", TaskConfig.client) if isinstance(task, dict) else None
    if not isinstance(spec, str) or not spec.strip():
        return ""  # validate() names the bad value
    try:
        defaults = dict(task_defaults(spec))
    except BDFLError as exc:
        raise ConfigError("task.client", str(getattr(exc, "message", exc)), fix=getattr(exc, "fix", None)) from None
    unknown = sorted(set(defaults) - set(TASK_DEFAULT_FIELDS))
    if unknown:
        raise ConfigError("task.client", f"{spec}'s TASK_DEFAULTS sets {', '.join(unknown)}: a task module may set only "
                          + ", ".join(TASK_DEFAULT_FIELDS))
    taken = {k: v for k, v in defaults.items() if k not in task}
    if not taken:
        return ""
    data.setdefault("task", {}).update(taken)
    return (f"task {spec}: " + ", ".join(f"task.{k} {v!r}" for k, v in taken.items())
            + " (its TASK_DEFAULTS; set them to choose)")


#: Settings whose largest allowed value depends on the peer count; :func:`scale_to_peers`
#: lowers them when they came from the defaults or a config file.
DERIVED_SETTINGS = ("protocol.committee_size", "protocol.auditors_per_update", "protocol.quorum")

#: The most committee seats: the width of the contracts' per-update tally bitmaps.
MAX_COMMITTEE = 64

#: Seats per member of the library's committee when no config sets its size: the default
#: experiment's 9 of 20 (so each seat audits at most about as many updates a round as there: no
#: new parameter), up to 2m + 1 seats (m = auditors per update). Why the committee must grow with
#: N while m stays 8: with K close to m every update of a round is audited by almost the same
#: seats (two updates share m^2 / K of their m auditors on average: 7.1 of 8 at K = 9), so a
#: coalition that wins one draw holds half of every update's auditors and stalls the whole round
#: (docs/protocol.md, "Stalling needs only half of an update's auditors"). From K = 2m + 1 two
#: updates share fewer than m / 2 auditors on average, below the half a stall needs, so holding
#: half of one update's auditors no longer implies holding half of the next's. Seats past that
#: buy less (P(a round with half the honest updates stalled) at 30 % colluders, 50 peers: 0.25 at
#: K = 9, 0.06 at 17, 0.02 at 21) and each costs a commit, a reveal and a settlement (about 250k
#: gas at 100 peers), so the cap is 2m + 1.
COMMITTEE_SHARE = (9, 20)


def scale_to_peers(data: dict[str, Any], explicit: set[str]) -> str:
    """Fit the derived settings to ``peers`` (in place) and say what changed.

    A committee size that neither the file nor ``explicit`` sets grows with the peers
    (:data:`COMMITTEE_SHARE`, at most 2 * auditors_per_update + 1); then
    protocol.committee_size <= peers; auditors_per_update <= committee_size - 1; quorum
    keeps its share of the auditors (rounded up). A key in
    ``explicit`` (given on the command line: --set) is never changed, nor is one the config file
    sets unless the command line changed ``peers``: a value that does not fit is refused by
    :func:`validate`. Returns "" when nothing changed.
    """
    peers = data.get("peers", ExperimentConfig.peers)
    if not isinstance(peers, int) or isinstance(peers, bool) or peers < 2:
        return ""  # validate() names the bad peer count
    tables = {"overlay": OverlayConfig(), "protocol": ProtocolConfig()}

    def given(key: str) -> bool:
        """Whether the config file (or the command line, merged into ``data``) sets ``key``."""
        table, name = key.split(".")
        node = data.get(table)
        return isinstance(node, dict) and name in node

    def get(key: str) -> Any:
        table, name = key.split(".")
        return data[table][name] if given(key) else getattr(tables[table], name)

    values = {key: get(key) for key in DERIVED_SETTINGS}
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values.values()):
        return ""  # validate() names the bad type
    new = dict(values)
    if "protocol.committee_size" not in explicit and not given("protocol.committee_size"):
        seats, members = COMMITTEE_SHARE  # the library default: the committee grows with the federation
        grown = min(-(-peers * seats // members), 2 * values["protocol.auditors_per_update"] + 1, MAX_COMMITTEE)
        new["protocol.committee_size"] = max(values["protocol.committee_size"], grown)

    # A value the config file sets is a choice for the file's own peer count: it is scaled when
    # the command line changed the peers (a file written for 50 peers run with --peers 10), and
    # otherwise refused by validate() when it does not fit (quorum 50 at 20 peers is a bad value,
    # not one to rewrite). The library's defaults always fit the peer count.
    peers_changed = "peers" in explicit

    def fixed(key: str) -> bool:
        return key in explicit or (given(key) and not peers_changed)

    def lower(key: str, bound: int) -> None:
        if not fixed(key) and new[key] > bound:
            new[key] = max(1, bound)

    lower("protocol.committee_size", peers)
    lower("protocol.auditors_per_update", new["protocol.committee_size"] - 1)
    m_old, m_new = values["protocol.auditors_per_update"], new["protocol.auditors_per_update"]
    if m_new < m_old and not fixed("protocol.quorum") and m_old > 0:
        new["protocol.quorum"] = max(1, min(m_new, -(-values["protocol.quorum"] * m_new // m_old)))
    lower("protocol.quorum", new["protocol.auditors_per_update"])
    changes = [f"{k} {values[k]} -> {new[k]}" for k in DERIVED_SETTINGS if new[k] != values[k]]
    for key in DERIVED_SETTINGS:
        if new[key] != values[key]:
            table, name = key.split(".")
            node = data.setdefault(table, {})
            if isinstance(node, dict):
                node[name] = new[key]
    if not changes:
        return ""
    way = "up" if any(new[k] > values[k] for k in DERIVED_SETTINGS) else "down"
    return (f"scaled {way} for {peers} peers (not set on the command line): " + ", ".join(changes)
            + " (set them with --set to choose)")


def dump_toml(cfg: ExperimentConfig, extra: dict[str, Any] | None = None) -> str:
    """The fully resolved configuration as TOML (``extra`` adds e.g. package versions)."""
    import tomli_w

    data = cfg.to_dict()
    attack = data.get("attack")
    if isinstance(attack, dict) and attack.get("groups"):
        for key in UNUSED_WITH_GROUPS:  # each group names its own: these are not used (load_config notes them)
            attack.pop(key, None)
    if extra:
        data = {**data, **extra}
    return tomli_w.dumps(data)
