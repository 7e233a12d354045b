"""The ``bdfl`` command line: a thin layer over the Python API.

Every subcommand maps onto one function; a :class:`BDFLError` is printed as one
``error:`` line (plus a ``fix:`` line) and the process exits non-zero, with no
traceback unless ``--debug`` is given. Global flags (``--debug``) are accepted anywhere
on the line, before or after the subcommand; every ``--help`` shows the defaults.

Each subcommand imports its code inside its function (marked ``# lazy: start-up``): ``bdfl
--help`` starts in 0.2 s; importing the run path (torch, flwr, web3) takes about 3 s.
"""

from __future__ import annotations

import argparse
import errno
import functools
import importlib.util
import json
import os
import signal
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

from bdfl.config import ExperimentConfig
from bdfl.errors import BDFLError, ConfigError
from bdfl.net.allocator import keep_freed_memory

#: Flags that belong to ``bdfl`` itself and are accepted anywhere on the command line.
GLOBAL_FLAGS = ("--debug",)

#: The attacker fraction ``bdfl run --attack NAME`` implies when neither ``--attackers`` nor
#: the config sets one (the default experiment's 30 %).
DEFAULT_ATTACK_FRACTION = 0.3


def version() -> str:
    try:
        return metadata.version("bdfl")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None, False) or the
    help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Every (sub)command parser shows defaults in --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def _names() -> dict[str, list[str]]:
    """The registered attacks, defenses, topologies and task modules (for --help)."""
    from bdfl.attacks import ATTACKS  # lazy: start-up
    from bdfl.experiment.setup import defenses  # lazy: start-up
    from bdfl.net.overlay import KINDS  # lazy: start-up

    tasks: list[str] = []
    spec = importlib.util.find_spec("clients")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            tasks += [f"clients.{f.stem}" for f in sorted(Path(folder).glob("*.py")) if f.stem not in ("__init__", "common")]
    from bdfl.defense.detectors import DETECTOR_NAMES, REGISTRY  # lazy: start-up

    names = {"attacks": sorted(ATTACKS), "defenses": list(defenses()), "topologies": list(KINDS), "tasks": tasks}
    plugin_detectors = sorted(set(REGISTRY) - set(DETECTOR_NAMES))
    if plugin_detectors:  # only after `--plugin M --help` loaded a plugin that registers detectors
        names["detectors"] = plugin_detectors
    return names


def _plugin_specs(argv: Sequence[str]) -> list[str]:
    """The MODULEs of ``--plugin MODULE`` / ``--plugin=MODULE`` in ``argv``, in order."""
    out = []
    for i, a in enumerate(argv):
        if a == "--plugin" and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif a.startswith("--plugin="):
            out.append(a.split("=", 1)[1])
    return out


def _parse_value(text: str) -> Any:
    """A --set value: TOML scalar syntax (numbers, true/false, "strings"), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Map `bdfl run` flags onto dotted config keys."""
    out: dict[str, Any] = {}
    simple = {
        "peers": "peers",
        "rounds": "rounds",
        "seed": "seed",
        "out": "out",
        "workers": "workers",
        "cluster": "cluster",
        "name": "name",
        "attack": "attack.name",
        "attackers": "attack.fraction",
        "defense": "defense.name",
        "topology": "overlay.topology",
        "degree": "overlay.degree",
    }
    for flag, key in simple.items():
        value = getattr(args, flag, None)
        if value is not None:
            out[key] = value
    if getattr(args, "attack", None) == "none" and getattr(args, "attackers", None) is None:
        out["attack.fraction"] = 0.0  # --attack none: nobody attacks, whatever the config says
    if getattr(args, "plugin", None):
        out["plugins"] = list(args.plugin)
    if args.chain:
        if args.chain.startswith(("http://", "https://")):
            out["chain.backend"] = "url"
            out["chain.rpc_url"] = args.chain
        else:
            out["chain.backend"] = args.chain
    for item in args.set or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(key.strip() or "--set", f"--set expects KEY=VALUE, got {item!r}",
                              fix="give a dotted config field and its value, e.g. --set protocol.committee_size=9")
        out[key.strip()] = _parse_value(value.strip())
    return out


