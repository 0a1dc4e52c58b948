"""`ledger projections status|rebuild`: read-model maintenance."""

from __future__ import annotations

import click

from .common import ProgressBar, emit, json_option, ledger_of, table


@click.group()
def projections() -> None:
    """Read-model maintenance: status and rebuild."""


@projections.command("status")
@json_option
@click.pass_context
def projections_status(ctx: click.Context) -> None:
    """Each projection's position against the ledger's head."""
    from ledger import authority

    ledger = ledger_of(ctx)
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
    ledger = ledger_of(ctx)
    names = [name] if name else [p.name for p in ledger.runner.projections]
    head = ledger.app.head()
    with ProgressBar(head, f"rebuilding {', '.join(names)}") as progress:
        ledger.rebuild(names, progress)  # one pass over the log for all of them; checks authority first
    emit(ctx, {"rebuilt": names, "position": head}, lambda: f"rebuilt {', '.join(names)} to position {head}")


COMMANDS = [projections]
