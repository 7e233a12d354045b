"""Deterministic peer topologies: every peer derives the same graph from (members, seed).

No coordinator: the graph is a pure function of the member addresses (compared
lowercase, sorted) and a seed (e.g. a block hash), using :class:`SeededStream`,
a fully specified SHAKE-256 random stream, so implementations in any language
and any NumPy/Python version agree. Kinds:

* ``expander`` — random d-regular graph (pairing model, retried until simple and
  connected), the default overlay; ``N <= d + 1`` gives the complete graph, and
  when ``N * d`` is odd one member has degree ``d - 1``.
* ``ring`` — one cycle through a seeded permutation.
* ``full`` — complete graph.
* ``erdos_renyi`` — each pair independently with probability ``p`` (no connectivity guarantee).

:func:`repair_overlay` adapts an expander to a new member set with few edge
changes; the exact rule is in docs/net.md ("Overlay repair rule").
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from eth_hash.auto import keccak

from bdfl.errors import BDFLError

KINDS = ("expander", "ring", "full", "erdos_renyi")
_DOMAIN = b"BDFL-overlay-v1"
_BLOCK_WORDS = 512
_MAX_ATTEMPTS = 64   # pairing attempts before the circulant fallback
_STUCK_LIMIT = 200   # consecutive rejected pairs that count as "stuck"


# ------------------------------------------------------------------ randomness


class SeededStream:
    """Deterministic uint64 stream for ``(seed, tag)``.

    Block ``j`` (j = 0, 1, ...) is ``SHAKE-256(b"BDFL-overlay-v1" || len(tag) as 1 byte ||
    tag || seed || j as 8-byte big-endian)`` read to 4096 bytes = 512 little-endian uint64.
    """

    def __init__(self, seed: bytes, tag: str) -> None:
        t = tag.encode()
        if len(t) > 255:
            raise ValueError("tag too long")
        self._prefix = _DOMAIN + bytes([len(t)]) + t + seed
        self._block = 0
        self._words: tuple[int, ...] = ()
        self._buf = b""
        self._pos = 0

    def _refill(self) -> None:
        self._buf = hashlib.shake_256(self._prefix + struct.pack(">Q", self._block)).digest(8 * _BLOCK_WORDS)
        self._words = struct.unpack(f"<{_BLOCK_WORDS}Q", self._buf)
        self._block += 1
        self._pos = 0

    def next_u64(self) -> int:
        if self._pos == len(self._words):
            self._refill()
        self._pos += 1
        return self._words[self._pos - 1]

    def below(self, n: int) -> int:
        """Uniform integer in ``[0, n)``: rejection sampling, then ``x mod n``."""
        if n <= 0:
            raise ValueError("below(n) needs n >= 1")
        limit = (1 << 64) - (1 << 64) % n
        while True:
            x = self.next_u64()
            if x < limit:
                return x % n

    def shuffle(self, items: list[Any]) -> None:
        """In-place Fisher–Yates: for i = n-1 .. 1, swap items[i] and items[below(i + 1)]."""
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]

    def u64_array(self, m: int) -> np.ndarray:
        """The next ``m`` words as a uint64 array (same words ``next_u64`` would give)."""
        parts = []
        while m > 0:
            if self._pos == len(self._words):
                self._refill()
            k = min(m, len(self._words) - self._pos)
            parts.append(np.frombuffer(self._buf, dtype="<u8", count=k, offset=8 * self._pos))
            self._pos += k
            m -= k
        return np.concatenate(parts) if parts else np.zeros(0, dtype="<u8")


def _seed_bytes(seed: bytes | str) -> bytes:
    if isinstance(seed, str):
        s = seed[2:] if seed[:2] in ("0x", "0X") else seed
        try:
            seed = bytes.fromhex(s)
        except ValueError:
            raise ValueError(f"seed string must be hex, got {seed[:80]!r}") from None
    if not isinstance(seed, (bytes, bytearray)) or not 1 <= len(seed) <= 1024:
        raise ValueError("seed must be 1..1024 bytes (32 recommended, e.g. a block hash)")
    return bytes(seed)


def canonical_members(members: Iterable[str]) -> tuple[str, ...]:
    """Lowercase, de-duplicate and sort (checksum casing must not change the graph)."""
    out = set()
    for m in members:
        if not isinstance(m, str) or not m:
            raise ValueError(f"members must be non-empty strings, got {m!r}")
        out.add(m.strip().lower())
    return tuple(sorted(out))


# ------------------------------------------------------------------ the graph type


class Overlay:
    """An immutable undirected simple graph over member addresses (lowercase)."""

    __slots__ = ("kind", "degree", "p", "members", "_adj", "_edges", "_complete")

    def __init__(self, kind: str, degree: int, adjacency: Mapping[str, Iterable[str]], p: float | None = None) -> None:
        sets = {m: set(ns) for m, ns in adjacency.items()}
        for m, ns in sets.items():
            for n in ns:
                if n == m or m not in sets.get(n, ()):
                    raise ValueError(f"adjacency is not a simple undirected graph at {m!r}-{n!r}")
        adj = {m: tuple(sorted(ns)) for m, ns in sets.items()}
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "degree", degree)
        object.__setattr__(self, "p", p)
        object.__setattr__(self, "members", tuple(sorted(adj)))
        object.__setattr__(self, "_adj", adj)
        object.__setattr__(self, "_edges", None)
        object.__setattr__(self, "_complete", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Overlay is immutable")

    def neighbours(self, addr: str) -> tuple[str, ...]:
        """Sorted neighbours of ``addr`` (any casing); KeyError if not a member."""
        return self._adj[addr.strip().lower()]

    def aggregation_sources(self, addr: str, usable: Iterable[str], min_sources: int = 0, *, lowered: bool = False) -> tuple[str, ...]:
        """The members whose updates ``addr`` aggregates: its neighbours that are in ``usable``
        (e.g. approved this round); when fewer than ``min_sources`` of them are, the nearest
        usable members further out, ring by ring (distance 2, then 3, ...), each ring in
        address order, until ``min_sources`` are found or the graph is exhausted.

        Why: an honest peer whose neighbours are mostly attackers (whose updates are
        rejected) would otherwise aggregate little or nothing, drift on its own non-IID data,
        and then fail audits as an outlier. The rule is deterministic, so every party that
        holds the same graph computes the same sources. ``min_sources = 0``: neighbours only.
        Empty when ``addr`` is not a member. ``lowered``: ``usable`` is already a set of
        stripped lower-case addresses (a caller asking for every member builds it once)."""
        a = addr.strip().lower()
        if a not in self._adj:
            return ()
        ok = usable if lowered and isinstance(usable, (set, frozenset)) else {u.strip().lower() for u in usable}
        out = [n for n in self._adj[a] if n in ok]
        seen = {a, *self._adj[a]}
        ring = list(self._adj[a])
        while ring and len(out) < min_sources:
            ring = sorted({m for r in ring for m in self._adj[r]} - seen)
            seen.update(ring)
            out += [m for m in ring if m in ok][: min_sources - len(out)]
        return tuple(out)

    def edges(self) -> tuple[tuple[str, str], ...]:
        """Sorted ``(a, b)`` pairs with ``a < b``."""
        if self._edges is None:
            e = tuple(sorted((a, b) for a, ns in self._adj.items() for b in ns if a < b))
            object.__setattr__(self, "_edges", e)
        return self._edges  # type: ignore[return-value]

    @property
    def complete(self) -> bool:
        """Whether every member is every other member's neighbour (the complete graph; one
        member: True). Computed once."""
        if self._complete is None:
            n = len(self.members)
            object.__setattr__(self, "_complete", all(len(ns) == n - 1 for ns in self._adj.values()))
        return bool(self._complete)

    def degrees(self) -> dict[str, int]:
        return {m: len(ns) for m, ns in self._adj.items()}

    def as_dict(self) -> dict[str, tuple[str, ...]]:
        """``{member: sorted neighbour tuple}``."""
        return dict(self._adj)

    def is_connected(self) -> bool:
        return len(_components(self._adj)) <= 1

    def digest(self) -> str:
        """keccak256 of the canonical JSON edge list: peers can compare overlays cheaply."""
        doc = {"edges": [list(e) for e in self.edges()], "members": list(self.members)}
        return "0x" + keccak(json.dumps(doc, separators=(",", ":")).encode()).hex()

    def __contains__(self, addr: object) -> bool:
        return isinstance(addr, str) and addr.strip().lower() in self._adj

    def __len__(self) -> int:
        return len(self.members)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Overlay) and (self.kind, self.degree, self.p, self.members) ==
                (other.kind, other.degree, other.p, other.members) and self._adj == other._adj)

    def __hash__(self) -> int:
        return hash((self.kind, self.degree, self.members, self.edges()))

    def __repr__(self) -> str:
        return f"Overlay(kind={self.kind!r}, n={len(self.members)}, degree={self.degree}, edges={len(self.edges())})"


def neighbours(overlay: Overlay, addr: str) -> tuple[str, ...]:
    """Sorted neighbours of ``addr`` in ``overlay``."""
    return overlay.neighbours(addr)


def _components(adj: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Connected components, each sorted, ordered by (-size, smallest member)."""
    seen: set[str] = set()
    comps = []
    for start in sorted(adj):
        if start in seen:
            continue
        seen.add(start)
        stack, comp = [start], [start]
        while stack:
            for n in adj[stack.pop()]:
                if n not in seen:
                    seen.add(n)
                    stack.append(n)
                    comp.append(n)
        comps.append(sorted(comp))
    comps.sort(key=lambda c: (-len(c), c[0]))
    return comps


