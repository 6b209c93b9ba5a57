"""ID-token attacks through the middleware's real callback path, against a hostile OP.

Browser (httpx) → ``/login`` → hostile ``/authorize`` → ``/callback`` → token exchange at the
hostile ``/token`` → ID-token validation. Every forged token must end in a 400 without a session;
the provider failing must end in a 4xx/503, never a 500 or a traceback; and nothing the OP hands
out (code, access, refresh or ID token) may reach the ``renewal_middleware`` logs.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from renewal_middleware import RenewalMiddleware
from renewal_middleware.oidc import JWKS_REFETCH_INTERVAL, JWKS_TTL
from tests.integration.hostile_op import (
    ACCESS_TOKEN_SECONDS,
    HostileOP,
    OPKeys,
    Scenario,
    at_hash,
    hostile_op,
    replace_payload,
    spare_key,
    unsigned_token,
)
from tests.integration.servers import FakeClock, serve
from tests.op.harness import free_port

CLIENT_ID = "hostile-client"
CLIENT_SECRET = "hostile-secret-of-at-least-some-length"
SECRET_KEYS = ["x" * 40]
COOKIE = "renewal_session"
JSON = {"accept": "application/json"}
HTML = {"accept": "text/html"}
LEEWAY = 60  # the middleware's default clock_skew_seconds
#: Everything is plain http on 127.0.0.1; one TLS context for all test clients saves ~0.1 s each.
_TLS = ssl.create_default_context()


def browser(timeout: float = 5) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=_TLS, timeout=timeout)


async def whoami(request: Request) -> Response:
    return PlainTextResponse(request.user.identity if request.user.is_authenticated
                             else "anonymous")


async def name(request: Request) -> Response:
    return PlainTextResponse(request.user.display_name)


@requires("authenticated", status_code=403)
async def private(request: Request) -> Response:
    return PlainTextResponse("secret page")


def make_app() -> Starlette:
    return Starlette(routes=[
        Route("/whoami", whoami), Route("/name", name), Route("/private", private)])


@dataclass
class RP:
    """The relying party under test: the middleware served on its own port."""

    url: str
    middleware: RenewalMiddleware
    clock: FakeClock
    op: HostileOP


@pytest.fixture(scope="module")
def op() -> Iterator[HostileOP]:
    with hostile_op(CLIENT_ID, CLIENT_SECRET) as provider:
        yield provider


class Switch:
    """The ASGI app on the RP's port: forwards each request to the current test's middleware.

    One uvicorn server for the module, a fresh :class:`RenewalMiddleware` (empty discovery and
    JWKS caches) per test: starting and stopping uvicorn per test would double the runtime.
    """

    def __init__(self) -> None:
        self.app: ASGIApp | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self.loop = asyncio.get_running_loop()
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.app is not None, "no test is running"
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def rp_server() -> Iterator[tuple[Switch, str]]:
    switch = Switch()
    with serve(switch, free_port()) as url:
        yield switch, url


@pytest.fixture
def rp(op: HostileOP, rp_server: tuple[Switch, str]) -> Iterator[RP]:
    """A fresh middleware in front of a reset hostile OP."""
    switch, url = rp_server
    clock = FakeClock()
    op.reset(clock)  # the OP's iat/exp follow the middleware's clock
    middleware = RenewalMiddleware(
        make_app(), clock=clock, issuer=op.issuer, client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET, secret_keys=SECRET_KEYS, base_url=url,
        http_timeout_seconds=1)
    switch.app = middleware
    try:
        yield RP(url, middleware, clock, op)
    finally:
        switch.app = None
        op.release()
        assert switch.loop is not None
        # What the lifespan shutdown would do, on the loop the middleware's client ran on.
        asyncio.run_coroutine_threadsafe(middleware.aclose(), switch.loop).result(5)


def _record_text(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info:
        text += logging.Formatter().formatException(record.exc_info)
    return text


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_secrets_in_logs(caplog: pytest.LogCaptureFixture, op: HostileOP,
                       rp_server: tuple[Switch, str]) -> Iterator[None]:
    """After every test: no renewal_middleware record holds a code or token the OP handed out
    (or the client secret), and nothing reached uvicorn's "Exception in ASGI application"."""
    caplog.set_level(logging.DEBUG, logger="renewal_middleware")
    crashes = _Collect()
    uvicorn_error = logging.getLogger("uvicorn.error")  # does not propagate to caplog's handler
    uvicorn_error.addHandler(crashes)
    try:
        yield
    finally:
        uvicorn_error.removeHandler(crashes)
    records = [r for when in ("setup", "call", "teardown") for r in caplog.get_records(when)]
    ours = [_record_text(r) for r in records if r.name.startswith("renewal_middleware")]
    for secret in [*op.issued, CLIENT_SECRET]:
        leaks = [text for text in ours if secret in text]
        assert not leaks, f"a renewal_middleware log record holds an OP secret: {leaks}"
    assert not crashes.records, [_record_text(r) for r in crashes.records]


