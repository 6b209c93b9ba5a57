"""The middleware's own answers: errors as JSON or HTML, 401, 405."""

from __future__ import annotations

import json

from renewal_middleware.errors import (
    AuthenticationError,
    ProviderUnavailable,
)
from renewal_middleware.replies import (
    error_reply,
    method_not_allowed,
    unauthorized_reply,
    wants_json,
)
from tests.unit.drive import (
    JSON,
    header,
)


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


def test_an_expired_api_request_gets_a_bearer_challenge() -> None:
    reply = unauthorized_reply("the access token has expired")
    assert reply.status == 401
    assert header(reply, "www-authenticate") == (
        'Bearer error="invalid_token", error_description="the access token has expired"')
    assert json.loads(reply.body) == {"error": "invalid_token",
                                      "error_description": "the access token has expired"}
    assert header(reply, "cache-control") == "no-store"


def test_a_route_called_with_another_method_is_a_405_that_says_which() -> None:
    as_json = method_not_allowed({"POST", "GET"}, True)
    assert as_json.status == 405
    assert header(as_json, "allow") == "GET, POST"
    assert json.loads(as_json.body)["error"] == "method_not_allowed"
    as_html = method_not_allowed({"GET"}, False)
    assert header(as_html, "content-type").startswith("text/html")
    assert b"GET" in as_html.body
