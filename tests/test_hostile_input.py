"""Hostile and malformed input, on SQLite and on PostgreSQL.

Random command lines that are not valid commands (broken JSON, invalid UTF-8,
non-objects, absurd nesting, huge strings, unknown types and fields, wrong
types, NaN/Infinity, absurd money, impossible dates, SQL and unicode tricks in
ids) must be refused with one clear line and leave the event store and every
projection exactly as they were. Legal free text full of SQL metacharacters
and unicode must be stored and read back unchanged. The CLI options path
(`Ledger.command`) raises only `Malformed` or `Refused`.

The mutated lines start from templates (one per command type) that are valid
and would apply in the `world` (see `test_templates_are_live`), so a line is
refused because of what was done to it, not because it referred to nothing.
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
import uuid
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from ledger.aggregates import Deal, Refused, aggregate_id
from ledger.commands.models import Malformed

from .conftest import Harness, accept, cmd, deal, program

# -- settings -------------------------------------------------------------------------------
# One database per test function: many examples go into the same database and
# each compares the store before/after. No shrinking (each step would be a
# database round trip); the assertion message names the offending line instead.
HOSTILE = settings(
    max_examples=60,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
        HealthCheck.filter_too_much, HealthCheck.large_base_example,
    ],
)

GENERATED: Counter[str] = Counter()  # lines / envelopes generated, per test


@pytest.fixture(scope="module", autouse=True)
def _report_generated(request: pytest.FixtureRequest):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and GENERATED:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(GENERATED.items()))
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nhostile inputs generated ({sum(GENERATED.values())}): {counts}")


MAL = frozenset({"malformed"})  # the line is not a well-formed command (exit 2)
ANY = frozenset({"malformed", "refused"})  # a business rule may be what says no (exit 1)
AS_OF = date(2027, 1, 1)
ON = "2026-02-05"

# -- the world the templates live in ----------------------------------------------------------
DEAL_TARGETS = ("accept", "deny", "move", "note", "win", "lose")


def world(h: Harness) -> None:
    """Partners acme and beta; acme's deals d-accept..d-lose (one per deal
    command), a won deal with subscription s-1, and a running trial t-1."""
    program(h)
    h.ok(*[deal(f"d-{x}", email=f"c@{x}.fi", name=f"{x.title()} Oy", on="2026-01-10") for x in DEAL_TARGETS],
         deal("d-won", email="c@won.fi", name="Won Oy", on="2026-01-10"))
    # s-1's first period ends on 12 February: its renewal on ON (5 February) is due (renewal window).
    h.ok(accept("d-won", on="2026-01-11"), accept("d-win", on="2026-01-11"),  # a deal is won once accepted
         cmd("win_deal", on="2026-01-11", actor="partner:acme", deal="d-won", billing="credit-card"),
         cmd("start_subscription", on="2026-01-12", actor="vendor:manager", subscription="s-1",
             customer_domain="won.fi", plan="pro", amount="100.00", currency="EUR", period="monthly",
             billing="credit-card", deal="d-won"),
         cmd("start_trial", on="2026-02-01", actor="partner:acme", trial="t-1", partner="acme",
             customer_name="Trial Oy", customer_email="t@trial.fi"))


def ensure_world(h: Harness) -> None:
    from ledger.aggregates import Partner

    if h.ledger.app.get(Partner, "acme") is None:  # other fixtures may have written (e.g. API tokens)
        world(h)


# type -> (actor, data). Every template applies in the world, in this order.
TEMPLATES: list[tuple[str, str, dict[str, Any]]] = [
    ("enroll_partner", "vendor:manager",
     {"partner": "gamma", "name": "Gamma GmbH", "domain": "gamma.de", "commission_rate": "0.10"}),
    ("set_commission_rate", "vendor:manager", {"partner": "beta", "commission_rate": "0.25"}),
    ("register_deal", "partner:acme",
     {"deal": "d-new", "partner": "acme", "customer_name": "Fresh Oy", "contact_name": "Ann Lee",
      "customer_email": "ann@fresh.fi", "note": "met at a fair"}),
    ("accept_deal", "vendor:manager", {"deal": "d-accept"}),
    ("deny_deal", "vendor:manager", {"deal": "d-deny", "reason": "invalid-lead"}),
    ("move_deal", "partner:acme", {"deal": "d-move", "stage": "newsletter-subscription"}),
    ("add_deal_note", "partner:acme", {"deal": "d-note", "text": "asked for the 30-day trial"}),
    ("win_deal", "partner:acme", {"deal": "d-win", "billing": "invoice", "order_number": "PO-1"}),
    ("lose_deal", "partner:acme", {"deal": "d-lose", "note": "no budget"}),
    ("start_trial", "partner:acme",
     {"trial": "t-new", "partner": "acme", "customer_name": "Trialnew Oy", "customer_email": "t@trialnew.fi",
      "days": 14}),
    ("extend_trial", "partner:acme", {"trial": "t-1"}),
    ("start_subscription", "vendor:manager",
     {"subscription": "s-new", "customer_domain": "direct.fi", "plan": "pro", "amount": "10.00",
      "currency": "EUR", "period": "monthly", "billing": "credit-card"}),
    ("renew_subscription", "vendor:manager", {"subscription": "s-1"}),
    ("refund", "vendor:manager", {"subscription": "s-1", "amount": "1.00", "charge": 1}),
    ("cancel_subscription", "vendor:manager", {"subscription": "s-1"}),
    ("report_usage", "system",
     {"customer_domain": "accept.fi", "users": 3, "framework": "ISO 27001", "progress": 40, "activities": 5}),
    ("sweep", "system", {"deals": ["d-accept"], "trials": ["t-1"]}),
]
TEMPLATE = {t: (actor, data) for t, actor, data in TEMPLATES}

# Every data field of every command type (INTERFACE.md), its kind, and whether it is required.
R, O = True, False
FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "enroll_partner": {"partner": ("id", R), "name": ("name", R), "domain": ("domain", R),
                       "commission_rate": ("rate", R)},
    "set_commission_rate": {"partner": ("id", R), "commission_rate": ("rate", R)},
    "register_deal": {"deal": ("id", R), "partner": ("id", R), "customer_name": ("name", R),
                      "contact_name": ("name", R), "customer_email": ("email", R), "note": ("text", O)},
    "accept_deal": {"deal": ("id", R)},
    "deny_deal": {"deal": ("id", R), "reason": ("reason", R)},
    "move_deal": {"deal": ("id", R), "stage": ("stage", R)},
    "add_deal_note": {"deal": ("id", R), "text": ("text", R)},
    "win_deal": {"deal": ("id", R), "billing": ("billing", R), "order_number": ("name", O)},
    "lose_deal": {"deal": ("id", R), "note": ("text", O)},
    "start_trial": {"trial": ("id", R), "partner": ("id", R), "customer_name": ("name", R),
                    "customer_email": ("email", R), "days": ("days", O)},
    "extend_trial": {"trial": ("id", R)},
    "start_subscription": {"subscription": ("id", R), "customer_domain": ("domain", R), "plan": ("name", R),
                           "amount": ("money", R), "currency": ("currency", R), "period": ("period", R),
                           "billing": ("billing", R), "order_number": ("name", O), "deal": ("id", O)},
    "renew_subscription": {"subscription": ("id", R)},
    "cancel_subscription": {"subscription": ("id", R)},
    "refund": {"subscription": ("id", R), "amount": ("money", R), "charge": ("charge", O)},
    "report_usage": {"customer_domain": ("domain", R), "users": ("count", O), "framework": ("name", O),
                     "progress": ("progress", O), "activities": ("count", O)},
    "sweep": {"deals": ("ids", O), "trials": ("ids", O)},
}
KNOWN_TYPES = set(FIELDS) | {"issue_statement"}
ENVELOPE_KEYS = {"id", "type", "on", "actor", "data"}
NUMERIC_KINDS = {"money", "rate", "days", "count", "progress", "charge"}

# -- independent oracles (what the contract allows) --------------------------------------------
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}")
PARTNER_ACTOR_RE = re.compile(r"partner:[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")


def has_no_dot(s: str) -> bool:
    """No label separator, not even one IDNA would map to a dot (U+3002, U+2024, ...)."""
    folded = unicodedata.normalize("NFKC", s)
    return "." not in folded and "\u3002" not in folded


def valid_id(s: str) -> bool:
    return ID_RE.fullmatch(s) is not None


def valid_actor(s: str) -> bool:
    if s == "":  # an empty actor counts as none given: the submitter
        return True
    s = s.strip()
    return s in ("vendor:manager", "vendor:finance", "system") or PARTNER_ACTOR_RE.fullmatch(s) is not None


def could_be_a_date(s: str) -> bool:
    """Anything Python reads as an ISO 8601 date or date-time near the allowed range."""
    for parse in (date.fromisoformat, lambda v: datetime.fromisoformat(v.replace("Z", "+00:00"))):
        try:
            value = parse(s)
        except (ValueError, TypeError):
            continue
        if 1969 <= value.year <= 2200:
            return True
    return False


# -- values -----------------------------------------------------------------------------------
class Raw:
    """A JSON token written as is (NaN, Infinity, 1e400, 5000-digit integers, deep nesting)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:40]!r}{'...' if len(self.text) > 40 else ''})"


