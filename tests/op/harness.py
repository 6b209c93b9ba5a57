"""Test OpenID Provider harness: runs ``server.mjs`` (npm ``oidc-provider``), drives it headlessly.

Python 3.10+, no dependencies beyond httpx and the standard library.

Typical use::

    from harness import start_provider, login

    with start_provider(access_token_ttl=5) as op:
        ...  # point the app at op.issuer, CLIENT_ID / CLIENT_SECRET
        response = await login(client, app_url, return_to="/private")
        assert op.stats()["grants"].get("refresh_token", 0) == 0

Everything talks to 127.0.0.1 only: the headless browser below refuses to follow a redirect to any
other host.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

import httpx

__all__ = [
    "ALICE",
    "BOB",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "DEFAULT_CLIENT",
    "OP_DIR",
    "USERS",
    "Provider",
    "ProviderStartError",
    "User",
    "browse",
    "browse_sync",
    "ensure_node_modules",
    "free_port",
    "login",
    "login_sync",
    "logout_at_op",
    "logout_at_op_sync",
    "start_provider",
]

OP_DIR = Path(__file__).resolve().parent
SERVER_SCRIPT = OP_DIR / "server.mjs"
READY_TIMEOUT = 20.0

CLIENT_ID = "demo-app"
CLIENT_SECRET = "demo-secret"
#: The client the provider registers when ``clients`` is not given. Redirect URIs on
#: http://127.0.0.1 match on any port (the provider ignores the port for loopback URIs).
DEFAULT_CLIENT: Mapping[str, Any] = MappingProxyType(
    {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": ["http://127.0.0.1:8000/callback", "http://127.0.0.1:8000/silent"],
        "post_logout_redirect_uris": ["http://127.0.0.1:8000/"],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid profile email offline_access",
        "token_endpoint_auth_method": "client_secret_basic",
    }
)


@dataclass(frozen=True)
class User:
    """A user the test provider knows (``claims`` are what userinfo / the ID token can carry)."""

    username: str
    password: str
    claims: Mapping[str, Any]


ALICE = User(
    "alice",
    "wonderland",
    MappingProxyType(
        {
            "sub": "alice",
            "name": "Alice Liddell",
            "given_name": "Alice",
            "family_name": "Liddell",
            "email": "alice@example.com",
            "email_verified": True,
        }
    ),
)
BOB = User(
    "bob",
    "builder",
    MappingProxyType(
        {
            "sub": "bob",
            "name": "Bob Builder",
            "given_name": "Bob",
            "family_name": "Builder",
            "email": "bob@example.com",
            "email_verified": True,
        }
    ),
)
USERS: Mapping[str, User] = MappingProxyType({ALICE.username: ALICE, BOB.username: BOB})

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class ProviderStartError(RuntimeError):
    """The provider did not print its READY line in time (the message carries its stderr)."""


# --------------------------------------------------------------------------------------------
# Process management


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_node_modules() -> None:
    """Run ``npm ci`` in tests/op if its node_modules is missing (serialised by a file lock)."""
    marker = OP_DIR / "node_modules" / ".package-lock.json"
    if marker.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise ProviderStartError("npm is not on PATH; cannot install tests/op/node_modules")
    with open(OP_DIR / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=OP_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            raise ProviderStartError(
                f"npm ci in {OP_DIR} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )


def _node() -> str:
    return shutil.which("node") or "/usr/bin/node"


_RUNNING: weakref.WeakSet[Provider] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for provider in list(_RUNNING):
        provider.stop()


class Provider:
    """One ``node server.mjs`` process. ``start()`` after ``stop()`` restarts it on the same port
    with the same signing keys (tokens and ID tokens issued before still verify), but with empty
    storage: sessions, grants and refresh tokens do not survive a restart."""

    def __init__(
        self,
        *,
        port: int | None = None,
        access_token_ttl: int = 60,
        id_token_ttl: int = 3600,
        clients: list[dict[str, Any]] | None = None,
        jwks_file: str | None = None,
    ) -> None:
        self.port: int = port if port is not None else free_port()
        self._port_chosen = port is None
        self.access_token_ttl = access_token_ttl
        self.id_token_ttl = id_token_ttl
        self.clients = clients
        self.jwks_file = jwks_file
        self._process: subprocess.Popen[str] | None = None
        self._stdout: deque[str] = deque(maxlen=200)
        self._stderr: deque[str] = deque(maxlen=200)

    # -- properties ---------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def url(self, path: str) -> str:
        """Absolute URL on the provider, e.g. ``op.url("/token")``."""
        return f"{self.issuer}{path}"

    @property
    def stderr(self) -> str:
        """The last lines the provider wrote to stderr."""
        return "".join(self._stderr)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Provider:
        """Start (or restart) the provider on ``self.port``; no-op when already running."""
        if self.running:
            return self
        ensure_node_modules()
        attempts = 3 if self._port_chosen else 1
        for attempt in range(attempts):
            try:
                self._spawn()
                break
            except ProviderStartError:
                # A port picked by free_port() can be taken by someone else before node binds it.
                if attempt + 1 == attempts or "EADDRINUSE" not in self.stderr:
                    raise
                self.port = free_port()
        _RUNNING.add(self)
        return self

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OP_")}
        env.update(
            OP_PORT=str(self.port),
            OP_ACCESS_TOKEN_TTL=str(self.access_token_ttl),
            OP_ID_TOKEN_TTL=str(self.id_token_ttl),
            OP_EXIT_ON_STDIN_EOF="1",
            NO_COLOR="1",
        )
        if self.clients is not None:
            env["OP_CLIENTS"] = json.dumps(self.clients)
        if self.jwks_file is not None:
            env["OP_JWKS_FILE"] = str(Path(self.jwks_file).resolve())
        return env

    def _spawn(self) -> None:
        self._stdout.clear()
        self._stderr.clear()
        ready = threading.Event()
        process = subprocess.Popen(
            [_node(), str(SERVER_SCRIPT)],
            cwd=OP_DIR,
            env=self._environment(),
            stdin=subprocess.PIPE,  # closed by us or by our death: the provider then exits
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._process = process
        assert process.stdout is not None and process.stderr is not None

        def pump(stream: Any, sink: deque[str], watch_ready: bool) -> None:
            for line in stream:
                sink.append(line)
                if watch_ready and line.startswith("READY "):
                    ready.set()
            stream.close()

        for stream, sink, watch in (
            (process.stdout, self._stdout, True),
            (process.stderr, self._stderr, False),
        ):
            threading.Thread(target=pump, args=(stream, sink, watch), daemon=True).start()

        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.wait(0.02):
            if process.poll() is not None or time.monotonic() > deadline:
                status = (
                    "exited with " + str(process.returncode)
                    if process.poll() is not None
                    else "timed out"
                )
                self._terminate()
                time.sleep(0.05)  # let the pump threads collect the last lines
                raise ProviderStartError(
                    f"test OP on port {self.port} {status} before READY\n"
                    f"--- stderr ---\n{self.stderr}--- stdout ---\n{''.join(self._stdout)}"
                )

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()

    def stop(self) -> None:
        """Stop the provider (SIGTERM, then SIGKILL after 5 s). Safe to call twice."""
        self._terminate()
        _RUNNING.discard(self)

    def __enter__(self) -> Provider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Provider {self.issuer} {'running' if self.running else 'stopped'}>"

    # -- test endpoints -----------------------------------------------------------------------

    def _call(
        self, method: str, path: str, payload: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        with httpx.Client(trust_env=False, timeout=10) as http:
            response = http.request(method, self.url(path), json=payload)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def discovery(self) -> dict[str, Any]:
        """The provider's ``/.well-known/openid-configuration``."""
        return self._call("GET", "/.well-known/openid-configuration")

    def stats(self) -> dict[str, Any]:
        """Counters since start or the last reset::

            {"grants": {"authorization_code": n, "refresh_token": m},   # token endpoint, 2xx
             "grant_errors": {"refresh_token": k},                       # token endpoint, not 2xx
             "revocations": r,            # POSTs to the revocation endpoint
             "end_session": e,            # requests to the end-session endpoint (RP logout)
             "end_session_confirm": c,    # logout confirmations POSTed (/session/end/confirm)
             "authorizations": a,         # GET /auth (authorization requests)
             "authorizations_prompt_none": s,  # ... of which with prompt=none
             "faults": f}                 # token requests hit by fail_next()

        Every POST to the token endpoint is counted exactly once, by its grant_type ("unknown"
        when it had none), under "grants" when it answered 2xx and "grant_errors" otherwise
        (injected failures included). Keys appear once counted: use ``.get(key, 0)``.
        """
        return self._call("GET", "/__stats")

    def reset_stats(self) -> None:
        """Zero every counter and drop a pending ``fail_next`` fault."""
        self._call("POST", "/__stats/reset")

    def fail_next(
        self,
        status: int | None = None,
        count: int = 1,
        hang_ms: int | None = None,
        *,
        body: str | None = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        close: bool = False,
        late_ms: int | None = None,
    ) -> None:
        """Make the next ``count`` token-endpoint requests fail with ``status`` (JSON body
        ``json_body``, default ``{"error": "server_error"}``, or the text ``body`` as HTML, with
        extra ``headers``) and/or hang ``hang_ms`` first (hang only: the request is then handled
        normally); ``late_ms`` processes the request, then waits that long before answering;
        ``close`` drops the connection unanswered. ``count=0`` clears a pending fault.
        Replaces any earlier one."""
        if count > 0 and status is None and hang_ms is None and not close and late_ms is None:
            raise ValueError("fail_next needs status, hang_ms, late_ms or close")
        payload: dict[str, Any] = {"count": count}
        for key, value in (("status", status), ("hang_ms", hang_ms), ("late_ms", late_ms),
                           ("body", body),
                           ("json", json_body), ("headers", headers)):
            if value is not None:
                payload[key] = dict(value) if isinstance(value, Mapping) else value
        if close:
            payload["close"] = True
        self._call("POST", "/__fail", payload)


