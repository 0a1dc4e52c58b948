"""Audit for finance, on SQLite and PostgreSQL: known-at replay, frozen
statements with adjustments, statement verification, the hash chain against
SQL tampering, explanations, and export / import."""

from __future__ import annotations

import signal
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from ledger.aggregates import Refused
from ledger.audit import Audit
from ledger.chain import GENESIS, link
from ledger.db import Database, Unavailable
from ledger.service import Ledger

from .test_cli import Cli, assert_one_line_error, run
from .test_reliability import command_file, ledger_process, run_ledger
from .conftest import Harness, accept, cmd, deal, program

AS_OF = date(2026, 4, 15)


def subscription_program(h: Harness) -> None:
    h.clock.current = datetime(2026, 6, 1, tzinfo=timezone.utc)  # the ledger's clock: after the months issued
    program(h)
    h.ok(
        deal("d-1", on="2026-01-10"),
        accept("d-1", on="2026-01-12"),
        cmd("win_deal", on="2026-02-01", actor="partner:acme", deal="d-1", billing="credit-card"),
        cmd("start_subscription", on="2026-02-03", actor="vendor:manager", subscription="s-1",
            customer_domain="example.fi", plan="team", amount="390.00", currency="EUR", period="monthly",
            billing="credit-card", deal="d-1"),
    )


def queries(ledger: Ledger, known_at: Any = None) -> dict[str, Any]:
    return {
        "overview": ledger.overview("acme", None, AS_OF, known_at),
        "attention": ledger.attention(None, AS_OF, known_at),
        "deals": ledger.deals(None, None, None, AS_OF, known_at),
        "statement": ledger.statement("acme", "2026-03", known_at),
    }


def test_known_at_answers_equal_what_was_answered_then(h: Harness) -> None:
    subscription_program(h)
    h.ok(cmd("report_usage", on="2026-03-01", customer_domain="example.fi", users=4, framework="NIS2",
             progress=10, activities=5))
    moments, answers = [], []
    steps = [
        [cmd("renew_subscription", on="2026-03-03", actor="vendor:manager", subscription="s-1")],
        [cmd("set_commission_rate", on="2026-03-01", actor="vendor:manager", partner="acme", commission_rate="0.30"),
         deal("d-2", partner="beta", email="x@other.fi", on="2026-03-05")],
        [cmd("refund", on="2026-03-20", actor="vendor:manager", subscription="s-1", amount="90.00"),
         cmd("report_usage", on="2026-04-01", customer_domain="example.fi", users=9, progress=40, activities=7),
         cmd("accept_deal", actor="vendor:manager", deal="d-2")],
    ]
    for step in steps:
        h.ok(*step)
        moments.append(h.clock.current + timedelta(milliseconds=500))  # between this step and the next
        answers.append(queries(h.ledger))
    assert answers[0] != answers[1] != answers[2]  # each step changed what the queries say
    assert answers[1]["statement"]["lines"][0]["rate"] == Decimal("0.30")  # a back-dated rate re-prices March
    for moment, answer in zip(moments, answers):
        assert queries(h.ledger, moment) == answer


def test_issued_statement_is_frozen_and_late_charges_become_adjustments(h: Harness) -> None:
    subscription_program(h)
    h.ok(cmd("renew_subscription", on="2026-03-03", actor="vendor:manager", subscription="s-1"))
    audit = Audit(h.ledger)
    issued = audit.issue_statement("acme", "2026-03")
    march = h.ledger.statement("acme", "2026-03")
    assert issued["fingerprint"] == march["fingerprint"] and march["issued"]["position"] == issued["position"]
    assert [str(x["amount"]) for x in march["lines"]] == ["390.00"]
    with pytest.raises(Refused, match="already issued"):
        audit.issue_statement("acme", "2026-03")

    # Late facts for March: a refund dated in March and a rate change back-dated into March.
    h.ok(cmd("refund", on="2026-03-25", actor="vendor:manager", subscription="s-1", amount="100.00"),
         cmd("set_commission_rate", on="2026-03-01", actor="vendor:manager", partner="acme", commission_rate="0.25"))
    assert h.ledger.statement("acme", "2026-03") == march  # issued: never rewritten
    april = h.ledger.statement("acme", "2026-04")
    (adj,) = april["lines"]
    assert adj["adjustment"] == "2026-03" and adj["entry"] == "refund" and adj["amount"] == Decimal("-100.00")
    assert adj["rate"] == Decimal("0.25") and adj["commission"] == Decimal("-25.00")  # 0.25 x 100.00
    assert audit.verify_statement("acme/2026-03")["ok"]

    # Once April is issued too, a later March fact goes on to May.
    audit.issue_statement("acme", "2026-04")
    h.ok(cmd("refund", on="2026-03-26", actor="vendor:manager", subscription="s-1", amount="10.00"))
    assert [x["adjustment"] for x in h.ledger.statement("acme", "2026-05")["lines"]] == ["2026-03"]
    assert h.ledger.statement("acme", "2026-04")["lines"] == april["lines"]


