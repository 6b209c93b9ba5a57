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


def make_settings(**overrides: Any) -> Settings:
    # An empty environment: RENEWAL_* variables of the machine running the tests do not count.
    options: dict[str, Any] = {
        "issuer": "http://127.0.0.1:9", "client_id": "client", "client_secret": "secret",
        "secret_keys": ["x" * 40], "base_url": BASE_URL, "store": "memory",
        **overrides,
    }
    return Settings.load(environ={}, **options)


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


@pytest.mark.parametrize("headers", [{}, JSON, {"accept": "*/*"},
                                     {"accept": "text/html", "sec-fetch-mode": "cors"},
                                     {"accept": "text/html", "x-requested-with": "XMLHttpRequest"}])
def test_flask_login_required_answers_401_json_to_api_calls(flask_app: Any,
                                                            headers: dict[str, str]) -> None:
    response = flask_app.test_client(use_cookies=False).get("/api/me", headers=headers)
    assert response.status_code == 401
    assert response.content_type == "application/json"
    assert response.get_json() == {"error": "not_authenticated"}
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("headers", [PAGE, {"accept": "text/html"}])
def test_flask_login_required_sends_page_loads_to_login(flask_app: Any,
                                                        headers: dict[str, str]) -> None:
    client = flask_app.test_client(use_cookies=False)
    response = client.get("/api/me?x=1&y=%C3%A9", headers=headers)
    assert response.status_code == 302
    assert response.headers["location"] == "/login?return_to=%2Fapi%2Fme%3Fx%3D1%26y%3D%25C3%25A9"


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
        response = app.test_client(use_cookies=False).get("/private", headers=PAGE)
    finally:
        middleware.close()
    assert response.headers["location"] == "/sign-in?return_to=%2Fprivate"


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

    @login_required(login_url="/login")
    def page(request: Any) -> Any:
        return HttpResponse(f"<p>{get_user(request).display_name}</p>")

    class URLConf:
        urlpatterns: ClassVar[list[Any]] = [
            path("whoami", whoami), path("api/me", me), path("async", async_me), path("page", page),
            path("async-whoami", async_whoami),
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


@pytest.mark.parametrize("path", ["/api/me", "/async"])
@pytest.mark.parametrize("headers", [{}, JSON, PAGE])
def test_django_login_required_answers_401_json(django_app: tuple[Fetch, Flows], path: str,
                                                headers: dict[str, str]) -> None:
    fetch, _ = django_app
    response = fetch(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "not_authenticated"}
    assert response.headers["cache-control"] == "no-store"


def test_django_login_required_with_login_url_sends_page_loads_to_login(
        django_app: tuple[Fetch, Flows]) -> None:
    fetch, flows = django_app
    response = fetch("/page?x=1", headers=PAGE)
    assert response.status_code == 302
    assert response.headers["location"] == "/login?return_to=%2Fpage%3Fx%3D1"
    assert fetch("/page", headers=JSON).status_code == 401
    assert fetch("/page", headers={**PAGE, **session_cookie(flows)}).text == "<p>Alice</p>"


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
