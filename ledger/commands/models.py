"""The command models at the boundary: a JSON line or a set of CLI options
becomes one `Command` (envelope + typed data), or a `Malformed` error that
names the field. Nothing past this module sees unvalidated input.

Each field's `description` is its help (the CLI option's, the API schema's);
allowed values come from the domain's constants. Which models are command
types, and what else each type has, is declared in `registry.py`."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from functools import lru_cache
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError,
    create_model, field_validator, model_validator,
)

from .. import money
from ..aggregates.deal import BILLING_OPTIONS, DENY_REASONS, OPEN_STAGES
from ..aggregates.partner import check_rate
from ..aggregates.subscription import PERIODS
from ..aggregates.trial import EXTENDED_DAYS, STANDARD_DAYS
from ..errors import BadInput, Refused
from ..timeline import day_start, effective

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


def _email_syntax(value: str) -> str:
    """An address that can never identify anyone is malformed input (exit 2),
    by the one identity rule (ledger/identity.py); what the ledger's policy
    refuses (free-mail domains) is left to the handler (exit 1)."""
    from ..aggregates import Refused
    from ..identity import customer_domain

    if "@" not in value:
        raise ValueError(f"not a valid email address: {value!r}")
    try:
        customer_domain(value)
    except Refused:
        pass
    return value


# Client-chosen ids: they appear in actors (partner:<id>), tables and file names.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
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
Email = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254, pattern=_LINE),
                  AfterValidator(_email_syntax)]
Domain = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=253, pattern=_LINE)]
# An amount in a currency: up to 4 decimals here (ISO 4217's most); the
# currency's own minor units are checked by ledger/money.py.
Money = Annotated[Decimal, BeforeValidator(_plain_decimal), Field(allow_inf_nan=False, gt=0, max_digits=15, decimal_places=4)]
def _commission_rate(rate: Decimal) -> Decimal:
    """The partner's rate bounds (`check_rate`, their one home) as a model
    check: a rate out of them is malformed input, whatever the ledger holds."""
    try:
        return check_rate(rate)
    except Refused as e:
        raise ValueError(str(e)) from None


Rate = Annotated[Decimal, BeforeValidator(_plain_decimal), Field(allow_inf_nan=False, max_digits=7, decimal_places=6),
                 AfterValidator(_commission_rate)]


CURRENCY_PATTERN = r"^[A-Z]{3}$"
MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


def Count(low: int, high: int) -> Any:  # noqa: N802 - reads as a type
    return Annotated[int, BeforeValidator(_no_bool), Field(ge=low, le=high)]


def one_of(values: tuple[str, ...]) -> str:
    """Allowed values in words: `a, b or c`."""
    return " or ".join(filter(None, (", ".join(values[:-1]), values[-1])))


def Help(kind: Any, text: str) -> Any:  # noqa: N802 - reads as a type
    """`kind` with its help text (the CLI option's help, the API schema's description)."""
    return Annotated[kind, Field(description=text)]


Billing = Literal[BILLING_OPTIONS]  # type: ignore[valid-type]

# The fields of the command types, each with its help: a field of the same
# name means the same in every command.
PartnerId = Help(Id, "Partner id.")
DEAL_ID, BILLING = "Deal id (chosen by you).", f"{one_of(BILLING_OPTIONS)}."
DealId = Help(Id, DEAL_ID)
TrialId = Help(Id, "Trial id (chosen by you).")
SubscriptionId = Help(Id, "Subscription id (chosen by you).")
CompanyName = Help(Name, "Company name.")
CommissionRate = Help(Rate, "Decimal fraction, e.g. 0.20.")
CustomerName = Help(Name, "The customer's company name.")
CustomerEmail = Help(Email, "The customer contact's email (its domain identifies the customer).")
CUSTOMER_DOMAIN = "The customer's domain (www.example.fi is example.fi); with --deal, the deal's."
CustomerDomain = Help(Domain, CUSTOMER_DOMAIN)
Note = Help(Text | None, "Optional note.")
BillingOption = Help(Billing, BILLING)
OrderNumber = Help(Name | None, "Order number (required for invoice).")
Amount = Help(Money, "Amount as a decimal, e.g. 1200.00.")
Domains = Help(Domain | list[Domain], "Email domain(s), comma-separated.")
ContactName = Help(Name, "The customer's contact person.")
DenyReason = Help(Literal[DENY_REASONS], f"{one_of(DENY_REASONS)}.")  # type: ignore[valid-type]
OpenStage = Help(Literal[OPEN_STAGES], f"{one_of(OPEN_STAGES)}.")  # type: ignore[valid-type]
NoteText = Help(Text, "The note's text.")
TrialDays = Help(Count(1, EXTENDED_DAYS) | None,
                 f"Trial length in days (default {STANDARD_DAYS}, at most {EXTENDED_DAYS}).")
MaybeCustomerDomain = Help(Domain | None, CUSTOMER_DOMAIN)
Plan = Help(Name, "Plan name.")
Currency = Help(Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN)], "ISO 4217 code, e.g. EUR.")
Period = Help(Literal[PERIODS], f"{one_of(PERIODS)}.")  # type: ignore[valid-type]
MaybeBilling = Help(Billing | None, BILLING)
MaybeDealId = Help(Id | None, DEAL_ID)
ChargeNumber = Help(Count(1, 100_000) | None, "Charge number to refund (default: the latest).")
Users = Help(Count(0, 10_000_000) | None, "Number of users.")
Framework = Help(Name | None, "Main framework, e.g. ISO 27001.")
Progress = Help(Count(0, 100) | None, "Framework progress, 0-100.")
Activities = Help(Count(0, 10_000_000) | None, "Activities on the day.")


class Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnrollPartner(Data):
    partner: PartnerId
    name: CompanyName
    domain: Domains
    commission_rate: CommissionRate

    @property
    def domains(self) -> list[str]:
        items = self.domain if isinstance(self.domain, list) else self.domain.split(",")
        return [d.strip() for d in items if d.strip()]


class SetCommissionRate(Data):
    partner: PartnerId
    commission_rate: CommissionRate


class RegisterDeal(Data):
    deal: DealId
    partner: PartnerId
    customer_name: CustomerName
    contact_name: ContactName
    customer_email: CustomerEmail
    note: Note = None


class AcceptDeal(Data):
    deal: DealId


class DenyDeal(Data):
    deal: DealId
    reason: DenyReason


class MoveDeal(Data):
    deal: DealId
    stage: OpenStage


class AddDealNote(Data):
    deal: DealId
    text: NoteText


class WinDeal(Data):
    deal: DealId
    billing: BillingOption
    order_number: OrderNumber = None


class LoseDeal(Data):
    deal: DealId
    note: Note = None


class StartTrial(Data):
    trial: TrialId
    partner: PartnerId
    customer_name: CustomerName
    customer_email: CustomerEmail
    days: TrialDays = None


class ExtendTrial(Data):
    trial: TrialId


class StartSubscription(Data):
    """Without `deal`, customer_domain and billing are required; with it they
    (and the order number) come from the won deal when not given."""

    subscription: SubscriptionId
    customer_domain: MaybeCustomerDomain = None
    plan: Plan
    # The currency comes before the amount: the amount's check needs it.
    currency: Currency
    amount: Amount
    period: Period
    billing: MaybeBilling = None
    order_number: OrderNumber = None
    deal: MaybeDealId = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, code: str) -> str:
        try:
            return money.check_currency(code)
        except money.MoneyError as e:
            raise ValueError(str(e).removeprefix("currency ")) from None

    @field_validator("amount")
    @classmethod
    def _amount(cls, amount: Decimal, info: Any) -> Decimal:
        currency = info.data.get("currency")
        if currency is None:  # the currency itself is wrong: that error says so
            return amount
        try:
            return money.check_amount(amount, currency, what="")
        except money.MoneyError as e:
            raise ValueError(str(e).strip()) from None

    @model_validator(mode="after")
    def _complete(self) -> StartSubscription:
        if self.deal is None:
            missing = [f for f in ("customer_domain", "billing") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"without a deal, {' and '.join(missing)} must be given")
        return self


class RenewSubscription(Data):
    subscription: SubscriptionId


class CancelSubscription(Data):
    subscription: SubscriptionId


class Refund(Data):
    subscription: SubscriptionId
    amount: Amount  # in the subscription's currency: its minor units are checked there
    charge: ChargeNumber = None


class ReportUsage(Data):
    customer_domain: CustomerDomain
    users: Users = None
    framework: Framework = None
    progress: Progress = None
    activities: Activities = None


class Sweep(Data):
    """Record what time alone decided: protections that lapsed, trials that
    expired. The candidates come from the read models; each is re-checked."""

    deals: Annotated[list[Id], Field(max_length=1_000_000)] = []
    trials: Annotated[list[Id], Field(max_length=1_000_000)] = []


class IssueStatement(Data):
    """Not a bulk command: `ledger statement issue` computes the figures."""

    partner: Id
    month: Annotated[str, StringConstraints(pattern=MONTH_PATTERN)]
    position: Annotated[int, Field(ge=0)]
    fingerprint: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    totals: dict[str, dict[str, str]]
    lines: Annotated[int, Field(ge=0)]


class IssueToken(Data):
    """Not a bulk command: `ledger token issue` draws the secret and sends its hash."""

    name: Id
    actor: Annotated[str, StringConstraints(max_length=140)]
    digest: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class RevokeToken(Data):
    """Not a bulk command: `ledger token revoke NAME`."""

    name: Id



class Malformed(BadInput):
    """Input that is not a well-formed command (exit status 2). `id` and
    `type` are the line's own, when its envelope was well-formed, so the
    report can name the command."""

    def __init__(self, message: str, id: str | None = None, type: str | None = None,  # noqa: A002
                 code: str | None = None, facts: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, facts=facts)
        self.id, self.type = id, type


def parse_when(value: Any) -> datetime | None:
    """An effective date or date-time as an instant in UTC. A date means the
    start of that business day, a naive date-time is wall time, both in
    LEDGER_TIMEZONE (ledger.timeline); a date-time with an offset is that
    instant. Years outside 1970-2199 are refused as typos."""
    if value is None:
        return None
    try:
        if isinstance(value, datetime):
            when = effective(value)
        elif isinstance(value, date):
            when = day_start(value)
        elif isinstance(value, str) and 8 <= len(value) <= 40:
            try:
                when = (
                    day_start(date.fromisoformat(value))
                    if len(value) == 10
                    else effective(datetime.fromisoformat(value.replace("Z", "+00:00")))
                )
            except ValueError:
                raise Malformed(f"'on' is not an ISO 8601 date or date-time: {value!r}") from None
        else:
            raise Malformed(f"'on' must be an ISO 8601 date or date-time string, not {type(value).__name__}")
    except OverflowError:
        raise Malformed(f"'on' is out of range: {value!r}") from None
    if not 1970 <= when.year <= 2199:
        raise Malformed(f"'on' is out of range (years 1970 to 2199): {value!r}")
    return when


class Envelope(BaseModel):
    """A line's envelope; `envelope()` narrows `type` to the registry's types."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    type: str
    on: datetime | None = None
    actor: Annotated[str, StringConstraints(max_length=140)] | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("on", mode="before")
    @classmethod
    def _on(cls, value: Any) -> datetime | None:
        return parse_when(value)


