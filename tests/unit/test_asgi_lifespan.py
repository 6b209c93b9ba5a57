"""Lifespan: the pooled client is closed at shutdown, also behind apps that refuse lifespan."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from renewal_middleware import RenewalMiddleware

SETTINGS: dict[str, Any] = dict(
    issuer="http://127.0.0.1:9", client_id="c", client_secret="s", secret_keys=["x" * 40],
    base_url="http://127.0.0.1:8000", store="memory")


async def refuses_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    # What Django's ASGIHandler does.
    raise ValueError("Django can only handle ASGI/HTTP connections, not lifespan.")


async def reads_then_refuses(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    raise RuntimeError("no lifespan here")


async def speaks_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


@pytest.mark.parametrize("app", [refuses_lifespan, reads_then_refuses, speaks_lifespan])
async def test_startup_and_shutdown_complete_and_the_client_is_closed(app: Any) -> None:
    middleware = RenewalMiddleware(app, **SETTINGS)
    inbox: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> Message:
        return inbox.pop(0)

    async def send(message: Message) -> None:
        sent.append(message["type"])

    await middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert middleware.transport.client.is_closed


async def test_an_app_failing_after_it_spoke_lifespan_still_fails() -> None:
    async def fails_after_startup(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        raise RuntimeError("broken")

    middleware = RenewalMiddleware(fails_after_startup, **SETTINGS)
    inbox: list[Message] = [{"type": "lifespan.startup"}]

    async def receive() -> Message:
        return inbox.pop(0)

    async def send(message: Message) -> None:
        pass

    with pytest.raises(RuntimeError, match="broken"):
        await middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
