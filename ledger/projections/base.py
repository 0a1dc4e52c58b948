"""How a read model is kept: tables declared as data, a per-batch row cache
that projections read and write as plain dicts, and one flush that writes the
rows and the projection's position in the same transaction.

Rows are bitemporal: a table keeps every version of a row with the ledger
positions between which it held, `valid_from` (the event that wrote it) and
`valid_to` (the event that replaced it; NULL while it is current), and those
events' recorded times, `recorded_from` and `recorded_to`. A change closes
the current version and inserts the next, so the read models answer "as the
ledger knew it at recorded time T" by filtering (`Known`), never by replaying
the log into a scratch database: the cost of a known-at query is the cost of
the same query live, plus the versions it skips. The recorded times are kept
beside the positions so the cut is one condition on the rows themselves (no
search of the log for the position recorded by T: on PostgreSQL that search
alone cost more than the query), and counts exactly the events recorded by
T, as statements (which keep each line's recorded time) always have.

Why versions rather than checkpoints of the read models to replay from: a
checkpoint still replays up to a checkpoint interval of events per query
and must be stored and pruned, and its cost grows with the interval; a
version row costs one insert per change (batched per flush, closed in
memory when the change that replaces it is in the same batch) and answers
every cut with the indexes the live queries already use. Tables whose rows
are a cache of others (`current_only`) keep one version, and known-at
queries never read them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from operator import itemgetter
from typing import Any, get_type_hints

from eventsourcing.utils import get_topic

from ..timeline import recorded_text

_MISSING = object()


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: dict[str, str]  # column -> SQL type (TEXT, BIGINT); dates/money as ISO/decimal TEXT
    indexes: tuple[tuple[str, ...], ...] = ()
    # Rows are only ever inserted (one per event, say): never closed.
    append_only: bool = False
    # One version per key, overwritten in place: a cache the live queries
    # read (derived from versioned tables, which known-at queries use instead).
    current_only: bool = False

    @property
    def versioned(self) -> bool:
        return not self.current_only

    def create_sql(self, physical: str) -> list[str]:
        cols = ", ".join(f"{c} {t}" for c, t in self.columns.items())
        if self.current_only:
            return [f"CREATE TABLE IF NOT EXISTS {physical} ({cols}, PRIMARY KEY ({', '.join(self.key)}))"]
        return [f"CREATE TABLE IF NOT EXISTS {physical} ({cols}, valid_from BIGINT NOT NULL, valid_to BIGINT, "
                f"recorded_from TEXT NOT NULL, recorded_to TEXT, PRIMARY KEY ({', '.join(self.key)}, valid_from))"]

    def index_sql(self, physical: str) -> list[str]:
        # valid_to last: a live query (valid_to IS NULL) reads only current versions from the index.
        tail = ", valid_to" if self.versioned else ""
        return [
            f"CREATE INDEX IF NOT EXISTS ix_{physical}_{'_'.join(ix)} ON {physical} ({', '.join(ix)}{tail})"
            for ix in self.indexes
        ]


_RECORDED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")


@dataclass(frozen=True)
class Known:
    """What the read models knew: every row version that held at recorded
    time `recorded` (timeline.recorded_text), that is, written by an event
    recorded by then and not replaced by one recorded by then. None: the
    current versions, what a live query reads."""

    recorded: str | None = None

    @classmethod
    def at(cls, known_at: datetime | None) -> Known:
        """The cut for a `--known-at` instant (None: live)."""
        return cls(None if known_at is None else recorded_text(known_at))

    def rows(self, alias: str) -> str:
        """The SQL condition (no parameters) that keeps, of a versioned table
        under `alias`, the versions that held at this cut."""
        if self.recorded is None:
            return f"{alias}.valid_to IS NULL"
        # Inlined (checked to be a recorded time, nothing else): the planner sees a constant.
        if not _RECORDED.fullmatch(self.recorded):
            raise ValueError(f"not a recorded time: {self.recorded!r}")
        t = f"'{self.recorded}'"
        return f"({alias}.recorded_from <= {t} AND ({alias}.recorded_to IS NULL OR {alias}.recorded_to > {t}))"


LIVE = Known()


class Reader:
    """The read models' connection for one query, with its cut: everything
    `Sql` offers (all, one, chunks, in_...), plus `known` (a `Known`). Each
    query on a versioned table keeps only the versions `held(sql, alias)`
    names."""

    def __init__(self, sql: Any, known: Known = LIVE) -> None:
        self.sql, self.known = sql, known

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sql, name)


def held(sql: Any, alias: str) -> str:
    """The condition keeping the versions of table `alias` that a query on
    `sql` (a Reader, or a bare connection: live) may see."""
    return getattr(sql, "known", LIVE).rows(alias)


def known(sql: Any) -> Known:
    """The cut a query on `sql` answers for (LIVE for a bare connection)."""
    return getattr(sql, "known", LIVE)


class Rows:
    """One table's rows as seen by a batch: read through to the database on
    first access (the current versions), written back at flush: the closing
    of the versions the batch replaced (one executemany) and the new
    versions (one executemany). Every change made by an event at a new
    position is a new version; changes by one event amend its own."""

    def __init__(self, sql: Any, table: Table, physical: str, writer: Writer) -> None:
        self.sql, self.table, self.physical, self.writer = sql, table, physical, writer
        self.cache: dict[tuple[Any, ...], dict[str, Any] | None] = {}
        self._cols = list(table.columns)
        # Row dict -> its key and its values, as tuples (every event writes rows: done in C).
        self._key_of = _tuple_getter(table.key)
        self._values_of = _tuple_getter(self._cols)
        self._blank = dict.fromkeys(self._cols)
        self._select, self._insert, self._close, self._insert_arrays, self._close_arrays = _statements(table, physical)
        types = [table.columns[c] for c in self._cols]
        # The columns' types for Sql.executemany's one statement of arrays.
        self._insert_types = types if table.current_only else [*types, "BIGINT", "BIGINT", "TEXT", "TEXT"]
        self._close_types = ["BIGINT", "TEXT", *(table.columns[k] for k in table.key)]
        # The versions written by this batch: [values, valid_from, valid_to, recorded_from, recorded_to];
        # per key, its current one.
        self.versions: list[list[Any]] = []
        self.slot: dict[tuple[Any, ...], int] = {}
        # Keys whose stored current version the batch replaces, with the position and recorded time that replaced it.
        self.closes: dict[tuple[Any, ...], tuple[int, str]] = {}
        self.dirty: set[tuple[Any, ...]] = set()  # current_only tables: keys to upsert

    def queries(self, keys: Iterable[tuple[Any, ...]]) -> list[tuple[str, list[Any], list[tuple[Any, ...]]]]:
        """The queries that read these rows, not yet cached: (sql, params, keys)."""
        wanted = [k for k in dict.fromkeys(keys) if k not in self.cache]
        key = self.table.key
        width = len(key)
        current = " AND t.valid_to IS NULL" if self.table.versioned else ""
        cols = ", ".join("t." + c for c in self._cols)
        names = ", ".join("k_" + k for k in key)
        joined = f"JOIN {self.physical} t ON " + " AND ".join(f"t.{k} = k.k_{k}" for k in key) + current
        if self.sql.pg:
            # One array per key column (binary): one statement of any size,
            # planned alike, where a list of placeholders is parsed and planned anew.
            arrays = ", ".join(f"%b::{self.table.columns[k]}[]" for k in key)
            return [(f"SELECT {cols} FROM unnest({arrays}) AS k({names}) {joined}",
                     [list(c) for c in zip(*wanted)], wanted)] if wanted else []
        out = []
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            if width == 1:
                marks = ",".join("?" * len(chunk))
                text = f"SELECT {cols} FROM {self.physical} t WHERE t.{key[0]} IN ({marks}){current}"
            else:
                # Joined to a VALUES list: SQLite scans the whole table for `(a, b) IN (...)`.
                first = "(" + ", ".join(f"CAST(? AS {self.table.columns[k]})" for k in key) + ")"
                rows = ", ".join([first] + ["(" + ",".join("?" * width) + ")"] * (len(chunk) - 1))
                text = f"WITH k({names}) AS (VALUES {rows}) SELECT {cols} FROM k {joined}"
            out.append((text, [v for k in chunk for v in k], chunk))
        return out

    def take(self, keys: list[tuple[Any, ...]], found: list[tuple[Any, ...]]) -> None:
        """Cache what a query from `queries` found (absent rows as absent)."""
        for k in keys:
            self.cache[k] = None
        for values in found:
            row = dict(zip(self._cols, values))
            self.cache[tuple(row[k] for k in self.table.key)] = row

    def _current(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        row = self.cache.get(key, _MISSING)
        if row is _MISSING:
            found = self.sql.one(self._select, key)
            row = dict(zip(self._cols, found)) if found else None
            self.cache[key] = row
        return row  # type: ignore[return-value]

    def get(self, *key: Any) -> dict[str, Any] | None:
        """The row's current version (a copy: change it through put or update)."""
        row = self._current(key)
        return None if row is None else dict(row)

    def put(self, row: dict[str, Any]) -> None:
        """Make `row` the current version of its key (a row equal to the
        current one changes nothing)."""
        full = {**self._blank, **row}
        if len(full) != len(self._blank):  # keys that are no column: dropped, as the table has no place for them
            full = {c: full[c] for c in self._cols}
        key = self._key_of(full)
        before = self.cache.get(key, _MISSING)
        if before == full and not self.table.append_only:
            return
        self.cache[key] = full
        self._changed(key, full, stored=before is not None)

    def update(self, *key: Any, **changes: Any) -> dict[str, Any] | None:
        """Change columns of the current version; None (and nothing written) if there is none."""
        assert not self.table.append_only, f"{self.table.name} is append-only"
        row = self._current(key)
        if row is None:
            return None
        if any(row[c] != v for c, v in changes.items()):
            row = {**row, **changes}
            self.cache[key] = row
            self._changed(key, row, stored=True)
        return dict(row)

    def _changed(self, key: tuple[Any, ...], row: dict[str, Any], stored: bool) -> None:
        """Record a change by the event being applied; `stored`: a current
        version may be stored (it was read, or never asked for)."""
        if not self.table.versioned:
            self.dirty.add(key)
            return
        w = self.writer
        position = w.position
        values = self._values_of(row)
        i = self.slot.get(key)
        if i is not None:
            version = self.versions[i]
            if version[1] == position:  # the same event again: amend its version
                version[0] = values
                return
            version[2], version[4] = position, w.recorded  # replaced within the batch: closed before it is written
        elif stored and not self.table.append_only:
            self.closes[key] = (position, w.recorded)  # closed at flush
        self.slot[key] = len(self.versions)
        self.versions.append([values, position, None, w.recorded, None])

    def flush(self) -> None:
        if self.closes:
            # Before the inserts: the close finds the stored current version only.
            self.sql.executemany(self._close, [(p, r, *k) for k, (p, r) in self.closes.items()],
                                 self._close_arrays, self._close_types)
        if self.versions:
            self.sql.executemany(self._insert, [(*v, f, t, rf, rt) for v, f, t, rf, rt in self.versions],
                                 self._insert_arrays, self._insert_types)
        if self.dirty:
            live = [self.cache[k] for k in self.dirty]
            self.sql.executemany(self._insert, [tuple(r[c] for c in self._cols) for r in live if r is not None],
                                 self._insert_arrays, self._insert_types)
        self.closes.clear()
        self.versions.clear()
        self.slot.clear()
        self.dirty.clear()


