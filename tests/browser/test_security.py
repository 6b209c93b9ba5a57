"""What another origin cannot do with the user's session, and what a page's script never sees.

The other origin is a tiny server on another port of 127.0.0.1: the same *site* as the app
(its ``SameSite=Lax`` cookie goes along with that origin's POSTs and frames), so only the
CSRF header, the logout rules and the script's message checks stand in its way.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from tests.browser.support import (
    TOKEN_TTL,
    App,
    OtherOrigin,
    api_status,
    events,
    login,
    session_json,
    wait_for,
    wait_until_authenticated,
)

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

FORGED = {"type": "renewal_middleware:silent", "ok": False, "error": "login_required"}


def _wait_for_log(app: App, method: str, path: str, count: int, page: Page) -> list[int]:
    wait_for(lambda: len(app.answered(method, path)) >= count, 10, page,
             f"the app did not log {count} {method} {path}")
    return app.answered(method, path)


def test_forged_silent_messages_are_ignored(context: BrowserContext, iframe_app: App,
                                            other_origin: OtherOrigin) -> None:
    app = iframe_app
    page = context.new_page()
    login(page, app)
    # The other origin opens the app in a window of its own and keeps telling it that the
    # provider answered login_required, as the silent iframe would.
    forge = other_origin.page("/forge", f"""<!doctype html><meta charset=utf-8>
<button id=open>open</button><script>
document.getElementById('open').onclick = () => {{
  const app = window.open({json.dumps(app.url + "/")}, 'app');
  setInterval(() => app.postMessage({json.dumps(FORGED)}, '*'), 20);
}};
</script>""")
    page.goto(forge)  # the only page of the app is now the one the other origin opens
    with page.expect_popup() as popup_info:
        page.click("#open")
    popup = popup_info.value
    popup.locator("#user").wait_for()
    wait_until_authenticated(popup)
    # And a message of the app's own origin that does not come from its iframe.
    popup.evaluate(f"() => setInterval(() => postMessage({json.dumps(FORGED)}, location.origin),"
                   " 20)")

    wait_for(lambda: len(events(popup, "renewed")) >= 2, 3 * TOKEN_TTL, popup,
             "the page did not renew twice")

    assert popup.evaluate("() => window.__foreign") > 0, "no forged message arrived"
    assert {event["via"] for event in events(popup, "renewed")} == {"iframe"}
    assert events(popup, "failed") == []
    assert events(popup, "logged-out") == []
    assert popup.evaluate("() => renewal.session.authenticated") is True
    assert api_status(popup) == 200


def test_other_origin_cannot_use_or_end_the_session(
        context: BrowserContext, refresh_app: App, other_origin: OtherOrigin) -> None:
    app = refresh_app
    page = context.new_page()
    login(page, app)
    app.provider.reset_stats()
    posts = len(app.answered("POST", "/api/notes"))
    notes = json.dumps(app.url + "/api/notes")

    # fetch() with the user's cookies, without the header: sent, refused by the app.
    # With the header: stopped by the CORS preflight, never sent.
    evil = context.new_page()
    evil.goto(other_origin.page("/fetch", "<!doctype html><meta charset=utf-8>evil"))
    outcomes = evil.evaluate(f"""async () => {{
      const attempt = (headers) => fetch({notes}, {{method: 'POST', credentials: 'include',
          headers, body: '{{"text": "forged"}}'}}).then((r) => r.status, (e) => 'blocked');
      return [await attempt({{}}), await attempt({{'X-CSRF': '1'}})];
    }}""")
    assert outcomes == ["blocked", "blocked"]  # no CORS grant: the page reads neither
    assert _wait_for_log(app, "POST", "/api/notes", posts + 1, evil)[posts:] == [403]
    assert app.answered("OPTIONS", "/api/notes"), "no preflight"

    # An HTML form of the other origin, submitted by its script: a navigation, refused.
    form = other_origin.page("/form", f"""<!doctype html><meta charset=utf-8>
<form method=post action={notes}><input name=text value=forged></form>
<script>document.forms[0].submit()</script>""")
    with evil.expect_navigation(url=app.url + "/api/notes") as navigation:
        evil.goto(form)
    response = navigation.value
    assert response is not None and response.status == 403
    assert response.json()["error"] == "csrf_header_missing"
    assert _wait_for_log(app, "POST", "/api/notes", posts + 2, evil)[posts:] == [403, 403]

    # Logging the user out: an image, a form and a link to /logout only get a question.
    logout = json.dumps(app.url + "/logout")
    evil.goto(other_origin.page("/logout", f"""<!doctype html><meta charset=utf-8>
