"""The `ledger` command line end to end, as scripts and finance spreadsheets
use it: a real subprocess per call, on SQLite and on PostgreSQL (`--db URL`).
Checks INTERFACE.md's contract: outputs (tables, JSON, JSON Lines, CSV) and
exit statuses (0 done, 1 refused, 2 bad usage or malformed input, 3 database
unreachable), one line on stderr and never a traceback."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("ledger")
LEDGER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-c", "import cli; cli.main()"]
TIMEOUT = 60
STARTUP_RACE = "tuple concurrently updated"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without its ledger settings, so only the test decides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


@dataclass
class Run:
    args: Sequence[str]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def jsonl(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    def __str__(self) -> str:
        return f"ledger {' '.join(self.args)} -> {self.code}\nstdout: {self.out}\nstderr: {self.err}"


def _start(args: Sequence[str], cwd: Path, stdin: str | None, env: dict[str, str] | None) -> subprocess.Popen:
    proc = subprocess.Popen(
        [*LEDGER, *args], cwd=cwd, env=_env(env), text=True, encoding="utf-8",
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    if stdin is not None:  # small inputs: written at once, so processes started together run together
        proc.stdin.write(stdin)
        proc.stdin.close()
        proc.stdin = None
    return proc


def run(*args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None) -> Run:
    proc = _start(args, cwd, stdin, env)
    out, err = proc.communicate(timeout=TIMEOUT)
    return Run(args, proc.returncode, out, err)


def run_all(calls: Sequence[Sequence[str]], cwd: Path) -> list[Run]:
    """Independent calls at once (help texts, failures before any write): one
    process start's cost instead of one per call."""
    procs = [(args, _start(args, cwd, None, None)) for args in calls]
    runs = []
    for args, p in procs:
        out, err = p.communicate(timeout=TIMEOUT)
        runs.append(Run(args, p.returncode, out, err))
    return runs


def assert_one_line_error(r: Run, code: int, *fragments: str) -> str:
    assert r.code == code, str(r)
    assert "Traceback" not in r.err and "Traceback" not in r.out, str(r)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, str(r)
    for fragment in fragments:
        assert fragment in lines[0], str(r)
    return lines[0]


def assert_usage_error(r: Run, *fragments: str) -> None:
    """Exit 2, a short message (click's usage lines allowed), no traceback."""
    assert r.code == 2, str(r)
    assert "Traceback" not in r.err and "Traceback" not in r.out, str(r)
    assert r.err.strip(), str(r)
    for fragment in fragments:
        assert fragment in r.err, str(r)


class Cli:
    """`ledger --db URL ...` in a scratch working directory."""

    def __init__(self, url: str, cwd: Path) -> None:
        self.url, self.cwd = url, cwd

    def __call__(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Run:
        return run("--db", self.url, *args, cwd=self.cwd, stdin=stdin, env=env)

    def ok(self, *args: str, stdin: str | None = None) -> Run:
        r = self(*args, stdin=stdin)
        assert r.code == 0, str(r)
        assert "Traceback" not in r.err, str(r)
        return r

    def many(self, *calls: Sequence[str]) -> list[Run]:
        """Independent calls at once (reads, or failures that write nothing).
        A process that lost the PostgreSQL start-up race (the product bug that
        test_processes_starting_together_on_postgres shows) is run again alone,
        so the other tests check what they are about."""
        runs = run_all([["--db", self.url, *c] for c in calls], self.cwd)
        return [self(*c) if r.code == 3 and STARTUP_RACE in r.err else r for c, r in zip(calls, runs)]

    def setup(self, lines: Sequence[dict[str, Any]]) -> int:
        """Submit lines as system; return the ledger's head after them."""
        r = self.ok("--as", "system", "--json", "submit", "-", stdin="".join(json.dumps(x) + "\n" for x in lines))
        summary = r.jsonl()[-1]["summary"]
        assert summary["applied"] == len(lines), str(r)
        return summary["position"]

    def head(self) -> int:
        rows = self.ok("projections", "status", "--json").json()
        heads = {row["head"] for row in rows}
        assert len(heads) == 1, rows
        assert all(row["position"] == row["head"] for row in rows), rows
        return heads.pop()

    def write(self, name: str, lines: Sequence[dict[str, Any] | str]) -> Path:
        path = self.cwd / name
        path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), "utf-8")
        return path


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(db_url, tmp_path)


