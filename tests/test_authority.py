"""Authority, table-driven: every command type and every query against every
actor kind. A partner neither changes nor reads another partner's deals,
trials, customers or statements; vendor-only commands are refused for
partners; every refusal writes nothing."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from ledger.aggregates import Refused
from ledger.audit import Audit
from ledger.service import Ledger

from .conftest import Harness, accept, cmd, deal, program

ACTORS = ["partner:acme", "partner:beta", "vendor:manager", "vendor:finance", "system"]
OWNER, OTHER, MANAGER, FINANCE, SYSTEM = ACTORS
AS_OF = date(2026, 3, 1)


def commands(i: int) -> dict[str, dict[str, Any]]:
    """One valid command of each type, on records of partner acme made for case i."""
    d, t, s = f"d{i}", f"t{i}", f"s{i}"
    return {
        "enroll_partner": cmd("enroll_partner", partner=f"new{i}", name="New", domain=f"new{i}.fi",
                              commission_rate="0.1"),
        "set_commission_rate": cmd("set_commission_rate", on="2026-02-01", partner="acme", commission_rate="0.3"),
        "register_deal": deal(f"x{i}", email=f"x@x{i}.fi", name="X Oy", on="2026-02-01"),
        "accept_deal": cmd("accept_deal", on="2026-02-02", deal=d),
        "deny_deal": cmd("deny_deal", on="2026-02-02", deal=d, reason="invalid-lead"),
        "move_deal": cmd("move_deal", on="2026-02-02", deal=d, stage="trial"),
        "add_deal_note": cmd("add_deal_note", on="2026-02-02", deal=d, text="hello"),
        "win_deal": cmd("win_deal", on="2026-02-02", deal=f"v{i}", billing="credit-card"),
        "lose_deal": cmd("lose_deal", on="2026-02-02", deal=d),
        "start_trial": cmd("start_trial", on="2026-02-02", trial=f"n{i}", partner="acme", customer_name="N Oy",
                           customer_email=f"n@n{i}.fi"),
        "extend_trial": cmd("extend_trial", on="2026-02-03", trial=t),
        "start_subscription": cmd("start_subscription", on="2026-02-02", subscription=f"n{i}",
                                  customer_domain=f"direct{i}.fi", plan="p", amount="10.00", currency="EUR",
                                  period="monthly", billing="credit-card"),
        "renew_subscription": cmd("renew_subscription", on="2026-02-20", subscription=s),
        "cancel_subscription": cmd("cancel_subscription", on="2026-02-20", subscription=s),
        "refund": cmd("refund", on="2026-02-20", subscription=s, amount="1.00"),
        "report_usage": cmd("report_usage", on="2026-02-20", customer_domain=f"c{i}.fi", users=2),
        "sweep": cmd("sweep", on="2026-02-20"),
    }


# Who may submit each type (beyond system): "owner" is the partner whose records they are.
ALLOWED = {
    "enroll_partner": {MANAGER}, "set_commission_rate": {MANAGER},
    "register_deal": {OWNER, MANAGER}, "accept_deal": {MANAGER}, "deny_deal": {MANAGER},
    "move_deal": {OWNER, MANAGER}, "add_deal_note": {OWNER, MANAGER}, "win_deal": {OWNER, MANAGER},
    "lose_deal": {OWNER, MANAGER}, "start_trial": {OWNER, MANAGER}, "extend_trial": {OWNER, MANAGER},
    "start_subscription": {MANAGER}, "renew_subscription": {MANAGER}, "cancel_subscription": {MANAGER},
    "refund": {MANAGER}, "report_usage": set(), "sweep": set(),
}


def setup_case(h: Harness, i: int) -> None:
    """acme's deal d{i}, trial t{i} and subscription s{i} (on its own customer)."""
    h.ok(
        deal(f"d{i}", email=f"a@c{i}.fi", name=f"C{i} Oy", on="2026-01-10"),
        cmd("start_trial", on="2026-02-01", actor="partner:acme", trial=f"t{i}", partner="acme",
            customer_name=f"C{i} Oy", customer_email=f"a@c{i}.fi"),
        deal(f"w{i}", email=f"a@w{i}.fi", name=f"W{i} Oy", on="2026-01-10"),
        accept(f"w{i}", on="2026-01-12"),
        cmd("win_deal", on="2026-01-15", actor="partner:acme", deal=f"w{i}", billing="credit-card"),
        cmd("start_subscription", on="2026-01-16", actor="vendor:manager", subscription=f"s{i}",
            customer_domain=f"w{i}.fi", plan="team", amount="100.00", currency="EUR", period="monthly",
            billing="credit-card", deal=f"w{i}"),
        deal(f"v{i}", email=f"a@v{i}.fi", name=f"V{i} Oy", on="2026-01-10"),  # accepted: one to win
        accept(f"v{i}", on="2026-01-12"),
    )