def _tuple_getter(names: Iterable[str]) -> Any:
    """A function of a row dict giving the values of `names` as a tuple
    (itemgetter gives a bare value for one name)."""
    names = list(names)
    if len(names) == 1:
        (name,) = names
        return lambda row: (row[name],)
    return itemgetter(*names)


_STATEMENTS: dict[str, tuple[str, str, str, str, str]] = {}


def _statements(table: Table, physical: str) -> tuple[str, str, str, str, str]:
    """A table's current-row lookup by key, its insert (of a version; an
    upsert for a current_only table) and its close of the current version,
    then the same insert and close taking one array per column (PostgreSQL:
    Sql.executemany), built once per physical table."""
    if physical not in _STATEMENTS:
        _STATEMENTS[physical] = _build_statements(table, physical)
    return _STATEMENTS[physical]


def _build_statements(table: Table, physical: str) -> tuple[str, str, str, str, str]:
    cols = list(table.columns)
    by_key = " AND ".join(f"{k} = ?" for k in table.key)
    arrays = ", ".join(f"?::{table.columns[c]}[]" for c in cols)
    if table.current_only:
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in table.key)
        conflict = f" ON CONFLICT ({', '.join(table.key)}) " + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING")
        return (f"SELECT {', '.join(cols)} FROM {physical} WHERE {by_key}",
                f"INSERT INTO {physical} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}){conflict}", "",
                f"INSERT INTO {physical} ({', '.join(cols)}) SELECT * FROM unnest({arrays}){conflict}", "")
    insert = f"INSERT INTO {physical} ({', '.join(cols)}, valid_from, valid_to, recorded_from, recorded_to) "
    keys = ", ".join(f"?::{table.columns[k]}[]" for k in table.key)
    return (f"SELECT {', '.join(cols)} FROM {physical} WHERE {by_key} AND valid_to IS NULL",
            insert + f"VALUES ({', '.join('?' * (len(cols) + 4))})",
            f"UPDATE {physical} SET valid_to = ?, recorded_to = ? WHERE {by_key} AND valid_to IS NULL",
            insert + f"SELECT * FROM unnest({arrays}, ?::BIGINT[], ?::BIGINT[], ?::TEXT[], ?::TEXT[])",
            f"UPDATE {physical} AS t SET valid_to = u.valid_to, recorded_to = u.recorded_to "
            f"FROM unnest(?::BIGINT[], ?::TEXT[], {keys}) AS u(valid_to, recorded_to, "
            + ", ".join(f"k_{k}" for k in table.key) + ") WHERE "
            + " AND ".join(f"t.{k} = u.k_{k}" for k in table.key) + " AND t.valid_to IS NULL")


