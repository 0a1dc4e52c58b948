"""The unit of work: the aggregates one batch of commands reads and changes,
and the process's cache of aggregates those batches start from.

The cache is the one place aggregates are kept between batches. Each use
first reads any newer events from the store (another process may have
written), so a cached aggregate is never stale when a command sees it; a
batch that fails or loses a race drops the cache (it may hold events that
were never saved)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, TypeVar
from uuid import UUID

from .aggregates import aggregate_id
from .aggregates.base import LedgerAggregate
from .eventlog import EventLog

A = TypeVar("A", bound=LedgerAggregate)

CACHE_SIZE = 50_000  # aggregates; bounded so a long submission's memory stays flat


class AggregateCache:
    """Aggregates as last saved or read by this process, least recently used
    dropped first."""

    def __init__(self, log: EventLog, events: Any, size: int = CACHE_SIZE) -> None:
        """`events` is the library's event store (its `get` replays one aggregate)."""
        self.log, self.events, self.size = log, events, size
        self._kept: OrderedDict[UUID, Any] = OrderedDict()

    def load(self, agg_id: UUID) -> Any:
        """The aggregate as stored now, or None. Replays only the events the
        cached copy has not seen."""
        agg = self._kept.get(agg_id)
        for event in self.events.get(agg_id, gt=agg.version if agg is not None else None):
            agg = event.mutate(agg)
        if agg is not None:
            self.remember(agg)
        return agg

    def preload(self, agg_ids: Iterable[UUID]) -> dict[UUID, Any]:
        """Load (or bring up to date) many aggregates with one query: {id: aggregate or None}."""
        ids = list(dict.fromkeys(agg_ids))
        out: dict[UUID, Any] = {i: self._kept.get(i) for i in ids}
        to_domain_event = self.log.mapper.to_domain_event
        for n in self.log.notifications_of(ids, after={i: a.version for i, a in out.items() if a is not None}):
            agg = out[n.originator_id]
            if agg is None or n.originator_version > agg.version:
                out[n.originator_id] = to_domain_event(n).mutate(agg)
        for agg in out.values():
            if agg is not None:
                self.remember(agg)
        return out

    def remember(self, agg: Any) -> None:
        """Keep `agg` (unless its class is never cached), as the most recently used."""
        if not agg.CACHED:
            return
        self._kept[agg.id] = agg
        self._kept.move_to_end(agg.id)
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)

    def forget(self, agg_id: UUID) -> None:
        self._kept.pop(agg_id, None)

    def clear(self) -> None:
        self._kept.clear()


class HandlerBroke(RuntimeError):
    """A handler refused after triggering an event: a bug in the handler, which
    must check everything first. Never a refusal (exit 70, not 1)."""


class UnitOfWork:
    """The aggregates of one batch: each loaded once (from the cache, else the
    store), new ones added, and every one with new events handed to the save.

    Handlers check everything before they trigger the first event
    (ledger/commands/handlers.py), so a refused command has nothing to undo;
    `refused` makes sure of it."""

    def __init__(self, cache: AggregateCache) -> None:
        self.cache = cache
        self.loaded: dict[UUID, LedgerAggregate | None] = {}
        self._counts: dict[UUID, int] = {}  # pending events of what the current command touched, as it found them

    def get(self, cls: type[A], key: str) -> A | None:
        """The `cls` aggregate of this key (ledger.aggregates.aggregate_id), or None."""
        agg_id = aggregate_id(cls.KIND, key)
        if agg_id not in self.loaded:
            self.loaded[agg_id] = self.cache.load(agg_id)
        agg = self.loaded[agg_id]
        if agg_id not in self._counts:
            self._counts[agg_id] = len(agg.pending_events) if agg is not None else 0
        return agg  # type: ignore[return-value]

    def add(self, aggregate: LedgerAggregate) -> None:
        """A new aggregate, saved with the batch."""
        self._counts.setdefault(aggregate.id, 0)
        self.loaded[aggregate.id] = aggregate

    def preload(self, agg_ids: Iterable[UUID]) -> None:
        """Load these aggregates with one query (those not loaded yet)."""
        self.loaded.update(self.cache.preload(i for i in agg_ids if i not in self.loaded))

    def begin(self) -> None:
        """A new command starts."""
        self._counts = {}

    def refused(self) -> None:
        """The current command was refused: raises HandlerBroke if it left any
        event behind (it would be saved with the batch)."""
        for agg_id, count in self._counts.items():
            agg = self.loaded.get(agg_id)
            if agg is not None and len(agg.pending_events) > count:
                raise HandlerBroke(f"a refused command left a {type(agg).__name__} event behind")
        self._counts = {}

    def pending(self) -> list[LedgerAggregate]:
        """The aggregates with events to save, in the order they were loaded or added."""
        return [a for a in self.loaded.values() if a is not None and a.pending_events]
