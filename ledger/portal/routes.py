"""The portal's pages: server-rendered HTML on the same service layer as the
CLI and the API (`Ledger` queries and commands; the ledger decides every
rule, authority included). Paths and form fields: INTERFACE.md, "Portal".

Every page resolves, in order: the session (signed cookie), the language
(`?lang=` kept in the session, else Accept-Language), and the actor (the
session's token, checked against the ledger on every request, so a revoked
token signs its sessions out). Every POST carries the session's CSRF token."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from .. import authority
from ..aggregates import NotFound, Refused
from ..aggregates.deal import DENY_REASONS, STAGES
from ..api.service import Service
from ..commands.models import Malformed
from ..projections.overview import FILTERS  # the CLI's and API's `--filter` names
from ..timeline import today
from ..tokens import Unauthorized, authenticate, authenticate_digest, digest
from . import i18n
from .refusals import explain
from .session import CSRF_FIELD, Sessions, csrf_ok, session_secret

MONTH = r"(?!0000)\d{4}-(0[1-9]|1[0-2])"  # a calendar month (there is no year 0)
REQUEST_EXTENSION = "Please add the 30-day trial extension to this customer's trial account."


@lru_cache(maxsize=None)
def environment(lang: str) -> Environment:
    """The templates with `lang`'s catalog installed (`_`, `ngettext`)."""
    env = Environment(loader=PackageLoader("ledger.portal", "templates"),
                      autoescape=select_autoescape(["html"]), extensions=["jinja2.ext.i18n"],
                      trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env


@dataclass
class Visit:
    """One request as the portal sees it: session, language, actor (None: signed out)."""

    request: Request
    session: dict[str, Any]
    lang: str
    actor: authority.Actor | None

    @property
    def formats(self) -> i18n.Formats:
        return i18n.Formats(self.lang)

    def gettext(self, message: str) -> str:
        return i18n.translations(self.lang).gettext(message)

    def lang_link(self, lang: str) -> str:
        params = dict(self.request.query_params)
        params["lang"] = lang
        return f"{self.request.url.path}?{urlencode(params)}"


class Portal:
    def __init__(self, service: Service, sessions: Sessions) -> None:
        self.service = service
        self.sessions = sessions

    # -- plumbing ----------------------------------------------------------------------
    async def visit(self, request: Request) -> Visit:
        session = self.sessions.load(request)
        wanted = request.query_params.get("lang")
        if wanted in i18n.LANGUAGES:
            session["lang"] = wanted
        lang = session.get("lang") if session.get("lang") in i18n.LANGUAGES else None
        lang = lang or i18n.negotiate(request.headers.get("accept-language"))
        actor = None
        if isinstance(session.get("token"), str):
            actor = await self.actor_of(lambda ledger: authenticate_digest(ledger, session["token"]))
            if actor is None:
                session.pop("token", None)
            else:
                request.state.token, request.state.actor = actor.token, str(actor)  # for the access log
        return Visit(request, session, lang, actor)

    async def actor_of(self, check: Callable[[Any], authority.Actor]) -> authority.Actor | None:
        """The actor `check(ledger)` authenticates, or None for a token unknown or revoked."""
        def run() -> authority.Actor | None:
            try:
                with self.service.ledger() as ledger:
                    return check(ledger)
            except Unauthorized:
                return None

        return await run_in_threadpool(run)

    def page(self, v: Visit, template: str, status: int = 200, **context: Any) -> Response:
        env = environment(v.lang)
        html = env.get_template(template).render(
            v=v, lang=v.lang, fmt=v.formats, actor=v.actor, csrf=v.session[CSRF_FIELD], languages=i18n.NAMES,
            labels=i18n.LABELS, path=v.request.url.path, **context)
        response = HTMLResponse(html, status)
        self.done(v, response)
        return response

    def done(self, v: Visit, response: Response) -> None:
        response.headers["Cache-Control"] = "no-store"  # pages show one partner's figures
        self.sessions.save(v.request, response, v.session)

    def redirect(self, v: Visit, to: str) -> Response:
        response = RedirectResponse(to, 303)
        self.done(v, response)
        return response

    def error(self, v: Visit, status: int) -> Response:
        messages = {403: v.gettext("This page belongs to someone else."),
                    404: v.gettext("There is no such page or record here."),
                    400: v.gettext("The form had expired. Please try again.")}
        return self.page(v, "error.html", status, code=status, message=messages[status])

    async def ask(self, v: Visit, question: Callable[[Any], Any]) -> Any:
        """Run `question(ledger)` as the visit's actor, in the worker thread pool."""
        def run() -> Any:
            with self.service.ledger(v.actor) as ledger:
                return question(ledger)

        return await run_in_threadpool(run)

    async def form(self, v: Visit) -> dict[str, str] | None:
        """The posted form's fields, or None when its CSRF token is missing or wrong."""
        form = await v.request.form()
        fields = {k: str(val) for k, val in form.items()}
        return fields if csrf_ok(v.session, fields.pop(CSRF_FIELD, None)) else None

    async def command(self, v: Visit, type_: str, data: dict[str, Any], command_id: str | None = None) -> str | None:
        """Submit one command as the visit's actor; returns None when applied
        (or a duplicate of an applied one), else the refusal in the visit's
        language. A note on an applied command (a deal denied at once) is
        returned too, translated: it is what the partner needs to know."""
        envelope = {"id": command_id or f"portal-{uuid.uuid4().hex}", "type": type_, "data": data}

        def run() -> tuple[str | None, dict[str, Any], str] | None:  # (code, facts, English reason)
            with self.service.ledger(v.actor) as ledger:
                try:
                    result = ledger.command(envelope)
                    if type_ == "register_deal" and result.status == "applied" and result.message:
                        return result.code, result.facts, result.message
                    return None
                except (Refused, Malformed) as e:
                    if isinstance(e, authority.Forbidden):
                        raise
                    return e.code, e.facts, str(e) or "refused"

        said = await run_in_threadpool(run)
        return explain(*said, v.gettext, v.formats) if said else None

    def endpoint(self, handler: Page, signed_in: bool) -> Callable[[Request], Awaitable[Response]]:
        """`handler(portal, visit, **path params)` as a route endpoint. A POST's
        CSRF token is checked first (400 when missing or wrong) and its fields
        passed as `fields`. On a signed-in page a signed-out visitor goes to
        /login; a record the actor may not see answers 404 (none, or another
        partner's: never said apart), an action beyond its authority 403."""
        async def endpoint(request: Request) -> Response:
            v = await self.visit(request)
            if signed_in and v.actor is None:
                return self.redirect(v, "/login")
            posted: dict[str, Any] = {}
            if request.method == "POST":
                fields = await self.form(v)
                if fields is None:
                    return self.error(v, 400)
                posted["fields"] = fields
            try:
                return await handler(self, v, **request.path_params, **posted)
            except NotFound:
                return self.error(v, 404)
            except authority.Forbidden:
                return self.error(v, 403)

        endpoint.__name__ = handler.__name__
        return endpoint


Page = Callable[..., Awaitable[Response]]
PAGES: list[tuple[str, str, Page, bool]] = []  # path, method, handler, signed in only


def page(path: str, method: str = "GET", signed_in: bool = True) -> Callable[[Page], Page]:
    """Declare `handler(portal, visit, **path params)` as the portal's page at
    `path` (POST handlers also get `fields`, the posted form, CSRF-checked)."""
    def add(handler: Page) -> Page:
        PAGES.append((path, method, handler, signed_in))
        return handler
    return add


# -- signing in and out ----------------------------------------------------------------
@page("/login", signed_in=False)
async def login_form(portal: Portal, v: Visit) -> Response:
    return portal.page(v, "login.html")


@page("/login", "POST", signed_in=False)
async def login(portal: Portal, v: Visit, fields: dict[str, str]) -> Response:
    secret = fields.get("token", "").strip()
    if await portal.actor_of(lambda ledger: authenticate(ledger, secret)) is None:
        return portal.page(v, "login.html", 401, failed=True)
    v.session = Sessions.new(token=digest(secret), lang=v.session.get("lang"))
    return portal.redirect(v, "/")


@page("/logout", signed_in=False)
async def logout_form(portal: Portal, v: Visit) -> Response:
    return portal.page(v, "logout.html")


@page("/logout", "POST", signed_in=False)
async def logout(portal: Portal, v: Visit, fields: dict[str, str]) -> Response:
    v.session = Sessions.new(lang=v.session.get("lang"))
    return portal.redirect(v, "/login")


# -- the customer overview -------------------------------------------------------------
@page("/")
async def overview(portal: Portal, v: Visit) -> Response:
    chosen = v.request.query_params.get("filter") or None
    if chosen not in (None, *FILTERS):
        return portal.error(v, 404)
    day = today()
    rows, items = await portal.ask(v, lambda ledger: (ledger.overview(None, chosen, day), ledger.attention(None, day)))
    return portal.page(v, "overview.html", rows=rows, items=items, chosen=chosen, filters=FILTERS)


# -- deals -----------------------------------------------------------------------------
@page("/deals")
async def deals(portal: Portal, v: Visit) -> Response:
    rows = await portal.ask(v, lambda ledger: ledger.deals(None, None, None, today()))
    stages: dict[str, list[Any]] = {}
    for row in rows:
        stages.setdefault(row["stage"], []).append(row)
    return portal.page(v, "deals.html", stages=sorted(stages.items(), key=lambda s: STAGES.index(s[0])))


@page("/deals/new")
async def new_deal(portal: Portal, v: Visit) -> Response:
    return portal.page(v, "deal_new.html", values={}, command_id=uuid.uuid4().hex, refusal=None)


@page("/deals/new", "POST")
async def register_deal(portal: Portal, v: Visit, fields: dict[str, str]) -> Response:
    if v.actor is None or v.actor.partner is None:
        raise authority.Forbidden("only a partner registers its deals here")
    command_id = fields.get("command_id") or uuid.uuid4().hex
    deal_id = "d-" + command_id[:12]  # the form's id: sending it twice registers one deal
    values = {k: fields.get(k, "").strip() for k in ("customer_name", "contact_name", "customer_email", "note")}
    data = {"deal": deal_id, "partner": v.actor.partner, **values}
    if not data["note"]:
        del data["note"]
    refusal = await portal.command(v, "register_deal", data, f"portal-{command_id}")
    if refusal is None:
        return portal.redirect(v, f"/deals/{deal_id}")
    return portal.page(v, "deal_new.html", 409, values=values, command_id=uuid.uuid4().hex, refusal=refusal)


@page("/deals/{deal}")
async def deal_card(portal: Portal, v: Visit, deal: str, refusal: str | None = None, status: int = 200) -> Response:
    card = await portal.ask(v, lambda ledger: ledger.deal_card(deal, today()))
    requested = any(n["text"] == REQUEST_EXTENSION for n in card["notes"])
    return portal.page(v, "deal.html", status, card=card, refusal=refusal, requested=requested,
                       request_text=REQUEST_EXTENSION, reasons=DENY_REASONS)


async def deal_action(portal: Portal, v: Visit, deal: str, type_: str, data: dict[str, Any]) -> Response:
    """Submit `type_` on `deal`; back to its card, which shows the refusal if any."""
    refusal = await portal.command(v, type_, {"deal": deal, **data})
    if refusal is None:
        return portal.redirect(v, f"/deals/{deal}")
    return await deal_card(portal, v, deal, refusal, 409)


@page("/deals/{deal}/notes", "POST")
async def add_note(portal: Portal, v: Visit, deal: str, fields: dict[str, str]) -> Response:
    return await deal_action(portal, v, deal, "add_deal_note", {"text": fields.get("text", "").strip()})


@page("/deals/{deal}/extension", "POST")
async def request_extension(portal: Portal, v: Visit, deal: str, fields: dict[str, str]) -> Response:
    # Seed: "Leave a note to the deal card ... if you would like the 30
    # days trial extension": the request is a note the vendor reads.
    return await deal_action(portal, v, deal, "add_deal_note", {"text": REQUEST_EXTENSION})


@page("/deals/{deal}/accept", "POST")
async def accept(portal: Portal, v: Visit, deal: str, fields: dict[str, str]) -> Response:
    return await review_action(portal, v, deal, "accept_deal", {})


@page("/deals/{deal}/deny", "POST")
async def deny(portal: Portal, v: Visit, deal: str, fields: dict[str, str]) -> Response:
    return await review_action(portal, v, deal, "deny_deal", {"reason": fields.get("reason", "")})


async def review_action(portal: Portal, v: Visit, deal: str, type_: str, data: dict[str, Any]) -> Response:
    """Submit a review of `deal`; back to the review list, which shows the refusal if any."""
    refusal = await portal.command(v, type_, {"deal": deal, **data})
    if refusal is None:
        return portal.redirect(v, "/review")
    return await review(portal, v, refusal, 409)


# -- trials ----------------------------------------------------------------------------
@page("/trials")
async def trials(portal: Portal, v: Visit, refusal: str | None = None, values: dict[str, str] | None = None,
                 status: int = 200) -> Response:
    rows = await portal.ask(v, lambda ledger: ledger.trials(None, today()))
    return portal.page(v, "trials.html", status, rows=rows, refusal=refusal, values=values or {},
                       command_id=uuid.uuid4().hex)


@page("/trials", "POST")
async def start_trial(portal: Portal, v: Visit, fields: dict[str, str]) -> Response:
    if v.actor is None or v.actor.partner is None:
        raise authority.Forbidden("only a partner starts its trials here")
    command_id = fields.get("command_id") or uuid.uuid4().hex
    values = {k: fields.get(k, "").strip() for k in ("customer_name", "customer_email")}
    refusal = await portal.command(v, "start_trial", {"trial": "t-" + command_id[:12], "partner": v.actor.partner,
                                                      **values}, f"portal-{command_id}")
    if refusal is None:
        return portal.redirect(v, "/trials")
    return await trials(portal, v, refusal, values, 409)


@page("/trials/{trial}/extend", "POST")
async def extend_trial(portal: Portal, v: Visit, trial: str, fields: dict[str, str]) -> Response:
    refusal = await portal.command(v, "extend_trial", {"trial": trial})
    if refusal is None:
        return portal.redirect(v, "/trials")
    return await trials(portal, v, refusal, None, 409)


# -- statements ------------------------------------------------------------------------
@page("/statements")
async def statements(portal: Portal, v: Visit) -> Response:
    month = v.request.query_params.get("month") or today().strftime("%Y-%m")
    partner = v.request.query_params.get("partner")
    return portal.redirect(v, f"/statements/{month}" + (f"?{urlencode({'partner': partner})}" if partner else ""))


@page("/statements/{month}")
async def statement(portal: Portal, v: Visit, month: str) -> Response:
    from ..export import statement_csv, statement_xlsx_bytes

    month, _, suffix = month.partition(".")
    if not re.fullmatch(MONTH, month) or suffix not in ("", "csv", "xlsx"):
        return portal.error(v, 404)
    partner = v.request.query_params.get("partner") or None
    if v.actor is not None and v.actor.partner is None and partner is None:
        return portal.page(v, "statement_pick.html",
                           partners=await portal.ask(v, lambda ledger: ledger.partners(today())), month=month)
    st = await portal.ask(v, lambda ledger: ledger.statement(partner, month))
    if suffix:
        name = f"statement-{st['partner']}-{month}.{suffix}"
        body, media = ((statement_csv(st), "text/csv; charset=utf-8") if suffix == "csv" else
                       (statement_xlsx_bytes(st), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))
        response = Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})
        portal.done(v, response)
        return response
    year, m = int(month[:4]), int(month[5:])
    # No links beyond the calendar's first and last months.
    previous = None if (year, m) == (1, 1) else f"{year - (m == 1):04d}-{12 if m == 1 else m - 1:02d}"
    following = None if (year, m) == (9999, 12) else f"{year + (m == 12):04d}-{1 if m == 12 else m + 1:02d}"
    query = f"?{urlencode({'partner': partner})}" if partner else ""
    return portal.page(v, "statement.html", st=st, month=month, previous=previous, following=following,
                       query=query, this_month=today().strftime("%Y-%m"))