def test_every_command_against_every_actor(h: Harness) -> None:
    program(h)
    case = 0
    checked = 0
    for type_ in ALLOWED:
        for actor in ACTORS:
            case += 1
            setup_case(h, case)
            line = commands(case)[type_] | {"actor": actor}
            with Ledger(h.url, actor, clock=h.clock) as as_actor:
                h.clock.advance(seconds=1)
                before = h.head()
                (result,) = as_actor.submit_lines([__import__("json").dumps(line)])
            allowed = actor == SYSTEM or actor in ALLOWED[type_]
            if allowed:
                assert result.status == "applied", (type_, actor, result.as_dict())
            else:
                assert result.status == "refused", (type_, actor, result.as_dict())
                assert "may not" in result.message, (type_, actor, result.message)
                assert h.head() == before, (type_, actor, "a refusal wrote events")
            checked += 1
    assert checked == len(ALLOWED) * len(ACTORS)


def readable(h: Harness, actor: str) -> dict[str, Any]:
    with Ledger(h.url, actor, clock=h.clock) as ledger:
        out: dict[str, Any] = {}
        for name, query in {
            "deals": lambda p: ledger.deals(p, None, None, AS_OF),
            "overview": lambda p: ledger.overview(p, None, AS_OF),
            "attention": lambda p: ledger.attention(p, AS_OF),
            "statement": lambda p: ledger.statement(p or "acme", "2026-02"),
        }.items():
            for partner in (None, "acme", "beta"):
                try:
                    out[(name, partner)] = query(partner)
                except Refused as e:
                    out[(name, partner)] = f"refused: {e}"
        try:
            Audit(ledger)
            out["audit"] = "allowed"
        except Refused:
            out["audit"] = "refused"
        return out


def test_every_query_against_every_actor(h: Harness) -> None:
    program(h)
    setup_case(h, 1)
    h.ok(deal("b1", partner="beta", email="b@beta-customer.fi", name="Beta Kunde", on="2026-01-12"),
         cmd("start_trial", on="2026-02-10", actor="partner:beta", trial="bt1", partner="beta",
             customer_name="Beta Kunde", customer_email="b@beta-customer.fi"))
    for actor in ACTORS:
        seen = readable(h, actor)
        if actor.startswith("partner:"):
            me, other = actor.split(":")[1], ("beta" if actor.endswith("acme") else "acme")
            assert seen["audit"] == "refused"
            for name in ("deals", "overview", "attention", "statement"):
                assert str(seen[(name, other)]).startswith("refused"), (actor, name)
                mine = seen[(name, me)]
                assert not str(mine).startswith("refused")
                if name != "statement":
                    assert seen[(name, None)] == mine  # no --partner: scoped to its own
                    assert all(r["partner"] == me for r in mine), (actor, name)
            assert {r["deal"] for r in seen[("deals", me)]} == ({"d1", "v1", "w1"} if me == "acme" else {"b1"})
        else:
            assert seen["audit"] == ("allowed" if actor in (FINANCE, SYSTEM, MANAGER) else "refused")
            assert {r["partner"] for r in seen[("deals", None)]} == {"acme", "beta"}
            assert not any(str(v).startswith("refused") for k, v in seen.items() if k != ("statement", None))


@pytest.mark.parametrize("actor", ["partner:acme", "vendor:manager"])
def test_issuing_statements_is_for_finance(h: Harness, actor: str) -> None:
    program(h)
    with Ledger(h.url, actor, clock=h.clock) as ledger:
        with pytest.raises(Refused):
            Audit(ledger).issue_statement("acme", "2025-12")
