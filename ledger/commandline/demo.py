"""`ledger demo`: a realistic sample program, loaded and shown."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable
from datetime import timedelta

import click

from ledger.render import dump

from .common import MAX_POSITION, Settings, json_option, table, writer


@writer
@click.command()
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
    import json  # here: `ledger --help` never needs it

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
    run = program()
    click.echo(f"\nTry:  {run} attention --partner {p}\n      {run} deals --summary\n"
               f"      {run} statement --partner {p} --month {month} --csv\n"
               f"      {run} statement --partner {p} --month {month} --xlsx {p}-{month}.xlsx")


def program(argv0: str | None = None) -> str:
    """How to run the ledger again from here: `ledger` when that is the one on
    PATH, else the path it was started by (`.venv/bin/ledger` from a virtual
    environment not activated, as the README's first command leaves it)."""
    invoked = sys.argv[0] if argv0 is None else argv0
    if os.path.basename(invoked) != "ledger" or not os.path.isfile(invoked):
        return "ledger"  # started some other way (python -c, a test runner): the installed name
    found = shutil.which("ledger")
    return "ledger" if found and os.path.samefile(found, invoked) else invoked


def _partners_in(lines: Iterable[str]) -> set[str]:
    import json

    out = set()
    for raw in lines:
        actor = json.loads(raw).get("actor") or ""
        if actor.startswith("partner:"):
            out.add(actor)
    return out


COMMANDS = [demo]
