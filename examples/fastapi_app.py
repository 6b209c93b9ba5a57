"""A FastAPI app behind RenewalMiddleware, configured only from ``RENEWAL_*`` variables.

    RENEWAL_ISSUER=... RENEWAL_CLIENT_ID=... RENEWAL_CLIENT_SECRET=... \
    RENEWAL_SECRET_KEYS=... RENEWAL_BASE_URL=http://127.0.0.1:8000 \
    uvicorn examples.fastapi_app:app --host 127.0.0.1 --port 8000

``GET /`` is the demo page: it loads ``/renewal.js`` and shows the access token's expiry
counting down and each renewal as it happens, whether the script made it (a page left
open) or the server did (on a page load). ``POST /api/notes`` is called with
``renewal.fetch``, which adds the CSRF header.
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

from fastapi import FastAPI, Request
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

#: The logged-in page's script: a countdown on the server's clock and a log of renewals.
_PAGE_SCRIPT = """
const $ = (id) => document.getElementById(id);
let expiresAt = DATA.expires_at, skew = DATA.now - Date.now() / 1000;
const log = (text) => {
  const item = document.createElement('li');
  item.textContent = new Date().toLocaleTimeString() + ' ' + text;
  $('log').prepend(item);
};
const show = () => {
  $('expires_at').textContent = expiresAt;
  $('left').textContent = Math.max(0, Math.round(expiresAt - Date.now() / 1000 - skew));
};
const last = +sessionStorage.getItem('demo.expires_at');
if (last && last !== expiresAt) {
  log(`renewed by the server on this page load (expiry ${last} \\u2192 ${expiresAt})`);
}
sessionStorage.setItem('demo.expires_at', expiresAt);
document.addEventListener('renewal:session', ({ detail: s }) => {
  skew = s.now - Date.now() / 1000;
  if (s.authenticated) sessionStorage.setItem('demo.expires_at', expiresAt = s.expires_at);
  show();
});
document.addEventListener('renewal:renewed', ({ detail: d }) =>
  log(`renewed (${d.via}): the token now expires at ${d.expires_at}`));
document.addEventListener('renewal:failed', ({ detail: d }) => log(`renewal failed: ${d.reason}`));
document.addEventListener('renewal:logged-out', () => {
  log('logged out');
  $('user').textContent = 'nobody (logged out)';
});
$('note').onclick = async () => {
  const r = await renewal.fetch('/api/notes', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text: 'hello', at: Date.now() }) });
  log(`POST /api/notes: ${r.status}`);
};
show();
setInterval(show, 1000);
"""


@app.get("/", response_class=HTMLResponse)
async def home(user: OptionalUser, credentials: OptionalCredentials) -> str:
    head = ("<!doctype html><meta charset=utf-8><title>Demo</title>"
            "<script src='/renewal.js' defer></script>")
    if user is None or credentials is None:
        return head + "<h1>Not logged in</h1><p><a href='/login?return_to=/'>Log in</a></p>"
    data = json.dumps({"expires_at": credentials.expires_at, "now": time.time()})
    return (
        f"{head}<h1>Logged in as <span id=user>{html.escape(user.display_name)}</span></h1>"
        "<p>The access token expires in <b id=left></b> s (at <span id=expires_at>"
        f"{credentials.expires_at}</span>); renewal.js renews it in time.</p>"
        "<p><a href='/api/me'>/api/me</a> · <button id=note>POST /api/notes</button>"
        " · <a href='/logout'>Log out</a></p><h2>Renewals</h2><ol id=log></ol>"
        f"<script>const DATA = {data};{_PAGE_SCRIPT}</script>"
    )


@app.get("/api/me")
async def me(user: CurrentUser, credentials: Credentials) -> dict[str, str | int]:
    # Anonymous: 401 {"detail": "Not authenticated"} with WWW-Authenticate: Bearer.
    return {"sub": user.identity, "expires_at": credentials.expires_at}


@app.post("/api/notes")
async def notes(request: Request, user: CurrentUser) -> dict[str, Any]:
    """Echoes a JSON note. A request of a session without the ``X-CSRF`` header (another
    site's form, say) is refused with 403 by the middleware before it gets here."""
    try:
        note = await request.json()
    except ValueError:
        note = None
    return {"ok": True, "sub": user.identity, "note": note}
