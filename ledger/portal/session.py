"""The portal's session: a cookie signed with the session secret
(itsdangerous, HMAC-SHA1 over a timestamped JSON payload), holding the
signed-in token's SHA-256 digest (never its secret), the CSRF token and the
chosen language.

The secret is `LEDGER_SESSION_SECRET` when set (several servers behind one
address share it; sessions survive restarts). Otherwise `ledger serve` draws
a random one at start and hands it to its workers: sessions then end when
the server stops, and a partner signs in again with the token. Never a
constant in the code.

Cookie flags: HttpOnly (no script reads it), SameSite=Lax (not sent on
cross-site POSTs; links from e-mail still open the portal signed in), Secure
when the request came over HTTPS. Behind a proxy, uvicorn believes its
`X-Forwarded-Proto` only from the addresses in `FORWARDED_ALLOW_IPS`
(default 127.0.0.1), so a TLS-terminating proxy on the same host makes the
cookie Secure and a remote client cannot."""

from __future__ import annotations

import hmac
import os
import secrets
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "ledger_session"
MAX_AGE_SECONDS = 12 * 3600  # a working day; then sign in again
SECRET_ENV = "LEDGER_SESSION_SECRET"
CSRF_FIELD = "csrf"


def session_secret() -> str:
    """LEDGER_SESSION_SECRET, or a random secret kept in this process's
    environment so that worker processes started after it share it."""
    secret = os.environ.get(SECRET_ENV, "").strip()
    if not secret:
        secret = secrets.token_urlsafe(32)
        os.environ[SECRET_ENV] = secret
    return secret


class Sessions:
    """Reads and writes the signed session cookie."""

    def __init__(self, secret: str) -> None:
        self.signer = URLSafeTimedSerializer(secret, salt="ledger-portal-session")

    def load(self, request: Request) -> dict[str, Any]:
        """The request's session, or a new one (with a fresh CSRF token) when
        the cookie is missing, forged or older than MAX_AGE_SECONDS."""
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                data = self.signer.loads(raw, max_age=MAX_AGE_SECONDS)
                if isinstance(data, dict) and isinstance(data.get(CSRF_FIELD), str):
                    return data
            except BadSignature:
                pass
        return self.new()

    @staticmethod
    def new(**data: Any) -> dict[str, Any]:
        """A fresh session holding `data` and a new CSRF token (on signing in
        and out: nothing from before carries over but what is named)."""
        return {**data, CSRF_FIELD: secrets.token_urlsafe(24)}

    def save(self, request: Request, response: Response, data: dict[str, Any]) -> None:
        response.set_cookie(COOKIE, self.signer.dumps(data), max_age=MAX_AGE_SECONDS, path="/",
                            httponly=True, samesite="lax", secure=request.url.scheme == "https")


def csrf_ok(session: dict[str, Any], sent: Any) -> bool:
    """Whether a form's CSRF field matches its session's token (constant time)."""
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), str(session.get(CSRF_FIELD, "")).encode())
