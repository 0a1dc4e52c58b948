"""`ledger audit ...`: finance's audit tools: verify issued statements and
the hash chain, seal it, explain figures by their events, export and import
the event log."""

from __future__ import annotations

import sys
from datetime import date
from typing import Any

import click

from ledger.errors import EXIT_REFUSED
from ledger.render import dump

from .common import (
    MAX_POSITION, ProgressBar, as_of_option, counted, emit, json_option, ledger_of, table, writer,
)
from .queries import audit_of


@click.group()
def audit() -> None:
    """Finance's audit tools: verify statements and the hash chain, explain
    figures, export and import the event log."""


@audit.command("verify-statement")
@click.argument("statement_id", metavar="PARTNER/YYYY-MM")
@json_option
@click.pass_context
def audit_verify_statement(ctx: click.Context, statement_id: str) -> None:
    """Replay the ledger to an issued statement's position and check its fingerprint."""
    audit_ = audit_of(ctx)
    with ProgressBar(audit_.app.head(), "replaying") as progress:
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
    out = audit_of(ctx).seal()
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
    audit_ = audit_of(ctx)
    with ProgressBar(audit_.app.head(), "verifying") as progress:
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
    _events_out(ctx, audit_of(ctx).explain_customer(domain, as_of))


@audit_explain.command("item")
@click.argument("code")
@click.argument("subject")
@as_of_option
@json_option
@click.pass_context
def explain_item(ctx: click.Context, code: str, subject: str, as_of: date) -> None:
    """The events behind an attention item (its code and subject)."""
    _events_out(ctx, audit_of(ctx).explain_item(code, subject, as_of))


@audit_explain.command("line")
@click.argument("position", type=click.IntRange(1, MAX_POSITION))
@json_option
@click.pass_context
def explain_line(ctx: click.Context, position: int) -> None:
    """The events behind a statement line (its position, in `statement --json`)."""
    _events_out(ctx, audit_of(ctx).explain_line(position))


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
    audit_ = audit_of(ctx)
    stop = min(stop or MAX_POSITION, audit_.app.head())  # past the head: up to the head
    written = 0
    with ProgressBar(stop, "exporting") as progress:
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
    audit_ = audit_of(ctx)
    lines = file.read().splitlines()
    with ProgressBar(len(lines), "importing") as progress:
        count = audit_.import_(lines, counted(progress))
    ledger = ledger_of(ctx)
    with ProgressBar(ledger.app.head(), "catching up") as progress:
        ledger.runner.catch_up(progress)
    seal = audit_.seal()
    emit(ctx, {"imported": count, **seal}, lambda: f"imported {count} events; {seal['digest']}")


COMMANDS = [audit]