SQL = [
    "'; DROP TABLE stored_events; --", "x'); DROP TABLE pl_deals; --", "\" OR \"1\"=\"1", "' OR ''='",
    "1; SELECT pg_sleep(10)", "$$; DELETE FROM ledger_events; $$", "%", "_%_", "\\", "\\'", ":name", "?",
    "/*", "*/ --", "`id`", "${jndi:ldap://x}", "<script>alert(1)</script>", "{{7*7}}", "%s%s%n",
]
UNICODE = [
    "\u0000", "a\u0000b", "\U0001f4a5", "\U0001f3f3\ufe0f\u200d\U0001f308", "\u200f", "\u202eevil",
    "\u2066x\u2069", "\u200b", "\ufeff", "e\u0301", "\u2028", "\u2029", "\U0010ffff", "\uffff",
    "\uff21\uff22\uff23", "\U0001d54f", "\x1b[2J", "\x7f", "\u3000", "\u0085",
]
HOSTILE_TEXT = SQL + UNICODE
CONTROL = [chr(c) for c in range(0, 9)] + ["\x0b", "\x0c"] + [chr(c) for c in range(0x0E, 0x20)] + ["\x7f"]

MONEY_BAD: list[Any] = [
    "NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "-inf", "1e400", "-1e400", "", " ",
    "ten", "10,00", "10.00 EUR", "\u20ac10", "0x10", "1/2", "--1", "1e", ".", "-", "0", "0.00", "-0",
    "-0.00", "0E-1000000", "1E+1000000", "1000000000", "1000000000.00", "999999999999999999", "-5.00",
    "10.005", "0.001", "10.0000001", "1" + "0" * 40,
    float("nan"), float("inf"), float("-inf"), 0, -1, 10**9, 10**30, -(10**30),
    Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("-1e400"), Raw("1" * 5000),
    Raw("-5.00"), Raw("10.005"), Raw("1E+999999"),
]
RATE_BAD: list[Any] = [
    "1", "1.0", "1.000000", "2", "-0.01", "-1", "100", "20%", "0.2.0", "NaN", "sNaN", "Infinity",
    "-Infinity", "1e400", "0.0000001", "0.1234567", "", "zero", float("nan"), float("inf"), 1, 20, -1,
    Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("0.0000001"),
]
INT_BAD_TEXT = ["", "seven", "1.5", "1e3", "0x10", "NaN", "Infinity", "-Infinity", "inf", "14 days",
                "\uff11\uff14", "1,000", "--1"]
INT_BAD_RAW = [Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("1" * 5000), Raw("1.5")]
BAD_DATES = [
    "2026-02-30", "2026-02-29", "1900-02-29", "2026-13-01", "2026-00-10", "2026-01-32", "99999-01-01",
    "0000-01-01", "0001-01-01", "1969-12-31", "2200-01-01", "9999-12-31", "yesterday", "today", "now",
    "tomorrow", "2026/01/10", "10.01.2026", "01/10/2026", "2026-01-10T25:00", "2026-01-10T10:61",
    "2026-01-10T10:00:00+25:00", "", " ", "NaN", "Infinity", "-Infinity", "1e400", "+002026-01-10",
    "-2026-01-10", "2026-01-10\n", "\uff12\uff10\uff12\uff16-01-10", "2026-01-10; DROP TABLE stored_events; --",
    "'; DROP TABLE stored_events; --", "\u0000", "2026-01-1\u0000", "\U0001f4c5",
]
BAD_DOMAINS = [
    "localhost", "", "   ", "-x-.fi", "x..fi", "x_y.fi", "x.f", "x.123", "127.0.0.1", "[127.0.0.1]",
    "ex ample.fi", "a" * 64 + ".fi", "x" * 250 + ".fi", "'; DROP TABLE stored_events; --",
    "evil.fi'; DROP TABLE stored_events; --", "x.fi/../../etc", "\u0000.fi", "xn--.fi",
    "newline.fi\n.",  # normalises to "newline.fi\n": must not become a customer domain
]
BAD_EMAIL_DOMAINS = ["gmail.com", "GMX.DE", "acme.fi", "sales.acme.fi", "localhost", "", "x..fi", "-x-.fi",
                     "x.123", "[127.0.0.1]", "ex ample.fi", "newline.fi\n."]