def test_only_finance_and_system_issue_and_partners_do_not_audit(h: Harness) -> None:
    subscription_program(h)
    with Ledger(h.url, "partner:acme") as partner:
        with pytest.raises(Refused, match="may not run audits"):
            Audit(partner)
    with Ledger(h.url, "vendor:manager") as manager:
        with pytest.raises(Refused, match="may not issue statement"):
            Audit(manager).issue_statement("acme", "2026-02")
    with Ledger(h.url, "vendor:finance") as finance:
        assert Audit(finance).issue_statement("acme", "2026-02")["lines"] == 1


# -- tampering, directly in SQL ----------------------------------------------------------
class Tamper:
    def __init__(self, h: Harness) -> None:
        self.sql = Database.from_url(h.url).connect()
        self.pos = "notification_id" if self.sql.pg else "rowid"
        self.table = h.ledger.app.recorder.events_table_name

    def state(self, position: int) -> bytes:
        return bytes(self.sql.one(f"SELECT state FROM {self.table} WHERE {self.pos} = ?", [position])[0])

    def update(self, position: int, state: bytes) -> None:
        assert state != self.state(position), "the tampering must change the row"
        self.sql.execute(f"UPDATE {self.table} SET state = ? WHERE {self.pos} = ?", [state, position])

    def insert(self, like: int, version: int) -> None:
        """A copy of event `like` as version `version` of its aggregate,
        appended straight into the table (it takes the next position)."""
        row = self.sql.one(f"SELECT originator_id, originator_version, topic, state FROM {self.table} "
                           f"WHERE {self.pos} = ?", [like])
        self.sql.execute(f"INSERT INTO {self.table} (originator_id, originator_version, topic, state) "
                         "VALUES (?, ?, ?, ?)", [row[0], version, row[2], row[3]])

    def links(self) -> list[tuple[Any, ...]]:
        """Every row of the chain's tables."""
        rows = self.sql.all("SELECT position, link FROM audit_chain ORDER BY position")
        return [tuple(r) for r in rows + self.sql.all("SELECT id, position, link FROM audit_chain_head")]

    def rechain(self) -> None:
        """Recompute every link from the events as they are now, as an
        intruder with SQL access can (only a digest kept elsewhere shows it)."""
        previous = GENESIS
        rows = self.sql.all(f"SELECT {self.pos}, originator_id, originator_version, topic, state FROM {self.table} "
                            f"ORDER BY {self.pos}")
        self.sql.execute("DELETE FROM audit_chain")
        for position, oid, version, topic, state in rows:
            previous = link(previous, position, oid, version, topic, bytes(state))
            self.sql.execute("INSERT INTO audit_chain (position, link) VALUES (?, ?)", [position, previous])
        self.sql.execute("UPDATE audit_chain_head SET position = ?, link = ? WHERE id = 1", [rows[-1][0], previous])

    def close(self) -> None:
        self.sql.close()


def charge_position(h: Harness, month: str = "2026-02") -> int:
    return h.ledger.statement("acme", month)["lines"][0]["position"]


