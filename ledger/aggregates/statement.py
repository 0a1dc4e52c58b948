"""IssuedStatement: finance freezes a partner's commission statement for a
month. The event records the ledger position it was computed at and the
SHA-256 fingerprint of its canonical content, so it can be verified by
replaying to that position; it is never changed afterwards."""

from __future__ import annotations

from typing import Any

from ..timeline import business_month
from .base import Context, LedgerAggregate, Refused


class IssuedStatement(LedgerAggregate):
    KIND = "statement"

    class Issued(LedgerAggregate.Created):
        partner: str
        month: str
        position: int
        fingerprint: str
        totals: dict[str, Any]
        lines: int

    def __init__(self, partner: str, month: str, position: int, fingerprint: str,
                 totals: dict[str, Any], lines: int) -> None:
        self.partner, self.month, self.position = partner, month, position
        self.fingerprint, self.totals, self.lines = fingerprint, totals, lines

    @staticmethod
    def key(partner: str, month: str) -> str:
        return f"{partner}/{month}"

    @classmethod
    def issue(
        cls, existing: IssuedStatement | None, partner: str, month: str, position: int,
        fingerprint: str, totals: dict[str, Any], lines: int, ctx: Context,
    ) -> IssuedStatement:
        if existing is not None:
            raise Refused(
                f"statement {partner}/{month} was already issued at position {existing.position} "
                f"(sha256 {existing.fingerprint[:16]}…); issued statements never change"
            )
        if month > business_month(ctx.at):
            raise Refused(f"statement month {month} has not begun yet")
        return cls._new(
            cls.Issued, cls.key(partner, month), ctx, partner=partner, month=month, position=position,
            fingerprint=fingerprint, totals=totals, lines=lines,
        )
