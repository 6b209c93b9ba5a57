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


def make_settings() -> Settings:
    # An empty environment: RENEWAL_* variables of the machine running the tests do not count.
    return Settings.load(environ={}, issuer=ISSUER, client_id="client", client_secret="secret",
                         secret_keys=["x" * 40], base_url=BASE_URL, store="memory")


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


# -- Litestar: the plugin, the guard, the accessors ---------------------------------------


def litestar_app() -> tuple[Any, RenewalMiddleware]:
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

    plugin = RenewalPlugin(settings=make_settings())
    return Litestar([me, maybe], plugins=[plugin]), plugin.middleware


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


@pytest.fixture
async def quart_client() -> AsyncIterator[tuple[httpx.AsyncClient, RenewalMiddleware]]:
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
    middleware = init_app(app, settings=make_settings())

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


def test_quart_helpers_outside_a_request() -> None:
    pytest.importorskip("quart")
    from renewal_middleware.integrations.quart import access_token

    with pytest.raises(RuntimeError):
        access_token()
