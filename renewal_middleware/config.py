"""Settings: one frozen dataclass, read from keyword arguments and ``RENEWAL_*`` variables."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError
from .options import CONVERTERS, SameSite, SessionStorage, TokenEndpointAuthMethod
from .options import Options as Options  # re-exported: the middlewares' keywords
from .values import (
    Secret,
    as_str,
    check_url,
    env_name,
    fail,
)

MIN_SECRET_KEY_LENGTH = 32




@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the middleware needs to know, validated once at construction.

    Build it with :meth:`Settings.load`, which takes keyword arguments first and
    falls back to the ``RENEWAL_<NAME>`` environment variable of each setting.
    """

    #: The provider's issuer URL; discovery at ``/.well-known/openid-configuration``.
    issuer: str
    #: The client registered at the provider.
    client_id: str
    #: The client's secret (never logged).
    client_secret: Secret
    #: Comma-separated, newest first: the first signs, all verify; 32 characters or more each.
    secret_keys: tuple[Secret, ...]
    #: The app's public URL, with its path prefix if any; builds the redirect URIs.
    base_url: str
    #: ``offline_access`` asks for a refresh token.
    scope: str = "openid profile email offline_access"
    #: Sent as ``audience`` on authorization requests (Auth0 APIs).
    audience: str | None = None
    #: Renew when fewer seconds than this remain (at most half the token's lifetime).
    grace_seconds: int = 60
    #: Starts a login (``?return_to=`` and the per-login parameters).
    login_path: str = "/login"
    #: Where the provider sends the browser back after a login.
    callback_path: str = "/callback"
    #: Silent (``prompt=none``) renewals start and end here.
    silent_path: str = "/silent"
    #: Logs the user out (GET or POST; see CSRF).
    logout_path: str = "/logout"
    #: Where the provider sends the user after logout.
    post_logout_path: str = "/"
    #: ``auto`` sends ``prompt=consent`` when ``offline_access`` is asked for (OIDC Core §11);
    #: an empty value sends no prompt; anything else is sent as it is.
    login_prompt: str = "auto"
    #: How the client authenticates at the token endpoint.
    token_endpoint_auth_method: TokenEndpointAuthMethod = "client_secret_basic"
    #: Encrypt cookie payloads (AES-GCM) on top of signing them, so tokens are not readable.
    encrypt_cookies: bool = True
    #: Chunks are ``<name>.0``, ``.1``, …; ``__Host-`` is prepended over https.
    cookie_name: str = "renewal_session"
    #: ``lax``, ``strict`` or ``none`` (https only).
    cookie_samesite: SameSite = "lax"
    #: A ``Domain`` for the session cookie (every host under it then receives it).
    cookie_domain: str | None = None
    #: The session cookie's ``Path``, under the app's prefix.
    cookie_path: str = "/"
    #: A session cookie not re-issued for this long is refused (it is re-issued at every renewal).
    session_lifetime_seconds: int = 14 * 24 * 3600
    #: How long a login (or silent renewal) may take between /login and /callback.
    login_timeout_seconds: int = 900
    #: Every call to the provider.
    http_timeout_seconds: float = 10.0
    #: Leeway for ID-token ``exp``/``iat`` and for cookies signed by a host whose clock is ahead.
    clock_skew_seconds: int = 60
    #: How long a refresh result is kept for requests that still carry the pre-rotation cookie.
    refresh_result_seconds: int = 60
    #: How many verified sessions are remembered (about 6 KB each); more active sessions
    #: than this cost a signature check and a decryption per request.
    session_cache_size: int = 4096
    #: Where every process serving the app shares renewals and logouts: ``host`` (the
    #: workers of this host, nothing to run), ``memory`` (this process only) or a
    #: ``redis://`` / ``rediss://`` URL (several hosts; extra ``renewal-middleware[redis]``).
    store: str = "host"
    #: The ``host`` store's directory (default: one per user and client under the temp dir).
    store_directory: str | None = None
    #: OpenID Connect Back-Channel Logout: the provider POSTs logout tokens here.
    backchannel_logout_path: str = "/backchannel-logout"
    #: ``GET`` answers what a page's script may know of the session (never a token).
    session_path: str = "/session"
    #: The renewal script for pages (``<script src="/renewal.js" defer></script>``).
    script_path: str = "/renewal.js"
    #: Refuse an unsafe request (POST, PUT, PATCH, DELETE…) of a session that is neither
    #: a same-origin form nor carries ``csrf_header``: no other site can make one.
    csrf_protection: bool = True
    #: The header scripts send (value ``1``); a custom header forces a CORS preflight.
    csrf_header: str = "X-CSRF"
    #: Over https, name the session cookie ``__Host-<cookie_name>``: the browser then
    #: refuses it unless it is Secure, for the whole host and set by this host.
    cookie_host_prefix: bool = True
    #: A session ends this long after its login, however active (0: never).
    absolute_lifetime_seconds: int = 7 * 24 * 3600
    #: A session ends after this long without a request (0: never); activity is recorded
    #: at most once a minute (or a tenth of this), so the pass-through stays free.
    idle_timeout_seconds: int = 24 * 3600
    #: ``cookie``: the tokens live in the session cookie; ``server``: in the store, the
    #: cookie holds only a signed session id (for token sets too large for cookies).
    session_storage: SessionStorage = "cookie"
    #: At most this many logins pending at once per browser: the oldest goes when a new
    #: one starts (each has a transaction cookie until its callback).
    max_pending_logins: int = 8

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> Settings:
        """Build settings from ``kwargs``, falling back to ``RENEWAL_*`` variables."""
        env: Mapping[str, str] = os.environ if environ is None else environ
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - set(fields))
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, field in fields.items():
            raw = kwargs.get(name)
            if raw is None and env_name(name) in env:
                raw = env[env_name(name)]
            if raw is None:
                if field.default is dataclasses.MISSING:
                    raise ConfigurationError(
                        f"setting {name!r} is required: pass {name}=... or set {env_name(name)}"
                    )
                continue
            convert: Callable[[str, Any], Any] = CONVERTERS.get(name, as_str)
            values[name] = convert(name, raw)
        settings = cls(**values)
        settings._validate()
        return settings

    # Derived values, computed once.

    @property
    def redirect_uri(self) -> str:
        return self.base_url + self.callback_path

    @property
    def silent_redirect_uri(self) -> str:
        return self.base_url + self.silent_path

    @property
    def post_logout_redirect_uri(self) -> str:
        return self.base_url + self.post_logout_path

    @property
    def own_paths(self) -> tuple[str, ...]:
        """Every path the middleware answers itself (and never passes to the app)."""
        return (self.login_path, self.callback_path, self.silent_path, self.logout_path,
                self.backchannel_logout_path, self.session_path, self.script_path)

    @property
    def lock_seconds(self) -> float:
        """How long a renewal may hold its session's lock: two provider calls and a margin."""
        return 2 * self.http_timeout_seconds + 5

    @property
    def secure_cookies(self) -> bool:
        return urlsplit(self.base_url).scheme.lower() == "https"

    @property
    def prefix(self) -> str:
        """The path the app is served under (``/app`` for ``https://example.com/app``), or ""."""
        return urlsplit(self.base_url).path

    def public(self, path: str) -> str:
        """``path`` of the app as the browser sees it, under :attr:`prefix`."""
        return self.prefix + path

    @property
    def home(self) -> str:
        """The app's start page, as the browser sees it (where error pages link back to)."""
        return self.prefix + "/"

    @property
    def cookie_scope(self) -> str:
        """The session cookie's ``Path``: ``cookie_path`` under the app's prefix."""
        return (self.prefix + (self.cookie_path if self.cookie_path != "/" else "")) or "/"

    @property
    def origin(self) -> str:
        """The app's origin as a browser sends it in ``Origin``."""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def session_cookie_name(self) -> str:
        """The session cookie's name: ``__Host-`` prefixed whenever the profile allows."""
        if (self.secure_cookies and self.cookie_host_prefix and not self.cookie_domain
                and self.cookie_scope == "/"):
            return "__Host-" + self.cookie_name
        return self.cookie_name

    @property
    def transaction_cookie_prefix(self) -> str:
        # Scoped to a callback path, so ``__Host-`` is out of reach; ``__Secure-`` is not.
        secure = "__Secure-" if self.secure_cookies else ""
        return f"{secure}{self.cookie_name}_tx_"

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.scope.split())

    @property
    def effective_login_prompt(self) -> str | None:
        if self.login_prompt == "auto":
            return "consent" if "offline_access" in self.scopes else None
        return self.login_prompt or None

    def _validate(self) -> None:
        check_url("issuer", self.issuer)
        check_url("base_url", self.base_url)
        base = urlsplit(self.base_url)
        if base.query or base.fragment or "?" in self.base_url or "#" in self.base_url:
            fail("base_url", "must be the app's public URL, such as https://example.com/app, "
                 "without query or fragment")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        object.__setattr__(self, "issuer", self.issuer.rstrip("/"))
        if not self.client_id:
            fail("client_id", "must not be empty")
        if not self.secret_keys:
            fail("secret_keys", "needs at least one key")
        for key in self.secret_keys:
            if len(key.reveal()) < MIN_SECRET_KEY_LENGTH:
                fail(
                    "secret_keys",
                    f"each key needs at least {MIN_SECRET_KEY_LENGTH} characters; make one with "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                )
        if "openid" not in self.scopes:
            fail("scope", "must include 'openid'")
        self._validate_paths()
        if self.store not in ("host", "memory") and urlsplit(self.store).scheme not in (
                "redis", "rediss"):
            fail("store", "must be 'host', 'memory' or a redis:// or rediss:// URL")
        if self.cookie_samesite == "none" and not self.secure_cookies:
            fail("cookie_samesite", "'none' needs an https base_url (browsers require Secure)")
        for name in ("grace_seconds", "login_timeout_seconds", "clock_skew_seconds",
                     "refresh_result_seconds", "absolute_lifetime_seconds",
                     "idle_timeout_seconds"):
            if getattr(self, name) < 0:
                fail(name, "must not be negative")
        for name in ("session_lifetime_seconds", "http_timeout_seconds", "session_cache_size",
                     "max_pending_logins"):
            if getattr(self, name) <= 0:
                fail(name, "must be positive")
        if not self.cookie_name or not self.cookie_name.replace("_", "").replace("-", "").isalnum():
            fail("cookie_name", "may contain only letters, digits, '-' and '_'")
        if self.cookie_name.lower().startswith(("__host-", "__secure-")):
            fail("cookie_name", "takes no prefix: __Host- is added over https")
        if not _TOKEN.fullmatch(self.csrf_header):
            fail("csrf_header", "must be an HTTP header name, such as X-CSRF")
        if self.csrf_header.lower() in _SAFELISTED_HEADERS:
            fail("csrf_header", "must not be a CORS-safelisted header (no preflight)")

    def _validate_paths(self) -> None:
        """Every path absolute, and the middleware's own paths all different."""
        paths = {
            "login_path": self.login_path,
            "callback_path": self.callback_path,
            "silent_path": self.silent_path,
            "logout_path": self.logout_path,
            "backchannel_logout_path": self.backchannel_logout_path,
            "session_path": self.session_path,
            "script_path": self.script_path,
        }
        for name, path in {**paths, "post_logout_path": self.post_logout_path,
                           "cookie_path": self.cookie_path}.items():
            if not path.startswith("/") or path.startswith("//"):
                fail(name, "must be an absolute path starting with a single '/'")
        seen: dict[str, str] = {}
        for name, path in paths.items():
            if path in seen:
                fail(name, f"is also {seen[path]}: the middleware's own paths must all differ")
            seen[path] = name


_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
#: Request headers a cross-origin page may send without a preflight.
_SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language",
                                 "content-type", "range"})
