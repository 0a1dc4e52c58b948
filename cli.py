"""The `ledger` command line: one sub-command per command type and query.

Exit status: 0 done; 1 refused by a business rule or authority; 2 bad usage
or malformed input; 3 the database is unreachable or broken; 130 interrupted
(Ctrl-C). Errors are one line on stderr (at most 500 characters), never a
traceback."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any
from uuid import uuid4

import click

# Heavy modules (eventsourcing, pydantic, psycopg) load on first use, so
# `ledger --help` stays as quick as click itself.
EXIT_REFUSED, EXIT_USAGE, EXIT_DB, EXIT_INTERNAL, EXIT_INTERRUPTED = 1, 2, 3, 70, 130


class Settings:
    def __init__(self, db: str | None, actor: str, as_json: bool) -> None:
        self.db, self.actor, self.json = db, actor, as_json
        self._ledger: Any = None
        # What is done, for the line an interrupt (Ctrl-C) prints.
        self.done = "anything written was written whole (one transaction per command or batch)"

    def ledger(self) -> Any:
        if self._ledger is None:
            from ledger.service import Ledger

            self._ledger = Ledger(self.db, self.actor, create=_writes())
        return self._ledger

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()


MAX_ERROR = 500  # characters in an error line, at most
MAX_POSITION = 2**63 - 1  # the largest position either database stores
MAX_ECHO = 120  # characters of a long word (a value, a URL) an error line repeats


def bounded(message: str) -> str:
    """`message` on one line of at most MAX_ERROR characters: a long value in
    it is echoed as its first MAX_ECHO characters and an ellipsis."""
    import re

    line = re.sub(r"\S{%d,}" % (MAX_ECHO + 1), lambda m: m.group()[:MAX_ECHO] + "…", " ".join(message.split()))
    return line if len(line) <= MAX_ERROR - 7 else line[: MAX_ERROR - 8] + "…"


def writer(cmd: click.Command) -> click.Command:
    """Mark a command that writes: it may create the ledger. Every other
    command (a query) needs an existing one and never creates it."""
    cmd.writes = True  # type: ignore[attr-defined]
    return cmd


def _writes() -> bool:
    """Whether the command being run may create the ledger (see `writer`)."""
    ctx = click.get_current_context(silent=True)
    return ctx is None or getattr(ctx.command, "writes", False)


def fail(message: str, code: int) -> None:
    from ledger.db import redact  # whatever the message quotes, never a password

    click.echo(f"error: {bounded(redact(message))}", err=True)  # always one bounded line
    sys.exit(code)


class LedgerGroup(click.Group):
    """Turns the ledger's errors into one line and its exit status."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.ClickException as e:
            usage_error(e)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as e:
            usage_error(e)
            raise
        except (click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except KeyboardInterrupt:  # Ctrl-C: 130 as shells expect, never 1 ("refused")
            fail(f"interrupted: {ctx.obj.done if isinstance(ctx.obj, Settings) else 'nothing was written'}",
                 EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader (e.g. `| head`) went away: stop quietly, like other tools.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except Exception as e:  # noqa: BLE001 - the one place errors become exit codes
            from ledger.aggregates import Refused
            from ledger.commands.models import Malformed
            from ledger.db import Unavailable, first_line, is_database_error

            if isinstance(e, Refused):
                fail(str(e), EXIT_REFUSED)
            if isinstance(e, KeyError):  # str() of a KeyError is the repr of its message
                fail(str(e.args[0]) if e.args else "not found", EXIT_USAGE)
            if isinstance(e, (Malformed, ValueError)):
                fail(str(e), EXIT_USAGE)
            if isinstance(e, Unavailable):
                fail(str(e), EXIT_DB)
            if is_database_error(e):
                fail(f"database error: {first_line(e) or type(e).__name__}", EXIT_DB)
            # A bug, not the user's input nor the database: its own status (70, EX_SOFTWARE).
            detail = first_line(e)
            fail(f"internal error: {type(e).__name__}: {detail} (a bug in the ledger; "
                 "please report it with the command you ran)", EXIT_INTERNAL)
        finally:
            if isinstance(ctx.obj, Settings):
                ctx.obj.close()


def usage_error(e: click.ClickException) -> None:
    """Click's usage errors as one bounded line and exit 2 (a file that cannot
    be opened is bad input too); other click exceptions keep their status,
    with their message bounded (click echoes the value whole)."""
    e.message = bounded(e.message)
    if not isinstance(e, (click.UsageError, click.FileError)):
        return
    hint = f" (see '{e.ctx.command_path} --help')" if isinstance(e, click.UsageError) and e.ctx else ""
    fail(e.format_message() + hint, EXIT_USAGE)


def set_json(ctx: click.Context, _: Any, value: bool) -> None:
    if value:
        ctx.find_object(Settings).json = True


json_option = click.option(
    "--json", "as_json", is_flag=True, expose_value=False, callback=set_json,
    help="Print JSON instead of a table.",
)


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--db", envvar="LEDGER_DATABASE_URL", metavar="URL",
              help="sqlite:///path.db (default sqlite:///ledger.db) or postgresql://user@host:port/dbname. "
                   "Env: LEDGER_DATABASE_URL.")
@click.option("--as", "actor", envvar="LEDGER_ACTOR", default="vendor:manager", show_default=True,
              metavar="ACTOR", help="partner:<id>, vendor:manager, vendor:finance or system. Env: LEDGER_ACTOR.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (JSON Lines for submit) instead of tables.")
@click.version_option("0.1.0", prog_name="ledger")
@click.pass_context
def main(ctx: click.Context, db: str | None, actor: str, as_json: bool) -> None:
    """partner-ledger: the event-sourced deal and subscription ledger of a
    partner program.

    \b
    Partners register deals and start trials; the vendor reviews deals,
    records subscriptions, and pays commission; finance replays the books.
    Every change is an immutable event; the tables you query are rebuilt
    from them.

    \b
    Start with:   ledger demo            (a sample program in ./ledger.db)
                  ledger overview --partner nordic-grc
                  ledger submit commands.jsonl
    """
    if ctx.get_parameter_source("actor") is click.core.ParameterSource.DEFAULT and "LEDGER_ACTOR" in os.environ:
        actor = os.environ["LEDGER_ACTOR"]  # click treats an empty one as unset: refuse it like --as ""
    ctx.obj = Settings(db, actor, as_json)


# -- output helpers -------------------------------------------------------------
from ledger.render import attention_rows, dump, plain as _plain  # noqa: E402 - shared with the HTTP API


def table(rows: list[dict[str, Any]], columns: list[str], empty: str = "(none)") -> str:
    from ledger.export import table as aligned

    return aligned(rows, columns, empty)


def emit(ctx: click.Context, value: Any, human: Callable[[], str]) -> None:
    click.echo(dump(value) if ctx.find_object(Settings).json else human())


def parse_day(value: str | None, name: str = "--as-of") -> date:
    if value is None:
        from ledger.timeline import today

        return today()  # in LEDGER_TIMEZONE
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=name) from None


