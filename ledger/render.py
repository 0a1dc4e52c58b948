"""The machine-readable rendering of query answers, shared by the CLI's
`--json` and the HTTP API so both print the same JSON: money as decimal
strings, dates and times in ISO 8601. Standard library only (the CLI's
`--help` stays quick)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any


def plain(value: Any) -> Any:
    """`value` with Decimals as strings and dates/times as ISO 8601 strings,
    recursively through dicts, lists and tuples (a JSON-ready copy)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


# Characters JSON leaves raw inside strings that other tools take as line
# breaks: escaped, so JSON output is one line per record, by bytes too.
_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def dump(value: Any) -> str:
    """`value` as one line of JSON text (UTF-8 characters kept as they are,
    line-breaking characters escaped)."""
    import json  # here: `ledger --help` imports this module and never needs it

    return json.dumps(plain(value), ensure_ascii=False).translate(_BREAKS)


def attention_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attention items as shown: code, subject, partner, reason (the domain
    they were counted by stays internal)."""
    return [{k: v for k, v in i.items() if k != "domain"} for i in items]
