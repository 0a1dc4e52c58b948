"""The event log as the ledger reads and writes it below the library's
repository: one atomic write of a batch's events with its commands' outcomes,
the head, the events of many aggregates in one query and a raw restore
(audit import) — EventLog; the outcomes already recorded under (actor, id)
keys — OutcomeLog. Every SQL
statement that differs between SQLite and PostgreSQL on the write side lives
here or in ledger/persistence.py (the recorders).

Reads go through the read models' plain autocommit connection (`reads`): one
round trip per query, where the event store's own transaction costs three."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification, PersistenceError, Recording

from .aggregates import CommandRecord, aggregate_id
from .commands import identity
from .db import Database, Sql, Unavailable, redact
from .persistence import LEGACY_OUTCOMES, OUTCOMES, Outcome

# (status, note or reason, fingerprint) of a command key already seen
Seen = tuple[str, str | None, str | None]


class EventLog:
    def __init__(self, db: Database, reads: Sql, recorder: Any, mapper: Any, events: Any) -> None:
        """`recorder`, `mapper` and `events` are the eventsourcing application's
        (ledger/persistence.py's recorder, its mapper and event store)."""
        self.db, self.reads = db, reads
        self.recorder, self.mapper, self.events = recorder, mapper, events

    # -- writing ----------------------------------------------------------------
    def write(self, events: Sequence[Any], outcomes: Sequence[Outcome]) -> list[Recording]:
        """One atomic write of new domain events (in the order given) and of
        command outcomes (ledger/persistence.py: chained in the same
        transaction); returns the recordings (event and its notification).
        Raises IntegrityError when another writer got there first (a version
        already taken: the batch is re-read and re-applied), Unavailable when
        the database fails."""
        try:
            if events:
                # (Application.save does the same through generic protocol
                # checks that cost more than the insert itself.)
                return list(self.events.put(events, outcomes=outcomes))
            if outcomes:
                self.recorder.insert_outcomes(outcomes)
            return []
        except IntegrityError:
            raise
        except PersistenceError as e:
            raise Unavailable(f"could not write to {self.db.display}: {redact(str(e)).strip()}") from None

    def insert_raw(self, rows: Sequence[Notification]) -> None:
        """Restore exported events with their original positions (audit import),
        chained in the same transaction as the ledger's own writes are."""
        store = self.recorder.datastore
        chained = [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in rows]
        outcomes = self._outcomes_of_records(rows)
        with store.transaction(commit=True) as c:
            if outcomes:  # an applied command stays applied: re-submitting it is a duplicate
                c.executemany(self.recorder.insert_outcomes_sql + " ON CONFLICT DO NOTHING", outcomes)
            if self.db.kind == "sqlite":
                c.executemany(
                    f"INSERT INTO {self.events_table} (rowid, originator_id, originator_version, topic, state) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(n.id, n.originator_id.hex, n.originator_version, n.topic, n.state) for n in rows],
                )
                self.recorder.chain(c, chained)
                return
            c.execute(f"LOCK TABLE {self.events_table} IN EXCLUSIVE MODE")  # as the recorder's writes do
            c.executemany(
                f"INSERT INTO {self.events_table} (notification_id, originator_id, originator_version, topic, state) "
                "VALUES (%s, %s, %s, %s, %s)",
                [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in rows],
            )
            c.execute(
                f"SELECT setval(pg_get_serial_sequence('{self.events_table}', 'notification_id'), "
                f"(SELECT MAX(notification_id) FROM {self.events_table}))"
            )
            self.recorder.chain(c, chained)

    def _outcomes_of_records(self, rows: Sequence[Notification]) -> list[Outcome]:
        """The outcome rows of the applied commands among these events, rebuilt
        from their CommandRecords (an export holds events, not outcomes): the
        key (actor, id) and a fingerprint of type and data, as
        identity.legacy_fingerprint (whether `on` was given is not recorded)."""
        out: list[Outcome] = []
        for n in rows:
            if n.topic.endswith(":CommandRecord.Applied"):
                e = self.mapper.to_domain_event(n)
                out.append((e.command_id, e.actor, identity.legacy_fingerprint(e.command_type, e.data), "applied", None))
        return out

    # -- reading ----------------------------------------------------------------
    @property
    def events_table(self) -> str:
        """The stored events' table, qualified by its schema on PostgreSQL."""
        table = self.recorder.events_table_name
        return table if self.db.kind == "sqlite" else f'"{self.recorder.datastore.schema}"."{table}"'

    def head(self) -> int:
        """The position of the last stored event (0: none)."""
        position = "rowid" if self.db.kind == "sqlite" else "notification_id"
        row = self.reads.one(f"SELECT MAX({position}) FROM {self.events_table}")
        return (row[0] if row else None) or 0

    def notifications_of(self, agg_ids: Iterable[UUID], after: dict[UUID, int] | None = None) -> list[Notification]:
        """The stored events of these aggregates, with their positions, in
        order: every one, or only those after the version `after` gives."""
        ids = list(agg_ids)
        if not ids:
            return []
        known = [(after or {}).get(i, 0) for i in ids]
        if self.db.kind == "sqlite":
            rows = self.reads.all(
                f"WITH w(id, v) AS (VALUES {','.join(['(?, ?)'] * len(ids))}) "
                f"SELECT e.rowid, e.originator_id, e.originator_version, e.topic, e.state FROM w "
                f"JOIN {self.events_table} e ON e.originator_id = w.id AND e.originator_version > w.v ORDER BY e.rowid",
                [x for i, v in zip(ids, known) for x in (i.hex, v)],
            )
        else:
            rows = self.reads.all(
                "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state "
                f"FROM unnest(?::uuid[], ?::bigint[]) AS w(id, v) JOIN {self.events_table} e "
                "ON e.originator_id = w.id AND e.originator_version > w.v ORDER BY e.notification_id",
                [ids, known],
            )
        return [Notification(id=r[0], originator_id=r[1] if isinstance(r[1], UUID) else UUID(r[1]),
                             originator_version=r[2], topic=r[3], state=bytes(r[4])) for r in rows]



class OutcomeLog:
    """The outcomes recorded under (actor, command id) keys: what makes
    commands idempotent (ledger/persistence.py writes them with the events)."""

    def __init__(self, log: EventLog) -> None:
        self.log, self.reads = log, log.reads
        self._legacy_outcomes: bool | None = None  # whether an earlier version's outcome table exists

    def outcomes(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Seen]:
        """The final outcome of each of these (actor, command id) keys already
        seen, as (status, note or reason, fingerprint): one query per chunk of
        ids (Sql.chunks: one array on PostgreSQL). Outcomes an earlier version
        recorded by id alone are read as ledger/commands/identity.py describes
        (the applied ones' actors from their CommandRecords: one more query,
        only when there are such)."""
        keys = list(dict.fromkeys(keys))
        ids = list(dict.fromkeys(cid for _, cid in keys))
        rows: list[tuple[Any, ...]] = []
        for chunk in self.reads.chunks(ids):
            where, params = self.reads.in_("id", chunk)
            query = f"SELECT id, actor, fingerprint, status, reason FROM {OUTCOMES} WHERE {where}"
            if self._has_legacy_outcomes():
                query += f" UNION ALL SELECT id, NULL, NULL, status, reason FROM {LEGACY_OUTCOMES} WHERE {where}"
                params = params * 2
            rows += self.reads.all(query, params)
        found: dict[tuple[str, str], Seen] = {}
        legacy: dict[str, tuple[str, str | None]] = {}
        for cid, actor, fp, status, reason in rows:
            if actor is None:
                legacy[cid] = (status, reason)
            else:
                found[(actor, cid)] = (status, reason, fp)
        wanted = set(keys)
        out = {k: v for k, v in found.items() if k in wanted}
        if legacy:
            out.update(self._legacy(legacy, [k for k in keys if k not in found and k[1] in legacy]))
        return out

    def _has_legacy_outcomes(self) -> bool:
        if self._legacy_outcomes is None:
            if self.log.db.kind == "sqlite":
                row = self.reads.one("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                                     [LEGACY_OUTCOMES])
            else:
                row = self.reads.one("SELECT COUNT(*) FROM pg_tables WHERE tablename = ? "
                                     "AND schemaname = current_schema()", [LEGACY_OUTCOMES])
            self._legacy_outcomes = bool(row and row[0])
        return self._legacy_outcomes

    def _legacy(self, rows: dict[str, tuple[str, str | None]], keys: Sequence[tuple[str, str]]
                ) -> dict[tuple[str, str], Seen]:
        """Outcomes an earlier version recorded by id alone, for the keys asking
        for them: an applied one is its recorded actor's (fingerprint from its
        CommandRecord); a refused one binds every actor, unless it refused the
        submitter (identity.submitter_refusal)."""
        records = {}
        applied = {cid for _, cid in keys if rows[cid][0] == "applied"}
        for n in self.log.notifications_of([aggregate_id(CommandRecord.KIND, cid) for cid in sorted(applied)]):
            event = self.log.mapper.to_domain_event(n)
            if isinstance(event, CommandRecord.Applied):
                records[event.command_id] = event
        out: dict[tuple[str, str], Seen] = {}
        for actor, cid in keys:
            status, reason = rows[cid]
            if status == "applied":
                record = records.get(cid)
                if record is None:  # no record to tell whose: the id stays taken, as it was
                    out[(actor, cid)] = (status, reason, None)
                elif record.actor == actor:
                    out[(actor, cid)] = (status, reason,
                                         identity.legacy_fingerprint(record.command_type, record.data))
            elif not identity.submitter_refusal(reason):
                out[(actor, cid)] = (status, reason, None)
        return out
