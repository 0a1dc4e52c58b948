"""How finance and partner managers see the ledger's answers: terminal tables
aligned in any script, statements as text, JSON, CSV for programs and xlsx
workbooks for spreadsheets.

Money is printed with its currency's minor units through `_money`, the one
place that decides them. CSV and xlsx never let a spreadsheet run a text cell
as a formula: CSV text that could start one gets the single-quote prefix
OWASP advises; xlsx text cells are written as strings, never parsed."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal
from typing import Any

from wcwidth import wcswidth  # a table's widths in any script

from . import money
from .render import plain as _plain

# Statement line fields, in the order finance reads them.
LINE_COLUMNS = [
    "day", "entry", "subscription", "charge", "customer", "customer_domain", "deal", "order_number", "plan",
    "billing", "amount", "currency", "rate", "commission", "kind", "vendor_share", "partner_share",
    "payable_to_partner", "invoice_to_partner", "position", "adjustment",
]
# The terminal table: what fits a screen (the exports carry every field).
TABLE_COLUMNS = [
    "day", "entry", "subscription", "customer", "deal", "order_number", "plan", "billing", "amount", "currency",
    "rate", "commission", "kind", "position", "adjustment",
]
MONEY = ("amount", "commission", "vendor_share", "partner_share", "payable_to_partner", "invoice_to_partner")
TOTAL_COLUMNS = ["currency", *MONEY]
NUMBERS = (*MONEY, "rate", "charge", "position")
# Characters that make a spreadsheet treat a cell as a formula (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _money(amount: Decimal | str, currency: str) -> str:
    """`amount` as text with `currency`'s minor units (12000 EUR -> "12000.00"),
    by ledger/money.py, the one place that decides them."""
    return money.format_money(Decimal(amount), currency)


def decimals(currency: str) -> int:
    """How many minor-unit digits `currency` prints with (ISO 4217 via Babel)."""
    return money.minor_units(currency)


def plural(n: int, word: str) -> str:
    """`1 line`, `2 lines`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# -- terminal tables ---------------------------------------------------------------
def width(text: str) -> int:
    """Columns `text` takes on a terminal (East Asian wide characters take two)."""
    w = wcswidth(text)
    return w if w >= 0 else len(text)  # non-printable characters: count them as one each


def table(rows: list[dict[str, Any]], columns: list[str], empty: str = "(none)") -> str:
    """Rows as an aligned text table under a header, or `empty` for no rows."""
    if not rows:
        return empty
    cells = [columns, *([("" if r.get(c) is None else str(_plain(r.get(c)))) for c in columns] for r in rows)]
    sizes = [[width(v) for v in row] for row in cells]  # each cell measured once
    widths = [max(row[i] for row in sizes) for i in range(len(columns))]

    def line(vals: list[str], taken: list[int]) -> str:
        return "  ".join(v + " " * (w - t) for v, t, w in zip(vals, taken, widths)).rstrip()

    rule = ["-" * w for w in widths]
    return "\n".join([line(cells[0], sizes[0]), line(rule, widths),
                      *(line(r, t) for r, t in zip(cells[1:], sizes[1:]))])


# -- statements --------------------------------------------------------------------------
def _shown(line: dict[str, Any]) -> dict[str, Any]:
    """A line with its money printed in its currency's minor units."""
    return line | {k: _money(line[k], line["currency"]) for k in MONEY if k in line}


def _shown_totals(st: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c: {k: _money(v, c) for k, v in t.items()} for c, t in st["totals"].items()}


def statement_json(st: dict[str, Any]) -> dict[str, Any]:
    """The statement as `--json` prints it: money as strings in minor units,
    days in ISO 8601."""
    return st | {"lines": [_shown(line) | {"day": _plain(line["day"])} for line in st["lines"]],
                 "totals": _shown_totals(st)}


def _issued_text(st: dict[str, Any]) -> str:
    issued = st.get("issued")
    if not issued:
        return "not issued"
    return f"issued at position {issued['position']} on {str(issued['recorded'])[:10]}"


def statement_text(st: dict[str, Any]) -> str:
    """The statement as a partner manager reads it on a terminal."""
    parts = [f"Commission statement {st['partner']} {st['month']} ({_issued_text(st)}, "
             f"{plural(len(st['lines']), 'line')})", "",
             table([_shown(line) for line in st["lines"]], TABLE_COLUMNS, empty="(no charges or refunds)"), ""]
    for currency, t in _shown_totals(st).items():
        parts.append(
            f"{currency}: amount {t['amount']}, commission {t['commission']}, vendor share {t['vendor_share']}, "
            f"payable to partner {t['payable_to_partner']}, invoice to partner {t['invoice_to_partner']}")
    parts.append(f"sha256 {st['fingerprint']}")
    return "\n".join(parts)