def parse_moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    from ledger.timeline import parse_instant

    try:
        return parse_instant(value)  # an instant: one moment with any offset gives the same answer
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--known-at") from None


# Dates are parsed by the options themselves, before any command body opens the
# ledger: a bad value is exit 2 and never creates or touches a database.
def _day_of(name: str) -> Callable[[click.Context, click.Parameter, str | None], date]:
    return lambda _ctx, _param, value: parse_day(value, name)


as_of_option = click.option("--as-of", metavar="DATE", callback=_day_of("--as-of"),
                            help="Answer as of this effective date (default today); "
                                 "windows such as 90 days count back from it.")
known_at_option = click.option("--known-at", metavar="TIMESTAMP", callback=lambda _c, _p, value: parse_moment(value),
                               help="Answer as the ledger knew it at this recorded time (ISO 8601, UTC if no zone).")


# -- commands from options ---------------------------------------------------------
FIELD_HELP = {
    "partner": "Partner id.", "name": "Company name.", "domain": "Email domain(s), comma-separated.",
    "commission_rate": "Decimal fraction, e.g. 0.20.", "deal": "Deal id (chosen by you).",
    "customer_name": "The customer's company name.", "contact_name": "The customer's contact person.",
    "customer_email": "The customer contact's email (its domain identifies the customer).",
    "note": "Optional note.", "reason": "existing-customer, invalid-lead or duplicate.",
    "stage": "new, newsletter-subscription or trial.", "text": "The note's text.",
    "billing": "credit-card, invoice or partner.", "order_number": "Order number (required for invoice).",
    "trial": "Trial id (chosen by you).", "days": "Trial length in days (default 14, at most 30).",
    "subscription": "Subscription id (chosen by you).",
    "customer_domain": "The customer's domain (www.example.fi is example.fi); with --deal, the deal's.",
    "plan": "Plan name.", "amount": "Amount as a decimal, e.g. 1200.00.", "currency": "ISO 4217 code, e.g. EUR.",
    "period": "monthly or yearly.", "users": "Number of users.", "framework": "Main framework, e.g. ISO 27001.",
    "progress": "Framework progress, 0-100.", "activities": "Activities on the day.",
    "charge": "Charge number to refund (default: the latest).",
}

