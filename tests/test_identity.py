"""Customer identity, the deal lifecycle and ownership, currencies and money
(cases 05, 09, 10 and 12 of the shared cases, and inputs of the same kinds),
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger import money
from ledger.aggregates import Customer, Deal, Refused, Subscription, Trial, aggregate_id
from ledger.application import likely_aggregates
from ledger.commands.models import Malformed, build
from ledger.identity import customer_domain, registrable_domain
from ledger.export import statement_json
from ledger.money import commission

from .conftest import Harness, accept, cmd, deal, program

CASES = Path(__file__).parent / "cases"
TODAY = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)  # the real clock: case dates are in the past


@pytest.fixture(autouse=True)
def _ledger_clock_today(request: pytest.FixtureRequest) -> None:
    """The ledger's clock at the real today, so every effective date here is in the past."""
    if "h" in request.fixturenames:
        request.getfixturevalue("h").clock.current = TODAY


def submit_case(h: Harness, name: str) -> dict[str, Any]:
    """Submit a shared case file as `ledger submit` does; results by command id."""
    h.clock.current = TODAY
    results = h.ledger.submit_lines((CASES / name).read_text("utf-8").splitlines())
    return {r.id or f"line {r.line}": r for r in results}


def events_of(h: Harness, cls: type, key: str) -> list[Any]:
    return list(h.ledger.app.events.get(aggregate_id(cls.KIND, key)))


# -- one function decides identity ---------------------------------------------------------------
@pytest.mark.parametrize("given, customer", [
    ("jane@example.fi", "example.fi"),
    ("bob@sales.example.fi", "example.fi"),
    ("bo@www.example.fi", "example.fi"),
    ("Jane.Doe@WWW.Example.FI", "example.fi"),            # upper case
    ("example.fi.", "example.fi"),                          # trailing dot (the DNS root)
    ("jane@a.b.example.co.uk", "example.co.uk"),            # two-label public suffix
    ("x@other.co.uk", "other.co.uk"),                       # ... another company under it
    ("x@shop.example.com.au", "example.com.au"),
    ("x@alice.github.io", "alice.github.io"),               # private suffix: one owner per name
    ("léa@Société.fr", "xn--socit-esab.fr"),                # IDN: kept in its ASCII form
    ("léa@xn--socit-esab.fr", "xn--socit-esab.fr"),         # ... the xn-- form is the same customer
    ("x@straße.de", "xn--strae-oqa.de"),                    # IDNA 2008: ß stays ß
    ("x@strasse.de", "strasse.de"),                         # ... so strasse.de is another company
    ("x@пример.рф", "xn--e1afmkfd.xn--p1ai"),               # an IDN top-level domain
])
def test_customer_domain_is_the_registrable_domain(given: str, customer: str) -> None:
    assert customer_domain(given) == customer


def test_two_private_suffix_sites_are_two_customers() -> None:
    assert customer_domain("a@alice.github.io") != customer_domain("b@bob.github.io")
    assert customer_domain("x@straße.de") != customer_domain("x@strasse.de")


@pytest.mark.parametrize("bad", [
    "co.uk", "x@co.uk", "github.io", "fi",                  # a public suffix names no company
    "x@example.local", "x@example.test", "x.f",             # not a listed top-level domain
    "127.0.0.1", "x@-x-.fi", "x@x..fi", "x@x_y.fi", "x@xn--zz.fi", "jane@", "a..b@example.fi", "",
])
def test_what_names_no_company_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        customer_domain(bad)


@pytest.mark.parametrize("email", [
    "x@gmail.com", "x@GMAIL.COM.", "x@mail.gmail.com",       # checked on the registrable domain
    "x@naver.com", "x@yahoo.co.jp",                          # from the maintained list
    "x@tuta.io", "x@mailbox.org",                            # our own additions to it
])
def test_free_mail_is_refused_on_the_registrable_domain(email: str) -> None:
    with pytest.raises(Refused, match="free-mail"):
        customer_domain(email)


def test_a_host_name_entry_of_the_free_mail_list_does_not_make_its_company_free_mail() -> None:
    # The list holds docs.google.com and bounces.amazon.com; google.com and amazon.com are companies.
    assert customer_domain("x@google.com") == "google.com"
    assert customer_domain("x@amazon.com") == "amazon.com"


