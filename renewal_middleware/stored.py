"""Server-side session storage: a cookie names the session, the store keeps its tokens.

With ``session_storage = "server"`` the session cookie holds a signed (and encrypted)
session id, under 200 bytes whatever the tokens weigh; the token set is the session's
lineage in the store (see :mod:`renewal_middleware.lineage`), sealed with keys derived
from the cookie keys and expiring with the session. A cookie read once is remembered
like any other, so the pass-through path still never touches the store: only the first
request of a cookie value in a process, and renewals, read it.
"""

from __future__ import annotations

import logging

from .context import Loaded
from .lineage import Lineages, SharedFlow
from .loading import SessionLoader
from .session import Session
from .stores.base import Lineage
from .stores.effects import ReadLineage, WriteLineage

logger = logging.getLogger("renewal_middleware")


class StoredSessions:
    """Reads sessions named by their cookie, and writes new ones."""

    def __init__(self, sessions: SessionLoader, lineages: Lineages) -> None:
        self.sessions = sessions
        self.lineages = lineages
        self.enabled = sessions.server

    def resolve(self, loaded: Loaded) -> SharedFlow[Loaded]:
        """``loaded`` with the session its handle names (raises StoreUnavailable)."""
        handle = loaded.handle
        if handle is None:
            return loaded
        known = yield ReadLineage(handle.session_id)
        session = None
        if known is not None and not known.ended:
            session = self.lineages.unseal(known.sealed)
        if session is None or session.id != handle.session_id:
            logger.info("session %s is not in the store (ended or expired)",
                        handle.session_id)
            return Loaded(None, loaded.present, invalid=True)
        return Loaded(self.sessions.remember_stored(handle, session), loaded.present)

    def keep(self, session: Session) -> SharedFlow[None]:
        """Write a session that no renewal wrote (a login, a silent renewal) to the store."""
        if self.enabled:
            yield WriteLineage(session.id, Lineage(session.generation,
                                                   self.lineages.seal(session)),
                               self.lineages.ttl)
