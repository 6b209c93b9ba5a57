"""The Starlette, FastAPI, Litestar and Quart integrations, in process (httpx.ASGITransport).

A real middleware and a session cookie minted with its own codec; the provider is never
called (the session is fresh or absent), except in the Litestar renewal test, which stubs
it with respx. Each framework's tests are skipped where it is not installed.

No ``from __future__ import annotations``: the handlers are defined inside functions, and
FastAPI resolves string annotations in the module's globals only.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from renewal_middleware import OIDCUser, RenewalMiddleware, Session, Settings, TokenCredentials

BASE_URL = "http://127.0.0.1:8000"
ISSUER = "http://127.0.0.1:9"
#: A browser's page load, and an anonymous one's answer: the login route, coming back here.
PAGE = {"accept": "text/html,application/xhtml+xml", "sec-fetch-mode": "navigate"}
TARGET = "/me?x=1&y=%C3%A9"
RETURN_TO = "return_to=%2Fme%3Fx%3D1%26y%3D%25C3%25A9"
#: Requests a guard answers with 401: no redirect to a login page for a script or a client.
API_CALLS = [{}, {"accept": "application/json"}, {"accept": "*/*"},
             {"accept": "text/html", "sec-fetch-mode": "cors"},
             {"accept": "text/html", "x-requested-with": "XMLHttpRequest"}]


def make_settings(**overrides: Any) -> Settings:
    # An empty environment: RENEWAL_* variables of the machine running the tests do not count.
    options: dict[str, Any] = {
        "issuer": ISSUER, "client_id": "client", "client_secret": "secret",
        "secret_keys": ["x" * 40], "base_url": BASE_URL, "store": "memory", **overrides}
    return Settings.load(environ={}, **options)


def session_cookie(middleware: RenewalMiddleware, *, expires_in: int = 3600,
                   refresh_token: str | None = None) -> dict[str, str]:
    now = int(time.time())
    session = Session(id="s", access_token="AT", expires_at=now + expires_in,
                      obtained_at=now + expires_in - 3600, refresh_token=refresh_token,
                      id_token=None, claims={"sub": "alice", "name": "Alice"})
    value = middleware.flows.sessions.encode(session, time.time())
    return {"cookie": f"{middleware.settings.session_cookie_name}={value}"}


def cookie_for(settings: Settings) -> dict[str, str]:
    """A cookie minted by a separate middleware: the codec depends only on the settings."""
    return session_cookie(RenewalMiddleware(_unused, settings=settings))


async def _unused(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called")


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)


def assert_401_json(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["www-authenticate"] == "Bearer"


def assert_login_redirect(response: httpx.Response, login_path: str = "/login") -> None:
    assert response.status_code == 302
    assert response.headers["location"] == f"{login_path}?{RETURN_TO}"
    assert response.headers["cache-control"] == "no-store"


# -- Starlette: request.user / request.auth and requires() --------------------------------


async def test_starlette_requires_and_request_user() -> None:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.authentication import requires
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    @requires("authenticated", status_code=401)
    async def me(request: Request) -> JSONResponse:
        assert isinstance(request.user, OIDCUser)
        assert isinstance(request.auth, TokenCredentials)
        return JSONResponse({"sub": request.user.identity, "token": request.auth.access_token})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"detail": exc.detail}, exc.status_code,
                            {"WWW-Authenticate": "Bearer"})

    settings = make_settings()
    app = Starlette(routes=[Route("/me", me)],
                    middleware=[Middleware(RenewalMiddleware, settings=settings)],
                    exception_handlers={HTTPException: http_error})
    async with client(app) as http:
        assert (await http.get("/me", headers=cookie_for(settings))).json() == {
            "sub": "alice", "token": "AT"}
        assert_401_json(await http.get("/me"))


# -- FastAPI: dependencies ----------------------------------------------------------------


def fastapi_app() -> RenewalMiddleware:
    pytest.importorskip("fastapi")
    from fastapi import FastAPI, WebSocket

    from renewal_middleware.integrations.fastapi import (
        AccessToken,
        Credentials,
        CurrentUser,
        OptionalCredentials,
        OptionalUser,
    )

    inner = FastAPI()

    @inner.get("/me")
    async def me(user: CurrentUser, token: AccessToken, auth: Credentials) -> dict[str, Any]:
        return {"sub": user.identity, "name": user.display_name, "token": token,
                "expires_at": auth.expires_at}

    @inner.get("/maybe")
    async def maybe(user: OptionalUser, auth: OptionalCredentials) -> dict[str, Any]:
        return {"sub": user.identity if user else None,
                "token": auth.access_token if auth else None}

    @inner.websocket("/ws")
    async def ws(socket: WebSocket, user: CurrentUser) -> None:
        await socket.accept()
        await socket.send_json({"sub": user.identity})
        await socket.close()

    return RenewalMiddleware(inner, settings=make_settings())


async def test_fastapi_dependencies() -> None:
    app = fastapi_app()
    # The dependencies take the connection, not a query parameter.
    assert "parameters" not in app.app.openapi()["paths"]["/me"]["get"]  # type: ignore[attr-defined]
    cookie = session_cookie(app)
    async with client(app) as http:
        me = (await http.get("/me", headers=cookie)).json()
        expires_at = me.pop("expires_at")
        assert me == {"sub": "alice", "name": "Alice", "token": "AT"}
        assert expires_at > time.time()
        assert (await http.get("/maybe", headers=cookie)).json() == {"sub": "alice", "token": "AT"}

        anonymous = await http.get("/me")
        assert_401_json(anonymous)
        assert anonymous.json() == {"detail": "Not authenticated"}
        assert (await http.get("/maybe")).json() == {"sub": None, "token": None}


async def websocket(app: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Open a WebSocket on ``/ws`` and return what the app sent (raw ASGI: httpx has none)."""
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": "/ws",
             "raw_path": b"/ws", "query_string": b"", "root_path": "", "subprotocols": [],
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
             "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    await app(scope, receive, send)
    return sent


