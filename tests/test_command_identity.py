"""Command identity (INTERFACE.md "Additions"; ledger/commands/identity.py): a
command id is an idempotency key of its actor; the same key for a different
command is a `conflict`; a refusal of who submitted a line is not the
command's outcome. On SQLite and PostgreSQL, through the application and
through the `ledger` command line, and on a ledger written by an earlier
version (outcomes by id alone)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.aggregates import CommandRecord, Deal, Refused, Subscription, aggregate_id
from ledger.authority import Actor
from ledger.commands.identity import command_key
from ledger.persistence import LEGACY_OUTCOMES, OUTCOMES

from .conftest import Harness, cmd, deal, program
from .test_cli import Cli

CASES = Path(__file__).parent / "cases"


def case(name: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (CASES / name).read_text("utf-8").splitlines() if x.strip()]


@contextmanager
def submitter(h: Harness, actor: str) -> Iterator[None]:
    """Submit as `actor` (`--as`) for a while, on the same ledger."""
    before = h.ledger.actor
    h.ledger.actor = Actor.parse(actor)
    try:
        yield
    finally:
        h.ledger.actor = before


def statuses(results: list[Any]) -> list[str]:
    return [r.status for r in results]


def raw(h: Harness, *lines: str) -> list[Any]:
    """Submit lines exactly as written (numbers and spacing as in the text)."""
    h.clock.advance(seconds=1)
    return h.ledger.submit_lines(list(lines))


# -- case 07: an idempotency key reused for a different command -------------------------------
def test_case_07_the_same_id_for_other_commands_is_a_conflict_and_writes_nothing(h: Harness) -> None:
    lines = case("07-same-id-other-command.jsonl")
    first = h.submit(*lines)
    assert statuses(first) == ["applied", "applied", "applied", "conflict", "conflict"]
    for r in first[3:]:
        assert r.id == "c-7" and "already used id c-7 for a different command" in r.message
        assert r.as_dict()["reason"] == r.message  # the reason is reported like a refusal's
    s = h.ledger.app.get(Subscription, "s-1")
    assert s.charges[0].refunded == Decimal("10.00") and s.cancelled_on is None  # only the first c-7 took effect
    # The conflicts recorded nothing: c-7 keeps the outcome of the refund of 10.00.
    head = h.head()
    again = h.submit(*lines)
    assert statuses(again) == ["duplicate", "duplicate", "duplicate", "conflict", "conflict"]
    assert h.head() == head
    assert h.ledger.sql.one(f"SELECT COUNT(*) FROM {OUTCOMES} WHERE id = ?", ["c-7"])[0] == 1


def test_a_conflict_never_takes_over_a_refused_id_and_writes_nothing(h: Harness) -> None:
    program(h)
    refused = cmd("refund", id="r-1", on="2026-03-05", actor="vendor:manager", subscription="s-404", amount="5.00")
    (r,) = h.submit(refused)
    assert r.status == "refused" and "s-404" in r.message
    head = h.head()
    other = cmd("enroll_partner", id="r-1", actor="vendor:manager", partner="gamma", name="Gamma", domain="gamma.fi",
                commission_rate="0.1")
    (r,) = h.submit(other)
    assert r.status == "conflict" and "(it was refused)" in r.message
    assert h.head() == head
    (r,) = h.submit(refused)  # the refused command itself: refused again with its reason
    assert r.status == "refused" and "s-404" in r.message and r.message.endswith("(refused before)")


# -- case 08: a refusal of who submitted a line ---------------------------------------------------
def test_case_08_a_refusal_of_the_submitter_is_not_the_commands_outcome(h: Harness) -> None:
    lines = case("08-submitter-refusal.jsonl")
    with submitter(h, "vendor:manager"):
        first = h.submit(*lines)
    assert statuses(first) == ["applied", "refused"]
    assert "only system may" in first[1].message
    assert h.ledger.app.get(Deal, "d-1") is None
    second = h.submit(*lines)  # the same file as system
    assert statuses(second) == ["duplicate", "applied"]
    assert h.ledger.app.get(Deal, "d-1").partner == "acme"
    head = h.head()
    assert statuses(h.submit(*lines)) == ["duplicate", "duplicate"]
    assert h.head() == head


def test_the_actors_own_authority_refusal_is_final(h: Harness) -> None:
    line = cmd("enroll_partner", id="f-1", on="2026-01-01", partner="gamma", name="Gamma", domain="gamma.fi",
               commission_rate="0.10")
    with submitter(h, "vendor:finance"):
        (r,) = h.submit(line)
        assert r.status == "refused" and "may not enroll partner" in r.message
    # system sending the same command as vendor:finance gets finance's own outcome;
    (r,) = h.submit(line | {"actor": "vendor:finance"})
    assert r.status == "refused" and r.message.endswith("(refused before)")
    # as its own actor (system) it is another command.
    (r,) = h.submit(line)
    assert r.status == "applied"


# -- ids are per actor ---------------------------------------------------------------------------
def test_two_partners_using_one_id_are_two_commands(h: Harness) -> None:
    program(h)
    a = deal("d-1", id="x-1")
    b = deal("d-2", partner="beta", email="bob@two.fi", name="Two GmbH", id="x-1")
    assert statuses(h.submit(a, b)) == ["applied", "applied"]
    assert h.ledger.app.get(Deal, "d-1").partner == "acme" and h.ledger.app.get(Deal, "d-2").partner == "beta"
    for actor in ("partner:acme", "partner:beta"):
        record = h.ledger.app.load(aggregate_id(CommandRecord.KIND, command_key(actor, "x-1")))
        assert record.command_type == "register_deal"
    head = h.head()
    assert statuses(h.submit(b, a)) == ["duplicate", "duplicate"]
    assert h.head() == head


def test_a_partner_can_neither_squat_nor_read_a_vendors_id(h: Harness) -> None:
    program(h)
    h.ok(deal("d-1"), deal("d-2", partner="beta", email="bob@two.fi", name="Two GmbH"))
    with submitter(h, "vendor:manager"):
        (r,) = h.submit(cmd("accept_deal", id="v-1", deal="d-404"))
        assert r.status == "refused" and "d-404" in r.message
    with submitter(h, "partner:beta"):
        # The vendor's id as beta's own: beta's command, evaluated on its own.
        (r,) = h.submit(cmd("add_deal_note", id="v-1", deal="d-2", text="hello"))
        assert r.status == "applied"
        # The vendor's id named as the vendor's: refused for who submits, telling nothing of v-1.
        (r,) = h.submit(cmd("accept_deal", id="v-1", actor="vendor:manager", deal="d-404"))
        assert r.status == "refused" and "only system may" in r.message
        assert "d-404" not in r.message and "refused before" not in r.message
        # An id the vendor has not used yet: beta's use of it leaves it free for the vendor.
        (r,) = h.submit(cmd("add_deal_note", id="v-2", deal="d-2", text="first"))
        assert r.status == "applied"
    with submitter(h, "vendor:manager"):
        (r,) = h.submit(cmd("accept_deal", id="v-2", deal="d-1"))
        assert r.status == "applied"
    assert h.ledger.app.get(Deal, "d-1").review == "accepted"


def test_a_line_naming_its_actor_and_the_same_line_without_it_are_one_command(h: Harness) -> None:
    program(h)
    line = cmd("add_deal_note", id="n-1", on="2026-01-11", deal="d-1", text="call booked")
    h.ok(deal("d-1"))
    with submitter(h, "partner:acme"):
        assert statuses(h.submit(line)) == ["applied"]
        assert statuses(h.submit(line | {"actor": "partner:acme"})) == ["duplicate"]
    assert statuses(h.submit(line | {"actor": "partner:acme"})) == ["duplicate"]  # sent by system
    assert h.ledger.app.get(Deal, "d-1").notes == 1
    assert statuses(h.submit(line)) == ["applied"]  # system's own n-1: another command
    assert h.ledger.app.get(Deal, "d-1").notes == 2


# -- the fingerprint: the envelope as written ------------------------------------------------------
def test_rerunning_a_file_without_on_stays_duplicate_on_later_days(h: Harness) -> None:
    lines = [
        cmd("enroll_partner", id="e-1", partner="gamma", name="Gamma", domain="gamma.fi", commission_rate="0.10"),
        cmd("register_deal", id="e-2", actor="partner:gamma", deal="d-9", partner="gamma", customer_name="Nine Oy",
            contact_name="Nina", customer_email="nina@nine.fi"),
    ]
    h.ok(*lines)
    head = h.head()
    for days in (1, 40, 400):
        h.clock.advance(days=days)
        assert statuses(h.submit(*lines)) == ["duplicate", "duplicate"]
    assert h.head() == head
    # Giving `on` now makes it another command.
    (r,) = h.submit(lines[0] | {"on": "2026-01-01"})
    assert r.status == "conflict"


SUB = ('"id": "s-x", "type": "start_subscription", "on": {on}, "data": {{"subscription": "s-9", '
       '"customer_domain": "nine.fi", "plan": {plan}, "amount": {amount}, "currency": "EUR", "period": "monthly", '
       '"billing": "credit-card"{extra}}}')


def sub(on: str = '"2026-03-01"', plan: str = '"Pro"', amount: str = '"100.00"', extra: str = "", actor: str = "") -> str:
    return "{" + SUB.format(on=on, plan=plan, amount=amount, extra=extra) + actor + "}"


def test_the_same_command_written_differently_is_a_duplicate(h: Harness) -> None:
    assert statuses(raw(h, sub())) == ["applied"]
    head = h.head()
    same = [
        sub(amount="100.00"), sub(amount="100"), sub(amount='"100"'), sub(amount='"100.0"'),
        sub(on='"2026-03-01T00:00:00Z"'), sub(on='"2026-03-01T02:00:00+02:00"'), sub(plan='" Pro "'),
        sub(extra=', "order_number": null'), sub(actor=', "actor": "system"'),
        '{"data": {"billing": "credit-card", "period": "monthly", "currency": "EUR", "amount": "100.00", "plan": "Pro",'
        ' "customer_domain": "nine.fi", "subscription": "s-9"}, "on": "2026-03-01", "type": "start_subscription",'
        ' "id": "s-x"}',
    ]
    assert statuses(raw(h, *same)) == ["duplicate"] * len(same)
    different = [
        sub(amount='"100.01"'), sub(on='"2026-03-02"'), sub(on='"2026-03-01T00:00:01Z"'), sub(plan='"Team"'),
        sub(extra=', "order_number": "PO-1"'), "{" + SUB.format(on="null", plan='"Pro"', amount='"100.00"', extra="") + "}",
        '{"id": "s-x", "type": "renew_subscription", "on": "2026-03-01", "data": {"subscription": "s-9"}}',
    ]
    assert statuses(raw(h, *different)) == ["conflict"] * len(different)
    assert h.head() == head


# -- the command line ------------------------------------------------------------------------------
@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(db_url, tmp_path)


def test_cli_case_07_conflict_exits_1(cli: Cli) -> None:
    path = cli.write("07.jsonl", case("07-same-id-other-command.jsonl"))
    r = cli("--as", "system", "--json", "submit", str(path))
    assert r.code == 1, str(r)
    *results, summary = r.jsonl()
    assert [x["status"] for x in results] == ["applied", "applied", "applied", "conflict", "conflict"]
    assert all("different command" in x["reason"] for x in results[3:])
    assert summary["summary"] | {"position": None} == {
        "lines": 5, "applied": 3, "duplicate": 0, "conflict": 2, "refused": 0, "malformed": 0, "position": None}
    r = cli("--as", "system", "submit", str(path))  # human output, and again non-zero
    assert r.code == 1, str(r)
    assert r.out.splitlines()[3].startswith("line 4: conflict refund c-7 - system already used id c-7")
    assert r.out.splitlines()[-1] == "5 lines: 0 applied, 3 duplicate, 2 conflict, 0 refused, 0 malformed"


def test_cli_case_08_a_refusal_of_the_submitter_can_be_sent_again(cli: Cli) -> None:
    path = cli.write("08.jsonl", case("08-submitter-refusal.jsonl"))
    r = cli("--as", "vendor:manager", "--json", "submit", str(path))
    assert r.code == 1, str(r)
    assert [x["status"] for x in r.jsonl()[:-1]] == ["applied", "refused"]
    r = cli.ok("--as", "system", "--json", "submit", str(path))
    assert [x["status"] for x in r.jsonl()[:-1]] == ["duplicate", "applied"]


# -- a ledger written before ids were per actor ---------------------------------------------------
LEGACY_LINES = [
    cmd("enroll_partner", id="l-1", on="2025-12-01", actor="vendor:manager", partner="acme", name="Acme",
        domain="acme.fi", commission_rate="0.20"),
    deal("d-1", id="l-2", on="2025-12-10"),
    cmd("accept_deal", id="l-3", on="2025-12-11", actor="vendor:manager", deal="d-404"),
    cmd("add_deal_note", id="l-5", actor="partner:acme", deal="d-1", text="no date given"),
]
LEGACY_SUBMITTER_REFUSAL = deal("d-2", id="l-4", email="max@two.fi", name="Two Oy", on="2025-12-12")


def make_legacy(h: Harness) -> None:
    """Rewrite the ledger into the layout of earlier versions: outcomes by id
    alone in `ledger_commands` (id PRIMARY KEY, status, reason), CommandRecords
    keyed by the id alone, and a refusal of the submitter recorded as final,
    as those versions did."""
    sql, app = h.ledger.sql, h.ledger.app
    rows = sql.all(f"SELECT id, actor, status, reason FROM {OUTCOMES}")
    sql.execute(f"CREATE TABLE {LEGACY_OUTCOMES} (id TEXT PRIMARY KEY, status TEXT NOT NULL, reason TEXT)")
    sql.executemany(f"INSERT INTO {LEGACY_OUTCOMES} (id, status, reason) VALUES (?, ?, ?)",
                    [(cid, status, reason) for cid, _, status, reason in rows])
    sql.execute(f"INSERT INTO {LEGACY_OUTCOMES} (id, status, reason) VALUES (?, 'refused', ?)",
                ["l-4", "vendor:manager may not submit commands as partner:acme; only system may"])
    sql.execute(f"DELETE FROM {OUTCOMES}")
    pg = h.ledger.db.kind == "postgres"
    for cid, actor, status, _ in rows:
        if status == "applied":
            new, old = (aggregate_id(CommandRecord.KIND, k) for k in (command_key(actor, cid), cid))
            sql.execute(f"UPDATE {app.events_table} SET originator_id = ? WHERE originator_id = ?",
                        [old, new] if pg else [old.hex, new.hex])


def test_a_ledger_written_before_ids_were_per_actor_keeps_its_outcomes(h: Harness) -> None:
    assert statuses(h.submit(*LEGACY_LINES)) == ["applied", "applied", "refused", "applied"]
    make_legacy(h)
    h.close()
    h = Harness(h.url)  # the upgraded program opening the old ledger
    try:
        head = h.head()
        again = h.submit(*LEGACY_LINES, LEGACY_SUBMITTER_REFUSAL)
        # Nothing applies twice; a refusal stays final; a refusal of the submitter was not the command's.
        assert statuses(again) == ["duplicate", "duplicate", "refused", "duplicate", "applied"]
        assert "d-404" in again[2].message and again[2].message.endswith("(refused before)")
        assert h.ledger.app.get(Deal, "d-2").partner == "acme"
        assert h.ledger.app.get(Deal, "d-1").notes == 1
        head = h.head()
        # An old applied id is its recorded actor's: the same actor's other command conflicts,
        # another actor's is its own (earlier outcomes never said whose `on` it was: not compared).
        results = h.submit(
            LEGACY_LINES[3] | {"on": "2026-01-02"},
            cmd("add_deal_note", id="l-2", actor="partner:acme", deal="d-1", text="other"),
            cmd("enroll_partner", id="l-2", actor="vendor:manager", partner="beta", name="Beta", domain="beta.de",
                commission_rate="0.10"),
        )
        assert statuses(results) == ["duplicate", "conflict", "applied"]
        # An old refusal's actor was never recorded: it stays the id's outcome for everyone.
        (r,) = h.submit(cmd("add_deal_note", id="l-3", actor="partner:acme", deal="d-1", text="x"))
        assert r.status == "refused" and r.message.endswith("(refused before)")
        assert h.ledger.sql.one(f"SELECT COUNT(*) FROM {LEGACY_OUTCOMES}")[0] == 5  # only read, never written
        head = h.head()
        assert statuses(h.submit(*LEGACY_LINES, LEGACY_SUBMITTER_REFUSAL)) == [
            "duplicate", "duplicate", "refused", "duplicate", "duplicate"]
        assert h.head() == head
    finally:
        h.close()


# -- commands the ledger completes itself ---------------------------------------------------------
def test_a_sweep_or_an_issued_statement_under_one_id_is_what_was_asked_not_what_was_computed(h: Harness) -> None:
    from datetime import date

    from ledger.audit import Audit

    program(h)
    h.clock.advance(days=160)  # 2026-06-09: every date below is in the past
    h.ok(deal("d-1", on="2026-01-10"),
         cmd("start_subscription", on="2026-02-02", actor="vendor:manager", subscription="s-1", customer_domain="x.fi",
             plan="pro", amount="10.00", currency="EUR", period="monthly", billing="credit-card"))
    first = h.ledger.sweep(on=date(2026, 5, 1), command_id="sweep-may")
    assert first.status == "applied" and first.message.startswith("1 protections lapsed")
    head = h.head()
    # The candidates are gone now (they lapsed): the same sweep is still the same command.
    assert h.ledger.sweep(on=date(2026, 5, 1), command_id="sweep-may").status == "duplicate"
    with pytest.raises(Refused, match="different command"):
        h.ledger.sweep(on=date(2026, 5, 2), command_id="sweep-may")  # another day: another command
    assert h.head() == head

    audit = Audit(h.ledger)
    assert audit.issue_statement("beta", "2026-02", "issue-1")["status"] == "applied"
    h.ok(cmd("refund", on="2026-02-03", actor="vendor:manager", subscription="s-1", amount="1.00"))
    head = h.head()  # the ledger moved on (another position): still the issue of beta's February
    assert audit.issue_statement("beta", "2026-02", "issue-1")["status"] == "duplicate"
    with pytest.raises(Refused, match="different command"):
        audit.issue_statement("beta", "2026-03", "issue-1")
    assert h.head() == head


# -- the fingerprint itself (no database) ------------------------------------------------------
@given(cents=st.integers(min_value=1, max_value=10**12), other=st.integers(min_value=1, max_value=10**12),
       trimmed=st.booleans(), as_text=st.booleans(), order=st.randoms(use_true_random=False))
@settings(max_examples=200, deadline=None)
def test_a_fingerprint_sees_values_not_spelling(cents: int, other: int, trimmed: bool, as_text: bool,
                                                order: Any) -> None:
    from ledger.commands.identity import fingerprint
    from ledger.commands.models import parse_line

    def line(amount: str, text: bool, shuffle: Any = None) -> str:
        fields = ['"subscription": "s-1"', f'"amount": {json.dumps(amount) if text else amount}']
        if shuffle:
            shuffle.shuffle(fields)
        return '{"id": "r-1", "type": "refund", "on": "2026-03-05", "data": {' + ", ".join(fields) + "}}"

    def written(c: int, trim: bool) -> str:  # 1250 -> "12.50", or "12.5"; 1200 -> "12.00", or "12"
        units, rest = divmod(c, 100)
        full = f"{units}.{rest:02d}"
        return full.rstrip("0").rstrip(".") if trim else full

    plain = fingerprint(parse_line(line(written(cents, False), True)))
    assert fingerprint(parse_line(line(written(cents, trimmed), as_text, order))) == plain
    assert (fingerprint(parse_line(line(written(other, False), True))) == plain) == (other == cents)


@given(text=st.text(), big=st.integers(min_value=-(2**70), max_value=2**70))
@settings(max_examples=300, deadline=None)
def test_a_fingerprint_is_the_digest_of_the_canonical_json_it_always_was(text: str, big: int) -> None:
    """Fingerprints are stored with outcomes: whichever JSON writer computes
    them, the bytes hashed stay json.dumps(sort_keys, compact, ensure_ascii
    off, values through _plain), for any text (control characters, non-ASCII,
    lone surrogates) and integers beyond 64 bits."""
    import hashlib
    from datetime import datetime, timezone
    from decimal import Decimal

    from ledger.commands import identity

    obj = {"type": "note", "on": datetime(2026, 3, 5, 1, 2, 3, 4, tzinfo=timezone.utc),
           "data": {"text": text, "z": big, "amount": Decimal("12.50"), "day": datetime(2026, 1, 1).date(),
                    "nested": [{"b": text, "a": None, "t": True}]}}
    try:
        expected = hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                             default=identity._plain).encode("utf-8")).hexdigest()
    except UnicodeEncodeError:  # a lone surrogate: no fingerprint, as before
        with pytest.raises(UnicodeEncodeError):
            identity._digest(obj)
        return
    assert identity._digest(obj) == expected


# -- a ledger restored from an export -------------------------------------------------------------
def test_a_ledger_restored_from_an_export_keeps_its_applied_commands(h: Harness, tmp_path: Path) -> None:
    from ledger.audit import Audit

    lines = case("07-same-id-other-command.jsonl")
    source = Harness(f"sqlite:///{tmp_path / 'source.db'}")
    try:
        source.submit(*lines)
        exported = [json.dumps(r) for r in Audit(source.ledger).export()]
    finally:
        source.close()
    assert Audit(h.ledger).import_(exported) == len(exported)  # into the fresh ledger of each backend
    head = h.head()
    # An export holds events, not outcomes: the applied commands' come back from their records.
    assert statuses(h.submit(*lines)) == ["duplicate", "duplicate", "duplicate", "conflict", "conflict"]
    assert h.head() == head
