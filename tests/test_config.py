"""Configuration that cannot be subverted, on SQLite and PostgreSQL.

Only `--db` / LEDGER_DATABASE_URL chooses the store: every environment key the
`eventsourcing` library would read (bare and with the application's LEDGER_
prefix) is set to junk or to a hostile value, and a real `ledger` process still
writes to the URL's store and nowhere else, finishes re-submissions and
verifies. URL parameters reach both connections (libpq parameters, the schema,
quoted and created); passwords never show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.postgres import PostgresFactory
from eventsourcing.sqlite import SQLiteFactory

from ledger.db import LIBPQ_PARAMS, Database, redact
from ledger.pgstore import PostgresFactory as LedgerPostgresFactory
from ledger.service import Ledger

from .conftest import FIGURES, cmd, deal

ROOT = Path(__file__).resolve().parent.parent


def library_keys() -> set[str]:
    """Every environment key the library's application, factories and cipher read."""
    # CIPHER_KEY: read by eventsourcing.cipher, whose AES dependency is not installed.
    keys = {"INFRASTRUCTURE_FACTORY", "FACTORY_TOPIC", "TZINFO_TOPIC", "SPHINX_BUILD", "CIPHER_KEY"}
    for cls in (Application, InfrastructureFactory, SQLiteFactory, PostgresFactory):
        for klass in cls.__mro__:
            for name, value in vars(klass).items():
                if name.isupper() and isinstance(value, str) and value.isupper():
                    keys.add(value)
    return keys


def hostile_env(decoy: Path) -> dict[str, str]:
    """Junk for every key, bare and LEDGER_-prefixed, and the values that did harm."""
    env = {}
    for key in library_keys():
        env[key] = "junk:junk"
        env[f"LEDGER_{key}"] = "junk:junk"
    harmful = {
        "SQLITE_DBNAME": str(decoy), "POSTGRES_DBNAME": "postgres", "POSTGRES_SCHEMA": "decoy",
        "POSTGRES_ENABLE_DB_FUNCTIONS": "y", "POSTGRES_POOL_SIZE": "1", "POSTGRES_MAX_OVERFLOW": "0",
        "CIPHER_KEY": "MTIzNDU2Nzg5MDEyMzQ1Ng==", "CIPHER_TOPIC": "eventsourcing.cipher:AESCipher", "COMPRESSOR_TOPIC": "zlib", "IS_SNAPSHOTTING_ENABLED": "y",
        "CREATE_TABLE": "n", "ORIGINATOR_ID_TYPE": "text", "PERSISTENCE_MODULE": "eventsourcing.popo",
    }
    for key, value in harmful.items():
        env[key] = env[f"LEDGER_{key}"] = value
    env["TZINFO_TOPIC"] = "junk:junk"
    env["SPHINX_BUILD"] = "1"
    return env


