"""``bdfl sweep`` grid values that are tables (an attack with its own parameters, named by a
label) and ``[[exclude]]`` tables that leave matching points out (issue 22's robustness grid:
image-only attacks are not run on a tabular task)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bdfl.errors import ConfigError
from bdfl.experiment.sweep import _slug, expand

GRID = textwrap.dedent("""
    name = "cases"
    [set]
    rounds = 2
    peers = 10
    [grid]
    "task.client" = ["clients.digits", "clients.seattle_weather"]
    attack = [
      {label = "none", name = "none"},
      {label = "sign_flip_x4", name = "sign_flip", params = {scale = 4.0}},
      {label = "backdoor_cross", name = "backdoor", params = {shape = "cross", trigger_size = 3}},
    ]
    "attack.fraction" = [0.3]
    [[exclude]]
    "task.client" = "clients.seattle_weather"
    attack = ["backdoor_cross"]
    """)


def test_table_values_set_their_keys_and_excludes_drop_points(tmp_path: Path) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    _name, runs = expand(path)
    points = [(p["task.client"], p["attack"]) for p, _c in runs]
    assert ("clients.seattle_weather", "backdoor_cross") not in points
    assert ("clients.digits", "backdoor_cross") in points and len(points) == 5
    by = {(p["task.client"], p["attack"]): c for p, c in runs}
    flip = by[("clients.digits", "sign_flip_x4")]
    assert flip.attack.name == "sign_flip" and flip.attack.params == {"scale": 4.0} and flip.attack.fraction == 0.3
    cross = by[("clients.digits", "backdoor_cross")]
    assert cross.attack.params["shape"] == "cross"
    assert by[("clients.digits", "none")].attack.fraction == 0.0  # "none" is fraction-free, as before
    assert "attack=sign_flip_x4" in _slug(next(p for p, _c in runs if p["attack"] == "sign_flip_x4"))


@pytest.mark.parametrize("bad,field", [
    ('attack = [{name = "none"}]', "grid.attack"),
    ('attack = [{label = "a", name = "none"}, {label = "a", name = "none"}]', "grid.attack"),
    ('attack = [{label = "a", name = "none"}]\n[[exclude]]\nseed = 1', "exclude[0].seed"),
    ('seed = 1', "grid.seed"),  # the field as the sweep file spells it (it read grid.grid.seed)
])
def test_bad_tables_and_excludes_name_the_field(tmp_path: Path, bad: str, field: str) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(f'name = "x"\n[grid]\n{bad}\n')
    with pytest.raises(ConfigError) as info:
        expand(path)
    assert info.value.field == field
    other = tmp_path / "other.toml"
    other.write_text('name = "x"\nbogus = 1\n[grid]\nseed = [1]\n')
    with pytest.raises(ConfigError) as info:
        expand(other)
    assert info.value.field == "bogus"
