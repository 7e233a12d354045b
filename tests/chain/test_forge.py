"""The Foundry suite (tests/forge/*.t.sol) inside pytest: ``forge build`` through the
project's solc shim, the fuzz and invariant tests, and the gas snapshot check.

forge has no solcjs support of its own; ``bdfl build`` (the ``artifacts`` fixture) writes the
shim wrapper under build/contracts/ with this machine's absolute paths, and every forge call
gets it with ``--use``. Settings (runs, depth, fuzz seed, output dirs) are in foundry.toml.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.background_builds import forge_argv

pytestmark = [pytest.mark.chain, pytest.mark.slow]

FORGE_TIMEOUT_S = 900

#: Every forge test, by suite: a test deleted or renamed fails here instead of silently not running.
EXPECTED_TESTS = {
    "tests/forge/Invariants.t.sol:ProtocolInvariantTest": {
        "invariant_solvent()",
        "invariant_oneCountedVotePerAuditorAndUpdate()",
        "invariant_noDuplicateHashInRound()",
        "invariant_committeeBounds()",
        "invariant_mintBound()",
        "invariant_revealsOpenOnlyTheirCommitment()",
        "invariant_finalizeNeverReverts()",
        "invariant_identityCosts()",
        "test_handlerReachesBoundStates()",
    },
    "tests/forge/Votes.t.sol:VoteCommitmentFuzzTest": {
        "testFuzz_revealOpensOnlyItsCommitment(uint256,uint256,bytes32,uint256)",
        "testFuzz_revealRefusesUnassignedAndRepeatedVotes(uint256,uint256,bool,bytes32)",
        "testFuzz_commitmentBindsChainAndContract(uint256,uint256,bytes32,uint256)",
    },
    "tests/forge/Votes.t.sol:CommitteeFuzzTest": {
        "testFuzz_committeeWithinBounds(uint256,uint256,uint256,uint256,uint256)",
    },
    "tests/forge/Votes.t.sol:DuplicateHashFuzzTest": {"testFuzz_copiedHashRefused(uint256,uint256)"},
    "tests/forge/Votes.t.sol:FinalizeBatchingFuzzTest": {"testFuzz_batchSizesGiveTheSameRound(uint256,uint256,bool)"},
    "tests/forge/Votes.t.sol:DuplicateTableGrindTest": {
        "testFuzz_groundCollisionsCostBoundedAndCopiesStillRefused(uint256)",
    },
    "tests/forge/Twins.t.sol:AssignmentTwinsFuzzTest": {
        "testFuzz_revealCheckAuditsAndAuditSeatsAgree(uint256,uint256,uint256,uint256,bool)",
    },
    "tests/forge/Deadlines.t.sol:PhaseDeadlineTest": {
        "test_submitIsOpenUntilTheSecondBeforeItsDeadline()",
        "test_commitAndRevealAreOpenUntilTheSecondBeforeTheirDeadlines()",
    },
    "tests/forge/Boundaries.t.sol:ThresholdBoundaryTest": {"test_outcomesAtExactlyTheQuorumAndThePercentages()"},
    "tests/forge/Boundaries.t.sol:BatchAndProbationTest": {
        "test_finalizeCallDoesAtMostMaxItems()",
        "test_acceptingAProbationUpdateIsAgreement()",
    },
    "tests/forge/Votes.t.sol:BeaconFuzzTest": {
        "testFuzz_seedIgnoresUpdateBytesOrderAndTiming(uint256,uint256,uint256)",
        "testFuzz_beaconRevealOpensOnlyOwnCommitment(uint256,bytes32,bool)",
    },
}

Forge = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="module")
def forge(project_root: Path, artifacts: Any) -> Forge:
    """Run forge in the project root with the shim as its compiler (built by ``artifacts``)."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            forge_argv(project_root, *args),
            cwd=project_root,
            capture_output=True,
            text=True,
            timeout=FORGE_TIMEOUT_S,
            check=False,
        )

    return run


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, f"forge exited {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}"


def test_forge_build_compiles_contracts_and_tests(forge: Forge, project_root: Path, background_build: Any) -> None:
    """The build started at collection (tests/background_builds.py) succeeded; without one,
    ``forge build`` here. Either way ``forge build`` then finds nothing left to compile."""
    build = background_build("forge")
    if build is not None:
        rc, log = build.wait(FORGE_TIMEOUT_S)
        assert rc == 0, f"background forge build exited {rc} (log {build.log}):\n{log[-6000:]}"
    else:
        _ok(forge("build"))
    again = forge("build")
    _ok(again)
    assert "No files changed" in again.stdout + again.stderr, again.stdout[-2000:]
    out = project_root / "build" / "forge-out"
    for name in ("BDFLToken", "PeerRegistry", "RoundManager"):
        assert (out / f"{name}.sol" / f"{name}.json").is_file(), f"forge produced no artifact for {name}"
    assert (out / "Invariants.t.sol" / "ProtocolInvariantTest.json").is_file()


def test_forge_fuzz_and_invariant_suite_passes(forge: Forge) -> None:
    proc = forge("test", "--no-match-contract", "^Gas", "--json")
    _ok(proc)
    results = json.loads(proc.stdout[proc.stdout.index("{") :])
    for suite, names in EXPECTED_TESTS.items():
        assert suite in results, f"forge did not run {suite}"
        ran = results[suite]["test_results"]
        for name in names:
            assert name in ran, f"{suite}: {name} did not run"
            assert ran[name]["status"] == "Success", f"{suite}: {name}: {ran[name].get('reason')}"
    invariants = results["tests/forge/Invariants.t.sol:ProtocolInvariantTest"]["test_results"]
    solvent = invariants["invariant_solvent()"]["kind"]["Invariant"]
    assert solvent["runs"] == 32 and solvent["calls"] == 32 * 25, f"foundry.toml run settings not applied: {solvent}"
    assert solvent["reverts"] == 0


def test_gas_snapshot_matches(forge: Forge) -> None:
    """Each protocol transaction costs what .gas-snapshot records (tests/forge/Gas.t.sol).
    After an intended change: ``make gas-snapshot`` and commit .gas-snapshot."""
    proc = forge("snapshot", "--check", "--match-contract", "^Gas")
    assert proc.returncode == 0, (
        "gas differs from .gas-snapshot (run `make gas-snapshot` if the change is intended):\n"
        + proc.stdout[-6000:]
        + proc.stderr[-2000:]
    )


def test_gas_snapshot_check_fails_when_gas_grows(forge: Forge, project_root: Path, tmp_path: Path) -> None:
    """The check is not vacuous: against a snapshot recording 1 gas less for one function
    (as if that function had grown by 1 gas), it fails and names the function."""
    lines = (project_root / ".gas-snapshot").read_text().splitlines()
    target = next(i for i, line in enumerate(lines) if "test_gas_submitUpdate()" in line)
    name, gas = lines[target].rsplit("(gas: ", 1)
    lines[target] = f"{name}(gas: {int(gas.rstrip(')')) - 1})"
    lower = tmp_path / "lower.gas-snapshot"
    lower.write_text("\n".join(lines) + "\n")
    proc = forge("snapshot", "--check", str(lower), "--match-contract", "^Gas")
    assert proc.returncode != 0
    assert "test_gas_submitUpdate()" in proc.stdout + proc.stderr