COMMANDS = [
    # group, name, command type, positional fields, help
    ("partner", "enroll", "enroll_partner", ["partner"], "Enroll a partner with its domain(s) and commission rate."),
    ("partner", "set-rate", "set_commission_rate", ["partner", "commission_rate"],
     "Change a partner's commission rate from the effective date (--on) on."),
    ("deal", "register", "register_deal", ["deal"],
     "Register a deal for a customer (pending until reviewed; protects the domain 90 days)."),
    ("deal", "accept", "accept_deal", ["deal"], "Accept a pending deal (vendor)."),
    ("deal", "deny", "deny_deal", ["deal", "reason"], "Deny a pending deal with a reason (vendor)."),
    ("deal", "move", "move_deal", ["deal", "stage"], "Move a deal forward: new, newsletter-subscription, trial."),
    ("deal", "note", "add_deal_note", ["deal", "text"], "Add a note to the deal card (renews protection)."),
    ("deal", "win", "win_deal", ["deal", "billing"], "Close a deal as won with its billing option."),
    ("deal", "lose", "lose_deal", ["deal"], "Close a deal as lost, ideally with a note."),
    ("trial", "start", "start_trial", ["trial"], "Start a trial for a customer (14 days unless --days)."),
    ("trial", "extend", "extend_trial", ["trial"], "Extend a running trial once, to 30 days in total."),
    ("subscription", "start", "start_subscription", ["subscription"],
     "Start a subscription; its first billing period is charged."),
    ("subscription", "renew", "renew_subscription", ["subscription"], "Renew: charge the next billing period."),
    ("subscription", "cancel", "cancel_subscription", ["subscription"], "Cancel a subscription."),
    ("subscription", "refund", "refund", ["subscription", "amount"],
     "Refund (part of) the latest charge, or --charge N; claws back its commission."),
    ("usage", "report", "report_usage", ["customer_domain"], "Report a customer's product usage (system)."),
]

GROUP_HELP = {
    "partner": "Enroll partners and set commission rates.",
    "deal": "Register, review, move, note, win and lose deals.",
    "trial": "Start and extend customer trials.",
    "subscription": "Start, renew, cancel and refund subscriptions.",
    "usage": "Product usage reports (feed the customer overview).",
}


def print_result(ctx: click.Context, result: Any) -> None:
    d = result.as_dict()
    emit(ctx, d, lambda: f"{d['status']}: {d['type']} ({d['id']})" + (f" - {d['note']}" if d.get("note") else ""))


def make_command(command_type: str, positional: list[str], help_text: str) -> click.Command:
    from_models = _fields(command_type)

    def callback(**kwargs: Any) -> None:
        ctx = click.get_current_context()
        data: dict[str, Any] = {}
        for field in from_models:
            opt, pos = kwargs.get(field), kwargs.get(f"pos_{field}")
            if opt is not None and pos is not None and opt != pos:
                raise click.UsageError(f"{field} given twice with different values")
            value = opt if opt is not None else pos
            if value is not None:
                data[field] = value
        envelope = {"id": kwargs["command_id"] or f"cli-{uuid4().hex}", "type": command_type,
                    "on": kwargs["on"], "data": data}
        from ledger.commands.models import build

        command = build(envelope, options=True)  # malformed input: exit 2 before the ledger is opened (or made)
        result = ctx.find_object(Settings).ledger().command(command)
        print_result(ctx, result)

    params: list[click.Parameter] = [
        click.Argument([f"pos_{f}"], required=False, metavar=f.upper()) for f in positional
    ]
    for field in from_models:
        params.append(click.Option([f"--{field.replace('_', '-')}", field], help=FIELD_HELP.get(field)))
    params += [
        click.Option(["--on"], metavar="DATE", help="Effective date or date-time (default now)."),
        click.Option(["--id", "command_id"], metavar="ID", help="Command id for idempotency (default: new)."),
    ]
    cmd = writer(click.Command(
        name=None, callback=callback, params=params,
        help=help_text + "\n\nPositional arguments may be given as options instead.",
    ))
    json_option(cmd)
    return cmd


def _fields(command_type: str) -> list[str]:
    # The pydantic data model is the one definition of a command's fields.
    from ledger.commands.models import DATA_MODELS

    return list(DATA_MODELS[command_type].model_fields)


