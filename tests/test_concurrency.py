"""Two processes racing on one deal and one customer: optimistic concurrency
never loses or duplicates an event; the loser re-reads and re-applies its
command, or is refused if it no longer holds."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from ledger.aggregates import Customer, Deal

from .conftest import Harness, cmd, deal, program

WORKER = textwrap.dedent(
    """
    import json, sys
    from ledger.service import Ledger
    url, path = sys.argv[1], sys.argv[2]
    lines = open(path).read().splitlines()
    out = []
    with Ledger(url, "system") as ledger:
        for line in lines:  # one command per transaction: as many races as possible
            out += [r.as_dict() for r in ledger.submit_lines([line])]
        out.append({"conflicts": ledger.app.conflicts})
    print(json.dumps(out))
    """
)


conflicts: list[int] = []  # races lost and retried, per worker run (for the report below)


def run_workers(url: str, tmp_path: Path, files: list[list[dict]]) -> list[list[dict]]:
    procs = []
    for i, lines in enumerate(files):
        path = tmp_path / f"worker{i}.jsonl"
        path.write_text("\n".join(json.dumps(line) for line in lines))
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, url, str(path)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        *lines, tally = json.loads(out)
        results.append(lines)
        conflicts.append(tally["conflicts"])
    return results


def test_two_processes_adding_notes_to_one_deal_lose_and_duplicate_nothing(h: Harness, tmp_path: Path) -> None:
    program(h)
    h.ok(deal("d-1", on="2026-01-10"))
    notes = [cmd("add_deal_note", id=f"n-{i}", on="2026-01-11", actor="partner:acme", deal="d-1", text=f"note {i}")
             for i in range(60)]
    # Both workers submit notes 0-39 / 20-59: ids 20-39 are raced by both.
    a, b = run_workers(h.url, tmp_path, [notes[:40], notes[20:]])
    applied = [r["id"] for r in a + b if r["status"] == "applied"]
    duplicates = [r["id"] for r in a + b if r["status"] == "duplicate"]
    assert sorted(applied) == sorted(f"n-{i}" for i in range(60))  # each id exactly once
    assert len(duplicates) == 20
    h.ledger.app.repository.cache and h.ledger.app.repository.cache.clear()
    d = h.ledger.app.get(Deal, "d-1")
    assert d.notes == 60 and d.version == 61
    from ledger.aggregates import aggregate_id

    events = list(h.ledger.app.events.get(aggregate_id("deal", "d-1")))
    assert [e.originator_version for e in events] == list(range(1, 62))
    assert sorted(e.command_id for e in events[1:]) == sorted(f"n-{i}" for i in range(60))
    # The read model saw every note too.
    assert h.ledger.deals(None, None, None, __import__("datetime").date(2026, 2, 1))[0]["last_action"] == __import__("datetime").date(2026, 1, 11)


def test_two_partners_racing_for_one_customer_end_with_one_protection(h: Harness, tmp_path: Path) -> None:
    program(h)
    rounds = 15
    a_lines = [deal(f"a-{i}", partner="acme", email=f"x@race{i}.fi", name=f"Race {i}") for i in range(rounds)]
    b_lines = [deal(f"b-{i}", partner="beta", email=f"y@race{i}.fi", name=f"Race {i}") for i in range(rounds)]
    a, b = run_workers(h.url, tmp_path, [a_lines, b_lines])
    for i in range(rounds):
        ra, rb = a[i], b[i]
        assert ra["status"] == rb["status"] == "applied"
        winners = [r for r in (ra, rb) if not r.get("note")]
        assert len(winners) == 1, (ra, rb)  # exactly one protects, the other is a denied duplicate
        winner, loser = (f"a-{i}", rb) if winners[0] is ra else (f"b-{i}", ra)
        assert "duplicate" in loser["note"]
        protecting = h.ledger.app.get(Customer, f"race{i}.fi").protecting_deal
        assert protecting == winner
        other = f"b-{i}" if winner.startswith("a") else f"a-{i}"
        assert h.ledger.app.get(Deal, other).deny_reason == "duplicate"
        assert h.ledger.app.get(Deal, protecting).review == "pending"


def test_two_processes_racing_on_one_key_apply_it_once_and_other_actors_ids_are_their_own(
        h: Harness, tmp_path: Path) -> None:
    """Ids are keys of their actor (INTERFACE.md "Additions"): acme's and
    beta's n-i are two commands; acme's n-i sent by two processes with two
    texts is one command, applied once, and a conflict for the other."""
    program(h)
    h.ok(deal("d-1"), deal("d-2", partner="beta", email="bob@two.fi", name="Two GmbH"))
    n = 30

    def notes(actor: str, deal_: str, text: str) -> list[dict]:
        return [cmd("add_deal_note", id=f"n-{i}", on="2026-01-11", actor=actor, deal=deal_, text=f"{text} {i}")
                for i in range(n)]

    a, b = run_workers(h.url, tmp_path, [notes("partner:acme", "d-1", "first"),
                                         [x for pair in zip(notes("partner:beta", "d-2", "beta"),
                                                            notes("partner:acme", "d-1", "second")) for x in pair]])
    beta = b[0::2]
    assert [r["status"] for r in beta] == ["applied"] * n  # beta's ids were never acme's
    acme = a + b[1::2]
    for i in range(n):
        mine = sorted(r["status"] for r in acme if r["id"] == f"n-{i}")
        assert mine == ["applied", "conflict"], (i, mine)  # one key, one command: the loser conflicts
    h.ledger.app.repository.cache and h.ledger.app.repository.cache.clear()
    assert h.ledger.app.get(Deal, "d-1").notes == n and h.ledger.app.get(Deal, "d-2").notes == n


def test_the_races_above_really_happened() -> None:
    # Both race tests ran before this one (file order); if no worker ever lost a
    # race, they proved nothing about concurrency.
    assert len(conflicts) >= 4 and sum(conflicts) > 0, conflicts
