"""Errors raised by renewal_middleware, and the one place that maps them to HTTP.

    RenewalError                      every error the package raises
    ├── ConfigurationError            a setting is missing or invalid (at construction)
    ├── ProviderError                 the OpenID provider could not help
    │   ├── ProviderUnavailable       down, slow, 5xx, not JSON: worth retrying later
    │   └── TokenRequestRejected      an OAuth error answer (invalid_grant, invalid_client, ...)
    └── AuthenticationError           a login or callback that must be refused
        └── LoginDenied               the app's after_login hook refused the user (403)

Every error carries a stable ``code`` and the HTTP ``status`` it maps to on the
middleware's own routes. Messages never contain a token or cookie value.
"""

from __future__ import annotations


class RenewalError(Exception):
    """Base class of every error raised by renewal_middleware."""

    code: str = "renewal_error"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigurationError(RenewalError, ValueError):
    """A setting is missing or invalid; the message names the setting and its variable."""

    code = "configuration_error"


class ProviderError(RenewalError):
    """The OpenID provider did not give a usable answer."""

    code = "provider_error"
    status = 502


class ProviderUnavailable(ProviderError):
    """The provider is down, slow or answered garbage; retrying later may work."""

    code = "provider_unavailable"
    status = 503

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TokenRequestRejected(ProviderError):
    """The token endpoint answered with an OAuth error such as ``invalid_grant``."""

    code = "token_request_rejected"
    status = 400

    def __init__(self, error: str, description: str | None = None) -> None:
        detail = f": {description}" if description else ""
        super().__init__(f"the provider rejected the token request ({error}){detail}")
        self.error = error
        self.description = description


class AuthenticationError(RenewalError):
    """A login, callback or silent renewal that must be refused."""

    code = "authentication_failed"
    status = 400


class LoginDenied(AuthenticationError):
    """The app's ``after_login`` hook refused the user; the message is the app's reason."""

    code = "login_refused"
    status = 403
