"""Business time (ledger.timeline): recorded times are instants, business dates
are in LEDGER_TIMEZONE, effective dates are bounded ahead and never run
backwards for a record, billing periods keep their anchor day, and a renewal
charges the next period once. Cases 01, 02, 06, 11 and 12 (renewal part)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.aggregates import Customer, Deal, Partner, Refused, Subscription, Trial, aggregate_id
from ledger.aggregates.base import Context
from ledger.aggregates.subscription import period_end
from ledger.commands.models import parse_when
from ledger.service import Ledger
from ledger.settings import Time
from ledger.timeline import business_date, day_start, recorded_text

from .conftest import Harness, cmd, deal, program
from .test_cli import Cli, assert_one_line_error

CASES = Path(__file__).parent / "cases"
UTC = timezone.utc


def submit_case(h: Harness, name: str) -> list[Any]:
    """Submit a case file as `ledger --as system submit CASE.jsonl` does."""
    h.clock.advance(seconds=1)
    return h.ledger.submit_lines((CASES / name).read_text("utf-8").splitlines())


def by_id(results: list[Any]) -> dict[str, Any]:
    return {r.id: r for r in results}


def lines_of(h: Harness, month: str, known_at: datetime | None = None) -> list[tuple[str, str, Decimal]]:
    st_ = h.ledger.statement("acme", month, known_at)
    return [(x["entry"], x["day"], x["amount"]) for x in st_["lines"]]


def sub(id_: str, on: str, period: str = "monthly", domain: str = "direct.fi") -> dict[str, Any]:
    return cmd("start_subscription", on=on, actor="vendor:manager", subscription=id_, customer_domain=domain,
               plan="pro", amount="100.00", currency="EUR", period=period, billing="credit-card")


def renew(id_: str, on: str) -> dict[str, Any]:
    return cmd("renew_subscription", on=on, actor="vendor:manager", subscription=id_)


def at(day: str) -> Context:
    moment = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return Context("c", "system", moment, moment)


# -- 01: billing periods keep their anchor day ---------------------------------------------------
def test_case_01_monthly_from_the_31st_keeps_its_anchor(h: Harness) -> None:
    results = submit_case(h, "01-billing-anchor-31st.jsonl")
    assert [r.status for r in results] == ["applied"] * 7, [r.as_dict() for r in results]
    s = h.ledger.app.get(Subscription, "s-1")
    assert [(c.period_start, c.period_end) for c in s.charges] == [
        (date(2026, 1, 31), date(2026, 2, 28)), (date(2026, 2, 28), date(2026, 3, 31)),
        (date(2026, 3, 31), date(2026, 4, 30))]
    assert s.renewal_due == date(2026, 4, 30)  # not the 28th
    # The read side says the same: the renewal flag names 30 April.
    # (within the monthly renewal-due window, LEDGER_ATTENTION_RENEWAL_DUE_DAYS_MONTHLY: 7 days)
    reasons = [i["reason"] for i in h.ledger.attention("acme", date(2026, 4, 25)) if i["code"] == "renewal-due"]
    assert reasons == ["renewal of Pro for example.fi due on 2026-04-30"]
    assert [x[1] for x in lines_of(h, "2026-03")] == ["2026-03-31"]  # the renewal of 31 March is March's


@pytest.mark.parametrize("start, period, ends", [
    ("2026-01-30", "monthly", ["2026-02-28", "2026-03-30", "2026-04-30", "2026-05-30"]),
    ("2026-01-29", "monthly", ["2026-02-28", "2026-03-29", "2026-04-29"]),
    ("2028-01-31", "monthly", ["2028-02-29", "2028-03-31", "2028-04-30"]),  # a leap February
    ("2024-02-29", "yearly", ["2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29", "2029-02-28", "2030-02-28"]),
    ("2026-08-31", "monthly", ["2026-09-30", "2026-10-31", "2026-11-30", "2026-12-31", "2027-01-31"]),
])
def test_periods_are_counted_from_the_anchor(start: str, period: str, ends: list[str]) -> None:
    s = Subscription.start("s-1", "example.fi", "acme", None, "pro", Decimal("100.00"), "EUR", period,
                           "credit-card", None, at(start))
    for _ in ends[1:]:
        s.renew(at(s.renewal_due.isoformat()))  # renewed on the day each period ends
    assert [c.period_end.isoformat() for c in s.charges] == ends
    assert all(a.period_end == b.period_start for a, b in zip(s.charges, s.charges[1:]))


@given(st.dates(min_value=date(1970, 1, 1), max_value=date(2150, 12, 31)), st.integers(1, 120),
       st.sampled_from(["monthly", "yearly"]))
def test_every_period_end_keeps_the_anchor_day_where_the_month_has_it(anchor: date, n: int, period: str) -> None:
    end = period_end(anchor, period, n)
    months = n * (1 if period == "monthly" else 12)
    assert (end.year * 12 + end.month) - (anchor.year * 12 + anchor.month) == months
    last = (date(end.year + end.month // 12, end.month % 12 + 1, 1) - timedelta(days=1)).day
    assert end.day == min(anchor.day, last)


# -- 12 (renewal part): a renewal charges the next period once, when it is due --------------------
def test_case_12_second_renewal_the_same_day_is_refused(h: Harness) -> None:
    results = by_id(submit_case(h, "12-money-and-currency.jsonl"))
    assert results["start-s-1"].status == "applied"
    assert results["renew-twice-1"].status == "applied", results["renew-twice-1"].as_dict()
    second = results["renew-twice-2"]
    assert second.status == "refused" and "not due" in second.message, second.as_dict()
    s = h.ledger.app.get(Subscription, "s-1")
    assert [(c.period_start, c.period_end) for c in s.charges] == [
        (date(2026, 3, 2), date(2026, 4, 2)), (date(2026, 4, 2), date(2026, 5, 2))]
    assert [x[0] for x in lines_of(h, "2026-04")] == ["charge"]  # charged once in April


def test_renewal_window_opens_seven_days_before_the_period_ends(h: Harness) -> None:
    h.ok(sub("s-1", "2026-03-02"))  # the first period ends 2 April
    assert "renew from 2026-03-26" in h.refused(renew("s-1", "2026-03-25"))
    h.ok(renew("s-1", "2026-03-26"))  # 7 days before: due
    assert "paid until 2026-05-02" in h.refused(renew("s-1", "2026-04-02"))
    h.ok(renew("s-1", "2026-06-15"))  # late: still the next period, from the anchor
    s = h.ledger.app.get(Subscription, "s-1")
    assert [c.period_end for c in s.charges] == [date(2026, 4, 2), date(2026, 5, 2), date(2026, 6, 2)]


def test_renewal_window_is_a_setting(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_RENEWAL_WINDOW_DAYS", "0")
    h.ok(sub("s-1", "2026-03-02"))
    assert "not due" in h.refused(renew("s-1", "2026-04-01"))
    h.ok(renew("s-1", "2026-04-02"))
    monkeypatch.setenv("LEDGER_RENEWAL_WINDOW_DAYS", "seven")
    with pytest.raises(ValueError, match="LEDGER_RENEWAL_WINDOW_DAYS"):
        Time.from_env()


# -- 02: recorded times are instants -------------------------------------------------------------
OFFSETS = [timezone.utc, timezone(timedelta(hours=5)), timezone(timedelta(hours=-5)),
           timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11)), timezone(timedelta(hours=14))]


def test_case_02_known_at_is_one_instant_whatever_its_offset(h: Harness) -> None:
    assert [r.status for r in submit_case(h, "02-known-at-offset.part1.jsonl")] == ["applied"] * 5
    t = h.clock.current + timedelta(milliseconds=500)  # T: after part 1, before part 2
    h.clock.advance(hours=1)
    assert [r.status for r in submit_case(h, "02-known-at-offset.part2.jsonl")] == ["applied"]
    charge = [("charge", "2026-03-02", Decimal("100.00"))]
    assert lines_of(h, "2026-03") == charge + [("refund", "2026-03-20", Decimal("-40.00"))]
    for offset in OFFSETS:
        assert lines_of(h, "2026-03", t.astimezone(offset)) == charge, offset
    # The replayed queries (known-at by replay) agree, e.g. the deals as known then.
    for offset in OFFSETS:
        assert [d["deal"] for d in h.ledger.deals(None, None, None, date(2026, 3, 2), t.astimezone(offset))] == ["d-1"]


def test_recorded_text_orders_as_the_instants_do() -> None:
    a = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    moments = [a, a + timedelta(microseconds=1), a + timedelta(seconds=1), a + timedelta(hours=5)]
    for offset in OFFSETS:
        texts = [recorded_text(m.astimezone(offset)) for m in moments]
        assert texts == sorted(texts) and texts == [recorded_text(m) for m in moments]


def test_case_02_on_the_command_line(db_url: str, tmp_path: Path) -> None:
    cli = Cli(db_url, tmp_path)
    cli.ok("--as", "system", "submit", str(CASES / "02-known-at-offset.part1.jsonl"))
    t = datetime.now(UTC)
    cli.ok("--as", "system", "submit", str(CASES / "02-known-at-offset.part2.jsonl"))
    for offset in OFFSETS[:3]:
        r = cli.ok("statement", "--partner", "acme", "--month", "2026-03", "--known-at",
                   t.astimezone(offset).isoformat(), "--json")
        assert [(x["entry"], x["amount"]) for x in r.json()["lines"]] == [("charge", "100.00")], offset
    # 11: a sweep dated after today is refused; an unknown time zone is a usage error.
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    assert_one_line_error(cli("--as", "system", "sweep", "--on", tomorrow), 1, "after today")
    assert_one_line_error(cli("deals", env={"LEDGER_TIMEZONE": "Mars/Olympus_Mons"}), 2, "LEDGER_TIMEZONE")
    assert_one_line_error(cli("deals", env={"LEDGER_MAX_FUTURE_DAYS": "-1"}), 2, "LEDGER_MAX_FUTURE_DAYS")


# -- 06: business dates in LEDGER_TIMEZONE -------------------------------------------------------
@pytest.mark.parametrize("zone, month, other", [("Europe/Helsinki", "2026-04", "2026-03"), (None, "2026-03", "2026-04")])
def test_case_06_the_month_is_the_business_zone_s(h: Harness, monkeypatch: pytest.MonkeyPatch,
                                                  zone: str | None, month: str, other: str) -> None:
    if zone:
        monkeypatch.setenv("LEDGER_TIMEZONE", zone)
    else:
        monkeypatch.delenv("LEDGER_TIMEZONE", raising=False)
    assert [r.status for r in submit_case(h, "06-business-time-zone.jsonl")] == ["applied"] * 5
    assert lines_of(h, month) == [("charge", month + ("-01" if zone else "-31"), Decimal("100.00"))]
    assert lines_of(h, other) == []


def test_read_models_of_another_zone_are_refused_until_rebuilt(h: Harness, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    """Dates in the read models are in the zone they were built in: a process
    with another LEDGER_TIMEZONE is told so (exit 2) and writes nothing, until
    every read model is rebuilt in the new zone."""
    from ledger.projections.runner import ZoneMismatch

    monkeypatch.delenv("LEDGER_TIMEZONE", raising=False)
    assert [r.status for r in submit_case(h, "06-business-time-zone.jsonl")] == ["applied"] * 5
    monkeypatch.setenv("LEDGER_TIMEZONE", "Europe/Helsinki")
    head = h.head()
    with Ledger(h.url, "system", clock=h.clock) as helsinki:
        with pytest.raises(ZoneMismatch, match="built in time zone UTC, but LEDGER_TIMEZONE is Europe/Helsinki"):
            helsinki.statement("acme", "2026-04")
        with pytest.raises(ZoneMismatch):
            helsinki.submit_lines([json.dumps(sub("s-9", "2026-05-01", domain="z.fi"))])
        assert helsinki.app.head() == head  # refused before anything was written
    assert_one_line_error(Cli(h.url, tmp_path)("statement", "--partner", "acme", "--month", "2026-04",
                                               env={"LEDGER_TIMEZONE": "Europe/Helsinki"}), 2, "projections rebuild")
    # A server would answer every query with that refusal: it does not start.
    assert_one_line_error(Cli(h.url, tmp_path)("serve", "--port", "0", env={"LEDGER_TIMEZONE": "Europe/Helsinki"}),
                          2, "projections rebuild")
    with Ledger(h.url, "system", clock=h.clock) as helsinki:
        helsinki.rebuild()
        assert [(ln["entry"], ln["day"]) for ln in helsinki.statement("acme", "2026-04")["lines"]] == [
            ("charge", "2026-04-01")]
    monkeypatch.delenv("LEDGER_TIMEZONE")
    with Ledger(h.url, "system", clock=h.clock) as utc, pytest.raises(ZoneMismatch, match="built in time zone Europe"):
        utc.deals(None, None, None, date(2026, 5, 1))


def test_month_edges_follow_the_zone_s_daylight_saving(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Helsinki is UTC+3 from 29 March 2026: 21:30Z on 31 March is already April there."""
    monkeypatch.setenv("LEDGER_TIMEZONE", "Europe/Helsinki")
    h.ok(sub("s-1", "2026-03-31T20:30:00Z", domain="a.fi"), sub("s-2", "2026-03-31T21:30:00Z", domain="b.fi"),
         sub("s-3", "2026-04-01", domain="c.fi"), sub("s-4", "2026-03-31T23:59:00", domain="d.fi"))
    started = {k: h.ledger.app.get(Subscription, k).charges[0].day for k in ("s-1", "s-2", "s-3", "s-4")}
    assert started == {"s-1": date(2026, 3, 31), "s-2": date(2026, 4, 1), "s-3": date(2026, 4, 1),
                       "s-4": date(2026, 3, 31)}  # a naive date-time is Helsinki wall time


