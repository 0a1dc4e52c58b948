"""The ledger's refusals in the partner's language.

The domain says why it refuses in one English line (the CLI's and the API's
contract). The portal recognises the reasons a partner meets (its own domain,
free mail, a customer already protected or paying, trial rules, dates) by
their wording and says them in the shown language, with dates formatted for
it. A reason not recognised is shown as the ledger wrote it, after a
translated lead-in. `tests/test_portal_units.py` checks each pattern against
the message the ledger really produces, so a reworded rule is caught."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .i18n import Formats, N_

# (pattern, msgid, groups that are dates): the msgid is the English sentence
# the catalogs translate, its %(name)s filled from the pattern's groups.
_ = N_
PATTERNS: list[tuple[re.Pattern[str], str, tuple[str, ...]]] = [(re.compile(p), m, d) for p, m, d in [
    (r"^(?P<email>\S+) is on partner \S+'s own domain",
     _("%(email)s is on your own company's domain. Register the customer's name and email, not your own."), ()),
    (r"^(?P<domain>\S+) is a free-mail domain",
     _("%(domain)s is a free-mail domain and cannot identify a company. Use the customer's company email."), ()),
    (r"^(?P<domain>\S+) is already protected by your deal (?P<deal>\S+) until (?P<date>[\d-]+)",
     _("%(domain)s is already protected by your deal %(deal)s until %(date)s. Add a note to that deal instead."),
     ("date",)),
    (r"^denied at once: duplicate \(protected by another partner until (?P<date>[\d-]+)\)",
     _("The deal was recorded but denied at once as a duplicate: another partner protects this customer "
       "until %(date)s."), ("date",)),
    (r"^denied at once: existing-customer",
     _("The deal was recorded but denied at once: this customer already has an active subscription."), ()),
    (r"^(?P<domain>\S+) already has an active subscription",
     _("%(domain)s already has an active subscription, so no trial is needed."), ()),
    (r"^(?P<domain>\S+) is protected by another partner until (?P<date>[\d-]+)",
     _("Another partner protects %(domain)s until %(date)s."), ("date",)),
    (r"^(?P<domain>\S+) already has trial \S+ running until (?P<date>[\d-]+)",
     _("%(domain)s already has a trial running until %(date)s."), ("date",)),
    (r"^trial \S+ already runs \d+ days; it extends once",
     _("This trial has already been extended. A trial is extended only once, to 30 days."), ()),
    (r"^trial \S+ ended on (?P<date>[\d-]+)",
     _("This trial ended on %(date)s and can no longer be extended."), ("date",)),
    (r"^trial \S+ converted to a subscription",
     _("This trial became a subscription and can no longer be extended."), ()),
    (r"^not a valid email address", _("This is not a valid email address."), ()),
    (r"^not a valid domain", _("The domain of this email address does not exist."), ()),
    (r"^a note needs text", _("Write the note before adding it."), ()),
    (r"^deal \S+ was already reviewed", _("This deal has already been reviewed."), ()),
    (r"^deal \S+ was denied", _("This deal was denied, so it can no longer change."), ()),
    (r"^deal \S+ is closed-(won|lost); closed is final", _("This deal is closed, so it can no longer change."), ()),
    (r"(customer_name|contact_name|customer_email|text)\b",
     _("Fill in every required field."), ()),
]]
FALLBACK = _("The ledger refused: %(reason)s")


def explain(message: str | None, gettext: Callable[[str], str], formats: Formats) -> str:
    """The refusal `message` in the language of `gettext`, dates by `formats`."""
    text = message or ""
    for pattern, msgid, dates in PATTERNS:
        m = pattern.search(text)
        if m is not None:
            values: dict[str, Any] = dict(m.groupdict())
            for name in dates:
                values[name] = formats.date(values[name])
            return gettext(msgid) % values
    return gettext(FALLBACK) % {"reason": text}
