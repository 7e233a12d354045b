"""The replay check by content: which models of earlier rounds an auditor decoded, so that an
update re-publishing one of them is rejected however it was re-encoded.

The hash check (``defense.replay_window``) catches the same bytes submitted again. A free-rider
that re-publishes a model it received re-encodes it under its own binding (its address, this
round): new bytes, a new hash, the same arrays. An auditor decodes the earlier rounds' models it
needs anyway (the trainers' start recipes, their earlier moves); :class:`EarlierModels` keeps a
digest of each, not the arrays, and :meth:`EarlierModels.holds` says whether a candidate's
arrays are, value for value, one of them. No honest trainer publishes a model it received: its
fit moves it (a client that changes nothing did no work either).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = ["EarlierModels"]


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


class EarlierModels:
    """Digests of models of earlier rounds (:meth:`add`), and whether a model is one of them
    (:meth:`holds`): a sampled key first, the full digest only on a match, so a round's
    candidates cost a few values each."""

    def __init__(self) -> None:
        self._models: dict[bytes, set[bytes]] = {}
        self._hashes: set[str] = set()

    def add(self, update_hash: str, params: Sequence[np.ndarray]) -> None:
        """Keep the digest of ``params``, the model of the ``0x`` hash ``update_hash``; a hash
        already added is not read again (a round's updates are both this round's start recipes
        and the earlier moves' updates)."""
        if update_hash.lower() in self._hashes:
            return
        self._hashes.add(update_hash.lower())
        self._models.setdefault(_key(params), set()).add(_digest(params))

    def holds(self, params: Sequence[np.ndarray]) -> bool:
        digests = self._models.get(_key(params))
        return bool(digests) and _digest(params) in digests

    def __len__(self) -> int:
        return sum(len(d) for d in self._models.values())
