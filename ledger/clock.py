"""The ledger's own clock: recorded time. It never runs backwards within a
process, so recorded times follow the order of the ledger's positions."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone


class Clock:
    def __init__(self) -> None:
        self._last = datetime.min.replace(tzinfo=timezone.utc)
        self._lock = threading.Lock()

    def _read(self) -> datetime:
        return datetime.now(timezone.utc)

    def now(self) -> datetime:
        with self._lock:
            now = self._read()
            if now <= self._last:
                now = self._last + timedelta(microseconds=1)
            self._last = now
            return now


class ManualClock(Clock):
    """A clock tests move by hand instead of sleeping."""

    def __init__(self, start: datetime) -> None:
        super().__init__()
        self.current = start

    def _read(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current
