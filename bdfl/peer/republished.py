"""The replay check by content: which models of earlier rounds an auditor decoded, so that an
update re-publishing one of them is rejected however it was re-encoded.

The hash check (``defense.replay_window``) catches the same bytes submitted again. A free-rider
that re-publishes a model it received re-encodes it under its own binding (its address, this
round): new bytes, a new hash, the same arrays. An auditor decodes the earlier rounds' models it
needs anyway (the trainers' start recipes, their earlier moves); :class:`EarlierModels` keeps a
digest of each, not the arrays, and :meth:`EarlierModels.holds` says whether a candidate's
arrays are, value for value, one of them. No honest trainer publishes a model it received: its
fit moves it (a client that changes nothing did no work either).

A disguised free-rider (Fraboni et al. 2021) adds a little noise to the model it re-publishes: one
changed value is another digest. So each model also leaves a sketch (a count sketch of
:data:`SKETCH_SIZE` buckets: distances within a few per cent, a constant size per model whatever
its parameter count), and :meth:`EarlierModels.near_share` measures how close a candidate lies to
the nearest earlier model of *another* trainer, as a share of its own move (its distance from its
start). A trained model is a move from its start: it lies at least about as far from any model of
the round before as from that start (measured, :data:`NEAR_REPUBLISHED`); a re-published model
plus noise lies within the noise of the model it copies, whatever it claims as its start.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from bdfl.defense.aggregate import measured_arrays

__all__ = ["EarlierModels", "NEAR_REPUBLISHED", "SKETCH_SIZE"]

#: A candidate lying closer than this share of its own move (its distance from its rebuilt start)
#: to a model another trainer published in an earlier round re-publishes that model
#: (:meth:`EarlierModels.near_share`). Honest candidates lay at 0.70-1.09 of their move from the
#: nearest such model at least (the smallest of each run: digits at 20 peers, seeds 11, 12, 31,
#: 32, clean and under Mimic, ALIE and free-riders; digits at 50 peers; MNIST; Seattle weather,
#: the lowest; 6 mirrored rounds; docs/results/robustness.md, "Disguised free-riders"); the
#: disguised free-rider with noise 0.01 / (round + 1) at 0.07-0.18, with 0.001 at 0.01-0.02. Half
#: the smallest honest share measured, as :data:`bdfl.defense.detectors.calibration.NEAR_COPY`
#: was chosen: a resolution, not a tuning knob. A free-rider adding more noise than that is no
#: longer a copy: its move is its noise, which the audit's tests judge as any other move.
NEAR_REPUBLISHED = 0.35

#: Buckets of the count sketch each earlier model leaves (8 KiB each in float64): a distance
#: between sketches is the models' distance within about 1 / sqrt(SKETCH_SIZE) = 3 %.
SKETCH_SIZE = 1024

#: Candidates searched together by :meth:`EarlierModels.prepare` (one matrix product over the
#: stacked sketches per block: at 20,000 earlier models a block's products take ~40-120 MB).
SEARCH_BLOCK = 128


def _key(params: Sequence[np.ndarray]) -> bytes:
    """A cheap first key: shapes, dtypes and about 64 evenly spaced values of each array."""
    parts = []
    for a in params:
        flat = np.ravel(np.asarray(a))
        parts.append(f"{flat.dtype}{np.shape(a)}".encode() + np.ascontiguousarray(flat[:: max(1, flat.size // 64)]).tobytes())
    return b"|".join(parts)


def _digest(params: Sequence[np.ndarray]) -> bytes:
    """A 128-bit digest of every value, shape and dtype (read only when the first key matches)."""
    h = hashlib.blake2b(digest_size=16)
    for a in params:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.digest()


@functools.lru_cache(maxsize=2)
def _sketch_map(seed: int | tuple[int, ...], size: int) -> tuple[np.ndarray, np.ndarray]:
    """The count sketch's bucket and sign of each of ``size`` values (drawn once per seed and
    model size: 0.7 s and 55 MB at 11M parameters)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, SKETCH_SIZE, size=size, dtype=np.int32), rng.choice(np.array([-1, 1], dtype=np.int8), size=size)