async def test_fastapi_websocket_dependency() -> None:
    app = fastapi_app()
    accepted = await websocket(app, session_cookie(app))
    assert accepted[0]["type"] == "websocket.accept"
    assert json.loads(accepted[1]["text"]) == {"sub": "alice"}
    [refused] = await websocket(app, {})
    assert refused["type"] == "websocket.close" and refused["code"] == 1008


def fastapi_guarded(**settings: Any) -> Any:
    """A FastAPI app that adds the middleware itself: its guards find its login route."""
    pytest.importorskip("fastapi")
    from typing import Annotated

    from fastapi import Depends, FastAPI

    from renewal_middleware.integrations.fastapi import AccessToken, CurrentUser, LoginGuard

    app = FastAPI()
    app.add_middleware(RenewalMiddleware, settings=make_settings(**settings))
    api = LoginGuard(redirect=False)
    elsewhere = LoginGuard(login_url="/auth/start")

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        return {"sub": user.identity}

    @app.get("/token")
    async def token(token: AccessToken) -> dict[str, Any]:
        return {"token": token}

    @app.get("/api")
    async def api_only(user: Annotated[OIDCUser, Depends(api.user)]) -> dict[str, Any]:
        return {"sub": user.identity}

    @app.get("/elsewhere")
    async def other(auth: Annotated[TokenCredentials, Depends(elsewhere.credentials)]
                    ) -> dict[str, Any]:
        return {"token": auth.access_token}

    return app


@pytest.mark.parametrize("headers", API_CALLS)
async def test_fastapi_guard_answers_api_calls_401(headers: dict[str, str]) -> None:
    app = fastapi_guarded()
    async with client(app) as http:
        for path in ("/me", "/token", "/api", "/elsewhere"):
            response = await http.get(path + "?x=1", headers=headers)
            assert_401_json(response)
            assert response.json() == {"detail": "Not authenticated"}
            assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("login_path", ["/login", "/sign-in"])
async def test_fastapi_guard_sends_page_loads_to_login(login_path: str) -> None:
    app = fastapi_guarded(login_path=login_path)
    async with client(app) as http:
        assert_login_redirect(await http.get(TARGET, headers=PAGE), login_path)
        # A client sending no Sec-Fetch-Mode: Accept tells a page load.
        assert_login_redirect(await http.get(TARGET, headers={"accept": "text/html"}), login_path)
        token = await http.get("/token", headers=PAGE)
        assert token.headers["location"] == f"{login_path}?return_to=%2Ftoken"
        # LoginGuard(login_url=...): that login route, whatever the middleware's.
        other = await http.get("/elsewhere?a=b", headers=PAGE)
        assert other.status_code == 302
        assert other.headers["location"] == "/auth/start?return_to=%2Felsewhere%3Fa%3Db"
        # The opt-out: LoginGuard(redirect=False) answers page loads 401 too.
        assert_401_json(await http.get("/api", headers=PAGE))
        # Not for a POST, however the browser sends it.
        assert (await http.post("/me", headers=PAGE)).status_code == 405


async def test_fastapi_guard_lets_logged_in_page_loads_through() -> None:
    app = fastapi_app()
    async with client(app) as http:
        me = await http.get("/me", headers={**PAGE, **session_cookie(app)})
        assert me.status_code == 200 and me.json()["sub"] == "alice"


