"""The HTTP API: an ASGI application (FastAPI) on the same service layer as
the CLI. Identity comes from a bearer token, never from the request; the
command registry and the query table give the routes and their schemas.

Concurrency: each worker process holds ONE `Ledger` (its connections, its
aggregate cache and its read-model runner are not thread-safe) and a lock;
every request that touches it holds the lock, so a process answers one
request at a time and the thread pool only queues them. Parallelism comes
from worker processes (`ledger serve --workers N`, PostgreSQL), which share
one ledger through the store's optimistic concurrency like CLI processes do.
A pool of Ledgers per process would buy little under the GIL and would
multiply caches and connections."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import authority
from ..aggregates import Refused
from ..application import Result
from ..commands.models import MAX_LINE_BYTES, Malformed, _one_line, one_line, parse_line
from ..db import Unavailable, redact
from ..render import dump
from ..service import Ledger
from ..tokens import Unauthorized, authenticate
from . import schemas
from .routes import QUERIES, Query

PREFIX = "/api/v1"
MAX_BODY_BYTES = MAX_LINE_BYTES  # one command line, as `submit` takes it
MAX_JSON_DEPTH = 32  # an envelope needs 3; deeper is an attack, refused before parsing
PROBLEM = "application/problem+json"
log = logging.getLogger("ledger.access")


class TooLarge(Exception):
    pass


class Service:
    """One worker's ledger, opened on first use and reopened after a database
    failure, behind a lock (see the module docstring)."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.lock = threading.Lock()
        self._ledger: Ledger | None = None

    @contextmanager
    def ledger(self, actor: authority.Actor | None = None) -> Iterator[Ledger]:
        with self.lock:
            if self._ledger is None:
                self._ledger = Ledger(self.url, "system")
            ledger = self._ledger
            ledger.actor = actor or authority.Actor("system")
            try:
                yield ledger
            except (Unavailable, OSError) as e:
                self._drop()
                raise Unavailable(str(e)) from None
            except Exception as e:
                if _is_database_error(e):
                    self._drop()
                    raise Unavailable(f"database error: {redact(str(e)).splitlines()[0] if str(e) else ''}") from None
                raise

    def _drop(self) -> None:
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            ledger.close()

    def close(self) -> None:
        with self.lock:
            self._drop()


def _is_database_error(e: Exception) -> bool:
    import sqlite3

    import psycopg
    import psycopg_pool
    from eventsourcing.persistence import PersistenceError

    return isinstance(e, (sqlite3.Error, PersistenceError, psycopg.Error, psycopg_pool.PoolTimeout))


# -- responses -----------------------------------------------------------------------
def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    """An RFC 9457 problem details response; `detail` is one bounded line."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": one_line(detail)}
    return Response(json.dumps(body, ensure_ascii=False), status, headers, media_type=PROBLEM)


def answer(value: Any, status: int = 200) -> Response:
    """The CLI's `--json` rendering of a value, as the body."""
    return Response(dump(value), status, media_type="application/json")


RESULT_STATUS = {"applied": 200, "duplicate": 200, "refused": 409, "conflict": 409, "malformed": 422}
TITLES = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
          413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
          500: "Internal Server Error", 503: "Service Unavailable"}


def _problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"description": TITLES[c], "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for c in codes}


