"""Customer overview: per partner, each customer's status (trial, active,
closed, cancelled), main framework and progress, users, activities in the
last 90 days, and how many attention items it has.

The tables hold facts with their effective dates (trials, subscriptions,
daily usage); statuses and windows are computed for the asked `as of` date."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TypedDict

import orjson

from .. import money
from ..aggregates import Customer, Subscription, Trial, UsageDay, aggregate_id
from ..aggregates.subscription import period_end
from ..aggregates.trial import trial_end as trial_window_end
from ..timeline import business_date, shift
from .base import LIVE, Projection, Table, Writer, held, iso, known, typed

CUSTOMERS = Table(
    "ov_customers",
    key=("agg",),
    columns={"agg": "TEXT", "domain": "TEXT", "name": "TEXT", "partner": "TEXT"},
    indexes=(("partner",), ("domain",)),
)
TRIALS = Table(
    "ov_trials",
    key=("agg",),
    columns={
        "agg": "TEXT", "trial": "TEXT", "partner": "TEXT", "domain": "TEXT", "customer_name": "TEXT",
        "started_on": "TEXT", "days": "BIGINT", "ends_on": "TEXT", "extended_on": "TEXT",
        "extended_ends_on": "TEXT", "converted_on": "TEXT", "expired_on": "TEXT",
    },
    indexes=(("partner",), ("domain",)),
)
SUBSCRIPTIONS = Table(
    "ov_subscriptions",
    key=("agg",),
    columns={
        "agg": "TEXT", "subscription": "TEXT", "partner": "TEXT", "domain": "TEXT", "deal": "TEXT",
        "plan": "TEXT", "amount": "TEXT", "currency": "TEXT", "period": "TEXT", "billing": "TEXT",
        "started_on": "TEXT", "last_charge_on": "TEXT", "renewal_due": "TEXT", "cancelled_on": "TEXT",
    },
    indexes=(("partner",), ("domain",), ("deal",)),
)
CHARGES = Table(
    "ov_charges",
    key=("agg", "charge"),
    columns={"agg": "TEXT", "charge": "BIGINT", "day": "TEXT", "period_end": "TEXT"},
    append_only=True,
)
USAGE = Table(
    "ov_usage",
    key=("domain", "day"),
    columns={
        "domain": "TEXT", "day": "TEXT", "users": "BIGINT", "framework": "TEXT",
        "progress": "BIGINT", "activities": "BIGINT",
    },
)
# Per domain, each figure with the day it was last reported, and the
# activities of the days within the window before the last active day. An
# as-of query on or after those days (nearly every query: as of today) reads
# this one row; a query into the past looks the figures up in ov_usage.
LATEST = Table(
    "ov_usage_latest",
    key=("domain",),
    columns={
        "domain": "TEXT", "users": "BIGINT", "users_day": "TEXT", "framework": "TEXT", "framework_day": "TEXT",
        "progress": "BIGINT", "progress_day": "TEXT", "last_activity": "TEXT", "recent": "TEXT",
    },
    current_only=True,  # a cache of ov_usage, changed by every report: a known-at query reads ov_usage
)
FIGURES = ("users", "framework", "progress")
_USAGE = frozenset({UsageDay.Reported, UsageDay.ReportedAgain})
# `overview --filter`: customers of a status, or with attention items.
FILTERS = ("trial", "active", "closed", "attention")

ACTIVITY_WINDOW_DAYS = 90


class Overview(Projection):
    name = "overview"
    version = 6  # 6: rows keep the positions and recorded times between which they held
    tables = (CUSTOMERS, TRIALS, SUBSCRIPTIONS, CHARGES, USAGE, LATEST)
    handles = (Customer.Recognised, Customer.TrialAttached, Customer.SubscriptionAttached,
               UsageDay.Reported, UsageDay.ReportedAgain, Trial.Started, Trial.Extended,
               Trial.Converted, Trial.Expired, Subscription.Started, Subscription.Renewed,
               Subscription.Cancelled)

    def reads(self, e: Any, n: Any) -> list[tuple[str, tuple[Any, ...]]]:
        agg = e.originator_id.hex
        match e:
            case UsageDay.Reported() | UsageDay.ReportedAgain():
                return [("ov_usage", (e.domain, e.day.isoformat())), ("ov_usage_latest", (e.domain,))]
            case Customer.Recognised() | Customer.TrialAttached() | Customer.SubscriptionAttached():
                return [("ov_customers", (agg,))]
            case Trial.Started():  # its own row too: known absent, so nothing to close
                return [("ov_customers", (aggregate_id(Customer.KIND, e.domain).hex,)), ("ov_trials", (agg,))]
            case Trial.Extended() | Trial.Converted() | Trial.Expired():
                return [("ov_trials", (agg,))]
            case Subscription.Started() | Subscription.Renewed() | Subscription.Cancelled():
                return [("ov_subscriptions", (agg,))]
        return []

    def apply(self, w: Writer, e: Any, n: Any) -> None:
        if type(e) in _USAGE:  # most events: they need no aggregate id or effective date
            self._usage(w, e)
            return
        agg = e.originator_id.hex
        day = business_date(e.at).isoformat()
        match e:
            case Customer.Recognised():
                w["ov_customers"].put({"agg": agg, "domain": e.domain, "name": e.name})
            case Customer.TrialAttached() | Customer.SubscriptionAttached():
                if e.partner:
                    w["ov_customers"].update(agg, partner=e.partner)
            case Trial.Started():
                w["ov_trials"].put({
                    "agg": agg, "trial": e.trial, "partner": e.partner, "domain": e.domain,
                    "customer_name": e.customer_name, "started_on": day, "days": e.days,
                    "ends_on": iso(trial_window_end(business_date(e.at), e.days)),
                })
                # A customer first seen through usage or a subscription has its
                # domain as name; the trial brings the company's name.
                key = aggregate_id(Customer.KIND, e.domain).hex
                row = w["ov_customers"].get(key)
                if row and row["name"] == e.domain:
                    w["ov_customers"].update(key, name=e.customer_name)
            case Trial.Extended():
                t = w["ov_trials"].get(agg)
                end = iso(trial_window_end(date.fromisoformat(t["started_on"]), e.days))
                w["ov_trials"].update(agg, extended_on=day, extended_ends_on=end, ends_on=end)
            case Trial.Converted():
                w["ov_trials"].update(agg, converted_on=day)
            case Trial.Expired():
                t = w["ov_trials"].get(agg)
                w["ov_trials"].update(agg, expired_on=t["ends_on"])
            case Subscription.Started():
                w["ov_subscriptions"].put({
                    "agg": agg, "subscription": e.subscription, "partner": e.partner,
                    "domain": e.domain, "deal": e.deal, "plan": e.plan, "amount": str(e.amount),
                    "currency": e.currency, "period": e.period, "billing": e.billing,
                    "started_on": day, "last_charge_on": day,
                    "renewal_due": iso(period_end(business_date(e.at), e.period)),
                })
                w["ov_charges"].put({"agg": agg, "charge": 1, "day": day,
                                     "period_end": iso(period_end(business_date(e.at), e.period))})
            case Subscription.Renewed():
                w["ov_subscriptions"].update(agg, last_charge_on=day, renewal_due=iso(e.period_end))
                w["ov_charges"].put({"agg": agg, "charge": e.charge, "day": day, "period_end": iso(e.period_end)})
            case Subscription.Cancelled():
                w["ov_subscriptions"].update(agg, cancelled_on=day)

    @staticmethod
    def _usage(w: Writer, e: Any) -> None:
        """A day's usage report: the day's figures and activities, and the
        domain's latest figures and recent activity."""
        domain, day = e.domain, e.day.isoformat()
        figures = {col: value for col in FIGURES if (value := getattr(e, col)) is not None}
        usage = w["ov_usage"]
        row = usage.get(domain, day) or {"domain": domain, "day": day, "activities": 0}
        row.update(figures)
        row["activities"] = (row["activities"] or 0) + (e.activities or 0)
        usage.put(row)
        latest = w["ov_usage_latest"].get(domain) or {"domain": domain}
        for col, value in figures.items():  # a later report on the same day replaces the figure
            if (latest.get(col + "_day") or "") <= day:
                latest[col], latest[col + "_day"] = value, day
        if e.activities:
            last = max(latest.get("last_activity") or day, day)
            recent = orjson.loads(latest.get("recent") or "{}")
            recent[day] = recent.get(day, 0) + e.activities
            cutoff = (date.fromisoformat(last) - timedelta(days=ACTIVITY_WINDOW_DAYS)).isoformat()
            # The same compact text json.dumps(separators=(",", ":")) wrote: keys are ISO dates.
            latest["recent"] = orjson.dumps({d: n for d, n in sorted(recent.items()) if d > cutoff}).decode()
            latest["last_activity"] = last
        w["ov_usage_latest"].put(latest)


