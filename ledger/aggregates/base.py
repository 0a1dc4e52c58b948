"""What every ledger aggregate shares: deterministic ids, the command context
that each event records, and the error a business rule raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from datetime import date, datetime
from typing import Any, TypeVar
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from ..errors import Refused
from ..timeline import business_date

# Client-chosen string ids map to stable UUIDs, so a JSON Lines file can refer
# to what an earlier line created and two writers agree on the aggregate id.
_NAMESPACE = UUID("6a0f3f5e-2b1c-4d0e-9a57-3c1d5e8f9b21")


@lru_cache(maxsize=1 << 14)  # a batch's working set; bounded so memory stays flat
def aggregate_id(kind: str, key: str) -> UUID:
    return uuid5(_NAMESPACE, f"{kind}:{key}")


class NotFound(Refused):
    """A query asked for a record the asker may not see: none exists, or it is
    another partner's (never said apart). Exit 1 like any refusal; HTTP 404."""


@dataclass(frozen=True)
class Context:
    """Who asked, under which command id, about when (effective time), and
    when the ledger recorded it (its own clock; becomes the event timestamp)."""

    command_id: str
    actor: str
    at: datetime
    recorded: datetime
    token: str | None = None  # the API token's name, when the command came through the API

    @cached_property  # asked by every rule a command runs: computed once
    def day(self) -> date:
        """The business date of the effective time (in LEDGER_TIMEZONE)."""
        return business_date(self.at)

    def meta(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "command_id": self.command_id,
            "at": self.at,
            "timestamp": self.recorded,
            "token": self.token,
        }


A = TypeVar("A", bound="LedgerAggregate")


class LedgerAggregate(Aggregate):
    """Base aggregate: every event carries actor, command id and effective time.

    Command methods validate first and only then trigger events, because the
    ``apply`` of an event re-runs on every replay and must never refuse."""

    KIND = ""
    # Deals, trials, subscriptions and customers: their effective dates never
    # run backwards (checked by ledger.commands.order before a command acts).
    ORDERED = False
    # Kept in the process's aggregate cache after a save (ledger/unitofwork.py).
    CACHED = True
    last_day: date | None = None  # the business date of its latest fact

    class Event(Aggregate.Event):
        actor: str
        command_id: str
        at: datetime
        # Keyword-only with a default: events stored before it existed decode
        # without it (the class attribute answers None).
        token: str | None = field(default=None, kw_only=True)

        def mutate(self, aggregate: Any) -> Any:
            aggregate = super().mutate(aggregate)
            if aggregate is not None:  # on replay too: derived from the events alone
                day = business_date(self.at)
                if aggregate.last_day is None or day > aggregate.last_day:
                    aggregate.last_day = day
            return aggregate

    class Created(Event, Aggregate.Created):
        pass

    @classmethod
    def _new(cls: type[A], created: type, key: str, ctx: Context, **fields: Any) -> A:
        return cls._create(created, id=aggregate_id(cls.KIND, key), **ctx.meta(), **fields)

    def _trigger(self, event_class: type, ctx: Context, **fields: Any) -> None:
        self.trigger_event(event_class, **ctx.meta(), **fields)
