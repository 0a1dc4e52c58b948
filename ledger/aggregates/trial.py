"""Trial: a partner's trial account for a customer. 14 days as standard, and the
partner can always have it extended once, to 30 days in total, while it runs."""

from __future__ import annotations

from datetime import date, timedelta

from ..timeline import business_date
from .base import Context, LedgerAggregate, Refused

STANDARD_DAYS = 14
EXTENDED_DAYS = 30


def trial_end(started_on: date, days: int) -> date:
    """The first day a trial of `days` days started on `started_on` no longer
    runs: the trial window's one home (the Trial, the overview and attention
    call it)."""
    return started_on + timedelta(days=days)


class Trial(LedgerAggregate):
    KIND = "trial"
    ORDERED = True

    class Started(LedgerAggregate.Created):
        trial: str
        partner: str
        domain: str
        customer_name: str
        customer_email: str
        days: int

        def apply(self, t: Trial) -> None:
            t.started_on = business_date(self.at)

    class Extended(LedgerAggregate.Event):
        days: int

        def apply(self, t: Trial) -> None:
            t.days, t.extended = self.days, True

    class Converted(LedgerAggregate.Event):
        subscription: str

        def apply(self, t: Trial) -> None:
            t.converted_on = business_date(self.at)

    class Expired(LedgerAggregate.Event):
        def apply(self, t: Trial) -> None:
            t.expired_on = t.ends_on

    def __init__(
        self, trial: str, partner: str, domain: str, customer_name: str,
        customer_email: str, days: int,
    ) -> None:
        self.trial = trial
        self.partner = partner
        self.domain = domain
        self.customer_name = customer_name
        self.customer_email = customer_email
        self.days = days
        self.extended = False
        self.converted_on: date | None = None
        self.expired_on: date | None = None
        self.started_on: date = date.min

    @property
    def ends_on(self) -> date:
        """The first day the trial no longer runs."""
        return trial_end(self.started_on, self.days)

    def runs_on(self, day: date) -> bool:
        return self.converted_on is None and self.expired_on is None and day < self.ends_on

    @classmethod
    def start(
        cls, trial: str, partner: str, domain: str, customer_name: str,
        customer_email: str, days: int | None, ctx: Context,
    ) -> Trial:
        days = STANDARD_DAYS if days is None else days
        if not 1 <= days <= EXTENDED_DAYS:
            raise Refused(f"a trial lasts 1 to {EXTENDED_DAYS} days, not {days}")
        return cls._new(
            cls.Started, trial, ctx, trial=trial, partner=partner, domain=domain,
            customer_name=customer_name, customer_email=customer_email, days=days,
        )

    def extend(self, ctx: Context) -> None:
        if self.converted_on:
            raise Refused(f"trial {self.trial} converted to a subscription; it cannot be extended",
                          code="trial_converted", facts={"trial": self.trial})
        if self.expired_on or ctx.day >= self.ends_on:
            raise Refused(f"trial {self.trial} ended on {self.ends_on}; it cannot be extended",
                          code="trial_ended", facts={"trial": self.trial, "ended": self.ends_on})
        if self.extended or self.days >= EXTENDED_DAYS:
            raise Refused(f"trial {self.trial} already runs {self.days} days; it extends once, to {EXTENDED_DAYS}",
                          code="trial_extended", facts={"trial": self.trial, "days": self.days})
        self._trigger(self.Extended, ctx, days=EXTENDED_DAYS)

    def convert(self, subscription: str, ctx: Context) -> None:
        if self.runs_on(ctx.day):
            self._trigger(self.Converted, ctx, subscription=subscription)

    def expire_if_due(self, ctx: Context) -> bool:
        if self.converted_on is None and self.expired_on is None and ctx.day >= self.ends_on:
            self._trigger(self.Expired, ctx)
            return True
        return False