def line(id_: str, type_: str, on: str | None = None, actor: str | None = None, **data: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": id_, "type": type_, "data": data}
    if on:
        out["on"] = on
    if actor:
        out["actor"] = actor
    return out


def register(id_: str, deal: str, partner: str = "acme", email: str = "jane@example.fi", on: str = "2026-01-10",
             name: str = "Example Oy", actor: str | None = "partner") -> dict[str, Any]:
    return line(id_, "register_deal", on=on, actor=f"partner:{partner}" if actor == "partner" else actor,
                deal=deal, partner=partner, customer_name=name, contact_name="Jane Doe", customer_email=email)


PARTNERS = [
    line("p-1", "enroll_partner", on="2026-01-01", partner="acme", name="Acme Advisory", domain="acme.fi",
         commission_rate="0.20"),
    line("p-2", "enroll_partner", on="2026-01-01", partner="beta", name="Beta Consulting", domain="beta.de",
         commission_rate="0.15"),
]

# A small program: a won deal with a yearly subscription, another partner's
# pending deal, a trial, and a usage report.
PROGRAM = [
    *PARTNERS,
    register("c-1", "d-1"),
    line("c-2", "accept_deal", on="2026-01-11", actor="vendor:manager", deal="d-1"),
    line("c-3", "win_deal", on="2026-02-01", actor="partner:acme", deal="d-1", billing="credit-card"),
    line("c-4", "start_subscription", on="2026-02-03", actor="vendor:manager", subscription="s-1",
         customer_domain="example.fi", plan="professional", amount="1200.00", currency="EUR", period="yearly",
         billing="credit-card", deal="d-1"),
    register("c-5", "d-2", partner="beta", email="bob@bco.fi", name="Bäckerei Größe GmbH", on="2026-02-01"),
    line("c-6", "start_trial", on="2026-02-10", actor="partner:acme", trial="t-1", partner="acme",
         customer_name="Trialco Oy", customer_email="x@trialco.fi"),
    line("c-7", "report_usage", on="2026-02-15", customer_domain="example.fi", users=5, framework="ISO 27001",
         progress=40, activities=3),
]


# -- bulk submission -------------------------------------------------------------------
def test_submit_file_reports_each_line_and_resubmission_is_all_duplicate(cli: Cli) -> None:
    path = cli.write("program.jsonl", PROGRAM)
    first = cli.ok("--as", "system", "submit", str(path))
    out = first.out.splitlines()
    assert out[0] == "line 1: applied enroll_partner p-1"
    assert out[2] == "line 3: applied register_deal c-1"
    assert out[7].startswith("line 8: applied start_trial c-6") and "runs until 2026-02-24" in out[7]
    assert len(out) == len(PROGRAM) + 1
    assert all(" applied " in o for o in out[:-1])
    assert out[-1] == (f"{len(PROGRAM)} lines: {len(PROGRAM)} applied, 0 duplicate, 0 conflict, 0 refused, "
                       "0 malformed")
    assert first.err == ""
    head = cli.head()
    assert head > len(PROGRAM)

    # The same file again, --json as a global option: every line a duplicate, nothing written.
    again = cli.ok("--as", "system", "--json", "submit", str(path))
    *results, summary = again.jsonl()
    assert [(r["line"], r["id"], r["status"]) for r in results] == [
        (i, c["id"], "duplicate") for i, c in enumerate(PROGRAM, 1)]
    assert [r["type"] for r in results] == [c["type"] for c in PROGRAM]
    assert summary == {"summary": {"lines": len(PROGRAM), "applied": 0, "duplicate": len(PROGRAM), "conflict": 0,
                                   "refused": 0, "malformed": 0, "position": head}}
    # And once more from stdin, --json after the sub-command.
    stdin = cli.ok("--as", "system", "submit", "-", "--json", stdin=path.read_text())
    *results, summary = stdin.jsonl()
    assert {r["status"] for r in results} == {"duplicate"} and summary["summary"]["duplicate"] == len(PROGRAM)
    assert cli.head() == head


def test_submit_stdin_refused_lines_write_nothing_and_exit_1(cli: Cli) -> None:
    head = cli.setup(PARTNERS)
    # The actor defaults to the submitter (--as partner:acme); a blank line is skipped
    # but keeps the numbering.
    lines = [
        json.dumps(register("r-1", "d-1", actor=None)),
        json.dumps(register("r-2", "d-own", email="me@acme.fi", actor=None)),
        "",
        json.dumps(line("r-3", "add_deal_note", on="2026-01-12", deal="d-1", text="call booked")),
        json.dumps(line("r-4", "accept_deal", on="2026-01-12", deal="d-1")),
    ]
    r = cli("--as", "partner:acme", "submit", "-", "--json", stdin="\n".join(lines) + "\n")
    assert r.code == 1, str(r)
    *results, summary = r.jsonl()
    assert [(x["line"], x["id"], x["status"]) for x in results] == [
        (1, "r-1", "applied"), (2, "r-2", "refused"), (4, "r-3", "applied"), (5, "r-4", "refused")]
    assert "own domain" in results[1]["reason"]
    assert "may not accept deal" in results[3]["reason"]
    assert summary["summary"] | {"position": None} == {
        "lines": 4, "applied": 2, "duplicate": 0, "conflict": 0, "refused": 2, "malformed": 0, "position": None}
    # deal, customer, claim, record; note, the customer's lifecycle moving to 12 January, record
    assert summary["summary"]["position"] == head + 4 + 3
    head = summary["summary"]["position"]

    # Human output: the reason on the refused line; only system submits for others.
    r = cli("--as", "vendor:manager", "submit", "-",
            stdin=json.dumps(register("r-5", "d-5", email="a@other.fi", name="Other Oy")) + "\n")
    assert r.code == 1, str(r)
    assert r.out.splitlines() == [
        "line 1: refused register_deal r-5 - vendor:manager may not submit commands as partner:acme; only system may",
        "1 line: 0 applied, 0 duplicate, 0 conflict, 1 refused, 0 malformed"]
    assert cli.head() == head

    # Re-submitted with --problems-only: only the refused lines and the summary.
    r = cli("--as", "partner:acme", "submit", "-", "--problems-only", stdin="\n".join(lines))
    assert r.code == 1, str(r)
    assert r.out.splitlines() == [
        "line 2: refused register_deal r-2 - me@acme.fi is on partner acme's own domain; "
        "register the customer's name and email, not your own (refused before)",
        "line 5: refused accept_deal r-4 - partner:acme may not accept deal (refused before)",
        "4 lines: 0 applied, 2 duplicate, 0 conflict, 2 refused, 0 malformed"]


def test_submit_streams_a_file_longer_than_one_chunk_with_its_line_numbers(cli: Cli) -> None:
    import cli as ledger_cli

    head = cli.setup(PARTNERS)
    cli.ok("--as", "partner:acme", "submit", "-", stdin=json.dumps(register("s-0", "d-1", actor=None)) + "\n")
    count = ledger_cli.SUBMIT_CHUNK + 7
    lines = [json.dumps(line(f"s-{i}", "add_deal_note", on="2026-01-12", deal="d-1", text=f"note {i}"))
             for i in range(1, count + 1)]
    lines[2] = ""  # skipped, but counted
    wrong = ledger_cli.SUBMIT_CHUNK + 3  # a line in the second chunk
    lines[wrong - 1] = json.dumps(line("s-x", "add_deal_note", on="2026-01-12", deal="d-nope", text="lost"))
    lines[wrong] = "{not json"
    path = cli.write("notes.jsonl", lines)
    r = cli("--as", "partner:acme", "--json", "submit", "--problems-only", str(path))
    assert r.code == 2, str(r)
    *problems, summary = r.jsonl()
    assert [(p["line"], p["status"]) for p in problems] == [(wrong, "refused"), (wrong + 1, "malformed")]
    assert summary["summary"] | {"position": None} == {
        "lines": count - 1, "applied": count - 3, "duplicate": 0, "conflict": 0, "refused": 1, "malformed": 1,
        "position": None}
    assert summary["summary"]["position"] == cli.head() > head


def test_submit_malformed_lines_exit_2_and_the_rest_apply(cli: Cli) -> None:
    path = cli.write("bad.jsonl", [
        *PARTNERS,
        "this is not json",
        {"id": "m-1", "type": "no_such_command", "data": {}},
        register("m-2", "d-1", email="not-an-email"),
        line("m-3", "start_trial", on="2026-01-12", actor="partner:acme", trial="t-1", partner="acme",
             customer_name="Trialco Oy", customer_email="x@trialco.fi", days=99),
        register("m-4", "d-own", email="me@acme.fi"),
        register("m-5", "d-1"),
    ])
    r = cli("--as", "system", "submit", str(path))
    assert r.code == 2, str(r)  # malformed outranks refused
    assert "Traceback" not in r.err
    out = r.out.splitlines()
    assert out[2].startswith("line 3: malformed") and "not valid JSON" in out[2]
    assert out[3].startswith("line 4: malformed") and "type" in out[3]
    assert out[4].startswith("line 5: ") and "email" in out[4] and (" malformed" in out[4] or " refused" in out[4])
    assert out[5].startswith("line 6: malformed") and "data.days" in out[5]
    assert out[6].startswith("line 7: refused register_deal m-4") and "own domain" in out[6]
    assert out[7] == "line 8: applied register_deal m-5"
    assert out[-1].startswith("8 lines: 3 applied, 0 duplicate, ")
    deals = cli.ok("deals", "--json", "--as-of", "2026-01-20").json()
    assert [d["deal"] for d in deals] == ["d-1"]


# -- single commands -------------------------------------------------------------------
def test_single_commands_from_options_and_positional_arguments(cli: Cli) -> None:
    r = cli.ok("partner", "enroll", "--partner", "acme", "--name", "Acme", "--domain", "acme.fi",
               "--commission-rate", "0.20", "--on", "2026-01-01")
    assert r.out.startswith("applied: enroll_partner (cli-") and r.err == ""
    r = cli.ok("partner", "enroll", "beta", "--name", "Beta", "--domain", "beta.de,beta.com",
               "--commission-rate", "0.15", "--on", "2026-01-01", "--json")
    assert r.json() | {"id": None} == {"line": 1, "id": None, "type": "enroll_partner", "status": "applied"}
    r = cli.ok("--as", "partner:acme", "deal", "register", "--deal", "d-1", "--partner", "acme",
               "--customer-name", "Example Oy", "--contact-name", "Jane", "--customer-email", "jane@example.fi",
               "--on", "2026-01-10")
    assert r.out.startswith("applied: register_deal")
    r = cli.ok("--as", "partner:acme", "--json", "deal", "move", "d-1", "newsletter-subscription", "--on", "2026-01-11")
    assert (r.json()["type"], r.json()["status"]) == ("move_deal", "applied")
    cli.ok("deal", "move", "d-1", "trial", "--on", "2026-01-12")
    r = cli.ok("--as", "partner:acme", "trial", "start", "t-1", "--partner", "acme", "--customer-name", "Trialco Oy",
               "--customer-email", "x@trialco.fi", "--on", "2026-01-12")
    assert r.out.startswith("applied: start_trial") and r.out.rstrip().endswith("- runs until 2026-01-26")
    r = cli.ok("trial", "extend", "t-1", "--on", "2026-01-13")
    assert r.out.rstrip().endswith("- runs until 2026-02-11")
    # A command id given with --id is idempotent.
    r = cli.ok("--as", "partner:acme", "deal", "note", "d-1", "asked for the 30-day extension", "--id", "note-1",
               "--on", "2026-01-13")
    assert r.out.rstrip() == "applied: add_deal_note (note-1)"
    head = cli.head()
    r = cli.ok("--as", "partner:acme", "deal", "note", "d-1", "asked for the 30-day extension", "--id", "note-1",
               "--on", "2026-01-13", "--json")
    assert r.json() == {"line": 1, "id": "note-1", "type": "add_deal_note", "status": "duplicate",
                        "note": "already applied"}
    # The same id for a different command of the same actor is a conflict: exit 1, nothing written.
    r = cli("--as", "partner:acme", "deal", "note", "d-1", "something else", "--id", "note-1", "--on", "2026-01-14")
    assert_one_line_error(r, 1, "partner:acme already used id note-1 for a different command")
    deals, overview = cli.many(["deals", "--json", "--as-of", "2026-01-20"],
                               ["overview", "--partner", "acme", "--json", "--as-of", "2026-01-20"])
    assert cli.head() == head
    (d1,) = deals.json()
    assert {k: d1[k] for k in ("deal", "partner", "customer_domain", "stage", "review", "protected_until")} == {
        "deal": "d-1", "partner": "acme", "customer_domain": "example.fi", "stage": "trial", "review": "pending",
        "protected_until": "2026-04-13"}
    (row,) = overview.json()
    assert (row["domain"], row["status"]) == ("trialco.fi", "trial")


def test_refusals_exit_1_with_one_line_and_write_nothing(cli: Cli) -> None:
    head = cli.setup([
        *PARTNERS, register("c-1", "d-1"),
        line("c-2", "start_trial", on="2026-01-10", actor="partner:acme", trial="t-1", partner="acme",
             customer_name="Trialco Oy", customer_email="x@trialco.fi"),
        line("c-3", "extend_trial", on="2026-01-11", actor="partner:acme", trial="t-1"),
    ])
    register_own = ["--as", "partner:acme", "deal", "register", "--deal", "d-2", "--partner", "acme",
                    "--customer-name", "Acme", "--contact-name", "Me", "--customer-email", "me@acme.fi",
                    "--on", "2026-01-12"]
    cases = [
        (register_own, ["own domain"]),
        (["--as", "partner:beta", "deal", "move", "d-1", "trial", "--on", "2026-01-12"], ["another partner"]),
        (["--as", "partner:beta", "trial", "extend", "t-1"], ["another partner"]),
        (["--as", "partner:acme", "deal", "accept", "d-1"], ["may not accept deal"]),
        (["trial", "extend", "t-1", "--on", "2026-01-12"], ["extends once"]),
        (["deal", "accept", "nope"], ["no deal"]),
        (["deal", "move", "d-1", "new", "--on", "2026-01-12"], []),  # already new: moves forward only
    ]
    for (args, fragments), r in zip(cases, cli.many(*(args for args, _ in cases))):
        message = assert_one_line_error(r, 1, *fragments)
        assert message.startswith("error: ") and r.out == "", str(r)
    assert cli.head() == head


def test_malformed_option_values_exit_2(cli: Cli) -> None:
    head = cli.setup([*PARTNERS, register("c-1", "d-1")])
    cases = {
        "rate": (["partner", "enroll", "x", "--name", "X", "--domain", "x.fi", "--commission-rate", "abc"],
                 "--commission-rate must be a plain decimal number"),
        "stage": (["deal", "move", "d-1", "closed-won"], "--stage must be one of new,"),
        "on": (["deal", "move", "d-1", "trial", "--on", "not-a-date"], "not-a-date"),
        "missing field": (["deal", "register", "--deal", "d-2", "--partner", "acme", "--customer-name", "Other Oy",
                           "--contact-name", "Jo"], "--customer-email is required"),
        "days": (["trial", "start", "t-1", "--partner", "acme", "--customer-name", "T", "--customer-email",
                  "t@t.fi", "--days", "many"], "--days must be a whole number"),
        "cents": (["subscription", "start", "s-1", "--customer-domain", "example.fi", "--plan", "p", "--amount",
                   "10.005", "--currency", "EUR", "--period", "monthly", "--billing", "credit-card"], "--amount has at most 2 decimals"),
    }
    runs = cli.many(*(args for args, _ in cases.values()),
                    ["deal", "register", "--deal", "d-2", "--partner", "acme", "--customer-name", "Other Oy",
                     "--contact-name", "Jo", "--customer-email", "not-an-email"])
    for (name, (args, fragment)), r in zip(cases.items(), runs):
        assert_one_line_error(r, 2, fragment)
        assert r.out == "", (name, str(r))
    # An email that is no address can never be valid: malformed input.
    assert_one_line_error(runs[-1], 2, "--customer-email: not a valid email address")
    assert cli.head() == head


def test_bad_usage_exits_2_before_the_database_is_used(tmp_path: Path) -> None:
    # Rejected while parsing the command line, so one backend is enough.
    db = ["--db", f"sqlite:///{tmp_path / 'ledger.db'}"]
    cases = {
        "twice": (["deal", "move", "d-1", "trial", "--stage", "newsletter-subscription"], "stage"),
        "unknown option": (["deal", "register", "--deal", "d-2", "--bogus", "x"], "--bogus"),
        "actor": (["--as", "root", "deals"], "root"),
        "choice": (["deals", "--stage", "won"], "--stage"),
        "as-of": (["deals", "--as-of", "2026-02-30"], "--as-of"),
        "filter": (["overview", "--partner", "acme", "--filter", "everything"], "--filter"),
        "known-at": (["attention", "--known-at", "yesterday"], "--known-at"),
        "month": (["statement", "--partner", "acme", "--month", "2026-13"], "--month"),
        "no month": (["statement", "--partner", "acme"], "--month"),
        "command": (["no-such-command"], "no-such-command"),
        "file": (["submit", str(tmp_path / "missing.jsonl")], "missing.jsonl"),
    }
    runs = run_all([[*db, *args] for args, _ in cases.values()], tmp_path)
    for (name, (args, fragment)), r in zip(cases.items(), runs):
        assert_usage_error(r, fragment)
        assert r.out == "", (name, str(r))


def test_malformed_message_is_printed_whole(cli: Cli) -> None:
    r = cli("deal", "move", "d-1", "closed-won")
    message = assert_one_line_error(r, 2)
    assert message.endswith("--stage must be one of new, newsletter-subscription, trial"), message


# -- queries ---------------------------------------------------------------------------------
@pytest.fixture
def program(cli: Cli) -> Cli:
    cli.setup(PROGRAM)
    return cli


def test_deals_overview_and_attention_queries(program: Cli) -> None:
    cli = program
    feb20 = ["--as-of", "2026-02-20"]
    (deals, deals_jan, known_2000, pending, acme_deals, deals_table, overview, trials, items, acme_items, as_acme,
     as_beta, *foreign) = cli.many(
        ["deals", "--json", *feb20],
        ["deals", "--as-of", "2026-01-05", "--json"],
        ["deals", "--json", *feb20, "--known-at", "2000-01-01T00:00:00Z"],  # nothing was known then
        ["--json", "deals", "--review", "pending", *feb20],
        ["deals", "--partner", "acme", "--json", *feb20],
        ["deals", *feb20],
        ["overview", "--partner", "acme", "--json", *feb20],
        ["overview", "--partner", "acme", "--filter", "trial", "--json", *feb20],
        ["attention", "--json", *feb20],
        ["attention", "--partner", "acme", *feb20, "--json"],
        ["--as", "partner:acme", "attention", *feb20, "--json"],
        ["--as", "partner:beta", "deals", *feb20, "--json"],
        # A partner reads only its own data.
        ["--as", "partner:acme", "overview", "--partner", "beta", "--json"],
        ["--as", "partner:acme", "deals", "--partner", "beta", "--json"],
        ["--as", "partner:acme", "statement", "--partner", "beta", "--month", "2026-02", "--json"],
    )
    for r in (deals, deals_jan, known_2000, pending, acme_deals, deals_table, overview, trials, items, acme_items,
              as_acme, as_beta):
        assert r.code == 0 and r.err == "", str(r)
    for r in foreign:
        assert_one_line_error(r, 1, "partner:acme may not read partner beta's data")
        assert r.out == ""

    assert [{k: d[k] for k in ("deal", "partner", "customer_domain", "stage", "review", "protected_until")}
            for d in deals.json()] == [
        {"deal": "d-1", "partner": "acme", "customer_domain": "example.fi", "stage": "closed-won",
         "review": "accepted", "protected_until": None},
        {"deal": "d-2", "partner": "beta", "customer_domain": "bco.fi", "stage": "new", "review": "pending",
         "protected_until": "2026-05-02"},
    ]
    assert deals.json()[1]["customer"] == "Bäckerei Größe GmbH"  # UTF-8 through JSON
    assert deals_jan.json() == [] and known_2000.json() == []
    assert [d["deal"] for d in pending.json()] == ["d-2"]
    assert [d["deal"] for d in acme_deals.json()] == ["d-1"]
    assert [d["deal"] for d in as_beta.json()] == ["d-2"]
    table = deals_table.out.splitlines()
    assert table[0].split() == ["deal", "partner", "customer", "customer_domain", "stage", "review", "protected_until"]
    assert table[3].split() == ["d-2", "beta", "Bäckerei", "Größe", "GmbH", "bco.fi", "new", "pending", "2026-05-02"]

    rows = overview.json()
    for row in rows:
        assert {"customer", "domain", "status", "framework", "progress", "users", "activities_90d",
                "attention"} <= set(row), row
    by_domain = {r["domain"]: r for r in rows}
    assert set(by_domain) == {"example.fi", "trialco.fi"}
    ex = by_domain["example.fi"]
    assert (ex["customer"], ex["status"], ex["framework"], ex["progress"], ex["users"], ex["activities_90d"]) == (
        "Example Oy", "active", "ISO 27001", 40, 5, 3)
    assert (by_domain["trialco.fi"]["status"], by_domain["trialco.fi"]["attention"]) == ("trial", 2)
    assert [r["domain"] for r in trials.json()] == ["trialco.fi"]

    for item in items.json():
        assert {"code", "subject", "partner", "reason"} <= set(item), item
    found = {(i["code"], i["subject"], i["partner"]) for i in items.json()}
    assert {("trial-ending", "t-1", "acme"), ("deal-pending-review", "d-2", "beta")} <= found
    mine = acme_items.json()
    assert mine and {i["partner"] for i in mine} == {"acme"}
    # Without --partner, a partner gets its own items.
    assert as_acme.json() == mine

    # LEDGER_DATABASE_URL and LEDGER_ACTOR instead of --db and --as.
    r = run("deals", "--json", *feb20, cwd=cli.cwd, env={"LEDGER_DATABASE_URL": cli.url, "LEDGER_ACTOR": "partner:beta"})
    assert r.code == 0, str(r)
    assert [d["deal"] for d in r.json()] == ["d-2"]


def test_statement_json_csv_and_table(program: Cli) -> None:
    cli = program
    month = ["--partner", "acme", "--month", "2026-02"]
    as_json, empty, as_partner, as_csv, as_text, known_2000, as_of = cli.many(
        ["statement", *month, "--json"],
        ["--json", "statement", "--partner", "acme", "--month", "2026-01"],
        ["--as", "partner:acme", "statement", *month, "--json"],  # the partner may read its own
        ["statement", *month, "--csv"],
        ["statement", *month],
        ["statement", *month, "--known-at", "2000-01-01", "--json"],
        ["statement", *month, "--as-of", "2026-02-28", "--json"],  # every query takes --as-of
    )
    for r in (as_json, empty, as_partner, as_csv, as_text, known_2000, as_of):
        assert r.code == 0 and r.err == "", str(r)
    st = as_json.json()
    assert (st["partner"], st["month"]) == ("acme", "2026-02")
    (ln,) = st["lines"]
    assert {k: ln[k] for k in ("subscription", "customer_domain", "billing", "amount", "currency", "rate",
                               "commission")} == {
        "subscription": "s-1", "customer_domain": "example.fi", "billing": "credit-card", "amount": "1200.00",
        "currency": "EUR", "rate": "0.20", "commission": "240.00"}
    assert isinstance(ln["kind"], str) and ln["kind"]
    eur = st["totals"]["EUR"]
    assert (eur["amount"], eur["commission"]) == ("1200.00", "240.00")
    assert all(isinstance(v, str) for v in eur.values()), eur
    assert empty.json()["lines"] == [] and empty.json()["totals"] == {}
    assert as_partner.json() == st
    assert known_2000.json()["lines"] == []
    assert [ln["amount"] for ln in as_of.json()["lines"]] == ["1200.00"]

    header = as_csv.out.splitlines()[0].split(",")
    assert {"subscription", "customer_domain", "billing", "amount", "currency", "rate", "commission",
            "kind"} <= set(header), header
    (row,) = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert (row["subscription"], row["amount"], row["currency"], row["rate"], row["commission"], row["kind"]) == (
        "s-1", "1200.00", "EUR", "0.20", "240.00", ln["kind"])

    text = as_text.out
    assert "1200.00" in text and "240.00" in text and "EUR" in text


# -- help -------------------------------------------------------------------------------------
def _command_paths() -> Iterator[list[str]]:
    import cli as cli_module

    def walk(cmd: click.Command, path: list[str], ctx: click.Context) -> Iterator[list[str]]:
        yield path
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None, path + [name]
                yield from walk(sub, path + [name], click.Context(sub, parent=ctx, info_name=name))

    yield from walk(cli_module.main, [], click.Context(cli_module.main, info_name="ledger"))


def test_every_command_and_group_answers_help(tmp_path: Path) -> None:
    # --help never opens the database, so one backend is enough.
    paths = list(_command_paths())
    assert len(paths) > 20
    for path in (["deal", "register"], ["trial", "extend"], ["submit"], ["statement"], ["demo"]):
        assert path in paths
    runs = run_all([[*p, "--help"] for p in paths], tmp_path)
    for path, r in zip(paths, runs):
        assert r.code == 0, str(r)
        assert r.err == "" and r.out.startswith("Usage: ledger"), str(r)
        assert " ".join(["ledger", *path]) in r.out.splitlines()[0], str(r)
    assert list(tmp_path.iterdir()) == []  # no ./ledger.db created
    by_path = {tuple(p): r.out for p, r in zip(paths, runs)}
    assert "--customer-email" in by_path[("deal", "register")]
    assert "--as-of" in by_path[("overview",)] and "--json" in by_path[("overview",)]
    assert "--csv" in by_path[("statement",)]


# -- the database ----------------------------------------------------------------------------
def test_unreachable_database_exits_3_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://postgres:secretpw@127.0.0.1:1/nope"
    missing = f"sqlite:///{tmp_path / 'no-such-folder' / 'ledger.db'}"
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"this is not a database file at all" * 100)
    calls = [
        ["--db", url, "--json", "overview", "--partner", "acme"],
        ["--db", missing, "partner", "enroll", "acme", "--name", "A", "--domain", "a.fi", "--commission-rate", "0.2"],
        ["--db", f"sqlite:///{not_a_db}", "deals"],
    ]
    stdin = json.dumps(PARTNERS[0]) + "\n"
    procs = [(c, _start(c, tmp_path, None, None)) for c in calls]
    # The URL from the environment, and a write from stdin.
    procs.append((["submit", "-"], _start(["submit", "-"], tmp_path, stdin, {"LEDGER_DATABASE_URL": url})))
    for args, p in procs:
        out, err = p.communicate(timeout=TIMEOUT)
        r = Run(args, p.returncode, out, err)
        assert_one_line_error(r, 3)
        assert "secretpw" not in r.out + r.err, str(r)
        assert r.out == "", str(r)
    assert not (tmp_path / "no-such-folder").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.db"]


