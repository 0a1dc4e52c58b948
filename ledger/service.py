"""The ledger as its users see it: submit commands, ask queries. It wires the
write side (LedgerApp) to the read side (projection Runner) and applies the
reader's authority to every query. The CLI is a thin layer over this."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any
from uuid import uuid4

from . import authority, chain
from .aggregates import Deal, NotFound, Refused, aggregate_id
from .application import LedgerApp, Result
from .clock import Clock
from .commands.models import Command, Malformed, build, parse_line
from .db import Database
from .errors import BadInput
from .projections import Runner, all_projections, attention, overview, pipeline, statements
from .projections.base import Known, Reader
from .settings import Time
from .timeline import business_date

class Ledger:
    def __init__(self, url: str | None = None, actor: str = "vendor:manager", clock: Clock | None = None,
                 create: bool = True) -> None:
        """`create=False` for queries: a missing ledger is an error (Unavailable,
        exit 3), never a new empty one; a SQLite file that cannot be written
        is opened read-only."""
        Time.from_env()  # a bad LEDGER_TIMEZONE (or other time setting) says so at once
        self.actor = authority.Actor.parse(actor)
        self.db = Database.from_url(url)
        if not create:
            self.db = self.db.for_query()
        self.sql = self.db.connect(create)  # first: a failed connection says why, at once
        self.app = LedgerApp(self.db, self.sql, clock)
        self.runner = Runner(self.app, self.sql, all_projections())
        chain.adopt_legacy(self.app, self.sql)
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
        self.runner.require_zone()  # before anything is written
        direct: list[bool] = []
        results = self.app.execute(items, self.actor, progress,
                                   saved=lambda recorded: direct.append(self.runner.apply_recorded(recorded)))
        if not all(direct):
            self.runner.catch_up()
        return results

    def command(self, command: dict[str, Any] | Command) -> Result:
        """One command (an envelope from CLI options, or one already built);
        raises Malformed, or the Refused that refused it (authority.Forbidden
        when beyond the actor's authority; a Refused when it conflicts with
        another command under its id)."""
        if not isinstance(command, Command):
            command = build(command, options=True)
        result = self.submit([(1, command)])[0]
        if result.refusal is not None:
            raise result.refusal
        return result

    def sweep(self, on: date, command_id: str | None = None) -> Result:
        """Record protections that lapsed and trials that expired by `on`."""
        sql = self.reader()
        day = on.isoformat()
        deals = pipeline.lapse_candidates(sql, on)
        trials = overview.expiry_candidates(sql, on)
        return self.command({
            "id": command_id or f"sweep-{uuid4().hex}", "type": "sweep", "on": day,
            "data": {"deals": deals, "trials": trials},
        })

    def rebuild(self, names: Sequence[str] | None = None, progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Rebuild the named projections (default all) in one pass over the
        log; returns their names. Raises Refused for an actor other than
        system or finance (authority.may_rebuild) and for the audit chain,
        which is evidence and never rebuilt; errors.Unknown for an unknown name."""
        authority.may_rebuild(self.actor)
        names = list(names) if names else [p.name for p in self.runner.projections]
        for name in names:
            if name == chain.LEGACY_PROJECTION:
                raise Refused("the audit chain is evidence, not a read model: it is never rebuilt "
                              "(`ledger audit verify` checks it against the events)")
            self.runner.get(name)
        self.runner.rebuild_many(names, progress)
        if set(names) >= {p.name for p in self.runner.projections}:
            self.runner.record_zone()  # every read model now has the dates of the zone in force
        return names

    # -- reading --------------------------------------------------------------
    def reader(self, known_at: datetime | None = None) -> Reader:
        """The read models to answer from, caught up: their current rows, or
        with `known_at` the row versions that held at that recorded time
        (base.Known): a filter on the same tables, never a replay. A catch-up
        that has to rebuild a read model (its projection's version changed)
        reports to `replay_progress`."""
        if known_at is None:
            self.runner.catch_up()
            return Reader(self.sql)
        self.runner.catch_up(self.replay_progress)
        return Reader(self.sql, Known.at(known_at))

    def overview(self, partner: str | None, filter: str | None, as_of: date,
                 known_at: datetime | None = None) -> list[overview.CustomerRow]:
        partner, sql = self._scoped(partner, known_at)
        usage = overview.Usage(sql, as_of)  # shared by the rows and their attention counts
        rows = overview.customers(sql, as_of, partner, usage)
        flags = attention.items(sql, as_of, partner, usage=usage, customers=rows)
        count: dict[str, int] = {}
        for f in flags:
            count[f["domain"]] = count.get(f["domain"], 0) + 1
        out = []
        for r in rows:
            row: overview.CustomerRow = {
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

    def attention(self, partner: str | None, as_of: date, known_at: datetime | None = None) -> list[attention.Item]:
        partner, sql = self._scoped(partner, known_at)
        return attention.items(sql, as_of, partner)

    def deals(self, partner: str | None, stage: str | None, review: str | None, as_of: date,
              known_at: datetime | None = None) -> list[pipeline.DealRow]:
        partner, sql = self._scoped(partner, known_at)
        return pipeline.deals(sql, as_of, partner, stage, review)

    def subscriptions(self, partner: str | None, status: str | None, as_of: date,
                      known_at: datetime | None = None) -> list[overview.SubscriptionRow]:
        """Subscriptions as of a day (see overview.subscriptions); a partner sees its own."""
        partner, sql = self._scoped(partner, known_at)
        return overview.subscriptions(sql, as_of, partner, status)

    def trials(self, partner: str | None, as_of: date, known_at: datetime | None = None) -> list[dict[str, Any]]:
        """Trials as of a day (see overview.trials); a partner sees its own."""
        partner, sql = self._scoped(partner, known_at)
        return overview.trials(sql, as_of, partner)

    def partners(self, as_of: date, known_at: datetime | None = None) -> list[dict[str, Any]]:
        """Partners with the commission rate in force on `as_of` (see
        statements.partner_rates); a partner sees only itself."""
        partner, sql = self._scoped(None, known_at)
        return statements.partner_rates(sql, as_of, partner)

    def deal_card(self, deal: str, as_of: date, known_at: datetime | None = None) -> dict[str, Any]:
        """The deal card as of a day (and, with `known_at`, as the ledger knew
        it at that recorded time): the pipeline's row (stage, review,
        protection), the contact from the registration, the notes (day, actor,
        text) and the deal's history (its events in order, as `audit explain`
        shows them). Raises Refused for an unknown deal or another partner's."""
        from .audit import render

        notifications = [n for n in self.app.notifications_of([aggregate_id(Deal.KIND, deal)])]
        events = [(self.app.mapper.to_domain_event(n), n) for n in notifications]
        events = [(e, n) for e, n in events
                  if business_date(e.at) <= as_of and (known_at is None or e.timestamp <= known_at)]
        if not events:
            raise NotFound(f"no deal {deal}")
        registered = events[0][0]
        if self.actor.partner is not None and self.actor.partner != registered.partner:
            raise NotFound(f"no deal {deal}")  # another partner's deal is not shown, nor said to exist
        (row,) = pipeline.deal_rows(self.reader(known_at), as_of.isoformat(), "t.deal = ?", (deal,))
        notes, order_number = [], None
        for e, _ in events:
            text = getattr(e, "text", None) or getattr(e, "note", None)
            if text:
                notes.append({"day": business_date(e.at).isoformat(), "actor": e.actor, "text": text})
            if isinstance(e, Deal.ClosedWon):
                order_number = e.order_number
        return {
            "deal": deal, "partner": registered.partner, "customer": registered.customer_name,
            "contact_name": registered.contact_name, "customer_email": registered.customer_email,
            "customer_domain": row["customer_domain"], "stage": row["stage"], "review": row["review"],
            "deny_reason": row["deny_reason"], "protected_until": row["protected_until"],
            "billing": row["billing"], "order_number": order_number if row["billing"] else None,
            "notes": notes, "history": [render(e, n) for e, n in events],
        }

    def statement(self, partner: str | None, month: str, known_at: datetime | None = None,
                  as_of: date | None = None) -> statements.Statement:
        """A partner's statement (see statements.statement), each line with the
        customer's name, and the deal's order number where the subscription
        has none. Raises Refused for an unknown partner or another partner's,
        BadInput when the actor is no partner and names none."""
        # Statement rows carry their recorded time: known-at is a filter, not a replay.
        partner, sql = self._scoped(partner)
        if partner is None:
            raise BadInput("a statement is per partner: give --partner")
        st = statements.statement(sql, partner, month, statements.Cut(recorded=known_at), as_of)
        _describe_lines(sql, st["lines"])
        return st

    def _scoped(self, partner: str | None, known_at: datetime | None = None) -> tuple[str | None, Reader]:
        """What every query starts with: the partner the actor may read
        (authority.reader_scope; a partner reads only its own), the tables to
        answer from (`reader`), and a refusal of a partner never enrolled (an
        empty answer would look like a partner with nothing to show)."""
        partner = authority.reader_scope(self.actor, partner)
        sql = self.reader(known_at)
        if partner is not None and not statements.enrolled(sql, partner):
            raise NotFound(f"no partner {partner}")
        return partner, sql


def _describe_lines(sql: Reader, lines: list[statements.Line]) -> None:
    """Add `customer` (the deal's customer name, else the customer's record)
    to statement lines, and the won deal's order number where the line has none."""
    by_deal = pipeline.names_and_orders(sql, sorted({line["deal"] for line in lines if line["deal"]}))
    names = overview.customer_names(sql, sorted({line["customer_domain"] for line in lines}))
    for line in lines:
        name, order = by_deal.get(line["deal"] or "", (None, None))
        line["customer"] = name or names.get(line["customer_domain"]) or line["customer_domain"]
        line["order_number"] = line["order_number"] or order

