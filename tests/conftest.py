"""Every application test runs on each backend: the embedded SQLite file and
the real PostgreSQL server (a throwaway database per run, a fresh schema per
test). With LEDGER_REQUIRE_POSTGRES=1 a missing server fails the run."""

from __future__ import annotations

import itertools
from collections import Counter
import json
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from ledger.clock import ManualClock
from ledger.service import Ledger

FIGURES: Counter = Counter()  # reliability figures, printed after the run and quoted in the README
ADMIN_URL = os.environ.get("LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("LEDGER_REQUIRE_POSTGRES") == "1"
START = datetime(2027, 6, 1, 9, 0, tzinfo=timezone.utc)  # after every effective date the tests use


def _admin_connect() -> Any:
    import psycopg

    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """A throwaway PostgreSQL database for this run, dropped afterwards."""
    try:
        admin = _admin_connect()
    except Exception as e:  # noqa: BLE001
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (LEDGER_REQUIRE_POSTGRES=1) but unreachable: {e}")
        yield None
        return
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.close()

        def drop() -> None:
            with _admin_connect() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        _retrying(drop)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any, pg_database: str | None) -> Iterator[str]:
    """A fresh, empty ledger database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable (set LEDGER_REQUIRE_POSTGRES=1 to make this a failure)")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{pg_database}?schema={schema}"
    _retrying(lambda: _drop_schema(pg_database, schema))


def _drop_schema(database: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _retrying(action: Any, attempts: int = 20) -> None:
    """Clean-up survives the reliability test's PostgreSQL restart."""
    import time

    import psycopg

    for attempt in range(attempts):
        try:
            action()
            return
        except psycopg.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


_ids = itertools.count(1)


def cmd(type_: str, on: str | None = None, actor: str | None = None, id: str | None = None, **data: Any) -> dict[str, Any]:
    """A command line as a dict, with a fresh id unless one is given."""
    line: dict[str, Any] = {"id": id or f"t-{next(_ids)}", "type": type_, "data": data}
    if on:
        line["on"] = on
    if actor:
        line["actor"] = actor
    return line


class Harness:
    """Drives a Ledger through command lines, as `ledger submit` does."""

    def __init__(self, url: str, actor: str = "system") -> None:
        self.url = url
        self.clock = ManualClock(START)
        self.ledger = Ledger(url, actor, clock=self.clock)

    def submit(self, *lines: dict[str, Any]) -> list[Any]:
        self.clock.advance(seconds=1)
        return self.ledger.submit_lines([json.dumps(line) for line in lines])

    def ok(self, *lines: dict[str, Any]) -> list[Any]:
        results = self.submit(*lines)
        bad = [r.as_dict() for r in results if r.status != "applied"]
        assert not bad, bad
        return results

    def refused(self, line: dict[str, Any]) -> str:
        """Submit one line that must be refused and must write nothing."""
        before = self.ledger.app.head()
        (result,) = self.submit(line)
        assert result.status in ("refused", "malformed"), result.as_dict()
        assert self.ledger.app.head() == before, "a refused command wrote events"
        return result.message

    def head(self) -> int:
        return self.ledger.app.head()

    def close(self) -> None:
        self.ledger.close()


@pytest.fixture
def h(db_url: str) -> Iterator[Harness]:
    harness = Harness(db_url)
    yield harness
    harness.close()


def program(h: Harness) -> None:
    """Two partners, as most scenarios need them."""
    h.ok(
        cmd("enroll_partner", on="2026-01-01", partner="acme", name="Acme Advisory", domain="acme.fi",
            commission_rate="0.20"),
        cmd("enroll_partner", on="2026-01-01", partner="beta", name="Beta Consulting", domain="beta.de,beta.com",
            commission_rate="0.15"),
    )


def deal(id_: str, partner: str = "acme", email: str = "jane@example.fi", on: str = "2026-01-10",
         name: str = "Example Oy", **extra: Any) -> dict[str, Any]:
    return cmd("register_deal", on=on, actor=f"partner:{partner}", deal=id_, partner=partner,
               customer_name=name, contact_name="Jane Doe", customer_email=email, **extra)


def accept(id_: str, on: str | None = None) -> dict[str, Any]:
    """The vendor accepts a deal (a deal is won only once accepted)."""
    return cmd("accept_deal", on=on, actor="vendor:manager", deal=id_)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.write_line(
            "reliability: " + ", ".join(f"{k} {v}" for k, v in sorted(FIGURES.items())) + ", events lost 0")


@pytest.fixture
def fresh(db_url: str, tmp_path: Any) -> Iterator[Any]:
    """Make a new, empty ledger on the same backend (one per hypothesis example)."""
    made: list[Harness] = []
    schemas: list[str] = []
    base = db_url.split("?", 1)[0]

    def make() -> Harness:
        if db_url.startswith("sqlite"):
            url = f"sqlite:///{tmp_path / f'example-{len(made)}.db'}"
        else:
            import psycopg

            schema = f"hx_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            schemas.append(schema)
            url = f"{base}?schema={schema}"
        harness = Harness(url)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        try:
            harness.close()
        except Exception:  # noqa: BLE001 - closed already by the example
            pass
    if schemas:
        import psycopg

        with psycopg.connect(base, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