BAD_EMAILS = [
    "jane\n@newline-local.fi",  # a line break in the local part is not an address
    "jane@newline-domain.fi\n.", "jane@@example.fi", "@example.fi", "jane@", ".jane@example.fi",
    "ja..ne@example.fi", "jane doe@example.fi", "'; DROP TABLE stored_events; --@example.fi",
    "jane@example.fi'; DROP TABLE stored_events; --", "jane@\u0000.fi", "\U0001f4a5@\U0001f4a5",
    "x" * 250 + "@example.fi",
]
ACTORS_BAD = ["root", "admin", "SYSTEM", "vendor:Manager", "vendor:", "partner:", "partner:acme:x",
              "partner: acme", "partner:'; DROP TABLE stored_events; --", "vendor:manager\x00", "system;",
              "partner:acme\u200f", "partner:\U0001f4a5", "\u202esystem"]
ACTORS_UNAUTHORISED = ["vendor:finance", "partner:nobody", "partner:beta"]  # none may run any template
TYPES_BAD = ["Register_Deal", "REGISTER_DEAL", "register-deal", "register_deal ", " accept_deal",
             "accept_deal\n", "accept_deal\x00", "DROP TABLE", "__class__", "__init__", "HANDLERS", "null",
             "0", "apply", "save", "'; DROP TABLE stored_events; --"]

# -- strategies ----------------------------------------------------------------------------------
class Huge(str):
    """A long string that prints short (Hypothesis shows failing examples)."""

    def __repr__(self) -> str:
        return f"Huge({str.__repr__(self[:12])} ... {len(self)} chars)"


huge_text = st.builds(lambda s, n: Huge(s * n), st.sampled_from(["x", "\U0001f4a5", SQL[0], "\u200f"]),
                      st.integers(1_000, 40_000))
numbers = st.one_of(st.integers(-(10**20), 10**20), st.floats(allow_nan=True, allow_infinity=True))
containers = st.one_of(
    st.lists(st.integers(), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=2), st.just({}),
)
not_a_string = st.one_of(st.booleans(), numbers, containers)
deep = st.integers(2, 900).map(lambda n: Raw("[" * n + "]" * n))
any_json = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=10)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def tagged(strategy: st.SearchStrategy, expect: frozenset) -> st.SearchStrategy:
    return strategy.map(lambda v: (v, expect))


def wrong_types(required: bool) -> st.SearchStrategy:
    """Not a string, for a string field: malformed. [] may be refused instead
    (an empty list of domains is well-formed for enroll_partner)."""
    options = [tagged(not_a_string, MAL), tagged(deep, MAL), tagged(st.just([]), ANY)]
    if required:
        options.append(tagged(st.none(), MAL))
    return st.one_of(*options)


bad_id_text = st.one_of(
    st.sampled_from(HOSTILE_TEXT + ["", "-x", ".x", "x y", "x/y", "x" * 129, "\u00e4", "x\n", "d-1\x00"]),
    st.text(max_size=30), huge_text,
).filter(lambda s: not valid_id(s))


def bad_value(kind: str, required: bool) -> st.SearchStrategy:
    """(value, expected statuses) for a data field of this kind."""
    if kind == "id":
        return st.one_of(tagged(bad_id_text, MAL), wrong_types(required))
    if kind in ("name", "text"):
        limit = 200 if kind == "name" else 4000
        options = [
            st.builds(lambda a, c, b: "x" + a + c + b + "x", st.text(max_size=10), st.sampled_from(CONTROL),
                      st.text(max_size=10)),
            st.integers(limit + 1, limit + 3000).map(lambda n: "N" * n),
        ]
        if required:  # an optional note left blank may fairly count as no note
            options.append(st.sampled_from(["", " ", "   ", "\t", "\u3000", "\u2028", " \n "]))
        text = st.one_of(*options)
        return st.one_of(tagged(text, MAL), wrong_types(required))
    if kind == "email":
        no_at = st.text(max_size=60).filter(lambda s: "@" not in s)
        on_bad_domain = st.builds(lambda local, dom: local + "@" + dom, st.just("jane") | st.text(max_size=15),
                                  st.sampled_from(BAD_EMAIL_DOMAINS))
        return st.one_of(tagged(st.one_of(st.sampled_from(BAD_EMAILS), no_at, on_bad_domain), ANY),
                         wrong_types(required))
    if kind == "domain":
        no_dot = st.text(max_size=40).filter(has_no_dot)
        return st.one_of(tagged(st.sampled_from(BAD_DOMAINS) | no_dot, ANY), wrong_types(required))
    if kind in ("money", "rate"):
        fixed = MONEY_BAD if kind == "money" else RATE_BAD
        negative = st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("-0.01"), places=2).map(str)
        too_precise = st.builds(
            lambda i, c, extra: f"{i}.{c:02d}{extra}" if kind == "money" else f"0.{c:02d}0000{extra}",
            st.integers(0, 10**6), st.integers(0, 99), st.integers(1, 10**6).filter(lambda x: x % 10))
        absurd = st.integers(10**9, 10**40) | st.integers(10**9, 10**40).map(str)
        values = st.one_of(st.sampled_from(fixed), negative, too_precise, absurd)
        return st.one_of(tagged(values, ANY), tagged(st.booleans() | containers | deep, MAL),
                         tagged(st.none(), MAL))
    if kind in ("days", "count", "progress", "charge"):
        lo, hi = {"days": (1, 30), "count": (0, 10_000_000), "progress": (0, 100), "charge": (1, 2)}[kind]
        outside = st.integers(-(10**30), lo - 1) | st.integers(hi + 1, 10**30)
        fractional = st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not f.is_integer())
        options = [
            tagged(outside | outside.map(str), ANY),
            tagged(st.sampled_from(INT_BAD_TEXT + INT_BAD_RAW) | fractional, MAL),
            tagged(st.booleans(), MAL),  # JSON true/false are not numbers
            tagged(containers | deep | st.just([]), MAL),
        ]
        if required:
            options.append(tagged(st.none(), MAL))
        return st.one_of(*options)
    if kind in ("reason", "stage", "billing", "period", "currency"):
        allowed = {
            "reason": ["existing-customer", "invalid-lead", "duplicate"],
            "stage": ["new", "newsletter-subscription", "trial"],
            "billing": ["credit-card", "invoice", "partner"],
            "period": ["monthly", "yearly"],
            "currency": ["EUR", "USD"],
        }[kind]
        variants = [v for a in allowed for v in (a.upper(), a.title(), a + " ", " " + a, a + "\n",
                                                    a.replace("-", "_"), a + "\x00", a.lower())]
        variants += ["closed-won", "closed-lost", "eur", "EURO", "EU", "\u20ac", "E\u0301UR"]
        ok = re.compile(r"[A-Z]{3}") if kind == "currency" else None
        text = st.one_of(st.sampled_from(variants + HOSTILE_TEXT), st.text(max_size=20)).filter(
            lambda s: (not ok.fullmatch(s)) if ok else s not in allowed)
        return st.one_of(tagged(text, MAL), wrong_types(required))
    if kind == "ids":  # sweep's lists of ids; [] is legal
        return tagged(st.one_of(st.lists(bad_id_text, min_size=1, max_size=3), st.sampled_from(["d-accept", ""]),
                                st.booleans(), numbers, st.dictionaries(st.text(max_size=5), st.integers()),
                                st.lists(st.integers(), min_size=1, max_size=3), st.none(), deep), MAL)
    raise AssertionError(kind)


