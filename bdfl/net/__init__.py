"""Networking layer: model bytes, blob endpoints, blob fetching, peer overlay.

Names are re-exported lazily, so ``import bdfl.net.serialization`` (or
``from bdfl.net import encode_arrays``) does not pull in aiohttp. The layer
never imports torch, web3 or anything from bdfl.chain / learning / peer.
See docs/net.md for the byte format, the HTTP API and the overlay rules.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "serialization": (
        "Binding", "EncodeError", "HashedBytes", "InvalidUpdate", "KeccakStream", "ModelSpec", "NetError",
        "decode_arrays", "decode_ndarrays",
        "encode_arrays", "encode_ndarrays", "hash_hex", "parse_hash_hex", "read_binding", "update_hash",
    ),
    "blobserver": ("BlobHost", "Endpoint", "LoopThread", "ServerLimits"),
    "fetch": ("FetchError", "Fetcher", "HashMismatch", "fetch_blob", "fetch_many"),
    "overlay": ("Overlay", "SeededStream", "build_overlay", "neighbours", "repair_overlay", "spectral_gap"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'bdfl.net' has no attribute {name!r}")
    return getattr(importlib.import_module(f"bdfl.net.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
