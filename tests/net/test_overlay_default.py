"""overlay.degree is a target: the library default validates at every peer count, gives the
complete graph up to degree + 1 members and a degree-d expander above; out-of-range values are
refused with the field's name and range."""

from __future__ import annotations

import pytest

from bdfl.config import MAX_OVERLAY_DEGREE, ExperimentConfig, from_dict, load_config
from bdfl.errors import ConfigError
from bdfl.net.overlay import build_overlay

SEED = b"\x07" * 32


def _members(n: int) -> list[str]:
    return [f"0x{i:040x}" for i in range(1, n + 1)]


@pytest.mark.parametrize("peers", [2, 3, 5, 19, 20, 24, 25, 26, 50, 100, 1000, 10_000])
def test_the_default_degree_validates_at_every_peer_count(peers: int) -> None:
    d = ExperimentConfig().overlay.degree
    # the other peer-bounded defaults scaled as `bdfl run --peers N` scales them; the degree never is
    # (2 peers only under a baseline: the audit needs 3, tests/foundation/test_config.py)
    cfg = load_config(None, {"peers": peers, "attack.name": "none", "attack.fraction": 0.0,
                             **({"defense.name": "fedavg"} if peers < 3 else {})})
    assert cfg.peers == peers and cfg.overlay.degree == d


@pytest.mark.parametrize("n", [2, 3, 10, 20, 25])
def test_up_to_degree_plus_one_members_the_default_is_the_complete_graph(n: int) -> None:
    d = ExperimentConfig().overlay.degree
    assert n <= d + 1
    o = build_overlay("expander", _members(n), SEED, degree=d)
    ms = [m.lower() for m in _members(n)]
    assert o.as_dict() == {m: tuple(x for x in ms if x != m) for m in ms}
    assert set(o.degrees().values()) == {n - 1}


def test_above_it_a_connected_expander_of_that_degree() -> None:
    d = ExperimentConfig().overlay.degree
    o = build_overlay("expander", _members(100), SEED, degree=d)
    assert o.is_connected() and set(o.degrees().values()) == {d}


@pytest.mark.parametrize("bad", [0, -3, MAX_OVERLAY_DEGREE + 1])
def test_out_of_range_degrees_are_refused_naming_the_field(bad: int) -> None:
    with pytest.raises(ConfigError) as exc:
        from_dict({"peers": 20, "overlay": {"degree": bad}})
    assert exc.value.field == "overlay.degree" and f"[1, {MAX_OVERLAY_DEGREE}]" in str(exc.value)
