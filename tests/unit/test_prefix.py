"""An app served under a path prefix: base_url with a path, ASGI root_path, Mount."""

from __future__ import annotations

import httpx
import respx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from renewal_middleware import RenewalMiddleware
from renewal_middleware.flows import Flows
from renewal_middleware.requests import app_path, external_target
from renewal_middleware.transaction import LoginTransaction
from tests.unit.helpers import (
    DISCOVERY,
    DISCOVERY_URL,
    FakeClock,
    make_session,
    make_settings,
    session_cookie_header,
)


def test_every_url_and_cookie_follows_the_prefix() -> None:
    settings = make_settings(base_url="https://example.com/app/")
    assert settings.base_url == "https://example.com/app"
    assert settings.redirect_uri == "https://example.com/app/callback"
    assert settings.post_logout_redirect_uri == "https://example.com/app/"
    assert settings.origin == "https://example.com"
    flows = Flows(settings, FakeClock())
    (cookie,) = flows.sessions.cookie.set_headers("v", ())
    assert cookie.startswith("renewal_session=v;") and "Path=/app;" in cookie  # not __Host-
    tx = LoginTransaction.start("login", "/app/x")
    assert "Path=/app/callback;" in flows.transactions.set_cookie(tx)


def test_the_path_within_the_app_and_the_target_the_browser_sees() -> None:
    mounted = {"path": "/app/login", "root_path": "/app", "raw_path": b"/app/login"}
    stripped = {"path": "/login", "root_path": "/app", "raw_path": b"/login",
                "query_string": b"x=1"}
    assert app_path(mounted) == "/login" and app_path(stripped) == "/login"
    assert app_path({"path": "/application", "root_path": "/app"}) == "/application"
    assert external_target(mounted) == "/app/login"
    assert external_target(stripped) == "/app/login?x=1"


async def me(request: Request) -> Response:
    user = request.user
    return JSONResponse({"user": user.identity if user.is_authenticated else None})


async def test_a_mounted_app_answers_its_routes_under_the_mount() -> None:
    settings = make_settings(base_url="https://app.example/app")
    clock = FakeClock()
    inner = RenewalMiddleware(Starlette(routes=[Route("/me", me)]), settings=settings,
                              clock=clock)
    outer = Starlette(routes=[Mount("/app", app=inner)])
    cookie = session_cookie_header(Flows(settings, clock), make_session())
    with respx.mock(assert_all_called=False) as router:
        router.get(DISCOVERY_URL).mock(return_value=httpx.Response(200, json=DISCOVERY))
        router.post(DISCOVERY["revocation_endpoint"]).mock(return_value=httpx.Response(200))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer),
                                     base_url="https://app.example") as client:
            login = await client.get("/app/login?return_to=/app/me")
            assert login.status_code == 302
            assert "redirect_uri=https%3A%2F%2Fapp.example%2Fapp%2Fcallback" in (
                login.headers["location"])
            session = (await client.get("/app/session", headers={"cookie": cookie})).json()
            assert session["logout_url"].startswith("/app/logout?t=")
            assert session["silent_url"] == "/app/silent?mode=iframe"
            assert (await client.get("/app/me", headers={"cookie": cookie})).json() == {
                "user": "alice"}
            out = await client.get("/app/logout", headers={"cookie": cookie,
                                                           "sec-fetch-site": "same-origin"})
            assert out.status_code == 302
            assert out.headers["location"].startswith(DISCOVERY["end_session_endpoint"])
    await inner.aclose()


async def test_error_pages_under_a_prefix_link_back_to_the_apps_start_page() -> None:
    settings = make_settings(base_url="https://app.example/app")
    inner = RenewalMiddleware(Starlette(routes=[Route("/me", me)]), settings=settings,
                              clock=FakeClock())
    outer = Starlette(routes=[Mount("/app", app=inner)])
    page = {"accept": "text/html"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer),
                                 base_url="https://app.example") as client:
        forged = await client.get("/app/callback?code=x&state=forged", headers=page)
        wrong_method = await client.put("/app/login", headers=page)
    assert forged.status_code == 400 and wrong_method.status_code == 405
    for answer in (forged, wrong_method):
        assert answer.headers["content-type"].startswith("text/html")
        assert '<a href="/app/">Back to the start page</a>' in answer.text
    await inner.aclose()
