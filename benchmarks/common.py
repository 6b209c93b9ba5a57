"""What every benchmark shares: settings, a realistic token set, and cookies minted with the
middleware's own codec (so that every request carries a valid session far from renewal).

:class:`Codec` and :func:`count_provider_requests` hold every call the benchmarks make into
the package beyond its public API (the middlewares, ``Session``, the request context)."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.types import Message

from renewal_middleware import RenewalMiddleware, Session, WSGIRenewalMiddleware
from renewal_middleware.config import Settings
from renewal_middleware.flows import Flows

#: Secret keys are fixed so that cookies minted here verify in the server processes.
SECRET_KEY = "bench-secret-key-0123456789abcdef-0123456789abcdef"
STARLETTE_SECRET = "bench-starlette-session-secret-0123456789abcdef"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-client-secret"
#: Nothing listens there: a fresh session never calls the provider.
DEAD_ISSUER = "http://127.0.0.1:9"
BASE_URL = "http://127.0.0.1:8000"
TOKEN_ISSUER = "https://tenant.example.com/"
KID = "bench-rs256-1"


def settings(encrypt: bool, **extra: Any) -> dict[str, Any]:
    """Keyword arguments of the middleware in the pass-through benchmarks.

    No idle limit: with one, a session in use has its cookie re-signed once a minute
    and a browser stores the new one; wrk and the in-process loops keep sending the
    first, which would be re-signed on every request after a minute. That once-a-minute
    re-sign is one cookie encoding, not the pass-through.
    """
    return {"issuer": DEAD_ISSUER, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "secret_keys": [SECRET_KEY], "base_url": BASE_URL, "encrypt_cookies": encrypt,
            "idle_timeout_seconds": 0, **extra}


@dataclass(frozen=True)
class TokenSet:
    """A realistic token set, as a provider such as Auth0 or Entra ID would issue it."""

    session_id: str
    access_token: str
    refresh_token: str
    id_token: str
    claims: dict[str, Any]
    expires_at: int
    obtained_at: int

    def session(self) -> Session:
        return Session(id=self.session_id, access_token=self.access_token,
                       expires_at=self.expires_at, obtained_at=self.obtained_at,
                       refresh_token=self.refresh_token, id_token=self.id_token,
                       claims=self.claims, scope="openid profile email offline_access")

    def starlette_session(self) -> dict[str, Any]:
        """The same tokens as a Starlette ``request.session`` would hold them."""
        return {"id": self.session_id, "access_token": self.access_token,
                "refresh_token": self.refresh_token, "id_token": self.id_token,
                "expires_at": self.expires_at, "obtained_at": self.obtained_at,
                "claims": self.claims, "scope": "openid profile email offline_access"}


class TokenFactory:
    """Signs RS256 JWTs (joserfc) with one 2048-bit key."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": KID, "alg": "RS256",
                                                         "use": "sig"})

    def _sign(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        return str(jwt.encode(header, claims, self.key))

    def token_set(self, index: int, now: int, id_token: str | None = None) -> TokenSet:
        """The token set of user ``index``; ``id_token`` reuses an ID token (signing is slow)."""
        sub = f"auth0|{5_000_000_000 + index:012x}c33c6c004bbafe82"
        access_claims = {
            "iss": TOKEN_ISSUER, "sub": sub,
            "aud": ["https://api.example.com/orders", "https://tenant.example.com/userinfo"],
            "iat": now, "exp": now + 3600, "azp": CLIENT_ID,
            "scope": "openid profile email offline_access read:orders write:orders",
            "jti": uuid.UUID(int=index + 1).hex, "permissions": ["read:orders"],
        }
        access_token = self._sign({"alg": "RS256", "typ": "at+jwt", "kid": KID}, access_claims)
        profile = {
            "sub": sub, "name": "Alice Liddell", "given_name": "Alice",
            "family_name": "Liddell", "nickname": "alice", "preferred_username": "alice",
            "email": "alice.liddell@example.com", "email_verified": True,
            "picture": "https://s.gravatar.com/avatar/5d41402abc4b2a76b9719d911017c592?s=480",
            "locale": "en-GB", "zoneinfo": "Europe/London", "updated_at": "2024-05-01T12:00:00Z",
        }
        id_claims = {
            "iss": TOKEN_ISSUER, "aud": CLIENT_ID, "iat": now, "exp": now + 36000,
            "auth_time": now, "nonce": secrets.token_urlsafe(24), "sid": secrets.token_hex(16),
            "at_hash": secrets.token_urlsafe(16), **profile,
        }
        if id_token is None:
            id_token = self._sign({"alg": "RS256", "typ": "JWT", "kid": KID}, id_claims)
        return TokenSet(session_id=secrets.token_urlsafe(12), access_token=access_token,
                        refresh_token=secrets.token_urlsafe(32), id_token=id_token,
                        claims=profile, expires_at=now + 3600, obtained_at=now)


def cookie_header_from_set_cookies(set_cookies: list[str]) -> str:
    """The Cookie request header a browser sends back for these Set-Cookie values."""
    return "; ".join(c.split(";", 1)[0] for c in set_cookies)


# -- the package's internals: the only calls past its public API ---------------------------------


class Codec:
    """The middleware's own session-cookie codec: mints cookies, reads them back."""

    def __init__(self, flows: Flows) -> None:
        self.flows = flows

    @classmethod
    def of(cls, mw: RenewalMiddleware | WSGIRenewalMiddleware) -> Codec:
        """The codec ``mw`` reads its cookies with (its settings and keys)."""
        return cls(mw.flows)

    @classmethod
    def against(cls, issuer: str, client_id: str, client_secret: str, base_url: str) -> Codec:
        """The codec of a middleware with :data:`SECRET_KEY` served against ``issuer``."""
        return cls(Flows(Settings.load(issuer=issuer, client_id=client_id,
                                       client_secret=client_secret, secret_keys=[SECRET_KEY],
                                       base_url=base_url), time.time))

    def mint(self, session: Session, now: float) -> tuple[str, list[str]]:
        """(cookie value, Set-Cookie values) of ``session``."""
        value = self.flows.sessions.encode(session, now)
        return value, self.flows.sessions.cookie.set_headers(value, ())

    def refresh_token(self, cookie_header: str) -> str:
        """The refresh token of the session in ``cookie_header``."""
        view = self.flows.sessions.load(cookie_header, time.time()).view
        assert view is not None and view.session.refresh_token
        return view.session.refresh_token


def count_provider_requests(mw: RenewalMiddleware,
                            hook: Callable[[Any], Awaitable[None]]) -> None:
    """Call ``hook`` with every request ``mw`` sends to the provider (httpx event hook)."""
    mw.transport.client.event_hooks["request"].append(hook)


def renewal_cookie(mw: RenewalMiddleware | WSGIRenewalMiddleware, tokens: TokenSet,
                   now: float) -> tuple[str, list[str]]:
    """(Cookie header, Set-Cookie values) of ``tokens``, minted with the middleware's codec."""
    _, set_cookies = Codec.of(mw).mint(tokens.session(), now)
    return cookie_header_from_set_cookies(set_cookies), set_cookies


def starlette_cookies(token_sets: list[TokenSet]) -> list[tuple[str, list[str]]]:
    """(Cookie header, Set-Cookie values) Starlette's SessionMiddleware writes for each set.

    Minted by a request through the real SessionMiddleware, with the benchmark's secret.
    """
    import asyncio

    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse

    current: list[TokenSet] = []

    async def store(scope: Any, receive: Any, send: Any) -> None:
        Request(scope).session.update(current[0].starlette_session())
        await PlainTextResponse("stored")(scope, receive, send)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    mw = SessionMiddleware(store, secret_key=STARLETTE_SECRET)
    minted: list[tuple[str, list[str]]] = []

    async def mint_all() -> None:
        for tokens in token_sets:
            messages: list[Message] = []

            async def send(message: Message) -> None:
                messages.append(message)  # noqa: B023

            current[:] = [tokens]
            await mw(http_scope("/", []), receive, send)
            set_cookies = [v.decode("latin-1") for k, v in messages[0]["headers"]
                           if k == b"set-cookie"]
            minted.append((cookie_header_from_set_cookies(set_cookies), set_cookies))

    asyncio.run(mint_all())
    return minted


def starlette_cookie(tokens: TokenSet) -> tuple[str, list[str]]:
    return starlette_cookies([tokens])[0]


def http_scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
            "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000), "state": {}}


def wsgi_environ(path: str, cookie: str | None) -> dict[str, Any]:
    import io
    import sys

    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000", "HTTP_ACCEPT": "*/*", "HTTP_USER_AGENT": "bench",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    return environ


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def now_int() -> int:
    return int(time.time())
