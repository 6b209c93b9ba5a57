"""Examples served under ``/app`` behind a real reverse proxy: login, renewal and logout.

The FastAPI example runs under ``uvicorn --root-path /app`` behind a proxy that strips the
prefix (the usual nginx ``proxy_pass http://app/;``); the Flask example under waitress
``--url-prefix /app`` (WSGI ``SCRIPT_NAME``) behind one that keeps it. ``RENEWAL_BASE_URL``
is the public URL, prefix included.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.frameworks.examples import EXAMPLES
from tests.frameworks.test_examples import ROOT, SELECTED, TOKEN_TTL, _wait_for_port
from tests.integration.servers import serve
from tests.op.harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    Provider,
    browse,
    free_port,
    login,
    start_provider,
)

PREFIX = "/app"
#: example -> (extra server arguments, whether the proxy strips the prefix)
BEHIND_PROXY = {
    "fastapi": (["--root-path", PREFIX], True),
    "flask": (["--url-prefix", PREFIX], False),
}
CASES = [name for name in BEHIND_PROXY if name in SELECTED]


def proxy_app(backend: str, strip: bool) -> Starlette:
    """A reverse proxy for ``/app/...``: forwards to ``backend`` as is, headers and all."""
    client = httpx.AsyncClient(base_url=backend, follow_redirects=False, timeout=30)

    async def forward(request: Request) -> Response:
        path = request.url.path
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            return Response("not proxied", status_code=404)
        target = (path[len(PREFIX):] or "/") if strip else path
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"host"]
        upstream = await client.request(
            request.method, target, params=request.url.query or None, headers=headers,
            content=await request.body())
        answer = Response(upstream.content, status_code=upstream.status_code)
        answer.raw_headers = [(k, v) for k, v in upstream.headers.raw
                              if k.lower() not in (b"content-length", b"transfer-encoding")]
        answer.raw_headers.append((b"content-length", str(len(upstream.content)).encode()))
        return answer

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    methods = ["GET", "POST", "PUT", "DELETE", "HEAD"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)],
                     lifespan=lifespan)


@pytest.fixture(scope="module")
def prefixed_provider() -> Iterator[Provider]:
    client = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
              "redirect_uris": [f"http://127.0.0.1:1{PREFIX}/callback",
                                f"http://127.0.0.1:1{PREFIX}/silent"],
              "post_logout_redirect_uris": [f"http://127.0.0.1:1{PREFIX}/"]}
    with start_provider(access_token_ttl=TOKEN_TTL, clients=[client]) as op:
        yield op


@contextmanager
def example_behind_proxy(name: str, provider: Provider) -> Iterator[str]:
    args, strip = BEHIND_PROXY[name]
    port, proxy_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RENEWAL_ISSUER": provider.issuer,
           "RENEWAL_CLIENT_ID": CLIENT_ID, "RENEWAL_CLIENT_SECRET": CLIENT_SECRET,
           "RENEWAL_SECRET_KEYS": "prefix-example-key-0123456789abcdef",
           "RENEWAL_BASE_URL": f"http://127.0.0.1:{proxy_port}{PREFIX}"}
    command = [part.replace("{port}", str(port)) for part in EXAMPLES[name]]
    command = command[:-1] + args + command[-1:]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            _wait_for_port(port, process)
            with serve(proxy_app(f"http://127.0.0.1:{port}", strip), proxy_port) as url:
                yield url + PREFIX
        finally:
            process.terminate()
            process.wait(10)


@pytest.fixture(params=CASES)
async def public_url(request: pytest.FixtureRequest, prefixed_provider: Provider
                     ) -> AsyncIterator[str]:
    with example_behind_proxy(request.param, prefixed_provider) as url:
        yield url


async def test_an_example_under_a_prefix_logs_in_renews_and_logs_out(
        public_url: str, prefixed_provider: Provider) -> None:
    prefixed_provider.reset_stats()
    async with httpx.AsyncClient(timeout=30) as client:
        home = await login(client, public_url, return_to=PREFIX + "/")
        assert home.status_code == 200 and "Alice Liddell" in home.text
        assert str(home.url) == public_url + "/"
        (cookie,) = [c for c in client.cookies.jar if c.name == "renewal_session"]
        assert cookie.path == PREFIX
        me = (await client.get(public_url + "/api/me")).json()
        await asyncio.sleep(TOKEN_TTL / 2 + 0.5)  # inside the grace window
        renewed = (await client.get(public_url + "/api/me")).json()
        assert renewed["expires_at"] > me["expires_at"]
        assert prefixed_provider.stats()["grants"].get("refresh_token") == 1
        session = (await client.get(public_url + "/session")).json()
        assert session["logout_url"].startswith(PREFIX + "/logout?t=")
        out = await browse(client, public_url.removesuffix(PREFIX) + session["logout_url"])
        assert str(out.url) == public_url + "/"
        assert (await client.get(public_url + "/api/me")).status_code == 401