def test_the_preload_guess_uses_the_same_identity() -> None:
    line = build(cmd("register_deal", actor="partner:beta", deal="b-2", partner="beta", customer_name="E",
                     contact_name="J", customer_email="bob@Sales.Example.FI."))
    assert aggregate_id(Customer.KIND, "example.fi") in likely_aggregates(line)
    usage = build(cmd("report_usage", on="2026-03-01", customer_domain="app.example.fi", users=2))
    assert aggregate_id(Customer.KIND, "example.fi") in likely_aggregates(usage)


# -- case 05: one company, several host names ------------------------------------------------------
def test_case_05_subdomains_are_one_customer(h: Harness) -> None:
    r = submit_case(h, "05-subdomains.jsonl")
    assert r["reg-a-1"].status == "applied"
    for dup in ("reg-b-2", "reg-b-3"):
        assert r[dup].status == "applied"
        assert r[dup].message.startswith("denied at once: duplicate (protected by another partner until 2026-05-02")
        assert "acme" not in r[dup].message
    assert r["reg-a-3"].status == "refused" and "own domain" in r["reg-a-3"].message
    for key in ("b-2", "b-3"):
        d = h.ledger.app.get(Deal, key)
        assert (d.domain, d.review, d.deny_reason) == ("example.fi", "denied", "duplicate")
        (denied,) = [e for e in events_of(h, Deal, key) if isinstance(e, Deal.Denied)]
        assert denied.detail == "protected by another partner until 2026-05-02"  # never names the partner
    assert h.ledger.app.get(Deal, "a-1").domain == "example.fi"
    assert h.ledger.app.get(Customer, "sales.example.fi") is None
    assert h.ledger.app.get(Customer, "example.fi").protecting_deal == "a-1"
    assert h.ledger.app.get(Deal, "a-3") is None
    # What beta reads never names acme either.
    beta = [d for d in h.ledger.deals("beta", None, None, date(2026, 2, 10))]
    assert {d["deal"] for d in beta} == {"b-2", "b-3"} and "acme" not in repr(beta)


def test_partner_domains_are_normalised_and_owned_by_registrable_domain(h: Harness) -> None:
    h.ok(cmd("enroll_partner", on="2026-01-01", partner="gamma", name="Gamma", domain="Mail.GAMMA.co.uk.",
             commission_rate="0.1"))
    from ledger.aggregates import Partner

    assert h.ledger.app.get(Partner, "gamma").domains == ["gamma.co.uk"]
    assert "own domain" in h.refused(deal("g-1", partner="gamma", email="x@sales.gamma.co.uk"))
    h.ok(deal("g-2", partner="gamma", email="x@other.co.uk"))  # another company under co.uk
    assert "public suffix" in h.refused(
        cmd("enroll_partner", on="2026-01-01", partner="delta", name="D", domain="co.uk", commission_rate="0.1"))


def test_subscription_and_usage_domains_use_the_same_identity(h: Harness) -> None:
    program(h)
    h.ok(cmd("start_subscription", on="2026-02-01", subscription="s-1", customer_domain="WWW.Straße.DE.",
             plan="pro", amount="10.00", currency="EUR", period="monthly", billing="credit-card"),
         cmd("report_usage", on="2026-02-02", customer_domain="app.xn--strae-oqa.de", users=3))
    assert h.ledger.app.get(Subscription, "s-1").domain == "xn--strae-oqa.de"
    assert h.ledger.app.get(Customer, "xn--strae-oqa.de").is_paying
    assert h.ledger.app.get(Customer, "strasse.de") is None
    (row,) = h.ledger.overview(None, "active", date(2026, 2, 3))
    assert (row["domain"], row["users"]) == ("xn--strae-oqa.de", 3)
    # audit explain finds the row by any host of the customer
    from ledger.audit import Audit

    explained = Audit(h.ledger).explain_customer("www.straße.de", date(2026, 2, 3))
    assert {e["type"] for e in explained} >= {"Customer.Recognised", "Subscription.Started", "UsageDay.Reported"}


