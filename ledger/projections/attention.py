"""Attention flags: what needs someone's attention on a given day.

Every flag is a window around the `as of` date, so flags are not stored:
they are computed from the facts the pipeline and overview projections
keep (deals, trials, subscriptions, daily usage). Each code is one small
function below, registered with `@rule` with its subject kind and one-line
description (`RULES`; `audit explain item` reads the subject kind from it);
README lists the codes. Windows come from the settings (settings.Attention),
the protection and trial windows from the domain (aggregates.deal, .trial)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Any, TypedDict

from ..aggregates.deal import last_protected_action
from ..export import plural
from ..settings import Attention
from ..timeline import shift
from .base import held
from .overview import (
    SUBSCRIPTIONS, TRIALS, Usage, renewals_due, select_rows, subscription_active, trial_end, trial_runs,
)
from .pipeline import deal_rows


class Item(TypedDict):
    """One attention item: its code, the id of its subject (a trial, deal,
    subscription or customer domain, by the code's subject kind), the
    partner, the customer domain and a one-line reason."""

    code: str
    subject: str
    partner: str | None
    domain: str
    reason: str


@dataclass(frozen=True)
class Rule:
    code: str
    subject: str  # the kind of record an item's `subject` names: trial, deal, subscription or customer
    text: str     # what it flags, with the settings that size its window in braces
    find: Callable[[Day], Iterable[Item]]
    # Deal rules: a SQL condition on the deal (alias t) and its parameters that
    # only narrows the candidates, evaluated in the one pass over the deals.
    narrow: Callable[[Day], tuple[str, tuple[Any, ...]]] | None = None


RULES: dict[str, Rule] = {}


def rule(code: str, subject: str, text: str,
         narrow: Callable[[Day], tuple[str, tuple[Any, ...]]] | None = None) -> Callable[[Any], Any]:
    """Register the function that finds one code's items on a day."""
    def register(find: Callable[[Day], Iterable[Item]]) -> Callable[[Day], Iterable[Item]]:
        RULES[code] = Rule(code, subject, text, find, narrow)
        return find
    return register


def _item(code: str, subject: str, partner: str | None, domain: str, reason: str) -> Item:
    return {"code": code, "subject": subject, "partner": partner, "domain": domain, "reason": reason}


class Day:
    """What the rules of one `as of` day share, each read once, when a rule
    first asks: the running trials, the deals (one pass, a flag per deal
    rule), the subscriptions, usage figures and renewals due."""

    def __init__(self, sql: Any, as_of: date, partner: str | None, settings: Attention,
                 usage: Usage, customers: list[dict[str, Any]] | None) -> None:
        self.sql, self.as_of, self.partner, self.s = sql, as_of, partner, settings
        self.usage, self.customers = usage, customers
        self.d = as_of.isoformat()

    def ago(self, days: int) -> str:
        return shift(self.as_of, -days).isoformat()

    def ahead(self, days: int) -> str:
        return shift(self.as_of, days).isoformat()

    def _scope(self, where: str, params: list[Any]) -> tuple[str, list[Any]]:
        if self.partner is None:
            return where, params
        return f"t.partner = ? AND {where}", [self.partner, *params]

    @cached_property
    def running(self) -> list[dict[str, Any]]:
        """Trials running on the day."""
        if self.customers is not None:
            trials = [t for c in self.customers for t in c["trials"]]
        else:
            d = self.d
            trials = select_rows(self.sql, TRIALS, *self._scope(
                "t.started_on <= ? AND ? < t.ends_on AND (t.converted_on IS NULL OR t.converted_on > ?) "
                "AND (t.expired_on IS NULL OR t.expired_on > ?)", [d, d, d, d]))
        return [t for t in trials if trial_runs(t, self.d)]

    @cached_property
    def deals(self) -> list[dict[str, Any]]:
        """Deals any deal rule may flag, each with a 0/1 flag per deal rule's code."""
        flags = {r.code: r.narrow(self) for r in RULES.values() if r.narrow is not None}
        where = "(" + " OR ".join(f"({cond})" for cond, _ in flags.values()) + ")"
        params: tuple[Any, ...] = tuple(p for _, ps in flags.values() for p in ps)
        if self.partner is not None:
            where, params = "t.partner = ? AND " + where, (self.partner, *params)
        return deal_rows(self.sql, self.d, where, params, flags=flags)

    @cached_property
    def subscriptions(self) -> list[dict[str, Any]]:
        """Subscriptions started by the day and not cancelled before the recent-cancellation window."""
        recent = self.ago(self.s.cancelled_recent_days)
        if self.customers is not None:
            subs = [x for c in self.customers for x in c["subscriptions"]]
        else:
            subs = select_rows(self.sql, SUBSCRIPTIONS, *self._scope(
                "t.started_on <= ? AND (t.cancelled_on IS NULL OR t.cancelled_on > ?)", [self.d, recent]))
        return [x for x in subs if x["started_on"] <= self.d and not (x["cancelled_on"] and x["cancelled_on"] <= recent)]

    @cached_property
    def active(self) -> list[dict[str, Any]]:
        return [x for x in self.subscriptions if subscription_active(x, self.d)]

    @cached_property
    def figures(self) -> dict[str, dict[str, Any]]:
        """Usage figures of the running trials' and the active subscriptions' domains."""
        return self.usage(x["domain"] for x in self.running + self.active)

    def last_activity(self, domain: str) -> str | None:
        return self.figures[domain]["last_activity"]


# -- trials --------------------------------------------------------------------------
@rule("trial-ending", "trial", "a running trial ends within {trial_ending_days} days")
def trial_ending(day: Day) -> Iterator[Item]:
    for t in day.running:
        end = trial_end(t, day.d)
        left = (date.fromisoformat(end) - day.as_of).days
        if left <= day.s.trial_ending_days:
            yield _item("trial-ending", t["trial"], t["partner"], t["domain"],
                        f"trial for {t['domain']} ends on {end} (in {plural(left, 'day')})")


@rule("trial-inactive", "trial",
      "a trial running for {trial_inactive_days} days or more had no activity in the last {trial_inactive_days}")
def trial_inactive(day: Day) -> Iterator[Item]:
    since = day.ago(day.s.trial_inactive_days)
    for t in day.running:
        last = day.last_activity(t["domain"])
        if t["started_on"] <= since and (last is None or last <= since):
            yield _item("trial-inactive", t["trial"], t["partner"], t["domain"],
                        f"no activity in trial for {t['domain']} {f'since {last}' if last else 'at all'}")


# -- deals ---------------------------------------------------------------------------
def _pending(day: Day) -> tuple[str, tuple[Any, ...]]:
    return ("t.registered_on < ? AND (t.review_on IS NULL OR t.review_on > ?)",
            (day.ago(day.s.deal_pending_days), day.d))


@rule("deal-pending-review", "deal", "a deal has waited more than {deal_pending_days} days for review", _pending)
def deal_pending_review(day: Day) -> Iterator[Item]:
    for r in day.deals:
        if r["deal-pending-review"]:
            waited = (day.as_of - r["registered_on"]).days
            yield _item("deal-pending-review", r["deal"], r["partner"], r["customer_domain"],
                        f"deal for {r['customer_domain']} pending review for {plural(waited, 'day')}")


def _lapsing(day: Day) -> tuple[str, tuple[Any, ...]]:
    # Cheap necessary conditions first (open, not denied, not lapsed on the
    # day; acted on lately), then one on the action days: the last action by
    # the day is one whose protection ends within the window. The deal's
    # protection_until (deal.protection_end) decides.
    lo = last_protected_action(day.as_of).isoformat()
    hi = last_protected_action(shift(day.as_of, day.s.protection_lapsing_days)).isoformat()
    a = held(day.sql, "a")
    return ("(t.closed_on IS NULL OR t.closed_on > ?) AND (t.lapsed_on IS NULL OR t.lapsed_on > ?) "
            "AND NOT (t.review = 'denied' AND t.review_on <= ?) AND t.last_action > ? "
            f"AND EXISTS (SELECT 1 FROM pl_actions a WHERE a.agg = t.agg AND {a} AND a.day > ? AND a.day <= ?) "
            f"AND NOT EXISTS (SELECT 1 FROM pl_actions a WHERE a.agg = t.agg AND {a} AND a.day > ? AND a.day <= ?)",
            (day.d, day.d, day.d, lo, lo, hi, hi, day.d))


@rule("protection-lapsing", "deal", "a deal's protection lapses within {protection_lapsing_days} days", _lapsing)
def protection_lapsing(day: Day) -> Iterator[Item]:
    for r in day.deals:
        until = r["protected_until"]
        if r["protection-lapsing"] and until and day.as_of < until <= shift(day.as_of, day.s.protection_lapsing_days):
            domain = r["customer_domain"]
            yield _item("protection-lapsing", r["deal"], r["partner"], domain,
                        f"protection of {domain} lapses on {until} "
                        f"(in {plural((until - day.as_of).days, 'day')}) unless the deal moves")


def _won(day: Day) -> tuple[str, tuple[Any, ...]]:
    # Won with no subscription (for the deal, or its customer since the deal was registered).
    return ("t.stage = 'closed-won' AND t.closed_on <= ? AND NOT EXISTS (SELECT 1 FROM ov_subscriptions s "
            f"WHERE {held(day.sql, 's')} AND (s.deal = t.deal OR (s.domain = t.customer_domain "
            "AND s.started_on >= t.registered_on)) AND s.started_on <= ?)",
            (day.ago(day.s.won_without_subscription_days), day.d))


@rule("won-without-subscription", "deal",
      "a deal was won {won_without_subscription_days} or more days ago and has no subscription", _won)
def won_without_subscription(day: Day) -> Iterator[Item]:
    for r in day.deals:
        if r["won-without-subscription"]:
            yield _item("won-without-subscription", r["deal"], r["partner"], r["customer_domain"],
                        f"deal for {r['customer_domain']} won on {r['closed_on']} has no subscription")


# -- subscriptions and customers -----------------------------------------------------------
@rule("subscription-cancelled", "subscription", "a subscription was cancelled in the last {cancelled_recent_days} days")
def subscription_cancelled(day: Day) -> Iterator[Item]:
    for x in day.subscriptions:
        if x["cancelled_on"] and x["cancelled_on"] <= day.d:
            yield _item("subscription-cancelled", x["subscription"], x["partner"], x["domain"],
                        f"subscription {x['plan']} of {x['domain']} cancelled on {x['cancelled_on']}")


@rule("customer-inactive", "customer",
      "a customer subscribed for {customer_inactive_days} days or more had no activity in that time")
def customer_inactive(day: Day) -> Iterator[Item]:
    since = day.ago(day.s.customer_inactive_days)
    seen: set[str] = set()
    for x in day.active:
        last = day.last_activity(x["domain"])
        if x["domain"] not in seen and x["started_on"] <= since and (last is None or last <= since):
            seen.add(x["domain"])
            yield _item("customer-inactive", x["domain"], x["partner"], x["domain"],
                        f"active customer {x['domain']} has had no activity {f'since {last}' if last else 'ever'}")


@rule("renewal-due", "subscription",
      "a subscription's renewal is due within {renewal_due_days_monthly} days (monthly) or "
      "{renewal_due_days_yearly} days (yearly), or overdue")
def renewal_due(day: Day) -> Iterator[Item]:
    due = renewals_due(day.sql, day.active, day.as_of)
    for x in day.active:
        renewal = due[x["agg"]]
        if renewal <= day.ahead(day.s.renewal_due_window(x["period"])):
            when = "overdue since" if renewal < day.d else "due on"
            yield _item("renewal-due", x["subscription"], x["partner"], x["domain"],
                        f"renewal of {x['plan']} for {x['domain']} {when} {renewal}")


# Each code's subject kind and description (`audit explain item`, README).
SUBJECTS = {code: r.subject for code, r in RULES.items()}
CODES = {code: r.text for code, r in RULES.items()}


def items(sql: Any, as_of: date, partner: str | None = None, settings: Attention | None = None,
          usage: Usage | None = None, customers: list[dict[str, Any]] | None = None) -> list[Item]:
    """Every attention item on `as_of` (of one partner, or all), with each
    fact taken as it stood that day, ordered by partner, domain, code and
    subject. `customers` (overview.customers of the same scope and day)
    saves reading trials and subscriptions again; `usage` shares the usage
    figures already read. The SQL only narrows, the rules decide."""
    day = Day(sql, as_of, partner, settings or Attention.from_env(), usage or Usage(sql, as_of), customers)
    out = [item for r in RULES.values() for item in r.find(day)]
    out.sort(key=lambda i: (i["partner"] or "", i["domain"], i["code"], i["subject"]))
    return out
