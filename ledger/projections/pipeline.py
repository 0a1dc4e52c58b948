"""Deal pipeline: every deal with its stage, review status and protection, per
partner and for the vendor."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

from ..aggregates import Deal
from ..aggregates.deal import OPEN_STAGES, PROTECTION_DAYS, STAGES
from .base import Projection, Table, Writer, iso

DEALS = Table(
    "pl_deals",
    key=("agg",),
    columns={
        "agg": "TEXT", "deal": "TEXT", "partner": "TEXT", "customer_domain": "TEXT",
        "customer_name": "TEXT", "stage": "TEXT", "review": "TEXT", "deny_reason": "TEXT",
        "registered_on": "TEXT", "last_action": "TEXT", "lapsed_on": "TEXT",
        "closed_on": "TEXT", "billing": "TEXT", "order_number": "TEXT", "notes": "BIGINT",
    },
    indexes=(("partner",), ("deal",), ("customer_domain",)),
)


class Pipeline(Projection):
    name = "pipeline"
    version = 1
    tables = (DEALS,)
    handles = (Deal.Registered, Deal.Accepted, Deal.Denied, Deal.StageMoved, Deal.NoteAdded,
               Deal.ClosedWon, Deal.ClosedLost, Deal.ProtectionLapsed)

    def apply(self, w: Writer, e: Any, position: int) -> None:
        deals = w["pl_deals"]
        agg = e.originator_id.hex
        day = e.at.date().isoformat()
        match e:
            case Deal.Registered():
                deals.put({
                    "agg": agg, "deal": e.deal, "partner": e.partner, "customer_domain": e.domain,
                    "customer_name": e.customer_name, "stage": "new", "review": "pending",
                    "registered_on": day, "last_action": day, "notes": 1 if e.note else 0,
                })
            case Deal.Accepted():
                deals.update(agg, review="accepted")
            case Deal.Denied():
                deals.update(agg, review="denied", deny_reason=e.reason)
            case Deal.StageMoved():
                row = deals.get(agg)
                deals.update(agg, stage=e.stage, last_action=max(row["last_action"], day))
            case Deal.NoteAdded():
                row = deals.get(agg)
                deals.update(agg, notes=row["notes"] + 1, last_action=max(row["last_action"], day))
            case Deal.ClosedWon():
                deals.update(agg, stage="closed-won", billing=e.billing, order_number=e.order_number, closed_on=day)
            case Deal.ClosedLost():
                row = deals.get(agg)
                deals.update(agg, stage="closed-lost", closed_on=day, notes=row["notes"] + (1 if e.note else 0))
            case Deal.ProtectionLapsed():
                deals.update(agg, lapsed_on=iso(e.lapsed_on))


def protected_until(row: dict[str, Any]) -> date | None:
    """Mirrors Deal.protected_until: open, not denied, not lapsed."""
    if row["review"] == "denied" or row["stage"] not in OPEN_STAGES or row["lapsed_on"]:
        return None
    return date.fromisoformat(row["last_action"]) + timedelta(days=PROTECTION_DAYS)


def deals(
    sql: Any, as_of: date, partner: str | None = None, stage: str | None = None,
    review: str | None = None,
) -> list[dict[str, Any]]:
    where, params = ["registered_on <= ?"], [as_of.isoformat()]
    for col, val in (("partner", partner), ("stage", stage), ("review", review)):
        if val is not None:
            where.append(f"{col} = ?")
            params.append(val)
    cols = list(DEALS.columns)
    rows = sql.all(
        f"SELECT {', '.join(cols)} FROM pl_deals WHERE {' AND '.join(where)} "
        "ORDER BY registered_on, deal",
        params,
    )
    out = []
    for values in rows:
        r = dict(zip(cols, values))
        until = protected_until(r)
        out.append({
            "deal": r["deal"], "partner": r["partner"], "customer_domain": r["customer_domain"],
            "customer": r["customer_name"], "stage": r["stage"], "review": r["review"],
            "deny_reason": r["deny_reason"], "registered_on": r["registered_on"],
            "last_action": r["last_action"],
            "protected_until": iso(until),
            "protected": until is not None and as_of < until,
            "lapsed_on": r["lapsed_on"], "closed_on": r["closed_on"],
            "billing": r["billing"],
        })
    return out


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Deals by stage and review status (the pipeline's shape)."""
    by = Counter((r["stage"], r["review"]) for r in rows)
    return {
        "total": len(rows),
        "by_stage": {s: sum(n for (st, _), n in by.items() if st == s) for s in STAGES},
        "by_review": {rv: sum(n for (_, r), n in by.items() if r == rv) for rv in ("pending", "accepted", "denied")},
    }
