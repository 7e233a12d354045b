"""BDFL model bytes v1: a deterministic, code-free encoding of named arrays.

Layout (all integers little-endian)::

    magic    8 bytes   b"BDFLMB" + b"\\x00\\x01"   (format name + version 1)
    hlen     4 bytes   uint32, length of the header in bytes
    header   hlen      canonical JSON: {"arrays":[{"dtype","name","nbytes","offset","shape"}, ...]}
                       and, in an update bound to its submission, "binding":
                       {"chain_id": int, "contract": "0x<40 lowercase hex>", "round": int,
                        "submitter": "0x<40 lowercase hex>"}
                       and optionally "nonce": "0x<64 lowercase hex>" (absent, never null,
                       when not used)
    body     rest      the arrays' raw little-endian C-order bytes, back to back

An update a peer publishes for a submission carries a :class:`Binding` (chain id,
round-manager contract, round, submitter address): the keccak256 on chain then
commits to *who* submitted it *where*, so another member submitting the same bytes
(a copied update) is caught by comparing the binding with the submission it was
fetched for (:func:`read_binding`, ``decode_arrays(..., binding=...)``). Arrays
without a binding (a saved model, an unbound test update) keep the v1 layout
unchanged; the binding never changes the decoded arrays.

The optional ``nonce`` (32 random bytes) changes the bytes, hence the hash, of an update
without changing its arrays or what it is bound to. A peer whose ``submitUpdate`` was
front-run by a copier submitting its hash first (the contract then refuses the victim's
identical hash: ``DuplicateHash``) re-encodes the same arrays with a fresh nonce and
submits the new hash. Auditors compare only (chain id, contract, round, submitter): any
nonce, or none, matches. Bytes without a nonce (older peers) decode as before.

The same arrays (names, dtypes, shapes, and the values' bit patterns: ``0.0`` and ``-0.0`` compare
equal but are different bytes) always give the same bytes, so the keccak256 of the bytes
(:func:`update_hash`) identifies an update on chain. Encoding takes NaN and Inf; decoding refuses
them unless ``allow_non_finite``.
Decoding never executes code (no pickle) and is strict: every input is either
decoded to arrays that re-encode to exactly the same bytes, or rejected with
:class:`InvalidUpdate` carrying a machine-readable ``reason``.
"""

from __future__ import annotations

import functools
import json
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from eth_hash.auto import keccak

from bdfl.errors import BDFLError

MAGIC = b"BDFLMB\x00\x01"
_MAGIC_NAME = MAGIC[:6]
VERSION = 1
PREFIX_BYTES = len(MAGIC) + 4
DEFAULT_MAX_HEADER_BYTES = 1 << 20
#: The largest model update (encoded bytes) a peer publishes, fetches or decodes: one limit for
#: bdfl run's workers, bdfl peer and an endpoint's max_blob_bytes.
MAX_UPDATE_BYTES = 64 * 1024 * 1024
MAX_NAME_CHARS = 256
MAX_NDIM = 32

#: dtype name -> little-endian numpy dtype. Only plain numeric types: a bool
#: or object dtype could smuggle non-canonical bytes or code.
DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name).newbyteorder("<")
    for name in (
        "float16", "float32", "float64",
        "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64",
    )
}
_FLOAT_DTYPES = frozenset({"float16", "float32", "float64"})
_ENTRY_KEYS = frozenset({"dtype", "name", "nbytes", "offset", "shape"})
_HEX = frozenset("0123456789abcdefABCDEF")

#: Every ``InvalidUpdate.reason`` the decoder can give.
REASONS = (
    "too_large",       # more bytes than max_bytes (checked before parsing)
    "truncated",       # shorter than the prefix / header / declared arrays
    "bad_magic",       # not BDFL model bytes
    "bad_version",     # BDFL model bytes of another version
    "bad_header",      # header too long, not canonical JSON, or schema violated
    "trailing_bytes",  # body longer than the declared arrays
    "name_mismatch",   # names (or their number) differ from the spec
    "dtype_mismatch",  # a dtype differs from the spec
    "shape_mismatch",  # a shape differs from the spec
    "non_finite",      # NaN or +-Inf in a float array
    "binding_mismatch",  # bound to another (chain id, contract, round, submitter), or unbound where bound was expected
)