def start_provider(
    *,
    port: int | None = None,
    access_token_ttl: int = 60,
    clients: list[dict[str, Any]] | None = None,
    jwks_file: str | None = None,
    id_token_ttl: int = 3600,
) -> Provider:
    """Start a test OP on 127.0.0.1 (a free port unless ``port`` is given) and wait for it.

    ``clients``: client metadata list (``OP_CLIENTS``); default ``[DEFAULT_CLIENT]``.
    ``jwks_file``: signing keys, created if missing; default ``tests/op/.jwks.json``.
    Raises ``ProviderStartError`` (with the provider's stderr) if it is not ready within 20 s.
    """
    provider = Provider(
        port=port,
        access_token_ttl=access_token_ttl,
        id_token_ttl=id_token_ttl,
        clients=clients,
        jwks_file=jwks_file,
    )
    return provider.start()


# --------------------------------------------------------------------------------------------
# Headless browser: one generator holds the flow, two tiny drivers run it (sync and async).


@dataclass(frozen=True)
class _Request:
    method: str
    url: str
    data: dict[str, str] | None = None


@dataclass
class _Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self.auto_submit = False
        self._current: _Form | None = None
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = _Form(action=a.get("action", ""), method=a.get("method", "get").upper())
            self.forms.append(self._current)
        elif tag == "script":
            self._in_script = True
        elif self._current is not None and tag == "input" and a.get("name"):
            if a.get("type", "text").lower() not in {
                "submit",
                "button",
                "checkbox",
                "radio",
                "image",
            }:
                self._current.fields[a["name"]] = a.get("value", "")
        elif self._current is not None and tag == "button" and a.get("name"):
            self._current.buttons.append((a["name"], a.get("value", "")))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "form":
            self._current = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and "submit()" in data:
            self.auto_submit = True