class _Table:
    """The index's sketches stacked (float64, for exact distances), the same less their mean in
    float32 (for the bounds' matrix products: half the arithmetic of float64, and centred so
    that float32's rounding is small against the distances, not against the sketches' norms),
    those rows' squared norms (in float64) and the rows of each author."""

    def __init__(self, sketches: Sequence[tuple[str | None, np.ndarray]]) -> None:
        self.stacked = np.stack([s for _, s in sketches])
        self.mean = self.stacked.mean(axis=0)
        self.centred = (self.stacked - self.mean).astype(np.float32)
        self.squares = np.einsum("ij,ij->i", self.centred, self.centred, dtype=np.float64)
        rows: dict[str | None, list[int]] = {}
        for i, (a, _) in enumerate(sketches):
            rows.setdefault(a, []).append(i)
        self.rows_of = {a: np.array(r) for a, r in rows.items()}


#: Twice the most a float32 product of two sketches can be off (SKETCH_SIZE x 2^-24 of the sum of
#: their squared norms, for any order of summation): the allowance of :func:`_bound`.
_PRODUCT_SLACK = 2.0 * SKETCH_SIZE * 2.0**-24


def _bound(sq_a: np.ndarray | float, sq_b: np.ndarray | float, products: np.ndarray, side: float) -> np.ndarray:
    """A lower (``side`` -1) or upper (+1) bound of the float64 distances between the sketches
    whose centred float32 rows have squared norms ``sq_a``, ``sq_b`` and float32 products
    ``products``. What it allows for: the float32 products' rounding (at most SKETCH_SIZE x
    2^-24 ~ 6.1e-5 of (sq_a + sq_b) / 2 each, for any order of summation; :data:`_PRODUCT_SLACK`
    of the sum allowed), each centred value's rounding to float32 (2^-24 of it; 1e-7 of each
    norm allowed), and the float64 distance's own rounding (1e-12 of it)."""
    total = sq_a + sq_b
    squared = np.maximum(total - 2.0 * products + side * _PRODUCT_SLACK * total, 0.0)
    return np.maximum((np.sqrt(squared) + side * 1e-7 * (np.sqrt(sq_a) + np.sqrt(sq_b))) * (1.0 + side * 1e-12), 0.0)


def _ascending(items: np.ndarray, keys: np.ndarray, first: int = 64) -> Iterator[int]:
    """``items`` in ascending order of ``keys``: the ``first`` smallest by a partial sort, the
    rest sorted only if the caller reads past them (the search mostly stops within them)."""
    if len(items) <= first:
        yield from items[np.argsort(keys, kind="stable")].tolist()
        return
    part = np.argpartition(keys, first)
    head, rest = part[:first], part[first:]
    yield from items[head[np.argsort(keys[head], kind="stable")]].tolist()
    yield from items[rest[np.argsort(keys[rest], kind="stable")]].tolist()


