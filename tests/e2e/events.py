"""Reading a run's events.jsonl for same-seed comparisons."""

from __future__ import annotations

import json
from pathlib import Path


def reproducible_events(out: Path) -> list[dict[str, object]]:
    """The run's events without what the random vote salts make differ between same-seed runs:
    the commitments, and with them every transaction hash (docs/protocol.md, "Commitments")."""
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    events = [e for e in events if e.get("event") != "RoundTraffic"]  # bytes moved: a measurement, like seconds
    for e in events:
        e.pop("tx", None)
        if isinstance(e.get("args"), dict):
            e["args"].pop("commitment", None)
    return events
