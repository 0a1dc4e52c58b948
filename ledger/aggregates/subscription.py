"""Subscription: a customer's paid plan. Each billing period produces a charge
(the start, then each renewal); cancellation and refunds are events too."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from .. import money
from .base import Context, LedgerAggregate, Refused
from .deal import BILLING_OPTIONS

PERIODS = ("monthly", "yearly")


def check_money(amount: Decimal, currency: str, what: str = "amount") -> Decimal:
    """`amount` if it is a positive amount in `currency`'s minor units
    (ledger/money.py); raises Refused otherwise."""
    try:
        return money.check_amount(amount, currency, what)
    except money.MoneyError as e:
        raise Refused(str(e)) from None


def add_months(day: date, months: int) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def period_end(start: date, period: str) -> date:
    return add_months(start, 1 if period == "monthly" else 12)


@dataclass
class Charge:
    number: int
    day: date
    amount: Decimal
    period_start: date
    period_end: date
    refunded: Decimal = Decimal("0.00")


class Subscription(LedgerAggregate):
    KIND = "subscription"

    class Started(LedgerAggregate.Created):
        subscription: str
        domain: str
        partner: str | None
        deal: str | None
        plan: str
        amount: Decimal
        currency: str
        period: str
        billing: str
        order_number: str | None

        def apply(self, s: Subscription) -> None:
            start = self.at.date()
            s.charges.append(Charge(1, start, self.amount, start, period_end(start, self.period)))

    class Renewed(LedgerAggregate.Event):
        charge: int
        amount: Decimal
        period_start: date
        period_end: date

        def apply(self, s: Subscription) -> None:
            s.charges.append(
                Charge(self.charge, self.at.date(), self.amount, self.period_start, self.period_end)
            )

    class Cancelled(LedgerAggregate.Event):
        def apply(self, s: Subscription) -> None:
            s.cancelled_on = self.at.date()

    class Refunded(LedgerAggregate.Event):
        charge: int
        amount: Decimal

        def apply(self, s: Subscription) -> None:
            s.charges[self.charge - 1].refunded += self.amount

    def __init__(
        self, subscription: str, domain: str, partner: str | None, deal: str | None,
        plan: str, amount: Decimal, currency: str, period: str, billing: str,
        order_number: str | None,
    ) -> None:
        self.subscription = subscription
        self.domain = domain
        self.partner = partner
        self.deal = deal
        self.plan = plan
        self.amount = amount
        self.currency = currency
        self.period = period
        self.billing = billing
        self.order_number = order_number
        self.charges: list[Charge] = []
        self.cancelled_on: date | None = None

    @classmethod
    def start(
        cls, subscription: str, domain: str, partner: str | None, deal: str | None,
        plan: str, amount: Decimal, currency: str, period: str, billing: str,
        order_number: str | None, ctx: Context,
    ) -> Subscription:
        if not plan.strip():
            raise Refused("a subscription needs a plan")
        try:
            money.check_currency(currency)
        except money.MoneyError as e:
            raise Refused(str(e)) from None
        check_money(amount, currency)
        if period not in PERIODS:
            raise Refused(f"period must be one of {', '.join(PERIODS)}")
        if billing not in BILLING_OPTIONS:
            raise Refused(f"billing must be one of {', '.join(BILLING_OPTIONS)}")
        if billing == "invoice" and not (order_number and order_number.strip()):
            raise Refused("invoice billing requires an order number")
        if billing == "partner" and not partner:
            raise Refused("partner billing needs the partner: name a won deal or a customer of a partner")
        return cls._new(
            cls.Started, subscription, ctx, subscription=subscription, domain=domain,
            partner=partner, deal=deal, plan=plan.strip(), amount=amount, currency=currency,
            period=period, billing=billing, order_number=order_number,
        )

    @property
    def latest(self) -> Charge:
        return self.charges[-1]

    @property
    def renewal_due(self) -> date:
        return self.latest.period_end

    def renew(self, ctx: Context) -> None:
        if self.cancelled_on:
            raise Refused(f"subscription {self.subscription} was cancelled on {self.cancelled_on}")
        if ctx.day < self.latest.day:
            raise Refused(f"a renewal cannot predate the latest charge ({self.latest.day})")
        start = self.latest.period_end
        self._trigger(
            self.Renewed, ctx, charge=self.latest.number + 1, amount=self.amount,
            period_start=start, period_end=period_end(start, self.period),
        )

    def cancel(self, ctx: Context) -> None:
        if self.cancelled_on:
            raise Refused(f"subscription {self.subscription} was already cancelled on {self.cancelled_on}")
        self._trigger(self.Cancelled, ctx)

    def refund(self, amount: Decimal, charge: int | None, ctx: Context) -> None:
        check_money(amount, self.currency, "refund amount")
        number = self.latest.number if charge is None else charge
        if not 1 <= number <= len(self.charges):
            raise Refused(f"subscription {self.subscription} has no charge {number}")
        c = self.charges[number - 1]
        if ctx.day < c.day:
            raise Refused(f"a refund cannot predate its charge ({c.day})")
        left = c.amount - c.refunded
        if amount > left:
            raise Refused(f"refund {amount} exceeds what is left of charge {number}: {left}")
        self._trigger(self.Refunded, ctx, charge=number, amount=amount)
