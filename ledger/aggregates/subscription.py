"""Subscription: a customer's paid plan. Each billing period produces a charge
(the start, then each renewal); cancellation and refunds are events too."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from .. import money
from ..settings import Time
from ..timeline import business_date
from .base import Context, LedgerAggregate, Refused
from .deal import BILLING_OPTIONS

PERIODS = ("monthly", "yearly")
STATUSES = ("active", "cancelled")


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


def period_end(start: date, period: str, number: int = 1) -> date:
    """The end (the first day of the next period) of billing period `number`
    (1 = the first) of a subscription whose first period starts on `start`,
    its anchor day. Each end is computed from the anchor, never from the
    previous end, so the anchor day survives short months: monthly from
    31 Jan ends 28 Feb, 31 Mar, 30 Apr; yearly from 29 Feb ends on 28 Feb,
    and on 29 Feb in leap years (case 01)."""
    return add_months(start, number * (1 if period == "monthly" else 12))


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
    ORDERED = True

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
            start = business_date(self.at)
            s.charges.append(Charge(1, start, self.amount, start, period_end(start, self.period)))

    class Renewed(LedgerAggregate.Event):
        charge: int
        amount: Decimal
        period_start: date
        period_end: date

        def apply(self, s: Subscription) -> None:
            s.charges.append(
                Charge(self.charge, business_date(self.at), self.amount, self.period_start, self.period_end)
            )

    class Cancelled(LedgerAggregate.Event):
        def apply(self, s: Subscription) -> None:
            s.cancelled_on = business_date(self.at)

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

    @property
    def anchor(self) -> date:
        """The first period's start: every period end is counted from it."""
        return self.charges[0].period_start

    def renewal_opens(self, window_days: int) -> date:
        """The first day a renewal of the current period is accepted: `window_days`
        (LEDGER_RENEWAL_WINDOW_DAYS) before the current period ends."""
        return self.latest.period_end - timedelta(days=window_days)

    def renew(self, ctx: Context) -> None:
        """Charge the next period, once, when the current one is about to end
        (INTERFACE "Additions": LEDGER_RENEWAL_WINDOW_DAYS; case 12)."""
        if self.cancelled_on:
            raise Refused(f"subscription {self.subscription} was cancelled on {self.cancelled_on}")
        if ctx.day < self.latest.day:
            raise Refused(f"a renewal cannot predate the latest charge ({self.latest.day})")
        opens = self.renewal_opens(Time.from_env().renewal_window_days)
        if ctx.day < opens:
            raise Refused(
                f"subscription {self.subscription} is paid until {self.latest.period_end}; "
                f"the next period is not due: renew from {opens}"
            )
        number = self.latest.number + 1
        self._trigger(
            self.Renewed, ctx, charge=number, amount=self.amount,
            period_start=self.latest.period_end, period_end=period_end(self.anchor, self.period, number),
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
