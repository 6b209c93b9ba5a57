"""Ending sessions everywhere: RP-initiated logout and OpenID Connect Back-Channel Logout.

A logout records a tombstone in the store (so that no process sets the session's
cookie again, and every process refuses it within a second) and revokes the
newest refresh token of the lineage: the one the request carries may have been
rotated already by a renewal elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

from .config import Settings
from .csrf import CsrfPolicy
from .errors import AuthenticationError, ProviderUnavailable, TokenRequestRejected
from .hooks import Hooks, LogoutEvent, notify
from .lineage import Lineages, SharedFlow
from .loading import SessionLoader
from .logout_token import UNKNOWN_KEY, LogoutClaims, validate_logout_token
from .oidc import Flow, Provider, ProviderMetadata
from .replies import Reply, error_reply, logout_confirmation, redirect
from .requests import Request, parse_query
from .session import Session
from .stored import StoredSessions
from .stores.base import StoreUnavailable, Tombstone
from .stores.effects import Bury, Claim, ReadLineage, TakeLock
from .tombstones import session_key

logger = logging.getLogger("renewal_middleware")


class Logouts:
    """``/logout`` and ``/backchannel-logout``."""

    def __init__(self, settings: Settings, provider: Provider, sessions: SessionLoader,
                 lineages: Lineages, learn: Callable[[list[Tombstone]], None],
                 csrf: CsrfPolicy, hooks: Hooks, stored: StoredSessions) -> None:
        self.settings = settings
        self.stored = stored
        self.hooks = hooks
        self.csrf = csrf
        self.provider = provider
        self.sessions = sessions
        self.lineages = lineages
        self._learn = learn
        self._ttl = float(settings.session_lifetime_seconds)

    def logout(self, request: Request, now: float) -> SharedFlow[Reply]:
        """``GET|POST /logout``: end the session everywhere, revoke, clear every chunk, and
        log out at the provider. A request that may come from another site only gets a
        page asking to confirm (see :mod:`renewal_middleware.csrf`)."""
        loaded = self.sessions.load(request.header("cookie"), now)
        try:
            loaded = yield from self.stored.resolve(loaded)
        except StoreUnavailable as exc:  # its tokens unknown: end it here, clear the cookie
            logger.warning("logout without the store: %s", exc.message)
        clear = self.sessions.cookie.clear_headers(loaded.present)
        session = loaded.view.session if loaded.view else None
        if session is not None and not self.csrf.logout_allowed(
                request, session.id, parse_query(request.query_string).get("t")):
            logger.info("logout of session %s asks for confirmation (cross-site?)", session.id)
            return logout_confirmation(
                self.settings.public(self.settings.logout_path) + "?t="
                + self.csrf.logout_token(session.id), self.settings.home)
        if session is not None:
            session = yield from self._end(session, now)
            logger.info("logout of session %s", session.id)
            yield from notify(self.hooks, "after_logout",
                              LogoutEvent("user", session.id, session.sub))
        local = redirect(self.settings.public(self.settings.post_logout_path), clear)
        try:
            meta = yield from self.provider.metadata(now)
        except ProviderUnavailable:
            logger.warning("logout while the provider is unreachable: local logout only")
            return local
        if session is not None:
            yield from self._revoke(meta, session)
        if not meta.end_session_endpoint:
            return local
        params = {"post_logout_redirect_uri": self.settings.post_logout_redirect_uri,
                  "client_id": self.settings.client_id}
        if session is not None and session.id_token:
            params["id_token_hint"] = session.id_token
        separator = "&" if "?" in meta.end_session_endpoint else "?"
        return redirect(meta.end_session_endpoint + separator + urlencode(params), clear)

    def expire(self, session: Session, reason: str, now: float) -> SharedFlow[None]:
        """End a session past one of its lifetimes (or ended by a back-channel logout, met
        here for the first time): everywhere, its stored tokens deleted, its refresh token
        revoked."""
        session = yield from self._end(session, now)
        if reason == "ended":
            logger.info("session %s ended by a logout elsewhere: tokens deleted", session.id)
        else:
            logger.info("session %s ended: past its %s lifetime", session.id, reason)
            yield from notify(self.hooks, "after_logout",
                              LogoutEvent("lifetime", session.id, session.sub))
        try:
            meta = yield from self.provider.metadata(now)
        except ProviderUnavailable as exc:
            logger.warning("could not revoke the refresh token: %s", exc.message)
            return
        yield from self._revoke(meta, session)

    def _revoke(self, meta: ProviderMetadata, session: Session) -> Flow[None]:
        if session.refresh_token and meta.revocation_endpoint:
            try:
                yield from self.provider.revoke(meta, session.refresh_token)
            except (ProviderUnavailable, TokenRequestRejected) as exc:
                logger.warning("could not revoke the refresh token: %s", exc.message)

    def _end(self, session: Session, now: float) -> SharedFlow[Session]:
        """Tombstone ``session`` and return its newest generation (whose refresh token is
        the live one). The lock makes a renewal in flight finish first."""
        tombstone = Tombstone(session_key(session.id), now)
        self._learn([tombstone])
        newest = session
        try:
            lock = yield TakeLock(session.id, self.lineages.lock_seconds,
                                  self.lineages.lock_seconds)
        except StoreUnavailable as exc:
            logger.warning("logout of session %s in this process only: %s", session.id,
                           exc.message)
            return session
        try:
            known = yield ReadLineage(session.id)
            newest = self.lineages.newest(session, known)
            yield Bury((tombstone,), self._ttl)
        except StoreUnavailable as exc:
            logger.warning("logout of session %s in this process only: %s", session.id,
                           exc.message)
        if lock is not None:
            yield from self.lineages.release(lock)
        return newest

    def backchannel(self, body: bytes, now: float) -> SharedFlow[Reply]:
        """``POST /backchannel-logout``: the provider ends sessions by ``sid`` and/or ``sub``."""
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        token = form.get("logout_token")
        if not token:
            return _refused("the request has no logout_token")
        try:
            claims = yield from self._validated(token, now)
        except AuthenticationError as exc:
            logger.warning("back-channel logout refused: %s", exc.message)
            return _refused(exc.message)
        tombstones = _tombstones(claims, now)
        try:
            if not (yield Claim("jti:" + claims.jti, self._ttl)):
                return _refused("the logout_token was used before")
            yield Bury(tombstones, self._ttl)
        except StoreUnavailable as exc:
            logger.error("back-channel logout not recorded: %s", exc.message)
            return error_reply(exc, as_json=True)
        self._learn(tombstones)
        logger.info("back-channel logout of %s", ", ".join(t.key for t in tombstones))
        yield from notify(self.hooks, "after_logout", LogoutEvent(
            "back-channel", None, None if claims.sub is None else str(claims.sub), claims.sid))
        return Reply(200, [("cache-control", "no-store")])


    def _validated(self, token: str, now: float) -> SharedFlow[LogoutClaims]:
        meta = yield from self.provider.metadata(now)
        refetch = False
        while True:
            keys = yield from self.provider.keys(now, refetch=refetch)
            try:
                return validate_logout_token(
                    token, keys, issuer=meta.issuer, client_id=self.settings.client_id,
                    now=now, skew=self.settings.clock_skew_seconds,
                    algorithms=meta.id_token_algorithms)
            except AuthenticationError as exc:
                if exc.code != UNKNOWN_KEY or refetch:
                    raise
                refetch = True  # the provider may have rotated its keys


def _tombstones(claims: LogoutClaims, now: float) -> list[Tombstone]:
    """A ``sid`` ends that provider session (and, for its user, the sessions whose ID token
    named none); a ``sub`` alone ends every session of the user that began before now."""
    if claims.sid is None:
        return [Tombstone("sub:" + str(claims.sub), now)]
    found = [Tombstone("sid:" + claims.sid, now)]
    if claims.sub is not None:
        found.append(Tombstone("nosid:" + claims.sub, now))
    return found


def _refused(description: str) -> Reply:
    """Back-Channel Logout 1.0 §2.8: a logout that failed is a 400."""
    return error_reply(AuthenticationError(description, code="invalid_request"), True,
                       status=400)
