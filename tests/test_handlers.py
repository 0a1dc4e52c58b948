"""Handlers against an in-memory unit of work: no database, one command at a
time, each handler's accept and refuse paths. A refused command must leave
no event behind (the handlers check everything before the first event)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from uuid import UUID

import pytest

from ledger.aggregates import Customer, Deal, Refused, Subscription, Trial, aggregate_id
from ledger.aggregates.base import Context
from ledger.commands.order import InOrder
from ledger.commands.registry import COMMAND_TYPES
from ledger.unitofwork import UnitOfWork

DIGEST = "ab" * 32


class MemoryStore:
    """The aggregate cache's part a unit of work uses, over events kept in a dict."""

    def __init__(self) -> None:
        self.events: dict[UUID, list[Any]] = {}

    def load(self, agg_id: UUID) -> Any:
        agg = None
        for event in self.events.get(agg_id, []):
            agg = event.mutate(agg)
        return agg

    def preload(self, agg_ids: Any) -> dict[UUID, Any]:
        return {i: self.load(i) for i in agg_ids}

    def save(self, uow: UnitOfWork) -> int:
        saved = 0
        for agg in uow.pending():
            for event in agg.collect_events():
                self.events.setdefault(event.originator_id, []).append(event)
                saved += 1
        return saved


class World:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.n = 0

    def run(self, type_: str, data: dict[str, Any], day: str = "2026-01-10", actor: str = "vendor:manager") -> str | None:
        """Apply one command as the executor does (effective-date order
        included); returns its note; raises Refused after checking that it
        left no event."""
        self.n += 1
        typed = COMMAND_TYPES[type_].model.model_validate(data)
        at = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
        ctx = Context(f"c-{self.n}", actor, at, at)
        uow = UnitOfWork(self.store)  # type: ignore[arg-type]
        uow.begin()
        ordered = InOrder(uow, ctx)
        try:
            note = COMMAND_TYPES[type_].handler(ordered, typed, ctx)
        except Refused:
            uow.refused()
            assert uow.pending() == [], f"refused {type_} left events behind"
            raise
        ordered.advance()
        self.store.save(uow)
        return note

    def get(self, cls: type, key: str) -> Any:
        return self.store.load(aggregate_id(cls.KIND, key))

    def count(self) -> int:
        return sum(len(v) for v in self.store.events.values())

    def refused(self, match: str, type_: str, data: dict[str, Any], **kw: Any) -> None:
        before = self.count()
        with pytest.raises(Refused, match=match):
            self.run(type_, data, **kw)
        assert self.count() == before


PARTNER = "partner:acme"


@pytest.fixture
def w() -> World:
    world = World()
    for partner, domain in (("acme", "acme.fi"), ("other", "other.fi")):
        world.run("enroll_partner", {"partner": partner, "name": partner.title(), "domain": domain,
                                     "commission_rate": "0.20"})
    return world


def deal(w: World, key: str = "d-1", partner: str = "acme", email: str = "jane@example.fi",
         day: str = "2026-01-10") -> str | None:
    return w.run("register_deal", {"deal": key, "partner": partner, "customer_name": "Example Oy",
                                   "contact_name": "Jane", "customer_email": email}, day, f"partner:{partner}")


def won(w: World, key: str = "d-1") -> None:
    deal(w, key)
    w.run("accept_deal", {"deal": key}, "2026-01-11")
    w.run("win_deal", {"deal": key, "billing": "credit-card"}, "2026-01-12", PARTNER)


def subscription(w: World, key: str = "s-1", **data: Any) -> str | None:
    return w.run("start_subscription", {"subscription": key, "plan": "Pro", "currency": "EUR", "amount": "100.00",
                                        "period": "monthly", **data}, "2026-01-13")


def test_partners_enroll_once_and_change_their_rate(w: World) -> None:
    assert w.get(Customer, "acme.fi") is None and w.get(Deal, "x") is None
    w.refused("already exists", "enroll_partner",
              {"partner": "acme", "name": "A", "domain": "a.fi", "commission_rate": "0.1"})
    assert w.run("set_commission_rate", {"partner": "acme", "commission_rate": "0.25"}, "2026-02-01") \
        == "rate 0.25 from 2026-02-01"
    w.refused("no partner 'nobody'", "set_commission_rate", {"partner": "nobody", "commission_rate": "0.25"})


def test_register_deal_protects_a_new_customer(w: World) -> None:
    assert deal(w) is None
    assert w.get(Deal, "d-1").protects(w.get(Deal, "d-1").last_action)
    customer = w.get(Customer, "example.fi")
    assert (customer.protecting_deal, customer.protecting_partner) == ("d-1", "acme")


