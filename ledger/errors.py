"""The ledger's own exceptions, and the exit status each stands for at the
command line (INTERFACE.md): 1 refused, 2 bad usage or malformed input,
3 the database is unreachable or broken. Anything else that reaches the
entry point is a bug: an internal error, exit 70 (`ledger/commandline/main.py`).

Plain module, no imports: the domain, the boundary and the entry point all
use it, and `ledger --help` stays quick."""

from __future__ import annotations

EXIT_REFUSED, EXIT_USAGE, EXIT_DB, EXIT_INTERNAL = 1, 2, 3, 70


class LedgerError(Exception):
    """Base of the ledger's own errors: a message for one line on stderr and
    the exit status it means."""

    exit_status = EXIT_INTERNAL


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
