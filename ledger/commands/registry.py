"""The command registry: one declaration per command type, and everything the
ledger does with a command type reads it from here.

A `CommandType` names its pydantic data model (`models.py`: the fields, each
with its help), its handler (`handlers.py`), the actor kinds that may submit
it (authority), the aggregates its key fields name (loaded ahead in a batch),
its help text and, for most, the `ledger GROUP SUB` sub-command it gets.
From these the JSON Lines envelope, the HTTP API's command schema, the
authority check and the CLI's sub-commands are derived.

To add a command type: write its data model and handler, then `register` it
below. Nothing else needs to know its name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..aggregates import Deal, Partner, Subscription, Trial
from ..aggregates.base import Context, LedgerAggregate
from ..aggregates.deal import OPEN_STAGES, PROTECTION_DAYS
from ..aggregates.trial import EXTENDED_DAYS, STANDARD_DAYS
from ..actors import ACTOR_KINDS, FINANCE, MANAGER, PARTNER
from ..timeline import AHEAD_ANY, AHEAD_LIMITED, AHEAD_TODAY
from . import handlers as h
from . import models as m

Handler = Callable[[h.UnitOfWork, m.Data, Context], "str | None"]


@dataclass(frozen=True)
class CommandType:
    """One command type, declared once.

    - `name`: the envelope's `type` (e.g. "register_deal").
    - `model`: its `data` (a pydantic model; each field's description is its help).
    - `handler`: runs it on a unit of work; returns an optional note for the report.
    - `roles`: actor kinds that may submit it besides `system`, which may submit
      anything; "partner" means a partner acting on its own records (the
      handler checks ownership with `authority.owner`).
    - `summary`: what it does, one or two sentences (the sub-command's help).
    - `cli`: (group, sub-command) of `ledger GROUP SUB`, or None when another
      command drives it (`ledger sweep`, `ledger token issue`, ...).
    - `positional`: fields the sub-command also takes as positional arguments.
    - `keys`: data fields that name an aggregate (field -> aggregate class),
      loaded ahead with the rest of a batch.
    - `bulk`: accepted as a JSON Lines line and by POST /api/v1/commands;
      False for commands whose data the ledger computes (an issued statement's
      figures, a token's hash).
    - `derived`: data fields the ledger fills in itself from its own state: not
      part of what was asked, so not part of the command's identity.
    - `ahead`: how far ahead of today it may be dated (`timeline.check_effective_date`):
      AHEAD_LIMITED (LEDGER_MAX_FUTURE_DAYS), AHEAD_TODAY (not at all) or AHEAD_ANY."""

    name: str
    model: type[m.Data]
    handler: Handler
    roles: frozenset[str]
    summary: str
    cli: tuple[str, str] | None = None
    positional: tuple[str, ...] = ()
    keys: Mapping[str, type[LedgerAggregate]] = field(default_factory=dict)
    bulk: bool = True
    derived: frozenset[str] = frozenset()
    ahead: str = AHEAD_LIMITED

    def __post_init__(self) -> None:
        fields = set(self.model.model_fields)
        named = {*self.positional, *self.keys, *self.derived}
        if not named <= fields:
            raise TypeError(f"{self.name}: {sorted(named - fields)} are not fields of {self.model.__name__}")
        if self.ahead not in (AHEAD_TODAY, AHEAD_LIMITED, AHEAD_ANY):
            raise TypeError(f"{self.name}: ahead must be AHEAD_TODAY, AHEAD_LIMITED or AHEAD_ANY")
        if not self.roles <= set(ACTOR_KINDS):
            raise TypeError(f"{self.name}: unknown actor kinds {sorted(self.roles - set(ACTOR_KINDS))}")
        if self.cli is not None and not all(self.model.model_fields[f].description for f in fields):
            raise TypeError(f"{self.name}: every field of a CLI sub-command needs a description (its help)")


COMMAND_TYPES: dict[str, CommandType] = {}


def register(command_type: CommandType) -> CommandType:
    """Add `command_type` to the registry; raises TypeError for a name or a
    sub-command already taken."""
    if command_type.name in COMMAND_TYPES:
        raise TypeError(f"command type {command_type.name} is already registered")
    if command_type.cli is not None and command_type.cli in {t.cli for t in COMMAND_TYPES.values()}:
        raise TypeError(f"sub-command {' '.join(command_type.cli)} is already taken")
    COMMAND_TYPES[command_type.name] = command_type
    return command_type


def bulk_types() -> dict[str, CommandType]:
    """The command types a JSON Lines line (or an API request) may name, in
    declaration order."""
    return {name: t for name, t in COMMAND_TYPES.items() if t.bulk}


def in_group(group: str) -> dict[str, CommandType]:
    """The command types of `ledger GROUP`, by sub-command name, in declaration order."""
    return {t.cli[1]: t for t in COMMAND_TYPES.values() if t.cli is not None and t.cli[0] == group}


VENDOR = frozenset({MANAGER})
BOTH = frozenset({PARTNER, MANAGER})
SYSTEM_ONLY: frozenset[str] = frozenset()

# -- partners ---------------------------------------------------------------
register(CommandType(
    "enroll_partner", m.EnrollPartner, h.enroll_partner, VENDOR,
    "Enroll a partner with its domain(s) and commission rate.",
    cli=("partner", "enroll"), positional=("partner",), keys={"partner": Partner}))
register(CommandType(
    "set_commission_rate", m.SetCommissionRate, h.set_commission_rate, VENDOR,
    "Change a partner's commission rate, in force from the effective date (--on).",
    cli=("partner", "set-rate"), positional=("partner", "commission_rate"), keys={"partner": Partner},
    ahead=AHEAD_ANY))  # it schedules a rate from its date

# -- deals ------------------------------------------------------------------
register(CommandType(
    "register_deal", m.RegisterDeal, h.register_deal, BOTH,
    f"Register a deal for a customer (pending until reviewed; protects the domain {PROTECTION_DAYS} days).",
    cli=("deal", "register"), positional=("deal",), keys={"deal": Deal, "partner": Partner}))
register(CommandType(
    "accept_deal", m.AcceptDeal, h.accept_deal, VENDOR, "Accept a pending deal (vendor).",
    cli=("deal", "accept"), positional=("deal",), keys={"deal": Deal}))
register(CommandType(
    "deny_deal", m.DenyDeal, h.deny_deal, VENDOR, "Deny a pending deal with a reason (vendor).",
    cli=("deal", "deny"), positional=("deal", "reason"), keys={"deal": Deal}))
register(CommandType(
    "move_deal", m.MoveDeal, h.move_deal, BOTH,
    f"Move a deal forward: {', '.join(OPEN_STAGES)}.",
    cli=("deal", "move"), positional=("deal", "stage"), keys={"deal": Deal}))
register(CommandType(
    "add_deal_note", m.AddDealNote, h.add_deal_note, BOTH, "Add a note to the deal card (renews protection).",
    cli=("deal", "note"), positional=("deal", "text"), keys={"deal": Deal}))
register(CommandType(
    "win_deal", m.WinDeal, h.win_deal, BOTH, "Close a deal as won with its billing option.",
    cli=("deal", "win"), positional=("deal", "billing"), keys={"deal": Deal}))
register(CommandType(
    "lose_deal", m.LoseDeal, h.lose_deal, BOTH, "Close a deal as lost, ideally with a note.",
    cli=("deal", "lose"), positional=("deal",), keys={"deal": Deal}))

# -- trials -----------------------------------------------------------------
register(CommandType(
    "start_trial", m.StartTrial, h.start_trial, BOTH,
    f"Start a trial for a customer ({STANDARD_DAYS} days unless --days).",
    cli=("trial", "start"), positional=("trial",), keys={"trial": Trial, "partner": Partner}))
register(CommandType(
    "extend_trial", m.ExtendTrial, h.extend_trial, BOTH,
    f"Extend a running trial once, to {EXTENDED_DAYS} days in total.",
    cli=("trial", "extend"), positional=("trial",), keys={"trial": Trial}))

# -- subscriptions ------------------------------------------------------------
register(CommandType(
    "start_subscription", m.StartSubscription, h.start_subscription, VENDOR,
    "Start a subscription; its first billing period is charged.",
    cli=("subscription", "start"), positional=("subscription",),
    keys={"subscription": Subscription, "deal": Deal}))
register(CommandType(
    "renew_subscription", m.RenewSubscription, h.renew_subscription, VENDOR,
    "Renew: charge the next billing period.",
    cli=("subscription", "renew"), positional=("subscription",), keys={"subscription": Subscription}))
register(CommandType(
    "cancel_subscription", m.CancelSubscription, h.cancel_subscription, VENDOR, "Cancel a subscription.",
    cli=("subscription", "cancel"), positional=("subscription",), keys={"subscription": Subscription}))
register(CommandType(
    "refund", m.Refund, h.refund, VENDOR,
    "Refund (part of) the latest charge, or --charge N; claws back its commission.",
    cli=("subscription", "refund"), positional=("subscription", "amount"), keys={"subscription": Subscription}))

# -- usage and time -------------------------------------------------------------
register(CommandType(
    "report_usage", m.ReportUsage, h.report_usage, SYSTEM_ONLY, "Report a customer's product usage (system).",
    cli=("usage", "report"), positional=("customer_domain",)))
register(CommandType(
    "sweep", m.Sweep, h.sweep, SYSTEM_ONLY,
    "Record protections that lapsed and trials that expired (system).",
    derived=frozenset({"deals", "trials"}),  # `ledger sweep` asks the read models for the candidates
    ahead=AHEAD_TODAY))  # time alone decides what lapsed: it cannot run ahead

# -- driven by other commands: `ledger statement issue`, `ledger token ...` ------
register(CommandType(
    "issue_statement", m.IssueStatement, h.issue_statement, frozenset({FINANCE}),
    "Freeze a partner's statement for a month (finance).",
    keys={"partner": Partner}, bulk=False, derived=frozenset({"position", "fingerprint", "totals", "lines"})))
register(CommandType(
    "issue_token", m.IssueToken, h.issue_token, VENDOR, "Issue an API token (its hash).", bulk=False))
register(CommandType(
    "revoke_token", m.RevokeToken, h.revoke_token, VENDOR, "Revoke an API token.", bulk=False))
