"""What a standalone peer keeps on disk so that a restart loses nothing it has promised.

One folder per (account, chain, deployment)::

    <state dir>/<chain id>-<RoundManager address>-<peer address>/
        state.json        per-round progress and the committed votes (salt included)
        round-<r>.bin     the update bytes published in round r (last few rounds)
        model.bin         the model after the latest aggregation

The vote vector and its salt are written (and fsync'ed) **before** the commit transaction
is sent: a peer that crashes after committing can still reveal after a restart, instead
of losing reputation for a missing reveal. The published update bytes are kept so that a
restarted peer can serve them again (auditors and neighbours fetch them by hash); the
model is kept so that it resumes from where it was.

The folder is created with mode 0700 and files with 0600: the salt must stay secret until
the reveal. No key material is ever written here.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bdfl.errors import BDFLError

STATE_FORMAT = 1
KEEP_BLOB_ROUNDS = 3


def state_folder(base: str | os.PathLike[str], chain_id: int, round_manager: str, address: str) -> Path:
    return Path(base) / f"{int(chain_id)}-{round_manager.lower()}-{address.lower()}"


#: Lock files this process holds, by folder: open once, for the process's life (a peer restarted
#: in the same process, as tests do, opens its folder again).
_LOCKS: dict[Path, int] = {}


def _lock(folder: Path) -> None:
    """Hold ``folder/lock`` (flock) for this process: two peers on one account and state folder would
    overwrite each other's saved votes and salts, and one of them could not reveal."""
    folder = folder.resolve()
    if folder in _LOCKS:
        return
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise BDFLError(f"the peer state folder {folder} is in use by another process (pid {holder}): the same account "
                        "is already running as a peer here", fix="stop the other `bdfl peer` first, or use another key") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _LOCKS[folder] = fd


def _write_atomic(path: Path, data: bytes) -> None:
    """Write, fsync, rename: after a crash the file is either the old or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


#: The peer's per-round history in its state folder (:meth:`PeerState.append_round`).
ROUNDS_FILE = "rounds.csv"


class PeerState:
    """Per-peer persisted state (see the module docstring). Round keys are ints."""

    def __init__(self, folder: Path, *, address: str, chain_id: int, round_manager: str) -> None:
        self.folder = folder
        self.path = folder / "state.json"
        self.identity = {"address": address.lower(), "chain_id": int(chain_id), "round_manager": round_manager.lower()}
        self.rounds: dict[int, dict[str, Any]] = {}
        self.last_aggregated = -1
        self.overlay: dict[str, Any] | None = None

    # -- load / save -----------------------------------------------------------------
    @classmethod
    def open(cls, base: str | os.PathLike[str], *, address: str, chain_id: int, round_manager: str) -> "PeerState":
        folder = state_folder(base, chain_id, round_manager, address)
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(folder, 0o700)
        except OSError as exc:
            raise BDFLError(f"cannot create the peer state folder {folder}: {exc.strerror or exc}",
                            fix="give a writable folder (--state-dir or $BDFL_PEER_STATE_DIR)") from None
        st = cls(folder, address=address, chain_id=chain_id, round_manager=round_manager)
        if st.path.exists():
            try:
                data = json.loads(st.path.read_text())
            except (OSError, ValueError) as exc:
                raise BDFLError(f"peer state file {st.path} is unreadable ({exc})",
                                fix="move it away to start without it (an unrevealed vote would then be lost)") from None
            if data.get("format") != STATE_FORMAT or data.get("identity") != st.identity:
                raise BDFLError(f"peer state file {st.path} belongs to another account or deployment",
                                fix="move it away or use another state folder")
            st.rounds = {int(k): dict(v) for k, v in data.get("rounds", {}).items()}
            st.last_aggregated = int(data.get("last_aggregated", -1))
            st.overlay = data.get("overlay")
        return st

    def hold(self) -> None:
        """Hold the folder for this process (``bdfl peer``; the simulation's in-process peers need not:
        one worker owns its folders). A second process on it is refused."""
        _lock(self.folder)

    def save(self) -> None:
        doc = {
            "format": STATE_FORMAT,
            "identity": self.identity,
            "last_aggregated": self.last_aggregated,
            "rounds": {str(k): v for k, v in sorted(self.rounds.items())},
            "overlay": self.overlay,
        }
        _write_atomic(self.path, json.dumps(doc, indent=1, sort_keys=True).encode())

    # -- rounds ----------------------------------------------------------------------
    def round(self, rnd: int) -> dict[str, Any]:
        return self.rounds.setdefault(int(rnd), {})

    def record_votes(self, rnd: int, indices: list[int], accept: list[bool], salt: bytes) -> None:
        """Persist the vote vector and salt (call before sending the commit)."""
        r = self.round(rnd)
        r["votes"] = {"indices": [int(i) for i in indices], "accept": [bool(a) for a in accept], "salt": "0x" + bytes(salt).hex()}
        self.save()

    def votes(self, rnd: int) -> tuple[list[int], list[bool], bytes] | None:
        v = self.rounds.get(int(rnd), {}).get("votes")
        if not v:
            return None
        return [int(i) for i in v["indices"]], [bool(a) for a in v["accept"]], bytes.fromhex(v["salt"][2:])

    def mark(self, rnd: int, **flags: Any) -> None:
        self.round(rnd).update(flags)
        self.save()

    def prune(self, keep_from: int) -> None:
        """Forget rounds before ``keep_from`` (their votes are settled) and old blobs."""
        for r in [r for r in self.rounds if r < keep_from]:
            del self.rounds[r]
        for f in self.folder.glob("round-*.bin"):
            try:
                if int(f.stem.split("-", 1)[1]) < keep_from - KEEP_BLOB_ROUNDS + 1:
                    f.unlink()
            except (ValueError, OSError):
                pass
        self.save()

    # -- bytes -----------------------------------------------------------------------
    def save_blob(self, rnd: int, data: bytes) -> None:
        _write_atomic(self.folder / f"round-{int(rnd)}.bin", data)

    def load_blob(self, rnd: int) -> bytes | None:
        try:
            return (self.folder / f"round-{int(rnd)}.bin").read_bytes()
        except OSError:
            return None

    def save_model(self, data: bytes) -> None:
        _write_atomic(self.folder / "model.bin", data)

    def append_round(self, row: dict[str, Any]) -> None:
        """One line per aggregated round in ``rounds.csv`` (the peer's own history: the terminal
        shows it once, a restart appends to it). A file whose header differs (another version's
        columns) is kept aside as ``rounds.csv.old`` instead of being mixed into."""
        path = self.folder / ROUNDS_FILE
        columns = list(row)
        if path.exists():
            with path.open(newline="") as f:
                header = next(csv.reader(f), [])
            if header != columns:
                path.replace(path.with_name(ROUNDS_FILE + ".old"))
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            if new:
                w.writeheader()
            w.writerow(row)

    def load_model(self) -> bytes | None:
        try:
            return (self.folder / "model.bin").read_bytes()
        except OSError:
            return None
