"""Static analysis of contracts/ with Slither, offline, on Hardhat's build output.

    .venv/bin/python experiments/slither_check.py [--install] [--slither PATH] [--no-compile]

1. ``node node_modules/hardhat/internal/cli/cli.js --config build/slither-hardhat/hardhat.config.js
   compile --force``: the project's hardhat.config.js (which points Hardhat at the npm ``solc``
   package, so nothing is downloaded) with private output paths under build/slither-hardhat;
2. ``slither . --compile-force-framework hardhat --hardhat-ignore-compile --hardhat-artifacts-directory build/slither-hardhat/artifacts
   --json build/slither.json`` reads that build-info (no native solc, no solc-select download:
   Slither works from the compiler's AST in the build info);
3. writes ``experiments/results/slither.md``: every finding by severity, detector and
   location, and for each High / Medium one the explanation below;
4. exits 1 if a High or Medium finding is not in ``EXPLAINED`` (2 if Slither is missing or fails).

Slither is **not** a project dependency: slither-analyzer 0.11.6 requires ``web3 < 8``
and would downgrade the project's web3 8, so it lives in its own virtual environment,
``build/slither-venv`` (``--install`` creates it from PyPI: ~40 s, 119 MB).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "slither.md"
RAW = ROOT / "build" / "slither.json"
VENV = ROOT / "build" / "slither-venv"
HH_DIR = ROOT / "build" / "slither-hardhat"  # private Hardhat output (see compile_contracts)
SLITHER_VERSION = "0.11.6"
SEVERITIES = ("High", "Medium", "Low", "Informational", "Optimization")

_REENTRANCY_RM = (
    "False positive. The only external calls are to `registry`, the `immutable` PeerRegistry "
    "fixed at construction, and the functions called (`onSubmit`, `settle`, `sweep`, `openRound`, "
    "`memberCount`, `drawCommitteeAmong`) never call back into RoundManager: their own external calls go "
    "only to the immutable BDFLToken (`mint` / `burn` of an OpenZeppelin ERC-20 without hooks). "
    "No untrusted code runs during these transactions, so no re-entrant call can observe the "
    "state written after them. The order is intended: e.g. the last submission must be recorded "
    "(and its eligibility known) before the committee is drawn in the same transaction, and "
    "`finalize` books a reward with `settle` before adding it to the round's minted total "
    "(`rs.minted`, checked against the budget by `_grant` before the call)."
)

#: (detector, element) -> why it is not a vulnerability. Element: ``Contract.member`` or
#: ``Contract.function.local``.
EXPLAINED: dict[tuple[str, str], str] = {
    ("uninitialized-state", "RoundManager._committees"): (
        "False positive. `_committees` is a `mapping(uint256 => address[])` written through a "
        "storage reference in `_advanceFrom` (`address[] storage stored = _committees[round]; "
        "stored.push(...)`), which Slither does not track. `tests/chain/test_rounds.py::"
        "test_seed_committee_and_assignments_match_the_documented_rules` reads the stored "
        "committee back and checks it against an independent Python draw."
    ),
    ("reentrancy-no-eth", "RoundManager.finalize"): _REENTRANCY_RM,
    ("reentrancy-no-eth", "RoundManager.submitUpdate"): _REENTRANCY_RM,
    ("reentrancy-no-eth", "PeerRegistry.settle"): (
        "False positive. `settle` is `onlyRole(PROTOCOL_ROLE)` (held by the RoundManager alone; "
        "the admin renounces role management at deployment), and its external calls are "
        "`token.burn` / `token.mint` on the `immutable` BDFLToken, a plain OpenZeppelin "
        "ERC20 + ERC20Burnable whose `_update` makes no external call — nothing can re-enter "
        "between the burn and the reward booking. The stateful test checks solvency "
        "(`balanceOf(registry) >= totalStaked + totalClaimable`) after every transaction."
    ),
    ("uninitialized-local", "RoundManager.approvedUpdates.w"): (
        "Intentional: a counter declared `uint256 w;` starts at 0 (Solidity zero-initialises locals)."
    ),
    ("uninitialized-local", "RoundManager.finalize.items"): (
        "Intentional: a counter declared `uint256 items;` starts at 0 (Solidity zero-initialises locals)."
    ),
    ("uninitialized-local", "Sortition.auditSeats.w"): (
        "Intentional: a write cursor declared `uint256 w;` starts at 0 (Solidity zero-initialises locals)."
    ),
}

#: Short notes for the lower-severity detectors (shown in the report; not gating).
NOTES: dict[str, str] = {
    "calls-loop": "the loop is `finalize`'s bounded batch (<= 200 items) calling the trusted, immutable registry; a revert there reverts the batch, and no callee is user-supplied",
    "reentrancy-benign": "same trusted callees as the reentrancy-no-eth entries above",
    "reentrancy-events": "events emitted after calls to the trusted registry / token; no re-entrancy possible, event order is deterministic",
    "timestamp": "phase deadlines are block.timestamp by design (minutes-long phases; a proposer's few seconds of drift do not matter); `approvedUpdates` is a false match (no timestamp involved)",
    "assembly": "OpenZeppelin internals, plus `drawCommittee` and `assignmentsOf` shrinking a memory array to its filled length (`mstore(arr, count)`, memory-safe)",
    "costly-loop": "`_members.pop()` in swap-and-pop removal inside the bounded sweep batch",
    "cyclomatic-complexity": "`ParamsLib.validate`: one range check per parameter; `PeerRegistry._checkEndpoint`: one branch per URL rule (scheme, userinfo, host, port, query, fragment, path), loop bounded by the 256-byte length limit",
    "pragma": "OpenZeppelin files use their own version ranges; everything is compiled with solc 0.8.37",
    "solc-version": "flags the version *ranges* of OpenZeppelin pragmas; the compiler actually used is 0.8.37, which has none of the listed bugs",
}


def find_slither(explicit: str | None, install: bool) -> str | None:
    for cand in (explicit, os.environ.get("BDFL_SLITHER"), str(VENV / "bin" / "slither"), shutil.which("slither")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    if not install:
        return None
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", f"slither-analyzer=={SLITHER_VERSION}"], check=True)
    print(f"installed slither-analyzer {SLITHER_VERSION} into {VENV} in {time.perf_counter() - t0:.0f} s")
    return str(VENV / "bin" / "slither")


def compile_contracts() -> None:
    """A clean, forced Hardhat build into build/slither-hardhat (the project's own hardhat.config.js
    with private artifact and cache paths): exactly one build-info, the current sources, and the
    shared artifacts/ left alone (an incremental build there can keep a stale build-info next to
    the new one, and Slither would analyse both)."""
    cli = ROOT / "node_modules" / "hardhat" / "internal" / "cli" / "cli.js"
    if not cli.is_file():
        sys.exit("error: Hardhat is not installed (node_modules/hardhat missing)\nfix: run `npm ci` (or `make setup`)")
    shutil.rmtree(HH_DIR, ignore_errors=True)
    HH_DIR.mkdir(parents=True)
    config = HH_DIR / "hardhat.config.js"
    paths = {"root": str(ROOT), "sources": str(ROOT / "contracts"), "artifacts": str(HH_DIR / "artifacts"),
             "cache": str(HH_DIR / "cache")}
    config.write_text(f"const base = require({json.dumps(str(ROOT / 'hardhat.config.js'))});\n"
                      f"module.exports = {{ ...base, paths: {json.dumps(paths)} }};\n")
    proc = subprocess.run(["node", str(cli), "--config", str(config), "compile", "--force", "--quiet"], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{proc.stdout}{proc.stderr}\nerror: hardhat compile failed (exit {proc.returncode})")


def element_key(result: dict) -> str:
    if not result.get("elements"):
        return "-"
    e = result["elements"][0]
    parent = e.get("type_specific_fields", {}).get("parent", {})
    if e["type"] == "variable" and parent.get("type") == "function":
        contract = parent.get("type_specific_fields", {}).get("parent", {}).get("name", "?")
        return f"{contract}.{parent['name']}.{e['name']}"
    if parent.get("type") == "contract":
        return f"{parent['name']}.{e['name']}"
    return str(e.get("name", "-"))


def location(result: dict) -> str:
    if not result.get("elements"):
        return "-"
    sm = result["elements"][0].get("source_mapping", {})
    lines = sm.get("lines") or [0]
    return f"{sm.get('filename_relative', '?')}#{lines[0]}"


def first_line(result: dict) -> str:
    return result["description"].strip().splitlines()[0].replace("|", "\\|")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slither", help="path of the slither executable (default: build/slither-venv, then PATH)")
    ap.add_argument("--install", action="store_true", help=f"create {VENV.relative_to(ROOT)} with slither-analyzer if missing")
    ap.add_argument("--no-compile", action="store_true", help="use artifacts/build-info as it is")
    args = ap.parse_args()

    slither = find_slither(args.slither, args.install)
    if slither is None:
        print("error: slither not found\nfix: .venv/bin/python experiments/slither_check.py --install "
              f"(a separate venv: slither-analyzer {SLITHER_VERSION} needs web3 < 8)", file=sys.stderr)
        return 2
    if not args.no_compile:
        compile_contracts()
    RAW.parent.mkdir(parents=True, exist_ok=True)
    RAW.unlink(missing_ok=True)
    # the tree also holds a foundry.toml (forge tests): name the framework, or crytic-compile
    # picks Foundry and calls `forge`
    cmd = [slither, ".", "--compile-force-framework", "hardhat", "--hardhat-ignore-compile", "--hardhat-artifacts-directory",
           str((HH_DIR / "artifacts").relative_to(ROOT)), "--json", str(RAW.relative_to(ROOT))]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if not RAW.is_file():
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
        print(f"error: slither failed (exit {proc.returncode}) and wrote no JSON", file=sys.stderr)
        return 2
    report = json.loads(RAW.read_text())
    if not report.get("success"):
        print(f"error: slither reported failure: {report.get('error')}", file=sys.stderr)
        return 2
    results = report.get("results", {}).get("detectors", [])
    version = subprocess.run([slither, "--version"], capture_output=True, text=True).stdout.strip()
    build_info = sorted((HH_DIR / "artifacts" / "build-info").glob("*.json"))
    if len(build_info) != 1:
        print(f"error: expected one build-info in {HH_DIR}/artifacts, found {len(build_info)}", file=sys.stderr)
        return 2
    solc = json.loads(build_info[0].read_text()).get("solcLongVersion", "?")

    by_sev: dict[str, list[dict]] = collections.defaultdict(list)
    for r in results:
        by_sev[r["impact"]].append(r)
    gating = [r for r in results if r["impact"] in ("High", "Medium")]
    unexplained = [r for r in gating if (r["check"], element_key(r)) not in EXPLAINED]
    seen = {(r["check"], element_key(r)) for r in gating}
    stale = sorted(k for k in EXPLAINED if k not in seen)

    def ours(r: dict) -> bool:
        return location(r).startswith("contracts/")

    md = [
        "# Slither static analysis of `contracts/`",
        "",
        "Produced by `.venv/bin/python experiments/slither_check.py` (offline): Hardhat compiles every source with "
        f"the npm solcjs ({solc}) into `build/slither-hardhat/`, then `{' '.join(['slither', *cmd[1:]])}` reads "
        f"its build-info (no native solc, nothing downloaded). Slither {version}: {len(results)} results in "
        f"{seconds:.1f} s. The script exits non-zero if a High or Medium finding is not explained below.",
        "",
        "| severity | findings | in contracts/ | in OpenZeppelin (node_modules) |",
        "|---|---:|---:|---:|",
    ]
    for sev in SEVERITIES:
        rs = by_sev.get(sev, [])
        if rs:
            n_ours = sum(ours(r) for r in rs)
            md.append(f"| {sev} | {len(rs)} | {n_ours} | {len(rs) - n_ours} |")
    md += ["", "## High and Medium", ""]
    if gating:
        md += ["| severity | detector | confidence | element | location | verdict |", "|---|---|---|---|---|---|"]
        for r in sorted(gating, key=lambda r: (SEVERITIES.index(r["impact"]), r["check"], element_key(r))):
            why = EXPLAINED.get((r["check"], element_key(r)), "**UNEXPLAINED**")
            md.append(f"| {r['impact']} | `{r['check']}` | {r['confidence']} | `{element_key(r)}` | {location(r)} | {why} |")
    else:
        md.append("None.")
    md += ["", "## Low, Informational, Optimization", "",
           "| severity | detector | findings | locations | note |", "|---|---|---:|---|---|"]
    groups: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    for r in results:
        if r["impact"] not in ("High", "Medium"):
            groups[(r["impact"], r["check"])].append(r)
    for (sev, check), rs in sorted(groups.items(), key=lambda kv: (SEVERITIES.index(kv[0][0]), kv[0][1])):
        locs = sorted({location(r) for r in rs})
        shown = ", ".join(locs[:4]) + (f", … ({len(locs)} places)" if len(locs) > 4 else "")
        md.append(f"| {sev} | `{check}` | {len(rs)} | {shown} | {NOTES.get(check, '')} |")
    if stale:
        md += ["", "Explanations no longer needed (the finding is gone): " + ", ".join(f"`{c}` {e}" for c, e in stale) + "."]
    md += ["", "## Every finding (first line of Slither's description)", ""]
    for r in sorted(results, key=lambda r: (SEVERITIES.index(r["impact"]), r["check"], location(r))):
        md.append(f"* **{r['impact']}** `{r['check']}`: {first_line(r)}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(md) + "\n")

    counts = ", ".join(f"{sev} {len(by_sev[sev])}" for sev in SEVERITIES if by_sev.get(sev))
    print(f"slither: {len(results)} findings ({counts}) in {seconds:.1f} s; report: {OUT.relative_to(ROOT)}")
    if unexplained:
        for r in unexplained:
            print(f"UNEXPLAINED {r['impact']} {r['check']} {element_key(r)} at {location(r)}: {first_line(r)}", file=sys.stderr)
        return 1
    print(f"all {len(gating)} High/Medium findings are explained")
    return 0


if __name__ == "__main__":
    sys.exit(main())