def test_verify_statement_fails_after_an_event_row_is_altered(h: Harness) -> None:
    subscription_program(h)
    audit = Audit(h.ledger)
    audit.issue_statement("acme", "2026-02")
    assert audit.verify_statement("acme/2026-02")["ok"]
    t = Tamper(h)
    position = charge_position(h)
    t.update(position, t.state(position).replace(b'"390.00"', b'"39.00"'))
    t.close()
    result = audit.verify_statement("acme/2026-02")
    assert not result["ok"] and result["replayed_fingerprint"] != result["recorded_fingerprint"]
    bad = audit.verify()
    assert (bad["ok"], bad["first_bad_position"]) == (False, position)


@pytest.mark.parametrize("attack", ["update", "delete", "swap", "insert"])
def test_chain_verification_names_the_first_bad_position(h: Harness, attack: str) -> None:
    subscription_program(h)
    audit = Audit(h.ledger)
    seal = audit.seal()
    assert audit.verify()["ok"] and audit.verify(seal["digest"])["ok"]
    t = Tamper(h)
    head = h.head()
    if attack == "update":
        t.update(1, t.state(1).replace(b"Acme", b"Acne"))
        expected = 1
    elif attack == "delete":
        t.sql.execute(f"DELETE FROM {t.table} WHERE {t.pos} = ?", [7])
        expected = 7
    elif attack == "swap":
        a, b = t.state(3), t.state(6)
        t.update(3, b)
        t.update(6, a)
        expected = 3
    else:
        row = t.sql.one(f"SELECT originator_id, originator_version, topic, state FROM {t.table} WHERE {t.pos} = ?",
                        [head])
        t.sql.execute(f"INSERT INTO {t.table} (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)",
                      [row[0], row[1] + 1, row[2], row[3]])
        expected = head + 1
    t.close()
    result = audit.verify()
    assert (result["ok"], result["first_bad_position"]) == (False, expected), result
    assert not audit.verify(seal["digest"])["ok"]


def test_a_rewritten_chain_is_caught_by_a_digest_kept_elsewhere(h: Harness) -> None:
    subscription_program(h)
    audit = Audit(h.ledger)
    seal = audit.seal()
    t = Tamper(h)
    t.update(1, t.state(1).replace(b"Acme", b"Acne"))
    t.close()
    # The intruder also rewrites the chain's links so that they agree with the change.
    t = Tamper(h)
    t.rechain()
    t.close()
    assert audit.verify()["ok"]
    result = audit.verify(seal["digest"])
    assert not result["ok"] and "digest" in result["problem"]


# -- explain, export, import ------------------------------------------------------------
def test_explain_lists_the_events_behind_a_line_a_row_and_an_item(h: Harness) -> None:
    subscription_program(h)
    audit = Audit(h.ledger)
    position = charge_position(h)
    line = audit.explain_line(position)
    assert [e["type"] for e in line] == ["Partner.Enrolled", "Subscription.Started"]
    assert line[-1]["position"] == position and line[-1]["actor"] == "vendor:manager"
    assert line[-1]["data"]["amount"] == Decimal("390.00")
    row = audit.explain_customer("example.fi", AS_OF)
    assert {"Customer.Recognised", "Deal.Registered", "Deal.ClosedWon", "Subscription.Started"} <= {e["type"] for e in row}
    assert all(e["command_id"] and e["recorded"] and e["effective"] for e in row)
    item = audit.explain_item("renewal-due", "s-1", date(2026, 2, 20))
    assert [e["type"] for e in item] == ["Subscription.Started"]


