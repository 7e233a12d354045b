"""The replay check by content (:mod:`bdfl.peer.republished`): an update whose arrays are a
model of an earlier round that the auditor decoded (a trainer's start recipe, an earlier move)
is rejected as ``republished``. The hash check alone misses it: a free-rider re-encodes the
model it received under its own binding (its address, this round): new bytes, a new hash."""

from __future__ import annotations

import math

import numpy as np

from bdfl.net.serialization import Binding, encode_ndarrays, hash_hex, update_hash
from bdfl.peer import stages
from bdfl.peer.node import Candidate
from bdfl.peer.republished import NEAR_REPUBLISHED, EarlierModels
from bdfl.peer.sources import StartSource
from tests.peer.auditors import CHAIN, RM, digits_auditor

ADDR = [f"0x{i:040x}" for i in range(1, 8)]  # auditor ADDR[0]; trainers ADDR[1..6]


def _bytes(model: list[np.ndarray], rnd: int, who: str) -> bytes:
    return encode_ndarrays(model, binding=Binding(CHAIN, RM, rnd, who))


def _cand(i: int, who: str, data: bytes) -> Candidate:
    return Candidate(index=i, peer=who, hash=hash_hex(update_hash(data)), url="http://x")


def test_a_received_model_republished_under_a_new_binding_is_rejected() -> None:
    peer, trained = digits_auditor(6, ADDR[0], domain=(CHAIN, RM))
    # round 2: ADDR[1] and ADDR[2] submitted trained[1] and trained[2]; ADDR[6]'s start recipe is both
    old = {a: _bytes(m, 2, a) for a, m in ((ADDR[1], trained[1]), (ADDR[2], trained[2]))}
    recipe = [StartSource(a, hash_hex(update_hash(b)), 0.5) for a, b in old.items()]
    # round 3: ADDR[6] re-publishes ADDR[2]'s round-2 model as its own; the others trained
    models = [trained[3], trained[4], trained[5], trained[2]]
    blobs = [_bytes(m, 3, a) for m, a in zip(models, ADDR[3:7])]
    cands = [_cand(i, a, b) for i, (a, b) in enumerate(zip(ADDR[3:7], blobs))]
    assert cands[-1].hash not in {s.hash for s in recipe}  # new bytes, new hash: the hash check passes it
    fetched = {c.hash: b for c, b in zip(cands, blobs)} | {s.hash: old[s.peer] for s in recipe}
    rebuilt = stages.audit.rebuild(peer, 3, {ADDR[6]: recipe}, {}, fetched)
    assert len(rebuilt.earlier) == 2
    _, votes = peer.audit(3, cands, fetched, starts=rebuilt.starts, earlier_models=rebuilt.earlier)
    assert votes == [True, True, True, False]
    assert peer.rejections[-1].peer == ADDR[6] and peer.rejections[-1].reason == "republished"
    # one value changed is another digest, but still the same model: the near check sees it
    tweaked = [a.copy() for a in trained[2]]
    tweaked[0].flat[0] += 1e-3
    blob = _bytes(tweaked, 3, ADDR[6])
    before = len(peer.rejections)
    _, votes = peer.audit(3, [*cands[:3], _cand(3, ADDR[6], blob)], {**fetched, _cand(3, ADDR[6], blob).hash: blob},
                          starts=rebuilt.starts, earlier_models=rebuilt.earlier)
    assert votes[-1] is False and [r.reason for r in peer.rejections[before:]] == ["republished"]