def test_events_keep_the_identity_they_were_decided_with(h: Harness) -> None:
    """A ledger written under the old rule (a subdomain as its own customer)
    replays to the same state, and its deal's subscription still finds it."""
    from ledger.aggregates.base import Context

    program(h)
    at = datetime(2026, 1, 10, tzinfo=timezone.utc)
    ctx = Context("old-1", "partner:acme", at, at)
    old_customer = Customer.recognise("sales.example.fi", "Example Oy", ctx)
    old_deal = Deal.register("d-old", "acme", "sales.example.fi", "Example Oy", "Jane", "j@sales.example.fi", None, ctx)
    old_customer.claim_protection("d-old", "acme", ctx)
    h.ledger.app.save(old_customer, old_deal)
    h.ok(accept("d-old", on="2026-01-11"),
         cmd("win_deal", on="2026-01-12", actor="partner:acme", deal="d-old", billing="credit-card"),
         cmd("start_subscription", on="2026-01-13", subscription="s-old", customer_domain="sales.example.fi",
             plan="pro", amount="10.00", currency="EUR", period="monthly", deal="d-old"))
    assert h.ledger.app.get(Deal, "d-old").domain == "sales.example.fi"
    assert h.ledger.app.get(Subscription, "s-old").domain == "sales.example.fi"
    assert h.ledger.app.get(Customer, "sales.example.fi", ).is_paying
    from ledger.audit import Audit

    explained = Audit(h.ledger).explain_customer("sales.example.fi", date(2026, 2, 1))
    assert "Deal.Registered" in {e["type"] for e in explained}


# -- case 09: a deal is won only once the vendor accepted it -----------------------------------------
def test_case_09_a_pending_deal_cannot_be_won(h: Harness) -> None:
    r = submit_case(h, "09-pending-deal-won.jsonl")
    assert r["reg-d-4"].status == "applied"
    assert r["win-d-4"].status == "refused" and "pending review" in r["win-d-4"].message
    assert h.ledger.app.get(Deal, "d-4").stage == "new"
    # Stages move while pending.
    h.ok(cmd("move_deal", on="2026-02-05", actor="partner:acme", deal="d-4", stage="trial"))
    h.ok(accept("d-4", on="2026-02-06"),
         cmd("win_deal", on="2026-02-07", actor="partner:acme", deal="d-4", billing="credit-card"))
    d = h.ledger.app.get(Deal, "d-4")
    assert (d.review, d.stage) == ("accepted", "closed-won")