class EarlierModels:
    """Digests and sketches of models of earlier rounds (:meth:`add`); whether a model is one of
    them (:meth:`holds`: a sampled key first, the full digest only on a match, so a round's
    candidates cost a few values each), and how near a candidate lies to another trainer's
    (:meth:`near_share`). ``seed``: the sketch's random buckets and signs (every model of one
    instance is sketched alike)."""

    def __init__(self, seed: int | tuple[int, ...] = 0) -> None:
        self._models: dict[bytes, set[bytes]] = {}
        self._hashes: set[str] = set()
        self._seed = seed
        self._kept: dict[object, np.ndarray] = {}  # sketches of candidates and starts, by key
        self._sketches: list[tuple[str | None, np.ndarray]] = []  # (author, sketch) of each model added
        self._table: _Table | None = None  # the sketches stacked for the search (rebuilt when models are added)
        self._nearest: dict[tuple[str, str, int], float] = {}  # (candidate, trainer, models) -> nearest distance

    def add(self, update_hash: str, params: Sequence[np.ndarray], author: str | None = None) -> None:
        """Keep the digest and the sketch of ``params``, the model of the ``0x`` hash
        ``update_hash`` that ``author`` submitted; a hash already added is not read again (a
        round's updates are both this round's start recipes and the earlier moves' updates)."""
        if update_hash.lower() in self._hashes:
            return
        self._hashes.add(update_hash.lower())
        self._models.setdefault(_key(params), set()).add(_digest(params))
        self._sketches.append((author.lower() if author else None, self.sketch(params)))

    def sketch(self, params: Sequence[np.ndarray], key: object = None) -> np.ndarray:
        """A count sketch of ``params``' measured values (:func:`bdfl.defense.aggregate.measured_arrays`:
        not BatchNorm's batch counter, which made honest updates of a BatchNorm model look
        re-published) (a linear map: the sketch of a difference is the
        difference of the sketches, and its norm estimates the difference's norm). ``key``: a
        name for ``params`` (a candidate's hash, a trainer's start) whose sketch is kept, for the
        other auditors of a worker that judge the same candidate."""
        if key is not None and key in self._kept:
            return self._kept[key]
        arrays = [np.ravel(np.asarray(params[i])) for i in measured_arrays(params)]  # no counters
        buckets, signs = _sketch_map(self._seed, sum(a.size for a in arrays))
        out = np.zeros(SKETCH_SIZE)
        at = 0
        for a in arrays:  # array by array in its own dtype (x +-1 is exact): no float64 copy of the model
            part = slice(at, at + a.size)
            out += np.bincount(buckets[part], weights=a * signs[part], minlength=SKETCH_SIZE)
            at += a.size
        if key is not None:
            self._kept[key] = out
        return out

    def near_share(self, params: Sequence[np.ndarray], start: Sequence[np.ndarray], trainer: str,
                   key: str | None = None) -> float:
        """The distance from ``params`` (``trainer``'s candidate) to the nearest earlier model of
        another trainer, over the candidate's distance from ``start`` (its rebuilt start): below
        :data:`NEAR_REPUBLISHED`, the candidate re-publishes that model. Left out: an earlier
        model that lies nearer to one of ``trainer``'s own earlier models than to the candidate
        (a copy of the trainer's own work: Mimic's attackers copy honest updates, and a trainer
        may return near where its data led it last round). Infinite when no model is left or the
        candidate did not move. ``key``: the candidate's hash (its sketch and its trainer's
        start's are kept for other auditors judging it)."""
        if not self._sketches:
            return math.inf
        who = trainer.lower()
        c, move = self._sketched(params, start, who, key)
        if move == 0.0:
            return math.inf
        memo = None if key is None else self._memo(key, who)
        near = self._nearest.get(memo) if memo is not None else None
        if near is None:
            near = self._nearest_other(c, who)
            if memo is not None:
                self._nearest[memo] = near
        return near / move

    def prepare(self, candidates: Iterable[tuple[str, Sequence[np.ndarray], Sequence[np.ndarray], str]]) -> int:
        """Search the nearest earlier model of every candidate at once, for :meth:`near_share`
        to find memoised: ``candidates`` yields (hash, params, rebuilt start, trainer) as
        near_share takes them, one at a time (only their sketches are kept). A worker calls it
        before its auditors judge: one matrix product per block of candidates instead of one pass
        over the stacked sketches per candidate (at N = 10,000, ~8,700 candidates a worker
        against ~20,000 earlier models: the audit phase took 118-246 s a round;
        docs/results/scale.md). The same values as searching one by one. Returns how many
        candidates were searched."""
        if not self._sketches:
            return 0
        pending: dict[str, tuple[str, np.ndarray]] = {}
        for key, params, start, trainer in candidates:
            who = trainer.lower()
            if self._memo(key, who) in self._nearest or key in pending:
                continue
            c, move = self._sketched(params, start, who, key)
            if move == 0.0:
                continue  # near_share answers without a search
            pending[key] = (who, c)
        if not pending:
            return 0
        keys = list(pending)
        found = self._nearest_many(np.stack([pending[k][1] for k in keys]), [pending[k][0] for k in keys])
        for key, near in zip(keys, found):
            self._nearest[self._memo(key, pending[key][0])] = near
        return len(keys)

    def _sketched(self, params: Sequence[np.ndarray], start: Sequence[np.ndarray], who: str,
                  key: str | None) -> tuple[np.ndarray, float]:
        """A candidate's sketch (kept under ``key``) and its move: its distance from its trainer
        ``who``'s start (kept under ("start", who)), both as the sketches measure them."""
        c = self.sketch(params, key)
        return c, float(np.linalg.norm(c - self.sketch(start, None if key is None else ("start", who))))

    def _memo(self, key: str, who: str) -> tuple[str, str, int]:
        """The memo key of a candidate's nearest distance: every auditor of a worker shares this
        index, and a model added since makes it another search."""
        return key, who, len(self._sketches)

    def _nearest_other(self, c: np.ndarray, who: str) -> float:
        """The smallest distance from sketch ``c`` to an earlier model of another trainer than
        ``who`` that lies farther from each of ``who``'s own earlier models than from ``c``
        (:meth:`_nearest_many` for one candidate)."""
        return self._nearest_many(c[None, :], [who])[0]

    def _nearest_many(self, cs: np.ndarray, whos: Sequence[str]) -> list[float]:
        """:meth:`_nearest_other` of each row of ``cs`` and trainer of ``whos``.

        The same value as comparing each candidate with every model one by one, at the cost of
        one matrix product per block of :data:`SEARCH_BLOCK` candidates: bounds of every
        distance set aside the models that surely lie nearer to one of the trainer's own and
        order the rest; exact distances (float64, as one by one) are taken only until the lower
        bound passes the nearest one found. The bounds come from float32 products of the
        sketches less their mean (:class:`_Table`), widened by what float32 can get wrong. At
        N = 10,000 a worker's index holds ~20,000 models, and the one-by-one loop took ~0.1 s per
        candidate (rounds of 1,200 s; docs/results/scale.md); a pass over the stacked sketches per
        candidate, 15-25 ms (a memory-bound matrix-vector product)."""
        if self._table is None or len(self._table.squares) != len(self._sketches):
            self._table = _Table(self._sketches)
        t = self._table
        none = np.zeros(0, dtype=np.intp)
        out: list[float] = []
        for lo in range(0, len(whos), SEARCH_BLOCK):
            block = cs[lo:lo + SEARCH_BLOCK]
            owns = [t.rows_of.get(w, none) for w in whos[lo:lo + SEARCH_BLOCK]]
            union = np.unique(np.concatenate(owns)) if any(len(o) for o in owns) else none
            centred = (block - t.mean).astype(np.float32)
            # one pass over the stacked sketches for the block's candidates and their trainers' own models
            products = t.centred @ np.vstack([centred, t.centred[union]]).T
            for j, (c, own_at) in enumerate(zip(block, owns)):
                cc = float(np.square(centred[j], dtype=np.float64).sum())
                to_own = products[:, len(block) + np.searchsorted(union, own_at)].astype(np.float64)
                out.append(self._walk(c, cc, own_at, products[:, j].astype(np.float64), to_own))
        return out

    def _walk(self, c: np.ndarray, cc: float, own_at: np.ndarray, to_c: np.ndarray, to_own: np.ndarray) -> float:
        """The nearest model for one candidate ``c`` of :meth:`_nearest_many`, given its centred
        float32 sketch's square ``cc`` and the table's centred products with it (``to_c``) and
        with the trainer's own models (``to_own``, one column per row of ``own_at``)."""
        t = self._table
        assert t is not None
        lower = _bound(t.squares, cc, to_c, -1.0)
        maybe = np.ones(len(t.squares), dtype=bool)
        maybe[own_at] = False
        if len(own_at):
            # set aside the models that surely lie nearer to one of the trainer's own than to c
            upper = _bound(t.squares[:, None], t.squares[own_at][None, :], to_own, 1.0).min(axis=1)
            maybe &= upper > lower
        own = t.stacked[own_at]
        left = np.flatnonzero(maybe)
        near = math.inf
        for i in _ascending(left, lower[left]):
            if lower[i] >= near:
                break  # every model left lies at least this far
            e = t.stacked[i]
            d = float(np.linalg.norm(c - e))
            if d >= near or any(float(np.linalg.norm(e - o)) <= d for o in own):
                continue
            near = d
        return near

    def holds(self, params: Sequence[np.ndarray]) -> bool:
        digests = self._models.get(_key(params))
        return bool(digests) and _digest(params) in digests

    def __len__(self) -> int:
        return sum(len(d) for d in self._models.values())
