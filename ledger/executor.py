"""The batch executor: numbered commands → authority → handler on a unit of
work → one atomic write per batch (events and command outcomes).

Bulk submission batches many commands into one atomic write, because one
transaction per event is slow; a batch that loses an optimistic-concurrency
race is re-read and re-applied from scratch (RACE_RETRIES times, then one
command per transaction)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Recording

from . import authority
from .aggregates import CommandRecord, Customer, Refused, UsageDay, aggregate_id
from .aggregates.base import Context
from .clock import Clock
from .commands import identity
from .commands.models import Command, Malformed, one_line
from .commands.order import InOrder, customers_of
from .commands.registry import COMMAND_TYPES
from .db import Unavailable
from .eventlog import EventLog, OutcomeLog, Seen
from .identity import guess_customer_domain
from .persistence import Outcome
from .timeline import business_date, check_effective_date
from .unitofwork import AggregateCache, UnitOfWork

BATCH_SIZE = 1000
RACE_RETRIES = 8

Item = tuple[int, Command | Malformed]  # line number, command or why the line is malformed
Saved = Callable[[Sequence[Recording]], None]


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
    # The machine code of the refusal, malformation or note (ledger.errors.CODES),
    # and the facts its message names; taken from `refusal` or a Note message
    # when not given. None for an uncoded reason or one recorded earlier
    # (outcomes keep the message only).
    code: str | None = None
    facts: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.code is None:
            coded = self.refusal if self.refusal is not None else self.message
            self.code, self.facts = getattr(coded, "code", None), dict(getattr(coded, "facts", None) or {})
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
        if self.code is not None:
            out["code"] = self.code
        return out


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


class BatchExecutor:
    def __init__(self, log: EventLog, outcomes: OutcomeLog, cache: AggregateCache, clock: Clock) -> None:
        self.log, self.outcomes, self.cache, self.clock = log, outcomes, cache, clock
        self.conflicts = 0  # batches re-read and re-applied after losing a race

    def execute(self, items: Sequence[Item], submitter: authority.Actor,
                progress: Callable[[int], None] | None = None, batch_size: int = BATCH_SIZE,
                saved: Saved | None = None) -> list[Result]:
        """Apply numbered commands (or the Malformed error of a bad line) in
        batches; each batch is one atomic write, handed to `saved` once
        written. Returns one Result per item. Raises Unavailable when the
        database fails or the retries run out."""
        results: list[Result] = []
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            results.extend(self._with_retries(chunk, submitter, saved))
            if progress:
                progress(len(chunk))
        return results

    def _with_retries(self, chunk: Sequence[Item], submitter: authority.Actor, saved: Saved | None) -> list[Result]:
        for _ in range(RACE_RETRIES):
            try:
                return self._run(chunk, submitter, saved)
            except IntegrityError:
                self.conflicts += 1  # another writer got there first: re-read, re-apply
        # Heavy contention: one command per transaction still makes progress.
        out: list[Result] = []
        for item in chunk:
            for attempt in range(RACE_RETRIES * 4):
                try:
                    out.extend(self._run([item], submitter, saved))
                    break
                except IntegrityError:
                    self.conflicts += 1
                    if attempt == RACE_RETRIES * 4 - 1:
                        raise Unavailable("gave up after repeated write conflicts; rerun to finish") from None
        return out

    def _run(self, chunk: Sequence[Item], submitter: authority.Actor, saved: Saved | None) -> list[Result]:
        """One batch, one write; any failure drops the cache (cached
        aggregates may hold events that were never saved)."""
        try:
            return self._run_once(chunk, submitter, saved)
        except BaseException:
            self.cache.clear()
            raise

    def _run_once(self, chunk: Sequence[Item], submitter: authority.Actor, saved: Saved | None) -> list[Result]:
        uow = UnitOfWork(self.cache)
        # Who each command is: its key is (actor, id). A refusal of who
        # submitted it is no outcome of the command (the right submitter may
        # send it later), and is decided before any outcome is looked up, so
        # no one reads another actor's outcomes through its ids.
        actors: list[authority.Actor | Refused | None] = []  # one per item of the chunk
        for _, cmd in chunk:
            try:
                actors.append(_actor(cmd, submitter) if isinstance(cmd, Command) else None)
            except Refused as e:
                actors.append(e)
        commands = [(a, c) for a, (_, c) in zip(actors, chunk) if isinstance(a, authority.Actor)]
        seen = self.outcomes.outcomes((str(a), c.id) for a, c in commands)
        uow.preload(i for a, c in commands if (str(a), c.id) not in seen for i in likely_aggregates(c))
        uow.preload(customers_of(uow.loaded.values()))
        results: list[Result] = []
        outcomes: list[Outcome] = []
        for (line, cmd), actor in zip(chunk, actors):
            if isinstance(cmd, Malformed):
                results.append(Result(line, cmd.id, cmd.type, "malformed", str(cmd), code=cmd.code, facts=cmd.facts))
                continue
            if isinstance(actor, Refused):
                results.append(Result(line, cmd.id, cmd.type, "refused", str(actor), actor))
                continue
            key = (str(actor), cmd.id)
            if key in seen:
                # A command has one final outcome: report it, never evaluate again.
                results.append(_seen(line, cmd, key, seen[key]))
                continue
            result = self._decide(uow, line, cmd, actor, submitter.token)
            fingerprint = identity.fingerprint(cmd)
            seen[key] = (result.status, result.message, fingerprint)
            outcomes.append((cmd.id, key[0], fingerprint, result.status, result.message))
            results.append(result)
        pending = uow.pending()
        # In the order the commands were applied (each command's recorded time
        # is its own; the sort is stable), so the log keeps effective dates in order.
        events = sorted((e for agg in pending for e in agg.collect_events()), key=lambda e: e.timestamp)
        recordings = self.log.write(events, outcomes)
        for agg in pending:
            self.cache.remember(agg)
        if recordings and saved:
            saved(recordings)
        return results

    def _decide(self, uow: UnitOfWork, line: int, cmd: Command, actor: authority.Actor, token: str | None) -> Result:
        """Apply one new command on the batch's unit of work: applied, or refused (nothing left behind)."""
        uow.begin()
        try:
            note = self._apply(uow, cmd, actor, token)
        except Refused as e:
            uow.refused()
            return Result(line, cmd.id, cmd.type, "refused", str(e), e)
        return Result(line, cmd.id, cmd.type, "applied", note)

    def _apply(self, uow: UnitOfWork, cmd: Command, actor: authority.Actor, token: str | None) -> str | None:
        """Run one command as `actor`; `token` names the API token it came through (recorded on its events)."""
        authority.may_submit(actor, cmd.type)
        now = self.clock.now()
        ctx = Context(cmd.id, str(actor), cmd.on or now, now, token)
        command_type = COMMAND_TYPES[cmd.type]
        check_effective_date(ctx.actor, cmd.type, ctx.at, now, command_type.ahead)
        ordered = InOrder(uow, ctx)  # effective dates never run backwards
        note = command_type.handler(ordered, cmd.data, ctx)
        ordered.advance()
        uow.add(CommandRecord.record(cmd.type, cmd.data_json(), ctx))
        return note


def _actor(cmd: Command, submitter: authority.Actor) -> authority.Actor:
    """The command's actor (its `actor`, or the submitter), whose key its id
    is; raises Refused for an unknown actor or one the submitter may not act for."""
    try:
        actor = authority.Actor.parse(cmd.actor) if cmd.actor else submitter
    except ValueError as e:
        raise Refused(str(e)) from None
    authority.may_act_for(submitter, actor)
    return actor


def _seen(line: int, cmd: Command, key: tuple[str, str], outcome: Seen) -> Result:
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
