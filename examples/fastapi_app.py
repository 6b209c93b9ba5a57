"""A FastAPI app behind RenewalMiddleware, configured only from ``RENEWAL_*`` variables.

    RENEWAL_ISSUER=... RENEWAL_CLIENT_ID=... RENEWAL_CLIENT_SECRET=... \
    RENEWAL_SECRET_KEYS=... RENEWAL_BASE_URL=http://127.0.0.1:8000 \
    uvicorn examples.fastapi_app:app --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import html
import time

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from renewal_middleware import RenewalMiddleware
from renewal_middleware.integrations.fastapi import (
    Credentials,
    CurrentUser,
    OptionalCredentials,
    OptionalUser,
)

app = FastAPI(title="renewal-middleware demo")
app.add_middleware(RenewalMiddleware)


@app.get("/", response_class=HTMLResponse)
async def home(user: OptionalUser, credentials: OptionalCredentials) -> str:
    if user is None or credentials is None:
        return (
            "<!doctype html><meta charset=utf-8><title>Demo</title>"
            "<h1>Not logged in</h1><p><a href='/login?return_to=/'>Log in</a></p>"
        )
    left = credentials.expires_at - int(time.time())
    return (
        "<!doctype html><meta charset=utf-8><title>Demo</title>"
        f"<h1>Logged in as {html.escape(user.display_name)}</h1>"
        f"<p>Access token expires at <span id=expires_at>{credentials.expires_at}</span>"
        f" (in {left} s); reload this page after that: it is renewed for you.</p>"
        "<p><a href='/api/me'>/api/me</a> · <a href='/logout'>Log out</a></p>"
    )


@app.get("/api/me")
async def me(user: CurrentUser, credentials: Credentials) -> dict[str, str | int]:
    # Anonymous: 401 {"detail": "Not authenticated"} with WWW-Authenticate: Bearer.
    return {"sub": user.identity, "expires_at": credentials.expires_at}