def test_explaining_trial_inactivity_reads_the_window_the_setting_gives(h: Harness, monkeypatch: Any) -> None:
    program(h)
    h.ok(cmd("start_trial", on="2026-03-01", actor="partner:acme", trial="t-1", partner="acme",
             customer_name="Example Oy", customer_email="jane@example.fi", days=30),
         cmd("report_usage", on="2026-03-02", customer_domain="example.fi", activities=4),
         cmd("report_usage", on="2026-03-10", customer_domain="example.fi", activities=2))
    audit = Audit(h.ledger)
    usage = lambda: [e["effective"].date().isoformat() for e in audit.explain_item("trial-inactive", "t-1", date(2026, 3, 20))  # noqa: E731
                     if e["type"].startswith("UsageDay")]
    assert usage() == []  # the default window (7 days) holds no report
    monkeypatch.setenv("LEDGER_ATTENTION_TRIAL_INACTIVE_DAYS", "10")
    assert usage() == ["2026-03-10"]
    monkeypatch.setenv("LEDGER_ATTENTION_TRIAL_INACTIVE_DAYS", "18")
    assert usage() == ["2026-03-02", "2026-03-10"]
    with pytest.raises(ValueError, match="unknown attention code"):
        audit.explain_item("nothing", "t-1", date(2026, 3, 20))


def test_export_then_import_recreates_the_same_ledger(h: Harness, tmp_path: Any) -> None:
    subscription_program(h)
    h.ok(cmd("renew_subscription", on="2026-03-03", actor="vendor:manager", subscription="s-1"))
    source = Audit(h.ledger)
    source.issue_statement("acme", "2026-02")
    lines = [__import__("json").dumps(r) for r in source.export()]
    assert len(lines) == h.head()
    target_url = f"sqlite:///{tmp_path / 'restored.db'}"
    with Ledger(target_url, "vendor:finance") as restored:
        target = Audit(restored)
        assert target.import_(lines) == len(lines)
        restored.runner.catch_up()
        assert target.seal()["digest"] == source.seal()["digest"]
        assert target.verify(source.seal()["digest"])["ok"]
        assert restored.statement("acme", "2026-03") == h.ledger.statement("acme", "2026-03")
        assert target.verify_statement("acme/2026-02")["ok"]
        with pytest.raises(Refused, match="empty database"):
            target.import_(lines[:1])


# -- the chain as evidence -----------------------------------------------------------------
def test_a_rebuild_after_sql_tampering_keeps_the_links_and_verify_still_fails(h: Harness, tmp_path: Any) -> None:
    subscription_program(h)
    audit = Audit(h.ledger)
    t = Tamper(h)
    bad = next(p for p in range(1, h.head() + 1) if b"Beta" in t.state(p))  # beta's enrolment
    t.update(bad, t.state(bad).replace(b"Beta", b"Bata"))
    links = t.links()
    assert audit.verify()["first_bad_position"] == bad
    assert h.ledger.rebuild() == ["pipeline", "overview", "statements", "tokens"]  # every read model, never the chain
    with pytest.raises(Refused, match="evidence, not a read model"):
        h.ledger.rebuild(["chain"])
    cli = Cli(h.url, tmp_path)
    assert cli.ok("--as", "system", "projections", "rebuild").out.startswith("rebuilt pipeline, overview, statements")
    assert_one_line_error(cli("--as", "system", "projections", "rebuild", "chain"), 1, "never rebuilt")
    assert t.links() == links  # the evidence is untouched
    t.close()
    result = audit.verify()
    assert (result["ok"], result["first_bad_position"]) == (False, bad), result
    r = cli("--as", "vendor:finance", "audit", "verify")
    assert r.code == 1 and r.out.startswith(f"FAILED at position {bad}: the event differs"), str(r)


def test_an_event_appended_straight_into_the_table_is_reported_as_written_outside(h: Harness) -> None:
    subscription_program(h)
    audit = Audit(h.ledger)
    head = h.head()
    t = Tamper(h)
    t.insert(like=head, version=99)
    t.close()
    result = audit.verify()
    assert (result["ok"], result["first_bad_position"]) == (False, head + 1), result
    assert "written outside the ledger" in result["problem"]
    # The ledger's next write neither adopts it nor hides it; the ledger's own events stay chained.
    h.ok(cmd("renew_subscription", on="2026-03-03", actor="vendor:manager", subscription="s-1"))
    assert audit.seal()["position"] == h.head() > head + 1
    result = audit.verify()
    assert (result["first_bad_position"], result["checked"]) == (head + 1, head)
    assert "written outside the ledger" in result["problem"]


