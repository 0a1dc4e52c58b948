"""The eventsourcing library's own recorder test cases
(eventsourcing.tests.persistence, shipped in its wheel), run against the
ledger's recorders (ledger/persistence.py) on SQLite and PostgreSQL: they
extend the library's, so they must still pass the library's contract.

Subclassed: the application recorder cases (insert and select, concurrent
writers, throughput), the non-interleaving notification ids case, and the
aggregate recorder case (through a view that drops the ids insert_events
returns; see AsAggregateRecorder).
Not subclassed: the tracking and process recorder cases (the ledger has no
tracking or process recorder) and the infrastructure factory case (it tests
the library's factory and its environment, not a recorder).

On top of the library's assertions, every test here ends by checking that the
audit chain links every stored event, in order, however the events were
written (concurrent writers included)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import TestCase

import pytest
from eventsourcing.persistence import IntegrityError, PersistenceError, StoredEvent
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    NonInterleavingNotificationIDsBaseCase,
)

from ledger.chain import GENESIS, link
from ledger.db import Database
from ledger.persistence import PostgresRecorder, SQLiteRecorder


def assert_chained(case: TestCase, recorder: Any) -> None:
    """Every stored event has its link, recomputed from the stored bytes."""
    notes = recorder.select_notifications(None, 10**7)
    previous, expected = GENESIS, []
    for n in notes:
        previous = link(previous, n.id, n.originator_id, n.originator_version, n.topic, n.state)
        expected.append((n.id, previous))
    if isinstance(recorder, SQLiteRecorder):
        with recorder.datastore.transaction(commit=False) as c:
            c.execute("SELECT position, link FROM audit_chain ORDER BY position")
            links = [(r[0], r[1]) for r in c.fetchall()]
    else:
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT position, link FROM {recorder.qualifier}audit_chain ORDER BY position")
            links = [(r["position"], r["link"]) for r in c.fetchall()]
    case.assertEqual(links, expected)


class SQLiteRecorders(TestCase):
    """A fresh SQLite file per test, as the ledger uses (WAL)."""

    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Any) -> Iterator[None]:
        self.db_name = str(tmp_path / "recorder.db")
        self.datastores: list[SQLiteDatastore] = []
        self.recorder: Any = None
        yield
        if self.recorder is not None:
            assert_chained(self, self.recorder)
        for d in self.datastores:
            d.close()

    def create_recorder(self) -> SQLiteRecorder:
        # A pool as large as the library's own concurrency tests use.
        datastore = SQLiteDatastore(self.db_name, pool_size=20, lock_timeout=30)
        self.datastores.append(datastore)
        self.recorder = SQLiteRecorder(datastore)
        self.recorder.create_table()
        return self.recorder


class PostgresRecorders(TestCase):
    """A fresh schema per test in the run's throwaway database (conftest's
    `pg_database`), dropped afterwards. The datastore keeps the library's
    defaults: a pool of one connection and no overflow."""

    @pytest.fixture(autouse=True)
    def _database(self, pg_database: str | None) -> Iterator[None]:
        if pg_database is None:
            pytest.skip("PostgreSQL not reachable (set LEDGER_REQUIRE_POSTGRES=1 to make this a failure)")
        import psycopg

        self.schema = f"r_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
        p = Database.from_url(pg_database).params
        self.datastore = PostgresDatastore(p["dbname"], p["host"], p["port"], p["user"], p["password"],
                                           schema=self.schema, lock_timeout=30)
        self.recorder: Any = None
        try:
            yield
            if self.recorder is not None:
                assert_chained(self, self.recorder)
        finally:
            self.datastore.close()
            with psycopg.connect(pg_database, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    def create_recorder(self) -> PostgresRecorder:
        self.recorder = PostgresRecorder(self.datastore)
        self.recorder.create_table()
        return self.recorder


class AsAggregateRecorder:
    """The aggregate recorder's contract on the ledger's recorders: every
    assertion of the library's case applies (conflicts, atomic batches,
    selecting by version), except that its insert_events() returns None,
    where an application recorder returns the new notification ids (which
    ApplicationRecorderTestCase asserts). So this view drops the ids."""

    def create_recorder(self) -> Any:
        recorder = super().create_recorder()  # type: ignore[misc]
        insert = recorder.insert_events
        recorder.insert_events = lambda stored_events, **kwargs: [insert(stored_events, **kwargs), None][1]
        return recorder


class TestSQLiteRecorderAsAggregateRecorder(AsAggregateRecorder, SQLiteRecorders, AggregateRecorderTestCase):
    pass


class TestSQLiteRecorderAsApplicationRecorder(SQLiteRecorders, ApplicationRecorderTestCase):
    pass


class TestSQLiteRecorderNonInterleaving(SQLiteRecorders, NonInterleavingNotificationIDsBaseCase):
    insert_num = 10_000  # as the library's own SQLite case


class TestSQLiteRecorderPositions(SQLiteRecorders):
    def test_a_batch_returns_the_positions_it_was_stored_at(self) -> None:
        """One executemany per batch: the positions returned are the rowids
        the rows got, after rows already stored."""
        recorder = self.create_recorder()
        events = [StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic="t", state=b"{}")
                  for _ in range(5)]
        self.assertEqual(recorder.insert_events(events[:2]), [1, 2])
        self.assertEqual(recorder.insert_events(events[2:]), [3, 4, 5])
        stored = recorder.select_notifications(None, 10)
        self.assertEqual([(n.id, n.originator_id) for n in stored], [(i, e.originator_id) for i, e in
                                                                      enumerate(events, 1)])

    def test_rowids_that_run_out_refuse_the_write(self) -> None:
        """Once the largest rowid is taken SQLite picks new ones at random: the
        batch's positions would not be consecutive, so the write fails and
        stores nothing (the chain's order is the positions' order)."""
        recorder = self.create_recorder()
        with recorder.datastore.transaction(commit=True) as c:
            c.execute("INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state) "
                      "VALUES (9223372036854775807, ?, 1, 't', x'7b7d')", [uuid.uuid4().hex])
        events = [StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic="t", state=b"{}")
                  for _ in range(3)]
        with self.assertRaisesRegex(PersistenceError, "consecutive"):
            recorder.insert_events(events)
        self.assertEqual(len(recorder.select_notifications(None, 10)), 1)
        with recorder.datastore.transaction(commit=True) as c:
            c.execute("DELETE FROM stored_events")  # the row written past the ledger has no link


class TestPostgresRecorderAsAggregateRecorder(AsAggregateRecorder, PostgresRecorders, AggregateRecorderTestCase):
    pass


class TestPostgresRecorderAsApplicationRecorder(PostgresRecorders, ApplicationRecorderTestCase):
    def test_create_table_with_a_pool_of_one_connection(self) -> None:
        """Creating the tables (under the advisory lock) needs no second
        pooled connection: with the pool of one, it does not wait for the
        pool's timeout (5 s) and fail."""
        started = time.monotonic()
        recorder = self.create_recorder()
        self.assertLess(time.monotonic() - started, 4)
        again = PostgresRecorder(self.datastore)
        again.create_table()  # the tables exist: skipped, still on the one connection
        stored = StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic="t", state=b"{}")
        self.assertEqual(recorder.insert_events([stored]), [1])


