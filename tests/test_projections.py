"""The read models as their users see them, on SQLite and on PostgreSQL:
commission statements, the customer overview, the attention flags and the
deal pipeline (SPEC.md "Projections", INTERFACE.md "Queries"); then the
machinery behind them: incremental catch-up equals a rebuild from position 0
(also for random command sequences), an interrupted rebuild leaves the
live tables alone and resumes, and a failed transaction writes nothing.

Every expected figure is written by hand, with its arithmetic in a comment."""

from __future__ import annotations

import os
import sqlite3
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from ledger.aggregates import Refused
from ledger.commands.models import build
from ledger.db import Database

from .conftest import Harness, cmd, deal, program

D = Decimal
CENT = Decimal("0.01")


# -- command helpers -------------------------------------------------------------------
def won_sub(
    sub: str, domain: str, *, partner: str = "acme", on: str = "2026-03-05", amount: str = "100.00",
    currency: str = "EUR", period: str = "monthly", billing: str = "credit-card",
    registered: str = "2026-02-01", name: str | None = None,
) -> list[dict[str, Any]]:
    """A deal for `domain` registered, accepted and won, and its subscription started `on`."""
    deal_id = f"d-{sub}"
    order = {"order_number": f"PO-{sub}"} if billing == "invoice" else {}
    return [
        deal(deal_id, partner=partner, email=f"ceo@{domain}", on=registered, name=name or f"{domain} Oy"),
        cmd("accept_deal", on=registered, deal=deal_id),
        cmd("win_deal", on=registered, actor=f"partner:{partner}", deal=deal_id, billing=billing, **order),
        cmd("start_subscription", on=on, subscription=sub, customer_domain=domain, plan="pro", amount=amount,
            currency=currency, period=period, billing=billing, deal=deal_id, **order),
    ]


def direct_sub(sub: str, domain: str, on: str, amount: str = "100.00", period: str = "monthly",
               billing: str = "credit-card") -> dict[str, Any]:
    """A subscription without a deal: its partner is whoever the customer belongs to (or none)."""
    return cmd("start_subscription", on=on, subscription=sub, customer_domain=domain, plan="pro",
               amount=amount, currency="EUR", period=period, billing=billing)


def trial(id_: str, domain: str, on: str, partner: str = "acme", name: str | None = None, **x: Any) -> dict[str, Any]:
    return cmd("start_trial", on=on, actor=f"partner:{partner}", trial=id_, partner=partner,
               customer_name=name or f"{domain} Oy", customer_email=f"it@{domain}", **x)


def renew(sub: str, on: str) -> dict[str, Any]:
    return cmd("renew_subscription", on=on, subscription=sub)


def cancel(sub: str, on: str) -> dict[str, Any]:
    return cmd("cancel_subscription", on=on, subscription=sub)


def refund(sub: str, amount: str, on: str, **x: Any) -> dict[str, Any]:
    return cmd("refund", on=on, subscription=sub, amount=amount, **x)


def usage(domain: str, on: str, **x: Any) -> dict[str, Any]:
    return cmd("report_usage", on=on, customer_domain=domain, **x)


def rate(partner: str, value: str, on: str) -> dict[str, Any]:
    return cmd("set_commission_rate", on=on, partner=partner, commission_rate=value)


def day(text: str) -> date:
    return date.fromisoformat(text)


# -- statement helpers -------------------------------------------------------------------
MONEY = ("amount", "commission", "vendor_share", "partner_share", "payable_to_partner", "invoice_to_partner")


def statement(h: Harness, partner: str, month: str) -> dict[str, Any]:
    """The statement, after checking what must hold for every statement: decimal
    money in cents, amount = vendor share + partner share on every line, and
    totals per currency that are the sums of the lines."""
    st_ = h.ledger.statement(partner, month)
    sums: dict[str, dict[str, Decimal]] = {}
    for line in st_["lines"]:
        for k in MONEY:
            assert isinstance(line[k], Decimal) and line[k] == line[k].quantize(CENT), (k, line[k])
        assert isinstance(line["rate"], Decimal)
        assert line["amount"] == line["vendor_share"] + line["partner_share"], line
        assert line["partner_share"] == line["commission"], line
        assert line["entry"] in ("charge", "refund")
        assert (line["entry"] == "refund") == (line["amount"] < 0), line
        t = sums.setdefault(line["currency"], {k: D("0.00") for k in MONEY})
        for k in MONEY:
            t[k] += line[k]
    assert set(st_["totals"]) == set(sums)
    for currency, t in sums.items():
        for k in MONEY:
            assert st_["totals"][currency][k] == t[k], (currency, k)
    return st_


