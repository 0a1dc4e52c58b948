"""The `ledger` command: its global options, its sub-commands (each group in
its own module of this package) and the one place where errors become exit
statuses.

Exit status: 0 done; 1 refused by a business rule or authority; 2 bad usage
or malformed input; 3 the database is unreachable or broken; 70 an internal
error (a bug); 130 interrupted (Ctrl-C). Errors are one line on stderr (at
most 500 characters), never a traceback."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ledger import actors  # names only: the actor kinds for --as
from ledger.errors import EXIT_USAGE

from . import audit, commands, demo, projections, queries, submit, tokens
from .common import EXIT_INTERRUPTED, Settings, bounded, fail


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
            exit_status(e)
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


def exit_status(e: Exception) -> None:
    """Exit with the status `e` stands for: the ledger's own errors their own
    (ledger/errors.py: 1 refused, 2 bad input, 3 database); a failure of the
    database or its driver 3; anything else is a bug: 70 (EX_SOFTWARE) and a
    hint to report it, never blamed on the input or the database."""
    from ledger.db import first_line, is_database_error
    from ledger.errors import EXIT_DB, EXIT_INTERNAL, LedgerError

    if isinstance(e, LedgerError):
        fail(str(e), e.exit_status)
    if is_database_error(e):
        fail(f"database error: {first_line(e) or type(e).__name__}", EXIT_DB)
    fail(f"internal error: {type(e).__name__}: {first_line(e)} (a bug in the ledger; "
         "please report it with the command you ran)", EXIT_INTERNAL)


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--db", envvar="LEDGER_DATABASE_URL", metavar="URL",
              help="sqlite:///path.db (default sqlite:///ledger.db) or postgresql://user@host:port/dbname. "
                   "Env: LEDGER_DATABASE_URL.")
@click.option("--as", "actor", envvar="LEDGER_ACTOR", default=actors.MANAGER, show_default=True,
              metavar="ACTOR", help=f"{actors.ACTOR_USAGE}. Env: LEDGER_ACTOR.")
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


for _module in (commands, submit, queries, audit, projections, tokens, demo):
    for _command in _module.COMMANDS:
        main.add_command(_command)
