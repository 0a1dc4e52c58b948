"""The `ledger` command line, one module per group of sub-commands.

- `main`: the `ledger` group, its global options, errors into exit statuses.
- `common`: settings, output, date options, progress bars, shared by all.
- `commands`: one sub-command per command type, from the command registry.
- `submit`: `submit FILE` (JSON Lines) and `sweep`.
- `queries`: `overview`, `attention`, `deals`, `deal show`, `subscriptions`, `statement`.
- `audit`, `projections`, `tokens` (and `serve`), `demo`.

`cli.py` (the entry point) only calls `main`."""
