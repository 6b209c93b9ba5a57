"""Session: its cookie payload, how a token response updates it, and what the app sees."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.authentication import has_required_scope
from starlette.requests import HTTPConnection

from renewal_middleware import OIDCUser, Session, TokenCredentials
from renewal_middleware.session import EXPIRY_UNKNOWN
from tests.unit.helpers import T0, make_session

NOW = int(T0)


def valid_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "v": 1, "id": "sid-1", "at": "at-1", "exp": NOW + 3600, "iat": NOW,
        "c": {"sub": "alice"}, "rt": "rt-1", "it": "id-token-1", "sc": "openid",
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not _DROP}


_DROP = object()


def test_payload_round_trip() -> None:
    session = make_session()
    assert Session.from_payload(session.to_payload()) == session


def test_payload_round_trip_without_optional_parts() -> None:
    session = make_session(refresh_token=None, id_token=None, scope="", expires_in=None)
    payload = session.to_payload()
    assert not {"rt", "it", "sc"} & set(payload)
    assert Session.from_payload(payload) == session


def test_valid_payload_is_accepted() -> None:
    session = Session.from_payload(valid_payload())
    assert session is not None
    assert (session.access_token, session.refresh_token, session.id_token) == (
        "at-1", "rt-1", "id-token-1")


@pytest.mark.parametrize("payload", [
    None, [], "text", 1,
    valid_payload(v=_DROP), valid_payload(v=2), valid_payload(v="1"),
    valid_payload(id=_DROP), valid_payload(id=1),
    valid_payload(at=_DROP), valid_payload(at=""), valid_payload(at=5),
    valid_payload(exp=_DROP), valid_payload(exp="1"), valid_payload(exp=1.5),
    valid_payload(exp=None),
    valid_payload(iat=_DROP), valid_payload(iat="0"),
    valid_payload(c=_DROP), valid_payload(c=[]), valid_payload(c={}),
    valid_payload(c={"sub": 5}), valid_payload(c={"sub": None}),
    valid_payload(rt=""), valid_payload(rt=5),
    valid_payload(it=5),
    valid_payload(sc=None), valid_payload(sc=["openid"]),
], ids=lambda p: repr(p)[:60])
def test_from_payload_refuses_wrong_shapes(payload: object) -> None:
    assert Session.from_payload(payload) is None


@pytest.mark.parametrize("payload", [
    valid_payload(v=True), valid_payload(exp=True), valid_payload(iat=False),
], ids=["v=True", "exp=True", "iat=False"])
def test_from_payload_refuses_booleans_as_integers(payload: object) -> None:
    assert Session.from_payload(payload) is None


# -- token responses -------------------------------------------------------------------------


def test_from_token_response_for_a_new_login() -> None:
    token = {"access_token": "at-1", "expires_in": 300, "refresh_token": "rt-1",
             "id_token": "idt", "scope": "openid email"}
    claims = {"sub": "alice", "email": "a@example", "iss": "https://op.example",
              "aud": "client", "exp": NOW + 300, "iat": NOW, "nonce": "n", "at_hash": "x"}
    session = Session.from_token_response(token, claims, NOW)
    assert session.access_token == "at-1"
    assert session.expires_at == NOW + 300
    assert session.obtained_at == NOW
    assert session.refresh_token == "rt-1"
    assert session.id_token == "idt"
    assert session.scope == "openid email"
    assert dict(session.claims) == {"sub": "alice", "email": "a@example"}
    assert session.id
    assert Session.from_token_response(token, claims, NOW).id != session.id


def test_from_token_response_keeps_what_a_refresh_did_not_renew() -> None:
    previous = make_session(claims={"sub": "alice", "name": "Old", "email": "a@example"},
                            scope="openid profile")
    token = {"access_token": "at-2", "expires_in": 600}
    session = Session.from_token_response(token, {"sub": "alice", "name": "New",
                                                   "nonce": "n", "aud": "c"},
                                          NOW + 100, previous=previous)
    assert session.id == previous.id
    assert session.access_token == "at-2"
    assert session.refresh_token == previous.refresh_token
    assert session.id_token == previous.id_token
    assert session.scope == previous.scope
    assert session.expires_at == NOW + 700
    assert session.obtained_at == NOW + 100
    assert dict(session.claims) == {"sub": "alice", "name": "New", "email": "a@example"}


def test_how_and_when_the_user_authenticated_stays_in_the_claims() -> None:
    claims = {"sub": "alice", "auth_time": NOW - 30, "acr": "gold", "amr": ["pwd", "otp"],
              "iss": "https://op.example", "aud": "client", "exp": NOW + 300, "iat": NOW,
              "nonce": "n", "at_hash": "x", "azp": "client", "jti": "j", "nbf": NOW,
              "c_hash": "c", "s_hash": "s"}
    session = Session.from_token_response({"access_token": "at-1"}, claims, NOW)
    assert dict(session.claims) == {"sub": "alice", "auth_time": NOW - 30, "acr": "gold",
                                    "amr": ["pwd", "otp"]}
    assert Session.from_payload(session.to_payload()) == session


def test_a_renewal_keeps_the_login_auth_time_and_acr_unless_renewed() -> None:
    login = Session.from_token_response(
        {"access_token": "at-1", "refresh_token": "rt-1"},
        {"sub": "alice", "auth_time": NOW - 30, "acr": "gold", "amr": ["pwd"]}, NOW)
    # A refreshed ID token without them (or no ID token at all): the login's stay.
    renewed = Session.from_token_response({"access_token": "at-2"}, {"sub": "alice", "iat": NOW},
                                          NOW + 60, previous=login)
    assert (renewed.claims["auth_time"], renewed.claims["acr"]) == (NOW - 30, "gold")
    assert renewed.claims["amr"] == ["pwd"]
    # A renewed ID token that carries them wins.
    again = Session.from_token_response(
        {"access_token": "at-3"}, {"sub": "alice", "auth_time": NOW + 100, "acr": "silver"},
        NOW + 120, previous=renewed)
    assert (again.claims["auth_time"], again.claims["acr"]) == (NOW + 100, "silver")
    assert again.claims["amr"] == ["pwd"]


def test_from_token_response_takes_a_rotated_refresh_token() -> None:
    previous = make_session()
    session = Session.from_token_response(
        {"access_token": "at-2", "refresh_token": "rt-2", "id_token": "idt-2"},
        previous.claims, NOW, previous=previous)
    assert session.refresh_token == "rt-2"
    assert session.id_token == "idt-2"
    assert session.refresh_key != previous.refresh_key


@pytest.mark.parametrize(("expires_in", "expected"), [
    (_DROP, EXPIRY_UNKNOWN), (None, EXPIRY_UNKNOWN), (0, EXPIRY_UNKNOWN),
    (-5, EXPIRY_UNKNOWN), (True, EXPIRY_UNKNOWN), ("soon", EXPIRY_UNKNOWN),
    (3600, NOW + 3600), ("3600", NOW + 3600),
])
def test_expiry_from_expires_in(expires_in: object, expected: int) -> None:
    token: dict[str, Any] = {"access_token": "at"}
    if expires_in is not _DROP:
        token["expires_in"] = expires_in
    # authlib adds expires_at itself; only expires_in measured on our clock counts.
    token["expires_at"] = NOW + 99999
    assert Session.from_token_response(token, {"sub": "a"}, NOW).expires_at == expected


def test_refresh_key_hashes_the_refresh_token() -> None:
    key = make_session(refresh_token="rt-1").refresh_key
    assert key is not None and "rt-1" not in key
    assert key == make_session(refresh_token="rt-1", id="other").refresh_key
    assert make_session(refresh_token=None).refresh_key is None


def test_repr_hides_tokens() -> None:
    session = make_session(access_token="AT-SECRET", refresh_token="RT-SECRET",
                           id_token="IDT-SECRET")
    text = repr(session)
    assert "SECRET" not in text
    assert "SECRET" not in repr(TokenCredentials(session))
    assert "SECRET" not in repr(OIDCUser(session.claims))


# -- what the app sees -----------------------------------------------------------------------


@pytest.mark.parametrize(("claims", "expected"), [
    ({"sub": "s", "name": "Name", "preferred_username": "pu", "email": "e@x"}, "Name"),
    ({"sub": "s", "name": "", "preferred_username": "pu", "email": "e@x"}, "pu"),
    ({"sub": "s", "nickname": "nick", "email": "e@x"}, "nick"),
    ({"sub": "s", "name": 5, "email": "e@x"}, "e@x"),
    ({"sub": "s"}, "s"),
    ({}, ""),
])
def test_display_name_fallbacks(claims: dict[str, Any], expected: str) -> None:
    assert OIDCUser(claims).display_name == expected


def test_user_identity_and_authentication() -> None:
    user = OIDCUser({"sub": "alice", "name": "Alice"})
    assert user.is_authenticated
    assert user.identity == "alice"
    assert user.claims["name"] == "Alice"


def test_token_credentials() -> None:
    session = make_session(scope="openid profile")
    auth = TokenCredentials(session)
    assert auth.scopes == ["authenticated", "openid", "profile"]
    assert auth.access_token == "at-1"
    assert auth.expires_at == session.expires_at
    assert auth.session_id == "sid-1"
    assert auth.claims["sub"] == "alice"


def test_token_credentials_work_with_starlette_requires() -> None:
    conn = HTTPConnection({"type": "http", "headers": [],
                           "auth": TokenCredentials(make_session(scope="openid email"))})
    assert has_required_scope(conn, ["authenticated", "email"])
    assert not has_required_scope(conn, ["admin"])
    assert TokenCredentials(make_session(scope="")).scopes == ["authenticated"]
