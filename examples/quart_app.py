"""A Quart app behind RenewalMiddleware, configured only from ``RENEWAL_*`` variables.

Run, with RENEWAL_ISSUER, _CLIENT_ID, _CLIENT_SECRET, _SECRET_KEYS and _BASE_URL set:

    python -m uvicorn examples.quart_app:app --port 8000
"""

from __future__ import annotations

from typing import Any

from quart import Quart, render_template_string

from renewal_middleware import TokenCredentials
from renewal_middleware.integrations.quart import (
    current_credentials,
    current_user,
    init_app,
    logged_in_user,
    login_required,
)

app = Quart(__name__)
init_app(app)  # app.asgi_app = RenewalMiddleware(app.asgi_app)

HOME = """<!doctype html><meta charset=utf-8><title>Quart</title>
{% if user.is_authenticated %}
<h1>Logged in as {{ user.display_name }}</h1>
<p>Access token expires at <span id=expires_at>{{ auth.expires_at }}</span></p>
<p><a href='/api/me'>/api/me</a> · <a href='/logout'>Log out</a></p>
{% else %}
<h1>Not logged in</h1><p><a href='/login?return_to=/'>Log in</a></p>
{% endif %}"""


@app.get("/")
async def home() -> str:
    return await render_template_string(HOME, user=current_user(), auth=current_credentials())


@app.get("/api/me")
@login_required
async def me() -> dict[str, Any]:
    # Anonymous: 401 {"error": "not_authenticated"} with WWW-Authenticate: Bearer.
    user, auth = logged_in_user(), current_credentials()
    assert user is not None and isinstance(auth, TokenCredentials)
    return {"sub": user.identity, "expires_at": auth.expires_at}