def test_a_denied_deal_cannot_be_won_nor_accepted(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1"), cmd("deny_deal", on="2026-01-11", deal="d-1", reason="invalid-lead"))
    assert "denied" in h.refused(cmd("win_deal", on="2026-01-12", actor="partner:acme", deal="d-1",
                                     billing="credit-card"))
    assert "already reviewed" in h.refused(accept("d-1", on="2026-01-12"))


# -- case 10: a running trial claims its customer ---------------------------------------------------
def test_case_10_another_partners_trial_protects_the_customer(h: Harness) -> None:
    r = submit_case(h, "10-trial-of-another-partner.jsonl")
    assert r["trial-1"].status == "applied"
    assert r["reg-d-40"].status == "applied"
    assert r["reg-d-40"].message == "denied at once: duplicate (protected by another partner until 2026-03-15)"
    d40 = h.ledger.app.get(Deal, "d-40")
    assert (d40.review, d40.deny_reason) == ("denied", "duplicate")
    assert r["acc-d-40"].status == "refused" and r["win-d-40"].status == "refused"
    assert r["start-s-40"].status == "refused"
    assert r["start-s-40"].message == "deal d-40 was denied (duplicate); it gets no subscription"
    t = h.ledger.app.get(Trial, "t-3")
    assert t.converted_on is None and t.partner == "acme"
    assert h.ledger.app.get(Subscription, "s-40") is None
    # beta's own trial is refused while acme's runs
    assert "protected by another partner until 2026-03-15" in h.refused(
        cmd("start_trial", on="2026-03-06", actor="partner:beta", trial="t-b", partner="beta",
            customer_name="Example Oy", customer_email="bob@www.example.fi"))
    # once acme's trial ended, beta may register
    (after,) = h.ok(deal("d-41", partner="beta", email="bob@example.fi", on="2026-03-15"))
    assert after.message is None and h.ledger.app.get(Deal, "d-41").review == "pending"


def test_own_trial_does_not_make_own_deal_a_duplicate(h: Harness) -> None:
    program(h)
    h.ok(cmd("start_trial", on="2026-03-01", actor="partner:acme", trial="t-1", partner="acme",
             customer_name="Example Oy", customer_email="jane@example.fi"))
    (r,) = h.ok(deal("d-1", on="2026-03-02"))
    assert r.message is None and h.ledger.app.get(Deal, "d-1").review == "pending"


def test_a_subscription_converts_only_its_own_partners_trial(h: Harness) -> None:
    program(h)
    # beta wins example.fi (a closed deal protects no longer); acme then starts a trial there.
    h.ok(deal("d-b", partner="beta", on="2026-02-01"), accept("d-b", on="2026-02-02"),
         cmd("win_deal", on="2026-02-03", actor="partner:beta", deal="d-b", billing="credit-card"),
         cmd("start_trial", on="2026-02-04", actor="partner:acme", trial="t-a", partner="acme",
             customer_name="Example Oy", customer_email="jane@example.fi"))
    (r,) = h.ok(cmd("start_subscription", on="2026-02-05", subscription="s-b", plan="pro", amount="10.00",
                    currency="EUR", period="monthly", deal="d-b"))
    assert r.message == "partner beta"
    assert h.ledger.app.get(Trial, "t-a").converted_on is None
    # Without a deal a subscription is the running trial's partner's, and converts that trial.
    h.ok(cmd("start_trial", on="2026-02-04", actor="partner:acme", trial="t-2", partner="acme",
             customer_name="Other Oy", customer_email="x@other.fi"))
    (r,) = h.ok(cmd("start_subscription", on="2026-02-06", subscription="s-2", customer_domain="other.fi",
                    plan="pro", amount="10.00", currency="EUR", period="monthly", billing="credit-card"))
    assert r.message == "partner acme"
    assert h.ledger.app.get(Trial, "t-2").converted_on == date(2026, 2, 6)


# -- a subscription for a won deal ---------------------------------------------------------------------
def _won_invoice_deal(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1"), accept("d-1", on="2026-01-11"),
         cmd("win_deal", on="2026-02-01", actor="partner:acme", deal="d-1", billing="invoice", order_number="PO-1"))


def _sub(id_: str = "s-1", on: str = "2026-02-03", **x: Any) -> dict[str, Any]:
    return cmd("start_subscription", on=on, actor="vendor:manager", subscription=id_, plan="pro", amount="100.00",
               currency="EUR", period="monthly", deal="d-1", **x)


def test_a_subscription_takes_what_the_won_deal_says(h: Harness) -> None:
    _won_invoice_deal(h)
    h.ok(_sub())
    s = h.ledger.app.get(Subscription, "s-1")
    assert (s.domain, s.billing, s.order_number, s.partner) == ("example.fi", "invoice", "PO-1", "acme")


@pytest.mark.parametrize("given, refusal", [
    ({"customer_domain": "other.fi"}, "is for example.fi, not other.fi"),
    ({"billing": "credit-card"}, "won with billing invoice, not credit-card"),
    ({"billing": "invoice", "order_number": "PO-2"}, "won with order number PO-1, not PO-2"),
])
def test_a_subscription_contradicting_its_deal_is_refused(h: Harness, given: dict, refusal: str) -> None:
    _won_invoice_deal(h)
    assert refusal in h.refused(_sub(**given))


def test_given_fields_that_agree_with_the_deal_are_taken(h: Harness) -> None:
    _won_invoice_deal(h)
    h.ok(_sub(customer_domain="www.Example.FI", billing="invoice", order_number="PO-1"))
    assert h.ledger.app.get(Subscription, "s-1").domain == "example.fi"


def test_a_deal_has_at_most_one_active_subscription(h: Harness) -> None:
    _won_invoice_deal(h)
    h.ok(_sub("s-1"))
    assert "already has active subscription s-1" in h.refused(_sub("s-2", on="2026-02-04"))
    h.ok(cmd("cancel_subscription", on="2026-02-10", actor="vendor:manager", subscription="s-1"))
    h.ok(_sub("s-3", on="2026-02-11"))  # once cancelled, the deal may start another


def test_without_a_deal_customer_domain_and_billing_are_required() -> None:
    base = dict(subscription="s-1", plan="pro", amount="10.00", currency="EUR", period="monthly")
    for missing in ({"billing": "credit-card"}, {"customer_domain": "example.fi"}, {}):
        with pytest.raises(Malformed, match="without a deal"):
            build(cmd("start_subscription", **base, **missing))
    build(cmd("start_subscription", **base, deal="d-1"))  # with a deal they come from it


# -- case 12 and money -----------------------------------------------------------------------------------
def test_case_12_money_prints_with_minor_units_and_unknown_currency_is_malformed(h: Harness) -> None:
    r = submit_case(h, "12-money-and-currency.jsonl")
    assert r["start-s-1"].status == "applied"
    # A malformed line whose envelope is sound is reported under its own id and type.
    assert r["start-s-2"].status == "malformed" and "XYZ" in r["start-s-2"].message
    assert r["start-s-2"].type == "start_subscription" and r["start-s-2"].line == 6
    assert h.ledger.app.get(Subscription, "s-2") is None
    st = statement_json(h.ledger.statement("acme", "2026-03"))
    (line,) = [ln for ln in st["lines"] if ln["subscription"] == "s-1" and ln["day"] == "2026-03-02"]
    assert (line["amount"], line["commission"], line["vendor_share"]) == ("12000.00", "2400.00", "9600.00")
    assert st["totals"]["EUR"]["amount"].endswith(".00")


@pytest.mark.parametrize("code", ["XYZ", "XXX", "XTS", "XAU", "DEM", "FIM", "CNH", "EURO", "eur"])
def test_currencies_not_in_use_are_refused(code: str) -> None:
    with pytest.raises(money.MoneyError):
        money.check_currency(code)


@pytest.mark.parametrize("code, units, amount, printed", [
    ("EUR", 2, "12000", "12000.00"), ("JPY", 0, "12000", "12000"), ("BHD", 3, "1.5", "1.500"),
    ("KWD", 3, "10.125", "10.125"), ("USD", 2, "-0.5", "-0.50"), ("SEK", 2, "99.9", "99.90"),
])
def test_minor_units_and_printing(code: str, units: int, amount: str, printed: str) -> None:
    assert money.check_currency(code) == code and money.minor_units(code) == units
    assert money.format_money(Decimal(amount), code) == printed


@pytest.mark.parametrize("code, ok, too_precise", [
    ("JPY", "12000", "12000.5"), ("EUR", "10.05", "10.005"), ("BHD", "10.125", "10.1255"),
])
def test_an_amount_beyond_the_currencys_minor_units_is_malformed(h: Harness, code: str, ok: str,
                                                                 too_precise: str) -> None:
    program(h)
    line = dict(plan="pro", currency=code, period="monthly", billing="credit-card", customer_domain="example.fi")
    assert "minor units" in h.refused(cmd("start_subscription", on="2026-02-01", subscription="s-x",
                                          amount=too_precise, **line))
    h.ok(cmd("start_subscription", on="2026-02-01", subscription="s-1", amount=ok, **line))


def test_jpy_and_bhd_statements_print_and_round_to_their_minor_units(h: Harness) -> None:
    program(h)  # acme's rate: 0.20
    lines = []
    for n, (code, amount) in enumerate((("JPY", "12345"), ("BHD", "10.125"))):
        d = f"d-{n}"
        lines += [deal(d, email=f"x@c{n}.fi", on="2026-02-01"), accept(d, on="2026-02-01"),
                  cmd("win_deal", on="2026-02-02", actor="partner:acme", deal=d, billing="credit-card"),
                  cmd("start_subscription", on="2026-02-03", subscription=f"s-{n}", plan="pro", amount=amount,
                      currency=code, period="monthly", deal=d)]
    h.ok(*lines)
    assert "minor units" in h.refused(cmd("refund", on="2026-02-04", actor="vendor:manager", subscription="s-0",
                                          amount="1.50"))
    h.ok(cmd("refund", on="2026-02-04", actor="vendor:manager", subscription="s-0", amount="45"))
    st = h.ledger.statement("acme", "2026-02")
    jpy = [ln for ln in st["lines"] if ln["currency"] == "JPY"]
    assert [ln["commission"] for ln in jpy] == [Decimal("2469"), Decimal("-9")]  # 2469.0; 12345→12300: 2469-2460
    out = statement_json(st)
    assert [(ln["amount"], ln["commission"]) for ln in out["lines"] if ln["currency"] == "JPY"] == [
        ("12345", "2469"), ("-45", "-9")]
    assert [(ln["amount"], ln["commission"], ln["vendor_share"]) for ln in out["lines"] if ln["currency"] == "BHD"] == [
        ("10.125", "2.025", "8.100")]
    assert out["totals"]["JPY"]["amount"] == "12300" and out["totals"]["BHD"]["amount"] == "10.125"
    for ln in st["lines"]:  # what the customer paid = vendor's share + partner's share, exactly
        assert ln["amount"] == ln["vendor_share"] + ln["partner_share"]


def test_commission_rounds_half_up_to_the_currencys_minor_unit() -> None:
    assert commission(Decimal("10.10"), Decimal("0.15"), "EUR") == Decimal("1.52")
    assert commission(Decimal("1250"), Decimal("0.15"), "JPY") == Decimal("188")    # 187.5
    assert commission(Decimal("1.005"), Decimal("0.5"), "BHD") == Decimal("0.503")  # 0.5025
    assert commission(Decimal("-1250"), Decimal("0.15"), "JPY") == Decimal("-188")


def test_registrable_domain_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_network(*_: Any, **__: Any) -> Any:
        raise AssertionError("the identity rule went to the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    registrable_domain.cache_clear()
    from ledger import identity

    identity._psl.cache_clear()
    identity.free_mail_domains.cache_clear()
    money.currencies.cache_clear()
    assert customer_domain("x@www.example.co.uk") == "example.co.uk"
    money.check_currency("EUR")


# -- through the command line: what is printed ----------------------------------------------------------
def test_cli_case_12_prints_minor_units_in_table_csv_and_json_and_xyz_exits_2(db_url: str, tmp_path: Path) -> None:
    from .test_cli import Cli

    cli = Cli(db_url, tmp_path)
    r = cli("--as", "system", "--json", "submit", str(CASES / "12-money-and-currency.jsonl"))
    assert r.code == 2, str(r)  # a malformed line (currency XYZ)
    (s2,) = [x for x in r.jsonl() if x.get("line") == 6]
    assert s2["status"] == "malformed" and "XYZ" in s2["reason"]
    month = ["statement", "--partner", "acme", "--month", "2026-03"]
    as_json, as_csv, as_text = cli.many([*month, "--json"], [*month, "--csv"], month)
    line = [ln for ln in as_json.json()["lines"] if ln["day"] == "2026-03-02"][0]
    assert (line["amount"], line["commission"], line["vendor_share"]) == ("12000.00", "2400.00", "9600.00")
    assert as_json.json()["totals"]["EUR"]["amount"].endswith(".00")
    assert ",12000.00,EUR," in as_csv.out
    assert "12000.00" in as_text.out and "EUR: amount " in as_text.out


def test_cli_duplicate_report_never_names_the_other_partner(db_url: str, tmp_path: Path) -> None:
    from .test_cli import Cli

    cli = Cli(db_url, tmp_path)
    r = cli("--as", "system", "submit", str(CASES / "05-subdomains.jsonl"))
    assert r.code == 1, str(r)  # a-3 is refused (acme's own domain)
    beta_lines = [ln for ln in r.out.splitlines() if "b-2" in ln or "b-3" in ln]
    assert beta_lines and all("protected by another partner until 2026-05-02" in ln for ln in beta_lines), r.out
    assert not any("acme" in ln for ln in beta_lines), r.out
    deals = cli.ok("--as", "partner:beta", "deals", "--as-of", "2026-02-10", "--json").json()
    assert {d["deal"] for d in deals} == {"b-2", "b-3"} and "acme" not in repr(deals)
