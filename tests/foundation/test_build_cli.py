"""`bdfl build` and `npx hardhat compile` on the real contracts, offline."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.background_builds import hardhat_compile_argv


def test_bdfl_build_twice_second_is_cached(project_root: Path) -> None:
    first = subprocess.run([sys.executable, "-m", "bdfl", "build"], cwd=project_root, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    for name in ("BDFLToken", "PeerRegistry", "RoundManager"):
        assert name in first.stdout
    manifest = project_root / "build" / "contracts" / "manifest.json"
    before = manifest.stat().st_mtime_ns
    second = subprocess.run([sys.executable, "-m", "bdfl", "build"], cwd=project_root, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert manifest.stat().st_mtime_ns == before, "second build rewrote the artifacts"
    assert second.stdout == first.stdout


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_hardhat_compile_offline(project_root: Path, background_build: Any) -> None:
    """``hardhat compile --force``: started at collection (tests/background_builds.py), or here."""
    build = background_build("hardhat")
    if build is not None:
        rc, log = build.wait(300)
        assert rc == 0, log
    else:
        proc = subprocess.run(hardhat_compile_argv(project_root), cwd=project_root, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    art = project_root / "artifacts" / "contracts" / "RoundManager.sol" / "RoundManager.json"
    assert art.is_file() and '"bytecode": "0x6' in art.read_text()
