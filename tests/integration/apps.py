"""A Starlette app behind the middleware, served on 127.0.0.1 against a test provider."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from renewal_middleware import RenewalMiddleware
from tests.integration.servers import FakeClock, serve
from tests.op.harness import CLIENT_ID, CLIENT_SECRET, Provider, free_port

SECRET = "integration-secret-key-0123456789abcdef"
NAVIGATE = {"sec-fetch-mode": "navigate", "accept": "text/html"}


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


class Running:
    def __init__(self, url: str, middleware: RenewalMiddleware, clock: FakeClock) -> None:
        self.url, self.middleware, self.clock = url, middleware, clock

    def grace_window(self) -> None:
        """Move the middleware's clock 40 s on: a 60 s token is then inside its window."""
        self.clock.advance(40)


@contextmanager
def running(provider: Provider, **options: Any) -> Iterator[Running]:
    clock = FakeClock()
    port = free_port()
    middleware = RenewalMiddleware(
        make_app(), clock=clock, issuer=provider.issuer, client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET, secret_keys=[SECRET], base_url=f"http://127.0.0.1:{port}",
        **options)
    with serve(middleware, port) as url:
        yield Running(url, middleware, clock)


def session_cookie(client: httpx.AsyncClient) -> str:
    values = [c.value for c in client.cookies.jar if c.name == "renewal_session"]
    assert len(values) == 1
    return values[0]
