"""Money rules: which currencies the ledger takes, each currency's minor units,
and amounts checked, rounded and printed to them (ISO 4217; data from Babel,
which carries the Unicode CLDR currency data and works offline).

Which codes: those that are legal tender today in some territory by CLDR
(Babel's territory currency data, without an end date). That is ISO 4217's
currencies in use, and leaves out what Babel's full list also holds but no
customer pays in: the test and "no currency" codes `XTS` and `XXX`, precious
metals (`XAU`), fund and accounting units (`XDR`, `CLF`), historic codes
(`DEM`, `FIM`) and CLDR's own non-ISO codes (`CNH`). Unknown codes such as
`XYZ` are refused.

Minor units: Babel's `get_currency_precision` (CLDR), e.g. EUR 2, JPY 0,
BHD 3. For a few currencies CLDR gives fewer digits than ISO 4217's table
(HUF, IDR, COP, IQD and others: 0), as amounts in them are written in practice."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

from .errors import BadInput

MAX_AMOUNT = Decimal("1000000000")


class MoneyError(BadInput):
    """An amount or a currency the ledger does not take."""


@lru_cache(maxsize=1)
def currencies() -> frozenset[str]:
    """The ISO 4217 codes the ledger takes: legal tender today in some territory (CLDR)."""
    from babel.core import get_global

    return frozenset(
        code
        for entries in get_global("territory_currencies").values()
        for code, _start, end, tender in entries
        if tender and end is None
    )


def check_currency(code: str) -> str:
    """`code` if it is a currency the ledger takes (see `currencies`);
    raises MoneyError otherwise."""
    if code not in currencies():
        raise MoneyError(f"currency must be an ISO 4217 code in use, in upper case, such as EUR, not {code!r}")
    return code


@lru_cache(maxsize=512)
def minor_units(currency: str) -> int:
    """How many decimals an amount in `currency` has (EUR 2, JPY 0, BHD 3)."""
    from babel.numbers import get_currency_precision

    return get_currency_precision(currency)


def _unit(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def check_amount(amount: Decimal, currency: str, what: str = "amount") -> Decimal:
    """A positive amount below MAX_AMOUNT with no more decimals than the
    currency's minor units; raises MoneyError otherwise."""
    if not amount.is_finite() or amount <= 0 or amount >= MAX_AMOUNT:
        raise MoneyError(f"{what} must be a positive amount below {MAX_AMOUNT}, not {amount}")
    places = minor_units(currency)
    if amount != amount.quantize(_unit(currency)):
        raise MoneyError(f"{what} has at most {places} decimals in {currency} (its minor units), not {amount}")
    return amount


def quantize(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded half-up to the currency's minor units (12000 EUR → 12000.00)."""
    return amount.quantize(_unit(currency), rounding=ROUND_HALF_UP)


def format_money(amount: Decimal, currency: str) -> str:
    """`amount` as text with exactly the currency's minor units, no grouping,
    `-` for negatives: 12000 EUR → "12000.00", 12000 JPY → "12000",
    1.5 BHD → "1.500"."""
    return f"{quantize(amount, currency):f}"


# -- commission (SPEC: "cents rounded half-up, never floats"; a refund "claws
# back ... the commission at the rate that applied to the refunded charge") --
CENT = Decimal("0.01")


def commission(amount: Decimal, rate: Decimal, currency: str | None = None) -> Decimal:
    """The commission on `amount` at `rate` (a fraction such as 0.20): rounded
    half-up to the currency's minor unit (the cent when no currency is named),
    on the magnitude, so a negative amount mirrors a positive one."""
    value = abs(amount) * rate
    value = value.quantize(CENT, rounding=ROUND_HALF_UP) if currency is None else quantize(value, currency)
    return -value if amount < 0 else value


def clawback(base: Decimal, refund: Decimal, rate: Decimal, currency: str | None = None) -> Decimal:
    """What a refund takes back (a negative Decimal): the commission on what was
    left of the charge before it (`base`), minus the commission on what is left
    after. Refunds of one charge therefore add up to exactly the commission it
    paid, whatever the rounding of each part."""
    return -(commission(base, rate, currency) - commission(base - refund, rate, currency))


def rate_in_force(rates: Sequence[tuple[Any, Decimal]], day: Any) -> Decimal:
    """The commission rate in force on `day` (SPEC: "statements use the rate in
    force on each charge's date"). `rates` are (effective day, rate) pairs in
    effective-day order and, within a day, in the order they were recorded:
    the latest effective on or before `day` holds (the later-recorded one on a
    shared day); before the first, the first. No rates: 0."""
    if not rates:
        return Decimal("0")
    i = bisect_right(rates, day, key=lambda r: r[0])
    return rates[max(i - 1, 0)][1]
