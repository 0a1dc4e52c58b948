"""Languages of the portal: English (the source), Finnish, German and French.

Catalogs are gettext `.po` files under `locale/<lang>/LC_MESSAGES/`, the only
committed form; each is compiled in memory by Babel on first use (no `.mo` to
build or to go stale, and a clean `pip install -e .` works). Numbers, money and
dates are formatted by Babel's CLDR data for the shown locale."""

from __future__ import annotations

import gettext
from datetime import date
from decimal import Decimal
from functools import lru_cache
from io import BytesIO
from pathlib import Path

LANGUAGES = ("en", "fi", "de", "fr")  # English first: the default and the catalogs' source language
NAMES = {"en": "English", "fi": "suomi", "de": "Deutsch", "fr": "français"}  # each in its own language
LOCALE_DIR = Path(__file__).with_name("locale")


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"


@lru_cache(maxsize=None)
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of `lang` (English: the messages as written)."""
    if lang == "en":
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with open(po_path(lang), "rb") as f:
        catalog = read_po(f, locale=lang)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def negotiate(accept_language: str | None) -> str:
    """The first of LANGUAGES the browser's Accept-Language header prefers
    (RFC 9110 §12.5.4: by q-value, then order); English when none matches."""
    choices: list[tuple[Decimal, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = Decimal(1)
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = Decimal(value.strip())
                except ArithmeticError:  # decimal.InvalidOperation: not a q-value
                    q = Decimal(0)
                if not q.is_finite():  # NaN or Infinity: not a q-value either
                    q = Decimal(0)
        lang = tag.strip().lower().split("-")[0]
        if lang in LANGUAGES and q > 0:
            choices.append((-q, i, lang))
    return min(choices)[2] if choices else "en"


class Formats:
    """Numbers, money and dates for one locale (Babel, CLDR): `1 234,56 €`
    in Finnish and French (each with its own CLDR space), `1.234,56 €` in
    German, `€1,234.56` in English."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def money(self, amount: Decimal, currency: str) -> str:
        from babel.numbers import format_currency

        return format_currency(amount, currency, locale=self.lang)

    def number(self, value: int | Decimal | None) -> str:
        from babel.numbers import format_decimal

        return "–" if value is None else format_decimal(value, locale=self.lang)

    def percent(self, rate: Decimal) -> str:
        from babel.numbers import format_percent

        return format_percent(rate, locale=self.lang, decimal_quantization=False)

    def date(self, day: date | str | None) -> str:
        from babel.dates import format_date

        if day is None or day == "":
            return "–"
        if isinstance(day, str):
            day = date.fromisoformat(day[:10])
        return format_date(day, format="medium", locale=self.lang)

    def month(self, month: str) -> str:
        from babel.dates import format_date

        return format_date(date.fromisoformat(month + "-01"), format="LLLL y", locale=self.lang)


def N_(message: str) -> str:
    """Marks `message` for the catalogs where it is defined; translated where shown."""
    return message


# Values the ledger shows as codes, in words (msgids; translated where shown).
LABELS: dict[str, dict[str, str]] = {
    "status": {"trial": N_("Trial"), "active": N_("Active"), "closed": N_("Closed"),
               "cancelled": N_("Cancelled"), "prospect": N_("Prospect")},
    "stage": {"new": N_("New"), "newsletter-subscription": N_("Newsletter subscription"), "trial": N_("Trial"),
              "closed-won": N_("Closed won"), "closed-lost": N_("Closed lost")},
    "review": {"pending": N_("Pending"), "accepted": N_("Accepted"), "denied": N_("Denied")},
    "deny": {"existing-customer": N_("Existing customer"), "invalid-lead": N_("Invalid lead"),
             "duplicate": N_("Duplicate")},
    "billing": {"credit-card": N_("Credit card"), "invoice": N_("Invoice"), "partner": N_("Through the partner")},
    "entry": {"charge": N_("Charge"), "refund": N_("Refund")},
    "kind": {"commission-payable": N_("Commission payable"), "net-invoice-to-partner": N_("Net invoice to partner")},
    "attention": {
        "trial-ending": N_("The trial ends soon."),
        "trial-inactive": N_("The trial has had no activity lately."),
        "deal-pending-review": N_("The deal has waited long for the vendor's review."),
        "protection-lapsing": N_("The deal's protection lapses soon unless the deal moves on."),
        "won-without-subscription": N_("The deal was won but has no subscription yet."),
        "subscription-cancelled": N_("The subscription was cancelled recently."),
        "customer-inactive": N_("The customer has had no activity for a long time."),
        "renewal-due": N_("The subscription's renewal is due."),
    },
}
