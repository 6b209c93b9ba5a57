"""A Flask app behind WSGIRenewalMiddleware, configured only from ``RENEWAL_*`` variables.

    RENEWAL_ISSUER=... RENEWAL_CLIENT_ID=... RENEWAL_CLIENT_SECRET=... \
    RENEWAL_SECRET_KEYS=... RENEWAL_BASE_URL=http://127.0.0.1:8000 \
    python -m waitress --host 127.0.0.1 --port 8000 --threads 8 examples.flask_app:app
"""

from __future__ import annotations

import html
import time

from flask import Flask, g, jsonify
from flask.typing import ResponseReturnValue

from renewal_middleware import TokenCredentials, WSGIRenewalMiddleware
from renewal_middleware.integrations.flask import current_credentials, init_app, login_required

app = Flask(__name__)
app.wsgi_app = WSGIRenewalMiddleware(app.wsgi_app)  # type: ignore[method-assign]
init_app(app)  # g.user on every request


@app.get("/")
def home() -> str:
    auth = current_credentials()
    if not isinstance(auth, TokenCredentials):
        return (
            "<!doctype html><meta charset=utf-8><title>Demo</title>"
            "<h1>Not logged in</h1><p><a href='/login?return_to=/'>Log in</a></p>"
        )
    left = auth.expires_at - int(time.time())
    return (
        "<!doctype html><meta charset=utf-8><title>Demo</title>"
        f"<h1>Logged in as {html.escape(g.user.display_name)}</h1>"
        f"<p>Access token expires at <span id=expires_at>{auth.expires_at}</span>"
        f" (in {left} s); reload this page after that: it is renewed for you.</p>"
        "<p><a href='/api/me'>/api/me</a> · <a href='/logout'>Log out</a></p>"
    )


@app.get("/api/me")
@login_required  # anonymous: 401 JSON (page loads are sent to /login instead)
def me() -> ResponseReturnValue:
    auth = current_credentials()
    assert isinstance(auth, TokenCredentials)
    return jsonify(sub=g.user.identity, expires_at=auth.expires_at)
