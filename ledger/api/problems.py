"""What leaves the API besides answers: RFC 9457 problem details for every
error (one bounded line, never a trace), and one JSON access-log line per
request on stderr (token name and actor, never a secret)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import authority
from ..aggregates import NotFound, Refused
from ..commands.models import MAX_LINE_BYTES, one_line
from ..db import Unavailable, first_line
from ..render import dump
from ..tokens import Unauthorized

PROBLEM = "application/problem+json"
MAX_BODY_BYTES = MAX_LINE_BYTES  # one command line, as `submit` takes it
log = logging.getLogger("ledger.access")


class TooLarge(Exception):
    """A request body past MAX_BODY_BYTES (413)."""


# -- responses -----------------------------------------------------------------------
def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None,
            code: str | None = None) -> Response:
    """An RFC 9457 problem details response; `detail` is one bounded line;
    `code` (ledger.errors.CODES), when the refusal has one, is an extension member."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": one_line(detail)}
    if code is not None:
        body["code"] = code
    return Response(json.dumps(body, ensure_ascii=False), status, headers, media_type=PROBLEM)


def answer(value: Any, status: int = 200) -> Response:
    """The CLI's `--json` rendering of a value, as the body."""
    return Response(dump(value), status, media_type="application/json")


RESULT_STATUS = {"applied": 200, "duplicate": 200, "refused": 409, "conflict": 409, "malformed": 422}
TITLES = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
          413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
          500: "Internal Server Error", 503: "Service Unavailable"}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"description": TITLES[c], "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for c in codes}


def install_errors(app: FastAPI) -> None:
    @app.exception_handler(Unauthorized)
    async def unauthorized(_: Request, e: Unauthorized) -> Response:
        return problem(401, TITLES[401], str(e), {"WWW-Authenticate": 'Bearer realm="ledger"'})

    @app.exception_handler(authority.Forbidden)
    async def forbidden(_: Request, e: authority.Forbidden) -> Response:
        return problem(403, TITLES[403], str(e))

    @app.exception_handler(NotFound)  # a record the asker may not see: none, or another partner's
    async def no_such_record(_: Request, e: NotFound) -> Response:
        return problem(404, TITLES[404], str(e))

    @app.exception_handler(Refused)
    async def refused(_: Request, e: Refused) -> Response:
        return problem(409, TITLES[409], str(e), code=e.code)

    @app.exception_handler(TooLarge)
    async def too_large(_: Request, e: TooLarge) -> Response:
        return problem(413, TITLES[413], f"the body is larger than {MAX_BODY_BYTES} bytes")

    @app.exception_handler(Unavailable)
    async def unavailable(_: Request, e: Unavailable) -> Response:
        _log_error("database unavailable", e)
        return problem(503, TITLES[503], "the database is unavailable; try again")

    @app.exception_handler(ValueError)  # also Malformed
    async def bad_value(_: Request, e: ValueError) -> Response:
        return problem(422, TITLES[422], str(e) or type(e).__name__, code=getattr(e, "code", None))

    @app.exception_handler(KeyError)  # the service layer's "no such record"
    async def not_found(_: Request, e: KeyError) -> Response:
        return problem(404, TITLES[404], str(e.args[0]) if e.args else "not found")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> Response:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return problem(422, TITLES[422], f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> Response:
        return problem(e.status_code, TITLES.get(e.status_code, "Error"), str(e.detail), getattr(e, "headers", None))


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
    text = first_line(e)
    log.error(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "error": what,
                          "type": type(e).__name__, "message": one_line(text, 200)}))
