"""Attention flags: what needs someone's attention on a given day.

Every flag is a window around the `as of` date, so flags are not stored:
they are computed from the facts the pipeline and overview projections
keep (deals, trials, subscriptions, daily usage). Each rule is one function
below, with its code, subject and one-line reason; README lists the codes."""

from __future__ import annotations

from datetime import date
from functools import cache
from typing import Any

from ..aggregates.deal import PROTECTION_DAYS
from ..export import plural
from ..settings import Attention
from ..timeline import shift
from .overview import (
    SUBSCRIPTIONS, TRIALS, Usage, renewals_due, select_rows, subscription_active, trial_end, trial_runs,
)
from .base import held
from .pipeline import deal_rows

# Each code's subject: the kind of record its `subject` names (`audit explain item` uses it).
SUBJECTS = {
    "trial-ending": "trial", "trial-inactive": "trial", "deal-pending-review": "deal",
    "protection-lapsing": "deal", "won-without-subscription": "deal", "subscription-cancelled": "subscription",
    "customer-inactive": "customer", "renewal-due": "subscription",
}

CODES = {
    "trial-ending": "a running trial ends within {trial_ending_days} days",
    "trial-inactive": "a trial running for {trial_inactive_days} days or more had no activity in the last {trial_inactive_days}",
    "deal-pending-review": "a deal has waited more than {deal_pending_days} days for review",
    "protection-lapsing": "a deal's protection lapses within {protection_lapsing_days} days",
    "won-without-subscription": "a deal was won {won_without_subscription_days} or more days ago and has no subscription",
    "subscription-cancelled": "a subscription was cancelled in the last {cancelled_recent_days} days",
    "customer-inactive": "a customer subscribed for {customer_inactive_days} days or more had no activity in that time",
    "renewal-due": ("a subscription's renewal is due within {renewal_due_days_monthly} days (monthly) or "
                    "{renewal_due_days_yearly} days (yearly), or overdue"),
}


def _scope(partner: str | None, where: str, params: list[Any]) -> tuple[str, list[Any]]:
    if partner is None:
        return where, params
    return f"t.partner = ? AND {where}", [partner, *params]


def _item(code: str, subject: str, partner: str | None, domain: str, reason: str) -> dict[str, Any]:
    return {"code": code, "subject": subject, "partner": partner, "domain": domain, "reason": reason}


