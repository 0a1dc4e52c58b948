"""The write side driven through commands, on SQLite and on PostgreSQL: each
rule of SPEC.md's "aggregates and their rules", authority, idempotency."""

from __future__ import annotations

from ledger.aggregates import Customer, Deal, Subscription, Trial

from .conftest import Harness, accept, cmd, deal, program


def events_of(h: Harness, cls: type, key: str) -> list:
    from ledger.aggregates import aggregate_id

    return list(h.ledger.app.events.get(aggregate_id(cls.KIND, key)))


# -- deal registration ---------------------------------------------------------------
def test_registered_deal_is_pending_and_protects_its_domain(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1"))
    d = h.ledger.app.get(Deal, "d-1")
    assert (d.review, d.stage, d.domain) == ("pending", "new", "example.fi")
    customer = h.ledger.app.get(Customer, "example.fi")
    assert (customer.protecting_deal, customer.protecting_partner) == ("d-1", "acme")


def test_own_domain_email_is_refused(h: Harness) -> None:
    program(h)
    assert "own domain" in h.refused(deal("d-1", email="me@acme.fi"))
    assert "own domain" in h.refused(deal("d-2", email="me@sales.acme.fi"))
    assert "own domain" in h.refused(deal("d-3", partner="beta", email="x@beta.com"))


def test_free_mail_email_is_refused(h: Harness) -> None:
    program(h)
    assert "free-mail" in h.refused(deal("d-1", email="jane.doe@gmail.com"))
    assert "free-mail" in h.refused(deal("d-2", email="JANE@GMX.DE"))


def test_malformed_deal_input_is_refused(h: Harness) -> None:
    program(h)
    assert "email" in h.refused(deal("d-1", email="not-an-email"))
    assert "domain" in h.refused(deal("d-2", email="jane@localhost"))
    line = deal("d-3")
    del line["data"]["contact_name"]
    assert "contact_name" in h.refused(line)
    assert "no partner" in h.refused(deal("d-4", partner="nobody"))


def test_another_partners_live_deal_makes_a_duplicate_denied_at_once(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", on="2026-01-10"))
    (r,) = h.ok(deal("d-2", partner="beta", email="bob@example.fi", on="2026-03-01"))
    assert "duplicate" in r.message
    d2 = h.ledger.app.get(Deal, "d-2")
    assert (d2.review, d2.deny_reason) == ("denied", "duplicate")
    assert h.ledger.app.get(Customer, "example.fi").protecting_deal == "d-1"
    denied = [e for e in events_of(h, Deal, "d-2") if isinstance(e, Deal.Denied)]
    assert denied[0].actor == "system"


def test_same_partner_registering_its_protected_customer_again_is_refused(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1"))
    assert "already protected by your deal d-1" in h.refused(deal("d-2", email="bob@example.fi"))


def test_existing_customer_is_denied_at_once(h: Harness) -> None:
    program(h)
    h.ok(cmd("start_subscription", on="2026-01-05", subscription="s-0", customer_domain="example.fi",
             plan="pro", amount="100.00", currency="EUR", period="monthly", billing="credit-card"))
    (r,) = h.ok(deal("d-1", on="2026-01-10"))
    assert "existing-customer" in r.message
    assert h.ledger.app.get(Deal, "d-1").deny_reason == "existing-customer"
    # Once the subscription is cancelled the company may be registered again.
    h.ok(cmd("cancel_subscription", on="2026-02-01", subscription="s-0"))
    (r,) = h.ok(deal("d-2", on="2026-02-02", email="x@example.fi"))
    assert r.message is None and h.ledger.app.get(Deal, "d-2").review == "pending"


# -- protection ---------------------------------------------------------------------
def test_protection_lapses_after_90_days_without_action(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", on="2026-01-10"))
    # Day 89 after registration: still protected.
    (r,) = h.ok(deal("d-2", partner="beta", email="b@example.fi", on="2026-04-09"))
    assert "duplicate" in r.message
    # Day 90: lapsed, another partner may register it; the lapse is recorded.
    (r,) = h.ok(deal("d-3", partner="beta", email="b@example.fi", on="2026-04-10"))
    assert r.message is None
    assert h.ledger.app.get(Customer, "example.fi").protecting_deal == "d-3"
    lapses = [e for e in events_of(h, Deal, "d-1") if isinstance(e, Deal.ProtectionLapsed)]
    assert [str(e.lapsed_on) for e in lapses] == ["2026-04-10"]


def test_any_action_on_the_deal_renews_protection(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", on="2026-01-10"))
    h.ok(cmd("add_deal_note", on="2026-03-01", actor="partner:acme", deal="d-1", text="call booked"))
    assert h.ledger.app.get(Deal, "d-1").protected_until.isoformat() == "2026-05-30"
    (r,) = h.ok(deal("d-2", partner="beta", email="b@example.fi", on="2026-05-29"))
    assert "duplicate" in r.message
    h.ok(cmd("move_deal", on="2026-05-29", actor="partner:acme", deal="d-1", stage="trial"))
    assert h.ledger.app.get(Deal, "d-1").protected_until.isoformat() == "2026-08-27"


def test_a_lapsed_protection_is_not_revived_by_a_late_action(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", on="2026-01-10"))
    h.ok(cmd("add_deal_note", on="2026-05-01", actor="partner:acme", deal="d-1", text="still interested"))
    d = h.ledger.app.get(Deal, "d-1")
    assert d.lapsed_on.isoformat() == "2026-04-10" and d.protected_until is None
    (r,) = h.ok(deal("d-2", partner="beta", email="b@example.fi", on="2026-05-02"))
    assert r.message is None


def test_sweep_records_lapses_and_expiries(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1", on="2026-01-10"),
         cmd("start_trial", on="2026-01-10", actor="partner:acme", trial="t-1", partner="acme",
             customer_name="Example Oy", customer_email="jane@example.fi"))
    result = h.ledger.sweep(on=__import__("datetime").date(2026, 5, 1))
    assert result.message == "1 protections lapsed, 1 trials expired"
    assert h.ledger.app.get(Trial, "t-1").expired_on.isoformat() == "2026-01-24"
    again = h.ledger.sweep(on=__import__("datetime").date(2026, 5, 2))
    assert again.message == "0 protections lapsed, 0 trials expired"


# -- review and stages -----------------------------------------------------------------
def test_review_accept_or_deny_once(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1"), deal("d-2", email="x@other.fi", name="Other Oy"))
    h.ok(cmd("accept_deal", actor="vendor:manager", deal="d-1"),
         cmd("deny_deal", actor="vendor:manager", deal="d-2", reason="invalid-lead"))
    assert h.ledger.app.get(Deal, "d-1").review == "accepted"
    assert h.ledger.app.get(Deal, "d-2").deny_reason == "invalid-lead"
    assert "already reviewed" in h.refused(cmd("deny_deal", actor="vendor:manager", deal="d-1", reason="duplicate"))
    assert "reason" in h.refused(cmd("deny_deal", actor="vendor:manager", deal="d-1", reason="because"))
    assert "denied" in h.refused(cmd("move_deal", actor="partner:acme", deal="d-2", stage="trial"))


def test_stages_move_forward_only_and_closed_is_final(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1"))
    h.ok(cmd("move_deal", actor="partner:acme", deal="d-1", stage="newsletter-subscription"),
         cmd("move_deal", actor="partner:acme", deal="d-1", stage="trial"))
    assert "only move forward" in h.refused(cmd("move_deal", actor="partner:acme", deal="d-1", stage="new"))
    assert "only move forward" in h.refused(cmd("move_deal", actor="partner:acme", deal="d-1", stage="trial"))
    h.ok(cmd("lose_deal", actor="partner:acme", deal="d-1", note="no budget this year"))
    assert "closed is final" in h.refused(cmd("win_deal", actor="partner:acme", deal="d-1", billing="credit-card"))
    assert "closed is final" in h.refused(cmd("move_deal", actor="partner:acme", deal="d-1", stage="trial"))
    # Notes can be added to the deal card at any time.
    h.ok(cmd("add_deal_note", actor="partner:acme", deal="d-1", text="revisit in Q3"))
    assert h.ledger.app.get(Deal, "d-1").notes == 2
    assert "data.stage" in h.refused(cmd("move_deal", actor="partner:acme", deal="d-1", stage="closed-won"))


def test_win_needs_a_billing_option_and_invoice_an_order_number(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1"), accept("d-1"))
    assert "billing" in h.refused(cmd("win_deal", actor="partner:acme", deal="d-1"))
    assert "order number" in h.refused(cmd("win_deal", actor="partner:acme", deal="d-1", billing="invoice"))
    h.ok(cmd("win_deal", actor="partner:acme", deal="d-1", billing="invoice", order_number="PO-77"))
    d = h.ledger.app.get(Deal, "d-1")
    assert (d.stage, d.billing, d.order_number) == ("closed-won", "invoice", "PO-77")


# -- trials -------------------------------------------------------------------------------
def trial(id_: str = "t-1", on: str = "2026-02-01", partner: str = "acme", email: str = "jane@example.fi", **x):
    return cmd("start_trial", on=on, actor=f"partner:{partner}", trial=id_, partner=partner,
               customer_name="Example Oy", customer_email=email, **x)


def test_trial_runs_14_days_and_extends_once_to_30(h: Harness) -> None:
    program(h)
    (r,) = h.ok(trial())
    assert r.message == "runs until 2026-02-15"
    h.ok(cmd("extend_trial", on="2026-02-10", actor="partner:acme", trial="t-1"))
    t = h.ledger.app.get(Trial, "t-1")
    assert (t.days, t.ends_on.isoformat()) == (30, "2026-03-03")
    assert "extends once" in h.refused(cmd("extend_trial", on="2026-02-11", actor="partner:acme", trial="t-1"))


def test_trial_cannot_be_extended_after_it_ended_or_converted(h: Harness) -> None:
    program(h)
    h.ok(trial("t-1"), trial("t-2", email="a@second.fi"))
    assert "ended on 2026-02-15" in h.refused(cmd("extend_trial", on="2026-02-15", actor="partner:acme", trial="t-1"))
    h.ok(cmd("start_subscription", on="2026-02-05", subscription="s-1", customer_domain="second.fi", plan="pro",
             amount="50.00", currency="EUR", period="monthly", billing="credit-card"))
    assert h.ledger.app.get(Trial, "t-2").converted_on.isoformat() == "2026-02-05"
    assert "converted" in h.refused(cmd("extend_trial", on="2026-02-06", actor="partner:acme", trial="t-2"))


def test_trial_rules_at_start(h: Harness) -> None:
    program(h)
    assert "data.days" in h.refused(trial(days=45))
    h.ok(deal("d-1", on="2026-01-20"))
    assert "protected by another partner" in h.refused(trial(partner="beta"))
    h.ok(trial())
    assert "already has trial t-1" in h.refused(trial("t-9", on="2026-02-03"))


# -- subscriptions ------------------------------------------------------------------------
def won_deal(h: Harness, billing: str = "credit-card", **extra) -> None:
    h.ok(deal("d-1"), accept("d-1", on="2026-01-12"),
         cmd("win_deal", on="2026-02-01", actor="partner:acme", deal="d-1", billing=billing, **extra))


def sub(id_: str = "s-1", on: str = "2026-02-03", **x):
    base = dict(subscription=id_, customer_domain="example.fi", plan="professional", amount="1200.00",
                currency="EUR", period="yearly", billing="credit-card", deal="d-1")
    base.update(x)
    return cmd("start_subscription", on=on, actor="vendor:manager", **base)


def test_subscription_charges_each_period_and_renews_until_cancelled(h: Harness) -> None:
    program(h)
    won_deal(h)
    h.ok(sub(period="monthly", amount="99.90"))
    h.ok(cmd("renew_subscription", on="2026-03-03", actor="vendor:manager", subscription="s-1"),
         cmd("renew_subscription", on="2026-04-03", actor="vendor:manager", subscription="s-1"))
    s = h.ledger.app.get(Subscription, "s-1")
    assert [(c.number, str(c.amount), c.period_start.isoformat()) for c in s.charges] == [
        (1, "99.90", "2026-02-03"), (2, "99.90", "2026-03-03"), (3, "99.90", "2026-04-03")]
    assert s.partner == "acme" and s.renewal_due.isoformat() == "2026-05-03"
    h.ok(cmd("cancel_subscription", on="2026-04-20", actor="vendor:manager", subscription="s-1"))
    assert "cancelled" in h.refused(cmd("renew_subscription", on="2026-05-03", actor="vendor:manager", subscription="s-1"))
    assert not h.ledger.app.get(Customer, "example.fi").is_paying


def test_subscription_needs_a_won_deal_and_invoice_an_order_number(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1"), accept("d-1", on="2026-01-12"))
    assert "win it" in h.refused(sub())
    h.ok(cmd("win_deal", on="2026-02-01", actor="partner:acme", deal="d-1", billing="invoice", order_number="PO-1"))
    assert "is for example.fi" in h.refused(sub(customer_domain="other.fi"))
    h.ok(sub(billing="invoice", order_number="PO-1"))


def test_money_is_validated(h: Harness) -> None:
    program(h)
    won_deal(h)
    for amount in ("10.005", "-5.00", "0", "NaN", "Infinity", "1e400"):
        h.refused(sub(amount=amount))
    assert "currency" in h.refused(sub(currency="euro"))


def test_partner_billing_needs_a_partner(h: Harness) -> None:
    program(h)
    assert "partner billing" in h.refused(sub(deal=None, billing="partner", customer_domain="direct.fi"))


def test_refund_of_the_latest_charge_unless_one_is_named(h: Harness) -> None:
    program(h)
    won_deal(h)
    h.ok(sub(period="monthly", amount="100.00"),
         cmd("renew_subscription", on="2026-03-03", actor="vendor:manager", subscription="s-1"))
    h.ok(cmd("refund", on="2026-03-10", actor="vendor:manager", subscription="s-1", amount="40.00"),
         cmd("refund", on="2026-03-10", actor="vendor:manager", subscription="s-1", amount="100.00", charge=1))
    s = h.ledger.app.get(Subscription, "s-1")
    assert [str(c.refunded) for c in s.charges] == ["100.00", "40.00"]
    assert "exceeds" in h.refused(cmd("refund", on="2026-03-11", actor="vendor:manager", subscription="s-1", amount="60.01"))
    assert "no charge 7" in h.refused(cmd("refund", on="2026-03-11", actor="vendor:manager", subscription="s-1", amount="1.00", charge=7))
    # Backdated before the subscription's last fact (the refunds of 10 March): refused, naming that date.
    assert "dated 2026-03-10" in h.refused(cmd("refund", on="2026-03-01", actor="vendor:manager", subscription="s-1", amount="1.00"))


# -- authority ------------------------------------------------------------------------------
def test_partners_act_only_on_their_own_records(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1"), cmd("start_trial", actor="partner:acme", trial="t-1", partner="acme",
                          customer_name="Example Oy", customer_email="jane@example.fi"))
    for line in (
        cmd("move_deal", actor="partner:beta", deal="d-1", stage="trial"),
        cmd("add_deal_note", actor="partner:beta", deal="d-1", text="mine now"),
        cmd("win_deal", actor="partner:beta", deal="d-1", billing="credit-card"),
        cmd("lose_deal", actor="partner:beta", deal="d-1"),
        cmd("extend_trial", actor="partner:beta", trial="t-1"),
        deal("d-2", partner="acme", email="a@other.fi") | {"actor": "partner:beta"},
    ):
        assert "another partner" in h.refused(line)


def test_vendor_only_commands_are_refused_for_partners_and_finance(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1"))
    assert "may not accept deal" in h.refused(cmd("accept_deal", actor="partner:acme", deal="d-1"))
    assert "may not deny deal" in h.refused(cmd("deny_deal", actor="partner:acme", deal="d-1", reason="duplicate"))
    assert "may not enroll partner" in h.refused(
        cmd("enroll_partner", actor="partner:acme", partner="x", name="X", domain="x.fi", commission_rate="0.5"))
    assert "may not move deal" in h.refused(cmd("move_deal", actor="vendor:finance", deal="d-1", stage="trial"))
    assert "may not report usage" in h.refused(cmd("report_usage", actor="vendor:manager", customer_domain="example.fi", users=3))
    assert "unknown actor" in h.refused(cmd("accept_deal", actor="root", deal="d-1"))


def test_only_system_submits_for_other_actors(h: Harness) -> None:
    from .conftest import Harness as H

    program(h)
    manager = H(h.url, actor="vendor:manager")
    try:
        manager.clock = h.clock
        (r,) = manager.submit(deal("d-1"))
        assert r.status == "refused" and "only system" in r.message
        (r,) = manager.submit(cmd("accept_deal", actor="vendor:manager", deal="nope"))
        assert "no deal" in r.message
    finally:
        manager.close()


def test_every_event_records_actor_command_id_and_effective_time(h: Harness) -> None:
    program(h)
    line = deal("d-1", on="2026-01-10")
    h.ok(line)
    events = events_of(h, Deal, "d-1") + events_of(h, Customer, "example.fi")
    assert events and all(e.actor == "partner:acme" and e.command_id == line["id"] for e in events)
    assert all(e.at.isoformat() == "2026-01-10T00:00:00+00:00" for e in events)
    assert all(e.timestamp == h.clock.current for e in events)  # recorded time: the ledger's clock


# -- idempotency and atomicity ------------------------------------------------------------
def test_resubmitting_a_file_applies_nothing_twice(h: Harness) -> None:
    lines = [
        cmd("enroll_partner", id="c-1", partner="acme", name="Acme", domain="acme.fi", commission_rate="0.2"),
        deal("d-1", id="c-2"),
        cmd("add_deal_note", id="c-3", actor="partner:acme", deal="d-1", text="hello"),
        cmd("add_deal_note", id="c-3", actor="partner:acme", deal="d-1", text="hello"),
    ]
    first = h.submit(*lines)
    assert [r.status for r in first] == ["applied", "applied", "applied", "duplicate"]
    head = h.head()
    again = h.submit(*lines)
    assert [r.status for r in again] == ["duplicate"] * 4
    assert h.head() == head
    assert h.ledger.app.get(Deal, "d-1").notes == 1


def test_a_refused_line_writes_nothing_and_the_rest_apply(h: Harness) -> None:
    program(h)
    head = h.head()
    results = h.submit(
        deal("d-1"),
        deal("d-bad", email="me@acme.fi"),
        cmd("start_trial", actor="partner:acme", trial="t-1", partner="acme", customer_name="Example Oy",
            customer_email="jane@example.fi", days=99),
        cmd("add_deal_note", on="2026-01-10", actor="partner:acme", deal="d-1", text="ok"),
    )
    assert [r.status for r in results] == ["applied", "refused", "malformed", "applied"]
    assert h.ledger.app.get(Deal, "d-bad") is None and h.ledger.app.get(Trial, "t-1") is None
    assert h.head() - head == 4 + 2  # deal, customer, claim, record; note, record


def test_a_refusal_after_events_were_triggered_leaves_nothing_behind(h: Harness) -> None:
    # start_trial records the lapse of an old protection before it finds the
    # running trial that refuses it: the rollback must drop the lapse too.
    program(h)
    h.ok(deal("d-1", on="2026-01-10"),
         cmd("start_trial", on="2026-04-01", actor="partner:acme", trial="t-1", partner="acme",
             customer_name="Example Oy", customer_email="jane@example.fi"))
    head = h.head()
    (r,) = h.submit(cmd("start_trial", on="2026-04-12", actor="partner:beta", trial="t-2", partner="beta",
                        customer_name="Example Oy", customer_email="bob@example.fi"))
    assert r.status == "refused" and "protected by another partner until 2026-04-15" in r.message  # acme's trial
    assert h.head() == head
    assert h.ledger.app.get(Deal, "d-1").lapsed_on is None


def test_a_refusal_mid_batch_leaves_no_event_of_that_command(h: Harness) -> None:
    # One batch: the command before and the one after the refused one touch
    # the same deal and customer; the refused one found the deal's lapse due
    # (2026-04-10) and was refused after that (no partner for partner billing).
    program(h)
    h.ok(deal("d-1", on="2026-01-10"))
    head = h.head()
    results = h.submit(
        cmd("add_deal_note", id="before", on="2026-03-01", actor="partner:acme", deal="d-1", text="call"),
        cmd("start_subscription", id="mid", on="2026-06-20", subscription="s-1", customer_domain="example.fi",
            plan="Pro", currency="EUR", amount="100.00", period="monthly", billing="partner"),
        cmd("add_deal_note", id="after", on="2026-06-20", actor="partner:acme", deal="d-1", text="late"),
    )
    assert [r.status for r in results] == ["applied", "refused", "applied"]
    written = [h.ledger.app.mapper.to_domain_event(n)
               for n in h.ledger.app.recorder.select_notifications(head + 1, 100)]
    assert {e.command_id for e in written} == {"before", "after"}
    assert h.ledger.app.get(Subscription, "s-1") is None
    lapses = [e for e in events_of(h, Deal, "d-1") if isinstance(e, Deal.ProtectionLapsed)]
    assert [e.command_id for e in lapses] == ["after"]


def test_bulk_submission_batches_and_survives_a_large_file(h: Harness) -> None:
    program(h)
    lines = [deal(f"d-{i}", email=f"x@c{i}.fi", name=f"C{i} Oy") for i in range(1200)]
    results = h.submit(*lines)
    assert all(r.status == "applied" for r in results)
    assert h.head() == 4 + 1200 * 4  # program (2 partners + 2 records) + deal, customer, claim, record each