# -- driving the browser and checking the outcome -------------------------------------------


async def drive_login(client: httpx.AsyncClient, rp: RP, headers: dict[str, str] | None = None,
                      return_to: str = "/private") -> httpx.Response:
    """GET /login, follow to the hostile /authorize, follow back: the /callback response."""
    start = await client.get(rp.url + "/login", params={"return_to": return_to})
    assert start.status_code == 302, start.text
    assert start.headers["location"].startswith(rp.op.issuer + "/authorize?")
    authorize = await client.get(start.headers["location"])
    assert authorize.status_code == 302, authorize.text
    assert authorize.headers["location"].startswith(rp.url + "/callback?")
    return await client.get(authorize.headers["location"], headers=headers or JSON)


def session_set_cookies(response: httpx.Response) -> list[str]:
    """The Set-Cookie values of the session cookie (``renewal_session`` or its chunks)."""
    return [value for value in response.headers.get_list("set-cookie")
            if value.split("=", 1)[0] == COOKIE or value.startswith(COOKIE + ".")]


def jar_session_cookies(client: httpx.AsyncClient) -> list[str]:
    return [c.name for c in client.cookies.jar
            if c.name == COOKIE or c.name.startswith(COOKIE + ".")]


def assert_no_secrets(response: httpx.Response, op: HostileOP) -> None:
    assert "Traceback" not in response.text
    assert not [s for s in op.issued if s in response.text], "the answer echoes an OP secret"


def assert_refused(response: httpx.Response, op: HostileOP, *, error: str = "invalid_id_token",
                   status: int = 400, as_json: bool = True) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert_no_secrets(response, op)
    if as_json:
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"] == error, response.text
    else:
        assert response.headers["content-type"].startswith("text/html")
        assert "Sign-in problem" in response.text
    for value in session_set_cookies(response):
        assert "Max-Age=0" in value, f"a session cookie was set: {value[:60]}"
    # The login transaction is spent: its cookie is deleted, so the callback cannot be replayed.
    transactions = [v for v in response.headers.get_list("set-cookie")
                    if v.startswith(COOKIE + "_tx_")]
    assert transactions and all("Max-Age=0" in v for v in transactions)


async def assert_anonymous(client: httpx.AsyncClient, rp: RP) -> None:
    assert jar_session_cookies(client) == []
    assert (await client.get(rp.url + "/private")).status_code == 403
    assert (await client.get(rp.url + "/whoami")).text == "anonymous"


async def assert_logged_in(client: httpx.AsyncClient, rp: RP, response: httpx.Response,
                           sub: str = "alice") -> None:
    assert response.status_code == 302, (response.status_code, response.text)
    assert response.headers["location"] == "/private"
    cookies = session_set_cookies(response)
    assert cookies and all("Max-Age=0" not in c for c in cookies)
    page = await client.get(rp.url + "/private")
    assert (page.status_code, page.text) == (200, "secret page")
    assert (await client.get(rp.url + "/whoami")).text == sub


async def attempt(client: httpx.AsyncClient, rp: RP, scenario: Scenario,
                  headers: dict[str, str] | None = None) -> httpx.Response:
    """One login with ``scenario`` crafting the ID token: the /callback response."""
    rp.op.scenario = scenario
    return await drive_login(client, rp, headers)


# -- the forged ID tokens ---------------------------------------------------------------------


def _altered_after_signing(claims: dict[str, Any], keys: OPKeys) -> str:
    return replace_payload(keys.sign(claims), {**claims, "sub": "admin"})


