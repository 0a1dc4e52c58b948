"""The portal in a real browser: Debian's Chromium (launched by its path;
Playwright downloads nothing) against a real `ledger serve` subprocess, on
SQLite and PostgreSQL. One server per backend and one browser for the
module. Screenshots of every page in every language go to
build/screenshots/<backend>/ (git-ignored) for a reviewer to look at."""

from __future__ import annotations

import csv
import io
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .portal_seed import seed
from .test_api_server import Server

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

CHROMIUM = os.environ.get("LEDGER_TEST_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
REQUIRE_BROWSER = os.environ.get("CI") == "true" or os.environ.get("LEDGER_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if REQUIRE_BROWSER:
            pytest.fail(f"Chromium is required in CI but {CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def portal(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           pg_database: str | None) -> Iterator[dict[str, Any]]:
    """A seeded ledger served by `ledger serve` on one backend."""
    folder = tmp_path_factory.mktemp(f"portal-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'ledger.db'}"
    else:
        if pg_database is None:
            pytest.skip("PostgreSQL not reachable (set LEDGER_REQUIRE_POSTGRES=1 to make this a failure)")
        import psycopg

        schema = f"portal_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = f"{pg_database}?schema={schema}"
    data = seed(url)
    server = Server(url, folder / "serve.log")
    shots = SHOTS / request.param
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    try:
        yield {**data, "base": server.base, "backend": request.param, "shots": shots}
    finally:
        server.stop()
        if request.param == "postgres":
            import psycopg

            with psycopg.connect(pg_database, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def page(browser: Browser, portal: dict[str, Any]) -> Iterator[Page]:
    context = browser.new_context(base_url=portal["base"], locale="en-GB", accept_downloads=True)
    p = context.new_page()
    p.set_default_timeout(15_000)
    yield p
    context.close()


def sign_in(page: Page, token: str, lang: str | None = None) -> None:
    page.goto("/login" + (f"?lang={lang}" if lang else ""))
    page.get_by_label({"fi": "Käyttöavain", "de": "Zugangstoken", "fr": "Jeton d'accès"}.get(lang or "", "Access token")
                      ).fill(token)
    page.keyboard.press("Enter")  # the form submits from the keyboard
    page.wait_for_url("**/")


def shot(page: Page, portal: dict[str, Any], name: str) -> None:
    page.screenshot(path=str(portal["shots"] / f"{name}.png"), full_page=True)


def test_partner_signs_in_with_the_keyboard_and_filters_the_overview(page: Page, portal: dict[str, Any]) -> None:
    page.goto("/")
    assert page.url.endswith("/login")
    page.keyboard.press("Tab")  # skip link
    page.keyboard.press("Tab")  # the first language link ...
    page.get_by_label("Access token").focus()
    page.keyboard.type(portal["tokens"]["acme"])
    page.keyboard.press("Enter")
    page.wait_for_url("**/")
    expect(page.locator("h1")).to_have_text("Customer overview")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(3)  # Maksava Oy (active), Kokeilu Oy (trial), Vanha Oy (closed)

    page.get_by_role("link", name="Trials", exact=True).last.click()
    page.wait_for_url("**/?filter=trial")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Kokeilu Oy")

    page.goto("/?filter=active")
    expect(rows).to_have_count(1)
    row = rows.first
    for text in ("Maksava Oy", "ISO 27001", "40 %", "12", "30"):
        expect(row).to_contain_text(text)

    page.goto("/?filter=closed")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Vanha Oy")

    page.goto("/?filter=attention")
    expect(page.locator("table")).to_contain_text("Kokeilu Oy")
    expect(page.locator(".attention")).to_contain_text("The trial ends soon.")
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_partner_registers_a_deal_and_sees_a_duplicate_refused_in_finnish(page: Page, portal: dict[str, Any]) -> None:
    sign_in(page, portal["tokens"]["acme"], "fi")
    page.goto("/deals")
    expect(page.locator("html")).to_have_attribute("lang", "fi")
    page.get_by_role("link", name="Rekisteröi kauppa").click()
    page.get_by_label("Asiakasyrityksen nimi").fill("Kilpailija Oy")
    page.get_by_label("Yhteyshenkilö", exact=True).fill("Kalle Kilpailija")
    page.get_by_label("Yhteyshenkilön sähköpostiosoite").fill("kalle@rival.fi")
    page.get_by_label("Muistiinpano (vapaaehtoinen)").fill("Tapasimme messuilla.")
    page.get_by_role("button", name="Rekisteröi").click()
    refusal = page.get_by_role("alert")
    expect(refusal).to_contain_text("hylättiin heti päällekkäisenä")
    expect(refusal).to_contain_text("toinen kumppani suojaa tätä asiakasta")
    expect(page.get_by_label("Asiakasyrityksen nimi")).to_have_value("Kilpailija Oy")  # the values are kept
    expect(page.get_by_label("Yhteyshenkilön sähköpostiosoite")).to_have_value("kalle@rival.fi")
    shot(page, portal, "fi-deal-new-refused")

    # Its own customer again: the ledger refuses, in Finnish, naming the protecting deal.
    page.get_by_label("Yhteyshenkilön sähköpostiosoite").fill("someone@esimerkki.fi")
    page.get_by_role("button", name="Rekisteröi").click()
    expect(page.get_by_role("alert")).to_contain_text("on jo suojattu kaupallasi d-a1")

    # Free mail is refused too.
    page.get_by_label("Yhteyshenkilön sähköpostiosoite").fill("someone@gmail.com")
    page.get_by_role("button", name="Rekisteröi").click()
    expect(page.get_by_role("alert")).to_contain_text("ilmaisen sähköpostipalvelun")

    # A new customer is registered: its card, pending review.
    page.get_by_label("Asiakasyrityksen nimi").fill("Uusi Asiakas Oy")
    page.get_by_label("Yhteyshenkilön sähköpostiosoite").fill("ulla@uusiasiakas.fi")
    page.get_by_role("button", name="Rekisteröi").click()
    page.wait_for_url("**/deals/d-*")
    expect(page.locator("h1")).to_contain_text("Uusi Asiakas Oy")
    expect(page.locator(".card")).to_contain_text("Odottaa tarkastusta")
    expect(page.locator(".notes")).to_contain_text("Tapasimme messuilla.")

    # Request the 30-day extension, and add a note.
    page.get_by_role("button", name="Pyydä jatkoa 30 päivään").click()
    expect(page.locator(".done")).to_have_text("Kokeilun jatkoa 30 päivään on pyydetty.")
    expect(page.locator(".notes")).to_contain_text("Lisätkää tämän asiakkaan kokeilutilille 30 päivän jatko.")
    page.get_by_label("Lisää muistiinpano").fill("Asiakas haluaa esittelyn.")
    page.get_by_role("button", name="Lisää", exact=True).click()
    expect(page.locator(".notes li")).to_have_count(3)
    shot(page, portal, "fi-deal-card-extension-requested")

    page.goto("/deals")
    expect(page.locator("main")).to_contain_text("Uusi Asiakas Oy")
    expect(page.locator("main")).to_contain_text("Hylätty: Päällekkäinen")  # the refused duplicate is listed, denied


def test_partner_extends_a_trial_once(page: Page, portal: dict[str, Any]) -> None:
    sign_in(page, portal["tokens"]["acme"], "de")
    page.goto("/trials")
    row = page.locator("tr", has_text="Kokeilu Oy")
    row.get_by_role("button", name="Testphase von Kokeilu Oy auf 30 Tage verlängern").click()
    expect(page.locator("tr", has_text="Kokeilu Oy")).to_contain_text("Auf 30 Tage verlängert")
    expect(page.locator("tr", has_text="Vanha Oy")).to_contain_text("Beendet")

    page.get_by_label("Name des Kundenunternehmens").fill("Zweite Probe GmbH")
    page.get_by_label("E-Mail-Adresse des Kunden").fill("z@rival.fi")
    page.get_by_role("button", name="Testphase starten").click()
    expect(page.get_by_role("alert")).to_contain_text("Ein anderer Partner schützt rival.fi bis")


def test_partner_downloads_a_statement(page: Page, portal: dict[str, Any]) -> None:
    sign_in(page, portal["tokens"]["acme"], "fr")
    page.get_by_role("link", name="Relevés de commissions").click()
    page.get_by_label("Mois", exact=True).fill(portal["month"])
    page.get_by_role("button", name="Afficher").click()
    page.wait_for_url(f"**/statements/{portal['month']}")
    lines = page.locator("table").first
    expect(lines).to_contain_text("Maksava Oy")
    expect(lines).to_contain_text("1\u202f234,56\u00a0€")
    expect(lines).to_contain_text("246,91\u00a0€")  # 20 % commission, rounded half up
    expect(page.locator("table.totals")).to_contain_text("EUR")

    with page.expect_download() as d:
        page.get_by_role("link", name="Fichier CSV").click()
    text = Path(d.value.path()).read_text("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert any(r.get("amount") == "1234.56" and r.get("commission") == "246.91" for r in rows), text[:500]
    assert d.value.suggested_filename == f"statement-acme-{portal['month']}.csv"

    with page.expect_download() as d:
        page.get_by_role("link", name="Classeur Excel").click()
    data = Path(d.value.path()).read_bytes()
    assert data[:2] == b"PK"  # a zip: an xlsx workbook
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert "xl/workbook.xml" in z.namelist()


def test_another_partners_deal_in_the_url_is_refused(page: Page, portal: dict[str, Any]) -> None:
    sign_in(page, portal["tokens"]["acme"])
    response = page.goto("/deals/d-b1")
    assert response is not None and response.status in (403, 404)
    expect(page.locator("main")).not_to_contain_text("Rival")
    response = page.goto("/statements/2026-01?partner=beta")
    assert response is not None and response.status == 403
    # A POST without the CSRF token is refused before anything happens.
    answer = page.request.post(portal["base"] + "/deals/d-a1/notes", form={"text": "no token"})
    assert answer.status == 400


def test_the_manager_accepts_a_pending_deal(page: Page, portal: dict[str, Any]) -> None:
    sign_in(page, portal["tokens"]["manager"])
    page.get_by_role("link", name="Deal review").click()
    item = page.locator(".review li", has_text="d-a1")
    expect(item).to_contain_text("Esimerkki Oy")
    shot(page, portal, "en-review")
    item.get_by_role("button", name="Accept deal d-a1").click()
    page.wait_for_url("**/review")
    expect(page.locator(".review li", has_text="d-a1")).to_have_count(0)
    page.goto("/deals/d-a1")
    expect(page.locator(".card")).to_contain_text("Accepted")
    page.goto("/partners")
    expect(page.locator("tr", has_text="acme")).to_contain_text("20%")
    expect(page.locator("tr", has_text="beta")).to_contain_text("15%")
    shot(page, portal, "en-partners")


def test_sign_out(page: Page, portal: dict[str, Any]) -> None:
    sign_in(page, portal["tokens"]["acme"], "fi")
    page.get_by_role("button", name="Kirjaudu ulos").click()
    page.wait_for_url("**/login")
    page.goto("/deals")
    assert page.url.endswith("/login")


PAGES = {"login": "/login", "overview": "/", "overview-attention": "/?filter=attention", "deals": "/deals",
         "deal-new": "/deals/new", "deal-card": "/deals/d-a2", "trials": "/trials",
         "statement": "/statements/{month}"}


@pytest.mark.parametrize("lang", ["en", "fi", "de", "fr"])
def test_every_page_in_every_language_and_at_360_px(browser: Browser, portal: dict[str, Any], lang: str) -> None:
    context = browser.new_context(base_url=portal["base"], viewport={"width": 360, "height": 740})
    page = context.new_page()
    try:
        page.goto(f"/login?lang={lang}")
        shot(page, portal, f"{lang}-login")
        sign_in(page, portal["tokens"]["acme"], lang)
        for name, path in PAGES.items():
            if name == "login":
                continue
            page.goto(path.format(month=portal["month"]))
            expect(page.locator("html")).to_have_attribute("lang", lang)
            # Readable at 360 px: the page itself never scrolls sideways (wide tables scroll in their box).
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, (name, width)
            shot(page, portal, f"{lang}-{name}")
    finally:
        context.close()
    manager = browser.new_context(base_url=portal["base"])
    page = manager.new_page()
    try:
        sign_in(page, portal["tokens"]["manager"], lang)
        for name in ("review", "partners"):
            page.goto(f"/{name}")
            expect(page.locator("html")).to_have_attribute("lang", lang)
            shot(page, portal, f"{lang}-manager-{name}")
    finally:
        manager.close()
