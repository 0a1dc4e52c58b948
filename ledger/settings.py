"""Settings users tune without touching code: the attention thresholds, read
from LEDGER_ATTENTION_<NAME> environment variables (whole days), and the
business calendar (LEDGER_TIMEZONE, LEDGER_MAX_FUTURE_DAYS,
LEDGER_RENEWAL_WINDOW_DAYS)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import BadInput


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
                raise BadInput(f"{name} must be a whole number of days (0 to 3650), not {raw!r}")
            values[f.name] = int(raw)
        return cls(**values)


@dataclass(frozen=True)
class Time:
    """The business calendar: LEDGER_TIMEZONE (an IANA zone name, default
    UTC), LEDGER_MAX_FUTURE_DAYS (how far ahead of the ledger clock a vendor's
    or system's command may be dated, default 7) and LEDGER_RENEWAL_WINDOW_DAYS
    (how many days before its period ends a renewal is accepted, default 7).

    `from_env` raises ValueError (exit status 2 at the CLI) naming the variable."""

    timezone: str = "UTC"
    max_future_days: int = 7
    renewal_window_days: int = 7

    @classmethod
    def from_env(cls) -> Time:
        zone = timezone_name()
        business_zone(zone)  # validates the name
        return cls(
            timezone=zone,
            max_future_days=_days("LEDGER_MAX_FUTURE_DAYS", cls.max_future_days),
            renewal_window_days=_days("LEDGER_RENEWAL_WINDOW_DAYS", cls.renewal_window_days),
        )


def _days(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    if not raw.strip().isdigit() or int(raw) > 3650:
        raise BadInput(f"{name} must be a whole number of days (0 to 3650), not {raw!r}")
    return int(raw)


def timezone_name() -> str:
    """The business time zone's name as LEDGER_TIMEZONE gives it (default UTC; not yet validated)."""
    return os.environ.get("LEDGER_TIMEZONE", "").strip() or "UTC"


@lru_cache(maxsize=16)
def business_zone(name: str) -> ZoneInfo:
    """The zone of an IANA name (from the `tzdata` package where the system
    has no zone files). Raises BadInput naming LEDGER_TIMEZONE if unknown."""
    try:
        if name != name.strip() or not name or ".." in name or name.startswith("/"):
            raise ValueError  # reported below, as for any unknown name
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError, OSError):
        raise BadInput(
            f"LEDGER_TIMEZONE must be an IANA time zone name such as UTC or Europe/Helsinki, not {name!r}"
        ) from None
