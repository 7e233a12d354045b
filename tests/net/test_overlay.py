"""Overlays: determinism, expander properties, spectral gap, and the repair rule.

The repair rule is checked against `reference_repair`, an independent, slow and
literal implementation of the rule as written in docs/net.md (networkx for
components and bridges), plus property tests of its guarantees.
"""

from __future__ import annotations

import math
from collections import Counter

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bdfl.errors import BDFLError
from bdfl.net.overlay import (
    Overlay,
    SeededStream,
    build_overlay,
    canonical_members,
    neighbours,
    repair_overlay,
    spectral_gap,
)

SEED = bytes(32)


def addrs(ids: object) -> list[str]:
    return [f"0x{i:040x}" for i in ids]  # type: ignore[union-attr]


def nxgraph(o: Overlay) -> nx.Graph:
    g = nx.Graph()
    g.add_nodes_from(o.members)
    g.add_edges_from(o.edges())
    return g


# ----------------------------------------------------------------- the random stream


def test_seeded_stream_known_answers() -> None:
    # Pinned: changing these changes every peer's overlay (a protocol change).
    s = SeededStream(SEED, "test")
    first = [s.next_u64() for _ in range(3)]
    assert first == [int.from_bytes(b, "little") for b in _shake(b"test", 0)[:3]]
    assert first == FIRST_WORDS


def _shake(tag: bytes, block: int) -> list[bytes]:
    import hashlib

    d = hashlib.shake_256(b"BDFL-overlay-v1" + bytes([len(tag)]) + tag + SEED + block.to_bytes(8, "big")).digest(4096)
    return [d[i : i + 8] for i in range(0, 4096, 8)]


FIRST_WORDS = [int.from_bytes(b, "little") for b in _shake(b"test", 0)[:3]]


def test_seeded_stream_blocks_below_shuffle_array() -> None:
    s = SeededStream(SEED, "t")
    words = [s.next_u64() for _ in range(1030)]  # crosses two block boundaries
    assert words[512] == int.from_bytes(_shake(b"t", 1)[0], "little")
    s2 = SeededStream(SEED, "t")
    s2.next_u64()
    arr = s2.u64_array(1029)
    assert arr.tolist() == words[1:]
    s3 = SeededStream(SEED, "t")
    draws = [s3.below(7) for _ in range(7000)]
    assert set(draws) == set(range(7)) and max(Counter(draws).values()) < 1150
    items = list(range(50))
    SeededStream(SEED, "t").shuffle(items)
    assert sorted(items) == list(range(50)) and items != list(range(50))
    with pytest.raises(ValueError):
        s3.below(0)


# ----------------------------------------------------------------- construction


@pytest.mark.parametrize("kind", ["expander", "ring", "full", "erdos_renyi"])
def test_same_inputs_same_graph_regardless_of_order_and_case(kind: str) -> None:
    ms = addrs(range(40))
    kw = {"degree": 4, "p": 0.2}
    a = build_overlay(kind, ms, SEED, **kw)
    shuffled = [m.upper().replace("0X", "0x") for m in reversed(ms)] + ms[:3]
    b = build_overlay(kind, shuffled, "0x" + SEED.hex(), **kw)
    assert a == b and a.digest() == b.digest() and hash(a) == hash(b)
    if kind != "full":
        assert build_overlay(kind, ms, b"\x01" * 32, **kw) != a


@pytest.mark.parametrize("d", [2, 3, 4, 5, 6, 8])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 9, 10, 11, 30, 101])
def test_expander_is_connected_and_regular(n: int, d: int) -> None:
    o = build_overlay("expander", addrs(range(n)), SEED, degree=d)
    degs = Counter(o.degrees().values())
    assert o.is_connected()
    if n <= d + 1:
        assert degs == Counter({n - 1: n})  # complete graph
    elif (n * d) % 2:
        assert degs == Counter({d: n - 1, d - 1: 1})
    else:
        assert degs == Counter({d: n})


