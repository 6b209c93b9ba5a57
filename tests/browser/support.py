"""What the browser tests share: the served example, another origin, and a few page helpers.

The app is ``examples/fastapi_app.py`` served by a real uvicorn process, configured by
``RENEWAL_*`` variables, against the test OP (``tests/op``) whose access tokens live
:data:`TOKEN_TTL` seconds. The browser is Debian's Chromium driven by Playwright.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from renewal_middleware.config import Settings
from renewal_middleware.cookies import CookieWriter, SessionCookie, SignedCodec
from renewal_middleware.session import Session
from tests.op.harness import CLIENT_ID, CLIENT_SECRET, DEFAULT_CLIENT, Provider, free_port

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

ROOT = Path(__file__).resolve().parents[2]
#: Access tokens live this long; the grace window (renewal) is their last GRACE seconds.
TOKEN_TTL = 10
GRACE = 4
SECRET_KEY = "browser-tests-secret-key-0123456789abcdef"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

Mode = Literal["refresh", "iframe"]

#: Added to every page (and frame) before its own scripts: records the script's events, and
#: counts the silent-iframe messages that came from another origin.
RECORDER = """
window.__events = [];
for (const type of ['session', 'renewed', 'failed', 'logged-out']) {
  document.addEventListener('renewal:' + type,
    (e) => window.__events.push({ type, detail: e.detail, at: Date.now() }));
}
window.__foreign = 0;
addEventListener('message', (e) => {
  if (e.data && e.data.type === 'renewal_middleware:silent' && e.origin !== location.origin) {
    window.__foreign += 1;
  }
});
"""


@dataclass
class App:
    """The example app, served for real, and the OP it logs in at."""

    mode: Mode
    url: str
    provider: Provider
    environ: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes]

    def renewals(self) -> int:
        """Renewals the provider made since its counters were reset: refresh grants, and
        authorization codes but those of interactive logins (``prompt=none`` ones renew)."""
        stats = self.provider.stats()
        grants = stats["grants"]
        logins = stats["authorizations"] - stats["authorizations_prompt_none"]
        return int(grants.get("refresh_token", 0) + grants.get("authorization_code", 0) - logins)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def answered(self, method: str, path: str) -> list[int]:
        """The statuses of every ``method path`` in the server's access log so far."""
        pattern = re.compile(rf'"{method} {re.escape(path)}(?:\?\S*)? HTTP/1\.1" (\d{{3}})')
        return [int(status) for status in pattern.findall(self.output())]

    def session_of(self, context: BrowserContext) -> Session:
        """The session in the context's cookie, decoded with the app's own keys."""
        settings = Settings.load(self.environ)
        cookie = SessionCookie(settings, CookieWriter(settings),
                               SignedCodec(settings, "renewal.session", time.time))
        raw, _ = cookie.read({c["name"]: c["value"] for c in context.cookies(self.url)})
        assert raw is not None, "no session cookie"
        decoded = cookie.decode(raw)
        assert decoded is not None, "the session cookie does not verify"
        session = Session.from_payload(decoded[0])
        assert session is not None
        return session


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path,
                   timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the example exited with {process.returncode}:\n"
                               + log.read_text(errors="replace")[-3000:])
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the example did not start listening:\n"
                       + log.read_text(errors="replace")[-3000:])


