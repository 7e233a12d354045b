"""Compile ``contracts/`` with py-solc-x's ``compile_standard``, offline.

The compiler is a native ``solc`` when ``$BDFL_SOLC`` names one, else the npm
``solc`` package (solcjs) behind :file:`solc_shim.js`, a small Node script that
answers ``--version`` and ``--standard-json`` like native solc. Both go through
the same ``compile_standard`` call, so results and errors look the same.

Artifacts land in ``build/contracts/<Name>.json`` with a ``manifest.json``
holding a fingerprint of every input (sources, imported OpenZeppelin version,
settings, compiler version); :func:`build` recompiles only when it changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdfl.chain import toolchain
from bdfl.errors import BDFLError

SHIM = Path(__file__).with_name("solc_shim.js")
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    source: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    source_hash: str
    compiler_version: str

    @property
    def abi_hash(self) -> str:
        """sha256 of the canonical ABI JSON: lets a peer check it talks to the ABI it expects."""
        return "0x" + hashlib.sha256(json.dumps(self.abi, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "contractName": self.name,
            "sourceName": self.source,
            "abi": self.abi,
            "bytecode": self.bytecode,
            "deployedBytecode": self.deployed_bytecode,
            "sourceHash": self.source_hash,
            "compilerVersion": self.compiler_version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Artifact":
        return cls(
            name=data["contractName"],
            source=data["sourceName"],
            abi=data["abi"],
            bytecode=data["bytecode"],
            deployed_bytecode=data["deployedBytecode"],
            source_hash=data["sourceHash"],
            compiler_version=data["compilerVersion"],
        )


def _sha256(data: bytes) -> str:
    return "0x" + hashlib.sha256(data).hexdigest()


def load_settings(root: Path) -> dict[str, Any]:
    """Compiler settings shared with hardhat.config.js (contracts/solc-settings.json)."""
    path = root / "contracts" / "solc-settings.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BDFLError(f"cannot read compiler settings {path}: {exc}") from exc


def solc_executable(root: Path, build_dir: Path) -> Path:
    """A native solc from ``$BDFL_SOLC``, else an executable wrapper around the shim."""
    native = os.environ.get("BDFL_SOLC")
    if native:
        if not os.access(native, os.X_OK):
            raise BDFLError(f"BDFL_SOLC={native} is not an executable file", fix="point BDFL_SOLC at a solc binary or unset it")
        return Path(native)
    node = toolchain.node_binary()
    modules = toolchain.node_modules(root)
    wrapper = build_dir / "solc-shim"
    text = f'#!/bin/sh\nexec "{node}" "{SHIM}" --node-modules "{modules}" "$@"\n'
    if not wrapper.is_file() or wrapper.read_text() != text:
        build_dir.mkdir(parents=True, exist_ok=True)
        wrapper.write_text(text)
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return wrapper


def _compiler_version(solc: Path) -> str:
    import solcx.wrapper

    try:
        return solcx.wrapper.get_version_str_from_solc_binary(solc)
    except Exception as exc:  # noqa: BLE001 - any failure here means an unusable compiler
        raise BDFLError(f"the Solidity compiler at {solc} did not answer --version: {exc}", fix=toolchain.NPM_INSTALL_FIX) from exc


def _sources(root: Path) -> dict[str, str]:
    contracts = root / "contracts"
    files = sorted(p for p in contracts.rglob("*.sol") if "node_modules" not in p.parts)
    if not files:
        raise BDFLError(f"no Solidity sources found in {contracts}")
    return {p.relative_to(root).as_posix(): p.read_text() for p in files}


def _fingerprint(sources: dict[str, str], settings: dict[str, Any], root: Path, solc: Path) -> str:
    oz = toolchain.npm_package_version("@openzeppelin/contracts", root)
    payload = {
        "sources": {k: _sha256(v.encode()) for k, v in sources.items()},
        "settings": settings,
        "openzeppelin": oz,
        "solc": str(solc) if os.environ.get("BDFL_SOLC") else f"solcjs-{toolchain.npm_package_version('solc', root)}",
    }
    return _sha256(json.dumps(payload, sort_keys=True).encode())


def _cached(build_dir: Path, fingerprint: str) -> dict[str, Artifact] | None:
    manifest = build_dir / MANIFEST
    try:
        data = json.loads(manifest.read_text())
        if data.get("fingerprint") != fingerprint:
            return None
        return {name: Artifact.from_json(json.loads((build_dir / f"{name}.json").read_text())) for name in data["contracts"]}
    except (OSError, ValueError, KeyError):
        return None


def build(root: Path | None = None, *, force: bool = False, build_dir: Path | None = None) -> dict[str, Artifact]:
    """Compile every contract in ``contracts/`` (or return the cached artifacts).

    Returns artifacts by contract name. Raises :class:`BDFLError` on a compile error,
    with solc's own messages, or when the toolchain is missing.
    """
    root = Path(root) if root else toolchain.project_root()
    build_dir = build_dir or root / "build" / "contracts"
    settings = load_settings(root)
    sources = _sources(root)
    solc = solc_executable(root, build_dir)
    fingerprint = _fingerprint(sources, settings, root, solc)
    if not force and (cached := _cached(build_dir, fingerprint)) is not None:
        return cached

    version = _compiler_version(solc)
    wanted = settings.get("version")
    if wanted and not version.startswith(wanted):
        raise BDFLError(
            f"the Solidity compiler is version {version} but contracts/solc-settings.json asks for {wanted}",
            fix="install the matching npm solc (`npm ci`) or point BDFL_SOLC at a native solc of that version",
        )
    standard_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "evmVersion": settings["evmVersion"],
            "optimizer": settings["optimizer"],
            "viaIR": settings.get("viaIR", False),
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
        },
    }
    import solcx
    from solcx.exceptions import SolcError

    modules = toolchain.node_modules(root)
    try:
        output = solcx.compile_standard(
            standard_input,
            base_path=str(root),
            allow_paths=[str(root), str(modules)],
            solc_binary=solc,
        )
    except SolcError as exc:
        raise BDFLError(f"Solidity compilation failed:\n{_solc_messages(exc)}", fix="fix the error in the contract source named above") from None

    artifacts: dict[str, Artifact] = {}
    for source_name, contracts in output.get("contracts", {}).items():
        if source_name not in sources:  # imported library (OpenZeppelin): not a deployable artifact of ours
            continue
        for name, data in contracts.items():
            bytecode = data["evm"]["bytecode"]["object"]
            artifacts[name] = Artifact(
                name=name,
                source=source_name,
                abi=data["abi"],
                bytecode="0x" + bytecode if bytecode else "0x",
                deployed_bytecode="0x" + data["evm"]["deployedBytecode"]["object"],
                source_hash=_sha256(sources[source_name].encode()),
                compiler_version=version,
            )
    _write(build_dir, artifacts, fingerprint, version)
    return artifacts


def _solc_messages(exc: Exception) -> str:
    text = str(exc)
    # py-solc-x appends the command and the whole stdin JSON; keep solc's own messages.
    for marker in ("\n> command:", "\nreturn code:", "> command:"):
        if marker in text:
            text = text.split(marker, 1)[0]
    return text.strip()


def _write(build_dir: Path, artifacts: dict[str, Artifact], fingerprint: str, version: str) -> None:
    build_dir.mkdir(parents=True, exist_ok=True)
    for name, art in artifacts.items():
        tmp = build_dir / f".{name}.json.tmp"
        tmp.write_text(json.dumps(art.to_json(), indent=1))
        tmp.replace(build_dir / f"{name}.json")
    manifest = {"fingerprint": fingerprint, "compilerVersion": version, "contracts": sorted(artifacts)}
    tmp = build_dir / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(build_dir / MANIFEST)


def load_artifacts(root: Path | None = None) -> dict[str, Artifact]:
    """Artifacts for the current sources, compiling only if they are stale."""
    return build(root)
