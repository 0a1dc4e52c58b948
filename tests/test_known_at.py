"""Known-at is a filter, not a replay: every query asked `--known-at` a
moment answers exactly what it answered at that moment, on SQLite and on
PostgreSQL (SPEC "Audit": replay the whole ledger as known at a past recorded
time, exactly). The answers are captured after each submission, then asked
again at the end with known-at = each capture's moment."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.stateful import invariant, rule, run_state_machine_as_test

from ledger.aggregates import NotFound, Refused
from ledger.service import Ledger

from .conftest import Harness, accept, cmd, deal, program
from .test_projections import RandomCommands, cancel, rate, refund, renew, trial, usage

MONTHS = ("2026-01", "2026-02", "2026-03", "2026-04")


def answer(query: Callable[[], Any]) -> Any:
    """A query's answer, or its refusal (a partner or deal not known yet is one)."""
    try:
        return query()
    except (NotFound, Refused) as e:
        return (type(e).__name__, str(e))


def every_query(ledger: Ledger, as_of: date, deals: list[str], known_at: datetime | None = None) -> dict[str, Any]:
    """Every query the ledger answers, as of a day, live or as known at a moment."""
    out: dict[str, Any] = {
        "overview": answer(lambda: ledger.overview(None, None, as_of, known_at)),
        "overview acme, attention": answer(lambda: ledger.overview("acme", "attention", as_of, known_at)),
        "overview gamma": answer(lambda: ledger.overview("gamma", None, as_of, known_at)),
        "attention": answer(lambda: ledger.attention(None, as_of, known_at)),
        "attention beta": answer(lambda: ledger.attention("beta", as_of, known_at)),
        "deals": answer(lambda: ledger.deals(None, None, None, as_of, known_at)),
        "deals acme, trial stage": answer(lambda: ledger.deals("acme", "trial", None, as_of, known_at)),
        "subscriptions": answer(lambda: ledger.subscriptions(None, None, as_of, known_at)),
        "subscriptions beta, active": answer(lambda: ledger.subscriptions("beta", "active", as_of, known_at)),
        "trials": answer(lambda: ledger.trials(None, as_of, known_at)),
        "trials acme": answer(lambda: ledger.trials("acme", as_of, known_at)),
        "partners": answer(lambda: ledger.partners(as_of, known_at)),
    }
    for partner in ("acme", "beta"):
        for month in MONTHS:
            out[f"statement {partner} {month}"] = answer(lambda: ledger.statement(partner, month, known_at))
    for d in deals:
        out[f"deal card {d}"] = answer(lambda: ledger.deal_card(d, as_of, known_at))
    return out


def assert_known_at_equals_then(h: Harness, captured: list[tuple[datetime, date, list[str], dict[str, Any]]]) -> None:
    for moment, as_of, deals, then in captured:
        now = every_query(h.ledger, as_of, deals, moment)
        for query in then:
            assert now[query] == then[query], (moment, query)


STEPS: list[list[dict[str, Any]]] = [
    [deal("d-1", on="2026-01-10"), usage("example.fi", "2026-01-10", users=2, framework="NIS2", activities=3)],
    [accept("d-1", on="2026-01-12"), trial("t-1", "example.fi", "2026-01-12", days=14)],
    [cmd("move_deal", on="2026-01-13", actor="partner:acme", deal="d-1", stage="trial"),
     usage("example.fi", "2026-01-10", users=5, progress=20, activities=2)],  # the same day reported again
    [cmd("extend_trial", on="2026-01-20", actor="partner:acme", trial="t-1"),
     deal("d-2", partner="beta", email="x@other.fi", on="2026-01-21", name="Other Oy"),
     # One row changed twice in one submission: the first version is closed before it is written.
     cmd("add_deal_note", on="2026-01-22", actor="partner:acme", deal="d-1", text="demo booked"),
     cmd("add_deal_note", on="2026-01-23", actor="partner:acme", deal="d-1", text="demo held")],
    [cmd("win_deal", on="2026-02-01", actor="partner:acme", deal="d-1", billing="credit-card"),
     cmd("deny_deal", on="2026-02-01", deal="d-2", reason="invalid-lead")],
    [cmd("start_subscription", on="2026-02-03", subscription="s-1", customer_domain="example.fi", plan="team",
         amount="390.00", currency="EUR", period="monthly", billing="credit-card", deal="d-1"),
     deal("d-3", partner="beta", email="y@third.fi", on="2026-02-03", name="Third Oy")],
    [renew("s-1", "2026-03-03"), rate("acme", "0.30", "2026-03-01"),
     cmd("enroll_partner", on="2026-03-03", partner="gamma", name="Gamma", domain="gamma.fi",
         commission_rate="0.10")],
    [cmd("add_deal_note", on="2026-03-04", actor="partner:beta", deal="d-3", text="called"),
     refund("s-1", "90.00", "2026-03-20")],
    [cmd("sweep", on="2026-06-10", deals=["d-3"], trials=["t-1"]), cancel("s-1", "2026-04-10")],
]


def test_every_query_known_at_equals_what_it_answered_then(h: Harness) -> None:
    program(h)
    deals = ["d-1", "d-2", "d-3"]
    captured = []
    for step in STEPS:
        h.ok(*step)
        for as_of in (date(2026, 4, 15), date(2026, 6, 15)):
            captured.append((h.clock.current + timedelta(milliseconds=500), as_of, deals,
                             every_query(h.ledger, as_of, deals)))
    # Each step changed some answer, and the queries saw every kind of change.
    assert all(a[3] != b[3] for a, b in zip(captured[::2], captured[2::2]))
    assert captured[0][3]["overview gamma"][0] == "NotFound" and isinstance(captured[-1][3]["overview gamma"], list)
    assert captured[-3][3]["deal card d-3"]["protected_until"] == date(2026, 6, 2)
    assert captured[-1][3]["deal card d-3"]["protected_until"] is None  # lapsed by the sweep
    assert_known_at_equals_then(h, captured)
    # Before anything was recorded: nothing was known.
    assert every_query(h.ledger, as_of, [], datetime(2000, 1, 1).astimezone())["deals"] == []


def test_random_sequences_known_at_equals_what_was_answered_then(fresh: Any, db_url: str) -> None:
    class KnownAt(RandomCommands):
        """After each step, every query's answer is kept with the moment; at
        each step, every kept answer is asked again as known at its moment."""

        make = staticmethod(fresh)
        captured: list[tuple[datetime, date, list[str], dict[str, Any]]]

        @rule()
        def capture(self) -> None:
            if not hasattr(self, "captured"):
                self.captured = []
            deals = sorted(self.deals)[:4]
            self.captured.append((self.h.clock.current + timedelta(milliseconds=500), self.today, deals,
                                  every_query(self.h.ledger, self.today, deals)))
            self.h.clock.advance(seconds=1)

        @invariant()
        def known_at_equals_then(self) -> None:
            assert_known_at_equals_then(self.h, getattr(self, "captured", []))

    sqlite = db_url.startswith("sqlite")
    examples = int(os.environ.get("LEDGER_TEST_STATEFUL_EXAMPLES", "10" if sqlite else "3"))
    run_state_machine_as_test(KnownAt, settings=settings(
        max_examples=examples, stateful_step_count=12 if sqlite else 8, deadline=None, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    ))
