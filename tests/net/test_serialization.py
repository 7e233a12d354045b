"""BDFL model bytes v1: round trips, determinism, every decoder rejection, fuzzing."""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
import tracemalloc
from collections import Counter

import numpy as np
import pytest
from eth_hash.auto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bdfl.errors import BDFLError
from bdfl.net.serialization import (
    DTYPES,
    MAGIC,
    REASONS,
    EncodeError,
    HashedBytes,
    InvalidUpdate,
    KeccakStream,
    ModelSpec,
    decode_arrays,
    decode_ndarrays,
    encode_arrays,
    encode_ndarrays,
    hash_hex,
    parse_hash_hex,
    update_hash,
)
from tests.net.helpers import mutate

BIG = 1 << 24
FUZZ_COUNTS: Counter[str] = Counter()


def sample_arrays() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [
        ("conv.weight", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
        ("conv.bias", rng.standard_normal(4).astype(np.float16)),
        ("fc.weight", rng.standard_normal((2, 5))),
        ("bn.num_batches_tracked", np.array(7, dtype=np.int64)),
        ("empty", np.zeros((0, 3), dtype=np.int32)),
        ("bytes", np.arange(10, dtype=np.uint8)),
    ]


def build(header: object, body: bytes = b"", *, raw_header: bytes | None = None, magic: bytes = MAGIC,
          hlen: int | None = None) -> bytes:
    h = raw_header if raw_header is not None else json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return magic + struct.pack("<I", len(h) if hlen is None else hlen) + h + body


def entry(name: str = "a", dtype: str = "float32", shape: list[int] | None = None, offset: int = 0,
          nbytes: int | None = None) -> dict:
    shape = [2] if shape is None else shape
    if nbytes is None:
        nbytes = DTYPES[dtype].itemsize * int(np.prod(shape, dtype=object))
    return {"dtype": dtype, "name": name, "nbytes": nbytes, "offset": offset, "shape": shape}


def reason_of(data: bytes, **kw: object) -> str:
    kw.setdefault("max_bytes", BIG)
    with pytest.raises(InvalidUpdate) as ei:
        decode_arrays(data, **kw)  # type: ignore[arg-type]
    assert isinstance(ei.value, BDFLError)
    return ei.value.reason


# ----------------------------------------------------------------- round trips


def test_round_trip_keeps_names_order_dtypes_shapes_values() -> None:
    arrays = sample_arrays()
    out = decode_arrays(encode_arrays(arrays), max_bytes=BIG)
    assert [n for n, _ in out] == [n for n, _ in arrays]
    for (_, a), (_, b) in zip(arrays, out):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def test_decoded_arrays_are_writable_independent_copies() -> None:
    data = encode_arrays(sample_arrays())
    out = decode_arrays(data, max_bytes=BIG)
    for _, a in out:
        assert a.flags.writeable and a.flags.c_contiguous and a.flags.aligned
        assert a.dtype.isnative
    out[0][1][...] = 0
    np.testing.assert_array_equal(decode_arrays(data, max_bytes=BIG)[0][1], sample_arrays()[0][1])


def test_encoding_is_deterministic_across_layout_and_byte_order() -> None:
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    ref = encode_arrays([("x", a)])
    assert encode_arrays([("x", a.copy())]) == ref
    assert encode_arrays([("x", np.asfortranarray(a))]) == ref
    assert encode_arrays([("x", a.astype(">f8"))]) == ref
    assert encode_arrays([("x", a.T.copy().T)]) == ref
    assert encode_arrays(sample_arrays()) == encode_arrays(sample_arrays())


def test_reencoding_decoded_bytes_is_identity() -> None:
    data = encode_arrays(sample_arrays())
    assert encode_arrays(decode_arrays(data, max_bytes=BIG)) == data


def test_layout_prefix_and_canonical_header() -> None:
    data = encode_arrays([("w", np.ones(2, np.float32))])
    assert data[:8] == b"BDFLMB\x00\x01"
    (hlen,) = struct.unpack_from("<I", data, 8)
    header = data[12 : 12 + hlen]
    assert header == b'{"arrays":[{"dtype":"float32","name":"w","nbytes":8,"offset":0,"shape":[2]}]}'
    assert data[12 + hlen :] == np.ones(2, "<f4").tobytes()


def test_ndarrays_helpers_round_trip_with_generated_names() -> None:
    arrays = [a for _, a in sample_arrays()]
    data = encode_ndarrays(arrays)
    assert [n for n, _ in decode_arrays(data, max_bytes=BIG)][:3] == ["p000", "p001", "p002"]
    out = decode_ndarrays(data, max_bytes=BIG, spec=ModelSpec.of_ndarrays(arrays))
    for a, b in zip(arrays, out):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InvalidUpdate) as ei:
        decode_ndarrays(encode_arrays([("w", np.ones(1))]), max_bytes=BIG)
    assert ei.value.reason == "name_mismatch"


