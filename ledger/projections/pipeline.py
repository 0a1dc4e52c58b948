"""Deal pipeline: every deal with its stage, review status and protection, per
partner and for the vendor, as they stood on any `as of` date.

Stages only move forward and a review happens once, so the day each was
reached is enough to know the stage and review on any date; the days of the
actions that renew protection are kept beside them."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any, TypedDict

from ..aggregates import Deal
from ..aggregates.deal import OPEN_STAGES, STAGES, last_protected_action, protection_end
from ..timeline import business_date
from .base import Projection, Table, Writer, held, typed

DEALS = Table(
    "pl_deals",
    key=("agg",),
    columns={
        "agg": "TEXT", "deal": "TEXT", "partner": "TEXT", "customer_domain": "TEXT",
        "customer_name": "TEXT", "registered_on": "TEXT", "stage": "TEXT", "review": "TEXT",
        "deny_reason": "TEXT", "review_on": "TEXT", "newsletter_on": "TEXT", "trial_on": "TEXT",
        "closed_on": "TEXT", "lapsed_on": "TEXT", "last_action": "TEXT", "billing": "TEXT",
        "order_number": "TEXT", "notes": "BIGINT",
    },
    indexes=(("partner",), ("deal",), ("customer_domain",)),
)
# The days of the actions that renew protection (registration, stage move, note).
ACTIONS = Table("pl_actions", key=("agg", "day"), columns={"agg": "TEXT", "day": "TEXT"})


class Pipeline(Projection):
    name = "pipeline"
    version = 4  # 4: rows keep the positions and recorded times between which they held
    tables = (DEALS, ACTIONS)
    handles = (Deal.Registered, Deal.Accepted, Deal.Denied, Deal.StageMoved, Deal.NoteAdded,
               Deal.ClosedWon, Deal.ClosedLost, Deal.ProtectionLapsed)

    def reads(self, e: Any, n: Any) -> list[tuple[str, tuple[Any, ...]]]:
        agg = e.originator_id.hex
        reads = [("pl_deals", (agg,))]  # for a registration: known absent, so nothing to close
        if isinstance(e, (Deal.Registered, Deal.StageMoved, Deal.NoteAdded)):
            reads.append(("pl_actions", (agg, business_date(e.at).isoformat())))
        return reads

    def apply(self, w: Writer, e: Any, n: Any) -> None:
        deals = w["pl_deals"]
        agg = e.originator_id.hex
        day = business_date(e.at).isoformat()
        match e:
            case Deal.Registered():
                deals.put({
                    "agg": agg, "deal": e.deal, "partner": e.partner, "customer_domain": e.domain,
                    "customer_name": e.customer_name, "registered_on": day, "stage": "new",
                    "review": "pending", "last_action": day, "notes": 1 if e.note else 0,
                })
                w["pl_actions"].put({"agg": agg, "day": day})
            case Deal.Accepted():
                deals.update(agg, review="accepted", review_on=day)
            case Deal.Denied():
                deals.update(agg, review="denied", deny_reason=e.reason, review_on=day)
            case Deal.StageMoved():
                row = deals.get(agg)
                deals.update(agg, stage=e.stage, last_action=max(row["last_action"], day),
                             **{("newsletter_on" if e.stage == "newsletter-subscription" else "trial_on"): day})
                w["pl_actions"].put({"agg": agg, "day": day})
            case Deal.NoteAdded():
                row = deals.get(agg)
                deals.update(agg, notes=row["notes"] + 1, last_action=max(row["last_action"], day))
                w["pl_actions"].put({"agg": agg, "day": day})
            case Deal.ClosedWon():
                deals.update(agg, stage="closed-won", billing=e.billing, order_number=e.order_number, closed_on=day)
            case Deal.ClosedLost():
                row = deals.get(agg)
                deals.update(agg, stage="closed-lost", closed_on=day, notes=row["notes"] + (1 if e.note else 0))
            case Deal.ProtectionLapsed():
                deals.update(agg, lapsed_on=e.lapsed_on.isoformat())


class DealRow(TypedDict):
    """A deal as it stood on a day. Dates are business dates (the JSON and
    CSV outputs print them in ISO 8601); None where not reached."""

    deal: str
    partner: str
    customer_domain: str
    customer: str
    stage: str             # one of deal.STAGES
    review: str            # pending, accepted or denied
    deny_reason: str | None
    registered_on: date
    last_action: date       # the last action (registration, stage move, note) by the day
    protected_until: date | None  # deal.protection_end: the first day it no longer protects
    protected: bool
    lapsed_on: date | None
    closed_on: date | None
    billing: str | None    # once won


def on_day(r: dict[str, Any], day: str) -> DealRow:
    """A deal row as it stood on `day` (ISO text, as the table keeps dates);
    `r["acted"]` is its last action day by then. Built through base.typed."""
    if r["closed_on"] and r["closed_on"] <= day:
        stage = r["stage"]
    elif r["trial_on"] and r["trial_on"] <= day:
        stage = "trial"
    elif r["newsletter_on"] and r["newsletter_on"] <= day:
        stage = "newsletter-subscription"
    else:
        stage = "new"
    reviewed = r["review_on"] is not None and r["review_on"] <= day
    review = r["review"] if reviewed else "pending"
    lapsed = r["lapsed_on"] if r["lapsed_on"] and r["lapsed_on"] <= day else None
    closed = r["closed_on"] if stage.startswith("closed") else None
    end = protection_end(review, stage, lapsed is not None, date.fromisoformat(r["acted"]))
    until = end.isoformat() if end else None
    return typed(DealRow, {
        "deal": r["deal"], "partner": r["partner"], "customer_domain": r["customer_domain"],
        "customer": r["customer_name"], "stage": stage, "review": review,
        "deny_reason": r["deny_reason"] if review == "denied" else None,
        "registered_on": r["registered_on"], "last_action": r["acted"],
        "protected_until": until, "protected": until is not None and day < until,
        "lapsed_on": lapsed, "closed_on": closed,
        "billing": r["billing"] if stage == "closed-won" else None,
    })


def deal_rows(sql: Any, day: str, where: str = "", params: tuple[Any, ...] = (),
              flags: dict[str, tuple[str, tuple[Any, ...]]] | None = None) -> list[DealRow]:
    """Deals registered by `day` (plus a condition on alias t), as they stood
    then. `flags` names conditions (on alias t) to compute per deal, as 0/1."""
    cols = list(DEALS.columns)
    flags = flags or {}
    flag_sql = "".join(f", CASE WHEN {cond} THEN 1 ELSE 0 END" for cond, _ in flags.values())
    rows = sql.all(
        f"SELECT {', '.join('t.' + c for c in cols)}, "
        f"(SELECT MAX(a.day) FROM pl_actions a WHERE a.agg = t.agg AND a.day <= ? AND {held(sql, 'a')}){flag_sql} "
        f"FROM pl_deals t WHERE {held(sql, 't')} AND t.registered_on <= ? {('AND ' + where) if where else ''} "
        "ORDER BY t.registered_on, t.deal",
        [day, *(p for _, ps in flags.values() for p in ps), day, *params],
    )
    n = len(cols)
    return [on_day(dict(zip(cols, r)) | {"acted": r[n]}, day) | dict(zip(flags, r[n + 1:])) for r in rows]  # type: ignore[misc]


def deals(
    sql: Any, as_of: date, partner: str | None = None, stage: str | None = None,
    review: str | None = None,
) -> list[DealRow]:
    rows = deal_rows(sql, as_of.isoformat(), "t.partner = ?" if partner else "", (partner,) if partner else ())
    return [r for r in rows if (stage is None or r["stage"] == stage) and (review is None or r["review"] == review)]


def summary(rows: list[DealRow]) -> dict[str, Any]:
    """Deals by stage and review status (the pipeline's shape)."""
    by = Counter((r["stage"], r["review"]) for r in rows)
    return {
        "total": len(rows),
        "by_stage": {s: sum(n for (st, _), n in by.items() if st == s) for s in STAGES},
        "by_review": {rv: sum(n for (_, r), n in by.items() if r == rv) for rv in ("pending", "accepted", "denied")},
    }


def lapse_candidates(sql: Any, on: date) -> list[str]:
    """Deals whose protection may have lapsed by `on`: open, not denied, not
    yet lapsed, no action after deal.last_protected_action(on). Only narrows:
    the sweep asks each Deal (Deal.record_lapse_if_due, the protection rule's home)."""
    last_action_by = last_protected_action(on)
    stages = ", ".join("?" * len(OPEN_STAGES))
    return [r[0] for r in sql.all(
        f"SELECT t.deal FROM pl_deals t WHERE {held(sql, 't')} AND t.review <> 'denied' AND t.lapsed_on IS NULL "
        f"AND t.stage IN ({stages}) AND t.last_action <= ?", [*OPEN_STAGES, last_action_by.isoformat()])]


def names_and_orders(sql: Any, deals: list[str]) -> dict[str, tuple[str, str | None]]:
    """Per deal id: (customer name as registered, order number once won or None)."""
    out: dict[str, tuple[str, str | None]] = {}
    for chunk in sql.chunks(deals):
        cond, params = sql.in_("t.deal", chunk)
        out.update((d, (n, o)) for d, n, o in sql.all(
            f"SELECT t.deal, t.customer_name, t.order_number FROM pl_deals t WHERE {held(sql, 't')} AND {cond}", params))
    return out


def aggregates_of_customer(sql: Any, domain: str) -> list[str]:
    """The Deal aggregate ids (hex) of the deals registered for a customer domain."""
    return [r[0] for r in sql.all(
        f"SELECT t.agg FROM pl_deals t WHERE {held(sql, 't')} AND t.customer_domain = ?", [domain])]