def cli(url: str, *args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return subprocess.run([sys.executable, "-c", "import cli; cli.main()", "--db", url, *args], cwd=ROOT,
                          capture_output=True, text=True, env={**base, **(env or {})}, input=stdin, timeout=120)


LINES = [
    cmd("enroll_partner", on="2026-01-01", partner="acme", name="Acme Advisory", domain="acme.fi",
        commission_rate="0.20"),
    deal("d-1", email="jane@example.fi"),
    deal("d-2", email="joe@other.fi", name="Other Oy"),
    cmd("accept_deal", on="2026-01-11", deal="d-1"),
]


def test_library_keys_are_the_ones_read() -> None:
    keys = library_keys()
    # The ones that did harm are among them (a library upgrade renaming them fails here).
    assert {"SQLITE_DBNAME", "POSTGRES_ENABLE_DB_FUNCTIONS", "POSTGRES_POOL_SIZE", "CIPHER_KEY",
            "PERSISTENCE_MODULE", "APPLICATION_RECORDER_TOPIC", "POSTGRES_MAX_OVERFLOW"} <= keys


def test_hostile_environment_changes_nothing(db_url: str, tmp_path: Path) -> None:
    decoy = tmp_path / "decoy.db"
    env = hostile_env(decoy)
    FIGURES["hostile environment variables"] += len(env)
    text = "\n".join(json.dumps(line) for line in LINES) + "\n"
    first = cli(db_url, "--as", "system", "--json", "submit", "-", env=env, stdin=text)
    assert first.returncode == 0, first.stderr
    assert [json.loads(x)["status"] for x in first.stdout.splitlines()[:-1]] == ["applied"] * len(LINES)
    again = cli(db_url, "--as", "system", "--json", "submit", "-", env=env, stdin=text)  # finishes, reports
    assert again.returncode == 0, again.stderr
    assert [json.loads(x)["status"] for x in again.stdout.splitlines()[:-1]] == ["duplicate"] * len(LINES)
    deals = cli(db_url, "--json", "deals", env=env)
    assert deals.returncode == 0, deals.stderr
    assert [d["deal"] for d in json.loads(deals.stdout)] == ["d-1", "d-2"]
    verify = cli(db_url, "--as", "vendor:finance", "audit", "verify", env=env)
    assert verify.returncode == 0 and verify.stdout.startswith("OK"), verify.stdout + verify.stderr
    assert not decoy.exists()
    # The same store, read without the hostile environment: plain events, in the URL's store.
    with Ledger(db_url, "vendor:manager") as ledger:
        assert [d["deal"] for d in ledger.deals(None, None, None, date(2026, 2, 1))] == [
            "d-1", "d-2"]
        app = ledger.app
        assert app.factory.is_snapshotting_enabled() is False
        assert app.mapper.cipher is None and app.mapper.compressor is None
        rows = ledger.sql.all(f"SELECT state FROM {app.events_table}")
        assert rows and all(bytes(r[0]).startswith(b"{") for r in rows)  # JSON, neither encrypted nor compressed
        if ledger.db.kind == "postgres":
            assert ledger.sql.one("SELECT to_regnamespace('decoy')")[0] is None


def test_empty_actor_and_url_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    for env, args in (({"LEDGER_ACTOR": ""}, ()), ({"LEDGER_ACTOR": "  "}, ()), ({}, ("--as", ""))):
        r = cli(url, *args, "deals", env=env)
        assert r.returncode == 2 and r.stderr.startswith("error: unknown actor"), r.stderr
    r = subprocess.run([sys.executable, "-c", "import cli; cli.main()", "deals"], cwd=tmp_path, capture_output=True,
                       text=True, env={**os.environ, "LEDGER_DATABASE_URL": "", "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and "database URL is empty" in r.stderr, r.stderr
    assert not (tmp_path / "ledger.db").exists()


# -- URLs -------------------------------------------------------------------------------------------
def test_unknown_url_parameters_are_refused(tmp_path: Path) -> None:
    for url in ("postgresql://u@h/db?scheme=x", "postgresql://u@h/db?schema=a&SSLMODE=require",
                "postgresql://u@h/db?options=-csearch_path%3Dx", "postgresql://u@h/db?service=other",
                f"sqlite:///{tmp_path / 'x.db'}?mode=ro", "sqlite:///file:x.db", "postgresql://u@h/db?connect_timeout=abc",
                'postgresql://u@h/db?schema=a"b', "postgresql://u@h/db?schema=", "postgresql://u@h/db?schema=" + "s" * 64,
                "postgresql://u@h:99999/db", "mysql://u@h/db", ""):
        r = cli(url, "deals")
        assert r.returncode == 2, (url, r.stderr)
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and len(r.stderr) <= 500, r.stderr
        assert "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())


def test_conninfo_carries_url_parameters_and_only_a_given_password() -> None:
    db = Database.from_url("postgresql://app@db.example:6543/books?sslmode=verify-full&sslrootcert=/etc/ca.pem"
                           "&application_name=ledger&schema=Books")
    info = psycopg.conninfo.conninfo_to_dict(db.conninfo())
    assert info == {"dbname": "books", "host": "db.example", "port": "6543", "user": "app", "connect_timeout": "5",
                    "sslmode": "verify-full", "sslrootcert": "/etc/ca.pem", "application_name": "ledger"}
    assert db.params["schema"] == "Books"
    # No password in the URL: none in the conninfo, so libpq reads PGPASSWORD / .pgpass / PGPASSFILE.
    assert "password" not in info
    env = db.eventsourcing_env()
    assert json.loads(env["LIBPQ_PARAMS"]) == {"sslmode": "verify-full", "sslrootcert": "/etc/ca.pem",
                                               "application_name": "ledger"}
    factory = LedgerPostgresFactory(env)
    try:
        kwargs = factory.datastore.pool.kwargs
        assert "password" not in kwargs and kwargs["sslmode"] == "verify-full"
        assert kwargs["sslrootcert"] == "/etc/ca.pem"
    finally:
        factory.close()
    with_pw = Database.from_url("POSTGRESQL://app:p%40ss%20word@h/db?connect_timeout=9")
    info = psycopg.conninfo.conninfo_to_dict(with_pw.conninfo())
    assert info["password"] == "p@ss word" and info["connect_timeout"] == "9"
    assert set(LIBPQ_PARAMS).isdisjoint({"host", "port", "dbname", "user", "password", "service", "options"})


def test_sslmode_is_honoured_by_both_connections(pg_database: str | None) -> None:
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable")
    # The test server has no SSL: requiring it must fail (exit 3), never fall back to plaintext.
    r = cli(f"{pg_database}?sslmode=require", "deals")
    assert r.returncode == 3 and "SSL" in r.stderr, r.stderr
    db = Database.from_url(f"{pg_database}?sslmode=require")
    factory = LedgerPostgresFactory(db.eventsourcing_env())  # the event store's own pool
    try:  # what the pool connects with (the pool itself only says it timed out)
        kwargs = {k: v for k, v in factory.datastore.pool.kwargs.items() if k != "row_factory"}
        with pytest.raises(psycopg.OperationalError, match="SSL"):
            psycopg.connect(factory.datastore.pool.conninfo, **kwargs)
    finally:
        factory.close()
    factory = LedgerPostgresFactory(Database.from_url(f"{pg_database}?sslmode=disable").eventsourcing_env())
    try:
        with factory.datastore.get_connection() as conn:
            assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()["ssl"] is False
    finally:
        factory.close()
    ok = cli(f"{pg_database}?sslmode=disable", "--as", "system", "submit", "-", stdin="")
    assert ok.returncode == 0, ok.stderr


def test_url_parameters_reach_every_connection(pg_database: str | None) -> None:
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable")
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    schema = f"Mixed Case-{uuid.uuid4().hex[:6]}"
    url = f"{pg_database}?schema={quote(schema, safe='')}&application_name={name}"
    try:
        with Ledger(url, "system") as ledger:  # creates the schema, writes through both connections
            ledger.submit_lines([json.dumps(line) for line in LINES])
            assert ledger.app.head() > 0
            with psycopg.connect(pg_database, autocommit=True) as admin:
                apps = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                                     [name]).fetchone()[0]
                tables = {r[0] for r in admin.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema])}
            assert apps >= 2  # the read models' connection and the event store's pool
            assert {"ledger_events", "ledger_outcomes", "ledger_projections"} <= tables
            assert [d["deal"] for d in ledger.deals(None, None, None, date(2026, 2, 1))] == [
                "d-1", "d-2"]
    finally:
        with psycopg.connect(pg_database, autocommit=True) as admin:
            admin.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema)))


