"""The apps the benchmarks serve (uvicorn ``--factory`` / waitress ``--call``) or call in-process.

Every app has the same trivial handler on ``/`` (``PlainTextResponse("ok")``) and a second route,
``/__bench/who``, only used to check that the session really is seen by the app.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from benchmarks.common import STARLETTE_SECRET, count_provider_requests, settings
from renewal_middleware import RenewalMiddleware, WSGIRenewalMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def _digest(value: str | None) -> str | None:
    return hashlib.sha256(value.encode()).hexdigest()[:16] if value else None


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def who(request: Request) -> Response:
    scope = request.scope
    user = scope.get("user")
    if user is not None:
        auth = scope["auth"]
        token = getattr(auth, "access_token", None)
        return JSONResponse({"authenticated": bool(user.is_authenticated),
                             "access_token": _digest(token),
                             "expires_at": getattr(auth, "expires_at", None)})
    if "session" in scope:
        token = scope["session"].get("access_token")
        return JSONResponse({"authenticated": token is not None, "access_token": _digest(token)})
    return JSONResponse({"authenticated": False})


def bare() -> Starlette:
    return Starlette(routes=[Route("/", ok), Route("/__bench/who", who)])


def asgi_layer() -> ASGIApp:
    """The floor of any ASGI middleware: a pure layer that only calls the app."""
    app = bare()

    async def layer(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)

    return layer


def starlette_session() -> ASGIApp:
    return SessionMiddleware(bare(), secret_key=STARLETTE_SECRET)


def renewal_signed() -> RenewalMiddleware:
    return RenewalMiddleware(bare(), **settings(False))


def renewal_encrypted() -> RenewalMiddleware:
    return RenewalMiddleware(bare(), **settings(True))


ASGI_APPS = {
    "bare": bare,
    "asgi_layer": asgi_layer,
    "starlette_session": starlette_session,
    "renewal_signed": renewal_signed,
    "renewal_encrypted": renewal_encrypted,
}


# -- WSGI ------------------------------------------------------------------------------------


def _wsgi_ok(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/__bench/who":
        user = environ["renewal_middleware"].user
        auth = environ["renewal_middleware"].auth
        body = json.dumps({
            "authenticated": user is not None and bool(user.is_authenticated),
            "access_token": _digest(getattr(auth, "access_token", None))}).encode()
        start_response("200 OK", [("content-type", "application/json"),
                                  ("content-length", str(len(body)))])
        return [body]
    start_response("200 OK", [("content-type", "text/plain; charset=utf-8"),
                              ("content-length", "2")])
    return [b"ok"]


def wsgi_bare() -> WSGIApplication:
    return _wsgi_ok


def wsgi_renewal_signed() -> WSGIRenewalMiddleware:
    return WSGIRenewalMiddleware(_wsgi_ok, **settings(False))


def wsgi_renewal_encrypted() -> WSGIRenewalMiddleware:
    return WSGIRenewalMiddleware(_wsgi_ok, **settings(True))


WSGI_APPS = {
    "wsgi_bare": wsgi_bare,
    "wsgi_renewal_signed": wsgi_renewal_signed,
    "wsgi_renewal_encrypted": wsgi_renewal_encrypted,
}


# -- against the real provider (P2, P3) -------------------------------------------------------


class OffsetClock:
    """Real time plus an offset the benchmark moves forward (like tests' FakeClock)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def renewal_against_provider() -> ASGIApp:
    """The encrypted middleware against ``BENCH_ISSUER``, with a clock the benchmark moves.

    ``POST /__bench/clock?advance=S`` moves the clock; ``GET /__bench/stats`` says how many
    HTTP requests the middleware sent to each path of the provider (an httpx event hook on its
    pooled client: the benchmark's own instrumentation).
    """
    issuer = os.environ["BENCH_ISSUER"]
    base_url = os.environ["BENCH_BASE_URL"]
    clock = OffsetClock()
    sent: Counter[str] = Counter()

    async def advance(request: Request) -> Response:
        clock.offset += float(request.query_params["advance"])
        return JSONResponse({"offset": clock.offset})

    async def stats(request: Request) -> Response:
        return JSONResponse({"sent": dict(sent), "offset": clock.offset})

    inner = Starlette(routes=[Route("/", ok), Route("/__bench/who", who),
                              Route("/__bench/clock", advance, methods=["POST"]),
                              Route("/__bench/stats", stats)])
    mw = RenewalMiddleware(inner, clock=clock, issuer=issuer,
                           client_id=os.environ["BENCH_CLIENT_ID"],
                           client_secret=os.environ["BENCH_CLIENT_SECRET"],
                           secret_keys=[os.environ["BENCH_SECRET_KEY"]], base_url=base_url)

    async def count(request: Any) -> None:
        sent[urlsplit(str(request.url)).path] += 1

    count_provider_requests(mw, count)
    return mw


def token_stand_in() -> Starlette:
    """A local stand-in provider for P3: discovery, JWKS and a token endpoint that answers a
    refresh_token grant at once with canned tokens (a new refresh token each time, an ID token
    that passes validation), so that the provider's own time does not swamp what the
    middleware adds. ``BENCH_STANDIN_ISSUER`` is its own URL."""
    import base64
    import secrets

    from joserfc import jwt
    from joserfc.jwk import RSAKey

    from benchmarks.common import CLIENT_ID, TokenFactory

    issuer = os.environ["BENCH_STANDIN_ISSUER"]
    client_id = os.environ.get("BENCH_CLIENT_ID", CLIENT_ID)
    factory = TokenFactory()
    now = int(time.time())
    tokens = factory.token_set(0, now)
    key: RSAKey = factory.key
    digest = hashlib.sha256(tokens.access_token.encode()).digest()
    at_hash = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    id_token = str(jwt.encode({"alg": "RS256", "kid": key.kid}, {
        "iss": issuer, "aud": client_id, "sub": tokens.claims["sub"], "iat": now,
        "exp": now + 36000, "at_hash": at_hash, "name": tokens.claims["name"]}, key))
    discovery = {
        "issuer": issuer, "authorization_endpoint": issuer + "/auth",
        "token_endpoint": issuer + "/token", "jwks_uri": issuer + "/jwks",
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    jwks = {"keys": [key.as_dict(private=False)]}
    counts: Counter[str] = Counter()

    async def configuration(request: Request) -> Response:
        counts["discovery"] += 1
        return JSONResponse(discovery)

    async def keys(request: Request) -> Response:
        counts["jwks"] += 1
        return JSONResponse(jwks)

    async def token(request: Request) -> Response:
        from urllib.parse import parse_qs

        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        counts["token"] += 1
        if form.get("grant_type") != "refresh_token" or not form.get("refresh_token"):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse({"access_token": tokens.access_token, "token_type": "Bearer",
                             "expires_in": 30, "refresh_token": secrets.token_urlsafe(32),
                             "id_token": id_token, "scope": "openid profile email offline_access"},
                            headers={"cache-control": "no-store"})

    async def stats(request: Request) -> Response:
        return JSONResponse(dict(counts))

    async def session_claims(request: Request) -> Response:
        """What the benchmark needs to mint a session this stand-in will renew."""
        return JSONResponse({"access_token": tokens.access_token, "id_token": id_token,
                             "claims": tokens.claims})

    return Starlette(routes=[
        Route("/.well-known/openid-configuration", configuration), Route("/jwks", keys),
        Route("/token", token, methods=["POST"]), Route("/__stats", stats),
        Route("/__session", session_claims),
    ])
