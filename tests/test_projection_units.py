"""Each projection on its own: domain events made by the handlers against an
in-memory unit of work (test_handlers.World), applied through the
projection's own apply and flush into an in-memory SQLite database, then read
back through its query functions. No application, no event store, no runner:
a failure here points at one projection's rule, not at the machinery.

Expected figures are written by hand, with their arithmetic in a comment."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from ledger.aggregates import Deal
from ledger.db import Database, Sql
from ledger.projections import attention, overview, pipeline, statements, tokens
from ledger.projections.base import Known, Projection, Reader
from ledger.settings import Attention
from ledger.timeline import recorded_text
from ledger.unitofwork import UnitOfWork

from .test_handlers import DIGEST, PARTNER, MemoryStore, World, deal, subscription, won


class LoggedStore(MemoryStore):
    """A MemoryStore that also keeps every saved event in ledger order."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Any] = []

    def save(self, uow: UnitOfWork) -> int:
        before = {k: len(v) for k, v in self.events.items()}
        saved = super().save(uow)
        for agg, events in self.events.items():
            self.log.extend(events[before.get(agg, 0):])
        return saved


class Fed:
    """Projections' tables in one in-memory SQLite database, fed the world's
    events past what they were fed before: positions are 1-based indexes in
    the world's log, as the notification log numbers them."""

    def __init__(self, world: World, *projections: Projection) -> None:
        self.world, self.projections, self.fed = world, projections, 0
        self.sql: Sql = Database("sqlite:///:memory:", "sqlite", path=":memory:").connect()
        for p in projections:
            p.create(self.sql)

    def feed(self) -> None:
        """Apply the new events in one batch per projection, then flush (as Runner._apply does)."""
        log = self.world.store.log
        with self.sql.transaction():
            for p in self.projections:
                w = p.writer(self.sql)
                for position, event in enumerate(log[self.fed:], start=self.fed + 1):
                    if p.sees(event):
                        w.position, w.recorded = position, recorded_text(event.timestamp)
                        p.apply(w, event, SimpleNamespace(id=position))
                w.flush()
        self.fed = len(log)

    def recorded(self, kind: type) -> str:
        """The recorded time of the (last) event of class `kind`."""
        return recorded_text([e for e in self.world.store.log if isinstance(e, kind)][-1].timestamp)


@pytest.fixture
def w() -> World:
    world = World()
    world.store = LoggedStore()
    world.run("enroll_partner", {"partner": "acme", "name": "Acme", "domain": "acme.fi", "commission_rate": "0.20"})
    return world


def test_pipeline_shows_a_registered_then_accepted_deal(w: World) -> None:
    fed = Fed(w, pipeline.Pipeline())
    deal(w)  # registered 2026-01-10
    fed.feed()
    w.run("accept_deal", {"deal": "d-1"}, "2026-01-11")
    fed.feed()  # a second batch: the accept closes the stored version
    [row] = pipeline.deals(fed.sql, date(2026, 1, 20), partner="acme")
    assert (row["deal"], row["customer_domain"], row["stage"], row["review"]) == \
        ("d-1", "example.fi", "new", "accepted")
    # Protection: 90 days from the last action, the registration on 2026-01-10:
    # 21 days to Jan 31, +28 (Feb) = 49, +31 (Mar) = 80, +10 = 2026-04-10.
    assert (row["last_action"], row["protected_until"], row["protected"]) == (date(2026, 1, 10), date(2026, 4, 10), True)
    # As the deal stood before its review day: still pending.
    [before] = pipeline.deals(fed.sql, date(2026, 1, 10))
    assert before["review"] == "pending"
    assert pipeline.deals(fed.sql, date(2026, 1, 9)) == []  # not registered yet
    assert pipeline.deals(fed.sql, date(2026, 1, 20), partner="other") == []


def test_pipeline_versions_answer_what_was_known_before_a_change(w: World) -> None:
    fed = Fed(w, pipeline.Pipeline())
    deal(w)
    w.run("accept_deal", {"deal": "d-1"}, "2026-01-11")
    w.run("win_deal", {"deal": "d-1", "billing": "credit-card"}, "2026-01-12", PARTNER)
    fed.feed()  # one batch: each change closes the version before it in memory
    day = date(2026, 1, 20)
    live = pipeline.deals(fed.sql, day)[0]
    assert (live["stage"], live["review"], live["billing"], live["protected_until"]) == \
        ("closed-won", "accepted", "credit-card", None)
    as_registered = pipeline.deals(Reader(fed.sql, Known(fed.recorded(Deal.Registered))), day)[0]
    assert (as_registered["stage"], as_registered["review"], as_registered["billing"]) == ("new", "pending", None)
    as_accepted = pipeline.deals(Reader(fed.sql, Known(fed.recorded(Deal.Accepted))), day)[0]
    assert (as_accepted["stage"], as_accepted["review"]) == ("new", "accepted")
    # The handlers record each event at its command's day (World.run): nothing was known on 2026-01-09.
    assert pipeline.deals(Reader(fed.sql, Known.at(datetime(2026, 1, 9, tzinfo=timezone.utc))), day) == []