class LazyCommands(click.Group):
    """Builds its sub-commands from the command models only when asked."""

    def __init__(self, *args: Any, group: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group_name = group

    def _specs(self) -> dict[str, tuple[str, list[str], str]]:
        return {name: (t, pos, h) for g, name, t, pos, h in COMMANDS if g == self.group_name}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self._specs(), *self.commands]  # commands, then queries such as `deal show`

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        spec = self._specs().get(name)
        if spec is None:
            return self.commands.get(name)
        cmd = make_command(*spec)
        cmd.name = name
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, h.split(".")[0]) for name, (_, _, h) in self._specs().items()]
        rows += [(name, cmd.get_short_help_str()) for name, cmd in self.commands.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


for _group in GROUP_HELP:
    main.add_command(LazyCommands(name=_group, group=_group, help=GROUP_HELP[_group]))


# -- bulk submission ----------------------------------------------------------------
@writer
@main.command()
@click.argument("file", type=click.File("rb"))
@click.option("--problems-only", is_flag=True, help="Print only refused and malformed lines (and the summary).")
@json_option
@click.pass_context
def submit(ctx: click.Context, file: Any, problems_only: bool) -> None:
    """Submit commands from a JSON Lines FILE (- for stdin), one per line.

    \b
    Each line: {"id": "c-1", "type": "register_deal", "on": "2026-01-10",
                "actor": "partner:acme", "data": {...}}
    Re-submitting is safe: a command id is a key of its actor (the line's
    actor, or --as); the same command again is reported as duplicate, or
    refused again with its reason; a different command under an id its
    actor already used is a conflict (a corrected command needs a new id).
    A refused or conflicting line writes nothing; the other lines still apply.
    Exit status: 0 all applied or duplicate, 1 some refused or conflict,
    2 some malformed.
    """
    settings = ctx.find_object(Settings)
    ledger = settings.ledger()
    # Bulk work makes many short-lived objects around a large long-lived cache:
    # collect the young generation less often, and never scan what was loaded.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    counts = {s: 0 for s in ("applied", "duplicate", "conflict", "refused", "malformed")}
    total = 0
    settings.done = "no line was reported yet; submit the file again to finish (nothing applies twice)"
    # A chunk at a time, reporting as it goes: memory stays flat however long the file.
    with _bar(_size(file), "applying") as progress:
        for first, lines, consumed in _chunks(file, SUBMIT_CHUNK, SUBMIT_CHUNK_BYTES):
            for r in ledger.submit_lines(lines, first=first):
                total += 1
                counts[r.status] += 1
                if problems_only and r.status in ("applied", "duplicate"):
                    continue
                d = r.as_dict()
                if settings.json:
                    click.echo(dump(d))
                else:
                    detail = d.get("reason") or d.get("note") or ""
                    click.echo(f"line {d['line']}: {d['status']} {d['type'] or ''} {d['id'] or ''}".rstrip()
                               + (f" - {detail}" if detail else ""))
            progress(consumed, 0)
            settings.done = (f"the {total} lines reported above are final ({counts['applied']} applied); "
                             "submit the file again to finish (nothing applies twice)")
    summary = {"lines": total, **counts, "position": ledger.app.head()}
    if settings.json:
        click.echo(dump({"summary": summary}))
    else:
        from ledger.export import plural

        click.echo(f"{plural(total, 'line')}: {counts['applied']} applied, {counts['duplicate']} duplicate, "
                   f"{counts['conflict']} conflict, {counts['refused']} refused, {counts['malformed']} malformed")
    if counts["malformed"]:
        sys.exit(EXIT_USAGE)
    if counts["refused"] or counts["conflict"]:
        sys.exit(EXIT_REFUSED)


SUBMIT_CHUNK = 5_000  # lines read, applied and reported at a time, at most
SUBMIT_CHUNK_BYTES = 4 * 1024 * 1024  # ... and bytes: memory is bounded by bytes, not lines


def _size(file: Any) -> int:
    """Bytes in a regular file (0 for a pipe: no bar)."""
    try:
        return os.fstat(file.fileno()).st_size if os.path.isfile(file.name) else 0
    except (OSError, AttributeError, TypeError):
        return 0


def _chunks(file: Any, size: int, max_bytes: int) -> Iterator[tuple[int, list[bytes], int]]:
    """(number of the first line, up to `size` lines or about `max_bytes`,
    bytes read so far). A line longer than a command may be is kept only up
    to that limit (it is malformed anyway) and the rest of it is skipped, so
    no line is ever held whole."""
    from ledger.commands.models import MAX_LINE_BYTES

    limit = MAX_LINE_BYTES + 2
    first, consumed, held, lines = 1, 0, 0, []
    while raw := file.readline(limit):
        consumed += len(raw)
        if len(raw) == limit and not raw.endswith(b"\n"):
            while (rest := file.readline(1 << 20)) and not rest.endswith(b"\n"):
                consumed += len(rest)
            consumed += len(rest)
            lines.append(raw)  # over the limit: malformed, and no \r inside it splits it
        else:
            lines.extend(raw.splitlines())  # as bytes.splitlines counts lines: a lone \r ends one too
        held += len(raw)
        if len(lines) >= size or held >= max_bytes:
            yield first, lines, consumed
            first, lines, held = first + len(lines), [], 0
    if lines:
        yield first, lines, consumed


@writer
@main.command()
@click.option("--on", metavar="DATE", callback=_day_of("--on"), help="Sweep as of this date (default today).")
@json_option
@click.pass_context
def sweep(ctx: click.Context, on: date) -> None:
    """Record protections that lapsed and trials that expired (system)."""
    print_result(ctx, ctx.find_object(Settings).ledger().sweep(on))


# -- queries --------------------------------------------------------------------------
def _replaying(ctx: click.Context, known_at: datetime | None) -> Any:
    """The ledger, with a progress bar on a --known-at replay."""
    ledger = ctx.find_object(Settings).ledger()
    if known_at is not None:
        bar = _bar(ledger.app.head(), "replaying")
        ledger.replay_progress = bar.__enter__()
        ctx.call_on_close(lambda: bar.__exit__(None, None, None))
    return ledger


@main.command()
@click.option("--partner", metavar="P", help="Partner id (a partner sees only its own).")
@click.option("--filter", "filter_", type=click.Choice(["trial", "active", "closed", "attention"]),
              help="Only customers with a running trial, an active subscription, a trial that ended "
                   "without subscribing, or attention items.")
@as_of_option
@known_at_option
@json_option
@click.pass_context
def overview(ctx: click.Context, partner: str | None, filter_: str | None, as_of: date, known_at: datetime | None) -> None:
    """The customer overview: status, framework, users, recent activity."""
    rows = _replaying(ctx, known_at).overview(partner, filter_, as_of, known_at)
    emit(ctx, rows, lambda: table(rows, ["customer", "domain", "partner", "status", "framework", "progress", "users",
                                         "activities_90d", "attention"]))


@main.command()
@click.option("--partner", metavar="P", help="Partner id (a partner sees only its own).")
@as_of_option
@known_at_option
@json_option
@click.pass_context
def attention(ctx: click.Context, partner: str | None, as_of: date, known_at: datetime | None) -> None:
    """What needs attention: trials ending, deals waiting, renewals due... (codes in README)."""
    items = _replaying(ctx, known_at).attention(partner, as_of, known_at)
    rows = attention_rows(items)
    emit(ctx, rows, lambda: table(rows, ["code", "subject", "partner", "reason"]))


@main.command()
@click.option("--partner", metavar="P", help="Partner id (a partner sees only its own).")
@click.option("--stage", type=click.Choice(["new", "newsletter-subscription", "trial", "closed-won", "closed-lost"]))
@click.option("--review", type=click.Choice(["pending", "accepted", "denied"]))
@click.option("--summary", is_flag=True, help="Counts by stage and review status instead of rows.")
@as_of_option
@known_at_option
@json_option
@click.pass_context
def deals(ctx: click.Context, partner: str | None, stage: str | None, review: str | None, summary: bool,
          as_of: date, known_at: datetime | None) -> None:
    """The deal pipeline: deals with stage, review and protection."""
    from ledger.projections.pipeline import summary as pipeline_summary

    rows = _replaying(ctx, known_at).deals(partner, stage, review, as_of, known_at)
    if summary:
        s = pipeline_summary(rows)
        emit(ctx, s, lambda: "\n".join(
            [f"{s['total']} deals"] + [f"  {k}: {v}" for k, v in {**s["by_stage"], **s["by_review"]}.items()]))
        return
    emit(ctx, rows, lambda: table(rows, ["deal", "partner", "customer", "customer_domain", "stage", "review",
                                         "protected_until"]))


@main.commands["deal"].command("show")
@click.argument("deal")
@as_of_option
@known_at_option
@json_option
@click.pass_context
def deal_show(ctx: click.Context, deal: str, as_of: date, known_at: datetime | None) -> None:
    """Show a deal card: contact, stage, notes and history."""
    card = ctx.find_object(Settings).ledger().deal_card(deal, as_of, known_at)

    def text() -> str:
        fields = ["deal", "partner", "customer", "contact_name", "customer_email", "customer_domain", "stage",
                  "review", "deny_reason", "protected_until", "billing", "order_number"]
        width = max(len(f) for f in fields)
        parts = [f"{f.ljust(width)}  {card[f]}" for f in fields if card[f] is not None]
        notes = [{"day": n["day"], "actor": n["actor"], "text": " ".join(n["text"].split())} for n in card["notes"]]
        parts += ["", "Notes", table(notes, ["day", "actor", "text"])]
        history = [{"effective": str(_plain(e["effective"]))[:10], "actor": e["actor"], "event": e["type"].split(".")[-1],
                    "position": e["position"]} for e in card["history"]]
        parts += ["", "History", table(history, ["position", "effective", "actor", "event"])]
        return "\n".join(parts)

    emit(ctx, card, text)


SUBSCRIPTION_COLUMNS = ["subscription", "partner", "deal", "customer_domain", "plan", "amount", "currency", "period",
                        "billing", "status", "current_period_start", "current_period_end", "next_renewal"]


@main.command()
@click.option("--partner", metavar="P", help="Partner id (a partner sees only its own).")
@click.option("--status", type=click.Choice(["active", "cancelled"]))
@as_of_option
@known_at_option
@json_option
@click.pass_context
def subscriptions(ctx: click.Context, partner: str | None, status: str | None, as_of: date,
                  known_at: datetime | None) -> None:
    """Subscriptions with their plan, price, status and billing periods."""
    from ledger.export import _money

    rows = _replaying(ctx, known_at).subscriptions(partner, status, as_of, known_at)
    shown = [r | {"amount": _money(r["amount"], r["currency"])} for r in rows]
    emit(ctx, shown, lambda: table(shown, SUBSCRIPTION_COLUMNS))


@main.group(cls=click.Group, invoke_without_command=True)
@click.option("--partner", metavar="P", help="Partner id (a partner: itself, the default).")
@click.option("--month", metavar="YYYY-MM", help="Statement month.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the lines as CSV (RFC 4180, UTF-8) for programs.")
@click.option("--xlsx", "xlsx_path", metavar="FILE", help="Write the statement as a spreadsheet workbook to FILE.")
@click.option("--as-of", metavar="DATE", callback=_day_of("--as-of"),
              help="Only lines dated up to this date (default today).")
@known_at_option
@json_option
@click.pass_context
def statement(ctx: click.Context, partner: str | None, month: str | None, as_csv: bool, xlsx_path: str | None,
              as_of: date, known_at: datetime | None) -> None:
    """A partner's commission statement for a month: one line per charge or
    refund, and totals per currency (amount = vendor share + partner share)."""
    if ctx.invoked_subcommand is not None:
        return
    if not month:
        raise click.UsageError("give --month (YYYY-MM)")
    _check_month(month)
    from ledger import export

    st = ctx.find_object(Settings).ledger().statement(partner, month, known_at, as_of)
    if xlsx_path:
        try:
            export.statement_xlsx(st, xlsx_path)
        except OSError as e:
            raise click.BadParameter(f"cannot write {xlsx_path}: {e.strerror or e}", param_hint="--xlsx") from None
        click.echo(f"wrote {export.plural(len(st['lines']), 'line')} of {st['partner']} {st['month']} to {xlsx_path}",
                   err=as_csv or ctx.find_object(Settings).json)
    if as_csv:
        click.echo(export.statement_csv(st), nl=False)
    elif ctx.find_object(Settings).json:
        click.echo(dump(export.statement_json(st)))
    elif not xlsx_path:
        click.echo(export.statement_text(st))


def _check_month(month: str) -> None:
    import re

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise click.BadParameter(f"{month!r} is not a month: give YYYY-MM, e.g. 2026-01", param_hint="--month")


@writer
@statement.command("issue")
@click.option("--partner", required=True, metavar="P", help="Partner id.")
@click.option("--month", required=True, metavar="YYYY-MM", help="Statement month.")
@click.option("--id", "command_id", metavar="ID", help="Command id for idempotency (default: new).")
@json_option
@click.pass_context
def statement_issue(ctx: click.Context, partner: str, month: str, command_id: str | None) -> None:
    """Freeze a statement (finance): record its totals, the ledger position it
    was computed at and its SHA-256 fingerprint. Issued statements never
    change; later charges for the month appear as adjustments next month."""
    _check_month(month)
    out = _audit(ctx).issue_statement(partner, month, command_id)
    from ledger.export import plural

    emit(ctx, out, lambda: f"issued {out['statement']} at position {out['position']}: {plural(out['lines'], 'line')}, "
                           f"sha256 {out['fingerprint']}")


def _audit(ctx: click.Context) -> Any:
    from ledger.audit import Audit

    return Audit(ctx.find_object(Settings).ledger())


# -- audit ------------------------------------------------------------------------------
@main.group()
def audit() -> None:
    """Finance's audit tools: verify statements and the hash chain, explain
    figures, export and import the event log."""


@audit.command("verify-statement")
@click.argument("statement_id", metavar="PARTNER/YYYY-MM")
@json_option
@click.pass_context
def audit_verify_statement(ctx: click.Context, statement_id: str) -> None:
    """Replay the ledger to an issued statement's position and check its fingerprint."""
    audit_ = _audit(ctx)
    with _bar(audit_.app.head(), "replaying") as progress:
        out = audit_.verify_statement(statement_id, progress)
    emit(ctx, out, lambda: (f"OK: {statement_id} replays to sha256 {out['replayed_fingerprint']}" if out["ok"] else
                            f"FAILED: {statement_id} replays to sha256 {out['replayed_fingerprint']}, "
                            f"issued as {out['recorded_fingerprint']}"))
    if not out["ok"]:
        sys.exit(EXIT_REFUSED)


@audit.command("seal")
@json_option
@click.pass_context
def audit_seal(ctx: click.Context) -> None:
    """Print the hash chain's head as a digest: keep it somewhere else, and
    later `ledger audit verify --digest` proves nothing before it changed."""
    out = _audit(ctx).seal()
    emit(ctx, out, lambda: out["digest"])


@audit.command("verify")
@click.option("--digest", metavar="D", help="A digest from `ledger audit seal` to check against.")
@json_option
@click.pass_context
def audit_verify(ctx: click.Context, digest: str | None) -> None:
    """Recompute the hash chain over every stored event and name the first
    altered, deleted or re-ordered event, or one written outside the ledger
    (the ledger chains its own writes only). With --digest, also fail when the
    log does not reach the digest's position. Exit 1 if any."""
    audit_ = _audit(ctx)
    with _bar(audit_.app.head(), "verifying") as progress:
        out = audit_.verify(digest, progress)
    emit(ctx, out, lambda: (f"OK: {out['checked']} events, chain head {out['head']}" if out["ok"] else
                            f"FAILED at position {out['first_bad_position']}: {out['problem']}"))
    if not out["ok"]:
        sys.exit(EXIT_REFUSED)


@audit.group("explain")
def audit_explain() -> None:
    """List the events behind a figure (position, recorded and effective
    time, actor, command id, type, data)."""


EVENT_COLUMNS = ["position", "recorded", "effective", "actor", "command_id", "type", "data"]


def _events_out(ctx: click.Context, events: list[dict[str, Any]]) -> None:
    rows = [e | {"data": dump(e["data"])} for e in events]
    emit(ctx, events, lambda: table(rows, EVENT_COLUMNS))


@audit_explain.command("customer")
@click.argument("domain")
@as_of_option
@json_option
@click.pass_context
def explain_customer(ctx: click.Context, domain: str, as_of: date) -> None:
    """The events behind an overview row (a customer domain)."""
    _events_out(ctx, _audit(ctx).explain_customer(domain, as_of))


@audit_explain.command("item")
@click.argument("code")
@click.argument("subject")
@as_of_option
@json_option
@click.pass_context
def explain_item(ctx: click.Context, code: str, subject: str, as_of: date) -> None:
    """The events behind an attention item (its code and subject)."""
    _events_out(ctx, _audit(ctx).explain_item(code, subject, as_of))


@audit_explain.command("line")
@click.argument("position", type=click.IntRange(1, MAX_POSITION))
@json_option
@click.pass_context
def explain_line(ctx: click.Context, position: int) -> None:
    """The events behind a statement line (its position, in `statement --json`)."""
    _events_out(ctx, _audit(ctx).explain_line(position))


@audit.command("export")
@click.option("--from", "start", type=click.IntRange(1, MAX_POSITION), default=1, help="First position (default 1).")
@click.option("--to", "stop", type=click.IntRange(1, MAX_POSITION), help="Last position (default the head).")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8", lazy=False), default="-",
              help="File to write (default stdout).")
