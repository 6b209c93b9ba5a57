"""The refresh_token grant of one session, as one outcome for everyone waiting on it."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from .errors import AuthenticationError, ProviderUnavailable, TokenRequestRejected
from .hooks import FailureReason, Hooks, RenewalEvent, RenewalFailureEvent, notify
from .lineage import SharedFlow
from .loading import SessionLoader
from .oidc import Flow, Provider
from .renewal import Backoff, Ended, Outcome, Renewed, Unavailable
from .session import EXPIRY_UNKNOWN, Session

logger = logging.getLogger("renewal_middleware")


class RefreshGrant:
    """Runs the grant and turns every answer into a :data:`~renewal_middleware.renewal.Outcome`.

    The clock is read in one case only: to start a backoff after the provider
    failed, because a timeout ends after ``now``.
    """

    def __init__(self, provider: Provider, sessions: SessionLoader, backoff: Backoff,
                 clock: Callable[[], float], hooks: Hooks) -> None:
        self.hooks = hooks
        self.provider = provider
        self.sessions = sessions
        self.backoff = backoff
        self.clock = clock

    def __call__(self, session: Session, now: float) -> SharedFlow[Outcome]:
        """The refresh_token grant for ``session``, as one outcome, told to the app's hooks."""
        outcome = yield from self._grant(session, now)
        if isinstance(outcome, Renewed):
            yield from notify(self.hooks, "after_renewal", RenewalEvent(
                session.id, session.sub, session.expires_at, outcome.session.expires_at,
                "refresh"))
        else:
            yield from notify(self.hooks, "on_renewal_failure", RenewalFailureEvent(
                session.id, session.sub, _failure_reason(outcome.reason),
                isinstance(outcome, Ended)))
        return outcome

    def _grant(self, session: Session, now: float) -> Flow[Outcome]:
        assert session.refresh_token is not None
        try:
            token = yield from self.provider.refresh_grant(now, session.refresh_token)
            claims: Mapping[str, Any] = session.claims
            if isinstance(token.get("id_token"), str):
                claims = yield from self.provider.validate_id_token(
                    now, token["id_token"], nonce=None, access_token=token["access_token"],
                    expected_sub=session.sub)
        except TokenRequestRejected as exc:
            if exc.error == "invalid_grant":
                logger.info("refresh refused (invalid_grant): session %s ended", session.id)
                self.backoff.succeeded(session.id)
                return Ended(exc.error)
            # invalid_client and the like: our configuration, not the user's session.
            logger.error("refresh refused (%s): check the client settings", exc.error)
            return Unavailable(exc.error, self.backoff.failed(session.id, self.clock()))
        except ProviderUnavailable as exc:
            # Back off from when the attempt failed, which may be a timeout after ``now``.
            failed_at = self.clock()
            until = self.backoff.failed(session.id, failed_at, exc.retry_after)
            logger.warning("refresh failed, retrying after %.1fs: %s", until - failed_at,
                           exc.message)
            return Unavailable(exc.message, until)
        except AuthenticationError as exc:
            logger.warning("refresh returned a bad ID token (%s): session ended", exc.code)
            return Ended(exc.code)
        return self._renewed(session, Session.from_token_response(
            token, claims, int(now), previous=session), now)

    def _renewed(self, session: Session, renewed: Session, now: float) -> Outcome:
        self.backoff.succeeded(session.id)
        if EXPIRY_UNKNOWN != renewed.expires_at <= session.expires_at:
            # Some providers answer with a token that lives no longer than the old one (an SSO
            # session or a refresh token near its end): no new grant, from any process, until
            # it has expired.
            logger.info("session %s: the renewed token lives no longer; next try at expiry",
                        session.id)
            renewed = dataclasses.replace(renewed, renew_from=renewed.expires_at)
        try:
            value = self.sessions.encode(renewed, now)
        except AuthenticationError as exc:
            logger.error("renewed session %s cannot be stored: %s", session.id, exc.message)
            return Ended(exc.code)
        logger.info("renewed session %s (expires in %ss)", session.id,
                    renewed.expires_at - int(now) if renewed.expires_at else "?")
        return Renewed(renewed, value)


def _failure_reason(reason: str) -> FailureReason:
    if reason in ("invalid_grant", "subject_changed"):
        return reason  # type: ignore[return-value]
    return "invalid_id_token" if reason.startswith("invalid") else "provider_unavailable"