def test_statement_line_of_a_subscription_charge_has_its_commission_rounded(w: World) -> None:
    fed = Fed(w, statements.Statements())
    won(w)  # d-1 for example.fi, partner acme at 0.20
    subscription(w, deal="d-1", amount="33.33")  # started 2026-01-13, card billing
    fed.feed()
    st = statements.statement(fed.sql, "acme", "2026-01")
    [line] = st["lines"]
    # 33.33 * 0.20 = 6.666 -> 6.67 (half up to the cent); the vendor keeps 33.33 - 6.67 = 26.66.
    assert (line["entry"], line["subscription"], line["day"], line["customer_domain"]) == \
        ("charge", "s-1", date(2026, 1, 13), "example.fi")
    assert (line["amount"], line["rate"], line["commission"], line["vendor_share"]) == \
        (Decimal("33.33"), Decimal("0.20"), Decimal("6.67"), Decimal("26.66"))
    assert (line["kind"], line["payable_to_partner"]) == ("commission-payable", Decimal("6.67"))
    assert st["totals"]["EUR"]["commission"] == Decimal("6.67")
    assert statements.statement(fed.sql, "acme", "2026-02")["lines"] == []


def test_tokens_list_one_issued_then_revoked(w: World) -> None:
    fed = Fed(w, tokens.Tokens())
    w.run("issue_token", {"name": "ci", "actor": "vendor:manager", "digest": DIGEST}, "2026-01-10")
    w.run("issue_token", {"name": "kept", "actor": PARTNER, "digest": "cd" * 32}, "2026-01-10")
    fed.feed()
    assert [t["revoked_at"] for t in tokens.tokens(fed.sql)] == [None, None]
    w.run("revoke_token", {"name": "ci"}, "2026-01-11")
    fed.feed()
    ci, kept = tokens.tokens(fed.sql)
    assert (ci["name"], ci["actor"], ci["revoked_by"]) == ("ci", "vendor:manager", "vendor:manager")
    assert ci["revoked_at"] is not None and ci["revoked_at"] >= ci["issued_at"]
    assert (kept["name"], kept["actor"], kept["revoked_at"]) == ("kept", PARTNER, None)
    assert tokens.name_of(fed.sql, DIGEST) == "ci"  # the projection narrows; the aggregate says it is revoked
    assert tokens.name_of(fed.sql, "ef" * 32) is None


def test_overview_shows_a_running_trial_and_then_an_active_subscription(w: World) -> None:
    fed = Fed(w, overview.Overview())
    w.run("start_trial", {"trial": "t-1", "partner": "acme", "customer_name": "Trial Oy",
                          "customer_email": "it@trial.fi"}, "2026-01-10", PARTNER)
    subscription(w, "s-2", customer_domain="trial.fi", amount="50.00", billing="credit-card")  # 2026-01-13
    fed.feed()
    assert overview.customers(fed.sql, date(2026, 1, 9), None) == []
    [on_trial] = overview.customers(fed.sql, date(2026, 1, 11), None)
    assert (on_trial["customer"], on_trial["domain"], on_trial["partner"], on_trial["status"]) == \
        ("Trial Oy", "trial.fi", "acme", "trial")
    [subscribed] = overview.customers(fed.sql, date(2026, 1, 14), "acme")
    assert subscribed["status"] == "active"
    assert [s["subscription"] for s in subscribed["subscriptions"]] == ["s-2"]
    [t] = overview.trials(fed.sql, date(2026, 1, 11))
    assert (t["trial"], t["started_on"], t["running"]) == ("t-1", date(2026, 1, 10), True)


def test_attention_flags_a_deal_waiting_for_review_until_it_is_reviewed(w: World) -> None:
    fed = Fed(w, pipeline.Pipeline(), overview.Overview())
    deal(w)  # registered 2026-01-10
    fed.feed()
    settings = Attention()
    days = settings.deal_pending_days  # 5: flagged once registered more than 5 days before the day asked
    waiting = attention.items(fed.sql, date(2026, 1, 10 + days + 1), settings=settings)
    assert [(i["code"], i["subject"], i["partner"], i["domain"]) for i in waiting] == \
        [("deal-pending-review", "d-1", "acme", "example.fi")]
    assert waiting[0]["reason"] == f"deal for example.fi pending review for {days + 1} days"
    assert attention.items(fed.sql, date(2026, 1, 10 + days), settings=settings) == []
    w.run("accept_deal", {"deal": "d-1"}, "2026-01-11")
    fed.feed()
    codes = {i["code"] for i in attention.items(fed.sql, date(2026, 1, 10 + days + 1), settings=settings)}
    assert "deal-pending-review" not in codes