def test_modelspec() -> None:
    arrays = sample_arrays()
    spec = ModelSpec.of(arrays)
    assert spec.names == tuple(n for n, _ in arrays)
    assert spec.entries[0] == ("conv.weight", "float32", (4, 3, 3, 3))
    assert spec.nbytes == sum(a.nbytes for _, a in arrays)
    assert spec == ModelSpec.of(decode_arrays(encode_arrays(arrays), max_bytes=BIG))
    hash(spec)  # frozen


def test_empty_array_list_round_trips() -> None:
    assert decode_arrays(encode_arrays([]), max_bytes=BIG) == []


@pytest.mark.parametrize(
    "bad",
    [
        [("b", np.array([True, False]))],
        [("o", np.array([object()], dtype=object))],
        [("c", np.array([1 + 2j]))],
        [("s", np.array(["x"]))],
        [("", np.ones(1))],
        [(3, np.ones(1))],
        [("x" * 257, np.ones(1))],
        [("dup", np.ones(1)), ("dup", np.ones(1))],
    ],
)
def test_encode_refuses_unsupported_input(bad: list) -> None:
    with pytest.raises(EncodeError):
        encode_arrays(bad)


# ----------------------------------------------------------------- rejections


def test_too_large_is_checked_before_parsing() -> None:
    data = encode_arrays(sample_arrays())
    assert reason_of(data, max_bytes=len(data) - 1) == "too_large"
    assert reason_of(b"garbage" * 10, max_bytes=10) == "too_large"
    decode_arrays(data, max_bytes=len(data))


@pytest.mark.parametrize("n", [0, 1, 7, 8, 11])
def test_shorter_than_prefix_is_truncated(n: int) -> None:
    assert reason_of(encode_arrays(sample_arrays())[:n]) == "truncated"


def test_truncated_header_and_body() -> None:
    data = encode_arrays(sample_arrays())
    (hlen,) = struct.unpack_from("<I", data, 8)
    assert reason_of(data[: 12 + hlen - 1]) == "truncated"
    assert reason_of(data[: 12 + hlen]) == "truncated"
    assert reason_of(data[:-1]) == "truncated"


def test_wrong_magic_and_version() -> None:
    data = encode_arrays(sample_arrays())
    assert reason_of(b"\x89PNG\r\n\x1a\n" + data[8:]) == "bad_magic"
    assert reason_of(b"PK\x03\x04" + data[4:]) == "bad_magic"
    assert reason_of(b"BDFLMB\x00\x02" + data[8:]) == "bad_version"
    assert reason_of(b"BDFLMB\x01\x01" + data[8:]) == "bad_version"


def test_header_length_bound() -> None:
    assert reason_of(build(None, raw_header=b"{}", hlen=0xFFFFFFFF)) == "bad_header"
    data = encode_arrays(sample_arrays())
    assert reason_of(data, max_header_bytes=16) == "bad_header"
    assert reason_of(build(None, raw_header=b'{"arrays":[]}', hlen=1000)) == "truncated"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"arrays":[}',
        b"\xff\xfe{}",
        b'{"arrays": []}',                        # whitespace: not canonical
        b'{"arrays":[],"arrays":[]}',             # duplicate key
        b'{"arrays":[{"shape":[2],"offset":0,"nbytes":8,"name":"a","dtype":"float32"}]}',  # unsorted keys
        b'{"arrays":NaN}',
        b'{"arrays":[1e999]}',
        b'{"arrays":[' + b"9" * 5000 + b"]}",     # int beyond Python's digit limit
        b"[" * 100_000 + b"]" * 100_000,           # nesting bomb (RecursionError)
        "{\"arrays\":[],\"\u00e9\":1}".encode("utf-8"),  # non-ASCII
        b"",
    ],
)
def test_bad_json_header(raw: bytes) -> None:
    assert reason_of(build(None, raw_header=raw)) == "bad_header"


