"""Token: an API credential, one per name. The ledger keeps only the SHA-256
digest of the secret (the secret is shown once, when issued). Issuing and
revoking are events, so who handed out which key, and when it stopped
working, is part of the audited history."""

from __future__ import annotations

from .base import Context, LedgerAggregate, Refused


class Token(LedgerAggregate):
    KIND = "token"

    class Issued(LedgerAggregate.Created):
        name: str
        holder: str  # the actor the token acts as
        digest: str  # SHA-256 of the secret, hex

    class Revoked(LedgerAggregate.Event):
        def apply(self, t: Token) -> None:
            t.revoked = True

    def __init__(self, name: str, holder: str, digest: str) -> None:
        self.name, self.holder, self.digest = name, holder, digest
        self.revoked = False

    @classmethod
    def issue(cls, existing: Token | None, name: str, holder: str, digest: str, ctx: Context) -> Token:
        """A new token `name` acting as `holder`. Raises Refused when the name
        was ever used (names stay unique, so the events of a revoked key never
        get mixed up with a new one's)."""
        if existing is not None:
            raise Refused(f"token {name!r} already exists; choose another name")
        return cls._new(cls.Issued, name, ctx, name=name, holder=holder, digest=digest)

    def revoke(self, ctx: Context) -> None:
        """Stop the token working from the next request on. Raises Refused if already revoked."""
        if self.revoked:
            raise Refused(f"token {self.name!r} is already revoked")
        self._trigger(self.Revoked, ctx)

