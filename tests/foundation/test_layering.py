"""The layering of docs/architecture.md, checked by import-linter (``lint-imports``, the
contracts in pyproject.toml): it reads every import statement, those inside functions too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install -e .[dev])")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_every_layering_contract() -> None:
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        # an upward import hidden inside a function: learning -> experiment
        ("bdfl/learning/data.py", "def _planted() -> None:\n    from bdfl.experiment import runner  # noqa\n",
         "bdfl.learning is not allowed to import bdfl.experiment"),
        # web3 outside bdfl.chain
        ("bdfl/peer/sources.py", "def _planted() -> None:\n    import web3  # noqa\n",
         "bdfl.peer is not allowed to import web3"),
        # a cycle between siblings: setup -> runner -> setup
        ("bdfl/experiment/setup.py", "def _planted() -> None:\n    from bdfl.experiment import runner  # noqa\n",
         "No cycles are allowed in bdfl.experiment"),
    ],
)
def test_a_planted_violation_inside_a_function_fails(tmp_path: Path, module: str, planted: str, contract: str) -> None:
    """The check is not blind to imports inside functions: a copy of the tree with one
    violation planted in a function body fails, naming the contract."""
    shutil.copytree(ROOT / "bdfl", tmp_path / "bdfl", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + "\n\n" + planted)
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert contract in out.stdout, out.stdout


def test_imports_between_bdfl_modules_sit_at_module_top_unless_marked_lazy() -> None:
    """An import inside a function hides a dependency from a reader (and once hid an import
    cycle): the only ones allowed carry a ``# lazy: <why>`` comment (start-up time)."""
    import ast

    unmarked = []
    for path in sorted((ROOT / "bdfl").rglob("*.py")):
        lines = path.read_text().splitlines()

        def walk(node: ast.AST, in_function: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if in_function and isinstance(child, ast.ImportFrom) and (child.module or "").startswith("bdfl") \
                        and "# lazy:" not in lines[child.lineno - 1]:
                    unmarked.append(f"{path.relative_to(ROOT)}:{child.lineno}")
                walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

        walk(ast.parse("\n".join(lines)), False)
    assert not unmarked, "function-level imports without '# lazy: <why>': " + ", ".join(unmarked)
