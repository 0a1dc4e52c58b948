"""The ledger's own exceptions, and the exit status each stands for at the
command line (INTERFACE.md): 1 refused, 2 bad usage or malformed input,
3 the database is unreachable or broken. Anything else that reaches the
entry point is a bug: an internal error, exit 70 (`ledger/commandline/main.py`).

Plain module, no imports: the domain, the boundary and the entry point all
use it, and `ledger --help` stays quick."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EXIT_REFUSED, EXIT_USAGE, EXIT_DB, EXIT_INTERNAL = 1, 2, 3, 70


# Every machine code a refusal (or a deal denied at once) may carry: stable
# names a client (the portal, an API client) acts on instead of the English
# message's wording. The portal translates each (ledger/portal/refusals.py);
# tests/test_portal_units.py checks that every code raised in ledger/ is
# declared here and translated in each catalog.
CODES: dict[str, str] = {
    "own_domain": "the customer email is on the partner's own domain (facts: email)",
    "free_mail": "a free-mail domain cannot identify a company (facts: domain)",
    "already_yours": "the partner's own deal already protects the customer (facts: domain, deal, until)",
    "duplicate": "denied at once: another partner protects the customer (facts: until)",
    "existing_customer": "denied at once: the customer already pays (facts: domain)",
    "already_paying": "no trial for a customer with an active subscription (facts: domain)",
    "protected_by_other": "another partner's deal or trial holds the customer (facts: domain, until)",
    "trial_running": "the customer already has a trial running (facts: domain, trial, until)",
    "trial_extended": "a trial extends once (facts: trial, days)",
    "trial_ended": "an ended trial cannot be extended (facts: trial, ended)",
    "trial_converted": "a converted trial cannot be extended (facts: trial)",
    "invalid_email": "not a valid email address",
    "invalid_domain": "the domain is not on the Public Suffix List",
    "invalid_data": "a command's data failed validation (facts: fields)",
    "empty_note": "a note needs text",
    "already_reviewed": "the deal was already reviewed (facts: deal, review)",
    "deal_denied": "the deal was denied and can no longer change (facts: deal, reason)",
    "deal_closed": "the deal is closed-won or closed-lost (facts: deal, stage)",
}


def declared(code: str | None) -> str | None:
    """`code` itself (None passes); raises ValueError for a code not in CODES,
    so a new code cannot be raised before it is declared (and translated)."""
    if code is not None and code not in CODES:
        raise ValueError(f"undeclared refusal code {code!r}: add it to ledger.errors.CODES")
    return code


class LedgerError(Exception):
    """Base of the ledger's own errors: a message for one line on stderr and
    the exit status it means. `code` (one of CODES, or None) and `facts`
    (the values the message names, as values: dates as `date`) let a client
    say the same in its own words; the message stays the English contract."""

    exit_status = EXIT_INTERNAL

    def __init__(self, *args: Any, code: str | None = None, facts: Mapping[str, Any] | None = None) -> None:
        super().__init__(*args)
        self.code = declared(code)
        self.facts: dict[str, Any] = dict(facts or {})


class Note(str):
    """A note on an applied command the submitter needs to know (a deal
    recorded but denied at once): the English text, with `code` (one of
    CODES) and `facts` as a refusal has them."""

    code: str | None
    facts: dict[str, Any]

    def __new__(cls, text: str, code: str, facts: Mapping[str, Any] | None = None) -> "Note":
        note = super().__new__(cls, text)
        note.code, note.facts = declared(code), dict(facts or {})
        return note


class Refused(LedgerError):
    """A business rule or an authority check says no. Nothing is written."""

    exit_status = EXIT_REFUSED


class BadInput(LedgerError, ValueError):
    """Bad usage or malformed input: an option, a setting, a file or a value
    the ledger cannot take as given (exit 2, HTTP 422). A ValueError too, so
    pydantic validators and callers that catch ValueError keep working."""

    exit_status = EXIT_USAGE


class Unknown(LedgerError, KeyError):
    """A name that names nothing the ledger has (a projection, an attention
    code): bad usage (exit 2); a KeyError, so the API answers 404."""

    exit_status = EXIT_USAGE

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"  # KeyError's own str() is a repr


class Unavailable(LedgerError):
    """The database is unreachable or broken (exit status 3, HTTP 503)."""

    exit_status = EXIT_DB