# -- demo ---------------------------------------------------------------------------------------
def test_demo_loads_once_and_a_second_run_applies_nothing(cli: Cli) -> None:
    # A password in the URL (PostgreSQL here trusts local users, so any works) is never printed.
    if cli.url.startswith("postgresql://postgres@"):
        cli.url = cli.url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@")
    first = cli.ok("--json", "demo")
    summary = first.json()
    assert summary["applied"] > 100 and summary["events"] > summary["applied"]
    assert summary["commands"] == summary["applied"] + summary.get("refused", 0)
    assert summary["database"] == cli.url.replace(":hunter2@", ":***@")
    second = cli("demo", "--json")
    assert second.code == 0, str(second)
    again = second.json()
    assert again.get("applied", 0) == 0 and again["applied_by_type"] == {}
    assert again["events"] == summary["events"]
    assert again["duplicate"] == summary["applied"]
    assert "hunter2" not in first.out + first.err + second.out + second.err


def test_the_demo_suggests_commands_a_new_user_can_run_as_they_are(tmp_path: Path, monkeypatch: Any) -> None:
    """After the README's first command the virtual environment is not
    activated: the demo's hints name the path it was started by, unless
    `ledger` on PATH is that same program."""
    from ledger.commandline.demo import program

    exe = tmp_path / ".venv" / "bin" / "ledger"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert program(".venv/bin/ledger") == ".venv/bin/ledger"
    monkeypatch.setenv("PATH", f"{exe.parent}:/usr/bin:/bin")
    assert program(".venv/bin/ledger") == "ledger"
    assert program("-c") == "ledger" and program("/usr/bin/python3") == "ledger"


