"""Token-endpoint round trips on request, from the core the middleware's server runs on (P3).

    python benchmarks/token_rtt.py TOKEN_ENDPOINT CLIENT_ID CLIENT_SECRET REFRESH_TOKEN

Started by the suite (P3) pinned like the servers, so that the round trip alone and the renewing
request see the same placement (client on the server core, provider on the other). Each line
on stdin asks for one refresh_token grant with an httpx.AsyncClient kept open (as the
middleware's pooled client is); each answer is a line on stdout: the seconds it took, or
``error ...``. The refresh token rotates as the provider says.
"""

from __future__ import annotations

import asyncio
import sys
import time

import httpx


async def main() -> None:
    endpoint, client_id, client_secret, refresh_token = sys.argv[1:5]
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            started = time.perf_counter()
            answer = await http.post(endpoint, auth=(client_id, client_secret),
                                     data={"grant_type": "refresh_token",
                                           "refresh_token": refresh_token})
            elapsed = time.perf_counter() - started
            if answer.status_code != 200:
                print(f"error {answer.status_code} {answer.text[:200]}", flush=True)
                continue
            refresh_token = answer.json().get("refresh_token", refresh_token)
            print(f"{elapsed:.9f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