bad_on = st.one_of(
    st.sampled_from(BAD_DATES),
    st.text(max_size=40).filter(lambda s: not could_be_a_date(s)),
    huge_text,
    not_a_string, deep,
    st.integers(0, 2**40),  # epoch seconds are not ISO 8601
)
bad_actor = st.one_of(
    tagged(st.one_of(st.sampled_from(ACTORS_BAD + HOSTILE_TEXT), st.text(max_size=40),
                     st.integers(141, 3000).map(lambda n: "a" * n)).filter(lambda s: not valid_actor(s)), ANY),
    tagged(st.sampled_from(ACTORS_UNAUTHORISED), ANY),
    tagged(not_a_string | deep, MAL),
)
bad_type = st.one_of(
    st.sampled_from(TYPES_BAD), st.text(max_size=30), huge_text, not_a_string, st.none(), deep,
).filter(lambda t: not (isinstance(t, str) and t in KNOWN_TYPES))

odd_key = st.one_of(
    st.text(max_size=20), st.sampled_from(HOSTILE_TEXT + ["\n", "a\nb", "\r", "deal\n", "id\u2028"]), huge_text,
)
ALL_OPS = ("data_value", "data_value", "data_value", "data_delete", "data_extra", "data_replace",
           "env_id", "env_type", "env_on", "env_actor", "env_delete", "env_extra")


class Fresh:
    """Placeholder for a new, never used command id."""

    def __repr__(self) -> str:
        return "<fresh id>"


FRESH = Fresh()


@st.composite
def mutated(draw: Any, ops: tuple[str, ...] = ALL_OPS, kinds: set[str] | None = None) -> tuple[dict, frozenset, str]:
    """A template with 1-3 mutations: (envelope, expected statuses, what was done)."""
    types = [t for t, _, _ in TEMPLATES if kinds is None or any(k in kinds for k, _ in FIELDS[t].values())]
    type_ = draw(st.sampled_from(types))
    actor, data = TEMPLATE[type_]
    env: dict[str, Any] = {"id": FRESH, "type": type_, "on": ON, "actor": actor, "data": dict(data)}
    reasons: dict[str, frozenset] = {}  # location -> expectation of what was done there
    done = []
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(ops))
        fields = FIELDS[type_]
        if op.startswith("data_") and not isinstance(env["data"], dict):
            op = "env_id"
        if op == "data_value":
            names = [f for f, (k, _) in fields.items() if kinds is None or k in kinds]
            if not names:
                op = "env_on"
            else:
                field = draw(st.sampled_from(names))
                kind, required = fields[field]
                value, expect = draw(bad_value(kind, required))
                env["data"][field] = value
                reasons[f"data.{field}"] = expect
                done.append(f"data.{field}={value!r:.80}")
                continue
        if op == "data_delete":
            present = [f for f, (_, req) in fields.items() if req and f in env["data"]]
            if present:
                field = draw(st.sampled_from(present))
                del env["data"][field]
                reasons[f"data.{field}"] = MAL
                done.append(f"del data.{field}")
            continue
        if op == "data_extra":
            key = draw(odd_key.filter(lambda k: k not in fields))
            env["data"][key] = draw(any_json)
            reasons[f"data+{key}"] = MAL
            done.append(f"data+{short(key, 60)}")
        elif op == "data_replace":
            env["data"] = draw(st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20),
                                         st.lists(any_json, max_size=3)))
            reasons = {k: v for k, v in reasons.items() if not k.startswith("data")}
            reasons["data"] = MAL
            done.append(f"data={env['data']!r:.80}")
        elif op == "env_id":
            env["id"] = draw(st.one_of(bad_id_text, not_a_string, st.none()))
            reasons["id"] = MAL
            done.append(f"id={env['id']!r:.80}")
        elif op == "env_type":
            env["type"] = draw(bad_type)
            reasons["type"] = MAL
            done.append(f"type={env['type']!r:.80}")
        elif op == "env_on":
            env["on"] = draw(bad_on)
            reasons["on"] = MAL
            done.append(f"on={env['on']!r:.80}")
        elif op == "env_actor":
            env["actor"], reasons["actor"] = draw(bad_actor)
            done.append(f"actor={env['actor']!r:.80}")
        elif op == "env_delete":
            key = draw(st.sampled_from(["id", "type"]))
            env.pop(key, None)
            reasons[key] = MAL
            done.append(f"del {key}")
        elif op == "env_extra":
            key = draw(odd_key.filter(lambda k: k not in ENVELOPE_KEYS))
            env[key] = draw(any_json)
            reasons[f"+{key}"] = MAL
            done.append(f"+{short(key, 60)}")
    if not reasons:  # every op was a no-op: make sure something is wrong
        env["on"] = "2026-02-30"
        reasons["on"] = MAL
        done.append("on='2026-02-30'")
    expect = MAL if any(e == MAL for e in reasons.values()) else ANY
    return env, expect, f"{type_}: " + ", ".join(done)


_ids = itertools.count(1)


def fresh_id() -> str:
    return f"hostile-{uuid.uuid4().hex[:8]}-{next(_ids)}"


