"""Commission statements: per partner and month, one line per charge or refund
(by effective date), at the partner's rate in force on the charge's date,
commission rounded half-up to the cent, and totals per currency that
reconcile: for every line, amount = vendor share + partner share.

Every row keeps the ledger position and recorded time of the event behind it,
so a statement can be computed as the ledger knew it at any moment from these
tables alone. Issued months are frozen at their issue position; a line that
arrives later for an issued month goes to the partner's next unissued month
as an adjustment."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NotRequired, TypedDict

from .. import money
from ..aggregates import IssuedStatement, Partner, Subscription
from ..timeline import business_date, recorded_text
from .base import Projection, Table, Writer, held, typed

ZERO = Decimal("0.00")
KIND_BY_BILLING = {
    "credit-card": "commission-payable",
    "invoice": "commission-payable",
    "partner": "net-invoice-to-partner",
}

PARTNERS = Table("st_partners", key=("agg",), columns={"agg": "TEXT", "partner": "TEXT"}, append_only=True)
RATES = Table(
    "st_rates",
    key=("partner", "position"),
    columns={"partner": "TEXT", "position": "BIGINT", "effective_on": "TEXT", "rate": "TEXT", "recorded": "TEXT"},
    append_only=True,
)
SUBSCRIPTIONS = Table(
    "st_subscriptions",
    key=("agg",),
    columns={
        "agg": "TEXT", "subscription": "TEXT", "partner": "TEXT", "domain": "TEXT",
        "plan": "TEXT", "billing": "TEXT", "currency": "TEXT", "deal": "TEXT", "order_number": "TEXT",
    },
    append_only=True,
)
CHARGES = Table(
    "st_charges",
    key=("agg", "charge"),
    columns={"agg": "TEXT", "charge": "BIGINT", "charged_on": "TEXT", "amount": "TEXT", "refunded": "TEXT"},
)
LINES = Table(
    "st_lines",
    key=("position",),
    columns={
        "position": "BIGINT", "partner": "TEXT", "month": "TEXT", "day": "TEXT",
        "entry": "TEXT", "subscription": "TEXT", "charge": "BIGINT", "customer_domain": "TEXT",
        "plan": "TEXT", "billing": "TEXT", "currency": "TEXT", "amount": "TEXT",
        "rate_day": "TEXT", "recorded": "TEXT", "base": "TEXT", "deal": "TEXT", "order_number": "TEXT",
    },
    indexes=(("partner", "month"),),
    append_only=True,
)
ISSUED = Table(
    "st_issued",
    key=("partner", "month"),
    columns={
        "partner": "TEXT", "month": "TEXT", "position": "BIGINT", "fingerprint": "TEXT",
        "recorded": "TEXT", "event_position": "BIGINT",
    },
)


class Statements(Projection):
    name = "statements"
    version = 6  # 6: rows keep the positions and recorded times between which they held
    tables = (PARTNERS, RATES, SUBSCRIPTIONS, CHARGES, LINES, ISSUED)
    handles = (
        Partner.Enrolled, Partner.RateSet, Subscription.Started, Subscription.Renewed,
        Subscription.Refunded, IssuedStatement.Issued,
    )

    def reads(self, e: Any, n: Any) -> list[tuple[str, tuple[Any, ...]]]:
        agg = e.originator_id.hex
        match e:
            case Partner.RateSet():
                return [("st_partners", (agg,))]
            case Subscription.Started():  # known absent, so nothing to close
                return [("st_charges", (agg, 1))]
            case Subscription.Renewed():
                return [("st_subscriptions", (agg,)), ("st_charges", (agg, e.charge))]
            case IssuedStatement.Issued():
                return [("st_issued", (e.partner, e.month))]
            case Subscription.Refunded():
                return [("st_subscriptions", (agg,)), ("st_charges", (agg, e.charge))]
        return []

    def apply(self, w: Writer, e: Any, n: Any) -> None:
        agg, position = e.originator_id.hex, n.id
        day = business_date(e.at).isoformat()
        recorded = recorded_text(e.timestamp)  # compared as text: one fixed UTC form
        match e:
            case Partner.Enrolled():
                w["st_partners"].put({"agg": agg, "partner": e.partner})
                w["st_rates"].put({"partner": e.partner, "position": position, "effective_on": day,
                                   "rate": str(e.commission_rate), "recorded": recorded})
            case Partner.RateSet():
                partner = w["st_partners"].get(agg)["partner"]
                w["st_rates"].put({"partner": partner, "position": position, "effective_on": day,
                                   "rate": str(e.commission_rate), "recorded": recorded})
            case Subscription.Started():
                w["st_subscriptions"].put({
                    "agg": agg, "subscription": e.subscription, "partner": e.partner, "domain": e.domain,
                    "plan": e.plan, "billing": e.billing, "currency": e.currency, "deal": e.deal,
                    "order_number": e.order_number,
                })
                self._charge(w, agg, 1, day, e.amount, position, recorded)
            case Subscription.Renewed():
                self._charge(w, agg, e.charge, day, e.amount, position, recorded)
            case Subscription.Refunded():
                charge = w["st_charges"].get(agg, e.charge)
                left = Decimal(charge["amount"]) - Decimal(charge["refunded"])
                w["st_charges"].update(agg, e.charge, refunded=str(Decimal(charge["refunded"]) + e.amount))
                self._line(w, agg, "refund", e.charge, day, -e.amount, charge["charged_on"], position, recorded,
                           base=left)
            case IssuedStatement.Issued():
                w["st_issued"].put({"partner": e.partner, "month": e.month, "position": e.position,
                                    "fingerprint": e.fingerprint, "recorded": recorded,
                                    "event_position": position})

    def _charge(self, w: Writer, agg: str, n: int, day: str, amount: Decimal, position: int, recorded: str) -> None:
        w["st_charges"].put({"agg": agg, "charge": n, "charged_on": day, "amount": str(amount), "refunded": "0.00"})
        self._line(w, agg, "charge", n, day, amount, day, position, recorded)

    @staticmethod
    def _line(w: Writer, agg: str, entry: str, n: int, day: str, amount: Decimal, rate_day: str,
              position: int, recorded: str, base: Decimal | None = None) -> None:
        sub = w["st_subscriptions"].get(agg)
        if not sub["partner"]:
            return  # a direct customer: no partner, no commission
        w["st_lines"].put({
            "position": position, "partner": sub["partner"], "month": day[:7], "day": day,
            "entry": entry, "subscription": sub["subscription"], "charge": n,
            "customer_domain": sub["domain"], "plan": sub["plan"], "billing": sub["billing"],
            "currency": sub["currency"], "amount": str(amount), "rate_day": rate_day, "recorded": recorded,
            "base": None if base is None else str(base),  # a refund: what was left of its charge
            "deal": sub["deal"], "order_number": sub["order_number"],
        })


# -- queries -----------------------------------------------------------------
@dataclass(frozen=True)
class Cut:
    """What the ledger knew: events up to a position and/or recorded by a time."""

    position: int | None = None
    recorded: datetime | None = None

    def sql(self, position_column: str = "position") -> tuple[str, list[Any]]:
        cond, params = [], []
        if self.position is not None:
            cond.append(f"{position_column} <= ?")
            params.append(self.position)
        if self.recorded is not None:
            cond.append("recorded <= ?")
            params.append(recorded_text(self.recorded))
        return (" AND " + " AND ".join(cond) if cond else ""), params

    def before(self, position: int) -> Cut:
        return Cut(position if self.position is None else min(self.position, position), self.recorded)


def enrolled(sql: Any, partner: str) -> bool:
    """Whether the partner was enrolled, as the reader's cut knew."""
    return sql.one(f"SELECT 1 FROM st_partners t WHERE {held(sql, 't')} AND t.partner = ?", [partner]) is not None


