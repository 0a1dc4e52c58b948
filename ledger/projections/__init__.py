"""Read models rebuilt from events: deal pipeline, customer overview (with
attention flags computed from its facts) and commission statements."""

from .overview import Overview
from .pipeline import Pipeline
from .runner import Runner, Status
from .statements import Statements
from .tokens import Tokens


def all_projections() -> list:
    """The read models and the API tokens. The audit chain is not a
    projection: the event store writes it with the events, see ledger/chain.py."""
    return [Pipeline(), Overview(), Statements(), Tokens()]


__all__ = ["Overview", "Pipeline", "Runner", "Statements", "Status", "Tokens", "all_projections"]
