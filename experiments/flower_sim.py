"""The same task in Flower's simulation engine with FedAvg, sending the task's proximal_mu (FedProx) as BDFL does (issue 7's baseline).

    .venv/bin/python experiments/flower_sim.py --config experiments/configs/bench_digits.toml \
        [--set peers=100 --set rounds=3 ...] [--eval test|central|none] [--cpus 2] [--json OUT.json]

Needs the ``bench`` extra (``pip install -e '.[bench]'``: ``flwr[simulation]``, i.e. Ray).

What is identical to ``bdfl run --config X``:

* the task module and its client code: every Flower client is built by the task's own
  ``make_client`` (e.g. ``clients.digits``), so the model, optimiser and training loop are
  the same code; client ``i`` gets the seed BDFL's peer ``i`` gets (``seed * 100003 + i``);
* the data: ``bdfl.experiment.setup.peer_data`` — the same partition (``task.partition``,
  ``task.samples_per_peer``, ``task.alpha``, seed), the same per-peer train split;
* N (``peers``), rounds, ``local_epochs``, ``batch_size``, ``learning_rate``, and the common
  initial model (``task.initial_parameters(dataset, seed=seed)``);
* every client trains every round (``fraction_fit = 1.0``, ``min_fit_clients = N``);
* evaluation (``--eval test``, the default): each round BDFL evaluates every peer's model
  on the global test set (the worker's ``aggregate`` step, counted in its ``seconds_train``).
  Flower's matching step is federated evaluation with ``fraction_evaluate = 1.0``: each of
  the N clients evaluates the new global model on the global test set (its ``val`` data is
  the test set), i.e. N test-set evaluations per round, as in BDFL. ``--eval central``
  instead evaluates the global model once per round on the server (a lighter round than
  BDFL's), ``--eval none`` not at all.
* Ray gets ``--cpus`` CPUs (default 2, BDFL's ``workers = 2``) and each client 1 (Flower's
  default is 2 per client, which would run one client at a time here), so two clients run at
  a time, like BDFL's two worker processes; torch uses one thread per process
  (``clients.common.configure_torch``; Ray also sets OMP_NUM_THREADS=1 in its workers).

Timing: a round runs from the strategy's ``configure_fit`` to the end of its evaluation
(``aggregate_evaluate``, or the central ``evaluate``, or ``aggregate_fit`` with ``--eval
none``). Ray's start-up (``ray.init``, run here with the arguments Flower's Ray backend
would use, before ``run_simulation``) and everything up to round 1's ``configure_fit`` are
reported separately (``ray_init_s``, ``startup_s``). Round 1 still pays for starting the
actor processes and their imports of torch and the task module (Flower creates the actors
while round 1 waits for them): compare rounds after the first.

Memory: the peak of the summed RSS of this process and all its descendants (Ray's GCS,
raylet and worker processes), sampled every 0.2 s (psutil, else /proc). Summed RSS counts
pages shared between processes once per process, so it is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEC_ENV = "BDFL_FLOWER_SIM_SPEC"


# --------------------------------------------------------------------------- memory


def _proc_tree_rss_fallback(root_pid: int) -> int:
    """Summed RSS (bytes) of ``root_pid`` and its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/statm") as fh:
                rss[pid] = int(fh.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def tree_rss(root_pid: int) -> int:
    """Summed RSS (bytes) of a process and all its descendants (0 once it is gone)."""
    try:
        import psutil
    except ImportError:
        return _proc_tree_rss_fallback(root_pid)
    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


class PeakRSS:
    """Samples the summed RSS of a process tree every ``interval`` seconds in a thread."""

    def __init__(self, pid: int | None = None, interval: float = 0.2) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                break

    def sample(self) -> None:
        self.peak = max(self.peak, tree_rss(self.pid))
        self.samples += 1

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- client side
# Runs inside Ray's actor processes. This file is imported there under the module name
# ``flower_sim`` (Flower passes the driver's sys.path on to Ray), so the client function
# is pickled by reference and the data set is built once per actor process, not per call.

_CACHE: dict[str, Any] = {}


def _setup() -> tuple[Any, Any, Any, list[Any], str]:
    if "setup" not in _CACHE:
        from bdfl.config import from_dict
        from bdfl.experiment.setup import peer_data
        from bdfl.learning.task import load_task

        spec = json.loads(os.environ[SPEC_ENV])
        cfg = from_dict(spec["config"])
        task = load_task(cfg.task.client)
        dataset, shards = peer_data(task, cfg)
        _CACHE["setup"] = (cfg, task, dataset, shards, spec["eval"])
    return _CACHE["setup"]


def hparams(cfg: Any) -> dict[str, Any]:
    """The hyper-parameters BDFL's workers give make_client (bdfl.learning.task.task_hparams)."""
    t = cfg.task
    return {"local_epochs": t.local_epochs, "batch_size": t.batch_size, "lr": t.learning_rate}


def client_fn(context: Any) -> Any:
    """Flower's per-message client factory: peer ``i``'s data, BDFL peer ``i``'s seed."""
    cfg, task, dataset, shards, evaluate = _setup()
    i = int(context.node_config["partition-id"])
    train, val = shards[i]
    if evaluate == "test":
        val = (dataset.X_test, dataset.y_test)  # BDFL evaluates each peer's model on the test set
    client = task.make_client(train, val, seed=cfg.seed * 100_003 + i, hparams=hparams(cfg))
    return client.to_client()


# --------------------------------------------------------------------------- server side


def make_strategy(cfg: Any, task: Any, dataset: Any, evaluate: str) -> Any:
    from flwr.common import ndarrays_to_parameters
    from flwr.server.strategy import FedAvg

    n = cfg.peers

    def weighted_accuracy(results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        total = sum(k for k, _ in results)
        return {"accuracy": sum(k * float(m.get("accuracy", 0.0)) for k, m in results) / max(total, 1)}

    central = None
    if evaluate == "central":
        evaluator = task.evaluator(dataset.X_test, dataset.y_test, hparams=hparams(cfg))

        def evaluate_global(server_round: int, parameters: Any, config: dict[str, Any]) -> tuple[float, dict[str, Any]]:
            res = evaluator(parameters)
            return float(res.loss), {"accuracy": float(res.accuracy)}

        central = evaluate_global

    class TimedFedAvg(FedAvg):
        """FedAvg (FedProx when task.proximal_mu > 0: the key is sent) that records when each round's steps end."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.marks: dict[int, dict[str, float]] = {}
            self.accuracy: dict[int, float] = {}

        def _mark(self, rnd: int, what: str) -> None:
            self.marks.setdefault(rnd, {})[what] = time.perf_counter()

        def configure_fit(self, server_round, parameters, client_manager):  # noqa: ANN001, ANN201
            self._mark(server_round, "fit_start")
            return super().configure_fit(server_round, parameters, client_manager)

        def aggregate_fit(self, server_round, results, failures):  # noqa: ANN001, ANN201
            if failures:
                raise RuntimeError(f"round {server_round}: {len(failures)} fit failures, e.g. {failures[0]!r}")
            out = super().aggregate_fit(server_round, results, failures)
            self._mark(server_round, "fit_end")
            return out

        def evaluate(self, server_round, parameters):  # noqa: ANN001, ANN201
            out = super().evaluate(server_round, parameters)
            if server_round > 0 and out is not None:
                self._mark(server_round, "eval_end")
                self.accuracy[server_round] = float(out[1].get("accuracy", float("nan")))
            return out

        def aggregate_evaluate(self, server_round, results, failures):  # noqa: ANN001, ANN201
            if failures:
                raise RuntimeError(f"round {server_round}: {len(failures)} evaluate failures, e.g. {failures[0]!r}")
            out = super().aggregate_evaluate(server_round, results, failures)
            self._mark(server_round, "eval_end")
            if out is not None and out[1]:
                self.accuracy[server_round] = float(out[1].get("accuracy", float("nan")))
            return out

    federated = evaluate == "test"
    initial = task.initial_parameters(dataset, seed=cfg.seed, hparams=hparams(cfg))
    return TimedFedAvg(
        fraction_fit=1.0,
        min_fit_clients=n,
        min_available_clients=n,
        fraction_evaluate=1.0 if federated else 0.0,
        min_evaluate_clients=n if federated else 0,
        initial_parameters=ndarrays_to_parameters(initial),
        # proximal_mu: the same local objective as BDFL's peers (Flower's FedProx is FedAvg that
        # sends this key; the bundled clients read it), so only the aggregation differs
        on_fit_config_fn=lambda r: {"round": r, "local_epochs": cfg.task.local_epochs,
                                    "proximal_mu": cfg.task.proximal_mu},
        evaluate_fn=central,
        evaluate_metrics_aggregation_fn=weighted_accuracy if federated else None,
    )


def run(cfg: Any, *, evaluate: str = "test", cpus: int = 2) -> dict[str, Any]:
    """Run the simulation in this process; return the timings (see the module docstring)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ[SPEC_ENV] = json.dumps({"config": cfg.to_dict(), "eval": evaluate})
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import flower_sim as module  # by name, so that Ray pickles client_fn by reference

    from flwr.client import ClientApp
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.simulation import run_simulation

    from bdfl.experiment.setup import peer_data
    from bdfl.learning.task import load_task

    task = load_task(cfg.task.client)
    dataset, _shards = peer_data(task, cfg)
    strategy = make_strategy(cfg, task, dataset, evaluate)
    server_app = ServerApp(
        server_fn=lambda context: ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=cfg.rounds))
    )
    client_app = ClientApp(client_fn=module.client_fn)
    init_args = {"num_cpus": cpus, "num_gpus": 0, "logging_level": "WARNING", "log_to_driver": True}
    backend_config = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "init_args": init_args}
    # Ray is started here, as Flower's Ray backend would start it (same init args, the driver's
    # sys.path as PYTHONPATH), so that its start-up is timed on its own: Flower otherwise
    # starts it in a thread while the ServerApp already runs round 1. Flower finds it running,
    # uses it, and shuts it down at the end.
    import ray

    pythonpath = os.pathsep.join(sys.path)
    if os.environ.get("PYTHONPATH"):
        pythonpath = f"{pythonpath}{os.pathsep}{os.environ['PYTHONPATH']}"
    os.environ["PYTHONPATH"] = pythonpath
    t0 = time.perf_counter()
    ray.init(runtime_env={"env_vars": {"PYTHONPATH": pythonpath}}, include_dashboard=False, **init_args)
    ray_init_s = time.perf_counter() - t0
    try:
        run_simulation(server_app=server_app, client_app=client_app, num_supernodes=cfg.peers, backend_config=backend_config)
    finally:
        if ray.is_initialized():
            ray.shutdown()
    t_end = time.perf_counter()

    marks = strategy.marks
    rounds = sorted(r for r in marks if r > 0 and "fit_start" in marks[r])
    if len(rounds) != cfg.rounds:
        raise RuntimeError(f"Flower completed {len(rounds)} of {cfg.rounds} rounds (see its log above)")
    round_s, fit_s, eval_s = [], [], []
    for r in rounds:
        m = marks[r]
        end = max(m.values())
        round_s.append(end - m["fit_start"])
        fit_s.append(m.get("fit_end", end) - m["fit_start"])
        eval_s.append(end - m.get("fit_end", end))
    return {
        "framework": f"flwr {_version('flwr')} simulation (ray {_version('ray')}), FedAvg",
        "task": cfg.task.client,
        "peers": cfg.peers,
        "rounds": cfg.rounds,
        "eval": evaluate,
        "cpus": cpus,
        "ray_init_s": ray_init_s,
        "startup_s": marks[rounds[0]]["fit_start"] - t0,
        "teardown_s": t_end - max(marks[rounds[-1]].values()),
        "round_seconds": round_s,
        "fit_seconds": fit_s,
        "eval_seconds": eval_s,
        "accuracy": [strategy.accuracy.get(r) for r in rounds],
        "simulation_wall_s": t_end - t0,
    }


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as `bdfl run --set` reads them (TOML scalars, else a bare string)."""
    import tomllib

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    t_start = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "experiments" / "configs" / "bench_digits.toml"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, as for `bdfl run`")
    ap.add_argument("--eval", choices=("test", "central", "none"), default="test", help="see the module docstring")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs Ray may use (1 per client)")
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from bdfl.config import load_config

    cfg = load_config(args.config, parse_overrides(args.set))

    def _term(signum: int, frame: Any) -> None:
        raise SystemExit(143)  # unwinds through run()'s ray.shutdown()

    signal.signal(signal.SIGTERM, _term)
    with PeakRSS() as mem:
        result = run(cfg, evaluate=args.eval, cpus=args.cpus)
    result["peak_rss_bytes"] = mem.peak
    result["rss_samples"] = mem.samples
    result["process_wall_s"] = time.perf_counter() - t_start
    rs = result["round_seconds"]
    later = rs[1:] or rs
    print(
        f"flower: {cfg.peers} clients, {cfg.rounds} rounds, eval={args.eval}: ray.init {result['ray_init_s']:.2f} s, "
        f"start-up {result['startup_s']:.2f} s, "
        f"round 1 {rs[0]:.2f} s, later rounds {sum(later) / len(later):.2f} s mean, "
        f"final accuracy {result['accuracy'][-1]}, peak RSS {mem.peak / 2**20:.0f} MiB",
        flush=True,
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