@contextlib.contextmanager
def serve_app(mode: Mode, directory: Path) -> Iterator[App]:
    """Start an OP (this app's redirect URIs registered) and the FastAPI example with uvicorn.

    ``refresh``: the default scope (``offline_access``: a refresh token); ``iframe``: no
    ``offline_access``, so a page renews through the hidden ``prompt=none`` iframe.
    """
    from tests.op.harness import start_provider

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client = {**DEFAULT_CLIENT, "redirect_uris": [f"{url}/callback", f"{url}/silent"],
              "post_logout_redirect_uris": [f"{url}/"]}
    with start_provider(access_token_ttl=TOKEN_TTL, clients=[client]) as provider:
        environ = {
            "RENEWAL_ISSUER": provider.issuer,
            "RENEWAL_CLIENT_ID": CLIENT_ID,
            "RENEWAL_CLIENT_SECRET": CLIENT_SECRET,
            "RENEWAL_SECRET_KEYS": SECRET_KEY,
            "RENEWAL_BASE_URL": url,
            "RENEWAL_GRACE_SECONDS": str(GRACE),
            "RENEWAL_STORE_DIRECTORY": str(directory / "store"),
        }
        if mode == "iframe":
            environ["RENEWAL_SCOPE"] = "openid profile email"
        env = {**os.environ, **environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
                   # longer than any pause of a test: no keep-alive race on a reused connection
                   "--timeout-keep-alive", "120", "examples.fastapi_app:app"]
        log = directory / "server.log"
        with log.open("wb") as output:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output,
                                       stderr=subprocess.STDOUT)
        try:
            _wait_for_port(port, process, log)
            yield App(mode, url, provider, environ, log, process)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class OtherOrigin:
    """A tiny server on another port of 127.0.0.1: same site as the app, another origin.
    It serves the pages given to :meth:`page` and records every request it gets."""

    pages: dict[str, str] = field(default_factory=dict)
    #: (method, path, lower-cased headers) of every request, in order.
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def page(self, path: str, html: str) -> str:
        """Serve ``html`` at ``path``; its URL."""
        self.pages[path] = html
        return self.url + path


@contextlib.contextmanager
def serve_other_origin() -> Iterator[OtherOrigin]:
    origin = OtherOrigin()

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            origin.requests.append((self.command, self.path, headers))

        def do_GET(self) -> None:
            self._record()
            body = origin.pages.get(self.path.split("?")[0])
            if body is None:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            self.send_header("cache-control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self._record()
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(204)
            self.end_headers()

        def do_OPTIONS(self) -> None:  # a preflight: recorded, never allowed
            self._record()
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    origin.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield origin
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- pages ----------------------------------------------------------------------------------


def login(page: Page, app: App) -> None:
    """Log in through the OP's own pages (alice / wonderland, then "Continue")."""
    page.goto(f"{app.url}/login?return_to=/")
    page.fill("#login", "alice")
    page.fill("#password", "wonderland")
    page.click("#login-submit")
    page.locator("#consent-submit, #user").first.wait_for()
    if page.locator("#consent-submit").count():
        page.click("#consent-submit")
    page.locator("#user").wait_for()
    wait_until_authenticated(page)


def wait_until_authenticated(page: Page, timeout: float = 15_000) -> None:
    page.wait_for_function(
        "() => window.renewal && renewal.session && renewal.session.authenticated",
        timeout=timeout)


def open_app(page: Page, app: App) -> None:
    """Another tab on the app's page, logged in by the shared cookie jar."""
    page.goto(app.url + "/")
    page.locator("#user").wait_for()
    wait_until_authenticated(page)


def events(page: Page, kind: str) -> list[dict[str, Any]]:
    """The ``renewal:<kind>`` events the page dispatched so far (their details)."""
    found: list[dict[str, Any]] = page.evaluate(
        "(kind) => window.__events.filter((e) => e.type === kind).map((e) => e.detail ?? null)",
        kind)
    return found


def api_status(page: Page, path: str = "/api/me") -> int:
    status: int = page.evaluate("(path) => fetch(path).then((r) => r.status)", path)
    return status


def session_json(page: Page) -> dict[str, Any]:
    """What ``GET /session`` answers the page now (read with the page's own cookies)."""
    text: str = page.evaluate("() => fetch('/session', {cache: 'no-store'}).then((r) => r.text())")
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def wait_for(condition: Any, timeout: float, page: Page, message: str) -> None:
    """Poll ``condition()`` (letting the browser run) until true, or fail with ``message``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        page.wait_for_timeout(200)


def soak(pages: list[Page], seconds: float, every: float = 2.0) -> list[int]:
    """Call ``fetch('/api/me')`` in every page every ``every`` seconds for ``seconds``;
    the statuses."""
    statuses: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        statuses.extend(api_status(page) for page in pages)
        pages[0].wait_for_timeout(every * 1000)
    return statuses


def renewal_range(seconds: float) -> tuple[int, int]:
    """How many renewals a session kept alive for ``seconds`` needs, at least and at most:
    one per ``TOKEN_TTL - GRACE`` (the token's life before its window opens, plus a little
    jitter), with room for a slow machine on both sides; N uncoordinated tabs would make N
    times as many."""
    period = TOKEN_TTL - GRACE
    return max(1, int(seconds / (period + 2)) - 1), int(seconds / period) + 1
