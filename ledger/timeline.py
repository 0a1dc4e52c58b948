"""Business time: the one place that turns instants into business dates.

SPEC "Time": effective time is when a thing happened in the business,
recorded time is the ledger's own clock. Both are instants (timezone-aware
datetimes). Business dates, statement months and windows are dates in the
business time zone, LEDGER_TIMEZONE (an IANA name, default UTC).

Events store their effective instant (`at`), never a date: every business
date is derived from it here, so an event's `apply`, the command context and
the projections agree. A ledger whose LEDGER_TIMEZONE changes therefore
re-derives its dates on replay; rebuild the read models (`ledger rebuild`)
after changing it."""

from __future__ import annotations

import os
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from .errors import BadInput
from .settings import Time, business_zone, timezone_name

UTC = timezone.utc


# Every event's date asks for the zone (a rebuild: millions of times). The
# environment's own dict answers without the KeyError that os.environ.get
# raises and catches inside when the variable is unset (POSIX; elsewhere
# os.environ itself); the zone is looked up again only when the value changed.
_ENVIRON: Any = os.environ._data if os.name == "posix" else os.environ  # type: ignore[attr-defined]
_KEY: Any = os.fsencode("LEDGER_TIMEZONE") if os.name == "posix" else "LEDGER_TIMEZONE"
_last: tuple[Any, ZoneInfo] | None = None


def zone() -> ZoneInfo:
    """The business time zone named by LEDGER_TIMEZONE (default UTC).
    Raises BadInput for an unknown name."""
    global _last
    raw = _ENVIRON.get(_KEY)
    if _last is None or _last[0] != raw:
        _last = (raw, business_zone(timezone_name()))
    return _last[1]


def business_date(instant: datetime) -> date:
    """The business date (in LEDGER_TIMEZONE) of an aware instant."""
    return instant.astimezone(zone()).date()


def business_month(instant: datetime) -> str:
    """The statement month (YYYY-MM, in LEDGER_TIMEZONE) of an aware instant."""
    return business_date(instant).strftime("%Y-%m")


def today() -> date:
    """Today's business date (in LEDGER_TIMEZONE) by the machine's clock: what
    a query's `as of` means when none is given."""
    return business_date(datetime.now(timezone.utc))


def parse_instant(text: str) -> datetime:
    """A recorded time as typed (`--known-at`, `known_at`): ISO 8601, UTC when
    it has no offset; returned as an aware instant in UTC, so one moment
    written with any offset compares equal. Raises BadInput."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"{text[:40]!r} is not an ISO 8601 timestamp") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # beyond the calendar in UTC: before or after every recorded time
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=timezone.utc)


def day_start(day: date) -> datetime:
    """The instant (in UTC) the business day `day` begins: its midnight in
    LEDGER_TIMEZONE (or the first moment after, where a DST jump skips it)."""
    return datetime.combine(day, time(), zone()).astimezone(UTC)


def effective(when: datetime) -> datetime:
    """An effective date-time as an instant in UTC: one with an offset is that
    instant; a naive one is wall time in LEDGER_TIMEZONE."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone())
    return when.astimezone(UTC)


def recorded_text(instant: datetime) -> str:
    """A recorded time as fixed-width UTC text (microseconds, `+00:00`), so
    that comparing the text in SQL compares the instants, whatever offset the
    time was written with."""
    return instant.astimezone(UTC).isoformat(timespec="microseconds")


def shift(day: date, days: int) -> date:
    """`day` moved by `days` days, held at the first or last calendar date
    instead of overflowing: queries take any date as `--as-of`, and their
    windows (90 days back, 30 days ahead) must still have an edge."""
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.max if days > 0 else date.min


# How far ahead of today a command type may be dated (its `ahead` in the
# command registry): not at all, up to LEDGER_MAX_FUTURE_DAYS, or any day.
AHEAD_TODAY, AHEAD_LIMITED, AHEAD_ANY = "today", "limited", "any"


def check_effective_date(actor: str, command_type: str, at: datetime, now: datetime,
                         ahead: str = AHEAD_LIMITED) -> None:
    """Refuse (Refused) a command of `command_type` dated too far ahead of the
    ledger clock `now`:

    - a partner's command after the clock's business date (today);
    - a command whose type may not run ahead (`ahead` AHEAD_TODAY: a sweep,
      as time alone decides what lapsed) after today;
    - a vendor's or system's command more than LEDGER_MAX_FUTURE_DAYS after
      today, unless its type may be dated any day (AHEAD_ANY:
      `set_commission_rate`, which schedules a rate from its date).

    INTERFACE "Additions": LEDGER_MAX_FUTURE_DAYS. A far-future date would
    otherwise lock a customer's domain for years (case 11)."""
    from .aggregates.base import Refused  # the aggregates import this module

    day, today = business_date(at), business_date(now)
    if day <= today:
        return
    if actor.startswith("partner:") or ahead == AHEAD_TODAY:
        who = f"a {command_type.replace('_', ' ')}" if ahead == AHEAD_TODAY else "a partner's command"
        raise Refused(f"{who} cannot be dated after today ({today}): {day}")
    if ahead == AHEAD_ANY:
        return
    limit = Time.from_env().max_future_days
    if day > today + timedelta(days=limit):
        raise Refused(
            f"a command cannot be dated more than {limit} days ahead (LEDGER_MAX_FUTURE_DAYS) "
            f"of today ({today}): {day}"
        )


def check_not_before(what: str, last: date | None, day: date) -> None:
    """Refuse (Refused) a command dated `day` on a record (`what`, e.g.
    "deal d-1") whose last fact is dated `last`, when `day` is earlier: a
    backdated command is never judged against facts that began after its date,
    so effective dates never run backwards for one deal, trial, subscription
    or customer lifecycle."""
    from .aggregates.base import Refused

    if last is not None and day < last:
        raise Refused(
            f"{what} has a fact dated {last}; a command on it cannot be dated earlier ({day})"
        )
