"""The event store's recorders (eventsourcing's own), extended in two ways.

1. Each command's outcome (applied, or refused and why) is written in the same
   transaction as the command's events, under its key (actor, id) with the
   command's fingerprint (ledger/commands/identity.py). A command therefore
   has one final outcome: re-submitting it, after a crash or on purpose,
   reports that outcome instead of evaluating it again in a different state.
   The table's primary key also settles two writers racing on the same key.
   Earlier versions kept outcomes by id alone in `ledger_commands`; that table
   is left as it was and only read (LEGACY_OUTCOMES).
2. On PostgreSQL, creating the tables, types and functions is serialised with
   an advisory lock and skipped when they exist, so processes starting together
   do not trip over each other's CREATE OR REPLACE FUNCTION."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

OUTCOMES = "ledger_outcomes"
LEGACY_OUTCOMES = "ledger_commands"  # (id PRIMARY KEY, status, reason): written by earlier versions
# command id, actor, fingerprint, "applied" | "refused", note or reason
Outcome = tuple[str, str, str, str, str | None]
# The key's id comes first: a batch looks its outcomes up by id.
OUTCOMES_COLUMNS = ("(id TEXT NOT NULL, actor TEXT NOT NULL, fingerprint TEXT NOT NULL, status TEXT NOT NULL, "
                    "reason TEXT, PRIMARY KEY (id, actor))")
OUTCOMES_INSERT = "(id, actor, fingerprint, status, reason) VALUES (?, ?, ?, ?, ?)"
CREATE_LOCK = 7_334_112_901  # advisory lock key: "creating the ledger's tables"


class SQLiteRecorder(SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(),
                f"CREATE TABLE IF NOT EXISTS {OUTCOMES} {OUTCOMES_COLUMNS}"]

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], *,
                       outcomes: Sequence[Outcome] = (), **kwargs: Any) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        if outcomes:
            c.executemany(f"INSERT INTO {OUTCOMES} {OUTCOMES_INSERT}", list(outcomes))
        return ids

    def insert_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Outcomes of a batch that wrote no events: nothing to be atomic with."""
        with self.datastore.transaction(commit=True) as c:
            c.executemany(f"INSERT INTO {OUTCOMES} {OUTCOMES_INSERT}", list(outcomes))


class PostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.outcomes_table = f'"{self.datastore.schema}"."{OUTCOMES}"'

    def create_table(self) -> None:
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", [CREATE_LOCK])
            try:
                table = f'"{self.datastore.schema}"."{self.events_table_name}"'
                exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()
                if exists and list(exists.values())[0]:
                    self.datastore.register_type_adapters()
                else:
                    super().create_table()
                conn.execute(f"CREATE TABLE IF NOT EXISTS {self.outcomes_table} {OUTCOMES_COLUMNS}")
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", [CREATE_LOCK])

    def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent], *,
                              outcomes: Sequence[Outcome] = (), **kwargs: Any) -> None:
        # After the events (and so after the table lock the events take first).
        super()._insert_stored_events(curs, stored_events, **kwargs)
        if outcomes:
            with curs.connection.cursor() as c:  # the events' cursor still holds their new positions
                c.executemany(f"INSERT INTO {self.outcomes_table} {OUTCOMES_INSERT}".replace("?", "%s"),
                              list(outcomes))

    def insert_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Outcomes of a batch that wrote no events: nothing to be atomic with."""
        with self.datastore.transaction(commit=True) as c:
            c.executemany(f"INSERT INTO {self.outcomes_table} {OUTCOMES_INSERT}".replace("?", "%s"),
                          list(outcomes))
