"""Commission statements: per partner and month, one line per charge or refund
(by effective date), at the partner's rate in force on the charge's date,
commission rounded half-up to the cent, and totals per currency that
reconcile: for every line, amount = vendor share + partner share."""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ..aggregates import Partner, Subscription
from .base import Projection, Table, Writer

CENT = Decimal("0.01")
KIND_BY_BILLING = {
    "credit-card": "commission-payable",
    "invoice": "commission-payable",
    "partner": "net-invoice-to-partner",
}

PARTNERS = Table("st_partners", key=("agg",), columns={"agg": "TEXT", "partner": "TEXT"})
RATES = Table(
    "st_rates",
    key=("partner", "effective_on"),
    columns={"partner": "TEXT", "effective_on": "TEXT", "rate": "TEXT"},
)
SUBSCRIPTIONS = Table(
    "st_subscriptions",
    key=("agg",),
    columns={
        "agg": "TEXT", "subscription": "TEXT", "partner": "TEXT", "domain": "TEXT",
        "plan": "TEXT", "billing": "TEXT", "currency": "TEXT",
    },
)
CHARGES = Table(
    "st_charges",
    key=("agg", "charge"),
    columns={"agg": "TEXT", "charge": "BIGINT", "charged_on": "TEXT", "amount": "TEXT"},
)
LINES = Table(
    "st_lines",
    key=("position",),
    columns={
        "position": "BIGINT", "partner": "TEXT", "month": "TEXT", "day": "TEXT",
        "entry": "TEXT", "subscription": "TEXT", "charge": "BIGINT", "customer_domain": "TEXT",
        "plan": "TEXT", "billing": "TEXT", "currency": "TEXT", "amount": "TEXT",
        "rate_day": "TEXT", "recorded": "TEXT",
    },
    indexes=(("partner", "month"),),
)


def commission(amount: Decimal, rate: Decimal) -> Decimal:
    """Half-up to the cent on the magnitude, so a refund claws back exactly
    what its charge paid."""
    value = (abs(amount) * rate).quantize(CENT, rounding=ROUND_HALF_UP)
    return -value if amount < 0 else value


class Statements(Projection):
    name = "statements"
    version = 1
    tables = (PARTNERS, RATES, SUBSCRIPTIONS, CHARGES, LINES)

    def apply(self, w: Writer, e: Any, position: int) -> None:
        agg = e.originator_id.hex
        day = e.at.date().isoformat()
        match e:
            case Partner.Enrolled():
                w["st_partners"].put({"agg": agg, "partner": e.partner})
                w["st_rates"].put({"partner": e.partner, "effective_on": day, "rate": str(e.commission_rate)})
            case Partner.RateSet():
                partner = w["st_partners"].get(agg)["partner"]
                w["st_rates"].put({"partner": partner, "effective_on": day, "rate": str(e.commission_rate)})
            case Subscription.Started():
                w["st_subscriptions"].put({
                    "agg": agg, "subscription": e.subscription, "partner": e.partner, "domain": e.domain,
                    "plan": e.plan, "billing": e.billing, "currency": e.currency,
                })
                self._charge(w, agg, 1, day, e.amount, position, e.timestamp)
            case Subscription.Renewed():
                self._charge(w, agg, e.charge, day, e.amount, position, e.timestamp)
            case Subscription.Refunded():
                charge = w["st_charges"].get(agg, e.charge)
                self._line(w, agg, "refund", e.charge, day, -e.amount, charge["charged_on"], position, e.timestamp)

    def _charge(self, w: Writer, agg: str, n: int, day: str, amount: Decimal, position: int, recorded: Any) -> None:
        w["st_charges"].put({"agg": agg, "charge": n, "charged_on": day, "amount": str(amount)})
        self._line(w, agg, "charge", n, day, amount, day, position, recorded)

    @staticmethod
    def _line(
        w: Writer, agg: str, entry: str, n: int, day: str, amount: Decimal, rate_day: str,
        position: int, recorded: Any,
    ) -> None:
        sub = w["st_subscriptions"].get(agg)
        if not sub["partner"]:
            return  # a direct customer: no partner, no commission
        w["st_lines"].put({
            "position": position, "partner": sub["partner"], "month": day[:7], "day": day,
            "entry": entry, "subscription": sub["subscription"], "charge": n,
            "customer_domain": sub["domain"], "plan": sub["plan"], "billing": sub["billing"],
            "currency": sub["currency"], "amount": str(amount), "rate_day": rate_day,
            "recorded": recorded.isoformat(),
        })


# -- queries -----------------------------------------------------------------
def rate_table(sql: Any, partner: str) -> list[tuple[str, Decimal]]:
    return [
        (d, Decimal(r))
        for d, r in sql.all("SELECT effective_on, rate FROM st_rates WHERE partner = ? ORDER BY effective_on", [partner])
    ]


def rate_on(rates: list[tuple[str, Decimal]], day: str) -> Decimal:
    if not rates:
        return Decimal("0")
    i = bisect_right(rates, (day, Decimal("Infinity")))
    return rates[max(i - 1, 0)][1]


def priced(row: dict[str, Any], rates: list[tuple[str, Decimal]]) -> dict[str, Any]:
    """A stored line with its rate, commission and money flows."""
    amount = Decimal(row["amount"])
    rate = rate_on(rates, row["rate_day"])
    com = commission(amount, rate)
    kind = KIND_BY_BILLING[row["billing"]]
    vendor_share = amount - com
    return {
        "day": row["day"], "entry": row["entry"], "subscription": row["subscription"],
        "charge": row["charge"], "customer_domain": row["customer_domain"], "plan": row["plan"],
        "billing": row["billing"], "amount": amount, "currency": row["currency"], "rate": rate,
        "commission": com, "kind": kind, "vendor_share": vendor_share, "partner_share": com,
        # What flows where: the vendor pays the partner its commission, or
        # invoices the partner the value minus the commission.
        "payable_to_partner": com if kind == "commission-payable" else Decimal("0.00"),
        "invoice_to_partner": vendor_share if kind == "net-invoice-to-partner" else Decimal("0.00"),
        "position": row["position"],
    }


def totals(lines: list[dict[str, Any]]) -> dict[str, dict[str, Decimal]]:
    keys = ("amount", "commission", "vendor_share", "partner_share", "payable_to_partner", "invoice_to_partner")
    out: dict[str, dict[str, Decimal]] = defaultdict(lambda: {k: Decimal("0.00") for k in keys})
    for line in lines:
        t = out[line["currency"]]
        for k in keys:
            t[k] += line[k]
    return {c: out[c] for c in sorted(out)}


def statement(sql: Any, partner: str, month: str, as_of: date | None = None) -> dict[str, Any]:
    cols = list(LINES.columns)
    params: list[Any] = [partner, month]
    cond = ""
    if as_of is not None:
        cond = " AND day <= ?"
        params.append(as_of.isoformat())
    rows = [
        dict(zip(cols, r))
        for r in sql.all(
            f"SELECT {', '.join(cols)} FROM st_lines WHERE partner = ? AND month = ?{cond} ORDER BY day, position",
            params,
        )
    ]
    rates = rate_table(sql, partner)
    lines = [priced(r, rates) for r in rows]
    return {"partner": partner, "month": month, "lines": lines, "totals": totals(lines)}
