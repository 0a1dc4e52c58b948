"""The shapes of the API's answers, for the OpenAPI document: one model per
query row (the same keys and JSON types as the CLI's `--json`), the command
envelope per command type (from the command registry) and the result object."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..commands.registry import CommandType, bulk_types

Money = str  # a decimal string, e.g. "1200.00"


class Row(BaseModel):
    model_config = ConfigDict(extra="allow")  # adding a key is not a breaking change


class OverviewRow(Row):
    customer: str
    domain: str
    partner: str
    status: Literal["trial", "active", "closed", "cancelled"]
    framework: str | None
    progress: int | None
    users: int | None
    activities_90d: int
    attention: int


class AttentionItem(Row):
    code: str
    subject: str
    partner: str | None
    reason: str


class DealRow(Row):
    deal: str
    partner: str
    customer_domain: str
    stage: str
    review: Literal["pending", "accepted", "denied"]
    protected_until: str | None


class Note(Row):
    day: str
    actor: str
    text: str


class DealCard(Row):
    deal: str
    partner: str
    customer: str
    contact_name: str
    customer_email: str
    customer_domain: str
    stage: str
    review: Literal["pending", "accepted", "denied"]
    deny_reason: str | None
    protected_until: str | None
    billing: str | None
    order_number: str | None
    notes: list[Note]
    history: list[dict[str, Any]] = Field(description="the deal's events in order, as `audit explain` shows them")


class SubscriptionRow(Row):
    subscription: str
    partner: str | None
    deal: str | None
    customer_domain: str
    plan: str
    amount: Money
    currency: str
    period: Literal["monthly", "yearly"]
    billing: str
    status: Literal["active", "cancelled"]
    current_period_start: str
    current_period_end: str
    next_renewal: str | None


class DealSummary(Row):
    total: int
    by_stage: dict[str, int]
    by_review: dict[str, int]


class StatementLine(Row):
    day: str
    entry: Literal["charge", "refund"]
    subscription: str
    charge: int
    customer: str = Field(description="the customer's name")
    customer_domain: str
    deal: str | None
    order_number: str | None
    plan: str
    billing: str
    amount: Money
    currency: str
    rate: Money
    commission: Money
    kind: Literal["commission-payable", "net-invoice-to-partner"]
    vendor_share: Money
    partner_share: Money
    payable_to_partner: Money
    invoice_to_partner: Money
    position: int = Field(description="the ledger position `audit explain line` takes")
    adjustment: str | None = Field(description="for an adjustment, the month (YYYY-MM) it adjusts")


class Totals(Row):
    amount: Money
    commission: Money
    vendor_share: Money
    partner_share: Money
    payable_to_partner: Money
    invoice_to_partner: Money


class Statement(Row):
    partner: str
    month: str
    lines: list[StatementLine]
    totals: dict[str, Totals]
    fingerprint: str


class Result(BaseModel):
    """The `submit --json` result object of one command."""

    line: int
    id: str | None
    type: str | None
    status: Literal["applied", "duplicate", "refused", "conflict", "malformed"]
    reason: str | None = Field(None, description="why it was refused or malformed (one line)")
    note: str | None = Field(None, description="what else the ledger did (e.g. denied at once, and why)")
    code: str | None = Field(None, description="the reason's or note's stable machine code (README: refusal codes)")


class Problem(BaseModel):
    """RFC 9457 problem details (application/problem+json)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str | None = Field(None, description="the refusal's stable machine code, when it has one (extension member)")


class Health(BaseModel):
    status: Literal["ok"]


# What `on` takes, as a pattern a generator can use (days past the 28th are
# accepted too where they exist; the pattern keeps to what always exists).
ON_PATTERN = (r"^(19[7-9][0-9]|2[01][0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
              r"(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])?)?$")


def _envelope(command_type: CommandType) -> type[BaseModel]:
    return create_model(  # type: ignore[call-overload]
        "Envelope_" + command_type.name,
        __config__=ConfigDict(extra="forbid"),
        id=(str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$", description="idempotency key")),
        type=(Literal[command_type.name], ...),
        on=(str | None, Field(None, pattern=ON_PATTERN,
                              description="effective date or date-time (ISO 8601, years 1970-2199); default now")),
        actor=(str | None, Field(None, description="defaults to the token's actor; only system's may differ")),
        data=(command_type.model, ...),
    )


def envelope_schema() -> dict[str, Any]:
    """The request body of POST /api/v1/commands: one envelope per command
    type of the registry, told apart by `type` (JSON Schema, with $defs)."""
    from pydantic import TypeAdapter

    union = Union[tuple(_envelope(t) for t in bulk_types().values())]  # type: ignore[valid-type]
    envelope = Annotated[union, Field(discriminator="type")]
    return TypeAdapter(envelope).json_schema(ref_template="#/components/schemas/{model}")
