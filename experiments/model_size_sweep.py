"""Model-size sweep (issue 23): what a BDFL round costs as the model grows from 5k to 11M parameters.

    .venv/bin/python experiments/model_size_sweep.py                 # small, 1M, 11M; N = 20, 2 rounds
    .venv/bin/python experiments/model_size_sweep.py --sizes small 1m --rounds 2

For each size, one after the other, it runs ``nice -n 10 bdfl run --peers 20 --rounds R
--attackers 0 --set task.client=MODULE`` (the default policy: committee audit with the trigger
scan, commit-reveal, approved-only aggregation over the overlay (degree 24: at 20 peers every
peer aggregates all the others); 2 worker processes, which start with THP_MEM_ALLOC_ENABLE=1
and keep the memory they free, bdfl.net.allocator)
and, every 0.25 s, samples the run's whole process tree (psutil) for its summed RSS (peak); at the
end of every round it reads the bytes the loopback interface received (/proc/net/dev, ``lo``): every
update fetched between peers, plus JSON-RPC to anvil, and whatever else used loopback on the machine
meanwhile (another engineer's run: negligible next to MB-sized updates, not next to the small
model's 20 kB ones). A worker's own /proc/PID/io does not count socket reads (recv is not read).
Models (``clients.digits_wide``):

* small: ``clients.digits`` (64-64-10 MLP, 4,810 parameters, the default task)
* 1m:    ``clients.digits_1m`` (64-963-963-10, 1,000,567 parameters)
* 4m:    ``clients.digits_4m`` (64-1963-1963-10, 4,002,567 parameters; for a machine without the 11m's ~17 GiB)
* 11m:   ``clients.digits_11m`` (64-3279-3279-10, 11,001,055 parameters)

Figures per size (rounds.csv of the run; "per round" = the last round, whose audit rebuilds the
trainers' starts like every later round; round 1 has no earlier round to rebuild from):

* bytes per update: the encoded update (header + float32 body) a peer publishes;
* bytes per round: update bytes the workers fetched, by phase (audit: the auditors' candidates and
  the models of the trainers' starts; aggregate: the recipients' approved neighbours), from the
  run's ``RoundTraffic`` events (counted by bdfl.net's Fetcher): over HTTP ("fetched") and read in
  process from a worker's own peers' endpoints (``local_bytes`` / ``local_bodies``: no HTTP since
  c5a04ac); "read" = both, the bytes moved per round (runs before the counter: in process "-"); loopback bytes between the end of
  round R-1 and the end of round R as a cross-check (it adds JSON-RPC and anyone else's traffic);
* seconds: train (local fit + aggregation), exchange (publish, fetch, hash check, start rebuild),
  audit, chain, eval (test-set accuracy for the curves), other (= total - those), total;
* hash / decode: seconds to keccak256 / strictly decode one update here (measured in this process);
  hash s/round = keccak s/update x (bodies fetched + N publishes): every update is hashed once by
  its publisher and once by each fetcher while receiving (CPU seconds summed over the workers,
  inside the exchange phase);
* peak RSS of the run's process tree (anvil, orchestrator, workers);
* per round, the process tree's user and kernel CPU seconds and minor page faults (/proc/PID/stat at
  each round's end): kernel seconds are mostly first touches of memory (docs/results/model-size.md);
  run 5 rounds to see the steady state (a worker's caches fill by round 3-4; 11m: ~20 GiB then);
* overhead = total - train - eval (everything but local training and the curves' evaluation), per
  MiB of model.

Writes docs/results/model-size.md (``--out``) with date, commit and command; the runs go under
``--work``. Timings are noisy on a shared 2-core machine: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import resource
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MIB = 2**20
SIZES = {"small": "clients.digits", "1m": "clients.digits_1m", "4m": "clients.digits_4m", "11m": "clients.digits_11m"}
PHASES = ("train", "exchange", "audit", "chain", "eval")


# --------------------------------------------------------------------------- measuring a run


@dataclass
class TreeSampler:
    """Samples a process tree every ``interval`` s in a thread: its peak summed RSS."""

    pid: int
    interval: float = 0.25
    peak_rss: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        rss = 0
        for p in procs:
            try:
                rss += p.memory_info().rss
            except psutil.Error:
                continue
        self.peak_rss = max(self.peak_rss, rss)

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()


def loopback_rx_bytes(dev: Path = Path("/proc/net/dev")) -> int:
    """Bytes the loopback interface has received since boot (0 where /proc/net/dev has no ``lo``)."""
    try:
        for line in dev.read_text().splitlines():
            name, sep, rest = line.partition(":")
            if sep and name.strip() == "lo":
                return int(rest.split()[0])
    except OSError:
        pass
    return 0


def tree_counters(pid: int) -> tuple[int, float, float]:
    """Minor page faults, user and kernel CPU seconds of process ``pid`` and its descendants so
    far (/proc/PID/stat; processes that exited are not counted: a run's workers and anvil live
    to its end). A transparent huge page is one fault for 2 MiB, so faults understate the memory
    touched where huge pages are used; kernel seconds do not."""
    import psutil

    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    faults, user, kernel = 0, 0.0, 0.0
    try:
        root = psutil.Process(pid)
        pids = [pid, *(c.pid for c in root.children(recursive=True))]
    except psutil.Error:
        return 0, 0.0, 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # after the command name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
        faults += int(fields[7])
        user += int(fields[11]) / tick
        kernel += int(fields[12]) / tick
    return faults, user, kernel


def count_rows(path: Path) -> int:
    """Data rows of a CSV file (0 if it does not exist yet)."""
    try:
        with open(path, newline="") as fh:
            return max(0, sum(1 for _ in fh) - 1)
    except FileNotFoundError:
        return 0


def run_size(module: str, out: Path, *, peers: int, rounds: int, log: Path, timeout: float) -> dict[str, Any]:
    """One ``bdfl run`` of ``module``; returns peak RSS, wall time and loopback bytes received at the
    end of every round (read when that round's rounds.csv row appears)."""
    cmd = ["nice", "-n", "10", sys.executable, "-m", "bdfl", "run", "--peers", str(peers), "--rounds", str(rounds),
           "--attackers", "0", "--set", f"task.client={module}", "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env)
        sampler = TreeSampler(proc.pid)
        thread = threading.Thread(target=sampler.run, daemon=True)
        thread.start()
        at_round: list[int] = []
        counters: list[tuple[int, float, float]] = [tree_counters(proc.pid)]  # run start, then each round's end
        try:
            while proc.poll() is None:
                if time.perf_counter() - t0 > timeout:
                    proc.terminate()
                    proc.wait(60)
                    break
                done = count_rows(out / "rounds.csv")
                if done > len(at_round):
                    at_round += [loopback_rx_bytes()] * (done - len(at_round))
                    counters += [tree_counters(proc.pid)] * (done + 1 - len(counters))
                time.sleep(0.1)
        finally:
            sampler.stop()
            thread.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the run's reaped process tree (workers, anvil)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"rc": proc.returncode, "wall_s": time.perf_counter() - t0, "peak_rss": sampler.peak_rss, "cpu_s": cpu,
            "load_end": f"{os.getloadavg()[0]:.1f}", "bytes_at_round": at_round, "counters_at_round": counters,
            "cmd": shlex.join(cmd), "peers": peers}


def update_costs(module: str, repeats: int = 3) -> dict[str, float]:
    """Parameters, encoded bytes of one (bound) update, and the best-of-``repeats`` seconds to
    encode, keccak256 and strictly decode it in this process."""
    import numpy as np

    from bdfl.learning.task import load_task
    from bdfl.net.serialization import Binding, ModelSpec, decode_ndarrays, encode_ndarrays, update_hash

    task = load_task(module)
    client = task.module.make_client((np.zeros((1, 64), np.float32), np.zeros(1, np.int64)),
                                     (np.zeros((1, 64), np.float32), np.zeros(1, np.int64)), seed=0)
    params = client.get_parameters({})
    binding = Binding(31337, "0x" + "11" * 20, 1, "0x" + "22" * 20)
    spec = ModelSpec.of_ndarrays(params)
    best: dict[str, float] = {"encode": float("inf"), "hash": float("inf"), "decode": float("inf")}
    data = b""
    for _ in range(repeats):
        t = time.perf_counter()
        data = encode_ndarrays(params, binding=binding)
        best["encode"] = min(best["encode"], time.perf_counter() - t)
        plain = bytes(data[:])  # a plain copy: hashed from scratch
        t = time.perf_counter()
        update_hash(plain)
        best["hash"] = min(best["hash"], time.perf_counter() - t)
        t = time.perf_counter()
        decode_ndarrays(plain, max_bytes=len(plain), spec=spec)
        best["decode"] = min(best["decode"], time.perf_counter() - t)
    return {"params": float(sum(int(np.asarray(p).size) for p in params)), "update_bytes": float(len(data)),
            "encode_s": best["encode"], "hash_s": best["hash"], "decode_s": best["decode"]}


def hash_check_bench(module: str, updates: int = 4, checks: int = 7) -> dict[str, float]:
    """What carrying the receive-time keccak256 buys (bdfl.net.fetch, HashedBytes): ``updates``
    updates of ``module``'s model are published on one endpoint and fetched over HTTP, then each
    is hash-checked ``checks`` times as a round does downstream (an audited update: 2 checks by
    each of its auditors; an aggregated one: 1 per recipient), once on the fetched bytes (now)
    and once on plain copies (before: every check hashed the bytes again). Seconds per update."""
    import numpy as np

    from bdfl.learning.task import load_task
    from bdfl.net.blobserver import BlobHost
    from bdfl.net.fetch import Fetcher
    from bdfl.net.serialization import encode_ndarrays, hash_hex, update_hash

    task = load_task(module)
    empty = (np.zeros((1, 64), np.float32), np.zeros(1, np.int64))
    params = task.module.make_client(empty, empty, seed=0).get_parameters({})
    rng = np.random.default_rng(0)
    blobs = [encode_ndarrays([p + rng.standard_normal(p.shape).astype(p.dtype) for p in params]) for _ in range(updates)]
    with BlobHost() as host, Fetcher(max_bytes=max(len(b) for b in blobs), timeout=60.0, loop=host.loop_thread) as fetcher:
        ep = host.add_endpoint(max_blob_bytes=max(len(b) for b in blobs), retain=None)
        hashes = [ep.publish(b) for b in blobs]
        t = time.perf_counter()
        got = fetcher.fetch_many([(ep.url, h) for h in hashes])
        fetch_s = time.perf_counter() - t
    fetched = [got[h] for h in hashes]
    plain = [bytes(b[:]) for b in fetched]  # what the fetcher returned before: bytes without their hash

    def checks_of(datas: list[Any]) -> float:
        t0 = time.perf_counter()
        for h, d in zip(hashes, datas):
            for _ in range(checks):
                assert hash_hex(update_hash(d)) == h
        return (time.perf_counter() - t0) / len(datas)

    return {"fetch_s": fetch_s / updates, "checks": float(checks), "checks_now_s": checks_of(fetched),
            "checks_before_s": checks_of(plain)}


# --------------------------------------------------------------------------- figures (pure)


def read_rounds(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def read_traffic(path: Path) -> dict[int, dict[str, int]]:
    """The ``RoundTraffic`` events of a run's events.jsonl: round -> {"audit_fetched": ..., ...}."""
    out: dict[int, dict[str, int]] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        e = json.loads(line)
        if e.get("event") == "RoundTraffic":
            out[int(e["round"])] = {k: int(v) for k, v in e["args"].items()}
    return out


def fetched(traffic: dict[str, int], phase: str | None = None, what: str = "fetched") -> int:
    """Bytes (``what`` = fetched / served / local_bytes) or bodies (bodies / local_bodies) a round's
    workers moved, in one phase or all (keys ``<phase>_<what>``; a phase name has no ``_``)."""
    return sum(v for k, v in traffic.items() if k.partition("_")[2] == what and (phase is None or k.startswith(phase + "_")))


def local(traffic: dict[str, int] | None, what: str = "local_bytes") -> int | None:
    """Update bytes (or bodies: ``local_bodies``) a round's workers read in process from their own
    peers' endpoints (no HTTP); None for a run whose events predate the counter (or no event)."""
    if not traffic or not any(k.partition("_")[2] == what for k in traffic):
        return None
    return fetched(traffic, what=what)


def _plus(a: int | None, b: int | None) -> int | None:
    """HTTP + in-process (None when the HTTP figure is unknown; an unknown in-process one counts 0)."""
    return None if a is None else a + (b or 0)


def traffic_fields(t: dict[str, int] | None) -> dict[str, int | None]:
    """One round's update traffic (its ``RoundTraffic`` event; None or empty: unknown) as table
    fields: bytes fetched over HTTP in all and by phase, bodies fetched, what was read in process
    from a worker's own peers' endpoints (no HTTP, not in the fetched figures), and both."""
    row: dict[str, int | None] = {
        "bytes_per_round": fetched(t) if t else None, "audit_bytes": fetched(t, "audit") if t else None,
        "aggregate_bytes": fetched(t, "aggregate") if t else None, "bodies": fetched(t, what="bodies") if t else None,
        "local_bytes": local(t), "local_bodies": local(t, "local_bodies")}
    row["read_bytes"] = _plus(row["bytes_per_round"], row["local_bytes"])
    row["updates_read"] = _plus(row["bodies"], row["local_bodies"])
    return row


def round_rows(size: str, rounds: list[dict[str, str]], traffic: dict[int, dict[str, int]],
               counters: list[Any] | None = None) -> list[dict[str, Any]]:
    """Every round's split (seconds by phase, update bytes by phase) for the per-round table;
    with ``counters`` (the process tree's faults, user and kernel seconds at the run's start and
    at each round's end: :func:`tree_counters`), each round's share of them (round 1's includes
    the run's set-up)."""
    out = []
    counters = counters or []
    for k, r in enumerate(rounds):
        n = int(r["round"])
        t = traffic.get(n, {})
        row: dict[str, Any] = {"size": size, "round": n, **{f"{p}_s": float(r[f"seconds_{p}"]) for p in PHASES},
                               "total_s": float(r["seconds_total"]), **traffic_fields(t), "approved": r.get("approved", "")}
        if k + 1 < len(counters):
            (f0, u0, s0), (f1, u1, s1) = counters[k], counters[k + 1]
            row.update(faults=f1 - f0, user_cpu_s=u1 - u0, kernel_s=s1 - s0)
        out.append(row)
    return out


def figures(size: str, rounds: list[dict[str, str]], costs: dict[str, float], run: dict[str, Any],
            traffic: dict[int, dict[str, int]] | None = None) -> dict[str, Any]:
    """One table row from a run's rounds.csv rows, its ``RoundTraffic`` (:func:`read_traffic`),
    its update costs and its measurements."""
    if not rounds:
        raise ValueError(f"{size}: the run completed no round")
    last = rounds[-1]
    row: dict[str, Any] = {"size": size, "params": int(costs["params"]), "update_bytes": int(costs["update_bytes"]),
                           "rounds": len(rounds)}
    for phase in PHASES:
        row[f"{phase}_s"] = float(last[f"seconds_{phase}"])
    row["total_s"] = float(last["seconds_total"])
    row["other_s"] = row["total_s"] - sum(row[f"{p}_s"] for p in PHASES)
    row["round1_total_s"] = float(rounds[0]["seconds_total"])
    marks = run.get("bytes_at_round") or []
    row["loopback_per_round"] = marks[-1] - marks[-2] if len(marks) >= 2 else None
    t = (traffic or {}).get(int(last.get("round", len(rounds))))
    row.update(traffic_fields(t))
    row["hash_s"], row["decode_s"], row["encode_s"] = costs["hash_s"], costs["decode_s"], costs["encode_s"]
    peers = int(run.get("peers", 0))
    row["hash_round_s"] = (row["bodies"] + peers) * costs["hash_s"] if row["bodies"] is not None else None
    row["peak_rss"] = int(run["peak_rss"])
    row["wall_s"], row["cpu_s"], row["load_end"] = run.get("wall_s"), run.get("cpu_s"), run.get("load_end")
    row["overhead_s"] = row["total_s"] - row["train_s"] - row["eval_s"]
    mib = costs["update_bytes"] / MIB
    row["overhead_s_per_mib"] = row["overhead_s"] / mib if mib > 0 else None
    return row


def growth(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Between consecutive sizes: the ratio of parameters, of round time and of overhead, and
    whether round time grew at most linearly (time ratio <= parameter ratio)."""
    out = []
    for a, b in zip(rows, rows[1:]):
        p = b["params"] / a["params"]
        t = b["total_s"] / a["total_s"] if a["total_s"] > 0 else float("inf")
        o = b["overhead_s"] / a["overhead_s"] if a["overhead_s"] > 0 else float("inf")
        ab, bb = a.get("bytes_per_round"), b.get("bytes_per_round")
        r1 = b["round1_total_s"] / a["round1_total_s"] if a.get("round1_total_s") and b.get("round1_total_s") else None
        out.append({"from": a["size"], "to": b["size"], "params_ratio": p, "time_ratio": t, "overhead_ratio": o,
                    "bytes_ratio": bb / ab if ab and bb is not None else None, "round1_ratio": r1, "at_most_linear": t <= p})
    return out


def _mb(v: int | None) -> str:
    """Bytes as MB (one decimal), "-" when unknown."""
    return "-" if v is None else f"{v / 1e6:,.1f}"


def _f(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


NOTES_MARK = "<!-- notes below this line are kept when model_size_sweep.py rewrites the file -->"


def markdown(rows: list[dict[str, Any]], *, meta: dict[str, str], notes: str = "") -> str:
    """docs/results/model-size.md: provenance, the table, the growth check, then ``notes`` (the
    hand-written part after :data:`NOTES_MARK` of the previous file, kept as it is)."""
    lines = [
        "# Model-size sweep (issue 23)",
        "",
        f"Written {meta['date']}, commit `{meta['commit']}`, on {meta['machine']}; load average then "
        f"{meta['load']} (the machine is shared with other engineers' jobs: timings are noisy, ratios within one "
        "quiet run are the figures to trust; each size's own run, date, commit and load are listed below). "
        "Reproduce (this file):",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"N = {meta['peers']} peers; rounds: {meta['rounds']}; no attackers, the default policy. Per-round figures are "
        "the last round's (its audit rebuilds every trainer's start, as every round after the first does).",
        "",
    ]
    runs = [r for r in rows if r.get("meta")]
    if runs:
        lines += ["Each size's run (CPU s: user + system seconds of the run's whole process tree, less sensitive to "
                  "other jobs' load than wall time):", "",
                  "| size | measured | commit | load at start / end | peers | rounds | wall s | CPU s | command |",
                  "|---|---|---|---:|---:|---:|---:|---:|---|"]
        lines += [f"| {r['size']} | {r['meta'].get('date', '-')} | `{r['meta'].get('commit', '-')}` | {r['meta'].get('load', '-')} / "
                  f"{r.get('load_end') or '-'} | {r['meta'].get('peers', '-')} | {r['meta'].get('rounds', '-')} | {_f(r.get('wall_s'), 0)} "
                  f"| {_f(r.get('cpu_s'), 0)} | `{r['meta'].get('command', '-')}` |" for r in runs]
        lines.append("")
    lines += [
        "| size | params | bytes/update | MB fetched/round (audit + aggregate) | updates fetched/round "
        "| MB read in process/round | updates read in process/round | MB read/round (HTTP + in process) "
        "| updates read/round (HTTP + in process) | loopback MB/round "
        "| train s | exchange s | hash s (est.) | audit s | chain s | eval s | other s | round s | round 1 s "
        "| keccak s/update | decode s/update | peak RSS GiB | overhead s | overhead s/MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        moved = "-" if r.get("bytes_per_round") is None else \
            f"{r['bytes_per_round'] / 1e6:,.1f} ({r['audit_bytes'] / 1e6:,.1f} + {r['aggregate_bytes'] / 1e6:,.1f})"
        lo = r.get("loopback_per_round")
        lines.append(
            f"| {r['size']} | {r['params']:,} | {r['update_bytes']:,} | {moved} | {_f(r.get('bodies'))} "
            f"| {_mb(r.get('local_bytes'))} | {_f(r.get('local_bodies'))} | {_mb(r.get('read_bytes'))} | {_f(r.get('updates_read'))} "
            f"| {_mb(lo)} | {r['train_s']:.2f} "
            f"| {r['exchange_s']:.2f} | {_f(r.get('hash_round_s'))} | {r['audit_s']:.2f} | {r['chain_s']:.2f} | {r['eval_s']:.2f} "
            f"| {r['other_s']:.2f} | {r['total_s']:.2f} | {r['round1_total_s']:.2f} | {r['hash_s']:.4f} | {r['decode_s']:.4f} "
            f"| {r['peak_rss'] / 2**30:.2f} | {r['overhead_s']:.2f} | {_f(r['overhead_s_per_mib'], 3)} |"
        )
    lines += ["", "Growth between sizes (round time at most linear in model size: time ratio <= parameter ratio):", "",
              "| from | to | params x | round time x | overhead x | bytes/round x | round 1 time x | at most linear |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for g in growth(rows):
        lines.append(f"| {g['from']} | {g['to']} | {g['params_ratio']:.1f} | {g['time_ratio']:.2f} | "
                     f"{g['overhead_ratio']:.2f} | {_f(g['bytes_ratio'])} | {_f(g.get('round1_ratio'))} "
                     f"| {'yes' if g['at_most_linear'] else 'NO'} |")
    per_round = [x for r in rows for x in r.get("per_round", [])]
    if per_round:
        lines += ["", "Every round (seconds by phase; MB of updates fetched by the workers over HTTP, by phase; updates "
                  "read in process from a worker's own peers, and HTTP + in process; updates approved; "
                  "the run's process tree's user and kernel CPU seconds and minor page faults in the round, round 1's "
                  "with the run's set-up: kernel seconds are mostly first touches of memory, a huge page is one fault):", "",
                  "| size | round | train s | exchange s | audit s | chain s | eval s | round s | audit MB | aggregate MB "
                  "| updates fetched | MB read in process | updates read in process | MB read (HTTP + in process) "
                  "| updates read (HTTP + in process) | approved | user CPU s | kernel s | page faults k |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for x in per_round:
            mb = [_mb(x[k]) for k in ("audit_bytes", "aggregate_bytes")]
            faults = x.get("faults")
            lines.append(f"| {x['size']} | {x['round']} | {x['train_s']:.2f} | {x['exchange_s']:.2f} | {x['audit_s']:.2f} "
                         f"| {x['chain_s']:.2f} | {x['eval_s']:.2f} | {x['total_s']:.2f} | {mb[0]} | {mb[1]} "
                         f"| {_f(x['bodies'])} | {_mb(x.get('local_bytes'))} | {_f(x.get('local_bodies'))} "
                         f"| {_mb(x.get('read_bytes'))} | {_f(x.get('updates_read'))} | {x['approved']} | {_f(x.get('user_cpu_s'), 1)} | {_f(x.get('kernel_s'), 1)} "
                         f"| {'-' if faults is None else f'{faults / 1e3:,.0f}'} |")
    if all("checks_before_s" in r for r in rows):
        lines += ["", "Hash checks downstream of a fetch, per update (each update is checked 7 times in a round: twice "
                  "by each of its auditors' code paths, once per aggregating neighbour; `hash_check_bench`): before, every "
                  "check hashed the bytes again; now the fetcher hashes them while receiving and the bytes carry the digest.",
                  "", "| size | fetch s/update | 7 checks before s | 7 checks now s |", "|---|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['size']} | {r['fetch_s']:.4f} | {r['checks_before_s']:.4f} | {r['checks_now_s']:.6f} |")
    lines += ["", NOTES_MARK]
    return "\n".join(lines) + "\n" + notes


def kept_notes(path: Path) -> str:
    """What follows :data:`NOTES_MARK` in an existing results file ('' if none)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ""
    _, mark, notes = text.partition(NOTES_MARK + "\n")
    return notes if mark else ""


def environment() -> dict[str, str]:
    from bdfl.experiment.results import source_commit  # an export's stamped commit, else the checkout's HEAD

    commit = os.environ.get("BDFL_COMMIT") or source_commit()
    cores = os.cpu_count() or 0
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20 if Path("/proc/meminfo").exists() else 0.0
    return {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
            "machine": f"{cores} cores, {mem:.0f} GiB", "load": f"{os.getloadavg()[0]:.1f}"}


def row_of(saved: dict[str, Any]) -> dict[str, Any]:
    """A table row (with its every-round rows and provenance) from what :func:`main` saved for one
    size (``<work>/<size>.json``): the run's rounds.csv and events.jsonl are read again."""
    out = Path(saved["out"])
    rounds = read_rounds(out / "rounds.csv")
    traffic = read_traffic(out / "events.jsonl")
    run = {"peers": saved.get("meta", {}).get("peers", 20), **saved["run"]}
    row = {**figures(saved["size"], rounds, saved["costs"], run, traffic), **saved["bench"]}
    row["per_round"] = round_rows(saved["size"], rounds, traffic, saved["run"].get("counters_at_round"))
    row["meta"] = saved.get("meta", {})
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    ap.add_argument("--peers", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path, default=ROOT / "results" / "model-size")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "model-size.md")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds one run may take")
    ap.add_argument("--render", type=Path, nargs="+", metavar="SIZE.json",
                    help="run nothing: rewrite --out from sizes measured before (each invocation saves <work>/<size>.json)")
    args = ap.parse_args(argv)
    if args.rounds < 2:
        ap.error("--rounds must be >= 2 (bytes per round are taken between the last two rounds)")
    command = shlex.join([Path(sys.executable).name, "experiments/model_size_sweep.py", *(argv if argv is not None else sys.argv[1:])])
    meta = {**environment(), "peers": str(args.peers), "rounds": str(args.rounds), "command": command}
    notes = kept_notes(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.render:
        rows = [row_of(json.loads(p.read_text())) for p in args.render]
        meta["peers"] = "/".join(sorted({str(r["meta"].get("peers", "?")) for r in rows}))
        meta["rounds"] = "as listed per size"
        args.out.write_text(markdown(rows, meta=meta, notes=notes))
        print(f"wrote {args.out}")
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        module = SIZES[size]
        costs = update_costs(module)
        bench = hash_check_bench(module)
        out = args.work / f"{size}-{_dt.datetime.now().strftime('%H%M%S')}"
        started = {**environment(), "peers": args.peers, "rounds": args.rounds, "command": command}
        print(f"[{size}] {int(costs['params']):,} parameters, {int(costs['update_bytes']):,} bytes per update: running", flush=True)
        run = run_size(module, out, peers=args.peers, rounds=args.rounds, log=args.work / f"{size}.log", timeout=args.timeout)
        if run["rc"] != 0:
            print(f"[{size}] bdfl run exited {run['rc']}: see {args.work / f'{size}.log'}", flush=True)
        saved = {"size": size, "module": module, "out": str(out), "costs": costs, "bench": bench, "run": run, "meta": started}
        (args.work / f"{size}.json").write_text(json.dumps(saved, indent=1))
        row = row_of(saved)
        rows.append(row)
        print(f"[{size}] round {row['total_s']:.1f} s (train {row['train_s']:.1f}, exchange {row['exchange_s']:.1f}, "
              f"audit {row['audit_s']:.1f}), {_f(row['bytes_per_round'])} bytes fetched over HTTP + "
              f"{_f(row['local_bytes'])} read in process, peak RSS "
              f"{row['peak_rss'] / 2**30:.2f} GiB, wall {run['wall_s']:.0f} s", flush=True)
        args.out.write_text(markdown(rows, meta=meta, notes=notes))  # after every size: an interrupted sweep keeps what it measured
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
