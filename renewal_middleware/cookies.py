"""Signed cookies: the session (chunked past the browser's size limit) and login transactions.

Signing is itsdangerous's; the secret keys come newest first (the first one signs,
every one verifies) so that rotating a key is a configuration change. Payloads are
also encrypted unless ``encrypt_cookies`` is off (see :mod:`renewal_middleware.crypto`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from itsdangerous import BadData, Serializer, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode

from .config import Settings
from .crypto import EncryptedJSON
from .errors import AuthenticationError

logger = logging.getLogger("renewal_middleware")

#: Browsers keep at least 4096 bytes per cookie, name and attributes included.
COOKIE_SIZE_LIMIT = 4096
#: A request never carries more session chunks than this; more is garbage.
MAX_CHUNKS = 10
_EXPIRED = "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"


_SIG_LEN = 43  # an HMAC-SHA256 in unpadded base64url
_CANONICAL = re.compile(r"\.?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{" + str(_SIG_LEN) + "}")


def _canonical_signature(signature: str) -> bool:
    raw = base64.urlsafe_b64decode(signature + "=")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == signature


class _SealedPayloads(URLSafeTimedSerializer):
    """For encrypted payloads: itsdangerous's attempt to compress them is skipped, since
    ciphertext never compresses (the value is the same, written in half the time)."""

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(Serializer.dump_payload(self, obj))


def _signer_with_clock(clock: Callable[[], float]) -> type[TimestampSigner]:
    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return ClockedSigner


class SignedCodec:
    """JSON payloads (encrypted, by default) signed with rotating keys and a timestamp."""

    def __init__(self, settings: Settings, salt: str, clock: Callable[[], float],
                 encrypt: bool | None = None) -> None:
        secrets = [k.reveal() for k in settings.secret_keys]
        self._clock = clock
        self._skew = settings.clock_skew_seconds
        extra: dict[str, Any] = {}
        kind = URLSafeTimedSerializer
        if settings.encrypt_cookies if encrypt is None else encrypt:
            extra["serializer"] = EncryptedJSON(secrets, salt)
            kind = _SealedPayloads
        else:
            # ASCII: a lone surrogate in a claim is valid JSON but cannot be UTF-8 encoded.
            extra["serializer_kwargs"] = {"ensure_ascii": True}
        # itsdangerous wants the keys oldest first and signs with the last one.
        self._serializer = kind(
            list(reversed(secrets)), salt=salt, signer=_signer_with_clock(clock),
            signer_kwargs={"digest_method": hashlib.sha256}, **extra,
        )

    def dumps(self, payload: Mapping[str, Any]) -> str:
        value: str | bytes = self._serializer.dumps(payload)
        return value.decode("ascii") if isinstance(value, bytes) else value

    def loads(self, value: str, max_age: int) -> tuple[Any, int] | None:
        """The payload and its signing time, or ``None`` when the value is not ours or too old."""
        if not _CANONICAL.fullmatch(value) or not _canonical_signature(value[-_SIG_LEN:]):
            # itsdangerous decodes leniently (it skips stray characters and the unused bits of
            # the last base64 one): accept only the one form we write, so that one session has
            # one cookie value.
            logger.info("refused a cookie: not in canonical form")
            return None
        try:
            payload, signed_at = self._serializer.loads(value, return_timestamp=True)
        except (BadData, ValueError, UnicodeError) as exc:
            logger.info("refused a cookie: %s", type(exc).__name__)
            return None
        # Checked here, not by itsdangerous, which refuses any signature from the future:
        # a cookie signed by another host whose clock runs a little ahead is still ours.
        signed = int(signed_at.timestamp())
        age = self._clock() - signed
        if age > max_age or age < -self._skew:
            logger.info("refused a cookie: signed %d s ago, outside [-%d, %d]",
                        int(age), self._skew, max_age)
            return None
        return payload, signed


class CookieWriter:
    """Builds Set-Cookie header values with attributes computed once."""

    def __init__(self, settings: Settings, *, path: str | None = None,
                 max_age: int | None = None, samesite: str | None = None) -> None:
        parts = [f"Path={path or settings.cookie_scope}", "HttpOnly",
                 f"SameSite={(samesite or settings.cookie_samesite).capitalize()}"]
        if settings.secure_cookies:
            parts.append("Secure")
        if settings.cookie_domain:
            parts.append(f"Domain={settings.cookie_domain}")
        self.attributes = "; ".join(parts)
        self.max_age = settings.session_lifetime_seconds if max_age is None else max_age

    def set(self, name: str, value: str) -> str:
        return f"{name}={value}; Max-Age={self.max_age}; {self.attributes}"

    def delete(self, name: str) -> str:
        return f"{name}=; {_EXPIRED}; {self.attributes}"


class SessionCookie:
    """Reads and writes the session cookie: ``name`` or, when large, ``name.0`` … ``name.N``."""

    def __init__(self, settings: Settings, writer: CookieWriter, codec: SignedCodec) -> None:
        self.name = settings.session_cookie_name
        self.max_age = settings.session_lifetime_seconds
        self._writer = writer
        self._codec = codec
        overhead = len(writer.set(f"{self.name}.{MAX_CHUNKS}", ""))
        self.chunk_size = COOKIE_SIZE_LIMIT - overhead - 16
        self._chunk_names = tuple(f"{self.name}.{i}" for i in range(MAX_CHUNKS))

    def read(self, cookies: Mapping[str, str]) -> tuple[str | None, tuple[str, ...]]:
        """The joined raw value (or ``None``) and the names of every session cookie present."""
        present = tuple(n for n in (self.name, *self._chunk_names) if n in cookies)
        if not present:
            return None, ()
        if self.name in cookies:
            return cookies[self.name], present
        parts: list[str] = []
        for name in self._chunk_names:
            if name not in cookies:
                break
            parts.append(cookies[name])
        return ("".join(parts) or None), present

    def encode(self, payload: Mapping[str, Any]) -> str:
        value = self._codec.dumps(payload)
        if len(value) > self.chunk_size * MAX_CHUNKS:
            raise AuthenticationError(
                f"The session ({len(value)} bytes) is too large to keep in cookies.",
                code="session_too_large")
        return value

    def decode(self, raw: str) -> tuple[Any, int] | None:
        return self._codec.loads(raw, self.max_age)

    def set_headers(self, value: str, present: Sequence[str]) -> list[str]:
        """Set-Cookie values writing ``value``, deleting every other session cookie present."""
        if len(value) <= self.chunk_size:
            written = {self.name: value}
        else:
            pieces = [value[i:i + self.chunk_size] for i in range(0, len(value), self.chunk_size)]
            written = dict(zip(self._chunk_names, pieces, strict=False))
        headers = [self._writer.set(name, piece) for name, piece in written.items()]
        headers += [self._writer.delete(name) for name in present if name not in written]
        return headers

    def clear_headers(self, present: Sequence[str]) -> list[str]:
        return [self._writer.delete(name) for name in present]
