"""Databases: `LEDGER_DATABASE_URL` into the `eventsourcing` environment, and a
small SQL connection (same database) for the read models, hiding the two
drivers' differences: placeholders, upserts and the write lock."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .errors import BadInput, Unavailable

DEFAULT_URL = "sqlite:///ledger.db"


def lock_timeout() -> int:
    """Seconds to wait for another writer's lock before giving up (exit 3)."""
    raw = os.environ.get("LEDGER_LOCK_TIMEOUT", "30")
    if not (raw.isascii() and raw.isdigit()) or int(raw) > 86_400:
        raise BadInput(f"LEDGER_LOCK_TIMEOUT must be whole seconds, 0 to 86400, not {raw[:40]!r}")
    return int(raw)


# Passwords seen in database URLs this process parsed: redact() hides them
# wherever they appear, whatever shape the message quotes them in.
_SECRETS: set[str] = set()

# libpq connection parameters a PostgreSQL URL may carry (after `?`), passed to
# both the event store's and the read models' connections. `schema` is ours.
# Not here on purpose: host, port, dbname, user, password (the URL's own parts),
# service and options (they could point the connection elsewhere).
LIBPQ_PARAMS = frozenset({
    "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslcrldir", "sslpassword", "sslsni",
    "sslnegotiation", "sslcompression", "ssl_min_protocol_version", "ssl_max_protocol_version",
    "requirepeer", "require_auth", "channel_binding", "gssencmode", "krbsrvname", "gssdelegation",
    "application_name", "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "target_session_attrs", "passfile",
})
SECRET_PARAMS = frozenset({"sslpassword"})
CONNECT_TIMEOUT = 5  # seconds, unless the URL says connect_timeout=N