def safe_text(text: str) -> str:
    """Text a spreadsheet will not run: a leading =, +, -, @, tab or CR gets
    a single quote before it (OWASP's advice for CSV injection)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _csv_cell(line: dict[str, Any], column: str) -> str:
    value = line.get(column)
    if value is None:
        return ""
    if column in MONEY:
        return _money(value, line["currency"])
    if column in NUMBERS:
        return str(value)
    return safe_text(str(_plain(value)))


def statement_csv(st: dict[str, Any]) -> str:
    """The lines as RFC 4180 CSV (UTF-8, CRLF), for programs: numbers as plain
    numbers, text neutralised against formulas."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(LINE_COLUMNS)
    for line in st["lines"]:
        w.writerow([_csv_cell(line, c) for c in LINE_COLUMNS])
    return out.getvalue()


def statement_xlsx(st: dict[str, Any], path: str | Any) -> None:
    """Write the statement as an xlsx workbook at `path` (a file name, or a
    binary file object such as io.BytesIO): a header (partner,
    month, issued or not, fingerprint), the lines with amounts and rates as
    numbers in the currency's decimals and days as dates, then totals per
    currency. Every text cell is a string, never a formula. Raises OSError
    when the file cannot be written."""
    import xlsxwriter  # a well-kept writer of real workbooks; loaded only for --xlsx

    book = xlsxwriter.Workbook(path, {"strings_to_formulas": False, "strings_to_numbers": False,
                                      "strings_to_urls": False, "in_memory": not isinstance(path, str)})
    _fill(book, st)
    try:
        book.close()
    except xlsxwriter.exceptions.FileCreateError as e:
        cause = e.args[0] if e.args and isinstance(e.args[0], OSError) else None
        raise OSError(getattr(cause, "errno", None), getattr(cause, "strerror", None) or str(e)) from None


def statement_xlsx_bytes(st: dict[str, Any]) -> bytes:
    """The workbook of `statement_xlsx` as bytes (an HTTP download)."""
    out = io.BytesIO()
    statement_xlsx(st, out)
    return out.getvalue()


def _fill(book: Any, st: dict[str, Any]) -> None:
    sheet = book.add_worksheet(f"{st['month']}")
    bold = book.add_format({"bold": True})
    title = book.add_format({"bold": True, "font_size": 14})
    day_format = book.add_format({"num_format": "yyyy-mm-dd", "align": "left"})
    rate_format = book.add_format({"num_format": "0.00####"})
    integer = book.add_format({"num_format": "0"})
    money_formats: dict[str, Any] = {}

    def money_format(currency: str) -> Any:
        if currency not in money_formats:
            places = decimals(currency)
            money_formats[currency] = book.add_format({"num_format": "0." + "0" * places if places else "0"})
        return money_formats[currency]

    widths = [width(c) for c in LINE_COLUMNS]

    def text(row: int, col: int, value: str, fmt: Any = None) -> None:
        sheet.write_string(row, col, value, fmt)
        if col < len(widths):
            widths[col] = max(widths[col], width(value))

    sheet.write_string(0, 0, "Commission statement", title)
    header = [("Partner", st["partner"]), ("Month", st["month"]), ("Issued", _issued_text(st)),
              ("Fingerprint (sha256)", st["fingerprint"])]
    for i, (label, value) in enumerate(header, start=1):
        sheet.write_string(i, 0, label, bold)
        sheet.write_string(i, 1, value)  # long values spill over the empty cells to the right
    top = len(header) + 2
    for col, name in enumerate(LINE_COLUMNS):
        text(top, col, name, bold)
    row = top
    for row, line in enumerate(st["lines"], start=top + 1):
        for col, name in enumerate(LINE_COLUMNS):
            value = line.get(name)
            if value is None:
                continue
            if name == "day":
                sheet.write_datetime(row, col, datetime.fromisoformat(str(value)), day_format)
                widths[col] = max(widths[col], 10)
            elif name in MONEY:
                shown = _money(value, line["currency"])
                sheet.write_number(row, col, Decimal(shown), money_format(line["currency"]))
                widths[col] = max(widths[col], len(shown))
            elif name == "rate":
                sheet.write_number(row, col, Decimal(str(value)), rate_format)
                widths[col] = max(widths[col], len(str(value)))
            elif name in NUMBERS:
                sheet.write_number(row, col, int(value), integer)
                widths[col] = max(widths[col], len(str(value)))
            else:
                text(row, col, str(value))
    row += 2
    text(row, 0, "Totals per currency", bold)
    row += 1
    for col, name in enumerate(TOTAL_COLUMNS):
        text(row, col, name, bold)
    for currency, t in st["totals"].items():
        row += 1
        text(row, 0, currency)
        for col, name in enumerate(MONEY, start=1):
            shown = _money(t[name], currency)
            sheet.write_number(row, col, Decimal(shown), money_format(currency))
            widths[col] = max(widths[col], len(shown))
    for col, w in enumerate(widths):
        sheet.set_column(col, col, min(w, 50) + 2)
    sheet.freeze_panes(top + 1, 0)
    # Printed (or saved as PDF): landscape A4, all columns on one page's width.
    sheet.set_landscape()
    sheet.set_paper(9)
    sheet.fit_to_pages(1, 0)
    sheet.repeat_rows(top)
