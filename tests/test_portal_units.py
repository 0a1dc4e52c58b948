"""The portal without a browser (FastAPI's TestClient): locale formatting,
language choice, the session cookie's flags, CSRF, authority on records,
the refusal texts against the ledger's real messages, and the catalogs'
completeness."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.api.app import create_app
from ledger.portal import i18n
from ledger.portal.catalog import template
from ledger.portal.refusals import SENTENCES, explain
from ledger.portal.session import COOKIE

from .conftest import Harness, cmd, deal, program
from .portal_seed import seed

NBSP, NNBSP = "\u00a0", "\u202f"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('portal') / 'ledger.db'}"
    data = seed(url)
    with TestClient(create_app(url)) as client:
        yield client, data


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client: TestClient, token: str) -> None:
    client.cookies.clear()
    page = client.get("/login")
    r = client.post("/login", data={"csrf": csrf_of(page.text), "token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"


# -- formatting and language ----------------------------------------------------------
def test_money_numbers_and_dates_follow_the_locale() -> None:
    amount = Decimal("1234.56")
    assert i18n.Formats("fi").money(amount, "EUR") == f"1{NBSP}234,56{NBSP}€"
    assert i18n.Formats("fr").money(amount, "EUR") == f"1{NNBSP}234,56{NBSP}€"
    assert i18n.Formats("de").money(amount, "EUR") == f"1.234,56{NBSP}€"
    assert i18n.Formats("en").money(amount, "EUR") == "€1,234.56"
    assert i18n.Formats("de").money(Decimal("5"), "JPY") == f"5{NBSP}¥"  # the currency's own minor units
    assert i18n.Formats("fi").date("2026-03-05") == "5.3.2026"
    assert i18n.Formats("de").date("2026-03-05") == "05.03.2026"
    assert i18n.Formats("fr").date("2026-03-05") == "5 mars 2026"
    assert i18n.Formats("de").percent(Decimal("0.125")) == f"12,5{NBSP}%"
    assert i18n.Formats("fi").month("2026-03") == "maaliskuu 2026"


@pytest.mark.parametrize("header, lang", [
    ("fi-FI,fi;q=0.9,en;q=0.8", "fi"), ("sv-SE, de;q=0.5, fr;q=0.7", "fr"), ("es", "en"), ("", "en"),
    ("de;q=0, fr", "fr"), ("EN-gb", "en"), ("fr;q=abc, de", "de"),
])
def test_the_language_comes_from_accept_language(header: str, lang: str) -> None:
    assert i18n.negotiate(header) == lang


def test_lang_parameter_is_kept_in_the_session_and_shown_in_html_lang(seeded: Any) -> None:
    client, data = seeded
    sign_in(client, data["tokens"]["acme"])
    assert '<html lang="de">' in client.get("/?lang=de").text
    assert '<html lang="de">' in client.get("/deals", headers={"accept-language": "fr"}).text
    page = client.get("/deals/new?lang=fi")
    assert '<html lang="fi">' in page.text and "Rekisteröi kauppa" in page.text
    client.get("/?lang=en")


def test_accept_language_chooses_before_any_switch(seeded: Any) -> None:
    client, _ = seeded
    client.cookies.clear()
    page = client.get("/login", headers={"accept-language": "fr-FR,fr;q=0.9"})
    assert '<html lang="fr">' in page.text and "Se connecter" in page.text


# -- the session cookie and CSRF ---------------------------------------------------------
def test_the_session_cookie_is_httponly_samesite_and_secure_over_https(seeded: Any) -> None:
    client, _ = seeded
    client.cookies.clear()
    plain = client.get("/login").headers["set-cookie"]
    assert "HttpOnly" in plain and "SameSite=lax" in plain and "Secure" not in plain
    with TestClient(client.app, base_url="https://portal.example") as tls:
        secure = tls.get("/login").headers["set-cookie"]
    assert "HttpOnly" in secure and "SameSite=lax" in secure and "Secure" in secure
    assert COOKIE in secure


def test_a_form_without_its_csrf_token_is_refused(seeded: Any) -> None:
    client, data = seeded
    client.cookies.clear()
    client.get("/login")
    assert client.post("/login", data={"token": data["tokens"]["acme"]}, follow_redirects=False).status_code == 400
    sign_in(client, data["tokens"]["acme"])
    form = {"customer_name": "Csrf Oy", "contact_name": "C", "customer_email": "c@csrf.fi"}
    r = client.post("/deals/new", data=form, follow_redirects=False)
    assert r.status_code == 400
    r = client.post("/deals/new", data={**form, "csrf": "forged"}, follow_redirects=False)
    assert r.status_code == 400
    assert "csrf.fi" not in client.get("/deals").text  # nothing was registered
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 400
    assert client.get("/", follow_redirects=False).status_code == 200  # still signed in


def test_a_forged_or_foreign_cookie_is_a_signed_out_visitor(seeded: Any) -> None:
    client, data = seeded
    sign_in(client, data["tokens"]["acme"])
    value = client.cookies[COOKIE]
    client.cookies.clear()
    client.cookies.set(COOKIE, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_signing_out_ends_the_session(seeded: Any) -> None:
    client, data = seeded
    sign_in(client, data["tokens"]["acme"])
    page = client.get("/")
    r = client.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_a_wrong_token_does_not_sign_in(seeded: Any) -> None:
    client, _ = seeded
    client.cookies.clear()
    page = client.get("/login?lang=de")
    r = client.post("/login", data={"csrf": csrf_of(page.text), "token": "plt_nope"}, follow_redirects=False)
    assert r.status_code == 401 and "unbekannt" in r.text
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_another_partners_record_is_not_shown(seeded: Any) -> None:
    client, data = seeded
    sign_in(client, data["tokens"]["acme"])
    r = client.get("/deals/d-b1")
    assert r.status_code in (403, 404) and "Rival" not in r.text
    page = client.get("/deals/d-a1")
    r = client.post("/deals/d-b1/notes", data={"csrf": csrf_of(page.text), "text": "mine now"})
    assert r.status_code in (403, 404)
    assert client.get("/review").status_code == 403  # the vendor's pages
    assert client.get("/partners").status_code == 403
    assert client.get("/statements/2026-01?partner=beta").status_code == 403


def test_signed_out_visitors_go_to_the_sign_in_page(seeded: Any) -> None:
    client, _ = seeded
    client.cookies.clear()
    for path in ("/", "/deals", "/deals/new", "/deals/d-a1", "/trials", "/statements", "/review", "/partners"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login", path


# -- refusals in the partner's language --------------------------------------------------
def test_each_refusal_the_ledger_raises_carries_a_code_the_portal_translates(h: Harness) -> None:
    """Each reason a partner meets, produced by the ledger, has a code with
    its facts, and the portal says it in the partner's language."""
    program(h)
    h.ok(deal("d-1", email="jane@example.fi", on="2026-01-10"),
         deal("d-2", partner="beta", email="x@rival.fi", on="2026-01-10"),
         cmd("start_trial", on="2026-01-10", actor="partner:acme", trial="t-1", partner="acme",
             customer_name="T Oy", customer_email="t@trial.fi", days=9),
         cmd("start_trial", on="2026-01-10", actor="partner:acme", trial="t-2", partner="acme",
             customer_name="U Oy", customer_email="u@untrial.fi"))
    h.ok(cmd("extend_trial", on="2026-01-11", actor="partner:acme", trial="t-2"))

    def refused(line: dict[str, Any]) -> Any:
        h.refused(line)  # refused, nothing written
        (result,) = h.submit({**line, "id": line["id"] + "-again"})
        return result

    results = [
        refused(deal("d-3", email="me@acme.fi", on="2026-01-11")),
        refused(deal("d-4", email="someone@gmail.com", on="2026-01-11")),
        refused(deal("d-5", email="john@example.fi", on="2026-01-11")),
        h.submit(deal("d-6", email="y@rival.fi", on="2026-01-11"))[0],
        refused(cmd("start_trial", on="2026-01-11", actor="partner:acme", trial="t-3", partner="acme",
                    customer_name="R", customer_email="r@rival.fi")),
        refused(cmd("start_trial", on="2026-01-11", actor="partner:acme", trial="t-4", partner="acme",
                    customer_name="T", customer_email="t2@trial.fi")),
        refused(cmd("extend_trial", on="2026-01-12", actor="partner:acme", trial="t-2")),
        refused(cmd("extend_trial", on="2026-02-20", actor="partner:acme", trial="t-1")),
        refused(deal("d-7", email="jane@bad..example.fi", on="2026-01-11")),
        refused(cmd("accept_deal", on="2026-01-12", actor="vendor:manager", deal="d-6")),
        refused(deal("d-8", email="jane@example.notatld", on="2026-01-11")),
    ]
    assert [r.code for r in results] == [
        "own_domain", "free_mail", "already_yours", "duplicate", "protected_by_other", "trial_running",
        "trial_extended", "trial_ended", "invalid_data", "already_reviewed", "invalid_data"]
    assert results[2].message == ("example.fi is already protected by your deal d-1 until 2026-04-10; "
                                  "add a note to it instead")  # the English contract is unchanged
    fi = i18n.translations("fi").gettext
    explained = [explain(r.code, r.facts, r.message, fi, i18n.Formats("fi")) for r in results]
    assert not [e for e in explained if "englanniksi" in e], list(zip(results, explained))
    assert explained[2] == ("example.fi on jo suojattu kaupallasi d-1 10.4.2026 asti. "
                            "Lisää sen sijaan muistiinpano kyseiseen kauppaan.")
    assert explained[3].startswith("Kauppa kirjattiin, mutta se hylättiin heti päällekkäisenä")
    assert "10.4.2026" in explained[3]
    assert results[3].as_dict()["code"] == "duplicate" and results[0].as_dict()["code"] == "own_domain"


