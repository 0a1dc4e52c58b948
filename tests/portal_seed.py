"""A small partner program for the portal's tests, dated around today (the
server runs on the real clock): two partners, deals pending and protected,
a running trial, an ended one, and a paying customer with usage and a
commission statement."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from ledger.service import Ledger
from ledger.timeline import today
from ledger.tokens import issue


def _day(offset: int) -> str:
    return (today() + timedelta(days=offset)).isoformat()


def _cmd(n: int, type_: str, on: str, actor: str | None = None, **data: Any) -> str:
    line: dict[str, Any] = {"id": f"seed-{n}", "type": type_, "on": on, "data": data}
    if actor:
        line["actor"] = actor
    return json.dumps(line)


def seed(url: str) -> dict[str, Any]:
    """Load the program into the ledger at `url`; returns the tokens
    (acme, beta, manager) and the statement month with a charge."""
    acme, beta = "partner:acme", "partner:beta"
    charged = _day(-40)
    lines = [
        ("enroll_partner", _day(-120), None, dict(partner="acme", name="Acme Advisory", domain="acme.fi",
                                                 commission_rate="0.20")),
        ("enroll_partner", _day(-120), None, dict(partner="beta", name="Beta Beratung", domain="beta.de",
                                                 commission_rate="0.15")),
        # A pending deal of acme's (the manager accepts it), and one of beta's that protects rival.fi.
        ("register_deal", _day(-10), acme, dict(deal="d-a1", partner="acme", customer_name="Esimerkki Oy",
                                               contact_name="Jane Doe", customer_email="jane@esimerkki.fi")),
        ("register_deal", _day(-5), beta, dict(deal="d-b1", partner="beta", customer_name="Rival Oy",
                                              contact_name="Rita Rival", customer_email="rita@rival.fi")),
        # A paying customer: won deal, subscription, usage.
        ("register_deal", _day(-60), acme, dict(deal="d-a2", partner="acme", customer_name="Maksava Oy",
                                               contact_name="Matti Maksaja", customer_email="matti@maksava.fi")),
        ("accept_deal", _day(-59), "vendor:manager", dict(deal="d-a2")),
        ("win_deal", _day(-45), acme, dict(deal="d-a2", billing="credit-card")),
        ("start_subscription", charged, "vendor:manager", dict(subscription="s-1", deal="d-a2", plan="Pro",
                                                              currency="EUR", amount="1234.56", period="yearly")),
        ("report_usage", _day(-2), "system", dict(customer_domain="maksava.fi", users=12, framework="ISO 27001",
                                                  progress=40, activities=30)),
        # A running trial that ends within a week (attention), and one that ended.
        ("start_trial", _day(-3), acme, dict(trial="t-run", partner="acme", customer_name="Kokeilu Oy",
                                            customer_email="kim@kokeilu.fi", days=9)),
        ("start_trial", _day(-50), acme, dict(trial="t-old", partner="acme", customer_name="Vanha Oy",
                                             customer_email="ville@vanha.fi", days=14)),
    ]
    with Ledger(url, "system") as ledger:
        results = ledger.submit_lines([_cmd(n, t, on, actor, **data) for n, (t, on, actor, data) in enumerate(lines)])
        bad = [r.as_dict() for r in results if r.status != "applied"]
        assert not bad, bad
        tokens = {name: issue(ledger, actor, name)["token"] for name, actor in
                  (("acme", acme), ("beta", beta), ("manager", "vendor:manager"))}
    return {"tokens": tokens, "month": charged[:7]}