def _forms(response: httpx.Response) -> _FormParser:
    parser = _FormParser()
    if "html" in response.headers.get("content-type", ""):
        parser.feed(response.text)
        parser.close()
    return parser


def _checked_url(url: httpx.URL) -> str:
    if url.host not in _LOOPBACK_HOSTS:
        raise RuntimeError(f"headless browser refuses to leave the loopback interface: {url}")
    return str(url)


def _form_kind(form: _Form, auto_submit: bool) -> str | None:
    path = httpx.URL(form.action).path
    if form.method != "POST":
        return None
    if path.startswith("/interaction/") and path.endswith("/login"):
        return "login"
    if path.startswith("/interaction/") and path.endswith("/confirm"):
        return "consent"
    if path.endswith("/session/end/confirm"):
        return "logout"
    if auto_submit:  # the OP's self-submitting pages (response_mode=form_post, logout w/o session)
        return "auto"
    return None


def _actionable_form(response: httpx.Response) -> tuple[_Form, str] | None:
    parsed = _forms(response)
    for form in parsed.forms:
        kind = _form_kind(form, parsed.auto_submit)
        if kind is not None:
            return form, kind
    return None


_Flow = Generator[_Request, httpx.Response, httpx.Response]


def _browse_flow(
    first: _Request,
    *,
    username: str,
    password: str,
    stop_at: Callable[[httpx.URL], bool] | None,
    max_steps: int,
) -> _Flow:
    """Yield requests, receive responses; return the first response needing no action."""
    request = first
    response = yield request
    submitted: set[str] = set()
    for _ in range(max_steps):
        location = response.headers.get("location")
        if response.is_redirect and location:
            target = response.url.join(location)
            if stop_at is not None and stop_at(target):
                return response
            if response.status_code in (307, 308):
                request = _Request(request.method, _checked_url(target), request.data)
            else:
                request = _Request("GET", _checked_url(target))
            response = yield request
            continue

        found = _actionable_form(response)
        if found is None:
            return response
        form, kind = found
        if kind in submitted and kind != "auto":
            # e.g. the login page again after a wrong password: hand it to the caller
            return response
        submitted.add(kind)
        data = dict(form.fields)
        if kind == "login":
            data.update(login=username, password=password)
        elif kind == "logout":
            data["logout"] = "yes"
        action = response.url.join(form.action) if form.action else response.url
        request = _Request("POST", _checked_url(action), data)
        response = yield request
    raise RuntimeError(f"headless browser gave up after {max_steps} steps at {response.url}")