# -- the vendor manager ----------------------------------------------------------------
@page("/review")
async def review(portal: Portal, v: Visit, refusal: str | None = None, status: int = 200) -> Response:
    if v.actor is None or v.actor.partner is not None:
        raise authority.Forbidden("the deal review is the vendor's")
    rows = await portal.ask(v, lambda ledger: ledger.deals(None, None, "pending", today()))
    return portal.page(v, "review.html", status, rows=rows, reasons=DENY_REASONS, refusal=refusal)


@page("/partners")
async def partners(portal: Portal, v: Visit) -> Response:
    if v.actor is None or v.actor.partner is not None:
        raise authority.Forbidden("the partners' list is the vendor's")
    rows = await portal.ask(v, lambda ledger: ledger.partners(today()))
    return portal.page(v, "partners.html", rows=rows)


def install(app: FastAPI, service: Service) -> None:
    """Mount the portal's pages (`PAGES`) at `/` and its stylesheet at `/static` of `app`."""
    portal = Portal(service, Sessions(session_secret()))
    router = APIRouter(include_in_schema=False)
    app.mount("/static", StaticFiles(packages=[("ledger.portal", "static")]), name="static")
    for path, method, handler, signed in PAGES:
        router.add_api_route(path, portal.endpoint(handler, signed), methods=[method], response_class=HTMLResponse)
    app.include_router(router)