def items(sql: Any, as_of: date, partner: str | None = None, settings: Attention | None = None,
          usage: Usage | None = None, customers: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every attention item on `as_of`, with each fact taken as it stood that day.
    `customers` (overview.customers of the same scope and day) saves reading
    trials and subscriptions again; the SQL only narrows, the rules decide."""
    s = settings or Attention.from_env()
    usage_of = usage or Usage(sql, as_of)
    d = as_of.isoformat()

    @cache  # asked once per row
    def ago(days: int) -> str:
        return shift(as_of, -days).isoformat()

    @cache
    def ahead(days: int) -> str:
        return shift(as_of, days).isoformat()

    out: list[dict[str, Any]] = []

    # Trials running on the day.
    if customers is not None:
        trials = [t for c in customers for t in c["trials"]]
    else:
        trials = select_rows(sql, TRIALS, *_scope(
            partner,
            "t.started_on <= ? AND ? < t.ends_on AND (t.converted_on IS NULL OR t.converted_on > ?) "
            "AND (t.expired_on IS NULL OR t.expired_on > ?)",
            [d, d, d, d],
        ))
    running = [t for t in trials if trial_runs(t, d)]
    usage = usage_of(t["domain"] for t in running)
    for t in running:
        end = trial_end(t, d)
        left = (date.fromisoformat(end) - as_of).days
        if left <= s.trial_ending_days:
            out.append(_item("trial-ending", t["trial"], t["partner"], t["domain"],
                             f"trial for {t['domain']} ends on {end} (in {plural(left, 'day')})"))
        last = usage[t["domain"]]["last_activity"]
        if t["started_on"] <= ago(s.trial_inactive_days) and (last is None or last <= ago(s.trial_inactive_days)):
            since = f"since {last}" if last else "at all"
            out.append(_item("trial-inactive", t["trial"], t["partner"], t["domain"],
                             f"no activity in trial for {t['domain']} {since}"))

    # Deals: waiting for review, protection about to lapse, won with no
    # subscription yet. One pass over the deals, each rule's SQL a flag.
    lo, hi = ago(PROTECTION_DAYS), ago(PROTECTION_DAYS - s.protection_lapsing_days)
    rules = {
        "pending": ("t.registered_on < ? AND (t.review_on IS NULL OR t.review_on > ?)",
                    (ago(s.deal_pending_days), d)),
        # Protection: cheap necessary conditions first (open, not denied, not
        # lapsed on the day; acted on lately), then the exact one on the action
        # days: the last action by the day was N days short of 90 ago.
        "lapsing": ("(t.closed_on IS NULL OR t.closed_on > ?) AND (t.lapsed_on IS NULL OR t.lapsed_on > ?) "
                    "AND NOT (t.review = 'denied' AND t.review_on <= ?) AND t.last_action > ? "
                    f"AND EXISTS (SELECT 1 FROM pl_actions a WHERE a.agg = t.agg AND {held(sql, 'a')} "
                    "AND a.day > ? AND a.day <= ?) "
                    f"AND NOT EXISTS (SELECT 1 FROM pl_actions a WHERE a.agg = t.agg AND {held(sql, 'a')} "
                    "AND a.day > ? AND a.day <= ?)",
                    (d, d, d, lo, lo, hi, hi, d)),
        # Won with no subscription (for the deal, or its customer since the deal was registered).
        "won": ("t.stage = 'closed-won' AND t.closed_on <= ? AND NOT EXISTS (SELECT 1 FROM ov_subscriptions s "
                f"WHERE {held(sql, 's')} AND (s.deal = t.deal OR (s.domain = t.customer_domain AND s.started_on >= t.registered_on)) "
                "AND s.started_on <= ?)", (ago(s.won_without_subscription_days), d)),
    }
    where = "(" + " OR ".join(f"({cond})" for cond, _ in rules.values()) + ")"
    params: tuple[Any, ...] = tuple(p for _, ps in rules.values() for p in ps)
    if partner is not None:
        where, params = "t.partner = ? AND " + where, (partner, *params)
    for r in deal_rows(sql, d, where, params, flags=rules):
        domain = r["customer_domain"]
        if r["pending"]:
            waited = (as_of - date.fromisoformat(r["registered_on"])).days
            out.append(_item("deal-pending-review", r["deal"], r["partner"], domain,
                             f"deal for {domain} pending review for {plural(waited, 'day')}"))
        until = r["protected_until"]
        if r["lapsing"] and until and d < until <= ahead(s.protection_lapsing_days):
            out.append(_item("protection-lapsing", r["deal"], r["partner"], domain,
                             f"protection of {domain} lapses on {until} "
                             f"(in {plural((date.fromisoformat(until) - as_of).days, 'day')}) unless the deal moves"))
        if r["won"]:
            out.append(_item("won-without-subscription", r["deal"], r["partner"], domain,
                             f"deal for {domain} won on {r['closed_on']} has no subscription"))

    # Subscriptions: recent cancellations, renewals due, inactive customers.
    recent = ago(s.cancelled_recent_days)
    if customers is not None:
        subs = [x for c in customers for x in c["subscriptions"]]
    else:
        subs = select_rows(sql, SUBSCRIPTIONS, *_scope(
            partner, "t.started_on <= ? AND (t.cancelled_on IS NULL OR t.cancelled_on > ?)", [d, recent]))
    subs = [x for x in subs if x["started_on"] <= d and not (x["cancelled_on"] and x["cancelled_on"] <= recent)]
    active = [x for x in subs if subscription_active(x, d)]
    usage = usage_of(x["domain"] for x in active)
    due = renewals_due(sql, active, as_of)
    for x in subs:
        if x["cancelled_on"] and x["cancelled_on"] <= d:
            out.append(_item("subscription-cancelled", x["subscription"], x["partner"], x["domain"],
                             f"subscription {x['plan']} of {x['domain']} cancelled on {x['cancelled_on']}"))
    inactive_seen: set[str] = set()
    for x in active:
        renewal = due[x["agg"]]
        if renewal <= ahead(s.renewal_due_window(x["period"])):
            when = "overdue since" if renewal < d else "due on"
            out.append(_item("renewal-due", x["subscription"], x["partner"], x["domain"],
                             f"renewal of {x['plan']} for {x['domain']} {when} {renewal}"))
        last = usage[x["domain"]]["last_activity"]
        quiet = last is None or last <= ago(s.customer_inactive_days)
        if x["domain"] not in inactive_seen and x["started_on"] <= ago(s.customer_inactive_days) and quiet:
            inactive_seen.add(x["domain"])
            since = f"since {last}" if last else "ever"
            out.append(_item("customer-inactive", x["domain"], x["partner"], x["domain"],
                             f"active customer {x['domain']} has had no activity {since}"))

    out.sort(key=lambda i: (i["partner"] or "", i["domain"], i["code"], i["subject"]))
    return out
