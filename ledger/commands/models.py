"""The command models at the boundary: a JSON line or a set of CLI options
becomes one `Command` (envelope + typed data), or a `Malformed` error that
names the field. Nothing past this module sees unvalidated input."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError, field_validator

MAX_LINE_BYTES = 64 * 1024

def _no_bool(value: Any) -> Any:
    """JSON true/false are not numbers (Python would count them as 1 and 0)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


def _plain_decimal(value: Any) -> Any:
    """Money and rates as plain ASCII decimals: no 1_000, no exponents, no
    other scripts' digits, no true/false."""
    value = _no_bool(value)
    if isinstance(value, str) and not _DECIMAL.fullmatch(value.strip()):
        raise ValueError("must be a plain decimal number such as 1200.00")
    return value


_DECIMAL = re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,20})?")

# Client-chosen ids: they appear in actors (partner:<id>), tables and file names.
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$")]
# Never in any text: DEL and the C1 controls (NEL among them), and the
# bidirectional controls (U+061C, U+200E/F, U+202A-E, U+2066-9) that make a
# name or note display as something else.
_CONTROLS = r"\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# One-line text: no control characters or line breaks (PostgreSQL text cannot even hold NUL).
_LINE = rf"^[^\x00-\x1f{_CONTROLS}\u2028\u2029]*$"
# Free text (notes) may hold line breaks and tabs, still no other control characters.
_TEXT = rf"^[^\x00-\x08\x0b\x0c\x0e-\x1f{_CONTROLS}]*$"
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=_LINE)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000, pattern=_TEXT)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254, pattern=_LINE)]
Domain = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=253, pattern=_LINE)]
Money = Annotated[Decimal, BeforeValidator(_plain_decimal), Field(allow_inf_nan=False, max_digits=15, decimal_places=2)]
Rate = Annotated[Decimal, BeforeValidator(_plain_decimal), Field(allow_inf_nan=False, max_digits=7, decimal_places=6)]


def Count(low: int, high: int) -> Any:  # noqa: N802 - reads as a type
    return Annotated[int, BeforeValidator(_no_bool), Field(ge=low, le=high)]
Stage = Literal["new", "newsletter-subscription", "trial"]
Billing = Literal["credit-card", "invoice", "partner"]


class Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnrollPartner(Data):
    partner: Id
    name: Name
    domain: Domain | list[Domain] = Field(description="email domain(s), comma-separated")
    commission_rate: Rate

    @property
    def domains(self) -> list[str]:
        items = self.domain if isinstance(self.domain, list) else self.domain.split(",")
        return [d.strip() for d in items if d.strip()]


class SetCommissionRate(Data):
    partner: Id
    commission_rate: Rate


class RegisterDeal(Data):
    deal: Id
    partner: Id
    customer_name: Name
    contact_name: Name
    customer_email: Email
    note: Text | None = None


class AcceptDeal(Data):
    deal: Id


class DenyDeal(Data):
    deal: Id
    reason: Literal["existing-customer", "invalid-lead", "duplicate"]


class MoveDeal(Data):
    deal: Id
    stage: Stage


class AddDealNote(Data):
    deal: Id
    text: Text


class WinDeal(Data):
    deal: Id
    billing: Billing
    order_number: Name | None = None


class LoseDeal(Data):
    deal: Id
    note: Text | None = None


class StartTrial(Data):
    trial: Id
    partner: Id
    customer_name: Name
    customer_email: Email
    days: Count(1, 30) | None = None


class ExtendTrial(Data):
    trial: Id


class StartSubscription(Data):
    subscription: Id
    customer_domain: Domain
    plan: Name
    amount: Money
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    period: Literal["monthly", "yearly"]
    billing: Billing
    order_number: Name | None = None
    deal: Id | None = None


class RenewSubscription(Data):
    subscription: Id


class CancelSubscription(Data):
    subscription: Id


class Refund(Data):
    subscription: Id
    amount: Money
    charge: Count(1, 100_000) | None = None


class ReportUsage(Data):
    customer_domain: Domain
    users: Count(0, 10_000_000) | None = None
    framework: Name | None = None
    progress: Count(0, 100) | None = None
    activities: Count(0, 10_000_000) | None = None


class Sweep(Data):
    """Record what time alone decided: protections that lapsed, trials that
    expired. The candidates come from the read models; each is re-checked."""

    deals: Annotated[list[Id], Field(max_length=1_000_000)] = []
    trials: Annotated[list[Id], Field(max_length=1_000_000)] = []


class IssueStatement(Data):
    """Not a bulk command: `ledger statement issue` computes the figures."""

    partner: Id
    month: Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
    position: Annotated[int, Field(ge=0)]
    fingerprint: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    totals: dict[str, dict[str, str]]
    lines: Annotated[int, Field(ge=0)]