async def test_fastapi_guard_behind_an_outer_middleware_uses_the_default_login() -> None:
    # RenewalMiddleware(FastAPI()): the app cannot see it; "/login" unless login_url says.
    app = fastapi_app()
    async with client(app) as http:
        assert_login_redirect(await http.get(TARGET, headers=PAGE))


# -- Litestar: the plugin, the guard, the accessors ---------------------------------------


def litestar_app(opt: dict[str, Any] | None = None,
                 **settings: Any) -> tuple[Any, RenewalMiddleware]:
    pytest.importorskip("litestar")
    from litestar import Litestar, Request, get
    from litestar.datastructures import State

    from renewal_middleware.integrations.litestar import (
        RenewalPlugin,
        access_token,
        current_credentials,
        current_user,
        logged_in_user,
        requires_login,
    )

    @get("/me", guards=[requires_login])
    async def me(request: Request[OIDCUser, TokenCredentials, State]) -> dict[str, Any]:
        assert logged_in_user(request) is request.user
        assert current_user(request) is request.user
        assert current_credentials(request) is request.auth
        return {"sub": request.user.identity, "token": access_token(request),
                "auth_token": request.auth.access_token}

    @get("/maybe")
    async def maybe(request: Request[Any, Any, State]) -> dict[str, Any]:
        user = logged_in_user(request)
        return {"sub": user.identity if user else None, "token": access_token(request),
                "authenticated": request.user.is_authenticated}

    @get("/api", guards=[requires_login], opt={"login_redirect": False})
    async def api(request: Request[OIDCUser, TokenCredentials, State]) -> dict[str, Any]:
        return {"sub": request.user.identity}

    plugin = RenewalPlugin(settings=make_settings(**settings))
    return Litestar([me, maybe, api], plugins=[plugin], opt=opt), plugin.middleware


async def test_litestar_guard_and_accessors() -> None:
    app, middleware = litestar_app()
    cookie = session_cookie(middleware)
    async with client(app) as http:
        assert (await http.get("/me", headers=cookie)).json() == {
            "sub": "alice", "token": "AT", "auth_token": "AT"}
        assert (await http.get("/maybe", headers=cookie)).json() == {
            "sub": "alice", "token": "AT", "authenticated": True}

        anonymous = await http.get("/me")
        assert_401_json(anonymous)
        assert anonymous.json()["detail"] == "Not authenticated"
        assert (await http.get("/maybe")).json() == {
            "sub": None, "token": None, "authenticated": False}


@pytest.mark.parametrize("headers", API_CALLS)
async def test_litestar_guard_answers_api_calls_401(headers: dict[str, str]) -> None:
    app, _ = litestar_app()
    async with client(app) as http:
        for path in ("/me", "/api"):
            response = await http.get(path + "?x=1", headers=headers)
            assert_401_json(response)
            assert response.json() == {"status_code": 401, "detail": "Not authenticated"}
            assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("login_path", ["/login", "/sign-in"])
async def test_litestar_guard_sends_page_loads_to_login(login_path: str) -> None:
    app, middleware = litestar_app(login_path=login_path)
    async with client(app) as http:
        assert_login_redirect(await http.get(TARGET, headers=PAGE), login_path)
        assert_login_redirect(await http.get(TARGET, headers={"accept": "text/html"}), login_path)
        # The opt-out: opt={"login_redirect": False} on the handler.
        assert_401_json(await http.get("/api", headers=PAGE))
        me = await http.get("/me", headers={**PAGE, **session_cookie(middleware)})
        assert me.status_code == 200 and me.json()["sub"] == "alice"


async def test_litestar_guard_opt_out_for_the_whole_app() -> None:
    app, _ = litestar_app(opt={"login_redirect": False})
    async with client(app) as http:
        assert_401_json(await http.get(TARGET, headers=PAGE))


async def test_litestar_middleware_routes_and_shutdown() -> None:
    app, middleware = litestar_app()
    async with app.lifespan(), client(app) as http:
        # The middleware answers them (the provider at 127.0.0.1:9 is down: 503), not a 404.
        login = await http.get("/login", headers={"accept": "application/json"})
        assert login.status_code == 503
        assert (await http.put("/logout")).status_code == 405  # the middleware's own 405
        session = await http.get("/session", headers=session_cookie(middleware))
        assert session.json()["user"]["sub"] == "alice"
        assert (await http.get("/renewal.js")).headers["etag"]
        assert (await http.post("/backchannel-logout")).status_code == 400
    assert middleware.transport.client.is_closed  # closed by the plugin's on_shutdown hook