# -- the application -------------------------------------------------------------------
def create_app(url: str | None = None) -> FastAPI:
    """The API over the ledger at `url` (default LEDGER_DATABASE_URL)."""
    service = Service(url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        # Shutdown: uvicorn has let in-flight requests finish (each command is
        # one transaction, so none is half-written); close the connections.
        await run_in_threadpool(service.close)

    app = FastAPI(title="partner-ledger API", version="1", openapi_url=f"{PREFIX}/openapi.json",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.service = service

    async def authenticated(request: Request) -> authority.Actor:
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer":
            secret = ""

        def check() -> authority.Actor:
            with service.ledger() as ledger:
                return authenticate(ledger, secret.strip())

        actor = await run_in_threadpool(check)
        request.state.token = actor.token
        request.state.actor = str(actor)
        return actor

    # -- commands ----------------------------------------------------------------------
    @app.post(f"{PREFIX}/commands", summary="Submit one command (a `submit` line)", tags=["commands"],
              responses={200: {"model": schemas.Result, "description": "applied or duplicate"},
                         409: {"model": schemas.Result, "description": "refused or conflict"},
                         422: {"model": schemas.Result, "description": "malformed"},
                         **_problem_responses(401, 403, 413, 503)},
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": {"$ref": "#/components/schemas/CommandEnvelope"}}}}})
    async def post_command(request: Request) -> Response:
        actor = await authenticated(request)
        raw = await _body(request)
        cmd: Any
        depth = json_depth(raw, MAX_JSON_DEPTH)
        if depth > MAX_JSON_DEPTH:
            cmd = Malformed(f"the command is nested more than {MAX_JSON_DEPTH} levels deep")
        else:
            try:
                cmd = parse_line(raw)
            except Malformed as e:
                cmd = e
        if isinstance(cmd, Malformed):
            return answer(Result(1, None, None, "malformed", str(cmd)).as_dict(), 422)
        denied = forbidden_before(actor, cmd)
        if denied is not None:
            return problem(403, TITLES[403], denied)

        def run() -> Any:
            with service.ledger(actor) as ledger:
                return ledger.submit([(1, cmd)])[0]

        result = await run_in_threadpool(run)
        if result.status == "refused" and result.forbidden:
            return problem(403, "Forbidden", result.message or "forbidden")
        return answer(result.as_dict(), RESULT_STATUS.get(result.status, 409))

    # -- queries -----------------------------------------------------------------------
    for query in QUERIES:
        for suffix, (media, render) in query.downloads.items():
            _add_query(app, query, service, authenticated, f"{query.path}.{suffix}", media, render)
        _add_query(app, query, service, authenticated, query.path, None, None)

    # -- health ------------------------------------------------------------------------
    @app.get("/healthz", summary="200 when the database answers", tags=["health"],
             responses={200: {"model": schemas.Health}, **_problem_responses(503)})
    async def healthz() -> Response:
        def ping() -> None:
            with service.ledger() as ledger:
                ledger.sql.one("SELECT 1")

        await run_in_threadpool(ping)
        return answer({"status": "ok"})

    _install_errors(app)
    _install_openapi(app)
    app.middleware("http")(access_log)
    return app


def forbidden_before(actor: authority.Actor, cmd: Any) -> str | None:
    """Why the token's actor may not submit this command at all (the
    envelope's actor, the command type), settled before anything is
    recorded: a 403 writes nothing. None: the ledger decides the rest."""
    try:
        on_behalf = authority.Actor.parse(cmd.actor) if cmd.actor else actor
    except ValueError:
        if actor.is_system:
            return None  # the ledger refuses an unknown actor (409), as `submit` does
        return f"{actor} may not submit commands as another actor; only system may"
    try:
        authority.may_act_for(actor, on_behalf)
        authority.may_submit(on_behalf, cmd.type)
    except authority.Forbidden as e:
        return str(e)
    return None


def _add_query(app: FastAPI, query: Query, service: Service, authenticated: Callable[..., Any], path: str,
               media: str | None, render: Callable[[Any], str | bytes] | None) -> None:
    path_fields = {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
    for seg in path.split("/"):
        if "}." in seg:
            path_fields.add(seg[1:seg.index("}")])

    async def endpoint(request: Request) -> Response:
        actor = await authenticated(request)
        values: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            if key in values:
                return problem(422, TITLES[422], f"{key}: given more than once")
            values[key] = value
        values.update(request.path_params)
        try:
            params = query.params.model_validate(values)
        except ValidationError as e:
            return problem(422, TITLES[422], _one_line(e))

        def run() -> Any:
            with service.ledger(actor) as ledger:
                return query.ask(ledger, params)

        value = await run_in_threadpool(run)
        if render is not None:
            return Response(render(value), media_type=media)
        return answer(value)

    responses: dict[int | str, dict[str, Any]] = {200: {"model": query.answer, "description": "the answer"}}
    if media is not None:
        responses = {200: {"description": "the answer as a download", "content": {media.split(";")[0]: {
            "schema": {"type": "string"}}}}}
    responses.update(_problem_responses(401, 403, 409, 422, 503))
    app.add_api_route(
        PREFIX + path, endpoint, methods=["GET"], summary=query.summary, tags=["queries"],
        responses=responses, openapi_extra={"parameters": _parameters(query.params, path_fields)},
        name=PREFIX + path,
    )


def _parameters(model: type[Any], in_path: set[str]) -> list[dict[str, Any]]:
    """OpenAPI parameters from a params model: path fields in the path, the rest in the query."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        where = "path" if name in in_path else "query"
        prop = {k: v for k, v in prop.items() if k not in ("title", "default")}
        if "anyOf" in prop:  # `X | None`: optional means absent, not null
            options = [o for o in prop.pop("anyOf") if o.get("type") != "null"]
            prop.update(options[0] if len(options) == 1 else {"anyOf": options})
        out.append({"name": name, "in": where, "required": where == "path" or name in required,
                    "schema": prop, **({"description": prop["description"]} if "description" in prop else {})})
    return out


async def _body(request: Request) -> bytes:
    """The request body, refused (413) past MAX_BODY_BYTES without reading on."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise TooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def json_depth(raw: bytes, limit: int) -> int:
    """How deeply `raw` nests JSON arrays and objects (outside strings), or
    limit + 1 as soon as it is deeper: decided before any parser recurses."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return limit + 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(Unauthorized)
    async def unauthorized(_: Request, e: Unauthorized) -> Response:
        return problem(401, TITLES[401], str(e), {"WWW-Authenticate": 'Bearer realm="ledger"'})

    @app.exception_handler(authority.Forbidden)
    async def forbidden(_: Request, e: authority.Forbidden) -> Response:
        return problem(403, TITLES[403], str(e))

    @app.exception_handler(Refused)
    async def refused(_: Request, e: Refused) -> Response:
        return problem(409, TITLES[409], str(e))

    @app.exception_handler(TooLarge)
    async def too_large(_: Request, e: TooLarge) -> Response:
        return problem(413, TITLES[413], f"the body is larger than {MAX_BODY_BYTES} bytes")

    @app.exception_handler(Unavailable)
    async def unavailable(_: Request, e: Unavailable) -> Response:
        _log_error("database unavailable", e)
        return problem(503, TITLES[503], "the database is unavailable; try again")

    @app.exception_handler(ValueError)  # also Malformed and KeyError's kin from the service layer
    async def bad_value(_: Request, e: ValueError) -> Response:
        return problem(422, TITLES[422], str(e) or type(e).__name__)

    @app.exception_handler(KeyError)
    async def not_found(_: Request, e: KeyError) -> Response:
        return problem(422, TITLES[422], str(e.args[0]) if e.args else "not found")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> Response:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return problem(422, TITLES[422], f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> Response:
        return problem(e.status_code, TITLES.get(e.status_code, "Error"), str(e.detail), getattr(e, "headers", None))


def _install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            doc = get_openapi(title=app.title, version=app.version, routes=app.routes,
                              description="The partner ledger's HTTP API: `Authorization: Bearer <token>` "
                                          "(from `ledger token issue`) on every route but /healthz and this one.")
            components = doc.setdefault("components", {})
            found = schemas.envelope_schema()
            schemas_ = components.setdefault("schemas", {})
            schemas_.update(found.pop("$defs", {}))
            schemas_["CommandEnvelope"] = found
            schemas_["Problem"] = schemas.Problem.model_json_schema()
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path, item in doc["paths"].items():
                if path.startswith(PREFIX) and path != f"{PREFIX}/openapi.json":
                    for op in item.values():
                        op["security"] = [{"bearer": []}]
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# -- access log ----------------------------------------------------------------------------
async def access_log(request: Request, call_next: Callable[[Request], Any]) -> Response:
    """One JSON line per request on stderr: time, method, path (no query
    string), status, milliseconds, token name and actor; never a secret. An
    unexpected error becomes a 500 problem without a trace."""
    started = time.perf_counter()
    try:
        response = await call_next(request)
    except Exception as e:  # noqa: BLE001 - the last line of defence: no stack trace leaves
        _log_error("internal error", e)
        response = problem(500, TITLES[500], "internal error; the ledger is unchanged by a failed request")
    log.info(json.dumps({
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "method": request.method,
        "path": request.url.path[:300], "status": response.status_code,
        "ms": round((time.perf_counter() - started) * 1000, 2),
        "token": getattr(request.state, "token", None), "actor": getattr(request.state, "actor", None),
        "client": request.client.host if request.client else None,
    }))
    return response


def _log_error(what: str, e: BaseException) -> None:
    text = redact(str(e)).splitlines()[0] if str(e) else ""
    log.error(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "error": what,
                          "type": type(e).__name__, "message": one_line(text, 200)}))