def test_business_dates_and_day_starts_across_daylight_saving(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_TIMEZONE", "Europe/Helsinki")
    assert business_date(datetime(2026, 3, 28, 22, 30, tzinfo=UTC)) == date(2026, 3, 29)  # +02:00
    assert business_date(datetime(2026, 3, 29, 20, 59, tzinfo=UTC)) == date(2026, 3, 29)  # +03:00
    assert business_date(datetime(2026, 3, 29, 21, 0, tzinfo=UTC)) == date(2026, 3, 30)
    assert day_start(date(2026, 3, 29)) == datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
    assert day_start(date(2026, 3, 30)) == datetime(2026, 3, 29, 21, 0, tzinfo=UTC)
    assert day_start(date(2026, 10, 25)) == datetime(2026, 10, 24, 21, 0, tzinfo=UTC)
    assert day_start(date(2026, 10, 26)) == datetime(2026, 10, 25, 22, 0, tzinfo=UTC)
    assert parse_when("2026-04-01") == datetime(2026, 3, 31, 21, 0, tzinfo=UTC)
    assert parse_when("2026-04-01T00:30:00+03:00") == datetime(2026, 3, 31, 21, 30, tzinfo=UTC)
    monkeypatch.setenv("LEDGER_TIMEZONE", "America/New_York")
    assert business_date(parse_when("2026-02-01T23:30:00-05:00")) == date(2026, 2, 1)
    monkeypatch.delenv("LEDGER_TIMEZONE")
    assert business_date(parse_when("2026-02-01T23:30:00-05:00")) == date(2026, 2, 2)


@pytest.mark.parametrize("zone, day", [("America/New_York", "2026-02-01"), ("UTC", "2026-02-02")])
def test_deal_days_are_business_dates(h: Harness, monkeypatch: pytest.MonkeyPatch, zone: str, day: str) -> None:
    monkeypatch.setenv("LEDGER_TIMEZONE", zone)
    program(h)
    h.ok(deal("d-1", on="2026-02-01T23:30:00-05:00"))
    (row,) = h.ledger.deals(None, None, None, date(2026, 3, 1))
    assert (row["registered_on"], row["last_action"]) == (day, day)


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "../etc/passwd", "/etc/localtime", "Europe/Helsinki/x",
                                  "utc+3"])
