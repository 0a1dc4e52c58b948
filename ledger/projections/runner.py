"""Keeps the read models up to date by pulling from the notification log.

Each batch is one transaction: the projections' rows and their positions are
written together, so a crash never applies an event twice or skips one. A
rebuild writes into fresh tables under a rebuild name, resumes where it
stopped if interrupted, and swaps in only when it has caught up."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from typing import Any

from .. import timeline
from ..errors import BadInput, Unknown
from ..timeline import recorded_text
from ..persistence import CREATE_LOCK
from .base import Projection, preload

BATCH = 2000
REBUILD_BATCH = 10_000
# PostgreSQL plans by table statistics, and a server may run without
# autovacuum: tables that grew by this many events get ANALYZEd.
ANALYZE_EVERY = 50_000
STATE_DDL = (
    "CREATE TABLE IF NOT EXISTS ledger_projections ("
    "name TEXT PRIMARY KEY, position BIGINT NOT NULL, version BIGINT NOT NULL, suffix TEXT NOT NULL)"
)
LOCKS_DDL = "CREATE TABLE IF NOT EXISTS ledger_locks (name TEXT PRIMARY KEY)"
# The business time zone the read models' dates are in (ledger/timeline.py).
ZONE_DDL = "CREATE TABLE IF NOT EXISTS ledger_read_zone (id INTEGER PRIMARY KEY, zone TEXT NOT NULL)"


class ZoneMismatch(BadInput):
    """The read models were built in another business time zone than
    LEDGER_TIMEZONE names now: their dates would answer for the other zone."""


class Outdated(BadInput):
    """The read models were built by another version of their projection
    (another table layout or rule) and this process may not rebuild them:
    answering from them would be silently wrong."""


REBUILD = "@rebuild"

Progress = Callable[[int, int], None]  # (position, head)


@dataclass
class Status:
    name: str
    position: int
    head: int
    version: int
    rebuilding_at: int | None

    @property
    def behind(self) -> int:
        return max(self.head - self.position, 0)


class Runner:
    def __init__(self, app: Any, sql: Any, projections: Sequence[Projection], upto: int | None = None) -> None:
        """`upto` makes a replay that stops at that position (audit's
        verification of an issued statement, into a scratch database)."""
        self.app, self.sql, self.projections = app, sql, list(projections)
        self.upto = upto
        self._grown: dict[str, int] = {}  # events applied per table suffix since its last ANALYZE
        self._zone_checked = False
        self._ensure_schema()

    # -- state ------------------------------------------------------------
    def _ensure_schema(self) -> None:
        if self.sql.db.read_only:  # a query on a file it may not write: the tables are there
            return
        with self.sql.transaction():
            if self.sql.pg:  # concurrent CREATE TABLE IF NOT EXISTS can still collide there
                self.sql.execute("SELECT pg_advisory_xact_lock(?)", [CREATE_LOCK])
            self.sql.execute(STATE_DDL)
            self.sql.execute(LOCKS_DDL)
            self.sql.execute(
                "INSERT INTO ledger_locks (name) VALUES ('projections') ON CONFLICT (name) DO NOTHING"
            )
            for p in self.projections:
                if self._state(p.name) is None:
                    p.create(self.sql)
                    self._set_state(p.name, 0, p.version, "")
            self.sql.execute(ZONE_DDL)
            if self.sql.one("SELECT zone FROM ledger_read_zone WHERE id = 1") is None:
                # Read models built before the zone was recorded were built in UTC, the only zone then.
                built = any(position > 0 for position, _, _ in self._states().values())
                self.sql.execute("INSERT INTO ledger_read_zone (id, zone) VALUES (1, ?)",
                                 ["UTC" if built else timeline.zone().key])

    def require_zone(self) -> None:
        """Raise ZoneMismatch unless the read models were built in the business
        time zone in force (LEDGER_TIMEZONE): a query would otherwise answer
        with the other zone's dates, and new rows would mix both. Checked once
        per runner."""
        if self._zone_checked:
            return
        row = self._zone_row()
        built, now = (row[0] if row else "UTC"), timeline.zone().key
        if built != now and not self.sql.db.read_only and all(
                position == 0 for position, _, _ in self._states().values()):
            self.record_zone()  # nothing projected yet: the read models take the zone in force
            built = now
        if built != now:
            raise ZoneMismatch(
                f"the read models were built in time zone {built}, but LEDGER_TIMEZONE is {now}: set it back, "
                "or rebuild them in the new zone (ledger --as system projections rebuild)")
        self._zone_checked = True

    def _zone_row(self) -> tuple[Any, ...] | None:
        if not self.sql.db.read_only:
            return self.sql.one("SELECT zone FROM ledger_read_zone WHERE id = 1")
        import sqlite3  # a read-only file written before the zone was recorded has no such table

        try:
            return self.sql.one("SELECT zone FROM ledger_read_zone WHERE id = 1")
        except sqlite3.OperationalError:
            return None

    def record_zone(self) -> None:
        """Say the read models are now in the zone in force (after rebuilding all of them)."""
        with self.sql.transaction():
            self.sql.execute("UPDATE ledger_read_zone SET zone = ? WHERE id = 1", [timeline.zone().key])
        self._zone_checked = False

    def _state(self, name: str) -> tuple[int, int, str] | None:
        return self._states().get(name)

    def _states(self) -> dict[str, tuple[int, int, str]]:
        """Every projection's (position, version, table suffix): one query."""
        rows = self.sql.all("SELECT name, position, version, suffix FROM ledger_projections")
        return {r[0]: (int(r[1]), int(r[2]), r[3]) for r in rows}

    def _set_state(self, name: str, position: int, version: int, suffix: str) -> None:
        self._set_states([(name, position, version, suffix)])

    def _set_states(self, rows: list[tuple[str, int, int, str]]) -> None:
        upsert = (" ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
                  "version = excluded.version, suffix = excluded.suffix")
        self.sql.executemany(
            "INSERT INTO ledger_projections (name, position, version, suffix) VALUES (?, ?, ?, ?)" + upsert, rows,
            "INSERT INTO ledger_projections (name, position, version, suffix) "
            "SELECT * FROM unnest(?::TEXT[], ?::BIGINT[], ?::BIGINT[], ?::TEXT[])" + upsert,
            ("TEXT", "BIGINT", "BIGINT", "TEXT"))

    def get(self, name: str) -> Projection:
        for p in self.projections:
            if p.name == name:
                return p
        raise Unknown(f"no projection {name!r}: choose from {', '.join(p.name for p in self.projections)}")

    def position(self, name: str) -> int:
        return (self._state(name) or (0, 0, ""))[0]

    def status(self) -> list[Status]:
        head = self.app.head()
        out = []
        for p in self.projections:
            pos, version, _ = self._state(p.name) or (0, p.version, "")
            rebuild = self._state(p.name + REBUILD)
            out.append(Status(p.name, pos, head, version, rebuild[0] if rebuild else None))
        return out

    # -- catching up --------------------------------------------------------
    def catch_up(self, progress: Progress | None = None, batch: int = BATCH) -> int:
        """Apply every new event to every projection. Returns events applied.
        A projection whose code version changed is rebuilt first. Raises
        ZoneMismatch for read models of another business time zone."""
        self.require_zone()
        states = self._states()
        head = self.app.head() if self.upto is None else min(self.app.head(), self.upto)
        if all(p.name in states and states[p.name][0] >= head and states[p.name][1] == p.version
               for p in self.projections):
            return 0  # the common case after a submission: nothing to do, no transaction
        for p in self.projections:
            state = states.get(p.name)
            if state is not None and state[1] != p.version:
                if self.sql.db.read_only:
                    raise Outdated(
                        f"the read model {p.name} was built by version {state[1]} of its projection, this ledger "
                        f"needs version {p.version}; this file is read-only, so it cannot be rebuilt here: run "
                        "`ledger --as system projections rebuild` where it can be written")
                self.rebuild(p.name, progress)
        applied = 0
        while True:
            n = self._step([(p, p.name, "") for p in self.projections], batch, progress)
            applied += n
            if n == 0:
                return applied

    def _step(self, targets: list[tuple[Projection, str, str]], batch: int, progress: Progress | None) -> int:
        """One transaction: read a batch after the slowest target, apply, flush,
        record positions. Returns how far the positions moved."""
        with self.sql.transaction(lock="projections"):
            positions = self._positions(targets)
            start = min(positions.values())
            head = self.app.head() if self.upto is None else min(self.app.head(), self.upto)
            if start >= head:
                return 0
            wanted = [p.topics() for p, _, _ in targets]
            topics = () if any(t is None for t in wanted) else sorted({t for ts in wanted for t in ts})
            notifications = self.app.recorder.select_notifications(
                start, batch, stop=head, topics=topics, inclusive_of_start=False
            )
            decode = self.app.mapper.to_domain_event
            pairs = ((decode(n), n) for n in notifications)
            # A short batch read everything up to the head (the rest was other topics).
            last = notifications[-1].id if len(notifications) == batch else head
            self._apply(targets, positions, pairs, last)
        self._analyze_if_grown(targets, len(notifications))
        if progress:
            progress(last, head)
        return last - start

    def _analyze_if_grown(self, targets: list[tuple[Projection, str, str]], events: int,
                          force: bool = False) -> None:
        if not self.sql.pg:
            return
        analyzed = False
        for p, _, suffix in targets:
            key = p.name + suffix
            self._grown[key] = self._grown.get(key, 0) + events
            if force or self._grown[key] >= ANALYZE_EVERY:
                for t in p.tables:
                    self.sql.execute(f"ANALYZE {t.name + suffix}")
                self._grown[key] = 0
                analyzed = True
        if analyzed:
            self.sql.execute(f"ANALYZE {self.app.events_table}")

    def apply_recorded(self, recordings: Sequence[Any]) -> bool:
        """Apply events this process has just written, without reading them
        back, when no other writer's events came between (else returns False
        and catch_up reads them from the log)."""
        if not recordings or self.upto is not None:
            return not recordings
        first, last = recordings[0].notification.id, recordings[-1].notification.id
        if last - first + 1 != len(recordings):
            return False
        targets = [(p, p.name, "") for p in self.projections]
        with self.sql.transaction(lock="projections"):
            states = self._states()
            if any(states.get(p.name, (-1, -1, ""))[:2] != (first - 1, p.version) for p in self.projections):
                return False
            positions = {p.name: first - 1 for p in self.projections}
            self._apply(targets, positions, ((r.domain_event, r.notification) for r in recordings), last)
        self._analyze_if_grown(targets, len(recordings))
        return True

    def _positions(self, targets: list[tuple[Projection, str, str]]) -> dict[str, int]:
        states = self._states()
        return {name: states.get(name, (0, 0, ""))[0] for _, name, _ in targets}

    def _apply(self, targets: list[tuple[Projection, str, str]], positions: dict[str, int],
               pairs: Iterable[tuple[Any, Any]], last: int) -> None:
        """Apply (event, notification) pairs to the targets behind them, flush
        their rows and record `last` as their position: one transaction."""
        pairs = list(pairs)
        # Each target's share of the batch: events past its position, of the kinds it handles.
        mine = {name: [(e, n) for e, n in pairs if n.id > positions[name] and p.sees(e)] for p, name, _ in targets}
        busy = [(p, name, suffix) for p, name, suffix in targets if mine[name]]
        writers = {name: p.writer(self.sql, suffix) for p, name, suffix in busy}
        # The rows the batch will read, read up front: one round trip in all.
        preload(self.sql, [w for p, name, _ in busy for w in writers[name].wanted(
            k for e, n in mine[name] for k in p.reads(e, n))])
        for p, name, _ in busy:  # each in log order; the targets' tables are independent
            w = writers[name]
            for event, n in mine[name]:
                # Where the versions this event writes begin (base.Rows).
                w.position, w.recorded = n.id, recorded_text(event.timestamp)
                p.apply(w, event, n)
        for writer in writers.values():
            writer.flush()
        self._set_states([(name, last, p.version, suffix) for p, name, suffix in targets if last > positions[name]])

    # -- rebuilding -----------------------------------------------------------
    def rebuild(self, name: str, progress: Progress | None = None, batch: int = BATCH,
                stop_after: int | None = None) -> bool:
        """Rebuild one projection from position 0 into fresh tables, then swap
        them in. Resumes an interrupted rebuild. `stop_after` (events) lets
        tests interrupt it; returns True when swapped in."""
        return self.rebuild_many([name], progress, batch, stop_after)

    def rebuild_all(self, progress: Progress | None = None, batch: int = REBUILD_BATCH) -> bool:
        """Rebuild every projection in one pass over the log."""
        return self.rebuild_many([p.name for p in self.projections], progress, batch)

    def rebuild_many(self, names: Sequence[str], progress: Progress | None = None, batch: int = REBUILD_BATCH,
                     stop_after: int | None = None) -> bool:
        projections = [self.get(n) for n in names]
        with self.sql.transaction(lock="projections"):
            for p in projections:
                state = self._state(p.name + REBUILD)
                if state is None or state[1] != p.version:
                    suffix = f"__r{int(time.time() * 1000)}"
                    if state is not None:
                        p.drop(self.sql, state[2])
                    p.create(self.sql, suffix, indexes=False)
                    self._set_state(p.name + REBUILD, 0, p.version, suffix)
        targets = [(p, p.name + REBUILD, self._state(p.name + REBUILD)[2]) for p in projections]
        done = 0
        while True:
            n = self._step(targets, batch, progress)
            done += n
            if n == 0:
                break
            if stop_after is not None and done >= stop_after:
                return False
        with self.sql.transaction(lock="projections"):
            # Swap in one transaction: queries see the old tables or the new, never half.
            for p, shadow, suffix in targets:
                position = self._state(shadow)[0]
                p.drop(self.sql)
                for t in p.tables:
                    self.sql.execute(f"ALTER TABLE {t.name + suffix} RENAME TO {t.name}")
                    for stmt in t.index_sql(t.name):
                        self.sql.execute(stmt)
                self._set_state(p.name, position, p.version, "")
                self.sql.execute("DELETE FROM ledger_projections WHERE name = ?", [shadow])
        # Events that arrived between the last step and the swap.
        live = [(p, p.name, "") for p in projections]
        while self._step(live, batch, progress):
            pass
        self._analyze_if_grown(live, 0, force=True)
        return True