def redact(text: str) -> str:
    """`text` with every database password replaced by `***`: the userinfo
    password of a URL of any scheme (any case; `@`, spaces and `:` in it: up
    to the last `@` of the line), `password=`/`sslpassword=` in a conninfo,
    and any password this process read from a URL, wherever it appears."""
    text = re.sub(r"(?i)\b([a-z][a-z0-9+.\-]*://[^:/@\n]*:)[^\n]*@", r"\1***@", text)
    text = re.sub(r"(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def first_line(e: BaseException) -> str:
    """An error's message for a one-line report: its first line, passwords
    redacted ("" when it has no message)."""
    return redact(str(e)).splitlines()[0] if str(e).strip() else ""


def is_database_error(e: BaseException) -> bool:
    """Whether `e` is a failure of the database or its driver (exit 3, HTTP
    503), as opposed to bad input or a bug."""
    from eventsourcing.persistence import PersistenceError

    if isinstance(e, (sqlite3.Error, PersistenceError)):
        return True
    try:
        import psycopg
        import psycopg_pool
    except ImportError:  # pragma: no cover - the driver is a dependency
        return False
    return isinstance(e, (psycopg.Error, psycopg_pool.PoolTimeout))


def _remember_secret(secret: str) -> None:
    # Too short or part of the URL's own words ("postgres"): the patterns above
    # hide it in a URL, and replacing it everywhere would garble the message.
    if len(secret) >= 4 and secret.lower() not in "postgresql sqlite":
        _SECRETS.update({secret, quote(secret, safe="")})


def _short(value: str, limit: int = 60) -> str:
    """A user's value for an error line: its start, never the whole of a long one."""
    value = redact(value)
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _schema(value: str) -> str:
    """A `?schema=` value: kept as typed (case too) and always quoted as an
    identifier. Refused: empty, over 63 bytes (PostgreSQL would truncate it),
    double quotes or control characters."""
    if not value or len(value.encode()) > 63 or '"' in value or any(
        ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in value
    ):
        raise BadInput(f"schema {_short(value)} in the database URL must be 1 to 63 bytes, "
                         "without double quotes or control characters")
    return value


@dataclass(frozen=True)
class Database:
    url: str
    kind: str  # "sqlite" | "postgres"
    path: str = ""
    params: dict[str, str] = field(default_factory=dict)
    libpq: dict[str, str] = field(default_factory=dict)  # extra libpq parameters from the URL
    read_only: bool = False  # SQLite: a file this process may not write (queries only)

    @classmethod
    def from_url(cls, url: str | None) -> Database:
        """Parse `url` (default: LEDGER_DATABASE_URL, then sqlite:///ledger.db).

        sqlite:///path takes no parameters. postgresql://[user[:password]@]host[:port]/dbname
        (scheme `postgres` too, any case) takes `schema` and the libpq parameters
        in LIBPQ_PARAMS (sslmode, sslrootcert, application_name, ...). Without a
        password in the URL, libpq finds it (PGPASSWORD, .pgpass, PGPASSFILE).
        Raises BadInput (exit 2) for an empty or unsupported URL or an unknown
        parameter; the message never contains the password."""
        if url is None:
            url = os.environ.get("LEDGER_DATABASE_URL")
            if url is None:
                url = DEFAULT_URL
        if not url.strip():
            raise BadInput("the database URL is empty: give --db or LEDGER_DATABASE_URL, "
                             "e.g. sqlite:///ledger.db")
        parts = urlsplit(url)
        try:
            _remember_secret(unquote(parts.password or ""))
        except ValueError:
            pass
        if url[:10].lower() == "sqlite:///":
            path = url[len("sqlite:///"):]
            if not path:
                raise BadInput("sqlite URL needs a file: sqlite:///path/to/ledger.db")
            if "?" in path or path.lower().startswith("file:"):
                raise BadInput(f"sqlite URL {_short(url)} takes a file name, no parameters (after '?')")
            return cls(url, "sqlite", path=path)
        if parts.scheme in ("postgresql", "postgres"):
            dbname = unquote(parts.path.lstrip("/"))
            if not dbname:
                raise BadInput("postgresql URL needs a database name: postgresql://user@host:5432/dbname")
            try:
                port = parts.port
            except ValueError:
                raise BadInput(f"the port in {_short(url)} is not a number from 0 to 65535") from None
            query: dict[str, str] = {}
            for key, value in parse_qsl(parts.query, keep_blank_values=True):
                if key != "schema" and key not in LIBPQ_PARAMS:
                    raise BadInput(f"unknown parameter {_short(key, 40)} in the database URL: "
                                     f"use schema or a libpq parameter ({', '.join(sorted(LIBPQ_PARAMS))})")
                if key in SECRET_PARAMS:
                    _remember_secret(value)
                query[key] = value
            timeout = query.pop("connect_timeout", str(CONNECT_TIMEOUT))
            if not timeout.isdigit() or not 0 < int(timeout) <= 3600:
                raise BadInput(f"connect_timeout {_short(timeout)} in the database URL must be 1 to 3600 seconds")
            params = {
                "dbname": dbname,
                "host": parts.hostname or "127.0.0.1",
                "port": str(port or 5432),
                "user": unquote(parts.username or os.environ.get("PGUSER", "postgres")),
                "password": unquote(parts.password or ""),
                "schema": _schema(query.pop("schema")) if "schema" in query else "",
                "connect_timeout": timeout,
            }
            return cls(url, "postgres", params=params, libpq=query)
        raise BadInput(f"unsupported database URL {_short(url)}: use sqlite:///path or postgresql://…")

    @property
    def display(self) -> str:
        return redact(self.url)

    def for_query(self) -> Database:
        """This database as a query opens it: never created. Raises Unavailable
        (exit 3, saying where it looked) if a SQLite file is missing; a file
        this process may not write is opened read-only."""
        if self.kind != "sqlite":
            return self  # connect(create=False) checks the ledger's tables
        path = Path(self.path).expanduser().resolve()
        if not path.is_file():
            raise Unavailable(f"no ledger at {path}: the file does not exist "
                              "(a query never creates one; check --db or LEDGER_DATABASE_URL)")
        return replace(self, read_only=not os.access(path, os.W_OK))

    def _sqlite_ro_uri(self) -> str:
        return "file:" + quote(str(Path(self.path).expanduser().resolve())) + "?mode=ro"

    def conninfo(self) -> str:
        """The libpq connection string of a PostgreSQL URL: its host, port,
        dbname, user, password only if the URL has one (else libpq's own
        sources: PGPASSWORD, .pgpass, PGPASSFILE), connect_timeout and the
        URL's libpq parameters (sslmode, ...)."""
        from psycopg.conninfo import make_conninfo

        p = self.params
        return make_conninfo(
            "", dbname=p["dbname"], host=p["host"], port=p["port"], user=p["user"],
            password=p["password"] or None, connect_timeout=p["connect_timeout"], **self.libpq,
        )

    def eventsourcing_env(self) -> dict[str, str]:
        """Every setting the `eventsourcing` library reads, pinned. LedgerApp
        passes only these (never os.environ) so no LEDGER_<KEY> or bare
        variable can choose another store, encrypt, compress, snapshot or
        skip the table lock (POSTGRES_ENABLE_DB_FUNCTIONS)."""
        common = {
            "TRANSCODER_TOPIC": "", "MAPPER_TOPIC": "", "CIPHER_TOPIC": "", "CIPHER_KEY": "",
            "COMPRESSOR_TOPIC": "", "IS_SNAPSHOTTING_ENABLED": "n", "CREATE_TABLE": "y",
            "ORIGINATOR_ID_TYPE": "uuid", "SINGLE_ROW_TRACKING": "t",
            "TRACKING_RECORDER_TOPIC": "", "PROCESS_RECORDER_TOPIC": "",
            "AGGREGATE_CACHE_MAXSIZE": "", "AGGREGATE_CACHE_FASTFORWARD": "y",
            "AGGREGATE_CACHE_FASTFORWARD_SKIPPING": "n", "DEEPCOPY_FROM_AGGREGATE_CACHE": "y",
            "INFRASTRUCTURE_FACTORY": "", "FACTORY_TOPIC": "",
        }
        if self.kind == "sqlite":
            parent = Path(self.path).expanduser().resolve().parent
            if not parent.is_dir():
                raise Unavailable(f"cannot open {self.display}: folder {parent} does not exist")
            return {
                **common,
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "APPLICATION_RECORDER_TOPIC": "ledger.persistence:SQLiteRecorder",
                # The library opens it as a URI: a read-only one when asked.
                "SQLITE_DBNAME": self._sqlite_ro_uri() if self.read_only else str(Path(self.path).expanduser()),
                "CREATE_TABLE": "n" if self.read_only else "y",
                "SQLITE_LOCK_TIMEOUT": str(lock_timeout()),
            }
        p = self.params
        return {
            **common,
            # The library's factory, plus the URL's libpq parameters (sslmode...)
            # on the pool's connections: see ledger/pgstore.py.
            "PERSISTENCE_MODULE": "ledger.pgstore:PostgresFactory",
            "LIBPQ_PARAMS": json.dumps(self.libpq),
            "APPLICATION_RECORDER_TOPIC": "ledger.persistence:PostgresRecorder",
            "POSTGRES_DBNAME": p["dbname"],
            "POSTGRES_HOST": p["host"],
            "POSTGRES_PORT": p["port"],
            "POSTGRES_USER": p["user"],
            "POSTGRES_PASSWORD": p["password"],  # "" → libpq's own sources (pgstore drops it)
            "POSTGRES_GET_PASSWORD_TOPIC": "",
            "POSTGRES_SCHEMA": p["schema"],
            "POSTGRES_CONNECT_TIMEOUT": p["connect_timeout"],
            "POSTGRES_LOCK_TIMEOUT": str(lock_timeout()),
            # Creating the tables holds one pooled connection (advisory lock)
            # while the library's create_table takes another: never fewer than 2.
            "POSTGRES_POOL_SIZE": "2",
            "POSTGRES_MAX_OVERFLOW": "10",
            "POSTGRES_MAX_WAITING": "0",
            "POSTGRES_CONN_MAX_AGE": "3600",
            "POSTGRES_PRE_PING": "n",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "60",
            # Never enable: it skips the table lock that keeps notification ids
            # in commit order, and drops the command outcomes.
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        }

    def connect(self, create: bool = True) -> Sql:
        """The read models' connection. `create=False` (queries): create
        nothing, and raise Unavailable if the database holds no ledger."""
        timeout = lock_timeout()  # a bad setting is bad usage (BadInput), not an unreachable database
        try:
            if self.kind == "sqlite":
                if self.read_only:
                    conn = sqlite3.connect(self._sqlite_ro_uri(), uri=True, isolation_level=None,
                                           timeout=timeout, check_same_thread=False)
                else:
                    conn = sqlite3.connect(
                        Path(self.path).expanduser(), isolation_level=None, timeout=timeout,
                        check_same_thread=False,
                    )
                if not create:  # before anything writes to a file that may be no ledger
                    self._check_ledger(conn.execute(
                        "SELECT count(*) FROM sqlite_master WHERE name = 'stored_events'").fetchone()[0], conn)
                if not self.read_only:
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # read models: rebuildable, see below
                return Sql(self, conn)
            import psycopg
            from psycopg import sql

            p = self.params
            conn = psycopg.connect(self.conninfo(), autocommit=True)
            conn.execute(f"SET lock_timeout = '{timeout}s'")
            # This connection writes only what can be rebuilt from the event
            # log (read models with their positions, in one transaction), so it
            # need not wait for a flush to disk; the events' own writes do.
            conn.execute("SET synchronous_commit TO OFF")
            # The read models are small enough to stay cached: an index probe
            # costs about what a sequential page read does, so say so, or the
            # planner scans a whole table to join a few hundred rows.
            conn.execute("SET random_page_cost = 1.1")
            # The read models live in the events' schema (public by default),
            # whatever search_path the server or PGOPTIONS would give.
            schema = sql.Identifier(p["schema"] or "public")
            if p["schema"] and create:
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            conn.execute(sql.SQL("SET search_path TO {}").format(schema))
            if not create:
                table = sql.Identifier(p["schema"] or "public", "ledger_events").as_string(conn)
                self._check_ledger(conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()[0], conn)
            return Sql(self, conn)
        except Unavailable:
            raise
        except Exception as e:  # both drivers' connection errors
            raise Unavailable(f"cannot connect to {self.display}: {redact(str(e)).strip()}") from None

    def _check_ledger(self, found: Any, conn: Any) -> None:
        if not found:
            conn.close()
            where = str(Path(self.path).expanduser().resolve()) if self.kind == "sqlite" else self.display
            raise Unavailable(f"no ledger in {where}: it has no events table "
                              "(a query never creates one; check --db or LEDGER_DATABASE_URL)")


@contextmanager
def pg_transaction(conn: Any) -> Iterator[Any]:
    """A transaction on `conn` (a psycopg connection in autocommit mode) in
    pipeline mode; yields the pipeline. BEGIN goes with the first statements
    and COMMIT with the sync that closes the pipeline, so the transaction
    costs one round trip, plus one per read or `sync()` inside it (psycopg's
    transaction() inside a pipeline costs four: it syncs after BEGIN, before
    and after COMMIT and on leaving the pipeline).
    On any exception nothing is committed: it rolls back and re-raises."""
    try:
        with conn.pipeline() as pipeline:
            # Never prepared: nothing to plan, and a failed pipeline skips its PREPAREs.
            conn.execute("BEGIN", prepare=False)
            yield pipeline
            conn.execute("COMMIT", prepare=False)
    except BaseException:
        if not conn.closed:
            # Also leaves an aborted pipeline's state and forgets the statements it did not prepare.
            with suppress(Exception):  # a failing connection: the error raised below is the one to report
                conn.rollback()
        raise


_PY_TYPES = {"TEXT": str, "BIGINT": int}  # a column type -> the Python type written as one array of it


class Sql:
    """One connection, `?` placeholders on both drivers, explicit transactions."""

    def __init__(self, db: Database, conn: Any) -> None:
        self.db = db
        self.conn = conn
        self.pg = db.kind == "postgres"
        self._pipelined = False  # inside transaction() on PostgreSQL: statements queue in its pipeline

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.pg else sql

    def _check(self, params: Sequence[Any]) -> Sequence[Any]:
        if self.pg and any(isinstance(v, str) and "\x00" in v for v in params):
            # PostgreSQL cannot hold one; no stored id or name has one (input is refused).
            raise BadInput("a value asked for contains a NUL character, which no id or name contains")
        return params

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self._q(sql), self._check(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], arrays: str | None = None,
                    types: Sequence[str] = ()) -> None:
        """`sql` once per row. On PostgreSQL, given `arrays` (the same write
        taking one array per column, `?::TYPE[]` in column order) and the
        columns' `types` (TEXT or BIGINT), the rows go as one statement when
        every value is of its column's type (str, int or None): one row per
        statement costs the server and the driver more than the rows."""
        if not rows:
            return
        if self.pg and arrays is not None and len(rows) > 1:
            columns = [list(c) for c in zip(*rows)]
            if all(all(v is None or type(v) is _PY_TYPES[t] for v in c) for c, t in zip(columns, types)):
                self.conn.execute(arrays.replace("?", "%b"), columns)
                return
        if self.pg and len(rows) == 1:  # cursor.executemany costs the driver more, and out of a pipeline opens one
            self.conn.execute(self._q(sql), rows[0])
        elif self.pg:
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
        if self._pipelined:  # queued in transaction()'s pipeline: the first fetch gets every answer
            cursors = [self.conn.execute(self._q(q), self._check(p)) for q, p in queries]
        else:
            with self.conn.pipeline():
                cursors = [self.conn.execute(self._q(q), self._check(p)) for q, p in queries]
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
            if self._pipelined:  # its COMMIT would end the outer one (SQLite refuses a nested BEGIN too)
                raise RuntimeError("Sql.transaction() does not nest")
            with pg_transaction(self.conn):
                self._pipelined = True
                try:
                    if lock:
                        self.execute("SELECT name FROM ledger_locks WHERE name = ? FOR UPDATE", (lock,))
                    yield self
                finally:
                    self._pipelined = False
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
