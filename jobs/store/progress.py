"""`progress.json`: the units the driver has handed out and not yet seen settle.

Rewritten as units are dispatched and land (at most once per `PROGRESS_EVERY_S`, one PUT on
S3), so `troop status` can show the units in flight of a running run; a driver that was killed
cannot update it, so the file says when it was written.
"""

import json
import time
from datetime import datetime, timezone

from jobs.store.root import RunStore

PROGRESS_EVERY_S = 2.0  # at most one progress write per this many seconds


class ProgressFile:
    """The driver's record of the units in flight: `dispatched`/`settled` as the executor works."""

    def __init__(self, store: RunStore, every_s: float = PROGRESS_EVERY_S):
        self.store, self.every_s, self.in_flight, self.written_at = store, every_s, set(), 0.0

    def dispatched(self, unit_id: str) -> None:
        self.in_flight.add(unit_id)
        self._write()

    def settled(self, unit_id: str) -> None:
        self.in_flight.discard(unit_id)
        self._write(force=not self.in_flight)

    def _write(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.written_at < self.every_s:
            return
        self.written_at = time.monotonic()
        state = {"updated": datetime.now(timezone.utc).isoformat(timespec="seconds"), "in_flight": sorted(self.in_flight)}
        self.store.write_text(self.store.progress_json, json.dumps(state) + "\n")


def read_progress(store: RunStore) -> dict | None:
    """What the driver last wrote ({updated, in_flight}), or None."""
    return json.loads(store.read_text(store.progress_json)) if store.exists(store.progress_json) else None