def _round3(noise: float, trains: bool) -> tuple[list[bool], list[str], float]:
    """Round 3 of the test above with ADDR[6] disguised (Fraboni et al.): ADDR[2]'s round-2 model
    plus Gaussian noise of ``noise`` x its distance from ADDR[6]'s start per unit of norm, or
    (``trains``) a model ADDR[6] trained from that start. Returns its votes, the rejection reasons
    and the candidate's near share."""
    from bdfl.learning.data import load_digits, make_peer_shards
    from bdfl.learning.task import fit_client, load_task

    peer, trained = digits_auditor(6, ADDR[0], domain=(CHAIN, RM))
    old = {a: _bytes(m, 2, a) for a, m in ((ADDR[1], trained[1]), (ADDR[2], trained[2]))}
    recipe = [StartSource(a, hash_hex(update_hash(b)), 0.5) for a, b in old.items()]
    start = [(x + y) / 2 for x, y in zip(trained[1], trained[2])]
    if trains:
        task = load_task("clients.digits")
        shard = make_peer_shards(load_digits(), 6, scheme="iid", seed=0, min_size=20)[5]
        client = task.make_client(shard.train, shard.val, seed=5, hparams={"local_epochs": 1, "batch_size": 16})
        mine = fit_client(client, start, {"round": 2}).parameters
    else:
        rng = np.random.default_rng(0)
        gap = float(np.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(trained[2], start))))
        size = sum(a.size for a in trained[2])
        mine = [a + rng.normal(0.0, noise * gap / np.sqrt(size), a.shape).astype(a.dtype) for a in trained[2]]
    models = [trained[3], trained[4], trained[5], mine]
    blobs = [_bytes(m, 3, a) for m, a in zip(models, ADDR[3:7])]
    cands = [_cand(i, a, b) for i, (a, b) in enumerate(zip(ADDR[3:7], blobs))]
    fetched = {c.hash: b for c, b in zip(cands, blobs)} | {s.hash: old[s.peer] for s in recipe}
    rebuilt = stages.audit.rebuild(peer, 3, {ADDR[6]: recipe}, {}, fetched)
    share = rebuilt.earlier.near_share(mine, rebuilt.starts[ADDR[6]], ADDR[6])
    _, votes = peer.audit(3, cands, fetched, starts=rebuilt.starts, earlier_models=rebuilt.earlier)
    return votes, [r.reason for r in peer.rejections], share


def test_a_disguised_free_rider_is_rejected_and_a_trainer_from_the_same_start_is_not() -> None:
    """Fraboni et al.'s disguise: noise of 10 % of the move it fakes; the check measures the
    candidate's distance to the nearest earlier model of another trainer over its own move."""
    votes, reasons, share = _round3(0.1, trains=False)
    assert share < NEAR_REPUBLISHED and votes[-1] is False and "republished" in reasons
    votes, reasons, share = _round3(0.0, trains=True)
    assert share > 2 * NEAR_REPUBLISHED and "republished" not in reasons


def test_the_attacker_who_knows_the_bar_must_make_its_move_mostly_noise() -> None:
    """The limit, kept as a test: noise past the bar passes this check, but then the noise is
    most of the move (the audit's other tests judge it as any move): at the bar, noise / move =
    NEAR_REPUBLISHED, so at 1.5 x that share the copy is no longer near."""
    _votes, reasons, share = _round3(1.5 * NEAR_REPUBLISHED / np.sqrt(1 - (1.5 * NEAR_REPUBLISHED) ** 2), trains=False)
    assert share > NEAR_REPUBLISHED and "republished" not in reasons


def test_a_copy_of_the_trainers_own_earlier_model_does_not_count_against_it() -> None:
    """Mimic's attackers copy honest updates: the next round, the honest trainer's model lies
    near the attacker's copy of its own earlier one. That copy is left out (it lies nearer to the
    trainer's own earlier model than to the candidate), so an attacker cannot get an honest
    trainer rejected by copying it; a copy of another trainer's model still counts."""
    rng = np.random.default_rng(1)
    own_before = [rng.normal(size=(50, 20)), rng.normal(size=(20,))]
    other = [rng.normal(size=(50, 20)), rng.normal(size=(20,))]
    start = [rng.normal(size=(50, 20)), rng.normal(size=(20,))]
    # the trainer returns near where its data led it last round (a skewed shard, a long fit)
    candidate = [a + 0.05 * rng.normal(size=a.shape) for a in own_before]
    copy = [a + 0.01 * rng.normal(size=a.shape) for a in own_before]  # the attacker's copy of it
    index = EarlierModels(seed=3)
    index.add("0x01", other, ADDR[2])
    index.add("0x02", copy, ADDR[5])
    assert index.near_share(candidate, start, ADDR[1]) < NEAR_REPUBLISHED  # the trainer's own model unknown: it counts
    index.add("0x03", own_before, ADDR[1])
    assert index.near_share(candidate, start, ADDR[1]) > 1.0  # left out once the trainer's own is known
    # a copy of another trainer's model still counts, for the trainer and for the copier
    for who in (ADDR[1], ADDR[5]):
        assert index.near_share([a + 0.01 * rng.normal(size=a.shape) for a in other], start, who) < NEAR_REPUBLISHED
    # conceded: the copier's own earlier model is its copy, so re-publishing that model again is
    # a trainer returning near its own (the rule's exemption); no_work and the tests judge it then
    assert index.near_share([a + 0.01 * rng.normal(size=a.shape) for a in own_before], start, ADDR[5]) > NEAR_REPUBLISHED


