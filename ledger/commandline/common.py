"""What every sub-command shares: the run's settings (database, actor, JSON),
output (tables or JSON), date options parsed before the ledger opens, the
progress bar, and the one-line error with its exit status.

Only click and the standard library at import: the ledger's own modules load
on first use, so `ledger --help` stays as quick as click itself."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import click

from ledger.render import dump  # standard library only; shared with the HTTP API

EXIT_INTERRUPTED = 130  # Ctrl-C, as shells expect; the ledger's own statuses are in ledger/errors.py


class Settings:
    """The run's global options (`--db`, `--as`, `--json`) and its ledger,
    opened on first use and closed when the run ends."""

    def __init__(self, db: str | None, actor: str, as_json: bool) -> None:
        self.db, self.actor, self.json = db, actor, as_json
        self._ledger: Any = None
        # What is done, for the line an interrupt (Ctrl-C) prints.
        self.done = "anything written was written whole (one transaction per command or batch)"

    def ledger(self) -> Any:
        if self._ledger is None:
            from ledger.service import Ledger

            self._ledger = Ledger(self.db, self.actor, create=writes())
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


def writes() -> bool:
    """Whether the command being run may create the ledger (see `writer`)."""
    ctx = click.get_current_context(silent=True)
    return ctx is None or getattr(ctx.command, "writes", False)


def fail(message: str, code: int) -> None:
    from ledger.db import redact  # whatever the message quotes, never a password

    click.echo(f"error: {bounded(redact(message))}", err=True)  # always one bounded line
    sys.exit(code)


def set_json(ctx: click.Context, _: Any, value: bool) -> None:
    if value:
        ctx.find_object(Settings).json = True


json_option = click.option(
    "--json", "as_json", is_flag=True, expose_value=False, callback=set_json,
    help="Print JSON instead of a table.",
)


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
def day_option(name: str) -> Callable[[click.Context, click.Parameter, str | None], date]:
    return lambda _ctx, _param, value: parse_day(value, name)


as_of_option = click.option("--as-of", metavar="DATE", callback=day_option("--as-of"),
                            help="Answer as of this effective date (default today); "
                                 "windows such as 90 days count back from it.")
known_at_option = click.option("--known-at", metavar="TIMESTAMP", callback=lambda _c, _p, value: parse_moment(value),
                               help="Answer as the ledger knew it at this recorded time (ISO 8601, UTC if no zone).")


def counted(progress: Callable[[int, int], None]) -> Callable[[int], None]:
    """Adapt a position bar to work reported as counts of items done."""
    done = [0]

    def advance(n: int) -> None:
        done[0] += n
        progress(done[0], 0)

    return advance


class ProgressBar:
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


def print_result(ctx: click.Context, result: Any) -> None:
    """One command's result: `applied: TYPE (ID) - note`, or its JSON."""
    d = result.as_dict()
    emit(ctx, d, lambda: f"{d['status']}: {d['type']} ({d['id']})" + (f" - {d['note']}" if d.get("note") else ""))


def ledger_of(ctx: click.Context) -> Any:
    """The run's ledger (`ledger.service.Ledger`), opened on first use."""
    return ctx.find_object(Settings).ledger()


class DomainChoice(click.Choice):
    """A choice among the values of a domain constant (`name` in `module`),
    read when the option is first used or shown: the domain's modules load the
    event-sourcing library, and `ledger --help` stays quick."""

    def __init__(self, module: str, name: str) -> None:
        self.source = (module, name)
        super().__init__((), case_sensitive=True)

    @property  # type: ignore[override]
    def choices(self) -> Sequence[str]:
        import importlib

        module, name = self.source
        return tuple(getattr(importlib.import_module(module), name))

    @choices.setter
    def choices(self, _: Sequence[str]) -> None:
        pass  # read from the domain, never stored