def test_a_crafted_schema_runs_no_sql(pg_database: str | None) -> None:
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable")
    crafted = "x; CREATE TABLE public.pwned_by_schema (i int); --"
    url = f"{pg_database}?schema={quote(crafted, safe='')}"
    try:
        with Ledger(url, "system") as ledger:
            ledger.submit_lines([json.dumps(LINES[0])])
        with psycopg.connect(pg_database, autocommit=True) as admin:
            assert admin.execute("SELECT to_regclass('public.pwned_by_schema')").fetchone()[0] is None
            assert admin.execute("SELECT to_regnamespace(%s)", [f'"{crafted}"']).fetchone()[0] is not None
    finally:
        with psycopg.connect(pg_database, autocommit=True) as admin:
            admin.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(crafted)))


# -- passwords --------------------------------------------------------------------------------------
PASSWORDS = ["S3cret PW", "p@ss@word", "a:b:c", "pa/ss", "Ünïcode Pässwörd", "x" * 200, "quote'and\"double"]


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "POSTGRESQL", "Postgres", "mysql", "https"])
def test_redact_hides_any_url_password(scheme: str) -> None:
    for pw in PASSWORDS:
        for text in (f"cannot connect to {scheme}://user:{pw}@host:5432/db: refused",
                     f"{scheme}://:{pw}@host/db", f"{scheme}://my user:{pw}@host/db?x=1"):
            assert pw not in redact(text), text
            assert "***" in redact(text)
        assert pw not in redact(f"host=h password={pw!r} dbname=d")
    assert redact("host=h password=plain dbname=d") == "host=h password=*** dbname=d"


def test_no_message_shows_the_password(tmp_path: Path) -> None:
    for pw in ("S3cret PW", "p@ss@word", "Wh0le:Secret"):
        for url in (f"postgresql://u:{pw}@127.0.0.1:1/db", f"POSTGRES://u:{pw}@127.0.0.1:1/db",
                    f"postgresql://u:{pw}@127.0.0.1:1/db?bogus=1", f"postgresql://u:{pw}@127.0.0.1:x/db",
                    f"postgresql://u:{pw}@127.0.0.1:1/db?schema=\"", f"mysql://u:{pw}@h/db"):
            r = cli(url, "deals")
            assert r.returncode in (2, 3), r.stderr
            assert pw not in r.stderr and pw not in r.stdout, r.stderr
            assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1


def test_the_pool_never_has_fewer_connections_than_table_creation_holds() -> None:
    # PostgresRecorder.create_table holds one pooled connection (the advisory
    # lock) while the library's create_table takes another: a pool of one with
    # no overflow waited its 5 s timeout and failed. The pool is pinned.
    env = Database.from_url("postgresql://u@h/db").eventsourcing_env()
    assert int(env["POSTGRES_POOL_SIZE"]) + int(env["POSTGRES_MAX_OVERFLOW"]) >= 2
    factory = LedgerPostgresFactory(env)
    try:
        assert factory.datastore.pool.max_size >= 2 and factory.datastore.enable_db_functions is False
    finally:
        factory.close()


@pytest.mark.parametrize("value", ["99999999999999999999", "86401", "-1", "1e9", "٣", "x" * 1000])
def test_lock_timeout_out_of_range_is_bad_usage(tmp_path: Path, value: str) -> None:
    r = cli(f"sqlite:///{tmp_path / 'l.db'}", "partner", "enroll", "--partner", "acme", "--name", "A",
            "--domain", "acme.fi", "--commission-rate", "0.2", env={"LEDGER_LOCK_TIMEOUT": value})
    assert r.returncode == 2 and "LEDGER_LOCK_TIMEOUT" in r.stderr and len(r.stderr) <= 500, r.stderr