# -- queries -----------------------------------------------------------------
class CustomerRow(TypedDict):
    """An overview row (Ledger.overview): a customer as it stood on a day."""

    customer: str
    domain: str
    partner: str | None
    status: str            # trial, active, closed, cancelled or prospect
    framework: str | None
    progress: int | None
    users: int | None
    activities_90d: int
    attention: int         # attention items of the customer on the day


class SubscriptionRow(TypedDict):
    """A subscription as it stood on a day (subscriptions). Dates are business
    dates; `amount` the plan's price in the currency's minor units."""

    subscription: str
    partner: str | None
    deal: str | None
    customer_domain: str
    plan: str
    amount: Decimal
    currency: str
    period: str            # monthly or yearly
    billing: str
    status: str            # active or cancelled
    current_period_start: date | None
    current_period_end: date | None
    next_renewal: date | None


class TrialRow(TypedDict):
    """A trial as it stood on a day (trials)."""

    trial: str
    partner: str | None
    customer_name: str
    domain: str
    started_on: date
    ends_on: date          # the first day it no longer runs (trial_end)
    extended: bool         # extended by the day
    running: bool          # trial_runs on the day


def select_rows(sql: Any, table: Table, where: str, params: list[Any]) -> list[dict[str, Any]]:
    """Rows of `table` (alias t) matching `where`, as the reader's cut knew them."""
    cols = list(table.columns)
    select = ", ".join("t." + c for c in cols)
    return [dict(zip(cols, r)) for r in sql.all(
        f"SELECT {select} FROM {table.name} t WHERE {held(sql, 't')} AND {where}", params)]