def test_an_unknown_refusal_is_shown_with_a_translated_lead_in() -> None:
    de = i18n.translations("de").gettext
    text = explain(None, {}, "something new happened", de, i18n.Formats("de"))
    assert text == "Das System hat die Anfrage abgelehnt. Grund (auf Englisch): something new happened"


def test_every_code_raised_in_the_ledger_is_declared_and_translated() -> None:
    """A code is raised as `code="…"` (or a Note's second argument) in
    ledger/; each must be declared in CODES, have the portal's sentence, and
    that sentence be in every catalog (test_every_message_is_translated
    checks that each catalog translates what the template holds)."""
    from pathlib import Path

    import ledger
    from ledger.errors import CODES

    root = Path(ledger.__file__).parent
    source = "\n".join(p.read_text(encoding="utf-8") for p in root.rglob("*.py"))
    raised = set(re.findall(r'code="(\w+)"', source)) | set(re.findall(r'Note\(f?"[^"]*",\s*"(\w+)"', source))
    assert {"own_domain", "duplicate", "existing_customer", "invalid_data"} <= raised  # the scan sees them
    assert raised <= set(CODES)
    assert set(CODES) == set(SENTENCES)  # the portal says each declared code, and nothing else
    wanted = {m.id for m in template() if m.id}
    assert set(SENTENCES.values()) <= wanted
    for lang in i18n.LANGUAGES[1:]:
        gettext = i18n.translations(lang).gettext
        assert [m for m in SENTENCES.values() if gettext(m) == m] == [], lang