def test_an_event_inserted_mid_log_is_written_outside_and_the_rest_still_checks(h: Harness) -> None:
    """A row given an explicit position inside the log (where a deleted one was)."""
    subscription_program(h)
    t = Tamper(h)
    row = t.sql.one(f"SELECT originator_id, originator_version, topic, state FROM {t.table} WHERE {t.pos} = 3")
    t.sql.execute(f"DELETE FROM {t.table} WHERE {t.pos} = 3")
    t.sql.execute(f"INSERT INTO {t.table} ({t.pos}, originator_id, originator_version, topic, state) "
                  "VALUES (?, ?, ?, ?, ?)", [3, *row])
    t.close()
    assert Audit(h.ledger).verify()["ok"]  # the same bytes at the same position: nothing changed
    t = Tamper(h)
    t.update(3, t.state(3) + b" ")
    t.close()
    assert Audit(h.ledger).verify()["first_bad_position"] == 3


def test_events_deleted_from_the_end_are_caught_and_sqlite_refuses_to_write_over_them(h: Harness) -> None:
    subscription_program(h)
    audit = Audit(h.ledger)
    head = h.head()
    t = Tamper(h)
    t.sql.execute(f"DELETE FROM {t.table} WHERE {t.pos} = ?", [head])
    t.close()
    result = audit.verify()
    assert (result["ok"], result["first_bad_position"]) == (False, head) and "log ends" in result["problem"]
    line = cmd("renew_subscription", on="2026-03-03", actor="vendor:manager", subscription="s-1")
    if h.ledger.db.kind == "sqlite":
        # SQLite gives the freed position to the next event: the chain has a link there already.
        with pytest.raises(Unavailable, match=f"position {head} is already chained"):
            h.submit(line)
        assert h.head() == head - 1 and audit.seal()["position"] == head  # nothing written
    else:
        h.ok(line)  # PostgreSQL never reuses a position: the gap stays
        assert h.head() > head
    result = audit.verify()
    assert (result["ok"], result["first_bad_position"]) == (False, head), result


def test_digest_beyond_the_log_fails_on_an_emptied_ledger_and_a_fresh_database(h: Harness, tmp_path: Any) -> None:
    subscription_program(h)
    audit = Audit(h.ledger)
    digest = audit.seal()["digest"]
    position = audit.seal()["position"]
    assert audit.verify(digest)["ok"]
    # Emptied: every event and link deleted.
    t = Tamper(h)
    for table in (t.table, "audit_chain", "audit_chain_head"):
        t.sql.execute(f"DELETE FROM {table}")
    t.close()
    assert audit.verify()["ok"]  # nothing to contradict...
    result = audit.verify(digest)  # ...but the digest says there was a history
    assert (result["ok"], result["checked"]) == (False, 0) and str(position) in result["problem"], result
    cli = Cli(h.url, tmp_path)
    r = cli("--as", "vendor:finance", "audit", "verify", "--digest", digest)
    assert r.code == 1 and r.out.startswith("FAILED at position 0: the log ends before the digest's position"), str(r)
    # A 0-byte SQLite file, and no file at all: no ledger there (exit 3, never "OK"), and nothing created.
    (tmp_path / "empty.db").write_bytes(b"")
    for url in (f"sqlite:///{tmp_path / 'empty.db'}", f"sqlite:///{tmp_path / 'nothing.db'}"):
        r = run("--db", url, "--as", "vendor:finance", "audit", "verify", "--digest", digest, cwd=tmp_path)
        assert r.code == 3 and "no ledger" in r.err and "OK" not in r.out, str(r)
    assert not (tmp_path / "nothing.db").exists()
    # A fresh ledger (its tables, no events): the log ends before the digest's position.
    assert run("--db", f"sqlite:///{tmp_path / 'fresh.db'}", "--as", "system", "submit", "-", stdin="",
               cwd=tmp_path).code == 0
    r = run("--db", f"sqlite:///{tmp_path / 'fresh.db'}", "--as", "vendor:finance", "audit", "verify", "--digest",
            digest, cwd=tmp_path)
    assert r.code == 1 and "the log ends before the digest's position" in r.out, str(r)
    # A digest of position 0 matches only the empty chain.
    with Ledger(f"sqlite:///{tmp_path / 'fresh.db'}", "vendor:finance") as fresh:
        empty = Audit(fresh).seal()["digest"]
        assert empty == f"ledger-seal:0:{GENESIS}" and Audit(fresh).verify(empty)["ok"]
        assert not Audit(fresh).verify("ledger-seal:0:" + "ab" * 32)["ok"]
        with pytest.raises(ValueError, match="not a ledger digest"):
            Audit(fresh).verify("ledger-seal:-1:" + "ab" * 32)


