"""API tokens: name, the actor each acts as, the digest of its secret, and when
it was issued and revoked. Lists tokens and narrows a presented secret's
digest to a name; whether a token still works is the Token aggregate's to say."""

from __future__ import annotations

from typing import Any

from ..aggregates.token import Token
from .base import Projection, Table, Writer

TOKENS = Table(
    "pl_tokens",
    key=("agg",),
    columns={"agg": "TEXT", "name": "TEXT", "actor": "TEXT", "digest": "TEXT", "issued_at": "TEXT", "issued_by": "TEXT",
             "revoked_at": "TEXT", "revoked_by": "TEXT"},
    indexes=(("digest",), ("name",)),
    current_only=True,  # checked against the live ledger only, never known-at
)


class Tokens(Projection):
    name = "tokens"
    version = 1
    tables = (TOKENS,)
    handles = (Token.Issued, Token.Revoked)

    def apply(self, w: Writer, e: Any, n: Any) -> None:
        rows = w["pl_tokens"]
        agg = e.originator_id.hex
        if isinstance(e, Token.Issued):
            rows.put({"agg": agg, "name": e.name, "actor": e.holder, "digest": e.digest,
                      "issued_at": e.timestamp.isoformat(), "issued_by": e.actor})
        else:
            rows.update(agg, revoked_at=e.timestamp.isoformat(), revoked_by=e.actor)


def tokens(sql: Any) -> list[dict[str, Any]]:
    """Every token, by name: name, actor, issued_at, issued_by, revoked_at, revoked_by (no digests)."""
    cols = [c for c in TOKENS.columns if c not in ("agg", "digest")]
    return [dict(zip(cols, r)) for r in sql.all(f"SELECT {', '.join(cols)} FROM pl_tokens ORDER BY name")]


def name_of(sql: Any, digest: str) -> str | None:
    """The name of the token whose secret has this SHA-256 digest, if any."""
    row = sql.one("SELECT name FROM pl_tokens WHERE digest = ?", [digest])
    return row[0] if row else None