DATA_MODELS: dict[str, type[Data]] = {
    "enroll_partner": EnrollPartner,
    "set_commission_rate": SetCommissionRate,
    "register_deal": RegisterDeal,
    "accept_deal": AcceptDeal,
    "deny_deal": DenyDeal,
    "move_deal": MoveDeal,
    "add_deal_note": AddDealNote,
    "win_deal": WinDeal,
    "lose_deal": LoseDeal,
    "start_trial": StartTrial,
    "extend_trial": ExtendTrial,
    "start_subscription": StartSubscription,
    "renew_subscription": RenewSubscription,
    "cancel_subscription": CancelSubscription,
    "refund": Refund,
    "report_usage": ReportUsage,
    "sweep": Sweep,
}


class Malformed(ValueError):
    """Input that is not a well-formed command (exit status 2)."""


def parse_when(value: Any) -> datetime | None:
    """An effective date or date-time; a date means its midnight UTC, a naive
    date-time is taken as UTC. Years outside 1970-2199 are refused as typos."""
    if value is None:
        return None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        when = datetime.combine(value, time(), timezone.utc)
    elif isinstance(value, str) and 8 <= len(value) <= 40:
        try:
            when = (
                datetime.combine(date.fromisoformat(value), time(), timezone.utc)
                if len(value) == 10
                else datetime.fromisoformat(value.replace("Z", "+00:00"))
            )
        except ValueError:
            raise Malformed(f"'on' is not an ISO 8601 date or date-time: {value!r}") from None
    else:
        raise Malformed(f"'on' must be an ISO 8601 date or date-time string, not {type(value).__name__}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        when = when.astimezone(timezone.utc)
    except OverflowError:
        raise Malformed(f"'on' is out of range: {value!r}") from None
    if not 1970 <= when.year <= 2199:
        raise Malformed(f"'on' is out of range (years 1970 to 2199): {value!r}")
    return when


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id
    type: Literal[tuple(DATA_MODELS)]  # type: ignore[valid-type]
    on: datetime | None = None
    actor: Annotated[str, StringConstraints(max_length=140)] | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("on", mode="before")
    @classmethod
    def _on(cls, value: Any) -> datetime | None:
        return parse_when(value)


class Command(BaseModel):
    """One validated command: the envelope's fields and its typed data."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    on: datetime | None
    actor: str | None
    data: Data

    def data_json(self) -> dict[str, Any]:
        return self.data.model_dump(mode="json", exclude_none=True)


def one_line(text: str, limit: int = 300) -> str:
    """A message fit for one line of a report: control characters shown as
    escapes, whitespace runs folded, and cut to `limit` characters."""
    text = "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CHARACTERS = {  # what a text's pattern refuses, said in words
    _LINE: "must be one line without control characters or bidirectional controls",
    _TEXT: "must not contain control characters (other than tab and line breaks) or bidirectional controls",
}


def _one_line(err: ValidationError, prefix: str = "") -> str:
    parts = []
    errors = err.errors(include_url=False, include_input=False)
    for e in errors[:3]:
        loc = ".".join(one_line(str(x), 40) for x in e["loc"]) or "line"
        msg = _CHARACTERS.get((e.get("ctx") or {}).get("pattern", ""), e["msg"])
        parts.append(f"{prefix}{loc}: {one_line(msg, 120)}")
    more = len(errors) - 3
    return one_line("; ".join(parts) + (f" (and {more} more)" if more > 0 else ""))


def build(envelope: dict[str, Any]) -> Command:
    """Validate an envelope dict (from JSON or from CLI options) into a Command."""
    if not isinstance(envelope, dict):
        raise Malformed("a command line must be a JSON object")
    try:
        env = Envelope.model_validate(envelope)
    except ValidationError as e:
        raise Malformed(_one_line(e)) from None
    except RecursionError:
        raise Malformed("the command is nested too deeply") from None
    try:
        data = DATA_MODELS[env.type].model_validate(env.data)
    except ValidationError as e:
        raise Malformed(_one_line(e, "data.")) from None
    except RecursionError:
        raise Malformed("the command's data is nested too deeply") from None
    return Command(id=env.id, type=env.type, on=env.on, actor=env.actor, data=data)


def parse_line(raw: bytes | str) -> Command:
    """One JSON Lines line into a Command. Numbers stay Decimal, never float."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_LINE_BYTES:
            raise Malformed(f"line is longer than {MAX_LINE_BYTES} bytes")
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Malformed(f"line is not valid UTF-8 (byte {e.start})") from None
    if len(raw) > MAX_LINE_BYTES:
        raise Malformed(f"line is longer than {MAX_LINE_BYTES} characters")
    try:
        obj = json.loads(raw, parse_float=Decimal, parse_constant=_no_constant)
    except RecursionError:
        raise Malformed("line is nested too deeply") from None
    except ValueError as e:
        raise Malformed(f"line is not valid JSON: {e}") from None
    return build(obj)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")
