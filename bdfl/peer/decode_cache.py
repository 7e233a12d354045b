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
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import numpy as np

from bdfl.types import NDArrays

#: what a decode gives: the arrays, or the reason the bytes were refused (InvalidUpdate.reason)
Decoded = NDArrays | str


class DecodeCache:
    """hash-keyed decoded updates (or their refusal reasons), shared read-only; counts hits."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, Hashable], Decoded] = {}
        self.decodes = 0  # decodes run since creation
        self.hits = 0  # requests answered from the cache

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, h: str, key: Hashable, decode: Callable[[], Decoded]) -> Decoded:
        """The decode of the (hash-checked) bytes committed to by ``h`` under ``key`` (binding,
        spec, limits); runs ``decode`` on the first request only. Arrays come back read-only:
        copy before changing one."""
        k = (h.lower(), key)
        out = self._entries.get(k)
        if out is not None:
            self.hits += 1
            return out
        out = decode()
        self.decodes += 1
        if not isinstance(out, str):
            for a in out:
                if isinstance(a, np.ndarray):
                    a.flags.writeable = False
        self._entries[k] = out
        return out

    def clear(self) -> None:
        """Drop every entry (the arrays live on only where a peer still holds them)."""
        self._entries.clear()
