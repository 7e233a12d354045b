"""``bdfl deploy --params FILE``: the file is read once, up front, and a bad one is a
ConfigError naming ``--params`` (no chain needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bdfl.chain.deploy_cli import _params
from bdfl.errors import ConfigError


def test_a_protocol_table_is_read(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text("[protocol]\ncommittee_size = 4\nquorum = 2\n")
    p = _params(str(f))
    assert p.committee_size == 4 and p.quorum == 2


@pytest.mark.parametrize(("text", "says"), [(None, "cannot read"), ("[protocol\n", "is not valid TOML"),
                                            ("protocol = 3\n", "expected a [protocol] table")])
def test_a_bad_file_names_the_flag(tmp_path: Path, text: str | None, says: str) -> None:
    f = tmp_path / "p.toml"
    if text is not None:
        f.write_text(text)
    with pytest.raises(ConfigError) as e:
        _params(str(f))
    assert "--params" in str(e.value) and says in str(e.value)
