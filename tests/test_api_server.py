"""The API against a real `ledger serve` subprocess on 127.0.0.1 (a free
port), on SQLite and PostgreSQL: every endpoint against every actor kind,
schemathesis (property-based, from the OpenAPI document: no 5xx, no answer
outside its schema), a token revoked mid-run, graceful shutdown, and two
workers on PostgreSQL racing on one deal."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.aggregates import aggregate_id
from ledger.service import Ledger
from ledger.tokens import issue

from .conftest import Harness, cmd, deal, program
from .test_authority import setup_case

LEDGER = str(Path(sys.executable).with_name("ledger"))
# uvicorn shuts down gracefully on SIGTERM, then re-raises it: the exit is by that signal.
STOPPED = (0, -signal.SIGTERM)
KINDS = ["partner:acme", "partner:beta", "vendor:manager", "vendor:finance", "system"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`ledger serve` in a subprocess; its stderr (the JSON-lines log) kept in a file."""

    def __init__(self, url: str, log: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(
            [LEDGER, "--db", url, "serve", "--port", str(self.port), "--workers", str(workers)],
            stdout=subprocess.DEVNULL, stderr=self.log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]


@pytest.fixture
def world(h: Harness, tmp_path: Path) -> Iterator[tuple[Harness, Server, dict[str, str]]]:
    """Two partners with deals, a trial and a subscription; one token per actor kind; a server."""
    program(h)
    setup_case(h, 1)
    h.ok(deal("b1", partner="beta", email="b@beta-customer.fi", name="Beta Kunde", on="2026-01-12"))
    tokens = {k: issue(h.ledger, k, k.replace(":", "-"))["token"] for k in KINDS}
    server = Server(h.url, tmp_path / "server.log")
    try:
        yield h, server, tokens
    finally:
        assert server.stop() in STOPPED, server.log_path.read_text()[-2000:]
    text = server.log_path.read_text()
    assert all(t not in text for t in tokens.values()), "a secret reached the log"
    assert "Traceback" not in text
    assert all(isinstance(line, dict) for line in server.lines())  # every line is JSON


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


# endpoint -> how to call it. Commands: register a deal for acme (partners act as themselves).
ENDPOINTS = {
    "POST /api/v1/commands": ("POST", "/api/v1/commands"),
    "GET /api/v1/overview": ("GET", "/api/v1/overview"),
    "GET /api/v1/overview?partner=acme": ("GET", "/api/v1/overview?partner=acme"),
    "GET /api/v1/attention?partner=acme": ("GET", "/api/v1/attention?partner=acme"),
    "GET /api/v1/deals?partner=acme": ("GET", "/api/v1/deals?partner=acme"),
    "GET /api/v1/statements/acme/2026-01": ("GET", "/api/v1/statements/acme/2026-01"),
    "GET /api/v1/statements/acme/2026-01.csv": ("GET", "/api/v1/statements/acme/2026-01.csv"),
    "GET /healthz": ("GET", "/healthz"),
    "GET /api/v1/openapi.json": ("GET", "/api/v1/openapi.json"),
}
# The authority matrix: endpoint x actor kind -> status (None: no token).
EXPECTED = {
    "POST /api/v1/commands": {None: 401, "partner:acme": 200, "partner:beta": 403, "vendor:manager": 200,
                              "vendor:finance": 403, "system": 200},
    **{e: {None: 401, "partner:acme": 200, "partner:beta": 403, "vendor:manager": 200, "vendor:finance": 200,
           "system": 200}
       for e in ENDPOINTS if e.startswith("GET /api/v1/") and "partner=acme" in e or "/statements/" in e},
    "GET /api/v1/overview": {None: 401, **{k: 200 for k in KINDS}},  # a partner: its own
    "GET /healthz": {None: 200, **{k: 200 for k in KINDS}},
    "GET /api/v1/openapi.json": {None: 200, **{k: 200 for k in KINDS}},
}


def test_every_endpoint_against_every_actor_kind(world: Any) -> None:
    h, server, tokens = world
    seen: dict[str, dict[str | None, int]] = {}
    with httpx.Client(base_url=server.base, timeout=30) as client:
        for name, (method, path) in ENDPOINTS.items():
            for kind in [None, *KINDS]:
                body = None
                if method == "POST":
                    n = [None, *KINDS].index(kind)
                    line = deal(f"m-{n}", email=f"x@customer-{n}.fi")
                    del line["actor"]  # the token says who
                    body = json.dumps(line)
                before = h.head()
                r = client.request(method, path, content=body, headers=bearer(tokens.get(kind or "")))
                seen.setdefault(name, {})[kind] = r.status_code
                if r.status_code >= 400:
                    assert r.headers["content-type"].startswith("application/problem+json"), (name, kind)
                    assert h.head() == before, (name, kind, "an error wrote events")
    assert seen == EXPECTED
    print("\nauthority matrix (endpoint x actor -> status):")
    for name, row in seen.items():
        print(f"  {name:42} " + "  ".join(f"{k or 'none'}={v}" for k, v in row.items()))


def test_schemathesis_finds_no_server_error_and_no_schema_violation(world: Any) -> None:
    """Property-based requests from the OpenAPI document, as system and as a
    partner: every answer is documented (status, content type, schema) and none is a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import checks as sc

    # No 5xx, and every answer as documented. (Not `positive_data_acceptance`: the
    # schema cannot say every rule, e.g. that "  " is not a name; such input is 422.)
    CHECKS = [sc.not_a_server_error, sc.status_code_conformance, sc.content_type_conformance,
              sc.response_schema_conformance, sc.response_headers_conformance]

    h, server, tokens = world
    schema = schemathesis.openapi.from_url(server.base + "/api/v1/openapi.json")
    bounded = settings(max_examples=8, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                       suppress_health_check=list(HealthCheck))
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 7
    checked = 0
    for operation in operations:
        for kind in ("system", "partner:acme"):
            @bounded
            @given(case=operation.as_strategy())
            def run(case: Any) -> None:
                nonlocal checked
                response = case.call(base_url=server.base, headers=bearer(tokens[kind]), timeout=30)
                assert response.status_code < 500, (case.method, case.path, response.text[:300])
                case.validate_response(response, checks=CHECKS)
                checked += 1

            run()
    assert checked >= len(operations)
    assert all(line.get("status", 200) < 500 for line in server.lines())


def test_a_token_revoked_mid_run_fails_from_the_next_request(world: Any) -> None:
    h, server, tokens = world
    statuses: list[int] = []
    with httpx.Client(base_url=server.base, timeout=30) as client:
        for i in range(6):
            statuses.append(client.post("/api/v1/commands", headers=bearer(tokens["partner:acme"]), content=json.dumps(
                cmd("add_deal_note", on="2026-02-05", deal="d1", text=f"note {i}"))).status_code)
        out = subprocess.run([LEDGER, "--db", h.url, "token", "revoke", "partner-acme"], capture_output=True)
        assert out.returncode == 0, out.stderr
        for i in range(3):
            statuses.append(client.post("/api/v1/commands", headers=bearer(tokens["partner:acme"]), content=json.dumps(
                cmd("add_deal_note", on="2026-02-05", deal="d1", text=f"late {i}"))).status_code)
            statuses.append(client.get("/api/v1/deals", headers=bearer(tokens["partner:acme"])).status_code)
        assert client.get("/api/v1/deals", headers=bearer(tokens["partner:beta"])).status_code == 200
    assert statuses == [200] * 6 + [401] * 6
    notes = [e for e in h.ledger.app.events.get(aggregate_id("deal", "d1")) if type(e).__name__ == "NoteAdded"]
    assert len(notes) == 6 and all(e.token == "partner-acme" for e in notes)


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    out = subprocess.run([LEDGER, "--db", f"sqlite:///{tmp_path / 'x.db'}", "serve", "--workers", "2"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "PostgreSQL" in out.stderr


def test_graceful_shutdown_finishes_in_flight_commands(h: Harness, tmp_path: Path) -> None:
    """SIGTERM while clients post: the server exits 0; every command answered 200 is
    applied, and no command is half-applied (its note event and its record agree)."""
    program(h)
    h.ok(deal("d1"))
    token = issue(h.ledger, "partner:acme", "acme")["token"]
    server = Server(h.url, tmp_path / "server.log")
    answered: dict[str, int] = {}

    def client(n: int) -> None:
        with httpx.Client(base_url=server.base, timeout=30) as c:
            for i in range(200):
                cid = f"g-{n}-{i}"
                try:
                    r = c.post("/api/v1/commands", headers=bearer(token), content=json.dumps(
                        cmd("add_deal_note", on="2026-01-20", id=cid, deal="d1", text=cid)))
                except httpx.HTTPError:
                    return
                answered[cid] = r.status_code

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    assert server.stop() in STOPPED
    for t in threads:
        t.join()
    assert answered and all(s == 200 for s in answered.values())
    with Ledger(h.url, "system") as ledger:
        notes = [e.text for e in ledger.app.events.get(aggregate_id(
            "deal", "d1")) if type(e).__name__ == "NoteAdded"]
        applied = {cid for _, cid in ledger.app.applied_keys(
            ("partner:acme", f"g-{n}-{i}") for n in range(4) for i in range(200))}
    assert set(answered) <= applied  # every 200 is durable
    assert sorted(notes) == sorted(applied)  # nothing half-written: a note for each record, no more
    assert any(line.get("message", "").startswith("Shutting down") or "shutdown" in json.dumps(line).lower()
               for line in server.lines())


def test_two_workers_on_postgresql_apply_every_command_exactly_once(db_url: str, tmp_path: Path) -> None:
    """Two worker processes, eight clients racing on one deal, every command sent twice."""
    if not db_url.startswith("postgresql"):
        pytest.skip("several workers are for PostgreSQL (SQLite refuses them: see the test above)")
    h = Harness(db_url)
    try:
        program(h)
        h.ok(deal("d1"))
        token = issue(h.ledger, "system", "racer")["token"]
        server = Server(db_url, tmp_path / "server.log", workers=2)
        ids = [f"r-{i}" for i in range(120)]
        statuses: list[tuple[str, int, str]] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            with httpx.Client(base_url=server.base, timeout=60) as c:
                for cid in ids[n::4] + ids[n::4]:  # each id twice, from two of the eight clients
                    r = c.post("/api/v1/commands", headers=bearer(token), content=json.dumps(
                        cmd("add_deal_note", on="2026-01-20", actor="partner:acme", id=cid, deal="d1", text=cid)))
                    with lock:
                        statuses.append((cid, r.status_code, r.json()["status"]))

        threads = [threading.Thread(target=client, args=(n % 4,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pids = {line.get("message", "") for line in server.lines() if "Started server process" in line.get("message", "")}
        assert server.stop() in STOPPED
        assert len(pids) == 2, pids  # two worker processes served
        assert all(code == 200 for _, code, _ in statuses), [s for s in statuses if s[1] != 200][:5]
        applied = [cid for cid, _, status in statuses if status == "applied"]
        assert sorted(applied) == sorted(ids)  # each applied exactly once; the rest duplicate
        assert len(statuses) == 4 * len(ids)
        with Ledger(db_url, "system") as ledger:
            notes = [e.text for e in ledger.app.events.get(aggregate_id(
                "deal", "d1")) if type(e).__name__ == "NoteAdded"]
            assert sorted(notes) == sorted(ids)
            row = [r for r in ledger.deals(None, None, None, date(2026, 2, 1)) if r["deal"] == "d1"]
            assert row and row[0]["last_action"] == date(2026, 1, 20)
    finally:
        h.close()