@click.pass_context
def audit_export(ctx: click.Context, start: int, stop: int | None, output: Any) -> None:
    """Write the event log as JSON Lines, exactly as stored, for archiving.
    Says on stderr how many events it wrote, and where."""
    from ledger.export import plural

    if stop is not None and stop < start:
        raise click.BadParameter(f"--to {stop} is before --from {start}", param_hint="--to")
    audit_ = _audit(ctx)
    stop = min(stop or MAX_POSITION, audit_.app.head())  # past the head: up to the head
    written = 0
    with _bar(stop, "exporting") as progress:
        for row in audit_.export(start, stop, progress):
            output.write(dump(row) + "\n")
            written += 1
    output.flush()
    where = "standard output" if output.name in ("-", "<stdout>") else output.name
    click.echo(f"exported {plural(written, 'event')} to {where}", err=True)


@writer
@audit.command("import")
@click.argument("file", type=click.File("rb"))
@json_option
@click.pass_context
def audit_import(ctx: click.Context, file: Any) -> None:
    """Re-create a ledger from an export, into an empty database: same
    positions, same events, same hash chain. Then rebuilds the read models."""
    audit_ = _audit(ctx)
    lines = file.read().splitlines()
    with _bar(len(lines), "importing") as progress:
        count = audit_.import_(lines, _counted(progress))
    ledger = ctx.find_object(Settings).ledger()
    with _bar(ledger.app.head(), "catching up") as progress:
        ledger.runner.catch_up(progress)
    seal = audit_.seal()
    emit(ctx, {"imported": count, **seal}, lambda: f"imported {count} events; {seal['digest']}")


