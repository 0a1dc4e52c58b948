"""One worker's ledger for the API: opened on first use, reopened after a
database failure, and used by one request at a time (see app.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .. import authority
from ..db import Unavailable, first_line, is_database_error
from ..service import Ledger


class Service:
    """One worker's ledger, opened on first use and reopened after a database
    failure, behind a lock: one request at a time (why: app.py)."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.lock = threading.Lock()
        self._ledger: Ledger | None = None

    @contextmanager
    def ledger(self, actor: authority.Actor | None = None) -> Iterator[Ledger]:
        with self.lock:
            if self._ledger is None:
                self._ledger = Ledger(self.url, "system")
            ledger = self._ledger
            ledger.actor = actor or authority.Actor("system")
            try:
                yield ledger
            except (Unavailable, OSError) as e:
                self._drop()
                raise Unavailable(str(e)) from None
            except Exception as e:
                if is_database_error(e):
                    self._drop()
                    raise Unavailable(f"database error: {first_line(e)}") from None
                raise

    def _drop(self) -> None:
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            ledger.close()

    def close(self) -> None:
        with self.lock:
            self._drop()