def select_with_customer(sql: Any, tables: list[Table], where: str,
                         params: list[Any]) -> list[list[tuple[Any, ...]]]:
    """Per table with a domain (alias t), its rows matching `where`, each as
    (row, customer name, customer owner, latest usage row or None: None too
    for a known-at reader, the latest row being current only); the tables'
    queries go to the database together."""
    extra = list(LATEST.columns)
    live = known(sql) == LIVE
    usage_cols = ", ".join("u." + c for c in extra) if live else ", ".join(["NULL"] * len(extra))
    usage_join = "LEFT JOIN ov_usage_latest u ON u.domain = t.domain " if live else ""
    queries = [(
        f"SELECT {', '.join('t.' + c for c in table.columns)}, c.name, c.partner, {usage_cols} "
        f"FROM {table.name} t LEFT JOIN ov_customers c ON c.domain = t.domain AND {held(sql, 'c')} "
        f"{usage_join}WHERE {held(sql, 't')} AND {where}", params) for table in tables]
    out = []
    for table, rows in zip(tables, sql.all_many(queries)):
        cols, n = list(table.columns), len(table.columns)
        out.append([(dict(zip(cols, r)), r[n], r[n + 1], dict(zip(extra, r[n + 2:])) if r[n + 2] is not None else None)
                    for r in rows])
    return out


def trial_end(t: dict[str, Any], day: str) -> str:
    """When the trial ended or ends, as it stood on `day` (an extension counts from the day it was made)."""
    if not t["extended_on"]:
        return t["ends_on"]
    if t["extended_on"] <= day:
        return t["extended_ends_on"]
    return iso(trial_window_end(date.fromisoformat(t["started_on"]), t["days"]))


