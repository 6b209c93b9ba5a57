"""A Starlette app behind the middleware, served on 127.0.0.1 against a test provider."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from renewal_middleware import (
    RenewalMiddleware,
    TokenCredentials,
    WSGIRenewalMiddleware,
    access_token,
    current_credentials,
    current_user,
    logged_in_user,
)
from tests.integration.servers import FakeClock, serve, serve_wsgi
from tests.op.harness import CLIENT_ID, CLIENT_SECRET, Provider, free_port

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

SECRET = "integration-secret-key-0123456789abcdef"
NAVIGATE = {"sec-fetch-mode": "navigate", "accept": "text/html"}
#: What a browser adds to a request of a page to its own origin (a logout link, a fetch).
SAME_ORIGIN = {"sec-fetch-site": "same-origin"}


async def me(request: Request) -> Response:
    if not request.user.is_authenticated:
        return JSONResponse({"error": "not_authenticated"}, status_code=401)
    return JSONResponse({
        "sub": request.user.identity,
        "name": request.user.display_name,
        "expires_at": request.auth.expires_at,
        "access_token": request.auth.access_token,
    })


async def home(request: Request) -> Response:
    name = request.user.display_name if request.user.is_authenticated else "anonymous"
    return PlainTextResponse(f"hello {name}")


@requires("authenticated", status_code=403)
async def private(request: Request) -> Response:
    return PlainTextResponse("secret page")


async def stream(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        yield b"token="
        yield request.auth.access_token.encode()

    return StreamingResponse(body())


def make_app() -> Starlette:
    return Starlette(routes=[
        Route("/", home), Route("/api/me", me), Route("/private", private),
        Route("/stream", stream),
    ])


def make_wsgi_app() -> WSGIApplication:
    """The same four routes as :func:`make_app`, as a bare WSGI app reading the environ."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        user, token = current_user(environ), access_token(environ)
        path = environ["PATH_INFO"]

        def answer(status: str, body: bytes, kind: str = "text/plain") -> list[bytes]:
            start_response(status, [("content-type", kind)])
            return [body]

        if path == "/":
            name = user.display_name if user.is_authenticated else "anonymous"
            return answer("200 OK", f"hello {name}".encode())
        if path == "/api/me":
            logged_in = logged_in_user(environ)
            if logged_in is None or token is None:
                return answer("401 Unauthorized", b'{"error": "not_authenticated"}',
                              "application/json")
            credentials = current_credentials(environ)
            assert isinstance(credentials, TokenCredentials)
            body = json.dumps({"sub": logged_in.identity, "name": logged_in.display_name,
                               "expires_at": credentials.expires_at, "access_token": token})
            return answer("200 OK", body.encode(), "application/json")
        if path == "/private":
            if not user.is_authenticated:
                return answer("403 Forbidden", b"Forbidden")
            return answer("200 OK", b"secret page")
        if path == "/stream":
            start_response("200 OK", [("content-type", "text/plain")])
            return iter([b"token=", (token or "").encode()])
        return answer("404 Not Found", b"Not Found")

    return app


class Running:
    def __init__(self, url: str, middleware: RenewalMiddleware | WSGIRenewalMiddleware,
                 clock: FakeClock) -> None:
        self.url, self.middleware, self.clock = url, middleware, clock

    def grace_window(self) -> None:
        """Move the middleware's clock 40 s on: a 60 s token is then inside its window."""
        self.clock.advance(40)


@contextmanager
def running(provider: Provider, driver: str = "asgi", port: int | None = None,
            **options: Any) -> Iterator[Running]:
    """The test app behind the ASGI middleware (uvicorn) or the WSGI one (waitress, 8 threads)."""
    clock = FakeClock()
    port = port or free_port()
    settings = dict(clock=clock, issuer=provider.issuer, client_id=CLIENT_ID,
                    client_secret=CLIENT_SECRET, secret_keys=[SECRET],
                    base_url=f"http://127.0.0.1:{port}", **options)
    if driver == "wsgi":
        wsgi = WSGIRenewalMiddleware(make_wsgi_app(), **settings)
        with serve_wsgi(wsgi, port) as url:
            yield Running(url, wsgi, clock)
        wsgi.close()
        return
    middleware = RenewalMiddleware(make_app(), **settings)
    with serve(middleware, port) as url:
        yield Running(url, middleware, clock)


def session_cookie(client: httpx.AsyncClient) -> str:
    values = [c.value for c in client.cookies.jar if c.name == "renewal_session"]
    assert len(values) == 1
    return values[0]
