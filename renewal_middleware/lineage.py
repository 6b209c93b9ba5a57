"""One renewal per session across every process that shares the store.

A session's lineage (see :mod:`renewal_middleware.stores.base`) holds its newest
generation. A renewal reads it first: a request that carries an older cookie is
given the newest tokens instead of replaying a rotated refresh token. Otherwise
it takes the session's lock, reads the lineage again (another process may have
renewed meanwhile), refreshes from the newest refresh token only if still needed,
records the new generation and releases the lock. The release wakes every process
that found the lock taken: each reads the new generation, none takes the lock.

Without the store (down, unreachable) a renewal still happens, in this process
only: serving the user beats the small risk of a second grant from another host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from .config import Settings
from .cookies import SignedCodec
from .errors import RenewalError
from .hooks import CallHook
from .loading import SessionLoader
from .oidc import Effect
from .renewal import Ended, Freshness, Outcome, Renewed, Unavailable, assess
from .session import Session
from .stores.base import Lineage, Lock, StoreUnavailable, Tombstone
from .stores.effects import (
    AwaitRelease,
    Bury,
    ReadLineage,
    ReleaseLock,
    StoreEffect,
    TakeLock,
    WriteLineage,
)
from .tombstones import session_key

logger = logging.getLogger("renewal_middleware")

T = TypeVar("T")
#: A flow that calls the provider and the store.
SharedFlow = Generator[Effect | StoreEffect | CallHook, Any, T]


class Lineages:
    """Seals sessions for the store and runs the shared renewal protocol."""

    def __init__(self, settings: Settings, sessions: SessionLoader,
                 refresh: Callable[[Session, float], SharedFlow[Outcome]],
                 clock: Callable[[], float]) -> None:
        self.settings = settings
        self.sessions = sessions
        self._refresh = refresh
        # Always encrypted, whatever the cookies: the store holds every user's tokens.
        self._codec = SignedCodec(settings, "renewal.store", clock, encrypt=True)
        self.ttl = float(settings.session_lifetime_seconds)
        self.lock_seconds = settings.lock_seconds

    def seal(self, session: Session) -> str:
        return self._codec.dumps(session.to_payload())

    def unseal(self, sealed: str) -> Session | None:
        loaded = self._codec.loads(sealed, self.settings.session_lifetime_seconds)
        return Session.from_payload(loaded[0]) if loaded else None

    def newest(self, session: Session, known: Lineage | None) -> Session:
        """The newest generation of ``session`` the store knows (``session`` if none is)."""
        if known is not None and not known.ended and known.generation > session.generation:
            newer = self.unseal(known.sealed)
            if newer is not None and newer.id == session.id:
                return newer
        return session

    def adopt(self, session: Session, known: Lineage | None, now: float) -> Outcome | None:
        """The outcome a request gets without a grant, if another one made it already."""
        if known is not None and known.ended:
            return Ended("logged_out")
        newest = self.newest(session, known)
        if newest is session or assess(newest, now, self.settings.grace_seconds
                                       ) is not Freshness.FRESH:
            return None
        return Renewed(newest, self.sessions.encode(newest, now))

    def renew(self, session: Session, now: float) -> SharedFlow[Outcome]:
        """The refresh of ``session``, coordinated with every process sharing the store."""
        try:
            known = yield ReadLineage(session.id)
            adopted = self.adopt(session, known, now)
            if adopted is not None:
                return adopted
            lock = yield TakeLock(session.id, self.lock_seconds, 0)
            if lock is None:
                # Another process is renewing: wake with every other waiter when it is done
                # and read its result, rather than take the lock one after the other.
                yield AwaitRelease(session.id, self.lock_seconds)
                known = yield ReadLineage(session.id)
                adopted = self.adopt(session, known, now)
                if adopted is not None:
                    return adopted
                lock = yield TakeLock(session.id, self.lock_seconds, self.lock_seconds)
        except StoreUnavailable as exc:
            logger.warning("store unavailable (%s): renewing session %s in this process only",
                           exc.message, session.id)
            return (yield from self._refresh(session, now))
        if lock is None:
            logger.warning("session %s: the renewal lock was not freed in %.0fs", session.id,
                           self.lock_seconds)
            return Unavailable("renewal_in_progress", now + 1)
        try:
            outcome: Outcome = yield from self._renew_locked(session, lock)
        except StoreUnavailable as exc:
            logger.warning("store unavailable during a renewal: %s", exc.message)
            outcome = Unavailable("store_unavailable", now + 1)
        yield from self.release(lock)
        return outcome

    def _renew_locked(self, session: Session, lock: Lock) -> SharedFlow[Outcome]:
        now = lock.acquired_at
        known = yield ReadLineage(session.id)  # again: the lock may have been waited for
        adopted = self.adopt(session, known, now)
        if adopted is not None:
            return adopted
        outcome = yield from self._refresh(self.newest(session, known), now)
        if isinstance(outcome, Renewed):
            renewed = outcome.session
            yield WriteLineage(session.id, Lineage(renewed.generation, self.seal(renewed)),
                               self.ttl)
        elif isinstance(outcome, Ended):
            # The grant is over: no other process may try its refresh token again.
            yield Bury((Tombstone(session_key(session.id), now),), self.ttl)
        return outcome

    def release(self, lock: Lock) -> SharedFlow[None]:
        try:
            yield ReleaseLock(lock)
        except RenewalError as exc:  # it frees itself after its TTL
            logger.warning("renewal lock not released: %s", exc.message)
