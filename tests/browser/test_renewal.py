"""renewal.js in a real browser: pages left open stay logged in, one renewal per token lifetime
however many tabs, every tab learns the new expiry and the logout, and a provider session that
is gone stops the renewals instead of looping."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.browser.support import (
    TOKEN_TTL,
    App,
    api_status,
    events,
    login,
    open_app,
    renewal_range,
    soak,
    wait_for,
    wait_until_authenticated,
)

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

#: How long the soak tests keep the pages open: three token lifetimes.
SOAK = 3 * TOKEN_TTL

NO_LOCKS = "delete Navigator.prototype.locks;"


def _expiry(page: Page) -> int:
    expires_at: int = page.evaluate("() => renewal.session.expires_at")
    return expires_at


def test_open_page_stays_logged_in(context: BrowserContext, app: App) -> None:
    page = context.new_page()
    login(page, app)
    app.provider.reset_stats()  # count renewals only

    statuses = soak([page], SOAK)

    assert set(statuses) == {200}, statuses
    renewals = app.renewals()
    low, high = renewal_range(SOAK)
    assert low <= renewals <= high, f"{renewals} renewals in {SOAK} s ({app.mode})"
    renewed = events(page, "renewed")
    assert renewed, "the page saw no renewal"
    assert {event["via"] for event in renewed} <= {app.mode, "other-tab"}
    assert not events(page, "failed") and not events(page, "logged-out")
    print(f"\n[{app.mode}, 1 tab] {renewals} renewals in {SOAK} s")


@pytest.mark.parametrize(("mode", "locks"), [
    ("refresh", True), ("iframe", True),
    # Without Web Locks the tabs claim the renewal on their BroadcastChannel. (With a refresh
    # token the server single-flights the grant anyway: the claim matters for iframes.)
    ("iframe", False),
], ids=["refresh", "iframe", "iframe-without-web-locks"])
def test_tabs_share_one_renewal(context: BrowserContext, request: pytest.FixtureRequest,
                                mode: str, locks: bool) -> None:
    app: App = request.getfixturevalue(f"{mode}_app")
    if not locks:
        context.add_init_script(NO_LOCKS)
    tabs = [context.new_page() for _ in range(3)]
    login(tabs[0], app)
    for tab in tabs[1:]:
        open_app(tab, app)
    assert all(tab.evaluate("() => !!navigator.locks") is locks for tab in tabs)
    app.provider.reset_stats()
    if mode == "iframe":
        # A slow provider: each iframe renewal takes 1.5 s, longer than the tabs' timers are
        # apart, so tabs that did not wait for each other would each renew.
        app.provider.fail_next(hang_ms=1500, count=1000)
    try:
        statuses = soak(tabs, SOAK)
    finally:
        app.provider.fail_next(count=0)

    assert set(statuses) == {200}, statuses
    renewals = app.renewals()
    low, high = renewal_range(SOAK)
    assert low <= renewals <= high, f"{renewals} renewals in {SOAK} s ({app.mode}, 3 tabs)"
    print(f"\n[{app.mode}, 3 tabs, {'locks' if locks else 'claims'}] "
          f"{renewals} renewals in {SOAK} s")
    # Every tab learns each new expiry (the last renewal may be under way: wait for it).
    wait_for(lambda: len({_expiry(tab) for tab in tabs}) == 1, 10, tabs[0],
             f"tabs disagree on the expiry: {[_expiry(tab) for tab in tabs]}")
    for tab in tabs:
        assert events(tab, "renewed"), "a tab saw no renewal"
        assert not events(tab, "failed") and not events(tab, "logged-out")

    # A logout in one tab reaches the others: the link in the refresh case, the API otherwise.
    if app.mode == "refresh":
        tabs[0].click("text=Log out")
    else:
        tabs[0].evaluate("() => { setTimeout(() => renewal.logout()); }")
    for tab in tabs[1:]:
        wait_for(lambda tab=tab: bool(events(tab, "logged-out")), 10, tab,
                 "another tab missed the logout")
        assert api_status(tab) == 401
        assert tab.evaluate("() => renewal.session.authenticated") is False
    # The OP asks whether to end its session too.
    tabs[0].locator("#logout-yes").click()
    tabs[0].wait_for_url(app.url + "/")
    assert "Not logged in" in tabs[0].content()


def test_iframe_renewal_stops_at_login_required(context: BrowserContext, iframe_app: App
                                                ) -> None:
    app = iframe_app
    page = context.new_page()
    login(page, app)
    wait_for(lambda: bool(events(page, "renewed")), 2 * TOKEN_TTL, page,
             "no iframe renewal")
    assert events(page, "renewed")[0]["via"] == "iframe"
    # The provider forgets the user: its session cookies go (the app's stay).
    op_session = re.compile(r"^_session")
    kept = [c for c in context.cookies() if not op_session.match(c["name"])]
    assert len(kept) < len(context.cookies()), [c["name"] for c in context.cookies()]
    context.clear_cookies()
    context.add_cookies(kept)  # type: ignore[arg-type]
    app.provider.reset_stats()

    wait_for(lambda: bool(events(page, "failed")), 2 * TOKEN_TTL, page,
             "the iframe renewal did not fail")
    assert events(page, "failed") == [{"reason": "login_required"}]
    wait_for(lambda: bool(events(page, "logged-out")), 5, page, "no logged-out event")
    attempts = app.provider.stats()["authorizations_prompt_none"]
    assert attempts == 1
    # It stays stopped: no other attempt, no other event, for another token lifetime.
    page.wait_for_timeout(TOKEN_TTL * 1000)
    assert app.provider.stats()["authorizations_prompt_none"] == attempts
    assert events(page, "failed") == [{"reason": "login_required"}]
    assert len(events(page, "logged-out")) == 1
    assert page.evaluate("() => renewal.session.authenticated") is False
    assert api_status(page) == 401


def test_expired_session_comes_back_through_one_iframe(context: BrowserContext,
                                                       iframe_app: App) -> None:
    app = iframe_app
    page = context.new_page()
    login(page, app)
    page.evaluate("() => renewal.unscheduleRenewal()")
    expires_in = page.evaluate("() => renewal.session.expires_at - renewal.session.now")
    page.wait_for_timeout((expires_in + 1.5) * 1000)
    app.provider.reset_stats()

    # The 401 makes the script read /session: expired, so one iframe renewal brings it back.
    status = page.evaluate("() => renewal.fetch('/api/me').then((r) => r.status)")
    assert status == 401
    wait_for(lambda: bool(events(page, "renewed")), 15, page, "the session did not come back")
    assert events(page, "renewed")[0]["via"] == "iframe"
    assert api_status(page) == 200
    assert app.renewals() == 1
    assert not events(page, "failed") and not events(page, "logged-out")


def test_demo_page_shows_countdown_and_server_renewals(context: BrowserContext, app: App
                                                       ) -> None:
    page = context.new_page()
    login(page, app)
    assert page.locator("#left").inner_text().isdigit()
    # Without the script's timer, a page load inside the window is renewed by the server
    # (refresh grant, or a prompt=none redirect): the page says so.
    page.evaluate("() => renewal.unscheduleRenewal()")
    wait = page.evaluate("() => renewal.session.renew_at - renewal.session.now")
    page.wait_for_timeout((wait + 0.5) * 1000)
    app.provider.reset_stats()
    page.reload()
    page.locator("#log", has_text="renewed by the server on this page load").wait_for()
    assert app.renewals() == 1
    wait_until_authenticated(page)
    assert api_status(page) == 200
