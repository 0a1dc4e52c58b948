"""The event store's recorders (eventsourcing's own), extended in three ways.

1. Each command's outcome (applied, or refused and why) is written in the same
   transaction as the command's events, under its key (actor, id) with the
   command's fingerprint (ledger/commands/identity.py). A command therefore
   has one final outcome: re-submitting it, after a crash or on purpose,
   reports that outcome instead of evaluating it again in a different state.
   The table's primary key also settles two writers racing on the same key.
   Earlier versions kept outcomes by id alone in `ledger_commands`; that table
   is left as it was and only read (LEGACY_OUTCOMES).
2. Each stored event's audit-chain link (ledger/chain.py) is written in the
   same transaction as the event, after the events' write lock is taken: a
   committed event is always chained, and only the ledger's own writes are.
3. On PostgreSQL, creating the tables, types and functions is serialised with
   an advisory lock and skipped when they exist, so processes starting together
   do not trip over each other's CREATE OR REPLACE FUNCTION. It all runs on one
   pooled connection, so a pool of one connection suffices."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from eventsourcing.utils import retry
from psycopg.errors import DuplicateObject
from psycopg.sql import SQL, Identifier

from . import chain
from .db import pg_transaction

OUTCOMES = "ledger_outcomes"
LEGACY_OUTCOMES = "ledger_commands"  # (id PRIMARY KEY, status, reason): written by earlier versions
# command id, actor, fingerprint, "applied" | "refused", note or reason
Outcome = tuple[str, str, str, str, str | None]
# The key's id comes first: a batch looks its outcomes up by id.
OUTCOMES_COLUMNS = ("(id TEXT NOT NULL, actor TEXT NOT NULL, fingerprint TEXT NOT NULL, status TEXT NOT NULL, "
                    "reason TEXT, PRIMARY KEY (id, actor))")
OUTCOMES_INSERT = "(id, actor, fingerprint, status, reason) VALUES (?, ?, ?, ?, ?)"
CREATE_LOCK = 7_334_112_901  # advisory lock key: "creating the ledger's tables"
_UNREAD = object()


def _rows(ids: Sequence[int], stored_events: Sequence[StoredEvent]) -> list[chain.Row]:
    return [(i, s.originator_id, s.originator_version, s.topic, s.state) for i, s in zip(ids, stored_events)]


class SQLiteRecorder(SQLiteApplicationRecorder):
    insert_outcomes_sql = f"INSERT INTO {OUTCOMES} {OUTCOMES_INSERT}"

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(),
                f"CREATE TABLE IF NOT EXISTS {OUTCOMES} {OUTCOMES_COLUMNS}",
                *chain.create_sql()]

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], *,
                       outcomes: Sequence[Outcome] = (), **kwargs: Any) -> Sequence[int] | None:
        ids = self._insert_rows(c, stored_events)
        if ids:
            # The insert above took the database's write lock: the head read here is the last one.
            self.chain(c, _rows(ids, stored_events))
        if outcomes:
            c.executemany(self.insert_outcomes_sql, list(outcomes))
        return ids

    def _insert_rows(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent]) -> list[int]:
        """Insert the events as one executemany (the library runs one statement
        per event to read each rowid) and return their positions. The insert
        comes first, so the transaction's first statement takes the write
        lock (a read first would make it a reader that may not write). With
        the lock held, each new row's rowid is one more than the largest, so
        the positions run up to the last one, as long as the last one is the
        largest: SQLite picks at random once the largest possible rowid is
        taken, and then the largest is not ours."""
        if not stored_events:
            return []
        c.executemany(self.insert_events_statement, [
            (s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id, s.originator_version,
             s.topic, s.state) for s in stored_events])
        c.execute(f"SELECT last_insert_rowid(), MAX(rowid) FROM {self.events_table_name}")
        last, largest = c.fetchone()
        if last != largest:
            raise PersistenceError(f"the {len(stored_events)} new events did not get consecutive positions: the "
                                   "event log's rowids ran out")
        return list(range(last - len(stored_events) + 1, last + 1))

    def chain(self, c: Any, rows: Sequence[chain.Row]) -> None:
        """Link events just inserted through cursor `c`, in its transaction."""
        c.execute(chain.select_head())
        chain.write(c.executemany, chain.extend(c.fetchone(), rows), "?")

    def insert_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Outcomes of a batch that wrote no events: nothing to be atomic with."""
        with self.datastore.transaction(commit=True) as c:
            c.executemany(self.insert_outcomes_sql, list(outcomes))


class PostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        # The library's insert function (POSTGRES_ENABLE_DB_FUNCTIONS) would skip
        # the hooks below that write outcomes and chain links, and the table lock.
        self.datastore.enable_db_functions = False
        self.qualifier = f'"{self.datastore.schema}".'
        self.outcomes_table = f'{self.qualifier}"{OUTCOMES}"'
        self.insert_outcomes_sql = f"INSERT INTO {self.outcomes_table} {OUTCOMES_INSERT}".replace("?", "%s")
        self.insert_outcomes_arrays_sql = (f"INSERT INTO {self.outcomes_table} {OUTCOMES_INSERT.split(' VALUES')[0]} "
                                           "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], "
                                           "%b::text[])")
        self.chain_sql = chain.create_sql(schema=self.qualifier)
        self.select_head = chain.select_head(self.qualifier)
        # The library's insert sends one array of a composite type, which
        # psycopg writes out value by value in Python (the largest share of a
        # bulk write's time); four arrays of plain types go through its C
        # dumpers. Same rows, same order, same RETURNING. Every array of the
        # write side goes in binary (%b): in text, psycopg quotes each element
        # in Python and sends bytea as hex.
        self.insert_columns_sql = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[]) RETURNING notification_id"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(events_table_name),
                 id_type=Identifier(self.datastore.originator_id_type))
        self._head = threading.local()  # per writing thread: the pipelined read of the chain's head

    def create_table(self) -> None:
        """The library's tables, types and function, the outcomes and the
        chain's tables: all on one connection (a pool of one must not wait for
        a second) in one transaction that holds the creation lock."""
        with self.datastore.get_connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [CREATE_LOCK])
            table = f'"{self.datastore.schema}"."{self.events_table_name}"'
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()
            if not (exists and list(exists.values())[0]):
                with conn.cursor() as curs:
                    for statement in self.sql_create_statements:
                        if "CREATE TYPE" in statement.as_string():
                            # No CREATE TYPE IF NOT EXISTS: a savepoint keeps the transaction usable.
                            with contextlib.suppress(DuplicateObject), conn.transaction():
                                curs.execute(statement, prepare=False)
                    self._create_table(curs)
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.outcomes_table} {OUTCOMES_COLUMNS}")
            for statement in self.chain_sql:
                conn.execute(statement)
        self.datastore.register_type_adapters()  # after the connection went back to the pool

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as the library's
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Write the events (with the outcomes and chain links of the hooks
        below) and return their positions, as the library's does (its database
        functions are off), in two round trips where its transaction takes
        five (db.pg_transaction): the first ends with a sync after the insert,
        so a lost race raises IntegrityError there, as in the library's; the
        second carries the chain's links and the COMMIT."""
        if not stored_events:
            return None
        with self.datastore.get_connection() as conn, pg_transaction(conn) as pipeline, conn.cursor() as curs:
            self._insert_stored_events(curs, stored_events, **kwargs)
            pipeline.sync()
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent], *,
                              outcomes: Sequence[Outcome] = (), **kwargs: Any) -> None:
        # As the library's (table lock, notify, insert), with the columns as
        # plain arrays (see insert_columns_sql); the outcomes after the events,
        # and so after the table lock the events take first.
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(self.insert_columns_sql, (
            [e.originator_id for e in stored_events], [e.originator_version for e in stored_events],
            [e.topic for e in stored_events], [e.state for e in stored_events]))
        if outcomes:
            with curs.connection.cursor() as c:  # the events' cursor still holds their new positions
                # As one statement of five arrays (as the events above), not one per outcome.
                c.execute(self.insert_outcomes_arrays_sql, [list(column) for column in zip(*outcomes)])
        # Queued in the pipeline: its answer comes with the events' ids, no round trip of its own.
        # Both may be prepared: a pipeline whose insert fails (a lost race)
        # skips their PREPAREs, but pg_transaction's rollback makes psycopg
        # forget every prepared statement, so none is taken for done.
        self._head.cursor = curs.connection.cursor()
        self._head.cursor.execute(self.select_head)

    def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                                       **kwargs: Any) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        head_cursor, self._head.cursor = self._head.cursor, None
        with head_cursor:
            head = head_cursor.fetchone()
        self.chain(curs, _rows(ids or [], stored_events), head)
        return ids

    def chain(self, curs: Any, rows: Sequence[chain.Row], head: Any = _UNREAD) -> None:
        """Link events just inserted through cursor `curs`, in its transaction
        (which holds the events' table lock). `head` is the chain's head row
        when already read."""
        conn = curs.connection
        if head is _UNREAD:
            head = conn.execute(self.select_head).fetchone()
        head = None if head is None else (head["position"], head["link"])
        links = chain.extend(head, rows)  # ChainBroken: the caller's transaction rolls back
        with conn.cursor() as c:
            chain.write(c.executemany, links, "%b", self.qualifier, execute=c.execute)

    def insert_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Outcomes of a batch that wrote no events: nothing to be atomic with."""
        with self.datastore.transaction(commit=True) as c:
            c.executemany(self.insert_outcomes_sql, list(outcomes))