def cmd_build(args: argparse.Namespace) -> int:
    from bdfl.chain.compiler import build  # lazy: start-up

    arts = build(force=args.force)
    for name, art in sorted(arts.items()):
        print(f"{name:24s} {len(art.bytecode) // 2 - 1:6d} bytes  {art.source}")
    return 0


def cmd_devnet(args: argparse.Namespace) -> int:
    from bdfl.chain.devnet import start_devnet  # lazy: start-up

    devnet = start_devnet(args.backend, port=args.port, accounts=args.accounts, block_time=args.block_time or None)
    with devnet:
        print(f"{args.backend} devnet: {devnet.rpc_url} (chain id {devnet.chain_id}); Ctrl-C stops it", flush=True)
        if args.deploy:
            from bdfl.chain.deploy_cli import deploy_to  # lazy: start-up

            path = deploy_to(devnet, Path(args.deploy))
            print(f"contracts deployed; deployment file: {path}", flush=True)
            print(federation_line(path), flush=True)
        if devnet.process is None:
            return 0
        stopped = []

        def stop(_signum: int, _frame: object) -> None:  # Ctrl-C / SIGTERM: the user stops it
            stopped.append(True)
            devnet.process.terminate()

        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            # wait() returns when the devnet exits, whoever stopped it (the loop before, on
            # signal.pause(), never woke when the devnet died by itself: SIGCHLD is ignored)
            code = devnet.process.wait()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        if stopped:
            return 0
    raise BDFLError(f"the {args.backend} devnet exited on its own (exit code {code}); peers using {devnet.rpc_url} lost their chain",
                    fix="see its output above, and start it again with bdfl devnet")


def cmd_deploy(args: argparse.Namespace) -> int:
    from bdfl.chain.deploy_cli import deploy_cli  # lazy: start-up

    if args.config:  # the policy's names, before their hash is fixed on chain (a typo needed a new deployment)
        from bdfl.config import load_config  # lazy: start-up
        from bdfl.defense import check_defense  # lazy: start-up
        from bdfl.plugins import load_plugins  # lazy: start-up

        cfg = load_config(args.config)
        load_plugins(cfg.plugins)
        check_defense(cfg.defense)
    path = deploy_cli(rpc_url=args.rpc_url, key_file=args.key_file, out=Path(args.out), params_file=args.params,
                      config_file=args.config)
    print(f"deployment file: {path}")
    print(federation_line(path))
    return 0


def federation_line(deployment_file: Path) -> str:
    """What a deployment's committee needs of the federation (printed after every deployment)."""
    from bdfl.chain.deploy import Deployment  # lazy: start-up

    p = Deployment.load(deployment_file).params
    # an update needs quorum votes from members other than its trainer: a smaller federation approves nothing
    return (f"committee of up to {p.committee_size} seats (never more than the members), {p.auditors_per_update} auditors per "
            f"update, quorum {p.quorum}: updates can be approved once at least {p.quorum + 1} members are active")


def run_config(args: argparse.Namespace) -> tuple[ExperimentConfig, list[str]]:
    """The validated config of `bdfl run` and the notes for its log.

    ``--attack NAME`` without ``--attackers`` keeps the config's attacker fraction, or, when
    that is 0, implies :data:`DEFAULT_ATTACK_FRACTION` (said in the log); ``--attack none``
    means no attackers."""
    from bdfl.config import load_config  # lazy: start-up
    from bdfl.learning.task import task_defaults  # lazy: start-up

    load = functools.partial(load_config, task_defaults=task_defaults)  # a task module's TASK_DEFAULTS
    overrides = run_overrides(args)
    notes: list[str] = []
    cfg = load(args.config, overrides, notes)
    if cfg.attack.groups and args.attack == "none":  # --attack none: nobody attacks, whatever the config says
        overrides["attack.groups"] = []
        notes = ["--attack none: the config's [[attack.groups]] are not used"]  # the reload says the rest again
        cfg = load(args.config, overrides, notes)
    elif cfg.attack.groups and (args.attack or args.attackers is not None):
        raise ConfigError("attack.groups", "--attack / --attackers do not apply to a config with [[attack.groups]] "
                          "(each group names its attack and fraction)",
                          "the config's groups, or --attack none for a clean run")
    if args.attack and args.attack != "none" and args.attackers is None and cfg.attack.fraction == 0:
        overrides["attack.fraction"] = DEFAULT_ATTACK_FRACTION
        notes = [f"--attack {args.attack} without --attackers: {DEFAULT_ATTACK_FRACTION:g} of the peers attack"]
        cfg = load(args.config, overrides, notes)
    if cfg.num_attackers * 2 >= cfg.peers:
        notes.append(f"{cfg.num_attackers} of {cfg.peers} peers attack: at half or more, committees are expected to have "
                     "no honest majority, which the audit's guarantees assume; the run shows what happens then")
    if cfg.defense.name == "trimmed_mean" and cfg.overlay.topology == "expander":
        combined = min(cfg.overlay.degree, cfg.peers - 1) + 1  # its neighbours' models and its own
        if int(cfg.defense.trimmed_mean.beta * combined) == 0:
            notes.append(f"defense trimmed_mean: beta {cfg.defense.trimmed_mean.beta:g} of the {combined} models a peer combines "
                         "trims none: at this peer count it is the plain mean (raise [defense.trimmed_mean] beta)")
    return cfg, notes


