"""How a read model is kept: tables declared as data, a per-batch row cache
that projections read and write as plain dicts, and one flush that writes the
rows and the projection's position in the same transaction."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.utils import get_topic

_MISSING = object()


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: dict[str, str]  # column -> SQL type (TEXT, BIGINT); dates/money as ISO/decimal TEXT
    indexes: tuple[tuple[str, ...], ...] = ()
    # Rows are only ever inserted (one per event, say): flushed by plain INSERT.
    append_only: bool = False

    def create_sql(self, physical: str) -> list[str]:
        cols = ", ".join(f"{c} {t}" for c, t in self.columns.items())
        return [f"CREATE TABLE IF NOT EXISTS {physical} ({cols}, PRIMARY KEY ({', '.join(self.key)}))"]

    def index_sql(self, physical: str) -> list[str]:
        return [
            f"CREATE INDEX IF NOT EXISTS ix_{physical}_{'_'.join(ix)} ON {physical} ({', '.join(ix)})"
            for ix in self.indexes
        ]


class Rows:
    """One table's rows as seen by a batch: read through to the database on
    first access, written back by one executemany at flush."""

    def __init__(self, sql: Any, table: Table, physical: str) -> None:
        self.sql, self.table, self.physical = sql, table, physical
        self.cache: dict[tuple[Any, ...], dict[str, Any] | None] = {}
        self.dirty: set[tuple[Any, ...]] = set()
        self._cols = list(table.columns)
        self._select, self._upsert = _statements(table, physical)

    def queries(self, keys: Iterable[tuple[Any, ...]]) -> list[tuple[str, list[Any], list[tuple[Any, ...]]]]:
        """The queries that read these rows, not yet cached: (sql, params, keys)."""
        wanted = [k for k in dict.fromkeys(keys) if k not in self.cache]
        key = self.table.key
        width = len(key)
        out = []
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            if width == 1:
                text = f"SELECT {', '.join(self._cols)} FROM {self.physical} WHERE {key[0]} IN ({','.join('?' * len(chunk))})"
            else:
                # Joined to a VALUES list: SQLite scans the whole table for `(a, b) IN (...)`.
                first = "(" + ", ".join(f"CAST(? AS {self.table.columns[k]})" for k in key) + ")"
                rows = ", ".join([first] + ["(" + ",".join("?" * width) + ")"] * (len(chunk) - 1))
                text = (f"WITH k({', '.join('k_' + k for k in key)}) AS (VALUES {rows}) "
                        f"SELECT {', '.join('t.' + c for c in self._cols)} FROM k JOIN {self.physical} t ON "
                        + " AND ".join(f"t.{k} = k.k_{k}" for k in key))
            out.append((text, [v for k in chunk for v in k], chunk))
        return out

    def take(self, keys: list[tuple[Any, ...]], found: list[tuple[Any, ...]]) -> None:
        """Cache what a query from `queries` found (absent rows as absent)."""
        for k in keys:
            self.cache[k] = None
        for values in found:
            row = dict(zip(self._cols, values))
            self.cache[tuple(row[k] for k in self.table.key)] = row

    def get(self, *key: Any) -> dict[str, Any] | None:
        row = self.cache.get(key, _MISSING)
        if row is _MISSING:
            found = self.sql.one(self._select, key)
            row = dict(zip(self._cols, found)) if found else None
            self.cache[key] = row
        return row  # type: ignore[return-value]

    def put(self, row: dict[str, Any]) -> None:
        key = tuple(row[k] for k in self.table.key)
        full = {c: row.get(c) for c in self._cols}
        self.cache[key] = full
        self.dirty.add(key)

    def update(self, *key: Any, **changes: Any) -> dict[str, Any] | None:
        assert not self.table.append_only, f"{self.table.name} is append-only"
        row = self.get(*key)
        if row is not None:
            row.update(changes)
            self.dirty.add(key)
        return row

    def flush(self) -> None:
        rows = [self.cache[k] for k in self.dirty]
        live = [r for r in rows if r is not None]
        if live:
            values = operator.itemgetter(*self._cols)  # one C call per row (a 1-column table gives no tuple)
            self.sql.executemany(self._upsert, [values(r) for r in live] if len(self._cols) > 1
                                 else [(values(r),) for r in live])
        self.dirty.clear()


_STATEMENTS: dict[str, tuple[str, str]] = {}


def _statements(table: Table, physical: str) -> tuple[str, str]:
    """A table's row lookup by key, and its insert (an upsert unless
    append-only), built once per physical table."""
    if physical not in _STATEMENTS:
        _STATEMENTS[physical] = _build_statements(table, physical)
    return _STATEMENTS[physical]


def _build_statements(table: Table, physical: str) -> tuple[str, str]:
    cols = list(table.columns)
    select = f"SELECT {', '.join(cols)} FROM {physical} WHERE " + " AND ".join(f"{k} = ?" for k in table.key)
    conflict = ""
    if not table.append_only:
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in table.key)
        conflict = f" ON CONFLICT ({', '.join(table.key)}) " + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING")
    return select, f"INSERT INTO {physical} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}){conflict}"


@dataclass
class Writer:
    """What a projection writes into during one batch: its tables by name."""

    sql: Any
    tables: dict[str, Rows] = field(default_factory=dict)

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
        return Writer(sql, {t.name: Rows(sql, t, t.name + suffix) for t in self.tables})

    def create(self, sql: Any, suffix: str = "", indexes: bool = True) -> None:
        for t in self.tables:
            for stmt in t.create_sql(t.name + suffix) + (t.index_sql(t.name + suffix) if indexes else []):
                sql.execute(stmt)

    def drop(self, sql: Any, suffix: str = "") -> None:
        for t in self.tables:
            sql.execute(f"DROP TABLE IF EXISTS {t.name + suffix}")


def iso(d: Any) -> str | None:
    return d.isoformat() if d is not None else None
