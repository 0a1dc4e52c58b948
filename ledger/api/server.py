"""`ledger serve`: the API on uvicorn, with JSON-lines logs on stderr and a
graceful shutdown (SIGTERM or Ctrl-C: stop accepting, let in-flight requests
finish, then close the database connections)."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from fastapi import FastAPI

from ..db import Database, redact
from ..errors import BadInput

GRACE_SECONDS = 30  # in-flight requests get this long to finish on shutdown


class JsonLines(logging.Formatter):
    """One JSON object per line; a message that is already JSON passes as is.
    Exceptions are reduced to their type: no stack trace reaches the log."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if message.startswith("{") and message.endswith("}"):
            return message
        out: dict[str, Any] = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
                               "level": record.levelname.lower(), "logger": record.name,
                               "message": redact(message)[:500]}
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = record.exc_info[0].__name__
        return json.dumps(out, ensure_ascii=False)


LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonLines}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        "ledger.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


def app_from_env() -> FastAPI:
    """The application factory each worker process calls (the database from LEDGER_DATABASE_URL)."""
    from .app import create_app

    return create_app(os.environ.get("LEDGER_DATABASE_URL"))


def serve(url: str | None, host: str, port: int, workers: int) -> None:
    """Serve the API until stopped. Raises BadInput for more than one
    worker on SQLite (one writer at a time: processes would only queue on its
    file lock; use PostgreSQL to scale out) and Unavailable when the database
    does not answer at start, ZoneMismatch when the read models were built in
    another business time zone (every query would refuse)."""
    import uvicorn

    from ..service import Ledger

    db = Database.from_url(url)
    if workers < 1:
        raise BadInput("--workers must be at least 1")
    if db.kind == "sqlite" and workers > 1:
        raise BadInput("--workers > 1 needs PostgreSQL: SQLite takes one writer at a time")
    with Ledger(db.url) as ledger:  # fails now, with exit 3, if the database does not answer (and creates it)
        ledger.runner.require_zone()  # ... and with exit 2 if no query could answer in this zone
    os.environ["LEDGER_DATABASE_URL"] = db.url  # the workers' factory reads it
    from ..portal.session import session_secret

    session_secret()  # drawn once here when not set, so every worker signs sessions alike
    uvicorn.run("ledger.api.server:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_config=LOG_CONFIG, access_log=False, server_header=False,
                timeout_graceful_shutdown=GRACE_SECONDS)
