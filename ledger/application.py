"""The write side: validated commands → authority → handler on a unit of work
→ one atomic write per batch (events and command outcomes), handed to the
read models as soon as it is written.

Bulk submission batches many commands into one atomic write, because one
transaction per event is slow; a batch that loses an optimistic-concurrency
race is re-read and re-applied from scratch."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import (
    IntegrityError, JSONTranscoder, Notification, PersistenceError, Recording, Transcoding,
)
from eventsourcing.utils import Environment, EnvType

from . import authority
from .aggregates import CommandRecord, Customer, Refused, UsageDay, aggregate_id
from .aggregates.base import Context, LedgerAggregate
from .clock import Clock
from .commands import identity
from .commands.models import Command, Malformed, one_line
from .commands.order import InOrder, customers_of
from .commands.registry import COMMAND_TYPES
from .db import Database, Sql, Unavailable, redact
from .identity import guess_customer_domain
from .persistence import LEGACY_OUTCOMES, OUTCOMES, Outcome
from .timeline import business_date, check_effective_date

A = TypeVar("A", bound=LedgerAggregate)

BATCH_SIZE = 500
CACHE_SIZE = 50_000
RACE_RETRIES = 8


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


@dataclass
class Result:
    line: int
    id: str | None
    type: str | None
    status: str  # applied | duplicate | conflict | refused | malformed
    message: str | None = None
    # Why a refused or conflicting command says no: the Refused its handler or
    # authority raised, kept as raised (Ledger.command raises it again); for an
    # outcome recorded earlier or a conflict, one made from the message.
    refusal: Refused | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Reasons echo input: keep every report line one bounded line.
        if self.message is not None:
            self.message = one_line(self.message)
        if self.refusal is None and self.status in ("refused", "conflict"):
            self.refusal = Refused(self.message)

    @property
    def forbidden(self) -> bool:
        """Refused by an authority check (HTTP 403), not by a business rule."""
        return isinstance(self.refusal, authority.Forbidden)

    def as_dict(self) -> dict[str, Any]:
        out = {"line": self.line, "id": self.id, "type": self.type, "status": self.status}
        if self.status in ("refused", "conflict", "malformed"):
            out["reason"] = self.message
        elif self.message:
            out["note"] = self.message
        return out


class Batch:
    """The unit of work: aggregates loaded once per batch, new ones added, and
    a mark/rollback so a refused command leaves no pending events behind even
    when it refused after triggering some."""

    def __init__(self, app: LedgerApp) -> None:
        self.app = app
        self.loaded: dict[UUID, LedgerAggregate | None] = {}
        self._mark: dict[UUID, int] = {}  # pending-event counts as the command found them

    def get(self, cls: type[A], key: str) -> A | None:
        agg_id = aggregate_id(cls.KIND, key)
        if agg_id not in self.loaded:
            self.loaded[agg_id] = self.app.load(agg_id)
        agg = self.loaded[agg_id]
        self._touch(agg_id, agg)
        return agg  # type: ignore[return-value]

    def add(self, aggregate: LedgerAggregate) -> None:
        self._touch(aggregate.id, None)
        self.loaded[aggregate.id] = aggregate

    def _touch(self, agg_id: UUID, agg: LedgerAggregate | None) -> None:
        if agg_id not in self._mark:
            self._mark[agg_id] = len(agg.pending_events) if agg is not None else 0

    def begin_command(self) -> None:
        self._mark = {}

    def rollback_command(self) -> None:
        """Undo what the current command triggered: rebuild each aggregate it
        touched from the store plus the events earlier commands left pending."""
        for agg_id, count in self._mark.items():
            agg = self.loaded.get(agg_id)
            if agg is None or len(agg.pending_events) == count:
                continue
            restored = self.app.load(agg_id, fresh=True)
            for event in agg.pending_events[:count]:
                restored = event.mutate(restored)
                restored.pending_events.append(event)
            self.loaded[agg_id] = restored
            if restored is None:
                self.app.forget(agg_id)
            else:
                self.app.remember(restored)
        self._mark = {}

    def pending(self) -> list[LedgerAggregate]:
        return [a for a in self.loaded.values() if a is not None and a.pending_events]


def likely_aggregates(cmd: Command) -> list[UUID]:
    """The aggregates a command will most likely load, guessed from its
    fields, so a batch loads them with one query (a wrong guess costs only a
    query of its own later)."""
    data = vars(cmd.data)  # the model's fields (getattr of an absent field raises inside pydantic: slow)
    keys = COMMAND_TYPES[cmd.type].keys  # the fields that name an aggregate
    ids = [aggregate_id(cls.KIND, data[name]) for name, cls in keys.items() if isinstance(data.get(name), str)]
    given = data.get("customer_email") or data.get("customer_domain")
    domain = guess_customer_domain(given) if isinstance(given, str) else None  # the handlers' identity
    if domain:
        ids.append(aggregate_id(Customer.KIND, domain))
        if cmd.type == "report_usage" and cmd.on is not None:
            ids.append(aggregate_id(UsageDay.KIND, UsageDay.key(domain, business_date(cmd.on))))
    return ids


class LedgerApp(Application):
    name = "ledger"

    def __init__(self, db: Database, reads: Sql, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or Clock()
        # Outcomes, aggregates and the head are read on a plain autocommit
        # connection (the read models'): one round trip per query, where the
        # event store's own transaction costs three.
        self.reads = reads
        self.conflicts = 0  # batches re-read and re-applied after losing a race
        self._legacy_outcomes: bool | None = None  # whether an earlier version's outcome table exists
        self._saved: Callable[[Sequence[Recording]], None] | None = None
        # Aggregates as last saved or read by this process. Each use first reads
        # any newer events from the store (another process may have written).
        self._cache: OrderedDict[UUID, Any] = OrderedDict()
        try:
            super().__init__(env=db.eventsourcing_env())
        except Unavailable:
            raise
        except Exception as e:
            raise Unavailable(f"cannot open {db.display}: {redact(str(e)).strip()}") from None

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Only the settings the ledger gives (Database.eventsourcing_env). The
        library would read os.environ first, so LEDGER_SQLITE_DBNAME, CIPHER_KEY
        or POSTGRES_ENABLE_DB_FUNCTIONS could move or change the event store."""
        return Environment(name, dict(env or {}))

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    # -- reading aggregates -------------------------------------------------
    def load(self, agg_id: UUID, fresh: bool = False) -> Any:
        """The aggregate as stored now, or None. Replays only the events the
        cached copy has not seen (`fresh` ignores the cache)."""
        agg = None if fresh else self._cache.get(agg_id)
        for event in self.events.get(agg_id, gt=agg.version if agg is not None else None):
            agg = event.mutate(agg)
        if agg is not None:
            self.remember(agg)
        return agg

    def preload(self, agg_ids: Iterable[UUID]) -> dict[UUID, Any]:
        """Load (or bring up to date) many aggregates with one query."""
        ids = list(dict.fromkeys(agg_ids))
        out: dict[UUID, Any] = {i: self._cache.get(i) for i in ids}
        for n in self.notifications_of(ids, after={i: a.version for i, a in out.items() if a is not None}):
            agg = out[n.originator_id]
            if agg is None or n.originator_version > agg.version:
                out[n.originator_id] = self.mapper.to_domain_event(n).mutate(agg)
        for agg in out.values():
            if agg is not None:
                self.remember(agg)
        return out

    def forget(self, agg_id: UUID) -> None:
        self._cache.pop(agg_id, None)

    def remember(self, agg: Any) -> None:
        self._cache[agg.id] = agg
        self._cache.move_to_end(agg.id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def get(self, cls: type[A], key: str) -> A | None:
        return Batch(self).get(cls, key)

    def outcomes(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str | None, str | None]]:
        """The final outcome of each of these (actor, command id) keys already
        seen, as (status, note or reason, fingerprint): one query per chunk of
        ids (Sql.chunks: one array on PostgreSQL). Outcomes an earlier version recorded by id alone are read as
        ledger/commands/identity.py describes (the applied ones' actors from
        their CommandRecords: one more query, only when there are such)."""
        keys = list(dict.fromkeys(keys))
        ids = list(dict.fromkeys(cid for _, cid in keys))
        rows: list[tuple[Any, ...]] = []
        for chunk in self.reads.chunks(ids):
            where, params = self.reads.in_("id", chunk)
            query = f"SELECT id, actor, fingerprint, status, reason FROM {OUTCOMES} WHERE {where}"
            if self._has_legacy_outcomes():
                query += f" UNION ALL SELECT id, NULL, NULL, status, reason FROM {LEGACY_OUTCOMES} WHERE {where}"
                params = params * 2
            rows += self.reads.all(query, params)
        found: dict[tuple[str, str], tuple[str, str | None, str | None]] = {}
        legacy: dict[str, tuple[str, str | None]] = {}
        for cid, actor, fp, status, reason in rows:
            if actor is None:
                legacy[cid] = (status, reason)
            else:
                found[(actor, cid)] = (status, reason, fp)
        wanted = set(keys)
        out = {k: v for k, v in found.items() if k in wanted}
        if legacy:
            out.update(self._legacy(legacy, [k for k in keys if k not in found and k[1] in legacy]))
        return out

    def _has_legacy_outcomes(self) -> bool:
        if self._legacy_outcomes is None:
            if self.db.kind == "sqlite":
                row = self.reads.one("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                                     [LEGACY_OUTCOMES])
            else:
                row = self.reads.one("SELECT COUNT(*) FROM pg_tables WHERE tablename = ? "
                                     "AND schemaname = current_schema()", [LEGACY_OUTCOMES])
            self._legacy_outcomes = bool(row and row[0])
        return self._legacy_outcomes

    def _legacy(self, rows: dict[str, tuple[str, str | None]], keys: Sequence[tuple[str, str]]
                ) -> dict[tuple[str, str], tuple[str, str | None, str | None]]:
        """Outcomes an earlier version recorded by id alone, for the keys asking
        for them: an applied one is its recorded actor's (fingerprint from its
        CommandRecord); a refused one binds every actor, unless it refused the
        submitter (identity.submitter_refusal)."""
        records = {}
        applied = {cid for _, cid in keys if rows[cid][0] == "applied"}
        for n in self.notifications_of([aggregate_id(CommandRecord.KIND, cid) for cid in sorted(applied)]):
            event = self.mapper.to_domain_event(n)
            if isinstance(event, CommandRecord.Applied):
                records[event.command_id] = event
        out: dict[tuple[str, str], tuple[str, str | None, str | None]] = {}
        for actor, cid in keys:
            status, reason = rows[cid]
            if status == "applied":
                record = records.get(cid)
                if record is None:  # no record to tell whose: the id stays taken, as it was
                    out[(actor, cid)] = (status, reason, None)
                elif record.actor == actor:
                    out[(actor, cid)] = (status, reason,
                                         identity.legacy_fingerprint(record.command_type, record.data))
            elif not identity.submitter_refusal(reason):
                out[(actor, cid)] = (status, reason, None)
        return out

    def applied_keys(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (actor, command id) keys were applied."""
        return {k for k, (status, _, _) in self.outcomes(keys).items() if status == "applied"}

    # -- the event table itself (audit reads and restores it raw) ---------------
    @property
    def events_table(self) -> str:
        store = self.recorder.datastore  # type: ignore[attr-defined]
        table = self.recorder.events_table_name  # type: ignore[attr-defined]
        return table if self.db.kind == "sqlite" else f'"{store.schema}"."{table}"'

    def notifications_of(self, agg_ids: Iterable[UUID], after: dict[UUID, int] | None = None) -> list[Notification]:
        """The stored events of these aggregates, with their positions, in
        order: every one, or only those after the version `after` gives."""
        ids = list(agg_ids)
        if not ids:
            return []
        known = [(after or {}).get(i, 0) for i in ids]
        if self.db.kind == "sqlite":
            rows = self.reads.all(
                f"WITH w(id, v) AS (VALUES {','.join(['(?, ?)'] * len(ids))}) "
                f"SELECT e.rowid, e.originator_id, e.originator_version, e.topic, e.state FROM w "
                f"JOIN {self.events_table} e ON e.originator_id = w.id AND e.originator_version > w.v ORDER BY e.rowid",
                [x for i, v in zip(ids, known) for x in (i.hex, v)],
            )
        else:
            rows = self.reads.all(
                "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state "
                f"FROM unnest(?::uuid[], ?::bigint[]) AS w(id, v) JOIN {self.events_table} e "
                "ON e.originator_id = w.id AND e.originator_version > w.v ORDER BY e.notification_id",
                [ids, known],
            )
        return [Notification(id=r[0], originator_id=r[1] if isinstance(r[1], UUID) else UUID(r[1]),
                             originator_version=r[2], topic=r[3], state=bytes(r[4])) for r in rows]

    def insert_raw(self, rows: Sequence[Notification]) -> None:
        """Restore exported events with their original positions (audit import),
        chained in the same transaction as the ledger's own writes are."""
        store = self.recorder.datastore  # type: ignore[attr-defined]
        chained = [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in rows]
        outcomes = self._outcomes_of_records(rows)
        with store.transaction(commit=True) as c:
            if outcomes:  # an applied command stays applied: re-submitting it is a duplicate
                c.executemany(self.recorder.insert_outcomes_sql + " ON CONFLICT DO NOTHING",  # type: ignore[attr-defined]
                              outcomes)
            if self.db.kind == "sqlite":
                c.executemany(
                    f"INSERT INTO {self.events_table} (rowid, originator_id, originator_version, topic, state) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(n.id, n.originator_id.hex, n.originator_version, n.topic, n.state) for n in rows],
                )
                self.recorder.chain(c, chained)  # type: ignore[attr-defined]
                return
            c.execute(f"LOCK TABLE {self.events_table} IN EXCLUSIVE MODE")  # as the recorder's writes do
            c.executemany(
                f"INSERT INTO {self.events_table} (notification_id, originator_id, originator_version, topic, state) "
                "VALUES (%s, %s, %s, %s, %s)",
                [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in rows],
            )
            c.execute(
                f"SELECT setval(pg_get_serial_sequence('{self.events_table}', 'notification_id'), "
                f"(SELECT MAX(notification_id) FROM {self.events_table}))"
            )
            self.recorder.chain(c, chained)  # type: ignore[attr-defined]

    def _outcomes_of_records(self, rows: Sequence[Notification]) -> list[Outcome]:
        """The outcome rows of the applied commands among these events, rebuilt
        from their CommandRecords (an export holds events, not outcomes): the
        key (actor, id) and a fingerprint of type and data, as
        identity.legacy_fingerprint (whether `on` was given is not recorded)."""
        out: list[Outcome] = []
        for n in rows:
            if n.topic.endswith(":CommandRecord.Applied"):
                e = self.mapper.to_domain_event(n)
                out.append((e.command_id, e.actor, identity.legacy_fingerprint(e.command_type, e.data), "applied", None))
        return out

    # -- executing commands ---------------------------------------------------
    def execute(
        self,
        items: Sequence[tuple[int, Command | Malformed]],
        submitter: authority.Actor,
        progress: Callable[[int], None] | None = None,
        batch_size: int = BATCH_SIZE,
        saved: Callable[[Sequence[Recording]], None] | None = None,
    ) -> list[Result]:
        """Apply numbered commands (or the Malformed error of a bad line) in
        batches; each batch is one atomic save, handed to `saved` once written.
        Returns one Result per item."""
        results: list[Result] = []
        self._saved = saved
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            results.extend(self._execute_chunk(chunk, submitter))
            if progress:
                progress(len(chunk))
        return results

    def _execute_chunk(
        self, chunk: Sequence[tuple[int, Command | Malformed]], submitter: authority.Actor
    ) -> list[Result]:
        for _ in range(RACE_RETRIES):
            try:
                return self._run_batch(chunk, submitter)
            except IntegrityError:
                # Another writer got there first: drop what we read, re-read, re-apply.
                self.conflicts += 1
                self._forget_cached()
        # Heavy contention: one command per transaction still makes progress.
        out: list[Result] = []
        for item in chunk:
            for attempt in range(RACE_RETRIES * 4):
                try:
                    out.extend(self._run_batch([item], submitter))
                    break
                except IntegrityError:
                    self.conflicts += 1
                    self._forget_cached()
                    if attempt == RACE_RETRIES * 4 - 1:
                        raise Unavailable("gave up after repeated write conflicts; rerun to finish") from None
        return out

    def _forget_cached(self) -> None:
        self._cache.clear()

    def _run_batch(
        self, chunk: Sequence[tuple[int, Command | Malformed]], submitter: authority.Actor
    ) -> list[Result]:
        try:
            return self._run_batch_once(chunk, submitter)
        except BaseException:
            self._forget_cached()  # cached aggregates may hold events that were never saved
            raise

    def _run_batch_once(
        self, chunk: Sequence[tuple[int, Command | Malformed]], submitter: authority.Actor
    ) -> list[Result]:
        batch = Batch(self)
        # Who each command is: its key is (actor, id). A refusal of who
        # submitted it is no outcome of the command (the right submitter may
        # send it later), and is decided before any outcome is looked up, so
        # no one reads another actor's outcomes through its ids.
        actors: list[authority.Actor | Refused | None] = []  # one per item of the chunk
        for _, cmd in chunk:
            try:
                actors.append(self._actor(cmd, submitter) if isinstance(cmd, Command) else None)
            except Refused as e:
                actors.append(e)
        commands = [(a, c) for a, (_, c) in zip(actors, chunk) if isinstance(a, authority.Actor)]
        seen = self.outcomes((str(a), c.id) for a, c in commands)
        batch.loaded.update(self.preload(i for a, c in commands if (str(a), c.id) not in seen
                                         for i in likely_aggregates(c)))
        batch.loaded.update(self.preload(i for i in customers_of(batch.loaded.values()) if i not in batch.loaded))
        results: list[Result] = []
        outcomes: list[Outcome] = []
        for (line, cmd), actor in zip(chunk, actors):
            if isinstance(cmd, Malformed):
                results.append(Result(line, cmd.id, cmd.type, "malformed", str(cmd)))
                continue
            if isinstance(actor, Refused):
                results.append(Result(line, cmd.id, cmd.type, "refused", str(actor), actor))
                continue
            key = (str(actor), cmd.id)
            if key in seen:
                # A command has one final outcome: report it, never evaluate again.
                results.append(self._seen(line, cmd, key, seen[key]))
                continue
            batch.begin_command()
            try:
                note = self._apply(batch, cmd, actor, submitter.token)
            except Refused as e:
                batch.rollback_command()
                result = Result(line, cmd.id, cmd.type, "refused", str(e), e)
            else:
                result = Result(line, cmd.id, cmd.type, "applied", note)
            fingerprint = identity.fingerprint(cmd)
            seen[key] = (result.status, result.message, fingerprint)
            outcomes.append((cmd.id, key[0], fingerprint, result.status, result.message))
            results.append(result)
        pending = batch.pending()
        try:
            if pending:
                # One atomic put of every new event of the batch and of the
                # commands' outcomes. (Application.save does the same through
                # generic protocol checks that cost more than the insert itself.)
                # In the order the commands were applied (each command's recorded
                # time is its own), so the log keeps effective dates in order.
                events = sorted((e for agg in pending for e in agg.collect_events()), key=lambda e: e.timestamp)
                recordings = self.events.put(events, outcomes=outcomes)
            elif outcomes:
                self.recorder.insert_outcomes(outcomes)  # type: ignore[attr-defined]
        except IntegrityError:
            raise
        except PersistenceError as e:
            raise Unavailable(f"could not write to {self.db.display}: {redact(str(e)).strip()}") from None
        for agg in pending:
            self.remember(agg)
        if pending and self._saved:
            self._saved(recordings)
        return results

    @staticmethod
    def _actor(cmd: Command, submitter: authority.Actor) -> authority.Actor:
        """The command's actor (its `actor`, or the submitter), whose key its id
        is; raises Refused for an unknown actor or one the submitter may not
        act for."""
        try:
            actor = authority.Actor.parse(cmd.actor) if cmd.actor else submitter
        except ValueError as e:
            raise Refused(str(e)) from None
        authority.may_act_for(submitter, actor)
        return actor

    @staticmethod
    def _seen(line: int, cmd: Command, key: tuple[str, str], outcome: tuple[str, str | None, str | None]) -> Result:
        """The result of a command whose key already has an outcome: the same
        command reports it (duplicate, or refused again with its reason); a
        different one under the same key is a conflict and writes nothing."""
        status, reason, fingerprint = outcome
        if not identity.same_command(fingerprint, cmd):
            return Result(line, cmd.id, cmd.type, "conflict",
                          f"{key[0]} already used id {cmd.id} for a different command (it was {status}); "
                          "a different command needs a new id")
        if status == "applied":
            return Result(line, cmd.id, cmd.type, "duplicate", "already applied")
        return Result(line, cmd.id, cmd.type, "refused", f"{reason} (refused before)")

    def _apply(self, batch: Batch, cmd: Command, actor: authority.Actor, token: str | None) -> str | None:
        """Run one command as `actor`; `token` names the API token it came through (recorded on its events)."""
        authority.may_submit(actor, cmd.type)
        now = self.clock.now()
        ctx = Context(cmd.id, str(actor), cmd.on or now, now, token)
        check_effective_date(ctx.actor, cmd.type, ctx.at, now, COMMAND_TYPES[cmd.type].ahead)
        uow = InOrder(batch, ctx)  # effective dates never run backwards
        note = COMMAND_TYPES[cmd.type].handler(uow, cmd.data, ctx)
        uow.advance()
        batch.add(CommandRecord.record(cmd.type, cmd.data_json(), ctx))
        return note

    def head(self) -> int:
        """The position of the last stored event (0: none)."""
        position = "rowid" if self.db.kind == "sqlite" else "notification_id"
        row = self.reads.one(f"SELECT MAX({position}) FROM {self.events_table}")
        return (row[0] if row else None) or 0
