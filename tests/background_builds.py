"""Slow compilations started when the session starts, in idle CPU time, awaited by their tests.

``forge build`` (solcjs with via-IR over the contracts and tests/forge: about four minutes on
CI's two cores) and ``hardhat compile --force`` (about forty seconds) use one core each, while
most of the suite leaves the second core idle (one pytest process waiting on a devnet or a
run). tests/conftest.py starts the builds whose tests are selected and moves those tests to the
end of the session. A build runs at the lowest priority (``nice 19``), so the tests beside it
get the CPU they ask for first and their timings do not move, and outside pytest's process
tree, so tests that check a run left no process behind (tests/e2e/test_run.py) never see it.
A build that cannot start leaves its test to build in the foreground, as before.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bdfl.chain import compiler, toolchain

FORGE_TESTS = "tests/chain/test_forge.py"
HARDHAT_TEST = "tests/foundation/test_build_cli.py::test_hardhat_compile_offline"


@dataclass
class BackgroundBuild:
    """A command detached from pytest: its process group, log and exit-code file."""

    pgid: int
    log: Path
    rc_file: Path

    def wait(self, timeout_s: float) -> tuple[int, str]:
        """The command's exit code and output, once it has written its exit code; TimeoutError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not self.rc_file.is_file() or not self.rc_file.read_text().strip():
            if time.monotonic() > deadline:
                raise TimeoutError(f"background build still running after {timeout_s:.0f} s (log: {self.log})")
            time.sleep(1.0)
        return int(self.rc_file.read_text().strip()), self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Kill the command if it is still running (the session ended first)."""
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def forge_argv(root: Path, *args: str) -> list[str]:
    """``forge <args>`` offline, with ``bdfl build``'s solc shim (forge has no solcjs support of its own)."""
    solc = compiler.solc_executable(root, root / "build" / "contracts")
    return [toolchain.forge_binary(root), *args, "--use", str(solc), "--offline"]


def forge_build_argv(root: Path) -> list[str]:
    """``forge build``, after ``bdfl build`` (which writes the shim; cached when nothing changed)."""
    compiler.build(root)
    return forge_argv(root, "build")


def hardhat_compile_argv(root: Path) -> list[str]:
    """``hardhat compile --force --quiet`` with Hardhat 2's CLI in node_modules."""
    return [toolchain.node_binary(), str(toolchain.hardhat_cli(root)), "compile", "--force", "--quiet"]


#: Selected test (node-id prefix) -> the build it awaits, by name.
BUILDS: dict[str, tuple[str, Callable[[Path], Sequence[str]]]] = {
    FORGE_TESTS: ("forge", forge_build_argv),
    HARDHAT_TEST: ("hardhat", hardhat_compile_argv),
}


def start(root: Path, name: str, argv_of: Callable[[Path], Sequence[str]]) -> BackgroundBuild | None:
    """Start ``argv_of(root)`` in ``root`` at the lowest priority, in a session of its own whose
    leader exits at once; None when it cannot start."""
    try:
        argv = argv_of(root)
    except Exception:  # noqa: BLE001 - the test itself then builds and reports why it cannot
        return None
    log = root / "build" / f"background-{name}.log"
    rc_file = root / "build" / f"background-{name}.rc"
    log.parent.mkdir(parents=True, exist_ok=True)
    rc_file.unlink(missing_ok=True)
    cmd = " ".join(shlex.quote(str(a)) for a in argv)
    # The inner subshell outlives `sh`, which exits at once: init adopts the build, so it is no
    # descendant of pytest; the session (start_new_session) keeps its process group killable.
    script = f"( nice -n 19 {cmd} > {shlex.quote(str(log))} 2>&1; echo $? > {shlex.quote(str(rc_file))} ) &"
    leader = subprocess.Popen(["sh", "-c", script], cwd=root, start_new_session=True,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    leader.wait()
    return BackgroundBuild(leader.pid, log, rc_file)