class NetError(BDFLError):
    """A networking-layer failure with a machine-readable ``reason`` code."""

    def __init__(self, reason: str, message: str, fix: str | None = None) -> None:
        super().__init__(message, fix)
        self.reason = reason


class InvalidUpdate(NetError):
    """Bytes that are not an acceptable model update (see :data:`REASONS`)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        text = f"invalid model update ({reason})" + (f": {detail}" if detail else "")
        super().__init__(reason, text)


class EncodeError(BDFLError):
    """Arrays that cannot be encoded (unsupported dtype, bad or duplicate name)."""


NamedArrays = Sequence[tuple[str, np.ndarray]]

_BINDING_KEYS = frozenset({"chain_id", "contract", "round", "submitter"})
_NONCE_HEX = 64  # a nonce is 32 bytes: "0x" + 64 lowercase hex digits
_UINT256 = 1 << 256


def _address(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) != 42 or value[:2] not in ("0x", "0X") or not _HEX.issuperset(value[2:]):
        raise ValueError(f"{what} must be 0x + 40 hex digits, got {str(value)[:60]!r}")
    return "0x" + value[2:].lower()


@dataclass(frozen=True)
class Binding:
    """What an update's bytes are bound to: the chain, the round-manager contract, the round
    and the submitting member (addresses normalised to lowercase); ``nonce`` (optional,
    ``0x`` + 64 lowercase hex) only makes the bytes differ (:meth:`with_fresh_nonce`)."""

    chain_id: int
    contract: str
    round: int
    submitter: str
    nonce: str | None = None

    def __post_init__(self) -> None:
        for name in ("chain_id", "round"):
            v = getattr(self, name)
            if type(v) is not int or not 0 <= v < _UINT256:
                raise ValueError(f"binding {name} must be an int in [0, 2**256), got {v!r}")
        object.__setattr__(self, "contract", _address(self.contract, "binding contract"))
        object.__setattr__(self, "submitter", _address(self.submitter, "binding submitter"))
        n = self.nonce
        if n is not None and (not isinstance(n, str) or len(n) != 2 + _NONCE_HEX or n[:2] != "0x"
                              or not _HEX.issuperset(n[2:]) or n != n.lower()):
            raise ValueError(f"binding nonce must be 0x + {_NONCE_HEX} lowercase hex digits, got {str(n)[:80]!r}")

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"chain_id": self.chain_id, "contract": self.contract, "round": self.round,
                                  "submitter": self.submitter}
        if self.nonce is not None:
            out["nonce"] = self.nonce
        return out

    @property
    def subject(self) -> tuple[int, str, int, str]:
        """What the bytes are bound to: (chain id, contract, round, submitter), the nonce left out."""
        return (self.chain_id, self.contract, self.round, self.submitter)

    def matches(self, expected: Binding) -> bool:
        """Whether bytes carrying this binding are acceptable where ``expected`` is: the same
        subject, and the same nonce when ``expected`` names one (any nonce otherwise)."""
        return self.subject == expected.subject and (expected.nonce is None or self.nonce == expected.nonce)

    def with_fresh_nonce(self) -> Binding:
        """The same binding with a new random nonce (32 bytes from ``os.urandom``)."""
        return replace(self, nonce="0x" + os.urandom(_NONCE_HEX // 2).hex())

    @classmethod
    def from_json(cls, obj: object) -> Binding:
        """Strict inverse of :meth:`as_json` (lowercase addresses only); InvalidUpdate otherwise."""
        if not isinstance(obj, dict) or set(obj) - {"nonce"} != _BINDING_KEYS:
            raise InvalidUpdate("bad_header", f"binding must have exactly the keys {sorted(_BINDING_KEYS)} (and optionally nonce)")
        if "nonce" in obj and obj["nonce"] is None:
            raise InvalidUpdate("bad_header", "binding nonce must be omitted, not null (one encoding per content)")
        try:
            b = cls(obj["chain_id"], obj["contract"], obj["round"], obj["submitter"], obj.get("nonce"))
        except ValueError as e:
            raise InvalidUpdate("bad_header", str(e)) from None
        if b.contract != obj["contract"] or b.submitter != obj["submitter"]:
            raise InvalidUpdate("bad_header", "binding addresses must be lowercase (one encoding per content)")
        return b


@dataclass(frozen=True)
class ModelSpec:
    """Expected layout of an update: ((name, dtype name, shape), ...) in order."""

    entries: tuple[tuple[str, str, tuple[int, ...]], ...]

    @classmethod
    def of(cls, arrays: NamedArrays) -> ModelSpec:
        """The spec that ``arrays`` (named, as for :func:`encode_arrays`) satisfy."""
        return cls(tuple((n, _dtype_name(a), tuple(int(s) for s in np.shape(a))) for n, a in arrays))

    @classmethod
    def of_ndarrays(cls, arrays: Sequence[np.ndarray]) -> ModelSpec:
        """The spec of an unnamed list (names p000, p001, ... as in :func:`encode_ndarrays`)."""
        return cls.of(list(zip(ndarray_names(len(arrays)), arrays)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e[0] for e in self.entries)

    @property
    def nbytes(self) -> int:
        """Body size in bytes of an update matching this spec."""
        return sum(DTYPES[d].itemsize * _prod(s) for _, d, s in self.entries)

    @functools.cached_property
    def max_header_bytes(self) -> int:
        """The longest header an update matching this spec has: its array entries plus the
        longest binding (:data:`BINDING_HEADER_BYTES`). A decoder given the spec refuses a longer
        one before scanning it (a 1 MB header of empty entries took 1,500x a normal decode)."""
        entries, offset = [], 0
        for name, dtype, shape in self.entries:
            nbytes = DTYPES[dtype].itemsize * _prod(shape)
            entries.append({"dtype": dtype, "name": name, "nbytes": nbytes, "offset": offset, "shape": list(shape)})
            offset += nbytes
        return len(_canonical_json({"arrays": entries})) + BINDING_HEADER_BYTES

    @property
    def max_encoded_bytes(self) -> int:
        """The most bytes an update matching this spec encodes to: what a fetcher needs to read
        of one (a flat :data:`MAX_UPDATE_BYTES` let hostile sources hold 63 MiB each in flight)."""
        return PREFIX_BYTES + self.max_header_bytes + self.nbytes


def ndarray_names(n: int) -> list[str]:
    """Names given to an unnamed array list: p000, p001, ..."""
    return [f"p{i:03d}" for i in range(n)]


def _prod(shape: Iterable[int]) -> int:
    # Python ints: a hostile shape can never overflow or allocate.
    out = 1
    for s in shape:
        out *= s
    return out


def _dtype_name(a: np.ndarray) -> str:
    dt = np.asarray(a).dtype
    if dt.name not in DTYPES or dt.kind not in "fiu":
        raise EncodeError(
            f"unsupported array dtype {dt!s}",
            fix=f"cast to one of {', '.join(DTYPES)} (e.g. bool -> uint8, bfloat16 -> float32)",
        )
    return dt.name


def _canonical_json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


#: What the longest binding adds to a header (``,"binding":{...}`` with a 78-digit chain id and
#: round, two addresses and a nonce).
BINDING_HEADER_BYTES = len(_canonical_json({"binding": Binding(
    _UINT256 - 1, "0x" + "0" * 40, _UINT256 - 1, "0x" + "0" * 40, "0x" + "0" * _NONCE_HEX).as_json()}))


# --------------------------------------------------------------------- encode


def encode_arrays(arrays: NamedArrays, *, binding: Binding | None = None) -> HashedBytes:
    """Encode ``[(name, array), ...]`` (order kept, names unique) as BDFL model bytes v1,
    bound to ``binding`` when given. The arrays are written straight into one buffer (no
    per-array intermediate), and the result carries its keccak256 (:class:`HashedBytes`)."""
    entries, sources, offset, seen = [], [], 0, set()
    for name, arr in arrays:
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
            raise EncodeError(f"array name must be a string of 1..{MAX_NAME_CHARS} characters, got {name!r}")
        if name in seen:
            raise EncodeError(f"duplicate array name {name!r}")
        seen.add(name)
        a = np.asarray(arr)
        dname = _dtype_name(a)
        if a.ndim > MAX_NDIM:
            raise EncodeError(f"array {name!r} has {a.ndim} dimensions (max {MAX_NDIM})")
        nbytes = a.size * DTYPES[dname].itemsize
        entries.append({"dtype": dname, "name": name, "nbytes": nbytes, "offset": offset, "shape": list(a.shape)})
        sources.append(a)
        offset += nbytes
    header = _canonical_json({"arrays": entries} if binding is None else {"arrays": entries, "binding": binding.as_json()})
    start = PREFIX_BYTES + len(header)
    buf = bytearray(start + offset)
    buf[:start] = MAGIC + struct.pack("<I", len(header)) + header
    for e, a in zip(entries, sources):
        if e["nbytes"]:
            # Little-endian C order whatever the input layout, so equal values give equal bytes.
            dst = np.frombuffer(buf, dtype=DTYPES[e["dtype"]], count=a.size, offset=start + e["offset"])
            np.copyto(dst.reshape(a.shape), a, casting="equiv")  # "equiv": a byte-order swap at most
    return HashedBytes.of(buf)


def encode_ndarrays(arrays: Sequence[np.ndarray], *, binding: Binding | None = None) -> HashedBytes:
    """Encode an unnamed list (Flower's NDArrays) with names p000, p001, ..."""
    return encode_arrays(list(zip(ndarray_names(len(arrays)), arrays)), binding=binding)


# --------------------------------------------------------------------- decode


#: A valid header nests 4 levels ({"arrays": [{"shape": [...]}]}); anything deeper is refused
#: before the JSON parser sees it.
MAX_HEADER_DEPTH = 8


def _nesting_depth(raw: bytes) -> int:
    """Maximum bracket nesting of JSON text, ignoring brackets inside strings (linear scan)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_HEADER_DEPTH:
                    return deepest
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _parse_header(data: memoryview, max_header_bytes: int) -> tuple[list[dict], int, Binding | None]:
    """Validate prefix and header; return (entries, body start, binding or None)."""
    if len(data) < PREFIX_BYTES:
        raise InvalidUpdate("truncated", f"{len(data)} bytes, shorter than the {PREFIX_BYTES}-byte prefix")
    if bytes(data[:6]) != _MAGIC_NAME:
        raise InvalidUpdate("bad_magic", "not BDFL model bytes")
    if bytes(data[6:8]) != MAGIC[6:8]:
        raise InvalidUpdate("bad_version", f"version bytes {bytes(data[6:8]).hex()}, expected {MAGIC[6:8].hex()}")
    (hlen,) = struct.unpack_from("<I", data, 8)
    if hlen > max_header_bytes:
        raise InvalidUpdate("bad_header", f"header length {hlen} exceeds {max_header_bytes}")
    start = PREFIX_BYTES + hlen
    if start > len(data):
        raise InvalidUpdate("truncated", f"header needs {hlen} bytes, {len(data) - PREFIX_BYTES} present")
    raw = bytes(data[PREFIX_BYTES:start])
    if _nesting_depth(raw) > MAX_HEADER_DEPTH:
        # json's C scanner recurses per level: with a raised recursion limit (torch and others
        # raise it) a deeply nested header overflows the C stack and kills the process.
        raise InvalidUpdate("bad_header", f"header JSON nests deeper than {MAX_HEADER_DEPTH} levels")
    try:
        header = json.loads(raw.decode("ascii"))
        canonical = _canonical_json(header) == raw
    except (ValueError, RecursionError, TypeError) as e:  # bad text, bad JSON, deep nesting, NaN
        raise InvalidUpdate("bad_header", f"header is not JSON: {type(e).__name__}") from None
    if not canonical:
        # One encoding per content: no whitespace, sorted keys, no duplicates.
        raise InvalidUpdate("bad_header", "header JSON is not canonical")
    if not isinstance(header, dict) or set(header) - {"binding"} != {"arrays"} or not isinstance(header["arrays"], list):
        raise InvalidUpdate("bad_header", 'header must be {"arrays": [...]} (and optionally "binding")')
    binding = Binding.from_json(header["binding"]) if "binding" in header else None
    return header["arrays"], start, binding


def _check_entry(i: int, e: object, offset: int, names: set[str]) -> int:
    """Validate one header entry against the schema; return its nbytes."""
    if not isinstance(e, dict) or set(e) != _ENTRY_KEYS:
        raise InvalidUpdate("bad_header", f"entry {i} must have exactly the keys {sorted(_ENTRY_KEYS)}")
    name, dtype, shape, off, nbytes = e["name"], e["dtype"], e["shape"], e["offset"], e["nbytes"]
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS or name in names:
        raise InvalidUpdate("bad_header", f"entry {i}: name missing, too long or duplicate")
    names.add(name)
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise InvalidUpdate("bad_header", f"entry {i}: unsupported dtype {str(dtype)[:32]!r}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_NDIM
        or not all(type(s) is int and s >= 0 for s in shape)  # type(): JSON true is a bool, not a dim
    ):
        raise InvalidUpdate("bad_header", f"entry {i}: shape must be a list of at most {MAX_NDIM} non-negative ints")
    if type(off) is not int or type(nbytes) is not int:
        raise InvalidUpdate("bad_header", f"entry {i}: offset and nbytes must be ints")
    if off != offset:
        raise InvalidUpdate("bad_header", f"entry {i}: offset {off}, expected {offset} (arrays are contiguous)")
    if nbytes != DTYPES[dtype].itemsize * _prod(shape):
        raise InvalidUpdate("bad_header", f"entry {i}: nbytes {nbytes} != itemsize * prod(shape)")
    return nbytes


def _check_spec(entries: list[dict], spec: ModelSpec) -> None:
    if len(entries) != len(spec.entries):
        raise InvalidUpdate("name_mismatch", f"{len(entries)} arrays, spec has {len(spec.entries)}")
    for e, (name, dtype, shape) in zip(entries, spec.entries):
        if e["name"] != name:
            raise InvalidUpdate("name_mismatch", f"array {e['name']!r}, spec expects {name!r}")
        if e["dtype"] != dtype:
            raise InvalidUpdate("dtype_mismatch", f"array {name!r} is {e['dtype']}, spec expects {dtype}")
        if tuple(e["shape"]) != tuple(shape):
            got, want = tuple(e["shape"]), tuple(shape)
            raise InvalidUpdate("shape_mismatch", f"array {name!r} has shape {got}, spec expects {want}")


def decode_arrays(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int,
    spec: ModelSpec | None = None,
    allow_non_finite: bool = False,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    binding: Binding | None = None,
) -> list[tuple[str, np.ndarray]]:
    """Strictly decode BDFL model bytes v1 into ``[(name, array), ...]``.

    With ``binding``, the bytes must carry that binding (:meth:`Binding.matches`: any nonce
    unless ``binding`` names one; ``binding_mismatch`` otherwise: another submitter's, round's,
    contract's or chain's update, or an unbound one).

    Returns **writable copies** in native byte order that own their memory (safe
    to mutate or hand to ``torch.from_numpy``; they do not keep ``data`` alive).
    Raises :class:`InvalidUpdate` for every malformed input; nothing is allocated
    in proportion to declared sizes before they are checked against the real size.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
    view = memoryview(data).cast("B")
    if len(view) > max_bytes:  # before any parsing
        raise InvalidUpdate("too_large", f"{len(view)} bytes > max_bytes {max_bytes}")
    if spec is not None:  # no header an update of the spec could have is longer
        max_header_bytes = min(max_header_bytes, spec.max_header_bytes)
    entries, start, bound = _parse_header(view, max_header_bytes)
    if binding is not None and (bound is None or not bound.matches(binding)):
        raise InvalidUpdate("binding_mismatch", f"bytes bound to {bound}, expected {binding}")
    body_len = len(view) - start
    offset, names = 0, set()
    for i, e in enumerate(entries):
        offset += _check_entry(i, e, offset, names)
        if offset > body_len:
            raise InvalidUpdate("truncated", f"arrays declare at least {offset} bytes, body has {body_len}")
    if offset != body_len:
        raise InvalidUpdate("trailing_bytes", f"body has {body_len} bytes, arrays declare {offset}")
    if spec is not None:
        _check_spec(entries, spec)
    out = []
    for e in entries:
        dt = DTYPES[e["dtype"]]
        arr = np.frombuffer(view, dtype=dt, count=e["nbytes"] // dt.itemsize, offset=start + e["offset"])
        # astype copies: aligned, writable, native order, independent of `data`.
        arr = arr.astype(dt.newbyteorder("="), copy=True).reshape(e["shape"])
        if not allow_non_finite and e["dtype"] in _FLOAT_DTYPES and not np.isfinite(arr).all():
            raise InvalidUpdate("non_finite", f"array {e['name']!r} contains NaN or Inf")
        out.append((e["name"], arr))
    return out


def decode_ndarrays(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int,
    spec: ModelSpec | None = None,
    allow_non_finite: bool = False,
    binding: Binding | None = None,
) -> list[np.ndarray]:
    """Decode bytes from :func:`encode_ndarrays`; names must be p000, p001, ... in order."""
    named = decode_arrays(data, max_bytes=max_bytes, spec=spec, allow_non_finite=allow_non_finite, binding=binding)
    expected = ndarray_names(len(named))
    for (name, _), want in zip(named, expected):
        if name != want:
            raise InvalidUpdate("name_mismatch", f"array {name!r} where an unnamed list expects {want!r}")
    return [a for _, a in named]


def read_binding(data: bytes | bytearray | memoryview, *, max_bytes: int,
                 max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> Binding | None:
    """The binding in the header of model bytes (None when unbound), reading only the prefix
    and header; InvalidUpdate if they are malformed."""
    view = memoryview(data).cast("B")
    if len(view) > max_bytes:
        raise InvalidUpdate("too_large", f"{len(view)} bytes > max_bytes {max_bytes}")
    return _parse_header(view, max_header_bytes)[2]


# --------------------------------------------------------------------- hashes


class KeccakStream:
    """keccak256 computed incrementally over chunks (:meth:`update`), so bytes are hashed
    while they are produced or received instead of in a second pass; ``digest()`` equals
    ``keccak(b"".join(chunks))``. ``size`` counts the bytes fed so far. The hasher may keep
    references to the chunks until it is dropped: feed it immutable ones (bytes)."""

    def __init__(self) -> None:
        self._h = keccak.new(b"")
        self.size = 0

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        self._h.update(chunk)
        self.size += memoryview(chunk).nbytes

    def digest(self) -> bytes:
        return bytes(self._h.digest())


class HashedBytes(bytes):
    """Immutable bytes that carry their keccak256, computed once from exactly these bytes
    (by :func:`encode_arrays`, or while a fetch received them), so :func:`update_hash` of them
    costs nothing: an update fetched once and checked by every auditor and recipient is hashed
    once. Build one with :meth:`of` (hashes now) or from a :class:`KeccakStream` that saw exactly
    these bytes (:meth:`from_stream`). Pickled as plain bytes: a digest is never trusted across
    processes."""

    _keccak: bytes

    @classmethod
    def of(cls, data: bytes | bytearray | memoryview) -> HashedBytes:
        """``data`` as HashedBytes (one copy, one hash)."""
        if isinstance(data, HashedBytes):
            return data
        out = cls(data)
        out._keccak = keccak(out)
        return out

    @classmethod
    def from_stream(cls, data: bytes | bytearray | memoryview, stream: KeccakStream) -> HashedBytes:
        """``data`` with the digest ``stream`` computed while producing or receiving exactly these
        bytes (checked: the same number of bytes)."""
        out = cls(data)
        if stream.size != len(out):
            raise ValueError(f"the stream hashed {stream.size} bytes, the data has {len(out)}")
        out._keccak = stream.digest()
        return out

    @property
    def keccak256(self) -> bytes:
        return self._keccak

    def __reduce__(self) -> tuple[type, tuple[bytes]]:
        return (bytes, (bytes(self),))


def update_hash(data: bytes | bytearray | memoryview) -> bytes:
    """keccak256 of the update bytes (the value recorded on chain), 32 bytes; free for
    :class:`HashedBytes` (computed when they were made)."""
    if isinstance(data, HashedBytes):
        return data._keccak
    return keccak(data if isinstance(data, bytes) else bytes(data))


def hash_hex(h: bytes) -> str:
    """``0x`` + 64 lowercase hex digits."""
    if len(h) != 32:
        raise ValueError(f"a hash is 32 bytes, got {len(h)}")
    return "0x" + h.hex()


def parse_hash_hex(s: str) -> bytes:
    """Inverse of :func:`hash_hex` (case-insensitive); ValueError if malformed."""
    if not isinstance(s, str) or len(s) != 66 or s[:2] not in ("0x", "0X") or not _HEX.issuperset(s[2:]):
        raise ValueError(f"expected 0x + 64 hex digits, got {str(s)[:80]!r}")
    return bytes.fromhex(s[2:])