def test_expander_over_many_seeds_small_n() -> None:
    for d in (3, 4, 5):
        for n in range(d + 2, d + 10):
            for s in range(10):
                o = build_overlay("expander", addrs(range(n)), bytes([s]) * 32, degree=d)
                assert o.is_connected() and max(o.degrees().values()) == d
                assert sum(d - x for x in o.degrees().values()) == (n * d) % 2


def test_ring_full_erdos_renyi() -> None:
    ms = addrs(range(20))
    ring = build_overlay("ring", ms, SEED)
    assert set(ring.degrees().values()) == {2} and ring.is_connected() and len(ring.edges()) == 20
    assert len(build_overlay("ring", ms[:2], SEED).edges()) == 1
    assert build_overlay("ring", ms[:1], SEED).edges() == ()
    full = build_overlay("full", ms, SEED)
    assert len(full.edges()) == 190
    assert build_overlay("erdos_renyi", ms, SEED, p=0.0).edges() == ()
    assert len(build_overlay("erdos_renyi", ms, SEED, p=1.0).edges()) == 190
    big = build_overlay("erdos_renyi", addrs(range(300)), SEED, p=0.05)
    assert abs(len(big.edges()) - 0.05 * 300 * 299 / 2) < 150


def test_invalid_parameters() -> None:
    with pytest.raises(BDFLError):
        build_overlay("expander", addrs(range(10)), SEED, degree=1)
    with pytest.raises(BDFLError):
        build_overlay("expander", addrs(range(10)), SEED)
    with pytest.raises(BDFLError):
        build_overlay("erdos_renyi", addrs(range(10)), SEED, p=1.5)
    with pytest.raises(BDFLError):
        build_overlay("star", addrs(range(10)), SEED)
    with pytest.raises(ValueError):
        build_overlay("ring", addrs(range(10)), b"")
    with pytest.raises(ValueError):
        build_overlay("ring", ["0xa", ""], SEED)


def test_overlay_type_and_neighbours() -> None:
    ms = addrs(range(12))
    o = build_overlay("expander", ms, SEED, degree=4)
    m = ms[3]
    assert neighbours(o, m) == o.neighbours(m.upper().replace("0X", "0x")) == o.as_dict()[m]
    assert list(neighbours(o, m)) == sorted(neighbours(o, m)) and m not in neighbours(o, m)
    assert all(m in o.neighbours(x) for x in o.neighbours(m))
    assert m in o and "0xdead" not in o and len(o) == 12
    assert o.members == tuple(canonical_members(ms))
    with pytest.raises(KeyError):
        o.neighbours("0xdead")
    with pytest.raises(AttributeError):
        o.kind = "ring"  # type: ignore[misc]
    with pytest.raises(ValueError):
        Overlay("x", 1, {"a": ["b"], "b": []})


# ----------------------------------------------------------------- spectral gap


def test_spectral_gap_known_graphs() -> None:
    k = spectral_gap(build_overlay("full", addrs(range(10)), SEED))
    assert math.isclose(k["lambda1"], 9) and math.isclose(k["lambda2"], 1)
    ring = spectral_gap(build_overlay("ring", addrs(range(10)), SEED))  # even cycle: bipartite
    assert math.isclose(ring["lambda2"], 2) and math.isclose(ring["gap"], 0, abs_tol=1e-9)
    assert spectral_gap(build_overlay("full", addrs(range(1)), SEED))["n"] == 1


@pytest.mark.parametrize("n,d", [(50, 4), (50, 6), (1000, 6)])
def test_expander_is_near_ramanujan(n: int, d: int) -> None:
    g = spectral_gap(build_overlay("expander", addrs(range(n)), SEED, degree=d))
    assert math.isclose(g["lambda1"], d) and g["degree"] == d
    assert math.isclose(g["ramanujan_bound"], 2 * math.sqrt(d - 1))
    assert g["lambda2"] < g["ramanujan_bound"] + 0.1  # random regular graphs: Friedman's theorem
    assert g["gap"] > 0.5


# ----------------------------------------------------------------- repair: reference model


def _sorted_edges(g: nx.Graph) -> list[tuple[str, str]]:
    return sorted((a, b) if a < b else (b, a) for a, b in g.edges())


