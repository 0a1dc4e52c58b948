"""Read models rebuilt from events: deal pipeline, customer overview (with
attention flags computed from its facts) and commission statements."""

from .chain import Chain
from .overview import Overview
from .pipeline import Pipeline
from .runner import Runner, Status
from .statements import Statements
from .tokens import Tokens


def all_projections(chain: bool = True) -> list:
    """The read models, the API tokens and the audit chain (the last two not
    needed in a scratch replay: tokens are always checked against the live ledger)."""
    return [Pipeline(), Overview(), Statements()] + ([Tokens(), Chain()] if chain else [])


__all__ = ["Chain", "Overview", "Pipeline", "Runner", "Statements", "Status", "Tokens", "all_projections"]