# ------------------------------------------------------------------ construction


def build_overlay(
    kind: str,
    members: Iterable[str],
    seed: bytes | str,
    *,
    degree: int | None = None,
    p: float | None = None,
) -> Overlay:
    """Build the ``kind`` overlay over ``members`` from ``seed`` (same inputs, same graph)."""
    ms = canonical_members(members)
    sd = _seed_bytes(seed)
    n = len(ms)
    if kind == "full":
        return Overlay("full", max(n - 1, 0), {m: [x for x in ms if x != m] for m in ms})
    if kind == "ring":
        order = list(ms)
        SeededStream(sd, "ring").shuffle(order)
        adj: dict[str, set[str]] = {m: set() for m in ms}
        if n >= 2:
            for i in range(n):
                a, b = order[i], order[(i + 1) % n]
                adj[a].add(b)
                adj[b].add(a)
        return Overlay("ring", min(2, max(n - 1, 0)), adj)
    if kind == "erdos_renyi":
        if p is None or not 0.0 <= p <= 1.0:
            raise BDFLError(f"erdos_renyi overlay needs 0 <= p <= 1, got {p!r}", fix="set the overlay's p")
        return Overlay("erdos_renyi", 0, _erdos_renyi(ms, sd, p), p=p)
    if kind == "expander":
        if degree is None or degree < 2:
            raise BDFLError(f"expander overlay needs degree >= 2, got {degree!r}",
                            fix="set the overlay degree (e.g. 4..8); degree 1 cannot be connected")
        if n <= degree + 1:  # the complete graph is the only (n-1)-regular graph
            return Overlay("expander", degree, {m: [x for x in ms if x != m] for m in ms})
        idx = _random_regular(n, degree, sd)
        return Overlay("expander", degree, {ms[i]: [ms[j] for j in idx[i]] for i in range(n)})
    raise BDFLError(f"unknown overlay kind {kind!r}", fix=f"use one of {', '.join(KINDS)}")


