"""Contract build: offline compile through py-solc-x + the solcjs shim, caching, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bdfl.chain import compiler
from bdfl.errors import BDFLError

TOKEN = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
import "@openzeppelin/contracts/token/ERC20/ERC20.sol";
contract Tiny is ERC20 {
    error Nope(uint256 code);
    constructor() ERC20("Tiny", "TNY") { _mint(msg.sender, 1000); }
    function fail(uint256 code) external pure { revert Nope(code); }
}
"""


@pytest.fixture()
def mini_project(tmp_path: Path, project_root: Path) -> Path:
    """A throwaway project with one contract, sharing the real node_modules."""
    (tmp_path / "contracts").mkdir()
    shutil.copy(project_root / "contracts" / "solc-settings.json", tmp_path / "contracts")
    shutil.copy(project_root / "package.json", tmp_path)
    (tmp_path / "node_modules").symlink_to(project_root / "node_modules")
    (tmp_path / "contracts" / "Tiny.sol").write_text(TOKEN)
    return tmp_path


def test_build_compiles_with_openzeppelin_imports(mini_project: Path) -> None:
    arts = compiler.build(mini_project)
    tiny = arts["Tiny"]
    assert tiny.bytecode.startswith("0x") and len(tiny.bytecode) > 1000
    assert any(e.get("name") == "Nope" and e["type"] == "error" for e in tiny.abi)
    assert tiny.compiler_version.startswith("0.8.37")
    saved = json.loads((mini_project / "build" / "contracts" / "Tiny.json").read_text())
    assert saved["sourceHash"] == tiny.source_hash
    # imported OpenZeppelin contracts are not our artifacts
    assert "ERC20" not in arts


def test_second_build_does_not_recompile(mini_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = compiler.build(mini_project)
    import solcx

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("recompiled although no source changed")

    monkeypatch.setattr(solcx, "compile_standard", boom)
    second = compiler.build(mini_project)
    assert second["Tiny"] == first["Tiny"]
    # ...but a changed source does recompile
    (mini_project / "contracts" / "Tiny.sol").write_text(TOKEN.replace("1000", "2000"))
    with pytest.raises(AssertionError, match="recompiled"):
        compiler.build(mini_project)


def test_compile_error_names_file_and_line(mini_project: Path) -> None:
    (mini_project / "contracts" / "Broken.sol").write_text("pragma solidity ^0.8.24; contract B { function f() public { y = 1; } }")
    with pytest.raises(BDFLError) as info:
        compiler.build(mini_project)
    text = str(info.value)
    assert "Solidity compilation failed" in text
    assert "contracts/Broken.sol:1" in text
    assert "Undeclared identifier" in text
    assert "stdin" not in text.lower()  # no dump of the JSON input


def test_missing_npm_install_is_one_clear_message(mini_project: Path) -> None:
    (mini_project / "node_modules").unlink()
    with pytest.raises(BDFLError) as info:
        compiler.build(mini_project)
    assert "npm packages are not installed" in info.value.message
    assert info.value.fix and "npm ci" in info.value.fix


def test_native_solc_path_is_used_when_given(mini_project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """BDFL_SOLC points at a 'native' compiler: here a wrapper script, exercising the same path."""
    fake = tmp_path_factory.mktemp("bin") / "solc"
    shim = compiler.solc_executable(mini_project, mini_project / "build" / "contracts")
    fake.write_text(f"#!/bin/sh\nexec {shim} \"$@\"\n")
    fake.chmod(0o755)
    monkeypatch.setenv("BDFL_SOLC", str(fake))
    assert compiler.solc_executable(mini_project, mini_project / "build") == fake
    assert "Tiny" in compiler.build(mini_project, force=True)
    monkeypatch.setenv("BDFL_SOLC", str(mini_project / "nope"))
    with pytest.raises(BDFLError, match="BDFL_SOLC"):
        compiler.build(mini_project, force=True)
