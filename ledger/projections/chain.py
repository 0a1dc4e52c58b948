"""The tamper-evidence chain: one link per stored event, in the ledger's
global order. Each link is SHA-256 over the previous link and the event's
stored bytes (position, aggregate id, version, topic, state), so altering,
deleting, re-ordering or inserting an event breaks every link after it. It is
kept like a read model: links and position are written in one transaction."""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

from .base import Projection, Table, Writer

GENESIS = "0" * 64

LINKS = Table(
    "audit_chain",
    key=("position",),
    columns={"position": "BIGINT", "recorded": "TEXT", "link": "TEXT"},
    indexes=(("recorded",),),
    append_only=True,
)
HEAD = Table("audit_chain_head", key=("id",), columns={"id": "BIGINT", "position": "BIGINT", "link": "TEXT"})


def event_bytes(position: int, originator_id: Any, version: int, topic: str, state: bytes | str) -> bytes:
    """The stored event as length-prefixed fields, so no two rows share bytes.
    Tolerates a state stored as text (a tampered row must fail, not crash)."""
    oid = originator_id.hex if isinstance(originator_id, UUID) else str(originator_id)
    raw = state.encode("utf-8", "surrogateescape") if isinstance(state, str) else bytes(state)
    fields = [str(position).encode(), oid.encode(), str(version).encode(), str(topic).encode(), raw]
    return b"".join(len(f).to_bytes(8, "big") + f for f in fields)


def link(previous: str, position: int, originator_id: Any, version: int, topic: str, state: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + event_bytes(position, originator_id, version, topic, state)).hexdigest()


class Chain(Projection):
    name = "chain"
    version = 1
    tables = (LINKS, HEAD)
    handles = None  # every event

    def reads(self, e: Any, n: Any) -> list[tuple[str, tuple[Any, ...]]]:
        return [("audit_chain_head", (1,))]

    def apply(self, w: Writer, e: Any, n: Any) -> None:
        head = w["audit_chain_head"].get(1) or {"id": 1, "position": 0, "link": GENESIS}
        new = link(head["link"], n.id, n.originator_id, n.originator_version, n.topic, n.state)
        w["audit_chain"].put({"position": n.id, "recorded": e.timestamp.isoformat(), "link": new})
        w["audit_chain_head"].put({"id": 1, "position": n.id, "link": new})
