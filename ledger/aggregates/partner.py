"""Partner: a company in the partner program, its email domains and its
commission rate over time (a rate applies from its effective date on)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from .. import money
from ..timeline import business_date
from .base import Context, LedgerAggregate, Refused


def check_rate(rate: Decimal) -> Decimal:
    if not rate.is_finite() or not (Decimal(0) <= rate < Decimal(1)):
        raise Refused(f"commission rate must be a decimal fraction from 0 up to 1 (e.g. 0.20), not {rate}")
    return rate


class Partner(LedgerAggregate):
    KIND = "partner"

    class Enrolled(LedgerAggregate.Created):
        partner: str
        name: str
        domains: list[str]
        commission_rate: Decimal

        def apply(self, p: Partner) -> None:
            p._add_rate(business_date(self.at), self.commission_rate)

    class RateSet(LedgerAggregate.Event):
        commission_rate: Decimal

        def apply(self, p: Partner) -> None:
            p._add_rate(business_date(self.at), self.commission_rate)

    def __init__(self, partner: str, name: str, domains: list[str], commission_rate: Decimal) -> None:
        self.partner = partner
        self.name = name
        self.domains = list(domains)
        self.rates: list[tuple[date, Decimal]] = []

    def _add_rate(self, day: date, rate: Decimal) -> None:
        self.rates = sorted([r for r in self.rates if r[0] != day] + [(day, rate)])

    @classmethod
    def enroll(
        cls, partner: str, name: str, domains: list[str], commission_rate: Decimal, ctx: Context
    ) -> Partner:
        if not name.strip():
            raise Refused("a partner needs a name")
        check_rate(commission_rate)
        return cls._new(
            cls.Enrolled, partner, ctx, partner=partner, name=name.strip(),
            domains=domains, commission_rate=commission_rate,
        )

    def set_rate(self, rate: Decimal, ctx: Context) -> None:
        self._trigger(self.RateSet, ctx, commission_rate=check_rate(rate))

    def rate_on(self, day: date) -> Decimal:
        """The rate in force on `day` (ledger/money.py, the statements' rule too)."""
        return money.rate_in_force(self.rates, day)

    def owns_domain(self, domain: str) -> bool:
        """Whether a customer domain (as `ledger.identity.customer_domain` gives
        it) is one of the partner's own: its enrolled domains compared by the
        same identity, so `mail.acme.fi` is acme's when acme enrolled `acme.fi`
        (also for partners enrolled before domains were stored registrable)."""
        mine = _identity(domain) or domain
        return any(mine in (d, _identity(d)) for d in self.domains)


def _identity(domain: str) -> str | None:
    from ..identity import registrable_or_none  # here: ledger.identity imports the aggregates package

    return registrable_or_none(domain)
