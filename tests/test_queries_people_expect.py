"""Queries finance and partner managers expect, and messages they understand:
the deal card, subscriptions, a partner's own default, unknown partners
refused, and errors that name what the user typed with the right exit status
(2: never valid input; 1: refused by the ledger's state or authority). On
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.aggregates import Refused
from ledger.commands.models import Malformed, build
from ledger.service import Ledger
from tests.conftest import Harness, cmd, deal, program
from tests.test_cli import Cli, assert_one_line_error


def sold(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", note="Met at the fair"),
         cmd("accept_deal", on="2026-01-11", deal="d-1"),
         cmd("add_deal_note", on="2026-01-15", actor="partner:acme", deal="d-1", text="Wants the yearly plan"),
         cmd("win_deal", on="2026-01-20", actor="partner:acme", deal="d-1", billing="invoice", order_number="PO-77"),
         cmd("start_subscription", on="2026-02-01", subscription="s-1", customer_domain="example.fi", plan="Pro",
             amount="1200", currency="EUR", period="monthly", billing="invoice", order_number="PO-77", deal="d-1"),
         cmd("renew_subscription", on="2026-03-01", subscription="s-1"),
         deal("d-2", partner="beta", email="joe@other.de", name="Other GmbH"),
         cmd("accept_deal", on="2026-01-11", deal="d-2"),
         cmd("win_deal", on="2026-01-20", actor="partner:beta", deal="d-2", billing="credit-card"),
         cmd("start_subscription", on="2026-02-01", subscription="s-2", customer_domain="other.de", plan="Basic",
             amount="50.00", currency="EUR", period="yearly", billing="credit-card", deal="d-2"),
         cmd("cancel_subscription", on="2026-02-10", subscription="s-2"))


def test_deal_card_has_contact_notes_and_history(h: Harness) -> None:
    sold(h)
    card = h.ledger.deal_card("d-1", date(2026, 3, 1))
    assert {k: card[k] for k in ("deal", "partner", "customer", "contact_name", "customer_email",
                                 "customer_domain", "stage", "review", "billing", "order_number")} == {
        "deal": "d-1", "partner": "acme", "customer": "Example Oy", "contact_name": "Jane Doe",
        "customer_email": "jane@example.fi", "customer_domain": "example.fi", "stage": "closed-won",
        "review": "accepted", "billing": "invoice", "order_number": "PO-77"}
    assert card["deny_reason"] is None and card["protected_until"] is None  # closed: no protection
    assert card["notes"] == [{"day": date(2026, 1, 10), "actor": "partner:acme", "text": "Met at the fair"},
                             {"day": date(2026, 1, 15), "actor": "partner:acme", "text": "Wants the yearly plan"}]
    assert [e["type"].split(".")[-1] for e in card["history"]] == ["Registered", "Accepted", "NoteAdded", "ClosedWon"]
    positions = [e["position"] for e in card["history"]]
    assert positions == sorted(positions)
    # As it stood on a past day: open, protected, one note.
    before = h.ledger.deal_card("d-1", date(2026, 1, 12))
    assert before["stage"] == "new" and before["protected_until"] == date(2026, 4, 10) and len(before["notes"]) == 1
    with pytest.raises(Refused, match="no deal d-9"):
        h.ledger.deal_card("d-9", date(2026, 3, 1))


def test_deal_card_as_known_at_a_recorded_time(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", note="Met at the fair"))
    known = h.clock.advance(seconds=1)  # the next submit is recorded after this instant
    h.ok(cmd("add_deal_note", on="2026-01-15", actor="partner:acme", deal="d-1", text="Wants the yearly plan"),
         cmd("accept_deal", on="2026-01-16", deal="d-1"))
    now = h.ledger.deal_card("d-1", date(2026, 3, 1))
    then = h.ledger.deal_card("d-1", date(2026, 3, 1), known)
    assert (len(now["notes"]), now["review"]) == (2, "accepted")
    assert (len(then["notes"]), then["review"], len(then["history"])) == (1, "pending", 1)
    assert then == h.ledger.deal_card("d-1", date(2026, 3, 1), known.astimezone(timezone(timedelta(hours=-5))))


def test_partners_see_only_their_own_deal_cards(h: Harness) -> None:
    sold(h)
    with Ledger(h.url, "partner:acme", clock=h.clock) as acme, Ledger(h.url, "partner:beta", clock=h.clock) as beta:
        assert acme.deal_card("d-1", date(2026, 3, 1))["customer"] == "Example Oy"
        with pytest.raises(Refused, match="no deal d-1"):
            beta.deal_card("d-1", date(2026, 3, 1))


def test_subscriptions_rows_status_and_periods(h: Harness) -> None:
    sold(h)
    rows = h.ledger.subscriptions(None, None, date(2026, 3, 5))
    assert [(r["subscription"], r["partner"], r["status"]) for r in rows] == [("s-1", "acme", "active"),
                                                                             ("s-2", "beta", "cancelled")]
    s1 = rows[0]
    assert s1 == {
        "subscription": "s-1", "partner": "acme", "deal": "d-1", "customer_domain": "example.fi", "plan": "Pro",
        "amount": Decimal("1200"), "currency": "EUR", "period": "monthly", "billing": "invoice", "status": "active",
        "current_period_start": date(2026, 3, 1), "current_period_end": date(2026, 4, 1), "next_renewal": date(2026, 4, 1)}
    assert rows[1]["next_renewal"] is None
    # As of a day before the renewal: the first period.
    (early,) = h.ledger.subscriptions("acme", "active", date(2026, 2, 15))
    assert (early["current_period_start"], early["current_period_end"]) == (date(2026, 2, 1), date(2026, 3, 1))
    assert h.ledger.subscriptions(None, "cancelled", date(2026, 3, 5))[0]["subscription"] == "s-2"
    assert h.ledger.subscriptions(None, None, date(2026, 1, 31)) == []  # none started yet
    with Ledger(h.url, "partner:beta", clock=h.clock) as beta:
        assert [r["subscription"] for r in beta.subscriptions(None, None, date(2026, 3, 5))] == ["s-2"]
        with pytest.raises(Refused):
            beta.subscriptions("acme", None, date(2026, 3, 5))


def test_a_partner_defaults_to_itself_and_unknown_partners_are_refused(h: Harness) -> None:
    sold(h)
    with Ledger(h.url, "partner:acme", clock=h.clock) as acme:
        st = acme.statement(None, "2026-02")
        assert st["partner"] == "acme" and [line["customer"] for line in st["lines"]] == ["Example Oy"]
        assert st["lines"][0]["order_number"] == "PO-77" and st["lines"][0]["deal"] == "d-1"
    for query in (lambda: h.ledger.statement("nobody", "2026-02"),
                  lambda: h.ledger.overview("nobody", None, date(2026, 3, 1)),
                  lambda: h.ledger.deals("nobody", None, None, date(2026, 3, 1)),
                  lambda: h.ledger.attention("nobody", date(2026, 3, 1)),
                  lambda: h.ledger.subscriptions("nobody", None, date(2026, 3, 1))):
        with pytest.raises(Refused, match="^no partner nobody$"):
            query()


def test_late_line_names_the_month_it_adjusts(h: Harness) -> None:
    sold(h)
    from ledger.audit import Audit

    h.clock.advance(days=80)
    with Ledger(h.url, "vendor:finance", clock=h.clock) as finance:
        Audit(finance).issue_statement("acme", "2026-03")
    # Dated in the issued month (after the subscription's last fact), recorded later.
    h.ok(cmd("refund", on="2026-03-15", subscription="s-1", amount="100.00", charge=2))
    (late,) = [line for line in h.ledger.statement("acme", "2026-04")["lines"] if line["adjustment"]]
    assert late["adjustment"] == "2026-03" and late["amount"] == Decimal("-100.00") and late["customer"] == "Example Oy"


@pytest.mark.parametrize("data, field, says", [
    ({"deal": "d-1"}, "billing", "is required"),
    ({"deal": "d 1", "billing": "invoice"}, "deal", "letters, digits"),
    ({"deal": "d-1", "billing": "cash"}, "billing", "must be one of credit-card, invoice, partner"),
])
def test_validation_errors_name_the_field_or_the_option(data: dict, field: str, says: str) -> None:
    envelope = {"id": "c-1", "type": "win_deal", "data": data}
    with pytest.raises(Malformed) as in_file:
        build(envelope)
    with pytest.raises(Malformed) as on_cli:
        build(envelope, options=True)
    assert str(in_file.value) == f"data.{field} {says}" or str(in_file.value).startswith(f"data.{field} must be")
    assert str(on_cli.value).startswith(f"--{field} ") and says in str(on_cli.value)
    for text in (str(in_file.value), str(on_cli.value)):
        assert "pydantic" not in text and "Field required" not in text and "pattern" not in text


def test_cli_messages_and_exit_statuses(db_url: str, tmp_path: Path) -> None:
    cli = Cli(db_url, tmp_path)
    cli.setup([cmd("enroll_partner", on="2026-01-01", partner="acme", name="Acme Advisory", domain="acme.fi",
                   commission_rate="0.20"),
               deal("d-1"), cmd("accept_deal", on="2026-01-11", deal="d-1")])
    runs = cli.many(
        ["deal", "win", "d-1"],
        ["partner", "enroll", "p-2", "--name", "X", "--domain", "x.fi", "--commission-rate", "20"],
        ["subscription", "start", "s-1", "--customer-domain", "x.fi", "--plan", "P", "--amount", "5",
         "--currency", "eur", "--period", "monthly", "--billing", "invoice"],
        ["partner", "enroll", "p 2", "--name", "X", "--domain", "x.fi", "--commission-rate", "0.2"],
        ["deal", "register", "d-2", "--partner", "acme", "--customer-name", "X", "--contact-name", "Y",
         "--customer-email", "not-an-address"],
        ["subscription", "refund", "s-1", "--amount", "-5"],
        ["statement", "--partner", "acme", "--month", "2026-1"],
        ["statement", "issue", "--partner", "acme", "--month", "2026-1"],
        ["audit", "export", "-o", str(tmp_path / "no" / "such" / "x.jsonl")],
        ["audit", "export", "--from", "5", "--to", "2"],
        ["no-such-command"],
        ["statement", "--partner", "nobody", "--month", "2026-01"],
        ["overview", "--partner", "nobody"],
        ["deal", "accept", "d-1"],  # already reviewed: the ledger's state, exit 1
    )
    expected = [
        (2, "--billing is required"), (2, "a fraction such as 0.20"), (2, "ISO 4217 currency code in upper case"),
        (2, "letters, digits"), (2, "not a valid email address"), (2, "--amount must be more than 0"),
        (2, "--month"), (2, "--month"), (2, "No such file or directory"), (2, "--to 2 is before --from 5"),
        (2, "No such command"), (1, "no partner nobody"), (1, "no partner nobody"), (1, "already reviewed"),
    ]
    for r, (code, fragment) in zip(runs, expected):
        line = assert_one_line_error(r, code, fragment)
        assert "pydantic" not in line and "errors.pydantic.dev" not in line and "data." not in line, line
    out = tmp_path / "events.jsonl"
    r = cli.ok("audit", "export", "-o", str(out))
    head = cli.head()
    assert r.err.strip() == f"exported {head} events to {out}" and len(out.read_text().splitlines()) == head
    assert cli.ok("audit", "export", "--to", "1").err.strip() == "exported 1 event to standard output"


def test_cli_deal_show_subscriptions_and_tables(db_url: str, tmp_path: Path) -> None:
    cli = Cli(db_url, tmp_path)
    cli.setup([cmd("enroll_partner", on="2026-01-01", partner="acme", name="Acme Advisory", domain="acme.fi",
                   commission_rate="0.20"),
               deal("d-1", name="株式会社テスト", note="First call"),
               cmd("accept_deal", on="2026-01-11", deal="d-1"),
               cmd("win_deal", on="2026-01-20", actor="partner:acme", deal="d-1", billing="credit-card"),
               cmd("start_subscription", on="2026-02-01", subscription="s-1", customer_domain="example.fi",
                   plan="Pro", amount="12000", currency="EUR", period="yearly", billing="credit-card", deal="d-1")])
    card, subs, subs_json, deals, overview, stmt = cli.many(
        ["--as", "partner:acme", "deal", "show", "d-1", "--as-of", "2026-03-01"],
        ["subscriptions", "--as-of", "2026-03-01"],
        ["--as", "partner:acme", "subscriptions", "--as-of", "2026-03-01", "--json"],
        ["deals", "--as-of", "2026-03-01"],
        ["overview", "--as-of", "2026-03-01"],
        ["--as", "partner:acme", "statement", "--month", "2026-02"],
    )
    for r in (card, subs, subs_json, deals, overview, stmt):
        assert r.code == 0, str(r)
    assert "Jane Doe" in card.out and "First call" in card.out and "Registered" in card.out
    (row,) = subs_json.json()
    assert row["amount"] == "12000.00" and row["next_renewal"] == "2027-02-01" and row["status"] == "active"
    assert "12000.00" in subs.out and "2027-02-01" in subs.out
    # Wide characters keep the columns in line: each row's later columns start where the header's do.
    for r, column in ((deals, "customer_domain"), (overview, "domain")):
        header, _, first = r.out.splitlines()[:3]
        from wcwidth import wcswidth as width  # the terminal's measure, not the code under test

        assert width(first[: first.index("example.fi")]) == width(header[: header.index(column)]), r.out
    assert "株式会社テスト" in deals.out and "acme" in overview.out.splitlines()[2]
    assert "Commission statement acme 2026-02 (not issued, 1 line)" in stmt.out and "12000.00" in stmt.out