def test_register_deal_refusals_leave_nothing(w: World) -> None:
    w.refused("partner acme's own domain", "register_deal", {"deal": "d-9", "partner": "acme",
              "customer_name": "Us", "contact_name": "Me", "customer_email": "me@acme.fi"}, actor=PARTNER)
    assert w.get(Customer, "acme.fi") is None
    deal(w)
    w.refused("already protected by your deal d-1", "register_deal", {"deal": "d-2", "partner": "acme",
              "customer_name": "Example Oy", "contact_name": "Jo", "customer_email": "jo@example.fi"}, actor=PARTNER)
    w.refused("deal 'd-1' already exists", "register_deal", {"deal": "d-1", "partner": "acme",
              "customer_name": "New Oy", "contact_name": "Jo", "customer_email": "jo@new.fi"}, actor=PARTNER)


def test_another_partners_deal_is_denied_at_once_without_naming_it(w: World) -> None:
    deal(w)
    note = deal(w, "d-2", "other", "bob@example.fi", "2026-01-20")
    assert note == "denied at once: duplicate (protected by another partner until 2026-04-10)"
    assert w.get(Deal, "d-2").review == "denied"


def test_a_lapsed_protection_is_recorded_and_the_customer_taken(w: World) -> None:
    deal(w)
    assert deal(w, "d-2", "other", "bob@example.fi", "2026-05-01") is None
    assert w.get(Deal, "d-1").lapsed_on is not None
    assert w.get(Customer, "example.fi").protecting_deal == "d-2"


def test_a_refusal_after_finding_a_lapse_records_no_lapse(w: World) -> None:
    deal(w)  # protects example.fi until 2026-04-10; nothing recorded the lapse since
    w.refused("partner billing needs the partner", "start_subscription", {"subscription": "s-1", "plan": "Pro",
              "currency": "EUR", "amount": "100.00", "period": "monthly", "customer_domain": "example.fi",
              "billing": "partner"}, day="2026-05-01")
    assert w.get(Deal, "d-1").lapsed_on is None
    assert subscription(w, customer_domain="example.fi", billing="invoice", order_number="PO-1") == "partner acme"


def test_reviews_and_stages(w: World) -> None:
    deal(w)
    w.refused("may not|only", "accept_deal", {"deal": "d-1"}, actor="partner:other")
    w.run("accept_deal", {"deal": "d-1"}, "2026-01-11")
    w.refused("already reviewed: accepted", "deny_deal", {"deal": "d-1", "reason": "duplicate"}, day="2026-01-12")
    w.refused("already reviewed", "accept_deal", {"deal": "d-1"}, day="2026-01-12")
    w.run("move_deal", {"deal": "d-1", "stage": "trial"}, "2026-01-12", PARTNER)
    w.refused("stages only move forward", "move_deal", {"deal": "d-1", "stage": "new"}, day="2026-01-13", actor=PARTNER)
    w.run("add_deal_note", {"deal": "d-1", "text": "demo"}, "2026-01-13", PARTNER)
    w.refused("dated|before", "add_deal_note", {"deal": "d-1", "text": "late"}, day="2026-01-05", actor=PARTNER)
    w.refused("order number", "win_deal", {"deal": "d-1", "billing": "invoice"}, day="2026-01-14", actor=PARTNER)
    w.run("lose_deal", {"deal": "d-1", "note": "budget"}, "2026-01-14", PARTNER)
    w.refused("closed is final", "lose_deal", {"deal": "d-1"}, day="2026-01-15", actor=PARTNER)
    assert w.get(Deal, "d-1").stage == "closed-lost"


def test_win_needs_the_vendors_acceptance(w: World) -> None:
    deal(w)
    w.refused("the vendor must accept it", "win_deal", {"deal": "d-1", "billing": "credit-card"},
              day="2026-01-11", actor=PARTNER)
    w.run("deny_deal", {"deal": "d-1", "reason": "invalid-lead"}, "2026-01-11")
    assert w.get(Deal, "d-1").review == "denied"


def test_trials_start_extend_and_refuse(w: World) -> None:
    assert w.run("start_trial", {"trial": "t-1", "partner": "acme", "customer_name": "Example Oy",
                                 "customer_email": "jane@example.fi"}, "2026-01-10", PARTNER) == "runs until 2026-01-24"
    w.refused("protected by another partner until 2026-01-24", "start_trial", {"trial": "t-2", "partner": "other",
              "customer_name": "Example Oy", "customer_email": "bob@example.fi"}, day="2026-01-11",
              actor="partner:other")
    assert w.get(Trial, "t-2") is None
    assert w.run("extend_trial", {"trial": "t-1"}, "2026-01-12", PARTNER) == "runs until 2026-02-09"
    w.refused("extends once", "extend_trial", {"trial": "t-1"}, day="2026-01-13", actor=PARTNER)


