"""Unit tests of the domain model: no database, just aggregates and rules."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.aggregates import Deal, Partner, Refused, Subscription, Trial
from ledger.aggregates.base import Context
from ledger.aggregates.subscription import add_months
from ledger.identity import customer_domain
from ledger.money import commission


def ctx(day: str, actor: str = "system") -> Context:
    at = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
    return Context("c", actor, at, at)


def new_deal(day: str = "2026-01-10") -> Deal:
    return Deal.register("d-1", "acme", "example.fi", "Example Oy", "Jane", "jane@example.fi", None, ctx(day))


def replay(agg):
    """Rebuild an aggregate from its own events, as the repository does."""
    events = list(agg.pending_events)
    copy = None
    for e in events:
        copy = e.mutate(copy)
    return copy


def test_email_domain_recognises_the_company() -> None:
    assert customer_domain("Jane.Doe@Example.FI") == "example.fi"
    assert customer_domain("léa@société.fr") == "xn--socit-esab.fr"
    with pytest.raises(Refused, match="free-mail"):
        customer_domain("x@hotmail.com")
    for bad in ("jane", "jane@", "@example.fi", "a@b", "a b@example.fi", "a..b@example.fi"):
        with pytest.raises(ValueError):
            customer_domain(bad)


def test_protection_runs_90_days_from_the_last_action() -> None:
    d = new_deal()
    assert d.protected_until == date(2026, 4, 10)
    assert d.protects(date(2026, 4, 9)) and not d.protects(date(2026, 4, 10))
    d.add_note("call", ctx("2026-02-01"))
    assert d.protected_until == date(2026, 5, 2)
    d.accept(ctx("2026-02-02", "vendor:manager"))
    d.win("credit-card", None, ctx("2026-03-01"))
    assert d.protected_until is None  # closed deals no longer protect


def test_a_late_action_records_the_lapse_first() -> None:
    d = new_deal()
    d.move("trial", ctx("2026-06-01"))
    assert [type(e).__name__ for e in d.pending_events] == ["Registered", "ProtectionLapsed", "StageMoved"]
    assert d.lapsed_on == date(2026, 4, 10) and d.protected_until is None
    assert replay(d).__dict__.keys() == d.__dict__.keys()
    assert replay(d).lapsed_on == d.lapsed_on and replay(d).stage == "trial"


def test_stage_rules() -> None:
    d = new_deal()
    with pytest.raises(Refused, match="forward"):
        d.move("new", ctx("2026-01-11"))
    d.move("trial", ctx("2026-01-11"))  # skipping a stage is allowed
    with pytest.raises(Refused, match="pending review"):
        d.win("credit-card", None, ctx("2026-01-12"))  # only an accepted deal can be won
    d.accept(ctx("2026-01-12", "vendor:manager"))
    with pytest.raises(Refused, match="order number"):
        d.win("invoice", " ", ctx("2026-01-12"))
    d.lose(None, ctx("2026-01-12"))
    with pytest.raises(Refused, match="final"):
        d.win("partner", None, ctx("2026-01-13"))


def test_trial_extension_rules() -> None:
    t = Trial.start("t-1", "acme", "example.fi", "Example Oy", "j@example.fi", None, ctx("2026-02-01"))
    assert t.ends_on == date(2026, 2, 15) and t.runs_on(date(2026, 2, 14)) and not t.runs_on(date(2026, 2, 15))
    t.extend(ctx("2026-02-14"))
    assert t.ends_on == date(2026, 3, 3)
    with pytest.raises(Refused, match="once"):
        t.extend(ctx("2026-02-20"))
    assert replay(t).ends_on == date(2026, 3, 3)
    with pytest.raises(Refused, match="1 to 30"):
        Trial.start("t-2", "acme", "example.fi", "E", "j@example.fi", 31, ctx("2026-02-01"))


def test_partner_rate_in_force_on_a_day() -> None:
    p = Partner.enroll("acme", "Acme", ["acme.fi"], Decimal("0.20"), ctx("2026-01-01"))
    p.set_rate(Decimal("0.25"), ctx("2026-03-15"))
    assert p.rate_on(date(2026, 3, 14)) == Decimal("0.20")
    assert p.rate_on(date(2026, 3, 15)) == Decimal("0.25")
    assert replay(p).rates == p.rates
    with pytest.raises(Refused, match="fraction"):
        p.set_rate(Decimal("20"), ctx("2026-04-01"))
    assert p.owns_domain("acme.fi") and p.owns_domain("eu.acme.fi") and not p.owns_domain("notacme.fi")


def test_subscription_periods_and_refunds() -> None:
    s = Subscription.start("s-1", "example.fi", "acme", None, "pro", Decimal("100.00"), "EUR", "monthly",
                           "credit-card", None, ctx("2026-01-31"))
    assert s.renewal_due == date(2026, 2, 28)  # month ends clamp
    s.renew(ctx("2026-02-28"))
    # The anchor day (31st) survives February: the 2nd period ends on 31 March, not 28 March.
    assert (s.latest.number, s.latest.period_start, s.latest.period_end) == (2, date(2026, 2, 28), date(2026, 3, 31))
    s.refund(Decimal("30.00"), None, ctx("2026-03-01"))
    with pytest.raises(Refused, match="exceeds"):
        s.refund(Decimal("70.01"), None, ctx("2026-03-01"))
    assert replay(s).charges[1].refunded == Decimal("30.00")


@given(st.dates(min_value=date(1970, 1, 1), max_value=date(2199, 1, 1)), st.integers(0, 48))
def test_add_months_stays_in_the_target_month(day: date, months: int) -> None:
    later = add_months(day, months)
    assert (later.year * 12 + later.month) - (day.year * 12 + day.month) == months
    assert later.day <= day.day


def test_commission_rounds_half_up_to_the_cent_and_claws_back_symmetrically() -> None:
    assert commission(Decimal("10.10"), Decimal("0.15")) == Decimal("1.52")  # 1.515
    assert commission(Decimal("10.30"), Decimal("0.15")) == Decimal("1.55")  # 1.545
    assert commission(Decimal("0.05"), Decimal("0.10")) == Decimal("0.01")  # 0.005
    assert commission(Decimal("-10.10"), Decimal("0.15")) == Decimal("-1.52")


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2),
       st.decimals(min_value=Decimal("0"), max_value=Decimal("0.999999"), places=6))
def test_commission_and_clawback_cancel_exactly(amount: Decimal, rate: Decimal) -> None:
    c = commission(amount, rate)
    assert c == c.quantize(Decimal("0.01")) and commission(-amount, rate) == -c
    assert abs(c - amount * rate) <= Decimal("0.005")