def _free(g: nx.Graph, v: str, d: int) -> int:
    return d - g.degree(v)


def _ref_fill(g: nx.Graph, order: list[str], d: int, rng: SeededStream) -> None:
    while True:
        done = False
        for v in order:  # 3.1 split
            if _free(g, v, d) >= 2:
                nv = set(g[v]) | {v}
                c = [(a, b) for a, b in _sorted_edges(g) if a not in nv and b not in nv]
                if c:
                    a, b = c[rng.below(len(c))]
                    g.remove_edge(a, b)
                    g.add_edges_from([(v, a), (v, b)])
                    done = True
                    break
        if done:
            continue
        dd = [v for v in order if _free(g, v, d) >= 1]
        for v in dd:  # 3.2 pair
            p = [u for u in dd if u != v and not g.has_edge(u, v)]
            if p:
                g.add_edge(v, p[rng.below(len(p))])
                done = True
                break
        if done:
            continue
        for i in range(len(dd)):  # 3.3 double split
            for j in range(i + 1, len(dd)):
                u, w = dd[i], dd[j]
                c = []
                for a, b in _sorted_edges(g):
                    for x, y in ((a, b), (b, a)):
                        if x not in set(g[u]) | {u, w} and y not in set(g[w]) | {w, u}:
                            c.append((x, y))
                if c:
                    x, y = c[rng.below(len(c))]
                    g.remove_edge(x, y)
                    g.add_edges_from([(u, x), (w, y)])
                    done = True
                    break
            if done:
                break
        if not done:
            return


def _ref_connect(g: nx.Graph, rng: SeededStream) -> bool:
    while not nx.is_connected(g):
        comps = sorted((sorted(c) for c in nx.connected_components(g)), key=lambda c: (-len(c), c[0]))
        c0, c1 = comps[0], comps[1]
        br0 = {tuple(sorted(e)) for e in nx.bridges(g.subgraph(c0))}
        nb0 = [e for e in _sorted_edges(g.subgraph(c0)) if e not in br0]
        e1 = _sorted_edges(g.subgraph(c1))
        if not nb0 or not e1:
            return False
        x, y = nb0[rng.below(len(nb0))]
        a, b = e1[rng.below(len(e1))]
        g.remove_edges_from([(a, b), (x, y)])
        g.add_edges_from([(a, x), (b, y)])
    return True


def reference_repair(prev: Overlay, members_now: list[str], seed: bytes, d: int) -> Overlay:
    """docs/net.md "Overlay repair rule", step by step."""
    m = sorted({x.lower() for x in members_now})
    if prev.kind != "expander" or d != prev.degree or len(m) <= d + 1:
        return build_overlay(prev.kind, m, seed, degree=d, p=prev.p)
    g = nx.Graph()
    g.add_nodes_from(m)
    g.add_edges_from((a, b) for a, b in prev.edges() if a in g and b in g)
    if any(_free(g, v, d) < 0 for v in m):
        return build_overlay("expander", m, seed, degree=d)
    rng = SeededStream(seed, "repair")
    order = [v for v in m if _free(g, v, d) > 0]
    rng.shuffle(order)
    _ref_fill(g, order, d, rng)
    assert _ref_connect(g, rng), "connect found no swap (the rule says this cannot happen)"
    _ref_fill(g, order, d, rng)
    return Overlay("expander", d, {v: list(g[v]) for v in g})


# ----------------------------------------------------------------- repair: tests


@st.composite
def churn(draw: st.DrawFn) -> tuple[int, int, list[tuple[set[int], set[int], int]]]:
    """(d, n0, steps): each step (leavers, joiners, seed byte)."""
    d = draw(st.sampled_from([2, 3, 4, 5, 6]))
    n0 = draw(st.integers(2, 40))
    alive, nxt, steps = set(range(n0)), n0, []
    for _ in range(draw(st.integers(1, 4))):
        pool = sorted(alive)
        leave = set(draw(st.lists(st.sampled_from(pool), max_size=min(6, len(pool) - 1), unique=True)))
        k = draw(st.integers(0, 6))
        join = set(range(nxt, nxt + k))
        nxt += k
        alive = (alive - leave) | join
        steps.append((leave, join, draw(st.integers(0, 255))))
    return d, n0, steps


