"""CommandRecord: one per applied command id. Saved atomically with the command's
effects, so the store itself guarantees a command id takes effect at most once
(a second writer of the same id hits the unique (originator_id, version) key)."""

from __future__ import annotations

from typing import Any

from .base import Context, LedgerAggregate


class CommandRecord(LedgerAggregate):
    KIND = "command"

    class Applied(LedgerAggregate.Created):
        command_type: str
        data: dict[str, Any]

    def __init__(self, command_type: str, data: dict[str, Any]) -> None:
        self.command_type = command_type
        self.data = data

    @classmethod
    def record(cls, command_type: str, data: dict[str, Any], ctx: Context) -> CommandRecord:
        return cls._new(cls.Applied, ctx.command_id, ctx, command_type=command_type, data=data)