def to_json(obj: Any, ensure_ascii: bool = True) -> str:
    """JSON text with Raw tokens and fresh ids filled in."""
    raws: dict[str, str] = {}

    def default(o: Any) -> Any:
        if isinstance(o, Raw):
            marker = f"@@raw-{uuid.uuid4().hex}@@"
            raws[f'"{marker}"'] = o.text
            return marker
        if isinstance(o, Fresh):
            return fresh_id()
        raise TypeError(type(o).__name__)

    text = json.dumps(obj, ensure_ascii=ensure_ascii, default=default)
    for marker, raw in raws.items():
        text = text.replace(marker, raw)
    return text


def to_python(obj: Any) -> Any:
    """The same hostile values as Python objects, as a caller of Ledger.command passes them."""
    if isinstance(obj, Fresh):
        return fresh_id()
    if isinstance(obj, Lazy):
        return obj.make()
    if isinstance(obj, Huge):
        return str(obj)
    if isinstance(obj, Raw):
        if obj.text.startswith("["):
            depth = obj.text.count("[")
            value: list = []
            for _ in range(depth - 1):
                value = [value]
            return value
        return obj.text
    if isinstance(obj, dict):
        return {k: to_python(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_python(v) for v in obj]
    return obj


# -- checks --------------------------------------------------------------------------------------
TRACEBACK = re.compile(
    r"Traceback \(most recent|File \"|<class '|\b[A-Z]\w*(Error|Exception|Warning)\(|^[A-Z]\w*(Error|Exception)\b"
    r"|errors\.pydantic\.dev|input_value=|input_type="
)


def message_problems(message: Any) -> list[str]:
    if not isinstance(message, str) or not message.strip():
        return [f"no message: {message!r}"]
    problems = []
    if len(message.splitlines()) != 1 or "\n" in message or "\r" in message:
        problems.append("message spans several lines")
    if len(message) >= 400:
        problems.append(f"message is {len(message)} characters long")
    if TRACEBACK.search(message):
        problems.append("message looks like a traceback or an exception repr")
    return problems


def snapshot(h: Harness) -> tuple:
    """The event store position and every projection a user can read."""
    ledger = h.ledger
    return (
        ledger.app.head(),
        ledger.deals(None, None, None, AS_OF),
        ledger.overview(None, None, AS_OF),
        ledger.attention(None, AS_OF),
        ledger.statement("acme", "2026-01"),
        ledger.statement("acme", "2026-02"),
    )


def short(value: Any, n: int = 300) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # 5000-digit integers, deep nesting
        return f"<unprintable {type(value).__name__}>"
    return text if len(text) <= n else text[:n] + f"... ({len(text)} chars)"


def submit_hostile(h: Harness, items: list[tuple[bytes | str, frozenset, str]], label: str) -> None:
    """Submit lines that must all be refused; nothing may change."""
    GENERATED[label] += len(items)
    before = snapshot(h)
    h.clock.advance(seconds=1)
    try:
        results = h.ledger.submit_lines([raw for raw, _, _ in items])
    except Exception as e:  # noqa: BLE001 - the point: nothing but results may come out
        pytest.fail(f"{type(e).__name__} escaped submit_lines: {short(str(e))}; lines: "
                    + "; ".join(why for _, _, why in items))
    problems = []
    if len(results) != len(items):
        problems.append(f"{len(items)} lines gave {len(results)} results")
    for number, ((raw, expect, why), result) in enumerate(zip(items, results), 1):
        if result.line != number:
            problems.append(f"line {number}: result for line {result.line}")
        if result.status not in expect:
            problems.append(f"line {number} ({why}): expected {'/'.join(sorted(expect))}, got {result.status} "
                            f"{short(result.message)}; line {short(raw)}")
            continue
        for p in message_problems(result.message):
            problems.append(f"line {number} ({why}): {p}: {short(result.message)}")
    after = snapshot(h)
    if after[0] != before[0]:
        problems.append(f"the event store moved from position {before[0]} to {after[0]}")
    elif after != before:
        problems.append("a projection changed")
    assert not problems, "\n".join(problems)


# -- the templates are live -------------------------------------------------------------------------
def test_templates_are_live(h: Harness) -> None:
    """Unmutated, every template applies: the refusals below are the mutations' doing."""
    world(h)
    for type_, actor, data in TEMPLATES:
        h.ok(cmd(type_, on=ON, actor=actor, **data))


# -- lines that are not commands at all -----------------------------------------------------------
def _valid_line(index: int) -> bytes:
    """A valid line with a fixed id (its length must not vary between replays)."""
    type_, actor, data = TEMPLATES[index % len(TEMPLATES)]
    return to_json({"id": "hostile-broken-line", "type": type_, "on": ON, "actor": actor, "data": data}).encode()


INVALID_UTF8 = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82",
                b"\xf8\x88\x80\x80\x80", b"\xc3"]


@st.composite
def broken_line(draw: Any) -> tuple[bytes, frozenset, str]:
    how = draw(st.sampled_from(["truncated", "utf8", "not_object", "nesting", "huge", "bytes", "text", "fixed"]))
    line = _valid_line(draw(st.integers(0, 100)))
    if how == "truncated":
        cut = draw(st.integers(1, len(line) - 1))
        raw = line[:cut]
    elif how == "utf8":
        at = draw(st.integers(0, len(line)))
        raw = line[:at] + draw(st.sampled_from(INVALID_UTF8)) + line[at:]
    elif how == "not_object":
        value = draw(any_json.filter(lambda v: not isinstance(v, dict)))
        raw = to_json(value, ensure_ascii=draw(st.booleans())).encode()
    elif how == "nesting":
        n = draw(st.sampled_from([1_000, 5_000, 30_000, 100_000]) | st.integers(1_000, 120_000))
        shape = draw(st.sampled_from(["open", "balanced", "objects", "in_field"]))
        if shape == "open":
            raw = b"[" * n
        elif shape == "balanced":
            raw = b"[" * n + b"]" * n
        elif shape == "objects":
            raw = b'{"a":' * n + b"1" + b"}" * n
        else:
            raw = line.replace(b'"data": {', b'"data": {"deep": ' + b"[" * n + b"]" * n + b", ", 1)
    elif how == "huge":
        raw = line.replace(b'"data": {', b'"data": {"pad": "' + b"x" * draw(st.integers(60_000, 200_000)) + b'", ', 1)
    elif how == "bytes":
        raw = draw(st.binary(min_size=1, max_size=300))
    elif how == "text":
        raw = draw(st.text(min_size=1, max_size=300)).encode("utf-8")
    else:
        raw = draw(st.sampled_from([
            b"{}", b"[]", b"null", b"true", b"0", b'"register_deal"', b"{", b"}", b"{{}}", b"{'id': 'x'}",
            b'{"id": "x", "type": "accept_deal", "data": {"deal": "d-accept"},}', b"NaN", b"Infinity",
            b"-Infinity", b'{"id": NaN}', b"\x00", b"\xef\xbb\xbf", b"SELECT * FROM stored_events",
            b"'; DROP TABLE stored_events; --", b"1" * 5000, b"\x1b[2J",
        ]))
    raw = raw.replace(b"\n", b" ").replace(b"\r", b" ")  # a line, as `ledger submit` splits them
    if not raw.strip():
        raw = b"\x00"
    return raw, MAL, f"{how} line"


