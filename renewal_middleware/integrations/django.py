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
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast, overload
from urllib.parse import urlencode

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings  # type: ignore[import-untyped]
from django.http import HttpResponseRedirect, JsonResponse  # type: ignore[import-untyped]
from starlette.authentication import AuthCredentials, BaseUser

from .. import access
from ..requests import is_navigation

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
def login_required(*, login_url: str | None = None) -> Callable[[_View], _View]: ...


def login_required(view: _View | None = None, /, *,
                   login_url: str | None = None) -> _View | Callable[[_View], _View]:
    """Serve the view (sync or async) to logged-in users only.

    Anonymous requests get ``401`` with ``{"error": "not_authenticated"}``. With
    ``login_url`` (the middleware's login route, ``"/login"`` by default), anonymous
    page loads — as the middleware tells them: ``GET`` with ``Sec-Fetch-Mode: navigate``,
    or ``Accept: text/html`` without ``Sec-Fetch-Mode`` — are redirected there instead,
    with ``return_to`` set to the requested URL::

        @login_required
        def api(request): ...

        @login_required(login_url="/login")
        def page(request): ...
    """

    def decorate(view: _View) -> _View:
        if iscoroutinefunction(view):
            @functools.wraps(view)
            async def async_wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
                if not get_user(request).is_authenticated:
                    return _login_response(request, login_url)
                return await view(request, *args, **kwargs)

            return cast("_View", async_wrapper)

        @functools.wraps(view)
        def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
            if not get_user(request).is_authenticated:
                return _login_response(request, login_url)
            return view(request, *args, **kwargs)

        return cast("_View", wrapper)

    return decorate if view is None else decorate(view)


def _login_response(request: Any, login_url: str | None) -> Any:
    headers = request.headers
    if login_url is not None and is_navigation(
            request.method, headers.get("Sec-Fetch-Mode"), headers.get("Accept"),
            headers.get("X-Requested-With")):
        query = urlencode({"return_to": request.get_full_path()})
        response = HttpResponseRedirect(f"{login_url}?{query}")
    else:
        response = JsonResponse({"error": "not_authenticated"}, status=401)
    response["Cache-Control"] = "no-store"
    return response


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
