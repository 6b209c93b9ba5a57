"""Encryption of cookie payloads: AES-256-GCM with keys derived from the secret keys.

The signature (itsdangerous) still wraps the result, so a cookie is authenticated
twice and readable by nobody but the app: tokens do not sit in clear text in the
browser's storage, in logs or in proxies.

Layout of an encrypted payload (before itsdangerous base64-encodes and signs it)::

    flags (1 byte) | key id (4 bytes) | nonce (12 bytes) | ciphertext + GCM tag

``flags`` bit 0 says the plaintext JSON was zlib-compressed first. The key id
(the start of a hash of the derived key) picks the decryption key without trying
each one, so rotation costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadPayload

_COMPRESSED = 0x01
_HEADER = 1 + 4 + 12
_HKDF_SALT = b"renewal_middleware/cookie-encryption/v1"


def derive_key(secret: str, purpose: str) -> bytes:
    """A 256-bit AES key for ``purpose``, derived from a configured secret key (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT,
                info=purpose.encode()).derive(secret.encode())


class EncryptedJSON:
    """A serializer for itsdangerous: JSON, compressed when that helps, then AES-GCM.

    ``secrets`` come newest first: the first encrypts, all decrypt.
    """

    def __init__(self, secrets: Sequence[str], purpose: str) -> None:
        self._aad = purpose.encode()
        self._keys: dict[bytes, AESGCM] = {}
        self._current = b""
        for secret in secrets:
            key = derive_key(secret, purpose)
            key_id = hashlib.sha256(key).digest()[:4]
            self._keys.setdefault(key_id, AESGCM(key))
            self._current = self._current or key_id

    def dumps(self, obj: Any) -> bytes:
        # ensure_ascii: a lone surrogate in a claim is valid JSON but not valid UTF-8.
        plain = json.dumps(obj, separators=(",", ":")).encode()
        flags = 0
        packed = zlib.compress(plain, 6)
        if len(packed) < len(plain):
            plain, flags = packed, _COMPRESSED
        nonce = os.urandom(12)
        sealed = self._keys[self._current].encrypt(nonce, plain, self._aad)
        return bytes([flags]) + self._current + nonce + sealed

    def loads(self, data: bytes | str) -> Any:
        if isinstance(data, str):
            data = data.encode("latin-1")
        if len(data) < _HEADER + 16:
            raise BadPayload("encrypted payload too short")
        flags, key_id, nonce = data[0], data[1:5], data[5:17]
        cipher = self._keys.get(key_id)
        if cipher is None:
            raise BadPayload("payload encrypted with a key no longer configured")
        try:
            plain = cipher.decrypt(nonce, data[_HEADER:], self._aad)
            if flags & _COMPRESSED:
                plain = zlib.decompress(plain)
            return json.loads(plain)
        except (InvalidTag, zlib.error, ValueError) as exc:
            raise BadPayload("payload does not decrypt") from exc
