"""Locate the offline toolchain: project root, Node.js, npm packages, anvil, forge.

Every lookup fails with a :class:`BDFLError` that names what is missing and the
command that installs it, instead of a FileNotFoundError deep in a subprocess.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bdfl.errors import BDFLError

ANVIL_PACKAGE = "@foundry-rs/anvil-linux-amd64"
FORGE_PACKAGE = "@foundry-rs/forge-linux-amd64"
NPM_INSTALL_FIX = "run `npm ci` in the project root (or `make setup`)"


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The BDFL checkout: ``$BDFL_ROOT``, else the nearest parent of ``start``
    (default: the working directory) holding ``contracts/`` and ``package.json``,
    else the checkout this package was installed from."""
    env = os.environ.get("BDFL_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "contracts").is_dir() and (candidate / "package.json").is_file():
            return candidate
    source_checkout = Path(__file__).resolve().parents[2]
    if (source_checkout / "contracts").is_dir():
        return source_checkout
    raise BDFLError(
        f"cannot find the BDFL project root (a folder with contracts/ and package.json) from {here}",
        fix="run the command inside the BDFL checkout or set BDFL_ROOT",
    )


def node_binary() -> str:
    """Path of ``node``; Node 20+ is required for solcjs and Hardhat 2."""
    node = shutil.which("node")
    if node is None:
        raise BDFLError(
            "Node.js was not found on PATH (needed for the Solidity compiler and Hardhat)",
            fix="install Node.js 20 (e.g. `apt-get install nodejs npm`)",
        )
    return node


def node_modules(root: Path | None = None) -> Path:
    """``node_modules`` of the project, checked to contain the packages we use."""
    path = (root or project_root()) / "node_modules"
    if not (path / "solc" / "package.json").is_file():
        raise BDFLError(f"npm packages are not installed ({path / 'solc'} is missing)", fix=NPM_INSTALL_FIX)
    return path


def npm_package_version(name: str, root: Path | None = None) -> str:
    """Installed version of an npm package, from its package.json."""
    import json

    pkg = node_modules(root) / name / "package.json"
    if not pkg.is_file():
        raise BDFLError(f"npm package {name} is not installed ({pkg} is missing)", fix=NPM_INSTALL_FIX)
    return str(json.loads(pkg.read_text())["version"])


def _foundry_binary(name: str, package: str, env_var: str, root: Path | None) -> str:
    """A Foundry executable: ``$<env_var>``, the npm package's binary, or ``name`` on PATH."""
    env = os.environ.get(env_var)
    if env:
        return env
    try:
        base = (root or project_root()) / "node_modules" / package
    except BDFLError:
        base = None
    if base is not None:
        for rel in (f"bin/{name}", name):
            candidate = base / rel
            if candidate.is_file():
                if not os.access(candidate, os.X_OK):
                    candidate.chmod(candidate.stat().st_mode | 0o111)
                return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise BDFLError(
        f"{name} was not found (looked in node_modules/{package} and on PATH)",
        fix=NPM_INSTALL_FIX,
    )


def anvil_binary(root: Path | None = None) -> str:
    """The anvil executable: ``$BDFL_ANVIL``, the npm package's binary, or ``anvil`` on PATH."""
    return _foundry_binary("anvil", ANVIL_PACKAGE, "BDFL_ANVIL", root)


def forge_binary(root: Path | None = None) -> str:
    """The forge executable (contract fuzz/invariant tests, gas snapshot): ``$BDFL_FORGE``,
    the npm package's binary, or ``forge`` on PATH."""
    return _foundry_binary("forge", FORGE_PACKAGE, "BDFL_FORGE", root)


def hardhat_cli(root: Path | None = None) -> Path:
    """Hardhat 2's CLI entry script inside node_modules."""
    cli = (root or project_root()) / "node_modules" / "hardhat" / "internal" / "cli" / "cli.js"
    if not cli.is_file():
        raise BDFLError(f"Hardhat is not installed ({cli} is missing)", fix=NPM_INSTALL_FIX)
    return cli
