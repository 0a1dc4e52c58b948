"""Effective dates never run backwards for a deal, a trial, a subscription,
nor for a customer's lifecycle (its deals, trials and subscriptions; usage
reports and partners do not order it).

A backdated command must never be judged against facts that began after its
date (a protection renewed by a later note, a trial that started later). The
simplest sound rule: a command dated before the last fact of a record it
reads is refused, naming that fact's date. `InOrder` wraps a command's unit
of work, so the check runs as each record is read, before any event."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar
from uuid import UUID

from ..aggregates import Customer, aggregate_id
from ..aggregates.base import Context, LedgerAggregate
from ..timeline import check_not_before

A = TypeVar("A", bound=LedgerAggregate)


def customer_of(agg: LedgerAggregate) -> str | None:
    """The domain (the Customer's key) whose lifecycle an ordered record belongs to."""
    if not agg.ORDERED:
        return None
    return agg.domain  # type: ignore[attr-defined, no-any-return]  # Deal, Trial, Subscription, Customer


def customers_of(aggregates: Iterable[Any]) -> list[UUID]:
    """The Customer ids of these loaded records' lifecycles (to preload them)."""
    return [aggregate_id(Customer.KIND, d) for a in aggregates if a is not None and (d := customer_of(a))]


class InOrder:
    """A command's view of the unit of work: every deal, trial, subscription
    or customer it gets is checked first (`check_not_before`) against the
    command's business date, itself and its customer's lifecycle. After the
    handler, `advance` moves the lifecycle of each customer whose records
    acted to the command's date."""

    def __init__(self, uow: Any, ctx: Context) -> None:
        self.uow, self.ctx = uow, ctx
        self._seen: dict[UUID, tuple[LedgerAggregate, int]] = {}

    def get(self, cls: type[A], key: str) -> A | None:
        agg = self.uow.get(cls, key)
        if agg is not None and agg.ORDERED:
            self._see(agg)
            check_not_before(f"{agg.KIND} {key}", agg.last_day, self.ctx.day)
            domain = customer_of(agg)
            if not isinstance(agg, Customer) and domain:
                customer = self.uow.get(Customer, domain)
                if customer is not None:
                    self._see(customer)
                    check_not_before(f"customer {domain}", customer.last_day, self.ctx.day)
        return agg

    def add(self, aggregate: LedgerAggregate) -> None:
        self.uow.add(aggregate)
        self._see(aggregate, fresh=True)

    def _see(self, agg: LedgerAggregate, fresh: bool = False) -> None:
        if agg.id not in self._seen:
            self._seen[agg.id] = (agg, 0 if fresh else len(agg.pending_events))

    def advance(self) -> None:
        """Date each touched customer's lifecycle to this command (a no-op
        where a fact of the customer already has this date or a later one)."""
        domains = {
            d for agg, count in self._seen.values()
            if len(agg.pending_events) > count and not isinstance(agg, Customer) and (d := customer_of(agg))
        }
        for domain in sorted(domains):
            customer = self.uow.get(Customer, domain)
            if customer is not None:
                customer.advance_lifecycle(self.ctx)