@pytest.mark.parametrize(
    "header",
    [
        [],
        {},
        {"arrays": {}},
        {"arrays": [], "extra": 1},
        {"arrays": [1]},
        {"arrays": [{"dtype": "float32", "name": "a", "nbytes": 8, "offset": 0}]},  # missing key
        {"arrays": [dict(entry(), extra=1)]},
        {"arrays": [entry(name="")]},
        {"arrays": [entry(name="x" * 257)]},
        {"arrays": [entry(name=5)]},  # type: ignore[arg-type]
        {"arrays": [entry(dtype="bool", nbytes=2)]},
        {"arrays": [entry(dtype="object", nbytes=16)]},
        {"arrays": [entry(dtype="<f4", nbytes=8)]},
        {"arrays": [entry(shape=[-1], nbytes=-4)]},
        {"arrays": [entry(shape=[True, 2], nbytes=8)]},
        {"arrays": [entry(shape=[2.0], nbytes=8)]},  # type: ignore[list-item]
        {"arrays": [entry(shape="2", nbytes=8)]},  # type: ignore[arg-type]
        {"arrays": [entry(shape=[1] * 33, nbytes=4)]},
        {"arrays": [entry(nbytes=7)]},
        {"arrays": [entry(offset=1)]},
        {"arrays": [dict(entry(), offset=0.0)]},
        {"arrays": [entry("a"), entry("a", offset=8)]},  # duplicate names
        {"arrays": [entry("a"), entry("b", offset=0)]},  # overlapping
        {"arrays": [entry("a"), entry("b", offset=12)]},  # gap
    ],
)
def test_header_schema_violations(header: object) -> None:
    assert reason_of(build(header, b"\x00" * 16)) == "bad_header"


def test_huge_declared_sizes_are_refused_without_allocating() -> None:
    huge = entry(dtype="float64", shape=[2**40, 2**40])
    tracemalloc.start()
    try:
        assert reason_of(build({"arrays": [huge]}, b"\x00" * 8)) == "truncated"
        many = {"arrays": [entry(f"a{i}", shape=[2**30], offset=i * 2**32) for i in range(50)]}
        assert reason_of(build(many, b"\x00" * 8)) == "truncated"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_trailing_bytes() -> None:
    assert reason_of(encode_arrays(sample_arrays()) + b"\x00") == "trailing_bytes"
    assert reason_of(build({"arrays": []}, b"x")) == "trailing_bytes"


def test_spec_mismatches() -> None:
    arrays = sample_arrays()
    data = encode_arrays(arrays)
    spec = ModelSpec.of(arrays)
    decode_arrays(data, max_bytes=BIG, spec=spec)
    e = list(spec.entries)
    renamed = ModelSpec(tuple([("other", *e[0][1:]), *e[1:]]))
    retyped = ModelSpec(tuple([(e[0][0], "float64", e[0][2]), *e[1:]]))
    reshaped = ModelSpec(tuple([(e[0][0], e[0][1], (4, 27)), *e[1:]]))
    assert reason_of(data, spec=renamed) == "name_mismatch"
    assert reason_of(data, spec=retyped) == "dtype_mismatch"
    assert reason_of(data, spec=reshaped) == "shape_mismatch"
    assert reason_of(data, spec=ModelSpec(tuple(e[:-1]))) == "name_mismatch"
    assert reason_of(data, spec=ModelSpec(tuple(e + [("more", "uint8", (1,))]))) == "name_mismatch"
    assert reason_of(data, spec=ModelSpec(tuple(reversed(e)))) == "name_mismatch"


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected_unless_allowed(dtype: str, value: float) -> None:
    a = np.ones((3, 3), dtype=dtype)
    a[1, 2] = value
    data = encode_arrays([("ok", np.ones(2, np.float32)), ("w", a)])
    assert reason_of(data) == "non_finite"
    out = decode_arrays(data, max_bytes=BIG, allow_non_finite=True)
    assert encode_arrays(out) == data


