"""The middleware's decisions, driven by hand: login, callback, decide, refresh, logout."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc.jwk import RSAKey

from renewal_middleware.errors import (
    AuthenticationError,
    ProviderUnavailable,
    TokenRequestRejected,
)
from renewal_middleware.flows import (
    Flows,
    Loaded,
    NeedsRefresh,
    NeedsSilentLogin,
    Reply,
    Serve,
    error_reply,
    is_navigation,
    safe_return_to,
    wants_json,
)
from renewal_middleware.oidc import GetJSON, RevokeRequest, TokenRequest, UserInfoRequest
from renewal_middleware.renewal import (
    AsyncRefreshCoordinator,
    Ended,
    Freshness,
    Renewed,
    Unavailable,
)
from renewal_middleware.session import Session
from tests.unit.helpers import (
    BASE_URL,
    CLIENT_ID,
    DISCOVERY,
    DISCOVERY_URL,
    ISSUER,
    T0,
    FakeClock,
    answer_discovery,
    attributes,
    cookie_header,
    id_claims,
    is_deletion,
    jwks,
    make_session,
    make_settings,
    mint,
    run_flow,
    s256,
    session_cookie_header,
    set_cookie_pairs,
    unsigned_token,
)

NOW = int(T0)
JSON = "application/json"


def header(reply: Reply, name: str) -> str | None:
    values = [v for k, v in reply.headers if k == name]
    assert len(values) <= 1, values
    return values[0] if values else None


def set_cookies(reply: Reply) -> list[str]:
    return [v for k, v in reply.headers if k == "set-cookie"]


def location_query(reply: Reply) -> tuple[str, dict[str, str]]:
    location = header(reply, "location")
    assert location is not None
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return f"{parts.scheme}://{parts.netloc}{parts.path}", query


def start_login(flows: Flows, query: dict[str, str] | None = None) -> Reply:
    reply, effects = run_flow(flows.login(query or {}, flows.clock()), answer_discovery)
    assert effects in ([GetJSON(DISCOVERY_URL)], [])  # discovery is cached after the first
    return reply


def transaction(flows: Flows, reply: Reply) -> tuple[str, str, dict[str, Any]]:
    """The transaction cookie's name, value and payload, decoded with the Flows' own codec."""
    ((name, value),) = set_cookie_pairs(set_cookies(reply)).items()
    loaded = flows._tx_codec.loads(value, flows.settings.login_timeout_seconds)
    assert loaded is not None
    return name, value, loaded[0]


def never(effect: Any) -> Any:
    raise AssertionError(f"unexpected effect {effect!r}")


def nav() -> bool:
    return True


def api() -> bool:
    return False


def decide(flows: Flows, session: Session | None, navigation: Any = api,
           now: float | None = None) -> Any:
    now = flows.clock() if now is None else now
    header_ = session_cookie_header(flows, session) if session else None
    return flows.decide(flows.load(header_, now), now, navigation, lambda: "/page?x=1")


# -- small pure helpers ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    None, "", "//evil.example", "//evil.example/path", "https://evil.example",
    "http://evil.example/", "/\\evil.example", "/\\/evil.example", "\\\\evil.example",
    "javascript:alert(1)", "evil.example", "/path\r\nSet-Cookie: x=1", "/\tpath", "/pa\x00th",
    "/pa\x7fth", " /path",
])
def test_unsafe_return_to_becomes_root(value: str | None) -> None:
    assert safe_return_to(value) == "/"


@pytest.mark.parametrize("value", ["/", "/path?q=1", "/a/b#frag", "/caf%C3%A9", "/?next=//x"])
def test_safe_return_to_is_kept(value: str) -> None:
    assert safe_return_to(value) == value


@pytest.mark.parametrize(("method", "mode", "accept", "xrw", "expected"), [
    ("GET", "navigate", None, None, True),
    ("GET", "cors", "text/html", None, False),
    ("GET", None, "text/html,application/xhtml+xml", None, True),
    ("GET", None, JSON, None, False),
    ("GET", None, None, None, False),
    ("POST", "navigate", "text/html", None, False),
    ("GET", None, "text/html", "XMLHttpRequest", False),
])
def test_is_navigation(method: str, mode: str | None, accept: str | None, xrw: str | None,
                       expected: bool) -> None:
    assert is_navigation(method, mode, accept, xrw) is expected


def test_wants_json() -> None:
    assert wants_json(JSON)
    assert not wants_json("text/html, application/json")
    assert not wants_json(None)


def test_error_reply_json_and_html() -> None:
    error = AuthenticationError("bad <b>thing</b>", code="oops")
    as_json = error_reply(error, True)
    assert as_json.status == 400
    assert json.loads(as_json.body) == {"error": "oops", "error_description": "bad <b>thing</b>"}
    assert header(as_json, "content-type") == JSON
    as_html = error_reply(error, False)
    assert b"<b>" not in as_html.body and b"&lt;b&gt;" in as_html.body
    assert header(as_html, "cache-control") == "no-store"
    unavailable = error_reply(ProviderUnavailable("down", retry_after=12.7), True)
    assert unavailable.status == 503
    assert header(unavailable, "retry-after") == "12"


# -- login -----------------------------------------------------------------------------------


def test_login_redirects_to_the_provider_with_pkce(flows: Flows) -> None:
    reply = start_login(flows, {"return_to": "/path?q=1"})
    assert reply.status == 302
    assert header(reply, "cache-control") == "no-store"
    endpoint, query = location_query(reply)
    assert endpoint == DISCOVERY["authorization_endpoint"]
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == BASE_URL + "/callback"
    assert query["scope"] == "openid profile email offline_access"
    assert query["prompt"] == "consent"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    assert "audience" not in query

    name, _, tx = transaction(flows, reply)
    assert name == "renewal_session_tx_" + query["state"]
    assert tx["s"] == query["state"]
    assert tx["n"] == query["nonce"]
    assert tx["r"] == "/path?q=1"
    assert 43 <= len(tx["v"]) <= 128
    assert query["code_challenge"] == s256(tx["v"])
    assert tx["v"] not in header(reply, "location")  # the verifier never leaves the browser

    attrs = attributes(set_cookies(reply)[0])
    assert {"HttpOnly", "Secure", "SameSite=Lax", "Path=/callback", "Max-Age=900"} <= set(attrs)


def test_each_login_has_its_own_state_nonce_and_verifier(flows: Flows) -> None:
    first = transaction(flows, start_login(flows))[2]
    second = transaction(flows, start_login(flows))[2]
    assert all(first[k] != second[k] for k in ("s", "n", "v"))


@pytest.mark.parametrize("unsafe", ["//evil.example", "https://evil.example", "/\\evil.example",
                                    "javascript:alert(1)", "/a\nb"])
def test_login_sanitises_return_to(flows: Flows, unsafe: str) -> None:
    assert transaction(flows, start_login(flows, {"return_to": unsafe}))[2]["r"] == "/"


def test_login_prompt_and_audience_settings(clock: FakeClock) -> None:
    flows = Flows(make_settings(scope="openid email", audience="https://api.example"), clock)
    query = location_query(start_login(flows))[1]
    assert "prompt" not in query
    assert query["audience"] == "https://api.example"
    flows = Flows(make_settings(login_prompt="login"), clock)
    assert location_query(start_login(flows))[1]["prompt"] == "login"


def test_login_keeps_a_query_in_the_authorization_endpoint(flows: Flows) -> None:
    doc = {**DISCOVERY, "authorization_endpoint": ISSUER + "/auth?tenant=t1"}
    reply, _ = run_flow(flows.login({}, T0), lambda e: answer_discovery(e, doc))
    endpoint, query = location_query(reply)
    assert endpoint == ISSUER + "/auth"
    assert query["tenant"] == "t1"
    assert query["client_id"] == CLIENT_ID


def test_login_while_the_provider_is_down_raises_provider_unavailable(flows: Flows) -> None:
    def down(effect: Any) -> Any:
        raise ProviderUnavailable("down")

    with pytest.raises(ProviderUnavailable):
        run_flow(flows.login({}, T0), down)


def test_silent_redirect_asks_prompt_none_without_offline_access(flows: Flows) -> None:
    reply, _ = run_flow(flows.silent_redirect("/page", T0), answer_discovery)
    query = location_query(reply)[1]
    assert query["prompt"] == "none"
    assert query["redirect_uri"] == BASE_URL + "/silent"
    assert "offline_access" not in query["scope"].split()
    tx = transaction(flows, reply)[2]
    assert tx["k"] == "silent" and tx["r"] == "/page"
    assert "Path=/silent" in attributes(set_cookies(reply)[0])


# -- callback ----------------------------------------------------------------------------------


class OP:
    """Answers the effects of a callback: token, JWKS, userinfo; records what was asked."""

    def __init__(self, key: RSAKey, *, nonce: str, sub: str = "alice",
                 token: dict[str, Any] | None = None, id_token: str | None = None,
                 userinfo: dict[str, Any] | None = None) -> None:
        self.key = key
        self.effects: list[Any] = []
        self.id_token = id_token or mint(key, id_claims(sub=sub, nonce=nonce, name="Alice ID"))
        self.token = token if token is not None else {
            "access_token": "at-1", "token_type": "Bearer", "expires_in": 3600,
            "refresh_token": "rt-1", "id_token": self.id_token, "scope": "openid email",
        }
        self.userinfo = userinfo if userinfo is not None else {
            "sub": sub, "name": "Alice Userinfo", "email": "alice@example"}

    def __call__(self, effect: Any) -> Any:
        self.effects.append(effect)
        if isinstance(effect, GetJSON):
            return DISCOVERY if effect.url == DISCOVERY_URL else jwks(self.key)
        if isinstance(effect, TokenRequest):
            return self.token
        if isinstance(effect, UserInfoRequest):
            return self.userinfo
        raise AssertionError(effect)


def callback(flows: Flows, query: dict[str, str], cookies: str | None, handler: Any,
             accept: str | None = "text/html", kind: str = "login") -> tuple[Reply, list[Any]]:
    return run_flow(flows.callback(kind, query, cookies, accept, flows.clock()), handler)


def test_callback_completes_the_login(flows: Flows, rsa_key: RSAKey) -> None:
    login = start_login(flows, {"return_to": "/after"})
    name, value, tx = transaction(flows, login)
    op = OP(rsa_key, nonce=tx["n"])
    reply, effects = callback(flows, {"code": "code-1", "state": tx["s"]},
                              cookie_header({name: value}), op)

    assert effects == [
        TokenRequest(DISCOVERY["token_endpoint"], {
            "grant_type": "authorization_code", "code": "code-1",
            "redirect_uri": BASE_URL + "/callback", "code_verifier": tx["v"]}),
        GetJSON(DISCOVERY["jwks_uri"]),
        UserInfoRequest(DISCOVERY["userinfo_endpoint"], "at-1"),
    ]
    assert reply.status == 302
    assert header(reply, "location") == "/after"
    cookies = set_cookies(reply)
    deleted = [c for c in cookies if is_deletion(c)]
    assert [c.split("=", 1)[0] for c in deleted] == [name]
    assert "Path=/callback" in attributes(deleted[0])

    loaded = flows.load(cookie_header(set_cookie_pairs([c for c in cookies
                                                        if not is_deletion(c)])), T0)
    assert loaded.view is not None
    session = loaded.view.session
    assert (session.access_token, session.refresh_token) == ("at-1", "rt-1")
    assert session.id_token == op.id_token
    assert session.expires_at == NOW + 3600
    assert session.scope == "openid email"
    assert loaded.view.user.identity == "alice"
    # ID-token claims win over userinfo; protocol claims are not kept.
    assert session.claims["name"] == "Alice ID"
    assert session.claims["email"] == "alice@example"
    assert not {"nonce", "aud", "iss", "exp"} & set(session.claims)


def test_callback_decodes_with_a_fresh_flows_instance(clock: FakeClock, rsa_key: RSAKey) -> None:
    """Another worker with the same keys accepts the transaction and the session cookie."""
    settings = make_settings()
    first, second = Flows(settings, clock), Flows(settings, clock)
    name, value, tx = transaction(first, start_login(first))
    reply, _ = callback(second, {"code": "c", "state": tx["s"]}, cookie_header({name: value}),
                        OP(rsa_key, nonce=tx["n"]))
    assert reply.status == 302
    session_cookies = [c for c in set_cookies(reply) if not is_deletion(c)]
    assert first.load(cookie_header(set_cookie_pairs(session_cookies)), T0).view is not None


def test_callback_with_unknown_state_is_400(flows: Flows) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    for query, cookies in [
        ({"code": "c", "state": "unknown"}, cookie_header({name: value})),
        ({"code": "c", "state": tx["s"]}, None),
        ({"code": "c"}, cookie_header({name: value})),
        ({"code": "c", "state": tx["s"]}, cookie_header({name: value + "x"})),
    ]:
        reply, effects = callback(flows, query, cookies, never, accept=JSON)
        assert reply.status == 400
        assert effects == []
        assert json.loads(reply.body)["error"] == "unknown_state"
        assert not any(not is_deletion(c) for c in set_cookies(reply))


def test_callback_after_the_login_timeout_is_400(flows: Flows, clock: FakeClock) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    clock.advance(901)
    reply, effects = callback(flows, {"code": "c", "state": tx["s"]},
                              cookie_header({name: value}), never)
    assert reply.status == 400
    assert effects == []


def test_login_transaction_is_refused_on_the_silent_route(flows: Flows) -> None:
    _, value, tx = transaction(flows, start_login(flows))
    reply, effects = callback(flows, {"code": "c", "state": tx["s"]},
                              cookie_header({flows.tx_prefix + tx["s"]: value}), never,
                              kind="silent")
    assert effects == []
    assert reply.status == 400
    assert not any(not is_deletion(c) for c in set_cookies(reply))


def test_callback_with_access_denied_is_a_json_4xx(flows: Flows) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    reply, effects = callback(
        flows, {"error": "access_denied", "error_description": "user said no", "state": tx["s"]},
        cookie_header({name: value}), never, accept=JSON)
    assert effects == []
    assert 400 <= reply.status < 500
    assert header(reply, "content-type") == JSON
    body = json.loads(reply.body)
    assert body["error"] == "authorization_error"
    assert "access_denied" in body["error_description"]
    assert [c.split("=", 1)[0] for c in set_cookies(reply)] == [name]
    assert all(is_deletion(c) for c in set_cookies(reply))


def test_callback_error_as_html_for_browsers(flows: Flows) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    reply, _ = callback(flows, {"error": "access_denied", "state": tx["s"]},
                        cookie_header({name: value}), never, accept="text/html")
    assert reply.status == 400
    assert header(reply, "content-type").startswith("text/html")


def test_callback_with_another_issuer_is_refused(flows: Flows) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    reply, effects = callback(flows, {"code": "c", "state": tx["s"],
                                      "iss": "https://evil.example"},
                              cookie_header({name: value}), never, accept=JSON)
    assert effects == []
    assert reply.status == 400
    assert json.loads(reply.body)["error"] == "issuer_mismatch"


def test_callback_with_the_right_iss_parameter_proceeds(flows: Flows, rsa_key: RSAKey) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    reply, _ = callback(flows, {"code": "c", "state": tx["s"], "iss": ISSUER},
                        cookie_header({name: value}), OP(rsa_key, nonce=tx["n"]))
    assert reply.status == 302


def test_callback_iss_parameter_must_match_exactly(flows: Flows, rsa_key: RSAKey) -> None:
    """RFC 9207 compares the issuer identifier as a simple string."""
    name, value, tx = transaction(flows, start_login(flows))
    reply, _ = callback(flows, {"code": "c", "state": tx["s"], "iss": ISSUER + "/"},
                        cookie_header({name: value}), OP(rsa_key, nonce=tx["n"]), accept=JSON)
    assert reply.status == 400
    assert json.loads(reply.body)["error"] == "issuer_mismatch"


def test_callback_without_code_is_400(flows: Flows) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    reply, effects = callback(flows, {"state": tx["s"]}, cookie_header({name: value}), never)
    assert (reply.status, effects) == (400, [])


def test_callback_code_rejected_is_400(flows: Flows) -> None:
    name, value, tx = transaction(flows, start_login(flows))

    def rejected(effect: Any) -> Any:
        raise TokenRequestRejected("invalid_grant", "code used")

    reply, _ = callback(flows, {"code": "c", "state": tx["s"]}, cookie_header({name: value}),
                        rejected, accept=JSON)
    assert reply.status == 400
    assert json.loads(reply.body)["error"] == "code_rejected"


def test_callback_provider_down_is_503(flows: Flows) -> None:
    name, value, tx = transaction(flows, start_login(flows))

    def down(effect: Any) -> Any:
        raise ProviderUnavailable("down", retry_after=5)

    reply, _ = callback(flows, {"code": "c", "state": tx["s"]}, cookie_header({name: value}),
                        down)
    assert reply.status == 503
    assert header(reply, "retry-after") == "5"


@pytest.mark.parametrize("bad", ["nonce", "aud", "iss", "exp", "alg_none", "no_id_token"])
def test_callback_refuses_a_bad_id_token(flows: Flows, rsa_key: RSAKey, bad: str) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    claims = id_claims(nonce=tx["n"])
    claims.update({"nonce": {"nonce": "other"}, "aud": {"aud": "other-client"},
                   "iss": {"iss": "https://evil.example"},
                   "exp": {"exp": NOW - 3600}}.get(bad, {}))
    token = (unsigned_token({"alg": "none"}, claims) if bad == "alg_none"
             else mint(rsa_key, claims))
    op = OP(rsa_key, nonce=tx["n"], id_token=token)
    if bad == "no_id_token":
        op.token = {"access_token": "at-1", "token_type": "Bearer"}
    reply, _ = callback(flows, {"code": "c", "state": tx["s"]}, cookie_header({name: value}),
                        op, accept=JSON)
    assert reply.status == 400
    assert json.loads(reply.body)["error"] == "invalid_id_token"
    assert all(is_deletion(c) for c in set_cookies(reply))


def test_silent_callback_keeps_the_session_and_refuses_another_user(
        flows: Flows, rsa_key: RSAKey) -> None:
    session = make_session(refresh_token=None, claims={"sub": "alice", "team": "x"})
    existing = session_cookie_header(flows, session)
    reply, _ = run_flow(flows.silent_redirect("/page", T0), answer_discovery)
    name, value, tx = transaction(flows, reply)
    cookies = existing + "; " + cookie_header({name: value})

    ok, effects = callback(flows, {"code": "c", "state": tx["s"]}, cookies,
                           OP(rsa_key, nonce=tx["n"]), kind="silent")
    assert header(ok, "location") == "/page"
    assert not any(isinstance(e, UserInfoRequest) for e in effects)
    renewed = flows.load(cookie_header(set_cookie_pairs(
        [c for c in set_cookies(ok) if not is_deletion(c)])), T0).view
    assert renewed is not None
    assert renewed.session.id == session.id
    assert renewed.session.claims["team"] == "x"

    reply, _ = run_flow(flows.silent_redirect("/page", T0), never)
    name, value, tx = transaction(flows, reply)
    cookies = existing + "; " + cookie_header({name: value})
    other, _ = callback(flows, {"code": "c", "state": tx["s"]}, cookies,
                        OP(rsa_key, nonce=tx["n"], sub="mallory"), kind="silent")
    assert header(other, "location") == "/page"
    assert "renewal_session" in [c.split("=", 1)[0] for c in set_cookies(other)
                                 if is_deletion(c)]


def test_silent_login_required_ends_the_session(flows: Flows) -> None:
    existing = session_cookie_header(flows, make_session(refresh_token=None))
    reply, _ = run_flow(flows.silent_redirect("/page", T0), answer_discovery)
    name, value, tx = transaction(flows, reply)
    done, effects = callback(flows, {"error": "login_required", "state": tx["s"]},
                             existing + "; " + cookie_header({name: value}), never,
                             kind="silent")
    assert effects == []
    assert done.status == 302 and header(done, "location") == "/page"
    assert {c.split("=", 1)[0] for c in set_cookies(done)} == {"renewal_session", name}
    assert all(is_deletion(c) for c in set_cookies(done))


# -- decide ------------------------------------------------------------------------------------


def test_no_cookie_is_anonymous(flows: Flows) -> None:
    decision = decide(flows, None)
    assert decision == Serve(None)
    assert not decision.user.is_authenticated
    assert decision.auth.scopes == []


def test_fresh_session_is_served_without_set_cookie(flows: Flows) -> None:
    decision = decide(flows, make_session())
    assert isinstance(decision, Serve)
    assert decision.set_cookies == ()
    assert decision.user.identity == "alice"
    assert decision.auth.access_token == "at-1"


def test_invalid_cookie_is_cleared(flows: Flows) -> None:
    for cookies in ["renewal_session=forged", "renewal_session.0=a; renewal_session.1=b"]:
        decision = flows.decide(flows.load(cookies, T0), T0, api, lambda: "/")
        assert isinstance(decision, Serve) and decision.view is None
        assert decision.set_cookies and all(is_deletion(c) for c in decision.set_cookies)


@pytest.mark.parametrize(("navigation", "remaining", "freshness"), [
    (api, 30, Freshness.RENEW), (nav, 30, Freshness.RENEW),
    (api, -5, Freshness.EXPIRED), (nav, -5, Freshness.EXPIRED),
])
def test_refresh_token_means_refresh(flows: Flows, clock: FakeClock, navigation: Any,
                                     remaining: int, freshness: Freshness) -> None:
    session = make_session()
    clock.now = session.expires_at - remaining
    assert decide(flows, session, navigation) == NeedsRefresh(session.refresh_key, freshness)


def test_no_refresh_token_and_navigation_means_silent_login(
        flows: Flows, clock: FakeClock) -> None:
    session = make_session(refresh_token=None)
    clock.now = session.expires_at - 30
    assert decide(flows, session, nav) == NeedsSilentLogin("/page?x=1", Freshness.RENEW)
    clock.now = session.expires_at + 30
    assert decide(flows, session, nav) == NeedsSilentLogin("/page?x=1", Freshness.EXPIRED)


def test_no_refresh_token_api_in_grace_is_served(flows: Flows, clock: FakeClock) -> None:
    session = make_session(refresh_token=None)
    clock.now = session.expires_at - 30
    decision = decide(flows, session, api)
    assert isinstance(decision, Serve) and decision.view.session == session


def test_no_refresh_token_api_expired_is_401(flows: Flows, clock: FakeClock) -> None:
    session = make_session(refresh_token=None)
    clock.now = session.expires_at + 1
    decision = decide(flows, session, api)
    assert isinstance(decision, Reply)
    assert decision.status == 401
    assert header(decision, "www-authenticate").startswith('Bearer error="invalid_token"')
    assert json.loads(decision.body)["error"] == "invalid_token"
    assert not set_cookies(decision)  # the cookie stays: a page load may still renew it


def test_unknown_expiry_never_renews(flows: Flows, clock: FakeClock) -> None:
    clock.advance(10**7)
    decision = decide(flows, make_session(expires_in=None, refresh_token=None))
    assert isinstance(decision, Serve) and decision.set_cookies == ()


# -- refresh -----------------------------------------------------------------------------------


def refresh_answer(**changes: Any) -> dict[str, Any]:
    token = {"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
             "refresh_token": "rt-2"}
    token.update(changes)
    return {k: v for k, v in token.items() if v is not None}


def loaded_for(flows: Flows, session: Session, extra: str = "") -> Loaded:
    header_ = session_cookie_header(flows, session) + extra
    return flows.load(header_, flows.clock())


def test_refresh_renews_and_after_refresh_sets_the_cookie(
        flows: Flows, clock: FakeClock) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    loaded = loaded_for(flows, session, "; renewal_session.0=stale")
    decision = flows.decide(loaded, clock(), api, lambda: "/")
    assert isinstance(decision, NeedsRefresh)

    flow = flows.refresh(session, clock())
    assert next(flow) == GetJSON(DISCOVERY_URL)
    assert flow.send(DISCOVERY) == TokenRequest(
        DISCOVERY["token_endpoint"], {"grant_type": "refresh_token", "refresh_token": "rt-1"})
    with pytest.raises(StopIteration) as stop:
        flow.send(refresh_answer())
    outcome = stop.value.value
    assert isinstance(outcome, Renewed)
    assert outcome.session.access_token == "at-2"
    assert outcome.session.refresh_token == "rt-2"
    assert outcome.session.id == session.id
    assert outcome.session.claims == session.claims
    assert outcome.session.expires_at == int(clock()) + 3600

    served = flows.after_refresh(loaded, outcome, decision.freshness, api)
    assert isinstance(served, Serve)
    assert served.auth.access_token == "at-2"
    written = [c for c in served.set_cookies if not is_deletion(c)]
    deleted = [c.split("=", 1)[0] for c in served.set_cookies if is_deletion(c)]
    assert deleted == ["renewal_session.0"]
    assert set_cookie_pairs(written)["renewal_session"] == outcome.cookie_value
    # Another instance with the same keys reads the new cookie.
    other = Flows(flows.settings, clock)
    view = other.load(cookie_header(set_cookie_pairs(written)), clock()).view
    assert view is not None and view.session == outcome.session


def test_refresh_validates_a_new_id_token(flows: Flows, clock: FakeClock,
                                          rsa_key: RSAKey) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    now = int(clock())
    good = mint(rsa_key, id_claims(now, nonce=None, name="Alice New"))
    answers = {DISCOVERY_URL: DISCOVERY, DISCOVERY["jwks_uri"]: jwks(rsa_key)}

    def op(token: dict[str, Any]) -> Any:
        return lambda e: answers[e.url] if isinstance(e, GetJSON) else token

    outcome, _ = run_flow(flows.refresh(session, now), op(refresh_answer(id_token=good)))
    assert isinstance(outcome, Renewed)
    assert outcome.session.id_token == good
    assert outcome.session.claims["name"] == "Alice New"

    other_user = mint(rsa_key, id_claims(now, nonce=None, sub="mallory"))
    outcome, _ = run_flow(flows.refresh(session, now), op(refresh_answer(id_token=other_user)))
    assert outcome == Ended("subject_changed")


def test_invalid_grant_ends_the_session_and_clears_every_chunk(
        flows: Flows, clock: FakeClock) -> None:
    session = make_session()
    clock.now = session.expires_at + 10
    loaded = loaded_for(flows, session, "; renewal_session.0=x; renewal_session.1=y")
    flow = flows.refresh(session, clock())
    next(flow)
    flow.send(DISCOVERY)
    with pytest.raises(StopIteration) as stop:
        flow.throw(TokenRequestRejected("invalid_grant", "revoked"))
    outcome = stop.value.value
    assert isinstance(outcome, Ended)
    decision = flows.after_refresh(loaded, outcome, Freshness.EXPIRED, nav)
    assert isinstance(decision, Serve) and decision.view is None
    assert {c.split("=", 1)[0] for c in decision.set_cookies} == {
        "renewal_session", "renewal_session.0", "renewal_session.1"}
    assert all(is_deletion(c) for c in decision.set_cookies)
    assert flows.backoff.retry_at(session.id, clock()) is None


def test_provider_down_while_valid_serves_the_current_session_and_backs_off(
        flows: Flows, clock: FakeClock) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    now = clock()
    loaded = loaded_for(flows, session)

    def down(effect: Any) -> Any:
        if isinstance(effect, GetJSON):
            return DISCOVERY
        raise ProviderUnavailable("503", retry_after=20)

    outcome, _ = run_flow(flows.refresh(session, now), down)
    assert isinstance(outcome, Unavailable)
    assert outcome.retry_at >= now + 20
    assert flows.backoff.retry_at(session.id, now) == outcome.retry_at

    decision = flows.after_refresh(loaded, outcome, Freshness.RENEW, api)
    assert isinstance(decision, Serve)
    assert decision.view is not None and decision.view.session == session
    assert decision.set_cookies == ()
    # While backing off, the next request does not try again.
    clock.advance(5)
    again = flows.decide(flows.load(session_cookie_header(flows, session), clock()), clock(),
                         api, lambda: "/")
    assert isinstance(again, Serve) and again.view.session == session
    clock.now = outcome.retry_at
    assert isinstance(flows.decide(loaded, clock(), api, lambda: "/"), NeedsRefresh)


def test_provider_down_after_expiry(flows: Flows, clock: FakeClock) -> None:
    session = make_session()
    clock.now = session.expires_at + 5
    loaded = loaded_for(flows, session)
    outcome = Unavailable("down", clock() + 10)
    api_reply = flows.after_refresh(loaded, outcome, Freshness.EXPIRED, api)
    assert isinstance(api_reply, Reply) and api_reply.status == 401
    page = flows.after_refresh(loaded, outcome, Freshness.EXPIRED, nav)
    assert page == Serve(None)  # anonymous for now, cookie kept for a later renewal


def test_other_token_errors_do_not_end_the_session(flows: Flows) -> None:
    session = make_session()

    def rejected(effect: Any) -> Any:
        if isinstance(effect, GetJSON):
            return DISCOVERY
        raise TokenRequestRejected("invalid_client")

    outcome, _ = run_flow(flows.refresh(session, T0), rejected)
    assert isinstance(outcome, Unavailable)


def test_a_request_with_the_pre_rotation_cookie_gets_the_stored_result(
        flows: Flows, clock: FakeClock) -> None:
    session = make_session()
    clock.now = session.expires_at - 30
    outcome, _ = run_flow(flows.refresh(session, clock()),
                          lambda e: DISCOVERY if isinstance(e, GetJSON) else refresh_answer())
    flows.results.put(session.refresh_key, outcome, clock())
    # Even while backing off, a stored result is used rather than served stale.
    flows.backoff.failed(session.id, clock())
    loaded = loaded_for(flows, session)
    decision = flows.decide(loaded, clock(), api, lambda: "/")
    assert decision == NeedsRefresh(session.refresh_key, Freshness.RENEW)


# -- logout ------------------------------------------------------------------------------------


def big_session() -> Session:
    return make_session(id_token="idt-" + "x" * 100,
                        claims={"sub": "alice", "blob": random.Random(7).randbytes(4000).hex()})


def test_logout_revokes_clears_and_redirects_to_the_provider(flows: Flows) -> None:
    session = big_session()
    header_ = session_cookie_header(flows, session)
    assert "renewal_session.1=" in header_  # chunked
    flow = flows.logout(header_, T0)
    assert next(flow) == GetJSON(DISCOVERY_URL)
    assert flow.send(DISCOVERY) == RevokeRequest(DISCOVERY["revocation_endpoint"], "rt-1",
                                                 "refresh_token")
    with pytest.raises(StopIteration) as stop:
        flow.send(None)
    reply = stop.value.value
    assert reply.status == 302
    endpoint, query = location_query(reply)
    assert endpoint == DISCOVERY["end_session_endpoint"]
    assert query["id_token_hint"] == session.id_token
    assert query["post_logout_redirect_uri"] == BASE_URL + "/"
    assert query["client_id"] == CLIENT_ID
    present = set(set_cookie_pairs([h.strip() for h in header_.split(";")]))
    assert {c.split("=", 1)[0] for c in set_cookies(reply)} == present
    assert all(is_deletion(c) for c in set_cookies(reply))


def test_logout_still_logs_out_when_revocation_fails(flows: Flows) -> None:
    def handle(effect: Any) -> Any:
        if isinstance(effect, GetJSON):
            return DISCOVERY
        raise ProviderUnavailable("down")

    reply, effects = run_flow(flows.logout(session_cookie_header(flows, make_session()), T0),
                              handle)
    assert isinstance(effects[-1], RevokeRequest)
    assert location_query(reply)[0] == DISCOVERY["end_session_endpoint"]


def test_logout_without_end_session_endpoint_is_local(flows: Flows) -> None:
    doc = {k: v for k, v in DISCOVERY.items()
           if k not in ("end_session_endpoint", "revocation_endpoint")}
    reply, effects = run_flow(flows.logout(session_cookie_header(flows, make_session()), T0),
                              lambda e: answer_discovery(e, doc))
    assert effects == [GetJSON(DISCOVERY_URL)]
    assert header(reply, "location") == "/"
    assert [c.split("=", 1)[0] for c in set_cookies(reply)] == ["renewal_session"]


def test_logout_while_the_provider_is_down_is_local(flows: Flows) -> None:
    def down(effect: Any) -> Any:
        raise ProviderUnavailable("down")

    reply, _ = run_flow(flows.logout(session_cookie_header(flows, make_session()), T0), down)
    assert header(reply, "location") == "/"
    assert all(is_deletion(c) for c in set_cookies(reply))


def test_logout_without_session_still_ends_the_provider_session(flows: Flows) -> None:
    reply, effects = run_flow(flows.logout(None, T0), answer_discovery)
    assert effects == [GetJSON(DISCOVERY_URL)]
    endpoint, query = location_query(reply)
    assert endpoint == DISCOVERY["end_session_endpoint"]
    assert "id_token_hint" not in query
    assert set_cookies(reply) == []


async def test_a_stored_refresh_result_never_serves_an_expired_token(clock: FakeClock) -> None:
    """Tokens shorter than refresh_result_seconds, refresh token not rotated (as at Google).

    The result stored for requests with the pre-rotation cookie must not outlive the
    access token it holds: once that token has expired, a new refresh must run.
    """
    flows = Flows(make_settings(refresh_result_seconds=60), clock)
    coordinator = AsyncRefreshCoordinator(flows.results, clock)
    runs: list[float] = []

    def provider(effect: Any) -> Any:
        if isinstance(effect, GetJSON):
            return DISCOVERY
        runs.append(clock())
        return {"access_token": f"at-{len(runs) + 1}", "token_type": "Bearer",
                "expires_in": 30}  # no refresh_token: the old one stays valid

    async def request() -> Serve:
        now = clock()
        loaded = flows.load(cookies, now)
        decision = flows.decide(loaded, now, api, lambda: "/")
        if isinstance(decision, NeedsRefresh):
            assert loaded.view is not None
            session = loaded.view.session

            async def run() -> Any:
                return run_flow(flows.refresh(session, now), provider)[0]

            outcome = await coordinator.refresh(decision.key, run)
            decision = flows.after_refresh(loaded, outcome, decision.freshness, api)
        assert isinstance(decision, Serve)
        return decision

    session = make_session(expires_in=30)
    cookies = session_cookie_header(flows, session)
    clock.now = session.expires_at - 10  # inside the window (15 s, half of 30)
    served = await request()
    assert served.auth.access_token == "at-2"
    cookies = cookie_header(set_cookie_pairs(served.set_cookies))

    clock.advance(35)  # at-2 (30 s) has expired; the stored result is 35 s old
    served = await request()
    assert served.view is not None
    assert served.view.session.expires_at > clock(), "the app was handed an expired token"
    assert len(runs) == 2


def test_login_survives_a_profile_claim_with_a_lone_surrogate(
        flows: Flows, rsa_key: RSAKey) -> None:
    """JSON may escape a lone surrogate (``"\\ud800"``); a user's odd display name at the
    provider must not turn their login into an unhandled exception (a 500)."""
    name, value, tx = transaction(flows, start_login(flows))
    userinfo = json.loads('{"sub": "alice", "nickname": "Al\\ud800ice"}')
    reply, _ = callback(flows, {"code": "c", "state": tx["s"]}, cookie_header({name: value}),
                        OP(rsa_key, nonce=tx["n"], userinfo=userinfo))
    assert reply.status == 302
    written = [c for c in set_cookies(reply) if not is_deletion(c)]
    view = flows.load(cookie_header(set_cookie_pairs(written)), T0).view
    assert view is not None and view.user.identity == "alice"


# -- silent renewal in a hidden iframe, abandoned transactions ---------------------------------


def silent_page_script(reply: Reply) -> str:
    body = reply.body.decode()
    start, end = body.index("<script>") + len("<script>"), body.index("</script>")
    return body[start:end]


def test_silent_start_chooses_the_mode(flows: Flows) -> None:
    reply, _ = run_flow(flows.silent_start({"return_to": "/x"}, T0), answer_discovery)
    assert transaction(flows, reply)[2]["m"] == "redirect"
    assert location_query(reply)[1]["prompt"] == "none"
    reply, _ = run_flow(flows.silent_start({"mode": "iframe", "return_to": "//evil"}, T0),
                        answer_discovery)
    tx = transaction(flows, reply)[2]
    assert (tx["m"], tx["r"]) == ("iframe", "/")


def test_silent_iframe_posts_the_result_to_the_app_origin_only(
        flows: Flows, rsa_key: RSAKey) -> None:
    existing = session_cookie_header(flows, make_session(refresh_token=None))
    reply, _ = run_flow(flows.silent_start({"mode": "iframe"}, T0), answer_discovery)
    name, value, tx = transaction(flows, reply)
    page, _ = callback(flows, {"code": "c", "state": tx["s"]},
                       existing + "; " + cookie_header({name: value}),
                       OP(rsa_key, nonce=tx["n"]), kind="silent")
    assert page.status == 200
    assert header(page, "location") is None
    script = silent_page_script(page)
    assert script.startswith("parent.postMessage(")
    assert script.endswith(f',"{BASE_URL}");')
    message = json.loads(script[len("parent.postMessage("):-len(f',"{BASE_URL}");')])
    assert message == {"type": "renewal_middleware:silent", "ok": True,
                       "expires_at": NOW + 3600}
    # Only that exact script may run, and only inside our own pages.
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = header(page, "content-security-policy")
    assert f"script-src 'sha256-{digest}'" in csp
    assert "frame-ancestors 'self'" in csp
    written = [c for c in set_cookies(page) if not is_deletion(c)]
    view = flows.load(cookie_header(set_cookie_pairs(written)), T0).view
    assert view is not None and view.session.access_token == "at-1"


def test_silent_iframe_failure_reports_the_error_and_ends_the_session(flows: Flows) -> None:
    existing = session_cookie_header(flows, make_session(refresh_token=None))
    reply, _ = run_flow(flows.silent_start({"mode": "iframe"}, T0), answer_discovery)
    name, value, tx = transaction(flows, reply)
    page, _ = callback(flows, {"error": "login_required", "state": tx["s"]},
                       existing + "; " + cookie_header({name: value}), never, kind="silent")
    assert page.status == 200
    script = silent_page_script(page)
    message = json.loads(script[len("parent.postMessage("):-len(f',"{BASE_URL}");')])
    assert message == {"type": "renewal_middleware:silent", "ok": False,
                       "error": "login_required"}
    assert "renewal_session" in [c.split("=", 1)[0] for c in set_cookies(page)
                                 if is_deletion(c)]


def test_silent_page_cannot_be_broken_out_of(flows: Flows) -> None:
    reply, _ = run_flow(flows.silent_start({"mode": "iframe"}, T0), answer_discovery)
    name, value, tx = transaction(flows, reply)
    page, _ = callback(flows, {"error": "</script><script>alert(1)</script>",
                               "error_description": "</script>", "state": tx["s"]},
                       cookie_header({name: value}), never, kind="silent")
    assert page.body.decode().count("<script>") == 1
    assert page.body.decode().count("</script>") == 1


def test_finishing_a_login_clears_abandoned_transactions(flows: Flows, rsa_key: RSAKey) -> None:
    pending = dict(transaction(flows, start_login(flows))[:2] for _ in range(9))
    name, value, tx = transaction(flows, start_login(flows))
    reply, _ = callback(flows, {"code": "c", "state": tx["s"]},
                        cookie_header({**pending, name: value}), OP(rsa_key, nonce=tx["n"]))
    assert reply.status == 302
    deleted = {c.split("=", 1)[0] for c in set_cookies(reply) if is_deletion(c)}
    assert deleted == {name, *pending}


def test_a_few_pending_logins_in_other_tabs_are_kept(flows: Flows, rsa_key: RSAKey) -> None:
    pending = dict(transaction(flows, start_login(flows))[:2] for _ in range(2))
    name, value, tx = transaction(flows, start_login(flows))
    reply, _ = callback(flows, {"code": "c", "state": tx["s"]},
                        cookie_header({**pending, name: value}), OP(rsa_key, nonce=tx["n"]))
    assert {c.split("=", 1)[0] for c in set_cookies(reply) if is_deletion(c)} == {name}
