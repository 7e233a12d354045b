"""One strict decode per fetched update per process, shared read-only by the peers hosted there.

A simulation worker hosts many peer engines; every auditor of an update and every
aggregating neighbour used to decode the same fetched bytes again (a copy of the whole
model each time: ~160 + ~160 decodes of ~40 + ~34 distinct updates per worker and round
at N = 20). :class:`DecodeCache` decodes each update once and hands every peer the same
arrays, marked read-only so no peer can change what another one judges.

Only bytes that already matched their on-chain hash reach the cache (the caller checks
``keccak256(bytes) == hash`` on every request, before any lookup), so a tampered body is
never answered with arrays decoded from the genuine one, nor the other way round. The key
also holds everything else the decode depends on (binding, spec, size limit), so a
peer's own checks are never skipped. Free it with :meth:`clear` when the round (or
phase) that fetched the bytes ends.

Given the bytes too (``data``), the cache keeps read-only views into them instead of the
decoder's copies, where the bytes end with exactly the arrays' bytes in order (the encoding's
body, little-endian: checked bit for bit against the strict decode, which still runs first):
the fetched body and its decoded copy no longer both stay in memory while the round holds the
body anyway (a fetched body and its decode each took 44 MB per update at 11M parameters:
docs/results/model-size.md). ``bytes`` are immutable, so a view never changes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from bdfl.types import NDArrays

if TYPE_CHECKING:
    from bdfl.peer.sources import StartSource

#: what a decode gives: the arrays, or the reason the bytes were refused (InvalidUpdate.reason)
Decoded = NDArrays | str


class DecodeCache:
    """hash-keyed decoded updates (or their refusal reasons), shared read-only; counts hits."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, Hashable], Decoded] = {}
        self.decodes = 0  # decodes run since creation
        self.hits = 0  # requests answered from the cache
        self.views = 0  # decodes kept as views into their bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, h: str, key: Hashable, decode: Callable[[], Decoded], data: bytes | None = None) -> Decoded:
        """The decode of the (hash-checked) bytes committed to by ``h`` under ``key`` (binding,
        spec, limits); runs ``decode`` on the first request only. Arrays come back read-only:
        copy before changing one. ``data``: those bytes, to keep views into them (module docstring)."""
        k = (h.lower(), key)
        out = self._entries.get(k)
        if out is not None:
            self.hits += 1
            return out
        out = decode()
        self.decodes += 1
        if not isinstance(out, str) and isinstance(data, bytes):
            views = body_views(data, out)
            if views is not None:
                out = views
                self.views += 1
        if not isinstance(out, str):
            for a in out:
                if isinstance(a, np.ndarray):
                    a.flags.writeable = False
        self._entries[k] = out
        return out

    def clear(self) -> None:
        """Drop every entry (the arrays live on only where a peer still holds them)."""
        self._entries.clear()


def body_views(data: bytes, arrays: NDArrays) -> NDArrays | None:
    """Read-only views into ``data`` equal bit for bit to ``arrays`` (C-contiguous, native
    order), where ``data`` ends with their bytes in order; None where it does not (another
    layout, byte order or alignment): the caller keeps the copies then."""
    total = sum(int(a.nbytes) for a in arrays)
    if not arrays or total > len(data):
        return None
    offset, out = len(data) - total, []
    for a in arrays:
        if not isinstance(a, np.ndarray) or not a.flags.c_contiguous or offset % max(1, a.dtype.alignment):
            return None
        v = np.frombuffer(data, dtype=a.dtype, count=a.size, offset=offset).reshape(a.shape)
        bits = np.dtype(f"u{a.dtype.itemsize}") if a.dtype.itemsize in (1, 2, 4, 8) else None
        if bits is None or not np.array_equal(v.view(bits), a.view(bits)):
            return None
        offset += int(a.nbytes)
        out.append(v)
    return out


def recipe_key(recipe: Iterable[StartSource]) -> tuple[tuple[str, str, float], ...]:
    """What a rebuilt start depends on: its recipe's (submitter, hash, weight), in order."""
    return tuple((s.peer.lower(), s.hash.lower(), float(s.weight)) for s in recipe)


class KeptStarts:
    """The trainers' starts one round's audit rebuilt, kept for the next round's earlier moves.

    A trainer's earlier move of round r is its round-r update minus its start of round r (the
    average of its round-r recipe's models, :class:`bdfl.peer.sources.PastMove`), which round r's
    audit already rebuilt from the same hash-checked models: a worker kept rebuilding it again in
    round r + 1 (20 averages of ~20 models per worker and round at N = 20; at 11M parameters
    0.9 GB of new arrays per worker, docs/results/model-size.md). :meth:`keep` holds round r's
    starts (read-only while held), :meth:`take` hands one over in round r + 1 only when the move's
    recipe is the very recipe it was rebuilt from (submitters, hashes and weights, in order: the
    same inputs to the same deterministic average, so the same bits); anything else is a miss and
    the caller rebuilds it as before. Only the latest round is kept: :meth:`keep` drops the rest.

    A start taken is the caller's alone (the cache forgets it), who may write it in place (the
    move is computed into it: :meth:`bdfl.peer.node.Peer.rebuild_past_moves`); so what is kept must
    be referenced by nothing else once the round that rebuilt it is over (a worker's starts live
    only in its audit command)."""

    def __init__(self) -> None:
        self.round: int | None = None
        self._entries: dict[str, tuple[tuple[tuple[str, str, float], ...], NDArrays]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def keep(self, rnd: int, recipes: Mapping[str, Sequence[StartSource]], starts: Mapping[str, NDArrays]) -> None:
        """Hold ``starts`` (trainer -> its start of round ``rnd``, rebuilt from ``recipes[trainer]``)
        instead of whatever was held."""
        self._entries = {}
        self.round = int(rnd)
        for trainer, arrays in starts.items():
            recipe = recipes.get(trainer)
            if not recipe:
                continue
            for a in arrays:
                if isinstance(a, np.ndarray):
                    a.flags.writeable = False
            self._entries[trainer] = (recipe_key(recipe), list(arrays))

    def take(self, trainer: str, rnd: int, recipe: Sequence[StartSource]) -> NDArrays | None:
        """``trainer``'s start of round ``rnd`` if it is held and was rebuilt from exactly
        ``recipe`` (removed from the cache: the caller owns it now), else None."""
        got = self._entries.pop(trainer, None) if rnd == self.round else None
        if got is None or got[0] != recipe_key(recipe):
            self.misses += 1
            return None
        self.hits += 1
        return got[1]

    def clear(self) -> None:
        self._entries = {}
        self.round = None
