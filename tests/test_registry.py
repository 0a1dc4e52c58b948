"""The command registry is the one declaration of a command type: a type
registered there appears, with nothing else edited, as a CLI sub-command with
its help, in the JSON Lines envelope, in the HTTP API's command schema and in
the authority check; and every declared type is complete. Also: the command
line's exit statuses come from the ledger's own exceptions only, and a bug is
an internal error (70), never bad input (2) or a refusal (1)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cli import main
from ledger import actors, authority
from ledger.aggregates import Partner, Refused
from ledger.aggregates.deal import DENY_REASONS, OPEN_STAGES, REVIEWS, STAGES
from ledger.aggregates.subscription import PERIODS
from ledger.commandline.commands import GROUP_HELP
from ledger.commands import models as m
from ledger.commands.registry import COMMAND_TYPES, CommandType, bulk_types, register
from ledger.service import Ledger


Words = m.Help(m.Name | None, "Words to say back.")


class PingPartner(m.Data):
    partner: m.PartnerId
    words: Words = None


def ping_partner(uow: Any, d: PingPartner, ctx: Any) -> str | None:
    if uow.get(Partner, d.partner) is None:
        raise Refused(f"no partner {d.partner!r}")
    return f"pong {d.words or ''}".strip()


PING = CommandType("ping_partner", PingPartner, ping_partner, frozenset({actors.MANAGER}),
                   "Ping a partner. Answers pong.", cli=("partner", "ping"), positional=("partner",),
                   keys={"partner": Partner})


@pytest.fixture
def ping() -> Iterator[CommandType]:
    register(PING)
    try:
        yield PING
    finally:
        del COMMAND_TYPES[PING.name]


def enroll(id_: str = "c-1") -> dict[str, Any]:
    return {"id": id_, "type": "enroll_partner", "on": "2026-01-05",
            "data": {"partner": "acme", "name": "Acme", "domain": "acme.fi", "commission_rate": "0.20"}}


def test_a_registered_command_type_appears_everywhere(ping: CommandType, tmp_path: Path) -> None:
    runner = CliRunner()
    # The CLI: listed in its group, with an option per field and the field's help.
    group = runner.invoke(main, ["partner", "--help"])
    assert group.exit_code == 0 and "ping" in group.output and "Ping a partner" in group.output
    sub = runner.invoke(main, ["partner", "ping", "--help"])
    assert sub.exit_code == 0, sub.output
    assert "Usage: main partner ping [OPTIONS] PARTNER" in sub.output
    assert "--partner TEXT" in sub.output and "Partner id." in sub.output
    assert "--words TEXT" in sub.output and "Words to say back." in sub.output
    # The JSON Lines envelope: a line may name it.
    cmd = m.parse_line('{"id": "p-1", "type": "ping_partner", "data": {"partner": "acme", "words": "hi"}}')
    assert isinstance(cmd.data, PingPartner) and cmd.data.words == "hi"
    with pytest.raises(m.Malformed, match="data.wrods is not a field"):
        m.parse_line('{"id": "p-1", "type": "ping_partner", "data": {"partner": "acme", "wrods": "hi"}}')
    # The HTTP API's command schema.
    from ledger.api.schemas import envelope_schema

    schema = envelope_schema()
    assert "ping_partner" in schema["discriminator"]["mapping"]
    # The authority check: its roles, and system.
    authority.may_submit(authority.Actor("vendor:manager"), "ping_partner")
    authority.may_submit(authority.Actor("system"), "ping_partner")
    for actor in ("partner:acme", "vendor:finance"):
        with pytest.raises(authority.Forbidden):
            authority.may_submit(authority.Actor(actor), "ping_partner")
    # End to end through the CLI: its handler runs, its refusals are refusals.
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url, "system") as ledger:
        assert ledger.submit([(1, m.build(enroll()))])[0].status == "applied"
    ran = runner.invoke(main, ["--db", url, "partner", "ping", "acme", "--words", "hello", "--on", "2026-01-06"])
    assert ran.exit_code == 0 and "applied: ping_partner" in ran.output and "pong hello" in ran.output, ran.output
    missing = runner.invoke(main, ["--db", url, "partner", "ping", "nobody", "--on", "2026-01-06"])
    assert missing.exit_code == 1 and "no partner 'nobody'" in missing.stderr
    partner = runner.invoke(main, ["--db", url, "--as", "partner:acme", "partner", "ping", "acme"])
    assert partner.exit_code == 1 and "may not ping partner" in partner.stderr


def test_without_its_registration_the_type_is_nowhere(tmp_path: Path) -> None:
    assert "ping_partner" not in COMMAND_TYPES
    assert "ping" not in CliRunner().invoke(main, ["partner", "--help"]).output
    with pytest.raises(m.Malformed, match="type must be one of"):
        m.parse_line('{"id": "p-1", "type": "ping_partner", "data": {"partner": "acme"}}')
    with pytest.raises(authority.Forbidden):
        authority.may_submit(authority.Actor("vendor:manager"), "ping_partner")


def test_every_declared_type_is_complete() -> None:
    assert len(COMMAND_TYPES) >= 20
    for name, t in COMMAND_TYPES.items():
        assert t.name == name
        assert callable(t.handler) and issubclass(t.model, m.Data), name
        assert t.roles <= set(actors.ACTOR_KINDS), name
        assert t.summary.strip().endswith("."), name
        assert set(t.keys) <= set(t.model.model_fields), name
        if t.cli is not None:
            assert t.bulk, name  # a sub-command builds an envelope, as a JSON line does
            assert t.cli[0] in GROUP_HELP, name  # a new group needs its help line (ledger --help stays quick)
            assert all(f.description for f in t.model.model_fields.values()), name
    # Each type has one sub-command, or another command drives it.
    assert {t.name for t in COMMAND_TYPES.values() if t.cli is None} == {
        "sweep", "issue_statement", "issue_token", "revoke_token"}
    assert set(bulk_types()) == set(COMMAND_TYPES) - {"issue_statement", "issue_token", "revoke_token"}
    # Dated ahead of today: a rate may be scheduled; a sweep never runs ahead.
    assert {n: t.ahead for n, t in COMMAND_TYPES.items() if t.ahead != "limited"} == {
        "set_commission_rate": "any", "sweep": "today"}


def test_a_declaration_that_does_not_fit_its_model_is_refused() -> None:
    with pytest.raises(TypeError, match="not fields"):
        dataclasses.replace(PING, keys={"deal": Partner})
    with pytest.raises(TypeError, match="ahead must be"):
        dataclasses.replace(PING, ahead="someday")
    with pytest.raises(TypeError, match="unknown actor kinds"):
        dataclasses.replace(PING, roles=frozenset({"vendor:intern"}))
    with pytest.raises(TypeError, match="needs a description"):
        dataclasses.replace(PING, model=m.Sweep, keys={}, positional=())
    with pytest.raises(TypeError, match="already registered"):
        register(COMMAND_TYPES["accept_deal"])
    with pytest.raises(TypeError, match="already taken"):
        register(dataclasses.replace(PING, cli=("deal", "accept")))
    assert "ping_partner" not in COMMAND_TYPES


def test_allowed_values_are_the_domains_constants() -> None:
    def literal(model: type[m.Data], field: str) -> tuple[str, ...]:
        schema = model.model_json_schema()["properties"][field]
        return tuple(next(s for s in schema.get("anyOf", [schema]) if "enum" in s)["enum"])

    assert literal(m.DenyDeal, "reason") == DENY_REASONS
    assert literal(m.MoveDeal, "stage") == OPEN_STAGES
    assert literal(m.StartSubscription, "period") == PERIODS
    ctx = click.Context(main)
    deals = main.get_command(ctx, "deals")
    options = {p.name: p for p in deals.params}
    assert tuple(options["stage"].type.choices) == STAGES
    assert tuple(options["review"].type.choices) == REVIEWS


# -- exit statuses: the ledger's own exceptions only ----------------------------------------------
@pytest.fixture
def demo_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = CliRunner().invoke(main, ["--db", url, "--as", "system", "demo", "--deals", "3"])
    assert result.exit_code == 0, result.output
    return url


def _broken_handler(error: Exception) -> Any:
    def handler(*_: Any) -> None:
        raise error

    return handler


@pytest.mark.parametrize("error", [KeyError("deal"), ValueError("invalid literal for int()"), TypeError("oops")])
def test_a_bug_in_a_handler_is_an_internal_error(demo_url: str, monkeypatch: pytest.MonkeyPatch,
                                                 error: Exception) -> None:
    """A KeyError or ValueError from a bug is no longer taken for bad input (2)."""
    monkeypatch.setitem(COMMAND_TYPES, "enroll_partner",
                        dataclasses.replace(COMMAND_TYPES["enroll_partner"], handler=_broken_handler(error)))
    result = CliRunner().invoke(main, ["--db", demo_url, "partner", "enroll", "zeta", "--name", "Zeta",
                                       "--domain", "zeta.fi", "--commission-rate", "0.1"])
    assert result.exit_code == 70, result.output
    assert result.stderr.count("\n") == 1 and f"internal error: {type(error).__name__}" in result.stderr
    assert "a bug in the ledger; please report it" in result.stderr and "database" not in result.stderr


@pytest.mark.parametrize("error", [KeyError("x"), ValueError("bad")])
def test_a_bug_in_a_query_is_an_internal_error(demo_url: str, monkeypatch: pytest.MonkeyPatch,
                                               error: Exception) -> None:
    monkeypatch.setattr(Ledger, "attention", _broken_handler(error))
    result = CliRunner().invoke(main, ["--db", demo_url, "attention"])
    assert result.exit_code == 70 and "internal error" in result.stderr, result.output


def test_the_ledgers_own_errors_keep_their_statuses(demo_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(main, ["--db", demo_url, "--as", "system", "projections", "rebuild", "nope"])
    assert unknown.exit_code == 2 and "no projection 'nope'" in unknown.stderr, unknown.output
    bad_digest = runner.invoke(main, ["--db", demo_url, "audit", "verify", "--digest", "x"])
    assert bad_digest.exit_code == 2 and "not a ledger digest" in bad_digest.stderr
    bad_actor = runner.invoke(main, ["--db", demo_url, "--as", "nobody", "deals"])
    assert bad_actor.exit_code == 2 and "unknown actor" in bad_actor.stderr
    refused = runner.invoke(main, ["--db", demo_url, "deal", "accept", "no-such-deal"])
    assert refused.exit_code == 1 and "no deal 'no-such-deal'" in refused.stderr
    missing = runner.invoke(main, ["--db", f"sqlite:///{tmp_path / 'none.db'}", "deals"])
    assert missing.exit_code == 3


def test_a_refusal_reaches_the_caller_as_raised(demo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused in the handler → the Result keeps it → Ledger.command raises that same exception."""
    refusal = authority.Forbidden("not today")
    monkeypatch.setitem(COMMAND_TYPES, "accept_deal",
                        dataclasses.replace(COMMAND_TYPES["accept_deal"], handler=_broken_handler(refusal)))
    with Ledger(demo_url, "vendor:manager") as ledger:
        with pytest.raises(authority.Forbidden) as raised:
            ledger.command({"id": "a-1", "type": "accept_deal", "data": {"deal": "d-1"}})
        assert raised.value is refusal
        again = ledger.submit([(1, m.build({"id": "a-1", "type": "accept_deal", "data": {"deal": "d-1"}}))])[0]
        assert again.status == "refused" and again.message == "not today (refused before)"
        assert isinstance(again.refusal, Refused) and not again.forbidden
