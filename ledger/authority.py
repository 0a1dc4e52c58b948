"""Who may do what. Every authority rule of the product is applied by this
module: which actor kinds may submit each command type (declared with the
type in `commands/registry.py`) or run each query, and the ownership check
that keeps a partner to its own deals, trials and customers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .actors import ACTOR_USAGE, FINANCE, MANAGER, PARTNER, SYSTEM, VENDOR_ROLES
from .errors import BadInput, Refused

_PARTNER = re.compile(r"^partner:([A-Za-z0-9][A-Za-z0-9._@+-]{0,127})$")


class Forbidden(Refused):
    """Beyond the actor's authority (HTTP 403). A `Refused`, so the CLI's exit
    status (1) and the per-line report stay as for any refusal."""


@dataclass(frozen=True)
class Actor:
    name: str
    # The API token that authenticated this actor (its name), recorded on every
    # event it causes; not part of the actor's identity.
    token: str | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, text: str) -> Actor:
        text = (text or "").strip()
        if text in VENDOR_ROLES or _PARTNER.match(text):
            return cls(text)
        raise BadInput(f"unknown actor {text!r}: use {ACTOR_USAGE}")

    @property
    def partner(self) -> str | None:
        m = _PARTNER.match(self.name)
        return m.group(1) if m else None

    @property
    def kind(self) -> str:
        return PARTNER if self.partner else self.name

    @property
    def is_system(self) -> bool:
        return self.name == SYSTEM

    def __str__(self) -> str:
        return self.name


def may_submit(actor: Actor, command_type: str) -> None:
    """Whether `actor` may submit commands of `command_type` at all (its
    `roles` in the registry; `system` may submit anything). Raises Forbidden."""
    from .commands.registry import COMMAND_TYPES  # the registry's handlers use this module

    known = COMMAND_TYPES.get(command_type)
    if actor.is_system or (known is not None and actor.kind in known.roles):
        return
    raise Forbidden(f"{actor} may not {command_type.replace('_', ' ')}")


def may_act_for(submitter: Actor, actor: Actor) -> None:
    """Only `system` submits lines on behalf of other actors."""
    if actor != submitter and not submitter.is_system:
        raise Forbidden(f"{submitter} may not submit commands as {actor}; only system may")


def owner(actor: Actor, partner: str | None, what: str) -> None:
    """A partner acts only on its own records; vendor roles are checked by may_submit."""
    if actor.partner is not None and actor.partner != partner:
        raise Forbidden(f"{actor} may not act on {what}: it belongs to another partner")


def reader_scope(actor: Actor, partner: str | None) -> str | None:
    """The partner whose data a query may show: a partner reads only its own."""
    if actor.partner is None:
        return partner
    if partner is not None and partner != actor.partner:
        raise Forbidden(f"{actor} may not read partner {partner}'s data")
    return actor.partner


def may_audit(actor: Actor) -> None:
    """Audits read the whole ledger: vendor roles and system, never a partner."""
    if actor.partner is not None:
        raise Forbidden(f"{actor} may not run audits; they read every partner's data")


def may_manage_tokens(actor: Actor) -> None:
    """Issuing, listing and revoking API tokens is the vendor manager's and system's."""
    if actor.name not in (MANAGER, SYSTEM):
        raise Forbidden(f"{actor} may not manage API tokens; vendor:manager or system may")


def may_issue_token(issuer: Actor, holder: Actor) -> None:
    """A token acts as its holder: only system hands out system's powers."""
    may_manage_tokens(issuer)
    if holder.is_system and not issuer.is_system:
        raise Forbidden(f"{issuer} may not issue a token for system; only system may")


# Rebuilding swaps every reader's tables and replays the whole ledger: the
# ledger's own maintenance, not a partner's or the deal desk's.
REBUILDERS = frozenset({SYSTEM, FINANCE})


def may_rebuild(actor: Actor) -> None:
    """Only `system` and `vendor:finance` rebuild projections. Raises Forbidden."""
    if actor.name not in REBUILDERS:
        raise Forbidden(f"{actor} may not rebuild projections; only system and vendor:finance may")


def sees_positions(actor: Actor) -> bool:
    """Ledger positions and head count every partner's events: vendor roles and
    system see them; a partner sees only each read model's name, version and
    whether it is current (`projections status`)."""
    return actor.partner is None
