"""The queries: `ledger overview`, `attention`, `deals`, `deal show`,
`subscriptions` and `statement` (with `statement issue`, which freezes one).
Allowed values of their options come from the domain's constants."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import click

from ledger.render import attention_rows, dump, plain

from .commands import GROUPS
from .common import (
    DomainChoice, ProgressBar, Settings, as_of_option, day_option, emit, json_option, known_at_option, ledger_of,
    table, writer,
)


def audit_of(ctx: click.Context) -> Any:
    """The run's audit tools (`ledger.audit.Audit`) on its ledger."""
    from ledger.audit import Audit

    return Audit(ledger_of(ctx))


def _replaying(ctx: click.Context, known_at: datetime | None) -> Any:
    """The ledger, with a progress bar on a --known-at replay."""
    ledger = ledger_of(ctx)
    if known_at is not None:
        bar = ProgressBar(ledger.app.head(), "replaying")
        ledger.replay_progress = bar.__enter__()
        ctx.call_on_close(lambda: bar.__exit__(None, None, None))
    return ledger


@click.command()
@click.option("--partner", metavar="P", help="Partner id (a partner sees only its own).")
@click.option("--filter", "filter_", type=DomainChoice("ledger.projections.overview", "FILTERS"),
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


@click.command()
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


@click.command()
@click.option("--partner", metavar="P", help="Partner id (a partner sees only its own).")
@click.option("--stage", type=DomainChoice("ledger.aggregates.deal", "STAGES"))
@click.option("--review", type=DomainChoice("ledger.aggregates.deal", "REVIEWS"))
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


@GROUPS["deal"].command("show")
@click.argument("deal")
@as_of_option
@known_at_option
@json_option
@click.pass_context
def deal_show(ctx: click.Context, deal: str, as_of: date, known_at: datetime | None) -> None:
    """Show a deal card: contact, stage, notes and history."""
    card = ledger_of(ctx).deal_card(deal, as_of, known_at)

    def text() -> str:
        fields = ["deal", "partner", "customer", "contact_name", "customer_email", "customer_domain", "stage",
                  "review", "deny_reason", "protected_until", "billing", "order_number"]
        width = max(len(f) for f in fields)
        parts = [f"{f.ljust(width)}  {card[f]}" for f in fields if card[f] is not None]
        notes = [{"day": n["day"], "actor": n["actor"], "text": " ".join(n["text"].split())} for n in card["notes"]]
        parts += ["", "Notes", table(notes, ["day", "actor", "text"])]
        history = [{"effective": str(plain(e["effective"]))[:10], "actor": e["actor"], "event": e["type"].split(".")[-1],
                    "position": e["position"]} for e in card["history"]]
        parts += ["", "History", table(history, ["position", "effective", "actor", "event"])]
        return "\n".join(parts)

    emit(ctx, card, text)


SUBSCRIPTION_COLUMNS = ["subscription", "partner", "deal", "customer_domain", "plan", "amount", "currency", "period",
                        "billing", "status", "current_period_start", "current_period_end", "next_renewal"]


@click.command()
@click.option("--partner", metavar="P", help="Partner id (a partner sees only its own).")
@click.option("--status", type=DomainChoice("ledger.aggregates.subscription", "STATUSES"))
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


@click.group(cls=click.Group, invoke_without_command=True)
@click.option("--partner", metavar="P", help="Partner id (a partner: itself, the default).")
@click.option("--month", metavar="YYYY-MM", help="Statement month.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the lines as CSV (RFC 4180, UTF-8) for programs.")
@click.option("--xlsx", "xlsx_path", metavar="FILE", callback=lambda _c, _p, value: file_name(value, "--xlsx"),
              help="Write the statement as a spreadsheet workbook to FILE.")
@click.option("--as-of", metavar="DATE", callback=day_option("--as-of"),
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

    st = ledger_of(ctx).statement(partner, month, known_at, as_of)
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


def file_name(value: str | None, name: str) -> str | None:
    """A file name to write, checked before the ledger opens: no operating
    system takes a NUL character in one (exit 2)."""
    if value is not None and "\x00" in value:
        raise click.BadParameter("a file name cannot contain a NUL character", param_hint=name)
    return value


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
    out = audit_of(ctx).issue_statement(partner, month, command_id)
    from ledger.export import plural

    emit(ctx, out, lambda: f"issued {out['statement']} at position {out['position']}: {plural(out['lines'], 'line')}, "
                           f"sha256 {out['fingerprint']}")


COMMANDS = [overview, attention, deals, subscriptions, statement]
