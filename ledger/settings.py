"""Settings users tune without touching code: the attention thresholds, read
from LEDGER_ATTENTION_<NAME> environment variables (whole days)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Attention:
    trial_ending_days: int = 7
    trial_inactive_days: int = 7
    deal_pending_days: int = 5
    protection_lapsing_days: int = 14
    won_without_subscription_days: int = 14
    cancelled_recent_days: int = 30
    customer_inactive_days: int = 30
    # A monthly subscription is always within a month of renewal: its window is
    # shorter, or every monthly one would be flagged from its first day.
    renewal_due_days_monthly: int = 7
    renewal_due_days_yearly: int = 30

    def renewal_due_window(self, period: str) -> int:
        """Days ahead of a renewal that flag it, for a `monthly` or `yearly` period."""
        return self.renewal_due_days_monthly if period == "monthly" else self.renewal_due_days_yearly

    @classmethod
    def from_env(cls) -> Attention:
        values = {}
        for f in fields(cls):
            name = f"LEDGER_ATTENTION_{f.name.upper()}"
            raw = os.environ.get(name)
            if raw is None:
                continue
            if not raw.strip().isdigit() or int(raw) > 3650:
                raise ValueError(f"{name} must be a whole number of days (0 to 3650), not {raw!r}")
            values[f.name] = int(raw)
        return cls(**values)
