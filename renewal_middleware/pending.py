"""A browser's pending logins, capped when a new one starts.

Each pending login (or silent renewal) has its own transaction cookie, scoped to its
callback path (:mod:`renewal_middleware.transaction`), so ``/login`` never sees them. A
small cookie for the whole site names them, newest last, while any is pending: when
a login starts with ``max_pending_logins`` already named, the oldest one's cookie is
deleted (a Set-Cookie can delete a cookie its path hides). The cookie is gone again once
the last pending login ends.
"""

from __future__ import annotations

from collections.abc import Mapping

from .config import Settings
from .cookies import CookieWriter
from .transaction import KINDS, MAX_STATE_LENGTH, Kind, LoginTransaction, Transactions


class PendingLogins:
    """Reads and writes the cookie naming a browser's pending logins."""

    def __init__(self, settings: Settings, transactions: Transactions) -> None:
        secure = "__Secure-" if settings.secure_cookies else ""
        self.name = f"{secure}{settings.cookie_name}_pending"
        self.limit = settings.max_pending_logins
        self._transactions = transactions
        self._timeout = settings.login_timeout_seconds
        samesite = "none" if settings.cookie_samesite == "none" else "lax"
        self._writer = CookieWriter(settings, path=settings.prefix or "/", max_age=self._timeout,
                                    samesite=samesite)

    def started(self, tx: LoginTransaction, cookies: Mapping[str, str]) -> list[str]:
        """Set-Cookie values naming ``tx`` too, and deleting what falls off the end."""
        pending = [entry for entry in self._read(cookies) if entry[1] != tx.state]
        pending.append((tx.kind, tx.state))
        evicted, pending = pending[:-self.limit], pending[-self.limit:]
        headers = [self._transactions.delete(kind, state) for kind, state in evicted]
        headers.append(self._write(pending))
        return headers

    def ended(self, tx: LoginTransaction, cookies: Mapping[str, str]) -> list[str]:
        """Set-Cookie values that stop naming ``tx`` (deleting the cookie when it was the last)."""
        if self.name not in cookies:
            return []
        pending = [entry for entry in self._read(cookies) if entry[1] != tx.state]
        return [self._write(pending) if pending else self._writer.delete(self.name)]

    def _read(self, cookies: Mapping[str, str]) -> list[tuple[Kind, str]]:
        raw = cookies.get(self.name)
        loaded = self._transactions.codec.loads(raw, self._timeout) if raw else None
        listed = loaded[0].get("p") if loaded is not None and isinstance(loaded[0], dict) else None
        if not isinstance(listed, list):
            return []
        entries: list[tuple[Kind, str]] = []
        for entry in listed:
            if (isinstance(entry, list) and len(entry) == 2 and entry[0] in KINDS
                    and isinstance(entry[1], str) and 0 < len(entry[1]) <= MAX_STATE_LENGTH):
                entries.append((entry[0], entry[1]))
        return entries[-self.limit:]

    def _write(self, pending: list[tuple[Kind, str]]) -> str:
        value = self._transactions.codec.dumps({"p": [[kind, state] for kind, state in pending]})
        return self._writer.set(self.name, value)