def line_at(sql: Any, position: int) -> tuple[str, str] | None:
    """The statement line written at a ledger position, as (partner, subscription id); None if none."""
    row = sql.one("SELECT partner, subscription FROM st_lines WHERE position = ?", [position])
    return (row[0], row[1]) if row else None


def _rates(sql: Any, partner: str, cut: Cut) -> list[tuple[str, Decimal]]:
    """The partner's rates as (effective day, rate), by day and, within a day,
    in recorded order (what money.rate_in_force takes)."""
    cond, params = cut.sql()
    rows = sql.all(f"SELECT effective_on, position, rate FROM st_rates t WHERE {held(sql, 't')} AND partner = ?{cond}",
                   [partner, *params])
    return [(d, Decimal(r)) for d, _, r in sorted((d, int(p), r) for d, p, r in rows)]


class Line(TypedDict):
    """A statement line: money as Decimal in the currency's minor units, `day`
    its business date, `adjustment` the month of a late line (else None).
    Ledger.statement adds `customer` and fills `order_number`."""

    day: date
    entry: str             # charge or refund
    subscription: str
    charge: int
    customer_domain: str
    plan: str
    billing: str
    amount: Decimal
    currency: str
    rate: Decimal
    commission: Decimal
    kind: str              # KIND_BY_BILLING
    vendor_share: Decimal
    partner_share: Decimal
    payable_to_partner: Decimal
    invoice_to_partner: Decimal
    adjustment: str | None
    position: int
    deal: str | None
    order_number: str | None
    customer: NotRequired[str]


