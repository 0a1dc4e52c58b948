"""The ledger's refusals in the partner's language.

The domain says why it refuses in one English line (the CLI's and the API's
contract) and gives each reason a partner meets a stable code with the
facts it names (`ledger.errors.CODES`): its own domain, free mail, a customer
already protected or paying, trial rules, dates. The portal says the code's
sentence in the shown language, its facts formatted for it (dates by
Babel). A refusal without a code (or with one not listed here) is shown as
the ledger wrote it, after a translated lead-in. `tests/test_portal_units.py`
checks that every code raised in `ledger/` is listed here and translated."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from .i18n import Formats, N_

# code → msgid: the English sentence the catalogs translate, its %(name)s
# filled from the refusal's facts (dates, given as `date`, in the locale's form).
_ = N_
SENTENCES: dict[str, str] = {
    "own_domain": _("%(email)s is on your own company's domain. Register the customer's name and email, "
                    "not your own."),
    "free_mail": _("%(domain)s is a free-mail domain and cannot identify a company. "
                   "Use the customer's company email."),
    "already_yours": _("%(domain)s is already protected by your deal %(deal)s until %(until)s. "
                       "Add a note to that deal instead."),
    "duplicate": _("The deal was recorded but denied at once as a duplicate: another partner protects this customer "
                   "until %(until)s."),
    "existing_customer": _("The deal was recorded but denied at once: this customer already has an active "
                           "subscription."),
    "already_paying": _("%(domain)s already has an active subscription, so no trial is needed."),
    "protected_by_other": _("Another partner protects %(domain)s until %(until)s."),
    "trial_running": _("%(domain)s already has a trial running until %(until)s."),
    "trial_extended": _("This trial has already been extended. A trial is extended only once, to 30 days."),
    "trial_ended": _("This trial ended on %(ended)s and can no longer be extended."),
    "trial_converted": _("This trial became a subscription and can no longer be extended."),
    "invalid_email": _("This is not a valid email address."),
    "invalid_domain": _("The domain of this email address does not exist."),
    "empty_note": _("Write the note before adding it."),
    "already_reviewed": _("This deal has already been reviewed."),
    "deal_denied": _("This deal was denied, so it can no longer change."),
    "deal_closed": _("This deal is closed, so it can no longer change."),
    "invalid_data": _("Fill in every required field."),
}
FALLBACK = _("The ledger refused: %(reason)s")


def explain(code: str | None, facts: Mapping[str, Any], message: str | None,
            gettext: Callable[[str], str], formats: Formats) -> str:
    """The refusal (or note) with `code` and `facts` (ledger.errors.CODES) in
    the language of `gettext`, dates by `formats`; without a known code, the
    English `message` after a translated lead-in."""
    if code in SENTENCES:
        values = {name: formats.date(value) if isinstance(value, date) else value for name, value in facts.items()}
        return gettext(SENTENCES[code]) % values
    return gettext(FALLBACK) % {"reason": message or ""}
