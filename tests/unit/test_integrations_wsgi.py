"""The Flask and Django integrations, in process: a real middleware, a minted session cookie.

No network: the session is fresh (nothing to renew) or absent, so the middleware
never calls the provider. Django runs both behind the WSGI and the ASGI driver.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import httpx
import pytest

from renewal_middleware import RenewalMiddleware, Session, Settings, WSGIRenewalMiddleware
from renewal_middleware.flows import Flows

BASE_URL = "http://127.0.0.1:8000"
EXPIRES_IN = 3600
JSON = {"accept": "application/json"}
PAGE = {"accept": "text/html,application/xhtml+xml", "sec-fetch-mode": "navigate"}
#: Requests a guard answers with 401: no redirect to a login page for a script or a client.
API_CALLS = [{}, JSON, {"accept": "*/*"}, {"accept": "text/html", "sec-fetch-mode": "cors"},
             {"accept": "text/html", "x-requested-with": "XMLHttpRequest"}]


def make_settings(**overrides: Any) -> Settings:
    # An empty environment: RENEWAL_* variables of the machine running the tests do not count.
    options: dict[str, Any] = {
        "issuer": "http://127.0.0.1:9", "client_id": "client", "client_secret": "secret",
        "secret_keys": ["x" * 40], "base_url": BASE_URL, "store": "memory",
        **overrides,
    }
    return Settings.load(environ={}, **options)


def assert_401_json(status: int, headers: Any) -> None:
    assert status == 401
    assert headers["content-type"] == "application/json"
    assert headers["www-authenticate"] == "Bearer"
    assert headers["cache-control"] == "no-store"


def session_cookie(flows: Flows) -> dict[str, str]:
    now = int(time.time())
    session = Session(id="s", access_token="AT", expires_at=now + EXPIRES_IN, obtained_at=now,
                      refresh_token=None, id_token=None, claims={"sub": "alice", "name": "Alice"})
    return {"cookie": f"renewal_session={flows.sessions.encode(session, time.time())}"}


# Flask


@pytest.fixture(scope="module")
def flask_app() -> Iterator[Any]:
    pytest.importorskip("flask")
    from flask import Flask, g, jsonify

    from renewal_middleware.integrations.flask import (
        access_token,
        current_credentials,
        current_user,
        init_app,
        login_required,
    )

    app = Flask(__name__)
    middleware = WSGIRenewalMiddleware(app.wsgi_app, settings=make_settings())
    app.wsgi_app = middleware  # type: ignore[method-assign]
    init_app(app)

    @app.get("/whoami")
    def whoami() -> Any:
        auth = current_credentials()
        return jsonify(authenticated=current_user().is_authenticated, token=access_token(),
                       expires_at=getattr(auth, "expires_at", None),
                       g_user=g.user.display_name)

    @app.get("/api/me")
    @login_required
    def me() -> Any:
        return jsonify(sub=current_user().identity, token=access_token())

    @app.get("/async")
    @login_required
    async def async_view() -> Any:
        return jsonify(sub=current_user().identity)

    @app.get("/api/strict")
    @login_required(redirect=False)
    def strict() -> Any:
        return jsonify(sub=current_user().identity)

    @app.get("/elsewhere")
    @login_required(login_url="/auth/start")
    def elsewhere() -> Any:
        return jsonify(sub=current_user().identity)

    app.config["middleware"] = middleware
    yield app
    middleware.close()


def test_flask_helpers_when_logged_in(flask_app: Any) -> None:
    cookie = session_cookie(flask_app.config["middleware"].flows)
    client = flask_app.test_client(use_cookies=False)
    body = client.get("/whoami", headers=cookie).get_json()
    assert body["authenticated"] is True and body["token"] == "AT"
    assert body["g_user"] == "Alice"
    assert body["expires_at"] > time.time() + EXPIRES_IN - 60
    response = client.get("/api/me", headers=cookie)
    assert response.status_code == 200 and response.get_json() == {"sub": "alice", "token": "AT"}


def test_flask_helpers_when_anonymous(flask_app: Any) -> None:
    body = flask_app.test_client(use_cookies=False).get("/whoami").get_json()
    assert body == {"authenticated": False, "token": None, "expires_at": None, "g_user": ""}


@pytest.mark.parametrize("path", ["/api/me", "/api/strict", "/elsewhere"])
@pytest.mark.parametrize("headers", API_CALLS)
def test_flask_login_required_answers_401_json_to_api_calls(flask_app: Any, path: str,
                                                            headers: dict[str, str]) -> None:
    response = flask_app.test_client(use_cookies=False).get(path + "?x=1", headers=headers)
    assert_401_json(response.status_code, response.headers)
    assert response.get_json() == {"error": "not_authenticated"}


def test_flask_login_required_opt_out_answers_page_loads_401(flask_app: Any) -> None:
    client = flask_app.test_client(use_cookies=False)
    response = client.get("/api/strict", headers=PAGE)
    assert_401_json(response.status_code, response.headers)
    cookie = session_cookie(flask_app.config["middleware"].flows)
    assert client.get("/api/strict", headers={**PAGE, **cookie}).get_json() == {"sub": "alice"}


def test_flask_login_required_with_login_url(flask_app: Any) -> None:
    response = flask_app.test_client(use_cookies=False).get("/elsewhere?a=b", headers=PAGE)
    assert response.status_code == 302
    assert response.headers["location"] == "/auth/start?return_to=%2Felsewhere%3Fa%3Db"


@pytest.mark.parametrize("headers", [PAGE, {"accept": "text/html"}])
def test_flask_login_required_sends_page_loads_to_login(flask_app: Any,
                                                        headers: dict[str, str]) -> None:
    client = flask_app.test_client(use_cookies=False)
    response = client.get("/api/me?x=1&y=%C3%A9", headers=headers)
    assert response.status_code == 302
    assert response.headers["location"] == "/login?return_to=%2Fapi%2Fme%3Fx%3D1%26y%3D%25C3%25A9"
    assert response.headers["cache-control"] == "no-store"


def test_flask_login_required_uses_the_configured_login_path() -> None:
    pytest.importorskip("flask")
    from flask import Flask
    from werkzeug.middleware.proxy_fix import ProxyFix

    from renewal_middleware.integrations.flask import login_required

    app = Flask(__name__)

    @app.get("/private")
    @login_required
    def private() -> str:
        return "secret"

    middleware = WSGIRenewalMiddleware(app.wsgi_app, settings=make_settings(login_path="/sign-in"))
    app.wsgi_app = ProxyFix(middleware)  # type: ignore[method-assign]
    try:
        client = app.test_client(use_cookies=False)
        response = client.get("/private?x=1&y=%C3%A9", headers=PAGE)
        api_call = client.get("/private", headers=JSON)
    finally:
        middleware.close()
    assert response.status_code == 302
    assert response.headers["location"] == "/sign-in?return_to=%2Fprivate%3Fx%3D1%26y%3D%25C3%25A9"
    assert_401_json(api_call.status_code, api_call.headers)


def test_flask_login_required_runs_async_views(flask_app: Any) -> None:
    pytest.importorskip("asgiref")
    client = flask_app.test_client(use_cookies=False)
    cookie = session_cookie(flask_app.config["middleware"].flows)
    assert client.get("/async", headers=cookie).get_json() == {"sub": "alice"}
    assert client.get("/async").status_code == 401


# Django


def _django_views() -> Any:
    """A URLconf (any hashable object with ``urlpatterns``) of views using the integration."""
    from django.http import HttpResponse, JsonResponse
    from django.urls import path

    from renewal_middleware.integrations.django import (
        get_access_token,
        get_credentials,
        get_user,
        login_required,
    )

    def whoami(request: Any) -> Any:
        user = get_user(request)
        return JsonResponse({
            "authenticated": user.is_authenticated, "token": get_access_token(request),
            "expires_at": getattr(get_credentials(request), "expires_at", None),
            "oidc_user": request.oidc_user.display_name,
            "request_user": getattr(getattr(request, "user", None), "display_name", None),
        })

    @login_required
    def me(request: Any) -> Any:
        return JsonResponse({"sub": get_user(request).identity,
                             "token": get_access_token(request)})

    @login_required
    async def async_me(request: Any) -> Any:
        return JsonResponse({"sub": get_user(request).identity})

    async def async_whoami(request: Any) -> Any:
        auser = getattr(request, "auser", None)
        return JsonResponse({"request_user": (await auser()).display_name if auser else None})

    @login_required(login_url="/auth/start")
    def page(request: Any) -> Any:
        return HttpResponse(f"<p>{get_user(request).display_name}</p>")

    @login_required(redirect=False)
    def strict(request: Any) -> Any:
        return JsonResponse({"sub": get_user(request).identity})

    @login_required(redirect=False)
    async def async_strict(request: Any) -> Any:
        return JsonResponse({"sub": get_user(request).identity})

    class URLConf:
        urlpatterns: ClassVar[list[Any]] = [
            path("whoami", whoami), path("api/me", me), path("async", async_me), path("page", page),
            path("async-whoami", async_whoami), path("api/strict", strict),
            path("async-strict", async_strict),
        ]

    return URLConf


@pytest.fixture(scope="module")
def django_settings() -> Iterator[None]:
    """Test settings over whatever configuration there is, all undone at the end.

    When nothing configured Django yet, it is configured here and unconfigured after.
    ``django.setup()`` is not called (no apps to load): no app registry or logging
    configuration is left behind for other test modules.
    """
    pytest.importorskip("django")
    from django.conf import settings
    from django.test.utils import override_settings
    from django.utils.functional import empty

    configured_here = not settings.configured
    if configured_here:
        settings.configure(SECRET_KEY="django-test-secret")
    override = override_settings(
        DEBUG=False, ALLOWED_HOSTS=["127.0.0.1"], DEBUG_PROPAGATE_EXCEPTIONS=True,
        ROOT_URLCONF=_django_views(), USE_I18N=False,
        MIDDLEWARE=["renewal_middleware.integrations.django.RenewalUserMiddleware"],
    )
    override.enable()
    try:
        yield
    finally:
        override.disable()
        if configured_here:
            settings._wrapped = empty


@pytest.fixture(autouse=True)
def _no_login_path_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # Django's login_required reads it: one of the machine running the tests does not count.
    monkeypatch.delenv("RENEWAL_LOGIN_PATH", raising=False)


Fetch = Callable[..., httpx.Response]


def _wsgi_fetch(settings: Settings) -> tuple[Fetch, Flows, Callable[[], None]]:
    from django.core.handlers.wsgi import WSGIHandler

    middleware = WSGIRenewalMiddleware(WSGIHandler(), settings=settings)
    client = httpx.Client(transport=httpx.WSGITransport(app=middleware), base_url=BASE_URL)

    def close() -> None:
        client.close()
        middleware.close()

    return client.get, middleware.flows, close


def _asgi_fetch(settings: Settings) -> tuple[Fetch, Flows, Callable[[], None]]:
    from django.core.handlers.asgi import ASGIHandler

    middleware = RenewalMiddleware(ASGIHandler(), settings=settings)

    async def get(url: str, **kwargs: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            return await client.get(url, **kwargs)

    async def aclose() -> None:
        await middleware.aclose()

    return ((lambda url, **kwargs: asyncio.run(get(url, **kwargs))), middleware.flows,
            lambda: asyncio.run(aclose()))


@pytest.fixture(scope="module", params=["wsgi", "asgi"])
def django_app(request: pytest.FixtureRequest,
               django_settings: None) -> Iterator[tuple[Fetch, Flows]]:
    build = _wsgi_fetch if request.param == "wsgi" else _asgi_fetch
    fetch, flows, close = build(make_settings())
    yield fetch, flows
    close()


def test_django_helpers_when_logged_in(django_app: tuple[Fetch, Flows]) -> None:
    fetch, flows = django_app
    body = fetch("/whoami", headers=session_cookie(flows)).json()
    assert body["authenticated"] is True and body["token"] == "AT"
    assert body["expires_at"] > time.time() + EXPIRES_IN - 60
    assert body["oidc_user"] == "Alice"
    assert body["request_user"] is None  # RENEWAL_SET_REQUEST_USER is off
    response = fetch("/api/me", headers=session_cookie(flows))
    assert response.status_code == 200 and response.json() == {"sub": "alice", "token": "AT"}
    assert fetch("/async", headers=session_cookie(flows)).json() == {"sub": "alice"}
    assert fetch("/async-whoami", headers=session_cookie(flows)).json() == {"request_user": None}


def test_django_helpers_when_anonymous(django_app: tuple[Fetch, Flows]) -> None:
    fetch, _ = django_app
    body = fetch("/whoami").json()
    assert body == {"authenticated": False, "token": None, "expires_at": None,
                    "oidc_user": "", "request_user": None}


@pytest.mark.parametrize("path", ["/api/me", "/async", "/page", "/api/strict", "/async-strict"])
@pytest.mark.parametrize("headers", API_CALLS)
def test_django_login_required_answers_401_json_to_api_calls(
        django_app: tuple[Fetch, Flows], path: str, headers: dict[str, str]) -> None:
    fetch, _ = django_app
    response = fetch(path + "?x=1", headers=headers)
    assert_401_json(response.status_code, response.headers)
    assert response.json() == {"error": "not_authenticated"}


@pytest.mark.parametrize("path", ["/api/me", "/async"])
@pytest.mark.parametrize("headers", [PAGE, {"accept": "text/html"}])
def test_django_login_required_sends_page_loads_to_login(
        django_app: tuple[Fetch, Flows], path: str, headers: dict[str, str]) -> None:
    fetch, flows = django_app
    response = fetch(path + "?x=1&y=%C3%A9", headers=headers)
    assert response.status_code == 302
    quoted = path.replace("/", "%2F")
    assert response.headers["location"] == f"/login?return_to={quoted}%3Fx%3D1%26y%3D%25C3%25A9"
    assert response.headers["cache-control"] == "no-store"
    assert fetch(path, headers={**PAGE, **session_cookie(flows)}).json()["sub"] == "alice"


@pytest.mark.parametrize("path", ["/api/strict", "/async-strict"])
def test_django_login_required_opt_out_answers_page_loads_401(
        django_app: tuple[Fetch, Flows], path: str) -> None:
    fetch, flows = django_app
    response = fetch(path, headers=PAGE)
    assert_401_json(response.status_code, response.headers)
    assert fetch(path, headers={**PAGE, **session_cookie(flows)}).json() == {"sub": "alice"}


def test_django_login_required_with_login_url_sends_page_loads_there(
        django_app: tuple[Fetch, Flows]) -> None:
    fetch, flows = django_app
    response = fetch("/page?x=1", headers=PAGE)
    assert response.status_code == 302
    assert response.headers["location"] == "/auth/start?return_to=%2Fpage%3Fx%3D1"
    assert fetch("/page", headers=JSON).status_code == 401
    assert fetch("/page", headers={**PAGE, **session_cookie(flows)}).text == "<p>Alice</p>"


def test_django_login_required_reads_the_login_route_from_the_settings(
        django_app: tuple[Fetch, Flows], monkeypatch: pytest.MonkeyPatch) -> None:
    from django.test.utils import override_settings

    fetch, _ = django_app
    # The middleware's own variable, when it is configured from the environment...
    monkeypatch.setenv("RENEWAL_LOGIN_PATH", "/sign-in")
    assert fetch("/api/me?x=1", headers=PAGE).headers["location"] == (
        "/sign-in?return_to=%2Fapi%2Fme%3Fx%3D1")
    # ... and the Django setting over it (login_url= over both, see above).
    with override_settings(RENEWAL_LOGIN_URL="/accounts/oidc"):
        assert fetch("/api/me", headers=PAGE).headers["location"] == (
            "/accounts/oidc?return_to=%2Fapi%2Fme")
        assert fetch("/page", headers=PAGE).headers["location"] == (
            "/auth/start?return_to=%2Fpage")


def test_django_login_required_under_a_wsgi_script_name(django_settings: None) -> None:
    from django.core.handlers.wsgi import WSGIHandler

    middleware = WSGIRenewalMiddleware(WSGIHandler(), settings=make_settings())
    transport = httpx.WSGITransport(app=middleware, script_name="/app")
    try:
        with httpx.Client(transport=transport, base_url=BASE_URL) as client:
            response = client.get("/api/me?x=1", headers=PAGE)
    finally:
        middleware.close()
    assert response.headers["location"] == "/app/login?return_to=%2Fapp%2Fapi%2Fme%3Fx%3D1"


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_django_middleware_sets_request_user_when_asked(django_settings: None, kind: str) -> None:
    from django.test.utils import override_settings

    with override_settings(RENEWAL_SET_REQUEST_USER=True):
        fetch, flows, close = (_wsgi_fetch if kind == "wsgi" else _asgi_fetch)(make_settings())
    try:
        assert fetch("/whoami", headers=session_cookie(flows)).json()["request_user"] == "Alice"
        assert fetch("/whoami").json()["request_user"] == ""
        assert fetch("/async-whoami", headers=session_cookie(flows)).json() == {
            "request_user": "Alice"}
    finally:
        close()


def test_django_helpers_outside_the_middleware_see_nobody(django_settings: None) -> None:
    from django.test import RequestFactory

    from renewal_middleware.integrations.django import get_access_token, get_user

    request = RequestFactory().get("/whoami")
    assert not get_user(request).is_authenticated
    assert get_access_token(request) is None