# -- processes side by side -------------------------------------------------------------------
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # the race is PostgreSQL's
def test_processes_starting_together_on_postgres(cli: Cli) -> None:
    """Several ledger processes starting at once (two users, two cron jobs) on
    an empty schema, where they race to create the tables, and again once it
    exists: every one of them works."""
    # A query never creates the ledger: the first round are writers (an empty submit), the second queries.
    for args, stdin, expected in ((["--json", "submit", "-"], "", {"summary": {
            "lines": 0, "applied": 0, "duplicate": 0, "conflict": 0, "refused": 0, "malformed": 0, "position": 0}}),
            (["deals", "--json"], None, []), (["--json", "submit", "-"], "", None)):
        procs = [_start(["--db", cli.url, *args], cli.cwd, stdin, None) for _ in range(6)]
        for proc in procs:
            out, err = proc.communicate(timeout=TIMEOUT)
            r = Run(args, proc.returncode, out, err)
            assert r.code == 0, str(r)
            if expected is not None:
                assert r.json() == expected


def test_an_unexpected_error_is_an_internal_error_with_its_own_status(tmp_path: Path, monkeypatch: Any) -> None:
    """A bug is exit 70 with one line and a hint, never 3 ("database") nor a traceback."""
    from click.testing import CliRunner

    from cli import main
    from ledger.service import Ledger

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert CliRunner().invoke(main, ["--db", url, "--as", "system", "demo", "--deals", "3"]).exit_code == 0

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(Ledger, "deals", broken)
    result = CliRunner().invoke(main, ["--db", url, "deals"])
    assert result.exit_code == 70, result.output
    assert result.stderr.count("\n") == 1 and "internal error: RuntimeError: boom" in result.stderr
    assert "report it" in result.stderr and "Traceback" not in result.stderr


