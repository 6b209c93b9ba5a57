"""The middlewares' keyword arguments, typed: every setting of
:class:`~renewal_middleware.config.Settings`, each optional (the environment may give it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypedDict, get_args

from .values import (
    Secret,
    as_bool,
    as_float,
    as_int,
    as_optional_str,
    as_secret,
    as_secret_keys,
    choice,
)

SameSite = Literal["lax", "strict", "none"]
TokenEndpointAuthMethod = Literal["client_secret_basic", "client_secret_post"]
SessionStorage = Literal["cookie", "server"]


class Options(TypedDict, total=False):
    """The keyword arguments of the middlewares: every setting, each optional (the
    environment may give it), so type checkers catch a misspelt or mistyped one."""

    issuer: str
    client_id: str
    client_secret: str | Secret
    secret_keys: str | Sequence[str | Secret]
    base_url: str
    scope: str
    audience: str | None
    grace_seconds: int | str
    login_path: str
    callback_path: str
    silent_path: str
    logout_path: str
    post_logout_path: str
    login_prompt: str
    token_endpoint_auth_method: TokenEndpointAuthMethod
    encrypt_cookies: bool | str
    cookie_name: str
    cookie_samesite: SameSite
    cookie_domain: str | None
    cookie_path: str
    session_lifetime_seconds: int | str
    login_timeout_seconds: int | str
    http_timeout_seconds: float | str
    clock_skew_seconds: int | str
    refresh_result_seconds: int | str
    session_cache_size: int | str
    store: str
    store_directory: str | None
    backchannel_logout_path: str
    session_path: str
    script_path: str
    csrf_protection: bool | str
    csrf_header: str
    cookie_host_prefix: bool | str
    absolute_lifetime_seconds: int | str
    idle_timeout_seconds: int | str
    session_storage: SessionStorage
    max_pending_logins: int | str


#: How each setting is read from a keyword argument or a ``RENEWAL_*`` string (default:
#: :func:`~renewal_middleware.values.as_str`).
CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "client_secret": as_secret,
    "secret_keys": as_secret_keys,
    "audience": as_optional_str,
    "encrypt_cookies": as_bool,
    "csrf_protection": as_bool,
    "cookie_host_prefix": as_bool,
    "cookie_domain": as_optional_str,
    "store_directory": as_optional_str,
    "grace_seconds": as_int,
    "session_lifetime_seconds": as_int,
    "login_timeout_seconds": as_int,
    "clock_skew_seconds": as_int,
    "refresh_result_seconds": as_int,
    "session_cache_size": as_int,
    "absolute_lifetime_seconds": as_int,
    "max_pending_logins": as_int,
    "idle_timeout_seconds": as_int,
    "http_timeout_seconds": as_float,
    "cookie_samesite": choice(*get_args(SameSite)),
    "token_endpoint_auth_method": choice(*get_args(TokenEndpointAuthMethod)),
    "session_storage": choice(*get_args(SessionStorage)),
}
