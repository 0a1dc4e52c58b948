"""Read models rebuilt from events: deal pipeline, customer overview (with
attention flags computed from its facts) and commission statements."""

from .overview import Overview
from .pipeline import Pipeline
from .runner import Runner, Status
from .statements import Statements
from .tokens import Tokens


def all_projections(live: bool = True) -> list:
    """The read models, and on the live ledger the API tokens too (a scratch
    replay never needs them: tokens are always checked against the live
    ledger). The audit chain is not a projection: the event store writes it
    with the events, see ledger/chain.py."""
    return [Pipeline(), Overview(), Statements()] + ([Tokens()] if live else [])


__all__ = ["Overview", "Pipeline", "Runner", "Statements", "Status", "Tokens", "all_projections"]