def test_non_finite_check_ignores_integer_bit_patterns() -> None:
    # 0x7fc00000 is a float32 NaN bit pattern but a fine int32.
    decode_arrays(encode_arrays([("i", np.array([0x7FC00000], np.int32))]), max_bytes=BIG)


def test_non_bytes_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        decode_arrays("BDFLMB", max_bytes=BIG)  # type: ignore[arg-type]


def test_bytearray_and_memoryview_inputs() -> None:
    data = encode_arrays(sample_arrays())
    assert encode_arrays(decode_arrays(bytearray(data), max_bytes=BIG)) == data
    assert encode_arrays(decode_arrays(memoryview(data), max_bytes=BIG)) == data


# ----------------------------------------------------------------- hashes


def test_update_hash_is_keccak256() -> None:
    assert update_hash(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    h = update_hash(b"abc")
    assert len(h) == 32 and hash_hex(h) == "0x" + h.hex()
    assert parse_hash_hex(hash_hex(h)) == h
    assert parse_hash_hex(hash_hex(h).upper().replace("0X", "0x")) == h


def reference_encoding(arrays: list[tuple[str, np.ndarray]]) -> bytes:
    """The v1 layout spelled out independently of the encoder: per-array little-endian C-order
    bytes, back to back, after the canonical header."""
    entries, body = [], b""
    for name, a in arrays:
        raw = np.ascontiguousarray(a, dtype=np.asarray(a).dtype.newbyteorder("<")).tobytes()
        entries.append({"dtype": np.asarray(a).dtype.name, "name": name, "nbytes": len(raw), "offset": len(body),
                        "shape": list(np.shape(a))})
        body += raw
    return build({"arrays": entries}) + body


def test_encoding_writes_the_layout_and_carries_its_keccak(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    big_endian = rng.standard_normal((3, 4)).astype(">f8")
    arrays = [*sample_arrays(), ("be", big_endian), ("strided", rng.standard_normal((6, 8))[::2, 1::3].T),
              ("scalar", np.float32(2.5)), ("be_int", np.arange(5, dtype=">i2"))]
    out = encode_arrays(arrays)
    assert isinstance(out, HashedBytes) and type(bytes(out)) is bytes
    assert out == reference_encoding(arrays)
    expected = keccak(bytes(out))
    assert update_hash(out) == expected == out.keccak256
    # the digest is the one computed at encoding: update_hash does not hash again
    monkeypatch.setattr("bdfl.net.serialization.keccak", lambda _d: pytest.fail("hashed again"))
    assert update_hash(out) == expected


def test_keccak_stream_equals_keccak_of_the_joined_chunks() -> None:
    rng = np.random.default_rng(4)
    data = rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    for cuts in ([], [1], [136, 137, 272], [65536, 65537, 131072, 299_999]):
        stream = KeccakStream()
        for a, b in zip([0, *cuts], [*cuts, len(data)]):
            stream.update(data[a:b])
        assert stream.size == len(data) and stream.digest() == keccak(data)
    assert KeccakStream().digest() == keccak(b"")


def test_hashed_bytes_from_a_stream_of_other_bytes_is_refused_and_pickles_as_plain_bytes() -> None:
    stream = KeccakStream()
    stream.update(b"abc")
    with pytest.raises(ValueError):
        HashedBytes.from_stream(b"abcd", stream)
    hb = HashedBytes.from_stream(bytearray(b"abc"), stream)
    assert hb == b"abc" and update_hash(hb) == keccak(b"abc")
    assert HashedBytes.of(hb) is hb and update_hash(HashedBytes.of(memoryview(b"xyz"))) == keccak(b"xyz")
    back = pickle.loads(pickle.dumps(hb))  # a digest never travels: the receiver hashes itself
    assert type(back) is bytes and back == b"abc"


@pytest.mark.parametrize("bad", ["", "0x", "0x" + "g" * 64, "0x" + "a" * 63, "a" * 66, "0x" + " a" * 32, None])
def test_parse_hash_hex_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_hash_hex(bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=1500, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
VALID = encode_arrays([("w", np.arange(6, dtype=np.float32).reshape(2, 3)), ("b", np.array([1, 2], np.int64)),
                       ("h", np.ones(3, np.float16))])
VALID_SPEC = ModelSpec.of(decode_arrays(VALID, max_bytes=BIG))


def check_decoder(data: bytes, counter: str) -> None:
    """Property: decoding either returns arrays that re-encode to the input, or raises InvalidUpdate."""
    FUZZ_COUNTS[counter] += 1
    try:  # strict mode with a spec: only the error type matters
        decode_arrays(data, max_bytes=4096, spec=VALID_SPEC)
    except InvalidUpdate as e:
        assert e.reason in REASONS
    try:
        out = decode_arrays(data, max_bytes=4096, allow_non_finite=True)
    except InvalidUpdate as e:
        assert e.reason in REASONS
        return
    assert encode_arrays(out) == bytes(data)


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_random_bytes(data: bytes) -> None:
    check_decoder(data, "random_bytes")


@FUZZ
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_fuzz_valid_prefix_random_header(header: bytes, body: bytes) -> None:
    check_decoder(build(None, body, raw_header=header), "prefix_random_header")


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255), st.sampled_from("xid")),
                min_size=1, max_size=8))