def _random_regular(n: int, d: int, seed: bytes) -> list[set[int]]:
    """Seeded random (near-)d-regular connected simple graph on 0..n-1, n >= d + 2.

    Pairing model: n*d points (vertex i has d; if n*d is odd, vertex below(n) has
    d-1); repeatedly draw two points uniformly, pair them unless that makes a
    loop or double edge. Restart (next attempt tag) if stuck or disconnected.
    """
    if d == 2:  # the only connected 2-regular graph is a cycle
        return _circulant(n, d, seed)
    for attempt in range(_MAX_ATTEMPTS):
        rng = SeededStream(seed, f"expander/{attempt}")
        short = rng.below(n) if (n * d) % 2 else -1
        points = [i for i in range(n) for _ in range(d - (i == short))]
        adj: list[set[int]] = [set() for _ in range(n)]
        fails = 0
        while points and fails <= _STUCK_LIMIT:
            a, b = rng.below(len(points)), rng.below(len(points))
            u, v = points[a], points[b]
            if u == v or v in adj[u]:
                fails += 1
                continue
            fails = 0
            adj[u].add(v)
            adj[v].add(u)
            for k in (a, b) if a > b else (b, a):  # swap-remove, higher index first
                points[k] = points[-1]
                points.pop()
        if not points and len(_components({i: adj[i] for i in range(n)})) == 1:  # type: ignore[arg-type]
            return adj
    return _circulant(n, d, seed)


