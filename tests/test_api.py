"""The HTTP API in process (FastAPI's test client), on SQLite and PostgreSQL:
tokens, the authority matrix (every command type and every query against
every actor kind, as tests/test_authority.py does for the CLI), status codes
and problem details, the same JSON as the CLI's --json, limits on bodies and
nesting, and the hostile-input suite driven through HTTP."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from hypothesis import given, note
from hypothesis import strategies as st

from ledger.aggregates import Deal, aggregate_id
from ledger.api.app import MAX_BODY_BYTES, create_app
from ledger.service import Ledger
from ledger.tokens import issue, revoke

from . import test_hostile_input as hostile
from .conftest import Harness, cmd, deal, program
from .test_authority import ACTORS, ALLOWED, OTHER, OWNER, SYSTEM, commands, setup_case

TRACEBACK = hostile.TRACEBACK


class Api:
    """A ledger (driven as `system` through the harness), the app over it, and one token per actor kind."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.client = TestClient(create_app(h.url), raise_server_exceptions=False)
        self.tokens = {actor: issue(h.ledger, actor, actor.replace(":", "-"))["token"] for actor in ACTORS}

    def auth(self, actor: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[actor]}"} if actor else {}

    def post(self, actor: str | None, body: Any) -> Any:
        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.client.post("/api/v1/commands", content=content, headers=self.auth(actor))

    def get(self, actor: str | None, path: str, **params: Any) -> Any:
        return self.client.get("/api/v1" + path, params=params, headers=self.auth(actor))

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def api(h: Harness) -> Iterator[Api]:
    client = Api(h)
    with client.client:
        yield client


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """An RFC 9457 problem details body with a one-line detail and no trace."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"] == "about:blank"
    assert not hostile.message_problems(body["detail"]), body
    return body


# -- tokens ---------------------------------------------------------------------------------------
def test_a_token_is_stored_only_as_its_hash_and_listed_without_it(api: Api) -> None:
    secret = api.tokens["partner:acme"]
    assert secret.startswith("plt_") and len(secret) >= 40
    ledger = api.h.ledger
    dumped = json.dumps([list(map(str, r)) for r in ledger.sql.all(f"SELECT * FROM {ledger.app.events_table}")])
    dumped += json.dumps([list(map(str, r)) for r in ledger.sql.all("SELECT * FROM pl_tokens")])
    assert secret not in dumped and secret[4:] not in dumped
    from ledger.tokens import digest, listing

    assert digest(secret) in dumped
    rows = listing(ledger)
    assert {r["name"] for r in rows} == {a.replace(":", "-") for a in ACTORS}
    assert all("digest" not in r and "token" not in r for r in rows)


def test_missing_unknown_malformed_and_revoked_tokens_answer_401(api: Api) -> None:
    program(api.h)  # a query for a partner never enrolled is refused (404), not empty
    before = api.h.head()
    good = api.tokens["partner:acme"]
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer plt_nope"},
                    {"Authorization": f"Basic {good}"}, {"Authorization": "Bearer " + "x" * 5000},
                    {"Authorization": f"Bearer {good}x"}):
        r = api.client.get("/api/v1/overview", headers=headers)
        assert_problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert_problem(api.client.post("/api/v1/commands", content=b"{}", headers=headers), 401)
    assert api.get("partner:acme", "/overview").status_code == 200
    # Revoked by another process (its own Ledger): the very next request fails.
    with Ledger(api.h.url, "vendor:manager", clock=api.h.clock) as other:
        revoke(other, "partner-acme")
    assert_problem(api.get("partner:acme", "/overview"), 401)
    assert_problem(api.post("partner:acme", deal("d-x")), 401)
    assert api.h.head() == before + 2  # only the revocation and its command record


def test_token_issue_and_revoke_authority(h: Harness) -> None:
    from ledger.aggregates import Refused
    from ledger.authority import Forbidden

    for actor in ("partner:acme", "vendor:finance"):
        with Ledger(h.url, actor, clock=h.clock) as ledger, pytest.raises(Forbidden):
            issue(ledger, "partner:acme", f"k-{actor[-4:]}")
    with Ledger(h.url, "vendor:manager", clock=h.clock) as manager:
        with pytest.raises(Forbidden, match="only system"):
            issue(manager, "system", "root-key")
        issue(manager, "partner:acme", "acme-1")
        with pytest.raises(Refused, match="already exists"):
            issue(manager, "vendor:finance", "acme-1")
        with pytest.raises(ValueError):
            issue(manager, "root", "bad-actor")
        revoke(manager, "acme-1")
        with pytest.raises(Refused, match="already revoked"):
            revoke(manager, "acme-1")
        with pytest.raises(Refused, match="no token"):
            revoke(manager, "never-issued")
    with Ledger(h.url, "partner:acme", clock=h.clock) as partner, pytest.raises(Forbidden):
        revoke(partner, "acme-1")
    assert issue(h.ledger, "system", "root-key")["actor"] == "system"  # system may


def test_the_cli_issues_lists_and_revokes_tokens(h: Harness) -> None:
    from cli import main

    run = lambda *args: CliRunner().invoke(main, ["--db", h.url, *args])  # noqa: E731
    program(h)
    out = run("--as", "vendor:manager", "token", "issue", "--actor", "partner:acme", "--name", "cli-key")
    assert out.exit_code == 0, out.output
    secret = out.output.strip()
    client = TestClient(create_app(h.url))
    assert client.get("/api/v1/deals", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    listed = run("token", "list", "--json")
    assert json.loads(listed.output)[0]["name"] == "cli-key" and secret not in listed.output
    assert run("--as", "partner:acme", "token", "list").exit_code == 1
    assert run("token", "revoke", "cli-key").exit_code == 0
    assert client.get("/api/v1/deals", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert run("token", "revoke", "cli-key").exit_code == 1


# -- the authority matrix -------------------------------------------------------------------------
def test_every_command_against_every_actor_over_http(api: Api) -> None:
    """200 when the actor may (as on the CLI), 403 otherwise, and a 403 writes nothing."""
    h = api.h
    program(h)
    case = 0
    for type_ in ALLOWED:
        for actor in ACTORS:
            case += 1
            setup_case(h, case)
            line = commands(case)[type_]
            line.pop("actor", None)  # the token says who
            before = h.head()
            r = api.post(actor, line)
            if actor == SYSTEM or actor in ALLOWED[type_]:
                assert r.status_code == 200 and r.json()["status"] == "applied", (type_, actor, r.text)
            else:
                detail = assert_problem(r, 403)["detail"]
                assert "may not" in detail, (type_, actor)
                assert h.head() == before, (type_, actor, "a 403 wrote events")
                if "belongs to another partner" not in detail:
                    # Settled before the ledger saw it: not even an outcome. (An ownership
                    # refusal is the command's outcome, recorded as `submit` records it.)
                    assert not h.ledger.app.outcomes([(actor, line["id"])]), (type_, actor, "a 403 recorded an outcome")


def test_an_envelope_actor_other_than_the_tokens_is_403_unless_system(api: Api) -> None:
    program(api.h)
    before = api.h.head()
    for actor in ("partner:acme", "vendor:manager", "vendor:finance"):
        for other in ("partner:beta", "system", "vendor:manager", "root"):
            if other == actor:
                continue
            r = api.post(actor, deal(f"d-{actor[-4:]}-{other[-4:]}", partner="acme") | {"actor": other})
            assert_problem(r, 403)
    assert api.h.head() == before
    # The token's own actor, named: fine. System on behalf of a partner: fine.
    assert api.post(OWNER, deal("d-own") | {"actor": OWNER}).json()["status"] == "applied"
    assert api.post(SYSTEM, deal("d-sys", email="a@sys.fi") | {"actor": OWNER}).json()["status"] == "applied"
    # A partner's token acting on another partner's deal: 403 (the ownership check in the handler).
    r = api.post(OTHER, cmd("add_deal_note", on="2026-01-12", deal="d-own", text="mine now"))
    assert "belongs to another partner" in assert_problem(r, 403)["detail"]


QUERIES = {
    "overview": lambda p: ("/overview", {"partner": p} if p else {}),
    "attention": lambda p: ("/attention", {"partner": p} if p else {}),
    "deals": lambda p: ("/deals", {"partner": p} if p else {}),
    "statement": lambda p: (f"/statements/{p or 'acme'}/2026-02", {}),
    "statement.csv": lambda p: (f"/statements/{p or 'acme'}/2026-02.csv", {}),
}


def test_every_query_against_every_actor_over_http(api: Api) -> None:
    h = api.h
    program(h)
    setup_case(h, 1)
    h.ok(deal("b1", partner="beta", email="b@beta-customer.fi", name="Beta Kunde", on="2026-01-12"))
    for actor in ACTORS:
        for name, target in QUERIES.items():
            for partner in (None, "acme", "beta"):
                path, params = target(partner)
                r = api.get(actor, path, as_of="2026-03-01", **params)
                me = actor.split(":")[1] if actor.startswith("partner:") else None
                asked = partner or ("acme" if name.startswith("statement") else None)
                if me is not None and asked not in (None, me):
                    assert "may not read" in assert_problem(r, 403)["detail"], (actor, name, partner)
                    continue
                assert r.status_code == 200, (actor, name, partner, r.text)
                if name in ("overview", "attention", "deals"):
                    rows = r.json()
                    if me is not None:
                        assert all(row["partner"] == me for row in rows), (actor, name)
                    if name == "deals":
                        want = {"acme": {"d1", "v1", "w1"}, "beta": {"b1"}, None: {"d1", "v1", "w1", "b1"}}[me or partner]
                        assert {row["deal"] for row in rows} == want, (actor, partner)


# -- statuses and bodies ---------------------------------------------------------------------------
def test_command_results_and_statuses(api: Api) -> None:
    h = api.h
    program(h)
    line = deal("d-1")
    first = api.post(OWNER, line)
    assert first.status_code == 200 and first.json() == {"line": 1, "id": line["id"], "type": "register_deal",
                                                         "status": "applied"}
    again = api.post(OWNER, line)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    refused = api.post(OWNER, deal("d-2", email="jane@acme.fi"))
    assert refused.status_code == 409 and refused.json()["status"] == "refused"
    assert "own domain" in refused.json()["reason"]
    malformed = api.post(OWNER, {"id": "m-1", "type": "register_deal", "data": {"deal": "d-3"}})
    assert malformed.status_code == 422 and malformed.json()["status"] == "malformed"
    assert malformed.json()["reason"].startswith("data.")
    assert (malformed.json()["id"], malformed.json()["type"]) == ("m-1", "register_deal")  # as submit --json names it
    assert api.post(OWNER, b"\xff\xfe").json()["status"] == "malformed"
    # The same reasons as `ledger submit --json` gives for the same lines.
    with Ledger(h.url, OWNER, clock=h.clock) as cli_ledger:
        (r,) = cli_ledger.submit_lines([json.dumps(deal("d-4", email="jane@acme.fi"))])
    assert r.message == refused.json()["reason"]


def test_results_and_problems_carry_the_refusal_code(api: Api) -> None:
    """A coded refusal says its code beside the unchanged reason: in a
    command's result (and a deal denied at once in its note's), and as an
    RFC 9457 extension member in problem details."""
    from fastapi import FastAPI

    from ledger.api.problems import install_errors
    from ledger.errors import BadInput, Refused

    h = api.h
    program(h)
    assert "code" not in api.post(OWNER, deal("d-1")).json()  # applied: nothing to say
    refused = api.post(OWNER, deal("d-2", email="jane@acme.fi")).json()
    assert refused["code"] == "own_domain" and "own domain" in refused["reason"]
    malformed = api.post(OWNER, {"id": "m-1", "type": "register_deal", "data": {"deal": "d-3"}}).json()
    assert malformed["code"] == "invalid_data" and malformed["reason"].startswith("data.")
    rival = api.post("partner:beta", deal("d-4", partner="beta")).json()
    assert rival["status"] == "applied" and rival["code"] == "duplicate" and "duplicate" in rival["note"]

    app = FastAPI()
    install_errors(app)

    @app.get("/coded")
    def coded() -> None:
        raise Refused("example.fi is protected by another partner until 2026-04-10", code="protected_by_other")

    @app.get("/plain")
    def plain() -> None:
        raise BadInput("not a number")

    with TestClient(app) as client:
        r = client.get("/coded")
        assert r.status_code == 409 and r.json() == {
            "type": "about:blank", "title": "Conflict", "status": 409, "code": "protected_by_other",
            "detail": "example.fi is protected by another partner until 2026-04-10"}
        assert "code" not in client.get("/plain").json()
    with pytest.raises(ValueError, match="undeclared"):
        Refused("no", code="not_declared")


def test_bodies_too_large_or_too_deep_are_refused_and_write_nothing(api: Api) -> None:
    program(api.h)
    before = api.h.head()
    big = json.dumps(deal("d-big", note="x" * (MAX_BODY_BYTES + 10)))
    assert_problem(api.post(OWNER, big), 413)
    for depth in (33, 1_000, 30_000):
        r = api.post(OWNER, '{"id": "x", "type": "sweep", "data": {"deals": ' + "[" * depth + "]" * depth + "}}")
        assert r.status_code == 422 and "nested" in r.json()["reason"], r.text
    assert api.h.head() == before
    # A long string full of brackets is not nesting.
    ok = api.post(OWNER, deal("d-brackets", note="[" * 2000))
    assert ok.status_code == 200, ok.text


def test_query_parameters_are_checked_like_the_cli_options(api: Api) -> None:
    for path, params, word in [("/overview", {"as_of": "2026-02-30"}, "is not a date"),
                               ("/overview", {"filter": "everything"}, "filter"),
                               ("/deals", {"stage": "won"}, "stage"),
                               ("/deals", {"review": "maybe"}, "review"),
                               ("/attention", {"known_at": "yesterday"}, "ISO 8601"),
                               ("/deals", {"colour": "red"}, "colour"),
                               ("/statements/acme/2026-13", {}, "month"),
                               ("/statements/acme/2026-13.csv", {}, "month")]:
        assert word in assert_problem(api.get(SYSTEM, path, **params), 422)["detail"], (path, params)
    assert_problem(api.client.get("/api/v1/deals?stage=new&stage=trial", headers=api.auth(SYSTEM)), 422)
    assert_problem(api.client.get("/api/v1/nothing", headers=api.auth(SYSTEM)), 404)
    assert_problem(api.client.delete("/api/v1/deals", headers=api.auth(SYSTEM)), 405)


def test_the_same_json_as_the_cli(api: Api) -> None:
    from cli import main

    h = api.h
    program(h)
    setup_case(h, 1)
    h.ok(cmd("report_usage", on="2026-02-20", customer_domain="c1.fi", users=3, framework="NIS2", progress=10))
    cases = [
        (["overview", "--partner", "acme", "--as-of", "2026-03-01"], "/overview",
         {"partner": "acme", "as_of": "2026-03-01"}),
        (["overview", "--filter", "trial", "--as-of", "2026-02-10"], "/overview",
         {"filter": "trial", "as_of": "2026-02-10"}),
        (["attention", "--as-of", "2026-03-01"], "/attention", {"as_of": "2026-03-01"}),
        (["deals", "--stage", "closed-won", "--as-of", "2026-03-01"], "/deals",
         {"stage": "closed-won", "as_of": "2026-03-01"}),
        (["deals", "--summary", "--as-of", "2026-03-01"], "/deals", {"summary": "true", "as_of": "2026-03-01"}),
        (["statement", "--partner", "acme", "--month", "2026-01"], "/statements/acme/2026-01", {}),
        (["deal", "show", "w1", "--as-of", "2026-03-01"], "/deals/w1", {"as_of": "2026-03-01"}),
        (["subscriptions", "--as-of", "2026-03-01"], "/subscriptions", {"as_of": "2026-03-01"}),
        (["subscriptions", "--status", "cancelled", "--as-of", "2026-03-01"], "/subscriptions",
         {"status": "cancelled", "as_of": "2026-03-01"}),
    ]
    for args, path, params in cases:
        out = CliRunner().invoke(main, ["--db", h.url, "--as", "partner:acme", "--json", *args])
        assert out.exit_code == 0, out.output
        r = api.get(OWNER, path, **params)
        assert r.status_code == 200
        assert r.text == out.output.strip(), args
    out = CliRunner().invoke(main, ["--db", h.url, "statement", "--partner", "acme", "--month", "2026-01", "--csv"])
    r = api.get(SYSTEM, "/statements/acme/2026-01.csv")
    assert r.text.replace("\r\n", "\n") == out.output.replace("\r\n", "\n")  # the same statement_csv
    assert r.headers["content-type"].startswith("text/csv")
    assert len(r.text.splitlines()) == 2  # the header and the January charge
    r = api.get(OWNER, "/statements/acme/2026-01.xlsx")
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    with zipfile.ZipFile(io.BytesIO(r.content)) as book:  # a real workbook: the statement's text is in it
        strings = book.read("xl/sharedStrings.xml").decode("utf-8")
    assert "Commission statement" in strings and "w1.fi" in strings
    assert api.get("partner:beta", "/statements/acme/2026-01.xlsx").status_code == 403
    assert_problem(api.get("partner:beta", "/deals/w1"), 404)  # another partner's deal: "no deal w1"
    assert_problem(api.get(OWNER, "/deals/nothing"), 404)


def test_events_written_through_the_api_record_the_token(api: Api) -> None:
    h = api.h
    program(h)  # through the harness: no token
    assert api.post(OWNER, deal("d-1")).status_code == 200
    assert api.post(SYSTEM, cmd("accept_deal", on="2026-01-11", actor="vendor:manager", deal="d-1")).status_code == 200
    events = list(h.ledger.app.events.get(aggregate_id(Deal.KIND, "d-1")))
    assert [(e.actor, e.token) for e in events] == [("partner:acme", "partner-acme"), ("vendor:manager", "system")]
    partner_events = list(h.ledger.app.events.get(aggregate_id("partner", "acme")))
    assert partner_events and all(e.token is None for e in partner_events)


def test_events_stored_before_the_token_field_still_replay(h: Harness) -> None:
    """An event stored without `token` (as every event was before the API) decodes, with token None."""
    program(h)
    table = h.ledger.app.events_table
    rows = h.ledger.sql.all(f"SELECT originator_id, originator_version, state FROM {table}")
    for agg, version, state in rows:
        stored = json.loads(bytes(state))
        assert stored.pop("token") is None
        h.ledger.sql.execute(f"UPDATE {table} SET state = ? WHERE originator_id = ? AND originator_version = ?",
                             [json.dumps(stored).encode(), agg, version])
    with Ledger(h.url, "system", clock=h.clock) as fresh:
        partner = fresh.app.load(aggregate_id("partner", "acme"))
        assert partner is not None and all(e.token is None for e in fresh.app.events.get(partner.id))
        fresh.runner.rebuild_all()
        assert len(fresh.deals(None, None, None, hostile.AS_OF)) == 0


def test_health_and_openapi_need_no_token(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    doc = api.client.get("/api/v1/openapi.json").json()
    paths = doc["paths"]
    for path in ("/api/v1/commands", "/api/v1/overview", "/api/v1/attention", "/api/v1/deals",
                 "/api/v1/statements/{partner}/{month}", "/api/v1/statements/{partner}/{month}.csv"):
        assert path in paths
    # The command registry is the request body's schema: one envelope per command type.
    from ledger.commands.registry import bulk_types

    body = doc["components"]["schemas"]["CommandEnvelope"]
    assert set(body["discriminator"]["mapping"]) == set(bulk_types())
    names = {p["name"] for p in paths["/api/v1/deals"]["get"]["parameters"]}
    assert names == {"partner", "stage", "review", "summary", "as_of", "known_at"}


def test_no_secret_in_any_response_or_log(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    program(api.h)
    secret = api.tokens[OWNER]
    with caplog.at_level(logging.INFO, logger="ledger.access"):
        bodies = [api.post(OWNER, deal("d-1")).text, api.post(OWNER, b"{").text,
                  api.get(OWNER, "/deals", partner="beta").text, api.get(OWNER, "/overview").text,
                  api.client.get("/api/v1/overview", headers={"Authorization": f"Bearer {secret}x"}).text]
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "ledger.access"]
    assert len(lines) == 5 and lines[0]["token"] == "partner-acme" and lines[0]["actor"] == "partner:acme"
    assert [line["status"] for line in lines] == [200, 422, 403, 200, 401]
    text = "\n".join(bodies) + "\n".join(r.getMessage() for r in caplog.records)
    assert secret not in text and secret[4:] not in text


def test_a_database_password_never_shows(tmp_path: Any) -> None:
    app = create_app("postgresql://ledger:s3cret-pw@127.0.0.1:1/nowhere")
    with TestClient(app, raise_server_exceptions=False) as client:
        for r in (client.get("/healthz"), client.get("/api/v1/overview", headers={"Authorization": "Bearer x"})):
            body = assert_problem(r, 503)
            assert "s3cret" not in r.text and body["detail"]


# -- hostile input through HTTP -----------------------------------------------------------------
def _check_hostile(api: Api, raw: bytes, expect: frozenset, why: str) -> None:
    r = api.post(SYSTEM, raw)
    allowed = {422} if expect == hostile.MAL else {409, 403, 422}
    if len(raw) > MAX_BODY_BYTES:
        allowed = {413}
    assert r.status_code in allowed, (why, r.status_code, r.text[:300])
    assert r.status_code < 500
    body = r.json()
    detail = body.get("reason") if "reason" in body else body.get("detail")
    assert not hostile.message_problems(detail), (why, detail)
    assert not TRACEBACK.search(r.text[:2000])


@hostile.HOSTILE
@given(batch=st.lists(hostile.broken_line(), min_size=1, max_size=4))
def test_hostile_lines_over_http_are_422_and_write_nothing(api: Api, batch: list) -> None:
    hostile.ensure_world(api.h)
    before = hostile.snapshot(api.h)
    for raw, expect, why in batch:
        _check_hostile(api, raw, expect, why)
    assert hostile.snapshot(api.h) == before


@hostile.HOSTILE
@given(batch=st.lists(hostile.mutated(), min_size=1, max_size=4), ascii_only=st.booleans())
def test_mutated_commands_over_http_are_refused_and_write_nothing(api: Api, batch: list, ascii_only: bool) -> None:
    hostile.ensure_world(api.h)
    before = hostile.snapshot(api.h)
    for env, expect, why in batch:
        note(why)
        _check_hostile(api, hostile.to_json(env, ascii_only).encode("utf-8"), expect, why)
    assert hostile.snapshot(api.h)[0] == before[0]


def test_a_query_is_one_entry_in_the_route_table(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new query (here a stand-in for a deal's pipeline row) needs only its entry: the
    route, its parameters in the OpenAPI document and its authority follow."""
    from pydantic import Field

    from ledger.api import routes

    class DealParams(routes.Params):
        deal: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$")

    def show(ledger: Ledger, p: DealParams) -> Any:
        rows = [r for r in ledger.deals(None, None, None, p.day, p.known_at) if r["deal"] == p.deal]
        if not rows:
            raise KeyError(f"no deal {p.deal!r}")
        return rows[0]

    entry = routes.Query("/deal-rows/{deal}", "A deal card", DealParams, dict, show)
    monkeypatch.setattr(routes, "QUERIES", [*routes.QUERIES, entry])
    monkeypatch.setattr("ledger.api.app.QUERIES", routes.QUERIES)
    program(h)
    h.ok(deal("d-1"))
    token = issue(h.ledger, "partner:beta", "beta")["token"]
    with TestClient(create_app(h.url)) as client:
        params = client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/deal-rows/{deal}"]["get"]["parameters"]
        assert {(p["name"], p["in"]) for p in params} == {("deal", "path"), ("as_of", "query"), ("known_at", "query")}
        system = {"Authorization": f"Bearer {issue(h.ledger, 'system', 'sys')['token']}"}
        assert client.get("/api/v1/deal-rows/d-1", headers=system).json()["partner"] == "acme"
        assert_problem(client.get("/api/v1/deal-rows/d-9", headers=system), 404)
        assert_problem(client.get("/api/v1/deal-rows/d-1"), 401)
        assert_problem(client.get("/api/v1/deal-rows/d-1", headers={"Authorization": f"Bearer {token}"}), 404)