def test_digest_beyond_the_log_fails_on_a_fresh_database(db_url: str, tmp_path: Any) -> None:
    """Either backend, a database that never held the sealed history: without
    the ledger's tables it is no ledger (exit 3); a fresh one fails the digest."""
    digest = f"ledger-seal:42:{'cd' * 32}"
    r = run("--db", db_url, "--as", "vendor:finance", "--json", "audit", "verify", "--digest", digest, cwd=tmp_path)
    assert r.code == 3 and "no ledger" in r.err, str(r)
    assert run("--db", db_url, "--as", "system", "submit", "-", stdin="", cwd=tmp_path).code == 0
    r = run("--db", db_url, "--as", "vendor:finance", "--json", "audit", "verify", "--digest", digest, cwd=tmp_path)
    assert r.code == 1, str(r)
    out = __import__("json").loads(r.out)
    assert (out["ok"], out["checked"], out["first_bad_position"]) == (False, 0, 0) and "42" in out["problem"]


def test_a_digest_whose_event_was_deleted_and_rechained_fails(h: Harness) -> None:
    subscription_program(h)
    audit = Audit(h.ledger)
    digest = audit.seal()["digest"]
    h.ok(cmd("renew_subscription", on="2026-03-03", actor="vendor:manager", subscription="s-1"))
    position = int(digest.split(":")[1])
    t = Tamper(h)
    t.sql.execute(f"DELETE FROM {t.table} WHERE {t.pos} = ?", [position])
    t.rechain()
    t.close()
    assert audit.verify()["ok"]
    result = audit.verify(digest)
    assert (result["ok"], result["first_bad_position"]) == (False, position), result
    assert "not in the log" in result["problem"]


def test_a_ledger_that_kept_the_chain_as_a_projection_adopts_its_unchained_events_once(h: Harness) -> None:
    """A ledger written by an older version: its chain projection stopped
    short of the head (a Ctrl-C between the events and their links)."""
    subscription_program(h)
    head = h.head()
    t = Tamper(h)
    t.sql.execute("DELETE FROM audit_chain WHERE position > 5")
    t.sql.execute("UPDATE audit_chain_head SET position = 5, link = (SELECT link FROM audit_chain WHERE position = 5)")
    t.sql.execute("INSERT INTO ledger_projections (name, position, version, suffix) VALUES ('chain', 5, 1, '')")
    assert not Audit(h.ledger).verify()["ok"]
    with Ledger(h.url, "vendor:finance") as upgraded:
        assert Audit(upgraded).verify() == {"ok": True, "checked": head, "head": Audit(upgraded).seal()["head"],
                                            "position": head}
    assert t.sql.one("SELECT COUNT(*) FROM ledger_projections WHERE name = 'chain'")[0] == 0
    t.close()


# -- Ctrl-C and kill -9 during a submission -------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_submit_interrupted_midway_leaves_every_committed_event_chained(db_url: str, tmp_path: Any,
                                                                         sig: signal.Signals) -> None:
    path = command_file(tmp_path, 3000)
    with Ledger(db_url, "system") as ledger:
        for attempt in range(3):
            proc = ledger_process(db_url, "submit", "--problems-only", str(path))
            before = ledger.app.head()
            deadline = time.monotonic() + 60
            while ledger.app.head() < before + 600 * (attempt + 1) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            proc.send_signal(sig)
            proc.communicate(timeout=60)
            # No other command runs in between: verify sees what the interrupted process left.
            result = Audit(ledger).verify()
            assert result["ok"] and result["checked"] == ledger.app.head() > before, (attempt, result)
        assert run_ledger(db_url, "submit", "--problems-only", str(path))[0] in (0, 1)
        assert Audit(ledger).verify()["ok"]


