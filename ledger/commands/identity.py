"""Command identity: what makes two submitted lines the same command.

A command id is an idempotency key *of its actor* (INTERFACE.md, "Additions"):
the key is the pair (resolved actor, id), where the resolved actor is the
line's `actor`, or the submitter's when the line has none. The same id from
another actor is another command.

Under one key the ledger keeps a fingerprint of the command with its outcome.
A line with that key and the same fingerprint is the same command (reported
`duplicate`, or `refused` again with the original reason); with another
fingerprint it is a `conflict`. The fingerprint covers the envelope as written,
never defaults filled in later:

- `type`;
- `on` as given, or absent. Absent stays absent (not "now"), so re-running a
  file whose lines have no `on` stays `duplicate` on any later day. A given
  `on` is compared as the effective time it denotes once parsed (with the
  ledger's settings): `2026-03-05` and `2026-03-05T00:00:00Z` are the same
  when a date means midnight UTC.
- `data` as validated: canonical JSON (sorted keys) of the command's typed
  fields, absent optional fields and `null` alike left out, text as the model
  keeps it (surrounding whitespace stripped), and numbers by value: `"100.00"`,
  `100.00`, `100` and `"100.0"` are one amount. Fields the ledger computes
  itself (a sweep's candidates, an issued statement's figures) are left out:
  the command is what was asked (the day swept, the partner and month issued).
- not `actor`: it is part of the key, so a line that names its actor and the
  same line without `actor`, sent by that actor, are the same command.

Outcomes recorded before ids were per actor (the `ledger_commands` table of
earlier versions) are read as they were meant: an applied one belongs to the
actor its events record, and its fingerprint is its type and data only (that
table never knew how `on` was given); a refused one binds the id for every
actor, as before (its actor was never recorded), except a refusal of who
submitted the line, which was never the command's own outcome."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # the aggregates import this module, and the models import the aggregates
    from .models import Command

LEGACY = "legacy:"  # prefix of a fingerprint rebuilt from an outcome recorded before this scheme
# authority.may_act_for's reason as earlier versions recorded it: a refusal of the
# submitter, not of the command (fixed text: it matches rows already written).
_SUBMITTER_REFUSAL = re.compile(r" may not submit commands as \S+; only system may")


def command_key(actor: str, command_id: str) -> str:
    """The aggregate key of the CommandRecord of `command_id` under `actor`
    (e.g. "partner:acme/c-1"). Neither an actor nor an id can hold "/", so
    distinct pairs never share a key; the store's unique (aggregate, version)
    key then lets one writer only apply a given (actor, id)."""
    return f"{actor}/{command_id}"


def fingerprint(cmd: Command) -> str:
    """The SHA-256 hex digest of the command's type, `on` as given (None when
    absent) and validated data, as described in this module's docstring."""
    data = cmd.data.model_dump(mode="python", exclude_none=True)
    return _digest({"type": cmd.type, "on": _plain(cmd.on), "data": _asked(cmd.type, data)})


def legacy_fingerprint(command_type: str, data: dict[str, Any]) -> str:
    """The fingerprint of an applied command recorded before this scheme, from
    its CommandRecord (type and data as recorded, i.e. `Command.data_json()`):
    `on` is not compared. `legacy_fingerprint(cmd.type, cmd.data_json())` of
    a new line gives the value to compare."""
    return LEGACY + _digest({"type": command_type, "data": _asked(command_type, data)})


def same_command(recorded: str | None, cmd: Command) -> bool:
    """Whether `cmd` is the command whose fingerprint was `recorded` under the
    same key. None (a refusal recorded before this scheme, command unknown)
    matches any command: that id's outcome stays final as it always was."""
    if recorded is None:
        return True
    if recorded.startswith(LEGACY):
        return recorded == legacy_fingerprint(cmd.type, cmd.data_json())
    return recorded == fingerprint(cmd)


def submitter_refusal(reason: str | None) -> bool:
    """Whether a refusal recorded before this scheme was about who submitted
    the line (only system submits for others), which is no final outcome."""
    return bool(reason and _SUBMITTER_REFUSAL.search(reason))


def _asked(command_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """`data` without the fields the ledger fills in itself (the command
    type's `derived` fields in the registry): not part of what was asked."""
    from .registry import COMMAND_TYPES  # the registry imports the aggregates, which import this module

    known = COMMAND_TYPES.get(command_type)
    derived = known.derived if known is not None else frozenset()
    return {k: v for k, v in data.items() if k not in derived}


def _digest(obj: dict[str, Any]) -> str:
    # orjson writes the same bytes as the json call below for every value a
    # command's data holds (no floats: money is Decimal; times, dates and
    # dataclasses go to _plain), several times faster; what it writes
    # differently or refuses (an integer beyond 64 bits, a lone surrogate, a
    # key that is not text) goes through json as before, with its errors.
    try:
        raw = orjson.dumps(obj, default=_plain, option=_ORJSON)
    except orjson.JSONEncodeError:
        raw = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                         default=_plain).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()


_ORJSON = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _plain(value: Any) -> Any:
    """JSON for what json cannot write: an amount by its value, a time in ISO
    8601, an enumeration by its value, anything else as its text."""
    if isinstance(value, Decimal):
        return "0" if value == 0 else format(value.normalize(), "f")
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return None if value is None else str(value)