def expiry_candidates(sql: Any, day: date) -> list[str]:
    """Trials that may have expired by `day`: neither converted nor expired,
    ending on or before it. Only narrows: the sweep asks each Trial
    (Trial.expire_if_due, the trial window's home)."""
    return [r[0] for r in sql.all(
        f"SELECT t.trial FROM ov_trials t WHERE {held(sql, 't')} AND t.converted_on IS NULL "
        "AND t.expired_on IS NULL AND t.ends_on <= ?", [day.isoformat()])]


def trial_runs(t: dict[str, Any], day: str) -> bool:
    return (
        t["started_on"] <= day < trial_end(t, day)
        and not (t["converted_on"] and t["converted_on"] <= day)
        and not (t["expired_on"] and t["expired_on"] <= day)
    )


def renewals_due(sql: Any, subs: list[dict[str, Any]], as_of: date) -> dict[str, str]:
    """Per subscription row: the end of the period of its latest charge by `as_of`."""
    day = as_of.isoformat()
    # Charges come in order, so a row whose last charge is by `as_of` already
    # holds the answer; only a query into the past looks at the charges.
    out = {s["agg"]: s["renewal_due"] for s in subs if s["last_charge_on"] <= day}
    for chunk in sql.chunks([s["agg"] for s in subs if s["agg"] not in out]):
        cond, params = sql.in_("s.agg", chunk)
        for agg, period_end_ in sql.all(
            f"SELECT s.agg, (SELECT c.period_end FROM ov_charges c WHERE c.agg = s.agg AND {held(sql, 'c')} "
            f"AND c.day <= ? ORDER BY c.charge DESC LIMIT 1) FROM ov_subscriptions s WHERE {held(sql, 's')} AND {cond}",
            [day, *params],
        ):
            out[agg] = period_end_
    return out


def subscription_active(s: dict[str, Any], day: str) -> bool:
    return s["started_on"] <= day and not (s["cancelled_on"] and s["cancelled_on"] <= day)


def customer_status(trials: list[dict[str, Any]], subs: list[dict[str, Any]], day: str) -> str:
    if any(subscription_active(s, day) for s in subs):
        return "active"
    if any(trial_runs(t, day) for t in trials):
        return "trial"
    if any(s["started_on"] <= day for s in subs):
        return "cancelled"
    if any(t["started_on"] <= day for t in trials):
        return "closed"
    return "prospect"


class Usage:
    """Usage figures on one `as of` day, read once per domain however many
    parts of a query (overview rows, attention rules) ask for them. `latest`
    holds ov_usage_latest rows already read (None: no usage reported)."""

    def __init__(self, sql: Any, as_of: date) -> None:
        self.sql, self.as_of = sql, as_of
        self.known: dict[str, dict[str, Any]] = {}
        self.latest: dict[str, dict[str, Any] | None] = {}

    def __call__(self, domains: Iterable[str]) -> dict[str, dict[str, Any]]:
        missing = sorted({d for d in domains if d not in self.known})
        self.known.update(usage_summary(self.sql, missing, self.as_of, self.latest))
        return self.known