def test_fuzz_mutated_valid_encoding(edits: list[tuple[int, int, str]]) -> None:
    check_decoder(mutate(VALID, edits), "mutated")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def plausible_encodings(draw: st.DrawFn) -> bytes:
    """Well-formed headers with at most one field replaced and a body of about the right length."""
    entries, offset = [], 0
    for i in range(draw(st.integers(0, 3))):
        dtype = draw(st.sampled_from(sorted(DTYPES)))
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        e = entry(f"a{i}", dtype, shape, offset)
        offset += e["nbytes"]
        entries.append(e)
    arrays: object = entries
    choice = draw(st.integers(0, 3))
    if choice == 1 and entries:
        e = draw(st.sampled_from(entries))
        e[draw(st.sampled_from(sorted(e)))] = draw(json_values | st.integers(-2, 64))
    elif choice == 2:
        arrays = draw(json_values)
    body_len = max(0, offset + draw(st.sampled_from([0, 0, 0, -1, 1])))
    return build({"arrays": arrays}, draw(st.binary(min_size=body_len, max_size=body_len)))


@settings(FUZZ, max_examples=1000)
@given(plausible_encodings())
def test_fuzz_structured_headers(data: bytes) -> None:
    check_decoder(data, "structured_header")


def test_exhaustive_truncations_and_byte_flips() -> None:
    for n in range(len(VALID)):
        check_decoder(VALID[:n], "exhaustive")
    for i in range(len(VALID)):
        for delta in (1, 0x80, 0xFF):
            b = bytearray(VALID)
            b[i] = (b[i] + delta) % 256
            check_decoder(bytes(b), "exhaustive")


def teardown_module() -> None:
    print("\nfuzz inputs tried:", dict(FUZZ_COUNTS), "total", sum(FUZZ_COUNTS.values()))


def test_net_layer_imports_nothing_above_it() -> None:
    code = (
        "import sys, bdfl.net as n; n.encode_arrays; "
        "assert 'aiohttp' not in sys.modules, 'serialization must not pull in aiohttp'; "
        "import bdfl.net.serialization, bdfl.net.blobserver, bdfl.net.fetch, bdfl.net.overlay; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'web3', 'flwr') "
        "or m.startswith(('bdfl.chain', 'bdfl.learning', 'bdfl.peer', 'bdfl.experiment'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_deep_nesting_refused_even_with_a_raised_recursion_limit() -> None:
    """Regression: with sys.setrecursionlimit raised (torch and sympy do this), json's C
    scanner overflowed the C stack on a deeply nested header and killed the process."""
    import struct
    import sys

    from bdfl.net.serialization import MAGIC, decode_arrays

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)
    try:
        for opener in (b"[", b"{\"a\":"):
            header = opener * 200_000
            data = MAGIC + struct.pack("<I", len(header)) + header
            with pytest.raises(InvalidUpdate) as info:
                decode_arrays(data, max_bytes=10**7)
            assert info.value.reason == "bad_header"
    finally:
        sys.setrecursionlimit(old)