def lines(st_: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(subscription, entry, charge, amount, rate, commission, kind) per line."""
    return [(x["subscription"], x["entry"], x["charge"], x["amount"], x["rate"], x["commission"], x["kind"])
            for x in st_["lines"]]


def total(st_: dict[str, Any], currency: str, *keys: str) -> tuple[Decimal, ...]:
    return tuple(st_["totals"][currency][k] for k in keys)


PAY, NET = "commission-payable", "net-invoice-to-partner"


# == 1. commission statements ==============================================================
def test_statement_per_billing_option(h: Harness) -> None:
    program(h)  # acme 0.20
    h.ok(*won_sub("s-cc", "cc.fi", amount="100.00"),
         *won_sub("s-inv", "inv.fi", amount="250.00", billing="invoice"),
         *won_sub("s-pb", "pb.fi", amount="80.00", billing="partner"))
    st_ = statement(h, "acme", "2026-03")
    assert lines(st_) == [
        ("s-cc", "charge", 1, D("100.00"), D("0.20"), D("20.00"), PAY),   # 100.00 × 0.20
        ("s-inv", "charge", 1, D("250.00"), D("0.20"), D("50.00"), PAY),  # 250.00 × 0.20
        ("s-pb", "charge", 1, D("80.00"), D("0.20"), D("16.00"), NET),    # 80.00 × 0.20
    ]
    cc, inv, pb = st_["lines"]
    assert [(x["customer_domain"], x["billing"], x["currency"], x["day"]) for x in st_["lines"]] == [
        ("cc.fi", "credit-card", "EUR", date(2026, 3, 5)), ("inv.fi", "invoice", "EUR", date(2026, 3, 5)),
        ("pb.fi", "partner", "EUR", date(2026, 3, 5))]
    # Credit card and invoice: the vendor bills the customer and pays the partner its commission.
    assert (cc["vendor_share"], cc["partner_share"], cc["payable_to_partner"], cc["invoice_to_partner"]) == (
        D("80.00"), D("20.00"), D("20.00"), D("0.00"))  # 100.00 - 20.00
    assert (inv["vendor_share"], inv["payable_to_partner"], inv["invoice_to_partner"]) == (
        D("200.00"), D("50.00"), D("0.00"))  # 250.00 - 50.00
    # Partner billing: the vendor invoices the partner the value minus the commission.
    assert (pb["vendor_share"], pb["partner_share"], pb["payable_to_partner"], pb["invoice_to_partner"]) == (
        D("64.00"), D("16.00"), D("0.00"), D("64.00"))  # 80.00 - 16.00
    assert st_["totals"] == {"EUR": {
        "amount": D("430.00"),              # 100 + 250 + 80
        "commission": D("86.00"),           # 20 + 50 + 16
        "vendor_share": D("344.00"),        # 80 + 200 + 64
        "partner_share": D("86.00"),
        "payable_to_partner": D("70.00"),   # 20 + 50
        "invoice_to_partner": D("64.00"),   # 80 - 16
    }}
    # Other months and other partners see none of it.
    assert statement(h, "acme", "2026-02")["lines"] == [] and statement(h, "acme", "2026-04")["lines"] == []
    assert statement(h, "acme", "2026-02")["totals"] == {}
    assert statement(h, "beta", "2026-03")["lines"] == []


ROUNDING = [  # partner, amount, commission: rate × amount rounded half-up to the cent
    ("beta", "10.10", "1.52"),    # 0.15 × 10.10 = 1.515   → 1.52
    ("beta", "10.30", "1.55"),    # 0.15 × 10.30 = 1.545   → 1.55
    ("beta", "0.05", "0.01"),     # 0.15 × 0.05  = 0.0075  → 0.01
    ("beta", "0.03", "0.00"),     # 0.15 × 0.03  = 0.0045  → 0.00
    ("beta", "0.10", "0.02"),     # 0.15 × 0.10  = 0.015   → 0.02
    ("gamma", "10.00", "1.75"),   # 0.175 × 10.00 = 1.75
    ("gamma", "0.02", "0.00"),    # 0.175 × 0.02  = 0.0035 → 0.00
    ("gamma", "0.06", "0.01"),    # 0.175 × 0.06  = 0.0105 → 0.01
    ("gamma", "1.10", "0.19"),    # 0.175 × 1.10  = 0.1925 → 0.19
    ("gamma", "0.10", "0.02"),    # 0.175 × 0.10  = 0.0175 → 0.02
    ("gamma", "0.30", "0.05"),    # 0.175 × 0.30  = 0.0525 → 0.05
    ("gamma", "12.34", "2.16"),   # 0.175 × 12.34 = 2.1595 → 2.16
    ("delta", "0.01", "0.01"),    # 0.5 × 0.01 = 0.005 → 0.01
    ("delta", "0.03", "0.02"),    # 0.5 × 0.03 = 0.015 → 0.02
]
RATES = {"beta": D("0.15"), "gamma": D("0.175"), "delta": D("0.5")}


def test_statement_commission_rounds_half_up_to_the_cent(h: Harness) -> None:
    program(h)  # beta 0.15
    h.ok(cmd("enroll_partner", on="2026-01-01", partner="gamma", name="Gamma", domain="gamma.fi",
             commission_rate="0.175"),
         cmd("enroll_partner", on="2026-01-01", partner="delta", name="Delta", domain="delta.fi",
             commission_rate="0.5"))
    h.ok(*[line for i, (p, amount, _) in enumerate(ROUNDING)
           for line in won_sub(f"s-{i}", f"r{i}.fi", partner=p, amount=amount)])
    # Refunds in the same month, rounded on the magnitude, at the charge's rate.
    h.ok(refund("s-1", "10.30", "2026-03-20"),   # -(0.15 × 10.30 = 1.545 → 1.55)
         refund("s-0", "0.05", "2026-03-21"),    # -(0.15 × 0.05 = 0.0075 → 0.01)
         refund("s-12", "0.01", "2026-03-22"))   # -(0.5 × 0.01 = 0.005 → 0.01)
    for p in ("beta", "gamma", "delta"):
        st_ = statement(h, p, "2026-03")
        expected = [(f"s-{i}", "charge", 1, D(a), RATES[p], D(c), PAY) for i, (q, a, c) in enumerate(ROUNDING) if q == p]
        expected += {
            "beta": [("s-1", "refund", 1, D("-10.30"), D("0.15"), D("-1.55"), PAY),
                     ("s-0", "refund", 1, D("-0.05"), D("0.15"), D("-0.01"), PAY)],
            "gamma": [],
            "delta": [("s-12", "refund", 1, D("-0.01"), D("0.5"), D("-0.01"), PAY)],
        }[p]
        assert lines(st_) == expected, p
    # beta: amounts 10.10 + 10.30 + 0.05 + 0.03 + 0.10 - 10.30 - 0.05 = 10.23;
    #       commission 1.52 + 1.55 + 0.01 + 0.00 + 0.02 - 1.55 - 0.01 = 1.54; vendor 10.23 - 1.54 = 8.69
    assert total(statement(h, "beta", "2026-03"), "EUR", "amount", "commission", "vendor_share") == (
        D("10.23"), D("1.54"), D("8.69"))
    # gamma: 10.00 + 0.02 + 0.06 + 1.10 + 0.10 + 0.30 + 12.34 = 23.92;
    #        1.75 + 0.00 + 0.01 + 0.19 + 0.02 + 0.05 + 2.16 = 4.18; vendor 23.92 - 4.18 = 19.74
    assert total(statement(h, "gamma", "2026-03"), "EUR", "amount", "commission", "vendor_share") == (
        D("23.92"), D("4.18"), D("19.74"))
    # delta: 0.01 + 0.03 - 0.01 = 0.03; 0.01 + 0.02 - 0.01 = 0.02; vendor 0.01
    assert total(statement(h, "delta", "2026-03"), "EUR", "amount", "commission", "vendor_share") == (
        D("0.03"), D("0.02"), D("0.01"))


def test_statement_rate_change_mid_month(h: Harness) -> None:
    program(h)  # acme 0.20 from 2026-01-01
    h.ok(*won_sub("s-a", "a.fi", on="2026-03-14", amount="100.00"))
    (r,) = h.ok(rate("acme", "0.25", "2026-03-15"))
    assert r.message == "rate 0.25 from 2026-03-15"
    h.ok(*won_sub("s-b", "b.fi", on="2026-03-15", amount="100.00"),
         *won_sub("s-c", "c.fi", on="2026-03-31", amount="40.00"))
    h.ok(renew("s-a", "2026-04-14"))
    assert lines(statement(h, "acme", "2026-03")) == [
        ("s-a", "charge", 1, D("100.00"), D("0.20"), D("20.00"), PAY),  # the day before: 100 × 0.20
        ("s-b", "charge", 1, D("100.00"), D("0.25"), D("25.00"), PAY),  # from the change day: 100 × 0.25
        ("s-c", "charge", 1, D("40.00"), D("0.25"), D("10.00"), PAY),   # 40 × 0.25
    ]
    assert total(statement(h, "acme", "2026-03"), "EUR", "amount", "commission") == (D("240.00"), D("55.00"))
    assert lines(statement(h, "acme", "2026-04")) == [
        ("s-a", "charge", 2, D("100.00"), D("0.25"), D("25.00"), PAY)]  # renewal at the new rate


def test_statement_refund_in_a_later_month_at_the_refunded_charges_rate(h: Harness) -> None:
    program(h)  # acme 0.20
    h.ok(*won_sub("s-1", "r.fi", on="2026-03-10", amount="100.00"),
         *won_sub("s-2", "p.fi", on="2026-03-12", amount="200.00", billing="partner"))
    h.ok(rate("acme", "0.30", "2026-04-01"))
    h.ok(renew("s-1", "2026-04-10"))
    h.ok(rate("acme", "0.10", "2026-05-01"))
    h.ok(refund("s-1", "100.00", "2026-05-05", charge=1),  # March's charge, at March's 0.20
         refund("s-1", "50.00", "2026-05-06"),              # the latest charge (April's), at 0.30
         refund("s-2", "200.00", "2026-05-07"))             # partner billing, at March's 0.20
    h.ok(renew("s-1", "2026-05-10"))                        # May's charge at 0.10
    march = statement(h, "acme", "2026-03")
    assert lines(march) == [
        ("s-1", "charge", 1, D("100.00"), D("0.20"), D("20.00"), PAY),
        ("s-2", "charge", 1, D("200.00"), D("0.20"), D("40.00"), NET),
    ]
    # The refunds did not touch March: 100 + 200; 20 + 40; invoice to partner 200 - 40.
    assert total(march, "EUR", "amount", "commission", "payable_to_partner", "invoice_to_partner") == (
        D("300.00"), D("60.00"), D("20.00"), D("160.00"))
    assert lines(statement(h, "acme", "2026-04")) == [
        ("s-1", "charge", 2, D("100.00"), D("0.30"), D("30.00"), PAY)]
    may = statement(h, "acme", "2026-05")
    assert lines(may) == [
        ("s-1", "refund", 1, D("-100.00"), D("0.20"), D("-20.00"), PAY),   # -(100 × 0.20)
        ("s-1", "refund", 2, D("-50.00"), D("0.30"), D("-15.00"), PAY),    # -(50 × 0.30)
        ("s-2", "refund", 1, D("-200.00"), D("0.20"), D("-40.00"), NET),   # -(200 × 0.20)
        ("s-1", "charge", 3, D("100.00"), D("0.10"), D("10.00"), PAY),     # 100 × 0.10
    ]
    assert [x["day"] for x in may["lines"]] == [date(2026, 5, 5), date(2026, 5, 6), date(2026, 5, 7), date(2026, 5, 10)]
    assert [x["vendor_share"] for x in may["lines"]] == [D("-80.00"), D("-35.00"), D("-160.00"), D("90.00")]
    assert may["totals"]["EUR"] == {
        "amount": D("-250.00"),             # -100 - 50 - 200 + 100
        "commission": D("-65.00"),          # -20 - 15 - 40 + 10
        "vendor_share": D("-185.00"),       # -80 - 35 - 160 + 90
        "partner_share": D("-65.00"),
        "payable_to_partner": D("-25.00"),  # -20 - 15 + 10
        "invoice_to_partner": D("-160.00"),  # -(200 - 40)
    }


def test_statement_totals_per_currency(h: Harness) -> None:
    program(h)  # acme 0.20
    h.ok(*won_sub("s-eur", "e.fi", on="2026-03-02", amount="100.00"),
         *won_sub("s-usd", "u.fi", on="2026-03-03", amount="59.99", currency="USD"),
         *won_sub("s-eur2", "e2.fi", on="2026-03-04", amount="10.10"))
    st_ = statement(h, "acme", "2026-03")
    assert [(x["subscription"], x["currency"], x["commission"]) for x in st_["lines"]] == [
        ("s-eur", "EUR", D("20.00")),   # 100.00 × 0.20
        ("s-usd", "USD", D("12.00")),   # 59.99 × 0.20 = 11.998 → 12.00
        ("s-eur2", "EUR", D("2.02")),   # 10.10 × 0.20 = 2.02
    ]
    assert list(st_["totals"]) == ["EUR", "USD"]
    # EUR: 100.00 + 10.10 = 110.10; 20.00 + 2.02 = 22.02; 110.10 - 22.02 = 88.08
    assert total(st_, "EUR", "amount", "commission", "vendor_share") == (D("110.10"), D("22.02"), D("88.08"))
    # USD: 59.99; 12.00; 59.99 - 12.00 = 47.99
    assert total(st_, "USD", "amount", "commission", "vendor_share") == (D("59.99"), D("12.00"), D("47.99"))


def test_statement_commission_goes_to_the_partner_whose_customer_pays(h: Harness) -> None:
    program(h)  # acme 0.20, beta 0.15
    h.ok(*won_sub("s-b", "bcust.fi", partner="beta", on="2026-03-05", amount="100.00"),
         trial("t-1", "tcust.fi", "2026-03-01"),
         direct_sub("s-direct", "direct.fi", "2026-03-06"),
         direct_sub("s-t", "tcust.fi", "2026-03-07", amount="50.00"))
    assert lines(statement(h, "beta", "2026-03")) == [
        ("s-b", "charge", 1, D("100.00"), D("0.15"), D("15.00"), PAY)]  # beta's won deal: 100 × 0.15
    assert lines(statement(h, "acme", "2026-03")) == [
        ("s-t", "charge", 1, D("50.00"), D("0.20"), D("10.00"), PAY)]   # acme's trial customer: 50 × 0.20
    # A direct customer (no deal, no trial) pays no partner any commission.
    h.ok(renew("s-direct", "2026-04-06"), refund("s-direct", "10.00", "2026-04-07"))
    assert statement(h, "acme", "2026-04")["lines"] == [] and statement(h, "beta", "2026-04")["lines"] == []


def test_statement_a_charge_refunded_in_parts_nets_to_zero_commission(h: Harness) -> None:
    program(h)  # beta 0.15
    h.ok(*won_sub("s-1", "x.fi", partner="beta", amount="10.30"))
    h.ok(refund("s-1", "5.15", "2026-03-10"), refund("s-1", "5.15", "2026-03-11"))
    st_ = statement(h, "beta", "2026-03")
    assert st_["lines"][0]["commission"] == D("1.55")  # 0.15 × 10.30 = 1.545 → 1.55
    # Refunded in full: 10.30 - 5.15 - 5.15 = 0 paid, so 0 commission (1.55 clawed back in all).
    assert total(st_, "EUR", "amount", "commission") == (D("0.00"), D("0.00"))


# == 2. customer overview ================================================================
def overview_scenario(h: Harness) -> None:
    program(h)
    h.ok(
        trial("t-run", "trial.fi", "2026-02-01", name="Trial Oy"),              # runs to 2026-02-15
        trial("t-old", "closed.fi", "2026-01-05", name="Closed Oy"),            # ran to 2026-01-19
        *won_sub("s-act", "act.fi", on="2026-02-03", period="yearly", amount="1200.00",
                 registered="2026-01-20", name="Active Oy"),
        *won_sub("s-canc", "canc.fi", on="2026-01-20", registered="2026-01-10", name="Gone Oy"),
        trial("t-conv", "conv.fi", "2026-02-01", name="Conv Oy"),
        direct_sub("s-conv", "conv.fi", "2026-02-05"),                          # converts t-conv
        trial("t-beta", "bt.fi", "2026-02-01", partner="beta", name="Beta Kunde GmbH"),
    )
    h.ok(cancel("s-canc", "2026-02-10"))


def statuses(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["domain"], r["status"]) for r in rows]


def test_overview_status_by_as_of_date(h: Harness) -> None:
    overview_scenario(h)
    ov = h.ledger.overview
    for r in ov("acme", None, day("2026-02-12")):
        assert {"customer", "domain", "status", "framework", "progress", "users", "activities_90d",
                "attention"} <= set(r)
    assert statuses(ov("acme", None, day("2026-02-12"))) == [
        ("act.fi", "active"), ("canc.fi", "cancelled"), ("closed.fi", "closed"),
        ("conv.fi", "active"), ("trial.fi", "trial")]
    assert [r["customer"] for r in ov("acme", None, day("2026-02-12"))] == [
        "Active Oy", "Gone Oy", "Closed Oy", "Conv Oy", "Trial Oy"]
    # Before the cancellation, the conversion and the yearly subscription's start:
    assert statuses(ov("acme", None, day("2026-02-02"))) == [
        ("canc.fi", "active"), ("closed.fi", "closed"), ("conv.fi", "trial"), ("trial.fi", "trial")]
    assert statuses(ov("acme", None, day("2026-02-04"))) == [
        ("act.fi", "active"), ("canc.fi", "active"), ("closed.fi", "closed"), ("conv.fi", "trial"),
        ("trial.fi", "trial")]
    # On 2026-01-10 only closed.fi's trial had started (2026-01-05, 14 days: runs to 2026-01-18).
    assert statuses(ov("acme", None, day("2026-01-10"))) == [("closed.fi", "trial")]
    assert statuses(ov("acme", None, day("2026-01-18"))) == [("closed.fi", "trial")]
    assert statuses(ov("acme", None, day("2026-01-19"))) == [("closed.fi", "closed")]
    assert statuses(ov("acme", None, day("2026-01-04"))) == []
    # trial.fi: started 2026-02-01, 14 days: its last day is 2026-02-14.
    assert ("trial.fi", "trial") in statuses(ov("acme", None, day("2026-02-14")))
    assert ("trial.fi", "closed") in statuses(ov("acme", None, day("2026-02-15")))
    # Each partner sees its own customers; the vendor sees all.
    assert statuses(ov("beta", None, day("2026-02-12"))) == [("bt.fi", "trial")]
    assert [d for d, _ in statuses(ov(None, None, day("2026-02-12")))] == [
        "act.fi", "bt.fi", "canc.fi", "closed.fi", "conv.fi", "trial.fi"]


def test_overview_filters_and_attention_count(h: Harness) -> None:
    overview_scenario(h)
    on = day("2026-02-12")
    rows = {r["domain"]: r for r in h.ledger.overview("acme", None, on)}
    assert {d: r["attention"] for d, r in rows.items()} == {
        "act.fi": 0,     # subscribed 9 days ago: too early to call it inactive
        "canc.fi": 1,    # subscription-cancelled (2026-02-10, within 30 days)
        "closed.fi": 0,
        "conv.fi": 0,    # monthly from 2026-02-05: due 2026-03-05, beyond the monthly window (7 days)
        "trial.fi": 2,   # trial-ending (ends 2026-02-15, in 3 days) + trial-inactive (7 days, no activity)
    }
    by_domain: dict[str, int] = {}
    for item in h.ledger.attention("acme", on):
        by_domain[item["domain"]] = by_domain.get(item["domain"], 0) + 1
    assert by_domain == {d: r["attention"] for d, r in rows.items() if r["attention"]}
    f = lambda which, when=on: [r["domain"] for r in h.ledger.overview("acme", which, when)]  # noqa: E731
    assert f("trial") == ["trial.fi"]
    assert f("active") == ["act.fi", "conv.fi"]
    assert f("closed") == ["closed.fi"]
    assert f("attention") == ["canc.fi", "trial.fi"]
    # Subscribed 31 days with no activity: customer-inactive; one activity clears it.
    later = day("2026-03-06")
    assert "act.fi" in f("attention", later)
    h.ok(usage("act.fi", "2026-03-01", activities=3))
    assert "act.fi" not in f("attention", later)
    assert {r["domain"]: r["attention"] for r in h.ledger.overview("acme", None, later)}["act.fi"] == 0


def test_overview_usage_and_the_90_day_activity_window(h: Harness) -> None:
    program(h)
    h.ok(*won_sub("s-1", "act.fi", on="2026-01-05", period="yearly", registered="2026-01-02", name="Active Oy"))
    h.ok(
        usage("act.fi", "2026-01-10", users=3, framework="ISO 27001", progress=10, activities=5),
        usage("act.fi", "2026-01-11", activities=4),
        usage("act.fi", "2026-02-01", users=5, progress=20, activities=7),
        usage("act.fi", "2026-03-01", framework="NIS2", activities=2),
        usage("act.fi", "2026-03-01", users=6, activities=1),        # same day: activities add up
        usage("act.fi", "2026-04-10", progress=35, activities=10),
        usage("act.fi", "2026-04-11", users=9, framework="SOC 2", progress=50, activities=100),
        usage("prospect.fi", "2026-03-01", users=1, activities=1),  # no trial, no subscription: not listed
    )

    def row(as_of: str) -> tuple[Any, ...]:
        (r,) = h.ledger.overview("acme", None, day(as_of))
        return r["framework"], r["progress"], r["users"], r["activities_90d"]

    # as of 2026-04-10 the window is (2026-01-10, 2026-04-10]: 2026-01-10 is 90 days back (excluded),
    # 2026-01-11 is 89 days back (included): 4 + 7 + (2 + 1) + 10 = 24; the 2026-04-11 report is later.
    assert row("2026-04-10") == ("NIS2", 35, 6, 24)
    # as of 2026-04-09, window (2026-01-09, 2026-04-09]: 5 + 4 + 7 + 3 = 19; progress still 20.
    assert row("2026-04-09") == ("NIS2", 20, 6, 19)
    # as of 2026-04-11, window (2026-01-11, 2026-04-11]: 7 + 3 + 10 + 100 = 120.
    assert row("2026-04-11") == ("SOC 2", 50, 9, 120)
    # as of the first report's day: only that report.
    assert row("2026-01-10") == ("ISO 27001", 10, 3, 5)
    # before any report: nothing known yet.
    assert row("2026-01-09") == (None, None, None, 0)
    # far later: everything out of the window, the latest facts remain.
    assert row("2026-12-31") == ("SOC 2", 50, 9, 0)  # 2026-04-11 + 90 = 2026-07-10 < 2026-12-31
    assert [r["domain"] for r in h.ledger.overview(None, None, day("2026-04-10"))] == ["act.fi"]


def test_overview_latest_usage_ignores_a_late_report_for_an_earlier_day(h: Harness) -> None:
    program(h)
    h.ok(*won_sub("s-1", "act.fi", on="2026-01-05", period="yearly", registered="2026-01-02", name="Active Oy"))
    h.ok(
        usage("act.fi", "2026-04-11", users=9, framework="SOC 2", activities=3),
        usage("act.fi", "2026-04-11", users=10),                     # same day, later: replaces
        usage("act.fi", "2026-04-01", users=2, progress=40, activities=1),  # an earlier day, reported late
    )

    def row(as_of: str) -> tuple[Any, ...]:
        (r,) = h.ledger.overview("acme", None, day(as_of))
        return r["framework"], r["progress"], r["users"], r["activities_90d"]

    assert row("2026-05-01") == ("SOC 2", 40, 10, 4)
    assert row("2026-04-05") == (None, 40, 2, 1)
    # A rebuild from the log gives the same figures.
    h.ledger.runner.rebuild("overview")
    assert row("2026-05-01") == ("SOC 2", 40, 10, 4)


REPORT = st.fixed_dictionaries({
    "day": st.integers(0, 12).map(lambda k: k * 10),  # few days: several reports share one
    "users": st.none() | st.integers(1, 50),
    "framework": st.none() | st.sampled_from(["ISO 27001", "NIS2", "SOC 2"]),
    "progress": st.none() | st.integers(0, 100),
    "activities": st.none() | st.integers(0, 9),
}).filter(lambda r: any(r[k] is not None for k in ("users", "framework", "progress", "activities")))


def test_overview_usage_figures_match_a_replay_of_the_reports_on_any_day(h: Harness) -> None:
    """The latest-usage row (queries on or after the last report) and the
    look-ups into ov_usage (queries into the past) agree with the reports
    themselves, sent in any order, whatever the day asked."""
    start = date(2026, 1, 1)
    domains = iter(range(10_000))

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(reports=st.lists(REPORT, min_size=1, max_size=12), data=st.data())
    def check(reports: list[dict[str, Any]], data: st.DataObject) -> None:
        # Days asked: around each report and the edges of its 90-day window, and any day.
        edges = sorted({r["day"] + d for r in reports for d in (-1, 0, 1, 89, 90, 91)})
        asked = data.draw(st.lists(st.sampled_from(edges) | st.integers(-5, 320), min_size=1, max_size=8))
        domain = f"u{next(domains)}.fi"
        h.ok(direct_sub(f"s-{domain}", domain, on="2026-01-01"))
        h.ok(*[usage(domain, (start + timedelta(days=r["day"])).isoformat(),
                     **{k: v for k, v in r.items() if k != "day" and v is not None}) for r in reports])
        for offset in asked:
            as_of = start + timedelta(days=offset)
            (row,) = [r for r in h.ledger.overview(None, None, as_of) if r["domain"] == domain] or [None]
            if as_of < start:
                assert row is None  # the subscription had not started
                continue
            seen = [r for r in reports if r["day"] <= offset]  # in the order sent

            def latest(figure: str) -> Any:
                """The figure's latest day; on that day, the last report sent."""
                with_it = [r for r in seen if r[figure] is not None]
                if not with_it:
                    return None
                last_day = max(r["day"] for r in with_it)
                return [r for r in with_it if r["day"] == last_day][-1][figure]

            window = sum(r["activities"] or 0 for r in seen if r["day"] > offset - 90)
            assert (row["users"], row["framework"], row["progress"], row["activities_90d"]) == (
                latest("users"), latest("framework"), latest("progress"), window), (offset, reports)

    check()


# == 3. attention flags ====================================================================
def flagged(h: Harness, code: str, as_of: str, partner: str | None = "acme") -> list[str]:
    return [i["subject"] for i in h.ledger.attention(partner, day(as_of)) if i["code"] == code]


def reasons(h: Harness, code: str, as_of: str) -> list[str]:
    return [i["reason"] for i in h.ledger.attention("acme", day(as_of)) if i["code"] == code]


def test_attention_codes_are_the_specified_ones() -> None:
    from ledger.projections import attention

    assert set(attention.CODES) == {
        "trial-ending", "trial-inactive", "deal-pending-review", "protection-lapsing",
        "won-without-subscription", "subscription-cancelled", "customer-inactive", "renewal-due"}


def test_attention_trial_ending(h: Harness) -> None:
    program(h)
    h.ok(trial("t-1", "t.fi", "2026-02-01"),       # ends 2026-02-15
         trial("t-2", "c.fi", "2026-02-01"),
         direct_sub("s-2", "c.fi", "2026-02-05"))  # converts t-2
    assert flagged(h, "trial-ending", "2026-02-07") == []       # 8 days left
    assert flagged(h, "trial-ending", "2026-02-08") == ["t-1"]  # 7 days left
    assert reasons(h, "trial-ending", "2026-02-08") == ["trial for t.fi ends on 2026-02-15 (in 7 days)"]
    assert flagged(h, "trial-ending", "2026-02-10") == ["t-1"]  # t-2 converted on 2026-02-05
    assert flagged(h, "trial-ending", "2026-02-14") == ["t-1"]  # last day
    assert flagged(h, "trial-ending", "2026-02-15") == []       # ended
    assert flagged(h, "trial-ending", "2026-01-31") == []       # not started
    assert flagged(h, "trial-ending", "2026-02-08", partner="beta") == []
    h.ok(cmd("extend_trial", on="2026-02-10", actor="partner:acme", trial="t-1"))  # 30 days: ends 2026-03-03
    assert flagged(h, "trial-ending", "2026-02-14") == []       # 17 days left
    assert flagged(h, "trial-ending", "2026-02-23") == []       # 8 days left
    assert flagged(h, "trial-ending", "2026-02-24") == ["t-1"]  # 7 days left


def test_attention_trial_inactive(h: Harness) -> None:
    program(h)
    h.ok(trial("t-1", "t.fi", "2026-02-01", days=30),   # runs to 2026-03-02
         trial("t-2", "u.fi", "2026-02-01", days=30),
         usage("t.fi", "2026-02-03", activities=3))
    # Last activity 2026-02-03: inside the last 7 days up to 2026-02-09, outside from 2026-02-10.
    assert flagged(h, "trial-inactive", "2026-02-09") == ["t-2"]
    assert flagged(h, "trial-inactive", "2026-02-10") == ["t-1", "t-2"]
    assert "since 2026-02-03" in reasons(h, "trial-inactive", "2026-02-10")[0]
    assert "at all" in reasons(h, "trial-inactive", "2026-02-10")[1]
    # A report with users but no activity is not activity.
    h.ok(usage("t.fi", "2026-02-09", users=4, progress=5))
    assert flagged(h, "trial-inactive", "2026-02-10") == ["t-1", "t-2"]
    h.ok(usage("t.fi", "2026-02-12", activities=1), usage("u.fi", "2026-02-12", activities=1))
    assert flagged(h, "trial-inactive", "2026-02-12") == []
    assert flagged(h, "trial-inactive", "2026-02-18") == []                # 2026-02-12 is 6 days back
    assert flagged(h, "trial-inactive", "2026-02-19") == ["t-1", "t-2"]    # 7 days back
    assert flagged(h, "trial-inactive", "2026-03-03") == []                # the trials have ended


def test_attention_deal_pending_review(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", on="2026-01-10"),
         deal("d-2", partner="beta", email="bob@example.fi", on="2026-01-10"))  # duplicate: denied at once
    assert flagged(h, "deal-pending-review", "2026-01-15") == []        # waited 5 days
    assert flagged(h, "deal-pending-review", "2026-01-16") == ["d-1"]   # waited 6 days
    assert reasons(h, "deal-pending-review", "2026-01-16") == ["deal for example.fi pending review for 6 days"]
    assert flagged(h, "deal-pending-review", "2026-01-09") == []
    assert flagged(h, "deal-pending-review", "2026-01-16", partner="beta") == []
    h.ok(cmd("accept_deal", on="2026-01-20", deal="d-1"))
    assert flagged(h, "deal-pending-review", "2026-01-25") == []


def test_attention_protection_lapsing(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", on="2026-01-10"),                                          # protected until 2026-04-10
         deal("d-2", email="x@won.fi", on="2026-01-10"), cmd("accept_deal", on="2026-01-11", deal="d-2"),
         cmd("win_deal", on="2026-01-12", actor="partner:acme", deal="d-2", billing="credit-card"),
         deal("d-3", partner="beta", email="y@denied.fi", on="2026-01-10"),
         cmd("deny_deal", on="2026-01-11", deal="d-3", reason="invalid-lead"))
    assert flagged(h, "protection-lapsing", "2026-03-26", partner=None) == []        # 15 days left
    assert flagged(h, "protection-lapsing", "2026-03-27", partner=None) == ["d-1"]   # 14 days left
    assert reasons(h, "protection-lapsing", "2026-03-27") == [
        "protection of example.fi lapses on 2026-04-10 (in 14 days) unless the deal moves"]
    assert flagged(h, "protection-lapsing", "2026-04-09") == ["d-1"]                 # 1 day left
    assert flagged(h, "protection-lapsing", "2026-04-10") == []                      # lapsed
    # A note renews the protection: 2026-03-28 + 90 = 2026-06-26.
    h.ok(cmd("add_deal_note", on="2026-03-28", actor="partner:acme", deal="d-1", text="demo booked"))
    assert flagged(h, "protection-lapsing", "2026-04-09") == []
    assert flagged(h, "protection-lapsing", "2026-06-11") == []                      # 15 days left
    assert flagged(h, "protection-lapsing", "2026-06-12") == ["d-1"]                 # 14 days left


def test_attention_won_without_subscription(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", on="2026-01-10"), cmd("accept_deal", on="2026-01-11", deal="d-1"),
         cmd("win_deal", on="2026-02-01", actor="partner:acme", deal="d-1", billing="credit-card"))
    assert flagged(h, "won-without-subscription", "2026-02-14") == []       # won 13 days ago
    assert flagged(h, "won-without-subscription", "2026-02-15") == ["d-1"]  # won 14 days ago
    h.ok(cmd("start_subscription", on="2026-02-20", subscription="s-1", customer_domain="example.fi",
             plan="pro", amount="100.00", currency="EUR", period="yearly", billing="credit-card", deal="d-1"))
    assert flagged(h, "won-without-subscription", "2026-02-19") == ["d-1"]  # not started yet that day
    assert flagged(h, "won-without-subscription", "2026-02-20") == []


def test_attention_won_without_subscription_ignores_an_older_cancelled_subscription(h: Harness) -> None:
    program(h)
    h.ok(direct_sub("s-0", "example.fi", "2026-01-05"))
    h.ok(cancel("s-0", "2026-02-01"))
    h.ok(deal("d-1", on="2026-02-02"), cmd("accept_deal", on="2026-02-03", deal="d-1"),
         cmd("win_deal", on="2026-02-10", actor="partner:acme", deal="d-1", billing="credit-card"))
    assert flagged(h, "won-without-subscription", "2026-02-24") == ["d-1"]  # won 14 days before


def test_attention_subscription_cancelled(h: Harness) -> None:
    program(h)
    h.ok(*won_sub("s-1", "c.fi", on="2026-01-20", registered="2026-01-10"))
    h.ok(cancel("s-1", "2026-03-01"))
    assert flagged(h, "subscription-cancelled", "2026-02-28") == []
    assert flagged(h, "subscription-cancelled", "2026-03-01") == ["s-1"]
    assert reasons(h, "subscription-cancelled", "2026-03-01") == ["subscription pro of c.fi cancelled on 2026-03-01"]
    assert flagged(h, "subscription-cancelled", "2026-03-30") == ["s-1"]  # 2026-03-30 - 30 = 2026-02-28 < 03-01
    assert flagged(h, "subscription-cancelled", "2026-03-31") == []       # 2026-03-31 - 30 = 2026-03-01


def test_attention_customer_inactive(h: Harness) -> None:
    program(h)
    h.ok(*won_sub("s-1", "c.fi", on="2026-01-05", period="yearly", registered="2026-01-02"),
         cmd("start_subscription", on="2026-01-06", subscription="s-2", customer_domain="c.fi", plan="extra",
             amount="10.00", currency="EUR", period="yearly", billing="credit-card"))  # a deal has one at most
    h.ok(usage("c.fi", "2026-03-01", activities=2), usage("c.fi", "2026-03-20", users=7))
    assert flagged(h, "customer-inactive", "2026-03-30") == []          # 2026-03-01 is 29 days back
    assert flagged(h, "customer-inactive", "2026-03-31") == ["c.fi"]    # 30 days back; once per customer
    assert reasons(h, "customer-inactive", "2026-03-31") == [
        "active customer c.fi has had no activity since 2026-03-01"]
    h.ok(cancel("s-1", "2026-04-01"), cancel("s-2", "2026-04-01"))
    assert flagged(h, "customer-inactive", "2026-04-05") == []          # no longer an active customer


def test_attention_renewal_due(h: Harness) -> None:
    program(h)
    h.ok(*won_sub("s-1", "y.fi", on="2026-02-03", period="yearly", amount="1200.00"),    # due 2027-02-03
         *won_sub("s-2", "m.fi", on="2026-02-03", period="monthly", amount="100.00"))   # due 2026-03-03
    h.ok(cancel("s-2", "2026-02-20"))
    assert flagged(h, "renewal-due", "2026-02-25") == []                 # s-2 cancelled; s-1 a year away
    assert flagged(h, "renewal-due", "2027-01-03") == []                 # 31 days ahead
    assert flagged(h, "renewal-due", "2027-01-04") == ["s-1"]            # 30 days ahead
    assert reasons(h, "renewal-due", "2027-01-04") == ["renewal of pro for y.fi due on 2027-02-03"]
    assert reasons(h, "renewal-due", "2027-02-10") == ["renewal of pro for y.fi overdue since 2027-02-03"]
    h.ok(renew("s-1", "2027-02-03"))                                     # next due 2028-02-03
    assert flagged(h, "renewal-due", "2027-02-10") == []
    assert flagged(h, "renewal-due", "2028-01-04") == ["s-1"]            # 2028-02-03 - 30 days


def test_attention_renewal_due_window_per_billing_period(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A monthly subscription is not flagged from its first day: its window is 7 days."""
    program(h)
    h.ok(*won_sub("s-3", "m3.fi", on="2026-02-03", period="monthly", amount="100.00"))  # due 2026-03-03
    assert flagged(h, "renewal-due", "2026-02-03") == []                 # its first day
    assert flagged(h, "renewal-due", "2026-02-23") == []                 # 8 days ahead
    assert flagged(h, "renewal-due", "2026-02-24") == ["s-3"]            # 7 days ahead
    monkeypatch.setenv("LEDGER_ATTENTION_RENEWAL_DUE_DAYS_MONTHLY", "10")
    assert flagged(h, "renewal-due", "2026-02-21") == ["s-3"]            # 10 days ahead
    assert flagged(h, "renewal-due", "2026-02-20") == []


def test_attention_as_of_a_past_date_uses_the_facts_of_that_date(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", on="2026-01-10"))
    h.ok(cmd("accept_deal", on="2026-01-20", deal="d-1"))
    assert flagged(h, "deal-pending-review", "2026-01-17") == ["d-1"]


# == 4. deal pipeline ======================================================================
def pipeline_scenario(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", email="a@one.fi", on="2026-01-10", name="One Oy"),
         deal("d-2", email="b@two.fi", on="2026-01-12", name="Two Oy"),
         deal("d-3", partner="beta", email="c@three.fi", on="2026-01-15", name="Three GmbH"),
         deal("d-4", email="d@four.fi", on="2026-01-20", name="Four Oy"),
         deal("d-5", email="e@five.fi", on="2026-01-21", name="Five Oy"))
    h.ok(cmd("accept_deal", on="2026-01-13", deal="d-2"),
         cmd("move_deal", on="2026-02-01", actor="partner:acme", deal="d-2", stage="trial"),
         cmd("deny_deal", on="2026-01-16", deal="d-3", reason="invalid-lead"),
         cmd("accept_deal", on="2026-01-21", deal="d-4"),
         cmd("win_deal", on="2026-02-05", actor="partner:acme", deal="d-4", billing="credit-card"),
         cmd("lose_deal", on="2026-02-06", actor="partner:acme", deal="d-5", note="no budget"),
         deal("d-6", partner="beta", email="f@one.fi", on="2026-02-01", name="One Oy"))  # d-1 protects it


def pl(h: Harness, partner: str | None = None, stage: str | None = None, review: str | None = None,
       as_of: str = "2026-03-01") -> list[str]:
    return [r["deal"] for r in h.ledger.deals(partner, stage, review, day(as_of))]


def test_pipeline_rows_and_protection(h: Harness) -> None:
    pipeline_scenario(h)
    rows = h.ledger.deals(None, None, None, day("2026-03-01"))
    assert [(r["deal"], r["partner"], r["customer_domain"], r["stage"], r["review"], r["protected_until"])
            for r in rows] == [
        ("d-1", "acme", "one.fi", "new", "pending", date(2026, 4, 10)),      # registered 2026-01-10 + 90
        ("d-2", "acme", "two.fi", "trial", "accepted", date(2026, 5, 2)),   # moved 2026-02-01 + 90
        ("d-3", "beta", "three.fi", "new", "denied", None),
        ("d-4", "acme", "four.fi", "closed-won", "accepted", None),
        ("d-5", "acme", "five.fi", "closed-lost", "pending", None),
        ("d-6", "beta", "one.fi", "new", "denied", None),               # duplicate of d-1
    ]
    assert [r["deny_reason"] for r in rows if r["review"] == "denied"] == ["invalid-lead", "duplicate"]
    # A note renews d-1's protection: 2026-03-01 + 90 = 2026-05-30.
    h.ok(cmd("add_deal_note", on="2026-03-01", actor="partner:acme", deal="d-1", text="call booked"))
    by = {r["deal"]: r for r in h.ledger.deals("acme", None, None, day("2026-05-01"))}
    assert (by["d-1"]["protected_until"], by["d-1"]["protected"]) == (date(2026, 5, 30), True)
    assert (by["d-2"]["protected_until"], by["d-2"]["protected"]) == (date(2026, 5, 2), True)
    # A sweep on 2026-05-02 records d-2's lapse (last action 2026-02-01 + 90); d-1 still holds.
    assert h.ledger.sweep(on=day("2026-05-02")).message == "1 protections lapsed, 0 trials expired"
    by = {r["deal"]: r for r in h.ledger.deals("acme", None, None, day("2026-05-02"))}
    assert (by["d-2"]["protected_until"], by["d-2"]["protected"]) == (None, False)
    assert (by["d-1"]["protected_until"], by["d-1"]["protected"]) == (date(2026, 5, 30), True)


def test_pipeline_filters(h: Harness) -> None:
    pipeline_scenario(h)
    assert pl(h) == ["d-1", "d-2", "d-3", "d-4", "d-5", "d-6"]  # by registration date
    assert pl(h, partner="acme") == ["d-1", "d-2", "d-4", "d-5"]
    assert pl(h, partner="beta") == ["d-3", "d-6"]
    assert pl(h, stage="new") == ["d-1", "d-3", "d-6"]
    assert pl(h, stage="trial") == ["d-2"]
    assert pl(h, stage="newsletter-subscription") == []
    assert pl(h, stage="closed-won") == ["d-4"]
    assert pl(h, stage="closed-lost") == ["d-5"]
    assert pl(h, review="pending") == ["d-1", "d-5"]
    assert pl(h, review="accepted") == ["d-2", "d-4"]
    assert pl(h, review="denied") == ["d-3", "d-6"]
    assert pl(h, partner="acme", review="accepted", stage="trial") == ["d-2"]
    assert pl(h, partner="beta", stage="new", review="denied") == ["d-3", "d-6"]
    with pytest.raises(Refused, match="no partner nobody"):  # not an empty pipeline
        pl(h, partner="nobody")
    # As of a date: only the deals registered by then.
    assert pl(h, as_of="2026-01-14") == ["d-1", "d-2"]
    assert pl(h, as_of="2026-01-09") == []
    assert pl(h, partner="beta", as_of="2026-01-31") == ["d-3"]


def test_pipeline_as_of_a_past_date_shows_the_deal_as_it_was(h: Harness) -> None:
    program(h)
    h.ok(deal("d-2", email="b@two.fi", on="2026-01-10"))
    h.ok(cmd("accept_deal", on="2026-01-20", deal="d-2"),
         cmd("move_deal", on="2026-02-01", actor="partner:acme", deal="d-2", stage="trial"))
    (r,) = h.ledger.deals("acme", None, None, day("2026-01-15"))
    assert (r["stage"], r["review"], r["protected_until"]) == ("new", "pending", date(2026, 4, 10))


# == 5-7. incremental catch-up, rebuilds ========================================================
def snapshot(h: Harness, names: tuple[str, ...] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every projection table (or of the named projections), by primary key:
    every version of it, with the positions between which it held."""
    out = {}
    for p in h.ledger.runner.projections:
        if names is not None and p.name not in names:
            continue
        for t in p.tables:
            versions = ("valid_from", "valid_to", "recorded_from", "recorded_to") if t.versioned else ()
            cols = ", ".join([*t.columns, *versions])
            out[t.name] = [tuple(r) for r in h.ledger.sql.all(
                f"SELECT {cols} FROM {t.name} ORDER BY {', '.join([*t.key, *versions[:1]])}")]
    return out


def status_of(h: Harness, name: str) -> Any:
    """One projection's status (position, version, rebuild in progress)."""
    return {s.name: s for s in h.ledger.runner.status()}[name]


def projection_names(h: Harness) -> list[str]:
    return [p.name for p in h.ledger.runner.projections]


def rebuild_all(h: Harness) -> None:
    for name in projection_names(h):
        assert h.ledger.runner.rebuild(name) is True


def assert_same(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> None:
    assert sorted(a) == sorted(b)
    for table in a:
        assert a[table] == b[table], table


def busy_batches() -> list[list[dict[str, Any]]]:
    """A little of everything every projection keeps, in four submissions."""
    return [
        [deal("d-1", email="a@one.fi", on="2026-01-10", name="One Oy"),
         deal("d-2", email="b@two.fi", on="2026-01-11", name="Two Oy"),
         deal("d-3", partner="beta", email="c@three.fi", on="2026-01-12", name="Three GmbH"),
         trial("t-1", "tr.fi", "2026-01-15", name="Trial Oy")],
        [cmd("accept_deal", on="2026-01-13", deal="d-1"),
         cmd("move_deal", on="2026-01-20", actor="partner:acme", deal="d-1", stage="trial"),
         cmd("deny_deal", on="2026-01-14", deal="d-3", reason="invalid-lead"),
         cmd("extend_trial", on="2026-01-20", actor="partner:acme", trial="t-1"),
         usage("tr.fi", "2026-01-21", users=2, framework="ISO 27001", progress=5, activities=4)],
        [cmd("win_deal", on="2026-02-01", actor="partner:acme", deal="d-1", billing="invoice", order_number="PO-9"),
         cmd("start_subscription", on="2026-02-02", subscription="s-1", customer_domain="one.fi", plan="pro",
             amount="10.30", currency="EUR", period="monthly", billing="invoice", order_number="PO-9", deal="d-1"),
         rate("acme", "0.175", "2026-02-15"),
         cmd("start_subscription", on="2026-02-10", subscription="s-2", customer_domain="tr.fi", plan="team",
             amount="59.99", currency="USD", period="yearly", billing="partner")],
        [renew("s-1", "2026-03-02"), refund("s-1", "5.15", "2026-03-05"),
         usage("one.fi", "2026-03-06", activities=9, users=4),
         cmd("lose_deal", on="2026-03-07", actor="partner:acme", deal="d-2", note="went elsewhere"),
         cancel("s-2", "2026-03-10"), refund("s-2", "59.99", "2026-03-11"),
         usage("tr.fi", "2026-03-12", progress=40, activities=1)],
    ]


def answers(h: Harness) -> list[Any]:
    """What users would read: a few queries over every projection."""
    on = day("2026-03-15")
    return [
        h.ledger.overview(None, None, on), h.ledger.attention(None, on), h.ledger.deals(None, None, None, on),
        h.ledger.statement("acme", "2026-02"), h.ledger.statement("acme", "2026-03"),
    ]


def test_catch_up_in_several_submissions_equals_one_rebuild(h: Harness) -> None:
    program(h)
    for batch in busy_batches():
        h.ok(*batch)  # each submission catches the read models up
    caught_up = snapshot(h)
    assert all(caught_up[t] for t in ("pl_deals", "ov_trials", "ov_subscriptions", "ov_usage", "st_lines"))
    before = answers(h)
    # Idempotent: catching up again applies nothing and changes nothing.
    assert h.ledger.runner.catch_up() == 0
    assert_same(snapshot(h), caught_up)
    assert all(s.position == h.head() and s.behind == 0 for s in h.ledger.runner.status())
    rebuild_all(h)
    assert_same(snapshot(h), caught_up)
    assert answers(h) == before
    # The figures themselves (acme: 0.20 until 2026-02-14, 0.175 from 2026-02-15).
    assert lines(statement(h, "acme", "2026-02")) == [
        ("s-1", "charge", 1, D("10.30"), D("0.20"), D("2.06"), PAY),    # 10.30 × 0.20 = 2.06
        ("s-2", "charge", 1, D("59.99"), D("0.20"), D("12.00"), NET),   # 59.99 × 0.20 = 11.998 → 12.00
    ]
    assert lines(statement(h, "acme", "2026-03")) == [
        ("s-1", "charge", 2, D("10.30"), D("0.175"), D("1.80"), PAY),   # 10.30 × 0.175 = 1.8025 → 1.80
        ("s-1", "refund", 2, D("-5.15"), D("0.175"), D("-0.90"), PAY),  # 5.15 × 0.175 = 0.90125 → 0.90
        ("s-2", "refund", 1, D("-59.99"), D("0.20"), D("-12.00"), NET),  # the charge's rate, 0.20
    ]


def test_catch_up_in_small_batches_across_command_boundaries_equals_a_rebuild(h: Harness) -> None:
    program(h)
    items = []
    for batch in busy_batches():
        items += [(len(items) + 1, build(line)) for line in batch]
    h.clock.advance(seconds=1)
    results = h.ledger.app.execute(items, h.ledger.actor)  # written, not yet projected
    assert all(r.status == "applied" for r in results), [r.as_dict() for r in results if r.status != "applied"]
    head = h.head()
    assert {s.position for s in h.ledger.runner.status()} == {4}  # program(): 2 partners + 2 command records
    assert h.ledger.runner.catch_up(batch=3) == head - 4  # every new event once, 3 per transaction
    assert {s.position for s in h.ledger.runner.status()} == {head}
    assert h.ledger.runner.catch_up(batch=3) == 0
    incremental = snapshot(h)
    for name in projection_names(h):
        assert h.ledger.runner.rebuild(name, batch=head + 10) is True  # one batch from position 0
    assert_same(snapshot(h), incremental)
    for name in projection_names(h):
        assert h.ledger.runner.rebuild(name, batch=1) is True  # one event per transaction
    assert_same(snapshot(h), incremental)


def test_interrupted_rebuild_keeps_live_tables_and_resumes(h: Harness) -> None:
    program(h)
    for batch in busy_batches()[:3]:
        h.ok(*batch)
    runner = h.ledger.runner
    assert h.head() > 20
    for name in projection_names(h):
        if name == "tokens":
            continue  # it reads only API-token events, none here: its first step reaches the head
        head = h.head()
        live = snapshot(h, (name,))
        before = answers(h)
        assert runner.rebuild(name, batch=5, stop_after=10) is False  # two batches of 5
        status = {s.name: s for s in runner.status()}
        assert status[name].rebuilding_at is not None and 0 < status[name].rebuilding_at < head
        assert status[name].position == head
        assert all(s.rebuilding_at is None for n, s in status.items() if n != name)
        # The live tables are untouched and the queries still answer from them.
        assert_same(snapshot(h, (name,)), live)
        assert answers(h) == before
        paused_at = status[name].rebuilding_at
        # Events keep arriving while the rebuild is paused: the live tables follow them.
        h.ok(usage("tr.fi", "2026-03-01", activities=1, users=len(name)),
             cmd("add_deal_note", on="2026-03-01", actor="partner:acme", deal="d-2", text=f"note {name}"))
        assert {s.name: s for s in runner.status()}[name].rebuilding_at == paused_at
        followed = snapshot(h, (name,))
        # Resumes where it stopped, catches up with the new events, swaps in.
        assert runner.rebuild(name) is True
        status = {s.name: s for s in runner.status()}
        assert status[name].rebuilding_at is None and status[name].position == h.head()
        resumed = snapshot(h, (name,))
        assert_same(resumed, followed)
        # ... and equals a clean rebuild.
        assert runner.rebuild(name) is True
        assert_same(snapshot(h, (name,)), resumed)
    # The rest of the ledger went on too.
    h.ok(*busy_batches()[3])
    caught_up = snapshot(h)
    rebuild_all(h)
    assert_same(snapshot(h), caught_up)


def test_interrupted_rebuild_resumes_in_a_new_process(h: Harness) -> None:
    from ledger.service import Ledger

    program(h)
    for batch in busy_batches():
        h.ok(*batch)
    caught_up = snapshot(h)
    assert h.ledger.runner.rebuild("statements", batch=4, stop_after=4) is False
    paused = status_of(h, "statements").rebuilding_at
    assert paused is not None and paused < h.head()
    # The process dies; another opens the ledger and finishes the rebuild.
    h.ledger.close()
    h.ledger = Ledger(h.url, "system", clock=h.clock)
    assert status_of(h, "statements").rebuilding_at == paused
    assert_same(snapshot(h), caught_up)
    assert h.ledger.runner.rebuild("statements") is True
    assert status_of(h, "statements").rebuilding_at is None
    assert_same(snapshot(h), caught_up)


def test_rebuild_stopped_after_its_first_batch_reports_not_done(h: Harness) -> None:
    program(h)
    h.ok(*busy_batches()[0])
    caught_up = snapshot(h)
    assert h.ledger.runner.rebuild("pipeline", stop_after=1) is False
    assert status_of(h, "pipeline").rebuilding_at is not None
    assert_same(snapshot(h), caught_up)
    assert h.ledger.runner.rebuild("pipeline") is True
    assert status_of(h, "pipeline").rebuilding_at is None
    assert_same(snapshot(h), caught_up)


def test_a_projection_whose_version_changed_is_rebuilt_by_catch_up(h: Harness) -> None:
    program(h)
    h.ok(*busy_batches()[0])
    caught_up = snapshot(h)
    h.ledger.sql.execute("DELETE FROM pl_deals")  # rows the old version's rules wrote, now stale
    pipeline = h.ledger.runner.get("pipeline")
    pipeline.version = pipeline.version + 1
    h.ledger.runner.catch_up()
    status = status_of(h, "pipeline")
    assert (status.version, status.position, status.rebuilding_at) == (pipeline.version, h.head(), None)
    assert_same(snapshot(h), caught_up)


# -- random command sequences ----------------------------------------------------------------
DOMAINS = ("c0.fi", "c1.fi", "c2.fi", "c3.fi")
PARTNERS = ("acme", "beta")
BILLINGS = ("credit-card", "invoice", "partner")
KINDS = ("register", "accept", "deny", "move", "note", "win", "lose", "trial", "extend",
         "subscribe", "renew", "cancel", "refund", "usage", "rate", "sweep")
CHOICE = st.tuples(st.sampled_from(KINDS), st.integers(0, 999), st.integers(0, 999), st.integers(0, 3))


class RandomCommands(RuleBasedStateMachine):
    """Random valid command sequences (a few refusals are fine: they write
    nothing), on a ledger `make` returns (set it before running); subclasses
    add the invariants."""

    make: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.h = type(self).make()
        program(self.h)
        self.today = date(2026, 1, 5)
        self.n = 0
        self.deals: dict[str, tuple[str, str]] = {}  # deal -> (partner, domain)
        self.won: dict[str, str] = {}                # deal -> domain
        self.trials: dict[str, str] = {}             # trial -> partner
        self.subs: list[str] = []

    def teardown(self) -> None:
        self.h.close()

    def line(self, kind: str, a: int, b: int, back: int) -> tuple[dict[str, Any], Any]:
        self.n += 1
        n = self.n
        on = (self.today - timedelta(days=back)).isoformat()
        deals, trials, subs = sorted(self.deals), sorted(self.trials), sorted(self.subs)
        if kind in ("accept", "deny", "move", "note", "win", "lose") and not deals:
            kind = "register"
        if kind == "extend" and not trials:
            kind = "trial"
        if kind in ("renew", "cancel", "refund") and not subs:
            kind = "subscribe"
        nothing = lambda: None  # noqa: E731
        if kind == "register":
            p, dom = PARTNERS[a % 2], DOMAINS[b % 4]
            return (deal(f"d-{n}", partner=p, email=f"x{n}@{dom}", on=on, name=f"{dom} Co"),
                    lambda: self.deals.__setitem__(f"d-{n}", (p, dom)))
        if kind in ("accept", "deny", "move", "note", "win", "lose"):
            d = deals[a % len(deals)]
            p, dom = self.deals[d]
            actor = f"partner:{p}"
            if kind == "accept":
                return cmd("accept_deal", on=on, deal=d), nothing
            if kind == "deny":
                return cmd("deny_deal", on=on, deal=d,
                           reason=("existing-customer", "invalid-lead", "duplicate")[b % 3]), nothing
            if kind == "move":
                return cmd("move_deal", on=on, actor=actor, deal=d,
                           stage=("newsletter-subscription", "trial")[b % 2]), nothing
            if kind == "note":
                return cmd("add_deal_note", on=on, actor=actor, deal=d, text=f"note {n}"), nothing
            if kind == "win":
                billing = BILLINGS[b % 3]
                order = {"order_number": f"PO-{n}"} if billing == "invoice" else {}
                return (cmd("win_deal", on=on, actor=actor, deal=d, billing=billing, **order),
                        lambda: self.won.__setitem__(d, dom))
            return cmd("lose_deal", on=on, actor=actor, deal=d, **({"note": "lost"} if b % 2 else {})), nothing
        if kind == "trial":
            p, dom = PARTNERS[a % 2], DOMAINS[b % 4]
            days = (None, 3, 14, 30)[a % 4]
            return (trial(f"t-{n}", dom, on, partner=p, **({} if days is None else {"days": days})),
                    lambda: self.trials.__setitem__(f"t-{n}", p))
        if kind == "extend":
            t = trials[a % len(trials)]
            return cmd("extend_trial", on=on, actor=f"partner:{self.trials[t]}", trial=t), nothing
        if kind == "subscribe":
            dom = DOMAINS[b % 4]
            won = [d for d in sorted(self.won) if self.won[d] == dom]
            billing = BILLINGS[(a // 7) % 3]
            extra: dict[str, Any] = {"order_number": f"PO-{n}"} if billing == "invoice" else {}
            if won and a % 3:
                extra["deal"] = won[a % len(won)]
            return (cmd("start_subscription", on=on, subscription=f"s-{n}", customer_domain=dom, plan="pro",
                        amount=("10.10", "10.30", "0.05", "99.99", "1200.00")[a % 5],
                        currency=("EUR", "USD")[b % 2], period=("monthly", "yearly")[a % 2],
                        billing=billing, **extra),
                    lambda: self.subs.append(f"s-{n}"))
        if kind in ("renew", "cancel", "refund"):
            s = subs[a % len(subs)]
            if kind == "renew":
                return renew(s, on), nothing
            if kind == "cancel":
                return cancel(s, on), nothing
            return refund(s, ("0.05", "1.00", "5.15")[b % 3], on), nothing
        if kind == "usage":
            fields: dict[str, Any] = {"activities": b % 4}
            if a % 2:
                fields.update(users=a % 40, framework=("ISO 27001", "NIS2", "GDPR")[a % 3])
            if a % 3:
                fields["progress"] = a % 101
            return usage((*DOMAINS, "c9.fi")[b % 5], on, **fields), nothing
        if kind == "rate":
            return rate(PARTNERS[a % 2], ("0.10", "0.15", "0.175", "0.20", "0.25")[b % 5], on), nothing
        return cmd("sweep", on=on, deals=deals, trials=trials), nothing

    @rule(choices=st.lists(CHOICE, min_size=1, max_size=3))
    def submit(self, choices: list[tuple[str, int, int, int]]) -> None:
        built = [self.line(*c) for c in choices]
        results = self.h.submit(*(line for line, _ in built))
        for (_, effect), result in zip(built, results):
            assert result.status in ("applied", "refused"), result.as_dict()
            if result.status == "applied":
                effect()

    @rule(days=st.integers(1, 45))
    def time_passes(self, days: int) -> None:
        self.today += timedelta(days=days)


def test_random_command_sequences_keep_incremental_equal_to_rebuild(fresh: Any, db_url: str) -> None:
    class Ledgers(RandomCommands):
        """After each step the incrementally maintained tables must equal a
        rebuild from position 0, row for row."""

        make = staticmethod(fresh)

        @invariant()
        def incremental_equals_rebuild(self) -> None:
            incremental = snapshot(self.h)
            rebuild_all(self.h)
            assert_same(snapshot(self.h), incremental)

    # Bounded for the suite (a PostgreSQL rebuild is DDL: ~0.1 s per projection, so fewer
    # examples there); LEDGER_TEST_STATEFUL_EXAMPLES=500 explores further.
    sqlite = db_url.startswith("sqlite")
    examples = int(os.environ.get("LEDGER_TEST_STATEFUL_EXAMPLES", "20" if sqlite else "5"))
    run_state_machine_as_test(Ledgers, settings=settings(
        max_examples=examples, stateful_step_count=15 if sqlite else 10, deadline=None, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    ))


def test_a_failed_transaction_writes_nothing_and_the_next_one_commits(db_url: str) -> None:
    """The read models' transactions (Sql.transaction) on either backend: a
    statement the database refuses or an error in Python rolls the whole
    transaction back, and the connection goes on. More failures than
    psycopg's threshold for preparing a statement (5 uses): on PostgreSQL a
    failed pipeline skips the PREPAREs queued after the error, and they must
    not be taken for done. Transactions do not nest."""
    sql = Database.from_url(db_url).connect()
    try:
        sql.execute("CREATE TABLE tx_probe (k TEXT PRIMARY KEY)")
        with sql.transaction():
            sql.execute("INSERT INTO tx_probe (k) VALUES (?)", ["a"])
        for i in range(7):
            with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
                with sql.transaction():
                    sql.execute("INSERT INTO tx_probe (k) VALUES (?)", [f"before{i}"])
                    sql.execute("INSERT INTO tx_probe (k) VALUES (?)", ["a"])  # taken
                    sql.executemany("INSERT INTO tx_probe (k) VALUES (?)", [[f"after{i}"]])
        with pytest.raises(ZeroDivisionError):
            with sql.transaction():
                sql.execute("INSERT INTO tx_probe (k) VALUES (?)", ["python"])
                1 / 0
        with pytest.raises((RuntimeError, sqlite3.OperationalError)):
            with sql.transaction(), sql.transaction():
                sql.execute("INSERT INTO tx_probe (k) VALUES (?)", ["nested"])
        with sql.transaction():
            sql.execute("INSERT INTO tx_probe (k) VALUES (?)", ["before"])
            sql.executemany("INSERT INTO tx_probe (k) VALUES (?)", [["after"]])
        assert sorted(r[0] for r in sql.all("SELECT k FROM tx_probe")) == ["a", "after", "before"]
    finally:
        sql.close()
