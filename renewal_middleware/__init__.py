"""OpenID Connect login and transparent access-token renewal for ASGI and WSGI apps."""

from .access import access_token, current_credentials, current_user, logged_in_user
from .asgi import RenewalMiddleware
from .config import Settings
from .errors import (
    AuthenticationError,
    ConfigurationError,
    LoginDenied,
    ProviderError,
    ProviderUnavailable,
    RenewalError,
    TokenRequestRejected,
)
from .hooks import (
    Hooks,
    LoginEvent,
    LoginRefused,
    LogoutEvent,
    RenewalEvent,
    RenewalFailureEvent,
)
from .login_parameters import login_url
from .session import OIDCUser, Session, TokenCredentials
from .values import Secret
from .wsgi import WSGIRenewalMiddleware

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "Hooks",
    "LoginDenied",
    "LoginEvent",
    "LoginRefused",
    "LogoutEvent",
    "OIDCUser",
    "ProviderError",
    "ProviderUnavailable",
    "RenewalError",
    "RenewalEvent",
    "RenewalFailureEvent",
    "RenewalMiddleware",
    "Secret",
    "Session",
    "Settings",
    "TokenCredentials",
    "TokenRequestRejected",
    "WSGIRenewalMiddleware",
    "access_token",
    "current_credentials",
    "current_user",
    "logged_in_user",
    "login_url",
]
__version__ = "0.1.0"
