"""``forge build`` started when the session starts, in idle CPU time, awaited by test_forge.py.

Compiling the contracts and tests/forge through solcjs with via-IR takes about four minutes on
CI's two cores, one core's worth, while most of the suite leaves the second core idle (one
pytest process waiting on a devnet or a run). tests/conftest.py starts the build when the
forge tests are selected and moves them to the end of the session; the build runs at the
lowest priority (``nice 19``), so the tests beside it get the CPU they ask for first and
their timings do not move, and outside pytest's process tree, so tests that check a run
left no process behind (tests/e2e/test_run.py) never see it. Any failure to start leaves
the test to build in the foreground, as before.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

FORGE_TEST_FILE = "tests/chain/test_forge.py"


@dataclass
class BackgroundBuild:
    """A ``forge build`` detached from pytest: its process group, log and exit-code file."""

    pgid: int
    log: Path
    rc_file: Path

    def wait(self, timeout_s: float) -> tuple[int, str]:
        """The build's exit code and output, once it has written its exit code; TimeoutError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not self.rc_file.is_file() or not self.rc_file.read_text().strip():
            if time.monotonic() > deadline:
                raise TimeoutError(f"background forge build still running after {timeout_s:.0f} s (log: {self.log})")
            time.sleep(1.0)
        return int(self.rc_file.read_text().strip()), self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Kill the build if it is still running (the session ended first)."""
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def start(root: Path) -> BackgroundBuild | None:
    """Start ``forge build`` (with ``bdfl build``'s solc shim, built here if missing) at the lowest
    priority, in a session of its own whose leader exits at once; None when it cannot start."""
    # lazy: only sessions that select the forge tests pay for these imports
    from bdfl.chain import compiler, toolchain

    try:
        compiler.build(root)
        forge = toolchain.forge_binary(root)
        solc = compiler.solc_executable(root, root / "build" / "contracts")
    except Exception:  # noqa: BLE001 - the test itself then builds and reports why it cannot
        return None
    log = root / "build" / "forge-background.log"
    rc_file = root / "build" / "forge-background.rc"
    log.parent.mkdir(parents=True, exist_ok=True)
    rc_file.unlink(missing_ok=True)
    cmd = " ".join(shlex.quote(str(a)) for a in (forge, "build", "--use", solc, "--offline"))
    # The inner subshell outlives `sh`, which exits at once: init adopts the build, so it is no
    # descendant of pytest; the session (start_new_session) keeps its process group killable.
    script = f"( nice -n 19 {cmd} > {shlex.quote(str(log))} 2>&1; echo $? > {shlex.quote(str(rc_file))} ) &"
    leader = subprocess.Popen(["sh", "-c", script], cwd=root, start_new_session=True,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    leader.wait()
    return BackgroundBuild(leader.pid, log, rc_file)
