"""Hooks: the app's own code at the moments of a session's life, sync or async, in both drivers.

    from renewal_middleware import Hooks, LoginRefused

    def after_login(event: LoginEvent) -> dict[str, object] | None:
        if event.claims.get("tenant") != "acme":
            raise LoginRefused("This app is for Acme employees.")
        return {"roles": lookup_roles(event.sub)}      # added to the user's claims

    app.add_middleware(RenewalMiddleware, hooks=Hooks(after_login=after_login))

The core stays free of I/O: it yields a :class:`CallHook` effect and the driver runs the
hook (awaiting it when it returns an awaitable; the WSGI driver runs such a coroutine to
its end on a private event loop). A hook's answer or exception comes back as a
:class:`HookOutcome`: an exception is logged and the request goes on, except in
``after_login``, where :class:`LoginRefused` — or any other exception, because a hook that
checks who may log in must not let everyone in when it breaks — refuses the login.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, Literal, TypeVar

from .errors import LoginDenied
from .session import Session

logger = logging.getLogger("renewal_middleware")

E = TypeVar("E")
R = TypeVar("R")
#: A hook: called with its event, returning its answer or an awaitable of it.
Hook = Callable[[E], R | Awaitable[R]]

LogoutReason = Literal["user", "back-channel", "lifetime"]
FailureReason = Literal["invalid_grant", "provider_unavailable", "subject_changed",
                        "invalid_id_token", "login_required"]


@dataclasses.dataclass(frozen=True)
class LoginEvent:
    """A user has just logged in (the ID token is verified; no session exists yet)."""

    sub: str
    claims: Mapping[str, Any]
    scope: str
    expires_at: int


@dataclasses.dataclass(frozen=True)
class RenewalEvent:
    """A session's access token was renewed (by this process: one event per renewal)."""

    session_id: str
    sub: str
    old_expires_at: int
    new_expires_at: int
    via: Literal["refresh", "silent"]


@dataclasses.dataclass(frozen=True)
class LogoutEvent:
    """Sessions ended: one (``session_id``), or by the provider's ``sid``/``sub``."""

    reason: LogoutReason
    session_id: str | None
    sub: str | None
    sid: str | None = None


@dataclasses.dataclass(frozen=True)
class RenewalFailureEvent:
    """A renewal did not work; ``ended``: the session is over (else it is retried later)."""

    session_id: str
    sub: str
    reason: FailureReason
    ended: bool


class LoginRefused(Exception):
    """Raised by an ``after_login`` hook: the user sees ``reason`` on a 403 page."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Hooks:
    """The app's hooks; each one optional."""

    #: May refuse (:class:`LoginRefused`) or return claims to add to the user's.
    after_login: Hook[LoginEvent, Mapping[str, Any] | None] | None = None
    after_renewal: Hook[RenewalEvent, None] | None = None
    after_logout: Hook[LogoutEvent, None] | None = None
    on_renewal_failure: Hook[RenewalFailureEvent, None] | None = None


HookName = Literal["after_login", "after_renewal", "after_logout", "on_renewal_failure"]


@dataclasses.dataclass(frozen=True)
class CallHook:
    """Effect: run the app's hook ``name`` with ``event``; answered with a :class:`HookOutcome`."""

    hook: Callable[[Any], Any]
    name: HookName
    event: object


@dataclasses.dataclass(frozen=True)
class HookOutcome:
    value: Any = None
    error: BaseException | None = None


def call_sync(step: CallHook) -> HookOutcome:
    """Run a hook for the WSGI driver (a coroutine on a private event loop)."""
    try:
        value = step.hook(step.event)
        if inspect.isawaitable(value):
            value = asyncio.run(_awaited(value))
        return HookOutcome(value)
    except Exception as exc:
        return HookOutcome(error=exc)


async def call_async(step: CallHook) -> HookOutcome:
    """Run a hook for the ASGI driver."""
    try:
        value = step.hook(step.event)
        if inspect.isawaitable(value):
            value = await value
        return HookOutcome(value)
    except Exception as exc:
        return HookOutcome(error=exc)


async def _awaited(value: Awaitable[R]) -> R:
    return await value


def notify(hooks: Hooks, name: HookName, event: object) -> Generator[CallHook, Any, None]:
    """Run hook ``name`` if the app set it; what it raises is logged, never the request's."""
    hook = getattr(hooks, name)
    if hook is None:
        return
    outcome: HookOutcome = yield CallHook(hook, name, event)
    if outcome.error is not None:
        logger.error("the %s hook raised %r (ignored)", name, outcome.error,
                     exc_info=outcome.error)


def admit(hooks: Hooks, session: Session) -> Generator[CallHook, Any, Session]:
    """Ask ``after_login`` about a new session: the session with the claims it added, or
    :class:`~renewal_middleware.errors.LoginDenied`."""
    if hooks.after_login is None:
        return session
    event = LoginEvent(session.sub, session.claims, session.scope, session.expires_at)
    outcome: HookOutcome = yield CallHook(hooks.after_login, "after_login", event)
    if isinstance(outcome.error, LoginRefused):
        logger.info("login of %s refused by the app: %s", session.sub, outcome.error.reason)
        raise LoginDenied(outcome.error.reason)
    if outcome.error is not None:
        logger.error("the after_login hook raised %r: login refused", outcome.error,
                     exc_info=outcome.error)
        raise LoginDenied("This sign-in could not be completed. Please try again later.")
    if isinstance(outcome.value, Mapping):
        return dataclasses.replace(session, claims={**session.claims, **outcome.value})
    return session