def _foreign_key_same_kid(claims: dict[str, Any], keys: OPKeys) -> str:
    return keys.sign(claims, key=spare_key("attacker"), header={"kid": keys.current.kid})


def _jku_to_attacker_jwks(claims: dict[str, Any], keys: OPKeys) -> str:
    attacker = spare_key("attacker")
    keys.foreign.append(attacker)
    return keys.sign(claims, key=attacker, header={"jku": claims["iss"] + "/attacker-jwks"})


def _hs256_client_secret(kid: bool) -> Scenario:
    def scenario(claims: dict[str, Any], keys: OPKeys) -> str:
        header = {"alg": "HS256", "typ": "JWT", **({"kid": keys.current.kid} if kid else {})}
        return jwt.encode(header, claims, OctKey.import_key(CLIENT_SECRET))
    return scenario


def _signed(**changes: Any) -> Scenario:
    """Correctly signed, with claims changed (a value of ``None`` removes the claim)."""
    def scenario(claims: dict[str, Any], keys: OPKeys) -> str:
        claims = {**claims, **changes}
        return keys.sign({k: v for k, v in claims.items() if v is not None})
    return scenario


def _signed_at(offset: int, *, exp_after: int) -> Scenario:
    """Correctly signed, ``iat`` moved by ``offset`` seconds and ``exp`` = ``iat + exp_after``."""
    def scenario(claims: dict[str, Any], keys: OPKeys) -> str:
        iat = claims["iat"] + offset
        return keys.sign({**claims, "iat": iat, "auth_time": iat, "exp": iat + exp_after})
    return scenario


def _unknown_critical_header(claims: dict[str, Any], keys: OPKeys) -> str:
    # RFC 7515 §4.1.11: a recipient that does not understand a "crit" parameter must refuse.
    registry = JWSRegistry(header_registry={"x-policy": HeaderParameter("policy", "str")},
                           algorithms=["RS256"])
    header = {"alg": "RS256", "typ": "JWT", "kid": keys.current.kid,
              "crit": ["x-policy"], "x-policy": "ignore-exp"}
    return jwt.encode(header, claims, keys.current, registry=registry)


def _other_access_token_hash(claims: dict[str, Any], keys: OPKeys) -> str:
    return keys.sign({**claims, "at_hash": at_hash("an access token of another grant")})


#: name: (scenario, a fragment of the error_description naming why it is refused)
ATTACKS: dict[str, tuple[Scenario, str]] = {
    "bad-signature-payload-altered": (_altered_after_signing, "bad_signature"),
    "alg-none": (lambda c, k: unsigned_token(c, {"kid": k.current.kid}), "'none'"),
    "alg-none-without-kid": (lambda c, k: unsigned_token(c), "'none'"),
    "hs256-client-secret": (_hs256_client_secret(kid=False), "'HS256'"),
    "hs256-client-secret-with-op-kid": (_hs256_client_secret(kid=True), "'HS256'"),
    "foreign-rsa-key-with-op-kid": (_foreign_key_same_kid, "bad_signature"),
    "foreign-rsa-key-via-jku-header": (_jku_to_attacker_jwks, "kid"),
    "wrong-iss": (_signed(iss="https://evil.example"), "'iss'"),
    "wrong-aud": (_signed(aud="another-client"), "'aud'"),
    "aud-list-without-client": (_signed(aud=["another-client", "third-client"]), "'aud'"),
    "multi-aud-no-azp": (_signed(aud=[CLIENT_ID, "another-client"]), "'azp'"),
    "multi-aud-wrong-azp": (_signed(aud=[CLIENT_ID, "another-client"], azp="another-client"),
                            "'azp'"),
    "expired-beyond-leeway": (_signed_at(-600, exp_after=600 - LEEWAY - 30), "expired"),
    "iat-far-future": (_signed_at(3600, exp_after=300), "in the future"),
    "exp-nan": (_signed(exp=float("nan")), "'exp'"),
    "exp-a-string": (_signed(exp="9999999999"), "'exp'"),
    "nbf-far-future": (lambda c, k: k.sign({**c, "nbf": c["iat"] + 3600}), "not yet valid"),
    "missing-sub": (_signed(sub=None), "'sub'"),
    "empty-sub": (_signed(sub=""), "subject"),
    "sub-not-a-string": (_signed(sub=12345), "'sub'"),
    "missing-exp": (_signed(exp=None), "'exp'"),
    "missing-iat": (_signed(iat=None), "'iat'"),
    "missing-nonce": (_signed(nonce=None), "'nonce'"),
    "different-nonce": (_signed(nonce="a-nonce-of-another-login"), "'nonce'"),
    "unknown-crit-header": (_unknown_critical_header, "x-policy"),
    "at_hash-of-another-access-token": (_other_access_token_hash, "'at_hash'"),
    "not-a-jwt": (lambda c, k: "this-is.not-a.jwt", "ID token refused"),
    "no-id-token": (lambda c, k: None, "no ID token"),
}