# -- the catalogs -------------------------------------------------------------------------
# Words that are the same in the language as in English (checked: a real word there).
SAME_AS_ENGLISH = {
    "de": {"Partner", "Partner: %(partner)s", "Deals", "Deal", "Deal %(deal)s", "Status", "%(review)s: %(reason)s"},
    "fr": {"Notes", "Date", "Commission", "Prospect"},
    "fi": {"%(review)s: %(reason)s"},  # a pattern of punctuation, not words
}


@pytest.mark.parametrize("lang", i18n.LANGUAGES[1:])
def test_every_message_is_translated(lang: str) -> None:
    from babel.messages.pofile import read_po

    with open(i18n.po_path(lang), "rb") as f:
        catalog = read_po(f, locale=lang)
    wanted = {m.id for m in template() if m.id}
    have = {m.id: m.string for m in catalog if m.id}
    assert wanted - set(have) == set(), "run python -m ledger.portal.catalog and translate"
    assert {i for i in wanted if not have[i]} == set()
    assert {i for i in wanted if have[i] == i} == SAME_AS_ENGLISH[lang]
    for msgid in wanted:  # every placeholder kept, none added
        assert sorted(re.findall(r"%\(\w+\)s", msgid)) == sorted(re.findall(r"%\(\w+\)s", have[msgid])), msgid
    assert not [m.id for m in catalog if m.fuzzy and m.id]


def test_every_refusal_and_label_is_in_the_catalogs() -> None:
    wanted = {m.id for m in template() if m.id}
    assert set(SENTENCES.values()) <= wanted
    assert {label for table in i18n.LABELS.values() for label in table.values()} <= wanted


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
@pytest.mark.parametrize("path", ["/", "/?filter=trial", "/?filter=active", "/?filter=closed", "/?filter=attention",
                                  "/deals", "/deals/new", "/deals/d-a1", "/trials", "/statements/{month}"])
def test_each_page_renders_in_each_language(seeded: Any, lang: str, path: str) -> None:
    client, data = seeded
    sign_in(client, data["tokens"]["acme"])
    page = client.get(path.format(month=data["month"]) + ("&" if "?" in path else "?") + f"lang={lang}")
    assert page.status_code == 200
    assert f'<html lang="{lang}">' in page.text
    client.get("/?lang=en")


