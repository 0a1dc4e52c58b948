"""Customer: one per registrable domain (ledger/identity.py decides which). It
is how the ledger recognises a company, and the single place that knows who protects the domain and whether it already
pays, so duplicate and existing-customer detection is one optimistic-concurrency
check on one aggregate, saved atomically with the deal, trial or subscription."""

from __future__ import annotations

from datetime import date
from typing import Any

from .base import Context, LedgerAggregate, Refused


class Customer(LedgerAggregate):
    KIND = "customer"
    ORDERED = True

    class Recognised(LedgerAggregate.Created):
        domain: str
        name: str

    class ProtectionClaimed(LedgerAggregate.Event):
        deal: str
        partner: str

        def apply(self, c: Customer) -> None:
            c.protecting_deal, c.protecting_partner = self.deal, self.partner

    class TrialAttached(LedgerAggregate.Event):
        trial: str
        partner: str

        def apply(self, c: Customer) -> None:
            c.trial, c.partner = self.trial, self.partner

    class SubscriptionAttached(LedgerAggregate.Event):
        subscription: str
        partner: str | None

        def apply(self, c: Customer) -> None:
            c.active_subscriptions.add(self.subscription)
            if self.partner:
                c.partner = self.partner

    class SubscriptionDetached(LedgerAggregate.Event):
        subscription: str

        def apply(self, c: Customer) -> None:
            c.active_subscriptions.discard(self.subscription)

    class LifecycleAdvanced(LedgerAggregate.Event):
        """One of the customer's deals, trials or subscriptions acted on a
        later effective date than any fact of the customer so far; the event
        only moves the customer's `last_day` (its `at`), so a backdated command
        on any record of this customer is refused (ledger.commands.order)."""

    def __init__(self, domain: str, name: str) -> None:
        self.domain = domain
        self.name = name
        self.partner: str | None = None  # whose customer overview shows it
        self.protecting_deal: str | None = None
        self.protecting_partner: str | None = None
        self.trial: str | None = None  # the latest trial
        self.active_subscriptions: set[str] = set()

    @classmethod
    def recognise(cls, domain: str, name: str, ctx: Context) -> Customer:
        return cls._new(cls.Recognised, domain, ctx, domain=domain, name=name)

    @property
    def is_paying(self) -> bool:
        return bool(self.active_subscriptions)

    def claim_protection(self, deal: str, partner: str, ctx: Context) -> None:
        self._trigger(self.ProtectionClaimed, ctx, deal=deal, partner=partner)

    def attach_trial(self, trial: str, partner: str, ctx: Context) -> None:
        self._trigger(self.TrialAttached, ctx, trial=trial, partner=partner)

    def attach_subscription(self, subscription: str, partner: str | None, ctx: Context) -> None:
        self._trigger(self.SubscriptionAttached, ctx, subscription=subscription, partner=partner)

    def detach_subscription(self, subscription: str, ctx: Context) -> None:
        self._trigger(self.SubscriptionDetached, ctx, subscription=subscription)

    def advance_lifecycle(self, ctx: Context) -> None:
        """Record that the customer's lifecycle reached `ctx.day`, unless a fact
        of the customer already carries that date or a later one."""
        if self.last_day is None or ctx.day > self.last_day:
            self._trigger(self.LifecycleAdvanced, ctx)


class UsageDay(LedgerAggregate):
    """The product's usage reports for one customer domain on one day. Kept
    apart from Customer: reports stream in all day, and must neither lengthen
    the Customer's history nor race with deal registrations on it."""

    KIND = "usage"

    class Reported(LedgerAggregate.Created):
        domain: str
        day: date
        users: int | None
        framework: str | None
        progress: int | None
        activities: int | None

    class ReportedAgain(LedgerAggregate.Event):
        domain: str
        day: date
        users: int | None
        framework: str | None
        progress: int | None
        activities: int | None

    def __init__(self, domain: str, day: date, **_: Any) -> None:
        self.domain, self.day = domain, day

    @staticmethod
    def key(domain: str, day: date) -> str:
        return f"{domain}/{day.isoformat()}"

    @classmethod
    def report(
        cls, existing: UsageDay | None, domain: str, ctx: Context, users: int | None,
        framework: str | None, progress: int | None, activities: int | None,
    ) -> UsageDay:
        if users is None and framework is None and progress is None and activities is None:
            raise Refused("a usage report needs at least one of users, framework, progress, activities")
        figures = {"users": users, "framework": framework, "progress": progress, "activities": activities}
        if existing is None:
            return cls._new(cls.Reported, cls.key(domain, ctx.day), ctx, domain=domain, day=ctx.day, **figures)
        existing._trigger(cls.ReportedAgain, ctx, domain=domain, day=ctx.day, **figures)
        return existing