async def test_litestar_routes_share_one_refresh() -> None:
    """One middleware for all routes: the second route gets the first one's refresh result."""
    respx = pytest.importorskip("respx")
    app, middleware = litestar_app()
    cookie = session_cookie(middleware, expires_in=30, refresh_token="RT")  # inside the window
    with respx.mock(assert_all_called=False) as provider:
        provider.get(ISSUER + "/.well-known/openid-configuration").respond(200, json={
            "issuer": ISSUER, "authorization_endpoint": ISSUER + "/auth",
            "token_endpoint": ISSUER + "/token", "jwks_uri": ISSUER + "/jwks"})
        token = provider.post(ISSUER + "/token").respond(200, json={
            "access_token": "AT2", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "RT2"})
        async with client(app) as http:
            answers = [*await asyncio.gather(http.get("/me", headers=cookie),
                                             http.get("/maybe", headers=cookie))]
            answers.append(await http.get("/maybe", headers=cookie))  # pre-rotation cookie
        assert [a.json()["token"] for a in answers] == ["AT2", "AT2", "AT2"]
        assert token.call_count == 1
    await middleware.aclose()


# -- Quart: init_app, the helpers, login_required ------------------------------------------


def quart_app(**settings: Any) -> tuple[Any, RenewalMiddleware]:
    pytest.importorskip("quart")
    from quart import Quart

    from renewal_middleware.integrations.quart import (
        access_token,
        current_credentials,
        current_user,
        init_app,
        logged_in_user,
        login_required,
    )

    app = Quart(__name__)
    middleware = init_app(app, settings=make_settings(**settings))

    @app.get("/me")
    @login_required
    async def me() -> dict[str, Any]:
        user, auth = logged_in_user(), current_credentials()
        assert user is current_user() and isinstance(auth, TokenCredentials)
        return {"sub": user.identity if user else None, "token": access_token(),
                "expires_at": auth.expires_at}

    @app.get("/maybe")
    async def maybe() -> dict[str, Any]:
        return {"authenticated": current_user().is_authenticated, "token": access_token()}

    @app.get("/api")
    @login_required(redirect=False)
    async def api() -> dict[str, Any]:
        return {"token": access_token()}

    @app.get("/elsewhere")
    @login_required(login_url="/auth/start")
    async def elsewhere() -> dict[str, Any]:
        return {"token": access_token()}

    return app, middleware


@pytest.fixture
async def quart_client() -> AsyncIterator[tuple[httpx.AsyncClient, RenewalMiddleware]]:
    app, middleware = quart_app()
    async with client(app) as http:
        yield http, middleware


async def test_quart_helpers_and_login_required(
        quart_client: tuple[httpx.AsyncClient, RenewalMiddleware]) -> None:
    http, middleware = quart_client
    cookie = session_cookie(middleware)
    me = await http.get("/me", headers=cookie)
    assert me.status_code == 200
    assert me.json()["sub"] == "alice" and me.json()["token"] == "AT"
    assert (await http.get("/maybe", headers=cookie)).json() == {
        "authenticated": True, "token": "AT"}

    anonymous = await http.get("/me")
    assert_401_json(anonymous)
    assert anonymous.json() == {"error": "not_authenticated"}
    assert (await http.get("/maybe")).json() == {"authenticated": False, "token": None}


@pytest.mark.parametrize("headers", API_CALLS)
async def test_quart_login_required_answers_api_calls_401(
        quart_client: tuple[httpx.AsyncClient, RenewalMiddleware],
        headers: dict[str, str]) -> None:
    http, _ = quart_client
    for path in ("/me", "/api", "/elsewhere"):
        response = await http.get(path + "?x=1", headers=headers)
        assert_401_json(response)
        assert response.json() == {"error": "not_authenticated"}
        assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("login_path", ["/login", "/sign-in"])
async def test_quart_login_required_sends_page_loads_to_login(login_path: str) -> None:
    app, middleware = quart_app(login_path=login_path)
    async with client(app) as http:
        assert_login_redirect(await http.get(TARGET, headers=PAGE), login_path)
        assert_login_redirect(await http.get(TARGET, headers={"accept": "text/html"}), login_path)
        # login_required(login_url=...): that login route, whatever the middleware's.
        other = await http.get("/elsewhere?a=b", headers=PAGE)
        assert other.status_code == 302
        assert other.headers["location"] == "/auth/start?return_to=%2Felsewhere%3Fa%3Db"
        # The opt-out: login_required(redirect=False) answers page loads 401 too.
        assert_401_json(await http.get("/api", headers=PAGE))
        cookie = session_cookie(middleware)
        assert (await http.get("/me", headers={**PAGE, **cookie})).json()["sub"] == "alice"
        assert (await http.get("/api", headers={**PAGE, **cookie})).json() == {"token": "AT"}


def test_quart_helpers_outside_a_request() -> None:
    pytest.importorskip("quart")
    from renewal_middleware.integrations.quart import access_token

    with pytest.raises(RuntimeError):
        access_token()