# -- who may rebuild -------------------------------------------------------------------------------
def test_only_system_and_finance_rebuild_projections(h: Harness, tmp_path: Any) -> None:
    subscription_program(h)
    cli = Cli(h.url, tmp_path)

    def written() -> Any:
        t = Tamper(h)
        out = ([tuple(r) for r in t.sql.all("SELECT name, position, version, suffix FROM ledger_projections "
                                            "ORDER BY name")],
               sorted(tables(t.sql)), t.links(), h.head())
        t.close()
        return out

    before = written()
    for actor in ("partner:acme", "vendor:manager"):
        r = cli("--as", actor, "projections", "rebuild")
        assert_one_line_error(r, 1, f"{actor} may not rebuild projections", "only system and vendor:finance")
        assert_one_line_error(cli("--as", actor, "projections", "rebuild", "statements"), 1, "may not rebuild")
        with Ledger(h.url, actor) as other, pytest.raises(Refused, match="may not rebuild"):
            other.rebuild(["pipeline"])
        assert written() == before
    for actor in ("vendor:finance", "system"):
        assert cli.ok("--as", actor, "--json", "projections", "rebuild", "pipeline").json()["rebuilt"] == ["pipeline"]
    assert Audit(h.ledger).verify()["ok"]


def tables(sql: Any) -> list[str]:
    if sql.pg:
        return [r[0] for r in sql.all("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
    return [r[0] for r in sql.all("SELECT name FROM sqlite_master WHERE type = 'table'")]


def test_postgresql_refuses_to_write_over_links_when_positions_are_reused(h: Harness) -> None:
    """The sequence set back by hand (as after deleting the last events):
    the write is refused and rolled back whole, never stored unchained."""
    if h.ledger.db.kind != "postgres":
        pytest.skip("SQLite reuses a freed position on its own: see the deletion test above")
    subscription_program(h)
    head = h.head()
    t = Tamper(h)
    t.sql.execute(f"DELETE FROM {t.table} WHERE {t.pos} > ?", [head - 2])
    t.sql.execute(f"SELECT setval(pg_get_serial_sequence('{t.table}', 'notification_id'), ?)", [head - 2])
    t.close()
    with pytest.raises(Unavailable, match=f"position {head - 1} is already chained"):
        h.submit(cmd("renew_subscription", on="2026-03-03", actor="vendor:manager", subscription="s-1"))
    assert h.head() == head - 2 and Audit(h.ledger).seal()["position"] == head


def test_events_are_chained_even_with_the_librarys_insert_function_asked_for(db_url: str, monkeypatch: Any) -> None:
    """POSTGRES_ENABLE_DB_FUNCTIONS in the environment would make the library
    insert through its own database function, past the hooks that chain."""
    monkeypatch.setenv("POSTGRES_ENABLE_DB_FUNCTIONS", "y")
    h = Harness(db_url)
    try:
        program(h)
        assert Audit(h.ledger).verify() == {"ok": True, "checked": h.head(), "position": h.head(),
                                            "head": Audit(h.ledger).seal()["head"]}
    finally:
        h.close()


def test_an_import_into_either_backend_restores_the_links_and_the_ledger_chains_on(db_url: str, tmp_path: Any) -> None:
    source = Harness(f"sqlite:///{tmp_path / 'source.db'}")
    try:
        subscription_program(source)
        lines = [__import__("json").dumps(r) for r in Audit(source.ledger).export()]
        digest = Audit(source.ledger).seal()["digest"]
    finally:
        source.close()
    target = Harness(db_url)
    try:
        audit = Audit(target.ledger)
        assert audit.import_(lines) == len(lines)
        assert audit.seal()["digest"] == digest and audit.verify(digest)["ok"]
        target.ok(cmd("renew_subscription", on="2026-03-03", actor="vendor:manager", subscription="s-1"))
        result = audit.verify(digest)
        assert result["ok"] and result["checked"] == target.head() > len(lines)
    finally:
        target.close()
