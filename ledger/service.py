"""The ledger as its users see it: submit commands, ask queries. It wires the
write side (LedgerApp) to the read side (projection Runner) and applies the
reader's authority to every query. The CLI is a thin layer over this."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any
from uuid import uuid4

from . import authority
from .aggregates import Refused
from .aggregates.deal import PROTECTION_DAYS
from .application import LedgerApp, Result
from .clock import Clock
from .commands.models import Command, Malformed, build, parse_line
from .days import shift
from .db import Database, Sql
from .projections import Runner, all_projections, attention, overview, pipeline, statements

class Ledger:
    def __init__(self, url: str | None = None, actor: str = "vendor:manager", clock: Clock | None = None,
                 create: bool = True) -> None:
        """`create=False` for queries: a missing ledger is an error (Unavailable,
        exit 3), never a new empty one; a SQLite file that cannot be written
        is opened read-only."""
        self.actor = authority.Actor.parse(actor)
        self.db = Database.from_url(url)
        if not create:
            self.db = self.db.for_query()
        self.sql = self.db.connect(create)  # first: a failed connection says why, at once
        self.app = LedgerApp(self.db, self.sql, clock)
        self.runner = Runner(self.app, self.sql, all_projections())
        self.replay_progress: Callable[[int, int], None] | None = None

    def close(self) -> None:
        self.sql.close()
        self.app.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- writing --------------------------------------------------------------
    def submit_lines(
        self, lines: Iterable[bytes | str], progress: Callable[[int], None] | None = None, first: int = 1
    ) -> list[Result]:
        """Parse and apply lines; `first` is the first line's number in its file."""
        items: list[tuple[int, Command | Malformed]] = []
        for number, raw in enumerate(lines, first):
            if not raw.strip():
                continue  # blank lines are allowed between commands
            try:
                items.append((number, parse_line(raw)))
            except Malformed as e:
                # Keep the message only: its traceback and context hold the raw line.
                e.__traceback__ = e.__context__ = e.__cause__ = None
                items.append((number, e))
        return self.submit(items, progress)

    def submit(
        self, items: Sequence[tuple[int, Command | Malformed]], progress: Callable[[int], None] | None = None
    ) -> list[Result]:
        # Each batch's events go straight to the read models; when another
        # writer's events came between, catch_up reads the log instead.
        direct: list[bool] = []
        results = self.app.execute(items, self.actor, progress,
                                   saved=lambda recorded: direct.append(self.runner.apply_recorded(recorded)))
        if not all(direct):
            self.runner.catch_up()
        return results

    def command(self, envelope: dict[str, Any]) -> Result:
        """One command from CLI options; raises Malformed or Refused."""
        result = self.submit([(1, build(envelope))])[0]
        if result.status == "refused":
            raise Refused(result.message)
        return result

    def sweep(self, on: date, command_id: str | None = None) -> Result:
        """Record protections that lapsed and trials that expired by `on`."""
        sql = self.reader()
        day = on.isoformat()
        lapse_by = shift(on, -PROTECTION_DAYS).isoformat()
        deals = [r[0] for r in sql.all(
            "SELECT deal FROM pl_deals WHERE review <> 'denied' AND lapsed_on IS NULL "
            "AND stage IN ('new', 'newsletter-subscription', 'trial') AND last_action <= ?", [lapse_by])]
        trials = [r[0] for r in sql.all(
            "SELECT trial FROM ov_trials WHERE converted_on IS NULL AND expired_on IS NULL AND ends_on <= ?", [day])]
        return self.command({
            "id": command_id or f"sweep-{uuid4().hex}", "type": "sweep", "on": day,
            "data": {"deals": deals, "trials": trials},
        })

    # -- reading --------------------------------------------------------------
    def reader(self, known_at: datetime | None = None) -> Sql:
        """The tables to answer from: the live read models, caught up; or, with
        `known_at`, a scratch replay of only the events recorded by then
        (reported to `replay_progress`, a long replay being long)."""
        if known_at is None:
            self.runner.catch_up()
            return self.sql
        scratch = Database("sqlite:///:memory:", "sqlite", path=":memory:").connect()
        Runner(self.app, scratch, all_projections(chain=False), known_at=known_at).catch_up(self.replay_progress)
        return scratch

    def overview(self, partner: str | None, filter: str | None, as_of: date, known_at: datetime | None = None) -> list[dict[str, Any]]:
        partner = authority.reader_scope(self.actor, partner)
        sql = self.reader(known_at)
        usage = overview.Usage(sql, as_of)  # shared by the rows and their attention counts
        rows = overview.customers(sql, as_of, partner, usage)
        flags = attention.items(sql, as_of, partner, usage=usage, customers=rows)
        count: dict[str, int] = {}
        for f in flags:
            count[f["domain"]] = count.get(f["domain"], 0) + 1
        out = []
        for r in rows:
            row = {
                "customer": r["customer"], "domain": r["domain"], "partner": r["partner"], "status": r["status"],
                "framework": r["framework"], "progress": r["progress"], "users": r["users"],
                "activities_90d": r["activities_90d"], "attention": count.get(r["domain"], 0),
            }
            if filter == "attention" and not row["attention"]:
                continue
            if filter in ("trial", "active", "closed") and row["status"] != filter:
                continue
            out.append(row)
        return out

    def attention(self, partner: str | None, as_of: date, known_at: datetime | None = None) -> list[dict[str, Any]]:
        partner = authority.reader_scope(self.actor, partner)
        return attention.items(self.reader(known_at), as_of, partner)

    def deals(self, partner: str | None, stage: str | None, review: str | None, as_of: date,
              known_at: datetime | None = None) -> list[dict[str, Any]]:
        partner = authority.reader_scope(self.actor, partner)
        return pipeline.deals(self.reader(known_at), as_of, partner, stage, review)

    def statement(self, partner: str, month: str, known_at: datetime | None = None,
                  as_of: date | None = None) -> dict[str, Any]:
        partner = authority.reader_scope(self.actor, partner)
        if partner is None:
            raise Refused("a statement is per partner: give --partner")
        # Statement rows carry their recorded time: known-at is a filter, not a replay.
        return statements.statement(self.reader(), partner, month, statements.Cut(recorded=known_at), as_of)