def test_without_a_rebuilt_start_there_is_no_near_check() -> None:
    """Measured from the auditor's own start, a trainer whose recipe was one model would lie
    nearer to that model than to the start it is measured from: no rebuilt start, no check."""
    peer, trained = digits_auditor(6, ADDR[0], domain=(CHAIN, RM))
    old = _bytes(trained[2], 2, ADDR[2])
    index = EarlierModels()
    index.add(hash_hex(update_hash(old)), trained[2], ADDR[2])
    near = [a + np.float32(1e-4) for a in trained[2]]
    blob = _bytes(near, 3, ADDR[6])
    cand = _cand(0, ADDR[6], blob)
    _, votes = peer.audit(3, [cand], {cand.hash: blob}, starts={}, earlier_models=index)
    assert "republished" not in [r.reason for r in peer.rejections]
    _, votes = peer.audit(3, [cand], {cand.hash: blob}, starts={ADDR[6]: trained[1]}, earlier_models=index)
    assert votes == [False] and peer.rejections[-1].reason == "republished"


def test_an_exact_earlier_model_is_rejected_without_a_rebuilt_start() -> None:
    """The exact check needs no start: an earlier round's model re-encoded under a new binding is
    ``republished`` even when the auditor rebuilt no start for its trainer (a peer that joined
    late, or a recipe it could not fetch)."""
    peer, trained = digits_auditor(6, ADDR[0], domain=(CHAIN, RM))
    old = _bytes(trained[2], 2, ADDR[2])
    index = EarlierModels()
    index.add(hash_hex(update_hash(old)), trained[2], ADDR[2])
    blob = _bytes(trained[2], 3, ADDR[6])
    cand = _cand(0, ADDR[6], blob)
    _, votes = peer.audit(3, [cand], {cand.hash: blob}, starts={}, earlier_models=index)
    assert votes == [False] and peer.rejections[-1].reason == "republished"


def test_the_sketch_measures_distances_within_a_few_per_cent() -> None:
    rng = np.random.default_rng(2)
    for size in (300, 5_000, 200_000):
        index = EarlierModels(seed=size)
        for _ in range(5):
            a, b = [rng.normal(size=size)], [rng.standard_t(3, size=size)]
            true = float(np.linalg.norm(a[0] - b[0]))
            est = float(np.linalg.norm(index.sketch(a) - index.sketch(b)))
            assert abs(est / true - 1) < 0.15
    # linear: the sketch of a model is the sum of its arrays' parts, whatever the dtype
    index = EarlierModels(seed=1)
    m = [rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(3,)).astype(np.float32)]
    assert np.allclose(index.sketch(m) * 2, index.sketch([2 * x for x in m]))


def test_the_digest_reads_every_value() -> None:
    """The sampled key alone would match a model that differs off its samples; the digest does not."""
    a = [np.zeros((1000,), np.float32), np.ones((3, 3), np.float32)]
    b = [x.copy() for x in a]
    b[0][1] = 1.0  # between two sampled values (every 15th)
    index = EarlierModels()
    index.add("0x01", a)
    assert index.holds([x.copy() for x in a]) and not index.holds(b)
    assert not index.holds([a[0].astype(np.float64), a[1]])  # the same values in another dtype are another encoding
    index.add("0x01", b)  # a hash already added is not read again
    assert len(index) == 1 and not index.holds(b)


