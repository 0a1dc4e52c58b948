"""Every value a user can type is input: each option and argument of every
sub-command (found by walking `ledger --help`), given extreme integers, the
first and last calendar dates, long strings and control characters, ends with
exit 0, 1 or 2 and at most one bounded line on stderr; never an internal error
(exit 3) or a traceback. On SQLite and PostgreSQL, against a small program."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import cli

from .conftest import FIGURES, Harness
from .test_hostile_input import world

EXTREMES = [
    "0001-01-01", "9999-12-31", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999+00:00",
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0000-00-00", "0001-01",
    "9999-12", "10000-01-01", "-1", "0", "9223372036854775807", "9223372036854775808",
    "99999999999999999999", "-99999999999999999999", "1e999", "NaN", "-Infinity",
    "x" * 5000, "ü" * 3000, "a\x00b", "a\nb", "a\u202eb", "a\x85b", " ", "",
]

# A valid value per option name, so the value under test is what gets judged.
BASE = {
    "partner": "acme", "name": "Acme", "domain": "acme.fi", "commission_rate": "0.2", "deal": "d-accept",
    "customer_name": "X Oy", "contact_name": "Jane", "customer_email": "j@x.fi", "note": "n",
    "reason": "invalid-lead", "stage": "trial", "text": "t", "billing": "credit-card", "order_number": "o-1",
    "trial": "t-1", "days": "14", "subscription": "s-1", "customer_domain": "won.fi", "plan": "p",
    "amount": "1", "currency": "EUR", "period": "monthly", "users": "3", "framework": "ISO", "progress": "50",
    "activities": "2", "charge": "1", "on": "2026-02-05", "as_of": "2026-02-05", "month": "2026-02",
    "position": "1", "start": "1", "stop": "2", "domain_arg": "won.fi", "code": "renewal-due", "subject": "s-1",
    "statement_id": "acme/2026-02", "seed": "1", "partners": "1", "deal_count": "1",
}
SKIP = {"file", "output", "as_json", "summary", "as_csv", "problems_only", "filter_", "review",
        "command_id"}  # files, flags and choices are click's own; ids are free text


def commands() -> list[tuple[list[str], click.Command]]:
    out = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            if path and any(isinstance(p, click.Option) and p.name not in SKIP for p in cmd.params):
                out.append((path, cmd))
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])
        else:
            out.append((path, cmd))

    walk(cli.main, [])
    return out


def argv(path: list[str], cmd: click.Command, target: str | None, value: str) -> list[str]:
    args = list(path)
    for p in cmd.params:
        if p.name in SKIP:
            continue
        name = p.name.removeprefix("pos_")
        if isinstance(p, click.Argument):
            if p.name.startswith("pos_"):
                continue  # the same field is given as an option
            args.append(value if p.name == target else BASE.get("domain_arg" if name == "domain" else name, "x"))
        elif p.name == target:
            args += [p.opts[0], value]
        elif name in BASE and (p.required or name in ("month", "partner") and path == ["statement"]):
            args += [p.opts[0], BASE[name]]
        elif isinstance(cmd, click.Command) and name in BASE and path[0] in (
                "partner", "deal", "trial", "subscription", "usage"):
            args += [p.opts[0], BASE[name]]
    return args


def cases() -> list[tuple[list[str], click.Command, str]]:
    out = []
    for path, cmd in commands():
        if path == ["demo"]:
            continue  # below, with its own bounds: a valid demo is a long run
        for p in cmd.params:
            if p.name not in SKIP and not p.name.startswith("pos_"):
                out.append((path, cmd, p.name))
    return out


def problem(result: Any, args: list[str]) -> str | None:
    """What is wrong with a run's outcome, or None."""
    err = result.stderr
    if err.startswith("Usage:") and result.exit_code == 2:  # click's usage lines, then one bounded error line
        err = "\n".join(line for line in err.splitlines()[3:]) + "\n"
    if (result.exit_code in (0, 1, 2) and "Traceback" not in err and "internal error" not in err
            and err.count("\n") <= 1 and len(err) <= 500):
        return None
    return f"ledger {' '.join(a[:40] for a in args)} -> {result.exit_code}: {result.stderr[:300]!r}"


def check(result: Any, args: list[str]) -> None:
    assert problem(result, args) is None, problem(result, args)


def test_every_option_of_every_command_takes_extreme_values(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    # `serve` is judged here up to the server: a valid port and host would serve forever.
    import ledger.api.server

    monkeypatch.setattr(ledger.api.server, "serve", lambda *args, **kwargs: None)
    monkeypatch.chdir(tmp_path)  # values given to file options (`--xlsx 9999-12-31`) are written here
    h = Harness(db_url)
    try:
        world(h)
    finally:
        h.close()
    runner = CliRunner()
    tried, problems = 0, []
    for path, cmd, target in cases():
        for value in EXTREMES:
            args = argv(path, cmd, target, value)
            for actor in ("vendor:finance", "system") if path[0] in ("audit", "statement") else ("vendor:manager",):
                result = runner.invoke(cli.main, ["--db", db_url, "--as", actor, *args])
                tried += 1
                if (p := problem(result, args)) is not None:
                    problems.append(p)
    FIGURES["CLI option values"] += tried
    assert not problems, f"{len(problems)} of {tried}:\n" + "\n".join(problems)
    assert tried > 1000


@pytest.mark.parametrize("option", ["--seed", "--partners", "--deals"])
@pytest.mark.parametrize("value", ["-1", "99999999999999999999", "x", "9223372036854775808"])
def test_demo_sizes_are_bounded(tmp_path: Path, option: str, value: str) -> None:
    result = CliRunner().invoke(cli.main, ["--db", f"sqlite:///{tmp_path / 'd.db'}", "demo", option, value])
    check(result, ["demo", option, value])
    if option != "--seed":
        assert result.exit_code == 2