def test_neither_a_deal_card_nor_a_malformed_command_creates_a_ledger(tmp_path: Path) -> None:
    """`deal show` is a query, and a command whose input is malformed is
    refused before the ledger is opened: neither leaves a database behind."""
    missing = tmp_path / "typo.db"
    url = f"sqlite:///{missing}"
    r = run("--db", url, "deal", "show", "d-1", cwd=tmp_path)
    assert r.code == 3 and "no ledger" in r.err, str(r)
    for args in (["subscription", "start", "s-9", "--plan", "p", "--amount", "-5", "--currency", "EUR",
                  "--period", "monthly"],
                 ["partner", "enroll", "--partner", "a b", "--name", "X", "--domain", "x.fi",
                  "--commission-rate", "0.2"]):
        r = run("--db", url, *args, cwd=tmp_path)
        assert r.code == 2 and r.err.count("\n") == 1, str(r)
    for args in (["sweep", "--on", "bad"], ["subscriptions", "--as-of", "bad"]):  # options parse before the ledger opens
        r = run("--db", url, "--as", "system", *args, cwd=tmp_path)
        assert r.code == 2 and "is not a date" in r.err, str(r)
    assert not missing.exists() and not (tmp_path / "ledger.db").exists()
    # Issuing a token writes: it may start a new ledger, like any other command that writes.
    r = run("--db", url, "token", "issue", "--actor", "partner:acme", "--name", "first", cwd=tmp_path)
    assert r.code == 0 and r.out.startswith("plt_") and missing.exists(), str(r)