def _nearest_one_by_one(index: EarlierModels, c: np.ndarray, who: str) -> float:
    """The rule as first written: every earlier model compared with the candidate in turn."""
    own = [s for a, s in index._sketches if a == who]
    near = float("inf")
    for author, e in index._sketches:
        if author == who:
            continue
        d = float(np.linalg.norm(c - e))
        if d >= near or any(float(np.linalg.norm(e - o)) <= d for o in own):
            continue
        near = d
    return near


def test_the_indexed_search_finds_what_comparing_one_by_one_finds() -> None:
    """near_share bounds every distance from one matrix product instead of comparing each
    earlier model in turn (~0.1 s per candidate at N = 10,000): the same nearest model, to the
    last bit, with copies, ties, the trainer's own models, models nearer to them, and models
    added after a first search."""
    rng = np.random.default_rng(7)
    index = EarlierModels(seed=5)
    shape = [(40, 10), (10,)]
    base = [rng.normal(size=s) for s in shape]
    authors = [ADDR[1 + i % 5] for i in range(60)]
    models = []
    for i, who in enumerate(authors):
        m = [b + rng.normal(scale=rng.choice([0.01, 0.1, 1.0]), size=b.shape) for b in base]
        if i % 7 == 3:
            m = [a.copy() for a in models[i - 2]]  # an exact copy of an earlier model (another hash)
        models.append(m)
    for i, (m, who) in enumerate(zip(models, authors)):
        index.add(f"0x{i:02x}", m, who)
        if i in (10, 35):  # searches between additions: the stacked table must follow
            for j in range(3):
                c = index.sketch([b + rng.normal(scale=0.05, size=b.shape) for b in base])
                for who2 in ADDR[1:7]:
                    assert index._nearest_other(c, who2.lower()) == _nearest_one_by_one(index, c, who2.lower())
    for trial in range(40):
        who = ADDR[1 + trial % 6].lower()
        pick = models[trial % len(models)]
        scale = [0.0, 1e-6, 0.01, 0.3][trial % 4]  # an exact copy, a near copy, a move
        c = index.sketch([a + scale * rng.normal(size=a.shape) for a in pick])
        assert index._nearest_other(c, who) == _nearest_one_by_one(index, c, who)
    # the nearest 300 are the trainer's own models or lie nearer to them: the search sets the
    # others' copies of its work aside and finds the farther models of the others
    crowded = EarlierModels(seed=5)
    own = [b + rng.normal(scale=0.01, size=b.shape) for b in base]
    crowded.add("0x1000", own, ADDR[1])
    for i in range(300):
        near_own = [a + rng.normal(scale=0.001, size=a.shape) for a in own]
        crowded.add(f"0x2{i:03x}", near_own, ADDR[1] if i % 2 else ADDR[2 + i % 4])
    for i in range(30):
        crowded.add(f"0x3{i:03x}", [b + rng.normal(scale=1.0, size=b.shape) for b in base], ADDR[2 + i % 4])
    for scale in (0.02, 0.05):
        c = crowded.sketch([b + rng.normal(scale=scale, size=b.shape) for b in own])
        found = crowded._nearest_other(c, ADDR[1].lower())
        assert found == _nearest_one_by_one(crowded, c, ADDR[1].lower()) and found < float("inf")
    # the memo: a second auditor of the same candidate gets the same share without a search
    start = [b + 0.5 for b in base]
    first = index.near_share(models[4], start, ADDR[2], key="0xabc")
    assert ("0xabc", ADDR[2].lower(), len(index._sketches)) in index._nearest
    assert index.near_share(models[4], start, ADDR[2], key="0xabc") == first