def envelope() -> type[Envelope]:
    """The envelope model whose `type` is one of the command types a line may
    name (`registry.bulk_types`), built once per set of registered types."""
    from .registry import bulk_types  # the registry imports this module

    return _envelope(tuple(bulk_types()))


@lru_cache(maxsize=4)
def _envelope(types: tuple[str, ...]) -> type[Envelope]:
    return create_model("Envelope", __base__=Envelope, type=(Literal[types], ...))  # type: ignore[call-overload]


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


# What a pattern asks for, in words (validator wording never reaches a user).
PATTERN_WORDS = {
    ID_PATTERN: "an id of letters, digits and . _ @ : + - (no spaces), starting with a letter or digit, "
                "at most 128 characters",
    CURRENCY_PATTERN: "an ISO 4217 currency code in upper case, such as EUR",
    MONTH_PATTERN: "a month written YYYY-MM, such as 2026-01",
    _LINE: "one line of text without control characters or bidirectional controls",
    _TEXT: "text without control characters (other than tab and line breaks) or bidirectional controls",
}
RATE_FIELDS = ("commission_rate",)


def _field_name(loc: tuple[Any, ...], options: bool) -> str:
    """`data.billing` in a JSON Lines report; `--billing` for a CLI option."""
    parts = [one_line(str(x), 40) for x in loc]
    if options and parts:
        field = parts[1] if parts[0] == "data" and len(parts) > 1 else parts[0]
        return "--" + field.replace("_", "-")
    return ".".join(parts) or "line"


