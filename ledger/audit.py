"""Finance's audit tools: issue (freeze) statements and verify them by replay,
seal and verify the hash chain, explain a figure by the events behind it, and
export / import the event log."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import Notification

from . import authority
from .aggregates import Customer, Deal, IssuedStatement, Partner, Refused, Subscription, Trial, UsageDay, aggregate_id
from .commands.models import Command, IssueStatement
from .db import Database
from .errors import BadInput
from .identity import host_name, registrable_domain
from .projections import Runner, Statements, attention, overview, pipeline, statements
from .chain import GENESIS, LINKS, link, select_head
from .projections.overview import ACTIVITY_WINDOW_DAYS
from .service import Ledger
from .settings import Attention
from .timeline import shift

Progress = Callable[[int, int], None]
READ_BATCH = 5000


class Audit:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.app = ledger.app
        authority.may_audit(ledger.actor)

    # -- statements -------------------------------------------------------------
    def issue_statement(self, partner: str, month: str, command_id: str | None = None) -> dict[str, Any]:
        """Freeze a statement: compute it at the current position and record
        its totals, position and SHA-256 fingerprint."""
        if self.app.get(Partner, partner) is None:
            raise Refused(f"no partner {partner!r}")
        sql = self.ledger.reader()
        position = self.ledger.runner.position("statements")
        st = statements.statement(sql, partner, month, statements.Cut(position=position))
        data = IssueStatement(partner=partner, month=month, position=position, fingerprint=st["fingerprint"],
                              totals=json.loads(json.dumps(st["totals"], default=str)), lines=len(st["lines"]))
        cmd = Command(id=command_id or f"issue-{uuid4().hex}", type="issue_statement", on=None, actor=None, data=data)
        result = self.ledger.command(cmd)
        return {"statement": f"{partner}/{month}", "position": position, "fingerprint": st["fingerprint"],
                "lines": len(st["lines"]), "totals": st["totals"], "status": result.status}

    def verify_statement(self, statement_id: str, progress: Progress | None = None) -> dict[str, Any]:
        """Replay the events up to the issued position into a scratch database
        and recompute the fingerprint."""
        partner, _, month = statement_id.partition("/")
        issued = self.app.get(IssuedStatement, IssuedStatement.key(partner, month))
        if issued is None:
            raise Refused(f"statement {statement_id} was never issued (use partner/YYYY-MM)")
        scratch = Database("sqlite:///:memory:", "sqlite", path=":memory:").connect()
        Runner(self.app, scratch, [Statements()], upto=issued.position).catch_up(progress)
        replayed = statements.statement(scratch, partner, month, statements.Cut(position=issued.position))
        ok = replayed["fingerprint"] == issued.fingerprint
        return {"statement": statement_id, "position": issued.position, "ok": ok,
                "recorded_fingerprint": issued.fingerprint, "replayed_fingerprint": replayed["fingerprint"],
                "lines": len(replayed["lines"])}

    # -- hash chain ----------------------------------------------------------------
    def seal(self) -> dict[str, Any]:
        """The chain's head as a digest to keep somewhere else:
        {"digest": "ledger-seal:<position>:<sha256 hex>", "position", "head"}."""
        row = self.ledger.sql.one(select_head())
        position, head = (int(row[0]), row[1]) if row else (0, GENESIS)
        return {"digest": f"ledger-seal:{position}:{head}", "position": position, "head": head}

    def verify(self, digest: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
        """Recompute the chain from the stored events and compare it with the
        recorded links (and with `digest`, from `seal`, which may be kept
        elsewhere). Returns {"ok": True, "checked", "head", "position"} or
        {"ok": False, "first_bad_position", "problem", "checked"}. Every event
        the ledger wrote was linked in its own transaction, so an event without
        a link was written outside the ledger. Raises BadInput for a digest
        not of seal's form."""
        expected: tuple[int, str] | None = None
        if digest:
            m = re.fullmatch(r"ledger-seal:(\d{1,18}):([0-9a-f]{64})", digest.strip())
            if not m:
                raise BadInput(f"not a ledger digest: {digest!r} (ledger-seal:<position>:<sha256>)")
            expected = (int(m[1]), m[2])
        head = self.app.head()
        previous, checked, matched = GENESIS, 0, False
        chain = self._chain_rows()
        pending = next(chain, None)

        def bad(position: int, problem: str) -> dict[str, Any]:
            return {"ok": False, "first_bad_position": position, "problem": problem, "checked": checked}

        for n in self._notifications(head, progress):
            if pending is None or n.id < pending[0]:
                return bad(n.id, "an event not covered by the chain (written outside the ledger: "
                                 "the ledger links every event it writes in the same transaction)")
            if n.id > pending[0]:
                return bad(pending[0], "an event the chain covers is missing (deleted or moved)")
            previous = link(previous, n.id, n.originator_id, n.originator_version, n.topic, n.state)
            if previous != pending[1]:
                return bad(n.id, "the event differs from what the chain recorded (altered or re-ordered)")
            checked += 1
            if expected and n.id == expected[0]:
                if previous != expected[1]:
                    return bad(n.id, "the chain does not match the digest (history rewritten)")
                matched = True
            pending = next(chain, None)
        if pending is not None and self.app.head() < pending[0]:  # not a write committed since `head` was read
            return bad(pending[0], "the log ends before the chain does (events deleted or truncated)")
        if expected and expected[0] == 0 and expected[1] != GENESIS:
            return bad(0, "the chain does not match the digest (history rewritten)")
        if expected and expected[0] > 0 and not matched:
            if expected[0] > head:
                return bad(head, f"the log ends before the digest's position {expected[0]} "
                                 "(truncated or emptied, or another database)")
            return bad(expected[0], "the digest's position is not in the log (deleted)")
        return {"ok": True, "checked": checked, "head": previous, "position": head}

    def _chain_rows(self) -> Iterator[tuple[int, str]]:
        after = 0
        while True:
            rows = self.ledger.sql.all(
                f"SELECT position, link FROM {LINKS} WHERE position > ? ORDER BY position LIMIT ?", [after, READ_BATCH])
            if not rows:
                return
            for position, value in rows:
                yield int(position), value
            after = int(rows[-1][0])

    def _notifications(self, stop: int, progress: Progress | None = None, start: int = 0) -> Iterator[Notification]:
        after = start
        while after < stop:
            batch = self.app.recorder.select_notifications(after, READ_BATCH, stop=stop, inclusive_of_start=False)
            if not batch:
                return
            yield from batch
            after = batch[-1].id
            if progress:
                progress(after, stop)

    # -- explain -------------------------------------------------------------------
    def explain_customer(self, domain: str, as_of: date) -> list[dict[str, Any]]:
        """The events behind an overview row: the customer, its trials,
        subscriptions and deals, and its usage in the activity window.
        `domain` is any host or email of the customer (`www.Example.FI` is
        `example.fi`, by ledger.identity)."""
        sql = self.ledger.reader()
        domain = self._customer_key(domain)
        aggs = [aggregate_id(Customer.KIND, domain)]
        aggs += [UUID(a) for a in overview.aggregates_of_customer(sql, domain)]
        aggs += [UUID(a) for a in pipeline.aggregates_of_customer(sql, domain)]
        since = shift(as_of, -ACTIVITY_WINDOW_DAYS).isoformat()
        days = overview.usage_days(sql, domain, as_of)
        for day in [d for d in days if d > since] + days[-1:]:
            aggs.append(aggregate_id(UsageDay.KIND, f"{domain}/{day}"))
        return self._render(self.app.notifications_of(dict.fromkeys(aggs)))

    def _customer_key(self, text: str) -> str:
        """The customer a given domain names: its registrable domain, unless
        the ledger knows a customer by the exact host (recorded under an
        earlier identity rule, which events keep)."""
        try:
            host = host_name(text.rpartition("@")[2])
            domain = registrable_domain(host)
        except ValueError:
            return text
        if host != domain and self.app.get(Customer, host) is not None:
            return host
        return domain

    def explain_item(self, code: str, subject: str, as_of: date) -> list[dict[str, Any]]:
        """The events behind an attention item (a deal, trial, subscription or customer)."""
        subject_kind = attention.SUBJECTS.get(code)
        if subject_kind is None:
            raise BadInput(f"unknown attention code {code!r}")
        if subject_kind == "customer":
            return self.explain_customer(subject, as_of)
        kind = {"trial": Trial, "deal": Deal, "subscription": Subscription}[subject_kind]
        notes = self.app.notifications_of([aggregate_id(kind.KIND, subject)])
        if not notes:
            raise Refused(f"no {kind.KIND} {subject!r}")
        if kind is Trial:  # inactivity is about the customer's usage in the trial's last N days (the setting)
            domain = self.app.get(Trial, subject).domain
            window = Attention.from_env().trial_inactive_days
            notes = self.app.notifications_of(
                [aggregate_id(Trial.KIND, subject)]
                + [aggregate_id(UsageDay.KIND, f"{domain}/{shift(as_of, -d)}") for d in range(0, window + 1)])
        return self._render(notes)

    def explain_line(self, position: int) -> list[dict[str, Any]]:
        """The events behind a statement line: the charge or refund, the
        subscription's terms, and the partner's rate events."""
        row = statements.line_at(self.ledger.reader(), position)
        if row is None:
            raise Refused(f"no statement line at position {position}")
        partner, subscription = row
        notes = self.app.notifications_of([aggregate_id(Subscription.KIND, subscription),
                                           aggregate_id(Partner.KIND, partner)])
        keep = [n for n in notes if n.id == position or n.originator_version == 1
                or n.topic.endswith(("Partner.RateSet", "Partner.Enrolled"))]
        return self._render(keep)

    def _render(self, notifications: Iterable[Notification]) -> list[dict[str, Any]]:
        return [render(self.app.mapper.to_domain_event(n), n) for n in notifications]

    # -- export / import ---------------------------------------------------------
    def export(self, start: int = 1, stop: int | None = None, progress: Progress | None = None) -> Iterator[dict[str, Any]]:
        for n in self._notifications(stop or self.app.head(), progress, start=start - 1):
            row: dict[str, Any] = {"position": n.id, "originator_id": n.originator_id.hex,
                                   "originator_version": n.originator_version, "topic": n.topic}
            try:
                row["state"] = n.state.decode("utf-8")
            except UnicodeDecodeError:
                row["state_b64"] = base64.b64encode(n.state).decode()
            yield row

    def import_(self, lines: Iterable[bytes | str], progress: Callable[[int], None] | None = None) -> int:
        """Restore an export into an empty ledger (or after its head), keeping positions."""
        head = self.app.head()
        batch: list[Notification] = []
        count = 0
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                r = json.loads(raw)
                state = r["state"].encode("utf-8") if "state" in r else base64.b64decode(r["state_b64"])
                n = Notification(id=int(r["position"]), originator_id=UUID(r["originator_id"]),
                                 originator_version=int(r["originator_version"]), topic=str(r["topic"]), state=state)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise BadInput(f"line {number}: not an exported event ({e})") from None
            if n.id <= head:
                raise Refused(f"line {number}: position {n.id} is not after the ledger's head ({head}); "
                              "import into an empty database")
            head = n.id
            batch.append(n)
            if len(batch) >= READ_BATCH:
                self.app.insert_raw(batch)
                count += len(batch)
                if progress:
                    progress(len(batch))
                batch = []
        if batch:
            self.app.insert_raw(batch)
            count += len(batch)
            if progress:
                progress(len(batch))
        return count


def render(event: Any, n: Notification) -> dict[str, Any]:
    data = {k: v for k, v in vars(event).items()
            if k not in ("originator_id", "originator_version", "timestamp", "actor", "command_id", "at",
                         "originator_topic")}
    return {"position": n.id, "recorded": event.timestamp, "effective": event.at, "actor": event.actor,
            "command_id": event.command_id, "type": type(event).__qualname__, "data": data}
