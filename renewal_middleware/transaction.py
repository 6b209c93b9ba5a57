"""Login transactions: what a login or silent renewal must remember until its callback.

Each pending login has its own signed (and encrypted) cookie, named after its
``state`` and scoped to its callback path, so that logins in parallel tabs do not
overwrite each other and the cookie is sent nowhere else.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Literal, cast, get_args

from .config import Settings
from .cookies import CookieWriter, SignedCodec
from .login_parameters import LoginParameters

#: ``login`` ends at the callback path, ``silent`` (prompt=none) at the silent path.
Kind = Literal["login", "silent"]
#: How a silent renewal reports back: a redirect, or a page posting to its parent frame.
Mode = Literal["redirect", "iframe"]
KINDS: tuple[Kind, ...] = get_args(Kind)
MODES: tuple[Mode, ...] = get_args(Mode)
#: Past this many pending login transactions, finishing one clears the others.
MAX_PENDING_LOGINS = 8
#: A longer ``state`` is not one we made (ours are 32 characters).
MAX_STATE_LENGTH = 128
#: Payload keys of the per-login parameters (absent when not asked for).
_PARAMETER_KEYS = {"prompt": "p", "login_hint": "h", "ui_locales": "l", "acr_values": "c"}


@dataclasses.dataclass(frozen=True)
class LoginTransaction:
    """One pending authorization request: its secrets and where it goes back to."""

    state: str
    nonce: str = dataclasses.field(repr=False)
    verifier: str = dataclasses.field(repr=False)
    return_to: str
    kind: Kind
    mode: Mode = "redirect"
    #: What this login asked of the provider (``prompt``, ``max_age``, ...).
    params: LoginParameters = dataclasses.field(default_factory=LoginParameters)

    @classmethod
    def start(cls, kind: Kind, return_to: str, mode: Mode = "redirect",
              params: LoginParameters | None = None) -> LoginTransaction:
        """A new transaction with fresh ``state``, ``nonce`` and PKCE verifier."""
        return cls(state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24),
                   verifier=secrets.token_urlsafe(48), return_to=return_to, kind=kind, mode=mode,
                   params=params or LoginParameters())

    def to_payload(self) -> dict[str, Any]:
        # Short keys: the cookie travels with every request to the callback path.
        payload: dict[str, Any] = {"s": self.state, "n": self.nonce, "v": self.verifier,
                                   "r": self.return_to, "k": self.kind, "m": self.mode}
        for name, key in _PARAMETER_KEYS.items():
            if getattr(self.params, name) is not None:
                payload[key] = getattr(self.params, name)
        if self.params.max_age is not None:
            payload["a"] = self.params.max_age
        return payload

    @classmethod
    def from_payload(cls, payload: object) -> LoginTransaction | None:
        """Rebuild a transaction from a verified payload; ``None`` when its shape is wrong."""
        if not isinstance(payload, dict):
            return None
        texts = [payload.get(k) for k in ("s", "n", "v", "r")]
        kind, mode = payload.get("k"), payload.get("m", "redirect")
        if not all(isinstance(v, str) for v in texts) or kind not in KINDS or mode not in MODES:
            return None
        params = _params_from_payload(payload)
        if params is None:
            return None
        state, nonce, verifier, return_to = cast(list[str], texts)
        return cls(state, nonce, verifier, return_to, cast(Kind, kind), cast(Mode, mode), params)


def _params_from_payload(payload: dict[Any, Any]) -> LoginParameters | None:
    """The per-login parameters of a payload (none in one written before they existed)."""
    found: dict[str, Any] = {}
    for name, key in _PARAMETER_KEYS.items():
        value = payload.get(key)
        if value is not None and not isinstance(value, str):
            return None
        found[name] = value
    max_age = payload.get("a")
    if max_age is not None and (type(max_age) is not int or max_age < 0):
        return None
    return LoginParameters(**found, max_age=max_age)


class Transactions:
    """Writes, reads and ends the transaction cookies."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        self.codec = SignedCodec(settings, "renewal.transaction", clock)
        self.prefix = settings.transaction_cookie_prefix
        self._timeout = settings.login_timeout_seconds
        self._limit = settings.max_pending_logins
        # A transaction must survive the cross-site redirect back from the provider.
        samesite = "none" if settings.cookie_samesite == "none" else "lax"
        self._writers: dict[Kind, CookieWriter] = {
            "login": CookieWriter(settings, path=settings.public(settings.callback_path),
                                  max_age=self._timeout, samesite=samesite),
            "silent": CookieWriter(settings, path=settings.public(settings.silent_path),
                                   max_age=self._timeout, samesite=samesite),
        }

    def set_cookie(self, tx: LoginTransaction) -> str:
        """The Set-Cookie value that keeps ``tx`` until its callback."""
        return self._writers[tx.kind].set(self.prefix + tx.state, self.codec.dumps(tx.to_payload()))

    def delete(self, kind: Kind, state: str) -> str:
        """The Set-Cookie value deleting the transaction cookie of ``state``."""
        return self._writers[kind].delete(self.prefix + state)

    def read(self, kind: Kind, state: str, cookies: Mapping[str, str]) -> LoginTransaction | None:
        """The live transaction of ``kind`` named by ``state``, or ``None``."""
        if not state or len(state) > MAX_STATE_LENGTH:
            return None
        raw = cookies.get(self.prefix + state)
        if raw is None:
            return None
        loaded = self.codec.loads(raw, self._timeout)
        tx = LoginTransaction.from_payload(loaded[0]) if loaded is not None else None
        if tx is None or tx.kind != kind or tx.state != state:
            return None
        return tx

    def end(self, tx: LoginTransaction, cookies: Mapping[str, str]) -> tuple[str, ...]:
        """Set-Cookie values deleting ``tx``'s cookie, and the others once too many pile up."""
        writer = self._writers[tx.kind]
        own = self.prefix + tx.state
        others = [name for name in cookies if name.startswith(self.prefix) and name != own]
        if len(others) < self._limit:
            others = []  # a few pending logins in other tabs are kept
        return (writer.delete(own), *(writer.delete(name) for name in others))
