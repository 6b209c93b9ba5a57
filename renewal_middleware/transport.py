"""The provider calls behind the flows' effects, over authlib's httpx-based OAuth2 clients."""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import http.cookiejar
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

from authlib.integrations.base_client.errors import OAuthError

try:  # authlib builds its clients on httpx2 when it is installed, else on httpx
    import httpx2 as httpx  # type: ignore[import-not-found, unused-ignore]
except ImportError:
    import httpx

with warnings.catch_warnings():
    # authlib deprecates its httpx fallback; httpx2 needs Python 3.11, and we support 3.10.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client

from .config import Settings
from .errors import ProviderUnavailable, RenewalError, TokenRequestRejected
from .oidc import Effect, GetJSON, TokenRequest, UserInfoRequest

logger = logging.getLogger("renewal_middleware")


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def provider_error(exc: Exception) -> RenewalError:
    """Translate what the HTTP and OAuth layers raise into the package's errors."""
    if isinstance(exc, OAuthError):
        return TokenRequestRejected(str(exc.error or "invalid_request"), exc.description)
    if isinstance(exc, httpx.HTTPStatusError):
        retry = retry_after_seconds(exc.response.headers.get("retry-after"), time.time())
        return ProviderUnavailable(f"the provider answered HTTP {exc.response.status_code}",
                                   retry_after=retry)
    if isinstance(exc, httpx.TimeoutException):
        return ProviderUnavailable("the provider did not answer in time")
    if isinstance(exc, httpx.HTTPError):
        return ProviderUnavailable(f"the provider is unreachable ({type(exc).__name__})")
    return ProviderUnavailable("the provider answered with something that is not JSON")


_EXPECTED = (OAuthError, httpx.HTTPError, ValueError)


class _NoCookies(http.cookiejar.CookieJar):
    """The provider client serves every user's calls: it keeps no cookie, so none that the
    provider sets on one user's answer is ever sent with another's (nor parsed at all)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


def client_options(settings: Settings) -> dict[str, Any]:
    return {
        "cookies": _NoCookies(),
        "client_id": settings.client_id,
        "client_secret": settings.client_secret.reveal(),
        "token_endpoint_auth_method": settings.token_endpoint_auth_method,
        "revocation_endpoint_auth_method": settings.token_endpoint_auth_method,
        "timeout": settings.http_timeout_seconds,
        "follow_redirects": False,
    }


def json_body(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        response.raise_for_status()
    return response.json()


def revocation_result(response: httpx.Response) -> None:
    if response.status_code >= 500:
        response.raise_for_status()
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = {}
        error = body.get("error") if isinstance(body, dict) else None
        raise TokenRequestRejected(str(error or f"HTTP {response.status_code}"))


@dataclasses.dataclass(frozen=True)
class Call:
    """How one effect maps onto an authlib client method, shared by both clients."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def call_for(effect: Effect) -> Call:
    if isinstance(effect, GetJSON):
        return Call("request", ("GET", effect.url), {"withhold_token": True}, json_body)
    if isinstance(effect, TokenRequest):
        return Call("fetch_token", (effect.url,), dict(effect.params), _same)
    if isinstance(effect, UserInfoRequest):
        headers = {"authorization": f"Bearer {effect.access_token}"}
        return Call("request", ("GET", effect.url), {"withhold_token": True, "headers": headers},
                    json_body)
    return Call("revoke_token", (effect.url,),
                {"token": effect.token, "token_type_hint": effect.token_type_hint},
                revocation_result)


class AsyncTransport:
    """Provider calls on one pooled async client; concurrent GETs of one URL share a request."""

    def __init__(self, settings: Settings) -> None:
        self.client = AsyncOAuth2Client(**client_options(settings))
        self._gets: dict[str, asyncio.Future[Any]] = {}

    async def perform(self, effect: Effect) -> Any:
        if isinstance(effect, GetJSON):
            return await self._shared_get(effect)
        return await self._call(call_for(effect))

    async def _call(self, call: Call) -> Any:
        try:
            return call.result(await getattr(self.client, call.method)(*call.args, **call.kwargs))
        except _EXPECTED as exc:
            raise provider_error(exc) from exc

    async def _shared_get(self, effect: GetJSON) -> Any:
        future = self._gets.get(effect.url)
        if future is None:
            future = asyncio.ensure_future(self._call(call_for(effect)))
            self._gets[effect.url] = future
            future.add_done_callback(lambda _: self._gets.pop(effect.url, None))
        return await asyncio.shield(future)

    async def aclose(self) -> None:
        await self.client.aclose()


class SyncTransport:
    """Provider calls on one pooled, thread-safe sync client (for the WSGI driver)."""

    def __init__(self, settings: Settings) -> None:
        self.client = OAuth2Client(**client_options(settings))

    def perform(self, effect: Effect) -> Any:
        call = call_for(effect)
        try:
            return call.result(getattr(self.client, call.method)(*call.args, **call.kwargs))
        except _EXPECTED as exc:
            raise provider_error(exc) from exc

    def close(self) -> None:
        self.client.close()