@dataclass
class Writer:
    """What a projection writes into during one batch: its tables by name,
    and the position and recorded time (timeline.recorded_text) of the event
    being applied: the valid_from and recorded_from of the versions it writes."""

    sql: Any
    tables: dict[str, Rows] = field(default_factory=dict)
    position: int = 0
    recorded: str = ""

    def __getitem__(self, name: str) -> Rows:
        return self.tables[name]

    def flush(self) -> None:
        for rows in self.tables.values():
            rows.flush()

    def wanted(self, reads: Iterable[tuple[str, tuple[Any, ...]]]) -> list[tuple[Rows, list[tuple[Any, ...]]]]:
        by_table: dict[str, list[tuple[Any, ...]]] = {}
        for table, key in reads:
            by_table.setdefault(table, []).append(key)
        return [(self.tables[t], keys) for t, keys in by_table.items()]


def preload(sql: Any, wanted: Iterable[tuple[Rows, list[tuple[Any, ...]]]]) -> None:
    """Read the rows a batch will need, for every table, in one round trip."""
    queries = [(rows, q) for rows, keys in wanted for q in rows.queries(keys)]
    results = sql.all_many([(text, params) for _, (text, params, _) in queries])
    for (rows, (_, _, keys)), found in zip(queries, results):
        rows.take(keys, found)


