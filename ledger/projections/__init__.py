"""Read models rebuilt from events: deal pipeline, customer overview (with
attention flags computed from its facts) and commission statements."""

from .overview import Overview
from .pipeline import Pipeline
from .runner import Runner, Status
from .statements import Statements


def all_projections() -> list:
    """The read models. (The audit chain is not one: the event store writes
    it with the events, see ledger/chain.py.)"""
    return [Pipeline(), Overview(), Statements()]


__all__ = ["Overview", "Pipeline", "Runner", "Statements", "Status", "all_projections"]
