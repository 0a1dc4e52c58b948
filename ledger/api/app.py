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

from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from .. import authority
from ..application import Result
from ..commands.models import Malformed, _one_line, parse_line
from ..tokens import authenticate
from . import schemas
from .problems import (
    MAX_BODY_BYTES, RESULT_STATUS, TITLES, TooLarge, access_log, answer, install_errors, problem, problem_responses,
)
from .routes import QUERIES, Query
from .service import Service

PREFIX = "/api/v1"
MAX_JSON_DEPTH = 32  # an envelope needs 3; deeper is an attack, refused before parsing


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
                         **problem_responses(401, 403, 413, 503)},
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
            return answer(Result(1, cmd.id, cmd.type, "malformed", str(cmd), code=cmd.code).as_dict(), 422)
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
             responses={200: {"model": schemas.Health}, **problem_responses(503)})
    async def healthz() -> Response:
        def ping() -> None:
            with service.ledger() as ledger:
                ledger.sql.one("SELECT 1")

        await run_in_threadpool(ping)
        return answer({"status": "ok"})

    from ..portal.routes import install as install_portal

    install_portal(app, service)  # the partner portal's HTML pages at `/`
    install_errors(app)
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
    responses.update(problem_responses(401, 403, 404, 409, 422, 503))
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