# Sentences per pydantic error type; {name} is what the user typed, the rest
# comes from the error's context.
ERROR_WORDS = {
    "missing": "{name} is required",
    "extra_forbidden": "{name} is not a field of this command",
    "decimal_max_places": "{name} has at most {decimal_places} decimals",
    "decimal_max_digits": "{name} is too large",
    "decimal_whole_digits": "{name} is too large",
    "greater_than": "{name} must be more than {gt}",
    "greater_than_equal": "{name} must be at least {ge}",
    "less_than_equal": "{name} must be at most {le}",
    "string_too_short": "{name} must not be empty",
    "string_too_long": "{name} is longer than {max_length} characters",
    "int_parsing": "{name} must be a whole number",
    "int_type": "{name} must be a whole number",
    "int_from_float": "{name} must be a whole number",
    "decimal_parsing": "{name} must be a plain decimal number such as 1200.00",
    "decimal_type": "{name} must be a plain decimal number such as 1200.00",
    "finite_number": "{name} must be a plain decimal number such as 1200.00",
    "string_type": "{name} must be text",
    "list_type": "{name} must be a list",
    "dict_type": "{name} must be an object",
    "model_type": "{name} must be an object",
    "bool_type": "{name} must be true or false",
}


def human_error(e: dict[str, Any], name: str) -> str:
    """One pydantic error as a sentence naming `name` (what the user typed):
    no validator wording, no internal field paths, no URLs."""
    kind, ctx = e["type"], e.get("ctx") or {}
    field = str(e["loc"][-1]) if e["loc"] else ""
    if kind == "string_pattern_mismatch":
        return f"{name} must be {PATTERN_WORDS.get(ctx.get('pattern'), 'in the documented form')}"
    if field in RATE_FIELDS and kind.startswith("decimal"):
        return f"{name} is a fraction such as 0.20 (20 %), with at most 6 decimals"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"{name} must be one of {', '.join(choices)}" if choices else f"{name} is not one of the choices"
    if kind in ERROR_WORDS:
        try:
            return ERROR_WORDS[kind].format(name=name, **ctx)
        except (KeyError, IndexError):
            pass  # a context without the figure: fall through to the plain message
    message = str(e["msg"]).removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    return f"{name} {message}" if message.startswith(("must ", "has ")) else f"{name}: {message}"


