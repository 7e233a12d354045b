"""The commit a run records (config.toml's [versions].bdfl_commit): from a git archive export's
stamped bdfl/COMMIT, from git in a checkout, "unknown" otherwise."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bdfl.experiment.results import PACKAGE_DIR, package_versions, source_commit

ROOT = PACKAGE_DIR.parent


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def test_a_checkout_records_head_and_whether_the_code_differs_from_it(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    repo = tmp_path / "repo"
    (repo / "bdfl").mkdir(parents=True)
    (repo / "bdfl" / "COMMIT").write_text("$Format:%H$\n")  # as committed: not stamped
    (repo / "bdfl" / "a.py").write_text("x = 1\n")
    _git("init", "-q", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "add", ".", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c", cwd=repo)
    head = _git("rev-parse", "HEAD", cwd=repo)
    assert source_commit(repo / "bdfl") == head
    (repo / "notes.txt").write_text("untracked, outside the code\n")
    (repo / "bdfl" / "new.py").write_text("untracked\n")  # untracked files are not the code that was committed, nor a change to it
    assert source_commit(repo / "bdfl") == head
    (repo / "bdfl" / "a.py").write_text("x = 2\n")
    assert source_commit(repo / "bdfl") == head + "+modified"


def test_an_archive_export_records_the_commit_git_archive_stamped(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    # the project's own .gitattributes stamps bdfl/COMMIT in an export
    out = tmp_path / "export"
    out.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD", "bdfl/COMMIT", ".gitattributes"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    head = _git("rev-parse", "HEAD", cwd=ROOT)
    assert (out / "bdfl" / "COMMIT").read_text().strip() == head
    assert source_commit(out / "bdfl") == head


def test_no_git_and_no_stamp_is_unknown(tmp_path: Path) -> None:
    pkg = tmp_path / "bdfl"
    pkg.mkdir()
    (pkg / "COMMIT").write_text("$Format:%H$\n")
    assert source_commit(pkg) == "unknown"
    (pkg / "COMMIT").write_text("not-a-commit\n")
    assert source_commit(pkg) == "unknown"
    (pkg / "COMMIT").unlink()
    assert source_commit(pkg) == "unknown"


def test_the_versions_table_carries_the_commit() -> None:
    commit = package_versions()["bdfl_commit"]
    assert commit == "unknown" or len(commit.split("+")[0]) == 40