def usage_summary(sql: Any, domains: list[str], as_of: date,
                  latest: dict[str, dict[str, Any] | None] | None = None) -> dict[str, dict[str, Any]]:
    """Per domain: the latest users/framework/progress reported by `as_of`,
    the activities in the window up to it, and the last day with activity.
    Never a scan of history: one row per domain, or index lookups on (domain, day)."""
    out: dict[str, dict[str, Any]] = {
        d: {"users": None, "framework": None, "progress": None, "activities_90d": 0, "last_activity": None}
        for d in domains
    }
    day = as_of.isoformat()
    since = shift(as_of, -ACTIVITY_WINDOW_DAYS).isoformat()
    live = known(sql) == LIVE  # ov_usage_latest is current only: a known-at reader looks each figure up
    latest_rows = dict(latest or {}) if live else {}
    for chunk in sql.chunks([d for d in domains if d not in latest_rows]):
        cond, params = sql.in_("domain", chunk)
        for values in sql.all(f"SELECT {', '.join(LATEST.columns)} FROM ov_usage_latest WHERE {cond}", params):
            latest_rows[values[0]] = dict(zip(LATEST.columns, values))
    past: list[str] = []
    for domain in domains:
        r = latest_rows.get(domain)
        if r is None:
            continue  # nothing reported (by now: nor by any earlier cut)
        last = r["last_activity"]
        if live and max(r["users_day"] or "", r["framework_day"] or "", r["progress_day"] or "", last or "") <= day:
            # On or after every latest report: the window lies within `recent`.
            window = sum(n for d, n in json.loads(r["recent"]).items() if d > since) if last and last > since else 0
            out[domain].update({f: r[f] for f in FIGURES}, last_activity=last, activities_90d=window)
        else:
            past.append(domain)

    def latest_by(expr: str, cond: str) -> str:
        return (f"(SELECT {expr} FROM ov_usage u WHERE u.domain = c.domain AND u.day <= ? AND {cond} "
                f"AND {held(sql, 'u')} ORDER BY u.day DESC LIMIT 1)")

    for chunk in sql.chunks(past):
        cond, params = sql.in_("c.domain", chunk)
        for domain, users, framework, progress, last in sql.all(
            f"SELECT c.domain, {latest_by('u.users', 'u.users IS NOT NULL')}, "
            f"{latest_by('u.framework', 'u.framework IS NOT NULL')}, "
            f"{latest_by('u.progress', 'u.progress IS NOT NULL')}, {latest_by('u.day', 'u.activities > 0')} "
            f"FROM ov_usage_latest c WHERE {cond}",
            [day, day, day, day, *params],
        ):
            out[domain].update(users=users, framework=framework, progress=progress, last_activity=last)
        cond, params = sql.in_("domain", chunk)
        for domain, total in sql.all(
            f"SELECT u.domain, SUM(u.activities) FROM ov_usage u WHERE {held(sql, 'u')} AND u.{cond} "
            "AND u.day > ? AND u.day <= ? GROUP BY u.domain",
            [*params, since, day],
        ):
            out[domain]["activities_90d"] = int(total or 0)
    return out


def customers(sql: Any, as_of: date, partner: str | None, usage: Usage | None = None) -> list[dict[str, Any]]:
    """Customers with a trial or subscription started by `as_of`, with their facts."""
    day = as_of.isoformat()
    usage = usage or Usage(sql, as_of)
    where, params = "t.started_on <= ?", [day]
    if partner is not None:
        where, params = "t.partner = ? AND t.started_on <= ?", [partner, day]
    by_domain: dict[str, dict[str, Any]] = {}
    names: dict[str, tuple[str, str | None]] = {}
    # Each fact with its customer's name, owner and latest usage.
    for kind, rows in zip(("trials", "subscriptions"), select_with_customer(sql, [TRIALS, SUBSCRIPTIONS], where, params)):
        for row, name, owner, latest in rows:
            names[row["domain"]] = (name, owner)
            usage.latest[row["domain"]] = latest
            by_domain.setdefault(row["domain"], {"trials": [], "subscriptions": []})[kind].append(row)
    domains = sorted(by_domain)
    figures = usage(domains)
    out = []
    for domain in domains:
        facts = by_domain[domain]
        name, owner = names.get(domain, (domain, None))
        partners = {x["partner"] for x in facts["trials"] + facts["subscriptions"] if x["partner"]}
        out.append({
            "customer": name, "domain": domain,
            "partner": partner or owner or (sorted(partners)[0] if partners else None),
            "status": customer_status(facts["trials"], facts["subscriptions"], day),
            **figures[domain],
            "trials": facts["trials"], "subscriptions": facts["subscriptions"],
        })
    return out


