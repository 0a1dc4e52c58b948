"""A realistic partner program as a list of commands, deterministic from a
seed: partners with rate changes, deals through every stage (with duplicates,
lapsed protections and refused registrations), trials with extensions,
subscriptions with each billing option, renewals, cancellations, refunds and
usage reports. `ledger demo` loads a small one; `bench/generate` a large one."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from .aggregates.subscription import add_months

FRAMEWORKS = ["ISO 27001", "NIS2", "GDPR", "SOC 2", "TISAX", "DORA", "ISO 9001"]
PLANS = [  # plan, period, price
    ("starter", "monthly", "149.00"),
    ("team", "monthly", "390.00"),
    ("professional", "yearly", "4800.00"),
    ("enterprise", "yearly", "12000.00"),
]
WORDS_A = ["Nordic", "Alpine", "Baltic", "Atlas", "Polar", "Cobalt", "Granite", "Lumen", "Vireo", "Kestrel",
           "Harbor", "Solstice", "Meridian", "Aurora", "Fjord", "Cedar", "Helix", "Quartz", "Tundra", "Vector"]
WORDS_B = ["Logistics", "Health", "Foods", "Robotics", "Energy", "Finance", "Retail", "Systems", "Media",
           "Insurance", "Pharma", "Mobility", "Analytics", "Water", "Textiles", "Telecom", "Legal", "Games"]
FORMS = [("Oy", "fi"), ("GmbH", "de"), ("SAS", "fr"), ("AB", "se"), ("AS", "no"), ("Ltd", "co.uk"), ("BV", "nl")]
PARTNER_NAMES = ["Nordic GRC", "Secura Consulting", "Complia Partners", "Vaka Advisory", "ISMS Works",
                 "Trust Lane", "Audit North", "Cyber Atelier", "Kontroll AG", "Conformité Conseil"]
FIRST = ["Aino", "Lukas", "Camille", "Elin", "Jonas", "Sofia", "Mikko", "Léa", "Anna", "Noah", "Emma", "Oskar"]


class _Plan:
    def __init__(self, seed: int, end: date, span_days: int) -> None:
        self.rng = random.Random(seed)
        self.end = end
        self.start = end - timedelta(days=span_days)
        self.items: list[tuple[date, int, dict[str, Any]]] = []
        self.n = 0
        self.seed = seed

    def add(self, day: date, type_: str, actor: str, **data: Any) -> None:
        if day > self.end:
            return
        self.n += 1
        self.items.append((day, self.n, {
            "id": f"s{self.seed}-{self.n:07d}", "type": type_, "on": day.isoformat(), "actor": actor,
            "data": {k: v for k, v in data.items() if v is not None},
        }))

    def day_between(self, a: date, b: date) -> date:
        return a + timedelta(days=self.rng.randint(0, max((b - a).days, 0)))


def generate(seed: int = 7, partners: int = 4, deals: int = 40, end: date | None = None,
             span_days: int = 730, usage_every: int = 14) -> list[dict[str, Any]]:
    return list(iter_generate(seed, partners, deals, end, span_days, usage_every))


def iter_generate(seed: int = 7, partners: int = 4, deals: int = 40, end: date | None = None,
                  span_days: int = 730, usage_every: int = 14) -> Iterator[dict[str, Any]]:
    plan = _Plan(seed, end or date(2026, 11, 1), span_days)
    rng = plan.rng
    manager = "vendor:manager"

    partner_ids = []
    for i in range(partners):
        name = PARTNER_NAMES[i % len(PARTNER_NAMES)] + ("" if i < len(PARTNER_NAMES) else f" {i // len(PARTNER_NAMES) + 1}")
        pid = name.lower().replace(" ", "-").replace("é", "e")
        partner_ids.append(pid)
        rate = rng.choice(["0.15", "0.20", "0.20", "0.25", "0.30"])
        plan.add(plan.start, "enroll_partner", manager, partner=pid, name=name, domain=f"{pid}.eu",
                 commission_rate=rate)
        if rng.random() < 0.5:  # a rate change mid-way: statements must use the rate of each charge's date
            plan.add(plan.day_between(plan.start + timedelta(days=90), plan.end), "set_commission_rate", manager,
                     partner=pid, commission_rate=rng.choice(["0.18", "0.22", "0.25"]))

    used: list[tuple[str, date, bool]] = []  # (domain, registered, went quiet) for second attempts
    for k in range(deals):
        pid = rng.choice(partner_ids)
        actor = f"partner:{pid}"
        fate = rng.random()
        duplicate = False
        if used and rng.random() < 0.1:
            # Another partner registers a customer someone registered before: a
            # duplicate while the first deal protects it, a fair takeover after
            # that deal went quiet for 90 days.
            domain, first, quiet = rng.choice(used)
            company = domain.split(".")[0].rsplit("-", 1)[0].replace("-", " ").title()
            if quiet and rng.random() < 0.6:
                reg = plan.day_between(first + timedelta(days=95), first + timedelta(days=200))
            else:
                reg = plan.day_between(first + timedelta(days=5), first + timedelta(days=60))
                duplicate = True
        else:
            form, tld = rng.choice(FORMS)
            company = f"{rng.choice(WORDS_A)} {rng.choice(WORDS_B)} {form}"
            domain = f"{company.lower().replace(' ', '-')}-{k}.{tld}"
            reg = plan.day_between(plan.start + timedelta(days=3), plan.end - timedelta(days=2))
            used.append((domain, reg, 0.06 <= fate < 0.14))
        deal = f"d-{seed}-{k}"
        contact = rng.choice(FIRST)
        if rng.random() < 0.03:  # a partner registering with its own email: refused
            plan.add(reg, "register_deal", actor, deal=deal + "-own", partner=pid, customer_name=company,
                     contact_name=contact, customer_email=f"sales@{pid}.eu")
        plan.add(reg, "register_deal", actor, deal=deal, partner=pid, customer_name=company, contact_name=contact,
                 customer_email=f"{contact.lower()}@{domain}", note=rng.choice([None, "met at a NIS2 webinar"]))
        if duplicate:
            continue  # the ledger denies it at once
        day = reg
        if fate < 0.06:
            plan.add(day + timedelta(days=rng.randint(1, 4)), "deny_deal", manager, deal=deal, reason="invalid-lead")
            continue
        accepted = reg < plan.end - timedelta(days=8) or rng.random() < 0.5
        if accepted:
            plan.add(day + timedelta(days=rng.randint(1, 6)), "accept_deal", manager, deal=deal)
        if fate < 0.14:
            continue  # goes quiet: its protection lapses after 90 days
        day += timedelta(days=rng.randint(3, 20))
        if rng.random() < 0.6:
            plan.add(day, "move_deal", actor, deal=deal, stage="newsletter-subscription")
            day += timedelta(days=rng.randint(3, 25))
        trial = None
        if rng.random() < 0.75:
            trial = f"t-{seed}-{k}"
            plan.add(day, "start_trial", actor, trial=trial, partner=pid, customer_name=company,
                     customer_email=f"{contact.lower()}@{domain}")
            plan.add(day, "move_deal", actor, deal=deal, stage="trial")
            _usage(plan, domain, day, day + timedelta(days=14), usage_every // 2 or 1, 0, 30)
            if rng.random() < 0.4:
                plan.add(day + timedelta(days=rng.randint(5, 12)), "add_deal_note", actor, deal=deal,
                         text="Please extend the trial to 30 days")
                plan.add(day + timedelta(days=rng.randint(6, 13)), "extend_trial", actor, trial=trial)
            day += timedelta(days=rng.randint(7, 13))
        if fate < 0.35:
            plan.add(day, "lose_deal", actor, deal=deal, note="chose to postpone the project")
            continue
        if fate < 0.45:
            if rng.random() < 0.5:
                plan.add(day, "add_deal_note", actor, deal=deal, text="budget decision next quarter")
            continue  # still open
        billing = rng.choices(["credit-card", "invoice", "partner"], weights=[5, 3, 2])[0]
        order = f"PO-{seed}-{k}" if billing == "invoice" else None
        if not accepted:  # a deal is won only once the vendor accepted it
            plan.add(day, "accept_deal", manager, deal=deal)
        plan.add(day, "win_deal", actor, deal=deal, billing=billing, order_number=order)
        if rng.random() < 0.08:
            continue  # won, but nobody recorded the subscription yet
        day += timedelta(days=rng.randint(0, 6))
        _subscription(plan, seed, k, deal, domain, billing, order, day)

    yield from (c for _, _, c in sorted(plan.items, key=lambda x: (x[0], x[1])))


def _subscription(plan: _Plan, seed: int, k: int, deal: str, domain: str, billing: str, order: str | None,
                  start: date) -> None:
    rng = plan.rng
    name, period, price = rng.choice(PLANS)
    currency = rng.choices(["EUR", "SEK", "USD"], weights=[8, 1, 1])[0]
    if currency == "SEK":
        price = str(Decimal(price) * 11)
    sub = f"s-{seed}-{k}"
    plan.add(start, "start_subscription", "vendor:manager", subscription=sub, customer_domain=domain, plan=name,
             amount=price, currency=currency, period=period, billing=billing, order_number=order, deal=deal)
    months = 1 if period == "monthly" else 12
    cancel_after = rng.randint(3, 30) if rng.random() < 0.2 else None
    charge_day, n = start, 1
    while True:
        nxt = add_months(start, months * n)
        if nxt > plan.end or (cancel_after is not None and n * months >= cancel_after):
            break
        charge_day, n = nxt, n + 1
        plan.add(charge_day, "renew_subscription", "vendor:manager", subscription=sub)
    if rng.random() < 0.1:
        cents = rng.randint(1, int(Decimal(price) * 100) // 2)
        plan.add(charge_day + timedelta(days=rng.randint(3, 40)), "refund", "vendor:manager", subscription=sub,
                 amount=f"{cents // 100}.{cents % 100:02d}")
    stop = plan.end
    if cancel_after is not None:
        stop = charge_day + timedelta(days=rng.randint(1, 20))
        plan.add(stop, "cancel_subscription", "vendor:manager", subscription=sub)
    _usage(plan, domain, start, stop, 14, 10, 100)


def _usage(plan: _Plan, domain: str, start: date, stop: date, every: int, lo: int, hi: int) -> None:
    rng = plan.rng
    framework = rng.choice(FRAMEWORKS)
    users = rng.randint(2, 40)
    progress = rng.randint(0, 20)
    day = start + timedelta(days=rng.randint(0, 2))
    quiet = rng.random() < 0.15  # some customers go quiet: attention flags
    while day < min(stop, plan.end):
        progress = min(100, progress + rng.randint(0, 6))
        plan.add(day, "report_usage", "system", customer_domain=domain, users=users, framework=framework,
                 progress=progress, activities=rng.randint(lo, hi) if not quiet else 0)
        day += timedelta(days=every)