@pytest.mark.parametrize(("scenario", "reason"), ATTACKS.values(), ids=ATTACKS.keys())
async def test_forged_id_token_is_refused(rp: RP, scenario: Scenario, reason: str) -> None:
    async with browser() as client:
        callback = await attempt(client, rp, scenario)
        assert_refused(callback, rp.op)
        assert reason in callback.json()["error_description"]
        await assert_anonymous(client, rp)
    assert rp.op.token_calls == 1
    assert rp.op.userinfo_calls == 0  # refused before the profile is fetched
    assert rp.op.attacker_jwks_fetches == 0  # a jku header is never followed


HTML_ATTACKS = ["bad-signature-payload-altered", "alg-none", "hs256-client-secret", "wrong-iss"]


@pytest.mark.parametrize("name", HTML_ATTACKS)
async def test_forged_id_token_is_refused_with_an_html_page(rp: RP, name: str) -> None:
    async with browser() as client:
        callback = await attempt(client, rp, ATTACKS[name][0], HTML)
        assert_refused(callback, rp.op, as_json=False)
        await assert_anonymous(client, rp)


async def test_discovery_advertising_none_and_hs256_does_not_enable_them(rp: RP) -> None:
    rp.op.id_token_algs = ["none", "HS256"]
    for name in ("alg-none", "hs256-client-secret"):
        async with browser() as client:
            callback = await attempt(client, rp, ATTACKS[name][0])
            assert_refused(callback, rp.op)
            await assert_anonymous(client, rp)


ACCEPTED: dict[str, Scenario] = {
    "correct-token": lambda c, k: k.sign(c),
    "multi-aud-right-azp": _signed(aud=[CLIENT_ID, "another-client"], azp=CLIENT_ID),
    "expired-within-leeway": _signed_at(-600, exp_after=600 - LEEWAY + 30),
    "iat-future-within-leeway": _signed_at(LEEWAY - 30, exp_after=300),
}