PROPS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])


def free_slots(o: Overlay, d: int) -> int:
    return sum(max(0, d - x) for x in o.degrees().values())


@PROPS
@given(churn())
def test_repair_matches_reference_and_keeps_guarantees(case: tuple) -> None:
    d, n0, steps = case
    alive = set(range(n0))
    o = build_overlay("expander", addrs(alive), SEED, degree=d)
    for leave, join, s in steps:
        new_alive = (alive - leave) | join
        seed = bytes([s]) * 32
        ms = addrs(new_alive)
        r = repair_overlay(o, ms, seed)
        assert r == reference_repair(o, ms, seed, d)
        assert r == repair_overlay(o, list(reversed(ms)), seed)  # deterministic, order-free
        n = len(ms)
        degs = r.degrees().values()
        assert r.is_connected() and max(degs) <= max(d, 0)
        if n > d + 1:
            if n >= 2 * d:
                assert min(degs) >= d - 1
            if n >= 4 * d + 2:
                assert free_slots(r, d) == (n * d) % 2
            f0 = sum(max(0, d - len(o.neighbours(m))) for m in o.members if m in r)
            changed = len(set(o.edges()) ^ set(r.edges()))
            assert changed <= 7 * d * (len(leave) + len(join)) + 2 * f0
            assert repair_overlay(r, ms, b"other seed") == r  # nothing to do: nothing changes
        o, alive = r, new_alive


def test_repair_without_changes_is_identity() -> None:
    for n, d in [(30, 4), (31, 3), (100, 6)]:
        o = build_overlay("expander", addrs(range(n)), SEED, degree=d)
        assert repair_overlay(o, o.members, b"\x07" * 32) == o


def test_repair_single_leave_and_join_touch_few_edges() -> None:
    o = build_overlay("expander", addrs(range(200)), SEED, degree=6)
    gone = o.members[17]
    r = repair_overlay(o, [m for m in o.members if m != gone], b"\x01" * 32)
    changed = set(o.edges()) ^ set(r.edges())
    assert len(changed) == 6 + 3  # its 6 edges, then its 6 orphans paired up
    assert set(r.degrees().values()) == {6}
    r2 = repair_overlay(r, [*r.members, "0x" + "f" * 40], b"\x02" * 32)
    assert len(set(r.edges()) ^ set(r2.edges())) == 9  # 3 splits: -1 +2 each
    assert set(r2.degrees().values()) == {6}


def test_repair_large_churn_keeps_expansion() -> None:
    ms = addrs(range(1000))
    o = build_overlay("expander", ms, SEED, degree=6)
    rng = np.random.default_rng(0)
    keep = sorted(rng.choice(1000, 900, replace=False).tolist())
    r = repair_overlay(o, addrs(keep) + addrs(range(5000, 5100)), b"\x03" * 32)
    assert r.is_connected() and set(r.degrees().values()) == {6}
    assert len(set(o.edges()) ^ set(r.edges())) <= 2 * 6 * 200
    assert spectral_gap(r)["lambda2"] < 4.6


def test_repair_rebuilds_when_it_must() -> None:
    ms = addrs(range(30))
    o = build_overlay("expander", ms, SEED, degree=4)
    assert repair_overlay(o, ms, SEED, degree=6) == build_overlay("expander", ms, SEED, degree=6)
    assert repair_overlay(o, ms[:5], SEED) == build_overlay("expander", ms[:5], SEED, degree=4)
    ring = build_overlay("ring", ms, SEED)
    assert repair_overlay(ring, ms[:20], SEED) == build_overlay("ring", ms[:20], SEED)
    er = build_overlay("erdos_renyi", ms, SEED, p=0.3)
    assert repair_overlay(er, ms[:20], SEED) == build_overlay("erdos_renyi", ms[:20], SEED, p=0.3)


