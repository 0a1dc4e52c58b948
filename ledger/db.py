"""Databases: `LEDGER_DATABASE_URL` into the `eventsourcing` environment, and a
small SQL connection (same database) for the read models, hiding the two
drivers' differences: placeholders, upserts and the write lock."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_URL = "sqlite:///ledger.db"


def lock_timeout() -> int:
    """Seconds to wait for another writer's lock before giving up (exit 3)."""
    raw = os.environ.get("LEDGER_LOCK_TIMEOUT", "30")
    if not raw.isdigit():
        raise ValueError(f"LEDGER_LOCK_TIMEOUT must be whole seconds, not {raw!r}")
    return int(raw)


class Unavailable(Exception):
    """The database is unreachable or broken (exit status 3)."""


def redact(text: str) -> str:
    """Never print a password: strip it from any URL or DSN in a message."""
    text = re.sub(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", text, flags=re.I)


@dataclass(frozen=True)
class Database:
    url: str
    kind: str  # "sqlite" | "postgres"
    path: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_url(cls, url: str | None) -> Database:
        url = url or os.environ.get("LEDGER_DATABASE_URL") or DEFAULT_URL
        if url.startswith("sqlite:///"):
            path = url[len("sqlite:///"):]
            if not path:
                raise ValueError("sqlite URL needs a file: sqlite:///path/to/ledger.db")
            return cls(url, "sqlite", path=path)
        parts = urlsplit(url)
        if parts.scheme in ("postgresql", "postgres"):
            dbname = unquote(parts.path.lstrip("/"))
            if not dbname:
                raise ValueError("postgresql URL needs a database name: postgresql://user@host:5432/dbname")
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            params = {
                "dbname": dbname,
                "host": parts.hostname or "127.0.0.1",
                "port": str(parts.port or 5432),
                "user": unquote(parts.username or os.environ.get("PGUSER", "postgres")),
                "password": unquote(parts.password or os.environ.get("PGPASSWORD", "")),
                "schema": query.get("schema", ""),
            }
            return cls(url, "postgres", params=params)
        raise ValueError(f"unsupported database URL {redact(url)!r}: use sqlite:///path or postgresql://…")

    @property
    def display(self) -> str:
        return redact(self.url)

    def eventsourcing_env(self) -> dict[str, str]:
        if self.kind == "sqlite":
            parent = Path(self.path).expanduser().resolve().parent
            if not parent.is_dir():
                raise Unavailable(f"cannot open {self.display}: folder {parent} does not exist")
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "APPLICATION_RECORDER_TOPIC": "ledger.persistence:SQLiteRecorder",
                "SQLITE_DBNAME": str(Path(self.path).expanduser()),
                "SQLITE_LOCK_TIMEOUT": str(lock_timeout()),
            }
        p = self.params
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": "ledger.persistence:PostgresRecorder",
            "POSTGRES_DBNAME": p["dbname"],
            "POSTGRES_HOST": p["host"],
            "POSTGRES_PORT": p["port"],
            "POSTGRES_USER": p["user"],
            "POSTGRES_PASSWORD": p["password"],
            "POSTGRES_SCHEMA": p["schema"],
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_LOCK_TIMEOUT": str(lock_timeout()),
            "POSTGRES_POOL_SIZE": "2",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "60",
            # Never enable POSTGRES_ENABLE_DB_FUNCTIONS: it skips the table lock
            # that keeps notification ids in commit order.
        }

    def connect(self) -> Sql:
        try:
            if self.kind == "sqlite":
                conn = sqlite3.connect(
                    Path(self.path).expanduser(), isolation_level=None, timeout=lock_timeout(),
                    check_same_thread=False,
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # read models: rebuildable, see below
                return Sql(self, conn)
            import psycopg

            p = self.params
            conn = psycopg.connect(
                dbname=p["dbname"], host=p["host"], port=p["port"], user=p["user"],
                password=p["password"] or None, autocommit=True, connect_timeout=5,
            )
            conn.execute(f"SET lock_timeout = '{lock_timeout()}s'")
            # This connection writes only what can be rebuilt from the event
            # log (read models with their positions, in one transaction), so it
            # need not wait for a flush to disk; the events' own writes do.
            conn.execute("SET synchronous_commit TO OFF")
            # The read models are small enough to stay cached: an index probe
            # costs about what a sequential page read does, so say so, or the
            # planner scans a whole table to join a few hundred rows.
            conn.execute("SET random_page_cost = 1.1")
            if p["schema"]:
                conn.execute(f'SET search_path TO "{p["schema"]}"')
            return Sql(self, conn)
        except Exception as e:  # both drivers' connection errors
            raise Unavailable(f"cannot connect to {self.display}: {redact(str(e)).strip()}") from None


class Sql:
    """One connection, `?` placeholders on both drivers, explicit transactions."""

    def __init__(self, db: Database, conn: Any) -> None:
        self.db = db
        self.conn = conn
        self.pg = db.kind == "postgres"

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.pg else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self._q(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.pg:
            with self.conn.cursor() as cur:
                cur.executemany(self._q(sql), rows)
        else:
            self.conn.executemany(sql, rows)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.execute(sql, params).fetchall())

    def chunks(self, values: Sequence[Any]) -> list[Sequence[Any]]:
        """`values` in pieces for `in_`: SQLite binds each one, PostgreSQL takes one array."""
        size = max(len(values), 1) if self.pg else 500
        return [values[i : i + size] for i in range(0, len(values), size)]

    def in_(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`column IN (values)` and its parameters (an array on PostgreSQL: one
        parameter, planned once, instead of hundreds)."""
        if self.pg:
            return f"{column} = ANY(?)", [list(values)]
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def all_many(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        """Several queries' rows; on PostgreSQL sent together, one round trip."""
        if not self.pg or len(queries) < 2:
            return [self.all(q, p) for q, p in queries]
        with self.conn.pipeline():
            cursors = [self.conn.execute(self._q(q), p) for q, p in queries]
        return [list(c.fetchall()) for c in cursors]

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self.execute(sql, params).fetchone()

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[Sql]:
        """A write transaction. `lock` names a row of `ledger_locks` to take
        first (PostgreSQL); SQLite takes its database write lock up front."""
        if self.pg:
            # Pipeline mode: the writes of a transaction go to the server
            # together instead of one round trip each (reads still wait).
            with self.conn.pipeline(), self.conn.transaction():
                if lock:
                    self.execute("SELECT name FROM ledger_locks WHERE name = ? FOR UPDATE", (lock,))
                yield self
        else:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass
