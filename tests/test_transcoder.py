"""The stored bytes: orjson writes what the standard library's transcoder
wrote, reads what it wrote, and a ledger written before (by the library's
own JSONTranscoder) still verifies, loads and rebuilds to the same answers."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from eventsourcing.persistence import JSONTranscoder

from ledger.aggregates import Deal
from ledger.application import LedgerApp
from ledger.audit import Audit
from ledger.sample import generate
from ledger.service import Ledger
from ledger.transcoder import DateAsISO, LedgerTranscoder


def transcoders() -> tuple[JSONTranscoder, LedgerTranscoder]:
    old, new = JSONTranscoder(), LedgerTranscoder()
    for t in (old, new):
        LedgerApp.register_transcodings(None, t)  # type: ignore[arg-type]  # the library's own three
        t.register(DateAsISO())
    return old, new


OLD, NEW = transcoders()
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.dates(), st.datetimes(timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=3))])),
)
states = st.dictionaries(st.text(max_size=12), st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12), max_size=8)


@settings(max_examples=400, deadline=None)
@given(states)
def test_orjson_writes_and_reads_the_librarys_bytes(state: dict[str, Any]) -> None:
    try:
        old = OLD.encode(state)
    except UnicodeEncodeError:  # a lone surrogate: never storable, and not by the new one either
        return
    assert NEW.encode(state) == old
    assert NEW.decode(old) == OLD.decode(old) == state


def test_numbers_beyond_64_bits_stay_exact() -> None:
    state = {"position": 2**70, "lines": [-(2**65), 1]}
    assert NEW.encode(state) == OLD.encode(state)
    assert NEW.decode(OLD.encode(state)) == state
    assert type(NEW.decode(b'{"n": 12345678901234567890123}')["n"]) is int


def test_transcoded_values_come_back_typed() -> None:
    at = datetime(2026, 3, 1, 12, 30, tzinfo=timezone.utc)
    state = {"at": at, "day": date(2026, 3, 1), "amount": Decimal("12.50"), "nested": [{"when": at}]}
    raw = NEW.encode(state)
    assert json.loads(raw)["amount"] == {"_type_": "decimal_str", "_data_": "12.50"}
    assert NEW.decode(raw) == state


def _answers(ledger: Ledger) -> Any:
    end = date(2026, 11, 1)
    deals = ledger.deals(None, None, None, end)
    return deals, [ledger.overview(p, None, end) for p in sorted({d["partner"] for d in deals})]


def test_a_ledger_written_by_the_librarys_transcoder_verifies_and_replays(db_url: str, monkeypatch: Any) -> None:
    keys = [f"d-3-{i}" for i in range(1, 26)]
    with monkeypatch.context() as m:
        m.setattr(LedgerApp, "construct_transcoder", lambda self: OLD)
        with Ledger(db_url, "system") as old:
            assert old.app.mapper.transcoder is OLD
            results = old.submit_lines(json.dumps(c) for c in generate(3, 3, 25, date(2026, 11, 1)))
            assert sum(r.status == "applied" for r in results) > 300
            before = _answers(old)
            deals = [vars(d) if (d := old.app.get(Deal, k)) else None for k in keys]
            assert sum(d is not None for d in deals) >= 20
    with Ledger(db_url, "system") as new:
        assert isinstance(new.app.mapper.transcoder, LedgerTranscoder)
        report = Audit(new).verify()
        assert report["ok"] and report["checked"] == new.app.head()
        assert [vars(d) if (d := new.app.get(Deal, k)) else None for k in keys] == deals
        new.rebuild()
        assert _answers(new) == before