def trials(sql: Any, as_of: date, partner: str | None = None) -> list[TrialRow]:
    """Trials started by `as_of`, as they stood then (TrialRow). Newest first."""
    day = as_of.isoformat()
    where, params = "t.started_on <= ?", [day]
    if partner is not None:
        where, params = "t.partner = ? AND " + where, [partner, *params]
    out: list[TrialRow] = [typed(TrialRow, {
        "trial": t["trial"], "partner": t["partner"], "customer_name": t["customer_name"], "domain": t["domain"],
        "started_on": t["started_on"], "ends_on": trial_end(t, day),
        "extended": bool(t["extended_on"] and t["extended_on"] <= day), "running": trial_runs(t, day),
    }) for t in select_rows(sql, TRIALS, where, params)]
    out.sort(key=lambda x: (x["started_on"], x["trial"]), reverse=True)
    return out


def subscriptions(sql: Any, as_of: date, partner: str | None = None,
                  status: str | None = None) -> list[SubscriptionRow]:
    """Subscriptions started by `as_of`, as they stood then: status `active`
    or `cancelled`, the billing period of the latest charge by then
    (current_period_start/end) and, while active, next_renewal (the
    end of that period). `amount` is the plan's price, Decimal. Ordered by
    partner and subscription id."""
    day = as_of.isoformat()
    where, params = "t.started_on <= ?", [day]
    if partner is not None:
        where, params = "t.partner = ? AND " + where, [partner, *params]
    rows = select_rows(sql, SUBSCRIPTIONS, where, params)
    periods: dict[str, list[tuple[int, str, str]]] = {}
    for chunk in sql.chunks([r["agg"] for r in rows]):
        cond, cparams = sql.in_("agg", chunk)
        for agg, charge, charged, end in sql.all(
                f"SELECT c.agg, c.charge, c.day, c.period_end FROM ov_charges c WHERE {held(sql, 'c')} AND c.{cond} "
                "AND c.day <= ?", [*cparams, day]):
            periods.setdefault(agg, []).append((int(charge), charged, end))
    out: list[SubscriptionRow] = []
    for r in rows:
        active = subscription_active(r, day)
        if status is not None and status != ("active" if active else "cancelled"):
            continue
        charges = sorted(periods.get(r["agg"], []))
        start = charges[-2][2] if len(charges) > 1 else r["started_on"]  # a period starts where the last ended
        end = charges[-1][2] if charges else None
        out.append(typed(SubscriptionRow, {
            "subscription": r["subscription"], "partner": r["partner"], "deal": r["deal"],
            "customer_domain": r["domain"], "plan": r["plan"], "amount": money.quantize(Decimal(r["amount"]), r["currency"]),
            "currency": r["currency"], "period": r["period"], "billing": r["billing"],
            "status": "active" if active else "cancelled",
            "current_period_start": start, "current_period_end": end, "next_renewal": end if active else None,
        }))
    out.sort(key=lambda x: (x["partner"] or "", x["subscription"]))
    return out


def customer_names(sql: Any, domains: list[str]) -> dict[str, str]:
    """Per customer domain: the customer's name."""
    out: dict[str, str] = {}
    for chunk in sql.chunks(domains):
        cond, params = sql.in_("t.domain", chunk)
        out.update(sql.all(f"SELECT t.domain, t.name FROM ov_customers t WHERE {held(sql, 't')} AND {cond}", params))
    return out


def aggregates_of_customer(sql: Any, domain: str) -> list[str]:
    """The Trial and Subscription aggregate ids (hex) of a customer domain, trials first."""
    return [r[0] for table in (TRIALS, SUBSCRIPTIONS) for r in sql.all(
        f"SELECT t.agg FROM {table.name} t WHERE {held(sql, 't')} AND t.domain = ?", [domain])]


def usage_days(sql: Any, domain: str, as_of: date) -> list[str]:
    """The days (ISO) with usage reported for a domain, up to `as_of`, in order."""
    return [r[0] for r in sql.all(
        f"SELECT u.day FROM ov_usage u WHERE {held(sql, 'u')} AND u.domain = ? AND u.day <= ? ORDER BY u.day",
        [domain, as_of.isoformat()])]
