"""`ledger submit FILE` (commands as JSON Lines, a chunk at a time) and
`ledger sweep` (what time alone decided)."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from datetime import date
from typing import Any

import click

from ledger.errors import EXIT_REFUSED, EXIT_USAGE

from .common import ProgressBar, Settings, day_option, dump, json_option, ledger_of, print_result, writer


@writer
@click.command()
@click.argument("file", type=click.File("rb"))
@click.option("--problems-only", is_flag=True, help="Print only refused and malformed lines (and the summary).")
@json_option
@click.pass_context
def submit(ctx: click.Context, file: Any, problems_only: bool) -> None:
    """Submit commands from a JSON Lines FILE (- for stdin), one per line.

    \b
    Each line: {"id": "c-1", "type": "register_deal", "on": "2026-01-10",
                "actor": "partner:acme", "data": {...}}
    Re-submitting is safe: a command id is a key of its actor (the line's
    actor, or --as); the same command again is reported as duplicate, or
    refused again with its reason; a different command under an id its
    actor already used is a conflict (a corrected command needs a new id).
    A refused or conflicting line writes nothing; the other lines still apply.
    Exit status: 0 all applied or duplicate, 1 some refused or conflict,
    2 some malformed.
    """
    settings = ctx.find_object(Settings)
    ledger = settings.ledger()
    # Bulk work makes many short-lived objects around a large long-lived cache:
    # collect the young generation less often, and never scan what was loaded.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    counts = {s: 0 for s in ("applied", "duplicate", "conflict", "refused", "malformed")}
    total = 0
    settings.done = "no line was reported yet; submit the file again to finish (nothing applies twice)"
    # A chunk at a time, reporting as it goes: memory stays flat however long the file.
    with ProgressBar(_size(file), "applying") as progress:
        for first, lines, consumed in _chunks(file, SUBMIT_CHUNK, SUBMIT_CHUNK_BYTES):
            for r in ledger.submit_lines(lines, first=first):
                total += 1
                counts[r.status] += 1
                if not (problems_only and r.status in ("applied", "duplicate")):
                    click.echo(_reported(r, settings.json))
            progress(consumed, 0)
            # With collections that rare, cyclic garbage would otherwise pile up
            # with the file (100,000 commands: 668 MB); one full collection per
            # chunk keeps the peak flat (204 MB) for 7 % of the time.
            gc.collect()
            settings.done = (f"the {total} lines reported above are final ({counts['applied']} applied); "
                             "submit the file again to finish (nothing applies twice)")
    click.echo(_summary(total, counts, ledger.app.head(), settings.json))
    if counts["malformed"]:
        sys.exit(EXIT_USAGE)
    if counts["refused"] or counts["conflict"]:
        sys.exit(EXIT_REFUSED)


def _reported(result: Any, as_json: bool) -> str:
    """One line's result: its JSON, or `line N: status type id - reason or note`."""
    d = result.as_dict()
    if as_json:
        return dump(d)
    detail = d.get("reason") or d.get("note") or ""
    named = " ".join(x for x in (d["status"], d["type"], d["id"]) if x)
    return f"line {d['line']}: {named}" + (f" - {detail}" if detail else "")


def _summary(total: int, counts: dict[str, int], position: int, as_json: bool) -> str:
    """The last line: lines per status (and, as JSON, the ledger's head position)."""
    if as_json:
        return dump({"summary": {"lines": total, **counts, "position": position}})
    from ledger.export import plural

    return (f"{plural(total, 'line')}: {counts['applied']} applied, {counts['duplicate']} duplicate, "
            f"{counts['conflict']} conflict, {counts['refused']} refused, {counts['malformed']} malformed")


SUBMIT_CHUNK = 5_000  # lines read, applied and reported at a time, at most
SUBMIT_CHUNK_BYTES = 4 * 1024 * 1024  # ... and bytes: memory is bounded by bytes, not lines


def _size(file: Any) -> int:
    """Bytes in a regular file (0 for a pipe: no bar)."""
    try:
        return os.fstat(file.fileno()).st_size if os.path.isfile(file.name) else 0
    except (OSError, AttributeError, TypeError):
        return 0


def _chunks(file: Any, size: int, max_bytes: int) -> Iterator[tuple[int, list[bytes], int]]:
    """(number of the first line, up to `size` lines or about `max_bytes`,
    bytes read so far). A line longer than a command may be is kept only up
    to that limit (it is malformed anyway) and the rest of it is skipped, so
    no line is ever held whole."""
    from ledger.commands.models import MAX_LINE_BYTES

    limit = MAX_LINE_BYTES + 2
    first, consumed, held, lines = 1, 0, 0, []
    while raw := file.readline(limit):
        consumed += len(raw)
        if len(raw) == limit and not raw.endswith(b"\n"):
            while (rest := file.readline(1 << 20)) and not rest.endswith(b"\n"):
                consumed += len(rest)
            consumed += len(rest)
            lines.append(raw)  # over the limit: malformed, and no \r inside it splits it
        else:
            lines.extend(raw.splitlines())  # as bytes.splitlines counts lines: a lone \r ends one too
        held += len(raw)
        if len(lines) >= size or held >= max_bytes:
            yield first, lines, consumed
            first, lines, held = first + len(lines), [], 0
    if lines:
        yield first, lines, consumed


@writer
@click.command()
@click.option("--on", metavar="DATE", callback=day_option("--on"), help="Sweep as of this date (default today).")
@json_option
@click.pass_context
def sweep(ctx: click.Context, on: date) -> None:
    """Record protections that lapsed and trials that expired (system)."""
    print_result(ctx, ledger_of(ctx).sweep(on))


COMMANDS = [submit, sweep]