def test_a_batched_search_memoises_what_each_search_alone_finds() -> None:
    """prepare searches a worker's candidates together (one matrix product per block, blocks
    smaller than the batch here): each memoised distance equals the search for that candidate
    alone, candidates prepare skips (no move, already searched) are still answered, and
    near_share afterwards needs no search."""
    rng = np.random.default_rng(11)
    shape = [(30, 8), (8,)]
    base = [rng.normal(size=s) for s in shape]
    index = EarlierModels(seed=3)
    for i in range(80):
        index.add(f"0x{i:03x}", [b + rng.normal(scale=rng.choice([0.01, 0.3]), size=b.shape) for b in base], ADDR[1 + i % 6])
    starts = {who: [b + rng.normal(scale=0.1, size=b.shape) for b in base] for who in ADDR}  # one start per trainer
    items = []
    for k in range(300):
        who = ADDR[k % 7]  # ADDR[0] published no earlier model
        start = starts[who]
        params = start if k % 50 == 0 else [a + rng.normal(scale=rng.choice([1e-4, 0.05, 0.5]), size=a.shape) for a in start]
        items.append((f"0xc{k:03x}", params, start, who))
    alone = EarlierModels(seed=3)
    alone._sketches = list(index._sketches)
    expected = [alone.near_share(p, s, w) for _, p, s, w in items]
    searched = index.prepare(iter(items + items[:5]))
    assert searched == 300 - 6  # the 6 candidates that did not move need no search; repeats are skipped
    assert index.prepare(iter(items)) == 0
    calls = []
    index._nearest_many = lambda *a: calls.append(a) or []  # type: ignore[method-assign]
    assert [index.near_share(p, s, w, key=k) for k, p, s, w in items] == expected
    assert not calls and sum(math.isinf(x) for x in expected) >= 6


def test_the_bounds_allow_for_float32_at_near_ties() -> None:
    """The search's bounds come from float32 products: models whose distances differ from the
    candidate's by a millionth or less (an own model just nearer or just farther than the
    candidate, two models of others at nearly the same distance) must still get the float64
    answer of comparing one by one; bounds without the rounding allowance miss some of them."""
    rng = np.random.default_rng(21)
    index = EarlierModels(seed=1)
    who, other = ADDR[1].lower(), ADDR[2].lower()
    for trial in range(200):
        size = index.sketch([np.zeros(4)]).size
        o = 50.0 + rng.normal(size=size)  # far from the origin: centring matters
        e = o + rng.normal(size=size)
        d = float(np.linalg.norm(e - o))
        u = rng.normal(size=size)
        eps = rng.choice([-1.0, 1.0]) * 10.0 ** rng.uniform(-9, -5)
        c = e + u / np.linalg.norm(u) * d / (1.0 + eps)  # c just nearer to e than o is, or just farther
        v = rng.normal(size=size)
        e2 = c + v / np.linalg.norm(v) * d / (1.0 + eps) * (1.0 + rng.choice([-1.0, 1.0]) * 10.0 ** rng.uniform(-9, -5))
        index._sketches = [(who, o), (other, e), (ADDR[3].lower(), e2), (other, o + 40.0)]
        index._table = None
        assert index._nearest_other(c, who) == _nearest_one_by_one(index, c, who)


def test_the_search_reads_past_its_first_partial_sort() -> None:
    """100 models of others lie exactly as far from the trainer's own model as from the
    candidate (mirror images: a tie counts as a copy of the trainer's own work), nearer than the
    one eligible model; no bound can set a tie aside, so the search must read past the first 64
    of its partial sort to find the eligible one."""
    rng = np.random.default_rng(5)
    size = EarlierModels(seed=1).sketch([np.zeros(4)]).size
    v = rng.normal(size=size)
    v[0] = 0.0
    c, o = v.copy(), v.copy()
    c[0], o[0] = 2.0, -2.0
    index = EarlierModels(seed=1)
    index._sketches = [(ADDR[1].lower(), o)]
    for k in range(100):
        e = v + np.where(np.arange(size) == 0, 0.0, rng.normal(scale=0.1, size=size))  # first value 0: on the mirror
        index._sketches.append((ADDR[2 + k % 4].lower(), e))
    far = v + rng.normal(scale=3.0, size=size)
    far[0] = 5.0  # on the candidate's side of the mirror: eligible
    index._sketches.append((ADDR[6].lower(), far))
    found = index._nearest_other(c, ADDR[1].lower())
    assert found == _nearest_one_by_one(index, c, ADDR[1].lower()) == float(np.linalg.norm(c - far))