def _one_line(err: ValidationError, prefix: str = "", options: bool = False) -> str:
    """A validation error as one line of human text (see human_error)."""
    parts = []
    errors = err.errors(include_url=False, include_input=False)
    for e in errors[:3]:
        loc = tuple(x for x in (prefix.rstrip("."),) if x) + tuple(e["loc"])
        # A list of choices is the message's point: it is not cut like the rest.
        parts.append(one_line(human_error(e, _field_name(loc, options)), 360 if e["type"] == "literal_error" else 160))
    more = len(errors) - 3
    return one_line("; ".join(parts) + (f" (and {more} more)" if more > 0 else ""), 390)


def build(obj: dict[str, Any], options: bool = False) -> Command:
    """Validate an envelope dict (from JSON or from CLI options) into a Command.
    Raises Malformed naming the JSON field (`data.billing`), or with
    `options` the CLI option (`--billing`)."""
    from .registry import COMMAND_TYPES  # the registry imports this module

    if not isinstance(obj, dict):
        raise Malformed("a command line must be a JSON object")
    try:
        env = envelope().model_validate(obj)
    except ValidationError as e:
        # The line's id still names it in the report when the id itself is well-formed.
        known = obj.get("id") if isinstance(obj.get("id"), str) and re.fullmatch(ID_PATTERN, obj["id"]) else None
        raise Malformed(_one_line(e, options=options), known) from None
    except RecursionError:
        raise Malformed("the command is nested too deeply") from None
    try:
        data = COMMAND_TYPES[env.type].model.model_validate(env.data)
    except ValidationError as e:
        fields = sorted({str(x["loc"][0]) for x in e.errors() if x["loc"]})
        raise Malformed(_one_line(e, "data.", options), env.id, env.type,
                        code="invalid_data", facts={"fields": fields}) from None
    except RecursionError:
        raise Malformed("the command's data is nested too deeply") from None
    # Every field was validated just above: built without validating them again.
    return Command.model_construct(id=env.id, type=env.type, on=env.on, actor=env.actor, data=data)


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