def _circulant(n: int, d: int, seed: bytes) -> list[set[int]]:
    """Fallback: circulant graph (offsets 1..d//2, plus half-turn chords if d is odd) on a seeded order."""
    order = list(range(n))
    SeededStream(seed, "expander/circulant").shuffle(order)
    adj: list[set[int]] = [set() for _ in range(n)]

    def link(i: int, j: int) -> None:
        adj[order[i % n]].add(order[j % n])
        adj[order[j % n]].add(order[i % n])

    for i in range(n):
        for k in range(1, d // 2 + 1):
            link(i, i + k)
    if d % 2:
        for i in range(n // 2):  # n odd: vertex n-1 of the order keeps d-1
            link(i, i + n // 2)
    return adj


def _erdos_renyi(ms: Sequence[str], seed: bytes, p: float) -> dict[str, set[str]]:
    """Pair (i, j), i < j in row-major order, is an edge iff its uint64 < floor(p * 2**64)."""
    threshold = int(Fraction(p) * (1 << 64))  # exact: no float rounding differences between peers
    rng = SeededStream(seed, "erdos_renyi")
    adj: dict[str, set[str]] = {m: set() for m in ms}
    for i in range(len(ms) - 1):
        draws = rng.u64_array(len(ms) - 1 - i)
        hits = np.ones(len(draws), bool) if threshold >= 1 << 64 else draws < np.uint64(threshold)
        for k in np.flatnonzero(hits):
            j = i + 1 + int(k)
            adj[ms[i]].add(ms[j])
            adj[ms[j]].add(ms[i])
    return adj


# ------------------------------------------------------------------ repair


class _Graph:
    """Mutable working graph for repair: adjacency sets plus a sorted edge list."""

    def __init__(self, members: Sequence[str], edges: Iterable[tuple[str, str]], d: int) -> None:
        self.adj: dict[str, set[str]] = {m: set() for m in members}
        self.edges: list[tuple[str, str]] = []
        self.d = d
        for a, b in edges:
            self.adj[a].add(b)
            self.adj[b].add(a)
            self.edges.append((a, b) if a < b else (b, a))
        self.edges.sort()

    def free(self, v: str) -> int:
        return self.d - len(self.adj[v])

    def add(self, a: str, b: str) -> None:
        self.adj[a].add(b)
        self.adj[b].add(a)
        bisect.insort(self.edges, (a, b) if a < b else (b, a))

    def remove(self, a: str, b: str) -> None:
        self.adj[a].discard(b)
        self.adj[b].discard(a)
        e = (a, b) if a < b else (b, a)
        del self.edges[bisect.bisect_left(self.edges, e)]


def _fill(g: _Graph, order: list[str], rng: SeededStream) -> None:
    """Fill free degree slots until none of the three moves applies (see docs/net.md)."""
    while True:
        # 1. split: a vertex with >= 2 free slots takes over a random edge (a, b) away from it.
        moved = False
        for v in order:
            if g.free(v) >= 2:
                nv = g.adj[v]
                cands = [e for e in g.edges if e[0] != v and e[1] != v and e[0] not in nv and e[1] not in nv]
                if cands:
                    a, b = cands[rng.below(len(cands))]
                    g.remove(a, b)
                    g.add(v, a)
                    g.add(v, b)
                    moved = True
                    break
        if moved:
            continue
        deficient = [v for v in order if g.free(v) >= 1]
        # 2. pair: two non-adjacent deficient vertices get an edge.
        for v in deficient:
            partners = [u for u in deficient if u != v and u not in g.adj[v]]
            if partners:
                g.add(v, partners[rng.below(len(partners))])
                moved = True
                break
        if moved:
            continue
        # 3. double split: adjacent deficient u, w take over an edge (a, b): u-a, w-b.
        for i, u in enumerate(deficient):
            for w in deficient[i + 1:]:
                nu, nw = g.adj[u], g.adj[w]
                cands = [
                    (x, y)
                    for a, b in g.edges
                    for x, y in ((a, b), (b, a))
                    if x != u and x != w and x not in nu and y != u and y != w and y not in nw
                ]
                if cands:
                    a, b = cands[rng.below(len(cands))]
                    g.remove(a, b)
                    g.add(u, a)
                    g.add(w, b)
                    moved = True
                    break
            if moved:
                break
        if not moved:
            return


def _bridges(adj: Mapping[str, set[str]], comp: Sequence[str]) -> set[tuple[str, str]]:
    """Bridges (a < b) of the component ``comp`` (iterative Tarjan)."""
    disc: dict[str, int] = {}
    low: dict[str, int] = {}
    out: set[tuple[str, str]] = set()
    t = 0
    root = comp[0]
    disc[root] = low[root] = 0
    stack: list[tuple[str, str | None, Any]] = [(root, None, iter(sorted(adj[root])))]
    while stack:
        v, parent, it = stack[-1]
        advanced = False
        for w in it:
            if w == parent:
                continue
            if w in disc:
                low[v] = min(low[v], disc[w])
            else:
                t += 1
                disc[w] = low[w] = t
                stack.append((w, v, iter(sorted(adj[w]))))
                advanced = True
                break
        if not advanced:
            stack.pop()
            if parent is not None:
                low[parent] = min(low[parent], low[v])
                if low[v] > disc[parent]:
                    out.add((parent, v) if parent < v else (v, parent))
    return out


def _connect(g: _Graph, rng: SeededStream) -> bool:
    """Merge components by edge swaps, degrees unchanged (see docs/net.md); False if impossible.

    Runs after ``_fill``, when the members with free slots form a clique: every
    other component is d-regular (so has a cycle), the largest one has a
    non-bridge edge and no component is a single vertex.
    """
    while True:
        comps = _components(g.adj)
        if len(comps) <= 1:
            return True
        c0, c1 = set(comps[0]), set(comps[1])
        bridges = _bridges(g.adj, comps[0])
        e0 = [e for e in g.edges if e[0] in c0 and e not in bridges]
        e1 = [e for e in g.edges if e[0] in c1]
        if not e0 or not e1:
            return False
        x, y = e0[rng.below(len(e0))]
        a, b = e1[rng.below(len(e1))]
        # c0 minus a non-bridge stays connected; a-x and b-y attach both halves of c1.
        g.remove(a, b)
        g.remove(x, y)
        g.add(a, x)
        g.add(b, y)


def repair_overlay(
    previous: Overlay,
    members_now: Iterable[str],
    seed: bytes | str,
    degree: int | None = None,
) -> Overlay:
    """Adapt ``previous`` to ``members_now`` changing few edges (deterministic).

    Departed members' edges are dropped; the freed degree slots of their
    neighbours and the d slots of each joiner are filled by splitting random
    edges, pairing deficient members, and double splits; components are then
    merged by degree-preserving edge swaps. The result is connected, every
    degree is <= d, and (for N >= 2d) every degree is >= d - 1. Non-expander
    kinds, a changed degree, or ``N <= d + 1`` are rebuilt with
    :func:`build_overlay` instead.
    """
    d = previous.degree if degree is None else degree
    ms = canonical_members(members_now)
    sd = _seed_bytes(seed)
    if previous.kind != "expander" or d != previous.degree or len(ms) <= d + 1:
        return build_overlay(previous.kind, ms, sd, degree=d, p=previous.p)
    present = set(ms)
    g = _Graph(ms, [(a, b) for a, b in previous.edges() if a in present and b in present], d)
    if any(g.free(v) < 0 for v in ms):  # previous graph violates the degree bound: start over
        return build_overlay("expander", ms, sd, degree=d)
    rng = SeededStream(sd, "repair")
    order = [v for v in ms if g.free(v) > 0]
    rng.shuffle(order)
    _fill(g, order, rng)
    if not _connect(g, rng):  # unreachable by the argument in _connect; never return a split graph
        return build_overlay("expander", ms, sd, degree=d)
    _fill(g, order, rng)
    return Overlay("expander", d, g.adj)


# ------------------------------------------------------------------ analysis


def spectral_gap(overlay: Overlay) -> dict[str, float]:
    """Adjacency spectrum summary: lambda1, lambda2 (second-largest |eigenvalue|), gap.

    ``ramanujan_bound`` is 2*sqrt(d-1) for the overlay's maximum degree d; a
    d-regular graph with ``lambda2 <= ramanujan_bound`` is Ramanujan (optimal expansion).
    """
    ms = overlay.members
    n = len(ms)
    d_max = max((len(overlay.neighbours(m)) for m in ms), default=0)
    if n < 2:
        return {"n": n, "degree": d_max, "lambda1": 0.0, "lambda2": 0.0, "lambda2_signed": 0.0,
                "gap": 0.0, "ramanujan_bound": 0.0, "ramanujan": False}
    index = {m: i for i, m in enumerate(ms)}
    a = np.zeros((n, n))
    for x, y in overlay.edges():
        a[index[x], index[y]] = a[index[y], index[x]] = 1.0
    ev = np.linalg.eigvalsh(a)  # ascending
    lam1 = float(ev[-1])
    lam2 = float(max(abs(ev[-2]), abs(ev[0])))
    bound = 2.0 * math.sqrt(d_max - 1) if d_max >= 1 else 0.0
    return {
        "n": n, "degree": d_max, "lambda1": lam1, "lambda2": lam2, "lambda2_signed": float(ev[-2]),
        "gap": lam1 - lam2, "ramanujan_bound": bound, "ramanujan": lam2 <= bound + 1e-9,
    }