@pytest.mark.parametrize("scenario", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_valid_id_token_logs_in(rp: RP, scenario: Scenario) -> None:
    async with browser() as client:
        callback = await attempt(client, rp, scenario)
        await assert_logged_in(client, rp, callback)
    assert rp.op.userinfo_calls == 1


async def test_userinfo_naming_another_subject_is_ignored(rp: RP) -> None:
    rp.op.userinfo_sub = "mallory"  # /userinfo answers {"sub": "mallory", "name": "Mallory"}
    async with browser() as client:
        callback = await attempt(client, rp, _signed(name=None))
        await assert_logged_in(client, rp, callback)
        assert (await client.get(rp.url + "/name")).text == "alice"
    assert rp.op.userinfo_calls == 1


# -- keys: unknown kid, rotation --------------------------------------------------------------


def _signed_with(key_of: Callable[[OPKeys], Any]) -> Scenario:
    return lambda claims, keys: keys.sign(claims, key=key_of(keys))


async def login_ok(rp: RP, scenario: Scenario) -> None:
    async with browser() as client:
        callback = await attempt(client, rp, scenario)
        await assert_logged_in(client, rp, callback)


async def login_refused(rp: RP, scenario: Scenario) -> None:
    async with browser() as client:
        callback = await attempt(client, rp, scenario)
        assert_refused(callback, rp.op)
        await assert_anonymous(client, rp)


async def test_unknown_kid_refetches_the_jwks_once_then_refuses(rp: RP) -> None:
    await login_ok(rp, ACCEPTED["correct-token"])
    assert rp.op.jwks_fetches == 1
    stranger = spare_key("stranger")  # a key the OP never publishes
    rp.clock.advance(JWKS_REFETCH_INTERVAL + 1)
    await login_refused(rp, lambda c, k: k.sign(c, key=stranger))
    assert rp.op.jwks_fetches == 2  # exactly one refetch for the unknown kid
    # Another unknown kid right away: no new fetch, the refetch is rate-limited.
    await login_refused(rp, lambda c, k: k.sign(c, key=stranger))
    assert rp.op.jwks_fetches == 2
    rp.clock.advance(JWKS_REFETCH_INTERVAL + 1)
    await login_refused(rp, lambda c, k: k.sign(c, key=stranger))
    assert rp.op.jwks_fetches == 3


async def test_unknown_kid_on_a_cold_cache_fetches_the_jwks_once(rp: RP) -> None:
    await login_refused(rp, lambda c, k: k.sign(c, key=spare_key("stranger")))
    assert rp.op.jwks_fetches == 1


async def test_unknown_kid_present_after_the_refetch_is_accepted(rp: RP) -> None:
    await login_ok(rp, ACCEPTED["correct-token"])
    assert rp.op.jwks_fetches == 1
    rp.op.keys.rotate(keep_old=False)
    rp.clock.advance(JWKS_REFETCH_INTERVAL + 1)
    await login_ok(rp, ACCEPTED["correct-token"])  # signed with the new key
    assert rp.op.jwks_fetches == 2


async def test_previous_key_accepted_while_listed_refused_once_dropped(rp: RP) -> None:
    keys = rp.op.keys
    await login_ok(rp, ACCEPTED["correct-token"])
    assert rp.op.jwks_fetches == 1
    # The OP rotates and keeps publishing the previous key for a while.
    keys.rotate(keep_old=True)
    rp.clock.advance(JWKS_REFETCH_INTERVAL + 1)
    await login_ok(rp, ACCEPTED["correct-token"])  # new kid: one refetch
    assert rp.op.jwks_fetches == 2
    await login_ok(rp, _signed_with(lambda k: k.previous))
    assert rp.op.jwks_fetches == 2
    # The OP drops the previous key; once the middleware's cached JWKS is refreshed, a token
    # signed with it is refused (and a refetch for its now unknown kid finds nothing).
    keys.unpublish(keys.previous)
    rp.clock.advance(JWKS_TTL + 1)
    await login_refused(rp, _signed_with(lambda k: k.previous))
    assert rp.op.jwks_fetches == 3
    await login_ok(rp, ACCEPTED["correct-token"])
    assert rp.op.jwks_fetches == 3


# -- the authorization response and the token endpoint ----------------------------------------


@pytest.mark.parametrize("headers", [JSON, HTML], ids=["json", "html"])
async def test_iss_parameter_of_another_issuer_is_refused(rp: RP, headers: dict[str, str]
                                                          ) -> None:
    rp.op.authorize_iss = "https://evil.example"
    async with browser() as client:
        callback = await drive_login(client, rp, headers)
        assert_refused(callback, rp.op, error="issuer_mismatch", as_json=headers is JSON)
        await assert_anonymous(client, rp)
    assert rp.op.token_calls == 0  # the code never reaches the token endpoint


@pytest.mark.parametrize("headers", [JSON, HTML], ids=["json", "html"])
async def test_token_endpoint_invalid_grant_is_code_rejected(rp: RP, headers: dict[str, str]
                                                             ) -> None:
    rp.op.token_fault = "invalid_grant"
    async with browser() as client:
        callback = await drive_login(client, rp, headers)
        assert_refused(callback, rp.op, error="code_rejected", as_json=headers is JSON)
        await assert_anonymous(client, rp)
    assert rp.op.token_calls == 1


@pytest.mark.parametrize("headers", [JSON, HTML], ids=["json", "html"])
@pytest.mark.parametrize("fault", ["500", "html", "hang"])
async def test_token_endpoint_failure_is_503(rp: RP, fault: str, headers: dict[str, str]
                                             ) -> None:
    rp.op.token_fault = fault
    async with browser(timeout=10) as client:
        callback = await drive_login(client, rp, headers)
        assert_refused(callback, rp.op, error="provider_unavailable", status=503,
                       as_json=headers is JSON)
        await assert_anonymous(client, rp)
    assert rp.op.token_calls == 1


# -- the refresh path -------------------------------------------------------------------------


async def log_in(client: httpx.AsyncClient, rp: RP) -> None:
    await assert_logged_in(client, rp, await attempt(client, rp, ACCEPTED["correct-token"]))


def into_grace_window(rp: RP) -> None:
    rp.clock.advance(ACCESS_TOKEN_SECONDS - 30)  # 30 s left: inside the 60 s grace window


async def test_refresh_with_a_correct_id_token_renews(rp: RP) -> None:
    async with browser() as client:
        await log_in(client, rp)
        into_grace_window(rp)
        response = await client.get(rp.url + "/whoami")
        assert response.text == "alice"
        assert [c for c in session_set_cookies(response) if "Max-Age=0" not in c]
        assert rp.op.refresh_calls == 1
        assert (await client.get(rp.url + "/private")).text == "secret page"


REFRESH_ATTACKS: dict[str, Scenario] = {
    "another-sub": _signed(sub="mallory"),
    "bad-signature-payload-altered": _altered_after_signing,
    **{name: ATTACKS[name][0] for name in (
        "alg-none", "hs256-client-secret", "wrong-iss", "wrong-aud", "expired-beyond-leeway")},
}


@pytest.mark.parametrize("scenario", REFRESH_ATTACKS.values(), ids=REFRESH_ATTACKS.keys())
async def test_refresh_with_a_bad_id_token_ends_the_session(rp: RP, scenario: Scenario
                                                            ) -> None:
    async with browser() as client:
        await log_in(client, rp)
        rp.op.refresh_scenario = scenario
        into_grace_window(rp)
        response = await client.get(rp.url + "/whoami")
        assert response.text == "anonymous"
        cleared = session_set_cookies(response)
        assert cleared and all("Max-Age=0" in c for c in cleared)
        assert rp.op.refresh_calls == 1
        await assert_anonymous(client, rp)
        assert rp.op.refresh_calls == 1


@pytest.mark.parametrize(("sub", "after"), [("alice", "alice"), ("mallory", "anonymous")],
                         ids=["same-sub-renews", "another-sub-ends-the-session"])
async def test_silent_renewal_checks_the_subject(rp: RP, sub: str, after: str) -> None:
    """The other callback path: ``/silent`` (prompt=none) must keep the same user or none."""
    async with browser() as client:
        await log_in(client, rp)
        rp.op.scenario = _signed(sub=sub)
        start = await client.get(rp.url + "/silent", params={"return_to": "/whoami"})
        assert start.status_code == 302 and "prompt=none" in start.headers["location"]
        authorize = await client.get(start.headers["location"])
        assert authorize.headers["location"].startswith(rp.url + "/silent?")
        back = await client.get(authorize.headers["location"])
        assert_no_secrets(back, rp.op)
        assert (back.status_code, back.headers["location"]) == (302, "/whoami")
        renewed = [c for c in session_set_cookies(back) if "Max-Age=0" not in c]
        assert bool(renewed) == (after != "anonymous")
        assert (await client.get(rp.url + "/whoami")).text == after
        if after == "anonymous":
            await assert_anonymous(client, rp)


async def test_refused_logins_are_logged_without_secrets(
        rp: RP, caplog: pytest.LogCaptureFixture) -> None:
    """The autouse check is not vacuous: the refusals are logged, and without any secret."""
    for name in ("bad-signature-payload-altered", "alg-none", "wrong-iss", "different-nonce"):
        async with browser() as client:
            callback = await attempt(client, rp, ATTACKS[name][0])
            assert_refused(callback, rp.op)
    messages = [r.getMessage() for r in caplog.records if r.name == "renewal_middleware"]
    assert messages.count("login callback refused: invalid_id_token") == 4
    assert len(rp.op.issued) == 4 * 4  # code, access, refresh and ID token per attempt
    # The package's own records: the test browser's httpx client logs the callback URLs
    # it fetched (code included) once a framework (Litestar) has set the root level to INFO.
    for secret in rp.op.issued:
        assert not [m for m in messages if secret in m]
