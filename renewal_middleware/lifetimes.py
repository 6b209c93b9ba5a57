"""How long a session may live: an absolute limit from its login and an idle limit.

Activity is the time the session cookie was last signed (``SessionView.signed_at``):
renewals re-sign it, and a session in use has it re-signed once every
:attr:`Lifetimes.record_every` seconds (a minute, or a tenth of the idle timeout), so
the pass-through path never writes anything and a request that records activity
costs one cookie encoding.
"""

from __future__ import annotations

from typing import Literal

from .config import Settings
from .context import SessionView

#: Why a session ended on its own.
Expiry = Literal["absolute", "idle"]

_NEVER = float("inf")


class Lifetimes:
    """The two limits, as pure functions of a verified session and the time."""

    def __init__(self, settings: Settings) -> None:
        self.absolute = settings.absolute_lifetime_seconds
        self.idle = settings.idle_timeout_seconds
        #: Re-sign a session in use after this many seconds (``inf``: no idle limit).
        self.record_every = min(60.0, self.idle / 10) if self.idle else _NEVER

    def expired(self, view: SessionView, now: float) -> Expiry | None:
        """Which limit ``view`` has passed at ``now``, if any."""
        login_at = view.session.login_at  # 0: a session from before login times were kept
        if self.absolute and login_at and now >= login_at + self.absolute:
            return "absolute"
        if self.idle and now >= view.signed_at + self.idle:
            return "idle"
        return None

    def records_activity(self, view: SessionView, now: float) -> bool:
        """Whether a request of ``view`` at ``now`` re-signs its cookie."""
        return now >= view.signed_at + self.record_every

    def passes_until(self, view: SessionView) -> float:
        """Until when the pass-through may serve ``view`` without asking: the next
        activity record or the absolute limit, whichever comes first."""
        until = view.signed_at + self.record_every
        if self.absolute and view.session.login_at:
            until = min(until, view.session.login_at + self.absolute)
        return until