@HOSTILE
@given(batch=st.lists(broken_line(), min_size=1, max_size=6))
def test_lines_that_are_not_commands_are_malformed_and_write_nothing(h: Harness, batch: list) -> None:
    ensure_world(h)
    submit_hostile(h, batch, "broken lines")


# -- well-formed JSON, not a valid command ----------------------------------------------------------
@HOSTILE
@given(batch=st.lists(mutated(), min_size=1, max_size=8), ascii_only=st.booleans())
def test_mutated_commands_are_refused_and_write_nothing(h: Harness, batch: list, ascii_only: bool) -> None:
    ensure_world(h)
    items = [(to_json(env, ascii_only).encode("utf-8"), expect, why) for env, expect, why in batch]
    for _, _, why in items:
        note(why)
    submit_hostile(h, items, "mutated commands")


@HOSTILE
@given(batch=st.lists(mutated(ops=("data_value", "data_value", "env_on"), kinds=NUMERIC_KINDS),
                      min_size=1, max_size=8))
def test_hostile_numbers_and_dates_are_refused_and_write_nothing(h: Harness, batch: list) -> None:
    ensure_world(h)
    items = [(to_json(env).encode(), expect, why) for env, expect, why in batch]
    submit_hostile(h, items, "numbers and dates")


def _named_cases() -> list[tuple[dict, frozenset, str]]:
    """Every named hostile value, each in a template it does not fit."""
    cases = []

    def put(type_: str, field: str | None, value: Any, expect: frozenset, env_key: str | None = None) -> None:
        actor, data = TEMPLATE[type_]
        env = {"id": FRESH, "type": type_, "on": ON, "actor": actor, "data": dict(data)}
        if env_key:
            env[env_key] = value
        else:
            env["data"][field] = value
        cases.append((env, expect, f"{type_} {env_key or 'data.' + field}={short(value, 60)}"))

    for value in MONEY_BAD:
        put("start_subscription", "amount", value, ANY)
        put("refund", "amount", value, ANY)
    for value in RATE_BAD:
        put("enroll_partner", "commission_rate", value, ANY)
        put("set_commission_rate", "commission_rate", value, ANY)
    for value in INT_BAD_TEXT + INT_BAD_RAW + [True, False, 1.5, -1, 0, 31, 10**30, [], {}, [14]]:
        put("start_trial", "days", value, ANY)
    for field in ("users", "activities", "progress"):
        for value in INT_BAD_TEXT + INT_BAD_RAW + [True, False, 2.5, -1, 10**30, [], {}]:
            put("report_usage", field, value, ANY)
    for value in ["0", "-1", 0, -1, 7, True, False, 1.5, "first", 10**30, Raw("1e400"), Raw("9" * 4000)]:
        put("refund", "charge", value, ANY)
    for value in BAD_DATES + [20260110, 1767225600, 2026.0110, True, [], {}, ["2026-01-10"]]:
        put("accept_deal", None, value, MAL, env_key="on")
    for value in HOSTILE_TEXT + ["", "x" * 129, "d accept", "d-accept\n", 7, True, [], {}, None]:
        put("accept_deal", "deal", value, MAL)
        put("enroll_partner", "partner", value, MAL)
        put("accept_deal", None, value, MAL, env_key="id")
    for value in HOSTILE_TEXT + ACTORS_BAD + ACTORS_UNAUTHORISED + ["x" * 141, 7, True, [], {}]:
        if isinstance(value, str) and valid_actor(value) and value not in ACTORS_UNAUTHORISED:
            continue
        put("accept_deal", None, value, ANY, env_key="actor")
    for value in TYPES_BAD + HOSTILE_TEXT + [7, True, None, [], {}]:
        put("accept_deal", None, value, MAL, env_key="type")
    for value in BAD_EMAILS + [f"jane@{d}" for d in BAD_EMAIL_DOMAINS]:
        put("register_deal", "customer_email", value, ANY)
        put("start_trial", "customer_email", value, ANY)
    for value in BAD_DOMAINS:
        put("start_subscription", "customer_domain", value, ANY)
        put("report_usage", "customer_domain", value, ANY)
        put("enroll_partner", "domain", value, ANY)
    for value in ["", " ", "\u0000", "a\u0000b", "x\x1by", "N" * 201, 7, True, [], {}, None]:
        put("register_deal", "customer_name", value, MAL)
        put("start_subscription", "plan", value, MAL)
    for value in ["", "\u0000", "x\x07y", "N" * 4001, 7, True, [], {}]:
        put("add_deal_note", "text", value, MAL)
    for field, values in {"reason": ["because", "Duplicate", "duplicate "], "stage": ["closed-won", "TRIAL", ""],
                          "billing": ["cash", "credit_card", "Invoice"], "period": ["weekly", "Monthly", ""],
                          "currency": ["eur", "EURO", "\u20ac", "EUR\n", " EUR"]}.items():
        type_ = {"reason": "deny_deal", "stage": "move_deal", "billing": "win_deal"}.get(field, "start_subscription")
        for value in values + [7, True, [], {}, None]:
            put(type_, field, value, MAL)
    return cases


def test_every_named_hostile_value_is_refused_and_writes_nothing(h: Harness) -> None:
    """Deterministic: the whole named catalogue (NaN, Infinity, absurd money,
    impossible dates, SQL and unicode in ids, ...) once, one line each."""
    world(h)
    items = [(to_json(env).encode(), expect, why) for env, expect, why in _named_cases()]
    submit_hostile(h, items, "named values")


