"""Signed cookies: signing, key rotation, expiry, chunking past 4 KB, and their attributes."""

from __future__ import annotations

import hashlib
import random
import secrets
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer
from starlette.requests import cookie_parser

from renewal_middleware.config import Settings
from renewal_middleware.cookies import (
    COOKIE_SIZE_LIMIT,
    CookieWriter,
    SessionCookie,
    SignedCodec,
    _signer_with_clock,
)
from renewal_middleware.crypto import EncryptedJSON
from renewal_middleware.flows import Flows
from renewal_middleware.session import Session
from tests.unit.helpers import (
    KEY_A,
    KEY_B,
    KEY_C,
    T0,
    FakeClock,
    attributes,
    cookie_header,
    is_deletion,
    make_session,
    make_settings,
    session_cookie_header,
    set_cookie_pairs,
)

PAYLOAD = {"v": 1, "hello": "world", "n": [1, 2, 3]}


def codec(clock: FakeClock, *keys: str, salt: str = "test", encrypt: bool = True) -> SignedCodec:
    return SignedCodec(make_settings(secret_keys=list(keys), encrypt_cookies=encrypt), salt, clock)


@pytest.fixture(params=[True, False], ids=["encrypted", "signed-only"])
def encrypt(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def session_cookie(settings: Settings, clock: FakeClock) -> SessionCookie:
    return SessionCookie(settings, CookieWriter(settings), SignedCodec(settings, "test", clock))


def big_payload(size: int) -> dict[str, Any]:
    # Random text does not compress: the signed value is about 4/3 of ``size``.
    return {"v": 1, "blob": secrets.token_urlsafe(size)}


# -- signing ---------------------------------------------------------------------------------


def test_sign_verify_round_trip(clock: FakeClock, encrypt: bool) -> None:
    c = codec(clock, KEY_A, encrypt=encrypt)
    value = c.dumps(PAYLOAD)
    assert c.loads(value, max_age=60) == (PAYLOAD, int(T0))


@pytest.mark.parametrize("payload", [{}, PAYLOAD, big_payload(3000)])
def test_encrypted_values_are_those_itsdangerous_writes_and_reads(
        clock: FakeClock, payload: dict[str, Any]) -> None:
    """Skipping itsdangerous's compression of ciphertext changes no value: each side reads
    the other's."""
    ours = codec(clock, KEY_A)
    stock = URLSafeTimedSerializer([KEY_A], salt="test", signer=_signer_with_clock(clock),
                                   signer_kwargs={"digest_method": hashlib.sha256},
                                   serializer=EncryptedJSON([KEY_A], "test"))
    value = ours.dumps(payload)
    assert not value.startswith(".")  # itsdangerous's mark of a compressed payload
    assert stock.loads(value) == payload
    written = stock.dumps(payload)
    assert isinstance(written, bytes)  # a binary serializer: itsdangerous answers bytes
    assert ours.loads(written.decode(), max_age=60) == (payload, int(T0))


def test_old_key_still_verifies_after_a_new_key_is_put_first(
        clock: FakeClock, encrypt: bool) -> None:
    old = codec(clock, KEY_A, encrypt=encrypt)
    rotated = codec(clock, KEY_B, KEY_A, encrypt=encrypt)
    assert rotated.loads(old.dumps(PAYLOAD), 60) == (PAYLOAD, int(T0))


def test_new_cookies_are_signed_with_the_first_key(clock: FakeClock, encrypt: bool) -> None:
    value = codec(clock, KEY_B, KEY_A, encrypt=encrypt).dumps(PAYLOAD)
    assert codec(clock, KEY_B, encrypt=encrypt).loads(value, 60) == (PAYLOAD, int(T0))
    assert codec(clock, KEY_A, encrypt=encrypt).loads(value, 60) is None


def test_cookie_signed_by_a_key_no_longer_listed_is_refused(
        clock: FakeClock, encrypt: bool) -> None:
    value = codec(clock, KEY_A, encrypt=encrypt).dumps(PAYLOAD)
    assert codec(clock, KEY_B, KEY_C, encrypt=encrypt).loads(value, 60) is None


def test_cookie_of_another_purpose_is_refused(clock: FakeClock, encrypt: bool) -> None:
    value = codec(clock, KEY_A, salt="renewal.transaction", encrypt=encrypt).dumps(PAYLOAD)
    assert codec(clock, KEY_A, salt="renewal.session", encrypt=encrypt).loads(value, 60) is None


@pytest.mark.parametrize("where", [0, 1, 2], ids=["payload", "timestamp", "signature"])
def test_tampered_value_is_refused(clock: FakeClock, where: int, encrypt: bool) -> None:
    c = codec(clock, KEY_A, encrypt=encrypt)
    parts = c.dumps(PAYLOAD).rsplit(".", 2)
    # The first character: every bit of it counts (a base64 string's last one may carry
    # unused bits, so changing those would not change the decoded bytes).
    parts[where] = ("A" if parts[where][0] != "A" else "B") + parts[where][1:]
    assert c.loads(".".join(parts), 60) is None


@pytest.mark.parametrize("garbage", ["", "not-a-cookie", "a.b.c", "\u00e9t\u00e9.x.y", "...."])
def test_garbage_is_refused(clock: FakeClock, garbage: str, encrypt: bool) -> None:
    assert codec(clock, KEY_A, encrypt=encrypt).loads(garbage, 60) is None


def test_expiry_follows_the_fake_clock(clock: FakeClock, encrypt: bool) -> None:
    c = codec(clock, KEY_A, encrypt=encrypt)
    value = c.dumps(PAYLOAD)
    clock.advance(99)
    assert c.loads(value, max_age=100) == (PAYLOAD, int(T0))
    clock.advance(2)
    assert c.loads(value, max_age=100) is None


def test_a_host_whose_clock_is_behind_accepts_within_the_skew(encrypt: bool) -> None:
    """Two hosts, one 60 s behind the other (clock_skew_seconds=60 by default)."""
    ahead, behind = FakeClock(T0 + 60), FakeClock(T0)
    value = codec(ahead, KEY_A, encrypt=encrypt).dumps(PAYLOAD)
    assert codec(behind, KEY_A, encrypt=encrypt).loads(value, max_age=100) == (
        PAYLOAD, int(T0) + 60)
    further_behind = FakeClock(T0 - 1)
    assert codec(further_behind, KEY_A, encrypt=encrypt).loads(value, max_age=100) is None


def test_session_cookie_expires_after_session_lifetime(clock: FakeClock) -> None:
    settings = make_settings(session_lifetime_seconds=3600)
    cookie = session_cookie(settings, clock)
    value = cookie.encode(PAYLOAD)
    clock.advance(3599)
    assert cookie.decode(value) == (PAYLOAD, int(T0))
    clock.advance(2)
    assert cookie.decode(value) is None


def test_flows_refuse_and_clear_a_session_past_its_lifetime(clock: FakeClock) -> None:
    """Even a session decoded (and cached) earlier stops loading once it is too old."""
    flows = Flows(make_settings(session_lifetime_seconds=3600), clock)
    header = session_cookie_header(flows, make_session(expires_in=None))
    assert flows.sessions.load(header, clock()).view is not None
    clock.advance(3601)
    loaded = flows.sessions.load(header, clock())
    assert loaded.view is None
    assert loaded.invalid
    decision = flows.decide(loaded, clock(), lambda: True, lambda: "/")
    assert [is_deletion(h) for h in decision.set_cookies] == [True]


# -- chunking ----------------------------------------------------------------------------------


def test_small_value_is_one_cookie(settings: Settings, clock: FakeClock) -> None:
    cookie = session_cookie(settings, clock)
    value = cookie.encode(PAYLOAD)
    headers = cookie.set_headers(value, ())
    assert list(set_cookie_pairs(headers)) == ["__Host-renewal_session"]
    assert cookie.read(set_cookie_pairs(headers)) == (value, ("__Host-renewal_session",))


def test_large_value_is_split_into_chunks_under_the_browser_limit(
        settings: Settings, clock: FakeClock) -> None:
    cookie = session_cookie(settings, clock)
    value = cookie.encode(big_payload(12000))
    assert len(value) > 3 * COOKIE_SIZE_LIMIT
    headers = cookie.set_headers(value, ())
    pairs = set_cookie_pairs(headers)
    assert list(pairs) == [f"__Host-renewal_session.{i}" for i in range(len(headers))]
    assert len(headers) >= 4
    assert all(len(h.encode()) < COOKIE_SIZE_LIMIT for h in headers)
    assert not any(is_deletion(h) for h in headers)
    # What the browser sends back joins into the signed value again.
    joined, present = cookie.read(cookie_parser(cookie_header(pairs)))
    assert joined == value
    assert present == tuple(pairs)
    assert cookie.decode(joined) is not None


def test_value_just_over_one_cookie_is_chunked(settings: Settings, clock: FakeClock) -> None:
    cookie = session_cookie(settings, clock)
    value = "x" * (cookie.chunk_size + 1)
    headers = cookie.set_headers(value, ())
    assert list(set_cookie_pairs(headers)) == ["__Host-renewal_session.0",
                                               "__Host-renewal_session.1"]
    single = cookie.set_headers("x" * cookie.chunk_size, ())
    assert list(set_cookie_pairs(single)) == ["__Host-renewal_session"]
    assert len(single[0].encode()) < COOKIE_SIZE_LIMIT


def test_stale_chunks_in_the_request_are_deleted(settings: Settings, clock: FakeClock) -> None:
    cookie = session_cookie(settings, clock)
    present = ("__Host-renewal_session", *(f"__Host-renewal_session.{i}" for i in range(5)))
    small = cookie.set_headers(cookie.encode(PAYLOAD), present)
    assert [h.split("=", 1)[0] for h in small if not is_deletion(h)] == ["__Host-renewal_session"]
    assert sorted(h.split("=", 1)[0] for h in small if is_deletion(h)) == sorted(present[1:])

    value = cookie.encode(big_payload(5000))
    written = cookie.set_headers(value, present)
    kept = [h.split("=", 1)[0] for h in written if not is_deletion(h)]
    deleted = {h.split("=", 1)[0] for h in written if is_deletion(h)}
    assert 2 <= len(kept) < 5
    assert deleted == set(present) - set(kept)


def test_clear_headers_delete_every_cookie_present(settings: Settings, clock: FakeClock) -> None:
    cookie = session_cookie(settings, clock)
    present = ("__Host-renewal_session.0", "__Host-renewal_session.1", "__Host-renewal_session.2")
    headers = cookie.clear_headers(present)
    assert [h.split("=", 1)[0] for h in headers] == list(present)
    assert all(is_deletion(h) and h.split(";")[0].endswith("=") for h in headers)
    assert all("Path=/" in attributes(h) for h in headers)


def test_read_prefers_the_unchunked_cookie_and_reports_all_present(
        settings: Settings, clock: FakeClock) -> None:
    cookie = session_cookie(settings, clock)
    raw, present = cookie.read({"__Host-renewal_session": "whole",
                                "__Host-renewal_session.0": "stale", "other": "x"})
    assert raw == "whole"
    assert set(present) == {"__Host-renewal_session", "__Host-renewal_session.0"}
    assert cookie.read({"other": "x"}) == (None, ())


def test_read_stops_at_a_missing_chunk(settings: Settings, clock: FakeClock) -> None:
    cookie = session_cookie(settings, clock)
    raw, present = cookie.read({"__Host-renewal_session.0": "a", "__Host-renewal_session.2": "c"})
    assert raw == "a"
    assert set(present) == {"__Host-renewal_session.0", "__Host-renewal_session.2"}


# -- attributes --------------------------------------------------------------------------------


def test_attributes_for_https(clock: FakeClock) -> None:
    settings = make_settings(session_lifetime_seconds=7200)
    header = session_cookie(settings, clock).set_headers("value", ())[0]
    attrs = attributes(header)
    assert header.startswith("__Host-renewal_session=value;")
    assert "HttpOnly" in attrs
    assert "SameSite=Lax" in attrs
    assert "Path=/" in attrs
    assert "Secure" in attrs
    assert "Max-Age=7200" in attrs
    assert not any(a.startswith("Domain=") for a in attrs)


def test_no_secure_attribute_on_plain_http_loopback(clock: FakeClock) -> None:
    settings = make_settings(base_url="http://127.0.0.1:8000")
    attrs = attributes(session_cookie(settings, clock).set_headers("value", ())[0])
    assert "Secure" not in attrs
    assert "HttpOnly" in attrs


def test_domain_path_and_samesite_from_settings(clock: FakeClock) -> None:
    settings = make_settings(cookie_domain="app.example", cookie_path="/app",
                             cookie_samesite="strict", cookie_name="sid")
    cookie = session_cookie(settings, clock)
    for header in [*cookie.set_headers("v", ()), *cookie.clear_headers(("sid.0",))]:
        attrs = attributes(header)
        assert "Domain=app.example" in attrs
        assert "Path=/app" in attrs
        assert "SameSite=Strict" in attrs
        assert header.startswith("sid")


def test_samesite_none_on_https(clock: FakeClock) -> None:
    settings = make_settings(cookie_samesite="none")
    attrs = attributes(session_cookie(settings, clock).set_headers("v", ())[0])
    assert "SameSite=None" in attrs
    assert "Secure" in attrs


# -- property: any session survives encode, chunk, browser round trip, join, decode ----------

json_scalars = (st.none() | st.booleans() | st.integers(-(2**53), 2**53)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
json_values = (json_scalars | st.lists(json_scalars, max_size=3)
               | st.dictionaries(st.text(max_size=8), json_scalars, max_size=3))
claims_strategy = st.builds(
    lambda sub, extra, blob: {**extra, "sub": sub, **({"blob": blob} if blob else {})},
    st.text(max_size=30),
    st.dictionaries(st.text(max_size=12), json_values, max_size=4),
    # Random text of up to ~9 KB: it does not compress, so big sessions take several chunks.
    st.tuples(st.integers(0, 9000), st.integers(0, 2**32)).map(
        lambda size_seed: random.Random(size_seed[1]).randbytes(size_seed[0]).hex()[:size_seed[0]]),
)
sessions = st.builds(
    Session,
    id=st.text(max_size=20),
    access_token=st.text(min_size=1, max_size=200),
    expires_at=st.integers(0, 2**40),
    obtained_at=st.integers(0, 2**40),
    refresh_token=st.none() | st.text(min_size=1, max_size=200),
    id_token=st.none() | st.text(max_size=300),
    claims=claims_strategy,
    scope=st.text(max_size=60),
)


ROUND_TRIP_SETTINGS = make_settings()


@hypothesis_settings(max_examples=200, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(session=sessions)
def test_any_session_round_trips_through_the_cookies(session: Session) -> None:
    clock = FakeClock()
    sender = Flows(ROUND_TRIP_SETTINGS, clock)  # signs, so that ``flows`` really decodes
    flows = Flows(ROUND_TRIP_SETTINGS, clock)
    value = sender.sessions.cookie.encode(session.to_payload())
    headers = sender.sessions.cookie.set_headers(value, ())
    assert all(len(h.encode()) < COOKIE_SIZE_LIMIT for h in headers)
    loaded = flows.sessions.load(cookie_header(set_cookie_pairs(headers)), clock())
    assert loaded.view is not None
    assert loaded.view.session == session
    assert loaded.view.user.identity == session.sub
