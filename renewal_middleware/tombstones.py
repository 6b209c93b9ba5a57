"""This process's copy of the sessions that ended elsewhere (logout, back-channel logout).

Kept as a dict so that checking a session costs a lookup or three; synced from
the store at most once a second by the drivers, never on the pass-through path.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

from .session import Session
from .stores.base import Tombstone

logger = logging.getLogger("renewal_middleware")

#: How often a driver asks the store for tombstones recorded by other processes.
SYNC_INTERVAL = 1.0
#: How often, at most, tombstones older than a session's lifetime are forgotten.
PRUNE_INTERVAL = 60.0
#: Tombstones are asked for from a little before the last sync: clocks of hosts differ.
SYNC_OVERLAP = 5.0


def session_key(session_id: str) -> str:
    return "s:" + session_id


class Tombstones:
    """Ended sessions by key: ``s:<id>``, ``sid:<provider session>``, ``sub:<subject>`` (all
    of the user's sessions), ``nosid:<subject>`` (those of them whose ID token had no sid)."""

    def __init__(self, shared: bool, lifetime: float) -> None:
        self.ended: dict[str, float] = {}
        #: A tombstone older than this ends nothing: every cookie of its session is too old.
        self._lifetime = lifetime
        self._pruned_at = -math.inf
        #: When the next sync with the store is due (never for a store of one process).
        self.sync_at = 0.0 if shared else math.inf
        self._since = 0.0
        self._failing = False

    def ends(self, session: Session) -> bool:
        """Whether ``session`` ended: by its id, its provider session, or its subject
        (a ``sub:`` tombstone ends the sessions that began before it)."""
        ended = self.ended
        if not ended:
            return False
        if session_key(session.id) in ended:
            return True
        sid = session.claims.get("sid")
        if isinstance(sid, str):
            if "sid:" + sid in ended:
                return True
        else:  # a provider session we cannot tell apart from the others of its user
            at = ended.get("nosid:" + session.sub)
            if at is not None and session.login_at <= at:
                return True
        at = ended.get("sub:" + session.sub)
        return at is not None and session.login_at <= at

    def learn(self, tombstones: Iterable[Tombstone], synced_at: float | None = None) -> bool:
        """Add ``tombstones`` (all the store had since :meth:`due` when ``synced_at`` is
        given); ``True`` when one of them was new."""
        if synced_at is not None:
            self._since = synced_at
            if self._failing:
                self._failing = False
                logger.warning("the store answers again: logouts of other processes apply")
        newest = -math.inf
        for tombstone in tombstones:
            if self.ended.get(tombstone.key, -1.0) < tombstone.at:
                self.ended[tombstone.key] = tombstone.at
                newest = max(newest, tombstone.at)
        if newest - self._pruned_at >= PRUNE_INTERVAL:
            self._pruned_at = newest
            self.expire(newest - self._lifetime)
        return newest > -math.inf

    def due(self, now: float) -> float:
        """Start a sync: the next one is in a second; returns from when to ask the store."""
        self.sync_at = now + SYNC_INTERVAL
        return max(0.0, self._since - SYNC_OVERLAP)

    def sync_failed(self, error: Exception) -> None:
        """Log that the store cannot be read, once until it can again."""
        if not self._failing:
            self._failing = True
            logger.warning("the store does not answer (%s): logouts of other processes are "
                           "not seen until it does", error)

    def expire(self, older_than: float) -> None:
        """Forget tombstones from before ``older_than`` (a new dict: readers in other threads
        keep the one they hold)."""
        self.ended = {key: at for key, at in list(self.ended.items()) if at >= older_than}
