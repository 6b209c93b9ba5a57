"""Per-login authorization parameters: ``/login?prompt=…&max_age=…`` and :func:`login_url`.

Only an allowlist reaches the provider: ``prompt`` (the OIDC values ``login``,
``consent``, ``select_account``, or ``none`` alone), ``login_hint``, ``ui_locales``,
``max_age`` (a non-negative integer) and ``acr_values``, each with a length limit.
On ``/login`` a value outside these rules is dropped with a log line and the login
goes on without it (it is a link anybody can edit); :func:`login_url`, which the
app calls with its own values, raises :class:`ValueError` instead.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, get_args
from urllib.parse import urlencode

from .requests import safe_return_to

logger = logging.getLogger("renewal_middleware")

#: The ``prompt`` values of OIDC Core §3.1.2.1; ``none`` must stand alone.
Prompt = Literal["login", "consent", "select_account", "none"]
PROMPTS: frozenset[str] = frozenset(get_args(Prompt))
MAX_LOGIN_HINT_LENGTH = 256
MAX_UI_LOCALES_LENGTH = 128
MAX_ACR_VALUES_LENGTH = 512
#: ``max_age`` has at most this many digits (about 317 years): what a safe integer holds.
MAX_AGE_DIGITS = 10

_LOCALE = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
# RFC 6749 NQSCHAR without the space: visible ASCII but '"' and '\'.
_ACR = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")
_DIGITS = re.compile(rf"[0-9]{{1,{MAX_AGE_DIGITS}}}")
_CONTROL = re.compile(r"[\x00-\x1F\x7F-\x9F\u2028\u2029]")


def _prompt(value: str) -> str:
    words = list(dict.fromkeys(value.split()))  # de-duplicated, in order
    if not words:
        raise ValueError("empty")
    unknown = [w for w in words if w not in PROMPTS]
    if unknown:
        allowed = ", ".join(sorted(PROMPTS))
        raise ValueError(f"unknown value {unknown[0][:20]!r} (allowed: {allowed})")
    if "none" in words and len(words) > 1:
        raise ValueError("'none' cannot be combined with other values")
    return " ".join(words)


def _login_hint(value: str) -> str:
    if len(value) > MAX_LOGIN_HINT_LENGTH:
        raise ValueError(f"longer than {MAX_LOGIN_HINT_LENGTH} characters")
    if _CONTROL.search(value):
        raise ValueError("contains control characters")
    return value


def _tokens(value: str, limit: int, pattern: re.Pattern[str], what: str) -> str:
    if len(value) > limit:
        raise ValueError(f"longer than {limit} characters")
    words = value.split(" ")
    if not all(pattern.fullmatch(w) for w in words):
        raise ValueError(f"not a space-separated list of {what}")
    return value


def _ui_locales(value: str) -> str:
    return _tokens(value, MAX_UI_LOCALES_LENGTH, _LOCALE, "language tags")


def _acr_values(value: str) -> str:
    return _tokens(value, MAX_ACR_VALUES_LENGTH, _ACR, "ACR values")


def _max_age(value: str) -> int:
    if not _DIGITS.fullmatch(value):
        raise ValueError(f"not a non-negative integer of at most {MAX_AGE_DIGITS} digits")
    return int(value)


_RULES: dict[str, Callable[[str], Any]] = {
    "prompt": _prompt, "login_hint": _login_hint, "ui_locales": _ui_locales,
    "max_age": _max_age, "acr_values": _acr_values,
}
#: The query parameters of ``/login`` passed on to the provider (besides ``return_to``).
LOGIN_PARAMETERS: tuple[str, ...] = tuple(_RULES)


@dataclasses.dataclass(frozen=True)
class LoginParameters:
    """What one login asks of the provider besides the configured settings; all optional."""

    prompt: str | None = None
    login_hint: str | None = dataclasses.field(default=None, repr=False)
    ui_locales: str | None = None
    max_age: int | None = None
    acr_values: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> LoginParameters:
        """The allowed parameters of a ``/login`` query; a refused value is dropped and logged."""
        found: dict[str, Any] = {}
        for name, rule in _RULES.items():
            value = query.get(name)
            if not value:
                continue
            try:
                found[name] = rule(value)
            except ValueError as exc:
                # Never the value (a login_hint may be personal); an unknown prompt is quoted
                # short and escaped.
                logger.info("/login: parameter %s dropped: %s", name, exc)
        return cls(**found)

    def to_query(self) -> dict[str, str]:
        """The parameters that are set, as authorization request (or ``/login``) parameters."""
        values = dataclasses.asdict(self)
        return {name: str(values[name]) for name in _RULES if values[name] is not None}


def login_url(
    return_to: str | None = None,
    *,
    prompt: Prompt | Iterable[Prompt] | None = None,
    login_hint: str | None = None,
    ui_locales: str | Iterable[str] | None = None,
    max_age: int | None = None,
    acr_values: str | Iterable[str] | None = None,
    login_path: str = "/login",
) -> str:
    """The ``/login`` URL that starts a login with these parameters, e.g. for a link.

    ``login_path`` is the middleware's ``login_path`` setting (``settings.login_path``).
    Raises :class:`ValueError` for a value ``/login`` would drop, and for a
    ``return_to`` that is not a path on this origin (which ``/login`` would replace by ``/``).
    """
    if not login_path.startswith("/") or login_path.startswith("//"):
        raise ValueError("login_path must be a path such as /login")
    query: dict[str, str] = {}
    if return_to is not None:
        if safe_return_to(return_to) == "/" != return_to:
            raise ValueError("return_to must be a relative path on this origin, such as /account")
        query["return_to"] = return_to
    if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int)):
        raise ValueError("max_age must be an int")
    given = {"prompt": _joined(prompt), "login_hint": login_hint,
             "ui_locales": _joined(ui_locales),
             "max_age": None if max_age is None else str(max_age),
             "acr_values": _joined(acr_values)}
    for name, value in given.items():
        if value is None:
            continue
        try:
            if not value:
                raise ValueError("empty")
            query[name] = str(_RULES[name](value))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return login_path + ("?" + urlencode(query) if query else "")


def _joined(value: str | Iterable[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return " ".join(value)
