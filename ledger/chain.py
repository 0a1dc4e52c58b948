"""The tamper-evidence chain: one link per event the ledger itself stored, in
the ledger's global order. Each link is SHA-256 over the previous link and the
event's stored bytes (position, aggregate id, version, topic, state), so
altering, deleting, re-ordering or inserting an event breaks every link after
it.

The links are evidence, not a read model: the event store's recorder writes
them in the transaction that writes the events (ledger/persistence.py), and
nothing ever rewrites them. An event written into the table by anything else
gets no link, and `ledger audit verify` reports it as written outside the
ledger."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import PersistenceError

GENESIS = "0" * 64
LINKS = "audit_chain"
HEAD = "audit_chain_head"
# Old ledgers kept the chain as a projection under this name (see adopt_legacy).
LEGACY_PROJECTION = "chain"

Row = tuple[int, Any, int, str, bytes]  # position, aggregate id, version, topic, state


class ChainBroken(PersistenceError):
    """A write would put a link at a position the chain already covers: the
    event log was cut short outside the ledger (its last events deleted), so
    the ledger refuses to write over the evidence."""


def create_sql(bigint: str = "BIGINT", schema: str = "") -> list[str]:
    """The chain's two tables (`audit_chain`: one link per position;
    `audit_chain_head`: the last position and link, one row), in `schema` (a
    quoted name and a dot, or "")."""
    return [
        f"CREATE TABLE IF NOT EXISTS {schema}{LINKS} (position {bigint} PRIMARY KEY, link TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {schema}{HEAD} "
        f"(id {bigint} PRIMARY KEY, position {bigint} NOT NULL, link TEXT NOT NULL)",
    ]


def select_head(schema: str = "") -> str:
    """The query of the chain's head row: (position, link), or no row."""
    return f"SELECT position, link FROM {schema}{HEAD} WHERE id = 1"


def event_bytes(position: int, originator_id: Any, version: int, topic: str, state: bytes | str) -> bytes:
    """The stored event as length-prefixed fields, so no two rows share bytes.
    Tolerates a state stored as text (a tampered row must fail, not crash)."""
    oid = (originator_id.hex if isinstance(originator_id, UUID) else str(originator_id)).encode()
    raw = state.encode("utf-8", "surrogateescape") if isinstance(state, str) else bytes(state)
    p, v, t = str(position).encode(), str(version).encode(), str(topic).encode()
    # Written out rather than a loop over the fields: the ledger's hottest loop after JSON.
    return b"".join((len(p).to_bytes(8, "big"), p, len(oid).to_bytes(8, "big"), oid, len(v).to_bytes(8, "big"), v,
                     len(t).to_bytes(8, "big"), t, len(raw).to_bytes(8, "big"), raw))


def link(previous: str, position: int, originator_id: Any, version: int, topic: str, state: bytes) -> str:
    """The link after `previous` (64 hex digits) for one stored event."""
    return hashlib.sha256(bytes.fromhex(previous) + event_bytes(position, originator_id, version, topic, state)).hexdigest()


def extend(head: Sequence[Any] | None, rows: Iterable[Row]) -> list[tuple[int, str]]:
    """The links of newly stored events after the chain's `head` ((position,
    link) row, or None for an empty chain), in position order: [(position,
    link)]. Raises ChainBroken when a row's position is not after the head."""
    position, previous = (int(head[0]), str(head[1])) if head else (0, GENESIS)
    out = []
    for row in sorted(rows, key=lambda r: r[0]):
        if row[0] <= position:
            raise ChainBroken(
                f"position {row[0]} is already chained (the chain reaches {position}): events were deleted "
                "outside the ledger; `ledger audit verify` names the first, and the ledger writes nothing more "
                "until the log is restored")
        previous = link(previous, *row)
        position = row[0]
        out.append((position, previous))
    return out


def adopt_legacy(app: Any, sql: Any) -> int:
    """Once, for a ledger written by a version that kept the chain as a
    projection: chain the events that projection had not reached yet (a
    crash or Ctrl-C could leave some), then forget the projection. Holds the
    events' write lock meanwhile. Returns the events adopted (0: nothing to
    do, the common case, costing one query)."""
    if sql.one("SELECT 1 FROM ledger_projections WHERE name = ?", [LEGACY_PROJECTION]) is None:
        return 0
    position = "notification_id" if sql.pg else "rowid"
    with sql.transaction():
        if sql.pg:
            sql.execute(f"LOCK TABLE {app.events_table} IN EXCLUSIVE MODE")
        head = sql.one(select_head())
        rows = sql.all(f"SELECT {position}, originator_id, originator_version, topic, state FROM {app.events_table} "
                       f"WHERE {position} > ? ORDER BY {position}", [int(head[0]) if head else 0])
        links = extend(head, [(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows])
        write(sql.executemany, links, "?")
        sql.execute("DELETE FROM ledger_projections WHERE name IN (?, ?)",
                    [LEGACY_PROJECTION, LEGACY_PROJECTION + "@rebuild"])
    return len(links)


def write(executemany: Any, links: Sequence[tuple[int, str]], mark: str, schema: str = "",
          execute: Any = None) -> None:
    """Insert the new links and move the head, with the driver's placeholder
    `mark`, into the tables of `schema` (a quoted name and a dot, or "").
    With `execute` (PostgreSQL's), the links (as two arrays) and the head go
    in one statement: one row per statement costs the server and the driver
    more than the hashing."""
    if not links:
        return
    head = (f"INSERT INTO {schema}{HEAD} (id, position, link) VALUES (1, {mark}, {mark}) "
            "ON CONFLICT (id) DO UPDATE SET position = excluded.position, link = excluded.link")
    if execute is not None:
        execute(f"WITH links AS (INSERT INTO {schema}{LINKS} (position, link) "
                f"SELECT * FROM unnest({mark}::bigint[], {mark}::text[])) {head}",
                [[p for p, _ in links], [k for _, k in links], *links[-1]])
        return
    executemany(f"INSERT INTO {schema}{LINKS} (position, link) VALUES ({mark}, {mark})", list(links))
    executemany(head, [links[-1]])
