"""A FastAPI app behind RenewalMiddleware, configured only from ``RENEWAL_*`` variables.

    RENEWAL_ISSUER=... RENEWAL_CLIENT_ID=... RENEWAL_CLIENT_SECRET=... \
    RENEWAL_SECRET_KEYS=... RENEWAL_BASE_URL=http://127.0.0.1:8000 \
    uvicorn examples.fastapi_app:app --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import html
import time

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from renewal_middleware import RenewalMiddleware

app = FastAPI(title="renewal-middleware demo")
app.add_middleware(RenewalMiddleware)


@app.get("/", response_class=HTMLResponse)
async def home(request: Request) -> str:
    if not request.user.is_authenticated:
        return (
            "<!doctype html><meta charset=utf-8><title>Demo</title>"
            "<h1>Not logged in</h1><p><a href='/login?return_to=/'>Log in</a></p>"
        )
    left = request.auth.expires_at - int(time.time())
    return (
        "<!doctype html><meta charset=utf-8><title>Demo</title>"
        f"<h1>Logged in as {html.escape(request.user.display_name)}</h1>"
        f"<p>Access token expires at <span id=expires_at>{request.auth.expires_at}</span>"
        f" (in {left} s); reload this page after that: it is renewed for you.</p>"
        "<p><a href='/api/me'>/api/me</a> · <a href='/logout'>Log out</a></p>"
    )


@app.get("/api/me")
async def me(request: Request) -> JSONResponse:
    if not request.user.is_authenticated:
        return JSONResponse({"error": "not_authenticated"}, status_code=401)
    return JSONResponse({"sub": request.user.identity, "expires_at": request.auth.expires_at})
