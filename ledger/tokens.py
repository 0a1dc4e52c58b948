"""API tokens: issue (the secret is shown once; the ledger keeps its SHA-256
digest), list, revoke, and authenticate a presented secret. Issuing and
revoking are commands on the Token aggregate, so they are events with actor,
command id and time like any other."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from uuid import uuid4

from . import authority
from .aggregates.token import Token
from .commands.models import Command, IssueToken, RevokeToken
from .projections import tokens as projection
from .service import Ledger

PREFIX = "plt_"  # recognisable in a leaked-secret scan
SECRET_BYTES = 32  # 256 bits from the OS's CSPRNG
MAX_TOKEN_CHARS = 200  # a presented token longer than this is not one of ours


class Unauthorized(Exception):
    """No token, or one that is unknown or revoked (HTTP 401)."""


def digest(secret: str) -> str:
    """SHA-256 of a token's secret, as 64 lowercase hex digits."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def issue(ledger: Ledger, actor: str, name: str, command_id: str | None = None) -> dict[str, Any]:
    """Issue a token acting as `actor`, on behalf of `ledger.actor` (vendor
    manager or system; only system issues system tokens). Returns {"name",
    "actor", "token"}: the secret, which the ledger does not keep. Raises
    BadInput for an unknown actor, Malformed for a bad name, Refused
    (Forbidden) when not allowed or the name exists."""
    holder = authority.Actor.parse(actor)
    authority.may_issue_token(ledger.actor, holder)
    secret = PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    data = _data(IssueToken, name=name, actor=str(holder), digest=digest(secret))
    _run(ledger, "issue_token", data, command_id)
    return {"name": name, "actor": str(holder), "token": secret}


def revoke(ledger: Ledger, name: str, command_id: str | None = None) -> dict[str, Any]:
    """Revoke token `name`: it fails from the next request on. Raises Refused
    (Forbidden) for other actors than the vendor manager or system, or when
    no such token exists or it is already revoked."""
    authority.may_manage_tokens(ledger.actor)
    _run(ledger, "revoke_token", _data(RevokeToken, name=name), command_id)
    return {"name": name, "revoked": True}


def listing(ledger: Ledger) -> list[dict[str, Any]]:
    """Every token (never a secret or digest): name, actor, issued_at,
    issued_by, revoked_at, revoked_by."""
    authority.may_manage_tokens(ledger.actor)
    return projection.tokens(ledger.reader())


def authenticate(ledger: Ledger, secret: str | None) -> authority.Actor:
    """The actor a presented secret acts as, carrying the token's name.
    The read model narrows the digest to a name; the Token aggregate, read
    from the event store on every call (no cache across requests), says
    whether it still works. Raises Unauthorized."""
    if not secret:
        raise Unauthorized("no token: send Authorization: Bearer <token>")
    if len(secret) > MAX_TOKEN_CHARS or not secret.isascii():
        raise Unauthorized("unknown or revoked token")
    return authenticate_digest(ledger, digest(secret))


def authenticate_digest(ledger: Ledger, wanted: str) -> authority.Actor:
    """`authenticate` for a secret already digested (`digest`): what a portal
    session keeps, so the cookie never carries the secret and a revoked token
    ends its sessions at the next request. Raises Unauthorized."""
    name = projection.name_of(ledger.sql, wanted)
    if name is None:
        ledger.runner.catch_up()  # issued by another process whose read-model write is pending
        name = projection.name_of(ledger.sql, wanted)
    token = ledger.app.load(_token_id(name)) if name is not None else None
    if token is None or token.revoked or not hmac.compare_digest(token.digest, wanted):
        raise Unauthorized("unknown or revoked token")
    return authority.Actor(token.holder, token=token.name)


def _token_id(name: str) -> Any:
    from .aggregates import aggregate_id

    return aggregate_id(Token.KIND, name)


def _data(model: Any, **fields: Any) -> Any:
    from pydantic import ValidationError

    from .commands.models import Malformed, _one_line

    try:
        return model.model_validate(fields)
    except ValidationError as e:
        raise Malformed(_one_line(e)) from None


def _run(ledger: Ledger, type_: str, data: Any, command_id: str | None) -> None:
    cmd = Command(id=command_id or f"{type_.split('_')[0]}-token-{uuid4().hex}", type=type_, on=None,
                  actor=None, data=data)
    ledger.command(cmd)
