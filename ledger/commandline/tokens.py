"""`ledger token issue|list|revoke` (API tokens) and `ledger serve` (the
HTTP API and the partner portal)."""

from __future__ import annotations

import click

from .common import Settings, emit, json_option, ledger_of, table, writer


@click.group()
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

    out = issue(ledger_of(ctx), actor, name)
    emit(ctx, out, lambda: out["token"])


@token.command("list")
@json_option
@click.pass_context
def token_list(ctx: click.Context) -> None:
    """Every token: name, actor, when issued and revoked (never a secret)."""
    from ledger.tokens import listing

    rows = listing(ledger_of(ctx))
    emit(ctx, rows, lambda: table(rows, ["name", "actor", "issued_at", "issued_by", "revoked_at", "revoked_by"]))


@writer
@token.command("revoke")
@click.argument("name")
@json_option
@click.pass_context
def token_revoke(ctx: click.Context, name: str) -> None:
    """Revoke a token: its next request answers 401."""
    from ledger.tokens import revoke

    out = revoke(ledger_of(ctx), name)
    emit(ctx, out, lambda: f"revoked {name}")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes, 1 to 64 (more than 1 needs PostgreSQL).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (JSON under /api/v1, bearer tokens) until stopped."""
    from ledger.api.server import serve as run

    run(ctx.find_object(Settings).db, host, port, workers)


COMMANDS = [token, serve]
