"""Django: the user and the access token of a request, ``login_required``, and a middleware.

Wrap the project's application in ``wsgi.py`` or ``asgi.py`` (settings come from the
``RENEWAL_*`` variables, or keyword arguments)::

    application = WSGIRenewalMiddleware(get_wsgi_application())   # wsgi.py
    application = RenewalMiddleware(get_asgi_application())       # asgi.py

then, in views, whichever of the two serves the request::

    from renewal_middleware.integrations.django import get_access_token, get_user, login_required

    @login_required
    def orders(request):
        return JsonResponse(fetch_orders(get_user(request).identity, get_access_token(request)))

Optionally add ``"renewal_middleware.integrations.django.RenewalUserMiddleware"`` to
``MIDDLEWARE`` for ``request.oidc_user`` (and ``request.user`` with the Django setting
``RENEWAL_SET_REQUEST_USER = True``).

Django ships no type annotations: its objects are ``Any`` here.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast, overload

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings  # type: ignore[import-untyped]
from django.http import HttpResponseRedirect, JsonResponse  # type: ignore[import-untyped]
from starlette.authentication import AuthCredentials, BaseUser

from .. import access
from ..requests import is_navigation
from ..values import env_name
from ._guards import (
    CHALLENGE,
    DEFAULT_LOGIN_PATH,
    NO_STORE,
    asgi_target,
    login_location,
    wsgi_target,
)

__all__ = [
    "RenewalUserMiddleware",
    "get_access_token",
    "get_credentials",
    "get_user",
    "login_required",
]

_View = TypeVar("_View", bound=Callable[..., Any])


def _carrier(request: Any) -> Mapping[str, Any]:
    # Under ASGI the middleware writes to the scope (``request.scope``, which ASGI requests
    # carry); under WSGI to the environ, which is ``request.META`` itself.
    scope = getattr(request, "scope", None)
    return scope if isinstance(scope, Mapping) else cast("Mapping[str, Any]", request.META)


def get_user(request: Any) -> BaseUser:
    """The user of ``request``: an :class:`~renewal_middleware.OIDCUser`, or Starlette's
    ``UnauthenticatedUser`` (``.is_authenticated`` is false) when anonymous."""
    return access.current_user(_carrier(request))


def get_credentials(request: Any) -> AuthCredentials:
    """:class:`~renewal_middleware.TokenCredentials` (``.access_token``, ``.expires_at``,
    ``.claims``) when logged in, empty ``AuthCredentials`` otherwise."""
    return access.current_credentials(_carrier(request))


def get_access_token(request: Any) -> str | None:
    """The current access token (already renewed if it was due), or ``None`` when anonymous."""
    return access.access_token(_carrier(request))


@overload
def login_required(view: _View, /) -> _View: ...
@overload
def login_required(*, login_url: str | None = None,
                   redirect: bool = True) -> Callable[[_View], _View]: ...


def login_required(view: _View | None = None, /, *, login_url: str | None = None,
                   redirect: bool = True) -> _View | Callable[[_View], _View]:
    """Serve the view (sync or async) to logged-in users only.

    An anonymous page load — as the middleware tells one: ``GET`` with
    ``Sec-Fetch-Mode: navigate``, or ``Accept: text/html`` without ``Sec-Fetch-Mode`` —
    is redirected (``302``) to the middleware's login route, with ``return_to`` set to
    the requested URL. Any other anonymous request gets ``401`` with
    ``{"error": "not_authenticated"}`` and ``WWW-Authenticate: Bearer``.

    Django cannot see the middleware wrapping its application, so the login route is
    ``login_url`` when given, else the Django setting ``RENEWAL_LOGIN_URL``, else the
    ``RENEWAL_LOGIN_PATH`` environment variable (the middleware's own, when it is given
    no ``login_path`` keyword) under the WSGI ``SCRIPT_NAME``, else ``/login``.
    ``redirect=False`` answers page loads with the ``401`` too::

        @login_required
        def page(request): ...

        @login_required(redirect=False)
        def api(request): ...
    """

    def decorate(view: _View) -> _View:
        if iscoroutinefunction(view):
            @functools.wraps(view)
            async def async_wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
                if not get_user(request).is_authenticated:
                    return _login_response(request, redirect, login_url)
                return await view(request, *args, **kwargs)

            return cast("_View", async_wrapper)

        @functools.wraps(view)
        def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
            if not get_user(request).is_authenticated:
                return _login_response(request, redirect, login_url)
            return view(request, *args, **kwargs)

        return cast("_View", wrapper)

    return decorate if view is None else decorate(view)


def _login_response(request: Any, redirect: bool, login_url: str | None) -> Any:
    headers = request.headers
    if redirect and is_navigation(
            request.method, headers.get("Sec-Fetch-Mode"), headers.get("Accept"),
            headers.get("X-Requested-With")):
        scope = getattr(request, "scope", None)
        if isinstance(scope, Mapping):
            target, under_asgi = asgi_target(scope), True
        else:
            target, under_asgi = wsgi_target(request.META), False
        if login_url is None:
            login_url = _login_url(request, under_asgi)
        response = HttpResponseRedirect(login_location(login_url, target))
    else:
        response = JsonResponse({"error": "not_authenticated"}, status=401)
        response["WWW-Authenticate"] = CHALLENGE
    for name, value in NO_STORE.items():
        response[name] = value
    return response


def _login_url(request: Any, under_asgi: bool) -> str:
    configured = getattr(settings, "RENEWAL_LOGIN_URL", None)
    if configured:
        return str(configured)
    path = os.environ.get(env_name("login_path")) or DEFAULT_LOGIN_PATH
    # The WSGI middleware serves its routes under SCRIPT_NAME; the ASGI one at the path.
    return path if under_asgi else str(request.META.get("SCRIPT_NAME", "")).rstrip("/") + path


class RenewalUserMiddleware:
    """Django middleware setting ``request.oidc_user`` (see :func:`get_user`).

    With ``RENEWAL_SET_REQUEST_USER = True`` in Django's settings it also sets
    ``request.user`` (and ``request.auser()``), so ``request.user.is_authenticated``
    and Django's own ``login_required(login_url="/login", redirect_field_name="return_to")``
    (which needs ``django.contrib.auth`` installed) see the OpenID Connect user. That
    user is no ``django.contrib.auth`` model (no ``pk``, no permissions): leave the
    setting off if anything expects one (the admin does). When ``AuthenticationMiddleware``
    is installed too, list this one after it. Sync and async capable: no thread hop
    under ASGI.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.set_request_user = bool(getattr(settings, "RENEWAL_SET_REQUEST_USER", False))
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        user = get_user(request)
        request.oidc_user = user
        if self.set_request_user:
            request.user = user
            request.auser = functools.partial(_same_user, user)  # Django 5's async accessor
        if self._is_async:
            return self._respond_async(request)
        return self.get_response(request)

    async def _respond_async(self, request: Any) -> Any:
        return await self.get_response(request)


async def _same_user(user: BaseUser) -> BaseUser:
    return user