# -- the vendor manager and revoked tokens ---------------------------------------------------
def test_the_manager_denies_a_deal_with_a_reason_and_picks_a_partners_statement(seeded: Any) -> None:
    client, data = seeded
    sign_in(client, data["tokens"]["acme"])
    form = client.get("/deals/new")
    r = client.post("/deals/new", data={"csrf": csrf_of(form.text), "command_id": "deny-me-0001",
                                        "customer_name": "Hylätty Oy", "contact_name": "H",
                                        "customer_email": "h@hylatty.fi"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/deals/d-deny-me-0001"
    sign_in(client, data["tokens"]["manager"])
    review = client.get("/review?lang=fr")
    assert "d-deny-me-0001" in review.text and "Piste non valable" in review.text
    r = client.post("/deals/d-deny-me-0001/deny", data={"csrf": csrf_of(review.text), "reason": "invalid-lead"},
                    follow_redirects=False)
    assert r.status_code == 303
    card = client.get("/deals/d-deny-me-0001")
    assert "<dd>Refusée : Piste non valable</dd>" in card.text
    again = client.post("/deals/d-deny-me-0001/accept", data={"csrf": csrf_of(card.text)})
    assert again.status_code == 409 and "Cette affaire a déjà été vérifiée." in again.text
    picker = client.get(f"/statements/{data['month']}")
    assert picker.status_code == 200 and '<select id="partner" name="partner"' in picker.text
    st = client.get(f"/statements/{data['month']}?partner=acme&lang=de")
    assert "1.234,56\u00a0€" in st.text and "246,91\u00a0€" in st.text
    partners = client.get("/partners")
    assert "acme" in partners.text and "20\u00a0%" in partners.text
    client.get("/?lang=en")


def test_a_revoked_token_ends_its_sessions(tmp_path: Any) -> None:
    from ledger.service import Ledger
    from ledger.tokens import revoke

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    data = seed(url)
    with TestClient(create_app(url)) as client:
        sign_in(client, data["tokens"]["beta"])
        assert client.get("/deals", follow_redirects=False).status_code == 200
        with Ledger(url, "vendor:manager") as ledger:
            revoke(ledger, "beta")
        assert client.get("/deals", follow_redirects=False).headers["location"] == "/login"


def test_own_domain_and_free_mail_are_refused_in_the_partners_language(seeded: Any) -> None:
    client, data = seeded
    sign_in(client, data["tokens"]["acme"])
    form = client.get("/deals/new?lang=fr")
    fields = {"csrf": csrf_of(form.text), "customer_name": "Nous", "contact_name": "Moi",
              "customer_email": "moi@acme.fi", "note": "garder ce texte"}
    r = client.post("/deals/new", data=fields)
    assert r.status_code == 409
    assert "moi@acme.fi appartient au domaine de votre propre entreprise." in r.text
    assert "garder ce texte" in r.text and 'value="Nous"' in r.text
    r = client.post("/deals/new", data={**fields, "customer_email": "moi@gmail.com"})
    assert "gmail.com est un domaine de messagerie gratuite" in r.text
    trials = client.get("/trials")
    r = client.post("/trials", data={"csrf": csrf_of(trials.text), "customer_name": "P",
                                     "customer_email": "p@maksava.fi"})
    assert r.status_code == 409 and "maksava.fi a déjà un abonnement actif" in r.text
    client.get("/?lang=en")


def test_the_calendar_s_first_and_last_months_are_pages_without_links_beyond(seeded: Any) -> None:
    client, data = seeded
    sign_in(client, data["tokens"]["acme"])
    first, last = client.get("/statements/0001-01"), client.get("/statements/9999-12")
    assert first.status_code == last.status_code == 200, (first.text[:300], last.text[:300])
    assert 'rel="prev"' not in first.text and "/statements/0000-12" not in first.text
    assert "/statements/10000-01" not in last.text
    assert client.get("/statements/0000-01").status_code == 404  # there is no year 0


def test_every_value_the_domain_can_show_has_its_label() -> None:
    """A new stage, review, deny reason, billing option or attention code
    cannot reach a page untranslated: the labels cover the domain's constants."""
    from ledger.aggregates import deal
    from ledger.projections import attention

    assert tuple(i18n.LABELS["stage"]) == deal.STAGES
    assert tuple(i18n.LABELS["review"]) == deal.REVIEWS
    assert tuple(i18n.LABELS["deny"]) == deal.DENY_REASONS
    assert tuple(i18n.LABELS["billing"]) == deal.BILLING_OPTIONS
    assert set(i18n.LABELS["attention"]) == set(attention.CODES)
    assert i18n.negotiate("de;q=0.5, fr;q=0.9, fi;q=oops, en;q=NaN, fi;q=inf") == "fr" and i18n.negotiate("xx") == "en"
