"""Encrypted cookie payloads: AES-256-GCM under the signature, with key rotation by key id."""

from __future__ import annotations

import base64
import json
import zlib

import pytest
from itsdangerous import BadPayload

from renewal_middleware.cookies import SignedCodec
from renewal_middleware.crypto import EncryptedJSON, derive_key
from tests.unit.helpers import KEY_A, KEY_B, T0, FakeClock, make_settings

SECRET_TOKEN = "eyJhbGciOiJSUzI1NiJ9.secret-access-token-value"
PAYLOAD = {"at": SECRET_TOKEN, "c": {"sub": "alice", "email": "alice@example"}}


def raw_payload(value: str) -> bytes:
    """The bytes itsdangerous signed: base64 (after an optional "." for zlib) before the dot."""
    encoded = value.rsplit(".", 2)[0]
    data = base64.urlsafe_b64decode(encoded.lstrip(".") + "=" * (-len(encoded.lstrip(".")) % 4))
    return zlib.decompress(data) if encoded.startswith(".") else data


def test_derived_keys_are_distinct_per_secret_and_purpose() -> None:
    keys = {derive_key(KEY_A, "session"), derive_key(KEY_A, "transaction"),
            derive_key(KEY_B, "session")}
    assert len(keys) == 3
    assert all(len(k) == 32 for k in keys)
    assert derive_key(KEY_A, "session") == derive_key(KEY_A, "session")


def test_round_trip() -> None:
    box = EncryptedJSON([KEY_A], "session")
    assert box.loads(box.dumps(PAYLOAD)) == PAYLOAD
    big = {"blob": "x" * 10_000, "at": SECRET_TOKEN}
    sealed = box.dumps(big)
    assert len(sealed) < 1000  # compressed before encryption
    assert box.loads(sealed) == big


def test_ciphertext_hides_the_payload_and_is_not_deterministic() -> None:
    box = EncryptedJSON([KEY_A], "session")
    first, second = box.dumps(PAYLOAD), box.dumps(PAYLOAD)
    assert first != second
    for sealed in (first, second):
        assert SECRET_TOKEN.encode() not in sealed
        assert b"alice" not in sealed


def test_rotation_decrypts_with_old_keys_and_encrypts_with_the_first() -> None:
    old = EncryptedJSON([KEY_A], "session")
    rotated = EncryptedJSON([KEY_B, KEY_A], "session")
    assert rotated.loads(old.dumps(PAYLOAD)) == PAYLOAD
    sealed = rotated.dumps(PAYLOAD)
    assert EncryptedJSON([KEY_B], "session").loads(sealed) == PAYLOAD
    with pytest.raises(BadPayload):
        old.loads(sealed)


def test_another_purpose_cannot_decrypt() -> None:
    sealed = EncryptedJSON([KEY_A], "renewal.transaction").dumps(PAYLOAD)
    with pytest.raises(BadPayload):
        EncryptedJSON([KEY_A], "renewal.session").loads(sealed)


@pytest.mark.parametrize("position", [0, 1, 5, 17, -1])
def test_any_altered_byte_is_refused(position: int) -> None:
    box = EncryptedJSON([KEY_A], "session")
    sealed = bytearray(box.dumps(PAYLOAD))
    sealed[position] ^= 0x01
    with pytest.raises(BadPayload):
        box.loads(bytes(sealed))


@pytest.mark.parametrize("data", [b"", b"\x00" * 32, b"{}", "text"])
def test_garbage_is_refused(data: bytes | str) -> None:
    with pytest.raises(BadPayload):
        EncryptedJSON([KEY_A], "session").loads(data)


def test_session_cookie_value_does_not_show_the_tokens(clock: FakeClock) -> None:
    value = SignedCodec(make_settings(), "renewal.session", clock).dumps(PAYLOAD)
    assert SECRET_TOKEN not in value
    assert SECRET_TOKEN.encode() not in raw_payload(value)


def test_without_encryption_the_payload_is_only_signed(clock: FakeClock) -> None:
    value = SignedCodec(make_settings(encrypt_cookies=False), "s", clock).dumps(PAYLOAD)
    assert json.loads(raw_payload(value)) == PAYLOAD


@pytest.mark.parametrize(("written", "read"), [(True, False), (False, True)])
def test_switching_encryption_refuses_old_cookies_without_crashing(
        clock: FakeClock, written: bool, read: bool) -> None:
    value = SignedCodec(make_settings(encrypt_cookies=written), "s", clock).dumps(PAYLOAD)
    assert SignedCodec(make_settings(encrypt_cookies=read), "s", clock).loads(value, 60) is None


def test_encrypted_cookie_still_checks_signature_age(clock: FakeClock) -> None:
    codec = SignedCodec(make_settings(), "s", clock)
    value = codec.dumps(PAYLOAD)
    assert codec.loads(value, 60) == (PAYLOAD, int(T0))
    clock.advance(61)
    assert codec.loads(value, 60) is None