# -- legal free text round-trips exactly ---------------------------------------------------------------
LEGAL_FRAGMENTS = SQL + [
    "O'Brien & S\u00f6hne", "\u00dcn\u00efc\u00f6d\u00e9 GmbH", "\u682a\u5f0f\u4f1a\u793e\u30c6\u30b9\u30c8",
    "\u05e9\u05dc\u05d5\u05dd \u05d1\u05e2\"\u05de", "\U0001f4a5\U0001f525 Oy",
    "\U0001f469\u200d\U0001f4bb", "e\u0301", "\ufeffBOM", "Zero\u200bWidth", "\u03a9\u2248\u00e7\u221a\u222b",
    "\\x00 literal", "NULL", "null", "None", "undefined", "\U0010fffd", "\uff21\uff22\uff23", "\U0001d54f",
]
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # refused: see test_text_safety
legal_chars = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters=BIDI_CONTROLS)
legal_text = st.one_of(
    st.sampled_from(LEGAL_FRAGMENTS),
    st.lists(st.sampled_from(LEGAL_FRAGMENTS) | st.text(legal_chars, max_size=10), min_size=1, max_size=4).map("".join),
    st.text(legal_chars, min_size=1, max_size=60),
).filter(lambda s: 0 < len(s) <= 200 and not s[0].isspace() and not s[-1].isspace())
_legal = itertools.count(1)


@HOSTILE
@given(texts=st.lists(st.tuples(legal_text, legal_text, legal_text), min_size=1, max_size=3), ascii_only=st.booleans())
def test_legal_text_with_sql_and_unicode_round_trips_exactly(h: Harness, texts: list, ascii_only: bool) -> None:
    ensure_world(h)
    lines, expected = [], {}
    for name, contact, text in texts:
        n = next(_legal)
        deal_id, domain = f"d-legal-{n}", f"legal{n}.fi"
        lines.append(cmd("register_deal", on=ON, actor="partner:acme", deal=deal_id, partner="acme",
                         customer_name=name, contact_name=contact, customer_email=f"someone@{domain}", note=text))
        lines.append(cmd("add_deal_note", on=ON, actor="partner:acme", deal=deal_id, text=text))
        lines.append(cmd("start_trial", on=ON, actor="partner:acme", trial=f"t-legal-{n}", partner="acme",
                         customer_name=name, customer_email=f"other@{domain}"))
        expected[deal_id] = (name, contact, text, domain)
    GENERATED["legal texts"] += len(lines)
    h.clock.advance(seconds=1)
    results = h.ledger.submit_lines([to_json(line, ascii_only).encode("utf-8") for line in lines])
    assert [r.status for r in results] == ["applied"] * len(lines), [r.as_dict() for r in results]
    rows = {r["deal"]: r for r in h.ledger.deals("acme", None, None, AS_OF)}
    customers = {r["domain"]: r for r in h.ledger.overview("acme", None, AS_OF)}
    for deal_id, (name, contact, text, domain) in expected.items():
        assert rows[deal_id]["customer"] == name
        assert rows[deal_id]["customer_domain"] == domain
        assert customers[domain]["customer"] == name
        d = h.ledger.app.get(Deal, deal_id)
        assert (d.customer_name, d.contact_name) == (name, contact)
        events = list(h.ledger.app.events.get(aggregate_id(Deal.KIND, deal_id)))
        assert [getattr(e, "note", None) for e in events if isinstance(e, Deal.Registered)] == [text]
        assert [e.text for e in events if isinstance(e, Deal.NoteAdded)] == [text]