def test_repair_grows_from_complete_graph() -> None:
    o = build_overlay("expander", addrs(range(4)), SEED, degree=6)
    r = repair_overlay(o, addrs(range(60)), SEED)
    assert r.is_connected() and set(r.degrees().values()) == {6}
    assert r == reference_repair(o, addrs(range(60)), SEED, 6)


def test_repair_reconnects_a_cut() -> None:
    # Two 4-regular halves joined only through two hubs; removing the hubs splits them.
    left, right = addrs(range(0, 12)), addrs(range(12, 24))
    hubs = addrs([100, 101])
    adj: dict[str, set[str]] = {m: set() for m in left + right + hubs}

    def link(a: str, b: str) -> None:
        adj[a].add(b)
        adj[b].add(a)

    for side in (left, right):
        for i in range(12):
            link(side[i], side[(i + 1) % 12])
            link(side[i], side[(i + 5) % 12])
    for h in hubs:
        for i in (0, 6):
            adj[left[i]].discard(left[(i + 1) % 12])
            adj[left[(i + 1) % 12]].discard(left[i])
        link(h, left[0])
        link(h, left[6])
        link(h, right[3])
        link(h, right[9])
    prev = Overlay("expander", 4, adj)
    r = repair_overlay(prev, left + right, SEED)
    assert r.is_connected() and max(r.degrees().values()) <= 4 and min(r.degrees().values()) >= 3
    assert r == reference_repair(prev, left + right, SEED, 4)


# ------------------------------------------------------------------ aggregation sources


def _path(n: int) -> Overlay:
    """0 - 1 - 2 - ... - (n-1), members "a00", "a01", ..."""
    names = [f"a{i:02d}" for i in range(n)]
    adj = {m: [] for m in names}
    for x, y in zip(names, names[1:]):
        adj[x].append(y)
        adj[y].append(x)
    return Overlay("test", 2, adj)


def test_aggregation_sources_are_usable_neighbours_by_default() -> None:
    o = _path(6)
    assert o.aggregation_sources("A02", ["a01", "a03", "a05"]) == ("a01", "a03")
    assert o.aggregation_sources("a02", ["a05"]) == ()  # min_sources 0: neighbours only
    assert o.aggregation_sources("zz", ["a01"], 3) == ()  # not a member


def test_aggregation_sources_top_up_ring_by_ring_nearest_first() -> None:
    o = _path(8)
    # a03's neighbours a02, a04 are not usable: distance 2 (a01, a05) first, then 3 (a00, a06)
    usable = ["a00", "a01", "a05", "a06", "a07"]
    assert o.aggregation_sources("a03", usable, 1) == ("a01",)
    assert o.aggregation_sources("a03", usable, 2) == ("a01", "a05")
    assert o.aggregation_sources("a03", usable, 3) == ("a01", "a05", "a00")
    assert o.aggregation_sources("a03", usable, 10) == ("a01", "a05", "a00", "a06", "a07")  # graph exhausted
    # enough usable neighbours: nothing added
    assert o.aggregation_sources("a03", ["a02", "a04", "a05"], 2) == ("a02", "a04")


@settings(max_examples=60, deadline=None)
@given(st.integers(8, 40), st.integers(0, 10**6), st.integers(0, 6), st.data())
def test_aggregation_sources_properties(n: int, seed: int, k: int, data: st.DataObject) -> None:
    members = [f"0x{i:040x}" for i in range(n)]
    o = build_overlay("expander", members, seed.to_bytes(4, "big"), degree=4)
    usable = set(data.draw(st.lists(st.sampled_from(members), max_size=n)))
    me = data.draw(st.sampled_from(members))
    got = o.aggregation_sources(me, usable, k)
    assert len(set(got)) == len(got) and me not in got and set(got) <= usable
    near = [x for x in o.neighbours(me) if x in usable]
    assert got[: len(near)] == tuple(near)  # every usable neighbour, first
    assert len(got) >= min(k, len(usable - {me}))  # connected graph: enough are found
    assert len(got) == max(len(near), min(k, len(usable - {me})))