class Statement(TypedDict):
    """A month's statement of one partner (statement)."""

    partner: str
    month: str             # YYYY-MM
    lines: list[Line]
    totals: dict[str, dict[str, Decimal]]  # per currency, per TOTAL_KEYS
    fingerprint: str       # SHA-256 of canonical()
    issued: NotRequired[dict[str, Any]]    # once issued: position, fingerprint, recorded


class PartnerRate(TypedDict):
    """A partner with its commission rate in force on a day (partner_rates)."""

    partner: str
    rate: Decimal          # money.rate_in_force
    since: date | None     # the day that rate took effect


def partner_rates(sql: Any, as_of: date, partner: str | None = None) -> list[PartnerRate]:
    """Enrolled partners (one, given `partner`) with their commission rate in
    force on `as_of` and the day it took effect (PartnerRate), by partner id."""
    names = sorted({p for (p,) in sql.all(f"SELECT t.partner FROM st_partners t WHERE {held(sql, 't')}")}
                   if partner is None else [partner])
    day, out = as_of.isoformat(), []
    for name in names:
        rates = _rates(sql, name, Cut())
        since = max((d for d, _ in rates if d <= day), default=rates[0][0] if rates else None)
        out.append(typed(PartnerRate, {"partner": name, "rate": money.rate_in_force(rates, day), "since": since}))
    return out


def priced(row: dict[str, Any], rates: list[tuple[str, Decimal]]) -> Line:
    """A stored line (ISO text dates, as the table keeps them) with its rate,
    commission and money flows, built through base.typed."""
    amount = Decimal(row["amount"])
    rate = money.rate_in_force(rates, row["rate_day"])
    currency = row["currency"]
    com = (money.commission(amount, rate, currency) if row["base"] is None
           else money.clawback(Decimal(row["base"]), -amount, rate, currency))
    kind = KIND_BY_BILLING[row["billing"]]
    vendor_share = amount - com
    return typed(Line, {
        "day": row["day"], "entry": row["entry"], "subscription": row["subscription"],
        "charge": row["charge"], "customer_domain": row["customer_domain"], "plan": row["plan"],
        "billing": row["billing"], "amount": amount, "currency": row["currency"], "rate": rate,
        "commission": com, "kind": kind, "vendor_share": vendor_share, "partner_share": com,
        # What flows where: the vendor pays the partner its commission, or
        # invoices the partner the value minus the commission.
        "payable_to_partner": com if kind == "commission-payable" else ZERO,
        "invoice_to_partner": vendor_share if kind == "net-invoice-to-partner" else ZERO,
        "adjustment": row["month"] if row["adjustment"] else None,
        "position": int(row["position"]),
        # Descriptive only (outside the fingerprint, see FINGERPRINTED).
        "deal": row["deal"], "order_number": row["order_number"],
    })


