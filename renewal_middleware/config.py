"""Settings: one frozen dataclass, read from keyword arguments and ``RENEWAL_*`` variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypedDict, get_args
from urllib.parse import urlsplit

from .errors import ConfigurationError

SameSite = Literal["lax", "strict", "none"]
TokenEndpointAuthMethod = Literal["client_secret_basic", "client_secret_post"]

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_MIN_SECRET_KEY_LENGTH = 32


class Secret:
    """A string that does not show itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


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


def _env_name(field: str) -> str:
    return f"RENEWAL_{field.upper()}"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the middleware needs to know, validated once at construction.

    Build it with :meth:`Settings.load`, which takes keyword arguments first and
    falls back to the ``RENEWAL_<NAME>`` environment variable of each setting.
    """

    issuer: str
    client_id: str
    client_secret: Secret
    secret_keys: tuple[Secret, ...]
    base_url: str
    scope: str = "openid profile email offline_access"
    audience: str | None = None
    grace_seconds: int = 60
    login_path: str = "/login"
    callback_path: str = "/callback"
    silent_path: str = "/silent"
    logout_path: str = "/logout"
    post_logout_path: str = "/"
    #: ``auto`` sends ``prompt=consent`` when ``offline_access`` is asked for (OIDC Core §11);
    #: an empty value sends no prompt; anything else is sent as it is.
    login_prompt: str = "auto"
    token_endpoint_auth_method: TokenEndpointAuthMethod = "client_secret_basic"
    #: Encrypt cookie payloads (AES-GCM) on top of signing them, so tokens are not readable.
    encrypt_cookies: bool = True
    cookie_name: str = "renewal_session"
    cookie_samesite: SameSite = "lax"
    cookie_domain: str | None = None
    cookie_path: str = "/"
    #: A session cookie not re-issued for this long is refused (it is re-issued at every renewal).
    session_lifetime_seconds: int = 14 * 24 * 3600
    #: How long a login (or silent renewal) may take between /login and /callback.
    login_timeout_seconds: int = 900
    http_timeout_seconds: float = 10.0
    clock_skew_seconds: int = 60
    #: How long a refresh result is kept for requests that still carry the pre-rotation cookie.
    refresh_result_seconds: int = 60
    #: How many verified sessions are remembered (about 6 KB each); more active sessions
    #: than this cost a signature check and a decryption per request.
    session_cache_size: int = 4096

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
            if raw is None and _env_name(name) in env:
                raw = env[_env_name(name)]
            if raw is None:
                if field.default is dataclasses.MISSING:
                    raise ConfigurationError(
                        f"setting {name!r} is required: pass {name}=... or set {_env_name(name)}"
                    )
                continue
            convert: Callable[[str, Any], Any] = _CONVERTERS.get(name, _as_str)
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
    def secure_cookies(self) -> bool:
        return urlsplit(self.base_url).scheme.lower() == "https"

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.scope.split())

    @property
    def effective_login_prompt(self) -> str | None:
        if self.login_prompt == "auto":
            return "consent" if "offline_access" in self.scopes else None
        return self.login_prompt or None

    def _validate(self) -> None:
        _check_url("issuer", self.issuer)
        _check_url("base_url", self.base_url)
        base = urlsplit(self.base_url)
        if base.path not in ("", "/") or base.query or base.fragment or "?" in self.base_url:
            _fail("base_url", "must be an origin such as https://app.example.com, without a path")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        object.__setattr__(self, "issuer", self.issuer.rstrip("/"))
        if not self.client_id:
            _fail("client_id", "must not be empty")
        if not self.secret_keys:
            _fail("secret_keys", "needs at least one key")
        for key in self.secret_keys:
            if len(key.reveal()) < _MIN_SECRET_KEY_LENGTH:
                _fail(
                    "secret_keys",
                    f"each key needs at least {_MIN_SECRET_KEY_LENGTH} characters; make one with "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                )
        if "openid" not in self.scopes:
            _fail("scope", "must include 'openid'")
        paths = {
            "login_path": self.login_path,
            "callback_path": self.callback_path,
            "silent_path": self.silent_path,
            "logout_path": self.logout_path,
        }
        for name, path in {**paths, "post_logout_path": self.post_logout_path,
                           "cookie_path": self.cookie_path}.items():
            if not path.startswith("/") or path.startswith("//"):
                _fail(name, "must be an absolute path starting with a single '/'")
        if len(set(paths.values())) != len(paths):
            _fail("login_path", "login, callback, silent and logout paths must all differ")
        if self.cookie_samesite == "none" and not self.secure_cookies:
            _fail("cookie_samesite", "'none' needs an https base_url (browsers require Secure)")
        for name in ("grace_seconds", "login_timeout_seconds", "clock_skew_seconds",
                     "refresh_result_seconds"):
            if getattr(self, name) < 0:
                _fail(name, "must not be negative")
        for name in ("session_lifetime_seconds", "http_timeout_seconds", "session_cache_size"):
            if getattr(self, name) <= 0:
                _fail(name, "must be positive")
        if not self.cookie_name or not self.cookie_name.replace("_", "").replace("-", "").isalnum():
            _fail("cookie_name", "may contain only letters, digits, '-' and '_'")


def _fail(name: str, why: str) -> None:
    raise ConfigurationError(f"setting {name!r} ({_env_name(name)}) {why}")


def _check_url(name: str, value: str) -> None:
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme == "https" and parts.hostname:
        return
    if scheme == "http" and parts.hostname in _LOOPBACK_HOSTS:
        return  # plain http only for local development
    _fail(name, f"must be an https URL (http only on 127.0.0.1/localhost), got {value!r}")


def _as_str(name: str, raw: Any) -> str:
    if not isinstance(raw, str):
        _fail(name, f"must be a string, got {type(raw).__name__}")
    return str(raw)


def _as_int(name: str, raw: Any) -> int:
    if isinstance(raw, bool):
        _fail(name, "must be an integer")
    try:
        return int(raw)
    except (TypeError, ValueError):
        _fail(name, f"must be an integer, got {raw!r}")
        raise  # unreachable; keeps type checkers content


def _as_float(name: str, raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        _fail(name, f"must be a number, got {raw!r}")
        raise


def _as_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = _as_str(name, raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    _fail(name, f"must be true or false, got {raw!r}")
    raise AssertionError  # unreachable


def _as_secret(name: str, raw: Any) -> Secret:
    if isinstance(raw, Secret):
        return raw
    return Secret(_as_str(name, raw))


def _as_secret_keys(name: str, raw: Any) -> tuple[Secret, ...]:
    if isinstance(raw, Secret):
        raw = [raw]
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    keys = tuple(_as_secret(name, item.strip() if isinstance(item, str) else item)
                 for item in items)
    return tuple(k for k in keys if k.reveal())


def _as_optional_str(name: str, raw: Any) -> str | None:
    return _as_str(name, raw) or None


def _choice(*options: str) -> Callable[[str, Any], str]:
    def convert(name: str, raw: Any) -> str:
        value = _as_str(name, raw).lower()
        if value not in options:
            _fail(name, f"must be one of {', '.join(options)}, got {raw!r}")
        return value

    return convert


_CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "client_secret": _as_secret,
    "secret_keys": _as_secret_keys,
    "audience": _as_optional_str,
    "encrypt_cookies": _as_bool,
    "cookie_domain": _as_optional_str,
    "grace_seconds": _as_int,
    "session_lifetime_seconds": _as_int,
    "login_timeout_seconds": _as_int,
    "clock_skew_seconds": _as_int,
    "refresh_result_seconds": _as_int,
    "session_cache_size": _as_int,
    "http_timeout_seconds": _as_float,
    "cookie_samesite": _choice(*get_args(SameSite)),
    "token_endpoint_auth_method": _choice(*get_args(TokenEndpointAuthMethod)),
}