def test_an_unknown_time_zone_is_refused_with_one_line(h: Harness, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("LEDGER_TIMEZONE", name)
    with pytest.raises(ValueError, match="LEDGER_TIMEZONE must be an IANA time zone name") as e:
        Ledger(h.url)
    assert "\n" not in str(e.value)
    for blank in ("", "  "):  # unset or blank: the default, UTC
        monkeypatch.setenv("LEDGER_TIMEZONE", blank)
        assert Time.from_env().timezone == "UTC"


# -- 11: effective dates are bounded ahead of the ledger clock ------------------------------------
def test_case_11_far_future_dates_are_refused(h: Harness) -> None:
    results = submit_case(h, "11-future-dates.jsonl")
    assert [r.status for r in results] == ["applied", "applied", "refused", "applied"], [r.as_dict() for r in results]
    assert "after today" in results[2].message and "2199-12-31" in results[2].message
    (row,) = h.ledger.deals(None, None, None, date(2026, 3, 2))
    assert (row["deal"], row["review"], row["deny_reason"]) == ("d-2", "pending", None)  # not a duplicate
    today = business_date(h.clock.current)
    with pytest.raises(Refused, match="after today"):
        h.ledger.sweep(today + timedelta(days=1))
    assert h.ledger.sweep(today).status == "applied"


def test_each_actor_s_future_bound(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    program(h)
    today = business_date(h.clock.current)  # 2027-06-01 on the harness clock
    on = lambda days: (today + timedelta(days=days)).isoformat()  # noqa: E731
    # A partner: up to today.
    assert "after today" in h.refused(deal("d-1", on=on(1)))
    h.ok(deal("d-1", on=on(0)), deal("d-2", email="x@other.fi", name="Other Oy", on=on(0)))
    # The vendor and system: up to LEDGER_MAX_FUTURE_DAYS (7) ahead.
    h.ok(cmd("accept_deal", on=on(7), actor="vendor:manager", deal="d-1"))
    assert "more than 7 days" in h.refused(cmd("accept_deal", on=on(8), actor="vendor:manager", deal="d-2"))
    assert "more than 7 days" in h.refused(cmd("report_usage", on=on(8), customer_domain="other.fi", users=3))
    h.ok(cmd("report_usage", on=on(7), customer_domain="other.fi", users=3))
    # A sweep: not after today.
    assert "after today" in h.refused(cmd("sweep", on=on(1), deals=["d-2"]))
    # set_commission_rate schedules a rate from its date, however far ahead.
    h.ok(cmd("set_commission_rate", on=on(92), actor="vendor:manager", partner="acme", commission_rate="0.30"))
    acme = h.ledger.app.get(Partner, "acme")
    assert (acme.rate_on(today + timedelta(days=91)), acme.rate_on(today + timedelta(days=92))) == (
        Decimal("0.20"), Decimal("0.30"))
    monkeypatch.setenv("LEDGER_MAX_FUTURE_DAYS", "0")
    assert "more than 0 days" in h.refused(cmd("accept_deal", on=on(1), actor="vendor:manager", deal="d-2"))
    h.ok(cmd("accept_deal", on=on(0), actor="vendor:manager", deal="d-2"))


def test_today_is_the_business_zone_s_today(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 11:00 UTC on 1 June it is already 2 June in Kiritimati (UTC+14)."""
    program(h)
    h.clock.current = datetime(2027, 6, 1, 11, 0, tzinfo=UTC)
    assert "after today" in h.refused(deal("d-1", on="2027-06-02"))
    monkeypatch.setenv("LEDGER_TIMEZONE", "Pacific/Kiritimati")
    h.ok(deal("d-1", on="2027-06-02"))


def test_queries_take_any_calendar_date_as_of(h: Harness) -> None:
    assert [r.status for r in submit_case(h, "01-billing-anchor-31st.jsonl")] == ["applied"] * 7
    for as_of in (date.min, date(1970, 1, 1), date(2199, 12, 31), date.max):
        h.ledger.attention(None, as_of)
        h.ledger.deals(None, None, None, as_of)
        rows = h.ledger.overview("acme", None, as_of)
        assert [r["status"] for r in rows] == ([] if as_of < date(2026, 1, 5) else ["active"]), as_of
    assert sorted(i["code"] for i in h.ledger.attention(None, date.max)) == ["customer-inactive", "renewal-due"]


# -- effective dates never run backwards for a record or a customer's lifecycle ------------------
def test_a_backdated_note_on_a_deal_is_refused_naming_the_date(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", on="2026-01-10"),
         cmd("add_deal_note", on="2026-02-01", actor="partner:acme", deal="d-1", text="call booked"))
    message = h.refused(cmd("add_deal_note", on="2026-01-20", actor="partner:acme", deal="d-1", text="late"))
    assert "deal d-1 has a fact dated 2026-02-01" in message
    h.ok(cmd("add_deal_note", on="2026-02-01", actor="partner:acme", deal="d-1", text="same day is fine"))
    assert "2026-02-01" in h.refused(cmd("accept_deal", on="2026-01-31", actor="vendor:manager", deal="d-1"))


def test_a_backdated_trial_on_a_customer_whose_deal_is_later_is_refused(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", on="2026-02-10"))
    trial = cmd("start_trial", on="2026-02-01", actor="partner:acme", trial="t-1", partner="acme",
                customer_name="Example Oy", customer_email="jane@example.fi")
    assert "customer example.fi has a fact dated 2026-02-10" in h.refused(trial)
    assert h.ledger.app.get(Trial, "t-1") is None


def test_a_customer_s_lifecycle_includes_facts_of_its_deals(h: Harness) -> None:
    """A note renews acme's protection on 1 March: beta's registration dated
    15 February must not be judged against it, nor slip in before it."""
    program(h)
    h.ok(deal("d-1", on="2026-01-10"),
         cmd("add_deal_note", on="2026-03-01", actor="partner:acme", deal="d-1", text="still talking"))
    assert "customer example.fi has a fact dated 2026-03-01" in h.refused(
        deal("d-2", partner="beta", email="bob@example.fi", on="2026-02-15"))
    assert "2026-03-01" in h.refused(cmd("start_trial", on="2026-02-20", actor="partner:acme", trial="t-1",
                                         partner="acme", customer_name="Example Oy",
                                         customer_email="jane@example.fi"))
    # Usage reports and partners do not order a customer's lifecycle.
    h.ok(cmd("report_usage", on="2026-02-01", customer_domain="example.fi", users=2),
         cmd("set_commission_rate", on="2026-02-01", actor="vendor:manager", partner="acme", commission_rate="0.25"))
    h.ok(deal("d-2", partner="beta", email="bob@example.fi", on="2026-03-02"))
    assert h.ledger.app.get(Deal, "d-2").deny_reason == "duplicate"


def test_a_sweep_leaves_a_record_with_a_later_fact_for_a_later_sweep(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", on="2027-01-10"), deal("d-2", email="x@other.fi", name="Other Oy", on="2027-01-10"))
    today = business_date(h.clock.current)
    h.ok(cmd("accept_deal", on=(today + timedelta(days=3)).isoformat(), actor="vendor:manager", deal="d-1"))
    (result,) = h.ok(cmd("sweep", on=today.isoformat(), deals=["d-1", "d-2"]))
    assert result.message == "1 protections lapsed, 0 trials expired"
    assert h.ledger.app.get(Deal, "d-1").lapsed_on is None and h.ledger.app.get(Deal, "d-2").lapsed_on is not None


# -- property: effective dates stay in order, whatever the arrival order --------------------------
KINDS = ("register", "accept", "deny", "move", "note", "win", "lose", "trial", "extend", "subscribe",
         "direct", "renew", "cancel", "refund", "usage", "sweep")
# Creators weigh more, so that shuffled sequences still act on what they created.
ACTION = st.tuples(st.sampled_from(KINDS + ("register",) * 3 + ("trial", "direct")), st.integers(0, 40),
                   st.integers(0, 1), st.sampled_from([0, 0, 0, 1]),  # mostly one customer: its records interleave
                   st.sampled_from(["", "T23:30:00-05:00", "T00:30:00+03:00"]))


def _line(kind: str, offset: int, k: int, p: int, time_of_day: str, tag: str) -> dict[str, Any]:
    on = (date(2026, 1, 1) + timedelta(days=offset)).isoformat() + time_of_day
    partner = ("acme", "beta")[k % 2]
    domain, email = f"c{p}-{tag}.fi", f"x@c{p}-{tag}.fi"
    d, t, s = f"d{k}-{tag}", f"t{k}-{tag}", f"s{k}-{tag}"
    vendor, own = "vendor:manager", f"partner:{partner}"
    match kind:
        case "register":
            return cmd("register_deal", on, own, deal=d, partner=partner, customer_name="C Oy",
                       contact_name="C", customer_email=email)
        case "accept":
            return cmd("accept_deal", on, vendor, deal=d)
        case "deny":
            return cmd("deny_deal", on, vendor, deal=d, reason="invalid-lead")
        case "move":
            return cmd("move_deal", on, vendor, deal=d, stage=("newsletter-subscription", "trial")[p])
        case "note":
            return cmd("add_deal_note", on, vendor, deal=d, text="n")
        case "win":
            return cmd("win_deal", on, vendor, deal=d, billing="credit-card")
        case "lose":
            return cmd("lose_deal", on, vendor, deal=d)
        case "trial":
            return cmd("start_trial", on, own, trial=t, partner=partner, customer_name="C Oy", customer_email=email)
        case "extend":
            return cmd("extend_trial", on, vendor, trial=t)
        case "subscribe" | "direct":
            extra = {"deal": d} if kind == "subscribe" else {}
            return cmd("start_subscription", on, vendor, subscription=s, customer_domain=domain, plan="p",
                       amount="10.00", currency="EUR", period="monthly", billing="credit-card", **extra)
        case "renew":
            return cmd("renew_subscription", on, vendor, subscription=s)
        case "cancel":
            return cmd("cancel_subscription", on, vendor, subscription=s)
        case "refund":
            return cmd("refund", on, vendor, subscription=s, amount="1.00")
        case "usage":
            return cmd("report_usage", on, "system", customer_domain=domain, activities=1)
        case _:
            return cmd("sweep", on, "system", deals=[f"d{i}-{tag}" for i in range(3)],
                       trials=[f"t{i}-{tag}" for i in range(3)])


def _dates_in_order(h: Harness, tag: str) -> int:
    """Check every record's events, and each customer's lifecycle, are in
    non-decreasing business date in ledger order; return the events seen."""
    app = h.ledger.app
    records = [(cls, f"{x}{i}-{tag}") for cls, x in ((Deal, "d"), (Trial, "t"), (Subscription, "s")) for i in range(3)]
    records += [(Customer, f"c{p}-{tag}.fi") for p in range(2)]
    lifecycle: dict[str, list[Any]] = {}
    seen = 0
    for cls, key in records:
        agg = app.get(cls, key)
        if agg is None:
            continue
        notifications = app.notifications_of([aggregate_id(cls.KIND, key)])
        days = [business_date(app.mapper.to_domain_event(n).at) for n in notifications]
        assert days == sorted(days), (key, days)
        lifecycle.setdefault(agg.domain, []).extend((n.id, day) for n, day in zip(notifications, days))
        seen += len(days)
    for domain, events in lifecycle.items():
        days = [day for _, day in sorted(events)]
        assert days == sorted(days), (domain, days)
    return seen


def test_effective_dates_never_run_backwards_whatever_the_arrival_order(h: Harness) -> None:
    program(h)
    tags = iter(range(10_000))
    applied: list[int] = []

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(actions=st.lists(ACTION, min_size=3, max_size=14), data=st.data())
    def check(actions: list[tuple[Any, ...]], data: st.DataObject) -> None:
        tag = f"x{next(tags)}"
        lines = [_line(*a, tag) for a in actions]
        arrival = data.draw(st.permutations(lines))  # in any order, in batches of any size
        cuts = sorted(data.draw(st.sets(st.integers(1, max(len(arrival) - 1, 1)), max_size=3)))
        for start, stop in zip([0, *cuts], [*cuts, len(arrival)]):
            if arrival[start:stop]:
                results = h.submit(*arrival[start:stop])
                applied.append(sum(r.status == "applied" for r in results))
        _dates_in_order(h, tag)

    check()
    assert sum(applied) > 30  # the sequences did act, not only get refused
