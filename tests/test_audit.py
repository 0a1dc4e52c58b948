"""Audit for finance, on SQLite and PostgreSQL: known-at replay, frozen
statements with adjustments, statement verification, the hash chain against
SQL tampering, explanations, and export / import."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from ledger.aggregates import Refused
from ledger.audit import Audit
from ledger.db import Database
from ledger.service import Ledger

from .conftest import Harness, accept, cmd, deal, program

AS_OF = date(2026, 4, 15)


def subscription_program(h: Harness) -> None:
    h.clock.current = datetime(2026, 6, 1, tzinfo=timezone.utc)  # the ledger's clock: after the months issued
    program(h)
    h.ok(
        deal("d-1", on="2026-01-10"),
        accept("d-1", on="2026-01-12"),
        cmd("win_deal", on="2026-02-01", actor="partner:acme", deal="d-1", billing="credit-card"),
        cmd("start_subscription", on="2026-02-03", actor="vendor:manager", subscription="s-1",
            customer_domain="example.fi", plan="team", amount="390.00", currency="EUR", period="monthly",
            billing="credit-card", deal="d-1"),
    )


def queries(ledger: Ledger, known_at: Any = None) -> dict[str, Any]:
    return {
        "overview": ledger.overview("acme", None, AS_OF, known_at),
        "attention": ledger.attention(None, AS_OF, known_at),
        "deals": ledger.deals(None, None, None, AS_OF, known_at),
        "statement": ledger.statement("acme", "2026-03", known_at),
    }


def test_known_at_answers_equal_what_was_answered_then(h: Harness) -> None:
    subscription_program(h)
    h.ok(cmd("report_usage", on="2026-03-01", customer_domain="example.fi", users=4, framework="NIS2",
             progress=10, activities=5))
    moments, answers = [], []
    steps = [
        [cmd("renew_subscription", on="2026-03-03", actor="vendor:manager", subscription="s-1")],
        [cmd("set_commission_rate", on="2026-03-01", actor="vendor:manager", partner="acme", commission_rate="0.30"),
         deal("d-2", partner="beta", email="x@other.fi", on="2026-03-05")],
        [cmd("refund", on="2026-03-20", actor="vendor:manager", subscription="s-1", amount="90.00"),
         cmd("report_usage", on="2026-04-01", customer_domain="example.fi", users=9, progress=40, activities=7),
         cmd("accept_deal", actor="vendor:manager", deal="d-2")],
    ]
    for step in steps:
        h.ok(*step)
        moments.append(h.clock.current + timedelta(milliseconds=500))  # between this step and the next
        answers.append(queries(h.ledger))
    assert answers[0] != answers[1] != answers[2]  # each step changed what the queries say
    assert answers[1]["statement"]["lines"][0]["rate"] == Decimal("0.30")  # a back-dated rate re-prices March
    for moment, answer in zip(moments, answers):
        assert queries(h.ledger, moment) == answer


def test_issued_statement_is_frozen_and_late_charges_become_adjustments(h: Harness) -> None:
    subscription_program(h)
    h.ok(cmd("renew_subscription", on="2026-03-03", actor="vendor:manager", subscription="s-1"))
    audit = Audit(h.ledger)
    issued = audit.issue_statement("acme", "2026-03")
    march = h.ledger.statement("acme", "2026-03")
    assert issued["fingerprint"] == march["fingerprint"] and march["issued"]["position"] == issued["position"]
    assert [str(x["amount"]) for x in march["lines"]] == ["390.00"]
    with pytest.raises(Refused, match="already issued"):
        audit.issue_statement("acme", "2026-03")

    # Late facts for March: a refund dated in March and a rate change back-dated into March.
    h.ok(cmd("refund", on="2026-03-25", actor="vendor:manager", subscription="s-1", amount="100.00"),
         cmd("set_commission_rate", on="2026-03-01", actor="vendor:manager", partner="acme", commission_rate="0.25"))
    assert h.ledger.statement("acme", "2026-03") == march  # issued: never rewritten
    april = h.ledger.statement("acme", "2026-04")
    (adj,) = april["lines"]
    assert adj["adjustment"] == "2026-03" and adj["entry"] == "refund" and adj["amount"] == Decimal("-100.00")
    assert adj["rate"] == Decimal("0.25") and adj["commission"] == Decimal("-25.00")  # 0.25 x 100.00
    assert audit.verify_statement("acme/2026-03")["ok"]

    # Once April is issued too, a later March fact goes on to May.
    audit.issue_statement("acme", "2026-04")
    h.ok(cmd("refund", on="2026-03-26", actor="vendor:manager", subscription="s-1", amount="10.00"))
    assert [x["adjustment"] for x in h.ledger.statement("acme", "2026-05")["lines"]] == ["2026-03"]
    assert h.ledger.statement("acme", "2026-04")["lines"] == april["lines"]


def test_only_finance_and_system_issue_and_partners_do_not_audit(h: Harness) -> None:
    subscription_program(h)
    with Ledger(h.url, "partner:acme") as partner:
        with pytest.raises(Refused, match="may not run audits"):
            Audit(partner)
    with Ledger(h.url, "vendor:manager") as manager:
        with pytest.raises(Refused, match="may not issue statement"):
            Audit(manager).issue_statement("acme", "2026-02")
    with Ledger(h.url, "vendor:finance") as finance:
        assert Audit(finance).issue_statement("acme", "2026-02")["lines"] == 1


# -- tampering, directly in SQL ----------------------------------------------------------
class Tamper:
    def __init__(self, h: Harness) -> None:
        self.sql = Database.from_url(h.url).connect()
        self.pos = "notification_id" if self.sql.pg else "rowid"
        self.table = h.ledger.app.recorder.events_table_name

    def state(self, position: int) -> bytes:
        return bytes(self.sql.one(f"SELECT state FROM {self.table} WHERE {self.pos} = ?", [position])[0])

    def update(self, position: int, state: bytes) -> None:
        assert state != self.state(position), "the tampering must change the row"
        self.sql.execute(f"UPDATE {self.table} SET state = ? WHERE {self.pos} = ?", [state, position])

    def close(self) -> None:
        self.sql.close()


def charge_position(h: Harness, month: str = "2026-02") -> int:
    return h.ledger.statement("acme", month)["lines"][0]["position"]


def test_verify_statement_fails_after_an_event_row_is_altered(h: Harness) -> None:
    subscription_program(h)
    audit = Audit(h.ledger)
    audit.issue_statement("acme", "2026-02")
    assert audit.verify_statement("acme/2026-02")["ok"]
    t = Tamper(h)
    position = charge_position(h)
    t.update(position, t.state(position).replace(b'"390.00"', b'"39.00"'))
    t.close()
    result = audit.verify_statement("acme/2026-02")
    assert not result["ok"] and result["replayed_fingerprint"] != result["recorded_fingerprint"]
    bad = audit.verify()
    assert (bad["ok"], bad["first_bad_position"]) == (False, position)


@pytest.mark.parametrize("attack", ["update", "delete", "swap", "insert"])
def test_chain_verification_names_the_first_bad_position(h: Harness, attack: str) -> None:
    subscription_program(h)
    audit = Audit(h.ledger)
    seal = audit.seal()
    assert audit.verify()["ok"] and audit.verify(seal["digest"])["ok"]
    t = Tamper(h)
    head = h.head()
    if attack == "update":
        t.update(1, t.state(1).replace(b"Acme", b"Acne"))
        expected = 1
    elif attack == "delete":
        t.sql.execute(f"DELETE FROM {t.table} WHERE {t.pos} = ?", [7])
        expected = 7
    elif attack == "swap":
        a, b = t.state(3), t.state(6)
        t.update(3, b)
        t.update(6, a)
        expected = 3
    else:
        row = t.sql.one(f"SELECT originator_id, originator_version, topic, state FROM {t.table} WHERE {t.pos} = ?",
                        [head])
        t.sql.execute(f"INSERT INTO {t.table} (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)",
                      [row[0], row[1] + 1, row[2], row[3]])
        expected = head + 1
    t.close()
    result = audit.verify()
    assert (result["ok"], result["first_bad_position"]) == (False, expected), result
    assert not audit.verify(seal["digest"])["ok"]


def test_a_rewritten_chain_is_caught_by_a_digest_kept_elsewhere(h: Harness) -> None:
    subscription_program(h)
    audit = Audit(h.ledger)
    seal = audit.seal()
    t = Tamper(h)
    t.update(1, t.state(1).replace(b"Acme", b"Acne"))
    t.close()
    # The intruder also rebuilds the chain table so that it agrees with the change.
    h.ledger.runner.rebuild("chain")
    assert audit.verify()["ok"]
    result = audit.verify(seal["digest"])
    assert not result["ok"] and "digest" in result["problem"]


# -- explain, export, import ------------------------------------------------------------
def test_explain_lists_the_events_behind_a_line_a_row_and_an_item(h: Harness) -> None:
    subscription_program(h)
    audit = Audit(h.ledger)
    position = charge_position(h)
    line = audit.explain_line(position)
    assert [e["type"] for e in line] == ["Partner.Enrolled", "Subscription.Started"]
    assert line[-1]["position"] == position and line[-1]["actor"] == "vendor:manager"
    assert line[-1]["data"]["amount"] == Decimal("390.00")
    row = audit.explain_customer("example.fi", AS_OF)
    assert {"Customer.Recognised", "Deal.Registered", "Deal.ClosedWon", "Subscription.Started"} <= {e["type"] for e in row}
    assert all(e["command_id"] and e["recorded"] and e["effective"] for e in row)
    item = audit.explain_item("renewal-due", "s-1", date(2026, 2, 20))
    assert [e["type"] for e in item] == ["Subscription.Started"]


def test_export_then_import_recreates_the_same_ledger(h: Harness, tmp_path: Any) -> None:
    subscription_program(h)
    h.ok(cmd("renew_subscription", on="2026-03-03", actor="vendor:manager", subscription="s-1"))
    source = Audit(h.ledger)
    source.issue_statement("acme", "2026-02")
    lines = [__import__("json").dumps(r) for r in source.export()]
    assert len(lines) == h.head()
    target_url = f"sqlite:///{tmp_path / 'restored.db'}"
    with Ledger(target_url, "vendor:finance") as restored:
        target = Audit(restored)
        assert target.import_(lines) == len(lines)
        restored.runner.catch_up()
        assert target.seal()["digest"] == source.seal()["digest"]
        assert target.verify(source.seal()["digest"])["ok"]
        assert restored.statement("acme", "2026-03") == h.ledger.statement("acme", "2026-03")
        assert target.verify_statement("acme/2026-02")["ok"]
        with pytest.raises(Refused, match="empty database"):
            target.import_(lines[:1])
