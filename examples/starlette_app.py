"""A Starlette app behind RenewalMiddleware, configured only from ``RENEWAL_*`` variables.

Run, with RENEWAL_ISSUER, _CLIENT_ID, _CLIENT_SECRET, _SECRET_KEYS and _BASE_URL set:

    python -m uvicorn examples.starlette_app:app --port 8000
"""

from __future__ import annotations

import html

from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from renewal_middleware import RenewalMiddleware


async def home(request: Request) -> HTMLResponse:
    if not request.user.is_authenticated:
        body = "<h1>Not logged in</h1><p><a href='/login?return_to=/'>Log in</a></p>"
    else:
        expires_at = request.auth.expires_at
        body = (f"<h1>Logged in as {html.escape(request.user.display_name)}</h1>"
                f"<p>Access token expires at <span id=expires_at>{expires_at}</span></p>"
                "<p><a href='/api/me'>/api/me</a> · <a href='/logout'>Log out</a></p>")
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>Starlette</title>{body}")


@requires("authenticated", status_code=401)
async def me(request: Request) -> JSONResponse:
    return JSONResponse({"sub": request.user.identity, "expires_at": request.auth.expires_at})


async def http_error(request: Request, exc: Exception) -> Response:
    """Errors as JSON; ``requires()``'s 401 with ``WWW-Authenticate: Bearer``."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers)


app = Starlette(
    routes=[Route("/", home), Route("/api/me", me)],
    middleware=[Middleware(RenewalMiddleware)],
    exception_handlers={HTTPException: http_error},
)
