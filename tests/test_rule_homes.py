"""Each business rule has one home that every caller uses: changing the
protection length or the standard trial length is one edit, and the Deal or
Trial, the pipeline, the overview, attention, the sweep and audit explain all
follow it (issue 11). Shown by patching the one constant and asking each."""

from __future__ import annotations

from datetime import date

import pytest

from ledger.aggregates import Deal, Trial
from ledger.aggregates import deal as deal_rules
from ledger.aggregates import trial as trial_rules
from ledger.audit import Audit

from .conftest import Harness, cmd, deal, program


def codes(h: Harness, as_of: date) -> list[tuple[str, str]]:
    return [(i["code"], i["subject"]) for i in h.ledger.attention(None, as_of)]


def test_the_protection_length_is_one_edit(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deal_rules, "PROTECTION_DAYS", 60)
    program(h)
    h.ok(deal("d-1", on="2026-01-10"), cmd("accept_deal", on="2026-01-10", actor="vendor:manager", deal="d-1"))
    # 2026-01-10 + 60 days = 2026-03-11 (with 90: 2026-04-10).
    assert h.ledger.app.get(Deal, "d-1").protected_until == date(2026, 3, 11)
    (row,) = h.ledger.deals(None, None, None, date(2026, 3, 1))
    assert row["protected_until"] == date(2026, 3, 11) and row["protected"]
    assert h.ledger.deal_card("d-1", date(2026, 3, 1))["protected_until"] == date(2026, 3, 11)
    # Lapses within the 14-day window on 2026-03-01 (10 days left); with 90 it would be 40 days away.
    assert ("protection-lapsing", "d-1") in codes(h, date(2026, 3, 1))
    assert ("protection-lapsing", "d-1") not in codes(h, date(2026, 2, 20))  # 19 days left
    assert Audit(h.ledger).explain_item("protection-lapsing", "d-1", date(2026, 3, 1))[0]["type"] == "Deal.Registered"
    assert h.ledger.sweep(on=date(2026, 3, 10)).message == "0 protections lapsed, 0 trials expired"
    assert h.ledger.sweep(on=date(2026, 3, 11)).message == "1 protections lapsed, 0 trials expired"
    (row,) = h.ledger.deals(None, None, None, date(2026, 3, 11))
    assert row["lapsed_on"] == date(2026, 3, 11) and row["protected_until"] is None


def test_the_standard_trial_length_is_one_edit(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trial_rules, "STANDARD_DAYS", 10)
    program(h)
    h.ok(cmd("start_trial", on="2026-02-01", actor="partner:acme", trial="t-1", partner="acme",
             customer_name="Tee Oy", customer_email="it@t.fi"))
    # 2026-02-01 + 10 days = 2026-02-11 (with 14: 2026-02-15).
    assert h.ledger.app.get(Trial, "t-1").ends_on == date(2026, 2, 11)
    status = lambda day: h.ledger.overview("acme", None, day)[0]["status"]  # noqa: E731
    assert (status(date(2026, 2, 10)), status(date(2026, 2, 11))) == ("trial", "closed")
    (item,) = [i for i in h.ledger.attention("acme", date(2026, 2, 4)) if i["code"] == "trial-ending"]
    assert item["reason"] == "trial for t.fi ends on 2026-02-11 (in 7 days)"
    assert ("trial-inactive", "t-1") in codes(h, date(2026, 2, 10))
    assert [e["type"] for e in Audit(h.ledger).explain_item("trial-inactive", "t-1", date(2026, 2, 10))] == ["Trial.Started"]
    assert h.ledger.sweep(on=date(2026, 2, 10)).message == "0 protections lapsed, 0 trials expired"
    assert h.ledger.sweep(on=date(2026, 2, 11)).message == "0 protections lapsed, 1 trials expired"
