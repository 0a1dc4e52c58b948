"""CommandRecord: one per applied command, keyed by its (actor, id) pair
(ledger/commands/identity.py: an id is an idempotency key of its actor). Saved
atomically with the command's effects, so the store itself guarantees that a
command takes effect at most once (a second writer of the same key hits the
unique (originator_id, version) key). Records written before ids were per actor
are keyed by the id alone."""

from __future__ import annotations

from typing import Any

from ..commands.identity import command_key
from .base import Context, LedgerAggregate


class CommandRecord(LedgerAggregate):
    KIND = "command"
    # Written once per command and read again only by audits: caching each one
    # would push out the deals and customers the next commands use.
    CACHED = False

    class Applied(LedgerAggregate.Created):
        command_type: str
        data: dict[str, Any]

    def __init__(self, command_type: str, data: dict[str, Any]) -> None:
        self.command_type = command_type
        self.data = data

    @classmethod
    def record(cls, command_type: str, data: dict[str, Any], ctx: Context) -> CommandRecord:
        return cls._new(cls.Applied, command_key(ctx.actor, ctx.command_id), ctx,
                        command_type=command_type, data=data)