def test_input_no_ledger_state_makes_valid_exits_2_with_nothing_written(cli: Cli) -> None:
    """A commission rate out of its bounds and a statement without its partner
    are bad input (exit 2), not refusals of the ledger (exit 1)."""
    head = cli.setup(PARTNERS)
    for args, text in ((["partner", "enroll", "x", "--name", "X", "--domain", "x.fi", "--commission-rate", "1.5"],
                        "commission rate must be a decimal fraction from 0 up to 1"),
                       (["--as", "vendor:manager", "statement", "--month", "2026-01"], "give --partner")):
        r = cli(*args)
        assert r.code == 2 and text in r.err and r.err.count("\n") == 1, str(r)
    assert cli.head() == head


def test_an_unknown_type_is_reported_with_its_line_s_id_and_every_type_there_is(cli: Cli) -> None:
    from ledger.commands.registry import bulk_types

    path = cli.write("bad.jsonl", [{"id": "c4", "type": "bogus_type", "data": {}}])
    r = cli("--as", "system", "submit", str(path))
    first = r.out.splitlines()[0]
    assert r.code == 2 and first.startswith("line 1: malformed c4 - type must be one of "), str(r)
    assert all(t in first for t in bulk_types()) and "…" not in first, first
    assert cli("--as", "system", "--json", "submit", str(path)).jsonl()[0]["id"] == "c4"
