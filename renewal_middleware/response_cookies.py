"""The Set-Cookie of a renewal, decided when its response starts.

Between the renewal and the response's first byte, another process may have renewed
the session again or ended it: the cookie set is then the store's newest generation,
or deletions, never an older generation and never a session that was logged out.
"""

from __future__ import annotations

import logging

from .context import Serve
from .lineage import Lineages, SharedFlow
from .loading import SessionLoader
from .stores.base import Lineage, StoreUnavailable
from .stores.effects import ReadLineage
from .tombstones import Tombstones

logger = logging.getLogger("renewal_middleware")


class ResponseCookies:
    """Decides the final Set-Cookie values of a response that carries a renewal."""

    def __init__(self, sessions: SessionLoader, lineages: Lineages,
                 tombstones: Tombstones) -> None:
        self.sessions = sessions
        self.lineages = lineages
        self.tombstones = tombstones

    def of(self, serve: Serve, now: float) -> SharedFlow[tuple[str, ...]]:
        """The Set-Cookie values of a response, as it starts (see :meth:`final`)."""
        if serve.renewal is None:
            return serve.set_cookies
        try:
            known = yield ReadLineage(serve.renewal.session.id)
        except StoreUnavailable as exc:
            logger.warning("renewal cookie set without checking the store: %s", exc.message)
            known = None
        return self.final(serve, known, now)

    def final(self, serve: Serve, known: Lineage | None, now: float) -> tuple[str, ...]:
        """The Set-Cookie values of a renewal's response, decided as it starts: never a
        generation older than the store's newest, never a cookie for an ended session."""
        renewal = serve.renewal
        if renewal is None:
            return serve.set_cookies
        session = renewal.session
        if (known is not None and known.ended) or self.tombstones.ends(session):
            return tuple(self.sessions.cookie.clear_headers(renewal.present))
        newest = self.lineages.newest(session, known)
        if newest is session:
            return serve.set_cookies
        value = self.sessions.encode(newest, now)
        return tuple(self.sessions.cookie.set_headers(value, renewal.present))