class TestPostgresRecorderLostRaces(PostgresRecorders):
    def test_lost_races_store_nothing_and_the_next_write_succeeds(self) -> None:
        """A write whose version is taken raises IntegrityError and stores
        nothing, its outcome included. Lost more often than psycopg's threshold
        for preparing a statement (5 uses), on the pool's one connection: the
        PREPAREs those pipelines skipped are not taken for done, so the next
        write (prepared statements and all) succeeds."""
        recorder = self.create_recorder()
        origin = uuid.uuid4()
        first, second = (StoredEvent(originator_id=origin, originator_version=v, topic="t", state=b"{}")
                         for v in (1, 2))
        recorder.insert_events([first], outcomes=[("c0", "system", "fp", "applied", None)])
        for i in range(1, 8):
            with self.assertRaises(IntegrityError):
                recorder.insert_events([first], outcomes=[(f"c{i}", "system", "fp", "applied", None)])
        recorder.insert_events([second], outcomes=[("c8", "system", "fp", "applied", None)])
        self.assertEqual([n.originator_version for n in recorder.select_notifications(None, 10)], [1, 2])
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT id FROM {recorder.outcomes_table} ORDER BY id")
            self.assertEqual([r["id"] for r in c.fetchall()], ["c0", "c8"])


class TestPostgresRecorderNonInterleaving(PostgresRecorders, NonInterleavingNotificationIDsBaseCase):
    insert_num = 100  # as the library's own PostgreSQL case


del AggregateRecorderTestCase, ApplicationRecorderTestCase, NonInterleavingNotificationIDsBaseCase
