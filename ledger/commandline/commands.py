"""`ledger partner|deal|trial|subscription|usage SUB`: one sub-command per
command type, derived from the command registry (ledger/commands/registry.py):
its name, help, options (one per data field, with the field's description as
help) and positional arguments. Nothing here names a command type.

The groups and their help are listed here, so `ledger --help` needs no more
than click; a group's sub-commands are built from the registry only when it
is used (`ledger deal ...`, `ledger deal --help`)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import click

from .common import json_option, ledger_of, print_result, writer

GROUP_HELP = {
    "partner": "Enroll partners and set commission rates.",
    "deal": "Register, review, move, note, win and lose deals.",
    "trial": "Start and extend customer trials.",
    "subscription": "Start, renew, cancel and refund subscriptions.",
    "usage": "Product usage reports (feed the customer overview).",
}


def make_command(command_type: Any) -> click.Command:
    """The sub-command of a `registry.CommandType`: an option per data field
    (also a positional argument for its `positional` fields), `--on`, `--id`
    and `--json`. It builds the command's envelope, validates it (malformed:
    exit 2 before the ledger is opened, or made) and submits it."""
    fields = command_type.model.model_fields

    def callback(**kwargs: Any) -> None:
        data: dict[str, Any] = {}
        for field in fields:
            opt, pos = kwargs.get(field), kwargs.get(f"pos_{field}")
            if opt is not None and pos is not None and opt != pos:
                raise click.UsageError(f"{field} given twice with different values")
            value = opt if opt is not None else pos
            if value is not None:
                data[field] = value
        envelope = {"id": kwargs["command_id"] or f"cli-{uuid4().hex}", "type": command_type.name,
                    "on": kwargs["on"], "data": data}
        from ledger.commands.models import build

        command = build(envelope, options=True)
        ctx = click.get_current_context()
        print_result(ctx, ledger_of(ctx).command(command))

    params: list[click.Parameter] = [
        click.Argument([f"pos_{f}"], required=False, metavar=f.upper()) for f in command_type.positional
    ]
    params += [click.Option([f"--{name.replace('_', '-')}", name], help=info.description)
               for name, info in fields.items()]
    params += [
        click.Option(["--on"], metavar="DATE", help="Effective date or date-time (default now)."),
        click.Option(["--id", "command_id"], metavar="ID", help="Command id for idempotency (default: new)."),
    ]
    cmd = writer(click.Command(
        name=command_type.cli[1], callback=callback, params=params,
        help=command_type.summary + "\n\nPositional arguments may be given as options instead.",
    ))
    json_option(cmd)
    return cmd


class CommandTypeGroup(click.Group):
    """A group whose sub-commands are the registry's command types of that
    group (built when asked), followed by the queries added to it (`deal show`)."""

    def _types(self) -> dict[str, Any]:
        from ledger.commands.registry import in_group

        return in_group(self.name or "")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self._types(), *self.commands]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command_type = self._types().get(name)
        return make_command(command_type) if command_type is not None else self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, t.summary.split(".")[0]) for name, t in self._types().items()]
        rows += [(name, cmd.get_short_help_str()) for name, cmd in self.commands.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


GROUPS = {name: CommandTypeGroup(name=name, help=text) for name, text in GROUP_HELP.items()}
COMMANDS = list(GROUPS.values())