# -- projections ----------------------------------------------------------------------
@main.group()
def projections() -> None:
    """Read-model maintenance: status and rebuild."""


@projections.command("status")
@json_option
@click.pass_context
def projections_status(ctx: click.Context) -> None:
    """Each projection's position against the ledger's head."""
    from ledger import authority

    ledger = ctx.find_object(Settings).ledger()
    rows = [s.__dict__ | {"behind": s.behind} for s in ledger.runner.status()]
    if not authority.sees_positions(ledger.actor):  # positions count other partners' events
        rows = [{"name": r["name"], "version": r["version"], "current": r["behind"] == 0,
                 "rebuilding": r["rebuilding_at"] is not None} for r in rows]
        emit(ctx, rows, lambda: table(rows, ["name", "version", "current", "rebuilding"]))
        return
    emit(ctx, rows, lambda: table(rows, ["name", "position", "head", "behind", "version", "rebuilding_at"]))


@projections.command("rebuild")
@click.argument("name", required=False)
@json_option
@click.pass_context
def projections_rebuild(ctx: click.Context, name: str | None) -> None:
    """Rebuild one projection (or all) from position 0 (system and
    vendor:finance only). Queries keep the old tables until the new ones are
    complete; an interrupted rebuild resumes. The audit chain is never rebuilt."""
    ledger = ctx.find_object(Settings).ledger()
    names = [name] if name else [p.name for p in ledger.runner.projections]
    head = ledger.app.head()
    with _bar(head, f"rebuilding {', '.join(names)}") as progress:
        ledger.rebuild(names, progress)  # one pass over the log for all of them; checks authority first
    emit(ctx, {"rebuilt": names, "position": head}, lambda: f"rebuilt {', '.join(names)} to position {head}")