<img src={logout} alt=""><a id=link href={logout}>win a prize</a>"""))
    evil.wait_for_load_state("load")
    evil.click("#link")
    evil.wait_for_url(app.url + "/logout")
    assert "Log out?" in evil.content()
    evil.goto(other_origin.page("/logout-form", f"""<!doctype html><meta charset=utf-8>
<form method=post action={logout}></form><script>document.forms[0].submit()</script>"""))
    evil.wait_for_url(app.url + "/logout")
    assert "Log out?" in evil.content()
    assert app.provider.stats()["end_session"] == 0
    assert session_json(page)["authenticated"] is True
    assert api_status(page) == 200
    assert not events(page, "logged-out")

    # The app's own page can, with the script: renewal.fetch adds the header.
    answer = page.evaluate("""() => renewal.fetch('/api/notes', {method: 'POST',
        headers: {'content-type': 'application/json'}, body: JSON.stringify({text: 'mine'})})
        .then(async (r) => [r.status, await r.json()])""")
    assert answer[0] == 200 and answer[1]["ok"] is True and answer[1]["note"] == {"text": "mine"}
    # ... and needs it: the same request without the header is refused like the others.
    assert page.evaluate("() => fetch('/api/notes', {method: 'POST', body: '{}'})"
                         ".then((r) => r.status)") == 403
    page.click("#note")  # the demo's button uses renewal.fetch
    page.locator("#log", has_text="POST /api/notes: 200").wait_for()

    # renewal.logout() follows the session's logout link: the session ends at once.
    page.evaluate("() => { setTimeout(() => renewal.logout()); }")
    page.locator("#logout-yes").click()
    page.wait_for_url(app.url + "/")
    assert "Not logged in" in page.content()
    assert session_json(page)["authenticated"] is False


def test_patched_fetch_adds_the_header_to_its_own_origin_only(
        context: BrowserContext, refresh_app: App, other_origin: OtherOrigin) -> None:
    app = refresh_app
    page = context.new_page()
    login(page, app)

    # A document of the app's origin that loads the script with data-patch-fetch.
    page.evaluate("""() => {
      const frame = document.createElement('iframe');
      frame.name = 'patched';
      frame.srcdoc = "<script src='/renewal.js' data-patch-fetch><\\/script>";
      document.body.append(frame);
    }""")
    wait_for(lambda: page.frame(name="patched") is not None, 10, page, "no frame")
    frame = page.frame(name="patched")
    assert frame is not None
    frame.wait_for_function("() => window.renewal && renewal.session && renewal.session.user")
    statuses = frame.evaluate(f"""async () => [
      (await fetch('/api/notes', {{method: 'POST', body: '{{}}'}})).status,
      (await fetch(new Request('/api/notes', {{method: 'PUT', body: '{{}}'}}))).status,
      (await fetch('/api/me')).status,
      (await fetch({json.dumps(other_origin.url + "/sink")}, {{method: 'POST', mode: 'no-cors',
          body: 'x'}})).type,
    ]""")
    # PUT is not a route of the example: past the CSRF check, FastAPI answers 405.
    assert statuses == [200, 405, 200, "opaque"]
    sink = [r for r in other_origin.requests if r[1] == "/sink"]
    assert [r[0] for r in sink] == ["POST"]
    assert all("x-csrf" not in headers and "x-csrf" not in
               headers.get("access-control-request-headers", "") for _, _, headers in sink)


def test_session_answer_carries_no_token(context: BrowserContext, app: App) -> None:
    page = context.new_page()
    login(page, app)
    for round_ in ("login", "renewal"):
        if round_ == "renewal":
            wait_for(lambda: bool(events(page, "renewed")), 2 * TOKEN_TTL, page, "no renewal")
            time.sleep(0.5)  # the renewing response's cookie is in the jar by now
        session = app.session_of(context)
        tokens = [session.access_token, session.id_token]
        if app.mode == "refresh":
            assert session.refresh_token is not None
            tokens.append(session.refresh_token)
        else:
            assert session.refresh_token is None
        assert all(token for token in tokens)
        body = page.evaluate("() => fetch('/session').then((r) => r.text())")
        assert json.loads(body)["authenticated"] is True
        seen = [body, page.evaluate("() => JSON.stringify(renewal.session)"),
                page.evaluate("() => JSON.stringify(window.__events)"),
                page.evaluate("() => document.cookie"), page.content()]
        for token in tokens:
            assert token is not None
            for text in seen:
                assert token not in text
                # nor a large part of it
                assert token[len(token) // 4: len(token) // 4 + 16] not in text
