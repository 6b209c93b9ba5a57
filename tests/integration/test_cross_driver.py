"""A cookie written by one driver is read by the other, and renewed by either."""

from __future__ import annotations

import httpx

from tests.integration.apps import running
from tests.op.harness import Provider, login


async def test_a_session_moves_between_the_asgi_and_the_wsgi_driver(provider: Provider) -> None:
    provider.reset_stats()
    # Cookies ignore ports: both apps on 127.0.0.1 see the same cookie jar, like two workers.
    with running(provider, "asgi") as asgi, running(provider, "wsgi") as wsgi:
        async with httpx.AsyncClient() as client:
            await login(client, asgi.url)
            from_asgi = (await client.get(asgi.url + "/api/me")).json()
            from_wsgi = (await client.get(wsgi.url + "/api/me")).json()
            assert from_wsgi == from_asgi and from_wsgi["name"] == "Alice Liddell"

            # The WSGI side renews; the ASGI side reads the renewed cookie without a refresh.
            wsgi.grace_window()
            renewed = (await client.get(wsgi.url + "/api/me")).json()
            assert renewed["access_token"] != from_asgi["access_token"]
            assert (await client.get(asgi.url + "/api/me")).json() == renewed
            assert provider.stats()["grants"].get("refresh_token") == 1

            # And back: the ASGI side renews the WSGI-written session.
            asgi.clock.advance(85)
            again = (await client.get(asgi.url + "/api/me")).json()
            assert again["access_token"] != renewed["access_token"]
            # The WSGI host's clock is now 40 s behind the one that signed: still accepted.
            wsgi.clock.advance(45)
            assert (await client.get(wsgi.url + "/api/me")).json() == again
    assert provider.stats()["grants"].get("refresh_token") == 2
    assert provider.stats()["grant_errors"] == {}