# -- the CLI options path: Ledger.command ------------------------------------------------------------------
def _deep_python(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


class Lazy:
    """A Python-only hostile value, built when used (some cannot even be printed)."""

    def __init__(self, label: str, make: Any) -> None:
        self.label, self.make = label, make

    def __repr__(self) -> str:
        return self.label


PYTHON_ONLY = [
    Lazy("nan", lambda: float("nan")), Lazy("-inf", lambda: float("-inf")), Lazy("Decimal('NaN')", lambda: Decimal("NaN")),
    Lazy("Decimal('sNaN')", lambda: Decimal("sNaN")), Lazy("Decimal('-Infinity')", lambda: Decimal("-Infinity")),
    Lazy("Decimal('1e400')", lambda: Decimal("1e400")), Lazy("10**5000", lambda: 10**5000),
    Lazy("b'\\xff\\xfe'", lambda: b"\xff\xfe"), Lazy("object()", object), Lazy("{1, 2}", lambda: {1, 2}),
    Lazy("('a b', 'c d')", lambda: ("a b", "c d")), Lazy("1+1j", lambda: complex(1, 1)),
    Lazy("frozenset({'x y'})", lambda: frozenset({"x y"})), Lazy("range(3)", lambda: range(3)),
]
deep_python = st.integers(1_000, 200_000).map(lambda n: Lazy(f"<list nested {n} deep>", lambda: _deep_python(n)))


@st.composite
def cli_envelope(draw: Any) -> tuple[Any, frozenset, str]:
    env, expect, why = draw(mutated())
    style = draw(st.sampled_from(["as is", "as is", "cli strings", "python objects", "not a dict"]))
    if style == "cli strings" and isinstance(env.get("data"), dict):
        # click hands every option over as a string, or leaves it out
        dropped = [k for k, v in env["data"].items() if not isinstance(v, str)]
        dropped += [k for k in ("id", "type", "on", "actor") if k in env and not isinstance(env[k], str)]
        env["data"] = {k: v for k, v in env["data"].items() if isinstance(v, str)}
        for key in ("id", "type", "on", "actor"):
            if key in env and not isinstance(env[key], str):
                del env[key]
        if dropped:  # what made it bad may be gone: make sure it is still not a command
            env["on"] = draw(st.sampled_from(BAD_DATES))
            expect = MAL
        why += f" (as CLI option strings, dropped {dropped})"
    elif style == "python objects":
        value = draw(st.sampled_from(PYTHON_ONLY) | deep_python)
        where = draw(st.sampled_from(["on", "data", "id", "actor"]))
        if where == "data" and isinstance(env.get("data"), dict) and env["data"]:
            where = "data." + draw(st.sampled_from(sorted(env["data"])))
            env["data"][where[5:]] = value
        else:
            where = "on" if where == "data" else where
            env[where] = value
        expect = ANY  # e.g. a tuple of strings is a fine list of domains, and a refused one
        why += f" + {where}={short(value, 60)}"
    elif style == "not a dict":
        env = draw(st.one_of(st.none(), st.text(max_size=20), st.lists(any_json, max_size=3), numbers))
        expect, why = MAL, f"envelope={short(env, 60)}"
    return env, expect, why


@HOSTILE
@given(batch=st.lists(cli_envelope(), min_size=1, max_size=5))
def test_cli_options_path_raises_only_malformed_or_refused(h: Harness, batch: list) -> None:
    ensure_world(h)
    for env, expect, why in batch:
        GENERATED["CLI envelopes"] += 1
        before = snapshot(h)
        h.clock.advance(seconds=1)
        try:
            h.ledger.command(to_python(env))
        except (Malformed, Refused) as e:
            kind = "malformed" if isinstance(e, Malformed) else "refused"
            assert kind in expect, f"{why}: expected {'/'.join(sorted(expect))}, got {kind}: {short(str(e))}"
            problems = message_problems(str(e))
            assert not problems, f"{why}: {problems}: {short(str(e))}"
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{why}: {type(e).__name__} escaped Ledger.command: {short(str(e))}")
        else:
            pytest.fail(f"{why}: was applied")
        assert snapshot(h) == before, f"{why}: the store or a projection changed"


# -- pinned regressions: each one a hostile input found by the generators above ------------------------------
def _one(h: Harness, line: dict[str, Any]) -> tuple[str, str | None, int]:
    before = h.head()
    (result,) = h.submit(line)
    return result.status, result.message, h.head() - before


def test_a_line_break_inside_an_email_is_refused(h: Harness) -> None:
    world(h)
    for email in ("jane\n@linebreak.fi", "jane@linebreak.fi\n.", "jane\r\n@linebreak.fi"):
        status, message, written = _one(h, deal("d-lb", email=email, on=ON))
        assert (status, written) in (("refused", 0), ("malformed", 0)), (email, status, message)


def test_a_domain_with_a_line_break_cannot_dodge_duplicate_protection(h: Harness) -> None:
    """acme protects example.fi; "example.fi\\n." must not become a second, unprotected customer."""
    world(h)
    h.ok(deal("d-prot", email="jane@example.fi", on=ON))
    status, message, written = _one(h, deal("d-dodge", partner="beta", email="bob@example.fi\n.", on=ON))
    assert written == 0 or (status == "applied" and "duplicate" in (message or "")), (status, message)
    status, message, written = _one(h, cmd("start_subscription", on=ON, actor="vendor:manager", subscription="s-lb",
                                           customer_domain="example.fi\n.", plan="pro", amount="10.00",
                                           currency="EUR", period="monthly", billing="credit-card"))
    assert (status, written) in (("refused", 0), ("malformed", 0)), (status, message)
    assert all("\n" not in r["customer_domain"] for r in h.ledger.deals(None, None, None, AS_OF))


def test_a_refusal_is_one_line_even_when_the_input_has_a_line_break(h: Harness) -> None:
    world(h)
    status, message, written = _one(h, deal("d-own", email="me\n@acme.fi", on=ON))
    assert status in ("refused", "malformed") and written == 0
    assert message_problems(message) == [], message


@pytest.mark.parametrize("line", [
    pytest.param({"on": "x" * 1000}, id="long-on"),
    pytest.param({"on": ["2026-01-10"] * 300}, id="long-on-list"),
    pytest.param({"data": {"deal": "d-new", "partner": "acme", "customer_name": "A", "contact_name": "B",
                           "customer_email": "\u200f" * 240 + "@x.fi"}, "type": "register_deal"}, id="long-email"),
    pytest.param({"data": {"customer_domain": "\u200f" * 240 + ".fi"}, "type": "report_usage", "actor": "system"},
                 id="long-domain"),
    pytest.param({"actor": "\U000e0001" * 140}, id="long-actor"),
    pytest.param({"type": "x" * 20, "id": "-", "on": "yesterday"}, id="many-errors"),
    pytest.param({"type": "refund", "data": {"subscription": "s-1", "amount": "1.00", "charge": int("9" * 4000)}},
                 id="absurd-charge"),
    pytest.param({"data": {"deal": "d-accept", "oops\nsecond line": 1}}, id="field-name-with-newline"),
    pytest.param({"x" * 5000: 1}, id="long-field-name"),
])
def test_messages_do_not_echo_unbounded_input(h: Harness, line: dict[str, Any]) -> None:
    world(h)
    env = {"id": fresh_id(), "type": "accept_deal", "on": ON, "actor": "vendor:manager", "data": {"deal": "d-accept"}}
    env.update(line)
    before = h.head()
    (result,) = h.ledger.submit_lines([json.dumps(env)])
    assert result.status in ("refused", "malformed") and h.head() == before
    assert message_problems(result.message) == [], short(result.message)


@pytest.mark.parametrize("type_,field,value", [
    ("start_trial", "days", True), ("start_trial", "days", False), ("report_usage", "users", True),
    ("report_usage", "users", False), ("report_usage", "progress", False), ("report_usage", "activities", True),
    ("refund", "charge", True),
])
def test_json_booleans_are_not_numbers(h: Harness, type_: str, field: str, value: bool) -> None:
    world(h)
    actor, data = TEMPLATE[type_]
    status, message, written = _one(h, cmd(type_, on=ON, actor=actor, **{**data, field: value}))
    assert (status, written) == ("malformed", 0), (status, message)


@pytest.mark.parametrize("where,value", [
    pytest.param("on", lambda: _deep_python(100_000), id="on-nested-100000-deep"),
    pytest.param("actor", lambda: _deep_python(100_000), id="actor-nested-100000-deep"),
    pytest.param("charge", lambda: 10**5000, id="charge-5000-digits"),
])
def test_the_command_api_raises_only_malformed_or_refused(h: Harness, where: str, value: Any) -> None:
    world(h)
    env = {"id": fresh_id(), "type": "refund", "on": ON, "actor": "vendor:manager",
           "data": {"subscription": "s-1", "amount": "1.00"}}
    if where in env:
        env[where] = value()
    else:
        env["data"][where] = value()
    before = h.head()
    try:
        h.ledger.command(env)
    except (Malformed, Refused) as e:
        assert message_problems(str(e)) == [], short(str(e))
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"{type(e).__name__} escaped Ledger.command: {short(str(e))}")
    else:
        pytest.fail("was applied")
    assert h.head() == before


def test_a_finance_command_in_a_bulk_file_does_not_crash_the_batch(h: Harness) -> None:
    """issue_statement is a valid envelope type (it once had no handler and
    crashed the batch with a KeyError): the batch must come back line by line."""
    world(h)
    before = h.head()
    try:
        results = h.submit(cmd("issue_statement", on=ON, actor="vendor:finance", partner="acme", month="2026-01"),
                           cmd("add_deal_note", on=ON, actor="partner:acme", deal="d-note", text="still here"))
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"{type(e).__name__} escaped submit_lines: {short(str(e))}")
    first, second = results
    assert second.status == "applied"
    if first.status != "applied":
        assert first.status in ("refused", "malformed") and message_problems(first.message) == []
        assert h.head() - before == 3  # the note, its customer's lifecycle date and its command record only
