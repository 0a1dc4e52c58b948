"""Date arithmetic on days a user typed. `--as-of` takes any calendar date
(0001-01-01 to 9999-12-31), so a window counted back or forward from it must
stop at the calendar's ends instead of overflowing."""

from __future__ import annotations

from datetime import date


def shift(day: date, days: int) -> date:
    """`day` moved by `days` (negative: back), clamped to date.min..date.max.
    Never raises for any date and any int."""
    ordinal = min(max(day.toordinal() + days, date.min.toordinal()), date.max.toordinal())
    return date.fromordinal(ordinal)