def _counted(progress: Callable[[int, int], None]) -> Callable[[int], None]:
    """Adapt a position bar to work reported as counts of items done."""
    done = [0]

    def advance(n: int) -> None:
        done[0] += n
        progress(done[0], 0)

    return advance


class _bar:
    """A progress bar on stderr for long work, silent when not a terminal."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done = total, label, 0
        self.bar = click.progressbar(length=max(total, 1), label=label, file=sys.stderr) if sys.stderr.isatty() else None

    def __enter__(self) -> Callable[[int, int], None]:
        if self.bar:
            self.bar.__enter__()
        return self.update

    def update(self, position: int, head: int) -> None:
        if self.bar:
            self.bar.update(max(position - self.done, 0))
            self.done = position

    def __exit__(self, *exc: Any) -> None:
        if self.bar:
            self.bar.__exit__(*exc)


# -- API tokens and the HTTP server ---------------------------------------------------------
@main.group()
def token() -> None:
    """API tokens: each acts as one actor; the ledger keeps only a hash of it."""


@writer
@token.command("issue")
@click.option("--actor", required=True, metavar="ACTOR", help="The actor the token acts as (partner:<id>, ...).")
@click.option("--name", required=True, metavar="NAME", help="A unique name for the token (shown in logs and events).")
@json_option
@click.pass_context
def token_issue(ctx: click.Context, actor: str, name: str) -> None:
    """Issue a token (vendor manager or system) and print its secret, once."""
    from ledger.tokens import issue

    out = issue(ctx.find_object(Settings).ledger(), actor, name)
    emit(ctx, out, lambda: out["token"])


@token.command("list")
@json_option
@click.pass_context
def token_list(ctx: click.Context) -> None:
    """Every token: name, actor, when issued and revoked (never a secret)."""
    from ledger.tokens import listing

    rows = listing(ctx.find_object(Settings).ledger())
    emit(ctx, rows, lambda: table(rows, ["name", "actor", "issued_at", "issued_by", "revoked_at", "revoked_by"]))


@writer
@token.command("revoke")
@click.argument("name")
@json_option
@click.pass_context
def token_revoke(ctx: click.Context, name: str) -> None:
    """Revoke a token: its next request answers 401."""
    from ledger.tokens import revoke

    out = revoke(ctx.find_object(Settings).ledger(), name)
    emit(ctx, out, lambda: f"revoked {name}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes, 1 to 64 (more than 1 needs PostgreSQL).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (JSON under /api/v1, bearer tokens) until stopped."""
    from ledger.api.server import serve as run

    run(ctx.find_object(Settings).db, host, port, workers)


