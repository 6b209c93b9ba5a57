"""Per-login parameters (``/login?prompt=…&max_age=…``) against the real oidc-provider.

What the provider really does with them (oidc-provider 9, read in its source):
``prompt=login`` and ``max_age=0`` (which it turns into ``prompt=login``) show the login
page although its session is alive; ``max_age=N`` shows it only when the session is older
than N seconds, and either puts ``auth_time`` into the ID token. ``login_hint`` and
``ui_locales`` are accepted and kept in the interaction's parameters for the login page;
the test OP's own page does not render them, so here they can only be seen arriving.
``acr_values`` are accepted, but this provider issues no ``acr`` (none configured).

``prompt=login`` and ``max_age=0`` run with ``scope="openid profile email"``: with
``offline_access`` the request also asks ``prompt=consent``, and the test OP's consent step
(``mergeWithLastSubmission: false``) forgets the login just done, so its login page would
come back after the consent, forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from renewal_middleware import RenewalMiddleware, login_url
from tests.integration.servers import FakeClock, serve
from tests.op.harness import CLIENT_ID, CLIENT_SECRET, Provider, browse, free_port, login

LOGIN_FORM = 'id="login-form"'


async def claims(request: Request) -> Response:
    if not request.user.is_authenticated:
        return JSONResponse({"error": "not_authenticated"}, status_code=401)
    return JSONResponse(dict(request.user.claims))


@dataclass
class App:
    url: str
    clock: FakeClock


@pytest.fixture
def app(provider: Provider, request: pytest.FixtureRequest) -> Iterator[App]:
    """The app behind the middleware; ``@pytest.mark.parametrize("app", [{...}], indirect=True)``
    passes settings."""
    provider.reset_stats()
    clock, port = FakeClock(), free_port()
    options: dict[str, Any] = getattr(request, "param", {})
    middleware = RenewalMiddleware(
        Starlette(routes=[Route("/claims", claims)]), clock=clock, issuer=provider.issuer,
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        secret_keys=["login-parameters-secret-0123456789abcdef"],
        base_url=f"http://127.0.0.1:{port}", **options)
    with serve(middleware, port) as url:
        yield App(url, clock)


#: No ``offline_access``, hence no ``prompt=consent`` next to ``login`` (see the module doc).
without_offline_access = pytest.mark.parametrize(
    "app", [{"scope": "openid profile email"}], indirect=True, ids=["no-offline-access"])


async def until_a_page(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """Follow redirects (app → OP → interaction) to the first page, without submitting it."""
    return await client.get(url, follow_redirects=True)


async def app_claims(client: httpx.AsyncClient, app: App) -> dict[str, Any]:
    response = await client.get(app.url + "/claims")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@without_offline_access
async def test_prompt_login_asks_for_the_password_again(app: App) -> None:
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        # Without it the provider's session is enough: no page at all, straight back.
        plain = await until_a_page(client, app.url + "/login?return_to=/claims")
        assert plain.url == app.url + "/claims" and plain.json()["sub"] == "alice"
        started = int(time.time())
        page = await until_a_page(client, app.url + login_url("/claims", prompt="login"))
        assert page.url.path.startswith("/interaction/") and LOGIN_FORM in page.text
        done = await browse(client, str(page.url))
        assert done.url == app.url + "/claims" and done.status_code == 200
        assert done.json()["sub"] == "alice"
        assert done.json()["auth_time"] >= started


@without_offline_access
async def test_max_age_zero_forces_a_fresh_login_and_max_age_n_reuses_it(app: App) -> None:
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        first_login = int(time.time())
        await asyncio.sleep(1.1)  # so that a fresh login has a later auth_time

        fresh = await until_a_page(client, app.url + login_url("/claims", max_age=0))
        assert LOGIN_FORM in fresh.text
        await browse(client, str(fresh.url))
        auth_time = (await app_claims(client, app))["auth_time"]
        assert auth_time > first_login

        # A session younger than max_age: no login page, the same auth_time reaches the app.
        reused = await until_a_page(client, app.url + login_url("/claims", max_age=3600))
        assert reused.url == app.url + "/claims"  # straight back: no page at the provider
        assert reused.json()["auth_time"] == auth_time


async def test_an_auth_time_older_than_max_age_fails_the_login(app: App) -> None:
    async with httpx.AsyncClient() as client:
        await login(client, app.url)
        # The provider's clock says its session is seconds old and reuses it; the app's
        # clock, 10 minutes ahead, finds that sign-in too old for max_age=60.
        app.clock.advance(600)
        start = await client.get(app.url + login_url("/claims", max_age=60))
        callback = await browse(client, start.headers["location"], password="wrong",
                                stop_at=lambda url: url.path == "/callback")
        assert callback.is_redirect  # no login page (the wrong password would stop there)
        refused = await client.get(callback.headers["location"],
                                   headers={"accept": "application/json"})
    assert refused.status_code == 400
    assert refused.json()["error"] == "auth_time_too_old"


async def test_login_hint_ui_locales_and_acr_values_reach_the_provider(
        app: App, provider: Provider) -> None:
    async with httpx.AsyncClient() as client:
        start = await client.get(app.url + login_url(
            "/claims", login_hint="bob", ui_locales=["fr-CA", "fr"],
            acr_values="urn:example:gold"))
        authorize = urlsplit(start.headers["location"])
        assert f"{authorize.scheme}://{authorize.netloc}" == provider.issuer
        sent = {k: v[0] for k, v in parse_qs(authorize.query).items()}
        assert (sent["login_hint"], sent["ui_locales"]) == ("bob", "fr-CA fr")
        assert sent["acr_values"] == "urn:example:gold"
        # The provider accepts them (an invalid request would not reach its login page) ...
        page = await until_a_page(client, start.headers["location"])
        assert page.status_code == 200 and LOGIN_FORM in page.text
        # ... and the login goes on as usual.
        done = await browse(client, str(page.url), username="bob", password="builder")
        assert done.status_code == 200 and done.json()["sub"] == "bob"


async def test_a_refused_prompt_is_dropped(app: App) -> None:
    async with httpx.AsyncClient() as client:
        start = await client.get(app.url + "/login?prompt=create&max_age=soon&foo=bar")
        sent = parse_qs(urlsplit(start.headers["location"]).query)
    assert sent["prompt"] == ["consent"]  # the configured one
    assert "max_age" not in sent and "foo" not in sent


async def test_prompt_none_logs_in_only_with_a_live_provider_session(
        app: App, provider: Provider) -> None:
    async with httpx.AsyncClient() as client:
        # No provider session: back to the page, anonymous, with no error and no login page.
        page = await client.get(app.url + login_url("/claims", prompt="none"),
                                follow_redirects=True)
        assert page.url == app.url + "/claims" and page.status_code == 401
        await login(client, app.url)
        client.cookies.delete("renewal_session")  # the app forgot the user; the provider not
        assert (await client.get(app.url + "/claims")).status_code == 401
        page = await client.get(app.url + login_url("/claims", prompt="none"),
                                follow_redirects=True)
        assert page.status_code == 200 and page.json()["sub"] == "alice"
    assert provider.stats()["authorizations_prompt_none"] == 2


async def test_auth_time_survives_a_refresh(app: App, provider: Provider) -> None:
    async with httpx.AsyncClient() as client:
        start = await client.get(app.url + login_url("/claims", max_age=3600))
        done = await browse(client, start.headers["location"])
        auth_time = done.json()["auth_time"]
        provider.reset_stats()
        app.clock.advance(40)  # the 60 s access token is now inside its grace window
        renewed = await app_claims(client, app)
    assert provider.stats()["grants"] == {"refresh_token": 1}
    assert renewed["auth_time"] == auth_time
