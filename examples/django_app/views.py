"""The example's views: a page and a JSON endpoint reading the user and the token."""

from __future__ import annotations

import html
import time

from django.http import HttpRequest, HttpResponse, JsonResponse

from renewal_middleware import TokenCredentials
from renewal_middleware.integrations.django import get_credentials, get_user, login_required


def home(request: HttpRequest) -> HttpResponse:
    auth = get_credentials(request)
    if not isinstance(auth, TokenCredentials):
        return HttpResponse(
            "<!doctype html><meta charset=utf-8><title>Demo</title>"
            "<h1>Not logged in</h1><p><a href='/login?return_to=/'>Log in</a></p>"
        )
    left = auth.expires_at - int(time.time())
    return HttpResponse(
        "<!doctype html><meta charset=utf-8><title>Demo</title>"
        # request.oidc_user: set by RenewalUserMiddleware (settings.MIDDLEWARE)
        f"<h1>Logged in as {html.escape(request.oidc_user.display_name)}</h1>"
        f"<p>Access token expires at <span id=expires_at>{auth.expires_at}</span>"
        f" (in {left} s); reload this page after that: it is renewed for you.</p>"
        "<p><a href='/api/me'>/api/me</a> · <a href='/logout'>Log out</a></p>"
    )


@login_required  # anonymous: 401 JSON
def me(request: HttpRequest) -> JsonResponse:
    auth = get_credentials(request)
    assert isinstance(auth, TokenCredentials)
    return JsonResponse({"sub": get_user(request).identity, "expires_at": auth.expires_at})
