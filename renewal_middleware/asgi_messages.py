"""An ASGI request as the core reads it, and the core's replies as ASGI messages."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from .replies import Reply
from .requests import MAX_BODY, app_path, external_target


def raw_cookie(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The Cookie header; HTTP/2 may split it in several, which are joined (RFC 9113)."""
    found: bytes | None = None
    for key, value in headers:
        if key == b"cookie":
            found = value if found is None else found + b"; " + value
    return found


class ASGIRequest:
    """A :class:`~renewal_middleware.requests.Request` over an ASGI scope."""

    __slots__ = ("_scope", "body", "method", "path", "query_string")

    def __init__(self, scope: Scope, body: bytes = b"") -> None:
        self._scope = scope
        self.body = body
        self.method: str = scope["method"]
        self.path: str = app_path(scope)
        self.query_string: str = scope.get("query_string", b"").decode("latin-1")

    def header(self, name: str) -> str | None:
        if name == "cookie":
            raw = raw_cookie(self._scope["headers"])
            return None if raw is None else raw.decode("latin-1")
        key = name.encode("latin-1")
        for header, value in self._scope["headers"]:
            if header == key:
                return str(value.decode("latin-1"))
        return None

    def target(self) -> str:
        return external_target(self._scope)


async def read_body(receive: Receive) -> bytes:
    """The request body, up to :data:`MAX_BODY` bytes (the rest is not read)."""
    body = b""
    while len(body) <= MAX_BODY:
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return body[:MAX_BODY]


async def send_reply(send: Send, reply: Reply) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