def cmd_run(args: argparse.Namespace) -> int:
    from bdfl.experiment.runner import run_experiment  # lazy: start-up

    cfg, notes = run_config(args)
    if getattr(args, "seeds", None):
        from bdfl.experiment.sweep import parse_seeds, run_seed_group  # lazy: start-up

        out = run_seed_group(cfg, parse_seeds(args.seeds), out=Path(args.out) if args.out else None, quiet=args.quiet)
        print(f"seed group: {out} (compare.md, compare_groups.csv, compare_accuracy.png)")
        return 0
    started = time.monotonic()
    out = run_experiment(cfg, quiet=args.quiet, notes=notes)
    summary = read_run_summary(out)
    print_run_summary(summary, wall_seconds=time.monotonic() - started, log=Path(out) / "run.log")
    print(f"results: {out}")
    return DEGRADED_EXIT if run_status(summary) == "degraded" else 0


#: exit status of `bdfl run` for a run that ran every round but went wrong (summary.json
#: status "degraded": most honest updates rejected in a round, or nothing aggregated twice)
DEGRADED_EXIT = 3


def read_run_summary(out: Path) -> Any:
    """The results folder ``out``'s summary.json as parsed (None when absent or unreadable:
    a run that failed before its first round)."""
    try:
        return json.loads((Path(out) / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def run_status(summary: Any) -> str | None:
    """A run's status from its summary.json (:func:`read_run_summary`; None when unreadable)."""
    if not isinstance(summary, dict):
        return None
    status = summary.get("status")
    if status == "degraded":
        print("RUN DEGRADED: see degraded_reasons in summary.json and the RUN DEGRADED lines of run.log", file=sys.stderr)
    return status


def print_run_summary(summary: Any, *, wall_seconds: float | None = None, log: Path | None = None) -> None:
    """The end-of-run summary (bdfl.experiment.progress.summary_lines) from summary.json; also
    appended to ``log`` (the run's run.log), so that the log holds what the terminal showed."""
    from bdfl.experiment.progress import summary_lines  # lazy: start-up

    if summary is None:
        return  # no summary (a run that failed before its first round): nothing to sum up
    text = "\n".join(summary_lines(summary, wall_seconds=wall_seconds))
    print(text)
    if log is not None and log.is_file():
        with log.open("a", encoding="utf-8") as f:
            f.write(text + "\n")


def cmd_new_task(args: argparse.Namespace) -> int:
    from bdfl.learning.new_task import write_task  # lazy: start-up

    task_path, test_path = write_task(args.name, args.dir, force=args.force)
    print(f"wrote {task_path} (a Flower NumPyClient task) and {test_path}")
    print(f"test it:  pytest {test_path}")
    print(f"run it:   bdfl run --set task.client={task_path}")
    return 0


def cmd_peer(args: argparse.Namespace) -> int:
    from bdfl.peer.standalone import run_standalone_peer  # lazy: start-up

    keep_freed_memory()  # before its threads start: freed model-sized blocks are reused, not faulted in again (bdfl.net.allocator)
    return run_standalone_peer(args)


def cmd_account(args: argparse.Namespace) -> int:
    from bdfl.chain.account_cli import account_cli  # lazy: start-up

    print("\n".join(account_cli(rpc_url=args.rpc_url, key_file=args.key_file, deployment_file=args.deployment, action=args.action)))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from bdfl.experiment.report import build_report  # lazy: start-up

    path = build_report(Path(args.dir))
    print(f"report: {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from bdfl.experiment.compare import compare_runs, overview  # lazy: start-up

    outputs = compare_runs([Path(d) for d in args.dirs], Path(args.out))
    print(overview(outputs.runs_csv))
    print(f"\ncompared in {args.out}: " + ", ".join(p.name for p in outputs) + " (compare.md has every figure)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from bdfl.experiment.sweep import run_sweep  # lazy: start-up

    out = run_sweep(Path(args.grid), out=Path(args.out) if args.out else None, quiet=args.quiet, jobs=args.jobs)
    print(f"sweep results: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bdfl", description="Blockchain-audited decentralized federated learning.",
                epilog="Global flags (--debug) may also come after the subcommand. Docs: README.md, docs/README.md.")
    p.add_argument("--debug", action="store_true", help="show tracebacks (accepted anywhere on the line)")
    p.add_argument("--version", action="version", version=f"bdfl {version()}")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="compile contracts/ (cached)")
    b.add_argument("--force", action="store_true", help="recompile even if nothing changed")
    b.set_defaults(func=cmd_build)

    d = sub.add_parser("devnet", help="run a local devnet until Ctrl-C")
    d.add_argument("--backend", choices=["anvil", "hardhat"], default="anvil", help="devnet program")
    d.add_argument("--port", type=int, default=None, help="default: a free port")
    d.add_argument("--accounts", type=int, default=10, help="pre-funded accounts")
    d.add_argument("--block-time", type=float, default=0.0, help="seconds between blocks (0: mine per transaction)")
    d.add_argument("--deploy", metavar="FILE", help="also deploy the contracts (the library's protocol and policy, as "
                                                    "`bdfl deploy` without options) and write the deployment file")
    d.set_defaults(func=cmd_devnet)

    dp = sub.add_parser("deploy", help="deploy the contracts to a JSON-RPC endpoint")
    dp.add_argument("--rpc-url", required=True, help="the chain's JSON-RPC URL")
    dp.add_argument("--key-file", help="deployer key (hex or JSON keystore); default on a devnet: its account 0")
    dp.add_argument("--params", help="TOML file with a [protocol] table of ProtocolParams' names (submit_duration, ...); "
                                     "default: the --config experiment's protocol, else the library's (committee 9, "
                                     "8 auditors per update, quorum 5)")
    dp.add_argument("--out", default="deployment.json", help="deployment file to write")
    dp.add_argument("--config", help="experiment TOML whose [defense] and [overlay] tables are the deployment's policy "
                                     "(written into the deployment file, its hash on chain), and whose protocol ([protocol], "
                                     "the rest derived for its peers) the contracts' parameters, as bdfl run deploys it "
                                     "(not with --params and a [protocol] table); default: the library's defaults")
    dp.set_defaults(func=cmd_deploy)

    names = _names()
    dflt = ExperimentConfig()
    r = sub.add_parser(
        "run", help="run an experiment: devnet, contracts, N peers, R rounds, report",
        description="Run an experiment. With no flags: the default experiment (README).\n"
                    "A flag overrides the --config file, which overrides the library defaults shown here.",
        epilog="names:\n" + "\n".join(f"  {k:11s} {', '.join(v)}" for k, v in names.items())
               + "\n\nDerived settings (protocol.committee_size, auditors_per_update, quorum) "
                 "that do not fit\nthe peer count are scaled down: the library's always, a config file's when --peers changed\nits peer count, never those given with --set (a value that does not fit is refused); a committee size "
                 "no config\nsets grows with the peers (9 per 20, at most 2 x auditors_per_update + 1); the run's log says so.",
    )
    r.add_argument("--config", help="TOML config (experiments/configs/*.toml); default: the library defaults")
    r.add_argument("--peers", type=int, help=f"number of peers (default: {dflt.peers})")
    r.add_argument("--attackers", type=float,
                   help=f"fraction of attacking peers, in [0, 1) (default: {dflt.attack.fraction:g}; "
                        f"--attack NAME alone implies {DEFAULT_ATTACK_FRACTION:g} when the config has none)")
    r.add_argument("--attack", metavar="NAME", help=f"attack: names below, docs/attacks.md (default: {dflt.attack.name})")
    r.add_argument("--defense", metavar="NAME", help=f"{' | '.join(names['defenses'])} (default: {dflt.defense.name})")
    r.add_argument("--topology", metavar="NAME", help=f"{' | '.join(names['topologies'])} (default: {dflt.overlay.topology})")
    r.add_argument("--degree", type=int, help=f"overlay degree (default: {dflt.overlay.degree}; with at most degree + 1 peers the complete graph)")
    r.add_argument("--rounds", type=int, help=f"rounds (default: {dflt.rounds})")
    r.add_argument("--chain", help="anvil | hardhat | an http(s) JSON-RPC URL; on a URL, BDFL_PRIVATE_KEY deploys "
                                   "and funds, except on devnet chain ids 31337/1337 (default: anvil)")
    r.add_argument("--seed", type=int, help=f"seed of data split, attackers, keys (default: {dflt.seed})")
    r.add_argument("--seeds", metavar="LIST", help="run once per seed (0,1,2 or 0-4) into OUT/runs/seed=<s> and compare "
                   "them in OUT: mean ± std over seeds, seed bands (docs/results-format.md)")
    r.add_argument("--workers", type=int, help=f"processes hosting the peers (default: {dflt.workers})")
    r.add_argument("--cluster", metavar="ADDRESS", help="host the workers as Ray actors on a Ray cluster: auto | HOST:PORT | "
                                                        "ray://HOST:PORT (docs/cluster.md; default: local processes)")
    r.add_argument("--name", help=f"run name, part of the results folder's name (default: {dflt.name})")
    r.add_argument("--out", help="results folder (default: results/<timestamp>-<name>)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config field, e.g. protocol.quorum=2")
    r.add_argument("--plugin", action="append", metavar="MODULE",
                   help="import MODULE (a dotted path or a .py file) in every process first: your own attacks, strategies, "
                        "detectors (docs/extending.md); repeatable, replaces the config's plugins")
    r.add_argument("--quiet", action="store_true", help="plain log lines, no progress display")
    r.set_defaults(func=cmd_run)

    nt = sub.add_parser("new-task", help="write a working task module (a Flower client) and its test (docs/tasks.md)")
    nt.add_argument("name", help="module name, e.g. my_task (writes my_task.py and test_my_task.py)")
    nt.add_argument("--dir", default=".", help="folder to write them to (default: the current folder)")
    nt.add_argument("--force", action="store_true", help="overwrite existing files")
    nt.set_defaults(func=cmd_new_task)

    pe = sub.add_parser("peer", help="run one real peer against a chain")
    pe.add_argument("--rpc-url", required=True, help="the chain's JSON-RPC URL (http or https)")
    pe.add_argument("--key-file", required=True, help="this peer's key: a file holding a hex private key (chmod 600) or a "
                                                      "JSON keystore (password from $BDFL_KEY_PASSWORD)")
    pe.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT of this peer's HTTP endpoint")
    pe.add_argument("--advertise", help="URL other peers use to reach this endpoint (default: from --listen)")
    pe.add_argument("--allow-private-endpoints", action="store_true",
                    help="fetch from members whose endpoint is on a loopback, private or link-local address "
                         "(refused on chains other than devnets 31337/1337 unless given; docs/net.md)")
    pe.add_argument("--deployment", required=True, help="deployment file written by `bdfl deploy`")
    pe.add_argument("--client", help="task module (a Flower NumPyClient task); default: the --config's task.client, "
                                     "else clients.digits")
    pe.add_argument("--data-shard", default="0/1", help="I/N: use the I-th of N seeded partitions of the task's data")
    pe.add_argument("--config", help="experiment TOML for task/defense settings")
    pe.add_argument("--plugin", action="append", metavar="MODULE",
                    help="import MODULE first: the deployment's strategy or detectors of a plugin (docs/extending.md); "
                         "repeatable, replaces the config's plugins")
    pe.add_argument("--rounds", type=int, default=0, help="stop after this many rounds (0: run until Ctrl-C)")
    pe.add_argument("--stake", type=int, default=0, help="tokens to stake when joining (default: the minimum)")
    pe.add_argument("--state-dir", help="where votes, salts and models survive a restart (default: next to the key file)")
    pe.set_defaults(func=cmd_peer)

    ac = sub.add_parser("account", help="a peer's account on chain: status, stake, rewards; claim, leave, withdraw")
    ac.add_argument("--rpc-url", required=True, help="the chain's JSON-RPC URL (http or https)")
    ac.add_argument("--key-file", required=True, help="the peer's key file (as bdfl peer's)")
    ac.add_argument("--deployment", required=True, help="deployment file written by `bdfl deploy`")
    act = ac.add_mutually_exclusive_group()
    act.add_argument("--claim", dest="action", action="store_const", const="claim", help="transfer the credited rewards to the wallet")
    act.add_argument("--leave", dest="action", action="store_const", const="leave",
                     help="leave the federation (after the current round; its slashes still apply)")
    act.add_argument("--withdraw", dest="action", action="store_const", const="withdraw",
                     help="return the stake of an account that left, once the unbonding rounds passed")
    ac.set_defaults(func=cmd_account, action=None)

    rp = sub.add_parser("report", help="rebuild plots and report.html from a results folder")
    rp.add_argument("dir", help="a results folder")
    rp.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="compare runs or sweep folders: config differences, mean ± std over seeds, figures")
    c.add_argument("dirs", nargs="+", help="results folders")
    c.add_argument("--out", default="results/compare", help="where the figure and table go")
    c.set_defaults(func=cmd_compare)

    s = sub.add_parser("sweep", help="run a grid of experiments (resumable)")
    s.add_argument("grid", help="sweep TOML (experiments/configs/sweep_*.toml)")
    s.add_argument("--out", help="sweep folder (default: results/sweep-<grid name>)")
    s.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    s.add_argument("--jobs", type=int, default=1, help="runs at once (default 1; never two with the same seed)")
    s.set_defaults(func=cmd_sweep)
    return p


#: OS errors a user fixes on the machine (one error line and this fix, not a traceback), by errno.
OS_ERROR_FIXES = {errno.ENOSPC: "free disk space", errno.EDQUOT: "free disk space (a quota is full)",
                  errno.EACCES: "choose a folder you can write (--out)", errno.EPERM: "choose a folder you can write (--out)",
                  errno.EROFS: "choose a folder on a writable file system (--out)"}


def _print_error(exc: BDFLError) -> int:
    """The one error line and its fix on stderr (no traceback); the exit code."""
    print(f"error: {exc.message}", file=sys.stderr)
    if exc.fix:
        print(f"fix: {exc.fix}", file=sys.stderr)
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    plugins = _plugin_specs(argv)
    if plugins and {"-h", "--help"} & set(argv):
        # `bdfl run --plugin M --help`: the names the help lists include what M registers
        from bdfl.plugins import load_plugins  # lazy: start-up

        try:
            load_plugins(plugins)
        except BDFLError as exc:
            return _print_error(exc)
    parser = build_parser()
    # global flags anywhere: lift them in front of the subcommand
    lifted = [a for a in argv if a in GLOBAL_FLAGS]
    args = parser.parse_args(lifted + [a for a in argv if a not in GLOBAL_FLAGS])
    try:
        return int(args.func(args) or 0)
    except BDFLError as exc:
        if args.debug:
            raise
        return _print_error(exc)
    except KeyboardInterrupt as exc:  # Ctrl-C: 130; SIGTERM (signals.Terminated): 143
        signum = int(getattr(exc, "signum", signal.SIGINT))
        print("terminated" if signum == signal.SIGTERM else "interrupted", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # `bdfl account | head`: the reader left; say nothing more (Python's documented recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as exc:  # the machine's, not the code's: a full disk, a folder not writable
        fix = OS_ERROR_FIXES.get(exc.errno or 0)
        if args.debug or fix is None:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        print(f"fix: {fix}; what a run wrote before stays in its folder (bdfl report DIR rebuilds its summary)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
