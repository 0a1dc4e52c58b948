"""The query routes: one entry per query, named and shaped as the CLI's.
Each entry says its path (under /api/v1), its parameters (a pydantic model:
fields named as the CLI options, path fields taken from the path), the
answer's schema and how to ask the ledger. Adding a query is one entry here;
a download is one more `downloads` item (suffix: (media type, render)). The service layer's KeyError answers
404, Forbidden 403, Refused 409, ValueError 422."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..aggregates.deal import REVIEWS, STAGES
from ..aggregates.subscription import STATUSES
from ..projections.overview import FILTERS
from ..render import attention_rows
from ..service import Ledger
from ..timeline import parse_instant, today
from . import schemas

PartnerId = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$", description="partner id")
Month = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")


class Params(BaseModel):
    """What every query takes: `as_of` (default today) and `known_at`."""

    model_config = ConfigDict(extra="forbid")

    as_of: date | None = Field(None, description="answer as of this effective date (YYYY-MM-DD, default today)")
    known_at: datetime | None = Field(None, description="answer as the ledger knew it at this recorded time "
                                                        "(ISO 8601, UTC if no zone)")

    # The CLI's parsing and messages (`--as-of`, `--known-at`).
    @field_validator("as_of", mode="before")
    @classmethod
    def _day(cls, value: Any) -> Any:
        try:
            return date.fromisoformat(value) if isinstance(value, str) else value
        except ValueError:
            raise ValueError(f"{value[:40]!r} is not a date (YYYY-MM-DD)") from None

    @field_validator("known_at", mode="before")
    @classmethod
    def _moment(cls, value: Any) -> Any:
        return parse_instant(value) if isinstance(value, str) else value  # the CLI's --known-at rule

    @property
    def day(self) -> date:
        return self.as_of or today()  # in LEDGER_TIMEZONE, as on the CLI


class OverviewParams(Params):
    partner: str | None = PartnerId
    filter: Literal[FILTERS] | None = None  # type: ignore[valid-type]


class AttentionParams(Params):
    partner: str | None = PartnerId


class DealsParams(Params):
    partner: str | None = PartnerId
    stage: Literal[STAGES] | None = None  # type: ignore[valid-type]
    review: Literal[REVIEWS] | None = None  # type: ignore[valid-type]
    summary: bool = Field(False, description="counts by stage and review instead of rows")


class DealParams(Params):
    deal: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$", description="deal id")


class SubscriptionsParams(Params):
    partner: str | None = PartnerId
    status: Literal[STATUSES] | None = None  # type: ignore[valid-type]


class StatementParams(Params):
    partner: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$", description="partner id")
    month: str = Month


def _deals(ledger: Ledger, p: DealsParams) -> Any:
    from ..projections.pipeline import summary

    rows = ledger.deals(p.partner, p.stage, p.review, p.day, p.known_at)
    return summary(rows) if p.summary else rows


def _statement(ledger: Ledger, p: StatementParams) -> Any:
    from ..export import statement_json  # the CLI's --json: money in the currency's minor units

    return statement_json(ledger.statement(p.partner, p.month, p.known_at, p.day))


def _statement_xlsx(st: dict[str, Any]) -> bytes:
    from ..export import statement_xlsx_bytes  # the CLI's --xlsx, one implementation

    return statement_xlsx_bytes(st)


def _statement_csv(st: dict[str, Any]) -> str:
    from ..export import statement_csv  # the CLI's --csv, one implementation

    return statement_csv(st)


@dataclass(frozen=True)
class Query:
    path: str  # under /api/v1; {name} segments are fields of `params`
    summary: str
    params: type[Params]
    answer: Any  # the 200 body's schema
    ask: Callable[[Ledger, Any], Any]
    # Other renderings of the same answer at path + "." + suffix: suffix -> (media type, render).
    downloads: dict[str, tuple[str, Callable[[Any], str | bytes]]] = field(default_factory=dict)


QUERIES: list[Query] = [
    Query("/overview", "The customer overview (ledger overview --json)", OverviewParams, list[schemas.OverviewRow],
          lambda ledger, p: ledger.overview(p.partner, p.filter, p.day, p.known_at)),
    Query("/attention", "What needs attention (ledger attention --json)", AttentionParams,
          list[schemas.AttentionItem],
          lambda ledger, p: attention_rows(ledger.attention(p.partner, p.day, p.known_at))),
    Query("/deals", "The deal pipeline (ledger deals --json)", DealsParams,
          list[schemas.DealRow] | schemas.DealSummary, _deals),
    Query("/deals/{deal}", "The deal card (ledger deal show --json)", DealParams, schemas.DealCard,
          lambda ledger, p: ledger.deal_card(p.deal, p.day, p.known_at)),
    Query("/subscriptions", "Subscriptions with their periods (ledger subscriptions --json)", SubscriptionsParams,
          list[schemas.SubscriptionRow],
          lambda ledger, p: ledger.subscriptions(p.partner, p.status, p.day, p.known_at)),
    Query("/statements/{partner}/{month}", "A commission statement (ledger statement --json)", StatementParams,
          schemas.Statement, _statement,
          downloads={"csv": ("text/csv; charset=utf-8", _statement_csv),
                     "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _statement_xlsx)}),
]
