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


#: What only bdfl.chain may touch: a web3 object (by the names the code gives it) and the helpers
#: that make or drive one. The import contract above keeps ``import web3`` inside bdfl.chain; this
#: keeps the *objects* there too (an orchestrator reading ``keeper.w3.eth.block_number`` imports
#: nothing, and did until bdfl.chain.connection.Chain).
WEB3_ATTRIBUTES = {"w3", "eth", "provider"}
WEB3_HELPERS = {"make_web3", "batch_mining", "submissions_closed_reader", "Web3"}


def web3_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) for each use of a web3 object or helper in ``source``."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in WEB3_ATTRIBUTES:
            found.append((node.lineno, "." + node.attr))
        elif isinstance(node, ast.Name) and node.id in WEB3_HELPERS | {"w3"}:
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.alias) and (node.asname or node.name).split(".")[-1] in WEB3_HELPERS:
            found.append((getattr(node, "lineno", 0), node.name))
    return found


def test_no_module_outside_bdfl_chain_touches_a_web3_object() -> None:
    """Chain access in one place: the layers above hold a bdfl.chain.connection.Chain (or a
    ProtocolClient), never the web3 object under it."""
    offending = [f"{path.relative_to(ROOT)}:{line} {what}"
                 for path in sorted((ROOT / "bdfl").rglob("*.py")) if "chain" not in path.relative_to(ROOT / "bdfl").parts[:1]
                 for line, what in web3_uses(path.read_text())]
    assert not offending, "web3 objects outside bdfl.chain: " + ", ".join(offending)


@pytest.mark.parametrize("planted", ["block = self.o.keeper.w3.eth.block_number\n",
                                     "from bdfl.chain.devnet import batch_mining\n",
                                     "ts = client.w3.eth.get_block('latest')\n"])
def test_the_web3_check_sees_a_planted_use(planted: str) -> None:
    assert web3_uses(planted)
