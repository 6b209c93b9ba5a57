"""OpenID Connect login and transparent access-token renewal for any ASGI app."""

from .asgi import RenewalMiddleware
from .config import Secret, Settings
from .errors import (
    AuthenticationError,
    ConfigurationError,
    ProviderError,
    ProviderUnavailable,
    RenewalError,
    TokenRequestRejected,
)
from .session import OIDCUser, Session, TokenCredentials

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "OIDCUser",
    "ProviderError",
    "ProviderUnavailable",
    "RenewalError",
    "RenewalMiddleware",
    "Secret",
    "Session",
    "Settings",
    "TokenCredentials",
    "TokenRequestRejected",
]
__version__ = "0.1.0"