TOTAL_KEYS = ("amount", "commission", "vendor_share", "partner_share", "payable_to_partner", "invoice_to_partner")


def totals(lines: list[Line]) -> dict[str, dict[str, Decimal]]:
    out: dict[str, dict[str, Decimal]] = defaultdict(lambda: {k: ZERO for k in TOTAL_KEYS})
    for line in lines:
        t = out[line["currency"]]
        for k in TOTAL_KEYS:
            t[k] += line[k]
    return {c: out[c] for c in sorted(out)}


def issued_months(sql: Any, partner: str, cut: Cut = Cut()) -> dict[str, dict[str, Any]]:
    cond, params = cut.sql("event_position")
    rows = sql.all(f"SELECT month, position, fingerprint, recorded, event_position FROM st_issued "
                   f"WHERE partner = ?{cond}", [partner, *params])
    return {m: {"position": int(p), "fingerprint": f, "recorded": r, "event_position": int(ep)}
            for m, p, f, r, ep in rows}


def statement(sql: Any, partner: str, month: str, cut: Cut = Cut(), as_of: date | None = None) -> Statement:
    """The statement of a month as known at `cut`, with the lines dated up to
    `as_of` (default: the whole month). An issued month shows what it showed
    when issued; lines that arrived after a month was issued land in the
    first later month not yet issued when they arrived."""
    issued = issued_months(sql, partner, cut)
    frozen = issued.get(month)
    if frozen is not None:
        cut = cut.before(frozen["position"])
        issued = {m: i for m, i in issued.items() if i["event_position"] <= frozen["position"]}
    # Candidates: this month's lines, and late lines of earlier issued months.
    late_months = [m for m in issued if m < month]
    cond, params = cut.sql()
    months = [month, *late_months]
    cols = list(LINES.columns)
    rows = [
        dict(zip(cols, r))
        for r in sql.all(
            f"SELECT {', '.join(cols)} FROM st_lines WHERE partner = ? "
            f"AND month IN ({', '.join('?' * len(months))}){cond}",
            [partner, *months, *params],
        )
    ]

    def target(row: dict[str, Any]) -> str:
        # The first month from the line's own on that was not closed when it arrived.
        m = row["month"]
        while m in issued and issued[m]["position"] < row["position"]:
            m = _next_month(m)
        return m

    last_day = as_of.isoformat() if as_of else "9999-12-31"
    mine = [r | {"adjustment": r["month"] != month} for r in rows if target(r) == month and r["day"] <= last_day]
    mine.sort(key=lambda r: (r["adjustment"], r["day"], r["position"]))
    rates = _rates(sql, partner, cut)
    lines = [priced(r, rates) for r in mine]
    out: Statement = {"partner": partner, "month": month, "lines": lines, "totals": totals(lines), "fingerprint": ""}
    out["fingerprint"] = fingerprint(out)
    if frozen is not None:
        out["issued"] = {"position": frozen["position"], "fingerprint": frozen["fingerprint"],
                         "recorded": frozen["recorded"]}
    return out


def _next_month(month: str) -> str:
    year, m = int(month[:4]), int(month[5:])
    return f"{year + m // 12}-{m % 12 + 1:02d}"


# The line fields a fingerprint covers: the figures and what they are for. Fields
# added for reading (deal, order number, customer name) stay outside, so the
# fingerprints of statements issued before they existed still verify.
FINGERPRINTED = (
    "day", "entry", "subscription", "charge", "customer_domain", "plan", "billing", "amount", "currency", "rate",
    "commission", "kind", "vendor_share", "partner_share", "payable_to_partner", "invoice_to_partner",
    "adjustment", "position",
)


def canonical(st: dict[str, Any]) -> bytes:
    """The statement's content as bytes: what the fingerprint covers."""
    lines = [{k: line[k] for k in FINGERPRINTED} for line in st["lines"]]
    body = {"partner": st["partner"], "month": st["month"], "lines": lines, "totals": st["totals"]}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def fingerprint(st: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(st)).hexdigest()