# ----------------------------------------------------------------- binding (chain id, contract, round, submitter)

A = "0x" + "aa" * 20
B = "0x" + "bb" * 20
RM = "0x" + "5f" * 20


def test_bound_bytes_decode_to_the_same_arrays_and_name_their_submission() -> None:
    from bdfl.net.serialization import Binding, read_binding

    arrays = sample_arrays()
    b = Binding(31337, RM.upper().replace("X", "x"), 4, A)
    data = encode_arrays(arrays, binding=b)
    assert data != encode_arrays(arrays) and update_hash(data) != update_hash(encode_arrays(arrays))
    assert read_binding(data, max_bytes=BIG) == b and b.contract == RM  # addresses normalised
    assert read_binding(encode_arrays(arrays), max_bytes=BIG) is None
    for (n1, a1), (n2, a2) in zip(decode_arrays(data, max_bytes=BIG, binding=b), arrays):
        assert n1 == n2 and a1.dtype == a2.dtype and np.array_equal(a1, a2)
    assert encode_arrays(decode_arrays(data, max_bytes=BIG), binding=b) == data  # still one encoding per content


@pytest.mark.parametrize("other", [
    {"submitter": B}, {"round": 5}, {"chain_id": 1}, {"contract": "0x" + "5e" * 20},
])
def test_bytes_bound_to_another_submission_are_refused(other: dict) -> None:
    from bdfl.net.serialization import Binding

    mine = Binding(31337, RM, 4, A)
    data = encode_ndarrays([np.ones(3, np.float32)], binding=Binding(**{**mine.as_json(), **other}))  # type: ignore[arg-type]
    with pytest.raises(InvalidUpdate) as e:
        decode_ndarrays(data, max_bytes=BIG, binding=mine)
    assert e.value.reason == "binding_mismatch"
    unbound = encode_ndarrays([np.ones(3, np.float32)])
    with pytest.raises(InvalidUpdate) as e:
        decode_ndarrays(unbound, max_bytes=BIG, binding=mine)
    assert e.value.reason == "binding_mismatch"


@pytest.mark.parametrize("binding", [
    {"chain_id": 1, "contract": RM, "round": 0},                                    # missing key
    {"chain_id": 1, "contract": RM, "round": 0, "submitter": A, "x": 1},            # extra key
    {"chain_id": -1, "contract": RM, "round": 0, "submitter": A},
    {"chain_id": True, "contract": RM, "round": 0, "submitter": A},
    {"chain_id": 1, "contract": RM, "round": 2**256, "submitter": A},
    {"chain_id": 1, "contract": RM, "round": 0.0, "submitter": A},
    {"chain_id": 1, "contract": "0x" + "AA" * 20, "round": 0, "submitter": A},       # not lowercase
    {"chain_id": 1, "contract": RM[:-2], "round": 0, "submitter": A},
    {"chain_id": 1, "contract": RM, "round": 0, "submitter": "0x" + "zz" * 20},
    [1, 2],
])
def test_malformed_bindings_are_bad_headers(binding: object) -> None:
    assert reason_of(build({"arrays": [entry()], "binding": binding}, b"\x00" * 8)) == "bad_header"


def test_a_binding_matches_the_expected_nonce_when_one_is_named() -> None:
    """Binding.matches: the same subject, and the nonce the expectation names (any nonce when it
    names none); bytes without a nonce do not match an expectation that names one."""
    from bdfl.net.serialization import Binding

    b = Binding(31337, "0x" + "ab" * 20, 3, "0x" + "cd" * 20)
    n1, n2 = b.with_fresh_nonce(), b.with_fresh_nonce()
    assert n1.matches(b) and n1.matches(n1) and b.matches(b)
    assert not n1.matches(n2) and not b.matches(n1)
    assert not n1.matches(Binding(31337, "0x" + "ab" * 20, 4, "0x" + "cd" * 20))  # another round
