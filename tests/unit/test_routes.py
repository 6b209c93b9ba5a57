"""The routes driven by hand: login, callback, silent renewal, logout."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from renewal_middleware.errors import (
    ProviderUnavailable,
    TokenRequestRejected,
)
from renewal_middleware.flows import Flows
from renewal_middleware.oidc import GetJSON, RevokeRequest, TokenRequest, UserInfoRequest
from renewal_middleware.replies import Reply
from renewal_middleware.session import Session
from renewal_middleware.stores.memory import MemoryStore
from tests.unit.drive import (
    JSON,
    NOW,
    OP,
    callback,
    header,
    location_query,
    never,
    set_cookies,
    start_login,
    transaction,
)
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
    make_session,
    make_settings,
    mint,
    provider_effects,
    run_flow,
    s256,
    same_origin_logout,
    session_cookie_header,
    set_cookie_pairs,
    unsigned_token,
    with_store,
)

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
    assert name == "__Secure-renewal_session_tx_" + query["state"]
    assert tx.state == query["state"]
    assert tx.nonce == query["nonce"]
    assert tx.return_to == "/path?q=1"
    assert 43 <= len(tx.verifier) <= 128
    assert query["code_challenge"] == s256(tx.verifier)
    assert tx.verifier not in header(reply, "location")  # the verifier never leaves the browser

    attrs = attributes(set_cookies(reply)[0])
    assert {"HttpOnly", "Secure", "SameSite=Lax", "Path=/callback", "Max-Age=900"} <= set(attrs)


def test_each_login_has_its_own_state_nonce_and_verifier(flows: Flows) -> None:
    first = transaction(flows, start_login(flows))[2]
    second = transaction(flows, start_login(flows))[2]
    assert all(getattr(first, k) != getattr(second, k) for k in ("state", "nonce", "verifier"))


@pytest.mark.parametrize("unsafe", ["//evil.example", "https://evil.example", "/\\evil.example",
                                    "javascript:alert(1)", "/a\nb"])
def test_login_sanitises_return_to(flows: Flows, unsafe: str) -> None:
    assert transaction(flows, start_login(flows, {"return_to": unsafe}))[2].return_to == "/"


def test_login_prompt_and_audience_settings(clock: FakeClock) -> None:
    flows = Flows(make_settings(scope="openid email", audience="https://api.example"), clock)
    query = location_query(start_login(flows))[1]
    assert "prompt" not in query
    assert query["audience"] == "https://api.example"
    flows = Flows(make_settings(login_prompt="login"), clock)
    assert location_query(start_login(flows))[1]["prompt"] == "login"


def test_login_keeps_a_query_in_the_authorization_endpoint(flows: Flows) -> None:
    doc = {**DISCOVERY, "authorization_endpoint": ISSUER + "/auth?tenant=t1"}
    reply, _ = run_flow(flows.routes.login({}, T0), lambda e: answer_discovery(e, doc))
    endpoint, query = location_query(reply)
    assert endpoint == ISSUER + "/auth"
    assert query["tenant"] == "t1"
    assert query["client_id"] == CLIENT_ID


def test_login_while_the_provider_is_down_raises_provider_unavailable(flows: Flows) -> None:
    def down(effect: Any) -> Any:
        raise ProviderUnavailable("down")

    with pytest.raises(ProviderUnavailable):
        run_flow(flows.routes.login({}, T0), down)


def test_silent_redirect_asks_prompt_none_without_offline_access(flows: Flows) -> None:
    reply, _ = run_flow(flows.routes.silent_redirect("/page", T0), answer_discovery)
    query = location_query(reply)[1]
    assert query["prompt"] == "none"
    assert query["redirect_uri"] == BASE_URL + "/silent"
    assert "offline_access" not in query["scope"].split()
    tx = transaction(flows, reply)[2]
    assert tx.kind == "silent" and tx.return_to == "/page"
    assert "Path=/silent" in attributes(set_cookies(reply)[0])


# -- callback ----------------------------------------------------------------------------------


def test_callback_completes_the_login(flows: Flows, rsa_key: RSAKey) -> None:
    login = start_login(flows, {"return_to": "/after"})
    name, value, tx = transaction(flows, login)
    op = OP(rsa_key, nonce=tx.nonce)
    reply, effects = callback(flows, {"code": "code-1", "state": tx.state},
                              cookie_header({name: value}), op)

    assert effects == [
        TokenRequest(DISCOVERY["token_endpoint"], {
            "grant_type": "authorization_code", "code": "code-1",
            "redirect_uri": BASE_URL + "/callback", "code_verifier": tx.verifier}),
        GetJSON(DISCOVERY["jwks_uri"]),
        UserInfoRequest(DISCOVERY["userinfo_endpoint"], "at-1"),
    ]
    assert reply.status == 302
    assert header(reply, "location") == "/after"
    cookies = set_cookies(reply)
    deleted = [c for c in cookies if is_deletion(c)]
    assert [c.split("=", 1)[0] for c in deleted] == [name]
    assert "Path=/callback" in attributes(deleted[0])

    loaded = flows.sessions.load(cookie_header(set_cookie_pairs([c for c in cookies
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
    reply, _ = callback(second, {"code": "c", "state": tx.state}, cookie_header({name: value}),
                        OP(rsa_key, nonce=tx.nonce))
    assert reply.status == 302
    session_cookies = [c for c in set_cookies(reply) if not is_deletion(c)]
    loaded = first.sessions.load(cookie_header(set_cookie_pairs(session_cookies)), T0)
    assert loaded.view is not None


def test_callback_with_unknown_state_is_400(flows: Flows) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    for query, cookies in [
        ({"code": "c", "state": "unknown"}, cookie_header({name: value})),
        ({"code": "c", "state": tx.state}, None),
        ({"code": "c"}, cookie_header({name: value})),
        ({"code": "c", "state": tx.state}, cookie_header({name: value + "x"})),
    ]:
        reply, effects = callback(flows, query, cookies, never, accept=JSON)
        assert reply.status == 400
        assert effects == []
        assert json.loads(reply.body)["error"] == "unknown_state"
        assert not any(not is_deletion(c) for c in set_cookies(reply))


def test_callback_after_the_login_timeout_is_400(flows: Flows, clock: FakeClock) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    clock.advance(901)
    reply, effects = callback(flows, {"code": "c", "state": tx.state},
                              cookie_header({name: value}), never)
    assert reply.status == 400
    assert effects == []


def test_login_transaction_is_refused_on_the_silent_route(flows: Flows) -> None:
    _, value, tx = transaction(flows, start_login(flows))
    reply, effects = callback(flows, {"code": "c", "state": tx.state},
                              cookie_header({flows.transactions.prefix + tx.state: value}), never,
                              kind="silent")
    assert effects == []
    assert reply.status == 400
    assert not any(not is_deletion(c) for c in set_cookies(reply))


def test_callback_with_access_denied_is_a_json_4xx(flows: Flows) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    reply, effects = callback(
        flows, {"error": "access_denied", "error_description": "user said no", "state": tx.state},
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
    reply, _ = callback(flows, {"error": "access_denied", "state": tx.state},
                        cookie_header({name: value}), never, accept="text/html")
    assert reply.status == 400
    assert header(reply, "content-type").startswith("text/html")


def test_callback_with_another_issuer_is_refused(flows: Flows) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    reply, effects = callback(flows, {"code": "c", "state": tx.state,
                                      "iss": "https://evil.example"},
                              cookie_header({name: value}), never, accept=JSON)
    assert effects == []
    assert reply.status == 400
    assert json.loads(reply.body)["error"] == "issuer_mismatch"


def test_callback_with_the_right_iss_parameter_proceeds(flows: Flows, rsa_key: RSAKey) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    reply, _ = callback(flows, {"code": "c", "state": tx.state, "iss": ISSUER},
                        cookie_header({name: value}), OP(rsa_key, nonce=tx.nonce))
    assert reply.status == 302


def test_callback_iss_parameter_must_match_exactly(flows: Flows, rsa_key: RSAKey) -> None:
    """RFC 9207 compares the issuer identifier as a simple string."""
    name, value, tx = transaction(flows, start_login(flows))
    reply, _ = callback(flows, {"code": "c", "state": tx.state, "iss": ISSUER + "/"},
                        cookie_header({name: value}), OP(rsa_key, nonce=tx.nonce), accept=JSON)
    assert reply.status == 400
    assert json.loads(reply.body)["error"] == "issuer_mismatch"


def test_callback_without_code_is_400(flows: Flows) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    reply, effects = callback(flows, {"state": tx.state}, cookie_header({name: value}), never)
    assert (reply.status, effects) == (400, [])


def test_callback_code_rejected_is_400(flows: Flows) -> None:
    name, value, tx = transaction(flows, start_login(flows))

    def rejected(effect: Any) -> Any:
        raise TokenRequestRejected("invalid_grant", "code used")

    reply, _ = callback(flows, {"code": "c", "state": tx.state}, cookie_header({name: value}),
                        rejected, accept=JSON)
    assert reply.status == 400
    assert json.loads(reply.body)["error"] == "code_rejected"


def test_callback_provider_down_is_503(flows: Flows) -> None:
    name, value, tx = transaction(flows, start_login(flows))

    def down(effect: Any) -> Any:
        raise ProviderUnavailable("down", retry_after=5)

    reply, _ = callback(flows, {"code": "c", "state": tx.state}, cookie_header({name: value}),
                        down)
    assert reply.status == 503
    assert header(reply, "retry-after") == "5"


@pytest.mark.parametrize("bad", ["nonce", "aud", "iss", "exp", "alg_none", "no_id_token"])
def test_callback_refuses_a_bad_id_token(flows: Flows, rsa_key: RSAKey, bad: str) -> None:
    name, value, tx = transaction(flows, start_login(flows))
    claims = id_claims(nonce=tx.nonce)
    claims.update({"nonce": {"nonce": "other"}, "aud": {"aud": "other-client"},
                   "iss": {"iss": "https://evil.example"},
                   "exp": {"exp": NOW - 3600}}.get(bad, {}))
    token = (unsigned_token({"alg": "none"}, claims) if bad == "alg_none"
             else mint(rsa_key, claims))
    op = OP(rsa_key, nonce=tx.nonce, id_token=token)
    if bad == "no_id_token":
        op.token = {"access_token": "at-1", "token_type": "Bearer"}
    reply, _ = callback(flows, {"code": "c", "state": tx.state}, cookie_header({name: value}),
                        op, accept=JSON)
    assert reply.status == 400
    assert json.loads(reply.body)["error"] == "invalid_id_token"
    assert all(is_deletion(c) for c in set_cookies(reply))


def test_silent_callback_keeps_the_session_and_refuses_another_user(
        flows: Flows, rsa_key: RSAKey) -> None:
    session = make_session(refresh_token=None, claims={"sub": "alice", "team": "x"})
    existing = session_cookie_header(flows, session)
    reply, _ = run_flow(flows.routes.silent_redirect("/page", T0), answer_discovery)
    name, value, tx = transaction(flows, reply)
    cookies = existing + "; " + cookie_header({name: value})

    ok, effects = callback(flows, {"code": "c", "state": tx.state}, cookies,
                           OP(rsa_key, nonce=tx.nonce), kind="silent")
    assert header(ok, "location") == "/page"
    assert not any(isinstance(e, UserInfoRequest) for e in effects)
    renewed = flows.sessions.load(cookie_header(set_cookie_pairs(
        [c for c in set_cookies(ok) if not is_deletion(c)])), T0).view
    assert renewed is not None
    assert renewed.session.id == session.id
    assert renewed.session.claims["team"] == "x"

    reply, _ = run_flow(flows.routes.silent_redirect("/page", T0), never)
    name, value, tx = transaction(flows, reply)
    cookies = existing + "; " + cookie_header({name: value})
    other, _ = callback(flows, {"code": "c", "state": tx.state}, cookies,
                        OP(rsa_key, nonce=tx.nonce, sub="mallory"), kind="silent")
    assert header(other, "location") == "/page"
    assert "__Host-renewal_session" in [c.split("=", 1)[0] for c in set_cookies(other)
                                 if is_deletion(c)]


def test_silent_login_required_ends_the_session(flows: Flows) -> None:
    existing = session_cookie_header(flows, make_session(refresh_token=None))
    reply, _ = run_flow(flows.routes.silent_redirect("/page", T0), answer_discovery)
    name, value, tx = transaction(flows, reply)
    done, effects = callback(flows, {"error": "login_required", "state": tx.state},
                             existing + "; " + cookie_header({name: value}), never,
                             kind="silent")
    assert effects == []
    assert done.status == 302 and header(done, "location") == "/page"
    assert {c.split("=", 1)[0] for c in set_cookies(done)} == {"__Host-renewal_session", name}
    assert all(is_deletion(c) for c in set_cookies(done))


# -- logout ------------------------------------------------------------------------------------


def big_session() -> Session:
    return make_session(id_token="idt-" + "x" * 100,
                        claims={"sub": "alice", "blob": random.Random(7).randbytes(4000).hex()})


def test_logout_revokes_clears_and_redirects_to_the_provider(flows: Flows) -> None:
    session = big_session()
    header_ = session_cookie_header(flows, session)
    assert "__Host-renewal_session.1=" in header_  # chunked
    store = MemoryStore()
    reply, effects = run_flow(flows.logouts.logout(same_origin_logout(header_), T0),
                              with_store(lambda e: answer_discovery(e)
                                         if isinstance(e, GetJSON) else None, store))
    assert provider_effects(effects) == [
        GetJSON(DISCOVERY_URL),
        RevokeRequest(DISCOVERY["revocation_endpoint"], "rt-1", "refresh_token")]
    known = store.read(session.id)
    assert known is not None and known.ended  # no process sets its cookie again
    assert reply.status == 302
    endpoint, query = location_query(reply)
    assert endpoint == DISCOVERY["end_session_endpoint"]
    assert query["id_token_hint"] == session.id_token
    assert query["post_logout_redirect_uri"] == BASE_URL + "/"
    assert query["client_id"] == CLIENT_ID
    present = set(set_cookie_pairs([h.strip() for h in header_.split(";")]))
    assert {c.split("=", 1)[0] for c in set_cookies(reply)} == present
    assert all(is_deletion(c) for c in set_cookies(reply))


def logout_flow(flows: Flows) -> Any:
    header_ = session_cookie_header(flows, make_session())
    return flows.logouts.logout(same_origin_logout(header_), T0)


def test_logout_still_logs_out_when_revocation_fails(flows: Flows) -> None:
    def handle(effect: Any) -> Any:
        if isinstance(effect, GetJSON):
            return DISCOVERY
        raise ProviderUnavailable("down")

    reply, effects = run_flow(logout_flow(flows),
                              with_store(handle, MemoryStore()))
    assert isinstance(effects[-1], RevokeRequest)
    assert location_query(reply)[0] == DISCOVERY["end_session_endpoint"]


def test_logout_without_end_session_endpoint_is_local(flows: Flows) -> None:
    doc = {k: v for k, v in DISCOVERY.items()
           if k not in ("end_session_endpoint", "revocation_endpoint")}
    reply, effects = run_flow(logout_flow(flows),
                              with_store(lambda e: answer_discovery(e, doc), MemoryStore()))
    assert provider_effects(effects) == [GetJSON(DISCOVERY_URL)]
    assert header(reply, "location") == "/"
    assert [c.split("=", 1)[0] for c in set_cookies(reply)] == ["__Host-renewal_session"]


def test_logout_while_the_provider_is_down_is_local(flows: Flows) -> None:
    def down(effect: Any) -> Any:
        raise ProviderUnavailable("down")

    reply, _ = run_flow(logout_flow(flows),
                        with_store(down, MemoryStore()))
    assert header(reply, "location") == "/"
    assert all(is_deletion(c) for c in set_cookies(reply))


def test_logout_without_session_still_ends_the_provider_session(flows: Flows) -> None:
    reply, effects = run_flow(flows.logouts.logout(same_origin_logout(None), T0), answer_discovery)
    assert effects == [GetJSON(DISCOVERY_URL)]
    endpoint, query = location_query(reply)
    assert endpoint == DISCOVERY["end_session_endpoint"]
    assert "id_token_hint" not in query
    assert set_cookies(reply) == []


def test_login_survives_a_profile_claim_with_a_lone_surrogate(
        flows: Flows, rsa_key: RSAKey) -> None:
    """JSON may escape a lone surrogate (``"\\ud800"``); a user's odd display name at the
    provider must not turn their login into an unhandled exception (a 500)."""
    name, value, tx = transaction(flows, start_login(flows))
    userinfo = json.loads('{"sub": "alice", "nickname": "Al\\ud800ice"}')
    reply, _ = callback(flows, {"code": "c", "state": tx.state}, cookie_header({name: value}),
                        OP(rsa_key, nonce=tx.nonce, userinfo=userinfo))
    assert reply.status == 302
    written = [c for c in set_cookies(reply) if not is_deletion(c)]
    view = flows.sessions.load(cookie_header(set_cookie_pairs(written)), T0).view
    assert view is not None and view.user.identity == "alice"


# -- silent renewal in a hidden iframe, abandoned transactions ---------------------------------


def silent_page_script(reply: Reply) -> str:
    body = reply.body.decode()
    start, end = body.index("<script>") + len("<script>"), body.index("</script>")
    return body[start:end]


def test_silent_start_chooses_the_mode(flows: Flows) -> None:
    reply, _ = run_flow(flows.routes.silent_start({"return_to": "/x"}, T0), answer_discovery)
    assert transaction(flows, reply)[2].mode == "redirect"
    assert location_query(reply)[1]["prompt"] == "none"
    reply, _ = run_flow(flows.routes.silent_start({"mode": "iframe", "return_to": "//evil"}, T0),
                        answer_discovery)
    tx = transaction(flows, reply)[2]
    assert (tx.mode, tx.return_to) == ("iframe", "/")


def test_silent_iframe_posts_the_result_to_the_app_origin_only(
        flows: Flows, rsa_key: RSAKey) -> None:
    existing = session_cookie_header(flows, make_session(refresh_token=None))
    reply, _ = run_flow(flows.routes.silent_start({"mode": "iframe"}, T0), answer_discovery)
    name, value, tx = transaction(flows, reply)
    page, _ = callback(flows, {"code": "c", "state": tx.state},
                       existing + "; " + cookie_header({name: value}),
                       OP(rsa_key, nonce=tx.nonce), kind="silent")
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
    view = flows.sessions.load(cookie_header(set_cookie_pairs(written)), T0).view
    assert view is not None and view.session.access_token == "at-1"


def test_silent_iframe_failure_reports_the_error_and_ends_the_session(flows: Flows) -> None:
    existing = session_cookie_header(flows, make_session(refresh_token=None))
    reply, _ = run_flow(flows.routes.silent_start({"mode": "iframe"}, T0), answer_discovery)
    name, value, tx = transaction(flows, reply)
    page, _ = callback(flows, {"error": "login_required", "state": tx.state},
                       existing + "; " + cookie_header({name: value}), never, kind="silent")
    assert page.status == 200
    script = silent_page_script(page)
    message = json.loads(script[len("parent.postMessage("):-len(f',"{BASE_URL}");')])
    assert message == {"type": "renewal_middleware:silent", "ok": False,
                       "error": "login_required"}
    assert "__Host-renewal_session" in [c.split("=", 1)[0] for c in set_cookies(page)
                                 if is_deletion(c)]


def test_silent_page_cannot_be_broken_out_of(flows: Flows) -> None:
    reply, _ = run_flow(flows.routes.silent_start({"mode": "iframe"}, T0), answer_discovery)
    name, value, tx = transaction(flows, reply)
    page, _ = callback(flows, {"error": "</script><script>alert(1)</script>",
                               "error_description": "</script>", "state": tx.state},
                       cookie_header({name: value}), never, kind="silent")
    assert page.body.decode().count("<script>") == 1
    assert page.body.decode().count("</script>") == 1


def test_finishing_a_login_clears_abandoned_transactions(flows: Flows, rsa_key: RSAKey) -> None:
    pending = dict(transaction(flows, start_login(flows))[:2] for _ in range(9))
    name, value, tx = transaction(flows, start_login(flows))
    reply, _ = callback(flows, {"code": "c", "state": tx.state},
                        cookie_header({**pending, name: value}), OP(rsa_key, nonce=tx.nonce))
    assert reply.status == 302
    deleted = {c.split("=", 1)[0] for c in set_cookies(reply) if is_deletion(c)}
    assert deleted == {name, *pending}


def test_a_few_pending_logins_in_other_tabs_are_kept(flows: Flows, rsa_key: RSAKey) -> None:
    pending = dict(transaction(flows, start_login(flows))[:2] for _ in range(2))
    name, value, tx = transaction(flows, start_login(flows))
    reply, _ = callback(flows, {"code": "c", "state": tx.state},
                        cookie_header({**pending, name: value}), OP(rsa_key, nonce=tx.nonce))
    assert {c.split("=", 1)[0] for c in set_cookies(reply) if is_deletion(c)} == {name}


# -- per-login parameters ----------------------------------------------------------------------


def test_login_passes_the_allowed_parameters_on(flows: Flows) -> None:
    reply = start_login(flows, {
        "return_to": "/x", "prompt": "login", "login_hint": "bob", "ui_locales": "de fr",
        "max_age": "120", "acr_values": "gold", "scope": "admin", "client_id": "other",
        "redirect_uri": "https://evil.example/cb", "response_mode": "fragment"})
    query = location_query(reply)[1]
    assert query["prompt"] == "login consent"  # login_prompt auto + offline_access
    assert (query["login_hint"], query["ui_locales"]) == ("bob", "de fr")
    assert (query["max_age"], query["acr_values"]) == ("120", "gold")
    # Unknown parameters are ignored: the settings' values stand.
    assert query["scope"] == "openid profile email offline_access"
    assert (query["client_id"], query["redirect_uri"]) == (CLIENT_ID, BASE_URL + "/callback")
    assert "response_mode" not in query
    tx = transaction(flows, reply)[2]
    assert (tx.return_to, tx.params.max_age, tx.params.prompt) == ("/x", 120, "login")


def test_login_drops_a_refused_parameter_and_goes_on(flows: Flows,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", "renewal_middleware"):
        reply = start_login(flows, {"prompt": "create", "max_age": "-5", "login_hint": "bob"})
    query = location_query(reply)[1]
    assert query["prompt"] == "consent" and query["login_hint"] == "bob"
    assert "max_age" not in query
    assert "parameter prompt dropped" in caplog.text
    assert "parameter max_age dropped" in caplog.text


def max_age_callback(flows: Flows, rsa_key: RSAKey, **claims: Any) -> Reply:
    name, value, tx = transaction(flows, start_login(flows, {"max_age": "300",
                                                             "acr_values": "gold"}))
    op = OP(rsa_key, nonce=tx.nonce, id_token=mint(rsa_key, id_claims(nonce=tx.nonce, **claims)))
    reply, _ = callback(flows, {"code": "c", "state": tx.state}, cookie_header({name: value}),
                        op, accept=JSON)
    return reply


def test_a_max_age_login_with_a_recent_auth_time_keeps_it_and_acr(
        flows: Flows, rsa_key: RSAKey) -> None:
    reply = max_age_callback(flows, rsa_key, auth_time=NOW - 200, acr="gold", amr=["pwd"])
    assert reply.status == 302
    loaded = flows.sessions.load(cookie_header(set_cookie_pairs(
        [c for c in set_cookies(reply) if not is_deletion(c)])), T0)
    assert loaded.view is not None
    claims = loaded.view.session.claims
    assert (claims["auth_time"], claims["acr"], claims["amr"]) == (NOW - 200, "gold", ["pwd"])


@pytest.mark.parametrize(("claims", "code"), [
    ({"auth_time": NOW - 300 - 61}, "auth_time_too_old"),
    ({}, "auth_time_missing"),
])
def test_a_max_age_login_without_a_recent_auth_time_fails(
        flows: Flows, rsa_key: RSAKey, claims: dict[str, Any], code: str) -> None:
    reply = max_age_callback(flows, rsa_key, **claims)
    assert reply.status == 400
    assert json.loads(reply.body)["error"] == code
    assert all(is_deletion(c) for c in set_cookies(reply))  # no session, transaction ended


def test_acr_is_not_enforced(flows: Flows, rsa_key: RSAKey) -> None:
    reply = max_age_callback(flows, rsa_key, auth_time=NOW, acr="bronze")
    assert reply.status == 302  # asked for gold: the app decides what bronze is worth


@pytest.mark.parametrize("error", ["login_required", "interaction_required"])
def test_a_prompt_none_login_the_provider_refuses_goes_back_anonymous(
        flows: Flows, error: str) -> None:
    name, value, tx = transaction(flows, start_login(flows, {"prompt": "none",
                                                             "return_to": "/page"}))
    reply, _ = callback(flows, {"error": error, "state": tx.state, "iss": ISSUER},
                        cookie_header({name: value}), answer_discovery)
    assert reply.status == 302 and header(reply, "location") == "/page"
    cookies = set_cookies(reply)
    assert [c.split("=", 1)[0] for c in cookies] == [name] and is_deletion(cookies[0])


def test_a_prompt_none_login_keeps_other_errors(flows: Flows) -> None:
    name, value, tx = transaction(flows, start_login(flows, {"prompt": "none"}))
    reply, _ = callback(flows, {"error": "access_denied", "state": tx.state, "iss": ISSUER},
                        cookie_header({name: value}), answer_discovery, accept=JSON)
    assert reply.status == 400
    assert json.loads(reply.body)["error"] == "authorization_error"