class Projection:
    """A read model: its tables and how each event changes them. Subclasses
    set `name`, `version` (bump it when the tables or rules change: the runner
    then rebuilds) and `tables`, and implement `apply`."""

    name = ""
    version = 1
    tables: tuple[Table, ...] = ()
    # The event classes it reads (None: all). Lets a lone rebuild or replay
    # skip the rest of the log.
    handles: tuple[type, ...] | None = None
    _handled: frozenset[type] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handled = frozenset(cls.handles or ())

    def sees(self, event: Any) -> bool:
        """Whether `apply` has anything to do with this event."""
        return self.handles is None or type(event) in self._handled

    def apply(self, w: Writer, event: Any, n: Any) -> None:
        """Change the tables for one event; `n` is its stored notification
        (`n.id` is the ledger position)."""
        raise NotImplementedError

    def reads(self, event: Any, n: Any) -> Iterable[tuple[str, tuple[Any, ...]]]:
        """The rows `apply` will read for this event, so a batch can read them
        all in one query per table first. Only an optimisation: a row not
        named here is read when asked for."""
        return ()

    def topics(self) -> list[str] | None:
        return None if self.handles is None else [get_topic(c) for c in self.handles]

    def writer(self, sql: Any, suffix: str = "") -> Writer:
        w = Writer(sql)
        w.tables = {t.name: Rows(sql, t, t.name + suffix, w) for t in self.tables}
        return w

    def create(self, sql: Any, suffix: str = "", indexes: bool = True) -> None:
        for t in self.tables:
            for stmt in t.create_sql(t.name + suffix) + (t.index_sql(t.name + suffix) if indexes else []):
                sql.execute(stmt)

    def drop(self, sql: Any, suffix: str = "") -> None:
        for t in self.tables:
            sql.execute(f"DROP TABLE IF EXISTS {t.name + suffix}")


def iso(d: Any) -> str | None:
    return d.isoformat() if d is not None else None


@cache
def _date_fields(row_type: type) -> frozenset[str]:
    """The keys of a TypedDict annotated `date` or `date | None`."""
    return frozenset(k for k, t in get_type_hints(row_type).items() if t in (date, date | None))


def typed(row_type: type, row: dict[str, Any]) -> Any:
    """`row` as a `row_type` (a query row TypedDict): its `date` fields, kept
    in the tables as ISO `YYYY-MM-DD` text (compared as text by the SQL and
    the rules), become `datetime.date`; the rest as they are. The one place a
    query row's dates are typed: each projection builds its rows through it."""
    fields = _date_fields(row_type)
    return {k: date.fromisoformat(v) if k in fields and isinstance(v, str) else v for k, v in row.items()}
