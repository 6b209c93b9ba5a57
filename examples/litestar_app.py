"""A Litestar app behind RenewalMiddleware, configured only from ``RENEWAL_*`` variables.

Run, with RENEWAL_ISSUER, _CLIENT_ID, _CLIENT_SECRET, _SECRET_KEYS and _BASE_URL set:

    python -m uvicorn examples.litestar_app:app --port 8000
"""

from __future__ import annotations

import html
from typing import Any

from litestar import Litestar, MediaType, Request, get
from starlette.authentication import AuthCredentials, BaseUser

from renewal_middleware import OIDCUser, TokenCredentials
from renewal_middleware.integrations.litestar import RenewalPlugin, requires_login


@get("/", media_type=MediaType.HTML)
async def home(request: Request[BaseUser, AuthCredentials, Any]) -> str:
    if not isinstance(request.auth, TokenCredentials):
        body = "<h1>Not logged in</h1><p><a href='/login?return_to=/'>Log in</a></p>"
    else:
        body = (f"<h1>Logged in as {html.escape(request.user.display_name)}</h1>"
                f"<p>Access token expires at <span id=expires_at>{request.auth.expires_at}</span>"
                "</p><p><a href='/api/me'>/api/me</a> · <a href='/logout'>Log out</a></p>")
    return f"<!doctype html><meta charset=utf-8><title>Litestar</title>{body}"


@get("/api/me", guards=[requires_login])
async def me(request: Request[OIDCUser, TokenCredentials, Any]) -> dict[str, Any]:
    # Anonymous: 401 {"status_code": 401, "detail": "Not authenticated"}.
    return {"sub": request.user.identity, "expires_at": request.auth.expires_at}


app = Litestar([home, me], plugins=[RenewalPlugin()])