# -- demo -----------------------------------------------------------------------------------
@writer
@main.command()
@click.option("--seed", default=7, show_default=True, type=click.IntRange(0, MAX_POSITION), help="Sample data seed.")
@click.option("--partners", default=4, show_default=True, type=click.IntRange(1, 100), help="Number of partners.")
@click.option("--deals", "deal_count", default=60, show_default=True, type=click.IntRange(0, 100_000),
              help="Number of deals.")
@json_option
@click.pass_context
def demo(ctx: click.Context, seed: int, partners: int, deal_count: int) -> None:
    """Load a realistic sample program (partners, deals through every stage,
    trials, subscriptions with each billing option) and show what happened.
    Safe to run twice: the second run applies nothing new."""
    from ledger.sample import generate
    from ledger.timeline import today as business_today

    settings = ctx.find_object(Settings)
    settings.actor = "system"  # the sample submits on behalf of partners and the vendor
    ledger = settings.ledger()
    today = business_today()
    import json

    lines = [json.dumps(c) for c in generate(seed=seed, partners=partners, deals=deal_count, end=today)]
    results = ledger.submit_lines(lines)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    by_type: dict[str, int] = {}
    for r in results:
        if r.status == "applied":
            by_type[r.type] = by_type.get(r.type, 0) + 1
    summary = {"database": ledger.db.display, "commands": len(results), **counts, "applied_by_type": by_type,
               "events": ledger.app.head()}
    if settings.json:
        click.echo(dump(summary))
        return
    click.echo(f"Sample program loaded into {ledger.db.display}: {len(results)} commands, "
               + ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; {ledger.app.head()} events in the ledger.")
    for t, n in sorted(by_type.items()):
        click.echo(f"  {t:22} {n}")
    refusals = [r for r in results if r.status == "refused"][:5]
    if refusals:
        click.echo("\nThe ledger refused, as it should:")
        for r in refusals:
            click.echo(f"  {r.type} {r.id}: {r.message}")
    partners = sorted(a.split(":", 1)[1] for a in _partners_in(lines))
    if not partners:
        return
    from ledger.projections.pipeline import summary as pipeline_summary

    month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    p = max(partners, key=lambda x: len(ledger.statement(x, month)["lines"]))
    click.echo(f"\nCustomer overview of partner {p} today:")
    click.echo(table(ledger.overview(p, None, today), ["customer", "status", "framework", "progress", "users",
                                                       "activities_90d", "attention"]))
    s = pipeline_summary(ledger.deals(None, None, None, today))
    click.echo("\nDeal pipeline, all partners: " + ", ".join(f"{k} {v}" for k, v in s["by_stage"].items() if v))
    from ledger.export import statement_text

    click.echo("\n" + statement_text(ledger.statement(p, month)))
    click.echo(f"\nTry:  ledger attention --partner {p}\n      ledger deals --summary\n"
               f"      ledger statement --partner {p} --month {month} --csv\n"
               f"      ledger statement --partner {p} --month {month} --xlsx {p}-{month}.xlsx")


def _partners_in(lines: Iterable[str]) -> set[str]:
    import json

    out = set()
    for raw in lines:
        actor = json.loads(raw).get("actor") or ""
        if actor.startswith("partner:"):
            out.add(actor)
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
