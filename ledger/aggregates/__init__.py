"""The domain model: aggregates and their rules. Knows nothing of I/O."""

from .base import Context, LedgerAggregate, NotFound, Refused, aggregate_id
from .command import CommandRecord
from .customer import Customer, UsageDay
from .deal import Deal
from .partner import Partner
from .statement import IssuedStatement
from .subscription import Subscription
from .trial import Trial

__all__ = [
    "CommandRecord", "Context", "Customer", "Deal", "IssuedStatement", "LedgerAggregate", "NotFound", "Partner",
    "Refused", "Subscription", "Trial", "UsageDay", "aggregate_id",
]