def _run_sync(client: httpx.Client, flow: _Flow) -> httpx.Response:
    request = next(flow)
    while True:
        response = client.request(
            request.method, request.url, data=request.data, follow_redirects=False
        )
        try:
            request = flow.send(response)
        except StopIteration as done:
            result: httpx.Response = done.value
            return result


async def _run_async(client: httpx.AsyncClient, flow: _Flow) -> httpx.Response:
    request = next(flow)
    while True:
        response = await client.request(
            request.method, request.url, data=request.data, follow_redirects=False
        )
        try:
            request = flow.send(response)
        except StopIteration as done:
            result: httpx.Response = done.value
            return result


def _start(url: str, method: str, data: Mapping[str, str] | None) -> _Request:
    return _Request(
        method.upper(), _checked_url(httpx.URL(url)), dict(data) if data is not None else None
    )


def _login_request(app_url: str, login_path: str, return_to: str) -> _Request:
    url = httpx.URL(app_url.rstrip("/") + login_path).copy_merge_params({"return_to": return_to})
    return _Request("GET", _checked_url(url))


async def browse(
    client: httpx.AsyncClient,
    url: str,
    *,
    method: str = "GET",
    data: Mapping[str, str] | None = None,
    username: str = "alice",
    password: str = "wonderland",
    stop_at: Callable[[httpx.URL], bool] | None = None,
    max_steps: int = 30,
) -> httpx.Response:
    """Headless browser on the loopback interface.

    Requests ``url`` and then follows redirects (303 → GET; 307/308 repeat the request), signs in
    on the OP's login page with ``username``/``password``, approves its consent page, confirms its
    RP-initiated-logout page (``logout=yes``) and submits its self-submitting form_post pages,
    until a response needs none of that, which it returns. A page it already submitted coming
    back (the login page after a wrong password) is returned as is. With ``stop_at``, a redirect
    whose target satisfies it is returned unfollowed (e.g. to catch the redirect to a callback).
    """
    flow = _browse_flow(
        _start(url, method, data),
        username=username,
        password=password,
        stop_at=stop_at,
        max_steps=max_steps,
    )
    return await _run_async(client, flow)


def browse_sync(
    client: httpx.Client,
    url: str,
    *,
    method: str = "GET",
    data: Mapping[str, str] | None = None,
    username: str = "alice",
    password: str = "wonderland",
    stop_at: Callable[[httpx.URL], bool] | None = None,
    max_steps: int = 30,
) -> httpx.Response:
    """Synchronous twin of :func:`browse`."""
    flow = _browse_flow(
        _start(url, method, data),
        username=username,
        password=password,
        stop_at=stop_at,
        max_steps=max_steps,
    )
    return _run_sync(client, flow)


async def login(
    client: httpx.AsyncClient,
    app_url: str,
    *,
    return_to: str = "/",
    username: str = "alice",
    password: str = "wonderland",
    login_path: str = "/login",
) -> httpx.Response:
    """Full interactive login through the app: GET ``{app_url}{login_path}?return_to=…``, follow to
    the OP, sign in, approve consent if asked, follow back through the app's callback, and return
    the final response (normally the page at ``return_to``). With a wrong password the OP's login
    page (status 200, with an error) is returned instead."""
    flow = _browse_flow(
        _login_request(app_url, login_path, return_to),
        username=username,
        password=password,
        stop_at=None,
        max_steps=30,
    )
    return await _run_async(client, flow)


def login_sync(
    client: httpx.Client,
    app_url: str,
    *,
    return_to: str = "/",
    username: str = "alice",
    password: str = "wonderland",
    login_path: str = "/login",
) -> httpx.Response:
    """Synchronous twin of :func:`login`."""
    flow = _browse_flow(
        _login_request(app_url, login_path, return_to),
        username=username,
        password=password,
        stop_at=None,
        max_steps=30,
    )
    return _run_sync(client, flow)


async def logout_at_op(
    client: httpx.AsyncClient,
    url: str,
    *,
    method: str = "GET",
    data: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Finish an RP-initiated logout headlessly.

    ``url`` is the app's logout URL (or the OP end-session URL it redirects to). Redirects are
    followed to the OP's confirmation page, whose form (hidden ``xsrf``) is POSTed to
    ``/session/end/confirm`` with ``logout=yes``; the 303 to the ``post_logout_redirect_uri`` is
    followed and the final response returned.
    """
    return await browse(client, url, method=method, data=data)


def logout_at_op_sync(
    client: httpx.Client,
    url: str,
    *,
    method: str = "GET",
    data: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Synchronous twin of :func:`logout_at_op`."""
    return browse_sync(client, url, method=method, data=data)