def test_a_refused_trial_recognises_no_customer(w: World) -> None:
    w.refused("no partner 'nobody'", "start_trial", {"trial": "t-1", "partner": "nobody",
              "customer_name": "Example Oy", "customer_email": "jane@example.fi"}, actor="partner:nobody")
    assert w.get(Customer, "example.fi") is None


def test_subscriptions_from_a_won_deal_and_direct(w: World) -> None:
    deal(w)
    w.refused("win it before starting its subscription", "start_subscription", {"subscription": "s-1",
              "plan": "Pro", "currency": "EUR", "amount": "100.00", "period": "monthly", "deal": "d-1"},
              day="2026-01-13")
    w.run("accept_deal", {"deal": "d-1"}, "2026-01-11")
    w.run("win_deal", {"deal": "d-1", "billing": "credit-card"}, "2026-01-12", PARTNER)
    assert subscription(w, deal="d-1") == "partner acme"
    w.refused("already has active subscription s-1", "start_subscription", {"subscription": "s-2", "plan": "Pro",
              "currency": "EUR", "amount": "100.00", "period": "monthly", "deal": "d-1"}, day="2026-01-14")
    assert subscription(w, "s-3", customer_domain="direct.fi", billing="invoice", order_number="PO-1") \
        == "direct customer (no partner)"
    assert w.get(Customer, "direct.fi").is_paying


def test_a_refused_direct_subscription_recognises_no_customer(w: World) -> None:
    w.refused("partner billing needs the partner", "start_subscription", {"subscription": "s-1", "plan": "Pro",
              "currency": "EUR", "amount": "100.00", "period": "monthly", "customer_domain": "new.fi",
              "billing": "partner"}, day="2026-01-13")
    assert w.get(Customer, "new.fi") is None and w.get(Subscription, "s-1") is None


def test_renew_refund_cancel(w: World) -> None:
    won(w)
    subscription(w, deal="d-1")
    assert w.run("renew_subscription", {"subscription": "s-1"}, "2026-02-13").startswith("charge 2: 100.00 EUR")
    w.refused("exceeds what is left", "refund", {"subscription": "s-1", "amount": "500.00"}, day="2026-02-14")
    w.run("refund", {"subscription": "s-1", "amount": "10.00"}, "2026-02-14")
    w.run("cancel_subscription", {"subscription": "s-1"}, "2026-02-15")
    w.refused("already cancelled", "cancel_subscription", {"subscription": "s-1"}, day="2026-02-16")
    w.refused("was cancelled", "renew_subscription", {"subscription": "s-1"}, day="2026-03-13")
    assert not w.get(Customer, "example.fi").is_paying


def test_usage_and_sweep(w: World) -> None:
    w.run("report_usage", {"customer_domain": "example.fi", "users": 3}, "2026-01-10", "system")
    w.run("report_usage", {"customer_domain": "example.fi", "progress": 40}, "2026-01-10", "system")
    w.refused("at least one of", "report_usage", {"customer_domain": "example.fi"}, actor="system")
    deal(w)
    assert w.run("sweep", {"deals": ["d-1", "d-404"], "trials": []}, "2026-05-01", "system") \
        == "1 protections lapsed, 0 trials expired"


def test_statements_and_tokens(w: World) -> None:
    totals = {"EUR": {"amount": "0.00", "commission": "0.00"}}
    statement = {"partner": "acme", "month": "2026-01", "position": 5, "fingerprint": DIGEST, "totals": totals,
                 "lines": 0}
    assert w.run("issue_statement", statement, "2026-02-01", "vendor:finance") == f"sha256 {DIGEST}"
    w.run("issue_token", {"name": "ci", "actor": "system", "digest": DIGEST}, "2026-02-01", "system")
    w.refused("token|may not", "issue_token", {"name": "x", "actor": "system", "digest": DIGEST},
              actor="partner:acme")
    w.run("revoke_token", {"name": "ci"}, "2026-02-02", "system")
    w.refused("no token 'nope'", "revoke_token", {"name": "nope"}, actor="system")


def test_every_handler_is_exercised() -> None:
    import inspect
    import sys

    source = inspect.getsource(sys.modules[__name__])
    assert [t for t in COMMAND_TYPES if f'"{t}", ' not in source] == []
