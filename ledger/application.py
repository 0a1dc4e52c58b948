"""The write side, assembled: the library's application (event store,
recorder, mapper and transcoder, with only the settings the ledger gives),
the event log below it (ledger/eventlog.py), the aggregate cache and unit of
work (ledger/unitofwork.py) and the batch executor with its retries
(ledger/executor.py). A command flows: executor → authority → handler on a
unit of work → one atomic write of events and outcomes → the read models."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Notification, Recording, Transcoder
from eventsourcing.utils import Environment, EnvType

from . import authority
from .aggregates.base import LedgerAggregate
from .clock import Clock
from .db import Database, Sql, Unavailable, redact
from .eventlog import EventLog, OutcomeLog, Seen
from .executor import BATCH_SIZE, BatchExecutor, Item, Result, likely_aggregates
from .transcoder import DateAsISO, LedgerTranscoder
from .unitofwork import AggregateCache, UnitOfWork

__all__ = ["LedgerApp", "Result", "likely_aggregates"]

A = TypeVar("A", bound=LedgerAggregate)


class LedgerApp(Application):
    name = "ledger"

    def __init__(self, db: Database, reads: Sql, clock: Clock | None = None) -> None:
        """`reads` is the read models' connection: the event log reads
        outcomes, aggregates and the head on it (ledger/eventlog.py)."""
        self.db = db
        try:
            super().__init__(env=db.eventsourcing_env())
        except Unavailable:
            raise
        except Exception as e:
            raise Unavailable(f"cannot open {db.display}: {redact(str(e)).strip()}") from None
        self.event_log = EventLog(db, reads, self.recorder, self.mapper, self.events)
        self.outcome_log = OutcomeLog(self.event_log)
        self.cache = AggregateCache(self.event_log, self.events)
        self.executor = BatchExecutor(self.event_log, self.outcome_log, self.cache, clock or Clock())

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Only the settings the ledger gives (Database.eventsourcing_env). The
        library would read os.environ first, so LEDGER_SQLITE_DBNAME, CIPHER_KEY
        or POSTGRES_ENABLE_DB_FUNCTIONS could move or change the event store."""
        return Environment(name, dict(env or {}))

    def construct_transcoder(self) -> Transcoder:
        """The library's JSON format, read and written with orjson (ledger/transcoder.py)."""
        transcoder = LedgerTranscoder()
        self.register_transcodings(transcoder)
        transcoder.register(DateAsISO())
        return transcoder

    # -- the write side's parts, as the rest of the ledger asks for them ------------
    def execute(self, items: Sequence[Item], submitter: authority.Actor,
                progress: Callable[[int], None] | None = None, batch_size: int = BATCH_SIZE,
                saved: Callable[[Sequence[Recording]], None] | None = None) -> list[Result]:
        """BatchExecutor.execute."""
        return self.executor.execute(items, submitter, progress, batch_size, saved)

    @property
    def conflicts(self) -> int:
        """Batches re-read and re-applied after losing a race."""
        return self.executor.conflicts

    def get(self, cls: type[A], key: str) -> A | None:
        """The `cls` aggregate of this key as stored now, or None."""
        return UnitOfWork(self.cache).get(cls, key)

    def load(self, agg_id: UUID) -> Any:
        """AggregateCache.load."""
        return self.cache.load(agg_id)

    def outcomes(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Seen]:
        """OutcomeLog.outcomes."""
        return self.outcome_log.outcomes(keys)

    def applied_keys(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (actor, command id) keys were applied."""
        return {k for k, (status, _, _) in self.outcome_log.outcomes(keys).items() if status == "applied"}

    @property
    def events_table(self) -> str:
        """EventLog.events_table."""
        return self.event_log.events_table

    def head(self) -> int:
        """EventLog.head."""
        return self.event_log.head()

    def notifications_of(self, agg_ids: Iterable[UUID], after: dict[UUID, int] | None = None) -> list[Notification]:
        """EventLog.notifications_of."""
        return self.event_log.notifications_of(agg_ids, after)

    def insert_raw(self, rows: Sequence[Notification]) -> None:
        """EventLog.insert_raw."""
        self.event_log.insert_raw(rows)
